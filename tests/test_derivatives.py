"""Every primitive next to its derivative, written out by hand: the comments in ops.py as assertions.

Each row of ``TABLE`` names one primitive of ``ops.py`` (or ``fused.py``, or one function of
``linalg.py``, whose composed matrix helpers get rows too) and gives its
vector-Jacobian product as a textbook writes it: for ``mul``, ``(g * b, g * a)``; for ``tanh``,
``g * (1 - tanh(a)**2)``; for ``sigmoid``, ``g * s * (1 - s)``. The test draws inputs and an
upstream gradient ``g`` with hypothesis, runs the engine's ``backward(g)`` and compares every
input's gradient with the row's formula to 1e-12 relative.

The hand formulas are the plain textbook ones, not the stable forms the engine uses, so the inputs
stay where a textbook form keeps 12 digits (``1 - s`` for ``|a| <= 5``, ``1 - tanh(a)^2`` for
``|a| <= 5``). Two gradients are differences of terms that may cancel (``g - softmax * sum(g)``
and ``g * (sigmoid(l) - t)``); their rows say so, and they are judged relative to the size of
those terms, which is at most ``sum |g|``, rather than to the (possibly tiny) difference itself.

Shapes are kept simple (the two inputs of an elementwise primitive have the same shape): undoing
broadcasting is tested in test_engine.py and test_ops_gradcheck.py; this file is about the
derivatives themselves. A new public function in ops.py, fused.py or linalg.py (or in special/erf.py,
special/beta.py or special/gamma.py, apart from their ``*_array`` versions on plain arrays) without a row fails
``test_the_table_covers_every_primitive``.
"""
import inspect
import math
import sys
from decimal import Decimal, localcontext
from typing import Callable, NamedTuple, Optional

import numpy as np
import pytest
from hypothesis import given, strategies as st

from tinygrad_reparam import fused, linalg, ops
from tinygrad_reparam.special.erf import erf, erfc, ndtri, ndtri_array
from tinygrad_reparam.special import beta as special_beta
from tinygrad_reparam.special.beta import beta_density_array, betainc_derivatives_array
from tinygrad_reparam.special.gamma import digamma_array
from tinygrad_reparam.special import gamma as special_gamma
from tinygrad_reparam.special.gamma import trigamma_array
from tinygrad_reparam.tensor import Tensor
from tinygrad_reparam.testing import float_arrays, positive_scales, shapes

# The public functions of ops.py that are not primitives: two turn numbers into constant
# Tensors, and pass_through is the VJP that primitives share for a derivative of 1.
NOT_PRIMITIVES = {"lift", "operands", "pass_through"}


class Row(NamedTuple):
    op: Callable              # the primitive under test
    vjp: Callable             # vjp(g, *input_arrays, **options) -> one gradient per input, by hand
    inputs: st.SearchStrategy  # draws (tuple of input arrays, dict of keyword options)
    call: Optional[Callable] = None  # how to call op, when it is not op(*tensors, **options)
    cancels: bool = False      # the gradient is a difference of terms of size up to sum |g|


def arrays(*strategies, **options):
    """Inputs drawn from ``strategies``; the ``options`` strategies draw keyword arguments."""
    return st.tuples(st.tuples(*strategies), st.fixed_dictionaries(options))


def same_shape(*make):
    """One array per function in ``make`` (a strategy factory taking a shape), all of one shape."""
    return shapes().flatmap(lambda shape: arrays(*(strategy(shape) for strategy in make)))


def values(low=-10.0, high=10.0):
    return lambda shape: float_arrays(shape, low=low, high=high)


def scales(low=0.1, high=5.0):
    return lambda shape: positive_scales(shape, low=low, high=high)


def booleans(shape):
    """Boolean arrays of ``shape`` (the condition of ``where``)."""
    return st.lists(st.booleans(), min_size=int(np.prod(shape)),
                    max_size=int(np.prod(shape))).map(lambda b: np.array(b, bool).reshape(shape))


@st.composite
def with_axis(draw):
    """A 2-D array and an axis to reduce: None (everything), 0 or 1, with keepdims or without."""
    shape = draw(shapes(min_dims=2, max_dims=2))
    options = {"axis": draw(st.sampled_from([None, 0, 1])), "keepdims": draw(st.booleans())}
    return (draw(float_arrays(shape)),), options


