"""log B, the incomplete beta function, its derivatives and Student's t against references made here.

The references use Python's ``decimal`` (120 digits) and ``fractions`` and nothing from the library:

- B(a, b) exactly where Gamma is known exactly: at integers, (m-1)! (n-1)! / (m+n-1)!, and at
  half-integers through Gamma(n + 1/2) = (2n)! sqrt(pi) / (4^n n!), pi by Machin's formula;
- for a real a and an integer n, the finite sum I_x(a, n) = x^a sum_{j<n} (a)_j / j! (1-x)^j, and
  its derivative in a term by term ((a)_j / j! has the logarithmic derivative sum_{i<j} 1/(a+i)):
  I, 1 - I, dI/da and the Beta sample derivative -(dI/da)/p at any real a. Through the symmetry
  I_x(m, b) = 1 - I_(1-x)(b, m) the same sums give dI/db at any real b.

The library is asked for 1e-13 relative (the errors measured are below 9e-14 for parameters up
to 640), in the two regions of the continued fraction and on both sides of the flip. Closed forms
(I_x(1, b) = 1 - (1-x)^b, I_x(a, 1) = x^a, I_x(1/2, 1/2) = (2/pi) asin(sqrt x), the Student t at
df = 1 and 2), the symmetry, the recurrence in a, and central differences of the library's own I
for the derivatives at random points are checked with hypothesis.
"""
import math
from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, strategies as st

from tinygrad_reparam import Tensor, gradcheck
from tinygrad_reparam.special import beta as B
from tinygrad_reparam.special.gamma import digamma_array, trigamma_array

DIGITS = 120
TOLERANCE = 1e-13


# --- the references, in decimal ------------------------------------------------------------------
def arctan_of_inverse(n: int) -> Decimal:
    """arctan(1/n) = sum_k (-1)^k / ((2k + 1) n^(2k+1))."""
    x = Decimal(1) / n
    term, total, k = x, x, 1
    while abs(term) > Decimal(10) ** -(DIGITS + 5):
        term *= -x * x
        k += 2
        total += term / k
    return total


with localcontext() as context:
    context.prec = DIGITS + 10
    PI = 16 * arctan_of_inverse(5) - 4 * arctan_of_inverse(239)  # Machin


