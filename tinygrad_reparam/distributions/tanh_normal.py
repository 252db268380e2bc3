"""TanhNormal(loc, scale): a = tanh(u) with u ~ Normal(mu, sigma), a law on the interval (-1, 1).

This is the action distribution of Soft Actor-Critic (Haarnoja et al. 2018, appendix C): a
Gaussian squashed into bounded actions. The reparameterization is the Normal's followed by one
more ordinary op,

    a = tanh(mu + sigma eps),  eps ~ N(0, 1),     da/dmu = 1 - a^2,   da/dsigma = (1 - a^2) eps.

Change of variables (u = atanh a, da/du = 1 - tanh(u)^2) gives the density:

    log q(a) = log N(u; mu, sigma) - log(1 - tanh(u)^2)     for -1 < a < 1,  -inf outside.

Written as 1 - tanh(u)^2, the correction rounds to log(0) = -inf once |u| passes about 19
(tanh(u) is then exactly 1.0 in float64). Since 1 - tanh(u)^2 = 4 / (e^u + e^-u)^2, the same
number is, exactly and stably for every u,

    log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)).

Going back from a to u = atanh(a) = (log1p(a) - log1p(-a)) / 2 loses digits as |a| -> 1, and at
a = +-1 (where tanh(u) rounds for large |u|) the log-density is -inf. So ``rsample_with_log_prob``
returns each draw together with its log-density computed from the pre-tanh u, never inverting tanh:
that is the form to use for SAC's entropy term, -log pi(a | s).

It is the TransformedDistribution of Normal(mu, sigma) through TanhTransform, which holds the
stable correction (``log_tanh_derivative``): the draws, ``rsample_with_log_prob``, ``log_prob``
(-inf outside the open interval), ``cdf`` (Phi((atanh(a) - mu) / sigma), 0 at and below -1, 1 at
and above 1) and ``icdf`` (tanh(mu + sigma Phi^-1(p))) all come from there.

There is no closed form for the mean, variance or entropy; estimate them from samples.
"""
from __future__ import annotations

from tinygrad_reparam.distributions.base import no_closed_form
from tinygrad_reparam.distributions.transformed_normal import TransformedNormal
from tinygrad_reparam.distributions.transforms import (TanhTransform, atanh,  # noqa: F401 (re-exported)
                                                       log_tanh_derivative)
from tinygrad_reparam.tensor import Tensor


class TanhNormal(TransformedNormal):
    """tanh of a Normal(loc, scale): ``loc`` (finite) and ``scale`` (> 0) are the mean and the
    standard deviation of the pre-tanh u = atanh(a), not of a.

    ``log_prob(value)`` is -inf (no NaN, no warning) for |value| >= 1, outside the open support,
    and its gradient is 0 there. Near the edges prefer ``rsample_with_log_prob``: (a, log q(a))
    with log q(a) = log N(u; loc, scale) - 2 (log 2 - u - softplus(-2u)) taken from u itself.
    """

    def __init__(self, loc, scale, validate_args: bool = True):
        super().__init__(loc, scale, TanhTransform(), validate_args)

    # --- no closed forms --------------------------------------------------------------------------
    def entropy(self) -> Tensor:
        raise no_closed_form(self, "squashed-Gaussian", "entropy",
                             recipe="a, log_q = dist.rsample_with_log_prob((n,)); entropy = "
                                    "-log_q.mean(axis=0) (a pathwise, differentiable estimate that "
                                    "never inverts tanh)")

    @property
    def mean(self) -> Tensor:
        raise no_closed_form(self, "squashed-Gaussian", "mean")

    @property
    def variance(self) -> Tensor:
        raise no_closed_form(self, "squashed-Gaussian", "variance")
