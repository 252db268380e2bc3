"""Chi2(df): the sum of df squared standard Normals, as a Gamma(df / 2, rate 1/2).

    log p(z) = (df/2 - 1) log z - z/2 - (df/2) log 2 - lgamma(df/2),    E[z] = df,  Var[z] = 2 df.

Everything comes from ``Gamma``: the draw and its implicit gradient in the concentration df / 2
(so dz/d(df) = (1/2) dz/dalpha), ``log_prob``, ``cdf``, the moments and the KL. As in PyTorch,
``df`` need not be an integer.
"""
from __future__ import annotations

from tinygrad_reparam.distributions import constraints
from tinygrad_reparam.distributions.base import Distribution
from tinygrad_reparam.distributions.gamma import Gamma
from tinygrad_reparam.ops import lift


class Chi2(Gamma):
    """Chi-squared with ``df`` > 0 degrees of freedom: Gamma(concentration=df/2, rate=1/2)."""

    arg_constraints = {"df": constraints.positive}

    def __init__(self, df, validate_args: bool = True):
        (self.df,) = self._take_parameters(validate_args, df=df)
        self.concentration = 0.5 * self.df  # (gradients flow back to df)
        self.rate = lift(0.5, self.df)
        Distribution.__init__(self, self.df.shape)
