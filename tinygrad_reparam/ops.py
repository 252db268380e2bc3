"""The primitives: each forward line next to its vector-Jacobian product (VJP).

A primitive computes its output with NumPy and hands ``from_op`` one VJP per input: a function
from the gradient ``g`` of the output to the gradient of that input, i.e. ``g`` times the
derivative, written as a one-line comment beside it (``# d(a*b)/da = b``). VJPs may return a
broadcast shape; ``backward`` sums it back with ``unbroadcast``. Everything that is not a primitive
(``sqrt``, ``mean``, ``relu``, ``softmax``, ``maximum``, ``clip``, ``stack``...) is composed from
primitives, so its gradient comes for free.

Numerically delicate functions are primitives written in stable forms:

    sigmoid(x)   = 1 / (1 + e^-x)          computed from e^-|x|, never overflows
    softplus(x)  = log(1 + e^x)            = max(x, 0) + log1p(e^-|x|)
    logsumexp(x) = log sum_i e^x_i         = m + log sum_i e^(x_i - m),  m = max_i x_i
    log_softmax  = x - logsumexp(x)

Subgradient conventions at kinks: relu'(0) = 0, |x|'(0) = 0, and ``max`` splits the gradient
evenly between tied maxima. ``maximum(a, b)`` sends the gradient to ``a`` on ties.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

from tinygrad_reparam.tensor import Tensor, as_array, from_op


# ---------------------------------------------------------------------------------------------
# Helpers: turning numbers and arrays into Tensors, and readable shape errors
def _constant(data: np.ndarray) -> Tensor:
    return from_op("constant", data, (), ())


def _lift(x, like: Optional[Tensor] = None) -> Tensor:
    """A Tensor for x. Python numbers take the dtype of the tensor they meet (float32 stays
    float32, as in NumPy), arrays keep their own float dtype (ints become float64)."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (int, float)) and like is not None:
        return _constant(np.asarray(x, dtype=like.data.dtype))
    return _constant(as_array(x, "operand"))


def _pair(a, b) -> tuple:
    if type(a) is Tensor and type(b) is Tensor:  # the common case, first (this runs per op)
        return a, b
    a = _lift(a, b if isinstance(b, Tensor) else None)
    return a, _lift(b, a)


def _broadcast_error(op: str, a: Tensor, b: Tensor) -> ValueError:
    return ValueError(
        f"{op}: shapes {a.shape} and {b.shape} cannot be broadcast together (trailing dimensions "
        f"must be equal or 1); reshape one operand, e.g. x.reshape(-1, 1)"
    )


def _normalize_axes(axis, ndim: int, op: str) -> tuple:
    """axis (None, int or tuple) as a sorted tuple of non-negative ints, with a clear error."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else axis
    if not isinstance(axes, (tuple, list)) or not all(
            isinstance(ax, (int, np.integer)) and not isinstance(ax, bool) for ax in axes):
        raise TypeError(f"{op}: axis must be None, an int or a tuple of ints, got {axis!r}")
    normalized = []
    for ax in axes:
        if not -ndim <= ax < ndim:
            raise ValueError(f"{op}: axis {ax} is out of range for a tensor with {ndim} dimensions")
        normalized.append(int(ax) % ndim)
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"{op}: repeated axis in {axis}")
    return tuple(sorted(normalized))


def _expand_reduced(g: np.ndarray, axes: tuple, keepdims: bool) -> np.ndarray:
    """Put back the axes a reduction removed, so g broadcasts against the input's shape."""
    if keepdims or not axes:
        return g
    return np.expand_dims(g, axes)


def _unchanged(g: np.ndarray) -> np.ndarray:
    """The VJP of an input whose derivative is 1: the gradient passes through as it is.
    (One shared function rather than a new ``lambda g: g`` per operation: fewer objects per node.)"""
    return g


# ---------------------------------------------------------------------------------------------
# Elementwise binary primitives (with broadcasting)
def add(a, b) -> Tensor:
    a, b = _pair(a, b)
    try:
        out = a.data + b.data
    except ValueError:
        raise _broadcast_error("add", a, b) from None
    return from_op("add", out, (a, b), (
        _unchanged,   # d(a+b)/da = 1
        _unchanged,   # d(a+b)/db = 1
    ))


def sub(a, b) -> Tensor:
    a, b = _pair(a, b)
    try:
        out = a.data - b.data
    except ValueError:
        raise _broadcast_error("sub", a, b) from None
    return from_op("sub", out, (a, b), (
        _unchanged,     # d(a-b)/da = 1
        lambda g: -g,   # d(a-b)/db = -1
    ))


