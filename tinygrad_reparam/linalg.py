"""Linear algebra for full-covariance Gaussians: the Cholesky factor and triangular solves.

A Gaussian with mean mu and covariance Sigma is reparameterized through a square root of Sigma,
the lower-triangular Cholesky factor L with L L^T = Sigma:

    z = mu + L eps,  eps ~ N(0, I),                    dz_i/dmu_j = [i = j],  dz_i/dL_ij = eps_j,
    log q(z) = -|L^-1 (z - mu)|^2 / 2 - sum_i log L_ii - (n / 2) log(2 pi).

So the two matrix operations a multivariate Normal needs are the factor itself, ``cholesky``,
and a solve with a triangular matrix, ``solve_triangular`` (L^-1 x, never forming the inverse).
Both are primitives here, written in ops.py's form: the forward line, then one VJP per input
with the derivative as a comment; each docstring derives its VJP. Everything else is composed
from primitives, so its gradient comes for free: ``matrix_transpose``, ``tril``/``triu`` (keep
one triangle), ``diagonal`` and ``diag_embed`` (a vector on a diagonal). The log-determinant
needs no function of its own: log det Sigma = 2 sum_i log L_ii, ``diagonal(L).log().sum(-1)``.

Every function works on stacks of matrices: the last two axes are rows and columns, and every
leading axis is a batch axis (broadcast as in ``@``). float64 and float32 both stay as they are.
NumPy has no triangular solve (SciPy has, but is not a dependency), so ``_substitute`` below is
forward and back substitution written out: one loop over the n rows, each step vectorized over
the batch and over the columns of the right-hand side.
"""
from __future__ import annotations

import numpy as np

from tinygrad_reparam import checks
from tinygrad_reparam.ops import getitem, lift, transpose, where
from tinygrad_reparam.tensor import Tensor, from_op


def _swap(m: np.ndarray) -> np.ndarray:
    """The transpose of every matrix in a stack (a view, no copy)."""
    return np.swapaxes(m, -1, -2)


def _substitute(a: np.ndarray, b: np.ndarray, lower: bool) -> np.ndarray:
    """x with a x = b for triangular a, by substitution (plain NumPy, no graph).

    Lower triangular a, row by row from the top: row i of a x = b reads
    a_i0 x_0 + ... + a_ii x_i = b_i, and x_0 .. x_(i-1) are already known, so

        x_i = (b_i - sum_(j<i) a_ij x_j) / a_ii.

    Upper triangular a: the same from the bottom row up. Only a's triangle is read; ``b`` is
    (..., n, k), and the batch axes of a and b broadcast.
    """
    n = a.shape[-1]
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    x = np.zeros(batch + b.shape[-2:], np.result_type(a, b))
    for i in (range(n) if lower else reversed(range(n))):
        known = slice(0, i) if lower else slice(i + 1, n)  # the x_j already solved for
        row_times_known = a[..., i:i + 1, known] @ x[..., known, :]  # (..., 1, k)
        x[..., i, :] = (b[..., i, :] - row_times_known[..., 0, :]) / a[..., i, i:i + 1]
    return x


# ---------------------------------------------------------------------------------------------
# The primitives
def cholesky(a) -> Tensor:
    """L, lower triangular with a positive diagonal, such that L L^T = a, for a symmetric
    positive definite a (or a stack of them). Anything else is a ValueError that names the
    matrix and says why (not symmetric, or its smallest eigenvalue).

    The factor is that of a's symmetric part (a + a^T) / 2, which is a itself for a symmetric a;
    so the function is defined for every a near a symmetric one, and its gradient is symmetric.

    VJP (Murray 2016, "Differentiation of the Cholesky decomposition", arXiv:1602.07527).
    Differentiate A = L L^T:  dA = dL L^T + L dL^T.  Multiply by L^-1 on the left and L^-T on the
    right:  L^-1 dA L^-T = L^-1 dL + (L^-1 dL)^T.  L^-1 dL is lower triangular, so it is the
    lower triangle of the left side with the diagonal halved; call that Phi:

        dL = L Phi(L^-1 dA L^-T),    Phi(X) = tril(X) with the diagonal halved.

    Phi is its own adjoint (<Y, Phi(X)> = <Phi(Y), X>), so for the gradient Lbar of L,
    <Lbar, dL> = <Phi(L^T Lbar), L^-1 dA L^-T> = <L^-T Phi(L^T Lbar) L^-1, dA>; dA is symmetric,
    so the gradient of A is the symmetric part of L^-T Phi(L^T Lbar) L^-1. (Lbar's upper
    triangle drops out by itself: L^T times a strictly upper triangular matrix is strictly upper.)
    """
    a = lift(a)
    checks.square_matrices(a.shape, "cholesky: a")
    checks.symmetric(a.data, "cholesky: a")
    try:
        out = np.linalg.cholesky((a.data + _swap(a.data)) / 2)
    except np.linalg.LinAlgError:  # a pivot <= 0: some matrix is not positive definite
        raise checks.not_positive_definite(a.data, "cholesky: a") from None

    def vjp(g):  # d chol(A): Abar = sym(L^-T Phi(L^T g) L^-1)
        phi = np.tril(_swap(out) @ g)
        phi[..., np.arange(phi.shape[-1]), np.arange(phi.shape[-1])] /= 2  # halve the diagonal
        left = _substitute(_swap(out), phi, lower=False)              # L^-T Phi
        both = _swap(_substitute(_swap(out), _swap(left), lower=False))  # (L^-T (L^-T Phi)^T)^T
        return (both + _swap(both)) / 2

    return from_op("cholesky", out, (a,), (vjp,))


