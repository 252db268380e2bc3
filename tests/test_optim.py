"""SGD and Adam against their update formulas, computed here independently with scalar float
math; argument checks; steps that fail change nothing; a small MLP actually trains."""
import math

import numpy as np
import pytest

from tinygrad_reparam import Tensor
from tinygrad_reparam.nn import MLP
from tinygrad_reparam.optim import SGD, Adam


def param(values, dtype=np.float64):
    return Tensor(np.array(values, dtype=dtype), requires_grad=True)


# Gradients for three steps on a parameter with three entries (one of them zero at some step).
START = [1.0, -2.0, 0.5]
GRADS = [[0.5, -1.0, 3.0], [-0.25, 3.0, 0.0], [2.0, 0.0, -4.0]]


def run(optimizer_class, grads=GRADS, **kwargs) -> list:
    """The parameter's values after each step, with p.grad set by hand to each gradient."""
    p = param(START)
    optimizer = optimizer_class([p], **kwargs)
    history = []
    for grad in grads:
        p.grad = np.array(grad)
        optimizer.step()
        history.append(p.data.copy())
    return history


# --- reference implementations: one scalar at a time, plain Python floats --------------------
def sgd_reference(start, grads, lr, momentum):
    values = []
    for i, p in enumerate(start):
        buf = None
        trajectory = []
        for grad in grads:
            g = grad[i]
            if momentum:
                buf = g if buf is None else momentum * buf + g
                p = p - lr * buf
            else:
                p = p - lr * g
            trajectory.append(p)
        values.append(trajectory)
    return [list(step) for step in zip(*values)]  # [step][entry]


def adam_reference(start, grads, lr, beta1, beta2, eps):
    values = []
    for i, p in enumerate(start):
        m = v = 0.0
        trajectory = []
        for t, grad in enumerate(grads, start=1):
            g = grad[i]
            m = beta1 * m + (1 - beta1) * g
            v = beta2 * v + (1 - beta2) * g * g
            m_hat = m / (1 - beta1 ** t)
            v_hat = v / (1 - beta2 ** t)
            p = p - lr * m_hat / (math.sqrt(v_hat) + eps)
            trajectory.append(p)
        values.append(trajectory)
    return [list(step) for step in zip(*values)]


# --- SGD ----------------------------------------------------------------------------------------
def test_sgd_without_momentum_by_hand():
    history = run(SGD, lr=0.1)
    # p - 0.1 g, step by step, written out
    np.testing.assert_allclose(history[0], [0.95, -1.9, 0.2], rtol=1e-13)
    np.testing.assert_allclose(history[1], [0.975, -2.2, 0.2], rtol=1e-13)
    np.testing.assert_allclose(history[2], [0.775, -2.2, 0.6], rtol=1e-13)
    np.testing.assert_allclose(history, sgd_reference(START, GRADS, 0.1, 0.0), rtol=1e-13)


def test_sgd_with_momentum_by_hand():
    history = run(SGD, lr=0.1, momentum=0.9)
    # entry 0: buf = 0.5 -> p = 0.95; buf = 0.45 - 0.25 = 0.2 -> p = 0.93;
    #          buf = 0.18 + 2 = 2.18 -> p = 0.93 - 0.218 = 0.712
    np.testing.assert_allclose([h[0] for h in history], [0.95, 0.93, 0.712], rtol=1e-13)
    np.testing.assert_allclose(history, sgd_reference(START, GRADS, 0.1, 0.9), rtol=1e-13)


def test_sgd_momentum_buffer_starts_at_the_first_gradient():
    p = param([0.0])
    optimizer = SGD([p], lr=1.0, momentum=0.5)
    p.grad = np.array([2.0])
    optimizer.step()
    np.testing.assert_allclose(p.data, [-2.0])  # buf = g, not (1 - momentum) g or momentum * 0 + g/2
    np.testing.assert_allclose(optimizer.state[p]["momentum_buffer"], [2.0])


# --- Adam ---------------------------------------------------------------------------------------
def test_adam_matches_the_formula_over_three_steps():
    history = run(Adam, lr=0.1, betas=(0.9, 0.999), eps=1e-8)
    expected = adam_reference(START, GRADS, 0.1, 0.9, 0.999, 1e-8)
    np.testing.assert_allclose(history, expected, rtol=1e-12, atol=1e-15)


