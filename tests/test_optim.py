"""SGD and Adam against their update formulas, computed here independently with scalar float
math and in closed form; Adam's fast form (FlatAdam) against its plain loop, to the last bit;
argument checks; steps that fail change nothing; a small MLP actually trains."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

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


# --- the fast form (FlatAdam) against the plain loop, to the last bit -------------------------
class Twins:
    """The same parameters under Adam(foreach=True) and Adam(foreach=False), given the same
    gradients; counts the steps the fast form took, so that a test shows it really ran."""

    def __init__(self, starts: list, **options):
        self.fast_params = [Tensor(start.copy(), requires_grad=True) for start in starts]
        self.plain_params = [Tensor(start.copy(), requires_grad=True) for start in starts]
        self.fast = Adam(self.fast_params, foreach=True, **options)
        self.plain = Adam(self.plain_params, foreach=False, **options)
        self.flat_steps = 0
        flat_step = self.fast._flat.step

        def counting_step(*args):
            self.flat_steps += 1
            flat_step(*args)

        self.fast._flat.step = counting_step

    def pairs(self):
        return zip(self.fast_params, self.plain_params)

    def step(self, grads: list) -> None:
        """One step of both; ``grads[i]`` None: parameter i has no gradient."""
        for (p, q), grad in zip(self.pairs(), grads):
            p.grad = None if grad is None else grad.copy()
            q.grad = None if grad is None else grad.copy()
        self.fast.step()
        self.plain.step()
        self.assert_same()

    def assert_same(self) -> None:
        for p, q in self.pairs():
            assert p.data.dtype == q.data.dtype and np.array_equal(p.data, q.data)
            assert (p in self.fast.state) == (q in self.plain.state)
            if p in self.fast.state:
                fast, plain = self.fast.state[p], self.plain.state[q]
                assert fast.keys() == plain.keys() and fast["step"] == plain["step"]
                assert np.array_equal(fast["m"], plain["m"]) and np.array_equal(fast["v"], plain["v"])

    def both_states(self, i: int) -> tuple:
        return self.fast.state[self.fast_params[i]], self.plain.state[self.plain_params[i]]


SHAPES = [(), (3,), (2, 4), (0,), (5, 1, 2), (7,), (1,)]


def twins(seed: int = 0, dtype=np.float64, shapes=SHAPES, **options) -> tuple:
    rng = np.random.default_rng(seed)
    starts = [rng.normal(size=shape).astype(dtype) for shape in shapes]
    options = {"lr": 0.03, "betas": (0.8, 0.95), **options}
    return Twins(starts, **options), rng


def gradients(rng, params, missing=(), scale: float = 1.0) -> list:
    return [None if i in missing else np.asarray(scale * rng.normal(size=p.shape), dtype=p.dtype)
            for i, p in enumerate(params)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_fast_form_is_the_plain_loop_to_the_last_bit(dtype):
    pair, rng = twins(dtype=dtype)
    for scale in (1.0, 1e-3, 50.0, 1e-9):  # gradients of many sizes, eps mattering in the last
        pair.step(gradients(rng, pair.fast_params, scale=scale))
    assert pair.flat_steps == 4
    pair.step(gradients(rng, pair.fast_params, missing={2}))  # one without a gradient: the loop
    for _ in range(2):  # the step counts now differ (parameter 2 is one behind): still the loop
        pair.step(gradients(rng, pair.fast_params))
    assert pair.flat_steps == 4
    assert [pair.fast.state[p]["step"] for p in pair.fast_params] == [7, 7, 6, 7, 7, 7, 7]
    assert all(pair.plain.state[q]["m"].base is None for q in pair.plain_params)  # never flat


def test_foreach_is_on_by_default():
    p = param([1.0])
    assert Adam([p]).foreach is True and Adam([p], foreach=None).foreach is True
    assert Adam([p], foreach=False).foreach is False


def test_the_fast_form_takes_over_again_when_all_states_are_deleted():
    pair, rng = twins()
    pair.step(gradients(rng, pair.fast_params, missing={0}))  # the loop makes the states
    pair.step(gradients(rng, pair.fast_params))
    assert pair.flat_steps == 0
    pair.fast.state.clear()  # every parameter starts over, as under a new optimizer
    pair.plain.state.clear()
    for _ in range(3):
        pair.step(gradients(rng, pair.fast_params))
    assert pair.flat_steps == 3
    pair.fast.state.clear()  # and again, now that the flat arrays hold old values: zeroed
    pair.plain.state.clear()
    pair.step(gradients(rng, pair.fast_params))
    assert pair.flat_steps == 4


def test_the_fast_form_with_one_state_deleted_or_replaced_by_the_user():
    pair, rng = twins()
    for _ in range(2):
        pair.step(gradients(rng, pair.fast_params))
    for fast, plain in (pair.both_states(1),):
        fast["m"] = np.full(3, 0.25)  # new arrays, not written into the old ones
        plain["m"] = np.full(3, 0.25)
    pair.step(gradients(rng, pair.fast_params))
    assert pair.flat_steps == 2  # m of parameter 1 is no longer its view: the loop
    del pair.fast.state[pair.fast_params[4]], pair.plain.state[pair.plain_params[4]]
    for _ in range(2):
        pair.step(gradients(rng, pair.fast_params))
    assert pair.flat_steps == 2
    assert pair.both_states(4)[0]["step"] == 2


def test_the_fast_form_follows_state_the_user_changed_in_place():
    pair, rng = twins()
    pair.step(gradients(rng, pair.fast_params))
    for state in pair.both_states(2):
        state["m"] *= -3.0  # in place: still the view, so the fast form goes on
        state["v"][0, 1] = 7.0
    for state in pair.fast.state.values():
        state["step"] = 5  # every step count alike: one t still serves all
    for state in pair.plain.state.values():
        state["step"] = 5
    for _ in range(2):
        pair.step(gradients(rng, pair.fast_params))
    assert pair.flat_steps == 3
    pair.fast.state[pair.fast_params[0]]["step"] = 1  # now they differ: the loop
    pair.plain.state[pair.plain_params[0]]["step"] = 1
    pair.step(gradients(rng, pair.fast_params))
    assert pair.flat_steps == 3


def test_the_fast_form_with_a_parameter_resized_before_its_first_step():
    pair, rng = twins()
    for p in (pair.fast_params[1], pair.plain_params[1]):
        p.data = np.arange(5.0)  # 5 entries where the flat arrays kept 3: the loop, always
    for _ in range(3):
        pair.step(gradients(rng, pair.fast_params))
    assert pair.flat_steps == 0 and pair.fast.state[pair.fast_params[1]]["m"].shape == (5,)
    other, rng = twins(seed=1)
    for p in (other.fast_params[2], other.plain_params[2]):
        p.data = p.data.reshape(8, 1)  # the same size in another shape: the fast form still fits
    for _ in range(3):
        other.step(gradients(rng, other.fast_params))
    assert other.flat_steps == 3 and other.fast.state[other.fast_params[2]]["m"].shape == (8, 1)


def test_the_fast_form_steps_aside_for_gradients_or_data_of_another_dtype():
    pair, rng = twins()
    pair.step(gradients(rng, pair.fast_params))
    grads = gradients(rng, pair.fast_params)
    grads[3] = grads[3].astype(np.float32)  # float64 parameter, float32 gradient: the loop
    pair.step(grads)
    assert pair.flat_steps == 1
    mixed, rng = twins(seed=2)  # mixed parameter dtypes: no flat arrays at all
    for p in (mixed.fast_params[1], mixed.plain_params[1]):
        p.data = p.data.astype(np.float32)
    for _ in range(2):
        mixed.step(gradients(rng, mixed.fast_params))
    assert mixed.flat_steps == 0


@given(seed=st.integers(0, 2 ** 32 - 1),
       events=st.lists(st.sampled_from(["step", "step", "step", "skip one", "delete one",
                                        "delete all", "replace one", "scale one in place"]),
                       min_size=1, max_size=12))
def test_the_fast_form_equals_the_plain_loop_after_any_sequence_of_events(seed, events):
    pair, rng = twins(seed=seed % 1000, shapes=[(2,), (), (3, 2), (1,)])
    chooser = np.random.default_rng(seed)
    for event in events:
        i = int(chooser.integers(4))
        fast_p, plain_p = pair.fast_params[i], pair.plain_params[i]
        if event == "delete one" and fast_p in pair.fast.state:
            del pair.fast.state[fast_p], pair.plain.state[plain_p]
        elif event == "delete all":
            pair.fast.state.clear()
            pair.plain.state.clear()
        elif event == "replace one" and fast_p in pair.fast.state:
            for state in pair.both_states(i):
                state["v"] = np.array(state["v"] * 2.0)  # a new array
        elif event == "scale one in place" and fast_p in pair.fast.state:
            for state in pair.both_states(i):
                state["m"] *= 0.5
        pair.step(gradients(rng, pair.fast_params, missing={i} if event == "skip one" else ()))
    if events[0] != "skip one":  # then the first step had every gradient and no state
        assert pair.flat_steps >= 1


# --- closed forms: what a comparison with PyTorch would check, without PyTorch -----------------
@pytest.mark.parametrize("foreach", [True, False], ids=["fast", "plain"])
@pytest.mark.parametrize("g", [3.0, -0.02, 250.0, 1e-8])
def test_adam_moves_by_lr_g_over_abs_g_plus_eps_at_every_step_of_a_constant_gradient(g, foreach):
    # With a constant g, m_t = (1 - beta1^t) g and v_t = (1 - beta2^t) g^2, so the bias
    # corrections give m_hat = g and v_hat = g^2 at every t, and every step moves each entry by
    # exactly lr * g / (|g| + eps). No bias correction, or one with a wrong power of beta, is off
    # at some step; eps anywhere else than beside sqrt(v_hat) is off for g = 1e-8 (= 2 eps: a
    # step of 2 lr / 3); a sign error goes the wrong way.
    lr, eps = 0.01, 5e-9
    p = param(np.full(3, 0.5))
    optimizer = Adam([p], lr=lr, betas=(0.7, 0.9), eps=eps, foreach=foreach)
    for t in range(1, 6):
        p.grad = np.full(3, g)
        optimizer.step()
        np.testing.assert_allclose(p.data, 0.5 - t * lr * g / (abs(g) + eps), rtol=1e-13)


@pytest.mark.parametrize("foreach", [True, False], ids=["fast", "plain"])
def test_adam_on_a_quadratic_follows_algorithm_1_of_the_paper(foreach):
    # f(theta) = a/2 (theta - c)^2, so g = a (theta - c); the loop below is Algorithm 1 of
    # Kingma & Ba (2015), line by line. beta1 and beta2 are far apart, so swapping them fails.
    a, c, lr, beta1, beta2, eps = 3.0, 2.0, 0.1, 0.6, 0.95, 1e-8
    p = param([-1.0])
    optimizer = Adam([p], lr=lr, betas=(beta1, beta2), eps=eps, foreach=foreach)
    theta, m, v = -1.0, 0.0, 0.0
    for t in range(1, 9):
        g = a * (theta - c)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g ** 2
        m_hat = m / (1 - beta1 ** t)
        v_hat = v / (1 - beta2 ** t)
        theta = theta - lr * m_hat / (math.sqrt(v_hat) + eps)
        p.grad = a * (p.data - c)
        optimizer.step()
        assert p.data[0] == pytest.approx(theta, rel=1e-13, abs=1e-15), t
    assert -1.0 < theta < c  # it went toward the minimum


def test_sgd_momentum_with_a_constant_gradient_in_closed_form():
    # PyTorch's momentum: buf_1 = g, buf_t = mu buf_(t-1) + g, so buf_t = g (1 - mu^t) / (1 - mu)
    # and after T steps  p = p0 - lr g sum_(t=1..T) (1 - mu^t) / (1 - mu)
    #                      = p0 - lr g (T - mu (1 - mu^T) / (1 - mu)) / (1 - mu).
    # A dampened buffer ((1 - mu) g), or one that starts at mu g, is off from the first step.
    lr, mu, g = 0.1, 0.9, 2.0
    p = param([1.0, -3.0])
    optimizer = SGD([p], lr=lr, momentum=mu)
    for T in range(1, 7):
        p.grad = np.array([g, -g])
        optimizer.step()
        moved = lr * g * (T - mu * (1 - mu ** T) / (1 - mu)) / (1 - mu)
        np.testing.assert_allclose(p.data, [1.0 - moved, -3.0 + moved], rtol=1e-13)


def test_sgd_momentum_on_a_quadratic_follows_the_heavy_ball_recursion():
    # f(theta) = a/2 (theta - c)^2; the recursion written out: b = mu b + g (b = g first),
    # theta = theta - lr b. The gradient depends on where the last step landed, so an error in
    # any step shows in all later ones.
    a, c, lr, mu = 3.0, 2.0, 0.05, 0.7
    p = param([-1.0])
    optimizer = SGD([p], lr=lr, momentum=mu)
    theta, b = -1.0, None
    for t in range(1, 9):
        g = a * (theta - c)
        b = g if b is None else mu * b + g
        theta = theta - lr * b
        p.grad = a * (p.data - c)
        optimizer.step()
        assert p.data[0] == pytest.approx(theta, rel=1e-13), t
    assert -1.0 < theta


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
def test_a_gradient_that_is_not_an_array_is_named_by_its_type(make):
    p = param(1.0)
    optimizer = make([p])
    p.grad = np.float64(2.0)  # a NumPy scalar, not a 0-d array
    with pytest.raises(ValueError, match=r"parameter 0 \(shape \(\)\) has a gradient of type "
                                         r"float64, not a NumPy array.*np\.asarray.*Nothing was updated"):
        optimizer.step()
    assert p.data == 1.0 and optimizer.state == {}


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


def test_adam_default_learning_rate_moves_each_entry_by_a_thousandth_at_first():
    """lr defaults to 1e-3, as in PyTorch and the paper: the first step is lr * g / (|g| + eps)."""
    p = Tensor(np.array([1.0, -2.0, 0.5]), requires_grad=True)
    optimizer = Adam([p])
    g = np.array([4.0, -0.5, 1e-3])
    p.grad = g.copy()
    optimizer.step()
    np.testing.assert_allclose(p.data, np.array([1.0, -2.0, 0.5]) - 1e-3 * g / (np.abs(g) + 1e-8),
                               rtol=1e-14)
