"""Transforms, TransformedDistribution and Independent (distributions/transforms.py and friends).

The identities, each checked against something computed here independently:

- every transform: inv(t(x)) = x, and log_abs_det_jacobian(x, y) = log |f'(x)| with f' by central
  differences of the forward map (hypothesis); the stable forms stay finite where the direct
  ones give log(0); the inverse transform's log-derivative is minus the forward one.
- TransformedDistribution: log_prob integrates to 1 (trapezoid rule on a fine grid) and matches
  densities written out by hand (logit-normal, affine maps of a Normal); cdf is the integral of
  the density, its derivative is the density (central differences), it is monotone with limits
  0 and 1, and icdf inverts it; a decreasing AffineTransform flips the CDF; values outside the
  support give -inf / 0 / 1 without NaN in the gradients; ``rsample_with_log_prob`` agrees with
  ``log_prob`` of its draw.
- LogNormal and TanhNormal are the TransformedDistributions of a Normal through ExpTransform and
  TanhTransform: the same log_prob, the same draws on the same noise, the same gradients.
- Independent: the shapes move, log_prob and entropy sum the base's, draws are the base's, and
  KL(Independent || Independent) sums the base KLs.
"""
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_reparam.distributions as D
from tinygrad_reparam import Tensor, gradcheck
from tinygrad_reparam.distributions.transforms import (AffineTransform, ComposeTransform, ExpTransform,
                                                       SigmoidTransform, SoftplusTransform, TanhTransform)
from tinygrad_reparam.testing import float_arrays

LOG_2PI = math.log(2 * math.pi)


def normal_log_density(x, loc, scale):
    return -0.5 * ((x - loc) / scale) ** 2 - np.log(scale) - 0.5 * LOG_2PI


def normal_cdf(x, loc=0.0, scale=1.0):
    eps = np.ravel((x - loc) / scale)
    return 0.5 * np.array([math.erfc(-v / math.sqrt(2)) for v in eps]).reshape(np.shape(x))


def trapezoid(y, x):
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2)


@pytest.fixture
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# --- the transforms ----------------------------------------------------------------------------
# (transform, the range of x where f can be inverted to 1e-10 relative)
TRANSFORMS = {
    "exp": (ExpTransform(), 30.0),
    "sigmoid": (SigmoidTransform(), 8.0),   # 1 - s(8) = 3e-4: atanh-like inversion loses 4 digits
    "tanh": (TanhTransform(), 4.0),
    "softplus": (SoftplusTransform(), 30.0),
    "affine": (AffineTransform(1.5, -0.25), 30.0),
    "compose": (ComposeTransform([AffineTransform(0.5, 2.0), TanhTransform(), AffineTransform(1.0, 3.0),
                                  ExpTransform()]), 1.5),
    "compose with an inverse": (ComposeTransform([ExpTransform(), AffineTransform(1.0, 2.0),  # log(1 + 2 e^x)
                                                  ExpTransform().inv]), 8.0),
}


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(sorted(TRANSFORMS)), data=st.data())
def test_inverse_undoes_the_map_and_log_det_is_the_log_of_the_numerical_derivative(name, data):
    transform, reach = TRANSFORMS[name]
    x = data.draw(float_arrays((5,), low=-reach, high=reach), label="x")
    y = transform(x)
    np.testing.assert_allclose(transform.inv(y).data, x, rtol=1e-10, atol=1e-10)
    h = 1e-5 * (1.0 + np.abs(x))
    derivative = (transform(x + h).data - transform(x - h).data) / (2 * h)
    ladj = transform.log_abs_det_jacobian(x, y).data
    np.testing.assert_allclose(ladj, np.log(np.abs(derivative)), rtol=0, atol=1e-7)
    # the inverse transform: log |dx/dy| = -log |dy/dx|, and inv.inv is the transform again
    np.testing.assert_allclose(transform.inv.log_abs_det_jacobian(y, x).data, -ladj, rtol=1e-15, atol=0)
    assert transform.inv.inv is transform


def test_domains_and_codomains_say_where_x_and_y_live():
    x = np.array([-50.0, -1.0, 0.0, 2.0, 50.0])
    for transform, _ in TRANSFORMS.values():
        assert transform.domain.test(x).all()
        assert transform.codomain.test(transform(np.array([-1.0, 0.0, 2.0])).data).all()
    ends = np.array([-1.0, 0.0, 1.0, 0.5, -0.999])
    np.testing.assert_array_equal(TanhTransform().codomain.test(ends), [False, True, False, True, True])
    np.testing.assert_array_equal(SigmoidTransform().codomain.test(ends), [False, False, False, True, False])
    np.testing.assert_array_equal(ExpTransform().codomain.test(ends), [False, False, True, True, False])
    assert ExpTransform().inv.domain is ExpTransform.codomain and ExpTransform().inv.codomain is ExpTransform.domain


