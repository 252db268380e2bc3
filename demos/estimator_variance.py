"""Which gradient estimator is less noisy? Pathwise against score function, cost by cost.

Mohamed, Rosca, Figurnov & Mnih (2020), "Monte Carlo Gradient Estimation in Machine Learning"
(JMLR 21(132)), compare the estimators of d/dtheta E_{x ~ N(mu, sigma^2)}[f(x)] on three costs:
a quadratic (x - k)^2, a bump exp(-k x^2) and a wave cos(k x). This demo redoes that comparison
with the package's variance meter (``tinygrad_reparam.estimators.gradient_samples``), as a
function of sigma at mu = 1. Every estimate averages N = 4 draws x_i = mu + sigma * eps_i:

    pathwise                    (1/N) sum_i f'(x_i) dx_i/dtheta,  dx/dmu = 1, dx/dsigma = eps
    score function              (1/N) sum_i (f(x_i) - b_i) dlog q(x_i)/dtheta,
                                dlog q/dmu = eps / sigma,  dlog q/dsigma = (eps^2 - 1) / sigma

with the baseline b_i = 0 ("score_nobaseline"), a moving average of the mean costs of the earlier
estimates ("score": decay 0.9, ``MovingAverageBaseline``'s rule, as in the VAE), or the mean cost
of the other N - 1 draws ("score_loo", leave-one-out). All four see the same eps (common random
numbers) and every gradient comes from the engine's backward pass. Variances are reported per draw, V = N * Var(estimate):
the variance one evaluation of f buys, which for the pathwise and the plain score function
estimators is exactly the variance of a one-draw estimate.

Exact gradients (each estimator's mean must match them; the bias is reported as a z-score):

    E[(x - k)^2]   = (mu - k)^2 + sigma^2                  -> (2 (mu - k), 2 sigma)
    E[exp(-k x^2)] = exp(-k mu^2 / a) / sqrt(a),  a = 1 + 2 k sigma^2
                   -> E * (-2 k mu / a,  4 k sigma (k mu^2 / a^2 - 1 / (2 a)))
    E[cos(k x)]    = cos(k mu) exp(-k^2 sigma^2 / 2)
                   -> (-k sin(k mu) e^{-k^2 sigma^2 / 2},  -k^2 sigma cos(k mu) e^{-k^2 sigma^2 / 2})

Closed-form variances for the quadratic cost. Write m = mu - k, x - k = m + sigma * eps, expand,
and use E eps^2 = 1, E eps^4 = 3, E eps^6 = 15, E eps^8 = 105 (per draw; (d/dmu, d/dsigma)):

    pathwise                  4 sigma^2,                              4 m^2 + 8 sigma^2
    score, no baseline        m^4/sigma^2 + 14 m^2 + 15 sigma^2,     2 m^4/sigma^2 + 60 m^2 + 74 sigma^2
    score, ideal b = E[f]     8 m^2 + 10 sigma^2,                     40 m^2 + 56 sigma^2
    score, moving average     ideal + Var(b) (1, 2) / sigma^2,   Var(b) = (1 - d)/(1 + d) Var(f) / N
    score, leave-one-out      ((N - 2) ideal + 2 zeta) / (N - 1),  zeta = (8 m^2 + 6 sigma^2, 24 m^2 + 32 sigma^2)

(the first three rows are the table in ``tinygrad_reparam.estimators``' docstring with mu -> m;
Var(f) = 4 m^2 sigma^2 + 2 sigma^4, and the baseline, independent of the draws it multiplies,
adds Var(b) E[(dlog q)^2]; leave-one-out is the U-statistic (2 / (N (N - 1))) sum_{i<j} h_ij,
h_ij = (f_i - f_j)(s_i - s_j) / 2 with s the score, so Hoeffding's formula applies with
zeta = Var(h)). At mu = sigma = 1, k = 0 (f = x^2): pathwise 4 and 12, score function 30 and
136, ideal baseline 18 and 96: the pathwise estimator wins for every sigma.

It does not always win. For f = cos(k x) the pathwise estimator carries f'(x) = -k sin(k x):

    Var(-k sin(k x)) = k^2 [(1 - cos(2 k mu) e^{-2 k^2 sigma^2}) / 2 - sin^2(k mu) e^{-k^2 sigma^2}]
                     -> k^2 / 2          once k sigma >> 1,

while the score function multiplies the bounded f(x) = cos(k x) by eps / sigma, so its variance
is at most E[eps^2] / sigma^2 and tends to 1 / (2 sigma^2). When the cost wiggles faster than q
is wide (k sigma > 1) the pathwise estimator is about (k sigma)^2 times noisier for d/dmu (and
(k sigma)^2 / 2 for d/dsigma, where the score is (eps^2 - 1) / sigma and the pathwise term carries
an extra factor eps): at k = 10, sigma = 1, a hundred and fifty times. E[cos(k x)] is then close
to 0, so a baseline has nothing to remove: the plain score function already wins.
The same reversal over a horizon of chaotic dynamics is the chaos sweep of ``demos/world_model.py``.

    python demos/estimator_variance.py [--seed 0] [--repeats 100000] [--quick]
                                       [--metrics-json PATH] [--out DIR]
"""
from __future__ import annotations

