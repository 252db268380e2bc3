"""World models: the reparameterization trick applied to dynamics, and where it stops working.

A world model is a stochastic simulator p(s' | s, u) of an environment. Write its draws the way
``Normal.rsample`` does, and the policy's actions too,

    s' = m(s, u) + sd(s, u) * xi,     u = pi_k(s) + sigma_pi * eta,     xi, eta ~ N(0, 1),

and a whole rollout becomes a differentiable function of the policy parameter k and of noise that
does not depend on k. The gradient of the expected cost then flows back through every transition:
the pathwise estimator, unrolled in time. Stochastic Value Gradients (Heess et al. 2015, SVG) and
Dreamer (Hafner et al. 2020, "Dream to Control") train policies this way. The demo has three parts.

**1. An exact answer.** The linear-Gaussian system, s_0 = 1,

    s_{t+1} = a s_t + b u_t + sigma_w xi_t,     u_t = k s_t + sigma_pi eta_t,
    J(k) = E[ sum_{t=0}^{H-1} (s_t^2 + c u_t^2) ]      (a = 1, b = 0.5, sigma_w = 0.1,
                                                          sigma_pi = 0.3, c = 0.1, H = 20)

is s_{t+1} = m s_t + b sigma_pi eta_t + sigma_w xi_t with m = a + b k, so the second moment
P_t = E[s_t^2] obeys (the noise is independent of s_t, so no cross terms survive)

    P_{t+1} = m^2 P_t + b^2 sigma_pi^2 + sigma_w^2,     P_0 = 1,     E[u_t^2] = k^2 P_t + sigma_pi^2,
    J(k) = sum_t ( (1 + c k^2) P_t + c sigma_pi^2 ),
    dJ/dk = sum_t ( 2 c k P_t + (1 + c k^2) P'_t ),     P'_{t+1} = 2 m b P_t + m^2 P'_t,  P'_0 = 0

(P' = dP/dk, carried forward beside P: forward-mode differentiation of the recursion). The optimum
k* is where dJ/dk = 0, found by bisection inside the gains that keep the loop stable, |m| < 1.
Three estimators of dJ/dk, each built from Tensors and ``D.Normal``, one rollout per sample:

    pathwise          every u_t and s_{t+1} an ``rsample``; the rollout's cost differentiated in k
    score_nobaseline  REINFORCE with reward-to-go: sum_t G_t d log pi(u_t | s_t) / dk, where
                      d log pi / dk = eta_t s_t / sigma_pi and
                      G_t = c u_t^2 + sum_{t' > t} (s_t'^2 + c u_t'^2)
    score_loo         the same with G_t - b_t, b_t the mean G_t of the other rollouts (leave-one-out)

G_t holds the costs that come after u_t is drawn: its own c u_t^2 and everything from s_{t+1} on.
s_t^2 is paid before u_t exists, so it is left out (it would add zero on average, and only noise);
leaving out s_{t+1}^2 instead would bias the estimate. All three see the same noise.

**2. A learned model, SVG(infinity).** p(s' | s, u) = N(w_s s + w_u u + w_0, exp(l)) is fitted by
maximum likelihood (Adam on the negative log-likelihood; the closed form is least squares, with
exp(l) the mean squared residual) to a few hundred random transitions. Then, as in SVG(inf):
run the policy in the real system; infer the noise behind each real action and transition,

    eta_t = (u_t - k s_t) / sigma_pi,       xi_t = (s_{t+1} - mean(s_t, u_t)) / sd;

and replay the rollout through the model with that noise held fixed:

    s^_0 = s_0,    u^_t = k s^_t + sigma_pi eta_t,    s^_{t+1} = mean(s^_t, u^_t) + sd xi_t.

The forward pass gives back the real trajectory, to rounding, however wrong the model (the
inferred noise absorbs the model's errors in the mean and the spread); only the gradient is the
model's: ds^_{t+1}/dk = (w_s + w_u k) ds^_t/dk + w_u s^_t. With the true system as the model this
is exactly the pathwise gradient of those rollouts. What the learned model's gradient averages to
follows from one more recursion, for Q_t = E[s_t ds^_t/dk] (``svg_expected_gradient``), and so
does the gain where it is zero: the point that gradient descent through the model converges to,
next to k* by as much as the fitted Jacobians are off.

**3. Where it breaks.** The chaotic map s' = s + A sin(s) + u + sigma xi, A = 5, with s an angle,
actions u = theta + sigma_u eta (sigma = 0.1, sigma_u = 0.5, theta = 0, s_0 = 1) and the cost
1 - cos(s_H) on the final angle. The pathwise gradient carries the product of the Jacobians
ds_{t+1}/ds_t = 1 + A cos(s_t); with the angles spread round the circle E[(1 + A cos s)^2] =
1 + A^2 / 2 = 13.5, so its variance grows about 13.5-fold per step. The score function multiplies
the bounded cost by sum_t eta_t / sigma_u, so its variance grows only like H / sigma_u^2: with the
leave-one-out baseline about H Var(cos s_H) / sigma_u^2 = 2 H once the final angle is spread
evenly. Parmas, Rasmussen, Peters & Doya (ICML 2018, "PIPPS") found this curse of chaos in
model-based policy search. The sweep over H = 1..32 finds the horizon from which the score
function is the better estimator: with A = 5, the second step. It is the reversal that
``demos/estimator_variance.py`` shows for cos(k x): when the cost wiggles faster than the noise
is wide, the derivative is the noisy quantity, and the cost itself is not. (At H = 1 the exact
gradient is known, sin(mu) exp(-v / 2), and every estimator is checked against it.)

    python demos/world_model.py                 # 20,000 rollouts per estimator (about 7 s)
    python demos/world_model.py --quick         # 10,000 and 2,000 rollouts, 10 horizons: 2 s
    python demos/world_model.py --rollouts 100000 --descent-steps 600 --metrics-json m.json
"""
from __future__ import annotations

