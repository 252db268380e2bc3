"""erf, erfc and ndtri (special/erf.py) against references computed here to 50 digits.

The references use Python's ``decimal`` at 50 significant digits: the Maclaurin series of erf for
|x| < 3 (every term kept until it is below 1e-55), Laplace's continued fraction for the tail,
evaluated from a depth far beyond convergence, and for ndtri Newton's method on that Phi, run
until the step is below 1e-45. So the tolerances below (1e-15 relative) test the float64 code,
not the reference. Also: agreement with ``math.erf`` / ``math.erfc``, the symmetries, the values
at the ends (0, 1, +-inf, NaN), float32, no warnings anywhere, and the derivatives by gradcheck.
"""
import math
import warnings
from decimal import Decimal, localcontext

import numpy as np
import pytest

from tinygrad_reparam import Tensor, gradcheck
from tinygrad_reparam.special.erf import erf, erf_array, erfc, erfc_array, ndtri, ndtri_array

PI = Decimal("3.14159265358979323846264338327950288419716939937510582097494459")


def erf_series(z: Decimal) -> Decimal:
    """2/sqrt(pi) sum_n (-1)^n z^(2n+1) / (n! (2n + 1)), to 50 digits (for |z| < 3)."""
    total, power, n = Decimal(0), z, 0
    while True:
        piece = power / (2 * n + 1)
        total += piece
        if abs(piece) < Decimal("1e-55"):
            return 2 / PI.sqrt() * total
        n += 1
        power = -power * z * z / n


def erfc_decimal(z: Decimal) -> Decimal:
    """erfc(z) to 50 digits: 1 - the series for |z| < 3, Laplace's continued fraction beyond."""
    with localcontext() as context:
        context.prec = 60
        if abs(z) < 3:
            return 1 - erf_series(z)
        if z < 0:
            return 2 - erfc_decimal(-z)
        rest = Decimal(0)
        for k in range(int(60 + 3000 / float(z) ** 2), 0, -1):  # from far below convergence
            rest = (Decimal(k) / 2) / (z + rest)
        return (-(z * z)).exp() / (PI.sqrt() * (z + rest))


def erfc_reference(x: float) -> Decimal:
    return erfc_decimal(Decimal(x))


def erf_reference(x: float) -> Decimal:
    with localcontext() as context:
        context.prec = 60
        return erf_series(Decimal(x)) if abs(x) < 3 else 1 - erfc_decimal(Decimal(x))


def ndtri_reference(p: float) -> Decimal:
    """Phi^-1(p) to ~45 digits: Newton's method on Phi(x) = erfc(-x / sqrt 2) / 2 = p, in decimal,
    from a rough start of its own."""
    if p > 0.5:
        return -ndtri_reference(1.0 - p)  # (1 - p is exact for p > 1/2)
    with localcontext() as context:
        context.prec = 60
        target, root_2 = Decimal(p), Decimal(2).sqrt()
        x = Decimal(-math.sqrt(-2 * math.log(p))) if p < 0.3 else Decimal((p - 0.5) * 2.5)
        for _ in range(100):
            phi = (-(x * x) / 2).exp() / (2 * PI).sqrt()
            step = (erfc_decimal(-x / root_2) / 2 - target) / phi
            x -= step
            if abs(step) <= Decimal("1e-45") * abs(x):
                return x
    raise AssertionError(f"Newton did not converge for p = {p}")


def relative_error(values, references) -> float:
    return max(abs(Decimal(float(v)) / r - 1) if r != 0 else abs(Decimal(float(v)))
               for v, r in zip(values, references))


@pytest.fixture(autouse=True)
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# Points across every branch: the series (|x| < 1), the continued fraction at its shallow and deep
# ends, erfc through its whole normal range (down to 1e-306 at x = 26.5), tiny arguments.
POINTS = np.concatenate([np.linspace(-6.0, 6.0, 49), [0.999999, 1.0, 1.000001, 9.5, 15.0, 22.0, 26.5],
                         [1e-300, 1e-17, 3e-9, -2e-5, 0.25]])


def test_erfc_matches_a_50_digit_reference_to_1e_15_relative():
    assert relative_error(erfc_array(POINTS), [erfc_reference(float(x)) for x in POINTS]) < 1e-15


def test_erf_matches_a_50_digit_reference_to_1e_15_relative():
    assert relative_error(erf_array(POINTS), [erf_reference(float(x)) for x in POINTS]) < 1e-15