def test_log_dets_are_the_textbook_formulas_in_stable_form(no_warnings):
    x = np.array([-3.0, -0.5, 0.0, 0.7, 2.0])
    sigmoid = 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(ExpTransform().log_abs_det_jacobian(x, None).data, x, rtol=0)
    np.testing.assert_allclose(SigmoidTransform().log_abs_det_jacobian(x, None).data,
                               np.log(sigmoid * (1 - sigmoid)), rtol=1e-14)
    np.testing.assert_allclose(TanhTransform().log_abs_det_jacobian(x, None).data,
                               np.log(1 - np.tanh(x) ** 2), rtol=1e-14)
    np.testing.assert_allclose(SoftplusTransform().log_abs_det_jacobian(x, None).data, np.log(sigmoid),
                               rtol=1e-14)
    np.testing.assert_allclose(AffineTransform(3.0, -0.5).log_abs_det_jacobian(x, None).data,
                               np.full(5, np.log(0.5)), rtol=1e-15)


def test_stable_forms_stay_finite_where_the_direct_forms_round_to_log_zero(no_warnings):
    far = np.array([-800.0, -50.0, 50.0, 800.0])
    # log(1 - tanh^2) = 2 log 2 - 2|x| + O(e^-2|x|); log s(1 - s) = -|x| + O(e^-|x|)
    np.testing.assert_allclose(TanhTransform().log_abs_det_jacobian(far, None).data,
                               2 * math.log(2) - 2 * np.abs(far), rtol=1e-15)
    np.testing.assert_allclose(SigmoidTransform().log_abs_det_jacobian(far, None).data, -np.abs(far),
                               rtol=1e-15)
    # softplus's inverse log(e^y - 1): y itself for large y (no overflow), log y for tiny y
    y = np.array([1e-12, 1e-3, 1.0, 50.0, 800.0])
    np.testing.assert_allclose(SoftplusTransform().inv(y).data, np.log(np.expm1(np.minimum(y, 700))) +
                               np.where(y > 700, y - 700, 0.0), rtol=1e-14)
    assert SoftplusTransform().inv(800.0).item() == 800.0


def test_compose_adds_the_log_dets_along_the_way_and_inverts_in_reverse():
    parts = [AffineTransform(0.5, 2.0), TanhTransform(), AffineTransform(1.0, 3.0), ExpTransform()]
    compose = ComposeTransform(parts)
    x = np.array([-0.6, 0.1, 0.9])
    values, total = [x], np.zeros(3)
    for part in parts:
        values.append(part(values[-1]).data)
        total += part.log_abs_det_jacobian(values[-2], values[-1]).data
    np.testing.assert_allclose(compose(x).data, values[-1], rtol=1e-15)
    np.testing.assert_allclose(compose.log_abs_det_jacobian(x, compose(x)).data, total, rtol=1e-14)
    np.testing.assert_allclose(compose.inv(values[-1]).data, x, rtol=1e-12)
    assert compose.sign == 1 and ComposeTransform([AffineTransform(0.0, -1.0), ExpTransform()]).sign == -1
    identity = ComposeTransform([])
    assert np.array_equal(identity(x).data, x) and identity.event_dim == 0
    ladj = identity.log_abs_det_jacobian(x, x).data
    assert ladj.shape == (3,) and np.array_equal(ladj, np.zeros(3))


def test_compose_sums_an_elementwise_log_det_over_the_event_of_a_vector_map():
    """exp acts per element, the affine map on vectors: the composition's log-det is per vector."""
    scale = np.array([2.0, -0.5, 3.0])
    compose = ComposeTransform([ExpTransform(), AffineTransform(np.zeros(3), scale, event_dim=1)])
    assert compose.event_dim == 1
    x = np.array([[0.1, -0.4, 0.3], [1.0, 0.0, -2.0]])
    ladj = compose.log_abs_det_jacobian(x, compose(x))
    assert ladj.shape == (2,)
    np.testing.assert_allclose(ladj.data, x.sum(axis=-1) + np.log(np.abs(scale)).sum(), rtol=1e-14)