def spread(g, a, axis, keepdims):
    """The reduced gradient ``g`` given back its reduced axes, so that it lines up with ``a``."""
    if axis is None:
        return np.reshape(g, (1,) * a.ndim)
    return g if keepdims else np.expand_dims(g, axis)


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def softmax(a, axis=None):
    e = np.exp(a)
    return e / e.sum(axis=axis, keepdims=True)


# --- the hand-written VJPs of the reductions and of the ops on shapes -----------------------------
def sum_vjp(g, a, axis, keepdims):
    # d(sum_i a_i)/da_j = 1: every entry receives the gradient of the sum it went into
    return (np.broadcast_to(spread(g, a, axis, keepdims), a.shape),)


def max_vjp(g, a, axis, keepdims):
    # d max/da_j = 1 at the largest entry and 0 elsewhere; tied maxima share the 1 evenly
    is_max = a == a.max(axis=axis, keepdims=True)
    return (spread(g, a, axis, keepdims) * is_max / is_max.sum(axis=axis, keepdims=True),)


def logsumexp_vjp(g, a, axis, keepdims):
    # d log(sum_i e^a_i)/da_j = e^a_j / sum_i e^a_i, the softmax
    return (spread(g, a, axis, keepdims) * softmax(a, axis),)


def log_softmax_vjp(g, a, axis):
    # d(a_i - logsumexp(a))/da_j = [i = j] - softmax_j, so the VJP is g_j - softmax_j sum_i g_i
    return (g - softmax(a, axis) * g.sum(axis=axis, keepdims=True),)


def getitem_vjp(g, a, index):
    # a[index] copies entry index[k] to position k: each copy sends its gradient back, and an
    # entry copied twice receives both
    grad = np.zeros_like(a)
    for position, row in enumerate(index):
        grad[row] += g[position]
    return (grad,)


def concatenate_vjp(g, *pieces, axis):
    # each input receives its own slice of the gradient
    ends = np.cumsum([piece.shape[axis] for piece in pieces])
    return tuple(np.split(g, ends[:-1], axis=axis))


@st.composite
def matmul_inputs(draw):
    n, k, m = (draw(st.integers(1, 4)) for _ in range(3))
    return (draw(float_arrays((n, k))), draw(float_arrays((k, m)))), {}


@st.composite
def reshape_inputs(draw):
    shape = draw(shapes())
    return (draw(float_arrays(shape)),), {"shape": (-1,) if draw(st.booleans()) else shape[::-1]}


@st.composite
def transpose_inputs(draw):
    shape = draw(shapes())
    return (draw(float_arrays(shape)),), {"axes": tuple(draw(st.permutations(range(len(shape)))))}


@st.composite
def getitem_inputs(draw):
    """An integer array index on the first axis, repeats allowed."""
    shape = draw(shapes(min_dims=1))
    index = draw(st.lists(st.integers(0, shape[0] - 1), min_size=1, max_size=6))
    return (draw(float_arrays(shape)),), {"index": np.array(index)}


@st.composite
def where_inputs(draw):
    shape = draw(shapes())
    condition = draw(booleans(shape))
    return (draw(float_arrays(shape)), draw(float_arrays(shape))), {"condition": condition}


@st.composite
def concatenate_inputs(draw):
    shape = list(draw(shapes(min_dims=1)))
    axis = draw(st.integers(0, len(shape) - 1))
    pieces = []
    for _ in range(draw(st.integers(1, 3))):
        shape[axis] = draw(st.integers(1, 3))
        pieces.append(draw(float_arrays(tuple(shape))))
    return tuple(pieces), {"axis": axis}


@st.composite
def linear_inputs(draw):
    rows, n_in, n_out = (draw(st.integers(1, 4)) for _ in range(3))
    return (draw(float_arrays((rows, n_in))), draw(float_arrays((n_in, n_out))),
            draw(float_arrays((n_out,)))), {}


# --- linalg.py: stacks of matrices (..., n, n), the VJPs written with explicit inverses ---------
def swap(m):
    return np.swapaxes(m, -1, -2)


