"""Stability fuzzing: values and gradients are finite wherever the mathematics is, and accurate.

Hypothesis draws inputs up to +-1e3 (with every magnitude down to subnormal numbers well
represented) and scales down to 1e-300 for

- the delicate Tensor methods: softplus, sigmoid, logsumexp, log_softmax, softmax;
- every distribution's log_prob, entropy and rsample (sample for Bernoulli and Categorical,
  which have no rsample), with the relaxed families at temperature 0.01;
- the VAE's loss pieces: BCE-with-logits (``bernoulli_log_likelihood`` and the fused
  ``binary_cross_entropy_with_logits``), the ELBO and the IWAE
  bound with weights scaled so that the decoder's logits reach +-1e3.

Each computation whose exact result is representable in float64 runs inside
``np.errstate(over="raise", invalid="raise", divide="raise")`` (underflow is allowed), so no
intermediate overflow, NaN or log(0) can hide inside it, and its value and gradients are compared
with a reference computed from the very same float64 inputs in 80-digit decimal arithmetic
(Python's ``decimal``; no extra dependency). Tolerances are stated per test as

    |library - exact| <= rtol * magnitude + 1e-307,

where ``magnitude`` is the sum of the absolute values of the terms of the exact formula (so a
result that cancels to ~0 is judged against the size of what cancelled), plus, where stated, the
formula's sensitivity to the rounding of its float64 inputs (its condition); the 1e-307 (a few
times the smallest normal double) lets results underflow. rtol is 1e-13 unless stated otherwise:
about 450 units in the last place (2^-52 = 2.2e-16), room for a few dozen roundings, and far
below the errors of the textbook unstable forms (log(1 + exp(x)), log(sum(exp(x))), 1/(1 + e^-x),
p.log() of an underflowed probability, ...), which overflow or lose every digit on these inputs.

The tests of a dominant term in logsumexp/log_softmax/Categorical, of Uniform samples staying
below high, and of the KL near the prior were written as failing tests first: they found real
accuracy losses, fixed in the library.
"""
import decimal
import functools
import math

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_reparam.distributions as D
from tinygrad_reparam import Tensor, binary_cross_entropy_with_logits
from tinygrad_reparam.testing import float_arrays
from tinygrad_reparam.vae import VAE, bernoulli_log_likelihood, gaussian_kl_to_standard_normal

Dec = decimal.Decimal
HP = decimal.Context(prec=80, Emin=-10**6, Emax=10**6)  # 80 digits, no overflow or underflow
PI = Dec("3.14159265358979323846264338327950288419716939937510582097494459230781640628620899863")
EULER_GAMMA = Dec("0.57721566490153286060651209008240243104215933593992359880576723488486772677766467")
ATOL = Dec("1e-307")                       # underflow to subnormals or 0 is fine
DBL_MAX = Dec(float(np.finfo(np.float64).max))
RTOL = 1e-13
TEMPERATURE = 0.01                         # the relaxed families' hard case


def leaf(value) -> Tensor:
    """A one-entry float64 parameter that requires grad."""
    return Tensor(np.array([value], dtype=np.float64), requires_grad=True)


def strict():
    """Overflow, NaN and division by zero raise; underflow (to subnormals or 0) is fine."""
    return np.errstate(over="raise", invalid="raise", divide="raise", under="ignore")


# ---------------------------------------------------------------------------------------------
# The high-precision reference: 80-digit decimals from the exact float64 inputs
def high_precision(fn):
    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with decimal.localcontext(HP):
            return fn(*args, **kwargs)
    return wrapped


def dec(x) -> Dec:
    return Dec(float(x))  # exact: every double is a finite decimal


@high_precision
def d_exp(x: Dec) -> Dec:
    return x.exp()


@high_precision
def d_ln(x: Dec) -> Dec:
    return x.ln()


@high_precision
def d_log1p(u: Dec) -> Dec:
    """log(1 + u), relatively exact even when 1 + u would round to 1 at 80 digits."""
    if abs(u) < Dec("1e-12"):
        return sum(((-1) ** (n + 1)) * u ** n / n for n in range(1, 9))  # error below u^9
    return (1 + u).ln()


@high_precision
def d_softplus(x: Dec) -> Dec:
    return max(x, Dec(0)) + d_log1p(d_exp(-abs(x)))


@high_precision
def d_sigmoid(x: Dec) -> Dec:
    return 1 / (1 + d_exp(-x))


@high_precision
def d_logsumexp(xs) -> Dec:
    """m + log1p(sum of the others' e^(x - m)): relatively exact."""
    xs = list(xs)
    k = max(range(len(xs)), key=lambda i: xs[i])
    rest = sum((d_exp(x - xs[k]) for i, x in enumerate(xs) if i != k), Dec(0))
    return xs[k] + d_log1p(rest)


def dec_array(values) -> np.ndarray:
    return np.array([dec(v) for v in np.asarray(values, dtype=np.float64).ravel()],
                    dtype=object).reshape(np.shape(values))


LOG_2PI = d_ln(2 * PI)
LOG_2 = d_ln(Dec(2))


@high_precision
def check(what, actual, exact, rtol=RTOL, magnitude=None):
    """Every entry of ``actual`` is finite and within rtol * magnitude + ATOL of the exact value
    (Decimals). ``magnitude`` defaults to |exact|; pass the sum of the terms' sizes where the
    exact formula cancels. The exact values must be representable (that is the test's design)."""
    actual = np.asarray(actual, dtype=np.float64)
    exact = np.asarray(exact, dtype=object)
    if magnitude is None:
        magnitude = np.vectorize(abs, otypes=[object])(exact)
    magnitude = np.broadcast_to(np.asarray(magnitude, dtype=object), exact.shape)
    assert actual.shape == exact.shape, f"{what}: shape {actual.shape}, expected {exact.shape}"
    for index in np.ndindex(exact.shape):
        a, e, m = actual[index], Dec(exact[index]), Dec(magnitude[index])
        assert abs(e) <= DBL_MAX, f"test design: the exact {what}{index} = {e:.6e} overflows"
        assert math.isfinite(a), f"{what}{index}: got {a!r} where the exact value is {float(e)!r}"
        error, allowed = abs(Dec(a) - e), Dec(rtol) * m + ATOL
        assert error <= allowed, (
            f"{what}{index}: got {a!r}, exact {float(e)!r}: error {float(error):.3g} > allowed "
            f"{float(allowed):.3g} (rtol {rtol:g} x magnitude {float(m):.3g})")


# ---------------------------------------------------------------------------------------------
# Strategies: every magnitude from 1e-300 (and subnormals) up to the limit, both signs
def signed_magnitudes(low_exponent: float, high_exponent: float):
    return st.builds(lambda sign, exponent: sign * 10.0 ** exponent,
                     st.sampled_from([-1.0, 1.0]), st.floats(low_exponent, high_exponent))


def wide(limit: float = 1e3):
    """Floats in [-limit, limit]: uniform ones, log-uniform magnitudes from 1e-300, and edges."""
    return st.one_of(st.floats(-limit, limit),
                     signed_magnitudes(-300, math.log10(limit)).map(
                         lambda x: float(np.clip(x, -limit, limit))),
                     st.sampled_from([0.0, 1.0, -1.0, limit, -limit, 30.0, -30.0, 40.0, -40.0]))


def scales(low_exponent: float = -300, high_exponent: float = 3):
    """Positive scales, log-uniform from 10**low_exponent to 10**high_exponent, and the edges."""
    return st.one_of(st.floats(low_exponent, high_exponent).map(lambda e: 10.0 ** e),
                     st.sampled_from([10.0 ** low_exponent, 10.0 ** high_exponent, 1.0]))


def probabilities():
    """p in (0, 1): down to 1e-300, and up to 1 - 2^-53 (the doubles just below 1)."""
    small = st.floats(-300, math.log10(0.5)).map(lambda e: 10.0 ** e)
    near_one = st.floats(math.log10(2.0 ** -53), math.log10(0.5)).map(lambda e: 1.0 - 10.0 ** e)
    return st.one_of(small, near_one, st.sampled_from([1e-300, 0.5, 1.0 - 2.0 ** -53]))