def solve_triangular(a, b, lower: bool = True) -> Tensor:
    """X = A^-1 B for a triangular A, by substitution: no inverse is formed.

    ``a`` is (..., n, n) and only its lower triangle (``lower=True``) or upper triangle is read;
    ``b`` is (..., n, k) (a vector v goes in as the column v[..., None]); batch axes broadcast.
    A zero on a's diagonal (a singular system) is a ValueError. As in
    ``torch.linalg.solve_triangular(a, b, upper=not lower)``.

    VJP. Differentiate A X = B:  dA X + A dX = dB,  so  dX = A^-1 (dB - dA X).  For the gradient
    Xbar of X,  <Xbar, dX> = <A^-T Xbar, dB> - <A^-T Xbar X^T, dA>.  With Bbar = A^-T Xbar
    (another triangular solve, with A^T, whose triangle is the other one):

        Bbar = A^-T Xbar,     Abar = -Bbar X^T, kept on A's triangle (the entries A depends on).
    """
    a, b = lift(a, b), lift(b, a)
    lower = checks.flag(lower, "solve_triangular: lower")
    checks.triangular_system(a.shape, b.shape)
    triangle = np.tril(a.data) if lower else np.triu(a.data)
    checks.nonzero_diagonal(triangle, "solve_triangular: a")
    out = _substitute(triangle, b.data, lower)

    def vjp_a(g):  # d(A^-1 B)/dA: Abar = -(A^-T g) X^T on A's triangle
        grad = -_substitute(_swap(triangle), g, not lower) @ _swap(out)
        return np.tril(grad) if lower else np.triu(grad)

    def vjp_b(g):  # d(A^-1 B)/dB: Bbar = A^-T g
        return _substitute(_swap(triangle), g, not lower)

    return from_op("solve_triangular", out, (a, b), (vjp_a, vjp_b))


# ---------------------------------------------------------------------------------------------
# Composed from primitives: their gradients come for free
def matrix_transpose(a) -> Tensor:
    """The transpose of every matrix in a stack: the last two axes swapped (torch's ``a.mT``)."""
    a = lift(a)
    checks.matrix_axes(a.shape, "matrix_transpose: a")
    axes = list(range(a.ndim))
    axes[-2], axes[-1] = axes[-1], axes[-2]
    return transpose(a, axes)


def tril(a, diagonal: int = 0) -> Tensor:
    """The entries on and below the ``diagonal``-th diagonal (0 the main one, -1 the one below
    it); zeros above. The gradient passes to the kept entries only."""
    a = lift(a)
    checks.matrix_axes(a.shape, "tril: a")
    diagonal = checks.integer(diagonal, "tril: diagonal")
    keep = np.tri(a.shape[-2], a.shape[-1], diagonal, dtype=bool)
    return where(np.broadcast_to(keep, a.shape), a, 0.0)


def triu(a, diagonal: int = 0) -> Tensor:
    """The entries on and above the ``diagonal``-th diagonal (1 the one above the main one);
    zeros below."""
    a = lift(a)
    checks.matrix_axes(a.shape, "triu: a")
    diagonal = checks.integer(diagonal, "triu: diagonal")
    keep = ~np.tri(a.shape[-2], a.shape[-1], diagonal - 1, dtype=bool)
    return where(np.broadcast_to(keep, a.shape), a, 0.0)


def diagonal(a) -> Tensor:
    """The main diagonal of every matrix in a stack: (..., n, n) -> (..., n)."""
    a = lift(a)
    n = checks.square_matrices(a.shape, "diagonal: a")
    return getitem(a, (Ellipsis, np.arange(n), np.arange(n)))


def diag_embed(v) -> Tensor:
    """The diagonal matrix of every vector in a stack: (..., n) -> (..., n, n), v on the diagonal
    and zeros elsewhere: entry [i, j] is v_i times the identity's [i, j]."""
    v = lift(v)
    checks.vector_axis(v.shape, "diag_embed: v")
    column = v.reshape(v.shape + (1,))
    return column * np.eye(v.shape[-1], dtype=v.dtype)