@st.composite
def spd_inputs(draw):
    """A stack of symmetric positive definite matrices M M^T + n I (0 to 2 batch axes)."""
    batch, n = draw(shapes(max_dims=2, max_side=3)), draw(st.integers(1, 4))
    m = draw(float_arrays(batch + (n, n), low=-1.0, high=1.0))
    return (m @ swap(m) + n * np.eye(n),), {}


def cholesky_vjp(g, a):
    # A = L L^T gives dL = L Phi(L^-1 dA L^-T), Phi = lower triangle with the diagonal halved,
    # so Abar = sym(L^-T Phi(L^T g) L^-1) (Murray 2016)
    factor = np.linalg.cholesky(a)
    inverse = np.linalg.inv(factor)
    phi = np.tril(swap(factor) @ g) * (1 - 0.5 * np.eye(a.shape[-1]))
    s = swap(inverse) @ phi @ inverse
    return ((s + swap(s)) / 2,)


@st.composite
def triangular_inputs(draw):
    """A triangular system: a with diagonal entries of size 1 to 3 (either sign), b (..., n, k)."""
    batch, n, k = draw(shapes(max_dims=2, max_side=3)), draw(st.integers(1, 4)), draw(st.integers(1, 3))
    a = draw(float_arrays(batch + (n, n), low=-1.0, high=1.0))
    signs = np.where(draw(booleans(batch + (n,))), 1.0, -1.0)
    a[..., np.arange(n), np.arange(n)] = signs * draw(float_arrays(batch + (n,), low=1.0, high=3.0))
    return (a, draw(float_arrays(batch + (n, k)))), {"lower": draw(st.booleans())}


def solve_triangular_vjp(g, a, b, lower):
    # X = T^-1 B, T = a's triangle: Bbar = T^-T g, Abar = -Bbar X^T on T's triangle
    t = np.tril(a) if lower else np.triu(a)
    b_bar = np.linalg.solve(swap(t), g)
    a_bar = -b_bar @ swap(np.linalg.solve(t, b))
    return (np.tril(a_bar) if lower else np.triu(a_bar), b_bar)


def matrices_with_offset(draw_square=False):
    """A stack of matrices (and, for tril/triu, which diagonal)."""
    def inputs(shape):
        options = {} if draw_square else {"diagonal": st.integers(-2, 2)}
        return arrays(float_arrays(shape), **options)
    if draw_square:
        return shapes(max_dims=2, max_side=3).flatmap(
            lambda batch: st.integers(1, 4).flatmap(lambda n: inputs(batch + (n, n))))
    return shapes(min_dims=2).flatmap(inputs)


def diagonal_vjp(g, a):
    # a[..., i, i] picks the diagonal: its gradient goes back onto the diagonal, zeros elsewhere
    grad = np.zeros_like(a)
    grad[..., np.arange(a.shape[-1]), np.arange(a.shape[-1])] = g
    return (grad,)


# --- special/beta.py: the incomplete beta function and the Student t CDF ------------------------
def integers(low, high):
    """Arrays of whole numbers low..high, as floats (parameters where I_x(a, b) is a finite sum)."""
    return lambda shape: st.lists(st.integers(low, high), min_size=int(np.prod(shape)),
                                  max_size=int(np.prod(shape))).map(
        lambda v: np.array(v, dtype=float).reshape(shape))


def _betainc_vjp_at(a, b, x):
    """(dI/da, dI/db, dI/dx) at whole numbers a = m and b = n, from the finite sums
    I_x(a, n) = x^a sum_{j<n} (a)_j / j! (1-x)^j (real a) and, by the symmetry I_x(m, b) =
    1 - I_(1-x)(b, m), I_x(m, b) = 1 - (1-x)^b sum_{j<m} (b)_j / j! x^j (real b), each differentiated
    term by term: d (a)_j / da = (a)_j sum_{i<j} 1/(a + i). In 40 digits: the terms of a sum can
    cancel (dI/db is small where I is, and each term is of size 1)."""
    with localcontext() as context:
        context.prec = 40
        m, n, x = int(a), int(b), Decimal(float(x))
        y = 1 - x

        def derivative_of_sum(c, u, v, terms):  # d/dc [u^c sum_{j<terms} (c)_j / j! v^j]
            total, coefficient, harmonic = Decimal(0), Decimal(1), Decimal(0)
            for j in range(terms):
                total += coefficient * v ** j * (u.ln() + harmonic)
                coefficient, harmonic = coefficient * (c + j) / (j + 1), harmonic + Decimal(1) / (c + j)
            return u ** c * total

        density = x ** (m - 1) * y ** (n - 1) * math.factorial(m + n - 1) / (math.factorial(m - 1) * math.factorial(n - 1))
        return (float(derivative_of_sum(m, x, y, n)), float(-derivative_of_sum(n, y, x, m)), float(density))