@st.composite
def arrays_with_cotangent(draw, max_dims=2, elements=None):
    """(x, g): an array of wide floats and an upstream gradient of the same shape."""
    x = draw(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=max_dims, max_side=5),
                        elements=elements or wide()))
    g = draw(float_arrays(x.shape))  # in [-10, 10]
    return x, g


# =============================================================================================
# 1. The delicate Tensor methods
@settings(max_examples=60)
@given(arrays_with_cotangent())
@example((np.array([-1e3, -745.0, -40.0, 0.0, 40.0, 745.0, 1e3]), np.ones(7)))
def test_softplus_value_and_gradient(case):
    """softplus(x) = log(1 + e^x) and its derivative sigmoid(x), relative to the exact values
    (rtol 1e-13: both are computed from e^-|x| without cancellation)."""
    x, g = case
    t = Tensor(x, requires_grad=True)
    with strict():
        y = t.softplus()
        y.backward(g)
    check("softplus", y.data, np.vectorize(d_softplus, otypes=[object])(dec_array(x)))
    check("d softplus", t.grad, dec_array(g) * np.vectorize(d_sigmoid, otypes=[object])(dec_array(x)))


@settings(max_examples=60)
@given(arrays_with_cotangent())
@example((np.array([-1e3, -745.0, -40.0, 0.0, 40.0, 745.0, 1e3]), np.ones(7)))
def test_sigmoid_value_and_gradient(case):
    """sigmoid(x) and s(1 - s), relative to the exact values (rtol 1e-13)."""
    x, g = case
    t = Tensor(x, requires_grad=True)
    with strict():
        y = t.sigmoid()
        y.backward(g)
    s = np.vectorize(d_sigmoid, otypes=[object])(dec_array(x))
    check("sigmoid", y.data, s)
    with decimal.localcontext(HP):
        # s(1 - s) = sigmoid(x) sigmoid(-x): no cancellation in the exact product
        slope = s * np.vectorize(d_sigmoid, otypes=[object])(-dec_array(x))
        check("d sigmoid", t.grad, dec_array(g) * slope)


@high_precision
def row_references(row):
    """For one row x: logsumexp, log_softmax, softmax (exact) and the max."""
    lse = d_logsumexp(row)
    log_p = [x - lse for x in row]
    return lse, log_p, [d_exp(v) for v in log_p], max(row)


@settings(max_examples=60)
@given(arrays_with_cotangent(), st.booleans())
@example((np.array([[1e3, -1e3, 999.0], [0.0, -30.0, -1e3]]), np.ones((2, 3))), False)
@example((np.array([[1e3, 1e3], [-1e3, -1e3]]), np.array([[1.0, -2.0], [3.0, 0.5]])), True)
def test_logsumexp_value_and_gradient(case, over_everything):
    """logsumexp along the last axis (or over all entries) and its gradient softmax.

    Value: |error| <= 1e-13 (1 + |result| + max|x|), the accuracy the max-shifted form promises
    (the shift x - max rounds at the size of the inputs; the relative accuracy of a result near
    0 is the test below). Gradient g * softmax_i: relative error 1e-13 (1 + |x_i| + |lse|),
    the rounding of x_i - lse amplified by exp.
    """
    x, g = case
    g = np.array(g.sum()) if over_everything else g[..., 0]  # the upstream gradient of the result
    t = Tensor(x, requires_grad=True)
    with strict():
        y = t.logsumexp() if over_everything else t.logsumexp(axis=-1)
        y.backward(g)
    rows = x.reshape(1, -1) if over_everything else x.reshape(-1, x.shape[-1])
    g_rows = np.broadcast_to(np.reshape(g, (-1, 1)), rows.shape)
    exact, magnitude, grad_exact, grad_magnitude = [], [], [], []
    with decimal.localcontext(HP):
        for row, g_row in zip(rows, g_rows):
            drow = list(dec_array(row))
            lse, _, p, m = row_references(drow)
            exact.append(lse)
            magnitude.append(1 + abs(lse) + max(abs(v) for v in drow))
            for xi, pi, gi in zip(drow, p, g_row):
                grad_exact.append(dec(gi) * pi)
                grad_magnitude.append(abs(dec(gi) * pi) * (1 + abs(xi) + abs(lse)))
    check("logsumexp", y.data.reshape(-1), exact, magnitude=magnitude)
    check("d logsumexp", t.grad.reshape(-1), grad_exact, magnitude=grad_magnitude)


@settings(max_examples=60)
@given(arrays_with_cotangent())
@example((np.array([[1e3, -1e3, 999.0], [0.0, -30.0, -1e3]]), np.array([[1.0, 0, 0], [0, 1.0, 0]])))
def test_log_softmax_value_and_gradient(case):
    """log_softmax_i = x_i - logsumexp(x) and its VJP g_i - p_i sum_j g_j.

    Value: |error| <= 1e-13 (1 + |x_i| + max|x| + |result|) (as for logsumexp: the terms' size).
    VJP: |error| <= 1e-13 (1 + max|x|) (|g_i| + p_i sum|g|), the terms' size times the relative
    error of p_i = exp(log p_i).
    """
    x, g = case
    t = Tensor(x, requires_grad=True)
    with strict():
        y = t.log_softmax(axis=-1)
        y.backward(g)
    exact, magnitude, grad_exact, grad_magnitude = [], [], [], []
    with decimal.localcontext(HP):
        for row, g_row in zip(x.reshape(-1, x.shape[-1]), g.reshape(-1, x.shape[-1])):
            drow, dg = list(dec_array(row)), list(dec_array(g_row))
            lse, log_p, p, m = row_references(drow)
            size = max(abs(v) for v in drow)
            total, total_abs = sum(dg), sum(abs(v) for v in dg)
            for xi, lpi, pi, gi in zip(drow, log_p, p, dg):
                exact.append(lpi)
                magnitude.append(1 + abs(xi) + size + abs(lpi))
                grad_exact.append(gi - pi * total)
                grad_magnitude.append((1 + size) * (abs(gi) + pi * total_abs))
    check("log_softmax", y.data.reshape(-1), exact, magnitude=magnitude)
    check("d log_softmax", t.grad.reshape(-1), grad_exact, magnitude=grad_magnitude)


@settings(max_examples=60)
@given(arrays_with_cotangent())
@example((np.array([[1e3, -1e3, 999.0], [0.0, -30.0, -1e3]]), np.array([[1.0, 0, 0], [0, 1.0, 0]])))
def test_softmax_value_and_gradient(case):
    """softmax_i = exp(x_i - logsumexp(x)) and its VJP p_i (g_i - sum_j g_j p_j).

    Value: relative error 1e-13 (1 + |x_i| + max|x|) (exp amplifies the rounding of x_i - lse
    into a relative error of that size). VJP: 1e-13 (1 + max|x|) p_i (|g_i| + sum|g_j| p_j).
    """
    x, g = case
    t = Tensor(x, requires_grad=True)
    with strict():
        y = t.softmax(axis=-1)
        y.backward(g)
    exact, magnitude, grad_exact, grad_magnitude = [], [], [], []
    with decimal.localcontext(HP):
        for row, g_row in zip(x.reshape(-1, x.shape[-1]), g.reshape(-1, x.shape[-1])):
            drow, dg = list(dec_array(row)), list(dec_array(g_row))
            _, _, p, _ = row_references(drow)
            size = max(abs(v) for v in drow)
            mean_g = sum(gi * pi for gi, pi in zip(dg, p))
            mean_abs_g = sum(abs(gi) * pi for gi, pi in zip(dg, p))
            for xi, pi, gi in zip(drow, p, dg):
                exact.append(pi)
                magnitude.append(pi * (1 + abs(xi) + size))
                grad_exact.append(pi * (gi - mean_g))
                grad_magnitude.append((1 + size) * pi * (abs(gi) + mean_abs_g))
    check("softmax", y.data.reshape(-1), exact, magnitude=magnitude)
    check("d softmax", t.grad.reshape(-1), grad_exact, magnitude=grad_magnitude)
    np.testing.assert_allclose(y.data.sum(axis=-1), 1.0, rtol=0, atol=1e-14)


# One term dominates: the result is tiny and the shifted form rounds 1 + tiny to 1 before the log.
DOMINATED_ROWS = [[0.0, -30.0], [0.0, -40.0], [0.0, -35.0, -36.0], [5.0, -30.0], [1e3, 960.0]]


