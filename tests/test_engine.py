"""Exact gradients on tiny graphs, and the engine's contract: accumulation, retain_graph,
freeing, no_grad, detach, dtypes and the errors users see."""
import weakref

import numpy as np
import pytest

import tinygrad_reparam as tr
from tinygrad_reparam import Tensor, no_grad
from tinygrad_reparam.tensor import from_op


def param(values):
    return Tensor(np.asarray(values, dtype=np.float64), requires_grad=True)


# --- tiny exact graphs --------------------------------------------------------------------------
def test_fan_out_sums_both_paths():
    a = param(3.0)
    loss = a * 2.0 + a * a  # d/da = 2 + 2a = 8
    loss.backward()
    assert a.grad == pytest.approx(8.0)


def test_diamond():
    a = param(1.5)
    b = a + a
    c = b + b  # c = 4a
    c.backward()
    assert a.grad == pytest.approx(4.0)


def test_diamond_with_products():
    a = param(2.0)
    b = a * a        # a^2
    c = b * a        # a^3 via two paths into a
    d = c + b        # a^3 + a^2, d' = 3a^2 + 2a = 16
    d.backward()
    assert a.grad == pytest.approx(16.0)


def test_node_reused_many_times():
    a = param([1.0, -2.0])
    total = a
    for _ in range(99):
        total = total + a  # 100 a
    total.sum().backward()
    np.testing.assert_array_equal(a.grad, [100.0, 100.0])


def test_same_tensor_as_both_operands():
    a = param([3.0])
    (a * a).sum().backward()
    np.testing.assert_allclose(a.grad, [6.0])


def test_intermediate_grad_only_when_retained():
    a = param(2.0)
    b = a * 3.0
    c = b * b
    b.retain_grad()
    c.backward()
    assert b.grad == pytest.approx(2 * 6.0)
    assert a.grad == pytest.approx(2 * 6.0 * 3.0)
    d = a * 5.0
    (d * 2.0).backward()
    assert d.grad is None


def test_reparameterized_normal_identities():
    mu, sigma = param([0.5, -1.0]), param([2.0, 0.3])
    eps = Tensor([0.7, -1.2])
    z = mu + sigma * eps
    z.backward(np.ones(2))
    np.testing.assert_array_equal(mu.grad, [1.0, 1.0])  # dz/dmu = 1
    np.testing.assert_array_equal(sigma.grad, eps.data)  # dz/dsigma = eps


# --- accumulation, retain_graph, freeing ----------------------------------------------------------
def test_leaves_accumulate_across_backward_calls():
    a = param([1.0, 2.0])
    (a * a).sum().backward()
    np.testing.assert_allclose(a.grad, [2.0, 4.0])
    (3.0 * a).sum().backward()
    np.testing.assert_allclose(a.grad, [5.0, 7.0])
    a.grad = None
    (3.0 * a).sum().backward()
    np.testing.assert_allclose(a.grad, [3.0, 3.0])


def test_accumulation_is_out_of_place():
    a, b = param([1.0]), param([1.0])
    c = a + b
    c.backward(np.array([1.0]))
    assert a.grad is not b.grad  # the identity VJP passes g through; the leaves must not share it
    a.grad += 10.0
    np.testing.assert_array_equal(b.grad, [1.0])


def test_user_grad_array_is_copied():
    a = param([1.0, 2.0])
    g = np.array([1.0, 1.0])
    (a + 0.0).backward(g)
    g[0] = 99.0
    np.testing.assert_array_equal(a.grad, [1.0, 1.0])


def test_second_backward_through_freed_graph_raises():
    a = param(2.0)
    loss = (a * a).exp()
    loss.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        loss.backward()


def test_freed_error_leaves_grads_untouched():
    a, b = param(1.0), param(2.0)
    shared = a * b
    first = shared * 2.0
    second = shared * 3.0 + b
    first.backward()
    grads_before = (a.grad.copy(), b.grad.copy())
    with pytest.raises(RuntimeError, match="already freed"):
        second.backward()
    np.testing.assert_array_equal(a.grad, grads_before[0])
    np.testing.assert_array_equal(b.grad, grads_before[1])


