"""Bernoulli(probs or logits): a coin that lands 1 with probability p, and has no rsample.

    P(z = 1) = p = sigmoid(l),        P(z = 0) = 1 - p = sigmoid(-l),
    log P(z) = z log p + (1 - z) log(1 - p) = z l - softplus(l)          for z in {0, 1},
    H = -p log p - (1 - p) log(1 - p),     mean p,     variance p (1 - p),
    KL(p || q) = p (log p - log q) + (1 - p) (log(1 - p) - log(1 - q)).

A draw is a step function of its noise: z = [l + L > 0] with logistic noise L = logit(u),
u ~ Uniform(0, 1), drawn by ``Logistic.standard_noise``. The step has derivative 0 almost everywhere, so no pathwise gradient exists:
``rsample()`` raises and says what to use instead. The gradient of E[f(z)] comes either from the
score function, E[f(z) d log P(z) / d l] (``log_prob`` is differentiable in probs and logits for
exactly that), or from the relaxation: ``RelaxedBernoulli`` replaces the step by
sigmoid((l + L) / temperature), and on the same noise it rounds to this very draw.

Conventions. ``log_prob`` is exact at the edges: for p = 1, log P(0) = -inf and log P(1) = 0
exactly, with no NaN and no warning; logits of +-1000 give finite, correct values. Any value that
is not exactly 0 or 1 has probability 0, so log_prob -inf (NaN gives NaN). Entropy and KL use
0 log 0 = 0. Infinite logits are allowed: +inf means p = 1, -inf means p = 0.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from tinygrad_reparam.distributions import constraints
from tinygrad_reparam.distributions.kl import register_kl
from tinygrad_reparam.distributions.logistic import Logistic
from tinygrad_reparam.distributions.probs_logits import (
    BinaryProbsOrLogits, log_one_minus_or_neg_inf, log_or_neg_inf, outside_support, x_log_ratio, x_log_x,
)
from tinygrad_reparam.ops import where
from tinygrad_reparam.random import get_rng
from tinygrad_reparam.tensor import Tensor


class Bernoulli(BinaryProbsOrLogits):
    """A 0/1 variable with P(1) = ``probs`` (in [0, 1]) or sigmoid(``logits``); give exactly one."""

    has_rsample = False
    arg_constraints = {
        "probs": constraints.unit_interval,
        "logits": constraints.not_nan.because("+inf and -inf mean probability 1 and 0"),
    }

    def __init__(self, probs=None, logits=None, validate_args: bool = True):
        self._take_parameters(validate_args, **self._probs_or_logits(probs, logits))
        super().__init__(self._parameter.shape)

    # --- 1 - p and the two logarithms, each in its stable form ----------------------------------
    def _one_minus_p(self) -> Tensor:
        """1 - p, which is sigmoid(-l) when logits are given (exact even where p rounds to 1)."""
        if self._given == "probs":
            return 1.0 - self._parameter
        return (-self._parameter).sigmoid()

    def _log_p(self) -> Tensor:
        """log p: -softplus(-l) from logits; log p with log 0 = -inf from probs."""
        if self._given == "logits":
            return -(-self._parameter).softplus()
        return log_or_neg_inf(self._parameter)

    def _log_one_minus_p(self) -> Tensor:
        """log(1 - p): -softplus(l) from logits; log1p(-p) with log 0 = -inf from probs."""
        if self._given == "logits":
            return -self._parameter.softplus()
        return log_one_minus_or_neg_inf(self._parameter)

    # --- drawing ------------------------------------------------------------------------------
    def _draw(self, sample_shape: tuple, rng: Optional[np.random.Generator]) -> np.ndarray:
        """z = [l + L > 0] with L ~ Logistic(0, 1), the logit of a uniform: P(z = 1) = sigmoid(l).
        Compared on the logit scale, so p = 1 - 1e-20 (logits 46) is not rounded to 1."""
        noise = Logistic.standard_noise(sample_shape + self.batch_shape, get_rng(rng))
        return (self.logits.data + noise > 0).astype(self._dtype())

    # --- densities and moments ------------------------------------------------------------------
    def log_prob(self, value) -> Tensor:
        """log p at 1, log(1 - p) at 0, -inf at anything else (NaN stays NaN)."""
        v = self._value(value).data
        return outside_support(where(v == 1, self._log_p(), self._log_one_minus_p()),
                               inside=(v == 0) | (v == 1), is_nan=np.isnan(v))

    def entropy(self) -> Tensor:
        """-p log p - (1 - p) log(1 - p), with 0 log 0 = 0 (so 0 at p = 0 and p = 1)."""
        return -(x_log_x(self.probs, self._log_p()) + x_log_x(self._one_minus_p(), self._log_one_minus_p()))

    @property
    def mean(self) -> Tensor:
        return self.probs

    @property
    def variance(self) -> Tensor:
        return self.probs * self._one_minus_p()


@register_kl(Bernoulli, Bernoulli)
def _kl_bernoulli_bernoulli(p: Bernoulli, q: Bernoulli) -> Tensor:
    """p (log p - log q) + (1 - p)(log(1 - p) - log(1 - q)); 0 log(0 / q) = 0, +inf if q rules out
    an outcome that p allows."""
    return (x_log_ratio(p.probs, p._log_p(), q._log_p())
            + x_log_ratio(p._one_minus_p(), p._log_one_minus_p(), q._log_one_minus_p()))
