"""Estimators for discrete latents: VIMCO, ARM, DisARM, REBAR and RELAX against exact answers.

The toy problem is E_{b ~ Bernoulli(sigmoid(phi))}[(b - t)^2], exact gradient
theta (1 - theta)(1 - 2t); multivariate problems get their exact gradient by enumerating every
outcome (a Tensor expression of phi, differentiated by the engine). Many independent estimates
come from one graph: the logits get a leading axis of R copies, so copy r's gradient, times R
(the surrogates average over the batch), is estimate r.

Statistical checks use fixed seeds and z-scores: an estimator passes when its mean is within 4
standard errors of the exact gradient, and each check also asserts that its standard error is
small enough for the deliberately biased variants below to fail it.
"""
import itertools
import math

import numpy as np
import pytest

import tinygrad_reparam.distributions as D
from tinygrad_reparam import Tensor, gradcheck
from tinygrad_reparam import discrete_estimators as DE
from tinygrad_reparam.estimators import GradientStats, score_function_surrogate
from tinygrad_reparam.nn import MLP
from tinygrad_reparam.optim import Adam


def estimates(make_surrogate, logits_value, copies):
    """``copies`` independent estimates of d/dphi, from one surrogate over stacked logits."""
    phi = Tensor(np.broadcast_to(logits_value, (copies,) + np.shape(logits_value)).copy(), requires_grad=True)
    result = make_surrogate(phi)
    surrogate = result.surrogate if isinstance(result, DE.RelaxEstimate) else result
    surrogate.backward()
    return phi.grad * copies


def toy(t):
    return lambda b: DE.toy_cost(b, t)


def toy_slope(t):
    return lambda y: 2.0 * (y - t)  # f'(y) for f(y) = (y - t)^2


def assert_unbiased(samples, exact, max_std_error):
    stats = GradientStats(samples, exact)
    assert np.all(stats.std_error < max_std_error), stats  # sharp enough to catch a bias
    assert np.all(np.abs(stats.bias_z) < 4), stats
    return stats


def reinforce_surrogate(phi, cost_fn, rng, n_samples=1):
    """The plain score function estimator on Bernoulli(logits=phi), n_samples draws."""
    q = D.Bernoulli(logits=phi)
    b = q.sample((n_samples,), rng=rng)
    log_q = q.log_prob(b)
    return score_function_surrogate(log_q.sum(axis=tuple(range(2, log_q.ndim))) if log_q.ndim > 2 else log_q,
                                    np.asarray(cost_fn(b.data)))


# -------------------------------------------------------------------------------------------------
# The toy's closed forms
@pytest.mark.parametrize("phi, t", [(0.0, 0.45), (1.0, 0.45), (-2.5, 0.499), (1.0, 0.499)])
def test_toy_closed_forms_are_the_two_outcome_arithmetic(phi, t):
    theta = 1 / (1 + math.exp(-phi))
    f0, f1 = t ** 2, (1 - t) ** 2
    objective = lambda p: f1 / (1 + math.exp(-p)) + f0 / (1 + math.exp(p))  # noqa: E731
    h = 1e-5
    assert DE.toy_exact_gradient(phi, t) == pytest.approx((objective(phi + h) - objective(phi - h)) / (2 * h),
                                                          rel=1e-5)  # (the difference cancels to 1e-11)
    # REINFORCE, one draw: g = f(b) (b - theta), two outcomes
    mean = theta * f1 * (1 - theta) + (1 - theta) * f0 * (-theta)
    second = theta * (f1 * (1 - theta)) ** 2 + (1 - theta) * (f0 * theta) ** 2
    assert mean == pytest.approx(DE.toy_exact_gradient(phi, t), rel=1e-12)
    variances = DE.toy_variances(phi, t)
    assert variances["reinforce"] == pytest.approx(second - mean ** 2, rel=1e-12)
    # ARM by quadrature over u (midpoints of 400,000 cells: the steps at theta and 1 - theta cost
    # an error of order 1e-6)
    u = (np.arange(400_000) + 0.5) / 400_000
    b_up, b_down = u > 1 - theta, u < theta
    arm = (np.where(b_up, f1, f0) - np.where(b_down, f1, f0)) * (u - 0.5)
    assert arm.mean() == pytest.approx(mean, rel=1e-4)
    assert (arm ** 2).mean() - mean ** 2 == pytest.approx(variances["arm"], rel=1e-4)
    # theory: DisARM is ARM conditioned on the pair, so never noisier
    assert 0 <= variances["disarm"] <= variances["arm"]