def test_retain_graph_allows_second_backward():
    a = param(2.0)
    loss = a * a * a
    loss.backward(retain_graph=True)
    loss.backward()
    assert a.grad == pytest.approx(2 * 12.0)


def test_finished_graph_is_freed_after_backward():
    a = param(np.ones(4))
    hidden = a * 2.0
    squares = hidden * hidden
    intermediates = [weakref.ref(t) for t in (hidden, squares)] + [weakref.ref(hidden.data)]
    loss = squares.sum()
    del hidden, squares
    assert all(ref() is not None for ref in intermediates)  # the graph holds them ...
    loss.backward()
    assert all(ref() is None for ref in intermediates)      # ... until backward releases it
    assert loss.is_freed and loss.parents == () and a.grad is not None


def test_retain_graph_keeps_the_graph_for_display():
    a = param(np.ones(4))
    loss = (a * 2.0).sum()
    loss.backward(retain_graph=True)
    assert not loss.is_freed and loss.parents[0].parents[0] is a


def test_deep_chain_of_a_million_nodes():
    a = param(np.array([1.0]))
    y = a
    for _ in range(1_000_000):
        y = -y
    y.sum().backward()  # iterative: no RecursionError
    np.testing.assert_array_equal(a.grad, [1.0])  # an even number of negations


# --- errors that teach -------------------------------------------------------------------------
def test_backward_on_non_scalar_needs_grad():
    a = param([1.0, 2.0])
    with pytest.raises(RuntimeError, match=r"needs a scalar.*shape \(2,\)"):
        (a * 2.0).backward()


def test_backward_grad_shape_must_match():
    a = param([1.0, 2.0])
    with pytest.raises(ValueError, match=r"grad has shape \(3,\).*\(2,\)"):
        (a * 2.0).backward(np.ones(3))


@pytest.mark.parametrize("make, reason", [
    (lambda: Tensor([1.0, 2.0]).sum(), "none of the tensors"),
    (lambda: Tensor(3.0), "requires_grad=False"),
    (lambda: param(3.0).detach() * 2.0, "none of the tensors"),
    (lambda: param(3.0).detach(), "detach"),
])
def test_backward_without_grad_says_why(make, reason):
    with pytest.raises(RuntimeError, match=reason):
        make().backward()


def test_backward_under_no_grad_says_why():
    a = param(3.0)
    with no_grad():
        b = a * 2.0
    with pytest.raises(RuntimeError, match="no_grad"):
        b.backward()


def test_matmul_shape_error_names_both_shapes():
    with pytest.raises(ValueError, match=r"matmul: \(3, 4\) @ \(5, 2\): inner dimensions 4 and 5 differ"):
        Tensor(np.ones((3, 4))) @ Tensor(np.ones((5, 2)))


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_broadcast_error_names_op_and_shapes(op):
    a, b = Tensor(np.ones(3)), Tensor(np.ones(4))
    fn = {"add": lambda: a + b, "sub": lambda: a - b, "mul": lambda: a * b, "div": lambda: a / b}[op]
    with pytest.raises(ValueError, match=rf"{op}: shapes \(3,\) and \(4,\) cannot be broadcast"):
        fn()


def test_reshape_and_axis_errors():
    x = Tensor(np.ones((3, 4)))
    with pytest.raises(ValueError, match=r"reshape: cannot reshape .*\(3, 4\) \(12 elements\) into \(5,\)"):
        x.reshape(5)
    with pytest.raises(ValueError, match="sum: axis 2 is out of range"):
        x.sum(axis=2)
    with pytest.raises(ValueError, match="transpose"):
        x.transpose(0, 0)


@pytest.mark.parametrize("bad", ["abc", None, [1 + 2j], np.array([object()])])
def test_bad_tensor_data_is_a_type_error(bad):
    with pytest.raises(TypeError, match="Tensor data"):
        Tensor(bad)