def mul(a, b) -> Tensor:
    a, b = _pair(a, b)
    try:
        out = a.data * b.data
    except ValueError:
        raise _broadcast_error("mul", a, b) from None
    return from_op("mul", out, (a, b), (
        lambda g: g * b.data,   # d(a*b)/da = b
        lambda g: g * a.data,   # d(a*b)/db = a
    ))


def div(a, b) -> Tensor:
    a, b = _pair(a, b)
    try:
        out = a.data / b.data
    except ValueError:
        raise _broadcast_error("div", a, b) from None
    return from_op("div", out, (a, b), (
        lambda g: g / b.data,         # d(a/b)/da = 1/b
        lambda g: -g * out / b.data,  # d(a/b)/db = -a/b^2 = -(a/b)/b
    ))


def pow(a, b) -> Tensor:
    """a ** b. With a constant exponent only a gets a gradient; with a Tensor exponent,
    d(a^b)/db = a^b log a (0 where a^b = 0, the limit for a -> 0+)."""
    if isinstance(b, (int, float)) and isinstance(a, Tensor):
        return _pow_constant(a, float(b))
    a, b = _pair(a, b)
    try:
        out = a.data ** b.data
    except ValueError:
        raise _broadcast_error("pow", a, b) from None

    def vjp_exponent(g):
        with np.errstate(divide="ignore", invalid="ignore"):
            log_a = np.log(a.data)
        return g * np.where(out == 0, 0.0, out * log_a)  # d(a^b)/db = a^b log a

    return from_op("pow", out, (a, b), (
        lambda g: g * b.data * a.data ** (b.data - 1),  # d(a^b)/da = b a^(b-1)
        vjp_exponent,
    ))


def _pow_constant(a: Tensor, p: float) -> Tensor:
    out = a.data ** p
    if p == 0:
        return from_op("pow 0", out, (a,), (lambda g: np.zeros_like(g),))  # d(a^0)/da = 0
    return from_op(f"pow {p:g}", out, (a,), (
        lambda g: g * p * a.data ** (p - 1),  # d(a^p)/da = p a^(p-1)
    ))


def neg(a: Tensor) -> Tensor:
    return from_op("neg", -a.data, (a,), (
        lambda g: -g,  # d(-a)/da = -1
    ))


# ---------------------------------------------------------------------------------------------
# Elementwise unary primitives
def exp(a: Tensor) -> Tensor:
    out = np.exp(a.data)
    return from_op("exp", out, (a,), (
        lambda g: g * out,  # d(e^a)/da = e^a
    ))


def log(a: Tensor) -> Tensor:
    out = np.log(a.data)
    return from_op("log", out, (a,), (
        lambda g: g / a.data,  # d(log a)/da = 1/a
    ))


def log1p(a: Tensor) -> Tensor:
    """log(1 + a), accurate when |a| is tiny (where 1 + a would round to 1)."""
    return from_op("log1p", np.log1p(a.data), (a,), (
        lambda g: g / (1.0 + a.data),  # d log(1+a)/da = 1/(1+a)
    ))


def expm1(a: Tensor) -> Tensor:
    """e^a - 1, accurate when |a| is tiny (where exp(a) - 1 would cancel)."""
    out = np.expm1(a.data)
    return from_op("expm1", out, (a,), (
        lambda g: g * (out + 1.0),  # d(e^a - 1)/da = e^a
    ))


def tanh(a: Tensor) -> Tensor:
    out = np.tanh(a.data)

    def vjp(g):  # d(tanh a)/da = 1 - tanh(a)^2
        # g * (1 - out * out), computed in one new array instead of three: in an MLP these are
        # the largest arrays of the backward pass, and fresh ones cost page faults. (The result
        # keeps tanh's dtype even if g is wider, as gradients do in PyTorch.)
        grad = np.multiply(out, out, out=np.empty(out.shape, out.dtype))  # (an array even if 0-d)
        np.subtract(1.0, grad, out=grad)
        grad *= g
        return grad

    return from_op("tanh", out, (a,), (vjp,))


def sin(a: Tensor) -> Tensor:
    return from_op("sin", np.sin(a.data), (a,), (
        lambda g: g * np.cos(a.data),  # d(sin a)/da = cos a
    ))