import common  # first: pins BLAS to one thread, finds the package from a checkout

import time
from typing import Callable, NamedTuple

import numpy as np

import tinygrad_reparam.distributions as D
from tinygrad_reparam import Tensor
from tinygrad_reparam.estimators import PATHWISE, SCORE, SCORE_LOO, SCORE_NOBASELINE, gradient_samples

MU = 1.0
N_DRAWS = 4          # draws per estimate (leave-one-out needs at least 2)
DECAY = 0.9          # of the moving-average baseline
SIGMAS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0)
QUICK_SIGMAS = (0.1, 1.0, 3.0)
CHECK_SIGMA = 1.0    # where the closed forms are checked and the cos(k x) regime is reported
PARAMETERS = ("mu", "sigma")


# ---------------------------------------------------------------------------------------------
# The costs and their exact gradients d/dmu, d/dsigma of E[f(x)], x ~ N(mu, sigma^2)
def quadratic(z: Tensor, k: float) -> Tensor:
    return (z - k) ** 2


def quadratic_gradient(mu: float, sigma: float, k: float) -> tuple:
    return 2 * (mu - k), 2 * sigma


def bump(z: Tensor, k: float) -> Tensor:
    return (-k * z ** 2).exp()


def bump_gradient(mu: float, sigma: float, k: float) -> tuple:
    a = 1 + 2 * k * sigma ** 2
    expectation = np.exp(-k * mu ** 2 / a) / np.sqrt(a)
    return (expectation * (-2 * k * mu / a),
            expectation * 4 * k * sigma * (k * mu ** 2 / a ** 2 - 1 / (2 * a)))


def wave(z: Tensor, k: float) -> Tensor:
    return (k * z).cos()


def wave_gradient(mu: float, sigma: float, k: float) -> tuple:
    damping = np.exp(-k ** 2 * sigma ** 2 / 2)
    return -k * np.sin(k * mu) * damping, -k ** 2 * sigma * np.cos(k * mu) * damping


class Cost(NamedTuple):
    label: str
    k: float
    function: Callable        # (z Tensor, k) -> cost Tensor
    exact_gradient: Callable  # (mu, sigma, k) -> (d/dmu, d/dsigma)


COSTS = {
    "quadratic": Cost("(x - k)^2, k = 0", 0.0, quadratic, quadratic_gradient),
    "bump": Cost("exp(-k x^2), k = 1", 1.0, bump, bump_gradient),
    "wave": Cost("cos(k x), k = 10", 10.0, wave, wave_gradient),
}


# ---------------------------------------------------------------------------------------------
# The estimators
def moving_average_baselines(costs: np.ndarray) -> np.ndarray:
    """Baselines for the estimates laid side by side along axis 1 (costs: (N_DRAWS, repeats)).

    Estimate r gets the moving average of the mean costs of estimates 0..r-1, read before
    estimate r's own costs are folded in, exactly as ``MovingAverageBaseline`` would give when the
    estimates are drawn one after another (the first estimate has none: b = 0). Replaying the
    rule here lets the meter draw all estimates in one vectorized graph.
    """
    baselines = np.zeros(costs.shape[1])
    average = None
    for r, batch_mean in enumerate(costs.mean(axis=0).tolist()):
        baselines[r] = 0.0 if average is None else average
        average = batch_mean if average is None else DECAY * average + (1.0 - DECAY) * batch_mean
    return baselines


