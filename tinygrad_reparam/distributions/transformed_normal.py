"""A Normal pushed through a fixed increasing map: z = f(x), x ~ Normal(loc, scale).

This is a TransformedDistribution whose base is Normal(loc, scale), with loc and scale taken as
the family's own parameters (checked like a Normal's: loc finite, scale > 0, as in
``LocAndScale.arg_constraints``). The reparameterization is the Normal's followed by f,

    z = f(loc + scale * eps),  eps ~ N(0, 1),    dz/dloc = f'(x),   dz/dscale = f'(x) eps,

and the density follows from the change of variables x = f^-1(z):

    log q(z) = log N(f^-1(z); loc, scale) - log f'(f^-1(z)).

``LogNormal`` (f = exp) and ``TanhNormal`` (f = tanh) give the map, and their closed forms where
they exist. ``loc`` and ``scale`` are the mean and standard deviation of x, not of z.
"""
from __future__ import annotations

from tinygrad_reparam.distributions.location_scale import LocAndScale
from tinygrad_reparam.distributions.normal import Normal
from tinygrad_reparam.distributions.transformed_distribution import TransformedDistribution
from tinygrad_reparam.distributions.transforms import Transform


class TransformedNormal(TransformedDistribution):
    """Base class: Normal(loc, scale) pushed through ``transform``; subclasses choose the map."""

    arg_constraints = LocAndScale.arg_constraints  # loc finite, scale positive and finite

    def __init__(self, loc, scale, transform: Transform, validate_args: bool = True):
        self.loc, self.scale = self._take_parameters(validate_args, loc=loc, scale=scale)
        self._broadcast_parameter_shapes()  # a clash of shapes is an error naming this family
        # x ~ Normal(loc, scale): already validated above, under this family's name
        super().__init__(Normal(self.loc, self.scale, validate_args=False), transform)
