"""lgamma, digamma, trigamma and the incomplete gamma function against references computed here.

The references use Python's ``decimal`` at 90 digits and nothing from the library: Bernoulli
numbers from their recurrence with ``fractions``, pi from Machin's formula, lgamma from Stirling's
series after shifting the argument to about 60, digamma and trigamma as central differences of
that lgamma with steps relative to x (1e-20 x and 1e-12 x, so they mean as much at x = 1e-285 as
at x = 1e6), P(a, x) from its series x^a e^-x sum_n x^n / Gamma(a + n + 1), Q = 1 - P, or where
Q < 1e-40 (beyond what 1 - P can resolve) Legendre's continued fraction evaluated bottom-up, and
dP/da from a central difference of the same with a step of 1e-20. Each reference function says
its error; all are far below the tolerances. They take about a second in all.

The library is asked for double precision: lgamma within 2e-15 relative (near its zeros at 1 and
2 too), digamma and trigamma within 4e-15, and P, Q, dP/da and the Gamma sample derivative
-(dP/da)/p within 5e-14 relative, in every region (series, continued fraction, Temme's
expansion for a >= 300) and across the boundaries between them. The identities P + Q = 1,
P(1, x) = 1 - e^-x, P(1/2, x) = erf(sqrt x) and the recurrence in a are checked by hypothesis,
and dP/da against a central difference of the library's own P or Q where the reference would
need hundreds of digits (deep tails, a = 1e6).
"""
import math
import warnings
from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinygrad_reparam import Tensor, gradcheck
from tinygrad_reparam.special import gamma as G

DIGITS = 90  # the working precision of every reference computation (see each function's error)


# --- the reference, in decimal ------------------------------------------------------------------
def bernoulli_numbers(count: int) -> list:
    """B_0 .. B_count from sum_{k<=n} C(n+1, k) B_k = 0."""
    numbers = [Fraction(1)]
    for n in range(1, count + 1):
        numbers.append(-sum(math.comb(n + 1, k) * numbers[k] for k in range(n)) / (n + 1))
    return numbers


def arctan_of_inverse(n: int) -> Decimal:
    """arctan(1/n) = sum_k (-1)^k / ((2k + 1) n^(2k+1))."""
    x = Decimal(1) / n
    term, total, k = x, x, 1
    while abs(term) > Decimal(10) ** -(DIGITS + 20):
        term *= -x * x
        k += 2
        total += term / k
    return total


with localcontext() as context:
    context.prec = DIGITS + 20
    PI = 16 * arctan_of_inverse(5) - 4 * arctan_of_inverse(239)  # Machin
    HALF_LOG_2PI = (2 * PI).ln() / 2
    # Stirling's coefficients B_2k / (2k (2k - 1)), k = 1..20
    STIRLING = [Decimal(b.numerator) / Decimal(b.denominator) / (2 * k * (2 * k - 1))
                for k, b in ((k, bernoulli_numbers(40)[2 * k]) for k in range(1, 21))]


def reference_sin(x: Decimal) -> Decimal:
    term, total, k = x, x, 1
    while abs(term) > Decimal(10) ** -(DIGITS + 10):
        term *= -x * x / ((k + 1) * (k + 2))
        k += 2
        total += term
    return total


def reference_lgamma(x) -> Decimal:
    """log |Gamma(x)| at DIGITS digits: for x > 0, log Gamma(x + n) - log(x (x+1) ... (x+n-1))
    with x + n near 60 and Stirling's series to the B_40 term (truncation error below 1e-57, a
    smooth function of x, so central differences of this function are exact to DIGITS digits);
    for x < 0, the reflection formula."""
    with localcontext() as context:
        context.prec = DIGITS
        x = Decimal(x)
        if x < 0:
            reduced = x - 2 * (x / 2).to_integral_value()  # sin(pi x) = sin(pi reduced), |reduced| <= 1
            return (PI / abs(reference_sin(PI * reduced))).ln() - reference_lgamma(1 - x)
        product = Decimal(1)
        for _ in range(60 - int(x.to_integral_value())):  # x + n in [59.5, 60.5]: the same n
            product *= x                                   # for x and x +- a tiny step, so that
            x += 1                                         # the truncation error stays smooth
        w, series = 1 / (x * x), Decimal(0)
        for coefficient in reversed(STIRLING):
            series = series * w + coefficient
        return (x - Decimal("0.5")) * x.ln() - x + HALF_LOG_2PI + series / x - product.ln()


