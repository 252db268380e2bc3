"""The error function, its complement and the inverse of the standard Normal CDF.

    erf(x) = 2/sqrt(pi) int_0^x e^(-t^2) dt,      erfc(x) = 1 - erf(x),
    Phi(x) = P(N(0, 1) <= x) = erfc(-x / sqrt 2) / 2,      ndtri(p) = Phi^-1(p).

NumPy has none of them (``math.erf`` takes one float at a time). How they are computed:

erf and erfc, by the size of |x|:

- |x| < 1: the Maclaurin series erf(x) = 2/sqrt(pi) sum_n (-1)^n x^(2n+1) / (n! (2n + 1)), 20
  terms (the next one is below 1e-19 of the sum at |x| = 1). The first term dominates, so the
  alternating signs cancel nothing. erfc = 1 - erf here loses less than one digit (erfc >= 0.157).
- |x| >= 1: Laplace's continued fraction for the tail,

      erfc(x) = e^(-x^2) / sqrt(pi) * 1 / (x + (1/2) / (x + 1 / (x + (3/2) / (x + 2 / (x + ...))))),

  evaluated from the bottom up at a depth that grows as x shrinks (214 levels at x = 1, 46 at
  x = 3; the fraction converges more slowly near 0, which is why the series takes over there).
  Every level adds and divides positive numbers, so the error stays at a few ulps. Then
  erf = 1 - erfc, which loses nothing: erf is close to 1 there.
- e^(-x^2) is computed as e^(-h^2) e^(-(x - h)(x + h)), h = x rounded down to a multiple of 1/16,
  so that h^2 is exact. Rounding x^2 itself would cost x^2 * 1.1e-16 of relative error: 7e-14 at
  x = 26, where erfc is still a normal float.
- Negative x by symmetry: erf(-x) = -erf(x), erfc(-x) = 2 - erfc(x).

ndtri(p), for p <= 1/2 (and ndtri(p) = -ndtri(1 - p) above 1/2, where 1 - p is exact): start from
the rational approximation 26.2.23 of Abramowitz & Stegun (absolute error below 4.5e-4),

    x0 = -(t - (c0 + c1 t + c2 t^2) / (1 + d1 t + d2 t^2 + d3 t^3)),      t = sqrt(-2 log p),

then take two Halley steps on Phi(x) = p, x <- x - r / (1 + x r / 2) with r = (Phi(x) - p) /
phi(x): Halley's method converges cubically, 4.5e-4, then ~1e-10, then ~1e-30 (two Newton steps
would stop near 1e-14). The result is as accurate as r, which is formed in one of two ways so
that no digit is lost:

- near the centre (x > -sqrt 2): r = (erf(x / sqrt 2) / 2 - (p - 1/2)) / phi(x), with p - 1/2
  exact, so that x keeps its relative precision even for p = 1/2 + 1e-12;
- in the tail (x <= -sqrt 2): r = Phi(x)/phi(x) - p/phi(x) = sqrt(pi/2) e^(z^2) erfc(z) -
  sqrt(2 pi) exp(log p + x^2/2), z = -x / sqrt 2, where e^(z^2) erfc(z) is the continued fraction
  without its exponential: nothing underflows, even for p = 1e-320 (x = -38.3), where phi(x) is
  0 in float64.

Measured against 50-digit references computed with ``decimal`` (tests/test_special_erf.py):
erf and erfc within 7e-16 relative on [-6, 26.5] (erfc down to 1e-306), ndtri within 3e-16
relative for p from 1e-320 to 1 - 1e-16.

At the end, erf, erfc and ndtri become engine primitives, each with its derivative:

    d erf/dx = 2/sqrt(pi) e^(-x^2),   d erfc/dx = -2/sqrt(pi) e^(-x^2),
    d ndtri/dp = 1 / phi(ndtri(p)) = sqrt(2 pi) e^(x^2 / 2).

Float32 input is computed in float64 and rounded back to float32.
"""
from __future__ import annotations

import math

import numpy as np

from tinygrad_reparam.ops import lift
from tinygrad_reparam.tensor import Tensor, from_op

