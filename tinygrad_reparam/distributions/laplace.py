"""Laplace(loc, scale): the double exponential, the Normal's heavy-tailed cousin (an L1 penalty).

Standard noise from one open uniform u in (0, 1) by inverting the CDF around the median:

    eps = -sign(u - 1/2) log(1 - 2 |u - 1/2|)

(u never equals 1/2, 0 or 1, so eps is always finite). Then z = mu + b eps, dz/dmu = 1, dz/db = eps.

    log f0(eps) = -|eps| - log 2,        H[f0] = 1 + log 2,
    E[eps] = 0,  Var[eps] = 2,           F(z) = 1/2 + sign(eps) (1 - e^-|eps|) / 2,
    F^-1(p) = mu - b sign(p - 1/2) log(1 - 2 |p - 1/2|).

KL between two Laplaces, with d = |mu_p - mu_q|:

    KL(p || q) = log(b_q / b_p) + d / b_q + (b_p / b_q) exp(-d / b_p) - 1.
"""
from __future__ import annotations

import math

import numpy as np

from tinygrad_reparam import checks
from tinygrad_reparam.distributions.kl import register_kl
from tinygrad_reparam.distributions.location_scale import LocationScale
from tinygrad_reparam.random import uniform_open
from tinygrad_reparam.tensor import Tensor


class Laplace(LocationScale):
    """Laplace with location (median and mean) ``loc`` and scale ``scale`` (> 0).

    Its support is the whole real line, so ``log_prob`` is finite for every finite value.
    """

    noise_label = "eps ~ Laplace(0, 1)"
    standard_entropy = 1.0 + math.log(2.0)
    standard_mean = 0.0
    standard_variance = 2.0

    @staticmethod
    def standard_noise(shape: tuple, rng: np.random.Generator) -> np.ndarray:
        centred = uniform_open(shape, rng) - 0.5          # in (-1/2, 1/2), never exactly 0
        return -np.sign(centred) * np.log(1.0 - 2.0 * np.abs(centred))

    def standard_log_density(self, eps: Tensor) -> Tensor:
        return -eps.abs() - math.log(2.0)

    def cdf(self, value) -> Tensor:
        """P(Z <= value) = 1/2 - sign(eps) (e^-|eps| - 1) / 2: the exponent is never positive, so
        nothing overflows. |eps| is written eps * sign with sign = +1 at eps = 0, so that the
        derivative at the median is the density there, 1/2 (abs'(0) = 0 would give 0)."""
        eps = (self._value(value, "cdf") - self.loc) / self.scale
        sign = np.where(eps.data >= 0, 1.0, -1.0).astype(eps.dtype)
        return 0.5 - 0.5 * sign * (-(eps * sign)).expm1()

    def icdf(self, value) -> Tensor:
        """loc - scale sign(p - 1/2) log1p(-2 |p - 1/2|), for p in [0, 1] (-inf at 0, +inf at 1);
        sign = +1 at p = 1/2, as in ``cdf``."""
        p = self._value(value, "icdf")
        checks.probabilities(p.data, f"{type(self).__name__}.icdf: value")
        centred = p - 0.5
        sign = np.where(centred.data >= 0, 1.0, -1.0).astype(centred.dtype)
        with np.errstate(divide="ignore"):  # log1p(-1) = -inf at p = 0 and p = 1: the ends
            return self.loc - self.scale * sign * (-2.0 * (centred * sign)).log1p()


@register_kl(Laplace, Laplace)
def _kl_laplace_laplace(p: Laplace, q: Laplace) -> Tensor:
    """KL = log(b_q / b_p) + |mu_p - mu_q| / b_q + (b_p / b_q) exp(-|mu_p - mu_q| / b_p) - 1."""
    distance = (p.loc - q.loc).abs()
    scale_ratio = p.scale / q.scale
    return -scale_ratio.log() + distance / q.scale + scale_ratio * (-distance / p.scale).exp() - 1.0