import common  # first: pins BLAS to one thread, finds the package from a checkout

import math
import time
from typing import Callable, NamedTuple

import numpy as np

import tinygrad_reparam.distributions as D
from tinygrad_reparam import Tensor, no_grad, stack
from tinygrad_reparam.estimators import (PATHWISE, SCORE_LOO, SCORE_NOBASELINE, leave_one_out,
                                         score_function_surrogate)
from tinygrad_reparam.nn import Linear, Module
from tinygrad_reparam.optim import Adam

ESTIMATORS = (PATHWISE, SCORE_NOBASELINE, SCORE_LOO)
GAINS = (-1.0, -0.5, 0.0)          # where the three estimators are compared with the exact dJ/dk
CHAOS_HORIZONS = tuple(range(1, 33))
QUICK_CHAOS_HORIZONS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)


# ---------------------------------------------------------------------------------------------
# Part 1: the linear-Gaussian system and its exact cost
class LinearSystem(NamedTuple):
    a: float = 1.0
    b: float = 0.5
    sigma_w: float = 0.1      # transition noise
    sigma_pi: float = 0.3     # policy noise
    c: float = 0.1            # cost of an action
    horizon: int = 20
    s0: float = 1.0


def exact_cost(system: LinearSystem, k: float) -> tuple:
    """(J(k), dJ/dk) from the second-moment recursion and its forward-mode derivative."""
    a, b, c = system.a, system.b, system.c
    m = a + b * k                                     # the closed loop: s_{t+1} = m s_t + noise
    added_variance = b ** 2 * system.sigma_pi ** 2 + system.sigma_w ** 2
    P, dP = system.s0 ** 2, 0.0                       # P_0 = s_0^2, and it does not depend on k
    cost, gradient = 0.0, 0.0
    for _ in range(system.horizon):
        cost += (1 + c * k ** 2) * P + c * system.sigma_pi ** 2
        gradient += 2 * c * k * P + (1 + c * k ** 2) * dP
        P, dP = m ** 2 * P + added_variance, 2 * m * b * P + m ** 2 * dP
    return cost, gradient


def stable_gains(system: LinearSystem) -> tuple:
    """The gains k that keep the closed loop stable, |a + b k| < 1, as an open interval (b > 0)."""
    return (-1 - system.a) / system.b, (1 - system.a) / system.b


def zero_of(gradient: Callable, low: float, high: float) -> float:
    """The k in (low, high) where ``gradient`` changes sign from - to +, by bisection to the last bit."""
    low, high = low + 1e-9, high - 1e-9
    if not gradient(low) < 0 < gradient(high):
        raise ValueError(f"zero_of: the gradient does not go from negative to positive over "
                         f"({low:.4g}, {high:.4g}), so there is no minimum to bracket; keep the "
                         f"defaults' b > 0 and an open loop that is unstable or marginal (a >= 1)")
    while True:
        middle = 0.5 * (low + high)
        if middle in (low, high):                     # the bracket is one float wide
            return middle
        if gradient(middle) > 0:
            high = middle
        else:
            low = middle


def exact_optimum(system: LinearSystem) -> float:
    """k* with dJ/dk = 0 among the stable gains."""
    return zero_of(lambda k: exact_cost(system, k)[1], *stable_gains(system))


# ---------------------------------------------------------------------------------------------
# Part 1: three estimators of dJ/dk, one gradient per rollout
def pathwise_gradients(system: LinearSystem, k: float, n: int, rng: np.random.Generator) -> tuple:
    """Each action and transition an rsample: the rollout's cost is a function of k and the noise.

    ``gains`` holds one copy of k per rollout, so after one backward pass through the sum of the
    rollouts' costs, gains.grad[i] is rollout i's own gradient. Returns (gradients, costs)."""
    gains = Tensor(np.full(n, k), requires_grad=True)
    s = Tensor(np.full(n, system.s0))
    total = 0.0
    for _ in range(system.horizon):
        u = D.Normal(gains * s, system.sigma_pi).rsample(rng=rng)          # u = k s + sigma_pi eta
        total = total + s ** 2 + system.c * u ** 2
        s = D.Normal(system.a * s + system.b * u, system.sigma_w).rsample(rng=rng)
    total.sum().backward()
    return gains.grad, total.data