@pytest.mark.parametrize("row", DOMINATED_ROWS)
def test_logsumexp_and_log_softmax_are_relatively_accurate_when_one_term_dominates(row):
    """Relative accuracy, as well conditioned as it is: the result lse, and log_softmax_i, are
    judged against 1e-13 (|result| + sum_j p_j |x_j - max|) (the condition of the log of a sum
    of positive terms), so e.g. logsumexp([0, -40]) must be 4.25e-18 to 1e-13 * 40 relatively,
    and log_softmax([1e3, 960])[0] = -4.25e-18 likewise (not 0)."""
    x = np.array(row)
    with strict():
        lse = Tensor(x).logsumexp().data
        log_p = Tensor(x).log_softmax().data
    with decimal.localcontext(HP):
        drow = list(dec_array(x))
        exact_lse, exact_log_p, p, m = row_references(drow)
        spread = sum(pj * abs(xj - m) for pj, xj in zip(p, drow))
        check("logsumexp", lse, exact_lse, magnitude=abs(exact_lse) + spread)
        check("log_softmax", log_p, exact_log_p,
              magnitude=[abs(lp) + spread for lp in exact_log_p])


# =============================================================================================
# 2. Location-scale families: Normal, Laplace, Logistic, Gumbel
@high_precision
def standard_law(family, eps: Dec) -> dict:
    """log f0(eps), its first two derivatives, and the sizes of their terms."""
    if family is D.Normal:
        return dict(f=-eps * eps / 2 - LOG_2PI / 2, f_size=eps * eps / 2 + LOG_2PI / 2,
                    d1=-eps, d1_size=abs(eps), d2=Dec(-1), entropy=Dec("0.5") + LOG_2PI / 2)
    if family is D.Laplace:
        return dict(f=-abs(eps) - LOG_2, f_size=abs(eps) + LOG_2,
                    d1=-Dec((eps > 0) - (eps < 0)), d1_size=Dec(1), d2=Dec(0), entropy=1 + LOG_2)
    if family is D.Logistic:
        s = d_sigmoid(-eps)
        return dict(f=-eps - 2 * d_softplus(-eps), f_size=abs(eps) + 2 * d_softplus(-eps),
                    d1=2 * s - 1, d1_size=1 + 2 * s, d2=-2 * s * (1 - s), entropy=Dec(2))
    if family is D.Gumbel:
        e = d_exp(-eps)
        return dict(f=-(eps + e), f_size=abs(eps) + e, d1=e - 1, d1_size=1 + e, d2=-e,
                    entropy=1 + EULER_GAMMA)
    raise AssertionError(family)


@high_precision
def location_scale_reference(family, loc, scale, value) -> dict:
    """log q(value) = log f0(eps) - log(scale), eps = (value - loc) / scale (exact), with its
    gradients and magnitudes; the magnitudes include |d/deps| * |eps|, the effect of the two
    roundings in computing eps."""
    loc, scale, value = dec(loc), dec(scale), dec(value)
    eps = (value - loc) / scale
    law = standard_law(family, eps)
    log_scale = d_ln(scale)
    d1, d2 = law["d1"], law["d2"]
    return dict(
        log_prob=law["f"] - log_scale,
        log_prob_size=law["f_size"] + abs(log_scale) + abs(d1 * eps),
        d_value=d1 / scale, d_loc=-d1 / scale,
        d_loc_size=(law["d1_size"] + abs(d2 * eps)) / scale,
        d_scale=-(d1 * eps + 1) / scale,
        d_scale_size=(law["d1_size"] * abs(eps) + 1 + abs(d2 * eps * eps)) / scale,
        entropy=law["entropy"] + log_scale, entropy_size=abs(law["entropy"]) + abs(log_scale),
        d_entropy_scale=1 / scale,
    )


LOCATION_SCALE = [D.Normal, D.Laplace, D.Logistic, D.Gumbel]


@st.composite
def location_scale_cases(draw, family):
    """(loc, scale, value) arrays of 1..4 entries: value = loc + scale * t, with t from +-1e3
    (Gumbel: t >= -700, and t >= (-700 - log scale) / 2 for scale < 1, beyond which the exact
    gradient e^(-eps) / scale can exceed the largest double)."""
    n = draw(st.integers(1, 4))
    locs, scale_values, values = [], [], []
    for _ in range(n):
        loc = draw(wide())
        scale = draw(scales())
        low = -1e3
        if family is D.Gumbel:  # rounding of loc + scale t can double eps when scale < ulp(loc)
            low = -700.0 if scale >= 1 else (-700.0 - math.log(scale)) / 2
        t = draw(st.one_of(st.floats(low, 1e3), st.sampled_from([0.0, 1.0, -1.0, 1e3, max(low, -30.0)])))
        locs.append(loc)
        scale_values.append(scale)
        values.append(loc + scale * t)
    return np.array(locs), np.array(scale_values), np.array(values)


@pytest.mark.parametrize("family", LOCATION_SCALE, ids=lambda f: f.__name__)
@settings(max_examples=40)
@given(data=st.data())
def test_location_scale_log_prob_and_gradients(family, data):
    """log_prob and its gradients in loc, scale and value against the exact formula (rtol 1e-12
    for gradients, 1e-13 for values; magnitudes in ``location_scale_reference``), with scales down
    to 1e-300: e.g. Normal(0, 1e-300).log_prob(1e-300) = 689.85... and d/dscale = 0."""
    loc, scale, value = data.draw(location_scale_cases(family))
    _check_location_scale_log_prob(family, loc, scale, value)


@pytest.mark.parametrize("family", LOCATION_SCALE, ids=lambda f: f.__name__)
@pytest.mark.parametrize("loc, scale, value", [
    (0.0, 1e-300, 1e-300), (1e3, 1e-300, 1e3), (-1e3, 1e-300, -1e3 + 0.0), (3.0, 1e-300, 3.0),
    (0.0, 1e-300, -3e-300), (1e3, 1e3, -1e3), (-1e3, 1e-3, 1e3 * 1e-3 - 1e3), (0.0, 1e3, 1e6),
])
def test_location_scale_log_prob_at_the_edges(family, loc, scale, value):
    """The same checks at fixed extreme points (tiny and large scales, far values)."""
    _check_location_scale_log_prob(family, np.array([loc]), np.array([scale]), np.array([value]))


def _check_location_scale_log_prob(family, loc, scale, value):
    loc_t, scale_t = Tensor(loc, requires_grad=True), Tensor(scale, requires_grad=True)
    value_t = Tensor(value, requires_grad=True)
    with strict():
        log_prob = family(loc_t, scale_t).log_prob(value_t)
        log_prob.backward(np.ones(log_prob.shape))
    refs = [location_scale_reference(family, *args) for args in zip(loc, scale, value)]
    column = lambda key: [r[key] for r in refs]  # noqa: E731
    check(f"{family.__name__}.log_prob", log_prob.data, column("log_prob"),
          magnitude=column("log_prob_size"))
    check("d/dvalue", value_t.grad, column("d_value"), 1e-12, column("d_loc_size"))
    check("d/dloc", loc_t.grad, column("d_loc"), 1e-12, column("d_loc_size"))
    check("d/dscale", scale_t.grad, column("d_scale"), 1e-12, column("d_scale_size"))