def test_disarm_is_exact_at_phi_zero_where_the_pair_always_differs():
    g = estimates(lambda phi: DE.disarm_surrogate(phi, toy(0.45), rng=np.random.default_rng(0)), 0.0, 1000)
    np.testing.assert_allclose(g, DE.toy_exact_gradient(0.0, 0.45), rtol=1e-12)
    assert DE.toy_variances(0.0, 0.45)["disarm"] == pytest.approx(0.0, abs=1e-18)


# -------------------------------------------------------------------------------------------------
# REINFORCE's exact variance, ARM and DisARM: unbiased, with the variances of the closed forms
@pytest.mark.parametrize("phi, t", [(0.0, 0.45), (1.0, 0.499)])
def test_reinforce_single_draw_variance_is_the_exact_arithmetic(phi, t):
    rng = np.random.default_rng(1)
    samples = estimates(lambda p: reinforce_surrogate(p, toy(t), rng), phi, 40_000)
    stats = assert_unbiased(samples, DE.toy_exact_gradient(phi, t), max_std_error=1e-3)
    exact = DE.toy_variances(phi, t)["reinforce"]
    assert stats.variance_std_error < 0.02 * exact
    assert abs(stats.variance - exact) < 4 * stats.variance_std_error, (stats.variance, exact)


@pytest.mark.parametrize("name, surrogate", [("arm", DE.arm_surrogate), ("disarm", DE.disarm_surrogate)])
@pytest.mark.parametrize("phi, t", [(1.0, 0.45), (-0.7, 0.499)])
def test_arm_and_disarm_are_unbiased_with_the_closed_form_variance(name, surrogate, phi, t):
    rng = np.random.default_rng(2)
    samples = estimates(lambda p: surrogate(p, toy(t), rng=rng), phi, 40_000)
    assert_unbiased(samples, DE.toy_exact_gradient(phi, t), max_std_error=2e-4)
    stats = GradientStats(samples)
    exact = DE.toy_variances(phi, t)[name]
    assert stats.variance_std_error < 0.03 * exact
    assert abs(stats.variance - exact) < 4 * stats.variance_std_error, (name, stats.variance, exact)


def enumerated_gradient(cost_fn, phi_value):
    """d/dphi E[f(b)] for independent Bernoulli latents, exactly: the sum over all 2^d outcomes of
    prod_i p(b_i) f(b), as a Tensor of phi, differentiated by backward()."""
    phi = Tensor(np.array(phi_value, dtype=np.float64), requires_grad=True)
    outcomes = np.array(list(itertools.product([0.0, 1.0], repeat=phi.shape[-1])))  # (2^d, d)
    probability = (outcomes * phi.sigmoid() + (1 - outcomes) * (-phi).sigmoid())
    log_probability = probability.log().sum(axis=-1)
    (log_probability.exp() * Tensor(cost_fn(outcomes))).sum().backward()
    return phi.grad


def coupled_cost(b):
    """A cost that does not split over the latents: a product and a square of a weighted sum."""
    b = np.asarray(getattr(b, "data", b))
    return (b @ np.array([1.5, -2.0, 0.5]) - 0.3) ** 2 + 3.0 * b[..., 0] * b[..., 2]


