"""Hypothesis strategies for property tests of code built on tinygrad_reparam.

A property test states something that must hold for *every* input (``d(a*b)/da == b``,
``softmax`` sums to 1, a reparameterized sample has ``dz/dsigma == eps``) and lets hypothesis
search for a counterexample. Left unconstrained, that search finds floating-point limits first:
``exp(800)`` overflows, ``1 / 1e-310`` is inf, subnormals lose precision, NaN compares unequal
to itself. Those failures are real, but they are about IEEE 754, not about the mathematics under
test. The strategies here therefore draw values from a safe range: finite, no NaN, no infinity,
no subnormals, magnitudes of at most 10 by default, scales bounded away from 0, and small shapes
(at most 3 dimensions of at most 4 entries), so that a failing property points at a wrong
formula rather than at a rounding artefact, and finite-difference checks stay fast.

Example::

    from hypothesis import given
    from tinygrad_reparam.testing import float_arrays, positive_scales

    @given(float_arrays(shape=(3,)), positive_scales(shape=(3,)))
    def test_standardize_roundtrip(x, s):
        assert np.allclose((x / s) * s, x)

hypothesis is a test-only dependency: install it with ``pip install "tinygrad_reparam[test]"``.
"""
from __future__ import annotations

import numpy as np

try:
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError as error:  # pragma: no cover - only without the test extra
    raise ImportError(
        'tinygrad_reparam.testing needs hypothesis: pip install "tinygrad_reparam[test]"'
    ) from error

from tinygrad_reparam import checks
from tinygrad_reparam.tensor import Tensor

__all__ = ["shapes", "float_arrays", "broadcastable_shapes", "positive_scales",
           "probability_vectors", "tensors"]


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = 4):
    """Array shapes (tuples of ints) with ``min_dims..max_dims`` axes of ``min_side..max_side``.

    Example: ``shapes(min_dims=1, max_dims=2)`` draws shapes such as ``(3,)`` or ``(2, 4)``.
    """
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims,
                            min_side=min_side, max_side=max_side)


def _shape_strategy(shape):
    """None -> any small shape; an int or tuple -> exactly that shape; a strategy -> itself."""
    if shape is None:
        return shapes()
    if isinstance(shape, st.SearchStrategy):
        return shape
    if checks.is_integer(shape):
        return st.just((int(shape),))
    return st.just(tuple(int(side) for side in shape))


def _inward_bounds(low: float, high: float, dtype) -> tuple:
    """The closest values of ``dtype`` inside [low, high] (hypothesis needs exact bounds)."""
    low_d, high_d = dtype.type(low), dtype.type(high)
    if low_d < low:
        low_d = np.nextafter(low_d, dtype.type(np.inf))
    if high_d > high:
        high_d = np.nextafter(high_d, dtype.type(-np.inf))
    return float(low_d), float(high_d)


def float_arrays(shape=None, low: float = -10.0, high: float = 10.0, dtype=np.float64):
    """NumPy arrays of finite floats in ``[low, high]``: no NaN, no inf, no subnormals.

    ``shape`` is a tuple, an int, a strategy of shapes, or None (any of ``shapes()``);
    ``dtype`` is float64 or float32.

    Example: ``float_arrays(shape=(2, 3), low=-1.0, high=1.0)`` draws 2x3 float64 arrays
    with entries in [-1, 1].
    """
    dtype = checks.float_dtype(dtype, "float_arrays: dtype")
    if dtype.itemsize not in (4, 8):  # the float widths hypothesis draws
        raise ValueError(f"float_arrays: dtype must be float32 or float64, got {dtype}")
    if not low <= high:
        raise ValueError(f"float_arrays: need low <= high, got low={low}, high={high}")
    low, high = _inward_bounds(low, high, dtype)
    elements = st.floats(min_value=low, max_value=high, allow_nan=False, allow_infinity=False,
                         allow_subnormal=False, width=8 * dtype.itemsize)
    return hnp.arrays(dtype, _shape_strategy(shape), elements=elements)


def broadcastable_shapes(num_shapes: int = 2, min_dims: int = 0, max_dims: int = 3,
                         min_side: int = 1, max_side: int = 4):
    """Tuples of ``num_shapes`` shapes that broadcast together under NumPy's rules.

    Sides of 1 and missing leading axes both occur, so both ways of broadcasting are exercised.

    Example: ``broadcastable_shapes()`` draws pairs such as ``((3, 1), (4,))`` or ``((), (2, 2))``;
    ``np.broadcast_shapes(*pair)`` never raises.
    """
    return hnp.mutually_broadcastable_shapes(
        num_shapes=num_shapes, min_dims=min_dims, max_dims=max_dims,
        min_side=min_side, max_side=max_side,
    ).map(lambda drawn: drawn.input_shapes)


def positive_scales(shape=None, low: float = 1e-2, high: float = 10.0, dtype=np.float64):
    """Arrays of strictly positive values in ``[low, high]``: standard deviations, temperatures,
    denominators, bases of logarithms; bounded away from 0 so that 1/s and log s stay tame.

    Example: ``positive_scales(shape=(4,))`` draws arrays such as ``[0.5, 3.0, 0.01, 9.9]``.
    """
    if not 0 < low <= high:
        raise ValueError(f"positive_scales: need 0 < low <= high, got low={low}, high={high}")
    return float_arrays(shape, low=low, high=high, dtype=dtype)


@st.composite
def _probability_vectors(draw, k, min_k, max_k, min_prob):
    size = k if k is not None else draw(st.integers(min_value=min_k, max_value=max_k))
    if size * min_prob > 1.0:
        raise ValueError(f"probability_vectors: {size} entries of at least {min_prob} "
                         f"cannot sum to 1")
    weights = draw(float_arrays(shape=(size,), low=0.0, high=1.0))
    total = weights.sum()
    shares = weights / total if total > 0 else np.full(size, 1.0 / size)
    probs = min_prob + (1.0 - size * min_prob) * shares  # each entry >= min_prob exactly
    return probs.astype(np.float64)


def probability_vectors(k=None, min_k: int = 2, max_k: int = 6, min_prob: float = 0.0):
    """1-D float64 arrays of ``k`` nonnegative probabilities (at least ``min_prob`` each) that sum
    to 1 within 1e-12; ``k=None`` draws the length from ``min_k..max_k``. Entries equal to 0 can
    occur when ``min_prob == 0``; pass e.g. ``min_prob=1e-3`` to keep ``log p`` finite.

    Example: ``probability_vectors(k=3, min_prob=0.05)`` draws vectors such as
    ``[0.05, 0.6, 0.35]``.
    """
    if k is not None:
        k = checks.count(k, "probability_vectors: k")
    min_prob = checks.number(min_prob, "probability_vectors: min_prob", 0, 1)
    return _probability_vectors(k, min_k, max_k, min_prob)


def tensors(shape=None, low: float = -10.0, high: float = 10.0, requires_grad: bool = True,
            dtype=np.float64):
    """``Tensor``s whose data come from ``float_arrays(shape, low, high, dtype)``.

    Example::

        @given(tensors(shape=(3,)))
        def test_sum_gradient_is_ones(x):
            x.sum().backward()
            assert np.array_equal(x.grad, np.ones(3))
    """
    requires_grad = checks.flag(requires_grad, "tensors: requires_grad")
    return float_arrays(shape, low=low, high=high, dtype=dtype).map(
        lambda data: Tensor(data, requires_grad=requires_grad))