@pytest.mark.parametrize("family", LOCATION_SCALE, ids=lambda f: f.__name__)
@settings(max_examples=30)
@given(loc=wide(), scale=scales(), seed=st.integers(0, 2**32 - 1))
@example(loc=0.0, scale=1e-300, seed=0)
@example(loc=1e3, scale=1e-300, seed=0)
def test_location_scale_entropy_and_rsample(family, loc, scale, seed):
    """entropy = H0 + log(scale) (rtol 1e-13 of |H0| + |log scale|; e.g. Normal at 1e-300 is
    -689.36...) with d/dscale = 1/scale; rsample is finite, equals loc + scale * eps with
    dz/dloc = 1 and dz/dscale = eps, and its log_prob is finite and exact."""
    loc_t, scale_t = leaf(loc), leaf(scale)
    dist = family(loc_t, scale_t)
    with strict():
        entropy = dist.entropy()
        entropy.backward(np.ones(1))
    ref = location_scale_reference(family, loc, scale, loc)
    check("entropy", entropy.data, [ref["entropy"]], magnitude=[ref["entropy_size"]])
    check("d entropy/dscale", scale_t.grad, [ref["d_entropy_scale"]])

    loc_t.grad = scale_t.grad = None
    with strict():
        z = dist.rsample(rng=np.random.default_rng(seed))
        z.backward(np.ones(1))
    assert np.all(np.isfinite(z.data)) and np.all(np.isfinite(scale_t.grad))
    np.testing.assert_array_equal(loc_t.grad, [1.0])                    # dz/dloc = 1
    np.testing.assert_array_equal(z.data, loc + scale * scale_t.grad)   # z = loc + scale * eps
    assert np.all(np.abs(scale_t.grad) < 40)                              # eps is tame noise
    with strict():
        log_prob = family(loc, scale).log_prob(z.detach())
    ref = location_scale_reference(family, loc, scale, z.data[0])
    check("log_prob(rsample)", log_prob.data, [ref["log_prob"]], magnitude=[ref["log_prob_size"]])


# =============================================================================================
# 3. LogNormal and Uniform
@high_precision
def lognormal_reference(loc, scale, value) -> dict:
    """log q(v) = log N(log v; loc, scale) - log v (exact log v). Magnitudes include the effect
    of rounding log v to float64 (absolute 2^-52 |log v|, divided by scale inside eps)."""
    loc, scale, value = dec(loc), dec(scale), dec(value)
    log_v = d_ln(value)
    eps = (log_v - loc) / scale
    log_scale = d_ln(scale)
    slack = abs(eps) + abs(log_v) / scale  # |eps| u from eps's roundings, |log v| u / scale from log v
    return dict(
        log_prob=-eps * eps / 2 - LOG_2PI / 2 - log_scale - log_v,
        log_prob_size=eps * eps / 2 + LOG_2PI / 2 + abs(log_scale) + abs(log_v) + abs(eps) * slack,
        d_loc=eps / scale, d_loc_size=(abs(eps) + slack) / scale,
        d_scale=(eps * eps - 1) / scale, d_scale_size=(eps * eps + 1 + 2 * abs(eps) * slack) / scale,
        d_value=(-eps / scale - 1) / value, d_value_size=((abs(eps) + slack) / scale + 1) / value,
        entropy=loc + Dec("0.5") + LOG_2PI / 2 + log_scale,
        entropy_size=abs(loc) + Dec("0.5") + LOG_2PI / 2 + abs(log_scale),
    )


@st.composite
def lognormal_cases(draw):
    """(loc, scale, value > 0) with log value in +-700. Where scale < 1e-6 max(1, |log value|)
    the density's sensitivity to the unavoidable rounding of log(value) (relative 2^-53) would
    exceed its own size, so there value = 1 (log 1 = 0 exactly) and loc = -scale * t.
    Cases whose exact d/dvalue, (-eps / scale - 1) / value, would overflow are left out."""
    scale = draw(scales())
    t = draw(st.floats(-1e3, 1e3))
    log_value = draw(st.one_of(st.floats(-700.0, 700.0), st.sampled_from([0.0, 700.0, -700.0])))
    if scale < 1e-6 * max(1.0, abs(log_value)):
        return -scale * t, scale, 1.0
    value = math.exp(log_value)
    assume((abs(t) / scale + 1) / value < 1e300)
    return math.log(value) - scale * t, scale, value


@settings(max_examples=60)
@given(lognormal_cases())
@example((0.0, 1e-300, 1.0))
@example((-1e-298, 1e-300, 1.0))
@example((700.0, 1e3, 1e-300))
def test_lognormal_log_prob_entropy_and_gradients(case):
    """LogNormal.log_prob(value) and its gradients (rtol 1e-13, 1e-12 for gradients, of the
    magnitudes in ``lognormal_reference``), entropy (rtol 1e-13), scales down to 1e-300."""
    loc, scale, value = case
    loc_t, scale_t = leaf(loc), leaf(scale)
    value_t = leaf(value)
    dist = D.LogNormal(loc_t, scale_t)
    with strict():
        log_prob = dist.log_prob(value_t)
        log_prob.backward(np.ones(1))
    ref = lognormal_reference(loc, scale, value)
    check("LogNormal.log_prob", log_prob.data, [ref["log_prob"]], magnitude=[ref["log_prob_size"]])
    check("d/dloc", loc_t.grad, [ref["d_loc"]], 1e-12, [ref["d_loc_size"]])
    check("d/dscale", scale_t.grad, [ref["d_scale"]], 1e-12, [ref["d_scale_size"]])
    check("d/dvalue", value_t.grad, [ref["d_value"]], 1e-12, [ref["d_value_size"]])
    loc_t.grad = scale_t.grad = None
    with strict():
        entropy = dist.entropy()
        entropy.backward(np.ones(1))
    check("LogNormal.entropy", entropy.data, [ref["entropy"]], magnitude=[ref["entropy_size"]])
    np.testing.assert_array_equal(loc_t.grad, [1.0])
    check("d entropy/dscale", scale_t.grad, [1 / dec(scale)])


@settings(max_examples=30)
@given(loc=st.floats(-600.0, 600.0), scale=scales(-300, 1), seed=st.integers(0, 2**32 - 1))
@example(loc=0.0, scale=1e-300, seed=0)
@example(loc=600.0, scale=10.0, seed=0)
def test_lognormal_rsample(loc, scale, seed):
    """z = exp(loc + scale eps) is finite and positive, with dz/dloc = z exactly and a finite
    dz/dscale = z eps; log_prob(z) is exact wherever it is well conditioned (see lognormal_cases)."""
    loc_t, scale_t = leaf(loc), leaf(scale)
    with strict():
        z = D.LogNormal(loc_t, scale_t).rsample(rng=np.random.default_rng(seed))
        z.backward(np.ones(1))
    assert np.all(z.data > 0) and np.all(np.isfinite(z.data)) and np.all(np.isfinite(scale_t.grad))
    np.testing.assert_array_equal(loc_t.grad, z.data)
    if scale >= 1e-6 * max(1.0, abs(math.log(z.data[0]))):
        with strict():
            log_prob = D.LogNormal(loc, scale).log_prob(z.detach())
        ref = lognormal_reference(loc, scale, z.data[0])
        check("log_prob(rsample)", log_prob.data, [ref["log_prob"]], magnitude=[ref["log_prob_size"]])


@st.composite
def uniform_cases(draw):
    """(low, high, value) with high - low from 1e-300 to 1e3 (at least one ulp of low) and
    value in [low, high)."""
    low = draw(wide())
    width = draw(scales())
    high = low + width
    if not high > low:
        high = np.nextafter(low, np.inf)
    fraction = draw(st.floats(0.0, 1.0, exclude_max=True))
    value = low + (high - low) * fraction
    if not low <= value < high:
        value = low
    return low, float(high), value


@settings(max_examples=60)
@given(uniform_cases())
@example((0.0, 1e-300, 5e-301))
@example((1e3, float(np.nextafter(1e3, np.inf)), 1e3))
@example((-1e3, 1e3, 999.0))
def test_uniform_log_prob_entropy_and_gradients(case):
    """log_prob = -log(high - low) inside, entropy = log(high - low), gradients +-1/(high - low),
    against the exact width: high - low is exact or rounded once (relative 2^-53), which moves
    its log by up to 2^-53, so rtol 1e-13 of |log(high - low)| + 1 (1e-13 relative for the
    gradients)."""
    low, high, value = case
    low_t, high_t = leaf(low), leaf(high)
    dist = D.Uniform(low_t, high_t)
    with strict():
        log_prob = dist.log_prob(np.array([value]))
        log_prob.backward(np.ones(1))
    with decimal.localcontext(HP):
        width = dec(high) - dec(low)
        check("Uniform.log_prob", log_prob.data, [-d_ln(width)], magnitude=[abs(d_ln(width)) + 1])
        check("d/dlow", low_t.grad, [1 / width])
        check("d/dhigh", high_t.grad, [-1 / width])
        low_t.grad = high_t.grad = None
        with strict():
            entropy = dist.entropy()
            entropy.backward(np.ones(1))
        check("Uniform.entropy", entropy.data, [d_ln(width)], magnitude=[abs(d_ln(width)) + 1])
        check("d entropy/dhigh", high_t.grad, [1 / width])