def test_adam_with_other_hyperparameters():
    history = run(Adam, lr=0.03, betas=(0.5, 0.8), eps=1e-3)
    expected = adam_reference(START, GRADS, 0.03, 0.5, 0.8, 1e-3)
    np.testing.assert_allclose(history, expected, rtol=1e-12, atol=1e-15)


def test_adam_two_steps_by_hand():
    p = param([1.0])
    optimizer = Adam([p], lr=0.1)
    p.grad = np.array([2.0])
    optimizer.step()
    # m = 0.2, v = 0.004; m_hat = 2, v_hat = 4: p = 1 - 0.1 * 2 / (2 + 1e-8)
    np.testing.assert_allclose(p.data, [1.0 - 0.2 / (2.0 + 1e-8)], rtol=1e-15)
    p.grad = np.array([-1.0])
    optimizer.step()
    # m = 0.18 - 0.1 = 0.08, v = 0.003996 + 0.001 = 0.004996
    # m_hat = 0.08 / 0.19, v_hat = 0.004996 / 0.001999
    p_after_first = 1.0 - 0.2 / (2.0 + 1e-8)
    expected = p_after_first - 0.1 * (0.08 / 0.19) / (math.sqrt(0.004996 / 0.001999) + 1e-8)
    np.testing.assert_allclose(p.data, [expected], rtol=1e-12)
    assert optimizer.state[p]["step"] == 2


def test_adam_first_step_is_lr_whatever_the_gradient_scale():
    # Bias correction makes m_hat = g and v_hat = g^2 at t = 1, so every entry moves by ~lr.
    p = param(np.zeros(4))
    optimizer = Adam([p], lr=0.01, eps=1e-12)
    p.grad = np.array([1e-4, -3.0, 250.0, -1e3])
    optimizer.step()
    np.testing.assert_allclose(p.data, [-0.01, 0.01, -0.01, 0.01], rtol=1e-7)


def test_adam_counts_steps_per_parameter():
    a, b = param([0.0]), param([0.0])
    optimizer = Adam([a, b], lr=0.1)
    a.grad, b.grad = np.array([1.0]), None
    optimizer.step()
    assert b.data[0] == 0.0 and b not in optimizer.state  # skipped: no gradient, no state
    a.grad, b.grad = np.array([1.0]), np.array([5.0])
    optimizer.step()
    assert optimizer.state[a]["step"] == 2 and optimizer.state[b]["step"] == 1
    # b's first step is bias-corrected with t = 1: it moves by lr * 5 / (5 + eps)
    np.testing.assert_allclose(b.data, [-0.1 * 5.0 / (5.0 + 1e-8)], rtol=1e-14)


@pytest.mark.parametrize("dtypes", [(np.float64,) * 3, (np.float64, np.float32, np.float64)])
def test_adam_over_many_tensors_equals_one_adam_per_tensor(dtypes):
    # One optimizer over several tensors (one flat update when all have gradients and the same
    # step count; one tensor at a time otherwise, or with mixed dtypes) must move every tensor
    # exactly as an optimizer of its own would, to the last bit.
    rng = np.random.default_rng(0)
    shapes = [(), (3,), (2, 4)]
    starts = [rng.normal(size=shape).astype(dtype) for shape, dtype in zip(shapes, dtypes)]
    together = [Tensor(start.copy(), requires_grad=True) for start in starts]
    alone = [Tensor(start.copy(), requires_grad=True) for start in starts]
    optimizer = Adam(together, lr=0.05, betas=(0.8, 0.99))
    separate = [Adam([p], lr=0.05, betas=(0.8, 0.99)) for p in alone]
    # step 3 skips the middle tensor, so from then on the step counts differ
    has_gradient = [(True, True, True), (True, True, True), (True, False, True), (True, True, True)]
    for flags in has_gradient:
        for p, q, flag, dtype in zip(together, alone, flags, dtypes):
            grad = rng.normal(size=p.shape).astype(dtype) if flag else None
            p.grad, q.grad = grad, grad
        optimizer.step()
        for q, flag, single in zip(alone, flags, separate):
            if flag:
                single.step()
        for p, q in zip(together, alone):
            np.testing.assert_array_equal(p.data, q.data)
            assert p.data.dtype == q.data.dtype
    assert [optimizer.state[p]["step"] for p in together] == [4, 3, 4]


