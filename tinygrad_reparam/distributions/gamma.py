"""Gamma(concentration, rate): implicit reparameterization, for when there is no loc + scale * eps.

The lesson. For a continuous distribution with CDF F(z; theta), a sample z drawn any way at all
has the pathwise derivative

    dz/dtheta = -(dF(z; theta)/dtheta) / p(z; theta)

(Figurnov, Mohamed & Mnih 2018, "Implicit Reparameterization Gradients"). Why: a draw is
F^-1(u; theta) for some u ~ U(0, 1), so as theta moves the sample moves with it while its quantile
F(z; theta) = u stays fixed; differentiating that equation, dF/dz dz/dtheta + dF/dtheta = 0, and
dF/dz is the density p. Nothing here needs F^-1, nor the noise u, nor the way z was drawn: only
the CDF's derivative in theta and the density, at the sample.

The Gamma's shape alpha has no loc + scale form, so the draw z_1 ~ Gamma(alpha, 1) is made by
NumPy (``Generator.standard_gamma``, a rejection sampler) and recorded as a node,
``standard_gamma``, whose VJP to alpha is that identity with F(z; alpha) = P(alpha, z), the
regularised incomplete gamma function (``special/gamma.py`` computes -(dP/dalpha)/p with the
factor z^alpha e^-z / Gamma(alpha) that both share cancelled, so it stays finite in the tails).
The rate is a scale: z = z_1 / rate is an ordinary division, dz/drate = -z / rate.

    log p(z) = alpha log(beta) + (alpha - 1) log z - beta z - lgamma(alpha)      (beta = rate),
    F(z) = P(alpha, beta z),   E[z] = alpha / beta,   Var[z] = alpha / beta^2,
    H = alpha - log(beta) + lgamma(alpha) + (1 - alpha) digamma(alpha),
    KL(p || q) = (a_p - a_q) digamma(a_p) - lgamma(a_p) + lgamma(a_q)
                 + a_q (log b_p - log b_q) + a_p (b_q - b_p) / b_p.

Moments of the gradient give a check that needs no CDF: for Gamma(alpha, 1),
E[dz/dalpha] = dE[z]/dalpha = 1 and E[2 z dz/dalpha] = dE[z^2]/dalpha = 2 alpha + 1 (tests).

As in PyTorch, samples are kept at or above the smallest normal float of their dtype: for a small
concentration a draw can underflow to 0 (alpha = 0.01 gives z < 1e-300 about once in a thousand
draws), where log z and log p(z) would be infinite. ``log_prob(0)`` is still the limit (+inf for
alpha < 1, log(rate) for alpha = 1, -inf for alpha > 1), and -inf below 0.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from tinygrad_reparam.distributions import constraints
from tinygrad_reparam.distributions.base import Distribution
from tinygrad_reparam.distributions.kl import register_kl
from tinygrad_reparam.ops import where
from tinygrad_reparam.random import get_rng
from tinygrad_reparam.special.gamma import digamma, gamma_sample_derivative_array, gammainc, lgamma
from tinygrad_reparam.tensor import Tensor, from_op


def standard_gamma(concentration: Tensor, shape: tuple, rng: np.random.Generator) -> Tensor:
    """z ~ Gamma(concentration, 1) of ``shape`` (which the concentration broadcasts to), drawn by
    NumPy and recorded as a node whose VJP is the implicit gradient."""
    alpha = np.broadcast_to(concentration.data, shape).astype(np.float64)
    z = np.asarray(rng.standard_gamma(alpha), dtype=np.float64)
    return from_op("standard_gamma", z.astype(concentration.dtype, copy=False), (concentration,), (
        # dz/dalpha = -(dP/dalpha)(z; alpha) / p(z; alpha): P(alpha, z) held fixed
        lambda g: g * gamma_sample_derivative_array(alpha, z).astype(concentration.dtype, copy=False),
    ))


class Gamma(Distribution):
    """Gamma with shape ``concentration`` (alpha > 0) and inverse scale ``rate`` (beta > 0):
    density beta^alpha z^(alpha-1) e^(-beta z) / Gamma(alpha) on z >= 0, mean alpha / beta.

    ``rsample`` is differentiable in both parameters: implicitly in the concentration (see the
    module docstring), explicitly in the rate. ``cdf`` is P(alpha, rate z), a Tensor that is
    differentiable in the parameters and in the value.
    """

    has_rsample = True
    arg_constraints = {"concentration": constraints.positive, "rate": constraints.positive}

    def __init__(self, concentration, rate, validate_args: bool = True):
        self.concentration, self.rate = self._take_parameters(validate_args, concentration=concentration,
                                                              rate=rate)
        super().__init__(self._broadcast_parameter_shapes())

    def rsample(self, sample_shape=(), rng: Optional[np.random.Generator] = None) -> Tensor:
        """z = z_1 / rate, z_1 ~ Gamma(concentration, 1) a ``standard_gamma`` node."""
        shape = self._extended_shape(sample_shape)
        z = standard_gamma(self.concentration, shape, get_rng(rng)) / self.rate
        # A draw that underflowed below the smallest normal float moves up to it, by adding a
        # constant: the value changes (by less than 2.3e-308 in float64), the gradients do not.
        smallest = np.finfo(z.dtype).tiny
        below = z.data < smallest
        if below.any():
            z = z + np.where(below, smallest - z.data, 0.0).astype(z.dtype)
        return z

    def log_prob(self, value) -> Tensor:
        """alpha log(rate) + (alpha - 1) log(value) - rate value - lgamma(alpha) for value > 0; the
        limit at 0 (+inf, log(rate) or -inf for alpha <, = or > 1); -inf below 0."""
        value = self._value(value)
        positive = value.data > 0
        safe_value = where(positive, value, 1.0)  # log is only taken of positive numbers
        alpha, rate = self.concentration, self.rate
        inside = alpha * rate.log() + (alpha - 1.0) * safe_value.log() - rate * safe_value - lgamma(alpha)
        alpha_is_one = np.broadcast_to(alpha.data == 1, self.batch_shape)
        infinite = np.where(alpha.data < 1, np.inf, -np.inf).astype(self._dtype())  # (float32 stays)
        at_zero = where(alpha_is_one, rate.log(), infinite)
        return where(positive, inside, where(value.data == 0, at_zero, -np.inf))

    def cdf(self, value) -> Tensor:
        """P(Z <= value) = P(alpha, rate * value), the regularised incomplete gamma function
        (0 at and below 0)."""
        value = self._value(value, "cdf")
        positive = value.data > 0
        scaled = where(positive, self.rate * value, 1.0)  # (P is only taken of positive numbers)
        return where(positive, gammainc(self.concentration, scaled), 0.0)

    def icdf(self, value) -> Tensor:
        """Not provided, as in PyTorch: the Gamma quantile has no closed form."""
        raise NotImplementedError(
            f"{type(self).__name__}.icdf: the Gamma quantile has no closed form, so there is no icdf "
            f"(as in PyTorch). rsample() does not need one (its gradient comes from cdf and the density, "
            f"the implicit reparameterization); for quantiles, invert cdf(value) numerically, e.g. by "
            f"bisection on value.")

    def entropy(self) -> Tensor:
        alpha = self.concentration
        return alpha - self.rate.log() + lgamma(alpha) + (1.0 - alpha) * digamma(alpha)

    @property
    def mean(self) -> Tensor:
        return self.concentration / self.rate + np.zeros(self.batch_shape, dtype=self._dtype())

    @property
    def variance(self) -> Tensor:
        return self.concentration / self.rate ** 2 + np.zeros(self.batch_shape, dtype=self._dtype())


@register_kl(Gamma, Gamma)
def _kl_gamma_gamma(p: Gamma, q: Gamma) -> Tensor:
    """(a_p - a_q) digamma(a_p) - lgamma(a_p) + lgamma(a_q) + a_q (log b_p - log b_q)
    + a_p (b_q - b_p) / b_p."""
    a_p, b_p, a_q, b_q = p.concentration, p.rate, q.concentration, q.rate
    return ((a_p - a_q) * digamma(a_p) - lgamma(a_p) + lgamma(a_q)
            + a_q * (b_p.log() - b_q.log()) + a_p * ((b_q - b_p) / b_p))
