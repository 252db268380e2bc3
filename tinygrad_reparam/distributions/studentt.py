"""StudentT(df, loc, scale): z = loc + scale * t, with t's dependence on df implicit.

In loc and scale the Student t is an ordinary location-scale family, dz/dloc = 1 and
dz/dscale = t. Its degrees of freedom df have no such form, so t ~ StudentT(df) is drawn by NumPy
(``Generator.standard_t``) and recorded as a node whose VJP to df is the implicit
reparameterization gradient (Figurnov, Mohamed & Mnih 2018)

    dt/d(df) = -(dF(t; df)/d(df)) / p(t; df),

with F the CDF, written through the incomplete beta function: x = df / (df + t^2) is a
Beta(df/2, 1/2) variable, F(t) = I_x(df/2, 1/2) / 2 for t <= 0 and 1 - I_x(df/2, 1/2) / 2 above,
and t = sign(t) sqrt(df (1 - x) / x). So t's implicit gradient is the Beta's, carried through that
map by the chain rule (``special/beta.py``, ``student_t_sample_derivative_array``): exact to 2e-13
for df up to 100, finite at t = 0 (where it is 0: the median does not move) and in both tails. ``cdf`` is the
primitive ``student_t_cdf``, differentiable in df, loc and scale, so
``testing.check_pathwise_gradient`` can compare the pathwise gradient with the identity for all
three parameters.

    log p(z) = lgamma((df+1)/2) - lgamma(df/2) - log(df pi)/2 - log(scale)
               - ((df+1)/2) log(1 + y^2/df),       y = (z - loc) / scale,
    E[z] = loc (df > 1),    Var[z] = scale^2 df / (df - 2) (df > 2),
    H = log(scale) + ((df+1)/2) (digamma((df+1)/2) - digamma(df/2)) + log(df)/2 + log B(df/2, 1/2).

As in PyTorch, ``mean`` is NaN where df <= 1 (the mean does not exist) and ``variance`` is +inf
where 1 < df <= 2 and NaN where df <= 1. There is no closed-form KL divergence.
Heavy tails meet the float range only for tiny df: t's tails fall off like |t|^-(1 + df), and at
df = 0.02 NumPy's sampler returns +-inf for 0.06% of the draws (2.4% at df = 0.01), where the
gradient is not finite either; the CDF rounds to 0 or 1 beyond |t| = 1e150 sqrt(df), where
x = df / (df + t^2) underflows (draws that far out occur only for df of 0.02 and below).
"""
from __future__ import annotations

import functools
import math
from typing import Optional

import numpy as np

from tinygrad_reparam.distributions import constraints
from tinygrad_reparam.distributions.base import Distribution
from tinygrad_reparam.ops import where
from tinygrad_reparam.random import get_rng
from tinygrad_reparam.special.beta import lbeta, student_t_cdf, student_t_sample_derivative_array
from tinygrad_reparam.special.gamma import digamma, lgamma
from tinygrad_reparam.tensor import Tensor, from_op


def student_t_sample(df: Tensor, shape: tuple, rng: np.random.Generator) -> Tensor:
    """t ~ StudentT(df) of ``shape`` (which df broadcasts to), drawn by NumPy and recorded as a
    node whose VJP is the implicit gradient."""
    nu = np.broadcast_to(df.data, shape).astype(np.float64)
    t = np.asarray(rng.standard_t(nu), dtype=df.dtype)

    @functools.cache
    def implicit() -> np.ndarray:  # computed once, when backward() first asks for it
        return student_t_sample_derivative_array(nu, t.astype(np.float64)).astype(df.dtype, copy=False)

    return from_op("student_t_sample", t, (df,), (
        lambda g: g * implicit(),  # dt/d(df) = -(dF/d(df)) / p(t): F(t; df) held fixed
    ))


class StudentT(Distribution):
    """Student's t with ``df`` > 0 degrees of freedom, location ``loc`` and scale ``scale`` > 0:
    z = loc + scale * t, t ~ StudentT(df). ``rsample`` is differentiable in all three (df
    implicitly, see the module docstring); ``cdf`` too, in the parameters and in the value."""

    has_rsample = True
    arg_constraints = {"df": constraints.positive, "loc": constraints.finite, "scale": constraints.positive}

    def __init__(self, df, loc=0.0, scale=1.0, validate_args: bool = True):
        self.df, self.loc, self.scale = self._take_parameters(validate_args, df=df, loc=loc, scale=scale)
        super().__init__(self._broadcast_parameter_shapes())

    def rsample(self, sample_shape=(), rng: Optional[np.random.Generator] = None) -> Tensor:
        """z = loc + scale * t, t a ``student_t_sample`` node (implicit in df)."""
        shape = self._extended_shape(sample_shape)
        return self.loc + self.scale * student_t_sample(self.df, shape, get_rng(rng))

    def log_prob(self, value) -> Tensor:
        y = (self._value(value) - self.loc) / self.scale
        df = self.df
        return (lgamma(0.5 * (df + 1.0)) - lgamma(0.5 * df) - 0.5 * (df * math.pi).log()
                - self.scale.log() - 0.5 * (df + 1.0) * (y * y / df).log1p())

    def cdf(self, value) -> Tensor:
        """P(Z <= value) = F((value - loc) / scale; df), through the incomplete beta function."""
        return student_t_cdf(self.df, (self._value(value, "cdf") - self.loc) / self.scale)

    def entropy(self) -> Tensor:
        half_df = 0.5 * self.df
        return (self.scale.log() + (half_df + 0.5) * (digamma(half_df + 0.5) - digamma(half_df))
                + 0.5 * self.df.log() + lbeta(half_df, 0.5))

    @property
    def mean(self) -> Tensor:
        """loc where df > 1; NaN where df <= 1 (no mean: E|t| is infinite)."""
        defined = np.broadcast_to(self.df.data > 1, self.batch_shape)
        return where(defined, self.loc + np.zeros(self.batch_shape, dtype=self._dtype()), np.nan)

    @property
    def variance(self) -> Tensor:
        """scale^2 df / (df - 2) where df > 2; +inf where 1 < df <= 2; NaN where df <= 1."""
        finite = self.df.data > 2
        safe_df = where(finite, self.df, 3.0)  # (df - 2 is only divided by where it is positive)
        undefined = np.where(self.df.data > 1, np.inf, np.nan)
        return where(np.broadcast_to(finite, self.batch_shape), self.scale ** 2 * safe_df / (safe_df - 2.0),
                     undefined)
