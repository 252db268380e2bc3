"""Normalizing flows: a simple density pushed through invertible maps, its density kept exact.

Draw z_0 from a base density q_0 (a standard Normal) and push it through K invertible maps,
z_k = f_k(z_{k-1}). The change-of-variables formula gives the density of the result:

    log q_K(z_K) = log q_0(z_0) - sum_k log |det df_k/dz_{k-1}|.

When z_0 comes from ``rsample`` (z_0 = loc + scale * eps) and every f_k is built from the
engine's ops, both z_K and log q_K(z_K) are differentiable functions of the flow's parameters.
So an expectation under q_K, such as the ELBO E[-U(z_K) - log q_K(z_K)], has a pathwise
gradient exactly as it has for a Gaussian q: the reparameterization trick with a richer q.
(Rezende & Mohamed, 2015, "Variational Inference with Normalizing Flows", ICML.)

The planar layer
----------------
    f(z) = z + u h(w^T z + b),        h = tanh,   u, w in R^d,  b in R,

moves every point along the one direction u, by an amount that depends on where the point
lies along w. Its Jacobian I + u psi(z)^T, with psi(z) = h'(w^T z + b) w, is the identity
plus a rank-one matrix, so the matrix determinant lemma gives the determinant in O(d):

    det(I + u psi^T) = 1 + u^T psi(z) = 1 + h'(w^T z + b) w^T u.

Since 0 < h' <= 1, it stays positive whenever w^T u > -1, and f is then invertible (w^T u >= -1
is the paper's condition). Its appendix (A.1) enforces this for any free u by using instead

    u_hat = u + (m(w^T u) - w^T u) w / |w|^2,      m(x) = -1 + softplus(x) > -1,

which only replaces u's component along w, so that w^T u_hat = m(w^T u) > -1.

Inverting a planar layer takes one scalar equation: from y = f(z), the number a = w^T z solves
w^T y = a + (w^T u_hat) h(a + b), whose right side is strictly increasing in a (its derivative
is the determinant above, > 0): Newton's method, kept inside a shrinking bracket, finds a, and
then z = y - u_hat h(a + b). The flow uses this only for ``log_prob`` at given points (plots,
tests); training never needs it.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

from tinygrad_reparam import checks
from tinygrad_reparam.nn import Module
from tinygrad_reparam.random import get_rng
from tinygrad_reparam.tensor import Tensor, no_grad


class PlanarFlow(Module):
    """One planar layer f(z) = z + u_hat tanh(w^T z + b) acting on the last axis of z.

    Parameters (found by ``parameters()``): ``u`` and ``w`` of shape ``(dim,)`` and ``b`` of
    shape ``(1,)``; u and w have entries ~ N(0, init_scale^2) drawn from ``rng``, and b = 0.
    (Do not start with w near zero: the correction (m - w^T u) w / |w|^2 then makes u_hat huge.)

    ``forward(z)`` takes z of shape ``(..., dim)`` and returns ``(f(z), log|det df/dz|)``, the
    latter of shape ``(...)``; ``u_hat()`` gives the constrained u; ``inverse(y)`` undoes f.
    """

    def __init__(self, dim: int, rng: Optional[np.random.Generator] = None,
                 init_scale: float = 1.0):
        self.dim = checks.count(dim, "PlanarFlow: dim")
        init_scale = checks.number(init_scale, "PlanarFlow: init_scale", 0, math.inf,
                                   lower_open=True, upper_open=True)
        rng = get_rng(rng)
        self.u = Tensor(rng.normal(0.0, init_scale, size=self.dim), requires_grad=True)
        self.w = Tensor(rng.normal(0.0, init_scale, size=self.dim), requires_grad=True)
        self.b = Tensor(np.zeros(1), requires_grad=True)

    def u_hat(self) -> tuple:
        """(u_hat, w^T u_hat): u with its component along w replaced, so that
        w^T u_hat = m(w^T u) = -1 + softplus(w^T u) > -1."""
        w_dot_u = (self.w * self.u).sum()
        m = -1.0 + w_dot_u.softplus()
        u_hat = self.u + (m - w_dot_u) * self.w / (self.w * self.w).sum()
        return u_hat, m                          # w^T u_hat = w^T u + (m - w^T u) = m

    def forward(self, z) -> tuple:
        """(f(z), log|det J|) for z of shape (..., dim)."""
        z = z if isinstance(z, Tensor) else Tensor(z)
        self._check_input(z)
        u_hat, w_dot_u_hat = self.u_hat()
        h = (z @ self.w.reshape(self.dim, 1) + self.b).tanh()   # h(w^T z + b), shape (..., 1)
        z_next = z + h * u_hat
        # det J = 1 + h'(w^T z + b) w^T u_hat with tanh' = 1 - tanh^2; since 0 < h' <= 1 and
        # w^T u_hat > -1 it is positive, so log|det J| = log det J.
        det = 1.0 + (1.0 - h * h) * w_dot_u_hat
        return z_next, det.log().sum(axis=-1)                   # sum drops the size-1 axis

    def inverse(self, y) -> np.ndarray:
        """z with f(z) = y, found numerically (plain NumPy, no gradient).

        a = w^T z is the root of g(a) = a + s tanh(a + b) - w^T y with s = w^T u_hat > -1, an
        increasing function, bracketed by [w^T y - |s|, w^T y + |s|] since |tanh| <= 1. Newton
        steps a <- a - g(a) / g'(a) converge fast; a step that would leave the bracket is
        replaced by bisection, and each g(a) shrinks the bracket, so the root is always found.
        """
        with no_grad():
            u_hat, slope = self.u_hat()
        u_hat, slope = u_hat.data, float(slope.data)
        w, b = self.w.data, float(self.b.data[0])
        y = np.asarray(y.data if isinstance(y, Tensor) else y, dtype=np.float64)
        target = y @ w
        low, high = target - abs(slope), target + abs(slope)
        a = target.copy()
        for _ in range(200):
            h = np.tanh(a + b)
            g = a + slope * h - target
            done = np.abs(g) <= 1e-12 * (1.0 + np.abs(target))
            if done.all():
                break
            low = np.where(g < 0, a, low)              # the root lies above a
            high = np.where(g > 0, a, high)            # the root lies below a
            newton = a - g / (1.0 + slope * (1.0 - h * h))
            inside = (newton > low) & (newton < high)
            a = np.where(done, a, np.where(inside, newton, 0.5 * (low + high)))
        return y - np.tanh(a + b)[..., None] * u_hat

    def _check_input(self, z: Tensor) -> None:
        if z.ndim == 0 or z.shape[-1] != self.dim:
            raise ValueError(f"{self!r}: input of shape {z.shape} should have {self.dim} "
                             f"coordinates on its last axis")

    def __repr__(self) -> str:
        return f"PlanarFlow(dim={self.dim})"


class NormalizingFlow(Module):
    """A base distribution pushed through a list of layers, each returning (z, log|det J|).

    ``base`` is a distribution over vectors of independent coordinates whose batch shape is
    ``(dim,)``, such as ``D.Normal(np.zeros(dim), np.ones(dim))``, so that
    log q_0(z_0) = ``base.log_prob(z_0).sum(-1)``. It stays fixed: only the layers' tensors are
    in ``parameters()``. A layer is a Module with ``dim`` and ``forward(z) -> (z', log|det J|)``;
    ``log_prob`` also needs its ``inverse(y)``.

        flow = NormalizingFlow(D.Normal(np.zeros(2), np.ones(2)),
                               [PlanarFlow(2, rng) for _ in range(8)])
        z, log_q = flow.rsample((500,), rng)        # z: (500, 2), log_q: (500,), differentiable
        elbo = (-energy(z) - log_q).mean()
    """

    def __init__(self, base, layers: Sequence[Module]):
        if len(base.batch_shape) != 1 or tuple(base.event_shape) != ():
            raise ValueError(f"NormalizingFlow: the base must be a distribution over vectors with "
                             f"one independent coordinate per dimension, batch shape (dim,), such "
                             f"as Normal(np.zeros(2), np.ones(2)); got {base!r}")
        self.base = base
        self.dim = base.batch_shape[0]
        self.layers = list(layers)                  # no layers: the flow is the base itself
        wrong = [index for index, layer in enumerate(self.layers) if layer.dim != self.dim]
        if wrong:
            raise ValueError(f"NormalizingFlow: layers {wrong} act on "
                             f"{[self.layers[i].dim for i in wrong]} dimensions, the base on "
                             f"{self.dim}")

    def forward(self, z0) -> tuple:
        """(z_K, sum_k log|det J_k|) for points z0 of the base space, shape (..., dim)."""
        z, total_log_det = z0, 0.0
        for layer in self.layers:
            z, log_det = layer(z)
            total_log_det = total_log_det + log_det
        return z, total_log_det

    def rsample(self, sample_shape=(), rng: Optional[np.random.Generator] = None) -> tuple:
        """(z_K, log q_K(z_K)): reparameterized samples and their log-density.

        z_0 = base.rsample() (loc + scale * eps), then
        log q_K(z_K) = log q_0(z_0) - sum_k log|det J_k|.
        Both outputs are connected to the layers' parameters.
        """
        z0 = self.base.rsample(sample_shape, rng=rng)
        log_q0 = self.base.log_prob(z0).sum(axis=-1)
        z, total_log_det = self.forward(z0)
        return z, log_q0 - total_log_det

    def log_prob(self, z) -> np.ndarray:
        """log q_K(z) at given points, by inverting the layers numerically (no gradient)."""
        z = np.asarray(z.data if isinstance(z, Tensor) else z, dtype=np.float64)
        for layer in reversed(self.layers):
            z = layer.inverse(z)                   # z_0 in the end
        with no_grad():
            log_q0 = self.base.log_prob(Tensor(z)).sum(axis=-1)
            _, total_log_det = self.forward(Tensor(z))
            return (log_q0 - total_log_det).data

    def __repr__(self) -> str:
        return f"NormalizingFlow(base={self.base!r}, layers={self.layers!r})"