def cos(a: Tensor) -> Tensor:
    return from_op("cos", np.cos(a.data), (a,), (
        lambda g: -g * np.sin(a.data),  # d(cos a)/da = -sin a
    ))


def abs(a: Tensor) -> Tensor:
    return from_op("abs", np.abs(a.data), (a,), (
        lambda g: g * np.sign(a.data),  # d|a|/da = sign(a), 0 at a = 0
    ))


def sigmoid(a: Tensor) -> Tensor:
    """1 / (1 + e^-a), from e = e^-|a| so that nothing overflows: a >= 0 gives 1/(1+e),
    a < 0 gives e/(1+e). Its derivative s(1-s) equals e/(1+e)^2 for both signs."""
    e = np.exp(-np.abs(a.data))
    out = np.where(a.data >= 0, 1.0, e) / (1.0 + e)
    return from_op("sigmoid", out, (a,), (
        lambda g: g * e / (1.0 + e) ** 2,  # d sigmoid(a)/da = s(1-s) = e^-|a| / (1 + e^-|a|)^2
    ))


def softplus(a: Tensor) -> Tensor:
    """log(1 + e^a) = max(a, 0) + log1p(e^-|a|): exact for large |a| in both directions."""
    e = np.exp(-np.abs(a.data))
    out = np.maximum(a.data, 0) + np.log1p(e)
    return from_op("softplus", out, (a,), (
        lambda g: g * np.where(a.data >= 0, 1.0, e) / (1.0 + e),  # d softplus(a)/da = sigmoid(a)
    ))


def binary_cross_entropy_with_logits(logits, targets) -> Tensor:
    """Elementwise -[t log s(l) + (1 - t) log(1 - s(l))] with s the sigmoid, no reduction.

    It simplifies to softplus(l) - t l, computed from e = e^-|l| so that no exp overflows and no
    log ever sees 0. One fused primitive instead of four ops: this is the VAE's loss, on every
    pixel of every image at every step. -bce is log p(t | l) for a Bernoulli with logits l.
    """
    logits, targets = _pair(logits, targets)
    e = np.exp(-np.abs(logits.data))
    try:
        out = np.maximum(logits.data, 0) + np.log1p(e) - targets.data * logits.data
    except ValueError:
        raise _broadcast_error("binary_cross_entropy_with_logits", logits, targets) from None
    return from_op("bce_with_logits", out, (logits, targets), (
        lambda g: g * (np.where(logits.data >= 0, 1.0, e) / (1.0 + e) - targets.data),  # d/dl = s(l) - t
        lambda g: -g * logits.data,                                                    # d/dt = -l
    ))


