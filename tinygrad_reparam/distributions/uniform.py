"""Uniform(low, high): the flat law on [low, high), the raw material of every other sampler.

The reparameterization is an affine map of u ~ U(0, 1):

    z = low + (high - low) u,      dz/dlow = 1 - u,   dz/dhigh = u.

    log q(z) = -log(high - low)  for low <= z < high,   -inf outside,
    H[q] = log(high - low),   E[z] = (low + high) / 2,   Var[z] = (high - low)^2 / 12,
    F(z) = clip((z - low) / (high - low), 0, 1),      F^-1(p) = low + (high - low) p.

KL(p || q) = log((h_q - l_q) / (h_p - l_p)) when [l_p, h_p] lies inside [l_q, h_q], and +inf
otherwise (p puts mass where q has none).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from tinygrad_reparam import checks
from tinygrad_reparam.distributions import constraints
from tinygrad_reparam.distributions.base import Distribution
from tinygrad_reparam.distributions.kl import register_kl
from tinygrad_reparam.ops import where
from tinygrad_reparam.random import get_rng, uniform_open
from tinygrad_reparam.tensor import Tensor


class Uniform(Distribution):
    """Uniform on [low, high) with finite ``low`` < ``high`` (elementwise, after broadcasting).

    ``log_prob(value)`` is -inf (no warning) outside [low, high). Inside it is -log(high - low),
    which depends on low and high (gradients flow to them) but not on the value.
    """

    has_rsample = True
    arg_constraints = {"low": constraints.finite, "high": constraints.finite}

    def __init__(self, low, high, validate_args: bool = True):
        self.low, self.high = self._take_parameters(validate_args, low=low, high=high)
        super().__init__(self._broadcast_parameter_shapes())
        if validate_args:  # low < high ties two parameters together: an explicit check
            low, high = np.broadcast_arrays(self.low.data, self.high.data)
            ordered = low < high
            if not ordered.all():
                matching_highs = np.array2string(high[~ordered][:5], precision=6, separator=", ")
                self._check_values("low", low, ordered, f"less than high (low < high; the matching "
                                                        f"high values are {matching_highs})")

    def rsample(self, sample_shape=(), rng: Optional[np.random.Generator] = None) -> Tensor:
        """z = low + (high - low) * u, with u an input leaf drawn strictly inside (0, 1)."""
        shape = self._extended_shape(sample_shape)
        u = Tensor(uniform_open(shape, get_rng(rng)), name="u ~ U(0, 1)")
        z = self.low + (self.high - self.low) * u
        # On an interval a few ulps wide, rounding can carry z up to high itself, outside the
        # support [low, high). Move such values to the largest float below high by adding a
        # constant: the value changes by an ulp, the gradients (1 - u, u) do not.
        high = np.broadcast_to(self.high.data, z.shape).astype(z.dtype)
        over = z.data >= high
        if over.any():
            z = z + np.where(over, np.nextafter(high, -np.inf) - z.data, 0).astype(z.dtype)
        return z

    def log_prob(self, value) -> Tensor:
        """-log(high - low) for low <= value < high, -inf outside."""
        value = self._value(value).data
        inside = (value >= self.low.data) & (value < self.high.data)
        return where(inside, -(self.high - self.low).log(), -np.inf)

    def entropy(self) -> Tensor:
        return (self.high - self.low).log()

    @property
    def mean(self) -> Tensor:
        return 0.5 * (self.low + self.high)

    @property
    def variance(self) -> Tensor:
        return (self.high - self.low) ** 2 / 12.0

    def cdf(self, value) -> Tensor:
        """P(Z <= value) = clip((value - low) / (high - low), 0, 1): flat (gradient 0) outside."""
        return ((self._value(value, "cdf") - self.low) / (self.high - self.low)).clip(0.0, 1.0)

    def icdf(self, value) -> Tensor:
        """low + (high - low) p for p in [0, 1]."""
        p = self._value(value, "icdf")
        checks.probabilities(p.data, f"{type(self).__name__}.icdf: value")
        return self.low + (self.high - self.low) * p


@register_kl(Uniform, Uniform)
def _kl_uniform_uniform(p: Uniform, q: Uniform) -> Tensor:
    """log((h_q - l_q) / (h_p - l_p)) if l_q <= l_p and h_p <= h_q, else +inf."""
    nested = (q.low.data <= p.low.data) & (p.high.data <= q.high.data)
    return where(nested, ((q.high - q.low) / (p.high - p.low)).log(), np.inf)
