"""Reparameterized policy gradients: a tanh-squashed Gaussian policy, as in SAC, against REINFORCE.

The task is a one-step continuous-control problem (a contextual bandit): the state is a target
t ~ U[-1, 1]^d, the action a lies in (-1, 1)^d, and the reward r(t, a) = -|a - t|^2 is written in
the engine, so it is differentiable in a. A small MLP maps the state to mu(t) and log sigma(t), and
the action is the Soft Actor-Critic policy (Haarnoja et al. 2018, "Soft Actor-Critic", appendix C):

    a = tanh(u),   u = mu(t) + sigma(t) * eps,   eps ~ N(0, I),

whose log-density needs the change-of-variables correction for the tanh, written stably:

    log pi(a | t) = sum_i [ log N(u_i; mu_i, sigma_i) - log(1 - tanh(u_i)^2) ],
    log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)).

The policy maximizes the maximum-entropy objective J = E_t E_a[ r(t, a) - alpha log pi(a | t) ].
The same policy (same initial weights, same targets, same noise, same number of reward
evaluations per step: n_states targets x k actions) is trained with two gradient estimators:

- pathwise:  backpropagate through a = tanh(mu + sigma * eps) into the reward, and through the
             log-density computed from u (``rsample_with_log_prob``): the reparameterized gradient
             E_eps[ d/dtheta ( r(t, a_theta(eps)) - alpha log pi_theta(a_theta(eps) | t) ) ];
- score_loo: a = pi.sample() cuts the graph; with R = r(t, a) - alpha log pi(a | t) treated as a
             plain number, the score-function (REINFORCE) gradient E[ (R - b) grad log pi(a | t) ],
             where b is the mean R of the other k - 1 actions at the same target (leave-one-out
             baseline, Kool et al. 2019). (d/dtheta of -alpha log pi inside R adds
             -alpha E[grad log pi] = 0.)

Both use the same Adam learning rate, 3e-3, the best of {1e-3, 3e-3, 1e-2} for each estimator
(3 seeds, 1500 steps). Both estimators are unbiased, so given enough steps both approach the same
policy; what differs is how many reward evaluations that takes. After 150 steps (--quick) REINFORCE
is still 2 to 3 times farther from the targets (in E|a - t|^2) than the pathwise gradient, after
1500 steps about 1.3 times, and its one-step gradient is about 8 times as noisy.

It reports, over several seeds, the return E[r] of the stochastic policy before and after
training (mean +- std over seeds), learning curves, and the variance of one step's gradient
estimate at the initial weights. The figure shows the learning curves (mean over seeds with a
+-1 std band), the trained policies' actions for a few targets, and the tanh correction at work.

    python demos/reparam_policy.py                  # 5 seeds, 1500 steps each (about half a minute)
    python demos/reparam_policy.py --quick          # 3 seeds, 150 steps: seconds
    python demos/reparam_policy.py --seeds 10 --steps 3000 --alpha 0.02 --metrics-json m.json
"""
from __future__ import annotations

import common  # first: pins BLAS to one thread, finds the package from a checkout

import time

import numpy as np

from tinygrad_reparam import Tensor, no_grad
from tinygrad_reparam.distributions.tanh_normal import TanhNormal
from tinygrad_reparam.estimators import PATHWISE, SCORE_LOO, leave_one_out, score_function_surrogate
from tinygrad_reparam.nn import MLP, Module
from tinygrad_reparam.optim import Adam

ESTIMATORS = (PATHWISE, SCORE_LOO)
LOG_SCALE_MIN, LOG_SCALE_MAX = -5.0, 2.0  # sigma(t) in [0.0067, 7.4], like SAC's clamp