def score_gradients(system: LinearSystem, k: float, n: int, rng: np.random.Generator,
                    baseline: bool) -> tuple:
    """REINFORCE with reward-to-go: the draws are sample()s (cut), only log pi(u_t | s_t) carries k.

    With ``baseline``, each G_t loses the mean G_t of the other rollouts (leave-one-out, per time
    step). Same order of draws as ``pathwise_gradients``: the same rng gives the same rollouts."""
    gains = Tensor(np.full(n, k), requires_grad=True)
    s = Tensor(np.full(n, system.s0))
    log_pi, state_costs, action_costs = [], [], []
    for _ in range(system.horizon):
        policy = D.Normal(gains * s, system.sigma_pi)
        u = policy.sample(rng=rng)                                         # the cut
        log_pi.append(policy.log_prob(u))                                  # connected to k
        state_costs.append(s.data ** 2)
        action_costs.append(system.c * u.data ** 2)
        s = D.Normal(system.a * s + system.b * u, system.sigma_w).sample(rng=rng)
    state_costs, action_costs = np.array(state_costs), np.array(action_costs)   # (H, n)
    costs_from_t = np.cumsum((state_costs + action_costs)[::-1], axis=0)[::-1]  # sum_{t' >= t}
    to_go = costs_from_t - state_costs               # G_t: s_t^2 was paid before u_t was drawn
    b = leave_one_out(to_go, axis=1) if baseline else None
    log_pi = stack(log_pi)                                                      # (H, n)
    surrogate = score_function_surrogate(log_pi, to_go, b)  # gradient: mean((G - b) dlog pi)
    (surrogate * to_go.size).backward()  # the mean over H x n terms, times H x n: per-rollout sums
    return gains.grad, costs_from_t[0]


def estimate_at_gains(system: LinearSystem, n: int, seed: int) -> dict:
    """Every estimator at every k in GAINS, all on the same noise at a given k. (The standard
    error sqrt(variance / n) treats the rollouts' gradients as independent; the leave-one-out
    baseline ties them together only at order 1 / n.)"""
    table = {name: {"mean": [], "std_error": [], "variance": [], "z": []} for name in ESTIMATORS}
    for index, k in enumerate(GAINS):
        exact = exact_cost(system, k)[1]
        costs = []
        for name in ESTIMATORS:
            rng = np.random.default_rng([seed, 1, index])
            if name == PATHWISE:
                gradients, cost = pathwise_gradients(system, k, n, rng)
            else:
                gradients, cost = score_gradients(system, k, n, rng, baseline=name == SCORE_LOO)
            costs.append(cost)
            mean, variance = float(gradients.mean()), float(gradients.var(ddof=1))
            std_error = math.sqrt(variance / n)
            for key, value in (("mean", mean), ("std_error", std_error), ("variance", variance),
                               ("z", (mean - exact) / std_error)):
                table[name][key].append(value)
        # common random numbers: the sample() rollouts are the rsample() rollouts, value for value
        assert all(np.allclose(cost, costs[0], rtol=1e-12, atol=0) for cost in costs), "noise drifted"
    return table


# ---------------------------------------------------------------------------------------------
# Part 2: a learned Gaussian model, and SVG(infinity) through it
class GaussianDynamics(Module):
    """p(s' | s, u) = N(w_s s + w_u u + w_0, exp(log_variance)): the mean a Linear layer on (s, u)."""

    def __init__(self, rng: np.random.Generator):
        self.mean_layer = Linear(2, 1, rng=rng)
        self.log_variance = Tensor(0.0, requires_grad=True)

    def forward(self, states, actions) -> D.Normal:
        """The model's next-state distribution for a batch of (s, u): Tensors or arrays of shape (n,)."""
        inputs = stack([states, actions], axis=-1)                         # (n, 2)
        mean = self.mean_layer(inputs).reshape(np.shape(states))           # (n,)
        return D.Normal(mean, (0.5 * self.log_variance).exp())

    def summary(self) -> dict:
        w_s, w_u = self.mean_layer.weight.data[:, 0]
        return {"w_s": float(w_s), "w_u": float(w_u), "w_0": float(self.mean_layer.bias.data[0]),
                "sigma": float(np.exp(0.5 * self.log_variance.data))}


def true_dynamics(system: LinearSystem) -> Callable:
    """The real system written as a model: (s, u) -> N(a s + b u, sigma_w^2)."""
    return lambda states, actions: D.Normal(system.a * states + system.b * actions, system.sigma_w)


def random_transitions(system: LinearSystem, n: int, rng: np.random.Generator) -> tuple:
    """n transitions of the real system from s, u ~ N(0, 1): (states, actions, next states)."""
    states, actions = rng.standard_normal(n), rng.standard_normal(n)
    next_states = system.a * states + system.b * actions + system.sigma_w * rng.standard_normal(n)
    return states, actions, next_states


def fit_model(transitions: tuple, steps: int, seed: int) -> tuple:
    """Maximum likelihood by Adam (lr 0.05, decaying linearly to 0); returns (model, NLL curve)."""
    states, actions, next_states = transitions
    model = GaussianDynamics(np.random.default_rng([seed, 2]))
    optimizer = Adam(model.parameters(), lr=0.05)
    curve = []
    for step in range(steps):
        optimizer.lr = 0.05 * (1 - step / steps)
        optimizer.zero_grad()
        loss = -model(states, actions).log_prob(next_states).mean()
        loss.backward()
        optimizer.step()
        curve.append(loss.item())
    return model, curve


