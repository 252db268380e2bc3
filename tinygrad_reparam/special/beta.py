"""The beta family in NumPy: log B(a, b), the incomplete beta function and its derivatives in a, b.

B(a, b) = Gamma(a) Gamma(b) / Gamma(a + b) = int_0^1 t^(a-1) (1-t)^(b-1) dt, and the regularised
incomplete beta function

    I_x(a, b) = (1 / B(a, b)) int_0^x t^(a-1) (1-t)^(b-1) dt

is the CDF of a Beta(a, b) variable at x (and, through x = df / (df + t^2), the Student t's).
Every function here works elementwise on float64 arrays (the ``*_array`` functions); ``lbeta``
and ``betainc`` are also engine primitives, each forward line next to its vector-Jacobian
product. The methods:

``lbeta(a, b) = log B(a, b)``
    lgamma(a) + lgamma(b) - lgamma(a + b) while both are below 10, where each lgamma is small and
    accurate to a few ulps. Beyond, that difference of large numbers would cancel (lgamma(1e4) is
    8e4), so Stirling's series is written out and the large terms cancelled by hand: with
    s = a + b and c(x) = lgamma(x) - [(x - 1/2) log x - x + log(2 pi)/2] (Stirling's correction,
    ``special/gamma.py``),
        a, b >= 10:   log B = log(2 pi)/2 + (a - 1/2) log(a/s) + (b - 1/2) log(b/s) - log(s)/2
                              + c(a) + c(b) - c(s),
        a >= 10 > b:  log B = lgamma(b) - (a - 1/2) log1p(b/a) - b log(s) + b + c(a) - c(s)
    (and the mirror image for b >= 10 > a). Accurate to 1.4e-15 relative where |log B| > 1, and
    to 5e-15 absolute near its zeros (where lgamma(a) - lgamma(a + b) still cancels a little).

``I_x(a, b)``: a continued fraction, evaluated by the modified Lentz method
    With the kernel E = x^a (1-x)^b / B(a, b),

        I_x(a, b) = (E / a) F,    F = 1 / (1 + d_1 / (1 + d_2 / (1 + d_3 / (1 + ...)))),
        d_(2m+1) = -(a + m)(a + b + m) x / ((a + 2m)(a + 2m + 1)),
        d_(2m)   = m (b - m) x / ((a + 2m - 1)(a + 2m)),

    (DLMF 8.17.22). It converges quickly for x < (a + 1) / (a + b + 2) (130 terms at most for a, b
    up to 100, 500 up to 1e5); for larger x the symmetry I_x(a, b) = 1 - I_(1-x)(b, a) puts the
    point on the quick side. Both I and its complement 1 - I are returned, each formed from the
    side the fraction computed, so a tail probability keeps its relative precision (1e-200 is not
    1 - (1 - 1e-200)). The modified Lentz method evaluates the fraction from the top down as a
    product of ratios C_j D_j, stopping when a ratio is 1 to the last bit.
    The kernel under- and overflows long before I does, so it is formed as its logarithm; for
    a, b >= 10 that logarithm is written, as lbeta's, without the cancellation of a log x against
    log B: with x0 = a/s and y0 = b/s the mean,
        log E = a l((x - x0)/x0) + b l((y - y0)/y0) + log(a b / s)/2 - log(2 pi)/2 - c(a) - c(b) + c(s),
    l(d) = log(1 + d) - d, since a (x - x0)/x0 + b (y - y0)/y0 = 0.

``dI_x/da`` and ``dI_x/db``: forward-mode differentiation of the same recurrence
    Every quantity of the Lentz recurrence carries its derivatives in a and b alongside it (the
    product and quotient rules at each step, from the derivatives of d_j), which gives dF/da and
    dF/db without a finite difference, to the precision of F itself. Then, since
    d log(E / a)/da = log x - digamma(a + 1) + digamma(a + b) and
    d log(E / a)/db = log(1 - x) - digamma(b) + digamma(a + b),
        dI/da = (E / a) [(log x - digamma(a + 1) + digamma(a + b)) F + dF/da],
    and the same for b. The differences of digammas are taken without cancellation when one
    parameter is small beside the other (``_digamma_difference``), and log x, log(1 - x) from
    whichever of x and 1 - x is the smaller (log1p of the other), so that no digit is lost there.

``-(dI_x/da) / p(x)``: the implicit reparameterization gradient of a Beta sample
    The density p(x) = E / (x (1 - x)) shares the kernel with both derivatives, so
    dx/da = -(dI/da)/p = -x (1 - x) (dI/da)/E is computed with E cancelled: it stays finite and
    accurate in the tails, where dI/da and p both underflow (see ``distributions/beta.py``).

Student's t, through x = df / (df + t^2) ~ Beta(df/2, 1/2)
    F(t) = I_x(df/2, 1/2) / 2 for t <= 0 and 1 - I_x(df/2, 1/2) / 2 for t > 0, with x and 1 - x =
    t^2 / (df + t^2) each formed from the ratio df / t^2 or t^2 / df (whichever is at most 1): near
    t = 0, x rounds to 1 but 1 - x does not, and ``_incomplete_beta`` takes both. The implicit
    gradient of a t sample is the Beta's carried through t = sign(t) sqrt(df (1 - x) / x)
    (``student_t_sample_derivative_array``), and the CDF's derivative in df is that identity read
    backwards, dF/d(df) = -p(t) dt/d(df) (``student_t_cdf``).

Accuracy, measured against 120-digit references in tests/test_special_beta.py and against mpmath
at random points (a, b from 1e-2 to 1e3, x from 1e-30 of the mean to 1e-30 from 1): I, 1 - I, dI/da
and dI/db within 5e-14 relative, the sample derivatives within 3e-15; the Student t CDF within 3e-14 and dt/d(df) within 2e-13 for df from 0.1 to 100. The error grows like
(a + b) eps for larger parameters: just past the flip the fraction's first step, 1 + d_1, is about
2 / (a + b) and cancels that many digits (1e-12 at a = 1, b = 1e5; 1.7e-11 at b = 1e6). Where I_x(a, b) needs x near 1
with full relative precision in 1 - x, pass the complement y = 1 - x as well:
``betainc_array(a, b, x, y)``.
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np

from tinygrad_reparam import checks
from tinygrad_reparam.ops import lift
from tinygrad_reparam.special.gamma import (BERNOULLI, _log1p_minus_x, _stirling_correction,
                                            digamma_array, lgamma_array)
from tinygrad_reparam.tensor import Tensor, from_op

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
EPS = float(np.finfo(np.float64).eps)
ASYMPTOTIC_FROM = 10.0   # Stirling's forms of log B and log E once the parameters reach this
MAX_TERMS = 100_000      # the fraction converges long before (500 terms for a, b up to 1e5)


def _as_float(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# log B(a, b)
def lbeta_array(a, b) -> np.ndarray:
    """log B(a, b) for a, b > 0, elementwise (module docstring); NaN elsewhere. Each element is
    computed by the form of its region only."""
    a, b = np.broadcast_arrays(_as_float(a), _as_float(b))
    small, large = np.minimum(a, b), np.maximum(a, b)
    out = np.full(a.shape, np.nan)
    valid = small > 0
    direct = valid & (large < ASYMPTOTIC_FROM)
    one_large = valid & (small < ASYMPTOTIC_FROM) & (large >= ASYMPTOTIC_FROM)
    both_large = small >= ASYMPTOTIC_FROM
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if direct.any():
            s, l = small[direct], large[direct]
            out[direct] = lgamma_array(s) + lgamma_array(l) - lgamma_array(s + l)
        if one_large.any():
            s, l = small[one_large], large[one_large]
            out[one_large] = (lgamma_array(s) - (l - 0.5) * np.log1p(s / l) - s * np.log(l + s) + s
                              + _stirling_correction(l) - _stirling_correction(l + s))
        if both_large.any():
            s, l = small[both_large], large[both_large]
            out[both_large] = (HALF_LOG_2PI - (l - 0.5) * np.log1p(s / l) - (s - 0.5) * np.log1p(l / s)
                               - 0.5 * np.log(s + l) + _stirling_correction(l) + _stirling_correction(s)
                               - _stirling_correction(s + l))
    return out


def _logs(x: np.ndarray, y: np.ndarray) -> tuple:
    """(log x, log y) for y = 1 - x, each from whichever of x and y is the smaller: y = 1 - x
    rounds when x is small, but log1p(-x) does not (and the same the other way round)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return (np.where(x < 0.5, np.log(x), np.log1p(-y)),
                np.where(y < 0.5, np.log(y), np.log1p(-x)))


