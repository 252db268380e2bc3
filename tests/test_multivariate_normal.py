"""MultivariateNormal and LowRankMultivariateNormal: the identities of z = mu + L eps, stated as tests.

Every check compares the library with something written out here independently: densities and
KLs with explicit inverses and determinants (NumPy, float64, small n), the pathwise Jacobian
dz/dloc = I and dz_i/dL_ij = eps_j with eps recovered from the sample by a solve, moments of
samples by z-scores (with a deliberately wrong covariance that the same statistic rejects), and
KL closed forms by Monte Carlo. All randomness uses fixed seeds.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_reparam.distributions as D
from tinygrad_reparam import Tensor, gradcheck
from tinygrad_reparam.linalg import matrix_transpose
from tinygrad_reparam.testing import float_arrays, shapes

LOG_2PI = math.log(2 * math.pi)


def swap(m):
    return np.swapaxes(m, -1, -2)


# --- the laws, written out by hand --------------------------------------------------------------
def hand_log_prob(x, mu, sigma):
    """log N(x; mu, Sigma) with an explicit inverse and determinant, broadcast over batches."""
    diff = x - mu
    quadratic = np.einsum("...i,...ij,...j->...", diff, np.linalg.inv(sigma), diff)
    return -0.5 * (quadratic + np.linalg.slogdet(sigma)[1] + x.shape[-1] * LOG_2PI)


def hand_kl(mu_p, sigma_p, mu_q, sigma_q):
    n = mu_p.shape[-1]
    inverse_q = np.linalg.inv(sigma_q)
    diff = mu_q - mu_p
    return 0.5 * (np.trace(inverse_q @ sigma_p, axis1=-2, axis2=-1)
                  + np.einsum("...i,...ij,...j->...", diff, inverse_q, diff) - n
                  + np.linalg.slogdet(sigma_q)[1] - np.linalg.slogdet(sigma_p)[1])


@st.composite
def scale_trils(draw, n, batch=()):
    """Lower triangular, diagonal in [0.3, 2], below it in [-1, 1]."""
    below = draw(float_arrays(batch + (n, n), low=-1.0, high=1.0))
    on = draw(float_arrays(batch + (n,), low=0.3, high=2.0))
    return np.tril(below, -1) + on[..., None] * np.eye(n)


@st.composite
def gaussians(draw, max_n=4):
    """(loc, Sigma) with batch axes that broadcast: loc (..., n), Sigma (..., n, n)."""
    n = draw(st.integers(1, max_n))
    batch_loc, batch_matrix = draw(st.sampled_from([((), ()), ((3,), ()), ((), (2,)), ((2, 1), (3,))]))
    factor = draw(scale_trils(n, batch_matrix))
    return draw(float_arrays(batch_loc + (n,), low=-3.0, high=3.0)), factor @ swap(factor)


def make(kind, loc, sigma, **options):
    """The same Gaussian given by each of the three matrices."""
    if kind == "covariance_matrix":
        return D.MultivariateNormal(loc, covariance_matrix=sigma, **options)
    if kind == "precision_matrix":
        return D.MultivariateNormal(loc, precision_matrix=np.linalg.inv(sigma), **options)
    return D.MultivariateNormal(loc, scale_tril=np.linalg.cholesky(sigma), **options)


KINDS = ["covariance_matrix", "precision_matrix", "scale_tril"]


# --- rsample: dz/dloc = I, dz_i/dL_ij = eps_j ------------------------------------------------------
@settings(max_examples=25)
@given(n=st.integers(1, 4), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_dz_dloc_is_the_identity_and_dz_dL_ij_is_eps_j(n, seed, data):
    loc = Tensor(data.draw(float_arrays((n,), low=-3.0, high=3.0)), requires_grad=True)
    scale_tril = Tensor(data.draw(scale_trils(n)), requires_grad=True)
    z = D.MultivariateNormal(loc, scale_tril=scale_tril).rsample((2,), rng=np.random.default_rng(seed))
    assert z.shape == (2, n)
    eps = np.linalg.solve(scale_tril.data, (z.data - loc.data).T).T  # the noise behind each sample
    for s in range(2):
        for i in range(n):
            loc.grad = scale_tril.grad = None
            one_hot = np.zeros(z.shape)
            one_hot[s, i] = 1.0
            z.backward(one_hot, retain_graph=True)
            np.testing.assert_array_equal(loc.grad, np.eye(n)[i])  # dz_i/dloc_j = [i = j]
            expected = np.zeros((n, n))
            expected[i] = eps[s]                                   # dz_i/dL_ij = eps_j
            np.testing.assert_allclose(np.tril(scale_tril.grad), np.tril(expected), rtol=1e-9, atol=1e-12)


def test_rsample_is_loc_plus_scale_tril_times_the_drawn_noise():
    """z = loc + L eps with eps the standard normals of the generator, batch and sample axes included."""
    rng_values = np.random.default_rng(5).standard_normal((4, 2, 3))
    factor = np.array([[[1.0, 0, 0], [0.5, 2.0, 0], [-1.0, 0.3, 0.7]], [[2.0, 0, 0], [0, 1.0, 0], [1, 1, 1]]])
    loc = np.array([1.0, -2.0, 0.5])
    z = D.MultivariateNormal(loc, scale_tril=factor).rsample((4,), rng=np.random.default_rng(5))
    np.testing.assert_allclose(z.data, loc + np.einsum("bij,sbj->sbi", factor, rng_values), rtol=1e-14)


@settings(max_examples=10)
@given(gaussians(max_n=3), st.sampled_from(KINDS))
def test_rsample_and_log_prob_gradcheck_through_each_parameterization(gaussian, kind):
    """Central differences against backward, for z and log q(value) as functions of loc, the
    matrix and the value. A covariance or precision goes in as sym(M) = (M + M^T) / 2, so that
    a perturbed entry keeps it symmetric; scale_tril goes in as it is."""
    loc, sigma = gaussian
    matrix = {"covariance_matrix": sigma, "precision_matrix": np.linalg.inv(sigma),
              "scale_tril": np.linalg.cholesky(sigma)}[kind]
    value = np.random.default_rng(0).standard_normal(np.broadcast_shapes(loc.shape, sigma.shape[:-1]))

    def distribution(loc, matrix):
        if kind != "scale_tril":
            matrix = (matrix + matrix_transpose(matrix)) / 2
        return D.MultivariateNormal(loc, validate_args=False, **{kind: matrix})

    tensors = [Tensor(loc, requires_grad=True), Tensor(matrix, requires_grad=True)]
    assert gradcheck(lambda l, m: distribution(l, m).rsample((2,), rng=np.random.default_rng(1)), tensors)
    assert gradcheck(lambda l, m, v: distribution(l, m).log_prob(v),
                     tensors + [Tensor(value, requires_grad=True)])


# --- log_prob, entropy and the three matrices ----------------------------------------------------
@given(gaussians(), st.sampled_from(KINDS), st.integers(0, 2**32 - 1))
def test_log_prob_is_the_formula_with_an_explicit_inverse(gaussian, kind, seed):
    loc, sigma = gaussian
    d = make(kind, loc, sigma)
    value = np.random.default_rng(seed).normal(0.0, 2.0, (2,) + d.batch_shape + d.event_shape)
    np.testing.assert_allclose(d.log_prob(value).data, hand_log_prob(value, loc, sigma), rtol=1e-10, atol=1e-10)


@given(n=st.integers(1, 4), data=st.data())
def test_log_prob_with_a_diagonal_scale_is_the_sum_of_normal_log_probs(n, data):
    loc = data.draw(float_arrays((2, n), low=-3.0, high=3.0))
    scale = data.draw(float_arrays((2, n), low=0.1, high=3.0))
    value = data.draw(float_arrays((3, 2, n), low=-5.0, high=5.0))
    d = D.MultivariateNormal(loc, scale_tril=scale[..., None] * np.eye(n))
    normal = D.Normal(loc, scale)
    np.testing.assert_allclose(d.log_prob(value).data, normal.log_prob(value).data.sum(axis=-1), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(d.entropy().data, normal.entropy().data.sum(axis=-1), rtol=1e-13)
    np.testing.assert_allclose(d.variance.data, scale ** 2, rtol=1e-14)
    np.testing.assert_allclose(d.stddev.data, scale, rtol=1e-14)


@given(gaussians())
def test_the_three_parameterizations_are_one_distribution(gaussian):
    loc, sigma = gaussian
    ds = [make(kind, loc, sigma) for kind in KINDS]
    value = np.random.default_rng(0).standard_normal((2,) + ds[0].batch_shape + ds[0].event_shape)
    reference = ds[0]
    expected = {"covariance_matrix": sigma, "precision_matrix": np.linalg.inv(sigma),
                "scale_tril": np.linalg.cholesky(sigma)}
    for d in ds:
        assert (d.batch_shape, d.event_shape) == (reference.batch_shape, reference.event_shape)
        for name, matrix in expected.items():
            np.testing.assert_allclose(getattr(d, name).data, np.broadcast_to(matrix, d._matrix_shape()),
                                       rtol=1e-10, atol=1e-10, err_msg=name)
        np.testing.assert_allclose(d.log_prob(value).data, reference.log_prob(value).data, rtol=1e-11, atol=1e-11)
        np.testing.assert_allclose(d.entropy().data, reference.entropy().data, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(d.mean.data, np.broadcast_to(loc, d.batch_shape + d.event_shape))
        np.testing.assert_allclose(d.variance.data, np.broadcast_to(np.diagonal(sigma, axis1=-2, axis2=-1),
                                                                    d.batch_shape + d.event_shape), rtol=1e-12)
        np.testing.assert_allclose(d.rsample((3,), rng=np.random.default_rng(4)).data,
                                   reference.rsample((3,), rng=np.random.default_rng(4)).data, rtol=1e-10, atol=1e-10)


def test_entropy_is_the_closed_form_and_the_monte_carlo_estimate():
    sigma = np.array([[2.0, 0.6, -0.3], [0.6, 1.0, 0.2], [-0.3, 0.2, 0.5]])
    d = D.MultivariateNormal(np.array([1.0, 0.0, -1.0]), covariance_matrix=sigma)
    closed = 0.5 * (3 * (1 + LOG_2PI) + np.linalg.slogdet(sigma)[1])
    assert d.entropy().item() == pytest.approx(closed, rel=1e-14)
    estimates = -d.log_prob(d.sample((50_000,), rng=np.random.default_rng(8))).data
    z = (estimates.mean() - closed) / (estimates.std() / math.sqrt(estimates.size))
    assert abs(z) < 4


def moment_z_scores(samples, mean, sigma):
    """z-scores of the sample mean and of every entry of the sample covariance against (mean,
    Sigma): Var(sample mean_i) = Sigma_ii / N, Var(sample cov_ij) = (Sigma_ii Sigma_jj + Sigma_ij^2) / N."""
    n_samples = samples.shape[0]
    mean_z = (samples.mean(axis=0) - mean) / np.sqrt(np.diagonal(sigma) / n_samples)
    centred = samples - mean
    cov = centred.T @ centred / n_samples
    cov_se = np.sqrt((np.outer(np.diagonal(sigma), np.diagonal(sigma)) + sigma ** 2) / n_samples)
    return np.abs(np.concatenate([mean_z, ((cov - sigma) / cov_se).ravel()]))


def test_samples_have_the_mean_and_covariance_and_a_wrong_covariance_is_rejected():
    loc = np.array([0.5, -1.0, 2.0])
    w = np.array([[1.0, -0.5], [0.8, 0.3], [-0.2, 1.2]])
    cov_diag = np.array([0.3, 0.5, 0.2])
    sigma = w @ w.T + np.diag(cov_diag)
    for d in (D.MultivariateNormal(loc, covariance_matrix=sigma), D.LowRankMultivariateNormal(loc, w, cov_diag)):
        samples = d.rsample((20_000,), rng=np.random.default_rng(11)).data
        assert moment_z_scores(samples, loc, sigma).max() < 4, type(d).__name__
        wrong = w @ w.T + np.diag(cov_diag ** 2)  # e.g. D instead of sqrt(D) in rsample
        assert moment_z_scores(samples, loc, wrong).max() > 8, type(d).__name__


# --- the low-rank family ------------------------------------------------------------------------------
@st.composite
def low_rank_gaussians(draw):
    n, m = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    batch_loc, batch_w, batch_d = draw(st.sampled_from([((), (), ()), ((2,), (), (2,)), ((), (3,), ()),
                                                        ((2, 1), (3,), (1,))]))
    return (draw(float_arrays(batch_loc + (n,), low=-3.0, high=3.0)),
            draw(float_arrays(batch_w + (n, m), low=-2.0, high=2.0)),
            draw(float_arrays(batch_d + (n,), low=0.1, high=3.0)))


@given(low_rank_gaussians(), st.integers(0, 2**32 - 1))
def test_low_rank_is_the_multivariate_normal_with_covariance_w_w_t_plus_d(params, seed):
    loc, w, cov_diag = params
    low_rank = D.LowRankMultivariateNormal(loc, w, cov_diag)
    sigma = w @ swap(w) + cov_diag[..., None] * np.eye(w.shape[-2])
    full = D.MultivariateNormal(loc, covariance_matrix=sigma)
    assert (low_rank.batch_shape, low_rank.event_shape) == (full.batch_shape, full.event_shape)
    value = np.random.default_rng(seed).normal(0.0, 2.0, (2,) + full.batch_shape + full.event_shape)
    np.testing.assert_allclose(low_rank.log_prob(value).data, hand_log_prob(value, loc, sigma), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(low_rank.entropy().data, full.entropy().data, rtol=1e-12, atol=1e-12)
    for name in ("mean", "variance", "covariance_matrix", "precision_matrix", "scale_tril"):
        np.testing.assert_allclose(getattr(low_rank, name).data, getattr(full, name).data,
                                   rtol=1e-10, atol=1e-10, err_msg=name)
    for name, value in (("loc", loc), ("cov_factor", w), ("cov_diag", cov_diag)):
        expected_shape = full.batch_shape + value.shape[-(2 if name == "cov_factor" else 1):]
        np.testing.assert_array_equal(getattr(low_rank, name).data, np.broadcast_to(value, expected_shape))


@settings(max_examples=10)
@given(low_rank_gaussians())
def test_low_rank_rsample_and_log_prob_gradcheck(params):
    loc, w, cov_diag = params
    value = np.random.default_rng(0).standard_normal(
        np.broadcast_shapes(loc.shape, w.shape[:-1], cov_diag.shape))
    tensors = [Tensor(x, requires_grad=True) for x in (loc, w, cov_diag)]
    assert gradcheck(lambda l, w, d: D.LowRankMultivariateNormal(l, w, d).rsample(
        (2,), rng=np.random.default_rng(1)), tensors)
    assert gradcheck(lambda l, w, d, v: D.LowRankMultivariateNormal(l, w, d).log_prob(v),
                     tensors + [Tensor(value, requires_grad=True)])


def test_low_rank_rsample_is_loc_plus_w_eps_w_plus_sqrt_d_eps_d():
    loc, w, cov_diag = np.array([1.0, 2.0]), np.array([[1.0], [-2.0]]), np.array([0.25, 4.0])
    loc_t, w_t, d_t = (Tensor(x, requires_grad=True) for x in (loc, w, cov_diag))
    z = D.LowRankMultivariateNormal(loc_t, w_t, d_t).rsample((5,), rng=np.random.default_rng(3))
    rng = np.random.default_rng(3)
    eps_w, eps_d = rng.standard_normal((5, 1)), rng.standard_normal((5, 2))  # drawn in this order
    np.testing.assert_allclose(z.data, loc + eps_w @ w.T + np.sqrt(cov_diag) * eps_d, rtol=1e-14)
    z.sum().backward()
    np.testing.assert_allclose(w_t.grad, np.ones((2, 1)) * eps_w.sum(), rtol=1e-13)  # dz_i/dW_ij = eps_W,j
    np.testing.assert_allclose(d_t.grad, eps_d.sum(axis=0) / (2 * np.sqrt(cov_diag)), rtol=1e-13)
    np.testing.assert_array_equal(loc_t.grad, [5.0, 5.0])


# --- KL --------------------------------------------------------------------------------------------------
@given(gaussians(), gaussians(), st.sampled_from(KINDS), st.sampled_from(KINDS))
def test_kl_is_the_closed_form_with_explicit_inverses(p_params, q_params, kind_p, kind_q):
    (mu_p, sigma_p), (mu_q, sigma_q) = p_params, q_params
    n = min(mu_p.shape[-1], mu_q.shape[-1])
    mu_p, mu_q = mu_p[..., :n], mu_q[..., :n]
    sigma_p, sigma_q = sigma_p[..., :n, :n], sigma_q[..., :n, :n]
    try:
        expected = hand_kl(mu_p, sigma_p, mu_q, sigma_q)
    except ValueError:  # batch shapes that do not broadcast: the library must refuse them too
        with pytest.raises(ValueError, match="cannot be broadcast"):
            D.kl_divergence(make(kind_p, mu_p, sigma_p), make(kind_q, mu_q, sigma_q))
        return
    kl = D.kl_divergence(make(kind_p, mu_p, sigma_p), make(kind_q, mu_q, sigma_q)).data
    np.testing.assert_allclose(kl, np.broadcast_to(expected, kl.shape), rtol=1e-9, atol=1e-10)
    assert np.all(kl >= -1e-12)
    self_kl = D.kl_divergence(make(kind_p, mu_p, sigma_p), make(kind_q, mu_p, sigma_p)).data
    np.testing.assert_allclose(self_kl, 0.0, atol=1e-12)  # KL(p, p) = 0


P_LOC, P_W, P_DIAG = np.array([0.5, -1.0, 0.0]), np.array([[1.0, 0.0], [0.5, -0.8], [-0.3, 0.6]]), np.array([0.4, 0.3, 0.9])
Q_LOC, Q_SIGMA = np.array([0.0, 0.5, -0.5]), np.array([[1.5, -0.4, 0.2], [-0.4, 1.0, 0.3], [0.2, 0.3, 0.8]])


@pytest.mark.parametrize("pair", ["mvn-mvn", "lowrank-mvn", "mvn-lowrank", "lowrank-lowrank"])
def test_kl_against_a_monte_carlo_estimate(pair):
    p_sigma = P_W @ P_W.T + np.diag(P_DIAG)
    q_w, q_diag = np.array([[0.6], [-0.2], [0.9]]), np.array([1.0, 0.8, 0.4])
    p = (D.MultivariateNormal(P_LOC, covariance_matrix=p_sigma) if pair.startswith("mvn")
         else D.LowRankMultivariateNormal(P_LOC, P_W, P_DIAG))
    q = (D.MultivariateNormal(Q_LOC, covariance_matrix=Q_SIGMA) if pair.endswith("mvn")
         else D.LowRankMultivariateNormal(Q_LOC, q_w, q_diag))
    kl = D.kl_divergence(p, q).item()
    z = p.sample((40_000,), rng=np.random.default_rng(13))
    log_ratio = (p.log_prob(z) - q.log_prob(z)).data
    standard_error = log_ratio.std() / math.sqrt(log_ratio.size)
    assert standard_error < 0.01 * kl  # sharp enough to notice a wrong term
    assert abs(log_ratio.mean() - kl) < 4 * standard_error
    q_sigma = q.covariance_matrix.data
    assert kl == pytest.approx(hand_kl(P_LOC, p_sigma, Q_LOC, q_sigma), rel=1e-12)


def test_kl_between_different_event_shapes_is_an_error():
    with pytest.raises(ValueError, match=r"kl_divergence\(MultivariateNormal, LowRankMultivariateNormal\): "
                                         r"the event shapes differ \(\(2,\) and \(3,\)\)"):
        D.kl_divergence(D.MultivariateNormal(np.zeros(2), scale_tril=np.eye(2)),
                        D.LowRankMultivariateNormal(np.zeros(3), np.ones((3, 1)), np.ones(3)))


def test_kl_gradient_flows_to_both_sides():
    loc_p, loc_q = Tensor([0.5, -1.0], requires_grad=True), Tensor([0.0, 1.0], requires_grad=True)
    tril_p = Tensor([[1.0, 0.0], [0.3, 0.8]], requires_grad=True)
    kl = D.kl_divergence(D.MultivariateNormal(loc_p, scale_tril=tril_p),
                         D.MultivariateNormal(loc_q, covariance_matrix=np.eye(2) * 2.0))
    kl.backward()
    np.testing.assert_allclose(loc_p.grad, (loc_p.data - loc_q.data) / 2.0)  # Sigma_q^-1 (mu_p - mu_q)
    np.testing.assert_allclose(loc_q.grad, -loc_p.grad)
    # d/dL_p of (tr(Sigma_q^-1 L L^T) / 2 - sum log diag L) = Sigma_q^-1 L - diag(1 / L_ii)
    np.testing.assert_allclose(np.tril(tril_p.grad), np.tril(tril_p.data / 2.0 - np.diag(1 / np.diag(tril_p.data))))


# --- shapes -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("loc_shape, matrix_batch, batch", [
    ((3,), (), ()), ((4, 3), (), (4,)), ((3,), (2,), (2,)), ((5, 1, 3), (2,), (5, 2)), ((1, 3), (4, 1), (4, 1)),
])
@pytest.mark.parametrize("kind", KINDS)
def test_batch_event_and_sample_shapes(loc_shape, matrix_batch, batch, kind):
    d = make(kind, np.zeros(loc_shape), np.broadcast_to(np.eye(3) * 2.0, matrix_batch + (3, 3)))
    assert (d.batch_shape, d.event_shape) == (batch, (3,))
    z = d.rsample((6, 2), rng=np.random.default_rng(0))
    assert z.shape == (6, 2) + batch + (3,)
    assert d.sample(rng=np.random.default_rng(0)).shape == batch + (3,)
    assert d.log_prob(z).shape == (6, 2) + batch
    assert d.log_prob(np.zeros(3)).shape == batch
    assert d.entropy().shape == batch
    assert d.mean.shape == d.variance.shape == d.stddev.shape == d.loc.shape == batch + (3,)
    for name in ("covariance_matrix", "precision_matrix", "scale_tril"):
        assert getattr(d, name).shape == batch + (3, 3), name


def test_low_rank_shapes():
    d = D.LowRankMultivariateNormal(np.zeros((5, 1, 3)), np.ones((2, 3, 2)), np.ones(3))
    assert (d.batch_shape, d.event_shape) == ((5, 2), (3,))
    z = d.rsample((4,), rng=np.random.default_rng(0))
    assert z.shape == (4, 5, 2, 3) and d.log_prob(z).shape == (4, 5, 2) and d.entropy().shape == (5, 2)
    assert d.cov_factor.shape == (5, 2, 3, 2) and d.cov_diag.shape == d.loc.shape == d.variance.shape == (5, 2, 3)
    for name in ("covariance_matrix", "precision_matrix", "scale_tril"):
        assert getattr(d, name).shape == (5, 2, 3, 3), name


# --- sample() cuts the graph; dtypes; validation can be switched off ---------------------------------------
@pytest.mark.parametrize("family", ["mvn", "lowrank"])
def test_sample_is_a_stochastic_node_with_the_values_of_rsample(family):
    loc = Tensor([0.0, 1.0], requires_grad=True)
    d = (D.MultivariateNormal(loc, scale_tril=np.array([[1.0, 0.0], [0.5, 2.0]])) if family == "mvn"
         else D.LowRankMultivariateNormal(loc, np.ones((2, 1)), np.ones(2)))
    z = d.sample((3,), rng=np.random.default_rng(2))
    assert not z.requires_grad and z.cut_nodes and z.cut_nodes[0].op == f"{type(d).__name__}.sample"
    np.testing.assert_array_equal(z.data, d.rsample((3,), rng=np.random.default_rng(2)).data)
    with pytest.raises(RuntimeError, match=r"through a sample\(\) node.*Use rsample\(\)"):
        (z ** 2).sum().backward()


@pytest.mark.parametrize("kind", KINDS)
def test_float32_stays_float32(kind):
    sigma = np.array([[2.0, 0.5], [0.5, 1.0]], dtype=np.float32)
    matrix = {"covariance_matrix": sigma, "precision_matrix": np.linalg.inv(sigma),
              "scale_tril": np.linalg.cholesky(sigma)}[kind].astype(np.float32)
    loc = Tensor(np.zeros(2, dtype=np.float32), requires_grad=True)
    d = D.MultivariateNormal(loc, **{kind: matrix})
    z = d.rsample((4,), rng=np.random.default_rng(0))
    log_prob = d.log_prob(z)
    assert z.dtype == log_prob.dtype == d.entropy().dtype == np.float32
    log_prob.sum().backward()
    assert loc.grad.dtype == np.float32
    np.testing.assert_allclose(log_prob.data, hand_log_prob(z.data.astype(np.float64), 0.0, sigma.astype(np.float64)),
                               rtol=1e-5)
    low_rank = D.LowRankMultivariateNormal(loc, np.ones((2, 1), np.float32), np.ones(2, np.float32))
    assert low_rank.rsample(rng=np.random.default_rng(0)).dtype == low_rank.entropy().dtype == np.float32


def test_validate_args_false_skips_the_value_checks_but_not_the_factorization():
    not_triangular = np.array([[1.0, 5.0], [0.0, 1.0]])
    d = D.MultivariateNormal(np.zeros(2), scale_tril=not_triangular, validate_args=False)
    assert d.log_prob(np.zeros(2)).item() == pytest.approx(-LOG_2PI)  # only the triangle is read
    with pytest.raises(ValueError, match=r"cholesky: a must be symmetric positive definite.*eigenvalue is -1"):
        D.MultivariateNormal(np.zeros(2), covariance_matrix=[[1.0, 2.0], [2.0, 1.0]], validate_args=False)


def test_precision_becomes_a_scale_without_an_inverse():
    """The factor from the flipped precision is the Cholesky factor of Sigma = P^-1, to rounding,
    even for a badly scaled P (entries from 1e-4 to 1e4)."""
    p = np.array([[1e4, 1.0, 0.0], [1.0, 1.0, 1e-3], [0.0, 1e-3, 1e-4]])
    d = D.MultivariateNormal(np.zeros(3), precision_matrix=p)
    np.testing.assert_allclose(d.scale_tril.data, np.linalg.cholesky(np.linalg.inv(p)), rtol=1e-10)
    np.testing.assert_array_equal(d.precision_matrix.data, p)  # the given one, as it is
