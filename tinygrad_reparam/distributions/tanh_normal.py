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

There is no closed form for the mean, variance or entropy; estimate them from samples.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from tinygrad_reparam.distributions.base import no_closed_form
from tinygrad_reparam.distributions.transformed_normal import TransformedNormal
from tinygrad_reparam.ops import where
from tinygrad_reparam.tensor import Tensor

LOG_2 = math.log(2.0)


def log_tanh_derivative(u: Tensor) -> Tensor:
    """log(1 - tanh(u)^2) = log |da/du| for a = tanh(u), as 2 (log 2 - u - softplus(-2u)):
    finite for every u, where the direct form gives log(0) once tanh(u) rounds to +-1."""
    return 2.0 * (LOG_2 - u - (-2.0 * u).softplus())


def atanh(a: Tensor) -> Tensor:
    """The inverse of tanh on (-1, 1): (log1p(a) - log1p(-a)) / 2, built from engine ops."""
    return 0.5 * (a.log1p() - (-a).log1p())


class TanhNormal(TransformedNormal):
    """tanh of a Normal(loc, scale): ``loc`` (finite) and ``scale`` (> 0) are the mean and the
    standard deviation of the pre-tanh u = atanh(a), not of a.

    ``log_prob(value)`` is -inf (no NaN, no warning) for |value| >= 1, outside the open support,
    and its gradient is 0 there. Near the edges prefer ``rsample_with_log_prob``.
    """

    def transform(self, x: Tensor) -> Tensor:
        """a = tanh(x): the open interval (-1, 1)."""
        return x.tanh()

    def rsample_with_log_prob(self, sample_shape=(),
                              rng: Optional[np.random.Generator] = None) -> tuple:
        """(a, log q(a)) for a = tanh(u), u = loc + scale * eps, with the log-density taken from u:

            log q(a) = log N(u; loc, scale) - 2 (log 2 - u - softplus(-2u)).

        Both are connected to loc and scale (the log-density also through u), so this is the
        pathwise form of SAC's entropy term; it stays finite even where a rounds to +-1.
        """
        u = self.base_dist.rsample(sample_shape, rng)
        return u.tanh(), self._log_prob_of_pre_tanh(u)

    def _log_prob_of_pre_tanh(self, u: Tensor) -> Tensor:
        """log q(tanh u) = log N(u; loc, scale) - log(1 - tanh(u)^2)."""
        return self.base_dist.log_prob(u) - log_tanh_derivative(u)

    # --- density ----------------------------------------------------------------------------------
    def log_prob(self, value) -> Tensor:
        """log N(atanh(value); loc, scale) - log(1 - value^2) for |value| < 1, -inf elsewhere."""
        value = self._value(value)
        inside = np.abs(value.data) < 1
        safe_value = where(inside, value, 0.0)  # atanh is only taken inside (-1, 1)
        inside_log_prob = self._log_prob_of_pre_tanh(atanh(safe_value))
        return where(inside, inside_log_prob, -np.inf)

    def cdf(self, value) -> np.ndarray:
        """P(A <= value) = Phi((atanh(value) - loc) / scale): 0 at and below -1, 1 at and above
        1, as a plain array (for tests and plots; no gradient)."""
        value = np.asarray(value, dtype=float)
        inside = np.abs(value) < 1
        u = np.arctanh(np.where(inside, value, 0.0))
        return np.where(inside, self.base_dist.cdf(u), np.where(value >= 1, 1.0, 0.0))

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