def test_arm_and_disarm_are_unbiased_for_several_coupled_latents_and_disarm_is_the_quieter():
    phi = np.array([0.8, -0.4, 1.5])
    exact = enumerated_gradient(coupled_cost, phi)
    variances = []
    for surrogate in (DE.arm_surrogate, DE.disarm_surrogate):
        samples = estimates(lambda p: surrogate(p, coupled_cost, n_pairs=2, rng=np.random.default_rng(3)), phi,
                            20_000)
        variances.append(assert_unbiased(samples, exact, max_std_error=0.02).variance)
    # DisARM is ARM's conditional expectation given the pair, latent by latent: never noisier
    # (here 15 to 33 % quieter; weights on the latents where the pair agrees would double it)
    assert np.all(variances[1] < variances[0]), variances


def test_a_cost_that_depends_on_a_parameter_gets_its_pathwise_gradient_through_the_value():
    """f(b) = (b - w)^2: the surrogate's value is the mean cost, and w's gradient the average of
    -2 (b - w) over the evaluated draws, unbiased for dE/dw = -2 (theta - w)."""
    w = Tensor(0.3, requires_grad=True)
    phi = Tensor(np.full(20_000, 0.5), requires_grad=True)
    surrogate = DE.arm_surrogate(phi, lambda b: ((b - w) ** 2), rng=np.random.default_rng(4))
    theta = 1 / (1 + math.exp(-0.5))
    assert surrogate.item() == pytest.approx(theta * 0.7 ** 2 + (1 - theta) * 0.3 ** 2, abs=0.01)
    surrogate.backward()
    assert w.grad == pytest.approx(-2 * (theta - 0.3), abs=0.01)


# -------------------------------------------------------------------------------------------------
# VIMCO
def vimco_problem(phi, k, rng, signal=None):
    """log w = a(b) - log q(b) with a coupled a(b): the K-sample bound of log sum_b e^a(b)."""
    q = D.Bernoulli(logits=phi)
    b = q.sample((k,), rng=rng)
    log_q = q.log_prob(b).sum(axis=-1)
    log_joint = 2.0 * b.data[..., 0] - b.data[..., 1] + 1.5 * b.data[..., 0] * b.data[..., 1]
    log_w = Tensor(log_joint) - log_q
    if signal is None:
        return DE.vimco_surrogate(log_q, log_w)
    bound = log_w.logsumexp(axis=0) - math.log(k)
    score = (Tensor(signal(log_w.data)) * log_q).sum(axis=0).mean()
    return bound.mean() + (score - score.detach())


def vimco_exact_gradient(phi_value, k):
    """d/dphi E[log (1/K) sum_k w_k] by enumerating the 4^K outcomes of K draws of 2 latents."""
    phi = Tensor(np.array(phi_value), requires_grad=True)
    single = np.array(list(itertools.product([0.0, 1.0], repeat=2)))          # (4, 2)
    draws = single[np.array(list(itertools.product(range(4), repeat=k)))]       # (4^K, K, 2)
    log_q = (Tensor(draws) * phi - phi.softplus()).sum(axis=-1)                 # log q(b) = b phi - softplus(phi)
    log_joint = 2.0 * draws[..., 0] - draws[..., 1] + 1.5 * draws[..., 0] * draws[..., 1]
    bound = (Tensor(log_joint) - log_q).logsumexp(axis=1) - math.log(k)
    (log_q.sum(axis=1).exp() * bound).sum().backward()
    return phi.grad


def test_vimco_is_unbiased_for_the_multi_sample_bound_and_a_baseline_that_sees_its_own_draw_is_caught():
    phi, k = np.array([0.4, -0.8]), 3
    exact = vimco_exact_gradient(phi, k)
    samples = estimates(lambda p: vimco_problem(p, k, np.random.default_rng(5)), phi, 20_000)
    assert_unbiased(samples, exact, max_std_error=0.01)
    # the value is the batch mean of the bound's estimate, log (1/K) sum_k w_k
    rng = np.random.default_rng(19)
    phi_copies = Tensor(np.tile(phi, (5, 1)))
    q = D.Bernoulli(logits=phi_copies)
    b = q.sample((k,), rng=rng)
    log_w = np.array([1.0, -2.0, 0.5]).reshape(k, 1) + b.data.sum(axis=-1)
    value = DE.vimco_surrogate(q.log_prob(b).sum(axis=-1), log_w).item()
    assert value == pytest.approx(np.mean(np.log(np.mean(np.exp(log_w), axis=0))), rel=1e-14)

    def own_draw_in_its_baseline(log_w):
        # wrong: draw k's baseline replaces w_k by the geometric mean of *all* K weights, its own too
        all_mean = log_w.mean(axis=0, keepdims=True)
        replaced = np.where(np.eye(k, dtype=bool)[..., None], all_mean[None], log_w[None])
        largest = replaced.max(axis=1)
        loo = largest + np.log(np.exp(replaced - largest[:, None]).sum(axis=1)) - math.log(k)
        bound = np.logaddexp.reduce(log_w, axis=0) - math.log(k)
        return bound - loo

    biased = estimates(lambda p: vimco_problem(p, k, np.random.default_rng(5), own_draw_in_its_baseline), phi,
                       20_000)
    assert np.max(np.abs(GradientStats(biased, exact).bias_z)) > 10


