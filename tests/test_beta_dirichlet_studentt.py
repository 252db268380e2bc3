"""Beta, Dirichlet and StudentT: implicit reparameterization, checked pointwise and in law.

Pointwise: every Beta and StudentT sample moves as the implicit identity dz/dtheta =
-(dF/dtheta)/p says (``testing.check_pathwise_gradient``, which differences the family's own
``cdf`` and takes p from ``log_prob``), for the concentrations from 1e-2 to 1e2 and for df, loc and
scale. In law, with fixed seeds and z-scores a wrong formula fails: the draws against their CDF
(Kolmogorov-Smirnov, with a wrong parameter rejected), moments of the gradient that follow from
closed forms (d E[x]/da for the Beta, d E[t^2]/d(df) for the Student t, the Jacobian of
E[x] = alpha / alpha_0 for the Dirichlet, whose gradient comes through Gammas and has no pointwise
identity), the Dirichlet's marginals (Beta(alpha_i, alpha_0 - alpha_i)), entropies and KL
divergences against Monte Carlo. Densities are compared with formulas written here with
``math.lgamma``.
"""
import contextlib
import math
import warnings

import numpy as np
import pytest

import tinygrad_reparam.distributions as D
from tinygrad_reparam import Tensor, gradcheck
from tinygrad_reparam.testing import check_pathwise_gradient

N = 20_000
KS_BOUND = 1.63 / math.sqrt(N)  # 1% critical value of the one-sample KS statistic
Z = 4.5                         # |z| above this is a failure (fixed seeds: the tests repeat exactly)


def ks_statistic(samples, cdf) -> float:
    """sup_x |F_n(x) - F(x)|, evaluated at the jumps of the empirical CDF F_n."""
    x = np.sort(np.asarray(samples).reshape(-1))
    f = np.asarray(getattr(cdf(x), "data", cdf(x)))
    i = np.arange(1, x.size + 1)
    return float(max(np.max(i / x.size - f), np.max(f - (i - 1) / x.size)))


def z_score(values, exact) -> np.ndarray:
    """(mean - exact) / standard error of the mean, along axis 0."""
    values = np.asarray(values)
    return (values.mean(axis=0) - exact) / (values.std(axis=0, ddof=1) / math.sqrt(values.shape[0]))


@contextlib.contextmanager
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def rng(seed=0):
    return np.random.default_rng(seed)


# =================================================================================================
# Beta
lgamma = np.vectorize(math.lgamma)


def hand_beta_log_density(x, a, b):
    return (a - 1) * np.log(x) + (b - 1) * np.log1p(-x) - (lgamma(a) + lgamma(b) - lgamma(a + b))


CONCENTRATIONS = [0.01, 0.05, 0.3, 1.0, 3.0, 20.0, 100.0]


def test_beta_samples_move_as_the_implicit_identity_says_for_concentrations_from_1e_2_to_1e2():
    """Every pair (a, b) of CONCENTRATIONS, 64 draws each: dx/da and dx/db from backpropagation
    through rsample equal -(dI_x/da)/p and -(dI_x/db)/p, the CDF differenced by the checker,
    to 1e-6 relative (PyTorch asks 1e-2 of its own Beta gradient)."""
    a, b = np.meshgrid(CONCENTRATIONS, CONCENTRATIONS)
    assert check_pathwise_gradient(D.Beta, {"concentration1": a, "concentration0": b},
                                   sample_shape=(64,), rng=rng(1), rtol=1e-6)


def test_check_pathwise_gradient_catches_a_wrong_beta_gradient(monkeypatch):
    """The check above can fail: the same node with dx/db's sign flipped is caught."""
    import tinygrad_reparam.distributions.beta as beta_module
    right = beta_module.beta_sample_derivatives_array
    monkeypatch.setattr(beta_module, "beta_sample_derivatives_array",
                        lambda a, b, x: (right(a, b, x)[0], -right(a, b, x)[1]))
    with pytest.raises(AssertionError, match="parameter 'concentration0'"):
        check_pathwise_gradient(D.Beta, {"concentration1": 2.0, "concentration0": 3.0}, rng=rng(1))


