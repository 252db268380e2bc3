"""Location-scale families: z = loc + scale * eps, with eps drawn from one fixed standard law.

If eps has density f0, then z = loc + scale * eps has density f0((z - loc) / scale) / scale, so

    log q(z) = log f0((z - loc) / scale) - log(scale),        H[q] = H[f0] + log(scale).

``rsample`` is literally ``self.loc + self.scale * eps``, built from the engine's ordinary ops,
with eps an input leaf that carries all the randomness. That is why gradients flow:

    dz/dloc = 1,        dz/dscale = eps = (z - loc) / scale.

Normal, Laplace, Logistic and Gumbel differ only in the noise, its log-density, its entropy and
its first two moments; everything else lives here. The noise is a static method,
``Gumbel.standard_noise(shape, rng)``, so other families can draw it too: the Concrete
relaxations take their Gumbel and logistic noise from here.

``LocAndScale`` holds the parameter code these families share with the transformed Normals
(LogNormal, TanhNormal): loc must be finite, scale positive and finite (``arg_constraints``),
and the batch shape is the broadcast of their shapes.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from tinygrad_reparam.distributions import constraints
from tinygrad_reparam.distributions.base import Distribution
from tinygrad_reparam.random import get_rng
from tinygrad_reparam.tensor import Tensor


class LocAndScale(Distribution):
    """A reparameterizable family with parameters ``loc`` (finite) and ``scale`` (> 0)."""

    has_rsample = True
    arg_constraints = {"loc": constraints.finite, "scale": constraints.positive}

    def __init__(self, loc, scale, validate_args: bool = True):
        self.loc, self.scale = self._take_parameters(validate_args, loc=loc, scale=scale)
        super().__init__(self._broadcast_parameter_shapes())


class LocationScale(LocAndScale):
    """Shared base: subclasses define the standard noise and its log-density and moments."""

    noise_label = "eps"                  # how the noise leaf is labelled in graph pictures
    standard_entropy = 0.0               # H[f0]
    standard_mean = 0.0                  # E[eps]
    standard_variance = 1.0              # Var[eps]

    # Subclasses fill these in -------------------------------------------------------------------
    @staticmethod
    def standard_noise(shape: tuple, rng: np.random.Generator) -> np.ndarray:
        """Draw eps from the standard member of the family (loc 0, scale 1), in float64."""
        raise NotImplementedError

    def standard_log_density(self, eps: Tensor) -> Tensor:
        """log f0(eps), as engine ops so that it is differentiable."""
        raise NotImplementedError

    # Shared by every location-scale family --------------------------------------------------------
    def rsample(self, sample_shape=(), rng: Optional[np.random.Generator] = None) -> Tensor:
        """z = loc + scale * eps: the reparameterization trick. eps is a plain input leaf."""
        shape = self._extended_shape(sample_shape)
        noise = self.standard_noise(shape, get_rng(rng)).astype(self._dtype(), copy=False)
        eps = Tensor(noise, name=self.noise_label)
        return self.loc + self.scale * eps

    def log_prob(self, value) -> Tensor:
        """log f0((value - loc) / scale) - log(scale)."""
        eps = (self._value(value) - self.loc) / self.scale
        return self.standard_log_density(eps) - self.scale.log()

    def entropy(self) -> Tensor:
        return self.scale.log() + np.full(self.batch_shape, self.standard_entropy, dtype=self._dtype())

    @property
    def mean(self) -> Tensor:
        return self.loc + self.scale * self.standard_mean + np.zeros(self.batch_shape, dtype=self._dtype())

    @property
    def variance(self) -> Tensor:
        return self.scale ** 2 * self.standard_variance + np.zeros(self.batch_shape, dtype=self._dtype())