@settings(max_examples=30)
@given(uniform_cases(), st.integers(0, 2**32 - 1))
@example((0.0, 1e-300, 0.0), 0)
def test_uniform_rsample(case, seed):
    """z = low + (high - low) u is finite and inside [low, high] (rounding may reach high: see
    the test below), with dz/dlow = 1 - u and dz/dhigh = u in [0, 1]."""
    low, high, _ = case
    low_t, high_t = leaf(low), leaf(high)
    with strict():
        z = D.Uniform(low_t, high_t).rsample((8,), rng=np.random.default_rng(seed))
        z.sum().backward()
    assert np.all((low <= z.data) & (z.data <= high))
    assert 0 < low_t.grad[0] < 8 and 0 < high_t.grad[0] < 8
    np.testing.assert_allclose(low_t.grad + high_t.grad, [8.0], rtol=1e-15)  # sum of (1 - u) + u


@pytest.mark.parametrize("low, high", [(1e3, float(np.nextafter(1e3, np.inf))), (1e3, 1e3 + 1e-10),
                                       (1.0, 1.0 + 2.0 ** -50)])
def test_uniform_rsample_stays_inside_the_support(low, high):
    """Every reparameterized draw lies in [low, high), so its log_prob is finite."""
    with strict():
        dist = D.Uniform(low, high)
        z = dist.rsample((4000,), rng=np.random.default_rng(0))
        assert np.all(z.data < high), f"{int(np.sum(z.data >= high))} of 4000 draws equal high"
        assert np.all(np.isfinite(dist.log_prob(z).data))


# =============================================================================================
# 4. Bernoulli and Categorical (no rsample: sample() is checked instead)
@high_precision
def bernoulli_reference_from_logits(logit) -> dict:
    l = dec(logit)  # noqa: E741
    log_p, log_q = -d_softplus(-l), -d_softplus(l)
    p, q = d_sigmoid(l), d_sigmoid(-l)
    return dict(log_p=log_p, log_q=log_q, d_log_p=q, d_log_q=-p,
                entropy=-(p * log_p + q * log_q), d_entropy=-l * p * q,
                d_entropy_size=p * q * (abs(log_p) + abs(log_q) + 2))


@high_precision
def bernoulli_reference_from_probs(prob) -> dict:
    p = dec(prob)
    q = 1 - p  # relatively exact (rounded at 80 digits only when p is tiny and q ~ 1)
    log_p, log_q = d_ln(p), d_log1p(-p)
    return dict(log_p=log_p, log_q=log_q, d_log_p=1 / p, d_log_q=-1 / q,
                entropy=-(p * log_p + q * log_q), d_entropy=log_q - log_p,
                d_entropy_size=abs(log_p) + abs(log_q) + 2)


@settings(max_examples=60)
@given(st.one_of(st.tuples(st.just("logits"), wide()), st.tuples(st.just("probs"), probabilities())),
       st.integers(0, 2**32 - 1))
@example(("logits", 1e3), 0)
@example(("logits", -1e3), 0)
@example(("logits", 40.0), 0)
@example(("probs", 1e-300), 0)
@example(("probs", 1.0 - 2.0 ** -53), 0)
def test_bernoulli_log_prob_entropy_sample(parameter, seed):
    """log P(1), log P(0), entropy and their gradients in the logit or the probability, against
    the exact values (rtol 1e-13 relative; entropy gradient 1e-13 of its terms' size), and a
    sample whose log_prob is finite; logits up to +-1e3, probabilities down to 1e-300."""
    kind, value = parameter
    param = Tensor(np.array([value]), requires_grad=True)
    dist = D.Bernoulli(**{kind: param})
    reference = bernoulli_reference_from_logits if kind == "logits" else bernoulli_reference_from_probs
    ref = reference(value)
    for outcome, key in ((1.0, "log_p"), (0.0, "log_q")):
        param.grad = None
        with strict():
            log_prob = dist.log_prob(np.array([outcome]))
            log_prob.backward(np.ones(1))
        check(f"log P({outcome:g})", log_prob.data, [ref[key]])
        check(f"d log P({outcome:g})", param.grad, [ref["d_" + key]])
    param.grad = None
    with strict():
        entropy = dist.entropy()
        entropy.backward(np.ones(1))
    check("Bernoulli.entropy", entropy.data, [ref["entropy"]])
    check("d entropy", param.grad, [ref["d_entropy"]], magnitude=[ref["d_entropy_size"]])
    with strict():
        draws = dist.sample((16,), rng=np.random.default_rng(seed))
        log_prob = dist.log_prob(draws)
    assert set(np.unique(draws.data)) <= {0.0, 1.0}
    assert np.all(np.isfinite(log_prob.data)) and np.all(log_prob.data <= 0)


@st.composite
def categorical_cases(draw):
    """("logits", row of 2..5 wide floats) or ("probs", a probability vector with entries down
    to 1e-300)."""
    k = draw(st.integers(2, 5))
    if draw(st.booleans()):
        return "logits", np.array(draw(st.lists(wide(), min_size=k, max_size=k)))
    tiny = draw(st.lists(st.floats(-300, -1).map(lambda e: 10.0 ** e), min_size=k - 1, max_size=k - 1))
    probs = np.array(tiny + [0.0])
    probs[-1] = 1.0 - probs[:-1].sum()
    return "probs", np.array(draw(st.permutations(list(probs))))


@settings(max_examples=60)
@given(categorical_cases(), st.integers(0, 2**32 - 1))
@example(("logits", np.array([1e3, -1e3, 0.0])), 0)
@example(("logits", np.array([40.0, 0.0])), 0)
@example(("probs", np.array([1e-300, 1.0 - 1e-300])), 0)
def test_categorical_log_prob_entropy_sample(case, seed):
    """log P(i) for every class and the entropy against the exact softmax, with gradients.

    log P(i) = log_softmax_i: |error| <= 1e-13 (1 + |l_i| + max|l|) for logits (as for
    log_softmax), relative 1e-13 for probs; gradient onehot - p: 1e-13 (1 + max|l|) (1 + p_i).
    Entropy: 1e-13 (H + sum_i p_i (1 + |log p_i| + max|l|)). The relative accuracy of log P of a
    dominant class is the test below.
    """
    kind, values = case
    param = Tensor(values, requires_grad=True)
    dist = D.Categorical(**{kind: param})
    with decimal.localcontext(HP):
        row = list(dec_array(values))
        if kind == "logits":
            _, log_p, p, _ = row_references(row)
            size = max(abs(v) for v in row)
        else:
            p, log_p, size = row, [d_ln(v) for v in row], Dec(0)
        for i in range(len(row)):
            param.grad = None
            with strict():
                log_prob = dist.log_prob(np.array([float(i)]))
                log_prob.backward(np.ones(1))
            if kind == "logits":
                check(f"log P({i})", log_prob.data, [log_p[i]],
                      magnitude=[1 + abs(row[i]) + size + abs(log_p[i])])
                check(f"d log P({i})/dlogits", param.grad, [int(j == i) - pj for j, pj in enumerate(p)],
                      magnitude=[(1 + size) * (1 + pj) for pj in p])
            else:
                check(f"log P({i})", log_prob.data, [log_p[i]])
                check(f"d log P({i})/dprobs", param.grad,
                      [1 / pj if j == i else Dec(0) for j, pj in enumerate(p)])
        param.grad = None
        with strict():
            entropy = dist.entropy()
            entropy.backward(np.ones(1) if entropy.shape else None)
        exact_entropy = -sum(pi * lpi for pi, lpi in zip(p, log_p))
        check("Categorical.entropy", entropy.data, exact_entropy,
              magnitude=exact_entropy + sum(pi * (1 + abs(lpi) + size) for pi, lpi in zip(p, log_p)))
        if kind == "logits":  # dH/dl_j = -p_j (log p_j + H)
            grad = [-pj * (lpj + exact_entropy) for pj, lpj in zip(p, log_p)]
            sizes = [(1 + size) * pj * (abs(lpj) + exact_entropy + 2) for pj, lpj in zip(p, log_p)]
        else:  # dH/dp_j = -(log p_j + 1)
            grad = [-(lpj + 1) for lpj in log_p]
            sizes = [abs(lpj) + 1 for lpj in log_p]
        check("d entropy", param.grad, grad, magnitude=sizes)
    with strict():
        draws = dist.sample((16,), rng=np.random.default_rng(seed))
        log_prob = dist.log_prob(draws)
    assert np.all(np.isfinite(log_prob.data)) and np.all(log_prob.data <= 0)


