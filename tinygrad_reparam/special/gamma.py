"""The gamma family in NumPy: lgamma, digamma, trigamma, and the incomplete gamma function.

Gamma(x) = int_0^inf t^(x-1) e^-t dt, and the regularised lower incomplete gamma function
P(a, x) = (1 / Gamma(a)) int_0^x t^(a-1) e^-t dt is the CDF of a Gamma(a, 1) variable; its
complement is Q(a, x) = 1 - P(a, x). Every function here works elementwise on float64 arrays
(the ``*_array`` functions); ``lgamma``, ``digamma`` and ``gammainc`` are also engine primitives,
each forward line next to its vector-Jacobian product. The methods, and why each is used where:

``lgamma(x) = log |Gamma(x)|``
    For x >= 10, Stirling's asymptotic series
        lgamma(x) = (x - 1/2) log x - x + log(2 pi) / 2 + sum_k B_2k / (2k (2k - 1) x^(2k-1)),
    cut after the B_16 term (the next term is below 2e-19 at x = 10). For 0 < x < 10 the
    argument is moved into [1.5, 2.5) with Gamma(x + 1) = x Gamma(x), and lgamma(2 + t) is the
    Taylor series whose coefficients are values of the Riemann zeta function,
        lgamma(2 + t) = (1 - gamma) t + sum_{k>=2} (-1)^k (zeta(k) - 1) t^k / k   (|t| <= 1/2),
    gamma being Euler's constant. Moving up to 10 and subtracting (Stirling's value and the log
    of the product are both about 13) would leave an absolute error of 5e-15, a large relative
    error near the zeros at 1 and 2; the series keeps both to a few units in the last place.
    For x < 0, the reflection formula Gamma(x) Gamma(1 - x) = pi / sin(pi x).

``digamma(x) = d lgamma / dx`` and ``trigamma(x) = d digamma / dx``
    The recurrences digamma(x) = digamma(x + 1) - 1/x and trigamma(x) = trigamma(x + 1) + 1/x^2
    move x up to 10, where the asymptotic series (derivatives of Stirling's) take over:
        digamma(x) ~ log x - 1/(2x) - sum_k B_2k / (2k x^2k),
        trigamma(x) ~ 1/x + 1/(2x^2) + sum_k B_2k / x^(2k+1).
    Reflection again for x < 0. Accurate to about 1e-15 absolute.

``P(a, x)`` and ``dP/da``, with the factor K = x^a e^-x / Gamma(a + 1) in front of both
    - x < a + 1: the series P = K sum_{n>=0} x^n / ((a+1)(a+2)...(a+n)), whose terms fall
      from the first; dP/da = K [(log x - digamma(a + 1)) S + dS/da], the sum differentiated
      term by term alongside it.
    - x >= a + 1: Legendre's continued fraction for the complement,
        Q = a K / (x + 1 - a - 1(1 - a) / (x + 3 - a - 2(2 - a) / (x + 5 - a - ...))),
      evaluated by the modified Lentz method, and differentiated in forward mode: every
      quantity of the recurrence carries its derivative in a alongside it (the product rule at
      each step), which gives dQ/da = -dP/da without a finite difference. The series would need
      ever more terms here (its terms first grow), the fraction converges fast.
    - a >= 300 and |x/a - 1| <= 0.3: both need about 8.6 sqrt(a) terms near x = a (2,700 at
      a = 1e5) and lose digits as a grows, so Temme's uniform asymptotic expansion (DLMF 8.12)
      takes over. With lam = x/a, mu = lam - 1 and eta = sign(mu) sqrt(2 (mu - log lam)),
        Q(a, x) = erfc(eta sqrt(a/2)) / 2 + e^(-a eta^2/2) / sqrt(2 pi a) sum_k c_k(eta) a^-k,
      and differentiating at fixed x (d eta/da = -mu / (a eta)) gives
        dP/da = e^(-a eta^2/2) / sqrt(2 pi a) [-log(lam)/mu + sum_k e_k(eta) a^-(k+1)],
        e_k = (eta^2/2 - mu) c_(k+1) + (k + 1/2) c_k + (mu/eta) c_k'.
      Four terms of each sum leave an error below 2e-15 from a = 300 on. The c_k and e_k are
      smooth at eta = 0, where their closed forms cancel catastrophically, so they are evaluated
      as power series in eta, computed once at import (``_uniform_expansion_series``).
    K under- or overflows long before P does (x^a alone overflows at a = 200, x = 40), so it is
    handled as its logarithm, and for a >= 10 that logarithm is written without the
    cancellation of a log x against lgamma(a):
        log K = a (log(lam) - mu) - log(2 pi a) / 2 - (Stirling's correction to lgamma(a)),
    log(lam) - mu by a series near lam = 1, as log(x/a) - mu away from it.

The pathwise derivative of a Gamma(a, 1) sample, dz/da = -(dP/da)(z; a) / p(z; a) (see
``distributions/gamma.py``), shares the factor K with the density p(z) = a K / z, so it is
computed with K cancelled: it stays finite where both dP/da and p underflow.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from tinygrad_reparam.ops import lift, operands
from tinygrad_reparam.special.erf import erfc_array
from tinygrad_reparam.tensor import Tensor, from_op

EULER_GAMMA = 0.57721566490153286
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
LOG_PI = math.log(math.pi)
EPS = float(np.finfo(np.float64).eps)
BERNOULLI = (1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6, -3617 / 510)  # B_2..B_16
ASYMPTOTIC_FROM = 10.0   # Stirling's series and its derivatives from here on
UNIFORM_FROM = 300.0     # Temme's expansion for a >= this ...
UNIFORM_WIDTH = 0.3      # ... and |x/a - 1| <= this
UNIFORM_TERMS = 4        # c_0..c_3 and e_0..e_3
MAX_TERMS = 10_000       # the series and the fraction converge long before (at most ~200 terms)


def _as_float(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _horner(coefficients, x):
    """sum_k coefficients[k] x^k."""
    total = np.zeros_like(x)
    for coefficient in reversed(coefficients):
        total = total * x + coefficient
    return total


def _abs_sin_pi(x: np.ndarray) -> np.ndarray:
    """|sin(pi x)|, from x - round(x) in [-1/2, 1/2], which is exact (pi * x itself would round
    for large x) and exactly 0 at the integers."""
    return np.abs(np.sin(np.pi * (x - np.round(x))))


# ---------------------------------------------------------------------------------------------
# lgamma, digamma, trigamma
def _zeta_minus_one(k: int) -> float:
    """zeta(k) - 1 = sum_{n>=2} n^-k: the terms up to n = 9 summed, the rest by Euler-Maclaurin,
    int_10^inf t^-k dt + 10^-k / 2 + sum_j B_2j / (2j)! k (k+1) ... (k+2j-2) 10^(1-k-2j)."""
    head = sum(n ** -k for n in range(2, 10))
    tail = 10.0 ** (1 - k) / (k - 1) + 0.5 * 10.0 ** -k
    rising = float(k)  # k (k+1) ... (k + 2j - 2)
    for j, bernoulli in enumerate(BERNOULLI, start=1):
        tail += bernoulli / math.factorial(2 * j) * rising * 10.0 ** (1 - k - 2 * j)
        rising *= (k + 2 * j - 1) * (k + 2 * j)
    return head + tail


# lgamma(2 + t) = t (1 - gamma + t sum_{k>=2} (-1)^k (zeta(k) - 1)/k t^(k-2)); |t| <= 1/2 needs 28
LGAMMA_AT_2 = tuple((-1) ** k * _zeta_minus_one(k) / k for k in range(2, 31))


def _stirling_correction(x: np.ndarray) -> np.ndarray:
    """lgamma(x) - [(x - 1/2) log x - x + log(2 pi)/2] = sum_k B_2k / (2k (2k-1) x^(2k-1)), x >= 10."""
    terms = [bernoulli / (2 * k * (2 * k - 1)) for k, bernoulli in enumerate(BERNOULLI, start=1)]
    return _horner(terms, 1.0 / (x * x)) / x


def lgamma_array(x) -> np.ndarray:
    """log |Gamma(x)| elementwise (+inf at the poles 0, -1, -2, ...); see the module docstring."""
    x = _as_float(x)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        y = np.where(x < 0, 1.0 - x, x)  # reflected: y >= 0 (x < 0 is finished below)
        large = y >= ASYMPTOTIC_FROM
        stirling = (y - 0.5) * (np.log(y) - 1.0) - 0.5 + HALF_LOG_2PI + _stirling_correction(y)
        # 0 < y < 10: y = 2 + shift + t with |t| <= 1/2, Gamma(y) = Gamma(2 + t) (2+t)...(y-1)
        shift = np.where(large, 0.0, np.clip(np.floor(y - 1.5), -2.0, 8.0))
        t = y - (2.0 + shift)  # exact: y and 2 + shift are within a factor 2 of each other
        product = np.ones_like(y)
        for j in range(1, 9):  # y >= 2.5: Gamma(y) = Gamma(y - shift) (y-1) ... (y-shift), each factor exact
            product = np.where(shift >= j, product * (y - j), product)
        log_product = (np.log(product) - np.where(shift < 0, np.log(y), 0.0)  # y < 1.5: Gamma(y) = Gamma(y+1) / y
                       - np.where(shift == -2, np.log1p(y), 0.0))          # y < 0.5: and / (y + 1)
        near_2 = t * ((1.0 - EULER_GAMMA) + t * _horner(LGAMMA_AT_2, t))
        out = np.where(large, stirling, near_2 + log_product)
        reflected = LOG_PI - np.log(_abs_sin_pi(x)) - out
        return np.where(x < 0, np.where(np.isneginf(x), np.inf, reflected), out)


def digamma_array(x) -> np.ndarray:
    """digamma(x) = d lgamma(x)/dx elementwise: -inf at 0 (the limit from the right, as PyTorch),
    NaN at the negative integers (poles with both signs); see the module docstring."""
    x = _as_float(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.where(x < 0, 1.0 - x, x)
        recurrence = np.zeros_like(y)  # sum of 1/y over the steps up to 10
        while True:
            small = y < ASYMPTOTIC_FROM
            if not small.any():
                break
            recurrence = np.where(small, recurrence + 1.0 / y, recurrence)
            y = np.where(small, y + 1.0, y)
        w = 1.0 / (y * y)
        terms = [bernoulli / (2 * k) for k, bernoulli in enumerate(BERNOULLI, start=1)]
        out = np.log(y) - 0.5 / y - w * _horner(terms, w) - recurrence
        # reflection: digamma(x) = digamma(1 - x) - pi / tan(pi x)
        reflected = out - np.pi / np.tan(np.pi * (x - np.round(x)))
        return np.where(x < 0, np.where(x == np.round(x), np.nan, reflected), out)


def trigamma_array(x) -> np.ndarray:
    """trigamma(x) = d digamma(x)/dx elementwise (+inf at the poles 0, -1, -2, ...; +inf also
    where it exceeds the largest float, about 1/x^2 for 0 < x < 1e-154)."""
    x = _as_float(x)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        y = np.where(x < 0, 1.0 - x, x)
        recurrence = np.zeros_like(y)  # sum of 1/y^2 over the steps up to 10
        while True:
            small = y < ASYMPTOTIC_FROM
            if not small.any():
                break
            recurrence = np.where(small, recurrence + 1.0 / (y * y), recurrence)
            y = np.where(small, y + 1.0, y)
        w = 1.0 / (y * y)
        out = (1.0 + 0.5 / y + w * _horner(BERNOULLI, w)) / y + recurrence
        # reflection: trigamma(x) + trigamma(1 - x) = pi^2 / sin^2(pi x)
        return np.where(x < 0, (np.pi / _abs_sin_pi(x)) ** 2 - out, out)


def lgamma(x) -> Tensor:
    """log |Gamma(x)| as a primitive; float32 stays float32 (computed in float64)."""
    x = lift(x)
    return from_op("lgamma", lgamma_array(x.data).astype(x.dtype, copy=False), (x,), (
        lambda g: g * digamma_array(x.data).astype(x.dtype, copy=False),  # d lgamma(x)/dx = digamma(x)
    ))


def digamma(x) -> Tensor:
    """digamma(x) = d lgamma(x)/dx as a primitive."""
    x = lift(x)
    return from_op("digamma", digamma_array(x.data).astype(x.dtype, copy=False), (x,), (
        lambda g: g * trigamma_array(x.data).astype(x.dtype, copy=False),  # d digamma(x)/dx = trigamma(x)
    ))


# ---------------------------------------------------------------------------------------------
# The incomplete gamma function
def _log1p_minus_x(d: np.ndarray) -> np.ndarray:
    """log(1 + d) - d, about -d^2/2 for small d, without the cancellation of the two terms:
    with t = d / (2 + d), log(1 + d) = 2 atanh(t) = 2 (t + t^3/3 + t^5/5 + ...) and d = 2t + t d,
    so log(1 + d) - d = -t d + 2 t^3 (1/3 + t^2/5 + t^4/7 + ...) (|d| < 1/2, so t^2 <= 1/9);
    log1p(d) - d as it is beyond. (special/beta.py uses it too.)"""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = d / (2.0 + d)
        series = -t * d + 2.0 * t ** 3 * _horner([1.0 / (2 * k + 3) for k in range(18)], t * t)
        return np.where(np.abs(d) < 0.5, series, np.log1p(d) - d)


def _log_prefactor(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """log K = log(x^a e^-x / Gamma(a + 1)); for a >= 10 as a (log(lam) - mu) - log(2 pi a)/2
    - (Stirling's correction to lgamma(a)), lam = x/a and mu = lam - 1, which cancels nothing
    large. log(lam) - mu is ``_log1p_minus_x(mu)`` for |mu| < 1/2 and log(x/a) - mu beyond: there
    log1p(mu) would take the logarithm of 1 + mu, which has lost the digits of a small lam
    (x = 1e-8, a = 10: 1 + mu = 1e-9 keeps 7 of them)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        direct = a * np.log(x) - x - lgamma_array(a + 1.0)
        large_a = np.maximum(a, ASYMPTOTIC_FROM)  # (the other branch is discarded below)
        mu = (x - large_a) / large_a
        log_lam_minus_mu = np.where(np.abs(mu) < 0.5, _log1p_minus_x(mu), np.log(x / large_a) - mu)
        uniform = (large_a * log_lam_minus_mu - HALF_LOG_2PI
                   - 0.5 * np.log(large_a) - _stirling_correction(large_a))
        return np.where(a >= ASYMPTOTIC_FROM, uniform, direct)


def _lower_series(a: np.ndarray, x: np.ndarray) -> tuple:
    """S = sum_{n>=0} x^n / ((a+1)...(a+n)) and dS/da, for x < a + 1 (so P = K S).

    Term n is term n-1 times r = x / (a + n) < 1; its derivative follows by the product rule,
    d(term_n)/da = (d(term_(n-1))/da - term_(n-1) / (a + n)) r. A converged element stops when the
    rest of the sum, below term r / (1 - r), cannot change it (nor its derivative)."""
    term, d_term = np.ones_like(x), np.zeros_like(x)
    total, d_total = np.ones_like(x), np.zeros_like(x)
    active = np.arange(x.size)  # the elements still being summed
    for n in range(1, MAX_TERMS):
        if active.size == 0:
            return total, d_total
        a_n, ratio = a[active] + n, x[active] / (a[active] + n)
        d_term[active] = (d_term[active] - term[active] / a_n) * ratio
        term[active] *= ratio
        total[active] += term[active]
        d_total[active] += d_term[active]
        rest = ratio / (1.0 - ratio)
        done = ((term[active] * rest <= EPS * total[active])
                & (np.abs(d_term[active]) * rest <= EPS * np.abs(d_total[active])))
        active = active[~done]
    raise RuntimeError(f"gammainc: the series did not converge for a = {a[active][:3]}, "
                       f"x = {x[active][:3]} (please report this)")


def _upper_continued_fraction(a: np.ndarray, x: np.ndarray) -> tuple:
    """F and dF/da, with Q = a K F, for x >= a + 1: F = 1 / g with Legendre's fraction

        g = b_1 + a_2 / (b_2 + a_3 / (b_3 + ...)),  b_j = x + 2j - 1 - a,  a_j = (j-1)(a - j + 1),

    by the modified Lentz method: g is the product of the ratios C_j D_j, with C_j = b_j + a_j /
    C_(j-1) and D_j = 1 / (b_j + a_j D_(j-1)). Each line carries its derivative in a next to it
    (forward mode: db_j/da = -1, da_j/da = j - 1). Stops when a further ratio changes neither g
    nor dg/da."""
    b = x + 1.0 - a
    g, d_g = b.copy(), np.full_like(x, -1.0)
    c, d_c = b.copy(), np.full_like(x, -1.0)
    d, d_d = np.zeros_like(x), np.zeros_like(x)
    active = np.arange(x.size)
    for j in range(2, MAX_TERMS):
        if active.size == 0:
            return 1.0 / g, -d_g / (g * g)
        a_j, d_a_j = (j - 1) * (a[active] - (j - 1)), j - 1.0
        b_j = x[active] + (2 * j - 1) - a[active]  # d b_j / da = -1
        d_old, d_d_old, c_old, d_c_old = d[active], d_d[active], c[active], d_c[active]
        denominator = b_j + a_j * d_old
        denominator = np.where(denominator == 0, 1e-300, denominator)  # Lentz's guard (never met)
        d_new = 1.0 / denominator
        d_d_new = -(-1.0 + d_a_j * d_old + a_j * d_d_old) * d_new * d_new
        c_new = b_j + a_j / c_old
        c_new = np.where(c_new == 0, 1e-300, c_new)
        d_c_new = -1.0 + d_a_j / c_old - a_j * d_c_old / (c_old * c_old)
        ratio, d_ratio = c_new * d_new, d_c_new * d_new + c_new * d_d_new
        g_old = g[active]
        d_g[active] = d_g[active] * ratio + g_old * d_ratio
        g[active] = g_old * ratio
        d[active], d_d[active], c[active], d_c[active] = d_new, d_d_new, c_new, d_c_new
        done = (np.abs(ratio - 1.0) <= EPS) & (np.abs(g_old * d_ratio) <= EPS * np.abs(d_g[active]))
        active = active[~done]
    raise RuntimeError(f"gammainc: the continued fraction did not converge for a = {a[active][:3]}, "
                       f"x = {x[active][:3]} (please report this)")


def _reciprocal_series(p: list) -> list:
    """The coefficients of 1 / sum_n p_n s^n (p_0 != 0), as many as p has."""
    q = [1.0 / p[0]]
    for n in range(1, len(p)):
        q.append(-sum(p[k] * q[n - k] for k in range(1, n + 1)) / p[0])
    return q


def _uniform_expansion_series(length: int = 24) -> tuple:
    """Power series in eta of Temme's c_k(eta) and of the e_k(eta) of dP/da (module docstring).

    They come from the substitution t = a lam in the integral of Q. With mu = lam - 1 and
    eta^2/2 = mu - log(1 + mu), t^(a-1) e^-t dt = a^a e^-a e^(-a eta^2/2) (eta / mu) d eta, so

        Gamma*(a) Q(a, x) = sqrt(a / 2 pi) int_eta^inf e^(-a s^2/2) f_0(s) ds,  f_0 = s / mu(s),

    where Gamma(a) = sqrt(2 pi) a^(a - 1/2) e^-a Gamma*(a). Integrating by parts again and again,
    with f_(k+1)(s) = d/ds [(f_k(s) - f_k(0)) / s], gives erfc(eta sqrt(a/2))/2 sum_k f_k(0) a^-k
    (so the f_k(0) are Stirling's coefficients of Gamma*(a): 1, 1/12, 1/288, ...) plus
    e^(-a eta^2/2) / sqrt(2 pi a) sum_k a^-k (f_k(eta) - f_k(0)) / eta. Dividing by Gamma*(a),
    c_k = sum_j r_(k-j) (f_j(eta) - f_j(0)) / eta with r the coefficients of 1 / Gamma*(a). The
    tests check the first ones against DLMF 8.12: c_0 = -1/3 + eta/12 - 2 eta^2/135 + ...
    """
    # mu(eta) = eta + eta^2/3 + eta^3/36 - ..., from mu dmu/deta = eta (1 + mu) (d of eta^2/2 = mu - log(1+mu))
    mu = [0.0, 1.0]
    for n in range(2, length + 2 * UNIFORM_TERMS + 4):
        mu.append((mu[n - 1] - sum(i * mu[i] * mu[n + 1 - i] for i in range(2, n))) / (n + 1))
    f = [_reciprocal_series(mu[1:])]  # f_0 = eta / mu
    for k in range(UNIFORM_TERMS + 1):  # f_(k+1): drop f_k(0), divide by s, differentiate
        f.append([(m + 1) * f[k][m + 2] for m in range(len(f[k]) - 2)])
    r = _reciprocal_series([f_k[0] for f_k in f])
    c = [[sum(r[k - j] * f[j][n + 1] for j in range(k + 1)) for n in range(length)]
         for k in range(UNIFORM_TERMS + 1)]
    half_eta2_minus_mu = [0.0, -1.0, 0.5 - mu[2]] + [-m for m in mu[3:]]
    mu_over_eta = mu[1:]

    def times(p, q):  # the product of two power series, to `length` coefficients
        return [sum(p[i] * q[n - i] for i in range(n + 1)) for n in range(length)]

    e = []
    for k in range(UNIFORM_TERMS):
        d_c_k = [(n + 1) * c[k][n + 1] for n in range(length - 1)] + [0.0]
        e.append([u + (k + 0.5) * c_kn + v for u, c_kn, v in
                  zip(times(half_eta2_minus_mu, c[k + 1]), c[k], times(mu_over_eta, d_c_k))])
    return tuple(c[:UNIFORM_TERMS]), tuple(e)


TEMME_C, TEMME_E = _uniform_expansion_series()


class _IncompleteGamma(NamedTuple):
    lower: np.ndarray              # P(a, x)
    upper: np.ndarray              # Q(a, x) = 1 - P(a, x)
    lower_da: np.ndarray           # dP/da
    sample_derivative: np.ndarray  # -(dP/da) / p(x; a): dz/da for z ~ Gamma(a, 1) at z = x


def _incomplete_gamma(a, x) -> _IncompleteGamma:
    """P, Q, dP/da and -(dP/da)/p elementwise, each region by its method (module docstring).
    NaN where a is not a positive finite number or x is negative or NaN."""
    a, x = np.broadcast_arrays(_as_float(a), _as_float(x))
    shape, a, x = a.shape, a.reshape(-1), x.reshape(-1)
    lower, upper, lower_da, sample_derivative = (np.full(a.shape, np.nan) for _ in range(4))
    valid = (a > 0) & np.isfinite(a) & (x >= 0)
    at_zero, at_infinity = valid & (x == 0), valid & np.isinf(x)
    lower[at_zero], upper[at_zero], lower_da[at_zero], sample_derivative[at_zero] = 0.0, 1.0, 0.0, 0.0
    lower[at_infinity], upper[at_infinity], lower_da[at_infinity] = 1.0, 0.0, 0.0
    inside = valid & ~at_zero & ~at_infinity
    uniform = inside & (a >= UNIFORM_FROM) & (np.abs(x - a) <= UNIFORM_WIDTH * a)
    series = inside & ~uniform & (x < a + 1.0)
    fraction = inside & ~uniform & ~series
    log_prefactor = _log_prefactor(a, x)

    if series.any():  # P = K S, dP/da = K [(log x - digamma(a + 1)) S + dS/da], p = a K / x
        a_s, x_s = a[series], x[series]
        total, d_total = _lower_series(a_s, x_s)
        prefactor = np.exp(log_prefactor[series])
        derivative_over_k = (np.log(x_s) - digamma_array(a_s + 1.0)) * total + d_total
        lower[series] = prefactor * total
        upper[series] = 1.0 - lower[series]
        lower_da[series] = prefactor * derivative_over_k
        sample_derivative[series] = -x_s * derivative_over_k / a_s

    if fraction.any():  # Q = a K F, dQ/da = a K [(log x - digamma(a)) F + dF/da] = -dP/da
        a_f, x_f = a[fraction], x[fraction]
        value, d_value = _upper_continued_fraction(a_f, x_f)
        prefactor = a_f * np.exp(log_prefactor[fraction])
        derivative_over_k = (np.log(x_f) - digamma_array(a_f)) * value + d_value
        upper[fraction] = prefactor * value
        lower[fraction] = 1.0 - upper[fraction]
        lower_da[fraction] = -prefactor * derivative_over_k
        sample_derivative[fraction] = x_f * derivative_over_k

    if uniform.any():  # Temme's expansion, in powers of 1/a
        a_u, x_u = a[uniform], x[uniform]
        mu = (x_u - a_u) / a_u
        half_eta2 = -_log1p_minus_x(mu)
        eta = np.sign(mu) * np.sqrt(2.0 * half_eta2)
        gaussian = np.exp(-a_u * half_eta2) / np.sqrt(2 * np.pi * a_u)  # e^(-a eta^2/2) / sqrt(2 pi a)
        c_sum = np.zeros_like(a_u)
        e_sum = np.zeros_like(a_u)
        for c_k, e_k in zip(reversed(TEMME_C), reversed(TEMME_E)):
            c_sum = c_sum / a_u + _horner(c_k, eta)
            e_sum = e_sum / a_u + _horner(e_k, eta)
        with np.errstate(invalid="ignore"):
            log_lam_over_mu = np.where(mu == 0, 1.0, np.log1p(mu) / mu)
        bracket = -log_lam_over_mu + e_sum / a_u
        upper[uniform] = 0.5 * erfc_array(eta * np.sqrt(0.5 * a_u)) + gaussian * c_sum
        lower[uniform] = 0.5 * erfc_array(-eta * np.sqrt(0.5 * a_u)) - gaussian * c_sum
        lower_da[uniform] = gaussian * bracket
        # p = a K / x = gaussian a / (x Gamma*(a)), so -(dP/da) / p = -(x/a) Gamma*(a) bracket
        sample_derivative[uniform] = -(1.0 + mu) * np.exp(_stirling_correction(a_u)) * bracket

    return _IncompleteGamma(*(part.reshape(shape) for part in (lower, upper, lower_da, sample_derivative)))


def gammainc_array(a, x) -> np.ndarray:
    """P(a, x), the regularised lower incomplete gamma function (the CDF of Gamma(a, 1) at x)."""
    return _incomplete_gamma(a, x).lower


def gammaincc_array(a, x) -> np.ndarray:
    """Q(a, x) = 1 - P(a, x), accurate where it is tiny (the right tail)."""
    return _incomplete_gamma(a, x).upper


def gammainc_derivative_a_array(a, x) -> np.ndarray:
    """dP(a, x)/da, the derivative of the lower regularised incomplete gamma function in its shape."""
    return _incomplete_gamma(a, x).lower_da


def gamma_sample_derivative_array(a, x) -> np.ndarray:
    """dz/da = -(dP/da)(z; a) / p(z; a) at z = x, for z ~ Gamma(a, 1): how a sample moves with the
    shape while its quantile P(a, z) stays fixed. Computed with the common factor x^a e^-x /
    Gamma(a) of numerator and denominator cancelled, so it is finite wherever z is (0 at z = 0)."""
    return _incomplete_gamma(a, x).sample_derivative


def gamma_density_array(a, x) -> np.ndarray:
    """x^(a-1) e^-x / Gamma(a), the Gamma(a, 1) density and dP(a, x)/dx (0 for x < 0)."""
    a, x = _as_float(a), _as_float(x)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        inside = np.exp(_log_prefactor(a, x) + np.log(a) - np.log(x))
        at_zero = np.where(a < 1, np.inf, np.where(a == 1, 1.0, 0.0))
        return np.where(x > 0, inside, np.where(x == 0, at_zero, 0.0))


def gammainc(a, x) -> Tensor:
    """P(a, x) as a primitive, differentiable in both arguments."""
    a, x = operands("gammainc", a, x)
    dtype = np.result_type(a.data, x.data)
    parts = _incomplete_gamma(a.data, x.data)
    return from_op("gammainc", parts.lower.astype(dtype, copy=False), (a, x), (
        lambda g: g * parts.lower_da.astype(dtype, copy=False),  # dP/da: series, fraction or Temme
        lambda g: g * gamma_density_array(a.data, x.data).astype(dtype, copy=False),  # dP/dx = x^(a-1) e^-x / Gamma(a)
    ))