def test_gradients_flow_through_the_maps_and_the_affine_parameters():
    loc = Tensor([0.3, -1.0], requires_grad=True)
    scale = Tensor([1.5, -0.4], requires_grad=True)
    x = Tensor([[0.2, -0.7], [1.1, 0.4]], requires_grad=True)

    def through_all(loc, scale, x):
        t = ComposeTransform([AffineTransform(loc, scale), SigmoidTransform(), SoftplusTransform()])
        y = t(x)
        return y + t.log_abs_det_jacobian(x, y) + t.inv(y)

    assert gradcheck(through_all, [loc, scale, x])
    affine = AffineTransform(loc, scale)
    assert affine.inv.parameters() == affine.parameters() == (loc, scale)
    assert ComposeTransform([affine, ExpTransform()]).parameters() == (loc, scale)


def test_affine_event_dim_one_sums_the_log_det_over_the_vector():
    scale = np.array([2.0, -0.5, 3.0])
    t = AffineTransform(np.zeros(3), scale, event_dim=1)
    ladj = t.log_abs_det_jacobian(np.ones((4, 3)), None)
    assert ladj.shape == (4,)
    np.testing.assert_allclose(ladj.data, np.log(np.abs(np.prod(scale))), rtol=1e-15)
    np.testing.assert_array_equal(t.sign, np.sign(scale))


# --- TransformedDistribution: densities ------------------------------------------------------------
def logit_normal_log_density(y, loc, scale):
    """x = logit(y) ~ N(loc, scale): density N(logit y) / (y (1 - y))."""
    return normal_log_density(np.log(y / (1 - y)), loc, scale) - np.log(y * (1 - y))


# (distribution, grid covering its mass, a hand-written log-density or None)
def cases():
    return {
        "logit-normal": (D.TransformedDistribution(D.Normal(0.3, 0.8), SigmoidTransform()),
                         np.linspace(0.0, 1.0, 200_001), lambda y: logit_normal_log_density(y, 0.3, 0.8)),
        "softplus-normal": (D.TransformedDistribution(D.Normal(-0.5, 1.2), SoftplusTransform()),
                            np.linspace(0.0, 12.0, 200_001), None),
        "tanh then decreasing affine": (
            D.TransformedDistribution(D.Normal(0.4, 0.9), [TanhTransform(), AffineTransform(0.5, -2.0)]),
            np.linspace(-1.5, 2.5, 200_001), None),
        "exp of a uniform": (D.TransformedDistribution(D.Uniform(0.0, 1.0), ExpTransform()),
                             np.linspace(1.0, math.e, 200_001), lambda y: -np.log(y)),
        "affine laplace": (D.TransformedDistribution(D.Laplace(0.2, 0.5), AffineTransform(-1.0, 3.0)),
                           np.linspace(-40.0, 40.0, 400_001), None),
    }