def test_adam_handles_a_parameter_resized_before_its_first_step():
    # The flat buffers are laid out when the optimizer is made; a parameter whose array is
    # replaced by one of another size before its first step gets buffers of its own.
    a, b = param([1.0, 1.0, 1.0]), param([1.0, 1.0])
    optimizer = Adam([a, b], lr=0.1)
    b.data = np.ones(4)
    for _ in range(2):
        a.grad, b.grad = np.ones(3), np.ones(4)
        optimizer.step()
    np.testing.assert_allclose(a.data, [0.8] * 3, rtol=1e-6)
    np.testing.assert_allclose(b.data, [0.8] * 4, rtol=1e-6)
    assert optimizer.state[b]["m"].shape == (4,)


def test_adam_follows_state_the_user_replaced_or_deleted():
    # m and v are views of flat buffers; replacing them, or deleting a parameter's state, must
    # change the next step exactly as it would for an optimizer with separate buffers.
    a, b = param([1.0, -1.0]), param([0.5])
    a_alone, b_alone = param([1.0, -1.0]), param([0.5])
    optimizer, single_a, single_b = Adam([a, b], lr=0.1), Adam([a_alone], lr=0.1), Adam([b_alone], lr=0.1)
    grads = ([0.3, -2.0], [1.5])

    def step_all():
        for p, q, grad in ((a, a_alone, grads[0]), (b, b_alone, grads[1])):
            p.grad, q.grad = np.array(grad), np.array(grad)
        for opt in (optimizer, single_a, single_b):
            opt.step()

    step_all()
    for opt, p in ((optimizer, a), (single_a, a_alone)):
        opt.state[p]["m"] = np.array([5.0, 5.0])  # a new array, not written into the old one
    step_all()
    del optimizer.state[b], single_b.state[b_alone]  # b starts over, as under a new optimizer
    b_fresh = param(b.data.copy())
    fresh = Adam([b_fresh], lr=0.1)
    for _ in range(2):
        step_all()
        b_fresh.grad = np.array(grads[1])
        fresh.step()
    np.testing.assert_array_equal(a.data, a_alone.data)
    np.testing.assert_array_equal(b.data, b_alone.data)
    np.testing.assert_array_equal(b.data, b_fresh.data)


def test_adam_against_torch_if_available():
    torch = pytest.importorskip("torch")
    p = param(START)
    optimizer = Adam([p], lr=0.1, betas=(0.8, 0.99), eps=1e-6)
    q = torch.tensor(START, dtype=torch.float64, requires_grad=True)
    reference = torch.optim.Adam([q], lr=0.1, betas=(0.8, 0.99), eps=1e-6)
    for grad in GRADS:
        p.grad = np.array(grad)
        optimizer.step()
        q.grad = torch.tensor(grad, dtype=torch.float64)
        reference.step()
        np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-12, atol=1e-15)


def test_sgd_against_torch_if_available():
    torch = pytest.importorskip("torch")
    p = param(START)
    optimizer = SGD([p], lr=0.1, momentum=0.9)
    q = torch.tensor(START, dtype=torch.float64, requires_grad=True)
    reference = torch.optim.SGD([q], lr=0.1, momentum=0.9)
    for grad in GRADS:
        p.grad = np.array(grad)
        optimizer.step()
        q.grad = torch.tensor(grad, dtype=torch.float64)
        reference.step()
        np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-12, atol=1e-15)


# --- shared behaviour ---------------------------------------------------------------------------
OPTIMIZERS = [
    pytest.param(lambda params: SGD(params, lr=0.1), id="sgd"),
    pytest.param(lambda params: SGD(params, lr=0.1, momentum=0.9), id="sgd-momentum"),
    pytest.param(lambda params: Adam(params, lr=0.1), id="adam"),
]


@pytest.mark.parametrize("make", OPTIMIZERS)
def test_updates_in_place_and_skips_parameters_without_gradient(make):
    a, b = param([1.0, 2.0]), param([3.0])
    array_a = a.data
    optimizer = make([a, b])
    a.grad = np.array([1.0, -1.0])
    optimizer.step()
    assert a.data is array_a  # same array: every reference to it sees the update
    assert a.data[0] < 1.0 and a.data[1] > 2.0
    assert b.data[0] == 3.0


@pytest.mark.parametrize("make", OPTIMIZERS)
def test_zero_grad_sets_none(make):
    a, b = param([1.0]), param([2.0])
    optimizer = make([a, b])
    a.grad = np.array([1.0])
    b.grad = np.array([2.0])
    optimizer.zero_grad()
    assert a.grad is None and b.grad is None