# ---------------------------------------------------------------------------------------------
# The task: reach a random target
def draw_targets(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """n states, each a target drawn uniformly from [-1, 1]^dim."""
    return rng.uniform(-1.0, 1.0, size=(n, dim))


def reward(actions: Tensor, targets: np.ndarray) -> Tensor:
    """r(t, a) = -|a - t|^2, summed over the action's coordinates (differentiable in a)."""
    return -((actions - targets) ** 2).sum(axis=-1)


# ---------------------------------------------------------------------------------------------
# The policy: an MLP from the state to the parameters of a TanhNormal
class Policy(Module):
    """pi(a | t) = TanhNormal(mu(t), sigma(t)), independently in each action coordinate."""

    def __init__(self, dim: int, hidden: int, rng: np.random.Generator):
        self.dim = dim
        self.net = MLP([dim, hidden, hidden, 2 * dim], activation="tanh", rng=rng)

    def forward(self, states: np.ndarray) -> TanhNormal:
        out = self.net(states)
        loc = out[:, :self.dim]
        log_scale = out[:, self.dim:].clip(LOG_SCALE_MIN, LOG_SCALE_MAX)
        return TanhNormal(loc, log_scale.exp())


# ---------------------------------------------------------------------------------------------
# The two gradient estimators: each returns a scalar whose gradient estimates grad J
def pathwise_objective(policy: Policy, targets: np.ndarray, k: int, alpha: float,
                      rng: np.random.Generator) -> Tensor:
    """The actions and their log-densities are functions of theta and of the noise."""
    pi = policy(targets)
    actions, log_pi = pi.rsample_with_log_prob((k,), rng)   # (k, n_states, dim) each
    soft_reward = reward(actions, targets) - alpha * log_pi.sum(axis=-1)
    return soft_reward.mean()


def score_loo_objective(policy: Policy, targets: np.ndarray, k: int, alpha: float,
                        rng: np.random.Generator) -> Tensor:
    """Score function, leave-one-out baseline: the actions are cut from the graph; only
    log pi(a | t) carries theta."""
    pi = policy(targets)
    actions = pi.sample((k,), rng)                            # the cut: a stochastic node
    log_pi = pi.log_prob(actions).sum(axis=-1)                # (k, n_states), connected to theta
    soft_reward = reward(actions, targets).data - alpha * log_pi.data   # R: plain numbers
    baseline = leave_one_out(soft_reward, axis=0)             # the other k - 1 actions, same target
    return score_function_surrogate(log_pi, soft_reward, baseline)


OBJECTIVES = {PATHWISE: pathwise_objective, SCORE_LOO: score_loo_objective}


# ---------------------------------------------------------------------------------------------
# Training and evaluation
def expected_return(policy: Policy, targets: np.ndarray, k: int, seed: list) -> float:
    """E[r] of the stochastic policy: k sampled actions per target, always the same noise."""
    with no_grad():
        actions = policy(targets).sample((k,), np.random.default_rng(seed))
        return float(reward(actions, targets).data.mean())


def train(estimator: str, run: int, args) -> tuple:
    """Train one policy with one estimator; returns (policy, return curve, seconds).

    Run ``run`` starts every estimator from the same weights, shows it the same targets and
    draws the same noise eps (generators seeded from [args.seed, run, ...]).
    """
    policy = Policy(args.dim, args.hidden, rng=np.random.default_rng([args.seed, run, 0]))
    optimizer = Adam(policy.parameters(), lr=args.lr)
    target_rng = np.random.default_rng([args.seed, run, 1])
    noise_rng = np.random.default_rng([args.seed, run, 2])
    eval_targets = draw_targets(args.eval_states, args.dim, np.random.default_rng([args.seed, run, 3]))
    eval_seed = [args.seed, run, 4]

    curve = [expected_return(policy, eval_targets, args.eval_actions, eval_seed)]  # at step 0
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        targets = draw_targets(args.states_per_step, args.dim, target_rng)
        optimizer.zero_grad()
        objective = OBJECTIVES[estimator](policy, targets, args.actions_per_state, args.alpha, noise_rng)
        (-objective).backward()
        optimizer.step()
        if step in args.eval_steps:
            curve.append(expected_return(policy, eval_targets, args.eval_actions, eval_seed))
    return policy, curve, time.perf_counter() - start


def gradient_variance(estimator: str, args, draws: int) -> float:
    """Total variance (summed over all weights) of one training step's gradient estimate at the
    initial weights of run 0, over ``draws`` independent steps (fresh targets and noise)."""
    policy = Policy(args.dim, args.hidden, rng=np.random.default_rng([args.seed, 0, 0]))
    rng = np.random.default_rng([args.seed, 0, 5])
    estimates = []
    for _ in range(draws):
        policy.zero_grad()
        targets = draw_targets(args.states_per_step, args.dim, rng)
        OBJECTIVES[estimator](policy, targets, args.actions_per_state, args.alpha, rng).backward()
        estimates.append(np.concatenate([p.grad.ravel() for p in policy.parameters()]))
    return float(np.var(np.stack(estimates), axis=0, ddof=1).sum())


# ---------------------------------------------------------------------------------------------
# The figure
def draw_figure(plt, steps: np.ndarray, curves: dict, policies: dict, args):
    """Learning curves; trained policies' actions for a few targets; the tanh correction."""
    figure, axes = plt.subplots(1, 3, figsize=(14, 4.3))
    colors = {PATHWISE: "tab:blue", SCORE_LOO: "tab:orange"}

    ax = axes[0]
    for name, runs in curves.items():
        distance = -runs  # E|a - t|^2 = -return: positive, so it can go on a log scale
        mean, std = distance.mean(axis=0), distance.std(axis=0)
        ax.plot(steps, mean, color=colors[name], label=f"{name} (mean of {len(runs)} seeds)")
        ax.fill_between(steps, mean - std, mean + std, color=colors[name], alpha=0.25, linewidth=0)
    ax.set_yscale("log")
    ax.set_xlabel(f"training step ({args.states_per_step * args.actions_per_state} reward evaluations each)")
    ax.set_ylabel("-return = E|a - t|^2 (lower is better)")
    ax.set_title("learning curves (band: +-1 std over seeds)", fontsize=10)
    ax.legend(fontsize=8)

    ax = axes[1]
    targets = np.zeros((5, args.dim))  # five targets that differ in their first two coordinates
    targets[:, :2] = [[-0.8, 0.7], [0.6, 0.6], [0.0, -0.2], [-0.5, -0.85], [0.9, -0.6]]
    for name, policy in policies.items():
        with no_grad():
            actions = policy(targets).sample((60,), np.random.default_rng([args.seed, 6])).data
        ax.scatter(actions[..., 0].ravel(), actions[..., 1].ravel(), s=5, alpha=0.5,
                   color=colors[name], label=f"{name} actions")
    ax.scatter(targets[:, 0], targets[:, 1], marker="x", s=60, color="black", label="targets")
    ax.set_xlim(-1, 1)
    ax.set_ylim(-1, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("a[0]")
    ax.set_ylabel("a[1]")
    ax.set_title(f"trained policies (run 0): 60 actions per target\n"
                 f"(first 2 of {args.dim} coordinates; the others' targets are 0)", fontsize=10)
    ax.legend(fontsize=8, loc="upper center")

    ax = axes[2]
    pi = TanhNormal(0.6, 0.9)
    samples = pi.sample((20000,), np.random.default_rng([args.seed, 7])).data
    grid = np.linspace(-0.999, 0.999, 400)
    corrected = np.exp(pi.log_prob(grid).data)                          # N(u) / (1 - tanh(u)^2)
    uncorrected = np.exp(pi.base_dist.log_prob(np.arctanh(grid)).data)  # N(u) alone
    ax.hist(samples, bins=80, range=(-1, 1), density=True, color="lightgray", label="a = tanh(u) samples")
    ax.plot(grid, corrected, color="tab:blue", label="exp(log_prob): with the tanh correction")
    ax.plot(grid, uncorrected, color="tab:red", linestyle="--", label="N(atanh a; mu, sigma): without it")
    ax.set_xlabel("action a")
    ax.set_xticks([-1.0, -0.5, 0.0, 0.5, 1.0])
    ax.set_title("the tanh correction of log pi(a):\nTanhNormal(mu=0.6, sigma=0.9)", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    return figure


# ---------------------------------------------------------------------------------------------
def parse_args(argv=None):
    parser = common.demo_arguments(__doc__)
    parser.add_argument("--seeds", type=int, default=5, help="independent runs per estimator")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--dim", type=int, default=8, help="action dimension d")
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--alpha", type=float, default=0.001, help="entropy bonus weight")
    parser.add_argument("--states-per-step", type=int, default=16)
    parser.add_argument("--actions-per-state", type=int, default=4)
    parser.add_argument("--eval-states", type=int, default=256)
    parser.add_argument("--eval-actions", type=int, default=8)
    parser.add_argument("--variance-draws", type=int, default=200)
    args = parser.parse_args(argv)
    if args.quick:  # 3 seeds, 150 steps: seconds
        args.seeds, args.steps, args.variance_draws = 3, 150, 50
    for name in ("seeds", "steps", "dim", "hidden", "states_per_step", "eval_states",
                 "eval_actions", "variance_draws"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer")
    if args.actions_per_state < 2:
        parser.error("--actions-per-state must be at least 2 (the leave-one-out baseline needs others)")
    if args.dim < 2:
        parser.error("--dim must be at least 2 (the figure draws the first two action coordinates)")
    every = max(1, args.steps // 30)  # about 30 points per learning curve, always the last step
    args.eval_steps = sorted(set(range(0, args.steps + 1, every)) | {args.steps})
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    evaluations = args.states_per_step * args.actions_per_state
    print(f"target reaching in (-1, 1)^{args.dim}: reward -|a - t|^2, alpha {args.alpha}; policy "
          f"MLP {args.dim}-{args.hidden}-{args.hidden}-{2 * args.dim} -> TanhNormal; Adam lr {args.lr}; "
          f"{args.steps} steps of {args.states_per_step} targets x {args.actions_per_state} actions "
          f"= {evaluations} reward evaluations; {args.seeds} seeds; seed {args.seed}")

    curves, seconds, policies = {}, {}, {}
    for name in ESTIMATORS:
        runs = []
        start = time.perf_counter()
        for run in range(args.seeds):
            policy, curve, run_seconds = train(name, run, args)
            runs.append(curve)
            if run == 0:
                policies[name] = policy
            common.progress(f"{name:>9}  run {run + 1}/{args.seeds}  return {curve[0]:7.3f} -> "
                            f"{curve[-1]:7.4f}  ({run_seconds:.1f}s)")
        curves[name] = np.array(runs)
        seconds[name] = time.perf_counter() - start

    variances = {name: gradient_variance(name, args, args.variance_draws) for name in ESTIMATORS}
    steps = np.array(args.eval_steps)

    results = {}
    for name in ESTIMATORS:
        final = curves[name][:, -1]
        results[name] = {
            "initial_return_mean": float(curves[name][:, 0].mean()),
            "final_return_mean": float(final.mean()),
            "final_return_std": float(final.std()),
            "final_returns": [float(value) for value in final],
            "grad_variance_ratio": variances[name] / variances[PATHWISE],
            "grad_variance": variances[name],
            "train_seconds": seconds[name],
            "curve_mean": [float(value) for value in curves[name].mean(axis=0)],
        }
    results["curve_steps"] = [int(step) for step in steps]
    results["config"] = {"seed": args.seed, "seeds": args.seeds, "steps": args.steps, "dim": args.dim,
                         "hidden": args.hidden, "lr": args.lr, "alpha": args.alpha,
                         "states_per_step": args.states_per_step,
                         "actions_per_state": args.actions_per_state,
                         "reward_evaluations_per_step": evaluations,
                         "variance_draws": args.variance_draws}

    rows = [(name, results[name]["initial_return_mean"],
             f"{results[name]['final_return_mean']:.4f} +- {results[name]['final_return_std']:.4f}",
             results[name]["grad_variance_ratio"], results[name]["train_seconds"])
            for name in ESTIMATORS]
    common.print_table(["estimator", "initial return", f"final return (mean +- std, {args.seeds} seeds)",
                        "grad variance / pathwise", "train s"], rows)
    print(f"(return = E[-|a - t|^2] of the stochastic policy on {args.eval_states} held-out targets; "
          f"gradient variance of one step's estimate at the initial weights, {args.variance_draws} draws)")

    common.save_figure(lambda plt: draw_figure(plt, steps, curves, policies, args),
                       args.out, "reparam_policy.png")
    common.write_metrics(args.metrics_json, results)
    return results


if __name__ == "__main__":
    main()
