"""Normal(loc, scale): the Gaussian N(mu, sigma^2), the family of the VAE's q_phi(z | x).

z = mu + sigma * eps with eps ~ N(0, 1), so dz/dmu = 1 and dz/dsigma = eps.
log q(z) = -((z - mu) / sigma)^2 / 2 - log(sigma) - log(2 pi) / 2.
"""
from __future__ import annotations

import math

import numpy as np

from tinygrad_reparam.distributions.kl import register_kl
from tinygrad_reparam.distributions.location_scale import LocationScale
from tinygrad_reparam.tensor import Tensor


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

    def cdf(self, value) -> np.ndarray:
        """P(Z <= value) as a plain array (for tests and plots; no gradient)."""
        z = (np.asarray(value, dtype=float) - self.loc.data) / self.scale.data
        return 0.5 * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))


@register_kl(Normal, Normal)
def _kl_normal_normal(p: Normal, q: Normal) -> Tensor:
    """KL = log(s_q / s_p) + (s_p^2 + (m_p - m_q)^2) / (2 s_q^2) - 1/2."""
    variance_ratio = (p.scale / q.scale) ** 2
    mean_term = ((p.loc - q.loc) / q.scale) ** 2
    return 0.5 * (variance_ratio + mean_term - 1.0 - variance_ratio.log())
