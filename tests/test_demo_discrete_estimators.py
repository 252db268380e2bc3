"""demos/discrete_estimators.py: the toy's exact answers, the estimators' order, the binary VAE.

The demo runs once with --quick in a subprocess (as a user runs it) and once more for
determinism; the assertions read its metrics JSON. Quick means 4,000 estimates per estimator and
point on the toy, and 100 training steps per VAE.
"""
import importlib.util
import itertools
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(REPO, "demos", "discrete_estimators.py")
ESTIMATORS = ("score_nobaseline", "score_loo", "vimco", "arm", "disarm", "gumbel_relaxed", "gumbel_st",
              "rebar", "relax")
UNBIASED = ("score_nobaseline", "score_loo", "vimco", "arm", "disarm", "rebar", "relax")


def run_demo(folder):
    metrics_path = folder / "metrics.json"
    result = subprocess.run([sys.executable, DEMO, "--quick", "--metrics-json", str(metrics_path),
                             "--out", str(folder)], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    return json.loads(metrics_path.read_text()), result.stdout


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    folder = tmp_path_factory.mktemp("discrete_estimators")
    metrics, stdout = run_demo(folder)
    return metrics, stdout, folder


def test_every_unbiased_estimator_is_unbiased_on_the_toy_and_the_relaxations_are_caught(quick):
    statistics = quick[0]["toy"]["statistics"]
    assert len(statistics) == 4  # t in (0.45, 0.499) x phi in (0, 1)
    for point, by_name in statistics.items():
        for name in UNBIASED:
            assert abs(by_name[name]["bias_z"]) < 4, (point, name, by_name[name])
        if point.endswith("phi=1"):  # Gumbel-Softmax's bias is large away from phi = 0
            assert by_name["gumbel_relaxed"]["bias_z"] > 10 and by_name["gumbel_st"]["bias_z"] > 10, point


def test_the_toy_variances_match_the_closed_forms_and_are_ordered_as_theory_says(quick):
    statistics = quick[0]["toy"]["statistics"]
    for point, by_name in statistics.items():
        for name, closed in by_name["closed_form_variance"].items():
            measured, std_error = by_name[name]["variance"], by_name[name]["variance_std_error"]
            if closed == 0:  # DisARM at phi = 0: the same number every time
                assert measured < 1e-30, (point, name)
                continue
            assert std_error < 0.05 * closed, (point, name)
            assert abs(measured - closed) < 4 * std_error, (point, name, measured, closed)
        closed = by_name["closed_form_variance"]
        assert closed["disarm"] <= closed["arm"]               # a conditional expectation of ARM
        assert by_name["score_loo"]["variance"] < 0.1 * by_name["score_nobaseline"]["variance"]
        for name in ("rebar", "relax"):  # tuned control variates: unbiased, with their parameters recorded
            assert by_name[name]["temperature"] > 0 and np.isfinite(by_name[name]["eta"])
        # RELAX's learned control variate (40 tuning steps in --quick) beats the plain score function
        assert by_name["relax"]["variance"] < 0.1 * by_name["score_nobaseline"]["variance"], point


def test_vimcos_exact_gradient_is_the_six_sample_bound_by_enumeration(monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(REPO, "demos"))
    spec = importlib.util.spec_from_file_location("discrete_estimators_demo", DEMO)
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)

    def bound(phi, t, k=6):  # E[log mean_k e^f(b_k)] over all 2^k outcomes
        theta = 1 / (1 + math.exp(-phi))
        total = 0.0
        for draws in itertools.product([0, 1], repeat=k):
            n = sum(draws)
            f = [(b - t) ** 2 for b in draws]
            total += theta ** n * (1 - theta) ** (k - n) * math.log(sum(math.exp(v) for v in f) / k)
        return total
    for phi, t in ((0.0, 0.45), (1.0, 0.499), (-0.7, 0.2)):
        h = 1e-5
        numeric = (bound(phi + h, t) - bound(phi - h, t)) / (2 * h)
        assert demo.vimco_toy_gradient(phi, t) == pytest.approx(numeric, rel=1e-6)
    # it is not the toy's gradient, only close to it where f varies little
    assert demo.vimco_toy_gradient(1.0, 0.2) != pytest.approx(float(demo.DE.toy_exact_gradient(1.0, 0.2)), rel=1e-3)
    # and every estimator spends the same number of evaluations of f per estimate
    for name in demo.ESTIMATORS:
        per_draw = demo.EVALUATIONS_PER_DRAW.get(name, 1)
        assert demo.draws(name, demo.EVALUATIONS_PER_DRAW) * per_draw == demo.EVALUATIONS


def test_minimizing_the_toy_moves_theta_towards_zero_for_the_low_variance_estimators(quick):
    curves = quick[0]["toy"]["curves"]
    for t in ("0.45", "0.499"):
        assert {len(curve) for curve in curves[t].values()} == {100}
        for name in ("score_loo", "vimco", "arm", "disarm"):
            assert curves[t][name][-1] < 0.35, (t, name)  # from theta = 0.5 (Adam, lr 0.01, 100 steps)


def test_the_binary_vae_trains_with_every_estimator_and_the_variances_are_ordered(quick):
    vae = quick[0]["vae"]
    untrained = vae["untrained"]["test_elbo"]
    assert -60 < untrained < -30
    for name in ESTIMATORS:
        result = vae[name]
        assert result["test_elbo"] > untrained + 15, name          # every estimator learns
        assert result["test_iwae"] > result["test_elbo"], name      # IWAE_k is the tighter bound
        assert np.isfinite(result["encoder_gradient_variance"]) and result["encoder_gradient_variance"] > 0
        assert len(result["curve_steps"]) == len(result["curve_test_elbo"]) >= 2
    variance = {name: vae[name]["encoder_gradient_variance"] for name in ESTIMATORS}
    assert variance["score_nobaseline"] > 10 * variance["score_loo"]
    assert variance["rebar"] < variance["score_loo"] and variance["relax"] < variance["score_loo"]
    assert variance["gumbel_relaxed"] < 0.1 * variance["score_loo"]  # low variance, bought with bias


def without_timings(value):
    """The metrics with every wall-clock entry removed (those differ between two runs)."""
    if isinstance(value, dict):
        return {key: without_timings(item) for key, item in value.items() if "seconds" not in key}
    return value


def test_same_seed_same_metrics_and_the_figure_and_tables(quick, assert_figure, tmp_path):
    metrics, stdout, folder = quick
    again, _ = run_demo(tmp_path)
    assert without_timings(again) == without_timings(metrics)
    assert "| t=0.45, phi=0 | disarm | 3 |" in stdout
    assert "| estimator | test ELBO | test IWAE (k=50) |" in stdout
    assert_figure(folder / "discrete_estimators.png", stdout, min_bytes=20_000)
