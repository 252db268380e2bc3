"""Categorical(probs or logits): one of k classes, over the last axis; no rsample.

    P(z = i) = p_i = softmax(l)_i,        log P(z = i) = log_softmax(l)_i = l_i - logsumexp(l),
    H = -sum_i p_i log p_i,               KL(p || q) = sum_i p_i (log p_i - log q_i).

The parameters have shape ``batch_shape + (k,)``; a draw is one class index per batch element,
so ``event_shape = ()`` and samples have shape ``sample_shape + batch_shape``. Indices are stored
as floats (0.0, 1.0, ...), like every other Tensor.

Drawing is the inverse CDF: with c_i = p_0 + ... + p_i and u ~ Uniform(0, 1), z is the number of
c_i that are <= u. The same law comes from the Gumbel-max trick, z = argmax_i (l_i + g_i) with
g_i ~ Gumbel(0, 1); ``RelaxedOneHotCategorical`` replaces that argmax by softmax((l + g) / tau)
to get a pathwise gradient. Like Bernoulli this family has no ``rsample``: its gradients come from
the score function (``log_prob`` is differentiable in probs and logits) or from the relaxation.

Conventions. probs must be >= 0 and sum to 1 along the last axis within 1e-6 (they are not
renormalized). logits may contain -inf (probability 0) but not NaN or +inf, and each row needs a
finite entry. A zero probability has log-probability -inf exactly; entropy and KL use
0 log 0 = 0. ``log_prob`` gives -inf for values that are not an integer in [0, k) (NaN gives NaN).
``mean`` and ``variance`` raise: class labels are names, not numbers, so they have no mean.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from tinygrad_reparam.distributions import constraints
from tinygrad_reparam.distributions.kl import register_kl
from tinygrad_reparam.distributions.probs_logits import (
    CategoricalProbsOrLogits, log_or_neg_inf, outside_support, x_log_ratio, x_log_x,
)
from tinygrad_reparam.ops import where
from tinygrad_reparam.random import uniform_open
from tinygrad_reparam.tensor import Tensor


class Categorical(CategoricalProbsOrLogits):
    """A class index in {0, ..., k-1} with P(i) = ``probs[..., i]`` or softmax(``logits``)[..., i]."""

    has_rsample = False
    arg_constraints = {
        "probs": constraints.at_least_zero.because("a probability vector along the last axis"),
        "logits": constraints.unnormalized_log_probability,
    }

    def __init__(self, probs=None, logits=None, validate_args: bool = True):
        self._take_parameters(validate_args, **self._probs_or_logits(probs, logits))
        self._check_category_axis()
        if validate_args and self._given == "probs":
            self._check_probability_vectors()
        if validate_args and self._given == "logits":
            row_max = self._parameter.data.max(axis=-1)
            self._check_values("logits", row_max, np.isfinite(row_max),
                               "finite somewhere in every row (the values shown are the row maxima; "
                               "all -inf would leave no probability)")
        super().__init__(self._parameter.shape[:-1], ())

    def _log_probs(self) -> Tensor:
        """log p_i for every class: log_softmax(logits), or log(probs) with log 0 = -inf."""
        if self._given == "logits":
            return self._parameter.log_softmax(axis=-1)
        return log_or_neg_inf(self._parameter)

    # --- drawing ------------------------------------------------------------------------------
    def _draw(self, sample_shape: tuple, rng: Optional[np.random.Generator]) -> np.ndarray:
        """Inverse CDF, vectorized over the batch: z = #{i : c_i <= u * c_(k-1)}."""
        probs = self.probs.data
        cdf = np.cumsum(probs, axis=-1)
        # Scale u by the total, so a sum of 1 - 1e-7 cannot leave u past the last class.
        u = uniform_open(sample_shape + self.batch_shape, rng) * cdf[..., -1]
        index = (cdf <= u[..., None]).sum(axis=-1)
        # u * total < total, except when the total is subnormal (possible only with
        # validate_args=False) and rounding lands on it: then take the last class with p > 0.
        last_possible = self.num_categories - 1 - np.argmax(probs[..., ::-1] > 0, axis=-1)
        return np.minimum(index, last_possible).astype(self._dtype())

    # --- densities ------------------------------------------------------------------------------
    def log_prob(self, value) -> Tensor:
        """log p_z, picked from the log-probabilities by a one-hot mask of the index z."""
        v, k = self._value(value).data, self.num_categories
        valid = (v >= 0) & (v < k) & (v == np.floor(v))  # NaN fails every comparison
        index = np.where(valid, v, 0).astype(np.int64)
        one_hot = np.arange(k) == index[..., None]  # shape value.shape + (k,)
        picked = where(one_hot, self._log_probs(), 0.0).sum(axis=-1)
        return outside_support(picked, inside=valid, is_nan=np.isnan(v))

    def entropy(self) -> Tensor:
        """-sum_i p_i log p_i, with 0 log 0 = 0."""
        return -x_log_x(self.probs, self._log_probs()).sum(axis=-1)

    @property
    def mean(self) -> Tensor:
        raise NotImplementedError(
            f"{type(self).__name__} has no mean: its values are class labels, and relabelling the "
            f"classes would change any number computed from them. Use .probs (the mean of the one-hot "
            f"encoding), or (probs * np.arange(k)).sum(axis=-1) if the indices really are ordered numbers."
        )

    @property
    def variance(self) -> Tensor:
        raise NotImplementedError(
            f"{type(self).__name__} has no variance: its values are class labels, not numbers. "
            f"The one-hot encoding has variance probs * (1 - probs)."
        )


@register_kl(Categorical, Categorical)
def _kl_categorical_categorical(p: Categorical, q: Categorical) -> Tensor:
    """sum_i p_i (log p_i - log q_i), with 0 log(0 / q) = 0 and +inf where q_i = 0 < p_i."""
    if p.num_categories != q.num_categories:
        raise ValueError(f"kl_divergence({type(p).__name__}, {type(q).__name__}): the numbers of "
                         f"categories differ ({p.num_categories} and {q.num_categories})")
    return x_log_ratio(p.probs, p._log_probs(), q._log_probs()).sum(axis=-1)
