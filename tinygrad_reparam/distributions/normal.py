"""Normal(loc, scale): the Gaussian N(mu, sigma^2), the family of the VAE's q_phi(z | x).

z = mu + sigma * eps with eps ~ N(0, 1), so dz/dmu = 1 and dz/dsigma = eps.
log q(z) = -((z - mu) / sigma)^2 / 2 - log(sigma) - log(2 pi) / 2.

F(z) = Phi(eps) = erfc(-eps / sqrt 2) / 2 and F^-1(p) = mu + sigma Phi^-1(p), through the error
function and the Normal quantile of ``tinygrad_reparam.special.erf`` (engine primitives, so both
are differentiable). erfc rather than 1 + erf keeps the lower tail's relative precision:
Phi(-30) = 4.9e-198, where 1 + erf(-30 / sqrt 2) rounds to 0.
"""
from __future__ import annotations

import math

import numpy as np

from tinygrad_reparam import checks
from tinygrad_reparam.distributions.kl import register_kl
from tinygrad_reparam.distributions.location_scale import LocationScale
from tinygrad_reparam.special.erf import erfc, ndtri
from tinygrad_reparam.tensor import Tensor

SQRT_2 = math.sqrt(2.0)


class Normal(LocationScale):
    """Gaussian with mean ``loc`` and standard deviation ``scale`` (> 0)."""

    noise_label = "eps ~ N(0, 1)"
    standard_entropy = 0.5 + 0.5 * math.log(2 * math.pi)
    standard_mean = 0.0
    standard_variance = 1.0

    @staticmethod
    def standard_noise(shape: tuple, rng: np.random.Generator) -> np.ndarray:
        return rng.standard_normal(shape)

    def standard_log_density(self, eps: Tensor) -> Tensor:
        return -0.5 * eps * eps - 0.5 * math.log(2 * math.pi)

    def cdf(self, value) -> Tensor:
        """P(Z <= value) = erfc(-eps / sqrt 2) / 2, eps = (value - loc) / scale."""
        eps = (self._value(value, "cdf") - self.loc) / self.scale
        return 0.5 * erfc(-eps / SQRT_2)

    def icdf(self, value) -> Tensor:
        """loc + scale Phi^-1(p) for probabilities p in [0, 1] (-inf at 0, +inf at 1)."""
        p = self._value(value, "icdf")
        checks.probabilities(p.data, f"{type(self).__name__}.icdf: value")
        return self.loc + self.scale * ndtri(p)


@register_kl(Normal, Normal)
def _kl_normal_normal(p: Normal, q: Normal) -> Tensor:
    """KL = log(s_q / s_p) + (s_p^2 + (m_p - m_q)^2) / (2 s_q^2) - 1/2."""
    variance_ratio = (p.scale / q.scale) ** 2
    mean_term = ((p.loc - q.loc) / q.scale) ** 2
    return 0.5 * (variance_ratio + mean_term - 1.0 - variance_ratio.log())
