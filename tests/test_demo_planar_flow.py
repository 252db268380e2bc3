"""demos/planar_flow.py --quick, run as a user runs it: the bound holds, training closes the gap."""
import json
import math
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(REPO, "demos", "planar_flow.py")
DENSITIES = ("U1", "U2", "U3", "U4")
# log Z of the four targets (Table 1 of Rezende & Mohamed 2015; U2-U4 with the demo's wall at
# |z1| = 4), from a 2400 x 2400 grid over [-6, 6]^2.
LOG_Z = {"U1": 1.877502, "U2": 2.142870, "U3": 2.702486, "U4": 2.771479}


def run_demo(folder, *options):
    metrics_path = folder / "metrics.json"
    result = subprocess.run([sys.executable, DEMO, "--quick", "--metrics-json", str(metrics_path),
                             "--out", str(folder), *options],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    return json.loads(metrics_path.read_text()), result.stdout


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    return run_demo(tmp_path_factory.mktemp("planar_flow_quick"))


def test_quick_demo_writes_the_documented_metrics(quick):
    metrics, stdout = quick
    for name in DENSITIES:
        for key in ("log_z", "log_z_grid_change", "elbo", "elbo_stderr", "kl", "kl_untrained",
                    "kl_base", "elbo_untrained", "elbo_base", "train_seconds"):
            assert isinstance(metrics[name][key], float), (name, key)
        assert len(metrics[name]["train_elbo_curve"]) == metrics["config"]["steps"]
        assert f"| {name} |" in stdout
    for key in ("layers", "steps", "batch_size", "lr", "anneal_fraction", "seed", "grid_points"):
        assert key in metrics["config"]


def test_log_normaliser_is_right_and_converged(quick):
    metrics, _ = quick
    # U2 in closed form: for every z1 the z2-integral is 0.4 sqrt(2 pi); the z1-integral of the
    # wall exp(-((|z1| - 4)_+ / 0.2)^2 / 2) is 8 + 2 * 0.2 sqrt(2 pi) / 2.
    root_two_pi = math.sqrt(2 * math.pi)
    closed_form = math.log(0.4 * root_two_pi * (8 + 0.2 * root_two_pi))
    assert LOG_Z["U2"] == pytest.approx(closed_form, abs=1e-6)
    for name in DENSITIES:
        assert metrics[name]["log_z"] == pytest.approx(LOG_Z[name], abs=1e-4), name
        assert metrics[name]["log_z_grid_change"] < 1e-4


def test_elbo_is_a_lower_bound_on_log_z(quick):
    metrics, _ = quick
    for name in DENSITIES:
        r = metrics[name]
        # ELBO = log Z - KL(q || p) <= log Z, up to Monte Carlo noise of the estimate
        assert r["elbo"] <= r["log_z"] + 4 * r["elbo_stderr"], name
        assert r["kl"] == pytest.approx(r["log_z"] - r["elbo"], abs=1e-12)


def test_training_closes_much_of_the_gap(quick):
    metrics, _ = quick
    for name in DENSITIES:
        r = metrics[name]
        # quick run (8 layers, 150 steps): KL about 0.6-1.0 nats, from 1.9-12 untrained and
        # 3.5-4.5 for the Gaussian base alone
        assert r["kl"] < r["kl_untrained"] - 0.5, name
        assert r["kl"] < 0.5 * r["kl_base"], name
        assert r["kl"] < 1.5, name
        curve = r["train_elbo_curve"]
        assert sum(curve[-20:]) / 20 > sum(curve[:20]) / 20 + 0.5, name


def test_same_seed_same_numbers(quick, tmp_path):
    """Each density has its own seeds, so running U3 alone repeats the full run's U3 exactly."""
    metrics, _ = quick
    again, _ = run_demo(tmp_path, "--densities", "U3")
    for key, value in metrics["U3"].items():
        if key != "train_seconds":
            assert again["U3"][key] == value, key
