"""demos/implicit_gradients.py --quick, run as a user runs it: variational inference with the
implicitly reparameterized Beta reaches the exact Beta-Bernoulli posterior, the ELBO is log p(heads)
- KL, and the implicit pathwise gradient and the score-function gradient have the same mean (the
exact gradient) while the score function's variance is larger by an order of magnitude or more."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(REPO, "demos", "implicit_gradients.py")
ESTIMATORS = ("pathwise", "score_nobaseline")
PARAMETERS = ("m", "s")


def run_demo(folder, *options):
    metrics_path = folder / "metrics.json"
    result = subprocess.run([sys.executable, DEMO, *options, "--metrics-json", str(metrics_path),
                             "--out", str(folder)], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    return json.loads(metrics_path.read_text()), result.stdout


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    folder = tmp_path_factory.mktemp("implicit_gradients")
    metrics, stdout = run_demo(folder, "--quick")
    return metrics, stdout, folder


def test_the_posterior_is_the_conjugate_one_and_q_reaches_it(quick):
    metrics = quick[0]
    config, posterior = metrics["config"], metrics["posterior"]
    heads, flips = np.array(config["heads"]), np.array(config["flips"])
    assert posterior["concentration1"] == (1 + heads).tolist()  # uniform prior: Beta(1 + k, 1 + n - k)
    assert posterior["concentration0"] == (1 + flips - heads).tolist()
    assert metrics["max_kl_to_posterior"] < 0.02  # quick run: about 7e-3 (full run: 3.5e-4)
    np.testing.assert_allclose(metrics["fitted"]["concentration1"], posterior["concentration1"], rtol=0.2)
    np.testing.assert_allclose(metrics["fitted"]["concentration0"], posterior["concentration0"], rtol=0.2)
    kl_curve = np.array(metrics["training"]["kl_curve"])
    assert kl_curve.shape == (config["steps"], len(flips))
    assert np.all(kl_curve[0] > 1.0)  # from q = Beta(1, 1): far away
    assert np.all(kl_curve[-1] < kl_curve[0] / 100)


def test_the_elbo_is_the_log_evidence_minus_the_kl(quick):
    fitted = quick[0]["fitted"]
    gap = np.array(fitted["elbo_monte_carlo"]) - np.array(fitted["log_evidence_minus_kl"])
    assert np.all(np.abs(gap) < 4.5 * np.array(fitted["elbo_monte_carlo_stderr"]))
    assert np.all(np.array(fitted["elbo_monte_carlo_stderr"]) < 0.01)


def test_both_gradients_are_unbiased_and_the_score_function_is_noisier(quick):
    metrics = quick[0]
    for where in ("gradients_at_start", "gradients_at_fit"):
        for entry in metrics[where]:
            for estimator in ESTIMATORS:
                for name in PARAMETERS:
                    assert abs(entry[estimator][name]["bias_z"]) < 4.5, (where, estimator, name)
            for name in PARAMETERS:
                assert abs(entry["difference_z"][name]) < 4.5
                assert entry["variance_ratio"][name] > 3.0  # quick run: 8.6 to 2000
                # the means are the exact gradient, to a few standard errors of the pathwise mean
                path = entry["pathwise"][name]
                assert abs(path["mean"] - entry["exact"][PARAMETERS.index(name)]) < 4.5 * path["std_error"]
    assert metrics["variance_ratio_range"][1] > 100


def test_the_table_and_the_figure(quick, assert_figure):
    metrics, stdout, folder = quick
    assert "Var score / Var pathwise (m / s)" in stdout
    for heads, flips in zip(metrics["config"]["heads"], metrics["config"]["flips"]):
        assert f"| {int(heads)}/{flips} |" in stdout
    assert_figure(folder / "implicit_gradients.png", stdout, min_bytes=10_000)


def test_same_seed_same_metrics(tmp_path):
    """Two short runs with one seed give the same numbers (the wall-clock times aside)."""
    runs = []
    for index in range(2):
        folder = tmp_path / str(index)
        folder.mkdir()
        metrics, _ = run_demo(folder, "--steps", "50", "--repeats", "200", "--seed", "3")
        del metrics["train_seconds"], metrics["variance_seconds"]
        runs.append(metrics)
    assert runs[0] == runs[1]
