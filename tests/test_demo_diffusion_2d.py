"""demos/diffusion_2d.py: the forward process, the sampler with a known-perfect noise predictor,
and the quick run as a user runs it (samples far closer to two moons than Gaussian noise is)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tinygrad_reparam.distributions as D
from tinygrad_reparam import Tensor

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(REPO, "demos", "diffusion_2d.py")
sys.path.insert(0, os.path.join(REPO, "demos"))
import diffusion_2d  # noqa: E402  (needs demos/ on the path, for its `import common`)


@pytest.mark.parametrize("schedule", [diffusion_2d.linear_schedule(100), diffusion_2d.cosine_schedule(50)])
def test_schedules_run_from_clean_data_to_pure_noise(schedule):
    abar = schedule.alpha_bars
    assert abar[0] == 1.0 and schedule.betas[0] == 0.0
    assert np.all(np.diff(abar) < 0)                           # more noise at every step
    assert abar[-1] < 1e-3                                      # x_T is (almost) N(0, I)
    np.testing.assert_allclose(abar, np.cumprod(1 - schedule.betas))


def test_linear_and_cosine_schedules_follow_their_papers():
    linear = diffusion_2d.linear_schedule(1000)                 # Ho et al.'s 1000-step schedule
    assert linear.betas[1] == pytest.approx(1e-4) and linear.betas[-1] == pytest.approx(0.02)
    cosine = diffusion_2d.cosine_schedule(100)
    t = np.arange(101) / 100
    f = np.cos((t + 0.008) / 1.008 * np.pi / 2) ** 2
    np.testing.assert_allclose(cosine.alpha_bars[:-1], (f / f[0])[:-1], rtol=1e-12)  # last: clipped
    with pytest.raises(ValueError, match="T must be above 20"):
        diffusion_2d.linear_schedule(20)


@pytest.mark.parametrize("t", [1, 10, 50, 100])
def test_q_sample_has_the_forward_marginal_mean_and_variance(t):
    """x_t | x_0 ~ N(sqrt(abar_t) x_0, (1 - abar_t) I)."""
    schedule = diffusion_2d.linear_schedule(100)
    n = 100_000
    x0 = np.tile([1.5, -2.0], (n, 1))
    rng = np.random.default_rng(t)
    x_t = diffusion_2d.q_sample(x0, np.full(n, t), rng.standard_normal((n, 2)), schedule)
    abar = schedule.alpha_bars[t]
    sd = np.sqrt(1 - abar)
    np.testing.assert_allclose(x_t.mean(axis=0), np.sqrt(abar) * x0[0], atol=5 * sd / np.sqrt(n))
    np.testing.assert_allclose(x_t.var(axis=0), 1 - abar, rtol=5 * np.sqrt(2 / n))
    np.testing.assert_allclose(np.corrcoef(x_t.T)[0, 1], 0.0, atol=5 / np.sqrt(n))


def test_q_sample_is_normal_rsample_with_the_noise_kept():
    schedule = diffusion_2d.cosine_schedule(50)
    x0 = np.random.default_rng(0).standard_normal((6, 2))
    t = np.array([1, 5, 10, 25, 40, 50])
    abar = schedule.alpha_bars[t][:, None]
    expected = D.Normal(np.sqrt(abar) * x0, np.sqrt(1 - abar)).rsample(rng=np.random.default_rng(9))
    eps = np.random.default_rng(9).standard_normal(x0.shape)
    np.testing.assert_allclose(diffusion_2d.q_sample(x0, t, eps, schedule), expected.data, rtol=1e-12)


class PerfectNoisePredictor:
    """For data x_0 ~ N(m, s^2 I) the best guess of eps from x_t is known in closed form:
    E[eps | x_t] = sqrt(1 - abar) (x_t - sqrt(abar) m) / (abar s^2 + 1 - abar)."""

    def __init__(self, schedule, mean, sd):
        self.schedule, self.mean, self.sd = schedule, mean, sd

    def __call__(self, x, t):
        abar = self.schedule.alpha_bars[t][:, None]
        return Tensor(np.sqrt(1 - abar) * (x - np.sqrt(abar) * self.mean)
                      / (abar * self.sd**2 + 1 - abar))


@pytest.mark.parametrize("schedule", [diffusion_2d.linear_schedule(100), diffusion_2d.cosine_schedule(50)])
def test_ancestral_sampling_with_the_perfect_predictor_recovers_the_data_law(schedule):
    mean, sd = np.array([1.0, -0.5]), 0.5
    samples, snapshots = diffusion_2d.sample(PerfectNoisePredictor(schedule, mean, sd), 20_000,
                                             schedule, np.random.default_rng(0), keep=(0, 10))
    np.testing.assert_allclose(samples.mean(axis=0), mean, atol=0.02)
    np.testing.assert_allclose(samples.std(axis=0), sd, atol=0.03)  # about 0.51: T is finite
    assert sorted(snapshots) == [0, 10] and snapshots[0] is samples


def test_time_features_tell_every_step_apart():
    features = diffusion_2d.time_features(np.arange(1, 101), 100)
    assert features.shape == (100, 2 * diffusion_2d.TIME_FREQUENCIES)
    gaps = np.linalg.norm(features[:, None] - features[None, :], axis=-1) + np.eye(100)
    assert gaps.min() > 0.1


def run_quick(folder, seed=0):
    metrics_path = os.path.join(folder, f"metrics_{seed}.json")
    return subprocess.Popen([sys.executable, DEMO, "--quick", "--seed", str(seed),
                             "--metrics-json", metrics_path, "--out", str(folder)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO), metrics_path


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory):
    """The quick demo twice with the same seed (in parallel), as a user runs it."""
    runs = [run_quick(tmp_path_factory.mktemp(f"diffusion_quick_{i}")) for i in range(2)]
    results = []
    for process, metrics_path in runs:
        stdout, stderr = process.communicate()
        assert process.returncode == 0, stderr
        with open(metrics_path) as handle:
            results.append((json.load(handle), stdout, os.path.dirname(metrics_path)))
    return results


def test_quick_run_reports_its_metrics_and_figure(quick_runs, assert_figure):
    metrics, stdout, folder = quick_runs[0]
    for key in ("energy_distance_model", "energy_distance_gaussian", "energy_distance_fresh_data",
                "first_loss", "final_loss", "train_seconds"):
        assert np.isfinite(metrics[key]), key
    for key in ("steps", "schedule", "train_steps", "batch_size", "hidden", "lr", "eval_size", "seed"):
        assert key in metrics["config"], key
    assert "| DDPM samples |" in stdout and "noise floor" in stdout
    assert_figure(os.path.join(folder, "diffusion_2d.png"), stdout)


def test_quick_run_samples_look_like_two_moons_not_like_noise(quick_runs):
    metrics, _, _ = quick_runs[0]
    gaussian = metrics["energy_distance_gaussian"]
    assert gaussian > 0.02                                      # N(0, I) is visibly not two moons
    assert abs(metrics["energy_distance_fresh_data"]) < 0.005   # the noise floor at n = 1000
    assert metrics["energy_distance_model"] < 0.3 * gaussian    # about 0.15 * gaussian in 1000 steps
    # predicting eps = 0 scores 1 (eps has unit variance); a trained model far less
    assert metrics["final_loss"] < min(0.3, metrics["first_loss"])


def test_same_seed_same_numbers(quick_runs):
    (first, _, _), (second, _, _) = quick_runs
    first.pop("train_seconds")
    second.pop("train_seconds")
    assert first == second