@pytest.mark.parametrize("make", OPTIMIZERS)
@pytest.mark.parametrize("bad_grad", [np.ones(3), np.array([1.0, np.nan]), np.array([np.inf, 0.0])],
                         ids=["wrong-shape", "nan", "inf"])
def test_a_bad_gradient_changes_nothing(make, bad_grad):
    a, b = param([1.0, 2.0]), param([3.0, 4.0])
    optimizer = make([a, b])
    a.grad, b.grad = np.array([1.0, 1.0]), bad_grad  # a comes first: it must not be updated
    with pytest.raises(ValueError, match="parameter 1.*Nothing was updated"):
        optimizer.step()
    np.testing.assert_array_equal(a.data, [1.0, 2.0])
    np.testing.assert_array_equal(b.data, [3.0, 4.0])
    assert optimizer.state == {}
    b.grad = np.array([1.0, 1.0])  # fixed: the next step is an ordinary first step
    optimizer.step()
    np.testing.assert_allclose(a.data, b.data - 2.0)


@pytest.mark.parametrize("make", OPTIMIZERS)
def test_float32_parameters_stay_float32(make):
    p = param(START, dtype=np.float32)
    optimizer = make([p])
    for grad in GRADS:
        p.grad = np.array(grad, dtype=np.float32)
        optimizer.step()
    assert p.data.dtype == np.float32


def test_module_parameters_are_accepted():
    model = MLP([2, 3, 1], rng=np.random.default_rng(0))
    optimizer = Adam(model.parameters())
    assert optimizer.params == model.parameters()


@pytest.mark.parametrize("make, argument", [
    (lambda p: SGD(p, lr=0.0), "lr"),
    (lambda p: SGD(p, lr=-1.0), "lr"),
    (lambda p: SGD(p, lr=float("nan")), "lr"),
    (lambda p: SGD(p, lr=0.1, momentum=-0.1), "momentum"),
    (lambda p: SGD(p, lr=0.1, momentum=1.0), "momentum"),
    (lambda p: Adam(p, lr=0.0), "lr"),
    (lambda p: Adam(p, lr="fast"), "lr"),
    (lambda p: Adam(p, lr=float("inf")), "lr"),
    (lambda p: Adam(p, betas=(1.0, 0.999)), r"betas\[0\]"),
    (lambda p: Adam(p, betas=(0.9, -0.1)), r"betas\[1\]"),
    (lambda p: Adam(p, betas=(0.9,)), "betas"),
    (lambda p: Adam(p, eps=-1e-8), "eps"),
])
def test_bad_hyperparameters_name_the_argument(make, argument):
    with pytest.raises(ValueError, match=argument):
        make([param([1.0])])


def test_bad_parameter_lists():
    with pytest.raises(ValueError, match="does not require grad"):
        Adam([Tensor([1.0])])
    with pytest.raises(ValueError, match="empty"):
        SGD([], lr=0.1)
    p = param([1.0])
    with pytest.raises(ValueError, match="more than once"):
        SGD([p, p], lr=0.1)
    with pytest.raises(TypeError, match="wrap a single tensor"):
        SGD(p, lr=0.1)
    with pytest.raises(TypeError, match=r"module.parameters\(\)"):
        Adam(MLP([1, 1]))
    with pytest.raises(TypeError, match="not a Tensor"):
        Adam([np.zeros(2)])


# --- training smoke test ------------------------------------------------------------------------
def test_mlp_fits_a_small_regression_with_adam():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.0, 1.0, size=(64, 1))
    y = np.sin(3.0 * x)
    model = MLP([1, 16, 16, 1], activation="tanh", rng=rng)
    optimizer = Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(300):
        optimizer.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10, (losses[0], losses[-1])


def test_adam_and_sgd_update_zero_dimensional_parameters():
    from tinygrad_reparam import Tensor
    from tinygrad_reparam.optim import SGD, Adam
    for optimizer_class, kwargs in ((Adam, {"lr": 0.1}), (SGD, {"lr": 0.1, "momentum": 0.5})):
        p = Tensor(2.0, requires_grad=True)
        optimizer = optimizer_class([p], **kwargs)
        for _ in range(3):
            optimizer.zero_grad()
            (p * p).backward()
            optimizer.step()
        assert p.data.shape == () and 0.0 < p.item() < 2.0