def reference_log_gamma(twice: int) -> Decimal:
    """log Gamma(twice / 2) for a positive integer ``twice``: factorials, and for half-integers
    Gamma(n + 1/2) = (2n)! sqrt(pi) / (4^n n!)."""
    with localcontext() as context:
        context.prec = DIGITS
        if twice % 2 == 0:
            return Decimal(math.factorial(twice // 2 - 1)).ln()
        n = twice // 2
        exact = Fraction(math.factorial(2 * n), 4 ** n * math.factorial(n))
        return (Decimal(exact.numerator) / Decimal(exact.denominator)).ln() + PI.ln() / 2


def reference_log_beta(twice_a: int, twice_b: int) -> float:
    """log B(a, b) for a, b integers or half-integers (given as 2a and 2b)."""
    return float(reference_log_gamma(twice_a) + reference_log_gamma(twice_b)
                 - reference_log_gamma(twice_a + twice_b))


def reference_integer_b(a: float, n: int, x: float) -> tuple:
    """(I_x(a, n), 1 - I_x(a, n), dI/da, -(dI/da)/p(x)) for a real a > 0 and an integer n >= 1."""
    with localcontext() as context:
        context.prec = DIGITS
        a_, x_ = Decimal(a), Decimal(x)
        y_ = 1 - x_
        log_x = x_.ln()
        x_to_a = (a_ * log_x).exp()
        total = d_total = harmonic = Decimal(0)
        coefficient = y_power = Decimal(1)  # (a)_j / j! and y^j; harmonic = sum_{i<j} 1/(a+i)
        for j in range(n):
            total += coefficient * y_power
            d_total += coefficient * y_power * harmonic
            coefficient = coefficient * (a_ + j) / (j + 1)
            harmonic += 1 / (a_ + j)
            y_power *= y_
        lower = x_to_a * total
        d_lower = lower * log_x + x_to_a * d_total
        rising = Decimal(1)  # 1 / B(a, n) = a (a+1) ... (a+n-1) / (n-1)!
        for i in range(n):
            rising *= a_ + i
        density = x_to_a / x_ * y_ ** (n - 1) * rising / math.factorial(n - 1)
        return float(lower), float(1 - lower), float(d_lower), float(-d_lower / density)


# Points: a real, n an integer, x from deep in the left tail to deep in the right one. Points
# whose right tail 1 - I is below 1e-50 are left out: the reference forms it as 1 - I, and the
# derivative as a difference of terms that large, so 120 digits would not be enough there.
A_VALUES = (0.01, 0.037, 0.3, 1.7, 4.2, 11.5, 99.1, 640.0)
N_VALUES = (1, 2, 7, 20, 150)


def reference_points():
    points = []
    for a in A_VALUES:
        for n in N_VALUES:
            mean = a / (a + n)
            for x in (mean * 1e-8, mean * 0.5, mean, 0.5 + mean / 2, 1 - (1 - mean) * 0.3,
                      1 - (1 - mean) * 1e-3):
                values = reference_integer_b(a, n, x)
                if values[1] > 1e-50:
                    points.append((a, n, x) + values)
    return np.array(points)


@pytest.fixture(scope="module")
def references():
    return reference_points()


def assert_relative(actual, expected, tolerance=TOLERANCE, what=""):
    """Within ``tolerance`` relative, except where the reference is below the normal floats
    (1e-290): there the library must be as tiny."""
    actual, expected = np.asarray(actual, dtype=float), np.asarray(expected, dtype=float)
    tiny = np.abs(expected) < 1e-290
    assert np.all(np.abs(actual[tiny]) < 1e-280), f"{what}: not tiny where the reference underflows"
    error = np.abs(actual[~tiny] - expected[~tiny]) / np.abs(expected[~tiny])
    assert error.max() <= tolerance, f"{what}: relative error {error.max():.3g}"


# --- log B ------------------------------------------------------------------------------------------
LBETA_POINTS = [(2, 2), (1, 1), (2, 4), (1, 7), (3, 5), (1, 400), (400, 1), (41, 3), (200, 301),
                (2000, 2000), (20001, 3), (4, 600), (60, 601), (1999, 20000)]  # (2a, 2b)


def test_lbeta_matches_exact_values_at_integers_and_half_integers():
    twice_a, twice_b = np.array(LBETA_POINTS).T
    expected = [reference_log_beta(p, q) for p, q in LBETA_POINTS]
    actual = B.lbeta_array(twice_a / 2, twice_b / 2)
    # relative where |log B| is of order 1 or more, absolute near its zero at (1, 1)
    np.testing.assert_allclose(actual, expected, rtol=2e-15, atol=1e-16)
    assert B.lbeta_array(0.5, 0.5) == pytest.approx(math.log(math.pi), rel=1e-15)


@given(st.floats(0.01, 1e4), st.floats(0.01, 1e4))
def test_lbeta_is_symmetric_and_satisfies_its_recurrence(a, b):
    """B(a, b) = B(b, a) and B(a + 1, b) = B(a, b) a / (a + b)."""
    assert B.lbeta_array(a, b) == B.lbeta_array(b, a)
    step = B.lbeta_array(a + 1, b) - B.lbeta_array(a, b)
    scale = abs(B.lbeta_array(a, b)) + abs(B.lbeta_array(a + 1, b)) + 1.0
    assert step == pytest.approx(math.log(a / (a + b)), abs=4e-16 * scale)


def test_digamma_difference_without_cancellation():
    """digamma(x + s) - digamma(x) against the difference where it cancels nothing, and against
    s trigamma(x) + s^2 trigamma'(x) / 2 where s is tiny beside x (its Taylor series)."""
    x = np.array([0.01, 0.5, 3.0, 9.9, 12.0, 700.0])
    s = np.array([5.0, 2.5, -2.0, 40.0, 1e3, 1e4])
    np.testing.assert_allclose(B._digamma_difference(x, s), digamma_array(x + s) - digamma_array(x), rtol=1e-14)
    x, s = np.array([0.2, 7.0, 50.0, 1e3]), 1e-9
    taylor = s * trigamma_array(x) + s * s / 2 * (trigamma_array(x + 1e-4) - trigamma_array(x - 1e-4)) / 2e-4
    np.testing.assert_allclose(B._digamma_difference(x, s), taylor, rtol=1e-12)


# --- the incomplete beta function: values and derivatives against the finite sums ---------------------
def test_incomplete_beta_and_its_a_derivative_match_the_finite_sums(references):
    a, n, x, lower, upper, d_lower, sample = references.T
    parts = B._incomplete_beta(a, n, x)
    for name, expected in (("lower", lower), ("upper", upper), ("lower_da", d_lower), ("sample_da", sample)):
        assert_relative(getattr(parts, name), expected, what=name)
    assert len(references) > 200


def test_the_b_derivative_through_the_symmetry(references):
    """I_x(n, a) = 1 - I_(1-x)(a, n): the b-derivative at a real b = a is minus the reference's
    a-derivative, and dx/db for x ~ Beta(n, a) at 1 - x is minus the reference's dx/da."""
    a, n, x, lower, upper, d_lower, sample = references.T
    parts = B._incomplete_beta(n, a, 1 - x, x)
    assert_relative(parts.upper, lower, what="upper")
    assert_relative(parts.lower, upper, what="lower")
    assert_relative(parts.lower_db, -d_lower, what="lower_db")
    assert_relative(parts.sample_db, -sample, what="sample_db")


@pytest.mark.parametrize("a, n", [(1500.5, 2000), (2000.25, 1500), (30000.5, 20000)])
def test_large_parameters_match_the_finite_sums_near_the_mean(a, n):
    """Where the kernel's logarithm is written without cancellation (a, b >= 10, x near the mean,
    on both sides of 1/2): a log x + b log(1 - x) - log B would lose (a + b) eps, 5e-12 here."""
    mean = a / (a + n)
    sd = math.sqrt(mean * (1 - mean) / (a + n))
    for x in (mean - 2 * sd, mean + 0.5 * sd) if a > 1e4 else (mean - 2 * sd, mean - 0.3 * sd, mean + 3 * sd):
        lower, upper, d_lower, sample = reference_integer_b(a, n, x)
        parts = B._incomplete_beta(a, float(n), x)
        for name, expected in (("lower", lower), ("upper", upper), ("lower_da", d_lower), ("sample_da", sample)):
            assert_relative(getattr(parts, name), expected, what=f"{name} at x = {x}")


def test_public_array_functions_are_the_parts():
    a, b, x = np.array([0.3, 5.0, 80.0]), np.array([2.0, 0.05, 70.0]), np.array([0.1, 0.999, 0.55])
    parts = B._incomplete_beta(a, b, x)
    assert np.array_equal(B.betainc_array(a, b, x), parts.lower)
    assert np.array_equal(B.betaincc_array(a, b, x), parts.upper)
    assert all(np.array_equal(u, v) for u, v in zip(B.betainc_derivatives_array(a, b, x),
                                                    (parts.lower_da, parts.lower_db)))
    assert all(np.array_equal(u, v) for u, v in zip(B.beta_sample_derivatives_array(a, b, x),
                                                    (parts.sample_da, parts.sample_db)))


# --- closed forms, symmetry, recurrence: hypothesis ------------------------------------------------------
concentrations = st.floats(1e-2, 1e2).filter(lambda v: v > 0)
interior = st.floats(1e-6, 1 - 1e-6)


@given(concentrations, interior)
def test_closed_forms_at_one_and_one_half(c, x):
    """I_x(a, 1) = x^a, I_x(1, b) = 1 - (1 - x)^b, I_x(1/2, 1/2) = (2/pi) asin(sqrt x)."""
    assert B.betainc_array(c, 1.0, x) == pytest.approx(x ** c, rel=4e-15)
    assert B.betaincc_array(1.0, c, x) == pytest.approx(math.exp(c * math.log1p(-x)), rel=4e-15)
    assert B.betainc_array(0.5, 0.5, x) == pytest.approx(2 / math.pi * math.asin(math.sqrt(x)), rel=4e-15)
    # and their derivatives: d(x^a)/da = x^a log x, d(1 - (1-x)^b)/db = -(1-x)^b log(1-x)
    assert B.betainc_derivatives_array(c, 1.0, x)[0] == pytest.approx(x ** c * math.log(x), rel=1e-13)
    assert B.betainc_derivatives_array(1.0, c, x)[1] == pytest.approx(
        -math.exp(c * math.log1p(-x)) * math.log1p(-x), rel=1e-13)


def test_closed_forms_with_a_large_parameter():
    """1 - I_x(1, b) = (1 - x)^b for b up to 1e6 and x up to 5 / b: log(1 - x) must be taken as
    log1p(-x), since the rounding of 1 - x alone would cost b * 1e-16 (1e-10 at b = 1e6). Measured:
    up to 7e-14 at b = 1e3, 3.4e-12 at 1e5 and 1.7e-11 at 1e6, all at b x = 5, so the bounds are
    2e-13, 1e-11 and 4e-11. The loss is the (a + b) eps of the module docstring: past the flip, next
    to a large b, the fraction's first step 1 + d_1 is about 2 / (a + b) and cancels that many digits
    (checked against mpmath: 1e-12 at a = 1, b = 1e5 just past the flip, 1e-14 for a, b <= 100)."""
    b = np.array([1e3, 1e5, 1e6])
    rtol = np.array([2e-13, 1e-11, 4e-11])
    for b_times_x in (0.01, 1.0, 5.0):
        x = b_times_x / b
        expected = np.exp(b * np.log1p(-x))
        for got in (B.betaincc_array(1.0, b, x), B.betainc_array(b, 1.0, 1 - x, x)):
            assert np.all(np.abs(got - expected) <= rtol * expected), (got, expected)


@given(concentrations, concentrations, st.floats(0.5, 1 - 1e-6))
def test_symmetry(a, b, x):
    """I_x(a, b) = 1 - I_(1-x)(b, a), both sides with their relative precision (1 - x is exact)."""
    assert B.betainc_array(a, b, x) == pytest.approx(B.betaincc_array(b, a, 1 - x), rel=1e-13)
    assert B.betaincc_array(a, b, x) == pytest.approx(B.betainc_array(b, a, 1 - x), rel=1e-13)


@given(concentrations, concentrations, interior)
def test_recurrence_in_a(a, b, x):
    """I_x(a + 1, b) = I_x(a, b) - x^a (1-x)^b / (a B(a, b))."""
    kernel = math.exp(a * math.log(x) + b * math.log1p(-x) - float(B.lbeta_array(a, b)))
    left, right = B.betainc_array(a + 1, b, x), B.betainc_array(a, b, x) - kernel / a
    assert left == pytest.approx(right, abs=4e-14 * (B.betainc_array(a, b, x) + kernel / a) + 1e-300)


@given(concentrations, concentrations, interior)
def test_derivatives_are_central_differences_of_the_function(a, b, x):
    """dI/da and dI/db against central differences of the library's own I, with a step of 1e-6
    relative (truncation below 1e-8 relative), taken on the smaller of I and 1 - I (the side that has its
    relative precision), with the rounding of the two values over 2h allowed for."""
    da, db = B.betainc_derivatives_array(a, b, x)
    use_lower = B.betainc_array(a, b, x) <= B.betaincc_array(a, b, x)
    side, sign = (B.betainc_array, 1.0) if use_lower else (B.betaincc_array, -1.0)  # d(1 - I) = -dI
    for derivative, move in ((da, lambda h: (a + h, b)), (db, lambda h: (a, b + h))):
        h = 1e-6 * (a if derivative is da else b)
        high, low = side(*move(h), x), side(*move(-h), x)
        difference = sign * (high - low) / (2 * h)
        rounding = 1e-15 * max(high, low) / (2 * h)
        assert derivative == pytest.approx(difference, rel=1e-6, abs=rounding + 1e-300)


@given(concentrations, concentrations, interior)
def test_sample_derivative_is_minus_the_derivative_over_the_density(a, b, x):
    da, db = B.betainc_derivatives_array(a, b, x)
    density = B.beta_density_array(a, b, x)
    sample_da, sample_db = B.beta_sample_derivatives_array(a, b, x)
    if density > 1e-290 and abs(da) > 1e-290:  # (where neither underflows)
        assert sample_da == pytest.approx(-da / density, rel=1e-13)
        assert sample_db == pytest.approx(-db / density, rel=1e-13)


@given(concentrations, concentrations, interior)
def test_density_is_the_beta_density(a, b, x):
    expected = math.exp((a - 1) * math.log(x) + (b - 1) * math.log1p(-x) - float(B.lbeta_array(a, b)))
    assert B.beta_density_array(a, b, x) == pytest.approx(expected, rel=1e-12)


def test_large_parameters_converge():
    """a and b up to 1e5: the fraction needs about 6 sqrt(max(a, b)) terms, and the kernel's
    logarithm is taken without cancellation near the mean (the symmetry ties the two sides)."""
    a, b = np.array([1e5, 3e4, 1e5, 0.5]), np.array([1e5, 7e4, 2.0, 1e5])
    x = a / (a + b) * np.array([1.001, 0.999, 1.0, 0.3])
    lower, upper = B.betainc_array(a, b, x), B.betaincc_array(b, a, 1 - x, x)  # (1 - x rounds)
    np.testing.assert_allclose(lower, upper, rtol=1e-11)
    assert np.all((lower > 0) & (lower < 1))
    assert B.betainc_array(1e5, 1e5, 0.5) == pytest.approx(0.5, abs=1e-13)


def test_edges_and_invalid_arguments():
    """I is 0 at x = 0 and 1 at x = 1, with zero derivatives; NaN for a, b <= 0 or x outside [0, 1]."""
    parts = B._incomplete_beta([2.0, 0.3, 2.0], [3.0, 0.2, 3.0], [0.0, 1.0, 1.0])
    assert parts.lower.tolist() == [0.0, 1.0, 1.0] and parts.upper.tolist() == [1.0, 0.0, 0.0]
    for part in (parts.lower_da, parts.lower_db, parts.sample_da, parts.sample_db):
        assert part.tolist() == [0.0, 0.0, 0.0]
    bad = B._incomplete_beta([0.0, -1.0, np.nan, 2.0, 2.0, np.inf, 2.0, 2.0], [1.0] * 6 + [0.0, np.inf],
                             [0.5, 0.5, 0.5, -0.1, 1.5, 0.5, 0.5, 0.5])
    assert all(np.isnan(part).all() for part in bad)
    assert np.isnan(B.lbeta_array([0.0, -1.0, 1.0], [1.0, 1.0, 0.0])).all()
    assert B.beta_density_array([0.5, 1.0, 2.0], 3.0, 0.0).tolist() == [np.inf, 3.0, 0.0]
    assert B.beta_density_array(3.0, [0.5, 1.0, 2.0], 1.0).tolist() == [np.inf, 3.0, 0.0]
    assert B.beta_density_array(2.0, 3.0, [-0.5, 1.5]).tolist() == [0.0, 0.0]  # outside [0, 1]
    assert np.isnan(B.beta_density_array([0.0, 2.0], [2.0, 0.0], 0.5)).all()


def test_arrays_broadcast_and_keep_their_shape():
    a, b, x = np.full((2, 1, 3), 2.0), np.array([[0.5], [4.0]]), np.linspace(0.1, 0.9, 3)
    assert B.betainc_array(a, b, x).shape == (2, 2, 3)
    assert B.lbeta_array(a, b).shape == (2, 2, 3)
    assert B.betainc_array(2.0, 3.0, 0.25).shape == ()


# --- Student's t --------------------------------------------------------------------------------------
@given(st.floats(-1e6, 1e6))
def test_student_t_cdf_closed_forms_at_df_one_and_two(t):
    """df = 1 (Cauchy): 1/2 + atan(t)/pi; df = 2: 1/2 + t / (2 sqrt(2 + t^2)), each written in
    the form that keeps its relative precision in the lower tail."""
    cauchy = math.atan2(1.0, -t) / math.pi  # = 1/2 + atan(t)/pi, precise for t << 0
    assert B.student_t_cdf_array(1.0, t) == pytest.approx(cauchy, rel=1e-14)
    two = 1.0 / (math.sqrt(2 + t * t) * (math.sqrt(2 + t * t) - t)) if t < 0 else 0.5 + t / (2 * math.sqrt(2 + t * t))
    assert B.student_t_cdf_array(2.0, t) == pytest.approx(two, rel=1e-14)


@given(st.floats(0.1, 1e3), st.floats(-1e4, 1e4))
def test_student_t_density_and_symmetry(df, t):
    expected = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
                        - (df + 1) / 2 * math.log1p(t * t / df))
    assert B.student_t_density_array(df, t) == pytest.approx(expected, rel=1e-12, abs=1e-300)
    assert B.student_t_cdf_array(df, t) + B.student_t_cdf_array(df, -t) == pytest.approx(1.0, abs=2e-16)
    assert B.student_t_sample_derivative_array(df, -t) == -B.student_t_sample_derivative_array(df, t)


@given(st.floats(0.2, 200.0), st.floats(-50.0, 50.0))
def test_student_t_sample_derivative_is_the_implicit_identity(df, t):
    """dt/d(df) = -(dF/d(df)) / p(t), dF/d(df) by central differences of the library's own CDF at
    s = -|t|, where F has its relative precision, and dt/d(df) odd in t."""
    s, h = -abs(t), 1e-5 * df
    high, low = B.student_t_cdf_array(df + h, s), B.student_t_cdf_array(df - h, s)
    density = B.student_t_density_array(df, s)
    at_s = -((high - low) / (2 * h)) / density
    rounding = 1e-15 * max(high, low) / (2 * h) / density
    expected = at_s if t <= 0 else -at_s
    assert B.student_t_sample_derivative_array(df, t) == pytest.approx(expected, rel=1e-6, abs=rounding)


def test_student_t_sample_derivative_limits_at_the_centre_and_in_the_far_tail():
    """0 at t = 0; the limits taken below x, 1 - x = 1e-300 join the general formula smoothly."""
    assert B.student_t_sample_derivative_array(3.0, 0.0) == 0.0
    for df in (0.3, 4.0, 50.0):
        root = math.sqrt(df)
        # dt/d(df) / t is a smooth function of log |t|: compare either side of each switch
        inner = B.student_t_sample_derivative_array(df, root * np.array([1e-149, 1e-151])) / np.array([1e-149, 1e-151]) / root
        outer = B.student_t_sample_derivative_array(df, root * np.array([1e149, 1e151])) / np.array([1e149, 1e151]) / root
        assert inner[0] == pytest.approx(inner[1], rel=1e-12)
        slope = (outer[1] - outer[0]) / (2 * math.log(10))  # -(1/df) d/dlog|t|: log x = -2 log|t| + ...
        assert slope == pytest.approx(-1 / df, rel=1e-9)
        assert np.isfinite(outer).all() and np.isfinite(inner).all()


# --- the primitives ------------------------------------------------------------------------------------------
def test_gradcheck_of_the_primitives():
    a = Tensor([0.4, 2.0, 7.5], requires_grad=True)
    b = Tensor([1.5, 0.3, 30.0], requires_grad=True)
    x = Tensor([0.2, 0.9, 0.15], requires_grad=True)
    assert gradcheck(B.betainc, [a, b, x])
    assert gradcheck(B.lbeta, [a, b])
    df, t = Tensor([0.7, 3.0, 40.0], requires_grad=True), Tensor([-2.5, 0.0, 1.3], requires_grad=True)
    assert gradcheck(B.student_t_cdf, [df, t])


def test_primitives_keep_float32_broadcast_and_take_numbers():
    a = Tensor(np.array([0.5, 2.0], dtype=np.float32), requires_grad=True)
    out = B.betainc(a, 3.0, np.array([[0.1], [0.6]]))
    assert out.shape == (2, 2) and out.dtype == np.float64  # the float64 array sets the dtype
    out32 = B.betainc(a, 3.0, 0.25)
    assert out32.dtype == np.float32
    out32.sum().backward()
    assert a.grad.dtype == np.float32 and a.grad.shape == (2,)
    assert B.lbeta(2.0, Tensor(3.0)).item() == pytest.approx(math.log(1 / 12), rel=1e-15)
    assert B.student_t_cdf(Tensor(1.0), 0.0).item() == 0.5
    with pytest.raises(ValueError, match=r"betainc: shapes \(2,\) and \(3,\) cannot be broadcast"):
        B.betainc(a, np.ones(3), 0.5)