def test_erf_and_erfc_agree_with_math_and_with_each_other():
    x = np.linspace(-8.0, 26.0, 3401)
    np.testing.assert_allclose(erf_array(x), [math.erf(v) for v in x], rtol=2e-15, atol=0)
    np.testing.assert_allclose(erfc_array(x), [math.erfc(v) for v in x], rtol=2e-15, atol=0)
    np.testing.assert_allclose(erf_array(x) + erfc_array(x), 1.0, rtol=0, atol=4e-16)


def test_symmetries_hold_exactly():
    x = np.linspace(0.0, 7.0, 141)
    np.testing.assert_array_equal(erf_array(-x), -erf_array(x))
    # 1 + erf(x) and 2 - (1 - erf(x)) round differently below 1; beyond it the identity is exact
    np.testing.assert_allclose(erfc_array(-x), 2.0 - erfc_array(x), rtol=0, atol=2.3e-16)
    np.testing.assert_array_equal(erfc_array(-x[x >= 1]), 2.0 - erfc_array(x[x >= 1]))
    p = np.linspace(0.01, 0.49, 49)
    np.testing.assert_array_equal(ndtri_array(1.0 - p), -ndtri_array(1.0 - (1.0 - p)))


def test_values_at_the_ends():
    np.testing.assert_array_equal(erf_array([np.inf, -np.inf, 0.0]), [1.0, -1.0, 0.0])
    np.testing.assert_array_equal(erfc_array([np.inf, -np.inf, 28.0, 1e300, -1e300]),
                                  [0.0, 2.0, 0.0, 0.0, 2.0])
    assert np.isnan(erf_array(np.nan)) and np.isnan(erfc_array(np.nan))
    np.testing.assert_array_equal(ndtri_array([0.0, 1.0, 0.5]), [-np.inf, np.inf, 0.0])
    assert np.all(np.isnan(ndtri_array([-0.1, 1.1, np.nan, -np.inf])))
    assert np.isfinite(ndtri_array(5e-324))  # the smallest subnormal: x = -38.47
    assert math.copysign(1.0, erf_array(-0.0)) == -1.0  # the sign of zero survives


@pytest.mark.parametrize("p", [1e-320, 1e-300, 1e-100, 1e-20, 1e-5, 0.02, 0.1, 0.3, 0.4999999, 0.5 + 1e-12,
                               0.7, 0.975, 1 - 1e-10, 1 - 2**-53])
def test_ndtri_matches_a_50_digit_reference(p):
    assert relative_error([ndtri_array(p)], [ndtri_reference(p)]) < 1e-15


def test_ndtri_inverts_the_normal_cdf():
    """icdf(cdf(x)) = x to the precision cdf(x) holds x with: cdf's own relative error of up to
    1e-15 moves x by 1e-15 Phi(x) / phi(x), which matters where |x| is tiny or Phi is near 1."""
    x = np.concatenate([np.linspace(-37.0, 8.0, 901), [1e-8, -1e-8, 1e-300]])
    phi = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    cdf = 0.5 * erfc_array(-x / math.sqrt(2))
    tolerance = 4e-16 * np.abs(x) + 1e-15 * cdf / phi
    np.testing.assert_array_less(np.abs(ndtri_array(cdf) - x), tolerance)


def test_float32_stays_float32_and_0d_stays_0d():
    x = np.array([0.3, 2.0], dtype=np.float32)
    assert erf_array(x).dtype == erfc_array(x).dtype == ndtri_array(x / 4).dtype == np.float32
    assert erf(Tensor(x)).dtype == np.float32
    assert erfc_array(1.5).shape == () and ndtri_array(0.2).shape == ()


def test_primitives_pass_gradcheck():
    x = Tensor([-3.0, -0.7, 0.0, 0.4, 1.0, 2.5, 5.0], requires_grad=True)
    assert gradcheck(erf, [x])
    assert gradcheck(erfc, [x])
    p = Tensor([1e-3, 0.01, 0.3, 0.5, 0.8, 0.99], requires_grad=True)
    assert gradcheck(ndtri, [p])


def test_the_derivatives_are_finite_out_in_the_tails():
    x = Tensor([-40.0, 40.0, np.inf], requires_grad=True)
    erfc(x).backward(np.ones(3))
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 0.0])  # e^(-x^2) underflows: no NaN from inf
    p = Tensor([0.0, 1e-300, 1.0], requires_grad=True)
    ndtri(p).backward(np.ones(3))
    assert np.isposinf(p.grad[0]) and np.isposinf(p.grad[2]) and 1e295 < p.grad[1] < np.inf