# name: (the meter's estimator, its baseline, label); "score" has the moving-average baseline,
# as in the VAE.
ESTIMATORS = {
    PATHWISE: (PATHWISE, None, "pathwise"),
    SCORE_NOBASELINE: (SCORE_NOBASELINE, None, "score_nobaseline"),
    SCORE: (SCORE, moving_average_baselines, "score (moving average)"),
    SCORE_LOO: (SCORE_LOO, None, "score_loo (leave-one-out)"),
}


def measure(cost: Cost, sigma: float, repeats: int, seed: list) -> dict:
    """All estimators at one (cost, sigma), each on the same noise (a fresh generator with the
    same seed): {estimator: {"mu"/"sigma": per-draw variance, its standard error, bias z-score}}."""
    exact = cost.exact_gradient(MU, sigma, cost.k)
    results = {}
    for key, (estimator, baseline, _) in ESTIMATORS.items():
        params = [Tensor(MU, requires_grad=True), Tensor(sigma, requires_grad=True)]
        stats = gradient_samples(D.Normal, lambda z: cost.function(z, cost.k), params, estimator,
                                 n_samples=N_DRAWS, repeats=repeats, baseline=baseline, exact=exact,
                                 rng=np.random.default_rng(seed))
        results[key] = {name: {"variance": N_DRAWS * float(s.variance),
                               "std_error": N_DRAWS * float(s.variance_std_error),
                               "bias_z": float(s.bias_z)}
                        for name, s in zip(PARAMETERS, stats)}
    return results


def sweep(sigmas: tuple, repeats: int, seed: int) -> dict:
    """measure() for every cost and sigma: {cost: {estimator: {parameter: {quantity: [per sigma]}}}}."""
    table = {}
    for cost_index, (cost_key, cost) in enumerate(COSTS.items()):
        start = time.perf_counter()
        table[cost_key] = {key: {name: {"variance": [], "std_error": [], "bias_z": []} for name in PARAMETERS}
                           for key in ESTIMATORS}
        for sigma_index, sigma in enumerate(sigmas):
            point = measure(cost, sigma, repeats, [seed, cost_index, sigma_index])
            for key in ESTIMATORS:
                for name in PARAMETERS:
                    for quantity, value in point[key][name].items():
                        table[cost_key][key][name][quantity].append(value)
        common.progress(f"{cost.label:>18}  {time.perf_counter() - start:4.1f}s  pathwise lowest at "
                        f"sigma = {pathwise_wins(table[cost_key], sigmas)}")
    return table


def pathwise_wins(cost_table: dict, sigmas: tuple) -> str:
    """The sigmas at which the pathwise variance is below every score-function variant's."""
    def wins(name):
        won = [sigma for i, sigma in enumerate(sigmas)
               if all(cost_table[PATHWISE][name]["variance"][i] < cost_table[key][name]["variance"][i]
                      for key in ESTIMATORS if key != PATHWISE)]
        return ", ".join(f"{sigma:g}" for sigma in won) or "none"
    return f"{wins('mu')} (d/dmu); {wins('sigma')} (d/dsigma)"


# ---------------------------------------------------------------------------------------------
# Closed forms and the two headline checks
def quadratic_variances(mu: float, sigma: float, k: float) -> dict:
    """Per-draw variances (d/dmu, d/dsigma) for f = (x - k)^2, from the module docstring."""
    m2, s2 = (mu - k) ** 2, sigma ** 2
    ideal = (8 * m2 + 10 * s2, 40 * m2 + 56 * s2)
    baseline_variance = (1 - DECAY) / (1 + DECAY) * (4 * m2 * s2 + 2 * s2 ** 2) / N_DRAWS
    zeta = (8 * m2 + 6 * s2, 24 * m2 + 32 * s2)
    return {
        PATHWISE: (4 * s2, 4 * m2 + 8 * s2),
        SCORE_NOBASELINE: (m2 ** 2 / s2 + 14 * m2 + 15 * s2, 2 * m2 ** 2 / s2 + 60 * m2 + 74 * s2),
        SCORE: (ideal[0] + baseline_variance / s2, ideal[1] + 2 * baseline_variance / s2),
        SCORE_LOO: tuple(((N_DRAWS - 2) * v + 2 * z) / (N_DRAWS - 1) for v, z in zip(ideal, zeta)),
        "score_ideal_baseline": ideal,
    }


