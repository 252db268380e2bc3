"""Every op's gradient against central differences (``gradcheck``), over hypothesis-drawn shapes.

Inputs are kept where the derivative exists and is tame: away from the kinks of relu, abs, max,
maximum and clip (by at least 0.05, far more than gradcheck's step of 1e-6), in the domain of log,
sqrt and fractional powers, and in ranges where nothing overflows. Each check also runs one
backward pass and asserts that every input's gradient has that input's shape (broadcasting undone)
and dtype, and most compare the forward value with NumPy.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_reparam as tg
from tinygrad_reparam import Tensor, gradcheck
from tinygrad_reparam.testing import (broadcastable_shapes, float_arrays, positive_scales,
                                      shapes)

GAP = 0.05  # minimum distance of any input from a kink


# ---------------------------------------------------------------------------------------------
# Helpers
def check(fn, *arrays, reference=None):
    """gradcheck ``fn`` at ``arrays`` (all inputs require grad), then check gradient shapes and
    dtypes after one backward pass, and the forward value against ``reference`` (NumPy)."""
    inputs = [Tensor(a, requires_grad=True) for a in arrays]
    assert gradcheck(fn, inputs)
    out = fn(*inputs)
    out.backward(np.ones(out.shape))
    for x in inputs:
        assert x.grad is not None
        assert x.grad.shape == x.shape, f"gradient shape {x.grad.shape} for input {x.shape}"
        assert x.grad.dtype == x.dtype
    if reference is not None:
        expected = reference(*arrays)
        assert out.shape == np.shape(expected)
        np.testing.assert_allclose(out.data, expected, rtol=1e-10, atol=1e-12)
    return out


def away_from(a, *kinks, gap=GAP):
    """Copy of ``a`` with every entry closer than ``gap`` to a kink pushed to distance ``gap``."""
    a = np.array(a, dtype=np.float64)
    for kink in kinks:
        close = np.abs(a - kink) < gap
        a[close] = kink + np.where(a[close] >= kink, gap, -gap)
    return a


@st.composite
def distinct_arrays(draw, shape=None):
    """Arrays whose entries are pairwise at least 0.4 apart (no ties for max and min)."""
    shape = draw(shapes()) if shape is None else shape
    size = int(np.prod(shape))
    order = np.array(draw(st.permutations(range(size))), dtype=np.float64).reshape(shape)
    jitter = draw(float_arrays(shape, low=-0.3, high=0.3))
    return order - size / 2 + jitter


def snap(a, offset):
    """Entries moved onto the lattice integer + offset: arrays snapped with offsets 0.25 and 0.75
    differ by at least 0.5 everywhere, so maximum/minimum never see a tie."""
    return np.floor(a) + offset


@st.composite
def pairs(draw, low=-10.0, high=10.0, low_b=None, high_b=None):
    """Two arrays of mutually broadcastable shapes."""
    shape_a, shape_b = draw(broadcastable_shapes())
    a = draw(float_arrays(shape_a, low=low, high=high))
    b = draw(float_arrays(shape_b, low=low if low_b is None else low_b,
                          high=high if high_b is None else high_b))
    return a, b


@st.composite
def axis_args(draw, ndim, kind):
    """axis=None, an int (possibly negative) or a tuple of distinct axes (possibly negative)."""
    if kind == "none":
        return None
    if kind == "int":
        return draw(st.integers(-ndim, ndim - 1))
    axes = draw(st.lists(st.integers(0, ndim - 1), unique=True, max_size=ndim))
    negative = draw(st.lists(st.booleans(), min_size=len(axes), max_size=len(axes)))
    return tuple(ax - ndim if neg else ax for ax, neg in zip(axes, negative))


# ---------------------------------------------------------------------------------------------
# Binary arithmetic with broadcasting
BINARY = {
    "add": (lambda a, b: a + b, np.add),
    "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply),
    "div": (lambda a, b: a / b, np.divide),
}


@pytest.mark.parametrize("name", list(BINARY))
@given(data=pairs(low=-3.0, high=3.0))
def test_binary_broadcasting(name, data):
    a, b = data
    if name == "div":
        b = away_from(b, 0.0, gap=0.5)
    fn, reference = BINARY[name]
    check(fn, a, b, reference=reference)


@given(data=pairs(low=0.1, high=4.0, low_b=-2.0, high_b=2.0))
def test_pow_tensor_tensor_positive_base(data):
    base, exponent = data
    check(lambda a, b: a ** b, base, exponent, reference=np.power)


@pytest.mark.parametrize("p", [2, 3, -1, -2, 1, 0])
@given(x=float_arrays(low=-3.0, high=3.0))
def test_pow_tensor_integer_constant(p, x):
    x = away_from(x, 0.0, gap=0.2) if p < 0 else x
    check(lambda a: a ** p, x, reference=lambda a: a ** float(p))


@pytest.mark.parametrize("p", [0.5, -0.5, 1.5, 2.5, -1.3])
@given(x=positive_scales(low=0.1, high=5.0))
def test_pow_tensor_fractional_constant_positive_base(p, x):
    check(lambda a: a ** p, x, reference=lambda a: a ** p)


@pytest.mark.parametrize("base", [2.0, 0.5, np.e, 3])
@given(x=float_arrays(low=-4.0, high=4.0))
def test_pow_number_tensor(base, x):
    check(lambda a: base ** a, x, reference=lambda a: float(base) ** a)


@given(data=pairs(low=0.1, high=4.0, low_b=-2.0, high_b=2.0))
def test_pow_array_tensor(data):
    base, exponent = data
    check(lambda b: base ** b, exponent, reference=lambda b: base ** b)


@given(x=float_arrays())
def test_neg(x):
    check(lambda a: -a, x, reference=np.negative)


# ---------------------------------------------------------------------------------------------
# Python numbers and NumPy arrays on either side of an operator
SCALAR_EXPRESSIONS = {
    "x + 2.5": (lambda x: x + 2.5, lambda x: x + 2.5),
    "2.5 + x": (lambda x: 2.5 + x, lambda x: 2.5 + x),
    "x - 1.5": (lambda x: x - 1.5, lambda x: x - 1.5),
    "1.5 - x": (lambda x: 1.5 - x, lambda x: 1.5 - x),
    "x * 3": (lambda x: x * 3, lambda x: x * 3.0),
    "-3 * x": (lambda x: -3 * x, lambda x: -3.0 * x),
    "x / 4": (lambda x: x / 4, lambda x: x / 4.0),
    "4.0 / x": (lambda x: 4.0 / x, lambda x: 4.0 / x),
    "x ** 2": (lambda x: x ** 2, lambda x: x ** 2.0),
    "np.float64(2) * x": (lambda x: np.float64(2.0) * x, lambda x: 2.0 * x),
    "x - np.float64(2)": (lambda x: x - np.float64(2.0), lambda x: x - 2.0),
}


@pytest.mark.parametrize("expression", list(SCALAR_EXPRESSIONS))
@given(x=float_arrays(low=-3.0, high=3.0))
def test_python_number_operands(expression, x):
    fn, reference = SCALAR_EXPRESSIONS[expression]
    check(fn, away_from(x, 0.0, gap=0.5), reference=reference)


ARRAY_EXPRESSIONS = {
    "x + c": (lambda x, c: x + c, np.add),
    "c + x": (lambda x, c: c + x, lambda x, c: c + x),
    "x - c": (lambda x, c: x - c, np.subtract),
    "c - x": (lambda x, c: c - x, lambda x, c: c - x),
    "x * c": (lambda x, c: x * c, np.multiply),
    "c * x": (lambda x, c: c * x, lambda x, c: c * x),
    "x / c": (lambda x, c: x / c, np.divide),
    "c / x": (lambda x, c: c / x, lambda x, c: c / x),
    "maximum(x, c)": (lambda x, c: tg.maximum(x, c), np.maximum),
    "maximum(c, x)": (lambda x, c: tg.maximum(c, x), lambda x, c: np.maximum(c, x)),
    "minimum(x, c)": (lambda x, c: tg.minimum(x, c), np.minimum),
    "minimum(c, x)": (lambda x, c: tg.minimum(c, x), lambda x, c: np.minimum(c, x)),
}


@pytest.mark.parametrize("expression", list(ARRAY_EXPRESSIONS))
@given(data=pairs(low=-3.0, high=3.0))
def test_numpy_array_operands(expression, data):
    x, c = data
    # away from 0 (for the divisions) on lattices that never tie (for maximum and minimum)
    x, c = away_from(snap(x, 0.25), 0.0), away_from(snap(c, 0.75), 0.0)
    fn, reference = ARRAY_EXPRESSIONS[expression]
    out = check(lambda t: fn(t, c), x, reference=lambda a: reference(a, c))
    assert isinstance(out, Tensor)


@pytest.mark.parametrize("name", ["maximum", "minimum"])
@given(data=pairs())
def test_maximum_minimum_tensors(name, data):
    a, b = snap(data[0], 0.25), snap(data[1], 0.75)
    fn = getattr(tg, name)
    check(fn, a, b, reference=getattr(np, name))


@pytest.mark.parametrize("name", ["maximum", "minimum"])
@given(x=float_arrays(low=-3.0, high=3.0))
def test_maximum_minimum_number(name, x):
    x = away_from(x, 0.5)
    fn = getattr(tg, name)
    check(lambda a: fn(a, 0.5), x, reference=lambda a: getattr(np, name)(a, 0.5))
    check(lambda a: fn(0.5, a), x, reference=lambda a: getattr(np, name)(0.5, a))


# ---------------------------------------------------------------------------------------------
# Elementwise unary functions
def _softplus(x):
    return np.logaddexp(0.0, x)


UNARY = {
    # name: (method, NumPy reference, low, high, kinks)
    "exp": (Tensor.exp, np.exp, -5.0, 5.0, ()),
    "log": (Tensor.log, np.log, 0.1, 10.0, ()),
    "sqrt": (Tensor.sqrt, np.sqrt, 0.1, 10.0, ()),
    "tanh": (Tensor.tanh, np.tanh, -4.0, 4.0, ()),
    "sigmoid": (Tensor.sigmoid, lambda x: 1 / (1 + np.exp(-x)), -10.0, 10.0, ()),
    "softplus": (Tensor.softplus, _softplus, -10.0, 10.0, ()),
    "relu": (Tensor.relu, lambda x: np.maximum(x, 0.0), -10.0, 10.0, (0.0,)),
    "abs": (Tensor.abs, np.abs, -10.0, 10.0, (0.0,)),
    "sin": (Tensor.sin, np.sin, -10.0, 10.0, ()),
    "cos": (Tensor.cos, np.cos, -10.0, 10.0, ()),
}


@pytest.mark.parametrize("name", list(UNARY))
@given(data=st.data())
def test_unary(name, data):
    method, reference, low, high, kinks = UNARY[name]
    x = away_from(data.draw(float_arrays(low=low, high=high)), *kinks)
    check(method, x, reference=reference)


@pytest.mark.parametrize("name", ["relu", "abs"])
@given(x=float_arrays(low=-2.0, high=2.0))
def test_kinked_gradients_are_the_slopes(name, x):
    """Away from 0, relu and abs have slopes 0/1 and -1/+1 exactly."""
    x = away_from(x, 0.0)
    t = Tensor(x, requires_grad=True)
    getattr(t, name)().sum().backward()
    expected = (x > 0).astype(float) if name == "relu" else np.sign(x)
    assert np.array_equal(t.grad, expected)


# ---------------------------------------------------------------------------------------------
# Reductions
REDUCTIONS = {
    "sum": np.sum,
    "mean": np.mean,
    "max": np.max,
    "min": np.min,
    "logsumexp": lambda x, axis, keepdims: np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims)),
}


@st.composite
def reduction_cases(draw, axis_kind, distinct):
    shape = draw(shapes(min_dims=0 if axis_kind == "none" else 1))
    x = draw(distinct_arrays(shape)) if distinct else draw(float_arrays(shape, low=-5.0, high=5.0))
    return x, draw(axis_args(len(shape), axis_kind))


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis_kind", ["none", "int", "tuple"])
@pytest.mark.parametrize("name", list(REDUCTIONS))
@settings(max_examples=25)
@given(data=st.data())
def test_reductions(name, axis_kind, keepdims, data):
    x, axis = data.draw(reduction_cases(axis_kind, distinct=name in ("max", "min")))
    reference = REDUCTIONS[name]
    check(lambda a: getattr(a, name)(axis=axis, keepdims=keepdims), x,
          reference=lambda a: reference(a, axis=axis, keepdims=keepdims))


@pytest.mark.parametrize("name", ["max", "min"])
@given(x=distinct_arrays())
def test_max_min_gradient_is_one_hot(name, x):
    t = Tensor(x, requires_grad=True)
    getattr(t, name)().backward()
    target = np.argmax(x) if name == "max" else np.argmin(x)
    expected = np.zeros(x.size)
    expected[target] = 1.0
    assert np.array_equal(t.grad.reshape(-1), expected)


@st.composite
def softmax_cases(draw):
    shape = draw(shapes(min_dims=1))
    x = draw(float_arrays(shape, low=-5.0, high=5.0))
    return x, draw(st.integers(-len(shape), len(shape) - 1))


def _log_softmax(x, axis):
    return x - np.log(np.sum(np.exp(x), axis=axis, keepdims=True))


@given(case=softmax_cases())
def test_log_softmax(case):
    x, axis = case
    check(lambda a: a.log_softmax(axis=axis), x, reference=lambda a: _log_softmax(a, axis))


@given(case=softmax_cases())
def test_softmax(case):
    x, axis = case
    out = check(lambda a: a.softmax(axis=axis), x,
                reference=lambda a: np.exp(_log_softmax(a, axis)))
    np.testing.assert_allclose(out.data.sum(axis=axis), 1.0, rtol=1e-12)


@given(x=float_arrays(shape=shapes(min_dims=1), low=-5.0, high=5.0))
def test_softmax_default_axis_is_last(x):
    check(lambda a: a.softmax(), x, reference=lambda a: np.exp(_log_softmax(a, -1)))
    check(lambda a: a.log_softmax(), x, reference=lambda a: _log_softmax(a, -1))


# ---------------------------------------------------------------------------------------------
# Linear algebra
MATMUL_KINDS = ["1d@1d", "1d@nd", "nd@1d", "2d@2d", "batched"]


@st.composite
def matmul_cases(draw, kind):
    n, k, m = (draw(st.integers(1, 4)) for _ in range(3))
    if kind == "1d@1d":
        shape_a, shape_b = (k,), (k,)
    elif kind == "1d@nd":
        batch = draw(shapes(max_dims=2, max_side=3))
        shape_a, shape_b = (k,), batch + (k, m)
    elif kind == "nd@1d":
        batch = draw(shapes(max_dims=2, max_side=3))
        shape_a, shape_b = batch + (n, k), (k,)
    elif kind == "2d@2d":
        shape_a, shape_b = (n, k), (k, m)
    else:  # batch dimensions that broadcast against each other
        batch_a, batch_b = draw(broadcastable_shapes(min_dims=1, max_dims=2, max_side=3))
        shape_a, shape_b = batch_a + (n, k), batch_b + (k, m)
    a = draw(float_arrays(shape_a, low=-2.0, high=2.0))
    b = draw(float_arrays(shape_b, low=-2.0, high=2.0))
    return a, b


@pytest.mark.parametrize("kind", MATMUL_KINDS)
@given(data=st.data())
def test_matmul(kind, data):
    case = data.draw(matmul_cases(kind))
    a, b = case
    check(lambda x, y: x @ y, a, b, reference=np.matmul)


@pytest.mark.parametrize("kind", MATMUL_KINDS)
@settings(max_examples=10)
@given(data=st.data())
def test_matmul_with_numpy_array_on_either_side(kind, data):
    case = data.draw(matmul_cases(kind))
    a, b = case
    check(lambda y: a @ y, b, reference=lambda y: a @ y)
    check(lambda x: x @ b, a, reference=lambda x: x @ b)


@st.composite
def linear_cases(draw):
    """x of shape batch + (in,) with 0 to 2 batch axes, weight (in, out), bias (out,) or None."""
    batch = draw(shapes(max_dims=2, max_side=3))
    n_in, n_out = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    x = draw(float_arrays(batch + (n_in,), low=-2.0, high=2.0))
    weight = draw(float_arrays((n_in, n_out), low=-2.0, high=2.0))
    bias = draw(st.none() | float_arrays((n_out,), low=-2.0, high=2.0))
    return x, weight, bias


@given(case=linear_cases())
def test_linear(case):
    x, weight, bias = case
    if bias is None:
        check(lambda a, w: tg.linear(a, w), x, weight, reference=np.matmul)
    else:
        check(lambda a, w, b: tg.linear(a, w, b), x, weight, bias,
              reference=lambda a, w, b: a @ w + b)


def test_linear_keeps_float32_and_widens_like_numpy():
    x = Tensor(np.ones((2, 3), dtype=np.float32), requires_grad=True)
    w = Tensor(np.ones((3, 4), dtype=np.float32), requires_grad=True)
    assert tg.linear(x, w, np.ones(4, dtype=np.float32)).dtype == np.float32
    widened = tg.linear(x, w, np.ones(4))  # a float64 bias makes a float64 result, as x @ w + b does
    assert widened.dtype == np.float64
    widened.sum().backward()
    assert x.grad.dtype == np.float32 and w.grad.dtype == np.float32


# ---------------------------------------------------------------------------------------------
# Shapes and indexing
@st.composite
def reshape_cases(draw):
    shape = draw(shapes())
    size = int(np.prod(shape))
    divisor = draw(st.sampled_from([d for d in range(1, size + 1) if size % d == 0]))
    candidates = [(-1,), (size,), tuple(reversed(shape)), (1,) + shape, shape + (1,),
                  (divisor, -1), (-1, divisor), (divisor, 1, size // divisor)]
    if size == 1:
        candidates.append(())
    target = draw(st.sampled_from(candidates))
    return draw(float_arrays(shape)), target


@given(case=reshape_cases(), as_tuple=st.booleans())
def test_reshape(case, as_tuple):
    x, target = case
    fn = (lambda a: a.reshape(target)) if as_tuple else (lambda a: a.reshape(*target))
    check(fn, x, reference=lambda a: a.reshape(target))


@st.composite
def transpose_cases(draw):
    shape = draw(shapes())
    ndim = len(shape)
    axes = draw(st.permutations(range(ndim)))
    negative = draw(st.lists(st.booleans(), min_size=ndim, max_size=ndim))
    axes = tuple(ax - ndim if neg else ax for ax, neg in zip(axes, negative))
    return draw(float_arrays(shape)), axes


@given(case=transpose_cases(), form=st.sampled_from(["varargs", "tuple", "none", "T"]))
def test_transpose(case, form):
    x, axes = case
    if form == "varargs":
        fn, reference = (lambda a: a.transpose(*axes)), (lambda a: a.transpose(axes))
    elif form == "tuple":
        fn, reference = (lambda a: a.transpose(axes)), (lambda a: a.transpose(axes))
    elif form == "none":
        fn, reference = (lambda a: a.transpose()), (lambda a: a.transpose())
    else:
        fn, reference = (lambda a: a.T), (lambda a: a.T)
    check(fn, x, reference=reference)


@st.composite
def basic_indices(draw, shape):
    """A tuple of ints and slices (steps of either sign, possibly empty) for the leading axes."""
    parts = []
    for side in shape[:draw(st.integers(1, len(shape)))]:
        if draw(st.booleans()):
            parts.append(draw(st.integers(-side, side - 1)))
        else:
            start = draw(st.none() | st.integers(-side - 1, side + 1))
            stop = draw(st.none() | st.integers(-side - 1, side + 1))
            step = draw(st.sampled_from([None, 1, 2, -1, -2]))
            parts.append(slice(start, stop, step))
    return tuple(parts) if len(parts) > 1 or draw(st.booleans()) else parts[0]


@st.composite
def advanced_indices(draw, shape):
    """Integer arrays (with repeats, negative entries), on axis 0 or after a slice, or 2-D."""
    kind = draw(st.sampled_from(["list", "array", "2d", "after_slice", "pair"]
                                if len(shape) >= 2 else ["list", "array", "2d"]))
    side = shape[0]
    ints = st.lists(st.integers(-side, side - 1), min_size=1, max_size=6)
    if kind == "list":
        return draw(ints)
    if kind == "array":
        return np.array(draw(ints))
    if kind == "2d":
        grid = draw(st.lists(st.integers(0, side - 1), min_size=4, max_size=4))
        return np.array(grid).reshape(2, 2)
    if kind == "after_slice":
        column = st.lists(st.integers(-shape[1], shape[1] - 1), min_size=1, max_size=5)
        return (slice(None), np.array(draw(column)))
    rows = draw(st.lists(st.integers(0, shape[0] - 1), min_size=3, max_size=3))
    cols = draw(st.lists(st.integers(0, shape[1] - 1), min_size=3, max_size=3))
    return (np.array(rows), np.array(cols))


@st.composite
def mask_indices(draw, shape):
    """Boolean masks: of the full shape, or of the leading axis."""
    mask_shape = shape if draw(st.booleans()) else shape[:1]
    return draw(hnp_bool_arrays(mask_shape))


def hnp_bool_arrays(shape):
    return hnp.arrays(np.bool_, shape)


@st.composite
def getitem_cases(draw, kind):
    shape = draw(shapes(min_dims=1))
    index = draw({"basic": basic_indices, "advanced": advanced_indices,
                  "mask": mask_indices}[kind](shape))
    return draw(float_arrays(shape)), index


@pytest.mark.parametrize("kind", ["basic", "advanced", "mask"])
@given(data=st.data())
def test_getitem(kind, data):
    case = data.draw(getitem_cases(kind))
    x, index = case
    check(lambda a: a[index], x, reference=lambda a: a[index])


@pytest.mark.parametrize("index", [
    (None, Ellipsis, 0), (Ellipsis, slice(1, None)), (slice(None), None), (Ellipsis, [0, 0, 2]),
    (Ellipsis, -1), ([1, 0, 1], slice(None, None, -1)), (np.array([True, False, True]),),
], ids=repr)
@given(x=float_arrays(shape=shapes(min_dims=2, max_dims=3, min_side=3, max_side=3)))
def test_getitem_newaxis_ellipsis_and_mixed(index, x):
    check(lambda a: a[index], x, reference=lambda a: a[index])


@given(x=float_arrays(shape=(4,)), repeats=st.lists(st.integers(0, 3), min_size=1, max_size=8))
def test_getitem_repeated_indices_accumulate(x, repeats):
    t = Tensor(x, requires_grad=True)
    t[np.array(repeats)].sum().backward()
    assert np.array_equal(t.grad, np.bincount(repeats, minlength=4).astype(float))


@given(x=float_arrays(shape=shapes(min_dims=1)))
def test_getitem_with_comparison_mask(x):
    x = away_from(x, 0.0)
    check(lambda a: a[a > 0], x, reference=lambda a: a[a > 0])


@st.composite
def where_cases(draw):
    shape_c, shape_a, shape_b = draw(broadcastable_shapes(num_shapes=3))
    condition = draw(hnp_bool_arrays(shape_c))
    return condition, draw(float_arrays(shape_a)), draw(float_arrays(shape_b))


@given(case=where_cases())
def test_where(case):
    condition, a, b = case
    check(lambda x, y: tg.where(condition, x, y), a, b,
          reference=lambda x, y: np.where(condition, x, y))


@given(case=where_cases())
def test_where_with_numbers_and_arrays(case):
    condition, a, b = case
    check(lambda x: tg.where(condition, x, 0.0), a, reference=lambda x: np.where(condition, x, 0.0))
    check(lambda y: tg.where(condition, 1.5, y), b, reference=lambda y: np.where(condition, 1.5, y))
    check(lambda y: tg.where(condition, a, y), b, reference=lambda y: np.where(condition, a, y))


@given(x=float_arrays(low=-4.0, high=4.0),
       bounds=st.sampled_from([(-1.0, 2.0), (-1.0, None), (None, 2.0), (0.5, 0.75)]))
def test_clip(x, bounds):
    lo, hi = bounds
    x = away_from(x, *(bound for bound in bounds if bound is not None), gap=0.1)
    check(lambda a: a.clip(lo, hi), x, reference=lambda a: np.clip(a, lo, hi))


@st.composite
def concatenate_cases(draw):
    shape = draw(shapes(min_dims=1))
    ndim = len(shape)
    axis = draw(st.integers(-ndim, ndim - 1))
    count = draw(st.integers(1, 3))
    arrays = []
    for _ in range(count):
        piece = list(shape)
        piece[axis] = draw(st.integers(1, 3))
        arrays.append(draw(float_arrays(tuple(piece))))
    return arrays, axis


@given(case=concatenate_cases())
def test_concatenate(case):
    arrays, axis = case
    check(lambda *ts: tg.concatenate(list(ts), axis=axis), *arrays,
          reference=lambda *a: np.concatenate(a, axis=axis))


@given(case=concatenate_cases(), constant=float_arrays(shape=(1,)))
def test_concatenate_with_numpy_array(case, constant):
    arrays, axis = case
    shape = list(arrays[0].shape)
    shape[axis] = 1
    c = np.broadcast_to(constant.reshape((1,) * len(shape)), shape).copy()
    check(lambda *ts: tg.concatenate([c, *ts], axis=axis), *arrays,
          reference=lambda *a: np.concatenate([c, *a], axis=axis))


@st.composite
def stack_cases(draw):
    shape = draw(shapes(max_dims=2))
    axis = draw(st.integers(-len(shape) - 1, len(shape)))
    arrays = [draw(float_arrays(shape)) for _ in range(draw(st.integers(1, 3)))]
    return arrays, axis


@given(case=stack_cases())
def test_stack(case):
    arrays, axis = case
    check(lambda *ts: tg.stack(list(ts), axis=axis), *arrays,
          reference=lambda *a: np.stack(a, axis=axis))


# ---------------------------------------------------------------------------------------------
# A composite expression: fan-out, broadcasting and several ops in one graph
@given(data=pairs(low=-2.0, high=2.0))
def test_composite_expression(data):
    a, b = data

    def fn(x, y):
        h = (x * y).tanh() + (x - y).sigmoid() * x
        return (h.softplus() + (y * y + 1.0).log()).sum() / (1.0 + (x * x).mean())

    check(fn, a, b)


# ---------------------------------------------------------------------------------------------
# float32 in, float32 out and float32 gradients
FLOAT32_OPS = {
    "x * 2.0 + 1": lambda x: x * 2.0 + 1,
    "x / 3": lambda x: x / 3,
    "x ** 2": lambda x: x ** 2,
    "2.0 ** x": lambda x: 2.0 ** x,
    "exp": lambda x: x.exp(),
    "sqrt(|x|+1)": lambda x: (x.abs() + 1.0).sqrt(),
    "sigmoid": lambda x: x.sigmoid(),
    "softplus": lambda x: x.softplus(),
    "tanh": lambda x: x.tanh(),
    "relu": lambda x: x.relu(),
    "mean": lambda x: x.mean(),
    "max(axis=0)": lambda x: x.max(axis=0),
    "logsumexp": lambda x: x.logsumexp(axis=-1),
    "log_softmax": lambda x: x.log_softmax(),
    "softmax": lambda x: x.softmax(),
    "x @ x.T": lambda x: x @ x.T,
    "getitem": lambda x: x[np.array([0, 0, 1])],
    "maximum": lambda x: tg.maximum(x, 0.5),
    "clip": lambda x: x.clip(-1.0, 1.0),
    "where": lambda x: tg.where(x.data > 0, x, 0.1 * x),
    "stack": lambda x: tg.stack([x, x * 2.0], axis=1),
}


@st.composite
def float32_inputs(draw):
    """3x2 float32 arrays with distinct entries (for max) at least 0.15 away from the kinks of
    relu, abs, maximum(x, 0.5) and clip(-1, 1): entries on the grid -1.25, -0.75, ..., 1.25 in a
    drawn order, plus jitter of at most 0.1."""
    order = np.array(draw(st.permutations(range(6))), dtype=np.float64).reshape(3, 2)
    jitter = draw(float_arrays(shape=(3, 2), low=-0.1, high=0.1))
    return ((order - 3) / 2 + 0.25 + jitter).astype(np.float32)


@pytest.mark.parametrize("name", list(FLOAT32_OPS))
@settings(max_examples=10)
@given(x=float32_inputs())
def test_float32_stays_float32(name, x):
    fn = FLOAT32_OPS[name]
    t32 = Tensor(x, requires_grad=True)
    out = fn(t32)
    assert out.dtype == np.float32, f"{name}: output dtype {out.dtype}"
    out.backward(np.ones(out.shape, dtype=np.float32))
    assert t32.grad.dtype == np.float32, f"{name}: gradient dtype {t32.grad.dtype}"
    # and the float32 gradient is the float64 gradient, to float32 accuracy
    t64 = Tensor(x.astype(np.float64), requires_grad=True)
    out64 = fn(t64)
    out64.backward(np.ones(out64.shape))
    np.testing.assert_allclose(out.data, out64.data, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(t32.grad, t64.grad, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Conventions and defaults no gradcheck above reaches (found by tools/mutate.py)
def test_power_exponent_gradient_at_a_zero_base_is_the_limit_zero():
    """d(a^b)/db = a^b log a, which tends to 0 as a -> 0+ (b > 0): 0, not NaN, at a = 0."""
    base = Tensor([0.0, 2.0])
    exponent = Tensor([1.5, 1.5], requires_grad=True)
    (base ** exponent).sum().backward()
    np.testing.assert_allclose(exponent.grad, [0.0, 2.0 ** 1.5 * np.log(2.0)], rtol=1e-15)


def test_softmax_and_log_softmax_default_to_the_last_axis():
    from tinygrad_reparam import composed, ops
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 4)))
    np.testing.assert_array_equal(ops.log_softmax(x).data, ops.log_softmax(x, axis=-1).data)
    np.testing.assert_array_equal(composed.softmax(x).data, composed.softmax(x, axis=-1).data)
    np.testing.assert_allclose(composed.softmax(x).data.sum(axis=-1), 1.0, rtol=1e-15)


def test_concatenate_and_stack_default_to_the_first_axis():
    a, b = Tensor(np.ones((2, 3))), Tensor(np.zeros((2, 3)))
    assert tg.concatenate([a, b]).shape == (4, 3)
    assert tg.stack([a, b]).shape == (2, 2, 3)
    np.testing.assert_array_equal(tg.stack([a, b]).data[1], np.zeros((2, 3)))


@pytest.mark.parametrize("function, take_a", [(tg.maximum, True), (tg.minimum, True)])
def test_maximum_and_minimum_send_the_gradient_to_a_on_ties(function, take_a):
    a = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = Tensor([1.0, 0.0, 5.0], requires_grad=True)  # tie, a larger, b larger
    function(a, b).sum().backward()
    a_wins = [1.0, 1.0, 0.0] if function is tg.maximum else [1.0, 0.0, 1.0]
    np.testing.assert_array_equal(a.grad, a_wins)
    np.testing.assert_array_equal(b.grad, 1.0 - np.array(a_wins))
