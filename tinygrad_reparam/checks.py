"""Argument checks and error messages, kept out of the engine's way.

The engine (``tensor.py``, ``ops.py``) is written to be read: a node, its vector-Jacobian
products and the chain rule. Turning a user's mistake into a message that says what went wrong
and what to do instead takes many more lines than the mathematics, so those lines live here, in
one module that every other module uses: a bad shape, a bad axis, a bool where a count belongs,
a backward pass that cannot run. Each helper either returns the cleaned-up value or raises.

This module imports nothing from the package (it sees tensors only through their attributes),
so any module can use it without an import circle.
"""
from __future__ import annotations

import itertools
import math

import numpy as np


# ---------------------------------------------------------------------------------------------
# Values
def float_array(value, what: str = "value") -> np.ndarray:
    """``value`` as a float ndarray: ints and bools become float64, float32 stays float32, a
    Tensor gives its values. Strings, objects and complex numbers get a TypeError naming ``what``."""
    if hasattr(value, "requires_grad"):  # a Tensor
        return value.data
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{what}: cannot convert {type(value).__name__} to an array: {error}") from None
    if array.dtype.kind == "f":
        return array
    if array.dtype.kind in "iub":
        return array.astype(np.float64)
    raise TypeError(
        f"{what}: expected real numbers (a number, list or NumPy array of floats, ints or bools), "
        f"got {type(value).__name__} with dtype {array.dtype}"
    )


def flag(value, what: str) -> bool:
    """True or False (NumPy's bools too), else a TypeError."""
    if value is True or value is False:
        return value
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{what} must be True or False, got {value!r}")
    return bool(value)


