"""TanhNormal: a = tanh(u), u ~ N(loc, scale), the squashed Gaussian of SAC policies.

Every check compares the library with something written out here: the change-of-variables
density by hand, its integral over (-1, 1) by the trapezoid rule, the sampler by a
Kolmogorov-Smirnov statistic against Phi((atanh(a) - loc) / scale) (with a test that a wrong
scale fails it), the pathwise derivatives da/dloc = 1 - a^2 and da/dscale = (1 - a^2) eps, and the
gradients by gradcheck. All randomness uses fixed seeds.
"""
import math
import warnings

import numpy as np
import pytest

from tinygrad_reparam import Tensor, gradcheck
from tinygrad_reparam.distributions.tanh_normal import TanhNormal, log_tanh_derivative

N_LAW = 20_000
KS_BOUND = 1.63 / math.sqrt(N_LAW)  # 1% critical value of the one-sample KS statistic
LOC, SCALE = 0.4, 0.8


# --- the law, written out by hand ------------------------------------------------------------------
def hand_log_density(a, loc, scale):
    """log N(atanh a; loc, scale) - log(1 - a^2), straight from the change-of-variables formula."""
    a, loc, scale = (np.asarray(v, dtype=float) for v in (a, loc, scale))
    u = np.arctanh(a)
    return (-0.5 * ((u - loc) / scale) ** 2 - np.log(scale) - 0.5 * np.log(2 * np.pi)
            - np.log(1 - a * a))


def hand_cdf(a, loc, scale):
    """P(A <= a) = Phi((atanh(a) - loc) / scale) for -1 < a < 1."""
    z = (np.arctanh(np.asarray(a, dtype=float)) - loc) / scale
    return 0.5 * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))


def ks_statistic(samples, cdf) -> float:
    """sup_x |F_n(x) - F(x)|, evaluated at the jumps of the empirical CDF F_n."""
    x = np.sort(np.asarray(samples).reshape(-1))
    n = x.size
    f = cdf(x)
    i = np.arange(1, n + 1)
    return float(max(np.max(i / n - f), np.max(f - (i - 1) / n)))


def trapezoid(y, x):
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2)


# --- the density ------------------------------------------------------------------------------------
@pytest.mark.parametrize("loc, scale", [(LOC, SCALE), (-1.0, 0.3), (0.0, 1.2)])
def test_log_prob_integrates_to_one_on_the_open_interval(loc, scale):
    a = np.linspace(-1.0, 1.0, 400_001)[1:-1]       # the open interval (-1, 1)
    density = np.exp(TanhNormal(loc, scale).log_prob(a).data)
    assert trapezoid(density, a) == pytest.approx(1.0, abs=1e-6)


def test_log_prob_matches_the_change_of_variables_formula():
    loc, scale = np.array([0.0, -1.5, 0.7]), np.array([1.0, 0.4, 2.0])
    a = np.linspace(-0.995, 0.995, 41)[:, None]
    log_prob = TanhNormal(loc, scale).log_prob(a).data
    assert log_prob.shape == (41, 3)
    np.testing.assert_allclose(log_prob, hand_log_density(a, loc, scale), rtol=1e-10, atol=1e-12)


def test_the_correction_is_stable_where_the_direct_form_is_not():
    u = np.array([-3.0, -0.5, 0.0, 0.2, 4.0])
    np.testing.assert_allclose(log_tanh_derivative(Tensor(u)).data, np.log(1 - np.tanh(u) ** 2),
                               rtol=1e-12, atol=1e-14)
    # for |u| > ~19, tanh(u) rounds to +-1 and log(1 - tanh(u)^2) to -inf; the stable form is
    # 2 (log 2 - |u| - log1p(e^-2|u|)) ~ 2 log 2 - 2|u|
    far = np.array([-50.0, 30.0, 400.0])
    np.testing.assert_allclose(log_tanh_derivative(Tensor(far)).data, 2 * np.log(2) - 2 * np.abs(far),
                               rtol=1e-14)


def test_cdf_is_phi_of_atanh_and_the_integral_of_the_density():
    d = TanhNormal(LOC, SCALE)
    a = np.linspace(-0.99, 0.99, 25)
    np.testing.assert_allclose(d.cdf(a), hand_cdf(a, LOC, SCALE), rtol=1e-12)
    grid = np.linspace(-1.0, 1.0, 200_001)
    density = np.exp(d.log_prob(grid).data)     # 0 at the two ends, which log_prob puts at -inf
    cumulative = np.concatenate([[0.0], np.cumsum((density[1:] + density[:-1]) * np.diff(grid) / 2)])
    checkpoints = np.linspace(0, grid.size - 1, 23).astype(int)[1:-1]
    np.testing.assert_allclose(d.cdf(grid[checkpoints]), cumulative[checkpoints], atol=1e-6)
    np.testing.assert_array_equal(d.cdf([-3.0, -1.0, 1.0, 2.0]), [0.0, 0.0, 1.0, 1.0])


