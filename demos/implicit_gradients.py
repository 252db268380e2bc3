"""Implicit reparameterization gradients: variational inference with a Beta, whose exact answer is known.

A Beta(a, b) sample has no loc + scale * eps form, yet ``Beta.rsample`` is differentiable: the draw
x is recorded with the implicit gradient dx/da = -(dI_x(a, b)/da) / p(x) (Figurnov, Mohamed & Mnih
2018), which moves the sample so that its quantile I_x(a, b) stays fixed. This demo uses it where
the right answer is known exactly: a Beta-Bernoulli model.

Four coins with unknown biases theta_c, each with a uniform prior Beta(1, 1), are flipped n_c times
(n = 8, 25, 60 and 100, biases 0.1, 0.4, 0.5 and 0.9) and show k_c heads. The posterior is
Beta(1 + k_c, 1 + n_c - k_c), in closed form. Variational inference does not know that: it fits
q_c = Beta(mu_c nu_c, (1 - mu_c) nu_c), with mean mu_c = sigmoid(m_c) and precision nu_c = exp(s_c)
(unconstrained parameters, starting from q = Beta(1, 1)), by maximizing

    ELBO_c = E_q[log p(heads_c | theta) + log p(theta)] + H[q_c]
           = log p(heads_c) - KL(q_c || posterior_c),

the expectation by 16 implicitly reparameterized draws per coin and step, the entropy in closed
form, with Adam on (m, s): learning rate 0.1 for the first half, then decaying geometrically to
5e-4 (1e-3 with --quick); beta2 = 0.99, so that the huge gradients of the first steps, when q is
far wider than the posterior, are forgotten within a hundred steps. As the ELBO rises,
KL(q || posterior), exact in closed form (``kl_divergence(Beta, Beta)``), falls towards 0: the
fitted q becomes the posterior.

Then, at the same parameters (the start, q = Beta(1, 1), and the fitted q), the two unbiased
one-draw estimators of the gradient of E_q[log p(heads | theta) + log p(theta)] with respect to
(m, s) are put side by side, each over many independent estimates
(``estimators.gradient_samples``):

    pathwise (implicit)   d/dr f(x) = f'(x) dx/dr,      x = Beta.rsample(), dx/da implicit
    score function        f(x) d/dr log q(x),           x = Beta.sample(), no gradient through x

(the entropy's gradient is exact and the same for both, so it is left out of the comparison). Both
means must match the exact gradient, known in closed form from E_q[log theta] = digamma(a) -
digamma(a + b) and E_q[log(1 - theta)] = digamma(b) - digamma(a + b); the demo reports the
z-scores of both biases and of the difference between the two means, and the variance ratio
score / pathwise per parameter.

    python demos/implicit_gradients.py                 # 1500 Adam steps, 20,000 estimates per variance
    python demos/implicit_gradients.py --quick         # 300 steps, 4,000 estimates: seconds
"""
from __future__ import annotations

import common  # first: pins BLAS to one thread, finds the package from a checkout

import math
import time

import numpy as np

import tinygrad_reparam.distributions as D
from tinygrad_reparam import Tensor, no_grad
from tinygrad_reparam.estimators import PATHWISE, SCORE_NOBASELINE, gradient_samples
from tinygrad_reparam.optim import Adam
from tinygrad_reparam.special.beta import lbeta
from tinygrad_reparam.special.gamma import digamma

FLIPS = np.array([8, 25, 60, 100])
TRUE_BIASES = np.array([0.1, 0.4, 0.5, 0.9])
PRIOR = (1.0, 1.0)                      # Beta(1, 1): uniform
DRAWS_PER_STEP = 16
LR, LR_END, QUICK_LR_END = 0.1, 5e-4, 1e-3
ADAM_BETAS = (0.9, 0.99)
ESTIMATORS = {PATHWISE: "pathwise (implicit)", SCORE_NOBASELINE: "score function"}
PARAMETER_NAMES = ("m", "s")            # logit of the mean, log of the precision