def betainc_vjp(g, a, b, x):
    d_a, d_b, d_x = np.vectorize(_betainc_vjp_at)(a, b, x)
    return g * d_a, g * d_b, g * d_x


def away_from_zero(low, high):
    """Values with low <= |v| <= high, of either sign (the x = df / (df + t^2) of the Student t's
    hand formula rounds to 1 as t -> 0, where its terms are inf * 0)."""
    return lambda shape: st.tuples(float_arrays(shape, low=low, high=high), booleans(shape)).map(
        lambda drawn: np.where(drawn[1], drawn[0], -drawn[0]))


def student_t_cdf_vjp(g, df, t):
    # F = 1 - I_x(df/2, 1/2) / 2 for t > 0 (I_x / 2 for t < 0), x = df / (df + t^2), dx/d(df) = t^2 / (df + t^2)^2
    x = df / (df + t * t)
    d_df = -np.sign(t) * 0.5 * (0.5 * betainc_derivatives_array(0.5 * df, 0.5, x)[0]
                                + beta_density_array(0.5 * df, 0.5, x) * t * t / (df + t * t) ** 2)
    log_density = np.vectorize(lambda d, u: math.lgamma((d + 1) / 2) - math.lgamma(d / 2) - 0.5 * math.log(d * math.pi)
                               - (d + 1) / 2 * math.log1p(u * u / d))(df, t)
    return g * d_df, g * np.exp(log_density)  # dF/dt is the density


# --- special/gamma.py: the regularised incomplete gamma function P(a, x) -------------------------
def gammainc_vjp(g, a, x):
    # P(a, x) = sum_n x^(a+n) e^-x / Gamma(a+n+1), so dP/da = sum_n (that term) (log x - digamma(a+n+1)),
    # term by term (for x <= a every term has one sign: no cancellation); dP/dx = x^(a-1) e^-x / Gamma(a)
    lgamma = np.vectorize(math.lgamma)
    a_n = a[..., None] + np.arange(300)
    log_x = np.log(x)[..., None]
    terms = np.exp(a_n * log_x - x[..., None] - lgamma(a_n + 1))
    d_a = np.sum(terms * (log_x - digamma_array(a_n + 1)), axis=-1)
    return g * d_a, g * np.exp((a - 1) * np.log(x) - x - lgamma(a))


def shape_and_a_fraction_of_it():
    """(a, x) with a in [0.5, 8] and x = u a, u in [0.05, 1]: the region where the series above has
    terms of one sign."""
    return same_shape(scales(0.5, 8.0), values(0.05, 1.0)).map(
        lambda drawn: ((drawn[0][0], drawn[0][0] * drawn[0][1]), drawn[1]))


