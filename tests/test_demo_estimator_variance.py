"""demos/estimator_variance.py: closed forms, the quadratic ranking, the cos(kx) reversal, no bias.

The demo runs once with --quick in a subprocess (as a user runs it) and once more for
determinism; the assertions read its metrics JSON. Variances are per draw (4 x the variance of
a 4-draw estimate), at mu = 1 and sigma in (0.1, 1, 3), 40,000 estimates each.
"""
import importlib.util
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from tinygrad_reparam.estimators import MovingAverageBaseline

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(REPO, "demos", "estimator_variance.py")
ESTIMATORS = ("pathwise", "score_nobaseline", "score", "score_loo")  # "score": moving-average baseline
SCORE_VARIANTS = ESTIMATORS[1:]


def run_demo(folder, seed=0):
    metrics_path = folder / f"metrics_{seed}.json"
    result = subprocess.run([sys.executable, DEMO, "--quick", "--seed", str(seed), "--metrics-json",
                             str(metrics_path), "--out", str(folder)], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    return metrics_path.read_text(), result.stdout


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("estimator_variance")
    text, stdout = run_demo(folder)
    return json.loads(text), text, stdout, folder


def test_x_squared_variances_match_the_closed_forms(quick_run):
    check = quick_run[0]["x_squared_at_mu_sigma_1"]
    # the closed forms for f = x^2 at mu = sigma = 1 (per draw), as in the estimators module's table
    assert (check["pathwise"]["mu"]["closed_form"], check["pathwise"]["sigma"]["closed_form"]) == (4, 12)
    assert (check["score_nobaseline"]["mu"]["closed_form"],
            check["score_nobaseline"]["sigma"]["closed_form"]) == (30, 136)
    assert check["score_ideal_baseline_closed_form"] == {"mu": 18, "sigma": 96}
    # Within 4 standard errors, and sharp enough to tell the formulas apart: a term too many or
    # too few (30 against 18, 136 against 96, 18 against 21.3) moves a variance by over 15%.
    # (The score function's estimates are heavy-tailed, so their standard error is a few percent.)
    for estimator in ESTIMATORS:  # the two baselines have closed forms too (module docstring)
        for name in ("mu", "sigma"):
            entry = check[estimator][name]
            measured, closed, se = entry["measured"], entry["closed_form"], entry["std_error"]
            assert se < 0.08 * closed, (estimator, name, entry)
            assert abs(measured - closed) < 4 * se, (estimator, name, entry)
            assert abs(measured - closed) < 0.15 * closed, (estimator, name, entry)


def test_pathwise_has_the_lowest_variance_for_the_quadratic_cost_at_every_sigma(quick_run):
    quadratic = quick_run[0]["sweep"]["quadratic"]
    for name in ("mu", "sigma"):
        pathwise = np.array(quadratic["pathwise"][name]["variance"])
        for estimator in SCORE_VARIANTS:
            assert np.all(pathwise < 0.5 * np.array(quadratic[estimator][name]["variance"])), (estimator, name)


def test_cos_with_large_k_is_where_the_pathwise_estimator_loses(quick_run):
    regime = quick_run[0]["cos_large_k"]
    assert regime["k"] == 10 and regime["sigma"] == 1 and regime["pathwise_larger"] is True
    variance = regime["variance"]
    # Var(-k sin(kx)) = k^2 [(1 - cos(2 k mu) e^{-2 k^2 s^2}) / 2 - sin^2(k mu) e^{-k^2 s^2}] ~ 50 here
    k, mu, s = regime["k"], regime["mu"], regime["sigma"]
    exact = k ** 2 * ((1 - math.cos(2 * k * mu) * math.exp(-2 * k ** 2 * s ** 2)) / 2
                      - math.sin(k * mu) ** 2 * math.exp(-k ** 2 * s ** 2))
    assert variance["pathwise"]["mu"] == pytest.approx(exact, rel=0.05)
    for estimator in SCORE_VARIANTS:  # about (k sigma)^2 = 100 for d/dmu, half that for d/dsigma
        ratio = regime["ratio_pathwise_to"][estimator]
        assert ratio["mu"] == pytest.approx(variance["pathwise"]["mu"] / variance[estimator]["mu"])
        assert ratio["mu"] > 30 and ratio["sigma"] > 15, (estimator, ratio)
    # ... while at sigma = 0.1 (k sigma = 1) the pathwise d/dsigma estimate is still the quieter one
    wave = quick_run[0]["sweep"]["wave"]
    for estimator in SCORE_VARIANTS:
        assert wave["pathwise"]["sigma"]["variance"][0] < wave[estimator]["sigma"]["variance"][0]


def test_every_estimator_mean_is_within_4_standard_errors_of_the_exact_gradient(quick_run):
    metrics = quick_run[0]
    z_scores = [z for cost in metrics["sweep"].values() for estimator in cost.values()
                for numbers in estimator.values() for z in numbers["bias_z"]]
    assert len(z_scores) == 3 * 4 * 2 * 3  # costs x estimators x parameters x sigmas
    assert all(np.isfinite(z_scores))
    assert max(abs(z) for z in z_scores) == metrics["max_abs_bias_z"] < 4


def test_moving_average_replay_is_the_package_baseline_read_before_update(monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(REPO, "demos"))
    spec = importlib.util.spec_from_file_location("estimator_variance_demo", DEMO)
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)

    costs = np.random.default_rng(3).normal(2.0, 1.0, size=(demo.N_DRAWS, 50))
    replayed = demo.moving_average_baselines(costs)
    tracker, expected = MovingAverageBaseline(demo.DECAY), []
    for r in range(costs.shape[1]):
        expected.append(0.0 if tracker.value is None else tracker.value)
        tracker.update(costs[:, r])
    np.testing.assert_array_equal(replayed, expected)


def test_same_seed_same_metrics_and_the_figure_and_table(quick_run, assert_figure):
    _, text, stdout, folder = quick_run
    again, _ = run_demo(folder)
    assert again == text
    assert "| (x - k)^2, k = 0 | pathwise |" in stdout
    assert_figure(folder / "estimator_variance.png", stdout, min_bytes=10_000)