def test_a_reinforce_baseline_that_sees_its_own_draw_is_caught():
    """b = the batch mean, own cost included, shrinks each term by (n - 1) / n: here by a half."""
    t, phi = 0.45, 0.0
    def batch_mean_baseline(p):
        q = D.Bernoulli(logits=p)
        b = q.sample((2,), rng=rng)
        cost = DE.toy_cost(b.data, t)
        return score_function_surrogate(q.log_prob(b), cost, cost.mean(axis=0))
    rng = np.random.default_rng(6)
    biased = estimates(batch_mean_baseline, phi, 40_000)
    stats = GradientStats(biased, DE.toy_exact_gradient(phi, t))
    assert stats.bias_z < -10 and stats.mean == pytest.approx(0.5 * DE.toy_exact_gradient(phi, t), rel=0.05)


def test_vimco_learning_signals_match_the_definition_and_survive_huge_log_weights():
    log_w = np.array([[-1000.0, 3.0], [-1001.0, 1.0], [-999.5, -2.0]])
    loo = DE._leave_one_out_bounds(log_w)
    for k in range(3):
        others = np.delete(log_w, k, axis=0)
        replaced = np.concatenate([others, others.mean(axis=0, keepdims=True)])
        expected = np.logaddexp.reduce(replaced, axis=0) - math.log(3)
        np.testing.assert_allclose(loo[k], expected, rtol=1e-14)
    assert np.all(np.isfinite(loo))


# -------------------------------------------------------------------------------------------------
# The conditional relaxed sample z~ | b
def test_conditional_logistic_has_the_law_of_z_given_b_and_its_slope_is_the_derivative():
    rng = np.random.default_rng(7)
    phi = 0.6
    theta = 1 / (1 + math.exp(-phi))
    n = 200_000
    b = rng.random(n) < theta
    v = rng.random(n)
    z_tilde, slope = DE.conditional_logistic(np.full(n, phi), b, v)
    assert np.array_equal(z_tilde > 0, b)
    # conditional CDFs of z = phi + L given the sign: P(z <= s | b) from the logistic CDF sigmoid(s - phi)
    for s in (-2.0, -0.5, 0.7, 2.5):
        cdf = 1 / (1 + math.exp(-(s - phi)))
        given = b if s > 0 else ~b
        expected = (cdf - (1 - theta)) / theta if s > 0 else cdf / (1 - theta)
        measured = np.mean(z_tilde[given] <= s)
        std_error = math.sqrt(expected * (1 - expected) / given.sum())
        assert abs(measured - expected) < 4 * std_error, (s, measured, expected)
    # the slope against central differences at fixed v and b
    h = 1e-6
    up, _ = DE.conditional_logistic(np.full(n, phi + h), b, v)
    down, _ = DE.conditional_logistic(np.full(n, phi - h), b, v)
    np.testing.assert_allclose(slope, (up - down) / (2 * h), rtol=1e-6, atol=1e-9)
    assert np.all((slope > 0) & (slope < 1))