@pytest.mark.parametrize("a, b", [(0.5, 0.5), (2.0, 5.0), (0.05, 3.0), (40.0, 8.0)])
def test_beta_gradient_of_the_mean_is_the_derivative_of_a_over_a_plus_b(a, b):
    """E[dx/da] = d/da a/(a+b) = b/(a+b)^2 and E[dx/db] = -a/(a+b)^2, by z-scores."""
    concentration1 = Tensor(np.full(N, a), requires_grad=True)
    concentration0 = Tensor(np.full(N, b), requires_grad=True)
    D.Beta(concentration1, concentration0).rsample(rng=rng(2)).sum().backward()
    assert abs(z_score(concentration1.grad, b / (a + b) ** 2)) < Z
    assert abs(z_score(concentration0.grad, -a / (a + b) ** 2)) < Z
    # and a test that can fail: the gradient of 2 a / (a + b) is twice as large
    assert abs(z_score(concentration1.grad, 2 * b / (a + b) ** 2)) > 2 * Z


# (Not a = b = 0.05: 8% of that law lies within 1.1e-16 of 1, where no float is, and the draws
# rounded there make a step the KS statistic sees; the tiny concentrations are tested below.)
BETA_LAWS = [(0.05, 2.0), (0.2, 0.2), (2.0, 2.0), (30.0, 2.0)]


@pytest.mark.parametrize("a, b", BETA_LAWS)
def test_beta_samples_pass_kolmogorov_smirnov_and_a_wrong_law_does_not(a, b):
    beta = D.Beta(a, b)
    x = beta.rsample((N,), rng=rng(3)).data
    assert ks_statistic(x, beta.cdf) < KS_BOUND
    assert ks_statistic(x, D.Beta(a * 1.2, b).cdf) > KS_BOUND  # a 20% or b 50% off
    assert ks_statistic(x, D.Beta(a, b * 1.5).cdf) > KS_BOUND
    assert np.all((x > 0) & (x < 1))


def test_beta_log_prob_matches_the_density_by_hand_and_the_cdf_is_its_integral():
    a, b = np.array([0.3, 2.0, 7.5]), np.array([1.5, 0.6, 30.0])
    beta = D.Beta(a, b)
    x = np.linspace(0.001, 0.999, 60)[:, None]
    np.testing.assert_allclose(beta.log_prob(x).data, hand_beta_log_density(x, a, b), rtol=1e-13, atol=1e-13)
    # d cdf / d value is the density
    value = Tensor(np.broadcast_to(x, (60, 3)).copy(), requires_grad=True)
    beta.cdf(value).sum().backward()
    np.testing.assert_allclose(value.grad, np.exp(hand_beta_log_density(x, a, b)), rtol=1e-12)
    assert beta.cdf(np.array([[-1.0], [0.0], [1.0], [2.0]])).data.tolist() == [[0.0] * 3, [0.0] * 3,
                                                                                [1.0] * 3, [1.0] * 3]


def test_beta_log_prob_at_the_ends_is_the_limit_and_outside_is_minus_inf():
    beta = D.Beta(Tensor([0.5, 1.0, 3.0, 1.5], requires_grad=True), Tensor([3.0, 4.0, 1.0, 0.5], requires_grad=True))
    with no_warnings():
        at_zero, at_one = beta.log_prob(0.0), beta.log_prob(1.0)
        outside = beta.log_prob(np.array([[-0.5], [1.5]]))
    assert at_zero.data[0] == np.inf and at_zero.data[2] == -np.inf and at_zero.data[3] == -np.inf
    assert at_zero.data[1] == pytest.approx(math.log(4.0), rel=1e-15)  # 1 / B(1, 4) = 4
    assert at_one.data[2] == pytest.approx(math.log(3.0), rel=1e-15)
    assert at_one.data[0] == -np.inf and at_one.data[3] == np.inf
    assert np.all(outside.data == -np.inf)
    outside.sum().backward()
    assert np.all(np.isfinite(beta.concentration1.grad))