def _log_kernel(a: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """log E = log(x^a y^b / B(a, b)), y = 1 - x; for a, b >= 10 near the mean without
    cancellation (module docstring). Arrays of one shape."""
    log_x, log_y = _logs(x, y)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        s = a + b
        x0, y0 = a / s, b / s  # the mean of Beta(a, b)
        shift = np.where(x < 0.5, x - x0, y0 - y)  # x - x0 = y0 - y, from the smaller of x and y
        # near the mean only: far from it log E is large itself, and x/x0 - 1 would round
        near_mean = np.abs(shift) <= 0.5 * np.minimum(x0, y0)
        uniform = (a >= ASYMPTOTIC_FROM) & (b >= ASYMPTOTIC_FROM) & near_mean
        out = np.empty(np.shape(x))
        direct = ~uniform
        if direct.any():
            a_, b_ = a[direct], b[direct]
            out[direct] = a_ * log_x[direct] + b_ * log_y[direct] - lbeta_array(a_, b_)
        if uniform.any():
            a, b, s, x0, y0, shift = (v[uniform] for v in (a, b, s, x0, y0, shift))
            out[uniform] = (a * _log1p_minus_x(shift / x0) + b * _log1p_minus_x(-shift / y0)
                            + 0.5 * np.log(a * b / s) - HALF_LOG_2PI - _stirling_correction(a)
                            - _stirling_correction(b) + _stirling_correction(s))
        return out


def _digamma_difference(x: np.ndarray, s: np.ndarray) -> np.ndarray:
    """digamma(x + s) - digamma(x) for x > 0 and x + s > 0, without the cancellation of two nearly
    equal digammas when |s| is small beside x. The recurrence digamma(x + 1) = digamma(x) + 1/x
    turns the steps up to 10 into the sum of 1/(x + k) - 1/(x + s + k) = s / ((x + k)(x + s + k)),
    and from there on the difference of the asymptotic series is taken term by term:
        log1p(s/x) + s / (2 x (x + s)) - sum_k B_2k / (2k x^2k) expm1(-2k log1p(s/x))."""
    x, s = np.broadcast_arrays(_as_float(x), _as_float(s))
    total = np.zeros(x.shape)
    while True:
        small = np.minimum(x, x + s) < ASYMPTOTIC_FROM
        if not small.any():
            break
        total = np.where(small, total + s / (x * (x + s)), total)
        x = np.where(small, x + 1.0, x)
    log_ratio = np.log1p(s / x)
    series = sum(bernoulli / (2 * k) * x ** (-2.0 * k) * np.expm1(-2 * k * log_ratio)
                 for k, bernoulli in enumerate(BERNOULLI, start=1))
    return total + log_ratio + s / (2 * x * (x + s)) - series


# ---------------------------------------------------------------------------------------------
# The continued fraction, with its derivatives in (a, b) carried alongside (forward mode)
def _fraction_term(j: int, a: np.ndarray, b: np.ndarray, x: np.ndarray) -> tuple:
    """d_j and its derivatives in a and b, as an array of two rows (d/da, d/db)."""
    m = j // 2
    if j % 2 == 1:  # d_(2m+1) = -(a + m)(a + b + m) x / ((a + 2m)(a + 2m + 1))
        d = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        d_da = d * (1 / (a + b + m) - 1 / (a + 2 * m + 1) + (1 / (a + m) - 1 / (a + 2 * m) if m else 0))
        d_db = d / (a + b + m)
    else:           # d_(2m) = m (b - m) x / ((a + 2m - 1)(a + 2m))
        denominator = (a + 2 * m - 1) * (a + 2 * m)
        d = m * (b - m) * x / denominator
        d_da = -d * (1 / (a + 2 * m - 1) + 1 / (a + 2 * m))
        d_db = m * x / denominator
    return d, np.stack([d_da, d_db])


def _continued_fraction(a: np.ndarray, b: np.ndarray, x: np.ndarray) -> tuple:
    """F = 1 / G and dF = (dF/da, dF/db), for x < (a + 1) / (a + b + 2) (module docstring).

    G = 1 + d_1 / (1 + d_2 / (1 + ...)) by the modified Lentz method: G = prod_j C_j D_j with
    C_j = 1 + d_j / C_(j-1) and D_j = 1 / (1 + d_j D_(j-1)), C_0 = 1, D_0 = 0. Each line carries its
    derivatives in (a, b) next to it, as a second array of two rows. An element stops when a
    further ratio changes neither G nor its derivatives."""
    n = x.size
    g, d_g = np.ones(n), np.zeros((2, n))
    c, d_c = np.ones(n), np.zeros((2, n))
    d, d_d = np.zeros(n), np.zeros((2, n))
    active = np.arange(n)  # the elements still being evaluated
    for j in range(1, MAX_TERMS):
        if active.size == 0:
            return 1.0 / g, -d_g / (g * g)
        term, d_term = _fraction_term(j, a[active], b[active], x[active])
        d_old, d_d_old, c_old, d_c_old = d[active], d_d[:, active], c[active], d_c[:, active]
        denominator = 1.0 + term * d_old
        denominator = np.where(denominator == 0, 1e-300, denominator)  # Lentz's guard
        d_new = 1.0 / denominator
        d_d_new = -(d_term * d_old + term * d_d_old) * d_new * d_new
        c_new = 1.0 + term / c_old
        c_new = np.where(c_new == 0, 1e-300, c_new)
        d_c_new = d_term / c_old - term * d_c_old / (c_old * c_old)
        ratio, d_ratio = c_new * d_new, d_c_new * d_new + c_new * d_d_new
        g_old = g[active]
        d_g[:, active] = d_g[:, active] * ratio + g_old * d_ratio
        g[active] = g_old * ratio
        d[active], d_d[:, active], c[active], d_c[:, active] = d_new, d_d_new, c_new, d_c_new
        done = ((np.abs(ratio - 1.0) <= EPS)
                & (np.abs(g_old * d_ratio) <= EPS * np.abs(d_g[:, active])).all(axis=0))
        active = active[~done]
    raise RuntimeError(f"betainc: the continued fraction did not converge for a = {a[active][:3]}, "
                       f"b = {b[active][:3]}, x = {x[active][:3]} (please report this)")


# ---------------------------------------------------------------------------------------------
# I_x(a, b), its complement and derivatives, for every element at once
class _IncompleteBeta(NamedTuple):
    lower: np.ndarray      # I_x(a, b)
    upper: np.ndarray      # 1 - I_x(a, b) = I_(1-x)(b, a)
    lower_da: np.ndarray   # dI/da
    lower_db: np.ndarray   # dI/db
    sample_da: np.ndarray  # -(dI/da) / p(x): dx/da for x ~ Beta(a, b), at x
    sample_db: np.ndarray  # -(dI/db) / p(x)


def _incomplete_beta(a, b, x, y=None) -> _IncompleteBeta:
    """All of I, 1 - I, dI/da, dI/db and -(dI/da)/p, -(dI/db)/p, elementwise. ``y`` is 1 - x if
    the caller knows it more precisely than 1 - x rounds (x near 1). NaN where a or b is not a
    positive finite number or x is outside [0, 1]."""
    a, b, x = np.broadcast_arrays(_as_float(a), _as_float(b), _as_float(x))
    y = 1.0 - x if y is None else np.broadcast_to(_as_float(y), x.shape)
    shape, a, b, x, y = x.shape, a.reshape(-1), b.reshape(-1), x.reshape(-1), y.reshape(-1)
    parts = [np.full(x.shape, np.nan) for _ in _IncompleteBeta._fields]
    lower, upper, lower_da, lower_db, sample_da, sample_db = parts
    valid = (a > 0) & (b > 0) & np.isfinite(a) & np.isfinite(b) & (x >= 0) & (y >= 0)
    at_zero, at_one = valid & (x == 0), valid & (y == 0)
    for edge, value in ((at_zero, 0.0), (at_one, 1.0)):
        lower[edge], upper[edge] = value, 1.0 - value
        lower_da[edge] = lower_db[edge] = sample_da[edge] = sample_db[edge] = 0.0
    inside = np.flatnonzero(valid & ~at_zero & ~at_one)
    if inside.size:
        a, b, x, y = a[inside], b[inside], x[inside], y[inside]
        # The fraction computes I_u(p, q): (p, q, u, v) = (a, b, x, y), or (b, a, y, x) past the mean
        flip = x > (a + 1.0) / (a + b + 2.0)
        p, q, u, v = np.where(flip, b, a), np.where(flip, a, b), np.where(flip, y, x), np.where(flip, x, y)
        fraction, d_fraction = _continued_fraction(p, q, u)
        kernel = np.exp(_log_kernel(p, q, u, v))  # E: the same for both sides
        log_u, log_v = _logs(u, v)
        d_log_p = log_u + _digamma_difference(p + 1.0, q - 1.0)  # d log(E/p)/dp
        d_log_q = log_v + _digamma_difference(q, p)              # d log(E/p)/dq
        over_kernel_p = (d_log_p * fraction + d_fraction[0]) / p  # (dI_u(p, q)/dp) / E
        over_kernel_q = (d_log_q * fraction + d_fraction[1]) / p  # (dI_u(p, q)/dq) / E
        near = kernel * fraction / p  # I_u(p, q)
        # I_x(a, b) = I_u(p, q), or 1 - I_u(p, q) with a = q and b = p
        da_over_kernel = np.where(flip, -over_kernel_q, over_kernel_p)
        db_over_kernel = np.where(flip, -over_kernel_p, over_kernel_q)
        lower[inside] = np.where(flip, 1.0 - near, near)
        upper[inside] = np.where(flip, near, 1.0 - near)
        lower_da[inside] = kernel * da_over_kernel
        lower_db[inside] = kernel * db_over_kernel
        sample_da[inside] = -x * y * da_over_kernel  # p(x) = E / (x y)
        sample_db[inside] = -x * y * db_over_kernel
    return _IncompleteBeta(*(part.reshape(shape) for part in parts))


def betainc_array(a, b, x, y=None) -> np.ndarray:
    """I_x(a, b), the regularised incomplete beta function (the CDF of Beta(a, b) at x). ``y``:
    optionally 1 - x, where x is near 1 and its complement is known more precisely."""
    return _incomplete_beta(a, b, x, y).lower


def betaincc_array(a, b, x, y=None) -> np.ndarray:
    """1 - I_x(a, b) = I_(1-x)(b, a), accurate where it is tiny (the right tail)."""
    return _incomplete_beta(a, b, x, y).upper


def betainc_derivatives_array(a, b, x, y=None) -> tuple:
    """(dI_x(a, b)/da, dI_x(a, b)/db), by forward-mode differentiation of the continued fraction."""
    parts = _incomplete_beta(a, b, x, y)
    return parts.lower_da, parts.lower_db


def beta_sample_derivatives_array(a, b, x, y=None) -> tuple:
    """(dx/da, dx/db) = (-(dI/da)/p(x), -(dI/db)/p(x)) for x ~ Beta(a, b): how a sample moves with
    the parameters while its quantile I_x(a, b) stays fixed. The kernel x^a (1-x)^b / B(a, b)
    common to numerator and denominator is cancelled, so both are finite wherever x is (0 at x = 0
    and x = 1)."""
    parts = _incomplete_beta(a, b, x, y)
    return parts.sample_da, parts.sample_db


def beta_density_array(a, b, x) -> np.ndarray:
    """x^(a-1) (1-x)^(b-1) / B(a, b), the Beta(a, b) density and dI_x/dx (0 outside [0, 1]; at
    the ends the limit: +inf, a finite number or 0)."""
    a, b, x = np.broadcast_arrays(_as_float(a), _as_float(b), _as_float(x))
    y = 1.0 - x
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_x, log_y = _logs(x, y)
        inside = np.exp(_log_kernel(a, b, x, y) - log_x - log_y)
        at_zero = np.where(a < 1, np.inf, np.where(a == 1, b, 0.0))  # 1 / B(1, b) = b
        at_one = np.where(b < 1, np.inf, np.where(b == 1, a, 0.0))
        out = np.where((x > 0) & (x < 1), inside, np.where(x == 0, at_zero, np.where(x == 1, at_one, 0.0)))
    return np.where((a > 0) & (b > 0), out, np.nan)


# ---------------------------------------------------------------------------------------------
# Student's t through the incomplete beta function
def _student_t_coordinates(df: np.ndarray, t: np.ndarray) -> tuple:
    """x = df / (df + t^2) and y = t^2 / (df + t^2) = 1 - x, from the ratio df / t^2 or t^2 / df,
    whichever is at most 1: neither rounds through 1 - x, and nothing overflows for huge |t|."""
    abs_t, root = np.abs(t), np.sqrt(df)
    far = abs_t >= root
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        ratio = np.where(far, (root / abs_t) ** 2, (abs_t / root) ** 2)
    return np.where(far, ratio, 1.0) / (1.0 + ratio), np.where(far, 1.0, ratio) / (1.0 + ratio)


def student_t_cdf_array(df, t) -> np.ndarray:
    """P(T <= t) for T ~ StudentT(df): with x = df / (df + t^2) ~ Beta(df/2, 1/2),
    F(t) = I_x(df/2, 1/2) / 2 for t <= 0 and 1 - I_x(df/2, 1/2) / 2 for t > 0."""
    df, t = np.broadcast_arrays(_as_float(df), _as_float(t))
    x, y = _student_t_coordinates(df, t)
    parts = _incomplete_beta(0.5 * df, 0.5, x, y)
    return np.where(t > 0, 0.5 + 0.5 * parts.upper, 0.5 * parts.lower)


def student_t_density_array(df, t) -> np.ndarray:
    """(1 + t^2/df)^(-(df+1)/2) / (sqrt(df) B(df/2, 1/2)), the StudentT(df) density and dF/dt."""
    df, t = np.broadcast_arrays(_as_float(df), _as_float(t))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        log_density = (-0.5 * np.log(df) - lbeta_array(0.5 * df, 0.5)
                       - 0.5 * (df + 1.0) * np.log1p(t * t / df))
        return np.exp(log_density)


TINY_COORDINATE = 1e-300  # below this, x or y = 1 - x is met by the limits (module docstring)


def student_t_sample_derivative_array(df, t) -> np.ndarray:
    """dt/d(df) = -(dF(t; df)/d(df)) / p(t) for t ~ StudentT(df), at t: how a sample moves with df
    while its quantile stays fixed.

    t = sign(t) sqrt(df (1 - x) / x) with x = df / (df + t^2) ~ Beta(df/2, 1/2), so the chain rule
    through the Beta's implicit gradient dx/da (a = df/2, at fixed quantile of x, which is the
    quantile of t) gives dt/d(df) = t/(2 df) - (t / (2 x (1 - x))) (1/2) dx/da, that is

        dt/d(df) = (t / (2 df)) (1 + c),     c = -a (dx/da) / (x (1 - x)) = a (dI_x/da) / E.

    Where x or 1 - x is below 1e-300 (|t| beyond 1e150 sqrt(df), or within 1e-150 sqrt(df) of 0) c
    takes its limits, exact to O(x) or O(1 - x): log x + digamma(a + 1/2) - digamma(a + 1) in the
    far tail and -df (digamma(a + 1/2) - digamma(a)) at the centre."""
    df, t = np.broadcast_arrays(_as_float(df), _as_float(t))
    x, y = _student_t_coordinates(df, t)
    a = 0.5 * df
    dx_da = _incomplete_beta(a, 0.5, x, y).sample_da
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        c = -a * dx_da / (x * y)
        log_x = np.log(df) - 2.0 * np.log(np.abs(t)) - np.log1p(df / (t * t))
        far_tail = log_x + digamma_array(a + 0.5) - digamma_array(a + 1.0)
        centre = -df * (digamma_array(a + 0.5) - digamma_array(a))
        c = np.where(x < TINY_COORDINATE, far_tail, np.where(y < TINY_COORDINATE, centre, c))
        return t / (2.0 * df) * (1.0 + c)


# ---------------------------------------------------------------------------------------------
# The primitives
def lbeta(a, b) -> Tensor:
    """log B(a, b) as a primitive; float32 stays float32 (computed in float64)."""
    a, b = lift(a, b), lift(b, a)
    checks.broadcast("lbeta", a.shape, b.shape)
    dtype = np.result_type(a.data, b.data)

    def minus_digamma_of_sum(digamma_of_v):  # digamma(v) - digamma(a + b), in the output's dtype
        return (digamma_of_v - digamma_array(a.data + b.data)).astype(dtype, copy=False)

    return from_op("lbeta", lbeta_array(a.data, b.data).astype(dtype, copy=False), (a, b), (
        lambda g: g * minus_digamma_of_sum(digamma_array(a.data)),  # d log B/da = digamma(a) - digamma(a+b)
        lambda g: g * minus_digamma_of_sum(digamma_array(b.data)),  # d log B/db = digamma(b) - digamma(a+b)
    ))


def betainc(a, b, x) -> Tensor:
    """I_x(a, b) as a primitive, differentiable in all three arguments (SciPy's argument order)."""
    like = next((value for value in (a, b, x) if isinstance(value, Tensor)), None)
    a, b, x = lift(a, like), lift(b, like), lift(x, like)
    checks.broadcast("betainc", a.shape, b.shape)
    checks.broadcast("betainc", np.broadcast_shapes(a.shape, b.shape), x.shape)
    dtype = np.result_type(a.data, b.data, x.data)
    parts = _incomplete_beta(a.data, b.data, x.data)

    def density():  # x^(a-1) (1-x)^(b-1) / B(a, b)
        return beta_density_array(a.data, b.data, x.data).astype(dtype, copy=False)

    return from_op("betainc", parts.lower.astype(dtype, copy=False), (a, b, x), (
        lambda g: g * parts.lower_da.astype(dtype, copy=False),  # dI/da: the fraction, differentiated
        lambda g: g * parts.lower_db.astype(dtype, copy=False),  # dI/db: the same, in b
        lambda g: g * density(),  # dI/dx = x^(a-1) (1-x)^(b-1) / B(a, b), the Beta density
    ))


def student_t_cdf(df, t) -> Tensor:
    """P(T <= t) for T ~ StudentT(df) as a primitive, differentiable in df and t. Its derivative in
    df is the implicit identity read the other way round, dF/d(df) = -p(t) dt/d(df), with
    dt/d(df) from ``student_t_sample_derivative_array``: finite at t = 0 and in the tails, where
    differentiating I_x(df/2, 1/2) through x = df / (df + t^2) would meet 0 * inf."""
    df, t = lift(df, t), lift(t, df)
    checks.broadcast("student_t_cdf", df.shape, t.shape)
    dtype = np.result_type(df.data, t.data)
    density = functools.cache(lambda: student_t_density_array(df.data, t.data))  # p(t), for both VJPs

    def d_df():  # -p(t) dt/d(df), in the output's dtype
        return (-density() * student_t_sample_derivative_array(df.data, t.data)).astype(dtype, copy=False)

    return from_op("student_t_cdf", student_t_cdf_array(df.data, t.data).astype(dtype, copy=False), (df, t), (
        lambda g: g * d_df(),  # dF/d(df) = -p(t) dt/d(df)
        lambda g: g * density().astype(dtype, copy=False),  # dF/dt = p(t)
    ))
