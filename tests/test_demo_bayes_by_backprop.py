"""demos/bayes_by_backprop.py --quick, run as a user runs it, on three seeds: the Bayesian MLP
beats a Gaussian that ignores x on held-out points, and it is less sure where it saw no data."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(REPO, "demos", "bayes_by_backprop.py")
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory):
    """{run name: (metrics, stdout)} for seeds 0, 1, 2 and seed 0 again, run side by side."""
    folder = tmp_path_factory.mktemp("bayes_by_backprop")
    runs = {f"seed{seed}": seed for seed in SEEDS}
    runs["seed0-again"] = 0
    processes = {}
    for name, seed in runs.items():
        out = folder / name
        command = [sys.executable, DEMO, "--quick", "--seed", str(seed), "--out", str(out),
                   "--metrics-json", str(folder / f"{name}.json")]
        processes[name] = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, text=True)
    results = {}
    for name, process in processes.items():
        stdout, stderr = process.communicate()
        assert process.returncode == 0, stderr
        results[name] = (json.loads((folder / f"{name}.json").read_text()), stdout, folder / name)
    return results


@pytest.mark.parametrize("seed", SEEDS)
def test_test_log_likelihood_beats_a_gaussian_that_ignores_x(quick_runs, seed):
    metrics, _, _ = quick_runs[f"seed{seed}"]
    assert np.isfinite(metrics["test_log_likelihood"])
    assert metrics["test_log_likelihood"] > metrics["baseline_test_log_likelihood"] + 0.25
    assert 0.02 < metrics["noise_scale"] < 0.2  # the true noise moves y by about 0.02 to 0.13


@pytest.mark.parametrize("seed", SEEDS)
def test_predictive_uncertainty_grows_away_from_the_data(quick_runs, seed):
    metrics, _, _ = quick_runs[f"seed{seed}"]
    assert metrics["std_ratio_outside_inside"] > 1.4
    assert metrics["std_left"] > metrics["std_inside"] and metrics["std_right"] > metrics["std_inside"]
    # the growth comes from the weights' uncertainty, not from the (constant) noise
    assert metrics["epistemic_std_outside"] > 2 * metrics["epistemic_std_inside"] > 0


def test_same_seed_same_numbers_and_the_documented_output(quick_runs, assert_figure):
    metrics, stdout, out = quick_runs["seed0"]
    assert quick_runs["seed0-again"][0] == metrics
    assert quick_runs["seed1"][0]["test_log_likelihood"] != metrics["test_log_likelihood"]
    assert "| predictive std outside / inside |" in stdout
    assert sum(line.startswith("epoch") for line in stdout.splitlines()) <= 20
    assert metrics["config"]["epochs"] == 150
    assert_figure(out / "bayes_by_backprop.png", stdout)