def reference_digamma_trigamma(x: float) -> tuple:
    """digamma(x) and trigamma(x) as central differences of reference_lgamma, with steps relative
    to x: h = 1e-20 |x| for the first derivative (truncation h^2 lgamma'''/6, about 1e-41 relative;
    rounding of DIGITS-digit values about 1e-67 relative) and h = 1e-12 |x| for the second
    (truncation about 1e-25, rounding about 1e-62)."""
    with localcontext() as context:
        context.prec = DIGITS
        x = Decimal(x)
        h1, h2 = abs(x) * Decimal(10) ** -20, abs(x) * Decimal(10) ** -12
        first = (reference_lgamma(x + h1) - reference_lgamma(x - h1)) / (2 * h1)
        left, middle, right = (reference_lgamma(x + d) for d in (-h2, 0, h2))
        return float(first), float((left - 2 * middle + right) / (h2 * h2))


def reference_lower(a: Decimal, x: Decimal) -> Decimal:
    """P(a, x) = x^a e^-x / Gamma(a + 1) sum_n x^n / ((a+1)...(a+n)) (positive terms only, summed
    until they are below 1e-(DIGITS + 5) of the total). Its absolute error is that of lgamma,
    about 1e-58, so Q = 1 - P from it keeps 18 digits down to Q = 1e-40, and no further."""
    term = total = Decimal(1)
    n = 0
    while n <= x or term > total * Decimal(10) ** -(DIGITS + 5):
        n += 1
        term = term * x / (a + n)
        total += term
    return (a * x.ln() - x - reference_lgamma(a + 1)).exp() * total


def reference_upper_by_fraction(a: Decimal, x: Decimal) -> Decimal:
    """Q(a, x) for the right tail (DLMF 8.9.2): x^a e^-x / Gamma(a) divided by Legendre's fraction
    x + 1 - a + 1(a - 1) / (x + 3 - a + 2(a - 2) / (x + 5 - a + ...)), evaluated from the bottom
    up (not by the library's forward Lentz recurrence), its depth doubled until two depths agree
    to DIGITS - 5 digits. Relative accuracy, so it reaches Q far below 1e-40."""
    previous, depth = None, 32
    while True:
        rest = Decimal(0)
        for j in range(depth, 1, -1):
            rest = (j - 1) * (a - (j - 1)) / (x + 2 * j - 1 - a + rest)
        fraction = x + 1 - a + rest
        if previous is not None and abs(fraction - previous) <= abs(fraction) * Decimal(10) ** (5 - DIGITS):
            return (a * x.ln() - x - reference_lgamma(a)).exp() / fraction
        previous, depth = fraction, 2 * depth


def reference(a: float, x: float) -> tuple:
    """(P, Q, dP/da, -(dP/da)/p) as floats: P from the series and Q = 1 - P, or, where Q < 1e-40
    (beyond what 1 - P can give), Q from the fraction and P = 1 - Q; dP/da = -dQ/da by a central
    difference of the same function with a step of 1e-20 (truncation about 1e-40 relative,
    rounding about 1e-70 relative)."""
    with localcontext() as context:
        context.prec = DIGITS
        a, x, step = Decimal(a), Decimal(x), Decimal(10) ** -20
        lower = reference_lower(a, x)
        upper = 1 - lower
        if upper > Decimal(10) ** -40:
            lower_da = (reference_lower(a + step, x) - reference_lower(a - step, x)) / (2 * step)
        else:
            upper = reference_upper_by_fraction(a, x)
            lower = 1 - upper
            lower_da = -(reference_upper_by_fraction(a + step, x)
                         - reference_upper_by_fraction(a - step, x)) / (2 * step)
        density = ((a - 1) * x.ln() - x - reference_lgamma(a)).exp()
        return float(lower), float(upper), float(lower_da), float(-lower_da / density)


