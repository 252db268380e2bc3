"""Beta(concentration1, concentration0): a probability, reparameterized implicitly.

A Beta(a, b) sample has no loc + scale form in either parameter, so, as for the Gamma's shape,
the draw is made any way at all (NumPy's ``Generator.beta``) and recorded as a node whose VJPs are
the implicit reparameterization gradients (Figurnov, Mohamed & Mnih 2018):

    dx/da = -(dI_x(a, b)/da) / p(x),        dx/db = -(dI_x(a, b)/db) / p(x),

with I_x(a, b), the regularised incomplete beta function, the CDF: as a and b move, the sample
moves so that its quantile I_x(a, b) stays where it was. ``special/beta.py`` differentiates I's
continued fraction in a and b in forward mode and cancels the factor x^a (1-x)^b / B(a, b) that
the derivatives share with p(x), so these are exact (to about 1e-13), not the finite differences
or the approximations a library may settle for, and finite in both tails. The pathwise gradient is
therefore the implicit one, sample by sample, which ``testing.check_pathwise_gradient`` checks.

(Drawing x = g_a / (g_a + g_b) from two implicitly reparameterized Gammas, as ``Dirichlet`` does,
gives another valid pathwise gradient: unbiased, with the same expectation, but a different one
sample by sample. Only the one above holds the quantile fixed.)

    log p(x) = (a - 1) log x + (b - 1) log(1 - x) - log B(a, b),    F(x) = I_x(a, b),
    E[x] = a / (a + b),    Var[x] = a b / ((a + b)^2 (a + b + 1)),
    H = log B(a, b) - (a - 1) digamma(a) - (b - 1) digamma(b) + (a + b - 2) digamma(a + b),
    KL(p || q) = log B(a_q, b_q) - log B(a_p, b_p) + (a_p - a_q) digamma(a_p)
                 + (b_p - b_q) digamma(b_p) + (a_q - a_p + b_q - b_p) digamma(a_p + b_p).

The names follow PyTorch: ``concentration1`` is a (the exponent of x), ``concentration0`` is b
(the exponent of 1 - x). Samples are kept inside the open interval, between the smallest normal
float and the largest float below 1 of their dtype, where log x and log(1 - x) are finite: with
concentration0 = 0.01 a third of the draws lie within 1.1e-16 of 1, where float64 has no number
but 1 itself. ``log_prob`` at 0 and 1 is still the limit (+inf, finite or -inf as the
concentration there is below, at or above 1), and -inf outside [0, 1].
"""
from __future__ import annotations

import functools
from typing import Optional

import numpy as np

from tinygrad_reparam.distributions import constraints
from tinygrad_reparam.distributions.base import Distribution
from tinygrad_reparam.distributions.kl import register_kl
from tinygrad_reparam.ops import where
from tinygrad_reparam.random import get_rng
from tinygrad_reparam.special.beta import beta_sample_derivatives_array, betainc, lbeta
from tinygrad_reparam.special.gamma import digamma
from tinygrad_reparam.tensor import Tensor, from_op


def beta_sample(concentration1: Tensor, concentration0: Tensor, shape: tuple,
                rng: np.random.Generator) -> Tensor:
    """x ~ Beta(concentration1, concentration0) of ``shape`` (which both broadcast to), drawn by
    NumPy and recorded as a node whose VJPs are the implicit gradients."""
    dtype = np.result_type(concentration1.dtype, concentration0.dtype)
    a = np.broadcast_to(concentration1.data, shape).astype(np.float64)
    b = np.broadcast_to(concentration0.data, shape).astype(np.float64)
    finfo = np.finfo(dtype)
    x = np.clip(np.asarray(rng.beta(a, b), dtype=dtype), finfo.tiny, 1 - finfo.epsneg)  # (docstring)

    @functools.cache
    def implicit() -> tuple:  # dx/da and dx/db from one run of the continued fraction, when asked
        da, db = beta_sample_derivatives_array(a, b, x.astype(np.float64))
        return da.astype(dtype, copy=False), db.astype(dtype, copy=False)

    return from_op("beta_sample", x, (concentration1, concentration0), (
        lambda g: g * implicit()[0],  # dx/da = -(dI_x/da) / p(x): I_x(a, b) held fixed
        lambda g: g * implicit()[1],  # dx/db = -(dI_x/db) / p(x)
    ))