@pytest.mark.parametrize("name", list(cases()))
def test_log_prob_integrates_to_one_and_cdf_is_its_integral(name):
    d, grid, hand = cases()[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        log_density = d.log_prob(grid).data
    density = np.exp(log_density)
    tolerance = 1e-4 if name == "exp of a uniform" else 1e-6  # (jumps at the ends: O(h) there)
    assert trapezoid(density, grid) == pytest.approx(1.0, abs=tolerance)
    if hand is not None:
        inside = np.isfinite(log_density)
        np.testing.assert_allclose(log_density[inside], hand(grid[inside]), rtol=1e-11, atol=1e-12)
    cumulative = np.concatenate([[0.0], np.cumsum((density[1:] + density[:-1]) * np.diff(grid) / 2)])
    checkpoints = np.linspace(0, grid.size - 1, 17).astype(int)[1:-1]
    np.testing.assert_allclose(d.cdf(grid[checkpoints]).data, cumulative[checkpoints], atol=tolerance)


@pytest.mark.parametrize("loc, scale", [(1.5, 2.0), (-0.5, -0.25), (np.array([1.5, -0.5]), np.array([2.0, -0.25]))])
def test_an_affine_normal_is_the_normal_with_moved_parameters(loc, scale):
    """loc + scale N(m, s) = N(loc + scale m, |scale| s): densities, CDF (flipped by a negative
    scale) and quantiles."""
    d = D.TransformedDistribution(D.Normal(np.full(np.shape(loc), 0.3), 0.7), AffineTransform(loc, scale))
    same = D.Normal(loc + scale * 0.3, abs(scale) * 0.7)
    x = np.linspace(-3.0, 3.0, 13)[:, None]
    p = np.array([0.0, 0.01, 0.3, 0.5, 0.9, 1.0])[:, None]
    np.testing.assert_allclose(d.log_prob(x).data, same.log_prob(x).data, rtol=1e-13)
    np.testing.assert_allclose(d.cdf(x).data, same.cdf(x).data, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(d.icdf(p).data, same.icdf(p).data, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name", list(cases()))
def test_cdf_derivative_is_the_density_and_icdf_inverts_it(name):
    d, grid, _ = cases()[name]
    p = np.linspace(0.02, 0.98, 25)
    x = d.icdf(p).data
    np.testing.assert_allclose(d.cdf(x).data, p, rtol=1e-12)
    h = 1e-6 * (1 + np.abs(x))
    slope = (d.cdf(x + h).data - d.cdf(x - h).data) / (2 * h)
    np.testing.assert_allclose(slope, np.exp(d.log_prob(x).data), rtol=1e-6)
    assert np.all(np.diff(d.cdf(grid[::1000]).data) >= 0)  # monotone


def test_outside_the_support_log_prob_is_minus_inf_cdf_is_0_or_1_and_gradients_are_not_nan(no_warnings):
    loc = Tensor(0.4, requires_grad=True)
    scale = Tensor(0.9, requires_grad=True)
    d = D.TransformedDistribution(D.Normal(loc, scale), [TanhTransform(), AffineTransform(0.5, -2.0)])
    value = np.array([-1.5, -2.0, 0.0, 2.5, 3.0, np.inf, -np.inf])  # support (-1.5, 2.5)
    log_prob = d.log_prob(value)
    cdf = d.cdf(value)
    np.testing.assert_array_equal(np.isneginf(log_prob.data), [True, True, False, True, True, True, True])
    np.testing.assert_array_equal(cdf.data[[0, 1, 3, 4, 5, 6]], [0.0, 0.0, 1.0, 1.0, 1.0, 0.0])
    (log_prob[2] + cdf.sum()).backward()
    assert np.isfinite(loc.grad) and np.isfinite(scale.grad)
    assert np.isnan(d.log_prob(np.nan).item()) and np.isnan(d.cdf(np.nan).item())


def test_rsample_with_log_prob_matches_log_prob_of_the_draw():
    d = D.TransformedDistribution(D.Normal(np.array([0.0, 1.0]), np.array([0.5, 2.0])),
                                  [SigmoidTransform(), AffineTransform(-1.0, 4.0)])
    y, log_q = d.rsample_with_log_prob((500,), rng=np.random.default_rng(0))
    np.testing.assert_array_equal(y.data, d.rsample((500,), rng=np.random.default_rng(0)).data)
    away = np.abs(y.data - 1.0) < 1.999  # not where the sigmoid rounds to 0 or 1
    np.testing.assert_allclose(log_q.data[away], d.log_prob(y.data).data[away], rtol=1e-8, atol=1e-8)


def test_draws_follow_the_cdf():
    d = D.TransformedDistribution(D.Normal(0.3, 0.8), [SoftplusTransform(), AffineTransform(1.0, -1.0)])
    y = np.sort(d.sample((20_000,), rng=np.random.default_rng(4)).data)
    f = d.cdf(y).data
    i = np.arange(1, y.size + 1)
    ks = max(np.max(i / y.size - f), np.max(f - (i - 1) / y.size))
    assert ks < 1.63 / math.sqrt(y.size)
    wrong = D.TransformedDistribution(D.Normal(0.3, 0.88), [SoftplusTransform(), AffineTransform(1.0, -1.0)])
    f_wrong = d.cdf(np.sort(wrong.sample((20_000,), rng=np.random.default_rng(4)).data)).data
    assert max(np.max(i / y.size - f_wrong), np.max(f_wrong - (i - 1) / y.size)) > 1.63 / math.sqrt(y.size)


def test_has_rsample_sample_and_parameters_come_from_base_and_transforms():
    loc, shift = Tensor(0.2, requires_grad=True), Tensor(1.0, requires_grad=True)
    d = D.TransformedDistribution(D.Normal(loc, 1.0), [ExpTransform(), AffineTransform(shift, 2.0)])
    assert d.has_rsample and d.parameters()[0] is loc and any(p is shift for p in d.parameters())
    s = d.sample((3,), rng=np.random.default_rng(1))
    assert not s.requires_grad and s.op == "TransformedDistribution.sample"
    with pytest.raises(RuntimeError, match="TransformedDistribution.sample"):
        s.sum().backward()
    z = d.rsample((3,), rng=np.random.default_rng(1))
    np.testing.assert_array_equal(z.data, s.data)
    z.sum().backward()  # dz/dloc = 2 e^x = z - shift, dz/dshift = 1
    assert loc.grad == pytest.approx((z.data - 1.0).sum(), rel=1e-14) and shift.grad == 3.0
    discrete = D.TransformedDistribution(D.Bernoulli(probs=0.3), AffineTransform(1.0, 2.0))
    assert not discrete.has_rsample
    assert set(np.unique(discrete.sample((200,), rng=np.random.default_rng(0)).data)) == {1.0, 3.0}
    assert repr(d).startswith("TransformedDistribution(Normal(loc: shape (), scale: shape (), ")
    assert "[ExpTransform(), AffineTransform(loc: shape (), scale: shape ())]" in repr(d)
    assert repr(D.LogNormal(0.0, np.ones(2))).startswith("LogNormal(loc: shape (), scale: shape (2,), ")
    assert repr(ExpTransform().inv) == "ExpTransform().inv"
    with pytest.raises(NotImplementedError, match="Bernoulli has no rsample"):
        discrete.rsample()


def test_an_affine_map_on_vectors_makes_one_event():
    scale = np.array([2.0, -0.5, 3.0])
    d = D.TransformedDistribution(D.Normal(np.zeros(3), 1.0), AffineTransform(np.ones(3), scale, event_dim=1))
    assert d.batch_shape == () and d.event_shape == (3,)
    y = np.array([[0.5, 1.0, -2.0], [1.0, 1.0, 1.0]])
    expected = normal_log_density((y - 1.0) / scale, 0.0, 1.0).sum(axis=-1) - np.log(np.abs(scale)).sum()
    np.testing.assert_allclose(d.log_prob(y).data, expected, rtol=1e-14)
    draws, log_q = d.rsample_with_log_prob((4,), rng=np.random.default_rng(0))
    assert draws.shape == (4, 3) and log_q.shape == (4,)
    np.testing.assert_allclose(log_q.data, d.log_prob(draws.data).data, rtol=1e-13)


def test_a_vector_map_on_a_base_with_events_of_its_own_reads_more_axes_as_one_event():
    """Independent(Normal (2, 3), 1) has events (3,); a map on (2, 3) blocks makes one event of them."""
    base = D.Independent(D.Normal(np.zeros((2, 3)), 1.0), 1)
    d = D.TransformedDistribution(base, AffineTransform(0.0, 2.0, event_dim=2))
    assert d.batch_shape == () and d.event_shape == (2, 3)
    y = np.arange(6.0).reshape(2, 3) / 4
    expected = normal_log_density(y / 2.0, 0.0, 1.0).sum() - 6 * np.log(2.0)
    np.testing.assert_allclose(d.log_prob(y).data, expected, rtol=1e-14)


def test_one_element_outside_the_support_makes_its_whole_event_impossible(no_warnings):
    d = D.TransformedDistribution(D.Normal(np.zeros(3), 1.0),
                                  [ExpTransform(), AffineTransform(0.0, np.array([1.0, 2.0, 0.5]), event_dim=1)])
    y = np.array([[0.5, 1.0, 2.0], [0.5, -1.0, 2.0], [0.5, 1.0, np.nan]])
    log_prob = d.log_prob(y).data
    assert log_prob.shape == (3,) and np.isfinite(log_prob[0])
    assert np.isneginf(log_prob[1]) and np.isnan(log_prob[2])


# --- LogNormal and TanhNormal are transformed Normals ---------------------------------------------
@pytest.mark.parametrize("family, transform, values", [
    (D.LogNormal, ExpTransform(), [[0.1, 0.5, 2.0], [1.0, 7.5, 0.02]]),
    (D.TanhNormal, TanhTransform(), [[-0.9, 0.1, 0.5], [0.99, -0.3, 0.0]]),
])
def test_lognormal_and_tanh_normal_equal_the_transformed_normal(family, transform, values):
    def parameters():
        return Tensor([0.3, -1.0, 0.2], requires_grad=True), Tensor([1.2, 0.5, 0.8], requires_grad=True)

    results = []
    for make in (family, lambda m, s: D.TransformedDistribution(D.Normal(m, s), transform)):
        loc, scale = parameters()
        d = make(loc, scale)
        log_prob = d.log_prob(values)
        z = d.rsample((4,), rng=np.random.default_rng(7))
        cdf = d.cdf(values)
        (log_prob.sum() + z.sum() + cdf.sum()).backward()
        results.append((log_prob.data, z.data, cdf.data, loc.grad, scale.grad))
    for ours, general in zip(*results):
        np.testing.assert_array_equal(ours, general)  # the very same computation


# --- Independent ------------------------------------------------------------------------------------
def test_independent_moves_batch_axes_into_the_event_and_sums_log_prob_and_entropy():
    loc = Tensor(np.linspace(-1.0, 1.0, 6).reshape(2, 3), requires_grad=True)
    scale = np.array([0.5, 1.0, 2.0])
    base = D.Normal(loc, scale)
    one, two, none = D.Independent(base, 1), D.Independent(base, 2), D.Independent(base, 0)
    assert (one.batch_shape, one.event_shape) == ((2,), (3,))
    assert (two.batch_shape, two.event_shape) == ((), (2, 3))
    assert (none.batch_shape, none.event_shape) == ((2, 3), ())
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    per_element = normal_log_density(x, loc.data, scale)
    np.testing.assert_allclose(one.log_prob(x).data, per_element.sum(axis=-1), rtol=1e-14)
    np.testing.assert_allclose(two.log_prob(x).data, per_element.sum(axis=(-2, -1)), rtol=1e-14)
    np.testing.assert_allclose(none.log_prob(x).data, per_element, rtol=1e-14)
    assert one.log_prob(x[0, 0]).shape == (2,)  # one event broadcasts against the batch
    entropy = 0.5 * np.log(2 * np.pi * np.e * scale ** 2) * np.ones((2, 3))
    np.testing.assert_allclose(one.entropy().data, entropy.sum(axis=-1), rtol=1e-14)
    np.testing.assert_allclose(two.entropy().data, entropy.sum(), rtol=1e-14)
    np.testing.assert_array_equal(one.mean.data, base.mean.data)
    np.testing.assert_array_equal(one.variance.data, base.variance.data)
    assert one.has_rsample and one.parameters() == base.parameters()


def test_independent_draws_are_the_bases_and_keep_the_pathwise_gradient():
    loc = Tensor(np.zeros((2, 3)), requires_grad=True)
    d = D.Independent(D.Normal(loc, 1.0), 1)
    z = d.rsample((4,), rng=np.random.default_rng(3))
    base_draws = D.Normal(np.zeros((2, 3)), 1.0).rsample((4,), rng=np.random.default_rng(3))
    np.testing.assert_array_equal(z.data, base_draws.data)
    d.log_prob(z).sum().backward()  # d/dloc sum log N(loc + eps; loc, 1) = 0: the pathwise cancels
    np.testing.assert_allclose(loc.grad, 0.0, atol=1e-12)
    s = d.sample((2,), rng=np.random.default_rng(3))
    assert s.op == "Independent.sample" and not s.requires_grad and s.shape == (2, 2, 3)
    not_reparameterized = D.Independent(D.Bernoulli(probs=np.full((2, 3), 0.4)), 1)
    assert not not_reparameterized.has_rsample
    draws = not_reparameterized.sample((5,), rng=np.random.default_rng(0)).data
    assert draws.shape == (5, 2, 3) and set(np.unique(draws)) == {0.0, 1.0}
    assert not_reparameterized.log_prob(np.ones(3)).shape == (2,)


def test_kl_of_independents_sums_the_base_kls():
    p = D.Independent(D.Normal(np.array([[0.0, 1.0, 2.0]]), np.array([1.0, 0.5, 2.0])), 1)
    q = D.Independent(D.Normal(np.array([[0.5, 1.0, -1.0]]), np.array([2.0, 0.5, 1.0])), 1)
    kl = D.kl_divergence(p, q)
    assert kl.shape == (1,)
    np.testing.assert_allclose(kl.data, D.kl_divergence(p.base_dist, q.base_dist).data.sum(axis=-1),
                               rtol=1e-15)


def test_float32_stays_float32_inside_and_outside_the_support():
    f = np.float32
    d = D.TransformedDistribution(D.Normal(f(0.2), f(1.0)),
                                  [SigmoidTransform(), AffineTransform(f(1.0), f(-2.0))])
    values = np.array([-2.0, 0.3, 0.5, 1.5], dtype=f)  # support (-1, 1)
    assert d.log_prob(values).dtype == d.cdf(values).dtype == d.rsample((2,)).dtype == np.float32
    assert d.icdf(np.array([0.0, 0.5], dtype=f)).dtype == np.float32