def test_the_two_references_for_q_agree_where_both_hold():
    """The series (as 1 - P) and the fraction give the same Q where both are accurate."""
    with localcontext() as context:
        context.prec = DIGITS
        for a, x in [(0.3, 2.0), (10.0, 32.0), (37.5, 114.5), (400.0, 520.0)]:
            a, x = Decimal(a), Decimal(x)
            by_series, by_fraction = 1 - reference_lower(a, x), reference_upper_by_fraction(a, x)
            assert abs(by_series / by_fraction - 1) < Decimal(10) ** -30


# --- lgamma, digamma, trigamma ------------------------------------------------------------------
RNG = np.random.default_rng(20240612)
POSITIVE = np.concatenate([RNG.uniform(1e-3, 3.0, 40), np.array([0.999, 1.0001, 1.9999, 2.0004, 0.5, 1.5, 2.5]),
                           RNG.uniform(3.0, 12.0, 15), np.exp(RNG.uniform(np.log(12.0), np.log(1e6), 15)),
                           np.exp(RNG.uniform(np.log(1e-300), np.log(1e-3), 8))])
NEGATIVE = -RNG.uniform(0.01, 40.0, 25)
NEGATIVE = NEGATIVE[np.abs(NEGATIVE - np.round(NEGATIVE)) > 1e-3]


def test_lgamma_within_2e_15_of_the_reference_near_its_zeros_too():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours = G.lgamma_array(POSITIVE)
    expected = np.array([float(reference_lgamma(x)) for x in POSITIVE])
    np.testing.assert_allclose(ours, expected, rtol=2e-15, atol=0)


def test_lgamma_of_negative_numbers_by_reflection():
    expected = np.array([float(reference_lgamma(x)) for x in NEGATIVE])
    np.testing.assert_allclose(G.lgamma_array(NEGATIVE), expected, rtol=2e-14, atol=0)


def test_lgamma_agrees_with_math_lgamma():
    x = np.concatenate([RNG.uniform(1e-6, 30.0, 5000), np.exp(RNG.uniform(-700, 700, 5000))])
    expected = np.array([math.lgamma(v) for v in x])
    # math.lgamma is itself off by up to ~1e-15 absolute near the zeros at 1 and 2
    np.testing.assert_allclose(G.lgamma_array(x), expected, rtol=1e-14, atol=2e-15)


def test_lgamma_digamma_trigamma_at_known_points():
    euler = 0.57721566490153286
    assert G.lgamma_array(1.0) == 0.0 and G.lgamma_array(2.0) == 0.0
    np.testing.assert_allclose(G.lgamma_array([0.5, 5.0, 11.0]), [0.5 * math.log(math.pi), math.log(24),
                                                                   math.log(3628800)], rtol=1e-15)
    np.testing.assert_allclose(G.digamma_array([1.0, 0.5, 2.0]), [-euler, -euler - 2 * math.log(2), 1 - euler],
                               rtol=1e-15)
    np.testing.assert_allclose(G.trigamma_array([1.0, 0.5, 2.0]), [math.pi ** 2 / 6, math.pi ** 2 / 2,
                                                                    math.pi ** 2 / 6 - 1], rtol=1e-15)


def test_poles_and_non_finite_input():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.all(G.lgamma_array([0.0, -1.0, -7.0, np.inf, -np.inf]) == np.inf)
        assert G.digamma_array(0.0) == -np.inf and np.isnan(G.digamma_array(-3.0))
        assert np.all(G.trigamma_array([0.0, -2.0]) == np.inf)
        assert np.isnan(G.lgamma_array(np.nan)) and np.isnan(G.digamma_array(np.nan))


