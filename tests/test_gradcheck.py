"""gradcheck itself: it passes correct gradients and catches wrong ones."""
import numpy as np
import pytest

from tinygrad_reparam import GradcheckError, Tensor, gradcheck
from tinygrad_reparam.tensor import from_op


def wrong_sin(a):
    """sin with a deliberately wrong VJP: uses sin instead of cos."""
    return from_op("wrong_sin", np.sin(a.data), (a,), (lambda g: g * np.sin(a.data),))


def vjp_ignoring_upstream_gradient(a):
    """The derivative is right, but the VJP forgets to multiply by g."""
    return from_op("bad_square", a.data ** 2, (a,), (lambda g: 2 * a.data + 0 * g,))


def test_correct_gradient_passes():
    x = Tensor(np.array([[0.1, -0.4], [0.3, 0.9]]), requires_grad=True)
    w = Tensor(np.array([0.5, -1.5]), requires_grad=True)
    assert gradcheck(lambda x, w: (x @ w).tanh() * w.sum(), [x, w]) is True


def test_deliberately_wrong_vjp_is_caught_with_the_worst_entry():
    x = Tensor(np.array([0.3, 1.2, -0.7]), requires_grad=True)
    with pytest.raises(GradcheckError, match=r"analytic .* numerical .* difference"):
        gradcheck(wrong_sin, [x])


def test_vjp_that_ignores_the_output_gradient_is_caught():
    x = Tensor(np.array([0.3, 1.2]), requires_grad=True)
    with pytest.raises(GradcheckError):
        gradcheck(lambda a: vjp_ignoring_upstream_gradient(a) * 3.0, [x])


def test_small_error_within_tolerance_passes_and_beyond_fails():
    x = Tensor(np.array([0.5]), requires_grad=True)

    def slightly_off(scale):
        return lambda a: from_op("off", a.data * 2, (a,), (lambda g: g * 2 * (1 + scale),))

    assert gradcheck(slightly_off(1e-7), [x])
    with pytest.raises(GradcheckError):
        gradcheck(slightly_off(1e-2), [x])


def test_inputs_without_grad_are_not_checked_and_none_is_an_error():
    x = Tensor(np.array([0.5, 0.1]), requires_grad=True)
    c = Tensor(np.array([2.0, 3.0]))
    assert gradcheck(lambda x, c: x * c, [x, c])
    with pytest.raises(ValueError, match="nothing to check"):
        gradcheck(lambda c: c * 2.0, [c])


def test_float32_inputs_are_checked_in_float64_and_left_unchanged():
    x = Tensor(np.array([0.25, -0.5], np.float32), requires_grad=True)
    before = x.data.copy()
    assert gradcheck(lambda a: (a * a).exp(), [x])
    np.testing.assert_array_equal(x.data, before)
    assert x.grad is None


def test_fn_must_return_a_tensor():
    x = Tensor(np.array([0.5]), requires_grad=True)
    with pytest.raises(TypeError, match="must return a Tensor"):
        gradcheck(lambda a: a.data * 2, [x])