def least_squares(transitions: tuple) -> dict:
    """The closed-form maximum-likelihood fit: least squares, sigma^2 = mean squared residual."""
    states, actions, next_states = transitions
    inputs = np.stack([states, actions, np.ones_like(states)], axis=1)
    weights, *_ = np.linalg.lstsq(inputs, next_states, rcond=None)
    residual = next_states - inputs @ weights
    return {"w_s": float(weights[0]), "w_u": float(weights[1]), "w_0": float(weights[2]),
            "sigma": float(np.sqrt(np.mean(residual ** 2)))}


def real_rollouts(system: LinearSystem, k: float, n: int, rng: np.random.Generator) -> tuple:
    """The policy run in the real system (plain NumPy: the environment is not in the graph).
    Returns states (H + 1, n) and actions (H, n)."""
    states = np.empty((system.horizon + 1, n))
    actions = np.empty((system.horizon, n))
    states[0] = system.s0
    for t in range(system.horizon):
        actions[t] = k * states[t] + system.sigma_pi * rng.standard_normal(n)
        states[t + 1] = (system.a * states[t] + system.b * actions[t]
                         + system.sigma_w * rng.standard_normal(n))
    return states, actions


def svg_replay(model: Callable, system: LinearSystem, gains: Tensor, states: np.ndarray,
               actions: np.ndarray) -> tuple:
    """SVG(inf): infer the noise of each real action and transition, then rebuild the rollout
    through ``model`` with that noise held fixed. Returns (each rollout's cost as a Tensor that
    depends on gains through the model's Jacobians, the replayed states as an array)."""
    k = gains.data
    with no_grad():
        eta = (actions - k * states[:-1]) / system.sigma_pi               # the policy's noise
        predicted = model(Tensor(states[:-1]), Tensor(actions))           # for all t at once
        xi = (states[1:] - predicted.loc.data) / predicted.scale.data     # the model's noise
    s = Tensor(states[0])
    replayed, total = [states[0]], 0.0
    for t in range(system.horizon):
        u = gains * s + system.sigma_pi * eta[t]
        total = total + s ** 2 + system.c * u ** 2
        step = model(s, u)
        s = step.loc + step.scale * xi[t]     # Normal.rsample, with the inferred noise for eps
        replayed.append(s.data)
    return total, np.array(replayed)


def svg_expected_gradient(system: LinearSystem, w_s: float, w_u: float, k: float) -> float:
    """E[the SVG(inf) gradient] when the model's Jacobians are ds'/ds = w_s and ds'/du = w_u.

    Along a real rollout D_t = ds^_t/dk follows the model, D_{t+1} = (w_s + w_u k) D_t + w_u s_t,
    while s_t follows the real system. The rollout's gradient is sum_t 2 s_t D_t + 2 c u_t (s_t +
    k D_t), so with P_t = E[s_t^2] and Q_t = E[s_t D_t] its mean is sum_t 2 Q_t + 2 c (k P_t +
    k^2 Q_t), where Q_{t+1} = m (w_s + w_u k) Q_t + m w_u P_t, Q_0 = 0 (m = a + b k: the noise
    added at t is independent of s_t and D_t). With w_s = a and w_u = b, Q_t = P'_t / 2 and this
    is dJ/dk. The offset w_0 and the model's variance do not enter: the inferred noise absorbs them.
    """
    m, m_model = system.a + system.b * k, w_s + w_u * k
    added_variance = system.b ** 2 * system.sigma_pi ** 2 + system.sigma_w ** 2
    P, Q, gradient = system.s0 ** 2, 0.0, 0.0
    for _ in range(system.horizon):
        gradient += 2 * Q + 2 * system.c * (k * P + k ** 2 * Q)
        P, Q = m ** 2 * P + added_variance, m * m_model * Q + m * w_u * P
    return gradient


def svg_gradients(model: Callable, system: LinearSystem, k: float, states: np.ndarray,
                  actions: np.ndarray) -> tuple:
    """One SVG(inf) gradient per real rollout, and the largest |replayed - real| state."""
    gains = Tensor(np.full(states.shape[1], k), requires_grad=True)
    total, replayed = svg_replay(model, system, gains, states, actions)
    total.sum().backward()
    return gains.grad, float(np.max(np.abs(replayed - states)))


