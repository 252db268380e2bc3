"""A Normal pushed through a fixed increasing map: z = f(x), x ~ Normal(loc, scale).

The reparameterization is the Normal's followed by one more ordinary op,

    z = f(loc + scale * eps),  eps ~ N(0, 1),    dz/dloc = f'(x),   dz/dscale = f'(x) eps,

and the density follows from the change of variables x = f^-1(z):

    log q(z) = log N(f^-1(z); loc, scale) - log f'(f^-1(z)).

This base holds what that shares (``rsample``, the Normal of x); the parameter code (loc finite,
scale > 0, the batch shape) comes from ``LocAndScale``, as for the location-scale families.
``LogNormal`` (f = exp) and ``TanhNormal`` (f = tanh) supply f, the density and the moments.
``loc`` and ``scale`` are the mean and standard deviation of x, not of z.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from tinygrad_reparam.distributions.location_scale import LocAndScale
from tinygrad_reparam.distributions.normal import Normal
from tinygrad_reparam.tensor import Tensor


class TransformedNormal(LocAndScale):
    """Base class: subclasses define ``transform(x)``, the map f as engine ops."""

    def __init__(self, loc, scale, validate_args: bool = True):
        super().__init__(loc, scale, validate_args)
        # x ~ Normal(loc, scale): already validated above, under this class's name
        self.base_dist = Normal(self.loc, self.scale, validate_args=False)

    def transform(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def rsample(self, sample_shape=(), rng: Optional[np.random.Generator] = None) -> Tensor:
        """z = f(loc + scale * eps): the Normal's reparameterization, then f."""
        return self.transform(self.base_dist.rsample(sample_shape, rng))
