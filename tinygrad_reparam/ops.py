"""The primitives: each forward line next to its vector-Jacobian product (VJP).

A primitive computes its output with NumPy and hands ``from_op`` one VJP per input: a function
from the gradient ``g`` of the output to the gradient of that input, i.e. ``g`` times the
derivative, written as a one-line comment beside it (``# d(a*b)/da = b``). VJPs may return a
broadcast shape; ``backward`` sums it back with ``unbroadcast``. Everything that is not a
primitive (``sqrt``, ``mean``, ``relu``, ``softmax``, ``maximum``, ``clip``, ``stack``, ``linear``,
...) is composed from primitives in ``composed.py``, so its gradient comes for free. At the end
of the file, these functions become Tensor's operators and methods: ``x * y`` is ``mul(x, y)``,
``x.exp()`` is ``exp(x)``.

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
from typing import Sequence

import numpy as np

from tinygrad_reparam import checks
from tinygrad_reparam.constants import number_constant
from tinygrad_reparam.tensor import Tensor, from_op


# ---------------------------------------------------------------------------------------------
# Numbers and arrays become constant Tensors
def lift(x, like=None) -> Tensor:
    """``x`` as a Tensor. A Python number takes the dtype of the tensor it meets (float32 stays
    float32, as in NumPy); arrays keep their own float dtype (ints become float64)."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (int, float)) and isinstance(like, Tensor):  # a number meets a tensor:
        return number_constant(x, like.data.dtype, math.copysign(1.0, x))  # (constants.py)
    constant = Tensor(checks.float_array(x, "operand"))
    constant.op = "constant"
    return constant



def operands(op: str, a, b) -> tuple:
    """The two inputs of an elementwise primitive, as Tensors whose shapes broadcast together."""
    if type(a) is not Tensor:  # (lift passes a subclass of Tensor through as it is)
        a = lift(a, b)
    if type(b) is not Tensor:
        b = lift(b, a)
    shape_a, shape_b = a.data.shape, b.data.shape
    if shape_a != shape_b and shape_a and shape_b:  # (a 0-d operand broadcasts with anything)
        checks.broadcast(op, shape_a, shape_b)
    return a, b


def pass_through(g: np.ndarray) -> np.ndarray:
    """The VJP of an input whose derivative is 1: the gradient passes through as it is.
    (One shared function rather than a new ``lambda g: g`` per operation: fewer objects per node.)"""
    return g


# ---------------------------------------------------------------------------------------------
# Elementwise arithmetic (with broadcasting)
def add(a, b) -> Tensor:
    a, b = operands("add", a, b)
    return from_op("add", a.data + b.data, (a, b), (
        pass_through,  # d(a+b)/da = 1
        pass_through,  # d(a+b)/db = 1
    ))


def sub(a, b) -> Tensor:
    a, b = operands("sub", a, b)
    return from_op("sub", a.data - b.data, (a, b), (
        pass_through,  # d(a-b)/da = 1
        lambda g: -g,  # d(a-b)/db = -1
    ))


def mul(a, b) -> Tensor:
    a, b = operands("mul", a, b)
    return from_op("mul", a.data * b.data, (a, b), (
        lambda g: g * b.data,  # d(a*b)/da = b
        lambda g: g * a.data,  # d(a*b)/db = a
    ))


def div(a, b) -> Tensor:
    a, b = operands("div", a, b)
    out = a.data / b.data
    return from_op("div", out, (a, b), (
        lambda g: g / b.data,         # d(a/b)/da = 1/b
        lambda g: -g * out / b.data,  # d(a/b)/db = -a/b^2 = -(a/b)/b
    ))