def at_sigma(table: dict, cost_key: str, sigmas: tuple, sigma: float) -> dict:
    """{estimator: {parameter: {variance, std_error, bias_z}}} at one sigma of the sweep."""
    i = sigmas.index(sigma)
    return {key: {name: {q: values[i] for q, values in table[cost_key][key][name].items()}
                  for name in PARAMETERS}
            for key in ESTIMATORS}


def closed_form_check(table: dict, sigmas: tuple) -> dict:
    """f = x^2 at mu = sigma = 1: measured per-draw variances next to their closed forms."""
    cost = COSTS["quadratic"]
    measured = at_sigma(table, "quadratic", sigmas, CHECK_SIGMA)
    forms = quadratic_variances(MU, CHECK_SIGMA, cost.k)
    check = {key: {name: {"measured": measured[key][name]["variance"],
                          "std_error": measured[key][name]["std_error"],
                          "closed_form": forms[key][i]}
                   for i, name in enumerate(PARAMETERS)}
             for key in ESTIMATORS}
    check["score_ideal_baseline_closed_form"] = dict(zip(PARAMETERS, forms["score_ideal_baseline"]))
    return check


def wave_regime(table: dict, sigmas: tuple) -> dict:
    """cos(k x) at sigma = 1: the pathwise variance against the score function's."""
    measured = at_sigma(table, "wave", sigmas, CHECK_SIGMA)
    variance = {key: {name: measured[key][name]["variance"] for name in PARAMETERS} for key in ESTIMATORS}
    ratios = {key: {name: variance[PATHWISE][name] / variance[key][name] for name in PARAMETERS}
              for key in ESTIMATORS if key != PATHWISE}
    return {
        "k": COSTS["wave"].k, "mu": MU, "sigma": CHECK_SIGMA, "variance": variance,
        "ratio_pathwise_to": ratios,
        "pathwise_larger": all(ratio > 1 for by_name in ratios.values() for ratio in by_name.values()),
    }


def largest_bias_z(table: dict) -> float:
    """max |bias z-score| over every cost, estimator, parameter and sigma."""
    return max(abs(z) for by_estimator in table.values() for by_name in by_estimator.values()
               for numbers in by_name.values() for z in numbers["bias_z"])


# ---------------------------------------------------------------------------------------------
# Output
def table_rows(table: dict, sigmas: tuple) -> list:
    """One row per cost and estimator at sigma = 1, with closed forms for the quadratic."""
    forms = quadratic_variances(MU, CHECK_SIGMA, COSTS["quadratic"].k)
    rows = []
    for cost_key, cost in COSTS.items():
        measured = at_sigma(table, cost_key, sigmas, CHECK_SIGMA)
        for key, (_, _, label) in ESTIMATORS.items():
            mu_row, sigma_row = measured[key]["mu"], measured[key]["sigma"]
            closed = forms[key] if cost_key == "quadratic" else ("-", "-")
            rows.append([cost.label, label,
                         f"{mu_row['variance']:.4g} +- {mu_row['std_error']:.2g}", closed[0],
                         f"{sigma_row['variance']:.4g} +- {sigma_row['std_error']:.2g}", closed[1],
                         f"{max(abs(mu_row['bias_z']), abs(sigma_row['bias_z'])):.2f}"])
    return rows


