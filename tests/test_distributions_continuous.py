"""Continuous families: Normal, Laplace, Logistic, Gumbel, LogNormal, Uniform.

Every check compares the library with something written out independently here: the densities,
moments and entropies by hand, the CDF by numerical integration of the density, the samplers by
a Kolmogorov-Smirnov statistic against that CDF (with a test that a wrong scale fails it), the
KL closed forms by quadrature and by Monte Carlo, and the pathwise gradients dz/dloc = 1 and
dz/dscale = eps by hypothesis. All randomness uses fixed seeds.
"""
import contextlib
import inspect
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_reparam import Tensor, gradcheck
from tinygrad_reparam.distributions.gumbel import Gumbel
from tinygrad_reparam.distributions.kl import kl_divergence
from tinygrad_reparam.distributions.laplace import Laplace
from tinygrad_reparam.distributions.logistic import Logistic
from tinygrad_reparam.distributions.lognormal import LogNormal
from tinygrad_reparam.distributions.normal import Normal
from tinygrad_reparam.distributions.tanh_normal import TanhNormal
from tinygrad_reparam.distributions.uniform import Uniform
from tinygrad_reparam.testing import broadcastable_shapes, float_arrays, positive_scales

EULER_GAMMA = 0.57721566490153286  # written out here, not imported from the library
N_LAW = 20_000
KS_BOUND = 1.63 / math.sqrt(N_LAW)  # 1% critical value of the one-sample KS statistic
LOCATION_SCALE = [Normal, Laplace, Logistic, Gumbel]
ALL_FAMILIES = [Normal, Laplace, Logistic, Gumbel, LogNormal, Uniform]


# --- the laws, written out by hand ---------------------------------------------------------------
def hand_log_density(family, x, a, b):
    """log q(x) for parameters (a, b) = (loc, scale), or (low, high) for Uniform."""
    x, a, b = (np.asarray(v, dtype=float) for v in (x, a, b))
    if family is Uniform:
        with np.errstate(divide="ignore"):
            return np.log(np.where((x >= a) & (x < b), 1.0 / (b - a), 0.0))
    if family is LogNormal:
        with np.errstate(divide="ignore", invalid="ignore"):
            density = np.exp(-(np.log(x) - a) ** 2 / (2 * b * b)) / (x * b * np.sqrt(2 * np.pi))
            return np.log(np.where(x > 0, density, 0.0))
    e = (x - a) / b
    if family is Normal:
        density = np.exp(-e * e / 2) / np.sqrt(2 * np.pi)
    elif family is Laplace:
        density = np.exp(-np.abs(e)) / 2
    elif family is Logistic:
        density = np.exp(-e) / (1 + np.exp(-e)) ** 2
    elif family is Gumbel:  # log form: exp(-e^-e) underflows to 0 long before its log is -inf
        return -(e + np.exp(-e)) - np.log(b)
    return np.log(density / b)


def hand_moments(family, a, b):
    """(mean, variance, entropy) from the textbook formulas."""
    if family is Normal:
        return a, b ** 2, 0.5 * np.log(2 * np.pi * np.e * b ** 2)
    if family is Laplace:
        return a, 2 * b ** 2, 1 + np.log(2 * b)
    if family is Logistic:
        return a, np.pi ** 2 * b ** 2 / 3, np.log(b) + 2
    if family is Gumbel:
        return a + EULER_GAMMA * b, np.pi ** 2 * b ** 2 / 6, np.log(b) + EULER_GAMMA + 1
    if family is LogNormal:
        return (np.exp(a + b ** 2 / 2), (np.exp(b ** 2) - 1) * np.exp(2 * a + b ** 2),
                a + 0.5 + np.log(b) + 0.5 * np.log(2 * np.pi))
    if family is Uniform:
        return (a + b) / 2, (b - a) ** 2 / 12, np.log(b - a)


# One parameter setting per family for the tests that draw many samples, and a wrong one
# (scale, or the width of a Uniform, 10% too large) that the same tests must reject.
PARAMS = {
    Normal: (0.5, 2.0), Laplace: (-1.0, 1.5), Logistic: (2.0, 0.7), Gumbel: (0.3, 1.2),
    LogNormal: (0.2, 0.6), Uniform: (-1.0, 2.5),
}


def wrong_params(family):
    a, b = PARAMS[family]
    return (a, a + 1.1 * (b - a)) if family is Uniform else (a, 1.1 * b)


def integration_grid(family, a, b, points=200_001):
    """A grid that covers all but a negligible part of the mass."""
    if family is Uniform:
        return np.linspace(a - 1.0, b + 1.0, points)
    if family is LogNormal:
        return np.concatenate([[0.0], np.exp(np.linspace(a - 14 * b, a + 14 * b, points))])
    return np.linspace(a - 50 * b, a + 50 * b, points)


def trapezoid(y, x, axis=0):
    y = np.moveaxis(y, axis, 0)
    dx = np.diff(x).reshape((-1,) + (1,) * (y.ndim - 1))
    return np.sum((y[1:] + y[:-1]) * dx, axis=0) / 2