def test_tensor_requiring_grad_refuses_silent_numpy_conversion():
    with pytest.raises(TypeError, match="detach"):
        np.asarray(param([1.0]))
    np.testing.assert_array_equal(np.asarray(Tensor([1.0])), [1.0])


def test_item_needs_one_element():
    assert Tensor([[2.5]]).item() == 2.5
    with pytest.raises(ValueError, match="one element"):
        Tensor([1.0, 2.0]).item()


# --- no_grad, detach ---------------------------------------------------------------------------
def test_no_grad_context_and_restore_on_exception():
    a = param(1.0)
    with pytest.raises(KeyError):
        with no_grad():
            assert not tr.is_grad_enabled()
            raise KeyError("boom")
    assert tr.is_grad_enabled()
    assert (a * 2.0).requires_grad


def test_no_grad_nests():
    with no_grad():
        with no_grad():
            pass
        assert not tr.is_grad_enabled()
    assert tr.is_grad_enabled()


def test_no_grad_decorator():
    @no_grad()
    def evaluate(x):
        return x * 2.0

    assert not evaluate(param(1.0)).requires_grad
    assert tr.is_grad_enabled()
    with pytest.raises(TypeError, match="parentheses"):
        no_grad(evaluate)


def test_detach_shares_values_but_stops_gradient():
    a = param([1.0, 2.0])
    b = a.detach()
    assert not b.requires_grad and b.data is a.data
    (a * b).sum().backward()
    np.testing.assert_array_equal(a.grad, [1.0, 2.0])  # b is a constant: d(a*b)/da = b


# --- dtypes, conversions and operators -----------------------------------------------------------
def test_dtype_rules():
    assert Tensor([1, 2]).dtype == np.float64
    assert Tensor(True).dtype == np.float64
    assert Tensor(np.arange(3, dtype=np.int32)).dtype == np.float64
    assert Tensor(np.ones(2, np.float32)).dtype == np.float32


def test_float32_stays_float32_forward_and_backward():
    x = Tensor(np.array([0.5, -1.0, 2.0], np.float32), requires_grad=True)
    w = Tensor(np.ones((3, 2), np.float32), requires_grad=True)
    y = ((x * 2.0 + 1).sigmoid() @ w).softplus().logsumexp() / 3 - x.tanh().sum() ** 2
    assert y.dtype == np.float32
    y.backward()
    assert x.grad.dtype == np.float32 and w.grad.dtype == np.float32


def test_numbers_and_arrays_on_either_side():
    x = param([1.0, 2.0])
    arr = np.array([3.0, 4.0])
    results = [x + 1, 1 + x, x - arr, arr - x, x * arr, arr * x, x / 2, 2 / x, x ** 2, 2 ** x, -x]
    expected = [[2, 3], [2, 3], [-2, -2], [2, 2], [3, 8], [3, 8], [0.5, 1], [2, 1], [1, 4], [2, 4], [-1, -2]]
    for result, values in zip(results, expected):
        assert isinstance(result, Tensor) and result.requires_grad
        np.testing.assert_allclose(result.data, values)
    (arr @ x).backward()
    np.testing.assert_array_equal(x.grad, arr)


def test_comparisons_give_plain_boolean_arrays():
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    mask = x > 1.5
    assert isinstance(mask, np.ndarray) and mask.dtype == bool
    np.testing.assert_array_equal(mask, [False, True, True])
    np.testing.assert_array_equal(x <= Tensor([1.0, 1.0, 4.0]), [True, False, True])


def test_repr_shows_op():
    x = param([1.0, 2.0])
    assert "op=mul" in repr(x * 2.0)
    assert "requires_grad=True" in repr(x)


def test_relu_subgradient_at_zero_is_zero():
    x = param([-1.0, 0.0, 2.0])
    x.relu().sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 1.0])


def test_max_splits_ties_evenly():
    x = param([3.0, 1.0, 3.0])
    x.max().backward()
    np.testing.assert_array_equal(x.grad, [0.5, 0.0, 0.5])


def test_getitem_repeated_indices_accumulate():
    x = param([1.0, 2.0, 3.0])
    x[np.array([0, 0, 2, 0])].sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 0.0, 1.0])