def draw_figure(plt, table: dict, sigmas: tuple):
    """Per-draw variance against sigma (log-log): one column per cost, d/dmu above, d/dsigma
    below, one curve per estimator; dashed lines are the quadratic's closed forms."""
    figure, axes = plt.subplots(2, len(COSTS), figsize=(12, 6.6), sharex=True)
    colours = dict(zip(ESTIMATORS, ("C0", "C3", "C1", "C2")))
    fine = np.geomspace(min(sigmas), max(sigmas), 100)
    for column, (cost_key, cost) in enumerate(COSTS.items()):
        for row, name in enumerate(PARAMETERS):
            ax = axes[row, column]
            for key, (_, _, label) in ESTIMATORS.items():
                ax.plot(sigmas, table[cost_key][key][name]["variance"], "o-", color=colours[key],
                        markersize=4, label=label)
                if cost_key == "quadratic":
                    closed = [quadratic_variances(MU, s, cost.k)[key][row] for s in fine]
                    ax.plot(fine, closed, "--", color=colours[key], linewidth=1)
            ax.axvline(CHECK_SIGMA, color="grey", linestyle=":", linewidth=1)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.grid(True, which="major", alpha=0.3)
            ax.set_title(f"{cost.label}: d/d{name}", fontsize=10)
            if column == 0:
                ax.set_ylabel(f"variance per draw, d/d{name}")
            if row == 1:
                ax.set_xlabel("sigma  (mu = 1)")
    axes[0, 0].plot([], [], "k--", linewidth=1, label="closed form")
    axes[0, 0].legend(fontsize=8)
    axes[0, 2].annotate("k sigma > 1: the pathwise\nestimator is the noisy one",
                        xy=(CHECK_SIGMA, table["wave"][PATHWISE]["mu"]["variance"][sigmas.index(CHECK_SIGMA)]),
                        xytext=(0.04, 0.08), textcoords="axes fraction", fontsize=8,
                        arrowprops={"arrowstyle": "->", "color": "grey"})
    figure.suptitle("Gradient variance of E[f(x)], x ~ N(mu, sigma^2): pathwise vs score function "
                    f"({N_DRAWS} draws per estimate, same noise)", fontsize=11)
    figure.tight_layout()
    return figure


# ---------------------------------------------------------------------------------------------
def parse_args(argv=None):
    parser = common.demo_arguments(__doc__)
    parser.add_argument("--repeats", type=int, default=100_000,
                        help="independent gradient estimates per estimator, cost and sigma")
    args = parser.parse_args(argv)
    args.sigmas = SIGMAS
    if args.quick:  # three sigmas and fewer estimates: seconds
        args.sigmas, args.repeats = QUICK_SIGMAS, 40_000
    if args.repeats < 2:
        parser.error("--repeats must be at least 2")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    print(f"d/d(mu, sigma) E[f(x)], x ~ N({MU:g}, sigma^2), sigma in {list(args.sigmas)}; "
          f"{N_DRAWS} draws per estimate, {args.repeats} estimates each, seed {args.seed}")
    table = sweep(args.sigmas, args.repeats, args.seed)

    check = closed_form_check(table, args.sigmas)
    regime = wave_regime(table, args.sigmas)
    metrics = {
        "x_squared_at_mu_sigma_1": check,
        "cos_large_k": regime,
        "max_abs_bias_z": largest_bias_z(table),
        "sweep": table,
        "config": {"mu": MU, "sigmas": list(args.sigmas), "n_draws": N_DRAWS, "repeats": args.repeats,
                   "moving_average_decay": DECAY, "seed": args.seed,
                   "costs": {key: {"label": cost.label, "k": cost.k} for key, cost in COSTS.items()}},
    }

    common.print_table(["cost", "estimator", "Var d/dmu (sigma = 1)", "closed form",
                        "Var d/dsigma", "closed form", "max |bias z|"], table_rows(table, args.sigmas))
    ratios = regime["ratio_pathwise_to"]
    print(f"\nvariance per draw (N x variance of a {N_DRAWS}-draw estimate), mu = {MU:g}, sigma = "
          f"{CHECK_SIGMA:g}, +- one standard error. cos({regime['k']:g} x): the pathwise variance is "
          f"{ratios[SCORE]['mu']:.0f}x (d/dmu) and {ratios[SCORE]['sigma']:.0f}x "
          f"(d/dsigma) the score function's with a moving-average baseline. Largest |bias z| over "
          f"all {len(COSTS)} costs, {len(ESTIMATORS)} estimators, 2 parameters and {len(args.sigmas)} "
          f"sigmas: {metrics['max_abs_bias_z']:.2f}.")

    common.save_figure(lambda plt: draw_figure(plt, table, args.sigmas), args.out, "estimator_variance.png")
    common.write_metrics(args.metrics_json, metrics)
    return metrics


if __name__ == "__main__":
    main()
