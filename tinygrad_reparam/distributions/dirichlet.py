"""Dirichlet(concentration): a probability vector, reparameterized through Gammas.

If g_1, ..., g_k are independent with g_i ~ Gamma(alpha_i, 1), then x = g / (g_1 + ... + g_k)
is Dirichlet(alpha). ``rsample`` builds exactly that: each g_i is a ``standard_gamma`` node of
``gamma.py`` (drawn by NumPy, with the implicit gradient dg_i/dalpha_i = -(dP/dalpha_i)/p at the
sample), and the normalization is ordinary ops, so the pathwise gradient is the chain rule through
both:

    dx_i/dalpha_j = ([i = j] - x_i) (dg_j/dalpha_j) / (g_1 + ... + g_k).

It is an unbiased pathwise gradient, E[d f(x)/dalpha] = d E[f(x)]/dalpha for smooth f: each g_i is
a valid reparameterization of its Gamma, and x a fixed smooth function of them. The implicit
identity dz/dtheta = -(dF/dtheta)/p of the univariate families does not apply to the vector itself:
a vector has no single CDF whose value a draw could keep, and many transport maps move the draws
correctly. This one keeps the quantiles of the Gammas fixed; the marginal x_i ~ Beta(alpha_i,
alpha_0 - alpha_i), alpha_0 = sum_j alpha_j, would give another (tests check the law of the
draws, the gradient of E[x_i] = alpha_i / alpha_0 and that marginal).

    log p(x) = sum_i (alpha_i - 1) log x_i + lgamma(alpha_0) - sum_i lgamma(alpha_i)   (on the simplex),
    E[x_i] = alpha_i / alpha_0,      Var[x_i] = alpha_i (alpha_0 - alpha_i) / (alpha_0^2 (alpha_0 + 1)),
    H = sum_i lgamma(alpha_i) - lgamma(alpha_0) + (alpha_0 - k) digamma(alpha_0)
        - sum_i (alpha_i - 1) digamma(alpha_i),
    KL(p || q) = lgamma(a_0) - sum_i lgamma(a_i) - lgamma(b_0) + sum_i lgamma(b_i)
                 + sum_i (a_i - b_i) (digamma(a_i) - digamma(a_0))       (p = Dir(a), q = Dir(b)).

Shapes follow PyTorch: ``concentration`` has shape ``batch_shape + (k,)``, and a draw is a vector,
``event_shape = (k,)``. As for the Gamma, draws are kept at or above the smallest normal float:
with concentrations of 0.01 all k Gammas can underflow to 0, where 0 / 0 would be NaN.
``log_prob`` needs values on the simplex (entries summing to 1 within 1e-6, else a ValueError);
an entry of 0 gives the limit (+inf, finite or -inf as its alpha_i is below, at or above 1), a
negative entry -inf.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from tinygrad_reparam import checks
from tinygrad_reparam.distributions import constraints
from tinygrad_reparam.distributions.base import Distribution
from tinygrad_reparam.distributions.gamma import standard_gamma
from tinygrad_reparam.distributions.kl import register_kl
from tinygrad_reparam.distributions.probs_logits import SUM_TOLERANCE
from tinygrad_reparam.ops import where
from tinygrad_reparam.random import get_rng
from tinygrad_reparam.special.gamma import digamma, lgamma
from tinygrad_reparam.tensor import Tensor


def at_least_smallest_normal(x: Tensor) -> Tensor:
    """x with entries below the smallest normal float moved up to it, by adding a constant: the
    values change (by less than 2.3e-308 in float64), the gradients do not."""
    smallest = np.finfo(x.dtype).tiny
    below = x.data < smallest
    if not below.any():
        return x
    return x + np.where(below, smallest - x.data, 0.0).astype(x.dtype)


class Dirichlet(Distribution):
    """Dirichlet over probability vectors of length k, with ``concentration`` alpha > 0 of shape
    ``batch_shape + (k,)``: density prod_i x_i^(alpha_i - 1) / B(alpha) on the simplex, mean
    alpha / sum(alpha). ``rsample`` normalizes implicitly reparameterized Gammas (module docstring).
    """

    has_rsample = True
    arg_constraints = {"concentration": constraints.positive}

    def __init__(self, concentration, validate_args: bool = True):
        (self.concentration,) = self._take_parameters(validate_args, concentration=concentration)
        shape = self.concentration.shape
        if len(shape) == 0 or shape[-1] == 0:
            raise ValueError(f"Dirichlet: concentration must have a last axis holding at least one "
                             f"category, shape batch_shape + (k,), got shape {shape}; for one "
                             f"probability use Beta(concentration1, concentration0)")
        super().__init__(shape[:-1], shape[-1:])

    def rsample(self, sample_shape=(), rng: Optional[np.random.Generator] = None) -> Tensor:
        """x = g / sum(g), g_i ~ Gamma(alpha_i, 1) ``standard_gamma`` nodes (implicit gradients)."""
        shape = self._extended_shape(sample_shape)
        gammas = at_least_smallest_normal(standard_gamma(self.concentration, shape, get_rng(rng)))
        return at_least_smallest_normal(gammas / gammas.sum(axis=-1, keepdims=True))

    def log_prob(self, value) -> Tensor:
        """sum_i (alpha_i - 1) log x_i + lgamma(alpha_0) - sum_i lgamma(alpha_i) on the simplex."""
        value = self._value(value)
        sums = value.data.sum(axis=-1)
        checks.every_value("Dirichlet.log_prob: value", sums, np.abs(sums - 1) <= SUM_TOLERANCE,
                           f"on the probability simplex, its entries summing to 1 along the last axis "
                           f"within {SUM_TOLERANCE:g} (the values shown are the sums)")
        alpha = self.concentration
        positive = value.data > 0
        safe_value = where(positive, value, 1.0)  # log is only taken of positive entries
        at_zero = np.where(alpha.data == 1, 0.0, np.where(alpha.data < 1, np.inf, -np.inf))
        terms = where(positive, (alpha - 1.0) * safe_value.log(), where(value.data == 0, at_zero, -np.inf))
        log_density = terms.sum(axis=-1) + lgamma(alpha.sum(axis=-1)) - lgamma(alpha).sum(axis=-1)
        off_support = (value.data < 0).any(axis=-1)  # (-inf, even where another entry gives +inf)
        return where(off_support, -np.inf, log_density) if off_support.any() else log_density

    def entropy(self) -> Tensor:
        alpha = self.concentration
        total = alpha.sum(axis=-1)
        k = alpha.shape[-1]
        return (lgamma(alpha).sum(axis=-1) - lgamma(total) + (total - k) * digamma(total)
                - ((alpha - 1.0) * digamma(alpha)).sum(axis=-1))

    @property
    def mean(self) -> Tensor:
        return self.concentration / self.concentration.sum(axis=-1, keepdims=True)

    @property
    def variance(self) -> Tensor:
        alpha = self.concentration
        total = alpha.sum(axis=-1, keepdims=True)
        return alpha * (total - alpha) / (total * total * (total + 1.0))


@register_kl(Dirichlet, Dirichlet)
def _kl_dirichlet_dirichlet(p: Dirichlet, q: Dirichlet) -> Tensor:
    """lgamma(a_0) - sum lgamma(a_i) - lgamma(b_0) + sum lgamma(b_i) + sum (a_i - b_i)(digamma(a_i)
    - digamma(a_0))."""
    if p.event_shape != q.event_shape:
        raise ValueError(f"kl_divergence(Dirichlet, Dirichlet): the numbers of categories differ "
                         f"({p.event_shape[0]} and {q.event_shape[0]})")
    a, b = p.concentration, q.concentration
    a_total, b_total = a.sum(axis=-1), b.sum(axis=-1)
    return (lgamma(a_total) - lgamma(a).sum(axis=-1) - lgamma(b_total) + lgamma(b).sum(axis=-1)
            + ((a - b) * (digamma(a) - digamma(a_total.reshape(a_total.shape + (1,))))).sum(axis=-1))
