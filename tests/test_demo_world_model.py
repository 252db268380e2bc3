"""demos/world_model.py: the exact cost of the linear-Gaussian system, three unbiased estimators of
its gradient, SVG(inf) through a learned model, and the chaotic system where the pathwise
gradient loses.

The demo runs with --quick in a subprocess (as a user runs it) and once more for determinism;
most assertions read its metrics JSON. The exact formulas are also imported and checked against
a central difference and a closed form of their own.
"""
import importlib.util
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(REPO, "demos", "world_model.py")
ESTIMATORS = ("pathwise", "score_nobaseline", "score_loo")
Z_LIMIT = 4.0  # |z| > 4 would be strong evidence of a bias


def run_demo(folder, *extra):
    metrics_path = folder / "metrics.json"
    result = subprocess.run([sys.executable, DEMO, "--quick", "--metrics-json", str(metrics_path),
                             "--out", str(folder), *extra], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    return json.loads(metrics_path.read_text()), result.stdout


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    folder = tmp_path_factory.mktemp("world_model")
    metrics, stdout = run_demo(folder)
    return metrics, stdout, folder


@pytest.fixture(scope="module")
def demo():
    """The demo's module, imported from demos/ (where it finds ``common``)."""
    sys.path.insert(0, os.path.join(REPO, "demos"))
    try:
        spec = importlib.util.spec_from_file_location("world_model_demo", DEMO)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(os.path.join(REPO, "demos"))
    return module


# ---------------------------------------------------------------------------------------------
# 1. The exact answer
def closed_form_cost(system, k: float) -> float:
    """J(k) from P_t in closed form: s_t = m^t s_0 + noise, so P_t = m^(2t) s_0^2 + q sum_{j<t} m^(2j)."""
    m2 = (system.a + system.b * k) ** 2
    q = system.b ** 2 * system.sigma_pi ** 2 + system.sigma_w ** 2
    total = 0.0
    for t in range(system.horizon):
        P = m2 ** t * system.s0 ** 2 + q * sum(m2 ** j for j in range(t))
        total += P + system.c * (k ** 2 * P + system.sigma_pi ** 2)
    return total


@pytest.mark.parametrize("k", [-3.5, -2.0, -1.5, -1.0, -0.5, 0.0, 0.3])
def test_exact_cost_matches_a_closed_form_and_its_gradient_a_central_difference(demo, k):
    system = demo.LinearSystem()
    J, gradient = demo.exact_cost(system, k)
    assert J == pytest.approx(closed_form_cost(system, k), rel=1e-12)
    h = 1e-5
    central = (demo.exact_cost(system, k + h)[0] - demo.exact_cost(system, k - h)[0]) / (2 * h)
    assert gradient == pytest.approx(central, rel=1e-7, abs=1e-9)


def test_the_exact_optimum_is_the_minimum_of_J(demo, quick):
    system = demo.LinearSystem()
    optimum = quick[0]["optimum"]
    k_star = optimum["k_star"]
    assert optimum["stable_gains"] == [-4.0, 0.0] and -4.0 < k_star < 0.0
    assert abs(optimum["dJ_dk_at_k_star"]) < 1e-12
    J_star = demo.exact_cost(system, k_star)[0]
    assert optimum["J_star"] == J_star
    for step in (1e-3, 1e-1, 1.0):
        assert demo.exact_cost(system, k_star - step)[0] > J_star < demo.exact_cost(system, k_star + step)[0]
    assert k_star == pytest.approx(-1.523354, abs=1e-6)


def test_the_metrics_hold_the_exact_values(demo, quick):
    metrics = quick[0]
    system = demo.LinearSystem(**metrics["system"])
    assert metrics["system"] == {"a": 1.0, "b": 0.5, "sigma_w": 0.1, "sigma_pi": 0.3, "c": 0.1,
                                 "horizon": 20, "s0": 1.0}
    assert metrics["exact"]["k"] == [-1.0, -0.5, 0.0]
    for k, J, gradient in zip(metrics["exact"]["k"], metrics["exact"]["J"], metrics["exact"]["dJ_dk"]):
        assert (J, gradient) == demo.exact_cost(system, k)


# ---------------------------------------------------------------------------------------------
# 1. Three estimators of dJ/dk
def test_every_estimator_is_unbiased_within_4_standard_errors(quick):
    metrics = quick[0]
    exact = metrics["exact"]["dJ_dk"]
    n = metrics["config"]["rollouts"]
    for name in ESTIMATORS:
        entry = metrics["estimators"][name]
        for i in range(3):
            assert entry["std_error"][i] == pytest.approx(math.sqrt(entry["variance"][i] / n), rel=1e-12)
            assert entry["z"][i] == pytest.approx((entry["mean"][i] - exact[i]) / entry["std_error"][i])
            assert abs(entry["z"][i]) < Z_LIMIT, (name, i, entry)
    # sharp enough to see a bias of a few percent: a standard error is under 1% of the gradient
    # for the pathwise estimator, under 7% for the score function (k = -1: 0.8%, 2%, 6%)
    for i in range(3):
        assert metrics["estimators"]["pathwise"]["std_error"][i] < 0.01 * exact[i]
        for name in ("score_nobaseline", "score_loo"):
            assert metrics["estimators"][name]["std_error"][i] < 0.07 * exact[i], name


def test_pathwise_is_the_quietest_and_the_baseline_helps(quick):
    estimators = quick[0]["estimators"]
    for i in range(3):
        pathwise, plain, loo = (estimators[name]["variance"][i] for name in ESTIMATORS)
        assert pathwise < loo < plain, i
    # at k = -1: about 0.6 against 5.5 and 49 per rollout
    assert estimators["score_nobaseline"]["variance"][0] > 30 * estimators["pathwise"]["variance"][0]


# ---------------------------------------------------------------------------------------------
# 2. The learned model and SVG(inf)
def test_the_model_is_the_maximum_likelihood_fit(quick):
    model = quick[0]["learned_model"]
    fitted, closed_form = model["parameters"], model["least_squares"]
    for key in ("w_s", "w_u", "w_0", "sigma"):
        assert fitted[key] == pytest.approx(closed_form[key], rel=1e-6, abs=1e-9), key
    truth = {"w_s": 1.0, "w_u": 0.5, "w_0": 0.0, "sigma": 0.1}  # 300 transitions: within a few %
    for key, value in truth.items():
        assert abs(fitted[key] - value) < 0.02, key


def test_svg_replays_the_real_trajectory_and_its_gradient_is_the_models(quick):
    svg = quick[0]["svg"]
    assert svg["replay_max_abs_error"] < 1e-12          # the forward pass is the real trajectory
    for i in range(3):
        # through the true system, SVG is the pathwise gradient: unbiased for dJ/dk
        assert abs(svg["true_model_z"][i]) < Z_LIMIT, i
        # through the learned model, it averages to what the model's Jacobians say
        assert abs(svg["svg_z"][i]) < Z_LIMIT, i
        # on the same rollouts the two differ by the model's error, predicted to within noise
        # that is 20 to 100 times smaller than the difference itself
        assert abs(svg["difference_z"][i]) < Z_LIMIT, i
        assert abs(svg["difference_expected"][i]) > 10 * svg["difference_std_error"][i], i


def test_svg_expected_gradient_with_the_true_jacobians_is_dJ_dk(demo):
    system = demo.LinearSystem()
    for k in (-2.0, -1.0, -0.5, 0.0):
        assert demo.svg_expected_gradient(system, system.a, system.b, k) == pytest.approx(
            demo.exact_cost(system, k)[1], rel=1e-12)


def test_gradient_descent_through_the_learned_model_ends_next_to_the_optimum(quick):
    descent = quick[0]["descent"]
    assert descent["k_initial"] == 0.0 == descent["k_curve"][0]
    assert descent["k_final"] == descent["k_curve"][-1]
    assert len(descent["k_curve"]) == descent["steps"] + 1
    assert abs(descent["k_final"] - descent["k_svg_zero"]) < 0.02   # the point it converges to
    assert abs(descent["k_svg_zero"] - descent["k_star"]) < 0.01    # off by the model's error
    assert descent["abs_k_error"] < 0.03
    assert 0 <= descent["J_gap"] < 1e-3                              # J(k*) = 2.29


# ---------------------------------------------------------------------------------------------
# 3. Chaos
def test_the_pathwise_variance_explodes_with_the_horizon_and_the_score_function_takes_over(quick):
    chaos = quick[0]["chaos"]
    sweep, horizons = chaos["sweep"], chaos["horizons"]
    assert horizons[0] == 1 and horizons[-1] == 32
    pathwise = sweep["pathwise"]["variance"]
    assert chaos["variance_ratio_last_to_first"]["pathwise"] == pytest.approx(pathwise[-1] / pathwise[0])
    assert pathwise[-1] / pathwise[0] > 1e25                                    # about 1e35
    assert all(later > 3 * earlier for earlier, later in zip(pathwise, pathwise[1:]))  # every step
    # about 1 + A^2 / 2 = 13.5 times per step
    assert chaos["reference_growth_per_step"] == 13.5
    assert 10 < chaos["pathwise_growth_per_step"] < 17
    # the score function's variance grows about linearly: with the baseline, H Var(cos s_H) / sigma_u^2 = 2 H
    for name in ("score_nobaseline", "score_loo"):
        assert sweep[name]["variance"][-1] / sweep[name]["variance"][0] < 200, name
    assert sweep["score_loo"]["variance"][-1] == pytest.approx(2 * 32, rel=0.25)
    # at H = 1 the pathwise gradient is the better one, from the crossover on the score function
    for name in ("score_nobaseline", "score_loo"):
        assert pathwise[0] < sweep[name]["variance"][0], name
        crossing = chaos["crossover_horizon"][name]
        assert crossing is not None and 1 < crossing <= 4, name
        start = horizons.index(crossing)
        assert all(s < p for s, p in zip(sweep[name]["variance"][start:], pathwise[start:])), name


def test_every_chaos_estimator_is_unbiased_at_one_step(quick):
    chaos = quick[0]["chaos"]
    system = chaos["system"]
    mu = system["s0"] + system["amplitude"] * math.sin(system["s0"]) + system["theta"]
    exact = math.sin(mu) * math.exp(-(system["sigma_u"] ** 2 + system["sigma"] ** 2) / 2)
    assert chaos["exact_gradient_at_H1"] == pytest.approx(exact, rel=1e-15)
    for name in ESTIMATORS:
        mean, std_error = chaos["sweep"][name]["mean"][0], chaos["sweep"][name]["std_error"][0]
        assert abs(mean - exact) < Z_LIMIT * std_error, name
        assert std_error < 0.1 * abs(exact), name


# ---------------------------------------------------------------------------------------------
def test_same_seed_same_numbers_the_tables_and_the_figure(quick, assert_figure):
    metrics, stdout, folder = quick
    again, _ = run_demo(folder)

    def without_timings(numbers):
        return {key: value for key, value in numbers.items() if key != "seconds"}
    assert without_timings(again) == without_timings(metrics)
    assert "| -1 | pathwise |" in stdout and "| -1 | SVG(inf), learned model |" in stdout
    assert "| 32 |" in stdout
    assert_figure(folder / "world_model.png", stdout, min_bytes=10_000)


def test_too_few_rollouts_is_a_readable_error():
    result = subprocess.run([sys.executable, DEMO, "--quick", "--descent-rollouts", "1"],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode != 0
    assert "--descent-rollouts must be at least 2" in result.stderr