def power(a, b) -> Tensor:
    """a ** b, for a Tensor or number on either side."""
    a, b = operands("pow", a, b)
    out = a.data ** b.data

    def vjp_base(g):  # d(a^b)/da = b a^(b-1), which is 0 where b = 0 (a^0 = 1 is constant)
        with np.errstate(divide="ignore", invalid="ignore"):
            return g * np.where(b.data == 0, 0.0, b.data * a.data ** (b.data - 1))

    def vjp_exponent(g):  # d(a^b)/db = a^b log a, which is 0 where a^b = 0 (the limit a -> 0+)
        with np.errstate(divide="ignore", invalid="ignore"):
            return g * np.where(out == 0, 0.0, out * np.log(a.data))

    return from_op("pow", out, (a, b), (vjp_base, vjp_exponent))


def neg(a: Tensor) -> Tensor:
    return from_op("neg", -a.data, (a,), (lambda g: -g,))  # d(-a)/da = -1


def exp(a: Tensor) -> Tensor:
    out = np.exp(a.data)
    return from_op("exp", out, (a,), (lambda g: g * out,))  # d(e^a)/da = e^a


def log(a: Tensor) -> Tensor:
    return from_op("log", np.log(a.data), (a,), (lambda g: g / a.data,))  # d(log a)/da = 1/a


def log1p(a: Tensor) -> Tensor:
    """log(1 + a), accurate when |a| is tiny (where 1 + a would round to 1)."""
    return from_op("log1p", np.log1p(a.data), (a,), (lambda g: g / (1.0 + a.data),))  # 1/(1+a)


def expm1(a: Tensor) -> Tensor:
    """e^a - 1, accurate when |a| is tiny (where exp(a) - 1 would cancel)."""
    out = np.expm1(a.data)
    return from_op("expm1", out, (a,), (lambda g: g * (out + 1.0),))  # d(e^a - 1)/da = e^a


def tanh(a: Tensor) -> Tensor:
    out = np.tanh(a.data)
    return from_op("tanh", out, (a,), (lambda g: g * (1.0 - out * out),))  # 1 - tanh(a)^2


def sin(a: Tensor) -> Tensor:
    return from_op("sin", np.sin(a.data), (a,), (lambda g: g * np.cos(a.data),))  # d sin/da = cos a


def cos(a: Tensor) -> Tensor:
    return from_op("cos", np.cos(a.data), (a,), (lambda g: -g * np.sin(a.data),))  # d cos/da = -sin a


def absolute(a: Tensor) -> Tensor:
    return from_op("abs", np.abs(a.data), (a,), (lambda g: g * np.sign(a.data),))  # sign(a); 0 at 0


def sigmoid(a: Tensor) -> Tensor:
    """1 / (1 + e^-a), from e = e^-|a| so that nothing overflows: a >= 0 gives 1/(1+e),
    a < 0 gives e/(1+e). Its derivative s(1-s) equals e/(1+e)^2 for both signs."""
    e = np.exp(-np.abs(a.data))
    out = np.where(a.data >= 0, 1.0, e) / (1.0 + e)
    return from_op("sigmoid", out, (a,), (lambda g: g * e / (1.0 + e) ** 2,))  # s(1-s) = e/(1+e)^2


def softplus(a: Tensor) -> Tensor:
    """log(1 + e^a) = max(a, 0) + log1p(e^-|a|): exact for large |a| in both directions."""
    e = np.exp(-np.abs(a.data))
    return from_op("softplus", np.maximum(a.data, 0) + np.log1p(e), (a,), (
        lambda g: g * np.where(a.data >= 0, 1.0, e) / (1.0 + e),  # d softplus(a)/da = sigmoid(a)
    ))


