"""Logistic(loc, scale): the law whose CDF is the sigmoid.

Standard noise by inverting that CDF at an open uniform u in (0, 1), i.e. the logit of u:

    eps = log u - log(1 - u),        z = mu + s eps,   dz/dmu = 1,  dz/ds = eps.

Its density is sigmoid(eps) (1 - sigmoid(eps)), written stably with softplus(x) = log(1 + e^x):

    log f0(eps) = -eps - 2 softplus(-eps),
    H[f0] = 2,   E[eps] = 0,   Var[eps] = pi^2 / 3,   F(z) = sigmoid(eps),
    F^-1(p) = mu + s (log p - log(1 - p)).

The difference of two independent Gumbel noises is logistic, which is why it appears in the
two-class case of the Gumbel-max trick: Bernoulli draws z = [l + L > 0] and RelaxedBernoulli
(the Binary Concrete) y = sigmoid((l + L) / tau), both with L from ``Logistic.standard_noise``.
"""
from __future__ import annotations

import math

import numpy as np

from tinygrad_reparam import checks
from tinygrad_reparam.distributions.location_scale import LocationScale
from tinygrad_reparam.random import uniform_open
from tinygrad_reparam.tensor import Tensor


class Logistic(LocationScale):
    """Logistic with location (mean, median) ``loc`` and scale ``scale`` (> 0).

    Its support is the whole real line, so ``log_prob`` is finite for every finite value.
    """

    noise_label = "eps ~ Logistic(0, 1)"
    standard_entropy = 2.0
    standard_mean = 0.0
    standard_variance = math.pi ** 2 / 3.0

    @staticmethod
    def standard_noise(shape: tuple, rng: np.random.Generator) -> np.ndarray:
        u = uniform_open(shape, rng)
        return np.log(u) - np.log1p(-u)  # logit(u): finite, since 0 < u < 1

    def standard_log_density(self, eps: Tensor) -> Tensor:
        return -eps - 2.0 * (-eps).softplus()

    def cdf(self, value) -> Tensor:
        """P(Z <= value) = sigmoid(eps), eps = (value - loc) / scale (the stable sigmoid)."""
        return ((self._value(value, "cdf") - self.loc) / self.scale).sigmoid()

    def icdf(self, value) -> Tensor:
        """loc + scale logit(p) for p in [0, 1] (-inf at 0, +inf at 1)."""
        p = self._value(value, "icdf")
        checks.probabilities(p.data, f"{type(self).__name__}.icdf: value")
        with np.errstate(divide="ignore"):  # log 0 = -inf at the ends
            return self.loc + self.scale * (p.log() - (-p).log1p())