def compare_svg(model: GaussianDynamics, system: LinearSystem, n: int, seed: int) -> dict:
    """At each k in GAINS, on the same real rollouts: SVG through the learned model, SVG through
    the true system (the pathwise gradient of those rollouts), and what each should average to."""
    w_s, w_u = model.summary()["w_s"], model.summary()["w_u"]
    table = {key: [] for key in ("svg_mean", "svg_std_error", "svg_expected", "svg_z",
                                 "true_model_mean", "true_model_std_error", "exact", "true_model_z",
                                 "difference_mean", "difference_std_error", "difference_expected",
                                 "difference_z")}
    largest_replay_error = 0.0
    for index, k in enumerate(GAINS):
        states, actions = real_rollouts(system, k, n, np.random.default_rng([seed, 3, index]))
        learned, error = svg_gradients(model, system, k, states, actions)
        true, true_error = svg_gradients(true_dynamics(system), system, k, states, actions)
        largest_replay_error = max(largest_replay_error, error, true_error)
        numbers = {"svg_mean": learned.mean(), "svg_std_error": learned.std(ddof=1) / math.sqrt(n),
                   "svg_expected": svg_expected_gradient(system, w_s, w_u, k),
                   "true_model_mean": true.mean(), "true_model_std_error": true.std(ddof=1) / math.sqrt(n),
                   "exact": exact_cost(system, k)[1],
                   "difference_mean": (learned - true).mean(),
                   "difference_std_error": (learned - true).std(ddof=1) / math.sqrt(n)}
        numbers["difference_expected"] = numbers["svg_expected"] - numbers["exact"]
        numbers["difference_z"] = ((numbers["difference_mean"] - numbers["difference_expected"])
                                   / numbers["difference_std_error"])
        numbers["svg_z"] = (numbers["svg_mean"] - numbers["svg_expected"]) / numbers["svg_std_error"]
        numbers["true_model_z"] = ((numbers["true_model_mean"] - numbers["exact"])
                                   / numbers["true_model_std_error"])
        for key, value in numbers.items():
            table[key].append(float(value))
    table["replay_max_abs_error"] = largest_replay_error
    return table


def improve_policy(model: GaussianDynamics, system: LinearSystem, steps: int, rollouts: int,
                   seed: int, k_start: float = 0.0, lr: float = 0.1) -> list:
    """Adam on k with the SVG(inf) gradient through the learned model, fresh real rollouts at
    every step, lr decaying linearly to 0. Returns k after each step, starting with k_start.

    beta2 = 0.9 rather than 0.999: Adam divides by a running average of the squared gradient, and
    dJ/dk falls from 227 at k = 0 to about 1 near k*; with a long memory the steps would shrink
    a hundredfold on the way."""
    k = Tensor(k_start, requires_grad=True)
    optimizer = Adam([k], lr=lr, betas=(0.9, 0.9))
    rng = np.random.default_rng([seed, 4])
    curve = [k_start]
    for step in range(steps):
        optimizer.lr = lr * (1 - step / steps)
        states, actions = real_rollouts(system, k.item(), rollouts, rng)
        optimizer.zero_grad()
        total, _ = svg_replay(model, system, k, states, actions)
        total.mean().backward()  # (the model's own weights get gradients too; nothing reads them)
        optimizer.step()
        curve.append(k.item())
    return curve


# ---------------------------------------------------------------------------------------------
# Part 3: a chaotic system, where the pathwise gradient fails
class ChaoticSystem(NamedTuple):
    amplitude: float = 5.0    # A in s' = s + A sin(s) + u + sigma xi
    sigma: float = 0.1        # transition noise
    sigma_u: float = 0.5      # policy noise: u = theta + sigma_u eta
    theta: float = 0.0        # the policy parameter (a constant action)
    s0: float = 1.0


def chaos_gradients(system: ChaoticSystem, horizon: int, n: int, rng: np.random.Generator,
                    estimator: str) -> np.ndarray:
    """One gradient of E[1 - cos(s_H)] in theta per rollout, by the named estimator."""
    thetas = Tensor(np.full(n, system.theta), requires_grad=True)
    s = Tensor(np.full(n, system.s0))
    log_pi = []
    for _ in range(horizon):
        policy = D.Normal(thetas, system.sigma_u)
        if estimator == PATHWISE:
            u = policy.rsample(rng=rng)
            s = D.Normal(s + system.amplitude * s.sin() + u, system.sigma).rsample(rng=rng)
        else:
            u = policy.sample(rng=rng)
            log_pi.append(policy.log_prob(u))
            s = D.Normal(s + system.amplitude * s.sin() + u, system.sigma).sample(rng=rng)
    cost = 1.0 - s.cos()
    if estimator == PATHWISE:
        cost.sum().backward()
    else:
        log_pi = stack(log_pi)                                       # (H, n)
        final = np.broadcast_to(cost.data, log_pi.shape)             # the cost comes after every u_t
        b = leave_one_out(final, axis=1) if estimator == SCORE_LOO else None
        (score_function_surrogate(log_pi, final, b) * final.size).backward()
    return thetas.grad


def chaos_sweep(system: ChaoticSystem, horizons: tuple, n: int, seed: int) -> dict:
    """Mean, standard error and per-rollout variance of each estimator at each horizon."""
    sweep = {name: {"mean": [], "std_error": [], "variance": []} for name in ESTIMATORS}
    for horizon in horizons:
        for name in ESTIMATORS:
            rng = np.random.default_rng([seed, 5, horizon])  # the same noise for every estimator
            gradients = chaos_gradients(system, horizon, n, rng, name)
            variance = float(gradients.var(ddof=1))
            sweep[name]["mean"].append(float(gradients.mean()))
            sweep[name]["std_error"].append(math.sqrt(variance / n))
            sweep[name]["variance"].append(variance)
    return sweep