# ---------------------------------------------------------------------------------------------
# The model: heads ~ Bernoulli(theta)^n, theta ~ Beta(1, 1); its exact posterior and evidence
class Coins:
    def __init__(self, seed: int):
        flips = np.random.default_rng(seed).random((len(FLIPS), FLIPS.max())) < TRUE_BIASES[:, None]
        self.heads = np.array([flips[c, :n].sum() for c, n in enumerate(FLIPS)], dtype=float)
        self.tails = FLIPS - self.heads
        self.posterior = D.Beta(PRIOR[0] + self.heads, PRIOR[1] + self.tails)
        self.log_prior_normalizer = lbeta(*PRIOR).item()  # log B(a0, b0)
        self.log_evidence = (lbeta(self.posterior.concentration1, self.posterior.concentration0).data
                             - self.log_prior_normalizer)  # log p(heads): one sequence of flips

    def log_joint(self, theta: Tensor, coin=slice(None)) -> Tensor:
        """log p(heads | theta) + log p(theta) = (k + a0 - 1) log theta + (n - k + b0 - 1) log(1 - theta)
        - log B(a0, b0), for the coins selected by ``coin``."""
        return ((self.heads[coin] + PRIOR[0] - 1.0) * theta.log()
                + (self.tails[coin] + PRIOR[1] - 1.0) * (-theta).log1p() - self.log_prior_normalizer)

    def expected_log_joint(self, a: Tensor, b: Tensor, coin=slice(None)) -> Tensor:
        """E_q[log joint] for q = Beta(a, b), exact: E log theta = digamma(a) - digamma(a + b)."""
        total = digamma(a + b)
        return ((self.heads[coin] + PRIOR[0] - 1.0) * (digamma(a) - total)
                + (self.tails[coin] + PRIOR[1] - 1.0) * (digamma(b) - total) - self.log_prior_normalizer)


def q_of(m: Tensor, s: Tensor) -> D.Beta:
    """Beta(mu nu, (1 - mu) nu), mean mu = sigmoid(m), precision nu = exp(s) = a + b."""
    mean, precision = m.sigmoid(), s.exp()
    return D.Beta(mean * precision, (1.0 - mean) * precision)


# ---------------------------------------------------------------------------------------------
# Variational inference
def learning_rate(step: int, steps: int, lr_end: float) -> float:
    """LR for the first half, then geometrically down to lr_end at the last step."""
    decay = max(0.0, (step - steps / 2) / (steps / 2 - 1))
    return LR * (lr_end / LR) ** decay


def fit(coins: Coins, steps: int, lr_end: float, seed: int) -> dict:
    """Adam on -(sum over coins of the ELBO), DRAWS_PER_STEP implicit draws per coin and step."""
    rng = np.random.default_rng(seed)
    m = Tensor(np.zeros(len(FLIPS)), requires_grad=True, name="m")  # q = Beta(1, 1) to start
    s = Tensor(np.full(len(FLIPS), math.log(2.0)), requires_grad=True, name="s")
    optimizer = Adam([m, s], lr=LR, betas=ADAM_BETAS)
    elbo_curve, kl_curve = [], []
    for step in range(steps):
        optimizer.lr = learning_rate(step, steps, lr_end)
        optimizer.zero_grad()
        q = q_of(m, s)
        theta = q.rsample((DRAWS_PER_STEP,), rng=rng)          # implicit reparameterization
        elbo = coins.log_joint(theta).mean(axis=0) + q.entropy()  # one ELBO per coin
        (-elbo.sum()).backward()
        optimizer.step()
        with no_grad():
            kl_curve.append(D.kl_divergence(q_of(m, s), coins.posterior).data.tolist())
        elbo_curve.append(elbo.data.tolist())
    return {"m": m.data.copy(), "s": s.data.copy(), "elbo_curve": elbo_curve, "kl_curve": kl_curve}


def final_state(coins: Coins, m: np.ndarray, s: np.ndarray, seed: int, draws: int) -> dict:
    """The fitted q, its exact KL to the posterior, and the ELBO by Monte Carlo next to
    log p(heads) - KL (the identity ELBO = log evidence - KL, checked)."""
    with no_grad():
        q = q_of(Tensor(m), Tensor(s))
        theta = q.sample((draws,), rng=np.random.default_rng(seed))
        elbo_draws = coins.log_joint(theta).data + q.entropy().data
        kl = D.kl_divergence(q, coins.posterior).data
    return {"concentration1": q.concentration1.data.tolist(), "concentration0": q.concentration0.data.tolist(),
            "kl_to_posterior": kl.tolist(),
            "elbo_monte_carlo": elbo_draws.mean(axis=0).tolist(),
            "elbo_monte_carlo_stderr": (elbo_draws.std(axis=0) / math.sqrt(draws)).tolist(),
            "log_evidence_minus_kl": (coins.log_evidence - kl).tolist()}


# ---------------------------------------------------------------------------------------------
# The two gradient estimators at the same parameters
def exact_gradient(coins: Coins, coin: int, m: float, s: float) -> list:
    """d/d(m, s) of E_q[log joint] in closed form (digamma's derivative is trigamma)."""
    m, s = Tensor(m, requires_grad=True), Tensor(s, requires_grad=True)
    q = q_of(m, s)
    coins.expected_log_joint(q.concentration1, q.concentration0, coin).backward()
    return [float(m.grad), float(s.grad)]


