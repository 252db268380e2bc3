"""demos/reparam_policy.py --quick, run as a user runs it: both estimators learn, the
reparameterized (pathwise) policy gradient learns faster than REINFORCE with a leave-one-out
baseline, and the same seed gives the same numbers."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "demos" / "reparam_policy.py"
ESTIMATORS = ("pathwise", "score_loo")


def run_quick(folder: Path, seed: int) -> tuple:
    metrics_path = folder / f"metrics_{seed}.json"
    result = subprocess.run([sys.executable, str(DEMO), "--quick", "--seed", str(seed),
                             "--metrics-json", str(metrics_path), "--out", str(folder)],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    return json.loads(metrics_path.read_text()), result.stdout


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reparam_policy_quick")
    metrics, stdout = run_quick(folder, seed=0)
    return metrics, stdout, folder


def without_timings(metrics: dict) -> dict:
    return {name: ({key: value for key, value in entry.items() if key != "train_seconds"}
                   if isinstance(entry, dict) else entry)
            for name, entry in metrics.items()}


def test_quick_demo_writes_the_documented_metrics(quick_run, assert_figure):
    metrics, stdout, _ = quick_run
    seeds = metrics["config"]["seeds"]
    assert seeds == 3
    for name in ESTIMATORS:
        entry = metrics[name]
        for key in ("initial_return_mean", "final_return_mean", "final_return_std",
                    "grad_variance_ratio", "train_seconds"):
            assert np.isfinite(entry[key]), (name, key)
        assert len(entry["final_returns"]) == seeds
        assert len(entry["curve_mean"]) == len(metrics["curve_steps"])
        assert entry["final_return_mean"] == pytest.approx(np.mean(entry["final_returns"]), rel=1e-12)
        assert entry["final_return_mean"] < 0    # the reward is minus a squared distance
    assert metrics["curve_steps"][0] == 0 and metrics["curve_steps"][-1] == metrics["config"]["steps"]
    for key in ("seed", "steps", "dim", "alpha", "lr", "reward_evaluations_per_step"):
        assert key in metrics["config"]
    assert "| pathwise |" in stdout and "| score_loo |" in stdout
    assert_figure(Path(quick_run[2]) / "reparam_policy.png", stdout)


def test_both_estimators_start_from_the_same_policy_and_improve_on_it(quick_run):
    metrics, _, _ = quick_run
    initial = metrics["pathwise"]["initial_return_mean"]
    assert metrics["score_loo"]["initial_return_mean"] == initial   # same weights, same evaluation
    assert initial < -3.0                                            # sigma ~ 1 in 8 dimensions
    for name in ESTIMATORS:
        # every run cuts the squared distance to the target at least fivefold (about 5.8 -> < 0.3)
        assert max(-value for value in metrics[name]["final_returns"]) < -initial / 5, name
        curve = metrics[name]["curve_mean"]
        assert curve[-1] > curve[len(curve) // 2] > curve[0], name


def test_the_reparameterized_gradient_beats_reinforce(quick_run):
    metrics, _, _ = quick_run
    pathwise, score_loo = metrics["pathwise"], metrics["score_loo"]
    # every pathwise run ends closer to its targets than every REINFORCE run (about 0.08 vs 0.15-0.29)
    assert min(pathwise["final_returns"]) > max(score_loo["final_returns"])
    assert -score_loo["final_return_mean"] > 1.5 * -pathwise["final_return_mean"]
    # ...because the pathwise gradient is far less noisy at the same number of reward evaluations
    assert pathwise["grad_variance_ratio"] == 1.0
    assert score_loo["grad_variance_ratio"] > 3.0


def test_same_seed_same_numbers_and_another_seed_tells_the_same_story(quick_run):
    metrics, _, folder = quick_run
    again, _ = run_quick(folder, seed=0)
    assert without_timings(again) == without_timings(metrics)
    other, _ = run_quick(folder, seed=1)
    assert other["pathwise"]["final_returns"] != metrics["pathwise"]["final_returns"]
    assert min(other["pathwise"]["final_returns"]) > max(other["score_loo"]["final_returns"])