@pytest.mark.parametrize("points", [POSITIVE, NEGATIVE], ids=["positive", "negative"])
def test_digamma_and_trigamma_are_the_derivatives_of_the_reference_lgamma(points):
    """digamma and trigamma against central differences of the reference lgamma (steps relative to
    x, so that they mean something at x = 1e-285 as at x = 1e6)."""
    expected_digamma, expected_trigamma = np.array([reference_digamma_trigamma(x) for x in points]).T
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (trigamma(1e-285) is +inf, as its reference: no warning)
        digamma, trigamma = G.digamma_array(points), G.trigamma_array(points)
    scale = np.maximum(np.abs(expected_digamma), 1.0)  # digamma has a zero near 1.4616: absolute there
    assert np.max(np.abs(digamma - expected_digamma) / scale) < 4e-15
    np.testing.assert_allclose(trigamma, expected_trigamma, rtol=4e-15)


# --- the incomplete gamma function --------------------------------------------------------------
# (a, x) points in every region: the series (x < a + 1), the continued fraction (x >= a + 1),
# Temme's expansion (a >= 300, |x/a - 1| <= 0.3), both sides of each boundary, and the tails.
POINTS = [(a, x) for a in (0.01, 0.1, 0.5, 1.0, 2.5, 10.0, 37.5) for x in (1e-8, 0.3 * a, a, a + 0.999, a + 1.0, 3 * a + 2, 8 * a + 20)]
POINTS += [(a, lam * a) for a in (150.0, 299.9, 300.0, 1000.0)
           for lam in (0.5, 0.6999, 0.7001, 0.9, 1.0, 1.0 + 1.5 / a, 1.2, 1.2999, 1.3001)]
POINTS += [(2.0e4, 2.0e4 + k * math.sqrt(2.0e4)) for k in (-6, -1, 0, 0.5, 3, 7)]  # (tails: hypothesis)


@pytest.fixture(scope="module")
def reference_values():
    return {point: reference(*point) for point in POINTS}


@pytest.mark.parametrize("part", ["lower", "upper", "lower_da", "sample_derivative"])
def test_incomplete_gamma_within_5e_14_of_the_reference(part, reference_values):
    a, x = np.array(POINTS).T
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours = getattr(G._incomplete_gamma(a, x), part)
    expected = np.array([reference_values[point][("lower", "upper", "lower_da", "sample_derivative").index(part)]
                         for point in POINTS])
    np.testing.assert_allclose(ours, expected, rtol=5e-14, atol=0)


def test_public_array_functions_are_the_parts():
    a, x = np.array([0.3, 5.0, 400.0]), np.array([0.2, 9.0, 410.0])
    parts = G._incomplete_gamma(a, x)
    np.testing.assert_array_equal(G.gammainc_array(a, x), parts.lower)
    np.testing.assert_array_equal(G.gammaincc_array(a, x), parts.upper)
    np.testing.assert_array_equal(G.gammainc_derivative_a_array(a, x), parts.lower_da)
    np.testing.assert_array_equal(G.gamma_sample_derivative_array(a, x), parts.sample_derivative)


def test_the_uniform_expansion_coefficients_start_as_in_dlmf_8_12():
    """DLMF 8.12.11-8.12.12: c_0 = -1/3 + eta/12 - 2 eta^2/135 + eta^3/864 + ..., c_1 = -1/540 -
    eta/288 + ..., and c_2(0) = 25/6048, c_3(0) = 101/155520 (Temme's published values)."""
    c = G.TEMME_C
    np.testing.assert_allclose(c[0][:4], [-1 / 3, 1 / 12, -2 / 135, 1 / 864], rtol=1e-14)
    np.testing.assert_allclose(c[1][:2], [-1 / 540, -1 / 288], rtol=1e-14)
    np.testing.assert_allclose([c[2][0], c[3][0]], [25 / 6048, 101 / 155520], rtol=1e-13)