def compare_estimators(coins: Coins, m: np.ndarray, s: np.ndarray, repeats: int, seed: int) -> list:
    """Per coin and estimator: mean, variance and standard error of one-draw estimates of the
    gradient, bias z-scores against the exact gradient; then the z-score of the difference of the
    two means and the variance ratio score / pathwise. Coin by coin, so that a score-function
    estimate for one coin carries no noise from the others' costs."""
    results = []
    for coin in range(len(FLIPS)):
        exact = exact_gradient(coins, coin, m[coin], s[coin])
        stats = {}
        for estimator in ESTIMATORS:
            parameters = [Tensor(m[coin], requires_grad=True), Tensor(s[coin], requires_grad=True)]
            stats[estimator] = gradient_samples(q_of, lambda theta, c=coin: coins.log_joint(theta, c),
                                                parameters, estimator, n_samples=1, repeats=repeats,
                                                exact=exact, rng=np.random.default_rng(seed + coin))
        entry = {"exact": exact}
        for estimator, per_parameter in stats.items():
            entry[estimator] = {name: {"mean": float(s.mean), "variance": float(s.variance),
                                       "std_error": float(s.std_error), "bias_z": float(s.bias_z)}
                                for name, s in zip(PARAMETER_NAMES, per_parameter)}
        entry["difference_z"], entry["variance_ratio"] = {}, {}
        for index, name in enumerate(PARAMETER_NAMES):
            path, score = stats[PATHWISE][index], stats[SCORE_NOBASELINE][index]
            entry["difference_z"][name] = float((path.mean - score.mean)
                                                / math.sqrt(path.std_error ** 2 + score.std_error ** 2))
            entry["variance_ratio"][name] = float(score.variance / path.variance)
        results.append(entry)
    return results


# ---------------------------------------------------------------------------------------------
# Output
def draw_figure(plt, coins: Coins, fitted: dict, training: dict, variance: dict):
    """Left: each coin's exact posterior and the fitted q. Middle: KL(q || posterior) along
    training. Right: the variance of one-draw gradient estimates at the fitted q, per parameter."""
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    grid = np.linspace(1e-4, 1 - 1e-4, 800)
    with no_grad():
        posterior = np.exp(coins.posterior.log_prob(grid[:, None]).data)
        q = np.exp(D.Beta(np.array(fitted["concentration1"]), np.array(fitted["concentration0"]))
                   .log_prob(grid[:, None]).data)
    ax = axes[0]
    for c in range(len(FLIPS)):
        label = f"{int(coins.heads[c])}/{FLIPS[c]} heads"
        ax.plot(grid, posterior[:, c], color=f"C{c}", linewidth=2.5, alpha=0.45, label=f"posterior, {label}")
        ax.plot(grid, q[:, c], "--", color=f"C{c}", linewidth=1.2)
    ax.set_xlabel("theta (bias of the coin)")
    ax.set_title("exact posterior (thick) and fitted q (dashed)", fontsize=10)
    ax.legend(fontsize=8)
    ax = axes[1]
    kl = np.array(training["kl_curve"])
    for c in range(len(FLIPS)):
        ax.plot(np.arange(1, len(kl) + 1), kl[:, c], color=f"C{c}", label=f"n = {FLIPS[c]}")
    ax.set_yscale("log")
    ax.set_xlabel("Adam step")
    ax.set_ylabel("KL(q || posterior), exact")
    ax.set_title("training: q becomes the posterior", fontsize=10)
    ax.legend(fontsize=8)
    ax = axes[2]
    positions = np.arange(len(FLIPS) * 2)
    labels = [f"{name}, n={n}" for n in FLIPS for name in PARAMETER_NAMES]
    for offset, estimator in zip((-0.2, 0.2), ESTIMATORS):
        values = [entry[estimator][name]["variance"] for entry in variance for name in PARAMETER_NAMES]
        ax.bar(positions + offset, values, width=0.4, label=ESTIMATORS[estimator])
    ax.set_yscale("log")
    ax.set_xticks(positions)
    ax.set_xticklabels(labels, rotation=60, fontsize=7)
    ax.set_ylabel("variance of a one-draw gradient estimate")
    ax.set_title("at the fitted q: implicit pathwise vs score function", fontsize=10)
    ax.legend(fontsize=8)
    figure.suptitle("Beta-Bernoulli VI with implicitly reparameterized Beta draws, "
                    "dx/da = -(dI_x/da) / p(x)", fontsize=11)
    figure.tight_layout()
    return figure


def parse_args(argv=None):
    parser = common.demo_arguments(__doc__)
    parser.add_argument("--steps", type=int, default=1500, help="Adam steps")
    parser.add_argument("--repeats", type=int, default=20_000, help="estimates per gradient variance")
    args = parser.parse_args(argv)
    args.lr_end = QUICK_LR_END if args.quick else LR_END
    if args.quick:
        args.steps, args.repeats = 300, 4000
    if args.steps < 50 or args.repeats < 100:
        parser.error("--steps must be at least 50 and --repeats at least 100")
    return args


