"""Probabilities or logits, and logarithms that meet a zero probability.

A discrete distribution can be given by its probabilities p or by its logits l; for two outcomes

    p = sigmoid(l) = 1 / (1 + e^-l),          l = log p - log(1 - p),
    log p = -softplus(-l),                    log(1 - p) = -softplus(l),

and for k outcomes p = softmax(l), log p = log_softmax(l) (logits are defined up to a constant).
Working from logits is the stable choice: nothing is ever exactly 0 or 1 by rounding.

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

from tinygrad_reparam.distributions.base import as_parameter
from tinygrad_reparam.ops import where
from tinygrad_reparam.tensor import Tensor


def probs_or_logits(distribution: str, probs, logits) -> tuple:
    """("probs", tensor) or ("logits", tensor); exactly one of the two must be given."""
    if (probs is None) == (logits is None):
        given = "both" if probs is not None else "neither"
        raise ValueError(f"{distribution}: give exactly one of probs and logits (got {given})")
    if probs is not None:
        return "probs", as_parameter(probs, distribution, "probs")
    return "logits", as_parameter(logits, distribution, "logits")


def binary_probs(given: str, parameter: Tensor) -> Tensor:
    """P(z = 1) of a binary family: the parameter itself, or sigmoid(logits)."""
    return parameter if given == "probs" else parameter.sigmoid()


def binary_logits(given: str, parameter: Tensor) -> Tensor:
    """log p - log(1 - p) of a binary family: the parameter itself, or from probs
    (-inf at p = 0, +inf at p = 1)."""
    if given == "logits":
        return parameter
    return log_or_neg_inf(parameter) - log1m_or_neg_inf(parameter)


def categorical_probs(given: str, parameter: Tensor) -> Tensor:
    """Class probabilities: the parameter itself, or softmax(logits) along the last axis."""
    return parameter if given == "probs" else parameter.softmax(axis=-1)


def categorical_logits(given: str, parameter: Tensor) -> Tensor:
    """Unnormalized log-probabilities: the parameter itself, or log(probs) with log 0 = -inf."""
    return parameter if given == "logits" else log_or_neg_inf(parameter)


def log_or_neg_inf(x: Tensor) -> Tensor:
    """log x for x >= 0, with log 0 = -inf exactly, no warning and a zero (not NaN) gradient there."""
    positive = x.data > 0
    if positive.all():
        return x.log()
    return where(positive, where(positive, x, 1.0).log(), -np.inf)


def log1m_or_neg_inf(x: Tensor) -> Tensor:
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