def test_conditional_logistic_is_finite_at_extreme_logits():
    v = np.array([1e-16, 0.5, 1 - 2 ** -53])
    for phi in (-40.0, 40.0):
        for b in (0.0, 1.0):
            z_tilde, slope = DE.conditional_logistic(np.full(3, phi), np.full(3, b), v)
            assert np.all(np.isfinite(z_tilde)) and np.all(np.isfinite(slope))
            assert np.all((z_tilde > 0) == (b == 1))


# -------------------------------------------------------------------------------------------------
# REBAR and RELAX
def multivariate_toy(t):
    return (lambda b: ((b - t) ** 2).sum(axis=-1)), (lambda y: 2.0 * (y - t))


def test_relax_with_a_zero_control_variate_is_reinforce_draw_for_draw():
    def zero(z):
        return Tensor(np.zeros(z.shape[:-1])), Tensor(np.zeros(z.shape))
    phi = np.array([0.3, -1.2])
    rng = np.random.default_rng(8)
    g = estimates(lambda p: DE.relax_surrogate(p, lambda b: (b * b).sum(axis=-1) + 1.0, zero, rng=rng), phi, 50)
    rng = np.random.default_rng(8)  # the same u: z = phi + logit(u), b = [z > 0]
    u = rng.integers(0, 2 ** 52, size=(1, 50, 2)) * 2.0 + 1.0
    b = (phi + np.log(u / 2 ** 53) - np.log1p(-u / 2 ** 53) > 0)[0]
    np.testing.assert_allclose(g, (b.sum(axis=-1, keepdims=True) + 1.0) * (b - 1 / (1 + np.exp(-phi))), rtol=1e-14)


@pytest.mark.parametrize("phi", [np.array(0.4), np.array([0.8, -0.4, 1.5])])
def test_rebar_and_relax_are_unbiased_whatever_their_control_variate(phi):
    t = 0.45
    if phi.ndim == 0:
        cost, slope, exact, latent = toy(t), toy_slope(t), DE.toy_exact_gradient(phi, t), ()
    else:
        cost, slope = multivariate_toy(np.array([0.1, 0.45, 0.8]))
        exact, latent = enumerated_gradient(lambda b: ((b - np.array([0.1, 0.45, 0.8])) ** 2).sum(-1), phi), (3,)
    rebar = estimates(lambda p: DE.rebar_surrogate(p, cost, slope, 0.3, 0.7, n_samples=2,
                                                   rng=np.random.default_rng(9)), phi, 20_000)
    assert_unbiased(rebar, exact, max_std_error=0.006)
    network = DE.NeuralControlVariate(latent, hidden=(8,), rng=np.random.default_rng(10))
    relax = estimates(lambda p: DE.relax_surrogate(p, cost, network, rng=np.random.default_rng(11)), phi, 20_000)
    assert_unbiased(relax, exact, max_std_error=0.006)


def test_the_variance_output_is_the_batch_mean_of_the_squared_estimates():
    cost, slope = multivariate_toy(np.array([0.2, 0.6]))
    phi = Tensor(np.array([[0.3, -0.5], [1.0, 0.2], [0.0, 2.0]]), requires_grad=True)
    result = DE.rebar_surrogate(phi, cost, slope, 0.4, 0.8, n_samples=2, rng=np.random.default_rng(20))
    result.surrogate.backward()
    per_image = phi.grad * 3  # the surrogate averages over the 3 batch entries
    assert result.variance.item() == pytest.approx((per_image ** 2).sum(axis=-1).mean(), rel=1e-13)


def test_the_gradient_of_rebars_variance_in_temperature_and_eta_is_exact():
    """|g|^2 as a function of (log lambda, eta) on fixed noise: backward() against central differences.
    g holds f'(sigmoid(z / lambda)), so this checks the hand-written second-order path."""
    cost, slope = multivariate_toy(np.array([0.2, 0.6]))
    phi = Tensor(np.array([[0.3, -0.5], [1.0, 0.2]]))

    def variance(log_temperature, eta):
        return DE.rebar_surrogate(phi, cost, slope, log_temperature.exp(), eta, n_samples=3,
                                  rng=np.random.default_rng(12)).variance
    assert gradcheck(variance, [Tensor(math.log(0.4), requires_grad=True), Tensor(0.8, requires_grad=True)])


