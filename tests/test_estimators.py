"""Gradient estimators: the score function surrogate, baselines, DiCE and the variance meter.

Statistical tests use fixed seeds and z-score bounds: an estimate passes when it is within
4 standard errors of the exact value (a false alarm has probability ~6e-5 per check, and with
fixed seeds every run sees the same numbers). Each test also checks that its standard error is
small enough for a wrong formula to fail.

Running example: f(x) = x^2 or (x - k)^2 under N(mu, sigma^2), where E[f] = (mu - k)^2 + sigma^2,
so the exact gradient is d/dmu = 2 (mu - k), d/dsigma = 2 sigma.
"""
import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import tinygrad_reparam.distributions as D
from tinygrad_reparam import Tensor
from tinygrad_reparam.estimators import (
    ESTIMATORS, PATHWISE, SCORE, SCORE_LOO, SCORE_NOBASELINE, GradientStats, MovingAverageBaseline, compare_estimators, estimate_gradient,
    gradient_samples, leave_one_out, magic_box, score_function_surrogate,
)
from tinygrad_reparam.testing import float_arrays


def param(values):
    return Tensor(np.asarray(values, dtype=np.float64), requires_grad=True)


def square(z):
    return z ** 2


def normal_params(mu=1.0, sigma=1.0):
    return [param(mu), param(sigma)]


def assert_unbiased(stats, exact):
    """|mean - exact| < 4 standard errors (stats built with exact, so bias_z is there)."""
    np.testing.assert_allclose(stats.exact, exact)
    assert np.all(np.abs(stats.bias_z) < 4), stats


def closed_form_variances(mu, sigma):
    """Variance of single-sample estimates of (d/dmu, d/dsigma) E[x^2], x ~ N(mu, sigma^2).

    With x = mu + sigma eps, E eps^2 = 1, E eps^4 = 3, E eps^6 = 15, E eps^8 = 105:
    pathwise:  d/dmu = 2x                        -> Var = 4 sigma^2
               d/dsigma = 2 x eps                -> Var = 4 mu^2 + 8 sigma^2
    score, no baseline:
               x^2 * eps / sigma                 -> Var = mu^4/sigma^2 + 14 mu^2 + 15 sigma^2
               x^2 * (eps^2 - 1) / sigma         -> Var = 2 mu^4/sigma^2 + 60 mu^2 + 74 sigma^2
    score with the constant baseline b = E[x^2] = mu^2 + sigma^2, using x^2 - b =
    2 mu sigma eps + sigma^2 (eps^2 - 1):
               2 mu eps^2 + sigma (eps^3 - eps)  -> Var = 8 mu^2 + 10 sigma^2
               2 mu eps (eps^2 - 1) + sigma (eps^2 - 1)^2
                                                 -> Var = 40 mu^2 + 56 sigma^2
    """
    m2, s2 = mu ** 2, sigma ** 2
    return {
        "pathwise": (4 * s2, 4 * m2 + 8 * s2),
        "score_nobaseline": (m2 ** 2 / s2 + 14 * m2 + 15 * s2, 2 * m2 ** 2 / s2 + 60 * m2 + 74 * s2),
        "score_ideal_baseline": (8 * m2 + 10 * s2, 40 * m2 + 56 * s2),
    }


# Leave-one-out with n = 8 draws at mu = sigma = 1, f = x^2: a U-statistic of order 2,
# est = 2 / (n (n-1)) sum_{i<j} h_ij, h_ij = (s_i - s_j)(f_i - f_j) / 2, so
# Var = 2 / (n (n-1)) * (2 (n-2) zeta1 + zeta2), with zeta1 = Var(s (f - E f)) / 4 (18/4 for mu,
# 96/4 for sigma) and zeta2 = Var(h) (14 for mu, 56 for sigma; from Gaussian moments).
LOO_VARIANCE_N8 = (2 / 56 * (2 * 6 * 18 / 4 + 14), 2 / 56 * (2 * 6 * 96 / 4 + 56))  # 68/28, 344/28