# ---------------------------------------------------------------------------------------------
# Reductions
def reduce_sum(a: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    axes = checks.axes(axis, a.ndim, "sum")
    kept_shape = tuple(1 if ax in axes else size for ax, size in enumerate(a.shape))  # as keepdims
    return from_op("sum", a.data.sum(axis=axes, keepdims=keepdims), (a,), (
        # d(sum_i a_i)/da_j = 1: every input element receives the output's gradient
        # (a broadcast view: no copy, whatever the size of a; asarray: g may be a NumPy scalar)
        lambda g: np.broadcast_to(np.asarray(g).reshape(kept_shape), a.shape),
    ))


def reduce_max(a: Tensor, axis=None, keepdims: bool = False) -> Tensor:
    """Largest entry along axis. The gradient goes to the arg-max; tied maxima share it evenly."""
    axes = checks.axes(axis, a.ndim, "max")
    checks.nonempty(a.size, "max")
    out_kept = a.data.max(axis=axes, keepdims=True)

    def vjp(g):  # d max/da_i = [a_i is a max] / (number of maxima)
        is_max = a.data == out_kept
        return is_max / is_max.sum(axis=axes, keepdims=True) * np.reshape(g, out_kept.shape)

    return from_op("max", out_kept if keepdims else out_kept.squeeze(axes), (a,), (vjp,))


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
    axes = checks.axes(axis, a.ndim, "logsumexp")
    m = a.data.max(axis=axes, keepdims=True, initial=-np.inf)  # -inf for an empty reduction
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        out_kept = m + _log_sum_exp_shifted(a.data, m, axes)

    def vjp(g):  # d lse/da_i = softmax_i (0 in a row that is all -inf)
        with np.errstate(invalid="ignore"):
            softmax = np.where(np.isneginf(out_kept), 0.0, np.exp(a.data - out_kept))
        return np.reshape(g, out_kept.shape) * softmax

    return from_op("logsumexp", out_kept if keepdims else out_kept.squeeze(axes), (a,), (vjp,))


def log_softmax(a: Tensor, axis: int = -1) -> Tensor:
    """a_i - logsumexp(a): log-probabilities that stay finite where softmax underflows to 0."""
    ax = checks.single_axis(axis, a.ndim, "log_softmax")
    m = a.data.max(axis=ax, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    out = (a.data - m) - _log_sum_exp_shifted(a.data, m, (ax,))
    return from_op("log_softmax", out, (a,), (
        # d log_softmax_i / da_j = [i = j] - softmax_j
        lambda g: g - np.exp(out) * g.sum(axis=ax, keepdims=True),
    ))


# ---------------------------------------------------------------------------------------------
# Matrix product, shapes and indexing
def matmul(a, b) -> Tensor:
    """a @ b with NumPy's rules: 1-D operands are vectors, n-D operands are stacks of matrices
    whose leading (batch) axes broadcast. For matrices, d(AB)/dA: g B^T and d(AB)/dB: A^T g."""
    a, b = lift(a, b), lift(b, a)
    checks.matmul(a.shape, b.shape)
    # A vector is a matrix of one row on the left, of one column on the right.
    a2 = a.data if a.ndim > 1 else a.data[None, :]
    b2 = b.data if b.ndim > 1 else b.data[:, None]

    def as_matrix(g):  # g in the shape of a2 @ b2
        g = g[..., None] if b.ndim == 1 else g
        return g[..., None, :] if a.ndim == 1 else g

    def vjp_a(g):
        grad = as_matrix(g) @ np.swapaxes(b2, -1, -2)  # d(AB)/dA = g B^T
        return grad[..., 0, :] if a.ndim == 1 else grad

    def vjp_b(g):
        grad = np.swapaxes(a2, -1, -2) @ as_matrix(g)  # d(AB)/dB = A^T g
        return grad[..., 0] if b.ndim == 1 else grad

    return from_op("matmul", a.data @ b.data, (a, b), (vjp_a, vjp_b))


def reshape(a: Tensor, *shape) -> Tensor:
    shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    with checks.rephrased((ValueError, TypeError), "reshape: cannot reshape a tensor of shape {} "
                          "({} elements) into {}", a.shape, a.size, shape, raise_as=ValueError):
        out = a.data.reshape(shape)
    return from_op("reshape", out, (a,), (lambda g: g.reshape(a.shape),))  # moves no values


def transpose(a: Tensor, *axes) -> Tensor:
    """NumPy's transpose: axes is a permutation of all axes; none given reverses them."""
    axes = tuple(axes[0]) if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
    axes = checks.permutation(axes or tuple(reversed(range(a.ndim))), a.shape)
    inverse = np.argsort(axes)
    return from_op("transpose", a.data.transpose(axes), (a,), (
        lambda g: g.transpose(inverse),  # undo the permutation
    ))


def getitem(a: Tensor, index) -> Tensor:
    """a[index] for slices, ints, integer arrays and boolean masks."""
    with checks.rephrased(IndexError, "getitem: index {!r} does not fit a tensor of shape {}",
                          index, a.shape):
        out = a.data[checks.no_tensor_in(index)]
    parts = index if isinstance(index, tuple) else (index,)
    picks_each_once = all(isinstance(p, (int, np.integer, slice)) or p is None or p is Ellipsis
                          for p in parts)

    def vjp(g):  # d a[index]/da: ones at index, so the gradient is scattered back into zeros
        grad = np.zeros(a.data.shape, a.data.dtype)
        if picks_each_once:  # slices and ints
            grad[index] = g
        else:  # integer arrays may pick an element twice: its gradients add up
            np.add.at(grad, index, g)
        return grad

    return from_op("getitem", out, (a,), (vjp,))


def where(condition, a, b) -> Tensor:
    """Elementwise ``a if condition else b``; condition is a boolean array (e.g. x > 0)."""
    condition = checks.condition(condition)
    a, b = lift(a, b), lift(b, a)
    if not condition.shape == a.data.shape == b.data.shape:
        checks.where_shapes(condition.shape, a.shape, b.shape)
    return from_op("where", np.where(condition, a.data, b.data), (a, b), (
        lambda g: np.where(condition, g, 0.0),  # d/da = 1 where condition holds
        lambda g: np.where(condition, 0.0, g),  # d/db = 1 elsewhere
    ))


def concatenate(tensors: Sequence, axis: int = 0) -> Tensor:
    tensors = [lift(t) for t in checks.sequence(tensors, "concatenate")]
    checks.integer_axis(axis, "concatenate")
    with checks.rephrased(ValueError, "concatenate: shapes {} along axis {}",
                          [t.shape for t in tensors], axis):
        out = np.concatenate([t.data for t in tensors], axis=axis)
    ax = axis % out.ndim
    ends = np.cumsum([t.shape[ax] for t in tensors])

    def piece(start, end):  # d(concatenation)/d(input i) picks input i's slice of g
        return lambda g: g[(slice(None),) * ax + (slice(start, end),)]

    return from_op("concatenate", out, tuple(tensors),
                   tuple(piece(end - t.shape[ax], end) for t, end in zip(tensors, ends)))


# ---------------------------------------------------------------------------------------------
# Tensor's operators and methods are the functions above.
Tensor.__add__ = add
Tensor.__radd__ = lambda self, other: add(other, self)
Tensor.__sub__ = sub
Tensor.__rsub__ = lambda self, other: sub(other, self)
Tensor.__mul__ = mul
Tensor.__rmul__ = lambda self, other: mul(other, self)
Tensor.__truediv__ = div
Tensor.__rtruediv__ = lambda self, other: div(other, self)
Tensor.__pow__ = power
Tensor.__rpow__ = lambda self, other: power(other, self)
Tensor.__matmul__ = matmul
Tensor.__rmatmul__ = lambda self, other: matmul(other, self)
Tensor.__neg__ = neg
Tensor.__getitem__ = getitem
Tensor.exp = exp
Tensor.log = log
Tensor.log1p = log1p
Tensor.expm1 = expm1
Tensor.tanh = tanh
Tensor.sigmoid = sigmoid
Tensor.softplus = softplus
Tensor.abs = absolute
Tensor.sin = sin
Tensor.cos = cos
Tensor.sum = reduce_sum
Tensor.max = reduce_max
Tensor.logsumexp = logsumexp
Tensor.log_softmax = log_softmax
Tensor.reshape = reshape
Tensor.transpose = transpose
Tensor.T = property(transpose)