def summary_rows(coins: Coins, fitted: dict, variance: dict) -> list:
    rows = []
    for c in range(len(FLIPS)):
        entry = variance[c]
        ratios = " / ".join(f"{entry['variance_ratio'][name]:.3g}" for name in PARAMETER_NAMES)
        largest_z = max(abs(entry[estimator][name]["bias_z"])
                        for estimator in ESTIMATORS for name in PARAMETER_NAMES)
        posterior = (coins.posterior.concentration1.data[c], coins.posterior.concentration0.data[c])
        rows.append([f"{int(coins.heads[c])}/{FLIPS[c]}", f"Beta({posterior[0]:g}, {posterior[1]:g})",
                     f"Beta({fitted['concentration1'][c]:.4g}, {fitted['concentration0'][c]:.4g})",
                     f"{fitted['kl_to_posterior'][c]:.2e}", ratios, f"{largest_z:.2f}"])
    return rows


def main(argv=None) -> dict:
    args = parse_args(argv)
    print(f"Beta-Bernoulli, {len(FLIPS)} coins, uniform prior: VI with q = Beta(mu nu, (1 - mu) nu), "
          f"{args.steps} Adam steps of {DRAWS_PER_STEP} implicit draws; gradient variances over "
          f"{args.repeats} one-draw estimates; seed {args.seed}")
    coins = Coins(args.seed)
    start = time.perf_counter()
    training = fit(coins, args.steps, args.lr_end, args.seed + 1)
    train_seconds = time.perf_counter() - start
    fitted = final_state(coins, training["m"], training["s"], args.seed + 2, draws=100_000)
    common.progress(f"fitted in {train_seconds:.1f}s: KL(q || posterior) = "
                    + ", ".join(f"{kl:.2e}" for kl in fitted["kl_to_posterior"]))
    start = time.perf_counter()
    beta_1_1 = (np.zeros(len(FLIPS)), np.full(len(FLIPS), math.log(2.0)))
    at_start = compare_estimators(coins, *beta_1_1, args.repeats, args.seed + 3)
    at_fit = compare_estimators(coins, training["m"], training["s"], args.repeats, args.seed + 13)
    variance_seconds = time.perf_counter() - start

    every = at_start + at_fit
    metrics = {
        "fitted": fitted,
        "posterior": {"concentration1": coins.posterior.concentration1.data.tolist(),
                      "concentration0": coins.posterior.concentration0.data.tolist(),
                      "log_evidence": coins.log_evidence.tolist()},
        "max_kl_to_posterior": max(fitted["kl_to_posterior"]),
        "gradients_at_start": at_start, "gradients_at_fit": at_fit,
        "variance_ratio_range": [min(e["variance_ratio"][n] for e in every for n in PARAMETER_NAMES),
                                 max(e["variance_ratio"][n] for e in every for n in PARAMETER_NAMES)],
        "max_abs_bias_z": max(abs(e[estimator][n]["bias_z"])
                              for e in every for estimator in ESTIMATORS for n in PARAMETER_NAMES),
        "max_abs_difference_z": max(abs(e["difference_z"][n]) for e in every for n in PARAMETER_NAMES),
        "training": {"elbo_curve": training["elbo_curve"], "kl_curve": training["kl_curve"]},
        "train_seconds": train_seconds, "variance_seconds": variance_seconds,
        "config": {"flips": FLIPS.tolist(), "true_biases": TRUE_BIASES.tolist(), "heads": coins.heads.tolist(),
                   "prior": list(PRIOR), "steps": args.steps, "draws_per_step": DRAWS_PER_STEP,
                   "lr": LR, "lr_end": args.lr_end, "adam_betas": list(ADAM_BETAS), "repeats": args.repeats,
                   "seed": args.seed},
    }

    common.print_table(["heads", "posterior", "fitted q", "KL(q || post)", "Var score / Var pathwise (m / s)",
                        "max |bias z|"], summary_rows(coins, fitted, at_fit))
    low, high = metrics["variance_ratio_range"]
    print(f"\nThe fitted q is the posterior to KL {metrics['max_kl_to_posterior']:.1e} nats or less. At the "
          f"start (q = Beta(1, 1)) and at the fitted q, the score-function gradient is {low:.3g} to "
          f"{high:.3g} times as noisy as the implicit pathwise one; both are unbiased: largest |bias z| "
          f"{metrics['max_abs_bias_z']:.2f}, largest |z| of the difference of their means "
          f"{metrics['max_abs_difference_z']:.2f}. ({train_seconds:.1f}s training, "
          f"{variance_seconds:.1f}s variances)")

    common.save_figure(lambda plt: draw_figure(plt, coins, fitted, training, at_fit), args.out,
                       "implicit_gradients.png")
    common.write_metrics(args.metrics_json, metrics)
    return metrics


if __name__ == "__main__":
    main()