@pytest.mark.parametrize("logits", [[40.0, 0.0], [30.0, 0.0, -1.0], [1e3, 965.0]])
def test_categorical_dominant_class_is_relatively_accurate(logits):
    """Relative accuracy where the mathematics is well conditioned: log P(dominant class) to
    1e-13 (|log P| + sum_j p_j |l_j - max|), the entropy to
    1e-13 (H + sum_j p_j |l_j - max| |log p_j|)."""
    dist = D.Categorical(logits=np.array(logits))
    with strict():
        log_p0 = dist.log_prob(0.0).data
        entropy = dist.entropy().data
    with decimal.localcontext(HP):
        row = list(dec_array(logits))
        _, log_p, p, m = row_references(row)
        spread = sum(pj * abs(lj - m) for pj, lj in zip(p, row))
        exact_entropy = -sum(pi * lpi for pi, lpi in zip(p, log_p))
        check("log P(0)", log_p0, log_p[0], magnitude=abs(log_p[0]) + spread)
        condition = sum(pj * abs(lj - m) * abs(lpj) for pj, lj, lpj in zip(p, row, log_p))
        check("entropy", entropy, exact_entropy, magnitude=exact_entropy + condition)


# =============================================================================================
# 5. The relaxed families at temperature 0.01
@high_precision
def relaxed_bernoulli_logit_reference(tau, logit, x) -> dict:
    """log q(x) = log tau - s - 2 softplus(-s), s = tau x - l, with gradients and term sizes."""
    tau, l, x = dec(tau), dec(logit), dec(x)  # noqa: E741
    s = tau * x - l
    sig = d_sigmoid(-s)
    f1 = 2 * sig - 1                                   # d/ds of -s - 2 softplus(-s)
    s_size = abs(tau * x) + abs(l)
    return dict(value=d_ln(tau) - s - 2 * d_softplus(-s),
                value_size=abs(d_ln(tau)) + abs(s) + 2 * d_softplus(-s) + s_size,
                d_x=f1 * tau, d_logit=-f1, d_tau=1 / tau + f1 * x,
                d_size=(1 + 2 * sig) * (1 + s_size),
                d_tau_size=1 / tau + (1 + 2 * sig) * abs(x) * (1 + s_size))


@high_precision
def relaxed_bernoulli_reference(tau, logit, y) -> dict:
    """log q(y) = log q_logit(logit(y)) - log y - log(1 - y), with exact logs, and d/dy."""
    yd = dec(y)
    log_y, log_1my = d_ln(yd), d_log1p(-yd)
    tau_d, l = dec(tau), dec(logit)  # noqa: E741
    x = log_y - log_1my
    s = tau_d * x - l
    sig = d_sigmoid(-s)
    f1 = 2 * sig - 1
    s_size = tau_d * abs(x) + abs(l)
    return dict(value=d_ln(tau_d) - s - 2 * d_softplus(-s) - log_y - log_1my,
                value_size=(abs(d_ln(tau_d)) + abs(s) + 2 * d_softplus(-s) + abs(log_y) + abs(log_1my)
                            + (1 + 2 * sig) * tau_d * (abs(log_y) + abs(log_1my))),
                d_y=f1 * tau_d * (1 / yd + 1 / (1 - yd)) - 1 / yd + 1 / (1 - yd),
                d_y_size=((1 + 2 * sig) * tau_d + 1) * (1 / yd + 1 / (1 - yd)) * (1 + s_size))


RELAXED_LOGITS = st.one_of(st.tuples(st.just("logits"), wide()),
                           st.tuples(st.just("probs"), probabilities()))


@settings(max_examples=40)
@given(RELAXED_LOGITS, st.integers(0, 2**32 - 1))
@example(("logits", 1e3), 0)
@example(("logits", -1e3), 0)
@example(("probs", 1e-300), 0)
def test_relaxed_bernoulli_rsample_at_low_temperature(parameter, seed):
    """At temperature 0.01 (logits up to +-1e3, probs down to 1e-300): rsample and rsample_logit
    are finite with finite gradients in the temperature and the parameter, y is in [0, 1],
    log_prob_logit(rsample_logit) is exact (rtol 1e-13 of its terms, gradients 1e-12), and
    log_prob(rsample) is finite wherever the draw did not round to 0 or 1 (documented)."""
    kind, value = parameter
    param = Tensor(np.array([value] * 8), requires_grad=True)
    tau = Tensor(np.array(TEMPERATURE), requires_grad=True)
    dist = D.RelaxedBernoulli(tau, **{kind: param})
    with strict():
        y = dist.rsample(rng=np.random.default_rng(seed))
        y.sum().backward()
    assert np.all((0 <= y.data) & (y.data <= 1))
    assert np.all(np.isfinite(param.grad)) and np.isfinite(tau.grad)

    param.grad = tau.grad = None
    with strict():
        x = dist.rsample_logit(rng=np.random.default_rng(seed))
        x.sum().backward()
    assert np.all(np.isfinite(x.data)) and np.all(np.isfinite(param.grad)) and np.isfinite(tau.grad)

    with strict():
        logits = dist.logits.data
    x_t = Tensor(x.data, requires_grad=True)
    tau2 = Tensor(np.array(TEMPERATURE), requires_grad=True)
    logits_t = Tensor(logits, requires_grad=True)
    with strict():
        log_q = D.RelaxedBernoulli(tau2, logits=logits_t).log_prob_logit(x_t)
        log_q.sum().backward()
    refs = [relaxed_bernoulli_logit_reference(TEMPERATURE, l, xv) for l, xv in zip(logits, x.data)]
    check("log_prob_logit", log_q.data, [r["value"] for r in refs],
          magnitude=[r["value_size"] for r in refs])
    check("d/dx", x_t.grad, [r["d_x"] for r in refs], 1e-12, [r["d_size"] for r in refs])
    check("d/dlogits", logits_t.grad, [r["d_logit"] for r in refs], 1e-12, [r["d_size"] for r in refs])
    with decimal.localcontext(HP):
        check("d/dtemperature", tau2.grad, sum(r["d_tau"] for r in refs), 1e-12,
              sum(r["d_tau_size"] for r in refs))

    inside = (y.data > 0) & (y.data < 1)
    with strict():
        log_prob = dist.log_prob(y.detach())
    assert np.all(np.isfinite(log_prob.data[inside])) and np.all(np.isneginf(log_prob.data[~inside]))


@settings(max_examples=40)
@given(wide(), st.one_of(probabilities(), st.sampled_from([1e-300, 0.5, 1 - 2.0 ** -53])),
       st.sampled_from([TEMPERATURE, 0.1, 1.0, 10.0]))
@example(1e3, 1e-300, TEMPERATURE)
@example(-1e3, 1.0 - 2.0 ** -53, TEMPERATURE)
def test_relaxed_bernoulli_log_prob(logit, y, temperature):
    """log_prob(y) for y in (0, 1) down to 1e-300 from either edge, logits up to +-1e3, against
    the exact density (rtol 1e-13 of its terms' size) and d/dy (rtol 1e-12)."""
    y_t = Tensor(np.array([y]), requires_grad=True)
    with strict():
        log_prob = D.RelaxedBernoulli(temperature, logits=logit).log_prob(y_t)
        log_prob.backward(np.ones(1))
    ref = relaxed_bernoulli_reference(temperature, logit, y)
    check("RelaxedBernoulli.log_prob", log_prob.data, [ref["value"]], magnitude=[ref["value_size"]])
    check("d/dy", y_t.grad, [ref["d_y"]], 1e-12, [ref["d_y_size"]])