def test_beta_cdf_outside_the_interval_is_flat_with_finite_gradients():
    a, b = Tensor([0.5, 2.0], requires_grad=True), Tensor([0.3, 4.0], requires_grad=True)
    value = Tensor(np.array([[-0.5, -0.5], [0.0, 0.0], [1.0, 1.0], [1.5, 1.5]]), requires_grad=True)
    with no_warnings():
        cdf = D.Beta(a, b).cdf(value)
        cdf.sum().backward()
    assert cdf.data.tolist() == [[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [1.0, 1.0]]
    assert np.all(value.grad == 0) and np.all(a.grad == 0) and np.all(b.grad == 0)


def test_beta_mean_variance_entropy_and_kl():
    a, b = np.array([0.5, 2.0, 12.0]), np.array([0.8, 5.0, 3.0])
    p, q = D.Beta(a, b), D.Beta(np.array([1.0, 3.0, 9.0]), np.array([1.0, 2.0, 4.0]))
    np.testing.assert_allclose(p.mean.data, a / (a + b), rtol=1e-15)
    np.testing.assert_allclose(p.variance.data, a * b / ((a + b) ** 2 * (a + b + 1)), rtol=1e-15)
    x = p.sample((N,), rng=rng(4))
    log_p = p.log_prob(x).data
    assert np.all(np.abs(z_score(-log_p, p.entropy().data)) < Z)
    assert np.all(np.abs(z_score(log_p - q.log_prob(x).data, D.kl_divergence(p, q).data)) < Z)
    assert np.all(np.abs(z_score(x.data, p.mean.data)) < Z)
    assert D.kl_divergence(p, p).data == pytest.approx(np.zeros(3), abs=1e-14)
    # closed forms at a = b = 1 (the uniform law): entropy 0, KL(Beta(2, 1) || U) = log 2 - 1/2
    assert D.Beta(1.0, 1.0).entropy().item() == pytest.approx(0.0, abs=1e-15)
    assert D.kl_divergence(D.Beta(2.0, 1.0), D.Beta(1.0, 1.0)).item() == pytest.approx(math.log(2) - 0.5, rel=1e-14)


def test_beta_shapes_sample_cut_and_float32():
    a = Tensor(np.full((2, 1), 2.0), requires_grad=True)
    beta = D.Beta(a, np.array([0.5, 1.0, 3.0]))
    assert beta.batch_shape == (2, 3) and beta.event_shape == ()
    x = beta.rsample((4,), rng=rng(5))
    assert x.shape == (4, 2, 3) and x.op == "beta_sample"
    x.sum().backward()
    assert a.grad.shape == (2, 1) and np.all(np.isfinite(a.grad))
    np.testing.assert_array_equal(beta.sample((4,), rng=rng(5)).data, x.data)
    drawn = beta.sample((4,), rng=rng(5))
    assert not drawn.requires_grad and drawn.op == "Beta.sample"
    x32 = D.Beta(np.float32(0.01), np.float32(0.01)).rsample((1000,), rng=rng(6))
    assert x32.dtype == np.float32 and np.all((x32.data > 0) & (x32.data < 1))


def test_beta_draws_at_tiny_concentrations_stay_inside_with_finite_gradients():
    """With a = b = 0.01 a third of the draws round to 0 or 1 in float64: they are kept at the
    smallest normal float and at 1 - 2^-53, where log p and the gradients are finite."""
    a, b = Tensor(np.full(2000, 0.01), requires_grad=True), Tensor(np.full(2000, 0.01), requires_grad=True)
    beta = D.Beta(a, b)
    with no_warnings():
        x = beta.rsample(rng=rng(7))
        log_p = beta.log_prob(x)
        (x + log_p).sum().backward()
    assert np.all((x.data > 0) & (x.data < 1)) and np.all(np.isfinite(log_p.data))
    assert np.all(np.isfinite(a.grad)) and np.all(np.isfinite(b.grad))
    assert 0.15 < np.mean((x.data == np.finfo(float).tiny) | (x.data == 1 - 2 ** -53)) < 0.5


def test_beta_gradchecks():
    a, b = Tensor([0.7, 3.0], requires_grad=True), Tensor([2.5, 0.4], requires_grad=True)
    a2, b2 = Tensor([1.5, 2.0], requires_grad=True), Tensor([0.9, 6.0], requires_grad=True)
    x = Tensor([0.3, 0.85], requires_grad=True)
    assert gradcheck(lambda a, b, x: D.Beta(a, b).log_prob(x), [a, b, x])
    assert gradcheck(lambda a, b, x: D.Beta(a, b).cdf(x), [a, b, x])
    assert gradcheck(lambda a, b: D.Beta(a, b).entropy() + D.Beta(a, b).variance, [a, b])
    assert gradcheck(lambda a, b, c, d: D.kl_divergence(D.Beta(a, b), D.Beta(c, d)), [a, b, a2, b2])


# =================================================================================================
# Dirichlet
def hand_dirichlet_log_density(x, alpha):
    alpha = np.asarray(alpha)
    return (((alpha - 1) * np.log(x)).sum(axis=-1) + math.lgamma(alpha.sum())
            - sum(math.lgamma(v) for v in alpha))


ALPHA = np.array([0.6, 2.0, 4.5])


def test_dirichlet_log_prob_by_hand_and_its_two_dimensional_case_is_the_beta():
    dirichlet = D.Dirichlet(ALPHA)
    x = rng(8).dirichlet(ALPHA, size=50)
    np.testing.assert_allclose(dirichlet.log_prob(x).data, hand_dirichlet_log_density(x, ALPHA), rtol=1e-13)
    u = np.linspace(0.01, 0.99, 30)
    pairs = np.stack([u, 1 - u], axis=-1)
    np.testing.assert_allclose(D.Dirichlet([0.7, 3.0]).log_prob(pairs).data, D.Beta(0.7, 3.0).log_prob(u).data,
                               rtol=1e-13)
    assert dirichlet.batch_shape == () and dirichlet.event_shape == (3,)


def test_dirichlet_draws_are_on_the_simplex_with_the_right_moments():
    dirichlet = D.Dirichlet(ALPHA)
    x = dirichlet.rsample((N,), rng=rng(9)).data
    assert x.shape == (N, 3) and np.all(x > 0)
    np.testing.assert_allclose(x.sum(axis=-1), 1.0, rtol=0, atol=4e-16)
    assert np.all(np.abs(z_score(x, dirichlet.mean.data)) < Z)
    centred = (x - dirichlet.mean.data) ** 2
    assert np.all(np.abs(z_score(centred, dirichlet.variance.data)) < Z)
    total = ALPHA.sum()  # Cov(x_0, x_1) = -alpha_0 alpha_1 / (total^2 (total + 1))
    products = (x[:, 0] - ALPHA[0] / total) * (x[:, 1] - ALPHA[1] / total)
    assert abs(z_score(products, -ALPHA[0] * ALPHA[1] / (total ** 2 * (total + 1)))) < Z


@pytest.mark.parametrize("i", [0, 1, 2])
def test_dirichlet_marginals_are_betas(i):
    """x_i ~ Beta(alpha_i, alpha_0 - alpha_i), by Kolmogorov-Smirnov against the Beta's cdf; the
    other coordinates' laws are rejected (the test can fail)."""
    x = D.Dirichlet(ALPHA).rsample((N,), rng=rng(10)).data
    total = ALPHA.sum()
    assert ks_statistic(x[:, i], D.Beta(ALPHA[i], total - ALPHA[i]).cdf) < KS_BOUND
    other = (i + 1) % 3
    assert ks_statistic(x[:, i], D.Beta(ALPHA[other], total - ALPHA[other]).cdf) > KS_BOUND


def test_dirichlet_pathwise_gradient_of_the_mean_is_the_jacobian_of_alpha_over_its_sum():
    """E[dx_i/dalpha_j] = d(alpha_i / alpha_0)/dalpha_j = ([i = j] alpha_0 - alpha_i) / alpha_0^2
    for every i and j, by z-scores: the gradient through implicitly reparameterized Gammas is
    unbiased. One draw per copy of the parameters, so each copy's gradient is one estimate."""
    total = ALPHA.sum()
    exact = (np.eye(3) * total - ALPHA[:, None]) / total ** 2  # [i, j]
    alpha = Tensor(np.tile(ALPHA, (N, 1)), requires_grad=True)
    x = D.Dirichlet(alpha).rsample(rng=rng(11))
    for i in range(3):
        alpha.grad = None
        x[:, i].sum().backward(retain_graph=True)
        z = z_score(alpha.grad, exact[i])
        assert np.all(np.abs(z) < Z), (i, z)
        assert np.all(np.abs(z_score(alpha.grad, exact[i] + 0.1 * np.abs(exact[i]).max())) > Z)


def test_dirichlet_entropy_and_kl_against_monte_carlo():
    p, q = D.Dirichlet([[0.6, 2.0, 4.5], [3.0, 3.0, 0.3]]), D.Dirichlet([1.0, 2.0, 1.0])
    x = p.sample((N,), rng=rng(12))
    log_p = p.log_prob(x).data
    assert np.all(np.abs(z_score(-log_p, p.entropy().data)) < Z)
    assert np.all(np.abs(z_score(log_p - q.log_prob(x).data, D.kl_divergence(p, q).data)) < Z)
    # closed forms: Dirichlet(1, 1, 1) is uniform on the simplex, of area 1/2: entropy -log 2
    assert D.Dirichlet([1.0, 1.0, 1.0]).entropy().item() == pytest.approx(-math.log(2), rel=1e-14)
    assert D.kl_divergence(p, p).data == pytest.approx(np.zeros(2), abs=1e-13)


def test_dirichlet_tiny_concentrations_stay_on_the_simplex():
    alpha = Tensor(np.full(4, 0.01), requires_grad=True)
    dirichlet = D.Dirichlet(alpha)
    with no_warnings():
        x = dirichlet.rsample((3000,), rng=rng(13))
        log_p = dirichlet.log_prob(x)
        log_p.sum().backward()
    assert np.all(x.data > 0) and np.all(np.isfinite(log_p.data)) and np.all(np.isfinite(alpha.grad))
    np.testing.assert_allclose(x.data.sum(axis=-1), 1.0, atol=1e-15)


def test_dirichlet_log_prob_at_zero_entries_and_off_the_simplex():
    dirichlet = D.Dirichlet([0.5, 1.0, 3.0])
    with no_warnings():
        values = dirichlet.log_prob(np.array([[0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0],
                                              [-0.5, 0.5, 1.0]])).data
        between = D.Dirichlet([1.5, 1.0]).log_prob([0.0, 1.0]).item()  # x^0.5 at 0: density 0
    assert values[0] == np.inf and values[2] == -np.inf and values[3] == -np.inf and between == -np.inf
    assert values[1] == pytest.approx(hand_dirichlet_log_density(np.array([0.5, 0.5]), [0.5, 3.0])
                                      + math.lgamma(4.5) - math.lgamma(3.5), rel=1e-14)
    with pytest.raises(ValueError, match=r"Dirichlet\.log_prob: value must be on the probability simplex.*\[1\.2\]"):
        dirichlet.log_prob([0.2, 0.5, 0.5])


def test_dirichlet_shapes_and_gradchecks():
    alpha = Tensor(np.array([[0.5, 1.5], [2.0, 0.7]]), requires_grad=True)
    dirichlet = D.Dirichlet(alpha)
    assert dirichlet.batch_shape == (2,) and dirichlet.event_shape == (2,)
    assert dirichlet.rsample((5,), rng=rng(14)).shape == (5, 2, 2)
    assert dirichlet.mean.shape == dirichlet.variance.shape == (2, 2) and dirichlet.entropy().shape == (2,)
    x = Tensor([0.3, 0.7])
    beta = Tensor([[1.0, 2.0], [3.0, 0.5]], requires_grad=True)
    assert gradcheck(lambda a: D.Dirichlet(a).log_prob(x), [alpha])
    assert gradcheck(lambda a: D.Dirichlet(a).entropy() + D.Dirichlet(a).variance.sum(axis=-1), [alpha])
    assert gradcheck(lambda a, b: D.kl_divergence(D.Dirichlet(a), D.Dirichlet(b)), [alpha, beta])
    # with two categories the Dirichlet is a Beta, and so are its entropy and KL (any batch shape)
    a, b = np.array([[[0.7, 3.0]], [[2.0, 0.4]]]), np.array([1.5, 2.5])
    assert D.Dirichlet(a).entropy().data == pytest.approx(D.Beta(a[..., 0], a[..., 1]).entropy().data, rel=1e-13)
    assert D.kl_divergence(D.Dirichlet(a), D.Dirichlet(b)).data == pytest.approx(
        D.kl_divergence(D.Beta(a[..., 0], a[..., 1]), D.Beta(b[0], b[1])).data, rel=1e-13)
    assert D.kl_divergence(D.Dirichlet(b), D.Dirichlet(a)).shape == (2, 1)


# =================================================================================================
# StudentT
def hand_t_log_density(z, df, loc, scale):
    y = (z - loc) / scale
    return (math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
            - math.log(scale) - (df + 1) / 2 * np.log1p(y * y / df))


@pytest.mark.parametrize("df", [0.5, 1.0, 2.5, 10.0, 100.0])
def test_student_t_samples_move_as_the_implicit_identity_says_for_df_loc_and_scale(df):
    # (the law of the draws is tested against the CDF below, with KS; 20,000 draws suffice here)
    assert check_pathwise_gradient(D.StudentT, {"df": df, "loc": -1.5, "scale": 3.0},
                                   sample_shape=(200,), rng=rng(15), rtol=1e-6, law_samples=20_000)


def test_check_pathwise_gradient_catches_a_wrong_student_t_gradient(monkeypatch):
    import tinygrad_reparam.distributions.studentt as studentt_module
    right = studentt_module.student_t_sample_derivative_array
    monkeypatch.setattr(studentt_module, "student_t_sample_derivative_array", lambda df, t: 1.05 * right(df, t))
    with pytest.raises(AssertionError, match="parameter 'df'"):
        check_pathwise_gradient(D.StudentT, {"df": 4.0, "loc": 0.0, "scale": 1.0}, rng=rng(15))


@pytest.mark.parametrize("df", [9.0, 20.0])
def test_student_t_gradient_of_the_second_moment(df):
    """E[t^2] = df / (df - 2), so E[2 t dt/d(df)] = d/d(df) df / (df - 2) = -2 / (df - 2)^2 (and
    E[dt/d(df)] = 0 by symmetry), by z-scores."""
    nu = Tensor(np.full(4 * N, df), requires_grad=True)
    t = D.StudentT(nu).rsample(rng=rng(16))
    (t * t).sum().backward(retain_graph=True)
    assert abs(z_score(nu.grad, -2 / (df - 2) ** 2)) < Z
    assert abs(z_score(nu.grad, -3 / (df - 2) ** 2)) > Z  # the test can fail
    nu.grad = None
    t.sum().backward()
    assert abs(z_score(nu.grad, 0.0)) < Z


@pytest.mark.parametrize("df", [0.7, 3.0, 30.0])
def test_student_t_samples_pass_kolmogorov_smirnov_and_a_wrong_df_does_not(df):
    student = D.StudentT(df, 1.0, 2.0)
    z = student.rsample((N,), rng=rng(17)).data
    assert ks_statistic(z, student.cdf) < KS_BOUND
    assert ks_statistic(z, D.StudentT(df, 1.0, 2.2).cdf) > KS_BOUND
    if df < 10:  # (t_30 and t_39 are too close to tell apart with 20,000 draws)
        assert ks_statistic(z, D.StudentT(df * 1.3, 1.0, 2.0).cdf) > KS_BOUND


def test_student_t_log_prob_cdf_and_the_cauchy_case():
    df, loc, scale = np.array([0.5, 3.0, 40.0]), np.array([0.0, 1.0, -2.0]), np.array([1.0, 0.5, 3.0])
    student = D.StudentT(df, loc, scale)
    z = np.linspace(-30, 30, 61)[:, None]
    expected = np.stack([hand_t_log_density(z[:, 0], *p) for p in zip(df, loc, scale)], axis=-1)
    np.testing.assert_allclose(student.log_prob(z).data, expected, rtol=1e-13)
    value = Tensor(np.broadcast_to(z, (61, 3)).copy(), requires_grad=True)
    student.cdf(value).sum().backward()  # d cdf / d value is the density
    np.testing.assert_allclose(value.grad, np.exp(expected), rtol=1e-12)
    cauchy = D.StudentT(1.0, 2.0, 0.5).cdf(z[:, 0]).data
    np.testing.assert_allclose(cauchy, 0.5 + np.arctan((z[:, 0] - 2.0) / 0.5) / math.pi, rtol=1e-13)
    assert D.StudentT(3.0, 1.0, 2.0).cdf(1.0).item() == 0.5


def test_student_t_moments_follow_pytorch_and_entropy_matches_monte_carlo():
    student = D.StudentT(np.array([0.5, 1.0, 1.5, 2.0, 2.5, 30.0]), 1.0, 3.0)
    with no_warnings():
        mean, variance = student.mean.data, student.variance.data
    assert np.isnan(mean[:2]).all() and np.all(mean[2:] == 1.0)
    assert np.isnan(variance[:2]).all() and np.all(variance[2:4] == np.inf)
    np.testing.assert_allclose(variance[4:], 9.0 * np.array([2.5, 30.0]) / (np.array([2.5, 30.0]) - 2), rtol=1e-15)
    standard = D.StudentT(5.0)  # loc = 0 and scale = 1 by default, as in PyTorch
    assert (standard.loc.item(), standard.scale.item()) == (0.0, 1.0)
    z = student.sample((N,), rng=rng(18))
    assert np.all(np.abs(z_score(-student.log_prob(z).data, student.entropy().data)) < Z)
    # Cauchy: entropy log(4 pi scale)
    assert D.StudentT(1.0, 0.0, 2.0).entropy().item() == pytest.approx(math.log(8 * math.pi), rel=1e-14)
    with pytest.raises(NotImplementedError, match=r"kl_divergence\(StudentT, StudentT\)"):
        D.kl_divergence(D.StudentT(3.0), D.StudentT(4.0))


def test_student_t_shapes_gradients_and_gradchecks():
    df = Tensor(np.array([[1.5], [4.0]]), requires_grad=True)
    loc, scale = Tensor([0.0, 1.0, 2.0], requires_grad=True), Tensor(2.0, requires_grad=True)
    student = D.StudentT(df, loc, scale)
    assert student.batch_shape == (2, 3)
    z = student.rsample((5,), rng=rng(19))
    assert z.shape == (5, 2, 3)
    z.sum().backward()
    assert df.grad.shape == (2, 1) and loc.grad.tolist() == [10.0, 10.0, 10.0]
    assert scale.grad == pytest.approx(((z.data - loc.data) / 2.0).sum(), rel=1e-12)  # dz/dscale = t
    value = Tensor([[0.3, -4.0, 9.0]], requires_grad=True)
    assert gradcheck(lambda d, m, s, v: D.StudentT(d, m, s).log_prob(v), [df, loc, scale, value])
    assert gradcheck(lambda d, m, s, v: D.StudentT(d, m, s).cdf(v), [df, loc, scale, value])
    assert gradcheck(lambda d, s: D.StudentT(d, 0.0, s).entropy() + D.StudentT(d + 2.0, 0.0, s).variance, [df, scale])