@pytest.mark.parametrize("a", [300.0, 1e3, 1e5, 1e7])
def test_the_three_methods_agree_where_their_regions_meet(a):
    """At |x/a - 1| = 0.3 (a >= 300) Temme's expansion meets the series and the fraction. At nine
    points 2.5e-15 apart across the boundary, x itself moves dP/da by up to 1e-12 from one point
    to the next, but steadily: every step changes its logarithm by the same amount, to 1e-13,
    and a jump between the methods would show as one step unlike the others. (Where dP/da
    underflows, a >= 1e5, it is 0 on both sides.)"""
    for edge in (0.7 * a, 1.3 * a):
        x = edge * (1 + 2.5e-15 * np.arange(-4, 5))
        by_temme = np.abs(x - a) <= G.UNIFORM_WIDTH * a
        assert by_temme.any() and not by_temme.all()  # the points straddle the boundary
        parts = G._incomplete_gamma(a, x)
        for values in (parts.sample_derivative, parts.lower_da):
            if np.all(values == 0):
                continue
            steps = np.diff(np.log(np.abs(values)))
            assert np.ptp(steps) <= 1e-13, (edge, values)


# --- identities, by hypothesis ---------------------------------------------------------------------
shapes_a = st.floats(min_value=-4.5, max_value=6.0).map(lambda e: 10.0 ** e)  # a from 3e-5 to 1e6
quantile = st.floats(min_value=-8.0, max_value=8.0)  # x = a + q sqrt(a) + q^2 (clipped at 0)


def point(a, q):
    return max(a + q * math.sqrt(a) + q * abs(q), 1e-300)


@settings(max_examples=150, deadline=None)
@given(a=shapes_a, q=quantile)
def test_lower_plus_upper_is_one_and_both_in_the_unit_interval(a, q):
    parts = G._incomplete_gamma(a, point(a, q))
    assert 0.0 <= parts.lower <= 1.0 and 0.0 <= parts.upper <= 1.0
    assert abs(parts.lower + parts.upper - 1.0) <= 4e-15


@settings(max_examples=60, deadline=None)
@given(x=st.floats(min_value=1e-6, max_value=60.0))
def test_closed_forms_at_a_one_and_a_half(x):
    np.testing.assert_allclose(G.gammainc_array(1.0, x), -math.expm1(-x), rtol=2e-15)
    # Q = K F with K = e^(log K), |log K| about x: an error of an ulp of log K is x ulps of Q
    np.testing.assert_allclose(G.gammaincc_array(1.0, x), math.exp(-x), rtol=2e-15 + 2.2e-16 * x)
    np.testing.assert_allclose(G.gammainc_array(0.5, x), math.erf(math.sqrt(x)), rtol=2e-15)
    np.testing.assert_allclose(G.gammaincc_array(0.5, x), math.erfc(math.sqrt(x)), rtol=1e-13)


@settings(max_examples=100, deadline=None)
@given(a=st.floats(min_value=-2.0, max_value=3.0).map(lambda e: 10.0 ** e), q=quantile)
def test_the_recurrence_in_a(a, q):
    """Q(a + 1, x) = Q(a, x) + x^a e^-x / Gamma(a + 1): integration by parts."""
    x = point(a, q)
    step = math.exp(a * math.log(x) - x - math.lgamma(a + 1))
    np.testing.assert_allclose(G.gammaincc_array(a + 1, x), G.gammaincc_array(a, x) + step, rtol=1e-13, atol=1e-300)


@settings(max_examples=150, deadline=None)
@given(a=shapes_a, q=quantile)
def test_derivative_in_a_is_the_central_difference_of_p_or_q(a, q):
    """dP/da = -dQ/da against a central difference (step 1e-6 min(a, sqrt a)) of whichever of P and Q is
    smaller, so that it is accurate relative to the derivative even in the deep tails."""
    x = point(a, q)
    parts = G._incomplete_gamma(a, x)
    h = 1e-6 * min(a, math.sqrt(a))  # P changes on the scale of a (small a) or sqrt(a) (large a)
    use_upper = parts.upper < parts.lower
    function = G.gammaincc_array if use_upper else G.gammainc_array
    difference = (function(a + h, x) - function(a - h, x)) / (2 * h)
    if difference == 0.0:  # both ends underflow: nothing to compare
        return
    expected = -difference if use_upper else difference
    np.testing.assert_allclose(parts.lower_da, expected, rtol=2e-6)