def test_stable_functions_at_extremes():
    x = param([-1000.0, 0.0, 1000.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
        s = x.sigmoid()
        sp = x.softplus()
        (s.sum() + sp.sum() + x.logsumexp() + x.log_softmax().sum()).backward()
    np.testing.assert_allclose(s.data, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(sp.data, [0.0, np.log(2.0), 1000.0])
    assert np.all(np.isfinite(x.grad))


def test_logsumexp_of_all_minus_infinity_is_minus_infinity():
    x = Tensor([-np.inf, -np.inf], requires_grad=True)
    out = x.logsumexp()
    assert out.data == -np.inf
    out.backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0])


def test_user_defined_primitive_with_from_op():
    x = param([0.3, -0.2])

    def cube(a):
        return from_op("cube", a.data ** 3, (a,), (lambda g: g * 3 * a.data ** 2,))  # d a^3/da = 3a^2

    assert tr.gradcheck(cube, [x])


def test_from_op_needs_one_vjp_per_parent():
    # zip() would silently drop the second parent's gradient; from_op refuses instead.
    a, b = param([1.0]), param([2.0])
    with pytest.raises(ValueError, match="2 parents but 1 VJPs"):
        from_op("product", a.data * b.data, (a, b), (lambda g: g * b.data,))


def test_binary_cross_entropy_with_logits_is_exact_stable_and_differentiable():
    logits = np.array([-1000.0, -3.0, 0.0, 2.5, 1000.0])
    targets = np.array([0.0, 1.0, 0.5, 0.0, 1.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        out = tr.binary_cross_entropy_with_logits(Tensor(logits), targets).data
    p = 1 / (1 + np.exp(-logits[1:4]))
    reference = -(targets[1:4] * np.log(p) + (1 - targets[1:4]) * np.log1p(-p))
    np.testing.assert_allclose(out[1:4], reference, rtol=1e-14)
    np.testing.assert_array_equal(out[[0, 4]], [0.0, 0.0])  # confident and right: no loss
    assert tr.gradcheck(lambda l, t: tr.binary_cross_entropy_with_logits(l, t),
                        [param(logits[1:4]), param(targets[1:4])])


def test_expm1_and_log1p_are_accurate_for_tiny_inputs_and_differentiable():
    tiny = Tensor([1e-20, -1e-12])
    np.testing.assert_array_equal(tiny.expm1().data, [1e-20, np.expm1(-1e-12)])
    np.testing.assert_array_equal(tiny.log1p().data, [1e-20, np.log1p(-1e-12)])
    assert tr.gradcheck(lambda a: a.expm1() * a.log1p(), [param([0.3, -0.2, 1.5])])


def test_broadcast_gradients_are_the_sums_to_rounding():
    # Undoing broadcasting is a plain sum over the broadcast axes: checked to rounding (the order
    # of summation may differ), for a bias added to a batch (leading axes), a column (an axis of
    # size 1) and a scalar.
    rng = np.random.default_rng(0)
    x = param(rng.normal(size=(2, 3, 4)))
    bias, column, scalar = param(rng.normal(size=4)), param(rng.normal(size=(3, 1))), param(1.5)
    g = rng.normal(size=(2, 3, 4))
    (x + bias + column + scalar).backward(g)
    np.testing.assert_allclose(bias.grad, g.sum(axis=(0, 1)), rtol=1e-15)
    np.testing.assert_allclose(column.grad, g.sum(axis=(0, 2))[:, None], rtol=1e-15)
    np.testing.assert_allclose(scalar.grad, g.sum(), rtol=1e-15)
    w, b = param(rng.normal(size=(4, 5))), param(rng.normal(size=5))
    h = rng.normal(size=(2, 3, 5))
    tr.linear(x, w, b).backward(h)
    np.testing.assert_allclose(b.grad, h.sum(axis=(0, 1)), rtol=1e-15)
    np.testing.assert_allclose(w.grad, np.einsum("abi,abj->ij", x.data, h), rtol=1e-13)