def one_step_gradient(system: ChaoticSystem) -> float:
    """The exact d/dtheta E[1 - cos s_1]: s_1 ~ N(mu, v), mu = s_0 + A sin s_0 + theta,
    v = sigma_u^2 + sigma^2, and E[cos s_1] = cos(mu) exp(-v / 2), so the gradient is
    sin(mu) exp(-v / 2). (From H = 2 on there is no closed form.)"""
    mu = system.s0 + system.amplitude * math.sin(system.s0) + system.theta
    return math.sin(mu) * math.exp(-(system.sigma_u ** 2 + system.sigma ** 2) / 2)


def crossover(horizons: tuple, pathwise: list, score: list):
    """The first horizon from which the score function's variance stays below the pathwise one
    (None if it never gets there)."""
    for index in range(len(horizons)):
        if all(s < p for s, p in zip(score[index:], pathwise[index:])):
            return horizons[index]
    return None


def growth_per_step(horizons: tuple, variances: list, from_horizon: int = 8) -> float:
    """exp(slope) of a least-squares line through log variance against H, for H >= from_horizon."""
    chosen = [(h, v) for h, v in zip(horizons, variances) if h >= from_horizon]
    h, v = np.array(chosen).T
    return float(np.exp(np.polyfit(h, np.log(v), 1)[0]))


