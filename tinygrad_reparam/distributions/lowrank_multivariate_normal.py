"""LowRankMultivariateNormal(loc, cov_factor, cov_diag): covariance W W^T + D, with W n x m, m << n.

A full covariance has n (n + 1) / 2 numbers and its Cholesky factor costs n^3 / 3 steps. A few
directions of correlation on top of independent noise, Sigma = W W^T + D with W of shape
(n, m) and D diagonal and positive, need only n (m + 1) numbers, and never an n x n
factorization: everything goes through the m x m *capacitance* matrix K = I + W^T D^-1 W and its
Cholesky factor C (C C^T = K).

    rsample:   z = mu + W eps_W + sqrt(D) eps_D,  eps_W ~ N(0, I_m), eps_D ~ N(0, I_n):
               the two independent terms have covariances W W^T and D, which add up to Sigma.
               dz/dmu = I, dz_i/dW_ij = eps_W,j, dz_i/dD_i = eps_D,i / (2 sqrt(D_i)).

    Woodbury:  Sigma^-1 = D^-1 - D^-1 W K^-1 W^T D^-1, so for a vector x
               x^T Sigma^-1 x = x^T D^-1 x - |C^-1 W^T D^-1 x|^2         (one m x m solve)

    determinant lemma:  det(D + W W^T) = det(K) det(D), so
               log det Sigma = 2 sum_i log C_ii + sum_i log D_i

    log q(z) = -(x^T Sigma^-1 x + log det Sigma + n log(2 pi)) / 2,   x = z - mu
    H = (n (1 + log(2 pi)) + log det Sigma) / 2

The same three pieces as the MultivariateNormal (a square root of Sigma, here the n x (m + n)
matrix [W, sqrt(D)]; x^T Sigma^-1 x; log det Sigma) give the closed-form KL to and from either
family (``gaussian_kl`` in multivariate_normal.py), registered here for all four pairs.

Shapes as in ``torch.distributions``: ``loc`` (..., n), ``cov_factor`` (..., n, m), ``cov_diag``
(..., n); the leading axes broadcast to ``batch_shape``, ``event_shape = (n,)``. ``cov_factor``
must be finite and ``cov_diag`` positive and finite (any W works: D > 0 alone makes Sigma positive
definite).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from tinygrad_reparam import checks
from tinygrad_reparam.distributions import constraints
from tinygrad_reparam.distributions.base import Distribution
from tinygrad_reparam.distributions.kl import register_kl
from tinygrad_reparam.distributions.multivariate_normal import (
    Gaussian, MultivariateNormal, batch_shape_of, column, expand, gaussian_kl, matrix_times_vector,
)
from tinygrad_reparam.linalg import cholesky, diag_embed, diagonal, matrix_transpose, solve_triangular
from tinygrad_reparam.ops import concatenate
from tinygrad_reparam.random import get_rng
from tinygrad_reparam.tensor import Tensor


class LowRankMultivariateNormal(Gaussian):
    """Gaussian with mean ``loc`` (..., n) and covariance ``cov_factor @ cov_factor^T +
    diag(cov_diag)``, as ``torch.distributions.LowRankMultivariateNormal``."""

    arg_constraints = {"loc": constraints.finite, "cov_factor": constraints.finite,
                       "cov_diag": constraints.positive}

    def __init__(self, loc, cov_factor, cov_diag, validate_args: bool = True):
        loc, w, d = self._take_parameters(validate_args, loc=loc, cov_factor=cov_factor,
                                          cov_diag=cov_diag)
        n = self._check_shapes(loc, w, d)
        super().__init__(batch_shape_of(self, {"loc": (loc, loc.shape[:-1]),
                                               "cov_factor": (w, w.shape[:-2]),
                                               "cov_diag": (d, d.shape[:-1])}), (n,))
        self._unbroadcasted_cov_factor, self._unbroadcasted_cov_diag = w, d
        self.loc = expand(loc, self.batch_shape + (n,))
        self.cov_factor = expand(w, self.batch_shape + w.shape[-2:])
        self.cov_diag = expand(d, self.batch_shape + (n,))
        # K = I + W^T D^-1 W (m x m) and its Cholesky factor C
        w_t_d_inverse = matrix_transpose(w) / d.reshape(d.shape[:-1] + (1, n))
        capacitance = w_t_d_inverse @ w + np.eye(w.shape[-1], dtype=self._dtype())
        self._capacitance_tril = cholesky(capacitance)

    def _check_shapes(self, loc: Tensor, w: Tensor, d: Tensor) -> int:
        """loc (..., n), cov_factor (..., n, m), cov_diag (..., n): returns n."""
        checks.vector_axis(loc.shape, "LowRankMultivariateNormal: loc")
        checks.matrix_axes(w.shape, "LowRankMultivariateNormal: cov_factor")
        checks.vector_axis(d.shape, "LowRankMultivariateNormal: cov_diag")
        n = loc.shape[-1]
        if w.shape[-2] != n or d.shape[-1] != n:
            raise ValueError(f"LowRankMultivariateNormal: loc {loc.shape} has {n} entries per event, "
                             f"so cov_factor must be ({n}, m) and cov_diag ({n},) after any batch "
                             f"axes; got cov_factor {w.shape} and cov_diag {d.shape}")
        if w.shape[-1] == 0:
            raise ValueError(f"LowRankMultivariateNormal: cov_factor {w.shape} needs at least one "
                             f"column (m >= 1); for a diagonal covariance give a column of zeros, or use "
                             f"Normal(loc, cov_diag ** 0.5) with its log_prob summed over the last axis")
        return n

    # --- the three pieces every Gaussian gives gaussian_kl, and the rest is built from -----------
    def _square_root(self) -> Tensor:
        """R = [W, sqrt(D)] (n x (m + n)): R R^T = W W^T + D."""
        n, m = self.event_shape[0], self._unbroadcasted_cov_factor.shape[-1]
        root_d = diag_embed(self._unbroadcasted_cov_diag.sqrt())
        return concatenate([expand(self._unbroadcasted_cov_factor, self.batch_shape + (n, m)),
                            expand(root_d, self.batch_shape + (n, n))], axis=-1)

    def _inverse_quadratic(self, x: Tensor) -> Tensor:
        """sum over the columns c of x (..., n, k) of c^T Sigma^-1 c, by Woodbury:
        c^T D^-1 c - |C^-1 W^T D^-1 c|^2."""
        d_inverse_x = x / column(self._unbroadcasted_cov_diag)
        projected = matrix_transpose(self._unbroadcasted_cov_factor) @ d_inverse_x  # W^T D^-1 x
        solved = solve_triangular(self._capacitance_tril, projected)  # C^-1 W^T D^-1 x
        return (x * d_inverse_x).sum(axis=(-2, -1)) - (solved ** 2).sum(axis=(-2, -1))

    def _half_log_det(self) -> Tensor:
        """log det Sigma / 2 = sum_i log C_ii + sum_i log D_i / 2 (the determinant lemma)."""
        return (diagonal(self._capacitance_tril).log().sum(axis=-1)
                + 0.5 * self._unbroadcasted_cov_diag.log().sum(axis=-1))

    # --- drawing (log_prob and entropy come from Gaussian) ----------------------------------------
    def rsample(self, sample_shape=(), rng: Optional[np.random.Generator] = None) -> Tensor:
        """z = loc + W eps_W + sqrt(D) eps_D, with eps_W and eps_D plain input leaves."""
        shape = self._extended_shape(sample_shape)
        rng, dtype = get_rng(rng), self._dtype()
        w, d = self._unbroadcasted_cov_factor, self._unbroadcasted_cov_diag
        eps_w = Tensor(rng.standard_normal(shape[:-1] + w.shape[-1:]).astype(dtype, copy=False),
                       name="eps_W ~ N(0, I)")
        eps_d = Tensor(rng.standard_normal(shape).astype(dtype, copy=False), name="eps_D ~ N(0, I)")
        return self.loc + matrix_times_vector(w, eps_w) + d.sqrt() * eps_d

    # --- moments and the three matrices -------------------------------------------------------------
    @property
    def variance(self) -> Tensor:
        """Sigma_ii = sum_k W_ik^2 + D_i."""
        w, d = self._unbroadcasted_cov_factor, self._unbroadcasted_cov_diag
        return expand((w ** 2).sum(axis=-1) + d, self.batch_shape + self.event_shape)

    @property
    def covariance_matrix(self) -> Tensor:
        """W W^T + diag(D)."""
        w, d = self._unbroadcasted_cov_factor, self._unbroadcasted_cov_diag
        return expand(w @ matrix_transpose(w) + diag_embed(d), self._matrix_shape())

    @property
    def precision_matrix(self) -> Tensor:
        """Woodbury: D^-1 - A^T A with A = C^-1 W^T D^-1 (m x n)."""
        w, d = self._unbroadcasted_cov_factor, self._unbroadcasted_cov_diag
        n = self.event_shape[0]
        w_t_d_inverse = matrix_transpose(w) / d.reshape(d.shape[:-1] + (1, n))
        a = solve_triangular(self._capacitance_tril, w_t_d_inverse)
        return expand(diag_embed(1.0 / d) - matrix_transpose(a) @ a, self._matrix_shape())

    @property
    def scale_tril(self) -> Tensor:
        """The Cholesky factor of Sigma, through D^1/2 (I + D^-1/2 W W^T D^-1/2) D^1/2 = Sigma:
        L = D^1/2 cholesky(I + D^-1/2 W W^T D^-1/2), an n x n factorization (as in PyTorch)."""
        w, d = self._unbroadcasted_cov_factor, self._unbroadcasted_cov_diag
        root_d = column(d.sqrt())                    # (..., n, 1): scales row i by sqrt(D_i)
        scaled = w / root_d                          # D^-1/2 W
        inner = scaled @ matrix_transpose(scaled) + np.eye(self.event_shape[0], dtype=self._dtype())
        return expand(root_d * cholesky(inner), self._matrix_shape())


@register_kl(LowRankMultivariateNormal, LowRankMultivariateNormal)
@register_kl(LowRankMultivariateNormal, MultivariateNormal)
@register_kl(MultivariateNormal, LowRankMultivariateNormal)
def _kl_gaussian_with_low_rank(p: Distribution, q: Distribution) -> Tensor:
    """The closed form of multivariate_normal.py, for the pairs that involve a low-rank Gaussian."""
    return gaussian_kl(p, q)