class Beta(Distribution):
    """Beta with ``concentration1`` = a > 0 and ``concentration0`` = b > 0: density
    x^(a-1) (1-x)^(b-1) / B(a, b) on [0, 1], mean a / (a + b).

    ``rsample`` is differentiable in both concentrations, implicitly (see the module docstring).
    ``cdf`` is I_x(a, b), a Tensor differentiable in the parameters and in the value.
    """

    has_rsample = True
    arg_constraints = {"concentration1": constraints.positive, "concentration0": constraints.positive}

    def __init__(self, concentration1, concentration0, validate_args: bool = True):
        self.concentration1, self.concentration0 = self._take_parameters(
            validate_args, concentration1=concentration1, concentration0=concentration0)
        super().__init__(self._broadcast_parameter_shapes())

    def rsample(self, sample_shape=(), rng: Optional[np.random.Generator] = None) -> Tensor:
        """x ~ Beta(a, b) as a ``beta_sample`` node: its gradients are the implicit ones."""
        shape = self._extended_shape(sample_shape)
        return beta_sample(self.concentration1, self.concentration0, shape, get_rng(rng))

    def log_prob(self, value) -> Tensor:
        """(a - 1) log x + (b - 1) log(1 - x) - log B(a, b) for 0 < x < 1; the limits at 0 and 1;
        -inf outside [0, 1]."""
        value = self._value(value)
        inside = (value.data > 0) & (value.data < 1)
        safe_value = where(inside, value, 0.5)  # logs are only taken inside
        a, b = self.concentration1, self.concentration0
        log_norm = lbeta(a, b)
        density = (a - 1.0) * safe_value.log() + (b - 1.0) * (-safe_value).log1p() - log_norm
        at_zero = self._log_density_at_end(a, -log_norm)  # the limit x -> 0: (a - 1) log x
        at_one = self._log_density_at_end(b, -log_norm)   # the limit x -> 1: (b - 1) log(1 - x)
        return where(inside, density, where(value.data == 0, at_zero,
                                            where(value.data == 1, at_one, -np.inf)))

    def _log_density_at_end(self, exponent: Tensor, finite_limit: Tensor) -> Tensor:
        """The limit of log p at an end where the density behaves as t^(exponent - 1): +inf for an
        exponent below 1, -inf above, and ``finite_limit`` (-log B(a, b)) at exactly 1."""
        is_one = np.broadcast_to(exponent.data == 1, self.batch_shape)
        return where(is_one, finite_limit, np.where(exponent.data < 1, np.inf, -np.inf))

    def cdf(self, value) -> Tensor:
        """P(X <= value) = I_value(a, b), 0 below 0 and 1 above 1."""
        value = self._value(value, "cdf")
        inside = (value.data > 0) & (value.data < 1)
        safe_value = where(inside, value, 0.5)  # (I is only evaluated inside)
        outside = np.where(value.data >= 1, 1.0, 0.0)
        return where(inside, betainc(self.concentration1, self.concentration0, safe_value), outside)

    def entropy(self) -> Tensor:
        a, b = self.concentration1, self.concentration0
        return (lbeta(a, b) - (a - 1.0) * digamma(a) - (b - 1.0) * digamma(b)
                + (a + b - 2.0) * digamma(a + b))

    @property
    def mean(self) -> Tensor:
        a, b = self.concentration1, self.concentration0
        return a / (a + b)

    @property
    def variance(self) -> Tensor:
        a, b = self.concentration1, self.concentration0
        total = a + b
        return a * b / (total * total * (total + 1.0))


@register_kl(Beta, Beta)
def _kl_beta_beta(p: Beta, q: Beta) -> Tensor:
    """log B(a_q, b_q) - log B(a_p, b_p) + (a_p - a_q) digamma(a_p) + (b_p - b_q) digamma(b_p)
    + (a_q - a_p + b_q - b_p) digamma(a_p + b_p)."""
    a_p, b_p, a_q, b_q = p.concentration1, p.concentration0, q.concentration1, q.concentration0
    return (lbeta(a_q, b_q) - lbeta(a_p, b_p) + (a_p - a_q) * digamma(a_p) + (b_p - b_q) * digamma(b_p)
            + (a_q - a_p + b_q - b_p) * digamma(a_p + b_p))