def test_the_gradient_of_relaxs_variance_in_the_network_weights_is_exact():
    cost, _ = multivariate_toy(np.array([0.2, 0.6]))
    phi = Tensor(np.array([[0.3, -0.5], [1.0, 0.2]]))
    network = DE.NeuralControlVariate((2,), hidden=(3,), rng=np.random.default_rng(13))
    layers = network.network.layers

    def variance(*weights):
        for layer, (weight, bias) in zip(layers, zip(weights[::2], weights[1::2])):
            layer.weight, layer.bias = weight, bias
        return DE.relax_surrogate(phi, cost, network, n_samples=2, rng=np.random.default_rng(14)).variance
    weights = [Tensor(p.data.copy(), requires_grad=True) for layer in layers for p in (layer.weight, layer.bias)]
    assert gradcheck(variance, weights)


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid", "softplus"])
def test_mlp_input_gradient_is_the_engines_gradient_with_respect_to_the_input(activation):
    rng = np.random.default_rng(15)
    mlp = MLP([3, 5, 4, 3, 2], activation=activation, rng=rng)  # an odd number of hidden layers: a
    # sign error in act' does not cancel out
    x = Tensor(rng.standard_normal((6, 3)), requires_grad=True)
    weights = rng.standard_normal((6, 2))
    out, slope = DE.mlp_input_gradient(mlp, x, weights)
    np.testing.assert_array_equal(out.data, mlp(x).data)
    (mlp(x) * Tensor(weights)).sum().backward()
    np.testing.assert_allclose(slope.data, x.grad, rtol=1e-13, atol=1e-15)


def tune(make_estimate, parameters, steps, lr, copies=500):
    """Adam on the control variate's parameters, minimizing the estimate's |g|^2 (phi held fixed)."""
    optimizer = Adam(parameters, lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        make_estimate(copies).variance.backward()
        optimizer.step()


def test_rebar_tuned_by_the_gradient_of_its_variance_beats_reinforce_on_ten_latents():
    t = np.linspace(0.3, 0.7, 10)
    cost, slope = multivariate_toy(t)
    log_temperature, eta = Tensor(math.log(0.5), requires_grad=True), Tensor(1.0, requires_grad=True)
    rng = np.random.default_rng(16)

    def rebar(copies):
        return DE.rebar_surrogate(Tensor(np.zeros((copies, 10))), cost, slope, log_temperature.exp(), eta, rng=rng)
    before = rebar(4000).variance.item()
    tune(rebar, [log_temperature, eta], steps=200, lr=0.05)
    after = rebar(4000).variance.item()
    assert after < 0.5 * before                   # the temperature and eta moved somewhere better
    samples = estimates(lambda p: DE.rebar_surrogate(p, cost, slope, log_temperature.exp(), eta, rng=rng),
                        np.zeros(10), 10_000)
    exact = 0.25 * (1 - 2 * t)
    assert_unbiased(samples, exact, max_std_error=0.01)
    reinforce = estimates(lambda p: reinforce_surrogate(p, cost, rng), np.zeros(10), 10_000)
    assert GradientStats(samples).variance.mean() < 0.1 * GradientStats(reinforce).variance.mean()


def test_relax_tuned_on_the_toy_is_far_quieter_than_reinforce():
    t, phi = 0.499, 0.0
    network = DE.NeuralControlVariate((), hidden=(10,), rng=np.random.default_rng(17))
    rng = np.random.default_rng(18)

    def relax(copies):
        return DE.relax_surrogate(Tensor(np.zeros(copies)), toy(t), network, rng=rng)
    tune(relax, network.parameters(), steps=200, lr=0.01)
    samples = estimates(lambda p: DE.relax_surrogate(p, toy(t), network, rng=rng), phi, 10_000)
    stats = assert_unbiased(samples, DE.toy_exact_gradient(phi, t), max_std_error=1e-4)
    assert stats.variance < 0.01 * DE.toy_variances(phi, t)["reinforce"]
