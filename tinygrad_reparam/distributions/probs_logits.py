"""Probabilities or logits, and logarithms that meet a zero probability.

A discrete distribution can be given by its probabilities p or by its logits l; for two outcomes

    p = sigmoid(l) = 1 / (1 + e^-l),          l = log p - log(1 - p),
    log p = -softplus(-l),                    log(1 - p) = -softplus(l),

and for k outcomes p = softmax(l), log p = log_softmax(l) (logits are defined up to a constant).
Working from logits is the stable choice: nothing is ever exactly 0 or 1 by rounding.

``ProbsOrLogits`` is the base class of the families given either way (exactly one of the two):
it keeps the one given and computes the other on demand, through the formulas above.
``BinaryProbsOrLogits`` (Bernoulli, RelaxedBernoulli) converts with sigmoid and the log-odds,
``CategoricalProbsOrLogits`` (Categorical, RelaxedOneHotCategorical) with softmax and log along
a last axis of k categories.

Working from probabilities means meeting p = 0, where log p = -inf. Two rules keep the numbers
right and the gradients free of NaN:

- log 0 = -inf exactly, computed with the "double where": the inner ``where`` feeds ``log`` only
  positive numbers. A single ``where(p > 0, log(p), -inf)`` gives the right value but a NaN
  gradient, because backward still sends 0 * (1 / 0) = NaN into the branch it did not pick.
- 0 * log 0 = 0 (entropy) and 0 * (log 0 - log q) = 0 (KL): an outcome that never happens
  contributes nothing. p > 0 where q = 0 makes KL(p || q) = +inf.

At these boundary points the gradient is taken to be 0 (the exact derivative is infinite).
The guards are added only when a zero is actually present, so the usual graph stays the plain
formula (``log p``, ``p * log p``).
"""
from __future__ import annotations

import numpy as np

from tinygrad_reparam.distributions.base import Distribution
from tinygrad_reparam.ops import where
from tinygrad_reparam.tensor import Tensor

SUM_TOLERANCE = 1e-6  # |sum(probs) - 1| allowed along the category axis


class ProbsOrLogits(Distribution):
    """A family given by its probabilities or by its logits: exactly one of the two."""

    def _probs_or_logits(self, probs, logits) -> dict:
        """{"probs": probs} or {"logits": logits}, whichever was given (for ``_take_parameters``)."""
        if (probs is None) == (logits is None):
            given = "both" if probs is not None else "neither"
            raise ValueError(f"{type(self).__name__}: give exactly one of probs and logits (got {given})")
        return {"probs": probs} if probs is not None else {"logits": logits}

    @property
    def _given(self) -> str:
        """Which of the two the constructor was given: "probs" or "logits"."""
        return "probs" if "probs" in self._named_parameters else "logits"

    @property
    def _parameter(self) -> Tensor:
        """The probs or the logits, whichever was given."""
        return self._named_parameters[self._given]

    @property
    def probs(self) -> Tensor:
        """The probabilities: as given, or computed from the logits."""
        return self._parameter if self._given == "probs" else self._probs_from_logits(self._parameter)

    @property
    def logits(self) -> Tensor:
        """The logits: as given, or computed from the probabilities (-inf where p = 0)."""
        return self._parameter if self._given == "logits" else self._logits_from_probs(self._parameter)

    def _probs_from_logits(self, logits: Tensor) -> Tensor:
        raise NotImplementedError

    def _logits_from_probs(self, probs: Tensor) -> Tensor:
        raise NotImplementedError


class BinaryProbsOrLogits(ProbsOrLogits):
    """p = P(z = 1) = sigmoid(l), and l = log p - log(1 - p) (-inf at p = 0, +inf at p = 1)."""

    def _probs_from_logits(self, logits: Tensor) -> Tensor:
        return logits.sigmoid()

    def _logits_from_probs(self, probs: Tensor) -> Tensor:
        return log_or_neg_inf(probs) - log_one_minus_or_neg_inf(probs)


class CategoricalProbsOrLogits(ProbsOrLogits):
    """p = softmax(l) along the last axis, which holds the k categories; l = log p."""

    def _probs_from_logits(self, logits: Tensor) -> Tensor:
        return logits.softmax(axis=-1)

    def _logits_from_probs(self, probs: Tensor) -> Tensor:
        return log_or_neg_inf(probs)

    @property
    def num_categories(self) -> int:
        return self._parameter.shape[-1]

    def _check_category_axis(self) -> None:
        """The probs or logits need a last axis holding at least one category."""
        shape = self._parameter.shape
        if len(shape) == 0 or shape[-1] == 0:
            raise ValueError(f"{type(self).__name__}: {self._given} must have a last axis holding at "
                             f"least one category, got shape {shape}")

    def _check_probability_vectors(self) -> None:
        """probs along the last axis sum to 1 (within SUM_TOLERANCE); they are not renormalized."""
        sums = self._parameter.data.sum(axis=-1)
        self._check_values("probs", sums, np.abs(sums - 1) <= SUM_TOLERANCE,
                           f"a probability vector along the last axis, summing to 1 within "
                           f"{SUM_TOLERANCE:g} (the values shown are the sums)")


def log_or_neg_inf(x: Tensor) -> Tensor:
    """log x for x >= 0, with log 0 = -inf exactly, no warning and a zero (not NaN) gradient there."""
    positive = x.data > 0
    if positive.all():
        return x.log()
    return where(positive, where(positive, x, 1.0).log(), -np.inf)


def log_one_minus_or_neg_inf(x: Tensor) -> Tensor:
    """log(1 - x) for x <= 1, as log1p(-x); log(1 - 1) = -inf exactly, as in ``log_or_neg_inf``."""
    below_one = x.data < 1
    if below_one.all():
        return (-x).log1p()
    return where(below_one, (-where(below_one, x, 0.0)).log1p(), -np.inf)


def x_log_x(x: Tensor, log_x: Tensor) -> Tensor:
    """x * log x with 0 * log 0 = 0 (``log_x`` may hold -inf where x = 0)."""
    positive = x.data > 0
    if positive.all():
        return x * log_x
    return x * where(positive, log_x, 0.0)


def outside_support(log_density: Tensor, inside: np.ndarray, is_nan: np.ndarray) -> Tensor:
    """``log_density`` where the value is ``inside`` the support, -inf outside it, NaN where the
    value is NaN. A where is added to the graph only when some value needs it."""
    if not inside.all():
        log_density = where(inside, log_density, -np.inf)
    if is_nan.any():
        log_density = where(is_nan, np.nan, log_density)
    return log_density


def x_log_ratio(x: Tensor, log_x: Tensor, log_y: Tensor) -> Tensor:
    """x * (log x - log y), one term of KL(x || y): 0 where x = 0 (whatever y is), +inf where
    x > 0 and y = 0. The inner where keeps -inf - (-inf) = NaN out of the branch not taken."""
    present = x.data > 0
    if present.all():
        return x * (log_x - log_y)
    return x * where(present, where(present, log_x, 0.0) - log_y, 0.0)