SQRT_PI = math.sqrt(math.pi)
SQRT_2 = math.sqrt(2.0)
SQRT_2PI = math.sqrt(2.0 * math.pi)
TWO_OVER_SQRT_PI = 2.0 / SQRT_PI

# The Maclaurin coefficients of erf(x) / (2x / sqrt(pi)) in powers of x^2: (-1)^n / (n! (2n + 1)).
SERIES = [(-1) ** n / (math.factorial(n) * (2 * n + 1)) for n in range(20)]

# Abramowitz & Stegun 26.2.23: the upper-tail quantile of N(0, 1) to 4.5e-4, for the first guess.
AS_NUMERATOR = (2.515517, 0.802853, 0.010328)
AS_DENOMINATOR = (1.0, 1.432788, 0.189269, 0.001308)

ERFC_UNDERFLOW = 28.0  # erfc(28) = 6e-343 rounds to 0, as erfc of anything larger does
HALLEY_STEPS = 2


def _as_float64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _like_input(result: np.ndarray, x) -> np.ndarray:
    """Back to float32 when the input was float32 (computed in float64 either way)."""
    dtype = getattr(x, "dtype", None)
    return result.astype(dtype) if dtype == np.float32 else result


# ---------------------------------------------------------------------------------------------
# The pieces
def _exp_minus_square(x: np.ndarray) -> np.ndarray:
    """e^(-x^2) to a few ulps: e^(-h^2) e^(-(x - h)(x + h)) with h = floor(16 |x|) / 16, whose
    square is exact (x^2 rounded would cost x^2 * 1.1e-16 of relative error). 0 beyond |x| = 28."""
    x = np.minimum(np.abs(x), ERFC_UNDERFLOW)  # (e^(-784) is 0 in float64; NaN stays NaN)
    h = np.floor(x * 16.0) / 16.0
    return np.exp(-h * h) * np.exp(-(x - h) * (x + h))


def _erf_series(x: np.ndarray) -> np.ndarray:
    """erf(x) for |x| < 1: 2x/sqrt(pi) sum_n SERIES[n] x^(2n), by Horner's rule in x^2."""
    x2 = x * x
    total = np.zeros_like(x)
    for coefficient in reversed(SERIES):
        total = total * x2 + coefficient
    return TWO_OVER_SQRT_PI * x * total


def _continued_fraction_depth(smallest: float) -> int:
    """Levels of Laplace's fraction that reach full float64 precision at every x >= smallest >= 1
    (found by comparison with a 50-digit reference; a few more than needed, which costs nothing)."""
    return int(math.ceil(24.0 + 190.0 / (smallest * smallest)))


def _scaled_erfc_tail(a: np.ndarray) -> np.ndarray:
    """e^(a^2) erfc(a) for a >= 1 (a may be +inf or NaN): Laplace's continued fraction
    1 / (sqrt(pi) (a + (1/2) / (a + 1 / (a + (3/2) / (a + ...))))), from the bottom up."""
    finite = np.isfinite(a)
    depth = _continued_fraction_depth(np.min(a, initial=ERFC_UNDERFLOW, where=finite))
    rest = np.zeros_like(a)  # the fraction below the current level
    for k in range(depth, 0, -1):
        rest = (0.5 * k) / (a + rest)
    return 1.0 / (SQRT_PI * (a + rest))


def _erfc_tail(a: np.ndarray) -> np.ndarray:
    """erfc(a) for a >= 1 (or +inf, or NaN)."""
    return _exp_minus_square(a) * _scaled_erfc_tail(a)


# ---------------------------------------------------------------------------------------------
# erf, erfc and ndtri on arrays
def erf_array(x) -> np.ndarray:
    """erf(x) elementwise (NumPy in, NumPy out): the series for |x| < 1, 1 - erfc(|x|) beyond."""
    values = _as_float64(x)
    a = np.abs(values)
    near = a < 1
    out = np.empty_like(values)
    out[near] = _erf_series(values[near])
    out[~near] = np.sign(values[~near]) * (1.0 - _erfc_tail(a[~near]))  # (NaN stays NaN)
    return _like_input(out, x)


