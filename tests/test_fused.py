"""The fused forms in fused.py equal the plain forms they stand in for.

``fused.linear`` is ``x @ W + b`` as one node, ``fused.binary_cross_entropy_with_logits`` is
``softplus(l) - t * l`` as one node, and ``fused.tanh`` is ``ops.tanh`` with its VJP written
into one array. Values and gradients must be those of the composed form:
bit for bit where the arithmetic is the same, and to rounding where a sum runs in another order
(a batch with several leading axes, or two gradient paths added in a different order).
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinygrad_reparam import Tensor, composed, fused, ops
from tinygrad_reparam.testing import float_arrays


def values_and_gradients(fn, *arrays, grad_seed=0):
    """fn's value and the gradients of every input, for one random output gradient."""
    inputs = [Tensor(a, requires_grad=True) for a in arrays]
    out = fn(*inputs)
    out.backward(np.random.default_rng(grad_seed).standard_normal(out.shape).astype(out.dtype))
    return out.data, [x.grad for x in inputs]


@st.composite
def layers(draw, batch_dims=(1,), bias=True):
    """x of shape batch + (in,), a weight (in, out) and a bias (out,) or None."""
    n_batch = draw(st.sampled_from(batch_dims))
    batch = tuple(draw(st.integers(1, 4)) for _ in range(n_batch))
    n_in, n_out = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    x = draw(float_arrays(batch + (n_in,), low=-3.0, high=3.0))
    weight = draw(float_arrays((n_in, n_out), low=-3.0, high=3.0))
    return (x, weight, draw(float_arrays((n_out,), low=-3.0, high=3.0))) if bias else (x, weight)


@settings(max_examples=60, deadline=None)
@given(arrays=layers(batch_dims=(0, 1)))
def test_linear_equals_matmul_plus_bias_bit_for_bit_for_a_vector_or_a_matrix_of_rows(arrays):
    fast = values_and_gradients(fused.linear, *arrays)
    plain = values_and_gradients(composed.linear, *arrays)
    assert np.array_equal(fast[0], plain[0])
    for fast_grad, plain_grad in zip(fast[1], plain[1]):
        assert np.array_equal(fast_grad, plain_grad)


@settings(max_examples=60, deadline=None)
@given(arrays=layers(batch_dims=(2, 3)))
def test_linear_equals_matmul_plus_bias_to_rounding_with_several_batch_axes(arrays):
    fast = values_and_gradients(fused.linear, *arrays)
    plain = values_and_gradients(composed.linear, *arrays)
    assert np.array_equal(fast[0], plain[0])  # the forward product is the same matmul
    for fast_grad, plain_grad in zip(fast[1], plain[1]):
        # the weight's gradient sums over the batch in another order: rounding only
        scale = np.abs(plain_grad).max() + 1.0
        np.testing.assert_allclose(fast_grad, plain_grad, rtol=0, atol=1e-14 * scale)


@settings(max_examples=30, deadline=None)
@given(arrays=layers(batch_dims=(1, 2), bias=False))
def test_linear_without_bias(arrays):
    fast = values_and_gradients(fused.linear, *arrays)
    plain = values_and_gradients(composed.linear, *arrays)
    assert np.array_equal(fast[0], plain[0])
    for fast_grad, plain_grad in zip(fast[1], plain[1]):
        np.testing.assert_allclose(fast_grad, plain_grad, rtol=0, atol=1e-14 * (np.abs(plain_grad).max() + 1))


def test_linear_keeps_float32_and_widens_like_numpy():
    x, w = np.ones((2, 3), np.float32), np.ones((3, 2), np.float32)
    assert fused.linear(Tensor(x), Tensor(w), Tensor(np.ones(2, np.float32))).dtype == np.float32
    assert fused.linear(Tensor(x), Tensor(w), Tensor(np.ones(2))).dtype == np.float64
    assert composed.linear(Tensor(x), Tensor(w), Tensor(np.ones(2))).dtype == np.float64


@pytest.mark.parametrize("make", [fused.linear, composed.linear])
def test_linear_shape_errors_are_the_same_for_both_forms(make):
    with pytest.raises(ValueError, match=r"linear: x of shape \(2, 4\) and weight of shape \(3, 2\)"):
        make(np.ones((2, 4)), Tensor(np.ones((3, 2))))
    with pytest.raises(ValueError, match=r"linear: bias has shape \(3,\), expected \(2,\)"):
        make(np.ones((2, 3)), Tensor(np.ones((3, 2))), np.ones(3))


@settings(max_examples=80, deadline=None)
@given(logits=float_arrays((3, 4), low=-40.0, high=40.0),
       targets=float_arrays((3, 4), low=0.0, high=1.0))
def test_bce_equals_softplus_minus_product(logits, targets):
    fast = values_and_gradients(fused.binary_cross_entropy_with_logits, logits, targets)
    plain = values_and_gradients(composed.binary_cross_entropy_with_logits, logits, targets)
    assert np.array_equal(fast[0], plain[0])  # same operations in the same order
    g = np.random.default_rng(0).standard_normal((3, 4))
    # d/dl = g s(l) - g t: the fused VJP subtracts before multiplying, so allow rounding of
    # the two terms' size (they may cancel).
    scale = np.abs(g) * (1.0 + np.abs(targets))
    assert_close_to_terms(fast[1][0], plain[1][0], scale)
    assert np.array_equal(fast[1][1], plain[1][1])  # d/dt = -g l in both


def assert_close_to_terms(a, b, scale):
    """|a - b| within a few ulps of the terms that were added (they may cancel)."""
    assert np.all(np.abs(a - b) <= 4 * np.finfo(np.float64).eps * scale)


@settings(max_examples=60, deadline=None)
@given(a=float_arrays(low=-8.0, high=8.0), seed=st.integers(0, 2**16))
def test_tanh_equals_the_plain_primitive_bit_for_bit(a, seed):
    fast = values_and_gradients(fused.tanh, a, grad_seed=seed)
    plain = values_and_gradients(ops.tanh, a, grad_seed=seed)
    assert np.array_equal(fast[0], plain[0])
    assert np.array_equal(fast[1][0], plain[1][0])


def test_tanh_gradient_keeps_float32():
    a = Tensor(np.array([0.5, -1.0], np.float32), requires_grad=True)
    fused.tanh(a).backward(np.ones(2))  # a float64 output gradient
    assert a.grad.dtype == np.float32
    np.testing.assert_allclose(a.grad, 1 - np.tanh(a.data) ** 2, rtol=1e-6)


def test_linear_with_a_wider_bias_adds_it_in_the_wider_dtype():
    x = np.array([[1.0, 2.0]], np.float32)
    w = np.array([[1.0], [1.0]], np.float32)
    bias = np.array([0.25])  # float64
    out = fused.linear(Tensor(x), Tensor(w), Tensor(bias))
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out.data, [[3.25]])