def test_log_prob_outside_the_open_interval_is_minus_inf_without_warnings():
    loc = Tensor(0.3, requires_grad=True)
    scale = Tensor(0.8, requires_grad=True)
    a = Tensor([-1.0, 1.0, 1.5, 0.25], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lp = TanhNormal(loc, scale).log_prob(a)
        lp.backward(np.ones(4))
    assert np.isneginf(lp.data[:3]).all()
    assert lp.data[3] == pytest.approx(hand_log_density(0.25, 0.3, 0.8), rel=1e-12)
    np.testing.assert_array_equal(a.grad[:3], [0.0, 0.0, 0.0])   # nothing flows from outside
    assert loc.grad == pytest.approx((math.atanh(0.25) - 0.3) / 0.8 ** 2, rel=1e-12)


# --- rsample_with_log_prob: the log-density from the pre-tanh u --------------------------------------
def test_rsample_with_log_prob_equals_log_prob_of_the_action_away_from_the_edges():
    d = TanhNormal(np.array([0.0, 1.0, -0.5]), np.array([0.5, 1.0, 1.5]))
    a, log_prob = d.rsample_with_log_prob((2000,), rng=np.random.default_rng(0))
    assert a.shape == log_prob.shape == (2000, 3)
    away = np.abs(a.data) < 0.999
    assert away.mean() > 0.9
    np.testing.assert_allclose(log_prob.data[away], d.log_prob(a.data).data[away], rtol=1e-8, atol=1e-8)
    # the same draws as rsample with the same seed
    np.testing.assert_array_equal(a.data, d.rsample((2000,), rng=np.random.default_rng(0)).data)


def test_rsample_with_log_prob_stays_finite_where_tanh_rounds_to_one():
    loc, scale = 25.0, 1.0    # tanh(u) is exactly 1.0 in float64 for u > ~19
    d = TanhNormal(loc, scale)
    a, log_prob = d.rsample_with_log_prob((100,), rng=np.random.default_rng(1))
    assert np.all(a.data == 1.0)
    assert np.all(np.isneginf(d.log_prob(a.data).data))      # inverting tanh is hopeless here...
    u = loc + scale * np.random.default_rng(1).standard_normal(100)
    expected = (-0.5 * ((u - loc) / scale) ** 2 - math.log(scale) - 0.5 * math.log(2 * math.pi)
                - 2 * (math.log(2) - u - np.log1p(np.exp(-2 * u))))
    np.testing.assert_allclose(log_prob.data, expected, rtol=1e-12)   # ...but u knows the answer


# --- the pathwise derivatives --------------------------------------------------------------------------
def test_da_dloc_is_one_minus_a_squared_and_da_dscale_is_that_times_eps():
    loc = Tensor(np.array([0.2, -0.7]), requires_grad=True)
    scale = Tensor(np.array([0.5, 1.3]), requires_grad=True)
    a = TanhNormal(loc, scale).rsample((6,), rng=np.random.default_rng(2))
    a.sum().backward()
    eps = np.random.default_rng(2).standard_normal((6, 2))
    one_minus_a2 = 1 - a.data ** 2
    np.testing.assert_allclose(loc.grad, one_minus_a2.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(scale.grad, (one_minus_a2 * eps).sum(axis=0), rtol=1e-12)


def test_sample_cuts_the_graph_and_matches_rsample():
    loc = Tensor(np.array([0.1, 0.2]), requires_grad=True)
    scale = Tensor(np.array([1.0, 0.5]), requires_grad=True)
    d = TanhNormal(loc, scale)
    s = d.sample((4,), rng=np.random.default_rng(3))
    assert not s.requires_grad and s.op == "TanhNormal.sample"
    np.testing.assert_array_equal(s.data, d.rsample((4,), rng=np.random.default_rng(3)).data)
    with pytest.raises(RuntimeError, match="rsample") as error:
        (s * s).sum().backward()
    assert "TanhNormal.sample" in str(error.value)
    assert loc.grad is None and scale.grad is None
    d.log_prob(s).sum().backward()      # the score function path: through log_prob only
    assert np.all(np.isfinite(loc.grad)) and np.all(np.isfinite(scale.grad))


# --- gradcheck -------------------------------------------------------------------------------------------
def parameters():
    return (Tensor([0.3, -1.0, 0.0], requires_grad=True), Tensor([1.2, 0.5, 2.0], requires_grad=True))


def test_gradcheck_log_prob():
    loc, scale = parameters()
    a = Tensor([[0.1, -0.4, 0.95], [0.7, -0.93, -0.6]], requires_grad=True)
    assert gradcheck(lambda m, s, x: TanhNormal(m, s).log_prob(x), [loc, scale, a])


def test_gradcheck_rsample_and_rsample_with_log_prob_with_fixed_noise():
    loc, scale = parameters()
    def action(m, s):
        return TanhNormal(m, s).rsample((2,), rng=np.random.default_rng(0))

    def log_prob_from_u(m, s):
        return TanhNormal(m, s).rsample_with_log_prob((2,), rng=np.random.default_rng(0))[1]

    assert gradcheck(action, [loc, scale])
    assert gradcheck(log_prob_from_u, [loc, scale])


# --- samples follow the law ---------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["rsample", "sample"])
def test_samples_pass_kolmogorov_smirnov(method):
    d = TanhNormal(LOC, SCALE)
    a = getattr(d, method)((N_LAW,), rng=np.random.default_rng(12 if method == "rsample" else 14)).data
    assert np.all(np.abs(a) < 1)
    assert ks_statistic(a, lambda x: hand_cdf(x, LOC, SCALE)) < KS_BOUND


def test_kolmogorov_smirnov_rejects_a_wrong_scale():
    """The KS test above can fail: samples with a 10% larger scale are rejected."""
    a = TanhNormal(LOC, 1.1 * SCALE).rsample((N_LAW,), rng=np.random.default_rng(12)).data
    assert ks_statistic(a, lambda x: hand_cdf(x, LOC, SCALE)) > KS_BOUND


# --- shapes and validation -------------------------------------------------------------------------------
def test_shapes_are_sample_shape_plus_batch_shape():
    d = TanhNormal(np.linspace(-1, 1, 3).reshape(3, 1), np.array([0.5, 1.0, 2.0, 3.0]))
    assert d.batch_shape == (3, 4) and d.event_shape == ()
    rng = np.random.default_rng(0)
    assert d.rsample((2,), rng=rng).shape == (2, 3, 4)
    assert d.sample(rng=rng).shape == (3, 4)
    a, log_prob = d.rsample_with_log_prob((5, 2), rng=rng)
    assert a.shape == log_prob.shape == (5, 2, 3, 4)
    assert d.log_prob(a).shape == (5, 2, 3, 4)


@pytest.mark.parametrize("bad", [0.0, -1.5, np.nan, np.inf])
def test_bad_scale_raises_naming_the_family(bad):
    with pytest.raises(ValueError) as error:
        TanhNormal([0.0, 1.0], [1.0, bad])
    message = str(error.value)
    assert message.startswith("TanhNormal: parameter scale")
    assert "Normal:" not in message.replace("TanhNormal:", "")
    assert "> 0" in message and np.array2string(np.array([bad])) in message.replace(",", "")


def test_non_finite_loc_raises():
    with pytest.raises(ValueError, match=r"TanhNormal: parameter loc must be finite.*nan"):
        TanhNormal(np.nan, 1.0)


def test_incompatible_parameter_shapes_raise_naming_the_family():
    with pytest.raises(ValueError, match=r"^TanhNormal: parameter shapes cannot be broadcast"):
        TanhNormal(np.zeros(3), np.ones(2))


@pytest.mark.parametrize("what, recipe", [
    ("entropy", "dist.rsample_with_log_prob((n,))"),  # the pathwise form, never inverting tanh
    ("mean", "dist.rsample((n,)).mean(axis=0)"),
    ("variance", "dist.rsample((n,))"),
])
def test_moments_without_closed_form_say_how_to_estimate_them(what, recipe):
    d = TanhNormal(LOC, SCALE)
    with pytest.raises(NotImplementedError, match=rf"^TanhNormal: the .* {what} has no closed form; "
                                                  rf"estimate it by Monte Carlo") as error:
        d.entropy() if what == "entropy" else getattr(d, what)
    assert recipe in str(error.value)


# --- a transformed Normal: the quantile, and where the pieces come from --------------------------------
def test_icdf_is_tanh_of_the_normal_quantile_and_inverts_cdf():
    from statistics import NormalDist  # an independent Normal quantile (the standard library's)
    d = TanhNormal(LOC, SCALE)
    p = np.linspace(0.01, 0.99, 25)
    expected = np.tanh([NormalDist(LOC, SCALE).inv_cdf(q) for q in p])
    np.testing.assert_allclose(d.icdf(p).data, expected, rtol=1e-14)
    np.testing.assert_allclose(d.cdf(d.icdf(p)).data, p, rtol=1e-13)
    np.testing.assert_array_equal(d.icdf([0.0, 1.0]).data, [-1.0, 1.0])


def test_cdf_is_differentiable_and_its_slope_is_the_density():
    loc, scale = parameters()
    a = Tensor([[0.1, -0.4, 0.95], [0.7, -0.93, -0.6]], requires_grad=True)
    assert gradcheck(lambda m, s, x: TanhNormal(m, s).cdf(x), [loc, scale, a])
    value = Tensor(0.3, requires_grad=True)
    TanhNormal(LOC, SCALE).cdf(value).backward()
    assert value.grad == pytest.approx(math.exp(hand_log_density(0.3, LOC, SCALE)), rel=1e-12)


def test_it_is_the_transformed_distribution_of_its_normal_through_tanh():
    from tinygrad_reparam.distributions import Normal, TransformedDistribution
    from tinygrad_reparam.distributions.transforms import TanhTransform
    loc, scale = parameters()
    d = TanhNormal(loc, scale)
    assert isinstance(d, TransformedDistribution) and isinstance(d.base_dist, Normal)
    assert d.base_dist.loc is loc and d.base_dist.scale is scale and d.parameters() == (loc, scale)
    assert len(d.transforms) == 1 and isinstance(d.transforms[0], TanhTransform)
