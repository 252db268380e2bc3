"""MultivariateNormal(loc, covariance_matrix | precision_matrix | scale_tril): z = mu + L eps.

A full covariance Sigma couples the coordinates, so scaling each eps_i on its own
(loc + scale * eps) is no longer enough. Any square root S of Sigma (S S^T = Sigma) is: with
eps ~ N(0, I), z = mu + S eps has mean mu and covariance E[S eps eps^T S^T] = S S^T = Sigma. As
PyTorch does, the library takes the Cholesky factor L (lower triangular, positive diagonal,
L L^T = Sigma): it is unique, and it makes everything else one triangular solve away.

    rsample:   z = mu + L eps,           dz_i/dmu_j = [i = j],   dz_i/dL_ij = eps_j  (j <= i)
    log_prob:  log q(z) = -|x|^2 / 2 - sum_i log L_ii - (n / 2) log(2 pi),   x = L^-1 (z - mu)
               (x by a triangular solve, no inverse; log det Sigma = 2 sum_i log L_ii)
    entropy:   H = (n / 2)(1 + log(2 pi)) + sum_i log L_ii

Whichever matrix the constructor is given, L is found once:

- ``scale_tril``: L itself.
- ``covariance_matrix`` Sigma: L = cholesky(Sigma).
- ``precision_matrix`` P = Sigma^-1, without inverting P and then factorizing (PyTorch's trick).
  Let J reverse the order of the rows (J = J^T = J^-1). Factorize the flipped matrix,
  J P J = Lf Lf^T; then P = (J Lf J)(J Lf J)^T = U U^T with U = J Lf J *upper* triangular, so
  Sigma = P^-1 = U^-T U^-1 = L L^T with L = U^-T, lower triangular: one triangular solve of
  U^T L = I.

KL between Gaussians on the same space, in closed form: for any square root R of Sigma_p,

    KL(p || q) = [tr(Sigma_q^-1 Sigma_p) + |mu_q - mu_p|^2 - n + log det Sigma_q - log det Sigma_p] / 2

with |v|^2 = v^T Sigma_q^-1 v, and tr(Sigma_q^-1 R R^T) the sum of |r|^2 over R's columns r. For
q a MultivariateNormal, |v|^2 = |L_q^-1 v|^2. ``gaussian_kl`` needs only these three pieces of
each distribution (the square root, |v|^2, log det), and ``LowRankMultivariateNormal`` provides
them too, so one function serves every pair of the two families.

Shapes as in ``torch.distributions``: ``loc`` is (..., n), the matrix (..., n, n); the leading axes
broadcast to ``batch_shape`` and ``event_shape = (n,)``, so ``rsample(sample_shape)`` has shape
``sample_shape + batch_shape + (n,)`` and ``log_prob`` drops the last axis. Validation (on by
default): loc finite, a covariance or precision matrix symmetric positive definite, scale_tril
lower triangular with a positive diagonal.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from tinygrad_reparam import checks
from tinygrad_reparam.distributions import constraints
from tinygrad_reparam.distributions.base import Distribution
from tinygrad_reparam.distributions.constraints import Constraint
from tinygrad_reparam.distributions.kl import register_kl
from tinygrad_reparam.linalg import cholesky, diagonal, matrix_transpose, solve_triangular
from tinygrad_reparam.random import get_rng
from tinygrad_reparam.tensor import Tensor

LOG_2PI = math.log(2 * math.pi)
MATRICES = ("covariance_matrix", "precision_matrix", "scale_tril")


def _is_lower_cholesky(matrices: np.ndarray) -> np.ndarray:
    """True at each entry that fits a Cholesky factor: finite; 0 above the diagonal, > 0 on it."""
    n = matrices.shape[-1]
    above, on = ~np.tri(n, n, dtype=bool), np.eye(n, dtype=bool)
    fits = np.where(above, matrices == 0, np.where(on, matrices > 0, True))
    return np.isfinite(matrices) & fits


positive_definite = Constraint(
    "symmetric positive definite, as M @ M.T + c * I with c > 0 is (the values shown are the "
    "entries of the matrices that are not)",
    lambda matrices: checks.positive_definite_matrices(matrices)[..., None, None])
lower_cholesky = Constraint(
    "lower triangular with a positive diagonal (0 above the diagonal, > 0 on it, all finite; "
    "the values shown are the entries that break this)", _is_lower_cholesky)


# ---------------------------------------------------------------------------------------------
# Small helpers the Gaussian families share
def expand(t: Tensor, shape: tuple) -> Tensor:
    """``t`` broadcast to ``shape`` in the graph (backward sums the copies' gradients back)."""
    return t if t.shape == shape else t + np.zeros(shape, dtype=t.dtype)


def column(v: Tensor) -> Tensor:
    """A stack of vectors (..., n) as a stack of one-column matrices (..., n, 1)."""
    return v.reshape(v.shape + (1,))


def matrix_times_vector(m: Tensor, v: Tensor) -> Tensor:
    """m v for stacks of matrices (..., n, k) and vectors (..., k), batch axes broadcast: (..., n)."""
    product = m @ column(v)
    return product.reshape(product.shape[:-1])


def batch_shape_of(distribution: Distribution, batch_parts: dict) -> tuple:
    """The broadcast of the parameters' batch parts ({name: (tensor, batch part of its shape)}),
    or an error that names every parameter's shape."""
    try:
        return np.broadcast_shapes(*(part for _, part in batch_parts.values()))
    except ValueError:
        listed = ", ".join(f"{name} {tensor.shape}" for name, (tensor, _) in batch_parts.items())
        raise ValueError(f"{type(distribution).__name__}: parameter shapes cannot be broadcast "
                         f"together: {listed} (the batch axes are those before the event axis of "
                         f"loc and before the matrix axes)") from None


def check_parameters(distribution: Distribution) -> None:
    """Each parameter against its entry in ``arg_constraints`` (what ``_take_parameters`` does
    with validate_args=True, here run once the shapes are known to fit the matrix rules)."""
    for name, tensor in distribution._named_parameters.items():
        constraint = distribution.arg_constraints[name]
        distribution._check_values(name, tensor.data, constraint.test(tensor.data),
                                   constraint.description)


def gaussian_kl(p: "Gaussian", q: "Gaussian") -> Tensor:
    """KL(p || q) for two Gaussians with the same event shape (module docstring): each family
    gives ``_square_root()`` (R with R R^T = Sigma), ``_inverse_quadratic(x)`` (the sum of
    c^T Sigma^-1 c over the columns c of x) and ``_half_log_det()`` (log det Sigma / 2)."""
    if p.event_shape != q.event_shape:
        raise ValueError(f"kl_divergence({type(p).__name__}, {type(q).__name__}): the event shapes "
                         f"differ ({p.event_shape} and {q.event_shape}); both Gaussians must live in "
                         f"the same space")
    n = p.event_shape[0]
    trace = q._inverse_quadratic(p._square_root())            # tr(Sigma_q^-1 Sigma_p)
    mahalanobis = q._inverse_quadratic(column(q.loc - p.loc))  # |mu_q - mu_p|^2 under Sigma_q^-1
    return q._half_log_det() - p._half_log_det() + 0.5 * (trace + mahalanobis - n)


class Gaussian(Distribution):
    """A Gaussian on R^n known through three pieces its subclass gives: ``_square_root()`` (R with
    R R^T = Sigma), ``_inverse_quadratic(x)`` (the sum of c^T Sigma^-1 c over the columns c of x)
    and ``_half_log_det()`` (log det Sigma / 2). Density, entropy and KL follow from them alone:

        log q(z) = -(z - mu)^T Sigma^-1 (z - mu) / 2 - log det Sigma / 2 - (n / 2) log(2 pi),
        H = log det Sigma / 2 + (n / 2)(1 + log(2 pi)).
    """

    has_rsample = True

    def log_prob(self, value) -> Tensor:
        squared_length = self._inverse_quadratic(column(self._value(value) - self.loc))
        return -0.5 * squared_length - self._half_log_det() - 0.5 * self.event_shape[0] * LOG_2PI

    def entropy(self) -> Tensor:
        n = self.event_shape[0]
        return expand(self._half_log_det() + 0.5 * n * (1.0 + LOG_2PI), self.batch_shape)

    @property
    def mean(self) -> Tensor:
        return self.loc

    def _matrix_shape(self) -> tuple:
        """batch_shape + (n, n): the shape of the covariance, precision and scale_tril."""
        return self.batch_shape + self.event_shape + self.event_shape


# ---------------------------------------------------------------------------------------------
class MultivariateNormal(Gaussian):
    """Gaussian with mean ``loc`` (..., n) and one of ``covariance_matrix``, ``precision_matrix``
    or ``scale_tril`` (..., n, n), as ``torch.distributions.MultivariateNormal``."""

    arg_constraints = {"loc": constraints.finite, "covariance_matrix": positive_definite,
                       "precision_matrix": positive_definite, "scale_tril": lower_cholesky}

    def __init__(self, loc, covariance_matrix=None, precision_matrix=None, scale_tril=None,
                 validate_args: bool = True):
        matrices = zip(MATRICES, (covariance_matrix, precision_matrix, scale_tril))
        given = {name: matrix for name, matrix in matrices if matrix is not None}
        if len(given) != 1:
            got = "none" if not given else " and ".join(given)
            raise ValueError(f"MultivariateNormal: give exactly one of covariance_matrix, "
                             f"precision_matrix and scale_tril (got {got})")
        (self._given,) = given
        loc, matrix = self._take_parameters(False, loc=loc, **given)
        n = self._check_shapes(loc, matrix)
        super().__init__(batch_shape_of(self, {"loc": (loc, loc.shape[:-1]),
                                               self._given: (matrix, matrix.shape[:-2])}), (n,))
        if validate_args:
            check_parameters(self)
        if self._given == "scale_tril":
            self._unbroadcasted_scale_tril = matrix
        elif self._given == "covariance_matrix":
            self._unbroadcasted_scale_tril = cholesky(matrix)
        else:
            self._unbroadcasted_scale_tril = precision_to_scale_tril(matrix)
        self.loc = expand(loc, self.batch_shape + (n,))

    def _check_shapes(self, loc: Tensor, matrix: Tensor) -> int:
        """loc is (..., n) and the matrix (..., n, n): returns n."""
        checks.vector_axis(loc.shape, "MultivariateNormal: loc")
        n = checks.square_matrices(matrix.shape, f"MultivariateNormal: {self._given}")
        if loc.shape[-1] != n:
            raise ValueError(f"MultivariateNormal: loc has {loc.shape[-1]} entries per event (shape "
                             f"{loc.shape}) but {self._given} is {n} x {n} (shape {matrix.shape}); "
                             f"they must match")
        return n

    # --- the three pieces every Gaussian gives gaussian_kl, and the rest is built from -----------
    def _square_root(self) -> Tensor:
        return self._unbroadcasted_scale_tril

    def _inverse_quadratic(self, x: Tensor) -> Tensor:
        """sum over the columns c of x (..., n, k) of c^T Sigma^-1 c = |L^-1 c|^2."""
        return (solve_triangular(self._unbroadcasted_scale_tril, x) ** 2).sum(axis=(-2, -1))

    def _half_log_det(self) -> Tensor:
        """log det Sigma / 2 = sum_i log L_ii (det L is the product of its diagonal)."""
        return diagonal(self._unbroadcasted_scale_tril).log().sum(axis=-1)

    # --- drawing (log_prob and entropy come from Gaussian) ----------------------------------------
    def rsample(self, sample_shape=(), rng: Optional[np.random.Generator] = None) -> Tensor:
        """z = loc + L eps: the reparameterization trick with a matrix. eps is a plain input leaf."""
        shape = self._extended_shape(sample_shape)
        noise = get_rng(rng).standard_normal(shape).astype(self._dtype(), copy=False)
        eps = Tensor(noise, name="eps ~ N(0, I)")
        return self.loc + matrix_times_vector(self._unbroadcasted_scale_tril, eps)

    # --- moments and the three matrices -------------------------------------------------------------
    @property
    def variance(self) -> Tensor:
        """Var z_i = Sigma_ii = sum_k L_ik^2."""
        row_sums = (self._unbroadcasted_scale_tril ** 2).sum(axis=-1)
        return expand(row_sums, self.batch_shape + self.event_shape)

    @property
    def scale_tril(self) -> Tensor:
        return expand(self._unbroadcasted_scale_tril, self._matrix_shape())

    @property
    def covariance_matrix(self) -> Tensor:
        """Sigma = L L^T (the given matrix itself, if that was the covariance)."""
        if self._given == "covariance_matrix":
            sigma = self._named_parameters["covariance_matrix"]
        else:
            factor = self._unbroadcasted_scale_tril
            sigma = factor @ matrix_transpose(factor)
        return expand(sigma, self._matrix_shape())

    @property
    def precision_matrix(self) -> Tensor:
        """P = Sigma^-1 = L^-T L^-1, with L^-1 from a triangular solve against the identity (the
        given matrix itself, if that was the precision)."""
        if self._given == "precision_matrix":
            precision = self._named_parameters["precision_matrix"]
        else:
            identity = np.eye(self.event_shape[0], dtype=self._dtype())
            inverse = solve_triangular(self._unbroadcasted_scale_tril, identity)  # L^-1
            precision = matrix_transpose(inverse) @ inverse
        return expand(precision, self._matrix_shape())


def precision_to_scale_tril(precision: Tensor) -> Tensor:
    """The Cholesky factor of Sigma = P^-1, from P without inverting it (module docstring):
    J P J = Lf Lf^T, U = J Lf J (upper triangular), L = U^-T, i.e. the solution of U^T L = I."""
    flipped = precision[..., ::-1, ::-1]                       # J P J: rows and columns reversed
    u_transposed = matrix_transpose(cholesky(flipped)[..., ::-1, ::-1])  # (J Lf J)^T, lower
    identity = np.eye(precision.shape[-1], dtype=precision.dtype)
    return solve_triangular(u_transposed, identity, lower=True)


@register_kl(MultivariateNormal, MultivariateNormal)
def _kl_multivariate_normal(p: MultivariateNormal, q: MultivariateNormal) -> Tensor:
    """KL(p || q) = sum_i log (L_q)_ii - sum_i log (L_p)_ii
                   + (|L_q^-1 L_p|^2 + |L_q^-1 (mu_q - mu_p)|^2 - n) / 2."""
    return gaussian_kl(p, q)