# ---------------------------------------------------------------------------------------------
# The figure
def draw_figure(plt, system: LinearSystem, linear: dict, learned: dict, chaos: dict):
    """The exact cost with the optimum and the descent's end; the estimators' variances; the
    descent through the learned model; the chaos sweep."""
    figure, axes = plt.subplots(2, 2, figsize=(12, 8.4))
    colours = {PATHWISE: "tab:blue", SCORE_NOBASELINE: "tab:red", SCORE_LOO: "tab:orange"}
    estimators, descent = linear["estimators"], learned["descent"]
    k_star = descent["k_star"]

    ax = axes[0, 0]
    ks = np.linspace(-3.2, 0.05, 300)
    ax.plot(ks, [exact_cost(system, k)[0] for k in ks], color="black", label="exact J(k)")
    for k, J, slope in zip(GAINS, linear["exact"]["J"], linear["exact"]["dJ_dk"]):
        ax.plot([k], [J], "s", color="tab:purple")
        ax.annotate(f"dJ/dk = {slope:.4g}", (k, J), textcoords="offset points", xytext=(-70, 4), fontsize=8)
    ax.plot([], [], "s", color="tab:purple", label="where the estimators are compared")
    ax.axvline(k_star, color="grey", linestyle=":", label=f"exact optimum k* = {k_star:.4f}")
    ax.plot([descent["k_final"]], [descent["J_final"]], "o", color="tab:green",
            label=f"after descent through the learned model: {descent['k_final']:.4f}")
    ax.set_ylim(0, 30)
    ax.set_xlabel("policy gain k   (u = k s + sigma_pi eta)")
    ax.set_ylabel("J(k)")
    ax.set_title(f"linear-Gaussian system, H = {system.horizon}: the exact cost", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")

    ax = axes[0, 1]
    width = 0.27
    for offset, name in enumerate(ESTIMATORS):
        positions = np.arange(len(GAINS)) + (offset - 1) * width
        ax.bar(positions, estimators[name]["variance"], width, color=colours[name], label=name)
    ax.set_xticks(np.arange(len(GAINS)))
    largest_z = [max(abs(estimators[name]["z"][i]) for name in ESTIMATORS) for i in range(len(GAINS))]
    ax.set_xticklabels([f"k = {k:g}\nlargest |z| {z:.1f}" for k, z in zip(GAINS, largest_z)])
    ax.set_yscale("log")
    ax.set_ylabel("variance of dJ/dk per rollout")
    ax.set_title("three unbiased estimators of dJ/dk on the same rollouts\n"
                 "(z: each mean against the exact gradient)", fontsize=10)
    ax.legend(fontsize=8)

    ax = axes[1, 0]
    ax.plot(np.arange(len(descent["k_curve"])), descent["k_curve"], color="tab:green",
            label=f"k: Adam on the SVG(inf) gradient, {descent['rollouts_per_step']} real rollouts a step")
    ax.axhline(k_star, color="grey", linestyle=":", label="exact optimum k*")
    ax.set_xlabel("step")
    ax.set_ylabel("k")
    ax.set_title(f"policy improvement through the learned model (its replay of the real\n"
                 f"trajectories is exact to {learned['svg']['replay_max_abs_error']:.0e}): "
                 f"|k - k*| = {descent['abs_k_error']:.1e}", fontsize=10)
    ax.legend(fontsize=8)

    ax = axes[1, 1]
    labels = {PATHWISE: "pathwise", SCORE_NOBASELINE: "score function",
              SCORE_LOO: "score function, leave-one-out baseline"}
    for name in ESTIMATORS:
        ax.plot(chaos["horizons"], chaos["sweep"][name]["variance"], "o-", markersize=3,
                color=colours[name], label=labels[name])
    crossing = chaos["crossover_horizon"][SCORE_LOO]
    if crossing is not None:
        ax.axvline(crossing, color="grey", linestyle=":", label=f"crossover: H = {crossing}")
    ax.set_yscale("log")
    ax.set_xlabel("horizon H")
    ax.set_ylabel("variance of d/dtheta E[1 - cos s_H] per rollout")
    ax.set_title(f"chaos, s' = s + {chaos['system']['amplitude']:g} sin s + u + noise: the pathwise "
                 f"variance\ngrows {chaos['pathwise_growth_per_step']:.1f}x per step", fontsize=10)
    ax.legend(fontsize=8)
    figure.tight_layout()
    return figure


# ---------------------------------------------------------------------------------------------
def parse_args(argv=None):
    parser = common.demo_arguments(__doc__)
    parser.add_argument("--rollouts", type=int, default=20_000,
                        help="rollouts per estimator and k (parts 1 and 2)")
    parser.add_argument("--chaos-rollouts", type=int, default=20_000,
                        help="rollouts per estimator and horizon (part 3)")
    parser.add_argument("--transitions", type=int, default=300, help="random transitions for the model")
    parser.add_argument("--fit-steps", type=int, default=1500, help="Adam steps of the model's fit")
    parser.add_argument("--descent-steps", type=int, default=300, help="Adam steps on k")
    parser.add_argument("--descent-rollouts", type=int, default=256, help="real rollouts per step on k")
    args = parser.parse_args(argv)
    args.horizons = CHAOS_HORIZONS
    if args.quick:  # fewer rollouts, fewer horizons, a shorter descent: seconds
        args.rollouts, args.chaos_rollouts, args.descent_steps = 10_000, 2000, 150
        args.horizons = QUICK_CHAOS_HORIZONS
    for name in ("rollouts", "chaos_rollouts", "descent_rollouts"):
        if getattr(args, name) < 2:
            parser.error(f"--{name.replace('_', '-')} must be at least 2 (a variance, and the "
                         f"leave-one-out baseline, need two rollouts)")
    if args.transitions < 4:
        parser.error("--transitions must be at least 4 (three weights and a variance to fit)")
    for name in ("fit_steps", "descent_steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer")
    return args


def linear_system_part(system: LinearSystem, args) -> dict:
    """Part 1: the exact J and dJ/dk, the optimum, and the three estimators at each k in GAINS."""
    k_star = exact_optimum(system)
    exact = {"k": list(GAINS), "J": [exact_cost(system, k)[0] for k in GAINS],
             "dJ_dk": [exact_cost(system, k)[1] for k in GAINS]}
    optimum = {"k_star": k_star, "J_star": exact_cost(system, k_star)[0],
               "dJ_dk_at_k_star": exact_cost(system, k_star)[1],
               "stable_gains": list(stable_gains(system))}
    return {"exact": exact, "optimum": optimum,
            "estimators": estimate_at_gains(system, args.rollouts, args.seed)}


def learned_model_part(system: LinearSystem, k_star: float, args) -> dict:
    """Part 2: fit the model, compare SVG(inf) gradients, improve k through the model."""
    transitions = random_transitions(system, args.transitions, np.random.default_rng([args.seed, 0]))
    model, nll_curve = fit_model(transitions, args.fit_steps, args.seed)
    parameters = model.summary()
    svg = compare_svg(model, system, args.rollouts, args.seed)
    descent = improve_policy(model, system, args.descent_steps, args.descent_rollouts, args.seed)
    # where the SVG gradient through this model is zero on average: the point the descent seeks
    k_svg = zero_of(lambda k: svg_expected_gradient(system, parameters["w_s"], parameters["w_u"], k),
                    *stable_gains(system))
    k_final = descent[-1]
    J_final, J_star = exact_cost(system, k_final)[0], exact_cost(system, k_star)[0]
    return {
        "model": {"parameters": parameters, "least_squares": least_squares(transitions),
                  "transitions": args.transitions, "fit_steps": args.fit_steps,
                  "final_nll": nll_curve[-1]},
        "svg": svg,
        "descent": {"k_initial": descent[0], "k_final": k_final, "k_star": k_star, "k_svg_zero": k_svg,
                    "abs_k_error": abs(k_final - k_star), "J_final": J_final, "J_star": J_star,
                    "J_gap": J_final - J_star, "steps": args.descent_steps,
                    "rollouts_per_step": args.descent_rollouts, "k_curve": descent},
    }


def chaos_part(system: ChaoticSystem, args) -> dict:
    """Part 3: both estimators' variances over the horizons, and where they cross."""
    sweep = chaos_sweep(system, args.horizons, args.chaos_rollouts, args.seed)
    pathwise = sweep[PATHWISE]["variance"]
    return {
        "system": dict(system._asdict()), "cost": "1 - cos(s_H)", "horizons": list(args.horizons),
        "sweep": sweep,
        "crossover_horizon": {name: crossover(args.horizons, pathwise, sweep[name]["variance"])
                              for name in (SCORE_NOBASELINE, SCORE_LOO)},
        "exact_gradient_at_H1": one_step_gradient(system),
        "pathwise_growth_per_step": growth_per_step(args.horizons, pathwise),
        "reference_growth_per_step": 1 + system.amplitude ** 2 / 2,
        "variance_ratio_last_to_first": {name: sweep[name]["variance"][-1] / sweep[name]["variance"][0]
                                         for name in ESTIMATORS},
    }


def print_results(linear: dict, learned: dict, chaos: dict) -> None:
    exact, estimators, svg = linear["exact"], linear["estimators"], learned["svg"]
    rows = []
    for i, k in enumerate(GAINS):
        for name in ESTIMATORS:
            entry = estimators[name]
            rows.append([f"{k:g}", name, f"{entry['mean'][i]:.4f} +- {entry['std_error'][i]:.4f}",
                         f"{exact['dJ_dk'][i]:.4f}", f"{entry['z'][i]:+.2f}", entry["variance"][i]])
        rows.append([f"{k:g}", "SVG(inf), true model",
                     f"{svg['true_model_mean'][i]:.4f} +- {svg['true_model_std_error'][i]:.4f}",
                     f"{exact['dJ_dk'][i]:.4f}", f"{svg['true_model_z'][i]:+.2f}", "-"])
        rows.append([f"{k:g}", "SVG(inf), learned model",
                     f"{svg['svg_mean'][i]:.4f} +- {svg['svg_std_error'][i]:.4f}",
                     f"{svg['svg_expected'][i]:.4f} (its mean)", f"{svg['svg_z'][i]:+.2f}", "-"])
    common.print_table(["k", "estimator", "mean dJ/dk +- se", "exact", "z", "variance per rollout"], rows)

    model, descent = learned["model"], learned["descent"]
    fitted = ", ".join(f"{key} {value:.5f}" for key, value in model["parameters"].items())
    print(f"\nlearned model (a = 1, b = 0.5, offset 0, sigma_w = 0.1): {fitted}; the SVG replay "
          f"reproduces the real states to {svg['replay_max_abs_error']:.1e}.\nGradient descent through "
          f"the learned model: k {descent['k_initial']:g} -> {descent['k_final']:.5f}; exact optimum "
          f"k* = {descent['k_star']:.5f} (|k - k*| = {descent['abs_k_error']:.1e}, J(k) - J(k*) = "
          f"{descent['J_gap']:.1e}); the learned model's SVG gradient is zero on average at "
          f"{descent['k_svg_zero']:.5f}.")

    sweep = chaos["sweep"]
    chaos_rows = [[h] + [sweep[name]["variance"][i] for name in ESTIMATORS]
                  for i, h in enumerate(chaos["horizons"])]
    common.print_table(["H", "pathwise variance", "score_nobaseline variance", "score_loo variance"],
                       chaos_rows)
    crossovers = chaos["crossover_horizon"]
    print(f"\nchaos: the pathwise variance grows {chaos['pathwise_growth_per_step']:.1f}x per step "
          f"(1 + A^2 / 2 = {chaos['reference_growth_per_step']:g}); the score function is the "
          f"better estimator from H = {crossovers[SCORE_NOBASELINE]} (H = {crossovers[SCORE_LOO]} "
          f"with the leave-one-out baseline).")


def main(argv=None) -> dict:
    args = parse_args(argv)
    system, chaotic = LinearSystem(), ChaoticSystem()
    print(f"linear-Gaussian system {dict(system._asdict())}; {args.rollouts} rollouts per estimator "
          f"and k; chaos {dict(chaotic._asdict())}, {args.chaos_rollouts} rollouts per horizon; "
          f"seed {args.seed}")
    seconds = {}

    start = time.perf_counter()
    linear = linear_system_part(system, args)
    seconds["linear_system"] = time.perf_counter() - start
    common.progress(f"1. exact optimum k* = {linear['optimum']['k_star']:.6f}; three estimators at "
                    f"k = {', '.join(f'{k:g}' for k in GAINS)} ({seconds['linear_system']:.1f}s)")

    start = time.perf_counter()
    learned = learned_model_part(system, linear["optimum"]["k_star"], args)
    seconds["learned_model"] = time.perf_counter() - start
    common.progress(f"2. model fitted, SVG(inf) compared, {args.descent_steps} steps on k "
                    f"({seconds['learned_model']:.1f}s)")

    start = time.perf_counter()
    chaos = chaos_part(chaotic, args)
    seconds["chaos"] = time.perf_counter() - start
    common.progress(f"3. chaos sweep over H = {args.horizons[0]}..{args.horizons[-1]} "
                    f"({seconds['chaos']:.1f}s)")

    print_results(linear, learned, chaos)
    metrics = {
        "system": dict(system._asdict()), **linear, "learned_model": learned["model"],
        "svg": learned["svg"], "descent": learned["descent"], "chaos": chaos,
        "config": {"seed": args.seed, "rollouts": args.rollouts, "chaos_rollouts": args.chaos_rollouts,
                   "gains": list(GAINS), "descent_rollouts": args.descent_rollouts, "quick": args.quick},
        "seconds": seconds,
    }
    common.save_figure(lambda plt: draw_figure(plt, system, linear, learned, chaos), args.out,
                       "world_model.png")
    common.write_metrics(args.metrics_json, metrics)
    return metrics


if __name__ == "__main__":
    main()