def cumulative_trapezoid(y, x):
    return np.concatenate([[0.0], np.cumsum((y[1:] + y[:-1]) * np.diff(x) / 2)])


def ks_statistic(samples, cdf) -> float:
    """sup_x |F_n(x) - F(x)|, evaluated at the jumps of the empirical CDF F_n."""
    x = np.sort(np.asarray(samples).reshape(-1))
    n = x.size
    f = np.asarray(cdf(x))  # (a Tensor's values, when cdf returns one)
    i = np.arange(1, n + 1)
    return float(max(np.max(i / n - f), np.max(f - (i - 1) / n)))


def sum_to_shape(x, shape):
    """Sum a broadcast gradient back to ``shape`` (written here independently of the engine)."""
    x = np.asarray(x)
    while x.ndim > len(shape):
        x = x.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and x.shape[axis] != 1:
            x = x.sum(axis=axis, keepdims=True)
    return x


@contextlib.contextmanager
def no_warnings():
    """Every warning becomes an error inside this block."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# --- pathwise gradients (hypothesis) -------------------------------------------------------------
broadcast_pairs = broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3)  # (shape, shape)


@settings(max_examples=30)
@given(family=st.sampled_from(LOCATION_SCALE), shapes=broadcast_pairs, n=st.integers(1, 4),
       seed=st.integers(0, 2**32 - 1), data=st.data())
def test_location_scale_dz_dloc_is_one_and_dz_dscale_is_eps(family, shapes, n, seed, data):
    loc_shape, scale_shape = shapes
    loc = Tensor(data.draw(float_arrays(loc_shape, low=-5.0, high=5.0)), requires_grad=True)
    scale = Tensor(data.draw(positive_scales(scale_shape, low=0.1, high=5.0)), requires_grad=True)
    z = family(loc, scale).rsample((n,), rng=np.random.default_rng(seed))
    assert z.shape == (n,) + np.broadcast_shapes(loc_shape, scale_shape)
    eps = (z.data - loc.data) / scale.data  # the standardized noise that produced z

    # d sum(z) / d loc counts the copies of each loc; d sum(z) / d scale sums eps over them
    z.backward(np.ones(z.shape), retain_graph=True)
    np.testing.assert_allclose(loc.grad, sum_to_shape(np.ones(z.shape), loc_shape), rtol=1e-12)
    np.testing.assert_allclose(scale.grad, sum_to_shape(eps, scale_shape), rtol=1e-9, atol=1e-9)
    assert scale.grad.shape == scale_shape and loc.grad.shape == loc_shape

    # elementwise, with a random weighting of the outputs: dz/dloc = 1, dz/dscale = eps
    w = np.random.default_rng(seed + 1).standard_normal(z.shape)
    loc.grad = scale.grad = None
    z.backward(w)
    np.testing.assert_allclose(loc.grad, sum_to_shape(w, loc_shape), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(scale.grad, sum_to_shape(w * eps, scale_shape), rtol=1e-9, atol=1e-9)


@settings(max_examples=20)
@given(shapes=broadcast_pairs, n=st.integers(1, 4), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_lognormal_dz_dloc_is_z_and_dz_dscale_is_z_eps(shapes, n, seed, data):
    loc_shape, scale_shape = shapes
    loc = Tensor(data.draw(float_arrays(loc_shape, low=-2.0, high=2.0)), requires_grad=True)
    scale = Tensor(data.draw(positive_scales(scale_shape, low=0.1, high=1.0)), requires_grad=True)
    z = LogNormal(loc, scale).rsample((n,), rng=np.random.default_rng(seed))
    eps = (np.log(z.data) - loc.data) / scale.data
    w = np.random.default_rng(seed + 1).standard_normal(z.shape)
    z.backward(w)
    np.testing.assert_allclose(loc.grad, sum_to_shape(w * z.data, loc_shape), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(scale.grad, sum_to_shape(w * z.data * eps, scale_shape),
                               rtol=1e-9, atol=1e-9)


@settings(max_examples=20)
@given(shapes=broadcast_pairs, n=st.integers(1, 4), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_uniform_dz_dlow_is_one_minus_u_and_dz_dhigh_is_u(shapes, n, seed, data):
    low_shape, width_shape = shapes
    low_data = data.draw(float_arrays(low_shape, low=-5.0, high=5.0))
    high_data = low_data + data.draw(positive_scales(width_shape, low=0.1, high=5.0))  # broadcast shape
    low = Tensor(low_data, requires_grad=True)
    high = Tensor(high_data, requires_grad=True)
    z = Uniform(low, high).rsample((n,), rng=np.random.default_rng(seed))
    u = (z.data - low.data) / (high.data - low.data)
    assert np.all((u > 0) & (u < 1))
    w = np.random.default_rng(seed + 1).standard_normal(z.shape)
    z.backward(w)
    np.testing.assert_allclose(low.grad, sum_to_shape(w * (1 - u), low.shape), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(high.grad, sum_to_shape(w * u, high.shape), rtol=1e-9, atol=1e-9)


# --- sample() cuts the graph -----------------------------------------------------------------------
@pytest.mark.parametrize("family", ALL_FAMILIES, ids=lambda f: f.__name__)
def test_sample_has_no_gradient_path(family):
    a, b = PARAMS[family]
    p1 = Tensor(np.array([a, a]), requires_grad=True)
    p2 = Tensor(np.array([b, b]), requires_grad=True)
    s = family(p1, p2).sample((4,), rng=np.random.default_rng(0))
    assert not s.requires_grad and s.op == f"{family.__name__}.sample"
    loss = (s * s).sum()
    with pytest.raises(RuntimeError, match="rsample") as error:
        loss.backward()
    assert f"{family.__name__}.sample" in str(error.value)
    assert p1.grad is None and p2.grad is None


@pytest.mark.parametrize("family", ALL_FAMILIES, ids=lambda f: f.__name__)
def test_sample_and_rsample_agree_for_the_same_seed(family):
    d = family(*PARAMS[family])
    np.testing.assert_array_equal(d.sample((5,), rng=np.random.default_rng(3)).data,
                                  d.rsample((5,), rng=np.random.default_rng(3)).data)


# --- the samplers draw from the right law ----------------------------------------------------------
@pytest.mark.parametrize("method", ["rsample", "sample"])
@pytest.mark.parametrize("family", ALL_FAMILIES, ids=lambda f: f.__name__)
def test_samples_have_the_right_mean_and_variance(family, method):
    d = family(*PARAMS[family])
    x = getattr(d, method)((N_LAW,), rng=np.random.default_rng(11 if method == "rsample" else 13)).data
    mean, variance = d.mean.item(), d.variance.item()
    assert abs(x.mean() - mean) < 4 * math.sqrt(variance / N_LAW)
    centred_squares = (x - x.mean()) ** 2
    assert abs(centred_squares.mean() - variance) < 4 * centred_squares.std() / math.sqrt(N_LAW)


@pytest.mark.parametrize("method", ["rsample", "sample"])
@pytest.mark.parametrize("family", ALL_FAMILIES, ids=lambda f: f.__name__)
def test_samples_pass_kolmogorov_smirnov(family, method):
    d = family(*PARAMS[family])
    x = getattr(d, method)((N_LAW,), rng=np.random.default_rng(12 if method == "rsample" else 14)).data
    assert ks_statistic(x, d.cdf) < KS_BOUND


@pytest.mark.parametrize("family", ALL_FAMILIES, ids=lambda f: f.__name__)
def test_kolmogorov_smirnov_rejects_a_wrong_scale(family):
    """The KS test above can fail: samples with a 10% larger scale are rejected."""
    x = family(*wrong_params(family)).rsample((N_LAW,), rng=np.random.default_rng(12)).data
    assert ks_statistic(x, family(*PARAMS[family]).cdf) > KS_BOUND


# --- densities, CDFs, moments, entropy -------------------------------------------------------------
BATCH_PARAMS = {
    Normal: ([0.0, -1.5], [1.0, 0.4]), Laplace: ([0.0, 2.0], [1.0, 0.3]),
    Logistic: ([0.0, -1.0], [1.0, 2.5]), Gumbel: ([0.0, 1.0], [1.0, 0.5]),
    LogNormal: ([0.0, 0.7], [1.0, 0.3]), Uniform: ([0.0, -2.0], [1.0, 3.0]),
}


@pytest.mark.parametrize("family", ALL_FAMILIES, ids=lambda f: f.__name__)
def test_log_prob_matches_the_density_written_by_hand(family):
    a, b = (np.array(v) for v in BATCH_PARAMS[family])
    d = family(a, b)
    if family is LogNormal:
        x = np.linspace(0.05, 6.0, 40)[:, None]
    elif family is Uniform:
        x = np.linspace(-3.0, 2.0, 40)[:, None] * np.array([1.0, 1.0])  # straddles both supports
    else:
        x = np.linspace(-4.0, 4.0, 40)[:, None]
    lp = d.log_prob(x).data
    assert lp.shape == (40, 2)
    expected = hand_log_density(family, x, a, b)
    np.testing.assert_array_equal(np.isneginf(lp), np.isneginf(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(lp[finite], expected[finite], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("family", ALL_FAMILIES, ids=lambda f: f.__name__)
def test_density_integrates_to_one_and_cdf_is_its_integral(family):
    a, b = PARAMS[family]
    d = family(a, b)
    if family is Uniform:  # analytic: a constant density 1/(b - a) on an interval of length b - a
        assert math.exp(d.log_prob(0.3 * a + 0.7 * b).item()) * (b - a) == pytest.approx(1.0, rel=1e-12)
    x = integration_grid(family, a, b)
    with no_warnings():
        density = np.exp(d.log_prob(x).data)
    # the trapezoid rule is O(h^2) for smooth densities, but O(h) at the Uniform's jumps
    tolerance = 1e-4 if family is Uniform else 2e-6
    assert trapezoid(density, x) == pytest.approx(1.0, abs=tolerance)
    cumulative = cumulative_trapezoid(density, x)
    checkpoints = np.linspace(0, x.size - 1, 23).astype(int)[1:-1]
    np.testing.assert_allclose(d.cdf(x[checkpoints]), cumulative[checkpoints], atol=tolerance)


@pytest.mark.parametrize("family", ALL_FAMILIES, ids=lambda f: f.__name__)
def test_mean_variance_entropy_match_the_textbook(family):
    a, b = (np.array(v) for v in BATCH_PARAMS[family])
    d = family(a, b)
    mean, variance, entropy = hand_moments(family, a, b)
    np.testing.assert_allclose(d.mean.data, mean, rtol=1e-12)
    np.testing.assert_allclose(d.variance.data, variance, rtol=1e-12)
    np.testing.assert_allclose(d.stddev.data, np.sqrt(variance), rtol=1e-12)
    np.testing.assert_allclose(d.entropy().data, entropy, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("family", ALL_FAMILIES, ids=lambda f: f.__name__)
def test_entropy_matches_monte_carlo(family):
    d = family(*PARAMS[family])
    lp = d.log_prob(d.sample((N_LAW,), rng=np.random.default_rng(5))).data
    standard_error = lp.std() / math.sqrt(N_LAW)
    assert abs(-lp.mean() - d.entropy().item()) <= 4 * standard_error + 1e-12


# --- KL divergences -------------------------------------------------------------------------------
KL_PAIRS = {  # p and q with batch shape (3,); the middle element has p == q
    LogNormal: (LogNormal([0.2, 0.0, -0.5], [0.6, 1.0, 0.8]), LogNormal([0.0, 0.0, 0.3], [0.9, 1.0, 0.5])),
    Laplace: (Laplace([0.0, 1.0, -2.0], [1.0, 0.5, 2.0]), Laplace([0.5, 1.0, 1.0], [2.0, 0.5, 1.0])),
    Uniform: (Uniform([0.0, -1.0, 0.2], [1.0, 1.0, 0.7]), Uniform([-0.5, -1.0, 0.0], [1.5, 1.0, 1.0])),
}


@pytest.mark.parametrize("family", list(KL_PAIRS), ids=lambda f: f.__name__)
def test_kl_matches_quadrature(family):
    p, q = KL_PAIRS[family]
    kl = kl_divergence(p, q).data
    assert kl.shape == (3,)
    assert kl[1] == pytest.approx(0.0, abs=1e-14)
    for k in range(3):
        pk = family(p.parameters()[0].data[k], p.parameters()[1].data[k])
        qk = family(q.parameters()[0].data[k], q.parameters()[1].data[k])
        if family is Uniform:
            x = np.linspace(pk.low.item(), pk.high.item(), 1001)[:-1]  # the support of p
        elif family is LogNormal:
            x = np.exp(np.linspace(pk.loc.item() - 14 * pk.scale.item(),
                                   pk.loc.item() + 14 * pk.scale.item(), 200_001))
        else:
            x = np.linspace(-60.0, 60.0, 400_001)
        log_p, log_q = pk.log_prob(x).data, qk.log_prob(x).data
        integral = trapezoid(np.exp(log_p) * (log_p - log_q), x)
        if family is Uniform:  # constant integrand on the support: the mean is exact
            integral = np.mean(log_p - log_q)
        assert kl[k] == pytest.approx(integral, abs=1e-6)


@pytest.mark.parametrize("family", list(KL_PAIRS), ids=lambda f: f.__name__)
def test_kl_matches_monte_carlo(family):
    p, q = KL_PAIRS[family]
    z = p.rsample((N_LAW,), rng=np.random.default_rng(21))
    difference = p.log_prob(z).data - q.log_prob(z).data
    standard_error = difference.std(axis=0) / math.sqrt(N_LAW)
    np.testing.assert_array_less(np.abs(difference.mean(axis=0) - kl_divergence(p, q).data),
                                 4 * standard_error + 1e-12)


def test_lognormal_kl_is_the_normal_kl_of_the_logs():
    p, q = KL_PAIRS[LogNormal]
    np.testing.assert_allclose(kl_divergence(p, q).data,
                               kl_divergence(p.base_dist, q.base_dist).data, rtol=1e-14)
    np.testing.assert_allclose(
        kl_divergence(p, q).data,
        kl_divergence(Normal(p.loc.data, p.scale.data), Normal(q.loc.data, q.scale.data)).data, rtol=1e-14)


def test_uniform_kl_is_infinite_when_p_leaves_the_support_of_q():
    p = Uniform([0.0, -1.0, 0.0], [1.0, 1.0, 2.0])
    q = Uniform([0.2, -1.0, 0.0], [1.0, 0.9, 1.0])
    np.testing.assert_array_equal(kl_divergence(p, q).data, [np.inf, np.inf, np.inf])
    # and it is finite in the other direction, where the support of p (= old q) is inside
    assert np.all(np.isfinite(kl_divergence(q, p).data))
    with no_warnings():
        z = p.rsample((100,), rng=np.random.default_rng(0))
        difference = p.log_prob(z).data - q.log_prob(z).data
    assert np.all(np.isposinf(difference).any(axis=0))  # Monte Carlo sees the infinity too


@pytest.mark.parametrize("family_p, family_q", [(Normal, Laplace), (Laplace, Normal),
                                                (Gumbel, Logistic), (LogNormal, Uniform)],
                         ids=lambda f: f.__name__)
def test_unregistered_kl_pair_raises(family_p, family_q):
    with pytest.raises(NotImplementedError) as error:
        kl_divergence(family_p(*PARAMS[family_p]), family_q(*PARAMS[family_q]))
    assert family_p.__name__ in str(error.value) and family_q.__name__ in str(error.value)


# --- validation and the edges of the support -------------------------------------------------------
@pytest.mark.parametrize("bad", [0.0, -1.5, np.nan, np.inf])
@pytest.mark.parametrize("family", LOCATION_SCALE + [LogNormal], ids=lambda f: f.__name__)
def test_bad_scale_raises_naming_the_family(family, bad):
    with pytest.raises(ValueError) as error:
        family([0.0, 1.0], [1.0, bad])
    message = str(error.value)
    assert message.startswith(f"{family.__name__}:")
    assert "LocationScale" not in message
    assert "scale" in message and "> 0" in message
    assert np.array2string(np.array([bad])) in message.replace(",", "")


@pytest.mark.parametrize("family", LOCATION_SCALE + [LogNormal], ids=lambda f: f.__name__)
def test_non_finite_loc_raises(family):
    with pytest.raises(ValueError, match=rf"{family.__name__}: parameter loc must be finite.*nan"):
        family(np.nan, 1.0)


@pytest.mark.parametrize("low, high", [(2.0, 1.0), (1.0, 1.0), ([0.0, 3.5], [1.0, -2.0])])
def test_uniform_needs_low_below_high(low, high):
    with pytest.raises(ValueError) as error:
        Uniform(low, high)
    message = str(error.value)
    assert message.startswith("Uniform:") and "low" in message and "high" in message
    bad_low = np.atleast_1d(low)[np.atleast_1d(low) >= np.atleast_1d(high)]
    bad_high = np.atleast_1d(high)[np.atleast_1d(low) >= np.atleast_1d(high)]
    assert np.array2string(bad_low, separator=", ") in message
    assert np.array2string(bad_high, separator=", ") in message


@pytest.mark.parametrize("low, high", [(np.nan, 1.0), (0.0, np.inf)])
def test_uniform_needs_finite_bounds(low, high):
    with pytest.raises(ValueError, match=r"Uniform: parameter (low|high) must be finite"):
        Uniform(low, high)


@pytest.mark.parametrize("family", ALL_FAMILIES + [TanhNormal], ids=lambda f: f.__name__)
def test_arg_constraints_cover_the_constructor_and_drive_the_message(family):
    names = [name for name in inspect.signature(family).parameters if name != "validate_args"]
    assert list(family.arg_constraints) == names
    for position, name in enumerate(names):
        constraint = family.arg_constraints[name]
        arguments = [np.array([-1.0, -0.5]), np.array([2.0, 2.5])]  # valid for every family here
        arguments[position] = np.array([arguments[position][0], np.nan])  # NaN breaks every rule here
        with pytest.raises(ValueError) as error:
            family(*arguments)
        assert str(error.value) == (f"{family.__name__}: parameter {name} must be {constraint.description}; "
                                    f"got 1 bad value: [nan]")
        family(*arguments, validate_args=False)  # the way around the check, at the caller's risk


def test_lognormal_log_prob_is_minus_inf_at_and_below_zero_without_warnings():
    loc = Tensor(0.3, requires_grad=True)
    scale = Tensor(0.8, requires_grad=True)
    x = Tensor([0.0, -1.0, 1.5], requires_grad=True)
    with no_warnings():
        lp = LogNormal(loc, scale).log_prob(x)
        lp.backward(np.ones(3))
        cdf = LogNormal(0.3, 0.8).cdf([0.0, -1.0])
    assert np.isneginf(lp.data[0]) and np.isneginf(lp.data[1])
    assert lp.data[2] == pytest.approx(hand_log_density(LogNormal, 1.5, 0.3, 0.8), rel=1e-12)
    np.testing.assert_array_equal(cdf, [0.0, 0.0])
    # outside the support nothing flows; inside, d log q / d loc = (log x - loc) / scale^2
    assert np.isfinite(loc.grad) and np.isfinite(scale.grad)
    assert loc.grad == pytest.approx((math.log(1.5) - 0.3) / 0.8 ** 2, rel=1e-12)
    np.testing.assert_array_equal(x.grad[:2], [0.0, 0.0])


def test_uniform_log_prob_outside_is_minus_inf_and_keeps_gradients_inside():
    low = Tensor(-1.0, requires_grad=True)
    high = Tensor(2.5, requires_grad=True)
    with no_warnings():
        lp = Uniform(low, high).log_prob([-2.0, -1.0, 0.0, 2.5, 3.0])
        lp.backward(np.ones(5))
    inside = -math.log(3.5)
    np.testing.assert_array_equal(lp.data, [-np.inf, inside, inside, -np.inf, -np.inf])  # [low, high)
    # d(-log(high - low))/dlow = 1/(high - low), /dhigh = -1/(high - low), for the 2 values inside
    assert low.grad == pytest.approx(2 / 3.5, rel=1e-12)
    assert high.grad == pytest.approx(-2 / 3.5, rel=1e-12)


def test_gumbel_far_left_tail_is_minus_inf_without_warnings():
    with no_warnings():
        lp = Gumbel(0.0, 1.0).log_prob([-1000.0, 0.0])
        cdf = Gumbel(0.0, 1.0).cdf([-1000.0, 1000.0])
    assert np.isneginf(lp.data[0]) and lp.data[1] == pytest.approx(-1.0)
    np.testing.assert_array_equal(cdf, [0.0, 1.0])


@pytest.mark.parametrize("family", LOCATION_SCALE, ids=lambda f: f.__name__)
def test_standard_noise_is_finite_in_both_tails(family):
    noise = family(0.0, 1.0).rsample((200_000,), rng=np.random.default_rng(8)).data
    assert np.all(np.isfinite(noise))


# --- shapes ----------------------------------------------------------------------------------------
def batch_of_two(family):
    a, b = PARAMS[family]
    return family(np.array([a, a]), np.array([b, 1.5 * b]) if family is not Uniform else np.array([b, b + 1]))


@pytest.mark.parametrize("family", ALL_FAMILIES, ids=lambda f: f.__name__)
def test_shapes_are_sample_shape_plus_batch_shape(family):
    d = batch_of_two(family)
    assert d.batch_shape == (2,) and d.event_shape == ()
    rng = np.random.default_rng(0)
    for draw in (d.sample, d.rsample):
        x = draw((5, 3), rng=rng)
        assert x.shape == (5, 3, 2)
        assert d.log_prob(x).shape == (5, 3, 2)
        assert draw(rng=rng).shape == (2,)
        assert draw(7, rng=rng).shape == (7, 2)
    for moment in (d.mean, d.variance, d.stddev, d.entropy()):
        assert moment.shape == (2,)
    assert d.cdf(np.zeros((4, 1)) + 0.5).shape == (4, 2)


@pytest.mark.parametrize("family", ALL_FAMILIES, ids=lambda f: f.__name__)
def test_parameters_broadcast_into_the_batch_shape(family):
    first = np.linspace(-1.0, 1.0, 3).reshape(3, 1)
    second = np.linspace(0.5, 2.0, 4) + (2.0 if family is Uniform else 0.0)  # high > low for Uniform
    d = family(first, second)
    assert d.batch_shape == (3, 4)
    assert d.rsample((2,), rng=np.random.default_rng(0)).shape == (2, 3, 4)
    assert d.sample(rng=np.random.default_rng(0)).shape == (3, 4)
    for moment in (d.mean, d.variance, d.entropy()):
        assert moment.shape == (3, 4)
    assert len(d.parameters()) == 2 and d.parameters()[0].shape == (3, 1)


@pytest.mark.parametrize("family", ALL_FAMILIES, ids=lambda f: f.__name__)
def test_incompatible_parameter_shapes_raise_naming_the_family(family):
    with pytest.raises(ValueError, match=rf"^{family.__name__}: parameter shapes cannot be broadcast"):
        family(np.zeros(3), np.ones(2) + 1.0)


# --- gradcheck -------------------------------------------------------------------------------------
GRADCHECK_PARAMS = {  # (first parameter, second parameter, values inside the support)
    Normal: ([0.3, -1.0, 0.0], [1.2, 0.5, 2.0], [[0.1, -0.4, 2.0], [1.7, -1.3, -0.6]]),
    Laplace: ([0.3, -1.0, 0.0], [1.2, 0.5, 2.0], [[0.1, -0.4, 2.0], [1.7, -1.3, -0.6]]),
    Logistic: ([0.3, -1.0, 0.0], [1.2, 0.5, 2.0], [[0.1, -0.4, 2.0], [1.7, -1.3, -0.6]]),
    Gumbel: ([0.3, -1.0, 0.0], [1.2, 0.5, 2.0], [[0.1, -0.4, 2.0], [1.7, -1.3, -0.6]]),
    LogNormal: ([0.3, -1.0, 0.0], [1.2, 0.5, 0.8], [[0.1, 0.4, 2.0], [1.7, 0.3, 0.6]]),
    Uniform: ([0.3, -1.0, 0.0], [1.2, 0.5, 2.0], [[0.5, -0.4, 1.9], [1.1, 0.2, 0.1]]),
}


def gradcheck_inputs(family):
    first, second, values = GRADCHECK_PARAMS[family]
    return (Tensor(first, requires_grad=True), Tensor(second, requires_grad=True),
            Tensor(values, requires_grad=family is not Uniform))  # Uniform's density is flat in x


@pytest.mark.parametrize("family", ALL_FAMILIES, ids=lambda f: f.__name__)
def test_gradcheck_log_prob(family):
    assert gradcheck(lambda a, b, x: family(a, b).log_prob(x), list(gradcheck_inputs(family)))


@pytest.mark.parametrize("family", ALL_FAMILIES, ids=lambda f: f.__name__)
def test_gradcheck_rsample_with_fixed_noise(family):
    a, b, _ = gradcheck_inputs(family)
    assert gradcheck(lambda a, b: family(a, b).rsample((2,), rng=np.random.default_rng(0)), [a, b])


@pytest.mark.parametrize("family", ALL_FAMILIES, ids=lambda f: f.__name__)
def test_gradcheck_entropy_mean_variance(family):
    a, b, _ = gradcheck_inputs(family)
    assert gradcheck(lambda a, b: family(a, b).entropy(), [a, b])
    assert gradcheck(lambda a, b: family(a, b).mean, [a, b])
    assert gradcheck(lambda a, b: family(a, b).variance, [a, b])


@pytest.mark.parametrize("family", list(KL_PAIRS), ids=lambda f: f.__name__)
def test_gradcheck_kl(family):
    p, q = KL_PAIRS[family]
    params = [Tensor(t.data.copy(), requires_grad=True) for t in p.parameters() + q.parameters()]
    if family is Laplace:
        params[2].data[1] += 0.25  # keep |mu_p - mu_q| away from its kink at 0
    if family is Uniform:  # keep [low_p, high_p] strictly inside [low_q, high_q]
        params[2].data -= 0.1
        params[3].data += 0.1
    assert gradcheck(lambda a, b, c, d: kl_divergence(family(a, b), family(c, d)), params)


# --- details no other test pins down (found by tools/mutate.py) --------------------------------
def test_laplace_cdf_is_one_half_at_the_median():
    assert Laplace(1.5, 2.0).cdf(1.5) == 0.5
    np.testing.assert_allclose(Laplace(0.0, 1.0).cdf([-1.0, 1.0]), [0.5 * np.exp(-1), 1 - 0.5 * np.exp(-1)],
                               rtol=1e-15)


def test_tanh_normal_cdf_outside_the_open_interval():
    np.testing.assert_array_equal(TanhNormal(0.0, 1.0).cdf([-1.5, -1.0, 1.0, 1.5]), [0.0, 0.0, 1.0, 1.0])


# --- cdf and icdf, for every continuous family ------------------------------------------------------
# Each returns a Tensor built from engine ops: differentiable in the parameters and in the value.
from tinygrad_reparam.distributions.relaxed_bernoulli import RelaxedBernoulli  # noqa: E402

CDF_FAMILIES = {  # an instance of each, and the ends of its support (icdf(0), icdf(1))
    "Normal": (lambda a=0.5, b=2.0: Normal(a, b), (-np.inf, np.inf)),
    "Laplace": (lambda a=-1.0, b=1.5: Laplace(a, b), (-np.inf, np.inf)),
    "Logistic": (lambda a=2.0, b=0.7: Logistic(a, b), (-np.inf, np.inf)),
    "Gumbel": (lambda a=0.3, b=1.2: Gumbel(a, b), (-np.inf, np.inf)),
    "LogNormal": (lambda a=0.2, b=0.6: LogNormal(a, b), (0.0, np.inf)),
    "Uniform": (lambda a=-1.0, b=2.5: Uniform(a, b), (-1.0, 2.5)),
    "TanhNormal": (lambda a=0.4, b=0.8: TanhNormal(a, b), (-1.0, 1.0)),
    "RelaxedBernoulli": (lambda a=0.6, b=-0.8: RelaxedBernoulli(a, logits=b), (0.0, 1.0)),
}
PROBABILITIES = np.linspace(0.02, 0.98, 25)


@pytest.mark.parametrize("name", list(CDF_FAMILIES))
def test_cdf_derivative_is_the_density_and_icdf_inverts_cdf(name):
    d = CDF_FAMILIES[name][0]()
    x = d.icdf(PROBABILITIES).data
    np.testing.assert_allclose(d.cdf(x).data, PROBABILITIES, rtol=1e-12)
    h = 1e-6 * (1 + np.abs(x))
    if name == "RelaxedBernoulli":
        h = 1e-6 * np.minimum(x, 1 - x)  # stay inside (0, 1)
    slope = (d.cdf(x + h).data - d.cdf(x - h).data) / (2 * h)
    np.testing.assert_allclose(slope, np.exp(d.log_prob(x).data), rtol=1e-6)
    inside = np.linspace(*np.clip(CDF_FAMILIES[name][1], -6.0, 6.0), 41)[1:-1]
    np.testing.assert_allclose(d.icdf(d.cdf(inside)).data, inside, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", list(CDF_FAMILIES))
def test_cdf_is_monotone_from_zero_to_one_and_icdf_reaches_the_ends_of_the_support(name):
    make, (low, high) = CDF_FAMILIES[name]
    d = make()
    grid = np.concatenate([[-np.inf, -1e300, low - 1.0, low], np.linspace(-30.0, 30.0, 6001),
                           [high, high + 1.0, 1e300, np.inf]])
    grid = np.sort(grid[np.isfinite(grid) | np.isinf(grid)])
    with no_warnings():
        cdf = d.cdf(grid).data
        ends = d.icdf([0.0, 1.0]).data
    assert np.all(np.diff(cdf) >= 0) and cdf[0] == 0.0 and cdf[-1] == 1.0
    assert np.all((cdf >= 0) & (cdf <= 1))
    np.testing.assert_array_equal(ends, [low, high])


@pytest.mark.parametrize("name", list(CDF_FAMILIES))
def test_cdf_and_icdf_are_differentiable_in_the_parameters_and_the_value(name):
    make, _ = CDF_FAMILIES[name]
    first, second = (Tensor([0.3, 0.7], requires_grad=True), Tensor([1.2, 0.5], requires_grad=True))
    if name == "Uniform":
        first, second = Tensor([-1.0, 0.2], requires_grad=True), Tensor([1.5, 0.9], requires_grad=True)
    if name == "RelaxedBernoulli":
        second = Tensor([-0.4, 1.1], requires_grad=True)
    p = Tensor([[0.1, 0.35], [0.6, 0.95]], requires_grad=True)
    x = make(first.data, second.data).icdf(p.data)
    x = Tensor(x.data, requires_grad=True)
    assert gradcheck(lambda a, b, v: make(a, b).cdf(v), [first, second, x])
    assert gradcheck(lambda a, b, q: make(a, b).icdf(q), [first, second, p])


def test_cdf_gradients_stay_finite_far_in_the_tails():
    for d, value in [(Gumbel, [-1000.0, 1000.0]), (Normal, [-40.0, 40.0]), (LogNormal, [-1.0, 0.0]),
                     (Logistic, [-800.0, 800.0]), (Laplace, [-800.0, 800.0])]:
        loc, scale = Tensor(0.3, requires_grad=True), Tensor(1.1, requires_grad=True)
        with no_warnings():
            d(loc, scale).cdf(value).sum().backward()
        assert np.isfinite(loc.grad) and np.isfinite(scale.grad), d.__name__


def test_normal_cdf_keeps_the_lower_tail_and_matches_math_erf():
    x = np.array([-30.0, -10.0, -3.0, 0.0, 0.5, 4.0])
    expected = np.array([0.5 * math.erfc(-v / math.sqrt(2)) for v in x])
    np.testing.assert_allclose(Normal(0.0, 1.0).cdf(x).data, expected, rtol=2e-15)
    assert Normal(0.0, 1.0).cdf(-30.0).item() > 4.9e-198  # 1 + erf(-30/sqrt 2) would round to 0
    z_975 = 1.959963984540054  # the two-sided 95% point of N(0, 1)
    quantiles = Normal(0.0, 1.0).icdf([0.025, 0.5, 0.975]).data
    np.testing.assert_allclose(quantiles, [-z_975, 0.0, z_975], rtol=1e-15)


def test_laplace_slopes_at_the_median_are_the_density_and_its_inverse():
    """|eps| is written eps * sign(eps) with sign(0) = +1: abs'(0) = 0 would make both slopes 0."""
    value = Tensor(1.5, requires_grad=True)
    Laplace(1.5, 2.0).cdf(value).backward()
    assert value.grad == 0.25                  # density 1 / (2 scale) at the median
    p = Tensor(0.5, requires_grad=True)
    q = Laplace(1.5, 2.0).icdf(p)
    q.backward()
    assert q.item() == 1.5 and p.grad == 4.0   # 2 scale