@high_precision
def concrete_reference(tau, logits, y) -> dict:
    """log q(y) = log (k-1)! + (k-1) log tau + sum(l - (tau+1) log y) - k lse(l - tau log y),
    with gradients in logits (1 - k w, w = softmax(l - tau log y)) and tau, and the terms' sizes."""
    tau, l, y = dec(tau), [dec(v) for v in logits], [dec(v) for v in y]  # noqa: E741
    k = len(l)
    log_y = [d_ln(v) for v in y]
    a = [li - tau * lyi for li, lyi in zip(l, log_y)]
    lse = d_logsumexp(a)
    w = [d_exp(ai - lse) for ai in a]
    log_fact = d_ln(Dec(math.factorial(k - 1)))
    value = (log_fact + (k - 1) * d_ln(tau) + sum(li - (tau + 1) * lyi for li, lyi in zip(l, log_y))
             - k * lse)
    size = (log_fact + (k - 1) * abs(d_ln(tau))
            + sum(abs(li) + (tau + 1) * abs(lyi) for li, lyi in zip(l, log_y))
            + k * (abs(lse) + max(abs(ai) for ai in a)))
    # w_i = exp(a_i - lse) carries a relative error of about (1 + |a_i| + |lse|) roundings
    w_error = [wi * (1 + abs(ai) + abs(lse)) for wi, ai in zip(w, a)]
    d_tau = (k - 1) / tau - sum(log_y) + k * sum(wi * lyi for wi, lyi in zip(w, log_y))
    d_tau_size = ((k - 1) / tau + sum(abs(v) for v in log_y)
                  + k * sum(we * abs(lyi) for we, lyi in zip(w_error, log_y)))
    return dict(value=value, size=size, d_logits=[1 - k * wi for wi in w],
                d_logits_size=[1 + k * we for we in w_error], d_tau=d_tau, d_tau_size=d_tau_size)


@st.composite
def simplex_points(draw, k):
    """Points y of the open simplex with entries down to ~1e-300 (not exactly summing to 1)."""
    log_w = np.array(draw(st.lists(st.floats(-690.0, 0.0), min_size=k, max_size=k)))
    w = np.exp(log_w - log_w.max())
    return w / w.sum()


@settings(max_examples=40)
@given(st.integers(2, 4).flatmap(lambda k: st.tuples(st.lists(wide(), min_size=k, max_size=k),
                                                     simplex_points(k))))
@example(([1e3, -1e3, 0.0], np.array([1e-300, 1 - 2e-300, 1e-300])))
def test_relaxed_one_hot_categorical_log_prob(case):
    """The Concrete log-density at temperature 0.01 for logits up to +-1e3 and y with entries
    down to 1e-300: value (rtol 1e-13 of its terms' size, which include the inner logsumexp's)
    and gradients in the logits and the temperature (rtol 1e-12)."""
    logits, y = case
    logits_t = Tensor(np.array(logits), requires_grad=True)
    tau = Tensor(np.array(TEMPERATURE), requires_grad=True)
    with strict():
        log_prob = D.RelaxedOneHotCategorical(tau, logits=logits_t).log_prob(y)
        log_prob.backward()
    ref = concrete_reference(TEMPERATURE, logits, y)
    check("Concrete log_prob", log_prob.data, ref["value"], magnitude=ref["size"])
    check("d/dlogits", logits_t.grad, ref["d_logits"], 1e-12, ref["d_logits_size"])
    check("d/dtemperature", tau.grad, ref["d_tau"], 1e-12, ref["d_tau_size"])


@settings(max_examples=30)
@given(st.integers(2, 5).flatmap(lambda k: st.lists(wide(), min_size=k, max_size=k)),
       st.booleans(), st.integers(0, 2**32 - 1))
@example([1e3, -1e3, 0.0], False, 0)
@example([1e3, 1e3 - 1e-13], True, 0)
def test_relaxed_one_hot_categorical_rsample(logits, hard, seed):
    """At temperature 0.01 with logits up to +-1e3: the draw is finite, in [0, 1] and sums to 1
    (exactly one-hot with hard=True), and the gradients in the logits and the temperature of a
    weighted sum are finite."""
    logits_t = Tensor(np.array(logits), requires_grad=True)
    tau = Tensor(np.array(TEMPERATURE), requires_grad=True)
    dist = D.RelaxedOneHotCategorical(tau, logits=logits_t, hard=hard)
    weights = np.linspace(-1.0, 2.0, len(logits))
    with strict():
        y = dist.rsample((6,), rng=np.random.default_rng(seed))
        (y * weights).sum().backward()
    assert np.all(np.isfinite(y.data)) and np.all((y.data >= 0) & (y.data <= 1))
    np.testing.assert_allclose(y.data.sum(axis=-1), 1.0, rtol=0, atol=1e-14)
    if hard:
        assert set(np.unique(y.data)) <= {0.0, 1.0}
    assert np.all(np.isfinite(logits_t.grad)) and np.isfinite(tau.grad)


@pytest.mark.parametrize("make", [
    lambda: D.RelaxedBernoulli(TEMPERATURE, logits=1e3),
    lambda: D.RelaxedOneHotCategorical(TEMPERATURE, logits=[1e3, -1e3]),
], ids=["RelaxedBernoulli", "RelaxedOneHotCategorical"])
def test_relaxed_entropy_is_documented_as_not_implemented(make):
    """The relaxed families have no closed-form entropy: a clear NotImplementedError, not a NaN."""
    with pytest.raises(NotImplementedError, match="Monte Carlo"):
        make().entropy()


# =============================================================================================
# 6. BCE with logits and the VAE
@high_precision
def bce_reference(logits, x):
    """sum_j x_j l_j - softplus(l_j) per row, its terms' size, and the gradient x - sigmoid(l)."""
    values, sizes, grads, grad_sizes = [], [], [], []
    for l_row, x_row in zip(logits.reshape(-1, logits.shape[-1]), x.reshape(-1, x.shape[-1])):
        terms = [(dec(xj) * dec(lj), d_softplus(dec(lj))) for lj, xj in zip(l_row, x_row)]
        values.append(sum(a - b for a, b in terms))
        sizes.append(sum(abs(a) + b for a, b in terms))
        for lj, xj in zip(l_row, x_row):
            s = d_sigmoid(dec(lj))
            grads.append(dec(xj) - s)
            grad_sizes.append(abs(dec(xj)) + s)
    return values, sizes, grads, grad_sizes


@st.composite
def logits_and_targets(draw):
    """(logits, x) of shape (1..3, 1..6): logits up to +-1e3, targets binary or soft in [0, 1]."""
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 6)))
    logits = draw(hnp.arrays(np.float64, shape, elements=wide()))
    x = draw(hnp.arrays(np.float64, shape, elements=st.one_of(st.sampled_from([0.0, 1.0]),
                                                              st.floats(0.0, 1.0))))
    return logits, x


@settings(max_examples=60)
@given(logits_and_targets())
@example((np.array([[1e3, -1e3, 0.0, 40.0, -40.0]]), np.array([[1.0, 0.0, 1.0, 1.0, 0.0]])))
@example((np.array([[1e3, -1e3]]), np.array([[0.0, 1.0]])))
def test_bce_with_logits(case):
    """bernoulli_log_likelihood(logits, x) = sum x l - softplus(l) with its gradient x - sigmoid(l),
    and the fused primitive binary_cross_entropy_with_logits(l, t) = softplus(l) - t l elementwise
    with gradients sigmoid(l) - t and -l; logits up to +-1e3, binary and soft targets: rtol 1e-13
    of the terms' size (t l and softplus(l) cancel when the prediction is right)."""
    logits, x = case
    t = Tensor(logits, requires_grad=True)
    with strict():
        out = bernoulli_log_likelihood(t, x)
        out.backward(np.ones(out.shape))
    values, sizes, grads, grad_sizes = bce_reference(logits, x)
    check("log p(x | logits)", out.data, values, magnitude=sizes)
    check("d/dlogits", t.grad.reshape(-1), grads, magnitude=grad_sizes)

    l_t, x_t = Tensor(logits, requires_grad=True), Tensor(x, requires_grad=True)
    with strict():
        bce = binary_cross_entropy_with_logits(l_t, x_t)
        bce.backward(np.ones(bce.shape))
    with decimal.localcontext(HP):
        pairs = list(zip(dec_array(logits).ravel(), dec_array(x).ravel()))
        check("bce", bce.data.reshape(-1), [d_softplus(l) - xj * l for l, xj in pairs],
              magnitude=[d_softplus(l) + abs(xj * l) for l, xj in pairs])
        check("d bce/dlogits", l_t.grad.reshape(-1), [d_sigmoid(l) - xj for l, xj in pairs],
              magnitude=[d_sigmoid(l) + abs(xj) for l, xj in pairs])
        check("d bce/dtargets", x_t.grad.reshape(-1), [-l for l, _ in pairs])


