"""Operations composed from the primitives: no VJP of their own, so their gradients come free.

``relu(a)`` is ``where(a > 0, a, 0)``, ``mean`` is ``sum / count``, ``softmax`` is
``exp(log_softmax)``, ``linear`` is ``x @ W + b``: each is a few primitives in a row, and
``backward`` differentiates it by differentiating them. Nothing here can get a derivative wrong
that ``ops.py`` gets right. At the end of the file the ones that are Tensor methods are attached.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from tinygrad_reparam import checks
from tinygrad_reparam.ops import (concatenate, exp, lift, log_softmax, operands, power, reduce_max,
                                  reduce_sum, reshape, softplus, where)
from tinygrad_reparam.tensor import Tensor


def sqrt(a: Tensor) -> Tensor:
    return power(a, 0.5)


def relu(a: Tensor) -> Tensor:
    return where(a.data > 0, a, 0.0)  # subgradient 0 at a = 0


def mean(a: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    count = math.prod(a.shape[ax] for ax in checks.axes(axis, a.ndim, "mean"))
    return reduce_sum(a, axis, keepdims) / count


def reduce_min(a: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    return -reduce_max(-a, axis, keepdims)


def softmax(a: Tensor, axis: int = -1) -> Tensor:
    return exp(log_softmax(a, checks.single_axis(axis, a.ndim, "softmax")))


def maximum(a, b) -> Tensor:
    """Elementwise max; on ties the gradient goes to a."""
    a, b = operands("maximum", a, b)
    return where(a.data >= b.data, a, b)


def minimum(a, b) -> Tensor:
    """Elementwise min; on ties the gradient goes to a."""
    a, b = operands("minimum", a, b)
    return where(a.data <= b.data, a, b)


def clip(a: Tensor, lo=None, hi=None) -> Tensor:
    """Values limited to [lo, hi]; gradient 1 inside (bounds included), 0 outside."""
    if lo is None and hi is None:
        raise ValueError("clip: give at least one of lo and hi")
    # Python numbers pass as they are (so float32 stays float32); anything else must be real numbers
    lo = lo if lo is None or isinstance(lo, (int, float)) else checks.float_array(lo, "clip: lo")
    hi = hi if hi is None or isinstance(hi, (int, float)) else checks.float_array(hi, "clip: hi")
    clipped = np.clip(a.data, lo, hi)
    return where(clipped == a.data, a, clipped)


def stack(tensors: Sequence, axis: int = 0) -> Tensor:
    tensors = [lift(t) for t in checks.sequence(tensors, "stack")]
    checks.stack_shapes([t.shape for t in tensors], axis)
    with_new_axis = list(tensors[0].shape)
    with_new_axis.insert(axis % (tensors[0].ndim + 1), 1)
    return concatenate([reshape(t, tuple(with_new_axis)) for t in tensors], axis=axis)


def linear(x, weight, bias=None) -> Tensor:
    """x @ weight + bias, the affine map of a dense layer: ``weight`` has shape (in, out),
    ``bias`` shape (out,) or None, and every leading axis of ``x`` (..., in) is a batch axis.
    (PyTorch's ``F.linear`` takes the weight transposed, as (out, in).)"""
    x, weight = lift(x, weight), lift(weight, x)
    bias = None if bias is None else lift(bias, weight)
    checks.linear(x.shape, weight.shape, None if bias is None else bias.shape)
    return x @ weight if bias is None else x @ weight + bias


def binary_cross_entropy_with_logits(logits, targets) -> Tensor:
    """Elementwise -[t log s(l) + (1 - t) log(1 - s(l))] with s the sigmoid, no reduction: it
    simplifies to softplus(l) - t l, which never takes log(0) (softplus is stable).
    -bce is log p(t | l) for a Bernoulli with logits l."""
    logits, targets = operands("binary_cross_entropy_with_logits", logits, targets)
    return softplus(logits) - targets * logits


Tensor.sqrt = sqrt
Tensor.relu = relu
Tensor.mean = mean
Tensor.min = reduce_min
Tensor.softmax = softmax
Tensor.clip = clip