TABLE = [
    # elementwise arithmetic
    Row(ops.add, lambda g, a, b: (g, g), same_shape(values(), values())),
    Row(ops.sub, lambda g, a, b: (g, -g), same_shape(values(), values())),
    Row(ops.mul, lambda g, a, b: (g * b, g * a), same_shape(values(), values())),
    Row(ops.div, lambda g, a, b: (g / b, -g * a / b**2), same_shape(values(), scales())),
    # d(a^b)/da = b a^(b-1), d(a^b)/db = a^b log a
    Row(ops.power, lambda g, a, b: (g * b * a ** (b - 1), g * a**b * np.log(a)),
        same_shape(scales(), values(-3.0, 3.0))),
    Row(ops.neg, lambda g, a: (-g,), same_shape(values())),
    # elementwise functions
    Row(ops.exp, lambda g, a: (g * np.exp(a),), same_shape(values())),
    Row(ops.log, lambda g, a: (g / a,), same_shape(scales())),
    Row(ops.log1p, lambda g, a: (g / (1 + a),), same_shape(values(-0.9, 10.0))),
    Row(ops.expm1, lambda g, a: (g * np.exp(a),), same_shape(values())),
    Row(ops.tanh, lambda g, a: (g * (1 - np.tanh(a) ** 2),), same_shape(values(-5.0, 5.0))),
    Row(ops.sin, lambda g, a: (g * np.cos(a),), same_shape(values())),
    Row(ops.cos, lambda g, a: (-g * np.sin(a),), same_shape(values())),
    Row(ops.absolute, lambda g, a: (g * np.sign(a),), same_shape(values())),  # 0 at a = 0
    Row(ops.sigmoid, lambda g, a: (g * sigmoid(a) * (1 - sigmoid(a)),), same_shape(values(-5.0, 5.0))),
    Row(ops.softplus, lambda g, a: (g * sigmoid(a),), same_shape(values())),  # d log(1 + e^a)/da
    # reductions
    Row(ops.reduce_sum, sum_vjp, with_axis()),
    Row(ops.reduce_max, max_vjp, with_axis()),
    Row(ops.logsumexp, logsumexp_vjp, with_axis()),
    Row(ops.log_softmax, log_softmax_vjp,
        shapes(min_dims=2, max_dims=2).flatmap(lambda shape: arrays(float_arrays(shape),
                                                                    axis=st.sampled_from([0, 1]))),
        cancels=True),
    # matrix product, shapes and indexing
    Row(ops.matmul, lambda g, a, b: (g @ b.T, a.T @ g), matmul_inputs()),  # d(AB)/dA = g B^T, ...
    Row(ops.reshape, lambda g, a, shape: (g.reshape(a.shape),), reshape_inputs(),
        call=lambda a, shape: ops.reshape(a, shape)),
    Row(ops.transpose, lambda g, a, axes: (g.transpose(np.argsort(axes)),), transpose_inputs(),
        call=lambda a, axes: ops.transpose(a, axes)),
    Row(ops.getitem, getitem_vjp, getitem_inputs(), call=lambda a, index: ops.getitem(a, index)),
    Row(ops.where, lambda g, a, b, condition: (g * condition, g * ~condition), where_inputs(),
        call=lambda a, b, condition: ops.where(condition, a, b)),
    Row(ops.concatenate, concatenate_vjp, concatenate_inputs(),
        call=lambda *pieces, axis: ops.concatenate(list(pieces), axis=axis)),
    # the fused primitives: x W + b, softplus(l) - t l, and tanh with its VJP in one array
    Row(fused.linear, lambda g, x, w, b: (g @ w.T, x.T @ g, g.sum(axis=0)), linear_inputs()),
    Row(fused.tanh, lambda g, a: (g * (1 - np.tanh(a) ** 2),), same_shape(values(-5.0, 5.0))),
    Row(fused.binary_cross_entropy_with_logits, lambda g, l, t: (g * (sigmoid(l) - t), -g * l),
        same_shape(values(), values(0.0, 1.0)), cancels=True),
    # linalg.py: the Cholesky factor and the triangular solve, and what is composed around them
    Row(linalg.cholesky, cholesky_vjp, spd_inputs()),
    Row(linalg.solve_triangular, solve_triangular_vjp, triangular_inputs()),
    Row(linalg.tril, lambda g, a, diagonal: (g * np.tri(*a.shape[-2:], diagonal),),  # kept entries
        matrices_with_offset()),
    Row(linalg.triu, lambda g, a, diagonal: (g * (1 - np.tri(*a.shape[-2:], diagonal - 1)),),
        matrices_with_offset()),
    Row(linalg.diagonal, diagonal_vjp, matrices_with_offset(draw_square=True)),
    Row(linalg.diag_embed, lambda g, v: (np.diagonal(g, axis1=-2, axis2=-1),),  # v_i sits at [i, i]
        shapes(min_dims=1).flatmap(lambda shape: arrays(float_arrays(shape)))),
    Row(linalg.matrix_transpose, lambda g, a: (swap(g),),
        shapes(min_dims=2).flatmap(lambda shape: arrays(float_arrays(shape)))),
    # special/erf.py: d erf/da = 2/sqrt(pi) e^(-a^2), d erfc/da = minus that, d Phi^-1(p)/dp = 1/phi
    Row(erf, lambda g, a: (g * 2 / np.sqrt(np.pi) * np.exp(-a**2),), same_shape(values(-5.0, 5.0))),
    Row(erfc, lambda g, a: (-g * 2 / np.sqrt(np.pi) * np.exp(-a**2),), same_shape(values(-5.0, 5.0))),
    Row(ndtri, lambda g, p: (g * np.sqrt(2 * np.pi) * np.exp(ndtri_array(p) ** 2 / 2),),
        same_shape(values(1e-3, 1.0 - 1e-3))),
    # special/beta.py: d log B/da = digamma(a) - digamma(a + b); I_x(a, b) and the Student t CDF above
    Row(special_beta.lbeta, lambda g, a, b: (g * (digamma_array(a) - digamma_array(a + b)),
                                             g * (digamma_array(b) - digamma_array(a + b))),
        same_shape(scales(), scales())),
    Row(special_beta.betainc, betainc_vjp, same_shape(integers(1, 6), integers(1, 6), values(0.05, 0.95))),
    Row(special_beta.student_t_cdf, student_t_cdf_vjp, same_shape(scales(0.5, 20.0), away_from_zero(0.05, 5.0))),
    # special/gamma.py: d lgamma/da = digamma(a), d digamma/da = trigamma(a) (their values are checked
    # against 90-digit references in test_special_gamma.py); P(a, x) above
    Row(special_gamma.lgamma, lambda g, a: (g * digamma_array(a),), same_shape(scales(0.05, 30.0))),
    Row(special_gamma.digamma, lambda g, a: (g * trigamma_array(a),), same_shape(scales(0.05, 30.0))),
    Row(special_gamma.gammainc, gammainc_vjp, shape_and_a_fraction_of_it()),
]


