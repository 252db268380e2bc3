"""Exponential(rate): the waiting time of a Poisson process, a Gamma with concentration 1.

It has an explicit reparameterization, a scale family in 1 / rate:

    z = eps / rate,  eps ~ Exp(1),      dz/drate = -eps / rate^2 = -z / rate.

The implicit gradient of ``gamma.py`` gives the same: F(z) = 1 - e^(-rate z), so dF/drate =
z e^(-rate z), p(z) = rate e^(-rate z), and -(dF/drate) / p = -z / rate.

    log p(z) = log(rate) - rate z  (z >= 0; -inf below),     F(z) = 1 - e^(-rate z),
    F^-1(p) = -log(1 - p) / rate,     E[z] = 1 / rate,   Var[z] = 1 / rate^2,
    H = 1 - log(rate),     KL(p || q) = log(r_p / r_q) + r_q / r_p - 1.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from tinygrad_reparam import checks
from tinygrad_reparam.distributions import constraints
from tinygrad_reparam.distributions.base import Distribution
from tinygrad_reparam.distributions.kl import register_kl
from tinygrad_reparam.ops import where
from tinygrad_reparam.random import get_rng
from tinygrad_reparam.tensor import Tensor


class Exponential(Distribution):
    """Exponential with ``rate`` > 0 (mean 1 / rate), on z >= 0."""

    has_rsample = True
    arg_constraints = {"rate": constraints.positive}

    def __init__(self, rate, validate_args: bool = True):
        (self.rate,) = self._take_parameters(validate_args, rate=rate)
        super().__init__(self.rate.shape)

    def rsample(self, sample_shape=(), rng: Optional[np.random.Generator] = None) -> Tensor:
        """z = eps / rate, eps ~ Exp(1) an input leaf."""
        shape = self._extended_shape(sample_shape)
        noise = get_rng(rng).standard_exponential(shape).astype(self._dtype(), copy=False)
        return Tensor(noise, name="eps ~ Exp(1)") / self.rate

    def log_prob(self, value) -> Tensor:
        """log(rate) - rate * value for value >= 0, -inf below."""
        value = self._value(value)
        return where(value.data >= 0, self.rate.log() - self.rate * value, -np.inf)

    def cdf(self, value) -> Tensor:
        """P(Z <= value) = 1 - e^(-rate value) = -expm1(-rate value), 0 below 0."""
        value = self._value(value, "cdf")
        return where(value.data >= 0, -(-self.rate * value).expm1(), 0.0)

    def icdf(self, value) -> Tensor:
        """-log1p(-p) / rate for probabilities p in [0, 1] (+inf at 1)."""
        p = self._value(value, "icdf")
        checks.probabilities(p.data, f"{type(self).__name__}.icdf: value")
        with np.errstate(divide="ignore"):  # log1p(-1) = -inf at p = 1: the end of the support
            return -(-p).log1p() / self.rate

    def entropy(self) -> Tensor:
        return 1.0 - self.rate.log()

    @property
    def mean(self) -> Tensor:
        return 1.0 / self.rate

    @property
    def variance(self) -> Tensor:
        return 1.0 / self.rate ** 2


@register_kl(Exponential, Exponential)
def _kl_exponential_exponential(p: Exponential, q: Exponential) -> Tensor:
    """log(r_p / r_q) + r_q / r_p - 1."""
    ratio = q.rate / p.rate
    return ratio - ratio.log() - 1.0