def is_integer(value) -> bool:
    """A real integer (Python or NumPy), and not a bool: True is not a count."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def function(value, what: str, expected: str):
    """A callable, returned as it is; else a TypeError that says what it should compute
    (``expected``, e.g. "latent draws -> one cost per draw")."""
    if not callable(value):
        raise TypeError(f"{what} must be a function ({expected}), got {type(value).__name__}")
    return value


def integer(value, what: str) -> int:
    """An integer of any sign (Python or NumPy, not a bool), as an int; else a TypeError."""
    if not is_integer(value):
        raise TypeError(f"{what} must be an int, got {value!r}")
    return int(value)


def count(value, what: str, minimum: int = 1) -> int:
    """An integer >= ``minimum`` (1: "positive", 0: "non-negative"), else a ValueError."""
    if not is_integer(value) or value < minimum:
        kind = {1: "a positive integer", 0: "a non-negative integer"}.get(minimum,
                                                                        f"an integer >= {minimum}")
        raise ValueError(f"{what} must be {kind}, got {value!r}")
    return int(value)


def layer_sizes(sizes, where: str) -> tuple:
    """The widths of a stack of layers, inputs first and outputs last (``[784, 200, 10]``): a list
    or tuple of at least two positive integers, as a tuple of ints."""
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
        raise TypeError(f"{where}: sizes must be a list of layer widths, e.g. [784, 200, 10], "
                        f"got {sizes!r}")
    sizes = list(sizes)
    if len(sizes) < 2:
        raise ValueError(f"{where}: sizes needs at least two entries (inputs and outputs), got {sizes}")
    return tuple(count(size, f"{where}: sizes[{position}]") for position, size in enumerate(sizes))


def float_dtype(dtype, what: str) -> np.dtype:
    """A floating point NumPy dtype (np.float64, np.float32, "float64", ...), else a TypeError
    (not a dtype at all) or a ValueError (a dtype, but ints, bools, complex numbers...)."""
    expected = f"{what} must be a floating point type such as np.float64 or np.float32"
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{expected}, got {dtype!r}") from None
    if dtype.kind != "f":
        raise ValueError(f"{expected}, got {dtype}")
    return dtype


def number(value, what: str, lower: float = -math.inf, upper: float = math.inf,
           lower_open: bool = False, upper_open: bool = False) -> float:
    """A real number (not a bool, not NaN) in the interval between ``lower`` and ``upper``
    (open or closed at each end), as a float; else a ValueError naming the interval."""
    interval = f"{'(' if lower_open else '['}{lower}, {upper}{')' if upper_open else ']'}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{what} must be a number in {interval}, got {value!r}")
    value = float(value)
    too_low = value <= lower if lower_open else value < lower
    too_high = value >= upper if upper_open else value > upper
    if math.isnan(value) or too_low or too_high:
        raise ValueError(f"{what} must be in {interval}, got {value!r}")
    return value


def sample_shape(shape) -> tuple:
    """An int or a tuple of non-negative ints, as a tuple."""
    if is_integer(shape):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or not all(is_integer(n) for n in shape):
        raise TypeError(f"sample_shape must be an int or a tuple of ints, got {shape!r}")
    if any(n < 0 for n in shape):
        raise ValueError(f"sample_shape must not contain negative sizes, got {tuple(shape)}")
    return tuple(int(n) for n in shape)


def every_value(what: str, values, ok, constraint: str) -> None:
    """Raise a ValueError unless ``ok`` (a boolean array, broadcast against ``values``) holds at
    every element: "{what} must be {constraint}; got 2 bad values: [nan, -1.]" (the first five).
    Compute ``ok`` so that NaN fails it (NaN fails every comparison: write x > 0, not ~(x <= 0))."""
    values, ok = np.broadcast_arrays(np.asarray(values), np.asarray(ok))
    if ok.all():
        return
    bad = values[~ok]
    shown = np.array2string(bad[:5], precision=6, separator=", ")
    raise ValueError(f"{what} must be {constraint}; got {bad.size} bad value{'s' if bad.size != 1 else ''}: "
                     f"{shown}{' ...' if bad.size > 5 else ''}")


def probabilities(values, what: str) -> None:
    """Raise a ValueError unless every value is a probability in [0, 1] (the argument of a
    quantile function, ``icdf``; NaN fails)."""
    values = np.asarray(values)
    every_value(what, values, (values >= 0) & (values <= 1),
                "a probability in [0, 1] (icdf maps probabilities to values; cdf goes the other way)")


# ---------------------------------------------------------------------------------------------
# Shapes and axes
def broadcastable(*shapes: tuple) -> bool:
    """NumPy's rule: aligned at the right, the sizes of each axis agree apart from 1s (an axis
    one of the shapes lacks counts as 1)."""
    for sides in itertools.zip_longest(*(reversed(shape) for shape in shapes), fillvalue=1):
        if len({side for side in sides if side != 1}) > 1:
            return False
    return True


def broadcast(op: str, shape_a: tuple, shape_b: tuple) -> None:
    """Raise unless the two operands' shapes broadcast together. (Runs at every elementwise op
    whose operands differ in shape, so it is written for two shapes: zip stops at the shorter
    one, and the missing axes count as 1.)"""
    for side_a, side_b in zip(reversed(shape_a), reversed(shape_b)):
        if side_a != side_b and side_a != 1 and side_b != 1:
            raise ValueError(
                f"{op}: shapes {shape_a} and {shape_b} cannot be broadcast together (trailing "
                f"dimensions must be equal or 1); reshape one operand, e.g. x.reshape(-1, 1)"
            )


def axes(axis, ndim: int, op: str) -> tuple:
    """``axis`` (None, an int or a tuple of ints, negative counting from the end) as a sorted
    tuple of non-negative ints; None means every axis."""
    if axis is None:
        return tuple(range(ndim))
    given = (axis,) if is_integer(axis) else axis
    if not isinstance(given, (tuple, list)) or not all(is_integer(ax) for ax in given):
        raise TypeError(f"{op}: axis must be None, an int or a tuple of ints, got {axis!r}")
    normalized = []
    for ax in given:
        if not -ndim <= ax < ndim:
            raise ValueError(f"{op}: axis {ax} is out of range for a tensor with {ndim} dimensions")
        normalized.append(int(ax) % ndim)
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"{op}: repeated axis in {axis}")
    return tuple(sorted(normalized))


def integer_axis(axis, op: str) -> None:
    if not is_integer(axis):
        raise TypeError(f"{op}: axis must be an int, got {axis!r}")


def single_axis(axis, ndim: int, op: str) -> int:
    """One axis (an int, negative counting from the end) as a non-negative int."""
    integer_axis(axis, op)
    return axes(axis, ndim, op)[0]


def nonempty(size: int, op: str) -> None:
    if size == 0:
        raise ValueError(f"{op}: the tensor is empty, so it has no maximum")


def permutation(axes_given: tuple, shape: tuple) -> tuple:
    """The axes of ``transpose``: a permutation of all of them (negative ones allowed)."""
    if not all(is_integer(ax) for ax in axes_given):
        raise TypeError(f"transpose: axes must be ints, got {axes_given!r}")
    ndim = len(shape)
    normalized = tuple(int(ax) + ndim if ax < 0 else int(ax) for ax in axes_given)
    if sorted(normalized) != list(range(ndim)):
        raise ValueError(f"transpose: axes {axes_given} are not a permutation of the {ndim} axes of "
                         f"a tensor of shape {shape}")
    return normalized


class rephrased:
    """``with rephrased(IndexError, "getitem: index {!r} does not fit a tensor of shape {}", index,
    shape): ...``: NumPy's own error of the kinds in ``catch`` is raised again (as ``raise_as``, by
    default the same kind) with a message that names the operation and the shapes first."""

    def __init__(self, catch, template: str, *details, raise_as=None):
        self.catch, self.template, self.details, self.raise_as = catch, template, details, raise_as

    def __enter__(self) -> "rephrased":
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is not None and issubclass(kind, self.catch):
            raise (self.raise_as or kind)(f"{self.template.format(*self.details)}: {error}") from None


def matmul(shape_a: tuple, shape_b: tuple) -> None:
    """NumPy's matmul rules: at least 1-D operands, equal inner dimensions, broadcastable
    batch dimensions."""
    if len(shape_a) == 0 or len(shape_b) == 0:
        raise ValueError(f"matmul: {shape_a} @ {shape_b}: matmul needs at least 1-D operands; "
                         f"use * to multiply by a scalar")
    inner_a, inner_b = shape_a[-1], shape_b[0] if len(shape_b) == 1 else shape_b[-2]
    if inner_a != inner_b:
        raise ValueError(f"matmul: {shape_a} @ {shape_b}: inner dimensions {inner_a} and "
                         f"{inner_b} differ")
    if not broadcastable(shape_a[:-2], shape_b[:-2]):
        raise ValueError(f"matmul: {shape_a} @ {shape_b}: the batch dimensions {shape_a[:-2]} and "
                         f"{shape_b[:-2]} cannot be broadcast together")


def linear(x_shape: tuple, weight_shape: tuple, bias_shape) -> None:
    """x (..., in) @ weight (in, out) + bias (out,) or no bias."""
    if len(weight_shape) != 2 or len(x_shape) == 0 or x_shape[-1] != weight_shape[0]:
        raise ValueError(f"linear: x of shape {x_shape} and weight of shape {weight_shape}: the "
                         f"weight must be a matrix (in, out) and x end in `in` features, (..., in)")
    if bias_shape is not None and bias_shape != (weight_shape[1],):
        raise ValueError(f"linear: bias has shape {bias_shape}, expected ({weight_shape[1]},) for a "
                         f"weight of shape {weight_shape}")


def no_tensor_in(index):
    """An index for ``tensor[index]`` holds ints, slices, None, Ellipsis, integer arrays or boolean
    masks, but no Tensor (whose values would silently become part of the index)."""
    parts = index if isinstance(index, tuple) else (index,)
    if any(hasattr(part, "requires_grad") for part in parts):
        raise TypeError("getitem: index with NumPy arrays, ints or slices, not Tensors "
                        "(for a mask from a Tensor use a comparison, e.g. x[x > 0])")
    return index


def condition(value) -> np.ndarray:
    """The condition of ``where``: a boolean array (a Tensor's values are taken)."""
    condition = np.asarray(getattr(value, "data", value))
    if condition.dtype != bool:
        raise TypeError(f"where: condition must be a boolean array (e.g. from x > 0), "
                        f"got dtype {condition.dtype}")
    return condition


def where_shapes(condition_shape: tuple, shape_a: tuple, shape_b: tuple) -> None:
    if not broadcastable(condition_shape, shape_a, shape_b):
        raise ValueError(f"where: condition {condition_shape}, a {shape_a} and b {shape_b} cannot "
                         f"be broadcast together")


def sequence(tensors, op: str) -> list:
    """A non-empty list or tuple of Tensors or arrays (not a single Tensor, array or string)."""
    if (isinstance(tensors, (np.ndarray, str, bytes)) or hasattr(tensors, "requires_grad")
            or not hasattr(tensors, "__iter__")):
        raise TypeError(f"{op}: tensors must be a list or tuple of Tensors or arrays, "
                        f"got {type(tensors).__name__}")
    tensors = list(tensors)
    if not tensors:
        raise ValueError(f"{op}: needs at least one tensor")
    return tensors


def stack_shapes(shapes: list, axis) -> None:
    integer_axis(axis, "stack")
    if len(set(shapes)) != 1:
        raise ValueError(f"stack: all tensors must have the same shape, got {shapes}")
    ndim = len(shapes[0]) + 1
    if not -ndim <= axis < ndim:
        raise ValueError(f"stack: axis {axis} is out of range for the stacked result with {ndim} "
                         f"dimensions")


# ---------------------------------------------------------------------------------------------
# Matrices (linalg.py and the multivariate Normals): stacks of square matrices, shape (..., n, n)
SYMMETRY_TOLERANCE = 1e-5  # |a_ij - a_ji| allowed, relative to the largest |entry| of the matrix


def square_matrices(shape: tuple, what: str) -> int:
    """The side n of a stack of square matrices, shape (..., n, n) with n >= 1; else a ValueError."""
    if len(shape) < 2 or shape[-1] != shape[-2] or shape[-1] == 0:
        raise ValueError(f"{what} must be a square matrix, or a stack of them, of shape (..., n, n) "
                         f"with n >= 1, got shape {shape}")
    return shape[-1]


def matrix_axes(shape: tuple, what: str) -> None:
    """At least two axes: the last two are a matrix's rows and columns."""
    if len(shape) < 2:
        raise ValueError(f"{what} needs a matrix (at least 2 dimensions, (..., rows, columns)), "
                         f"got shape {shape}")


def vector_axis(shape: tuple, what: str) -> None:
    """At least one axis: the last one holds a vector's entries."""
    if len(shape) < 1:
        raise ValueError(f"{what} needs a vector (at least 1 dimension, (..., n)), got a 0-d "
                         f"value; for a batch of one number write it as shape (..., 1)")


def triangular_system(shape_a: tuple, shape_b: tuple) -> None:
    """``solve_triangular(a, b)``: a (..., n, n), b (..., n, k), their batch axes broadcastable."""
    n = square_matrices(shape_a, "solve_triangular: a")
    if len(shape_b) < 2 or shape_b[-2] != n:
        raise ValueError(f"solve_triangular: b must have shape (..., {n}, k) for a of shape {shape_a} "
                         f"(one row per row of a; a vector v goes in as a column, v[..., None]), "
                         f"got shape {shape_b}")
    if not broadcastable(shape_a[:-2], shape_b[:-2]):
        raise ValueError(f"solve_triangular: the batch dimensions of a {shape_a} and b {shape_b} "
                         f"cannot be broadcast together")


def _batch_index(index: tuple) -> str:
    return "the matrix" if not index else f"the matrix at batch index {index}"


def symmetric_matrices(matrices: np.ndarray) -> np.ndarray:
    """One bool per matrix: finite, and equal to its transpose up to SYMMETRY_TOLERANCE (rounding
    in a product such as M @ M.T may leave the two triangles a few ulps apart)."""
    finite = np.isfinite(matrices).all(axis=(-2, -1))
    with np.errstate(invalid="ignore"):
        largest = np.abs(matrices).max(axis=(-2, -1), keepdims=True)
        gap = np.abs(matrices - np.swapaxes(matrices, -1, -2))
        return finite & (gap <= SYMMETRY_TOLERANCE * largest).all(axis=(-2, -1))


def positive_definite_matrices(matrices: np.ndarray) -> np.ndarray:
    """One bool per matrix: symmetric (see ``symmetric_matrices``) and positive definite, i.e.
    the Cholesky factorization of its symmetric part exists."""
    ok = np.array(symmetric_matrices(matrices))  # (an array even for one matrix: written below)
    symmetric_part = (matrices + np.swapaxes(matrices, -1, -2)) / 2
    identity = np.eye(matrices.shape[-1], dtype=matrices.dtype)
    try:  # all at once; only if some matrix fails, one at a time to find which
        np.linalg.cholesky(np.where(ok[..., None, None], symmetric_part, identity))
        return ok
    except np.linalg.LinAlgError:
        for index in np.ndindex(ok.shape):
            try:
                if ok[index]:
                    np.linalg.cholesky(symmetric_part[index])
            except np.linalg.LinAlgError:
                ok[index] = False
        return ok


def symmetric(matrices: np.ndarray, what: str) -> None:
    """Raise a ValueError naming ``what`` and the first bad matrix unless every matrix is finite
    and symmetric (see ``symmetric_matrices``): the NaN or inf, or the two entries that differ."""
    ok = symmetric_matrices(matrices)
    if ok.all():
        return
    index = tuple(int(i) for i in np.argwhere(~np.asarray(ok))[0])
    matrix = matrices[index]
    where, rule = _batch_index(index), f"{what} must be symmetric positive definite"
    if not np.isfinite(matrix).all():
        raise ValueError(f"{rule}, but {where} holds NaN or inf: {matrix.tolist()}")
    i, j = np.unravel_index(np.argmax(np.abs(matrix - matrix.T)), matrix.shape)
    raise ValueError(f"{rule}, but {where} is not symmetric: entry [{i}, {j}] is "
                     f"{float(matrix[i, j])!r} and entry [{j}, {i}] is {float(matrix[j, i])!r}. Build it "
                     f"symmetric, e.g. M @ M.T + c * I with c > 0, or pass (a + a^T) / 2")


def not_positive_definite(matrices: np.ndarray, what: str) -> ValueError:
    """The error for symmetric matrices whose Cholesky factorization broke down (NumPy's bare
    LinAlgError says neither which matrix nor why): the first such matrix and its smallest
    eigenvalue."""
    ok = positive_definite_matrices(matrices)
    index = tuple(int(i) for i in np.argwhere(~ok)[0]) if not ok.all() else ()
    smallest = float(np.linalg.eigvalsh(matrices[index].astype(np.float64)).min())
    return ValueError(f"{what} must be symmetric positive definite, but {_batch_index(index)} is not "
                      f"positive definite: its smallest eigenvalue is {smallest:.6g}, and a Cholesky "
                      f"factor exists only when every eigenvalue is > 0. A matrix built as "
                      f"M @ M.T + c * I with c > 0 always is")


def nonzero_diagonal(matrices: np.ndarray, what: str) -> None:
    """A triangular matrix is invertible exactly when no diagonal entry is 0 (its determinant is
    their product); raise a ValueError naming the first zero (or NaN) otherwise."""
    diagonal = np.diagonal(matrices, axis1=-2, axis2=-1)
    bad = (diagonal == 0) | np.isnan(diagonal)
    if bad.any():
        position = tuple(int(i) for i in np.argwhere(bad)[0])
        value, i = float(diagonal[position]), position[-1]
        raise ValueError(f"{what} is singular: {_batch_index(position[:-1])} has {value!r} on its "
                         f"diagonal at [{i}, {i}]; a triangular system has one solution exactly when "
                         f"every diagonal entry is nonzero")


# ---------------------------------------------------------------------------------------------
# The backward pass
def unbroadcastable(grad_shape: tuple, shape: tuple) -> None:
    """``unbroadcast`` sums a gradient down to a shape that broadcasts to the gradient's shape:
    aligned at the right, each of its sizes is 1 or the gradient's."""
    added = len(grad_shape) - len(shape)
    if added < 0 or any(size != 1 and size != grad_shape[added + axis] for axis, size in enumerate(shape)):
        raise ValueError(f"unbroadcast: a gradient of shape {grad_shape} cannot be summed to shape "
                         f"{shape}: {shape} does not broadcast to {grad_shape}")


def retain_grad_error(tensor) -> RuntimeError:
    return RuntimeError(f"retain_grad() on a tensor that does not require grad: "
                        f"{no_grad_reason(tensor)}")


def item_error(shape: tuple) -> ValueError:
    return ValueError(f"item() needs a tensor with one element, this one has shape {shape}")


def array_conversion_error() -> TypeError:
    return TypeError("this Tensor requires grad, so turning it into a NumPy array would silently "
                     "drop its graph: use tensor.detach().numpy() for the values, or "
                     "tinygrad_reparam.stack to combine Tensors")


def no_grad_arguments_error() -> TypeError:
    return TypeError("no_grad takes no arguments: write `with no_grad():` or decorate with "
                     "`@no_grad()` (with parentheses)")


def vjp_count_error(op: str, parents: tuple, vjps: tuple) -> ValueError:
    """A primitive gives exactly one VJP per input (``zip`` would silently drop the rest)."""
    return ValueError(f"from_op({op!r}): got {len(parents)} parents but {len(vjps)} VJPs; "
                      f"give exactly one VJP per parent, in the same order")


def no_grad_reason(tensor) -> str:
    """Why ``tensor`` has no graph: what made it, or that nothing it came from requires grad."""
    if tensor.why_no_grad:
        return tensor.why_no_grad
    if tensor.op in ("leaf", "constant"):
        return "it is a leaf created with requires_grad=False"
    return "none of the tensors it was computed from requires grad"


def backward_start(tensor, grad) -> np.ndarray:
    """The gradient ``backward()`` starts from: 1 for a one-element tensor, else ``grad``, which
    must have the tensor's shape. Raises when the tensor has no graph to go back through."""
    if not tensor.requires_grad:
        if tensor.cuts:
            raise RuntimeError(cut_message(tensor))
        raise RuntimeError(
            f"backward() called on a tensor that does not require grad ({tensor.op}, shape "
            f"{tensor.shape}): {no_grad_reason(tensor)}. Create the inputs you want gradients for "
            f"with Tensor(..., requires_grad=True), outside any no_grad() block."
        )
    if grad is None:
        if tensor.data.size != 1:
            raise RuntimeError(
                f"backward() without a grad argument needs a scalar, but this tensor has shape "
                f"{tensor.shape}: reduce it first (e.g. .sum() or .mean()), or pass "
                f"grad=<array of shape {tensor.shape}>"
            )
        return np.ones_like(tensor.data)
    grad = float_array(getattr(grad, "data", grad), "backward(grad=...)").astype(tensor.dtype, copy=False)
    if grad.shape != tensor.shape:
        raise ValueError(f"backward(grad=...): grad has shape {grad.shape} but the tensor has "
                         f"shape {tensor.shape}; they must match")
    return grad


def cut_message(tensor) -> str:
    """backward() on a tensor that depends on the parameters only through ``sample()`` nodes."""
    names = ", ".join(f"{cut.op} (shape {cut.shape})" for cut in tensor.cuts)
    return (
        f"backward() called on a tensor ({tensor.op}, shape {tensor.shape}) whose every path to "
        f"the parameters runs through a sample() node: {names}. sample() draws a value without a "
        f"gradient path, so no gradient can reach the distribution's parameters. Use rsample() for "
        f"a pathwise (reparameterized) gradient, z = loc + scale * eps, or a score-function "
        f"estimator (tinygrad_reparam.estimators.score_function_surrogate) for distributions "
        f"without rsample."
    )


def freed_graph_error(node) -> RuntimeError:
    """backward() reached a node whose graph an earlier backward() released."""
    return RuntimeError(
        f"backward() through a graph that was already freed: the {node.op!r} node "
        f"(shape {node.shape}) released its saved values in an earlier backward(). "
        f"Pass retain_graph=True to the first backward() to backpropagate through the same "
        f"graph twice, or recompute the forward pass."
    )