def public_functions(module) -> set:
    """The names of the functions ``module`` defines itself (not imported), without a leading _."""
    return {name for name, value in vars(module).items()
            if inspect.isfunction(value) and value.__module__ == module.__name__
            and not name.startswith("_")}


def assert_close(actual, expected, size, what):
    """Entrywise to 1e-12 relative, and to 1e-12 of ``size`` where entries are near 0."""
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-12 * size, err_msg=what)


@pytest.mark.parametrize("row", TABLE, ids=lambda row: row.op.__name__)
@given(data=st.data())
def test_the_engine_backward_is_the_derivative_written_by_hand(row, data):
    inputs, options = data.draw(row.inputs, label="inputs and options")
    tensors = [Tensor(array, requires_grad=True) for array in inputs]
    out = (row.call or row.op)(*tensors, **options)
    g = data.draw(float_arrays(out.shape), label="g")
    out.backward(g)
    expected = row.vjp(g, *inputs, **options)
    assert len(expected) == len(tensors)
    for position, (tensor, grad) in enumerate(zip(tensors, expected)):
        assert tensor.grad.shape == tensor.shape
        size = np.abs(g).sum() if row.cancels else np.abs(grad).max(initial=0.0)
        assert_close(tensor.grad, grad, size, f"{row.op.__name__}: gradient of input {position}")


def test_the_table_covers_every_primitive():
    """Every public function of ops.py (apart from NOT_PRIMITIVES), of fused.py and of linalg.py
    has a row."""
    in_table = {(row.op.__module__, row.op.__name__) for row in TABLE}
    primitives = {(ops.__name__, name) for name in public_functions(ops) - NOT_PRIMITIVES}
    primitives |= {(fused.__name__, name) for name in public_functions(fused)}
    primitives |= {(linalg.__name__, name) for name in public_functions(linalg)}
    erf_module = sys.modules["tinygrad_reparam.special.erf"]  # (special.erf is the function)
    primitives |= {(erf_module.__name__, name) for name in public_functions(erf_module)
                   if not name.endswith("_array")}  # erf_array etc.: the same on plain arrays
    primitives |= {(special_beta.__name__, name) for name in public_functions(special_beta)
                   if not name.endswith("_array")}
    primitives |= {(special_gamma.__name__, name) for name in public_functions(special_gamma)
                   if not name.endswith("_array")}
    assert primitives - in_table == set(), "primitives without a row in TABLE"
    assert in_table - primitives == set(), "rows for functions that are not primitives"
    assert NOT_PRIMITIVES <= public_functions(ops), "NOT_PRIMITIVES names a function ops.py lacks"