# ---------------------------------------------------------------------------------------------
# Reductions
def sum(a: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    axes = _normalize_axes(axis, a.ndim, "sum")
    out = a.data.sum(axis=axes, keepdims=keepdims)
    kept_shape = tuple(1 if ax in axes else size for ax, size in enumerate(a.shape))  # as keepdims
    return from_op("sum", out, (a,), (
        # d(sum_i a_i)/da_j = 1: every input element receives the output's gradient
        # (a broadcast view: no copy, whatever the size of a; asarray: g may be a NumPy scalar)
        lambda g: np.broadcast_to(np.asarray(g).reshape(kept_shape), a.shape),
    ))


def max(a: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    """Largest entry along axis. The gradient goes to the arg-max; tied maxima share it evenly."""
    axes = _normalize_axes(axis, a.ndim, "max")
    if a.size == 0:
        raise ValueError("max: the tensor is empty, so it has no maximum")
    out = a.data.max(axis=axes, keepdims=keepdims)

    def vjp(g):
        out_kept = _expand_reduced(out, axes, keepdims)
        is_max = a.data == out_kept
        share = is_max / is_max.sum(axis=axes, keepdims=True)
        return share * _expand_reduced(g, axes, keepdims)  # d max/da_i = [a_i is max] / ties

    return from_op("max", out, (a,), (vjp,))


def _log_sum_exp_shifted(x: np.ndarray, m: np.ndarray, axes: tuple) -> np.ndarray:
    """log sum_i e^(x_i - m) along axes (kept), m the max: log1p of the sum minus 1, formed exactly.

    Each entry equal to m contributes exactly e^0 = 1, so sum - 1 = (number of them - 1) + the
    other entries' e^(x_i - m), with no rounding of 1 + tiny: logsumexp([0, -40]) is 4.2e-18, not
    log(1 + 4.2e-18) = 0. A row with no entry at m (all -inf) gives log1p(-1) = -inf."""
    at_max = x == m
    others = np.where(at_max, 0, np.exp(x - m)).sum(axis=axes, keepdims=True)
    ties = at_max.sum(axis=axes, keepdims=True).astype(x.dtype)
    return np.log1p(others + (ties - 1))


def logsumexp(a: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    """log sum_i e^(a_i) = m + log sum_i e^(a_i - m) with m the max, so no exp overflows.
    All entries -inf gives -inf (an empty sum of probabilities), not NaN."""
    axes = _normalize_axes(axis, a.ndim, "logsumexp")
    m = a.data.max(axis=axes, keepdims=True, initial=-np.inf)  # -inf for an empty reduction
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        out_kept = m + _log_sum_exp_shifted(a.data, m, axes)
    out = out_kept if keepdims else np.squeeze(out_kept, axis=axes)

    def vjp(g):
        with np.errstate(invalid="ignore"):
            softmax = np.exp(a.data - out_kept)
        softmax = np.where(np.isneginf(out_kept), 0.0, softmax)
        return _expand_reduced(g, axes, keepdims) * softmax  # d lse/da_i = softmax_i

    return from_op("logsumexp", out, (a,), (vjp,))


def log_softmax(a: Tensor, axis: int = -1) -> Tensor:
    """a_i - logsumexp(a): log-probabilities that stay finite where softmax underflows to 0."""
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"log_softmax: axis must be an int, got {axis!r}")
    (ax,) = _normalize_axes(axis, a.ndim, "log_softmax")
    m = a.data.max(axis=ax, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    out = (a.data - m) - _log_sum_exp_shifted(a.data, m, (ax,))
    return from_op("log_softmax", out, (a,), (
        # d log_softmax_i / da_j = [i = j] - softmax_j
        lambda g: g - np.exp(out) * g.sum(axis=ax, keepdims=True),
    ))


# ---------------------------------------------------------------------------------------------
# Linear algebra
def matmul(a, b) -> Tensor:
    """a @ b with NumPy's rules: 1-D operands are vectors, n-D operands are stacks of matrices
    whose leading (batch) dimensions broadcast. d(AB)/dA: g B^T; d(AB)/dB: A^T g."""
    a, b = _pair(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: {a.shape} @ {b.shape}: matmul needs at least 1-D operands; "
                         f"use * to multiply by a scalar")
    inner_a, inner_b = a.shape[-1], b.shape[0] if b.ndim == 1 else b.shape[-2]
    if inner_a != inner_b:
        raise ValueError(f"matmul: {a.shape} @ {b.shape}: inner dimensions {inner_a} and "
                         f"{inner_b} differ")
    try:
        out = a.data @ b.data
    except ValueError:
        raise ValueError(f"matmul: {a.shape} @ {b.shape}: the batch dimensions "
                         f"{a.shape[:-2]} and {b.shape[:-2]} cannot be broadcast together") from None
    # Treat a vector as a one-row (a) or one-column (b) matrix, then drop that axis again.
    a2 = a.data if a.ndim > 1 else a.data[None, :]
    b2 = b.data if b.ndim > 1 else b.data[:, None]

    def as_matrix(g):  # the gradient in the shape of a2 @ b2
        if b.ndim == 1:
            g = g[..., None]
        if a.ndim == 1:
            g = g[..., None, :]
        return g

    def vjp_a(g):
        grad = as_matrix(g) @ np.swapaxes(b2, -1, -2)  # d(AB)/dA = g B^T
        return grad[..., 0, :] if a.ndim == 1 else grad

    def vjp_b(g):
        grad = np.swapaxes(a2, -1, -2) @ as_matrix(g)  # d(AB)/dB = A^T g
        return grad[..., 0] if b.ndim == 1 else grad

    return from_op("matmul", out, (a, b), (vjp_a, vjp_b))


def linear(x, weight, bias=None) -> Tensor:
    """x @ weight + bias, the affine map of a dense layer, as one primitive.

    ``weight`` has shape (in, out), ``bias`` shape (out,) or None, and ``x`` shape (..., in): every
    leading axis is a batch axis. Composed from ``@`` and ``+`` it would make two nodes and two
    arrays per layer; fused, the bias is added in place to the product, which saves an array the
    size of the layer's output (and its trip through memory) at every step.
    (PyTorch's ``F.linear`` takes the weight transposed, as (out, in).)
    """
    x, weight = _pair(x, weight)
    if weight.ndim != 2 or x.ndim == 0 or x.shape[-1] != weight.shape[0]:
        raise ValueError(f"linear: x of shape {x.shape} and weight of shape {weight.shape}: the "
                         f"weight must be a matrix (in, out) and x end in `in` features, (..., in)")
    in_features, out_features = weight.shape
    rows = math.prod(x.shape[:-1])  # examples in the batch, all batch axes together
    out = x.data @ weight.data
    parents = [x, weight]
    vjps = [
        lambda g: g @ weight.data.T,  # d(xW + b)/dx = W^T
        # d(xW + b)/dW = x^T g, summed over every batch axis
        lambda g: x.data.reshape(rows, in_features).T @ g.reshape(rows, out_features),
    ]
    if bias is not None:
        bias = _lift(bias, weight)
        if bias.shape != (out_features,):
            raise ValueError(f"linear: bias has shape {bias.shape}, expected ({out_features},) "
                             f"for a weight of shape {weight.shape}")
        if np.result_type(out, bias.data) == out.dtype:
            out += bias.data  # in place: `out` is a fresh array that nobody else holds
        else:
            out = out + bias.data  # (a wider bias dtype widens the result, as in NumPy)
        parents.append(bias)
        vjps.append(_unchanged)  # d(xW + b)/db = 1 (unbroadcast sums over the batch axes)
    return from_op("linear", out, parents, vjps)


# ---------------------------------------------------------------------------------------------
# Shape and indexing
def reshape(a: Tensor, *shape) -> Tensor:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    try:
        out = a.data.reshape(shape)
    except (ValueError, TypeError):
        raise ValueError(f"reshape: cannot reshape a tensor of shape {a.shape} ({a.size} elements) "
                         f"into {shape}") from None
    return from_op("reshape", out, (a,), (
        lambda g: g.reshape(a.shape),  # reshaping moves no values: reshape the gradient back
    ))


def transpose(a: Tensor, *axes) -> Tensor:
    """NumPy's transpose: axes is a permutation of all axes; none given reverses them."""
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    if not axes:
        axes = tuple(reversed(range(a.ndim)))
    if not all(isinstance(ax, (int, np.integer)) and not isinstance(ax, bool) for ax in axes):
        raise TypeError(f"transpose: axes must be ints, got {axes!r}")
    normalized = [int(ax) + a.ndim if ax < 0 else int(ax) for ax in axes]
    if sorted(normalized) != list(range(a.ndim)):
        raise ValueError(f"transpose: axes {axes} are not a permutation of the {a.ndim} axes of a "
                         f"tensor of shape {a.shape}")
    axes = tuple(normalized)
    inverse = np.argsort(normalized)
    return from_op("transpose", a.data.transpose(axes), (a,), (
        lambda g: g.transpose(inverse),  # undo the permutation
    ))


def _is_basic_index(index) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(p, (int, np.integer, slice)) or p is None or p is Ellipsis for p in parts)


def getitem(a: Tensor, index) -> Tensor:
    """a[index] for slices, ints, integer arrays and boolean masks. The gradient is scattered
    back into zeros; with integer arrays np.add.at makes repeated indices accumulate."""
    if isinstance(index, Tensor) or (isinstance(index, tuple) and any(isinstance(i, Tensor) for i in index)):
        raise TypeError("getitem: index with NumPy arrays, ints or slices, not Tensors "
                        "(for a mask from a Tensor use a comparison, e.g. x[x > 0])")
    try:
        out = a.data[index]
    except IndexError as error:
        raise IndexError(f"getitem: index {index!r} does not fit a tensor of shape {a.shape}: "
                         f"{error}") from None
    basic = _is_basic_index(index)

    def vjp(g):
        grad = np.zeros(a.data.shape, a.data.dtype)
        if basic:  # slices and ints select each element at most once
            grad[index] = g
        else:
            np.add.at(grad, index, g)  # d a[idx]/da: ones at idx, repeated indices add up
        return grad

    return from_op("getitem", out, (a,), (vjp,))


def where(condition, a, b) -> Tensor:
    """Elementwise ``a if condition else b``; condition is a boolean array (e.g. x > 0)."""
    condition = np.asarray(condition.data if isinstance(condition, Tensor) else condition)
    if condition.dtype != bool:
        raise TypeError(f"where: condition must be a boolean array (e.g. from x > 0), "
                        f"got dtype {condition.dtype}")
    a, b = _pair(a, b)
    try:
        out = np.where(condition, a.data, b.data)
    except ValueError:
        raise ValueError(f"where: condition {condition.shape}, a {a.shape} and b {b.shape} cannot be "
                         f"broadcast together") from None
    return from_op("where", out, (a, b), (
        lambda g: np.where(condition, g, 0.0),  # d/da = 1 where condition holds
        lambda g: np.where(condition, 0.0, g),  # d/db = 1 elsewhere
    ))


def _check_sequence_and_axis(tensors, axis, op: str) -> None:
    if isinstance(tensors, (Tensor, np.ndarray, str, bytes)) or not hasattr(tensors, "__iter__"):
        raise TypeError(f"{op}: tensors must be a list or tuple of Tensors or arrays, "
                        f"got {type(tensors).__name__}")
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{op}: axis must be an int, got {axis!r}")


def concatenate(tensors: Sequence, axis: int = 0) -> Tensor:
    _check_sequence_and_axis(tensors, axis, "concatenate")
    tensors = [_lift(t) for t in tensors]
    if not tensors:
        raise ValueError("concatenate: needs at least one tensor")
    try:
        out = np.concatenate([t.data for t in tensors], axis=axis)
    except ValueError as error:  # includes NumPy's AxisError
        raise ValueError(f"concatenate: shapes {[t.shape for t in tensors]} along axis {axis}: "
                         f"{error}") from None
    ax = axis % out.ndim
    ends = np.cumsum([t.shape[ax] for t in tensors])
    starts = ends - np.array([t.shape[ax] for t in tensors])

    def piece(start, end):  # the gradient of each input is its slice of g
        return lambda g: g[(slice(None),) * ax + (slice(start, end),)]

    return from_op("concatenate", out, tensors, [piece(s, e) for s, e in zip(starts, ends)])


# ---------------------------------------------------------------------------------------------
# Composed operations: no VJP of their own, gradients come from the primitives they use
def sqrt(a: Tensor) -> Tensor:
    return pow(a, 0.5)


def relu(a: Tensor) -> Tensor:
    return where(a.data > 0, a, 0.0)  # subgradient 0 at a = 0


def mean(a: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    axes = _normalize_axes(axis, a.ndim, "mean")
    count = math.prod(a.shape[ax] for ax in axes)  # 1 for no axes
    return sum(a, axis, keepdims) / count


def min(a: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    return -max(-a, axis, keepdims)


def softmax(a: Tensor, axis: int = -1) -> Tensor:
    return exp(log_softmax(a, axis))


def maximum(a, b) -> Tensor:
    """Elementwise max; on ties the gradient goes to a."""
    a, b = _pair(a, b)
    try:
        take_a = a.data >= b.data
    except ValueError:
        raise _broadcast_error("maximum", a, b) from None
    return where(take_a, a, b)


def minimum(a, b) -> Tensor:
    """Elementwise min; on ties the gradient goes to a."""
    a, b = _pair(a, b)
    try:
        take_a = a.data <= b.data
    except ValueError:
        raise _broadcast_error("minimum", a, b) from None
    return where(take_a, a, b)


def clip(a: Tensor, lo=None, hi=None) -> Tensor:
    """Values limited to [lo, hi]; gradient 1 inside (bounds included), 0 outside."""
    if lo is None and hi is None:
        raise ValueError("clip: give at least one of lo and hi")
    # Python numbers pass as they are (so float32 stays float32); anything else must be real numbers
    lo = lo if lo is None or isinstance(lo, (int, float)) else as_array(lo, "clip: lo")
    hi = hi if hi is None or isinstance(hi, (int, float)) else as_array(hi, "clip: hi")
    clipped = np.clip(a.data, lo, hi)
    return where(clipped == a.data, a, clipped)


def stack(tensors: Sequence, axis: int = 0) -> Tensor:
    _check_sequence_and_axis(tensors, axis, "stack")
    tensors = [_lift(t) for t in tensors]
    if not tensors:
        raise ValueError("stack: needs at least one tensor")
    shapes = {t.shape for t in tensors}
    if len(shapes) != 1:
        raise ValueError(f"stack: all tensors must have the same shape, got {[t.shape for t in tensors]}")
    ndim = tensors[0].ndim + 1
    if not -ndim <= axis < ndim:
        raise ValueError(f"stack: axis {axis} is out of range for the stacked result with {ndim} dimensions")
    new_shape = list(tensors[0].shape)
    new_shape.insert(axis % ndim, 1)
    return concatenate([reshape(t, tuple(new_shape)) for t in tensors], axis=axis)
