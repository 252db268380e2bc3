"""Independent(base, reinterpreted_batch_ndims): batch axes of a distribution read as one event.

``Normal(loc, scale)`` with loc of shape (k,) is k independent Normals side by side: batch_shape
(k,), event_shape (), and ``log_prob`` of a vector gives k numbers. A diagonal Gaussian over R^k
is the same k Normals read as one random vector, whose density is their product:

    log q(z_1, ..., z_k) = sum_i log q_i(z_i),        H[q] = sum_i H[q_i].

``Independent(Normal(loc, scale), 1)`` is that: the last batch axis moves into the event
(batch_shape (), event_shape (k,)) and ``log_prob`` and ``entropy`` sum over it. Nothing else
changes: the draws are the base's (``rsample`` too, so gradients flow exactly as before), and
the mean and variance are the base's, elementwise. As in PyTorch, the last
``reinterpreted_batch_ndims`` batch axes move, and KL(Independent || Independent) sums the base
distributions' KL over them.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from tinygrad_reparam import checks
from tinygrad_reparam.distributions.base import Distribution
from tinygrad_reparam.distributions.kl import kl_divergence, register_kl
from tinygrad_reparam.distributions.transforms import sum_rightmost
from tinygrad_reparam.tensor import Tensor


class Independent(Distribution):
    """The base distribution with its last ``reinterpreted_batch_ndims`` batch axes read as event
    axes: ``log_prob`` and ``entropy`` are summed over them. (``validate_args`` is there for
    PyTorch's signature: the base distribution has already checked its own parameters.)"""

    arg_constraints: dict = {}

    def __init__(self, base_distribution: Distribution, reinterpreted_batch_ndims: int,
                 validate_args: bool = True):
        if not isinstance(base_distribution, Distribution):
            raise TypeError(f"Independent: base_distribution must be a distribution, e.g. "
                            f"Normal(loc, scale), got {type(base_distribution).__name__}")
        batch = base_distribution.batch_shape
        moved = checks.count(reinterpreted_batch_ndims, "Independent: reinterpreted_batch_ndims", minimum=0)
        if moved > len(batch):
            raise ValueError(f"Independent: reinterpreted_batch_ndims={moved} exceeds the "
                             f"{len(batch)} batch dimensions of the base distribution (batch_shape "
                             f"{batch}); it can move at most all of them into the event")
        self.base_dist = base_distribution
        self.reinterpreted_batch_ndims = moved
        cut = len(batch) - moved
        super().__init__(batch[:cut], batch[cut:] + base_distribution.event_shape)

    @property
    def has_rsample(self) -> bool:
        return self.base_dist.has_rsample

    def parameters(self) -> tuple:
        return self.base_dist.parameters()

    # --- drawing: the base's draws, as they are ----------------------------------------------
    def rsample(self, sample_shape=(), rng: Optional[np.random.Generator] = None) -> Tensor:
        return self.base_dist.rsample(sample_shape, rng)

    def _draw(self, sample_shape: tuple, rng) -> np.ndarray:
        return self.base_dist.sample(sample_shape, rng).data

    # --- densities and moments: summed over the moved axes -----------------------------------
    def log_prob(self, value) -> Tensor:
        """sum over the moved axes of the base's log_prob: the log of a product of densities."""
        return sum_rightmost(self.base_dist.log_prob(self._value(value)), self.reinterpreted_batch_ndims)

    def entropy(self) -> Tensor:
        return sum_rightmost(self.base_dist.entropy(), self.reinterpreted_batch_ndims)

    @property
    def mean(self) -> Tensor:
        return self.base_dist.mean

    @property
    def variance(self) -> Tensor:
        return self.base_dist.variance

    def _describe_parameters(self) -> str:
        return f"{self.base_dist!r}, reinterpreted_batch_ndims={self.reinterpreted_batch_ndims}"


@register_kl(Independent, Independent)
def _kl_independent_independent(p: Independent, q: Independent) -> Tensor:
    """KL of a product of independent factors = the sum of the factors' KLs."""
    if p.reinterpreted_batch_ndims != q.reinterpreted_batch_ndims:
        raise NotImplementedError(
            f"kl_divergence(Independent, Independent): p reinterprets "
            f"{p.reinterpreted_batch_ndims} batch dimensions and q {q.reinterpreted_batch_ndims}; "
            f"only equal numbers have a closed form here")
    return sum_rightmost(kl_divergence(p.base_dist, q.base_dist), p.reinterpreted_batch_ndims)