@settings(max_examples=150, deadline=None)
@given(a=shapes_a, q=quantile)
def test_sample_derivative_is_minus_dp_da_over_the_density(a, q):
    """Where the density and dP/da are normal numbers, -(dP/da)/p computed with the factor
    x^a e^-x / Gamma(a) cancelled equals the quotient of the two computed separately."""
    x = point(a, q)
    parts = G._incomplete_gamma(a, x)
    density = G.gamma_density_array(a, x)
    if not (1e-290 < density < 1e290 and 1e-290 < abs(parts.lower_da)):
        return
    np.testing.assert_allclose(parts.sample_derivative, -parts.lower_da / density, rtol=1e-13)


def test_edges_and_invalid_arguments():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parts = G._incomplete_gamma([2.0, 2.0, 0.3], [0.0, np.inf, 5e-324])
        np.testing.assert_array_equal(parts.lower[:2], [0.0, 1.0])
        np.testing.assert_array_equal(parts.lower_da[:2], [0.0, 0.0])
        assert parts.sample_derivative[0] == 0.0 and np.isfinite(parts.sample_derivative[2])
        bad = G._incomplete_gamma([0.0, -1.0, np.nan, 1.0, np.inf], [1.0, 1.0, 1.0, -0.5, 1.0])
        assert all(np.isnan(part).all() for part in bad)
        assert G.gamma_density_array(0.5, 0.0) == np.inf and G.gamma_density_array(1.0, 0.0) == 1.0
        assert G.gamma_density_array(2.0, 0.0) == 0.0 and G.gamma_density_array(2.0, -1.0) == 0.0


def test_arrays_broadcast_and_keep_their_shape():
    a = np.array([[0.5], [3.0], [700.0]])
    x = np.array([0.1, 1.0, 5.0, 650.0])
    for part in G._incomplete_gamma(a, x):
        assert part.shape == (3, 4)
    np.testing.assert_array_equal(G.gammainc_array(a, x)[1], G.gammainc_array(3.0, x))
    assert G.gammainc_array(2.0, np.zeros((0, 3))).shape == (0, 3)


# --- the primitives -------------------------------------------------------------------------------
def test_gradcheck_of_the_primitives():
    x = Tensor(np.array([0.3, 1.46, 2.0, 7.5, 40.0, -2.5]), requires_grad=True)
    assert gradcheck(G.lgamma, [x])
    assert gradcheck(G.digamma, [x])
    a = Tensor(np.array([0.05, 1.0, 3.0, 350.0, 2.5]), requires_grad=True)
    z = Tensor(np.array([0.01, 2.0, 1.5, 370.0, 40.0]), requires_grad=True)
    assert gradcheck(G.gammainc, [a, z])


def test_primitives_keep_float32_and_broadcast():
    x = Tensor(np.array([0.5, 3.0], dtype=np.float32), requires_grad=True)
    for fn in (G.lgamma, G.digamma):
        out = fn(x)
        out.sum().backward()
        assert out.dtype == np.float32 and x.grad.dtype == np.float32
    a = Tensor(np.array([[1.0], [2.0]]), requires_grad=True)
    z = Tensor(np.array([0.5, 1.0, 2.0]), requires_grad=True)
    p = G.gammainc(a, z)
    assert p.shape == (2, 3)
    p.sum().backward()
    assert a.grad.shape == (2, 1) and z.grad.shape == (3,)
    np.testing.assert_allclose(z.grad, (G.gamma_density_array(a.data, z.data)).sum(axis=0), rtol=1e-15)
