"""Gumbel(loc, scale): the law of a maximum, the noise behind the Gumbel-max trick.

Standard noise by inverting the CDF exp(-exp(-eps)) at an open uniform u in (0, 1):

    eps = -log(-log u),        z = mu + beta eps,   dz/dmu = 1,  dz/dbeta = eps.

    log f0(eps) = -(eps + e^-eps),      F(z) = exp(-e^-eps),     F^-1(p) = mu - beta log(-log p),
    E[eps] = gamma (Euler's constant, 0.5772...),  Var[eps] = pi^2 / 6,  H[f0] = gamma + 1.

So the mean is mu + beta gamma (not mu: the law is skewed to the right), and argmax_k(log p_k +
eps_k) with independent standard Gumbel eps_k is a draw from Categorical(p) (the Gumbel-max trick).
RelaxedOneHotCategorical (Gumbel-Softmax) replaces that argmax by a softmax, on noise drawn by
``Gumbel.standard_noise``.
"""
from __future__ import annotations

import math

import numpy as np

from tinygrad_reparam import checks
from tinygrad_reparam.distributions.location_scale import LocationScale
from tinygrad_reparam.random import uniform_open
from tinygrad_reparam.tensor import Tensor

EULER_GAMMA = 0.5772156649015329


class Gumbel(LocationScale):
    """Gumbel (type I extreme value) with location (mode) ``loc`` and scale ``scale`` (> 0).

    Its support is the whole real line. Far below the mode the log-density -(eps + e^-eps)
    falls so fast that it is -inf in float64 (for eps below about -709); no warning is raised.
    """

    noise_label = "eps ~ Gumbel(0, 1)"
    standard_entropy = EULER_GAMMA + 1.0
    standard_mean = EULER_GAMMA
    standard_variance = math.pi ** 2 / 6.0

    @staticmethod
    def standard_noise(shape: tuple, rng: np.random.Generator) -> np.ndarray:
        return -np.log(-np.log(uniform_open(shape, rng)))  # finite, since 0 < u < 1

    def standard_log_density(self, eps: Tensor) -> Tensor:
        with np.errstate(over="ignore"):  # e^-eps = inf far in the left tail: log-density -inf
            return -(eps + (-eps).exp())

    def cdf(self, value) -> Tensor:
        """P(Z <= value) = exp(-exp(-eps)). Below eps = -7 it is below e^-1096, 0 in float64, so
        eps is clipped at -20: the value is the same, and e^-eps never overflows, not even in
        float32 (an infinite e^-eps would send 0 * inf = NaN back through the gradient)."""
        eps = (self._value(value, "cdf") - self.loc) / self.scale
        e_minus_eps = (-eps.clip(lo=-20.0)).exp()
        return (-e_minus_eps).exp()

    def icdf(self, value) -> Tensor:
        """loc - scale log(-log p) for p in [0, 1] (-inf at 0, +inf at 1)."""
        p = self._value(value, "icdf")
        checks.probabilities(p.data, f"{type(self).__name__}.icdf: value")
        with np.errstate(divide="ignore"):  # log 0 = -inf at the ends
            return self.loc - self.scale * (-p.log()).log()