class RecordingVAE(VAE):
    """A VAE that remembers every latent z its decoder sees (to rebuild the bounds exactly)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.latents = []

    def decode(self, z):
        self.latents.append(z.data.copy())
        return super().decode(z)


@st.composite
def extreme_vaes(draw):
    """A 6-4-2 VAE whose decoder logits reach up to +-1e3 and whose encoder gives |mu| up to
    1e3 and log sigma^2 in [-1400, 600] (sigma from e^-700 to e^300: sigma^2 underflows at the
    low end, and beyond 600 the KL's own e^(log var) would overflow), with binary inputs or
    soft ones (pixel values down to 1e-300 from either end of [0, 1])."""
    model = RecordingVAE(x_dim=6, hidden=4, z_dim=2, rng=np.random.default_rng(draw(st.integers(0, 99))))
    decoder_out = model.decoder.layers[-1]
    encoder_out = model.encoder.layers[-1]
    logit_scale = draw(scales(-3, 3))
    mu_scale, log_var_scale = draw(scales(-3, 3)), draw(st.floats(1e-3, 600.0))
    # |hidden| <= 1 (tanh): a row sum of |W| plus |b| bounds each output
    outputs = [(decoder_out, slice(None), logit_scale),
               (encoder_out, slice(0, 2), mu_scale), (encoder_out, slice(2, 4), log_var_scale)]
    for layer, column, target in outputs:
        w, b = layer.weight.data[:, column], layer.bias.data[column]
        bound = np.abs(w).sum(axis=0) + np.abs(b)
        layer.weight.data[:, column] = w * (target / bound)
        layer.bias.data[column] = b * (target / bound)
    encoder_out.bias.data[2:] += draw(st.one_of(st.floats(-800.0, 0.0), st.just(-800.0)))
    for layer in (model.encoder.layers[0], model.decoder.layers[0]):  # saturate the tanh sometimes
        factor = draw(scales(-2, 3))
        layer.weight.data *= factor
        layer.bias.data *= factor
    if draw(st.booleans()):
        x = (np.random.default_rng(draw(st.integers(0, 99))).random((3, 6)) < 0.5).astype(float)
    else:  # soft pixels, down to 1e-300 from either end of [0, 1]
        x = draw(hnp.arrays(np.float64, (3, 6), elements=st.one_of(probabilities(), st.just(0.0))))
    return model, x


@high_precision
def elbo_reference(mu, log_var, logits, x):
    """The batch mean of sum x l - softplus(l) - KL(N(mu, e^log_var) || N(0, I)), exact from the
    network's float64 outputs, and its terms' size."""
    values, sizes = bce_reference(logits, x)[:2]
    total, size = Dec(0), Dec(0)
    for value, value_size, mu_row, lv_row in zip(values, sizes, mu, log_var):
        kl_terms = [(dec(m) ** 2, d_exp(dec(lv)), Dec(1), dec(lv)) for m, lv in zip(mu_row, lv_row)]
        kl = sum(a + b - c - d for a, b, c, d in kl_terms) / 2
        total += value - kl
        size += value_size + sum(a + b + c + abs(d) for a, b, c, d in kl_terms) / 2
    n = len(values)
    return total / n, size / n


@settings(max_examples=25)
@given(extreme_vaes(), st.integers(0, 2**32 - 1))
def test_vae_elbo_with_extreme_weights(case, seed):
    """The one-sample ELBO with logits up to +-1e3 and sigma from e^-700 to e^300: finite, equal
    to the exact bound at the networks' outputs (rtol 1e-12 of its terms' size), with finite
    gradients for every parameter, and the decoder's output bias gradient exactly
    mean(x - sigmoid(logits)) (rtol 1e-12 of mean(|x| + sigmoid))."""
    model, x = case
    model.latents = []
    with strict():
        elbo = model.elbo(x, rng=np.random.default_rng(seed))
        elbo.backward()
        mu, log_var = (t.data for t in model.encode(x))
        logits = model.decode(Tensor(model.latents[0])).data
    value, size = elbo_reference(mu, log_var, logits, x)
    check("ELBO", elbo.data, value, 1e-12, size)
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and np.all(np.isfinite(parameter.grad)), name
    _, _, grads, grad_sizes = bce_reference(logits, x)
    with decimal.localcontext(HP):
        n, d = x.shape
        bias_grad = [sum(grads[row * d + j] for row in range(n)) / n for j in range(d)]
        bias_size = [sum(grad_sizes[row * d + j] for row in range(n)) / n for j in range(d)]
    check("d ELBO / d decoder output bias", model.decoder.layers[-1].bias.grad, bias_grad, 1e-12,
          bias_size)


@settings(max_examples=15)
@given(extreme_vaes(), st.integers(0, 2**32 - 1), st.sampled_from([1, 7, 50]))
def test_vae_iwae_bound_with_extreme_weights(case, seed, k):
    """log (1/k) sum_i p(x, z_i) / q(z_i | x) with log-weights that differ by thousands: finite and
    equal to the exact bound at the networks' outputs and the drawn z (rtol 1e-12 of the size of
    the log-weights' terms, which include z^2 / 2 and ((z - mu) / sigma)^2 / 2)."""
    model, x = case
    model.latents = []
    with strict():
        bound = model.iwae_bound(x, k=k, rng=np.random.default_rng(seed), chunk=20)
        mu, log_var = (t.data for t in model.encode(x))
        sigma = model.posterior(x).scale.data
        z = np.concatenate(model.latents, axis=0)                     # (k, batch, z_dim)
        logits = model.decode(Tensor(z)).data
    assert z.shape == (k,) + mu.shape
    with decimal.localcontext(HP):
        exact, size = [], []
        for b in range(x.shape[0]):
            log_w, w_size = [], Dec(0)
            for i in range(k):
                values, sizes = bce_reference(logits[i, b][None], x[b][None])[:2]
                terms = Dec(0)
                term_size = sizes[0]
                for zj, mj, sj in zip(z[i, b], mu[b], sigma[b]):
                    zj, mj, sj = dec(zj), dec(mj), dec(sj)
                    eps = (zj - mj) / sj
                    prior = -zj * zj / 2 - LOG_2PI / 2
                    posterior = -eps * eps / 2 - d_ln(sj) - LOG_2PI / 2
                    terms += prior - posterior
                    term_size += zj * zj / 2 + eps * eps / 2 + abs(d_ln(sj)) + LOG_2PI
                log_w.append(values[0] + terms)
                w_size = max(w_size, term_size)
            exact.append(d_logsumexp(log_w) - d_ln(Dec(k)))
            size.append(w_size + d_ln(Dec(k)))
    check("IWAE bound", bound, exact, 1e-12, size)


@pytest.mark.parametrize("log_var", [1e-8, -1e-6, 1e-4, 0.3, -2.0])
def test_gaussian_kl_is_accurate_and_never_negative_near_the_prior(log_var):
    """KL(N(0, e^v) || N(0, 1)) = (e^v - 1 - v) / 2 = v^2 / 4 + ..., computed as
    (expm1(v) - v) / 2: expm1 is exact to an ulp, so the error is at most a few ulps of |v| (the
    size of the terms that cancel), and the KL is never negative (the textbook exp(v) - 1 - v gave
    -3.0e-17 for v = 1e-8, where the KL is 2.5e-17)."""
    with strict():
        kl = gaussian_kl_to_standard_normal(Tensor([[0.0]]), Tensor([[log_var]])).data
    assert kl[0] >= 0.0
    with decimal.localcontext(HP):
        v = dec(log_var)
        check("KL", kl, [(d_exp(v) - 1 - v) / 2], 1e-13, [abs(v)])