# --- score_function_surrogate ------------------------------------------------------------------
@given(float_arrays(shape=(5, 3), low=-5, high=5))
def test_surrogate_value_is_the_mean_cost(cost):
    mu, sigma = param([0.5, -1.0, 2.0]), param([1.0, 0.5, 2.0])
    q = D.Normal(mu, sigma)
    z = q.sample((5,), rng=np.random.default_rng(0))
    surrogate = score_function_surrogate(q.log_prob(z), cost, baseline=1.5)
    assert surrogate.shape == ()
    assert surrogate.item() == pytest.approx(cost.mean(), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("baseline_kind", ["none", "number", "array", "tensor"])
@settings(max_examples=15)
@given(cost=float_arrays(shape=(5, 3), low=-5, high=5), b=float_arrays(shape=(5, 3), low=-5, high=5))
def test_surrogate_gradient_is_the_hand_computed_reinforce_estimate(baseline_kind, cost, b):
    mu_values, sigma_values = np.array([0.5, -1.0, 2.0]), np.array([1.0, 0.5, 2.0])
    mu, sigma = param(mu_values), param(sigma_values)
    q = D.Normal(mu, sigma)
    z = q.sample((5,), rng=np.random.default_rng(1)).data
    baseline = {"none": None, "number": 0.75, "array": b, "tensor": Tensor(b)}[baseline_kind]
    b_values = {"none": 0.0, "number": 0.75, "array": b, "tensor": b}[baseline_kind]

    score_function_surrogate(q.log_prob(z), cost, baseline).backward()

    # d log N(z; mu, sigma)/dmu = (z - mu)/sigma^2,  d/dsigma = ((z - mu)^2 - sigma^2)/sigma^3
    advantage = cost - b_values
    dlogq_dmu = (z - mu_values) / sigma_values ** 2
    dlogq_dsigma = ((z - mu_values) ** 2 - sigma_values ** 2) / sigma_values ** 3
    n = cost.size  # the surrogate averages over all 15 entries
    np.testing.assert_allclose(mu.grad, (advantage * dlogq_dmu).sum(axis=0) / n, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sigma.grad, (advantage * dlogq_dsigma).sum(axis=0) / n, rtol=1e-10, atol=1e-12)


def test_surrogate_detaches_cost_and_baseline():
    mu, sigma = param(0.7), param(1.3)
    q = D.Normal(mu, sigma)
    z = q.sample((50,), rng=np.random.default_rng(2))
    cost = mu * z                                  # depends on mu: a pathwise term would be mean(z)
    baseline = Tensor(np.full(50, 0.2), requires_grad=True)
    surrogate = score_function_surrogate(q.log_prob(z), cost, baseline)
    surrogate.backward()

    zs = z.data
    score_only = ((0.7 * zs - 0.2) * (zs - 0.7) / 1.3 ** 2).mean()
    assert mu.grad == pytest.approx(score_only, rel=1e-12)
    assert abs(zs.mean()) > 0.1                    # so a leaked pathwise term would be visible
    assert baseline.grad is None                   # no gradient into the baseline either
    assert surrogate.item() == pytest.approx(cost.data.mean())


def test_surrogate_shape_errors():
    mu, sigma = param(0.0), param(1.0)
    q = D.Normal(mu, sigma)
    log_q = q.log_prob(q.sample((4,), rng=np.random.default_rng(3)))
    with pytest.raises(ValueError, match="cannot be broadcast"):
        score_function_surrogate(log_q, np.ones(3))
    with pytest.raises(ValueError, match=r"would broadcast the cost of shape \(4, 1\) up to \(4, 4\)"):
        score_function_surrogate(log_q, np.ones((4, 1)))
    with pytest.raises(ValueError, match="baseline of shape"):
        score_function_surrogate(log_q, np.ones(4), baseline=np.ones((4, 1)))
    with pytest.raises(TypeError, match="log_prob must be a Tensor"):
        score_function_surrogate(log_q.data, np.ones(4))
    # one draw with several costs (log_prob broadcasts up to the cost) is fine
    score_function_surrogate(log_q.reshape(4, 1), np.ones((4, 2))).backward()


# --- unbiasedness -------------------------------------------------------------------------------
@settings(max_examples=15)
@given(mu=st.floats(-2, 2), sigma=st.floats(0.3, 2), k=st.floats(-2, 2))
@example(mu=1.0, sigma=1.0, k=0.0)                 # f(z) = z^2
@example(mu=-0.5, sigma=0.7, k=0.0)
def test_pathwise_and_score_estimates_are_unbiased(mu, sigma, k):
    exact = [2 * (mu - k), 2 * sigma]
    for estimator in ("pathwise", "score"):
        stats = gradient_samples(D.Normal, lambda z: (z - k) ** 2, normal_params(mu, sigma),
                                 estimator, repeats=20_000, exact=exact,
                                 rng=np.random.default_rng(4))
        for s, e in zip(stats, exact):
            assert_unbiased(s, e)
            assert s.std_error < 0.5               # sharp enough to see a bias of order 1


@pytest.mark.parametrize("estimator, n_samples", [("pathwise", 1), ("score", 1), ("score_loo", 4)])
def test_estimates_for_a_vector_latent_are_unbiased(estimator, n_samples):
    # z in R^2 with independent coordinates: the draw's log q is the SUM over coordinates.
    mu, sigma, k = np.array([0.5, -1.0]), np.array([1.0, 0.5]), 0.3
    exact = [2 * (mu - k), 2 * sigma]
    stats = gradient_samples(D.Normal, lambda z: ((z - k) ** 2).sum(axis=-1), [param(mu), param(sigma)],
                             estimator, n_samples=n_samples, repeats=20_000, exact=exact,
                             rng=np.random.default_rng(18))
    for s, e in zip(stats, exact):
        assert s.mean.shape == (2,)
        assert_unbiased(s, e)
        assert np.all(s.std_error < 0.15)   # sharp enough to see a halved gradient (log q averaged)


# --- closed-form variances for f = x^2 ------------------------------------------------------------
def exact_moments_of_one_draw(mu, sigma, estimator):
    """Mean and variance of the library's one-draw estimate of (d/dmu, d/dsigma) E[x^2], with no
    Monte Carlo noise: the estimate is a polynomial in eps of degree at most 4, so Gauss-Hermite
    quadrature with 12 nodes integrates it and its square against N(0, 1) exactly."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(12)  # weight function e^(-eps^2 / 2)
    weights = weights / weights.sum()
    estimates = []
    for eps in nodes:
        m, s = normal_params(mu, sigma)
        if estimator == "pathwise":
            square(m + s * eps).backward()  # rsample's z = mu + sigma * eps, at this eps
        else:
            baseline = mu ** 2 + sigma ** 2 if estimator == "score_ideal_baseline" else None
            z = mu + sigma * eps
            score_function_surrogate(D.Normal(m, s).log_prob(z), z ** 2, baseline).backward()
        estimates.append([m.grad, s.grad])
    estimates = np.array(estimates, dtype=np.float64)
    mean = weights @ estimates
    return mean, weights @ (estimates - mean) ** 2


@pytest.mark.parametrize("mu, sigma", [(1.0, 1.0), (-0.5, 2.0), (1.5, 0.6)])
@pytest.mark.parametrize("estimator", ["pathwise", "score_nobaseline", "score_ideal_baseline"])
def test_closed_forms_are_the_exact_variances_of_the_library_estimates(mu, sigma, estimator):
    mean, variance = exact_moments_of_one_draw(mu, sigma, estimator)
    np.testing.assert_allclose(mean, [2 * mu, 2 * sigma], rtol=1e-12)  # unbiased, exactly
    np.testing.assert_allclose(variance, closed_form_variances(mu, sigma)[estimator], rtol=1e-10)
    if (mu, sigma) == (1.0, 1.0):  # the numbers of the module docstring's table
        expected = {"pathwise": (4, 12), "score_nobaseline": (30, 136), "score_ideal_baseline": (18, 96)}
        np.testing.assert_allclose(variance, expected[estimator], rtol=1e-10)


@pytest.mark.parametrize("mu, sigma", [(1.0, 1.0), (-0.5, 2.0), (1.5, 0.6)])
@pytest.mark.parametrize("estimator", ["pathwise", "score_nobaseline", "score_ideal_baseline"])
def test_measured_variances_match_closed_forms(mu, sigma, estimator):
    # N = 200,000 single-sample estimates. The meter's variance_std_error (from the fourth
    # moment) is at most a few percent here, so 4 standard errors separate the right closed form
    # from formulas that differ by a term (e.g. 14 mu^2 instead of 18 mu^2).
    name, baseline = {"pathwise": ("pathwise", None), "score_nobaseline": ("score", None),
                      "score_ideal_baseline": ("score", mu ** 2 + sigma ** 2)}[estimator]
    stats = gradient_samples(D.Normal, square, normal_params(mu, sigma), name, repeats=200_000,
                             baseline=baseline, exact=[2 * mu, 2 * sigma], rng=np.random.default_rng(5))
    for s, expected in zip(stats, closed_form_variances(mu, sigma)[estimator]):
        assert s.variance_std_error < 0.05 * expected
        assert abs(s.variance - expected) < 4 * s.variance_std_error, (s.variance, expected)
        assert_unbiased(s, s.exact)


# --- baselines ----------------------------------------------------------------------------------
def test_leave_one_out_is_unbiased_and_lowers_the_variance():
    # 8 draws per estimate: without a baseline the variance is (30/8, 136/8) = (3.75, 17);
    # leave-one-out brings it to (2.43, 12.29), close to the ideal constant baseline's (18/8, 96/8).
    results = compare_estimators(D.Normal, square, normal_params(), estimators=("score_nobaseline", "score_loo"),
                                 n_samples=8, repeats=50_000, exact=[2.0, 2.0],
                                 rng=np.random.default_rng(6))
    plain_closed_form = [v / 8 for v in closed_form_variances(1, 1)["score_nobaseline"]]
    for plain, loo, plain_form, loo_form in zip(results["score_nobaseline"], results["score_loo"],
                                                plain_closed_form, LOO_VARIANCE_N8):
        assert_unbiased(loo, 2.0)
        assert_unbiased(plain, 2.0)
        assert abs(plain.variance - plain_form) < 4 * plain.variance_std_error
        assert abs(loo.variance - loo_form) < 4 * loo.variance_std_error
        assert loo.variance + 4 * loo.variance_std_error < plain_form   # a real reduction
        assert loo.variance < plain.variance                          # on the very same noise


def test_meter_detects_a_baseline_that_includes_the_sample_itself():
    # b = batch mean including draw i: each term becomes (f_i - mean f) s_i, whose expectation is
    # (n - 1)/n of the gradient: a bias of -2/8 = -0.25 here.
    stats = gradient_samples(D.Normal, square, normal_params(), "score", n_samples=8,
                             repeats=20_000, baseline=lambda cost: cost.mean(axis=0),
                             exact=[2.0, 2.0], rng=np.random.default_rng(7))
    for s in stats:
        assert abs(s.bias_z) > 4, s
        assert abs(s.bias - (-0.25)) < 4 * s.std_error


def test_constant_baseline_keeps_the_estimate_unbiased_even_when_far_off():
    stats = gradient_samples(D.Normal, square, normal_params(), "score", repeats=50_000,
                             baseline=25.0, exact=[2.0, 2.0], rng=np.random.default_rng(8))
    for s, no_baseline in zip(stats, closed_form_variances(1, 1)["score_nobaseline"]):
        assert_unbiased(s, 2.0)
        assert s.variance > no_baseline            # a bad baseline is unbiased but noisier


@given(float_arrays(shape=st.tuples(st.integers(2, 5), st.integers(1, 3)), low=-10, high=10))
def test_leave_one_out_is_the_mean_of_the_others(cost):
    b = leave_one_out(cost, axis=0)
    n = cost.shape[0]
    for i in range(n):
        others = np.delete(cost, i, axis=0)
        np.testing.assert_allclose(b[i], others.mean(axis=0), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(leave_one_out(cost.T, axis=1), b.T)


def test_leave_one_out_tensor_in_detached_tensor_out_and_errors():
    cost = param([1.0, 2.0, 6.0])
    b = leave_one_out(cost)
    assert isinstance(b, Tensor) and not b.requires_grad
    np.testing.assert_allclose(b.data, [4.0, 3.5, 1.5])
    with pytest.raises(ValueError, match="at least 2 draws"):
        leave_one_out(np.ones((1, 3)), axis=0)
    with pytest.raises(ValueError, match="at least 2 draws"):
        leave_one_out(5.0)
    with pytest.raises(ValueError, match="out of range"):
        leave_one_out(np.ones(3), axis=1)


def test_moving_average_baseline_updates():
    baseline = MovingAverageBaseline(decay=0.75)
    assert baseline.value is None
    assert baseline.update(np.array([2.0, 4.0])) == 3.0          # the first update sets it
    assert baseline.update(Tensor([7.0])) == pytest.approx(0.75 * 3.0 + 0.25 * 7.0)
    assert baseline.update(5.0) == pytest.approx(0.75 * 4.0 + 0.25 * 5.0)
    last_only = MovingAverageBaseline(decay=0)
    last_only.update(1.0)
    assert last_only.update([8.0, 10.0]) == 9.0
    with pytest.raises(ValueError, match="finite"):
        baseline.update([np.nan])


@pytest.mark.parametrize("decay", [-0.1, 1.0, 1.5, float("nan")])
def test_moving_average_baseline_rejects_decay_outside_0_1(decay):
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        MovingAverageBaseline(decay)


@pytest.mark.parametrize("decay", ["0.9", True, None])
def test_moving_average_baseline_rejects_non_numbers(decay):
    with pytest.raises(ValueError, match=r"decay must be a number in \[0, 1\)"):
        MovingAverageBaseline(decay)


def test_moving_average_baseline_in_the_meter_is_unbiased_and_helps():
    # Drawn one estimate after another (the baseline carries state). In the steady state
    # b is independent of the current draw, so Var = Var_{b = E f} + Var(b) E[score^2], with
    # Var(b) = (1 - d)/(1 + d) Var(f) = 6/19 for d = 0.9: about 18.3 (mu) and 96.6 (sigma).
    steady_state = (18 + 6 / 19, 96 + 2 * 6 / 19)
    baseline = MovingAverageBaseline(decay=0.9)
    stats = gradient_samples(D.Normal, square, normal_params(), "score", repeats=8_000,
                             baseline=baseline, exact=[2.0, 2.0], rng=np.random.default_rng(9),
                             vectorize=False)
    assert baseline.value == pytest.approx(2.0, abs=1.0)        # it tracked E[x^2] = 2
    for s, expected in zip(stats, steady_state):
        assert_unbiased(s, 2.0)
        assert abs(s.variance - expected) < 4 * s.variance_std_error
    assert stats[0].variance + 4 * stats[0].variance_std_error < 30   # below the plain score's 30


def test_moving_average_baseline_is_read_before_it_is_updated():
    # The baseline for this estimate must come from earlier costs only: b = 1.7, not a value that
    # already contains the current draws (that would bias the estimate).
    baseline = MovingAverageBaseline(decay=0.9)
    baseline.update(1.7)
    mu, sigma = normal_params(0.4, 1.3)
    grads = estimate_gradient(D.Normal, square, [mu, sigma], "score", n_samples=3, baseline=baseline,
                              rng=np.random.default_rng(17))
    eps = np.random.default_rng(17).standard_normal(3)
    z = 0.4 + 1.3 * eps
    np.testing.assert_allclose(grads[0], ((z ** 2 - 1.7) * eps / 1.3).mean(), rtol=1e-10)
    np.testing.assert_allclose(grads[1], ((z ** 2 - 1.7) * (eps ** 2 - 1) / 1.3).mean(), rtol=1e-10)
    assert baseline.value == pytest.approx(0.9 * 1.7 + 0.1 * (z ** 2).mean())


def test_moving_average_baseline_needs_sequential_estimates():
    with pytest.raises(ValueError, match="vectorize=False"):
        gradient_samples(D.Normal, square, normal_params(), "score", repeats=10,
                         baseline=MovingAverageBaseline())


# --- DiCE ---------------------------------------------------------------------------------------
def test_magic_box_is_one_and_its_gradient_is_the_score():
    mu_values, sigma_values = np.array([0.3, -1.2]), np.array([0.8, 1.7])
    mu, sigma = param(mu_values), param(sigma_values)
    q = D.Normal(mu, sigma)
    z = q.sample((6,), rng=np.random.default_rng(10))
    box = magic_box(q.log_prob(z))
    np.testing.assert_array_equal(box.data, np.ones((6, 2)))
    box.sum().backward()
    zs = z.data
    np.testing.assert_allclose(mu.grad, ((zs - mu_values) / sigma_values ** 2).sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(sigma.grad, (((zs - mu_values) ** 2 - sigma_values ** 2)
                                            / sigma_values ** 3).sum(axis=0), rtol=1e-12)


def test_cost_times_magic_box_equals_the_surrogate_gradient():
    grads = []
    for use_box in (True, False):
        mu, sigma = param(0.4), param(1.1)
        q = D.Normal(mu, sigma)
        z = q.sample((20,), rng=np.random.default_rng(11))
        cost = (z - 1.0) ** 2
        objective = ((cost * magic_box(q.log_prob(z))).mean() if use_box
                     else score_function_surrogate(q.log_prob(z), cost))
        assert objective.item() == pytest.approx(cost.data.mean())
        objective.backward()
        grads.append((mu.grad, sigma.grad))
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-12)


def test_magic_box_needs_a_tensor():
    with pytest.raises(TypeError, match="magic_box"):
        magic_box(np.zeros(3))


# --- the meter ----------------------------------------------------------------------------------
def test_estimate_gradient_is_the_exact_pathwise_gradient_for_one_draw():
    mu, sigma = normal_params(0.5, 2.0)
    mu.grad = np.array(123.0)                      # the user's gradient must survive
    grads = estimate_gradient(D.Normal, square, [mu, sigma], "pathwise", rng=np.random.default_rng(12))
    eps = np.random.default_rng(12).standard_normal((1,))[0]
    z = 0.5 + 2.0 * eps
    np.testing.assert_allclose(grads, [2 * z, 2 * z * eps], rtol=1e-12)  # dz/dmu = 1, dz/dsigma = eps
    assert mu.grad == 123.0 and sigma.grad is None


@pytest.mark.parametrize("estimator", ["pathwise", "score"])
def test_vectorized_meter_equals_a_loop_of_single_estimates(estimator):
    # One draw per estimate: the vectorized copies consume the noise in the same order as the loop.
    # Vector mu next to a scalar sigma checks that the copies still broadcast together.
    def cost(z):
        return ((z - 0.5) ** 2).sum(axis=-1)
    params = [param([0.1, -0.3, 0.8]), param(0.9)]
    fast = gradient_samples(D.Normal, cost, params, estimator, repeats=50, rng=np.random.default_rng(13))
    slow = gradient_samples(D.Normal, cost, params, estimator, repeats=50, rng=np.random.default_rng(13),
                            vectorize=False)
    for f, s, p in zip(fast, slow, params):
        assert f.samples.shape == (50,) + p.shape
        np.testing.assert_allclose(f.samples, s.samples, rtol=1e-10, atol=1e-12)


def test_compare_estimators_uses_the_same_noise():
    # f(z) = z: the pathwise d/dsigma is eps itself; the score d/dmu is z eps / sigma.
    mu, sigma = 0.3, 1.7
    results = compare_estimators(D.Normal, lambda z: z, normal_params(mu, sigma),
                                 estimators=("pathwise", "score"), n_samples=1, repeats=100,
                                 rng=np.random.default_rng(14))
    eps = results["pathwise"][1].samples
    np.testing.assert_allclose(results["pathwise"][0].samples, 1.0)
    np.testing.assert_allclose(results["score"][0].samples, (mu + sigma * eps) * eps / sigma, rtol=1e-10)


def test_gradient_stats_numbers():
    samples = np.array([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [6.0, 0.0]])
    s = GradientStats(samples, exact=[2.0, 0.0])
    np.testing.assert_allclose(s.mean, [3.0, 0.0])
    np.testing.assert_allclose(s.variance, [14 / 3, 0.0])
    np.testing.assert_allclose(s.std_error, [math.sqrt(14 / 3 / 4), 0.0])
    np.testing.assert_allclose(s.bias, [1.0, 0.0])
    np.testing.assert_allclose(s.bias_z, [1.0 / math.sqrt(14 / 12), 0.0])
    assert "bias_z" in repr(s)
    assert GradientStats(samples).bias is None
    with pytest.raises(ValueError, match="at least 2"):
        GradientStats(np.ones((1, 2)))
    with pytest.raises(ValueError, match="shape"):
        GradientStats(samples, exact=[1.0, 2.0, 3.0])


def test_gradient_stats_variance_std_error_matches_the_spread_of_variances():
    # For Gaussian samples Var(s^2) = 2 sigma^4 / (n - 1) exactly; sigma = 3, n = 200.
    rng = np.random.default_rng(15)
    variances, reported = [], []
    for _ in range(400):
        s = GradientStats(3.0 * rng.standard_normal(200))
        variances.append(s.variance)
        reported.append(s.variance_std_error)
    exact = math.sqrt(2 * 3.0 ** 4 / 199)
    assert np.mean(reported) == pytest.approx(exact, rel=0.05)
    assert np.std(variances) == pytest.approx(exact, rel=0.15)   # 400 replicates: ~4% noise


def test_meter_argument_errors():
    params = normal_params()
    with pytest.raises(ValueError, match="unknown estimator"):
        estimate_gradient(D.Normal, square, params, "reinforce")
    with pytest.raises(ValueError, match="baseline applies to the 'score' estimator only"):
        estimate_gradient(D.Normal, square, params, "pathwise", baseline=1.0)
    with pytest.raises(ValueError, match="n_samples >= 2"):
        estimate_gradient(D.Normal, square, params, "score_loo", n_samples=1)
    with pytest.raises(ValueError, match="n_samples"):
        estimate_gradient(D.Normal, square, params, "score", n_samples=0)
    with pytest.raises(ValueError, match="one cost per draw"):
        estimate_gradient(D.Normal, lambda z: (z ** 2).mean(), params, "pathwise", n_samples=3)
    with pytest.raises(TypeError, match="built from Tensor operations"):
        estimate_gradient(D.Normal, lambda z: z.data ** 2, params, "pathwise")
    with pytest.raises(TypeError, match="list of Tensors"):
        estimate_gradient(D.Normal, square, params[0], "pathwise")
    with pytest.raises(TypeError, match="requires_grad=True"):
        estimate_gradient(D.Normal, square, [Tensor(1.0), params[1]], "pathwise")
    with pytest.raises(ValueError, match="repeats"):
        gradient_samples(D.Normal, square, params, "pathwise", repeats=1)
    with pytest.raises(ValueError, match="one gradient per parameter"):
        gradient_samples(D.Normal, square, params, "pathwise", repeats=10, exact=[2.0])
    with pytest.raises(ValueError, match="baseline applies to the 'score' estimator only, not 'score_nobaseline'"):
        estimate_gradient(D.Normal, square, params, "score_nobaseline", baseline=1.0)


def test_one_vocabulary_of_estimator_names():
    """The meter, the VAE and the demos name the estimators with the same constants."""
    from tinygrad_reparam import vae
    assert (PATHWISE, SCORE, SCORE_NOBASELINE, SCORE_LOO) == ("pathwise", "score", "score_nobaseline", "score_loo")
    assert ESTIMATORS == (PATHWISE, SCORE, SCORE_NOBASELINE, SCORE_LOO)
    assert vae.ESTIMATORS == (PATHWISE, SCORE, SCORE_NOBASELINE)


def test_score_nobaseline_is_score_without_a_baseline():
    rng = lambda: np.random.default_rng(16)
    plain = estimate_gradient(D.Normal, square, normal_params(), "score", n_samples=5, rng=rng())
    named = estimate_gradient(D.Normal, square, normal_params(), "score_nobaseline", n_samples=5, rng=rng())
    with_b = estimate_gradient(D.Normal, square, normal_params(), "score", n_samples=5, baseline=2.0, rng=rng())
    for a, b, c in zip(plain, named, with_b):
        np.testing.assert_array_equal(a, b)
        assert not np.allclose(a, c)


# --- a discrete variable: score function only ---------------------------------------------------
@pytest.mark.parametrize("estimator, n_samples", [("score", 1), ("score_loo", 4)])
@settings(max_examples=5)
@given(p=st.floats(0.05, 0.95), k=st.floats(-1, 2))
def test_score_function_with_a_bernoulli_is_unbiased(estimator, n_samples, p, k):
    # E[f(b)] = p f(1) + (1 - p) f(0), so d/dp = f(1) - f(0) = (1 - k)^2 - k^2 = 1 - 2k.
    stats = gradient_samples(lambda probs: D.Bernoulli(probs=probs), lambda b: (b - k) ** 2,
                             [param(p)], estimator, n_samples=n_samples, repeats=20_000,
                             exact=[1 - 2 * k], rng=np.random.default_rng(16))
    assert_unbiased(stats[0], 1 - 2 * k)
    assert stats[0].std_error < 0.1
    with pytest.raises(NotImplementedError, match="score-function"):
        gradient_samples(lambda probs: D.Bernoulli(probs=probs), lambda b: b,
                         [param(p)], "pathwise", repeats=10)


# --- details no other test pins down (found by tools/mutate.py) --------------------------------
@pytest.mark.parametrize("scale", [1.0, 0.01])  # (at 0.01 every moment is far below 1)
def test_gradient_stats_against_the_formulas_computed_by_hand(scale):
    samples = scale * np.array([0.5, -1.0, 2.0, 0.25, 1.5, -0.75]) + 0.3
    stats = GradientStats(samples, exact=0.3)
    n, mean = 6, samples.mean()
    variance = ((samples - mean) ** 2).sum() / (n - 1)
    m4 = ((samples - mean) ** 4).mean()
    assert stats.mean == pytest.approx(mean, rel=1e-15)
    assert stats.variance == pytest.approx(variance, rel=1e-15)
    assert stats.std_error == pytest.approx(math.sqrt(variance / n), rel=1e-15)
    assert stats.variance_std_error == pytest.approx(
        math.sqrt((m4 - variance ** 2 * (n - 3) / (n - 1)) / n), rel=1e-14)
    assert stats.bias == pytest.approx(mean - 0.3, rel=1e-15)
    assert stats.bias_z == pytest.approx((mean - 0.3) / math.sqrt(variance / n), rel=1e-14)


@pytest.mark.parametrize("estimator", [PATHWISE, SCORE_NOBASELINE])
def test_a_parameter_the_cost_ignores_gets_zero_gradients(estimator):
    mu = Tensor(np.array([0.5, -0.2]), requires_grad=True)
    unused = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    stats = gradient_samples(lambda m, u: D.Normal(m, 1.0), lambda z: (z ** 2).sum(axis=-1),
                             [mu, unused], estimator=estimator, repeats=20,
                             rng=np.random.default_rng(0))
    assert stats[1].samples.shape == (20, 3)
    np.testing.assert_array_equal(stats[1].samples, 0.0)
    assert np.abs(stats[0].samples).sum() > 0


def test_two_estimates_are_enough_for_a_variance():
    mu = Tensor(np.array([0.5]), requires_grad=True)
    (stats,) = gradient_samples(lambda m: D.Normal(m, 1.0), lambda z: (z ** 2).sum(axis=-1), [mu],
                                repeats=2, rng=np.random.default_rng(0))
    assert stats.samples.shape == (2, 1) and np.isfinite(stats.variance).all()
