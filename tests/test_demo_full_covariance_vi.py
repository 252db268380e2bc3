"""demos/full_covariance_vi.py --quick, run as a user runs it: the full-covariance q reaches the
Gaussian target (KL -> 0), the diagonal q stops at the mean-field optimum -log(1 - rho^2) / 2,
and on the banana the full q is the closer of the two."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(REPO, "demos", "full_covariance_vi.py")


def run_demo(folder):
    metrics_path = folder / "metrics.json"
    result = subprocess.run([sys.executable, DEMO, "--quick", "--metrics-json", str(metrics_path),
                             "--out", str(folder)], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    return metrics_path.read_text(), result.stdout


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    folder = tmp_path_factory.mktemp("full_covariance_vi")
    text, stdout = run_demo(folder)
    return json.loads(text), text, stdout, folder


def target_gaussian(config):
    scales, rho = np.array(config["gaussian"]["scales"]), config["gaussian"]["rho"]
    return np.array(config["gaussian"]["mean"]), np.outer(scales, scales) * np.array([[1, rho], [rho, 1]])


def mahalanobis(x, mean, sigma):
    """|x - mean| in units of the target's standard deviation along the direction of x - mean."""
    diff = np.asarray(x) - mean
    return math.sqrt(diff @ np.linalg.solve(sigma, diff))


def without_timings(metrics_text):
    """The metrics with the wall-clock fields dropped (the rest must repeat exactly)."""
    metrics = json.loads(metrics_text)
    for target in ("gaussian", "banana"):
        for family in ("full", "diagonal"):
            del metrics[target][family]["train_seconds"]
    return metrics


def test_the_full_covariance_q_becomes_the_gaussian_target(quick):
    metrics = quick[0]
    full = metrics["gaussian"]["full"]
    mean, sigma = target_gaussian(metrics["config"])
    assert full["kl_exact"] < 0.01  # quick run: about 1e-3 (full run: 1e-4)
    assert mahalanobis(full["mean"], mean, sigma) < 0.1  # within 0.1 sd in every direction
    np.testing.assert_allclose(full["covariance"], sigma, rtol=0.05, atol=0.02)


def test_the_diagonal_q_stops_at_the_mean_field_optimum(quick):
    metrics = quick[0]
    rho = metrics["config"]["gaussian"]["rho"]
    best = -0.5 * math.log(1 - rho ** 2)  # 0.8304 for rho = 0.9
    assert metrics["gaussian"]["best_diagonal_kl"] == pytest.approx(best, rel=1e-12)
    diagonal = metrics["gaussian"]["diagonal"]
    assert best <= diagonal["kl_exact"] < best + 0.01
    # its variances are 1 / Lambda_ii, too small along the ridge; its covariance is diagonal
    mean, sigma = target_gaussian(metrics["config"])
    covariance = np.array(diagonal["covariance"])
    np.testing.assert_allclose(np.diag(covariance), 1 / np.diag(np.linalg.inv(sigma)), rtol=0.05)
    assert covariance[0, 1] == covariance[1, 0] == 0.0
    assert mahalanobis(diagonal["mean"], mean, sigma) < 0.1


def test_monte_carlo_kl_agrees_with_the_closed_form_and_the_banana_prefers_full_covariance(quick):
    metrics = quick[0]
    for family in ("full", "diagonal"):
        result = metrics["gaussian"][family]
        assert abs(result["kl_monte_carlo"] - result["kl_exact"]) < 4 * result["kl_monte_carlo_stderr"] + 1e-4
    banana = metrics["banana"]
    for family in ("full", "diagonal"):
        assert banana[family]["kl_monte_carlo"] > 0 and banana[family]["kl_monte_carlo_stderr"] < 0.005
        assert banana[family]["final_elbo_running_mean"] < 0.05  # ELBO <= log Z = 0, up to noise
    # quick run: about 0.32 against 0.45
    assert banana["full"]["kl_monte_carlo"] < banana["diagonal"]["kl_monte_carlo"] - 0.08


def test_metrics_and_curves_are_complete(quick):
    metrics, _, stdout, _ = quick
    steps = metrics["config"]["steps"]
    for target in ("gaussian", "banana"):
        for family in ("full", "diagonal"):
            assert len(metrics[target][family]["elbo_curve"]) == steps
            assert f"| {family} |" in stdout
    assert len(metrics["gaussian"]["full"]["kl_exact_curve"]) == steps
    assert metrics["gaussian"]["full"]["kl_exact_curve"][0] > 1.0  # from q = N(0, I): far away


def test_same_seed_same_metrics_and_the_figure(quick, assert_figure):
    _, text, stdout, folder = quick
    again, _ = run_demo(folder)
    assert without_timings(again) == without_timings(text)
    assert_figure(folder / "full_covariance_vi.png", stdout, min_bytes=10_000)