def erfc_array(x) -> np.ndarray:
    """erfc(x) = 1 - erf(x) elementwise, accurate relative to itself in the upper tail, where
    1 - erf(x) would round to 0: the continued fraction for |x| >= 1, 1 - the series below."""
    values = _as_float64(x)
    a = np.abs(values)
    near = a < 1
    out = np.empty_like(values)
    out[near] = 1.0 - _erf_series(values[near])
    tail = _erfc_tail(a[~near])
    out[~near] = np.where(values[~near] > 0, tail, 2.0 - tail)
    return _like_input(out, x)


def _first_guess(p: np.ndarray) -> np.ndarray:
    """Abramowitz & Stegun 26.2.23 for 0 < p <= 1/2: Phi^-1(p) to within 4.5e-4."""
    t = np.sqrt(-2.0 * np.log(p))
    c0, c1, c2 = AS_NUMERATOR
    d0, d1, d2, d3 = AS_DENOMINATOR
    return -(t - (c0 + t * (c1 + t * c2)) / (d0 + t * (d1 + t * (d2 + t * d3))))


def _halley_step(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    """One Halley step on Phi(x) = p for p <= 1/2: x - r / (1 + x r / 2), r = (Phi(x) - p) / phi(x),
    with r formed without cancellation or underflow (see the module docstring)."""
    tail = x <= -SQRT_2
    r = np.empty_like(x)
    x_centre, p_centre = x[~tail], p[~tail]
    phi_centre = np.exp(-0.5 * x_centre * x_centre) / SQRT_2PI
    r[~tail] = (0.5 * erf_array(x_centre / SQRT_2) - (p_centre - 0.5)) / phi_centre
    x_tail = x[tail]
    mills_ratio = math.sqrt(math.pi / 2.0) * _scaled_erfc_tail(-x_tail / SQRT_2)  # Phi / phi
    r[tail] = mills_ratio - SQRT_2PI * np.exp(np.log(p[tail]) + 0.5 * x_tail * x_tail)
    return x - r / (1.0 + 0.5 * x * r)


def ndtri_array(p) -> np.ndarray:
    """Phi^-1(p) elementwise, the quantile of N(0, 1): -inf at 0, +inf at 1, NaN outside [0, 1]."""
    values = _as_float64(p)
    lower = np.minimum(values, 1.0 - values)  # ndtri(p) = -ndtri(1 - p); 1 - p is exact for p >= 1/2
    inside = lower > 0  # (False for 0 and 1, outside [0, 1] and NaN: the last lines answer those)
    x = _first_guess(lower[inside])
    for _ in range(HALLEY_STEPS):
        x = _halley_step(x, lower[inside])
    out = np.full(values.shape, np.nan)
    out[inside] = np.where(values[inside] > 0.5, -x, np.where(values[inside] == 0.5, 0.0, x))
    out = np.where(values == 0.0, -np.inf, np.where(values == 1.0, np.inf, out))
    return _like_input(out, p)


# ---------------------------------------------------------------------------------------------
# The primitives: Tensor in, Tensor out, each forward line next to its VJP
def erf(a) -> Tensor:
    a = lift(a)
    return from_op("erf", erf_array(a.data), (a,), (
        lambda g: g * TWO_OVER_SQRT_PI * _exp_minus_square(a.data),  # d erf/da = 2/sqrt(pi) e^(-a^2)
    ))


def erfc(a) -> Tensor:
    a = lift(a)
    return from_op("erfc", erfc_array(a.data), (a,), (
        lambda g: -g * TWO_OVER_SQRT_PI * _exp_minus_square(a.data),  # -2/sqrt(pi) e^(-a^2)
    ))


def ndtri(p) -> Tensor:
    """Phi^-1(p), the inverse of the standard Normal CDF (``Normal(0, 1).icdf``)."""
    p = lift(p)
    out = ndtri_array(p.data)

    def vjp(g):  # d Phi^-1(p)/dp = 1 / phi(x) = sqrt(2 pi) e^(x^2 / 2), infinite at p = 0 and 1
        with np.errstate(over="ignore"):
            return g * SQRT_2PI * np.exp(0.5 * out * out)

    return from_op("ndtri", out, (p,), (vjp,))