def test_relaxed_bernoulli_cdf_at_one_half_is_one_minus_p_and_its_samples_follow_it():
    """y > 1/2 exactly when the Bernoulli draw on the same noise is 1, at every temperature."""
    for temperature in (0.1, 0.5, 2.0):
        d = RelaxedBernoulli(temperature, probs=np.array([0.2, 0.7]))
        np.testing.assert_allclose(d.cdf(0.5).data, [0.8, 0.3], rtol=1e-14)
    d = RelaxedBernoulli(0.6, logits=-0.8)
    y = d.rsample((N_LAW,), rng=np.random.default_rng(12)).data
    assert ks_statistic(y, d.cdf) < KS_BOUND
    y_wrong = RelaxedBernoulli(0.66, logits=-0.8).rsample((N_LAW,), rng=np.random.default_rng(12)).data
    assert ks_statistic(y_wrong, d.cdf) > KS_BOUND


@pytest.mark.parametrize("name", list(CDF_FAMILIES))
def test_cdf_and_icdf_keep_float32(name):
    make, (low, high) = CDF_FAMILIES[name]
    a, b = inspect.signature(make).parameters.values()
    d = make(np.float32(a.default), np.float32(b.default))
    values = np.array([low - 1.0, 0.25, 0.5, high + 1.0, -300.0], dtype=np.float32)  # in and out of support
    with no_warnings():  # (no overflow in float32's narrower range either)
        assert d.cdf(values).dtype == d.icdf(np.array([0.0, 0.3, 1.0], np.float32)).dtype == np.float32
        assert d.log_prob(values[1:3]).dtype == np.float32
