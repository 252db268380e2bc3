"""Transforms: invertible maps y = f(x), with the log-derivative the change of variables needs.

If x has density p_X and f is invertible and differentiable, y = f(x) has the density

    log p_Y(y) = log p_X(x) - log |det df/dx|,        x = f^-1(y),            (change of variables)

and y is as easy to reparameterize as x: draw x = g_phi(eps), push it through f. A transform
gives the three pieces, each built from the engine's ops, so gradients flow through all of them:

    t(x)                            the forward map, y = f(x)
    t.inv(y)                        the inverse, x = f^-1(y) (``t.inv`` is itself a transform)
    t.log_abs_det_jacobian(x, y)    log |df/dx| at x, elementwise (given both x and y = f(x),
                                    so that each transform can use whichever is more stable)

The maps, and their log-derivatives in the stable forms used here:

    ExpTransform        y = e^x              x = log y                  log|dy/dx| = x
    SigmoidTransform    y = 1 / (1 + e^-x)   x = log y - log(1 - y)     -softplus(-x) - softplus(x)
    TanhTransform       y = tanh x           x = atanh y                2 (log 2 - x - softplus(-2x))
    SoftplusTransform   y = log(1 + e^x)     x = y + log(-expm1(-y))    -softplus(-x)
    AffineTransform     y = loc + scale x    x = (y - loc) / scale      log |scale|
    ComposeTransform([t1, t2, ...])   y = ...t2(t1(x)): the log-derivatives add up along the way

Why these forms: log(1 - tanh(x)^2) and log(s (1 - s)) for s = sigmoid(x) round to log(0) = -inf
once |x| passes about 19 and 37 (tanh(x) and s round to 1), while the softplus forms stay exact
for every x; and log(e^y - 1) overflows for y > 709, while y + log(-expm1(-y)) does not.

Following PyTorch's ``torch.distributions.transforms``: ``domain`` and ``codomain`` are the
constraints x and y live in, ``sign`` is +1 for an increasing map and -1 for a decreasing one
(``TransformedDistribution.cdf`` needs it), and ``event_dim`` is the number of rightmost axes that
form one event (``log_abs_det_jacobian`` sums over them): 0 for all of these maps, which act
elementwise, except an ``AffineTransform(..., event_dim=1)`` that acts on vectors.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from tinygrad_reparam import checks
from tinygrad_reparam.distributions import constraints
from tinygrad_reparam.distributions.base import as_parameter
from tinygrad_reparam.distributions.constraints import Constraint
from tinygrad_reparam.ops import lift
from tinygrad_reparam.tensor import Tensor

LOG_2 = math.log(2.0)

open_interval_minus_one_one = Constraint("in the open interval (-1, 1)", lambda y: (y > -1) & (y < 1))


def log_tanh_derivative(x: Tensor) -> Tensor:
    """log(1 - tanh(x)^2) = log |dy/dx| for y = tanh(x), as 2 (log 2 - x - softplus(-2x)): exact
    for every x (1 - tanh(x)^2 = 4 / (e^x + e^-x)^2), where the direct form gives log(0) once
    tanh(x) rounds to +-1."""
    return 2.0 * (LOG_2 - x - (-2.0 * x).softplus())


def atanh(y: Tensor) -> Tensor:
    """The inverse of tanh on (-1, 1): (log1p(y) - log1p(-y)) / 2, built from engine ops."""
    return 0.5 * (y.log1p() - (-y).log1p())


def sum_rightmost(x: Tensor, dims: int) -> Tensor:
    """x summed over its last ``dims`` axes (none when dims is 0): per-element terms to per-event."""
    return x.sum(axis=tuple(range(-dims, 0))) if dims > 0 else x


class Transform:
    """An invertible map. Subclasses define ``__call__`` (x -> y), ``_inverse`` (y -> x) and
    ``log_abs_det_jacobian(x, y)``; ``inv`` then gives the inverse as a transform of its own."""

    domain: Constraint = constraints.finite
    codomain: Constraint = constraints.finite
    event_dim = 0   # rightmost axes forming one event: log_abs_det_jacobian sums over them
    sign = 1        # +1: increasing, -1: decreasing (an array when it differs by element)

    def __call__(self, x) -> Tensor:
        raise NotImplementedError

    def _inverse(self, y) -> Tensor:
        raise NotImplementedError

    def log_abs_det_jacobian(self, x, y) -> Tensor:
        raise NotImplementedError

    @property
    def inv(self) -> "Transform":
        """The inverse map as a transform: ``t.inv(y)`` is x, ``t.inv.inv`` is ``t``."""
        return InverseTransform(self)

    def parameters(self) -> tuple:
        """The Tensors the map depends on (AffineTransform's loc and scale), for gradients and
        for pictures of the graph."""
        return ()

    def forward_shape(self, shape: tuple) -> tuple:
        """The shape of t(x) for x of shape ``shape``."""
        return tuple(shape)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class InverseTransform(Transform):
    """f^-1 as a transform: calling it inverts f, and its log-derivative is minus f's, taken at
    the swapped pair (log |dx/dy| = -log |dy/dx|)."""

    def __init__(self, transform: Transform):
        self.inv_of = transform
        self.domain, self.codomain = transform.codomain, transform.domain
        self.event_dim, self.sign = transform.event_dim, transform.sign

    def __call__(self, y) -> Tensor:
        return self.inv_of._inverse(y)

    def _inverse(self, x) -> Tensor:
        return self.inv_of(x)

    def log_abs_det_jacobian(self, y, x) -> Tensor:
        return -self.inv_of.log_abs_det_jacobian(x, y)

    @property
    def inv(self) -> Transform:
        return self.inv_of

    def parameters(self) -> tuple:
        return self.inv_of.parameters()

    def __repr__(self) -> str:
        return f"{self.inv_of!r}.inv"


class ExpTransform(Transform):
    """y = e^x, onto the positive reals: LogNormal is a Normal pushed through it."""

    codomain = constraints.positive

    def __call__(self, x) -> Tensor:
        return lift(x).exp()

    def _inverse(self, y) -> Tensor:
        return lift(y).log()

    def log_abs_det_jacobian(self, x, y) -> Tensor:
        return lift(x)  # log |d e^x / dx| = log e^x = x


class SigmoidTransform(Transform):
    """y = 1 / (1 + e^-x), onto (0, 1)."""

    codomain = constraints.open_unit_interval

    def __call__(self, x) -> Tensor:
        return lift(x).sigmoid()

    def _inverse(self, y) -> Tensor:
        y = lift(y)
        return y.log() - (-y).log1p()  # logit(y) = log y - log(1 - y)

    def log_abs_det_jacobian(self, x, y) -> Tensor:
        x = lift(x)
        return -(-x).softplus() - x.softplus()  # log s(1 - s) = log s + log(1 - s)


class TanhTransform(Transform):
    """y = tanh x, onto (-1, 1): TanhNormal (the squashed Gaussian of SAC) is a Normal pushed
    through it."""

    codomain = open_interval_minus_one_one

    def __call__(self, x) -> Tensor:
        return lift(x).tanh()

    def _inverse(self, y) -> Tensor:
        return atanh(lift(y))

    def log_abs_det_jacobian(self, x, y) -> Tensor:
        return log_tanh_derivative(lift(x))  # log(1 - tanh(x)^2)


class SoftplusTransform(Transform):
    """y = log(1 + e^x), onto the positive reals: the usual way to make a parameter positive."""

    codomain = constraints.positive

    def __call__(self, x) -> Tensor:
        return lift(x).softplus()

    def _inverse(self, y) -> Tensor:
        y = lift(y)
        return y + (-(-y).expm1()).log()  # log(e^y - 1) = y + log(1 - e^-y), which never overflows

    def log_abs_det_jacobian(self, x, y) -> Tensor:
        return -(-lift(x)).softplus()  # log sigmoid(x) = -softplus(-x)


class AffineTransform(Transform):
    """y = loc + scale * x, with ``scale`` nonzero (negative scales reverse the order).

    ``loc`` and ``scale`` may be Tensors that require grad (a learnable affine layer); they
    broadcast against x. With ``event_dim=1`` the map acts on vectors along the last axis and
    ``log_abs_det_jacobian`` is log |det diag(scale)| = sum log |scale_i| per vector.
    """

    def __init__(self, loc, scale, event_dim: int = 0):
        self.loc = as_parameter(loc, "AffineTransform", "loc")
        self.scale = as_parameter(scale, "AffineTransform", "scale")
        checks.every_value("AffineTransform: loc", self.loc.data, np.isfinite(self.loc.data), "finite")
        scale_values = self.scale.data
        checks.every_value("AffineTransform: scale", scale_values,
                           (scale_values != 0) & np.isfinite(scale_values),
                           "nonzero and finite (a scale of 0 maps everything to loc: no inverse)")
        self.event_dim = checks.count(event_dim, "AffineTransform: event_dim", minimum=0)
        self.sign = np.sign(scale_values) if scale_values.ndim else int(np.sign(scale_values))

    def __call__(self, x) -> Tensor:
        return self.loc + self.scale * lift(x)

    def _inverse(self, y) -> Tensor:
        return (lift(y) - self.loc) / self.scale

    def log_abs_det_jacobian(self, x, y) -> Tensor:
        shape = np.broadcast_shapes(lift(x).shape, self.scale.shape)
        log_scale = self.scale.abs().log() + np.zeros(shape, dtype=self.scale.dtype)  # log |scale|
        return sum_rightmost(log_scale, self.event_dim)  # one term per element, summed per event

    def parameters(self) -> tuple:
        return (self.loc, self.scale)

    def forward_shape(self, shape: tuple) -> tuple:
        return np.broadcast_shapes(tuple(shape), self.loc.shape, self.scale.shape)

    def __repr__(self) -> str:
        extra = f", event_dim={self.event_dim}" if self.event_dim else ""
        return f"AffineTransform(loc: shape {self.loc.shape}, scale: shape {self.scale.shape}{extra})"


class ComposeTransform(Transform):
    """The maps in ``parts`` applied in order, y = f_k(...f_2(f_1(x))): the inverse undoes them
    in reverse order, and by the chain rule the log-derivatives add up,

        log |dy/dx| = sum_i log |df_i/dx_(i-1)| at x_(i-1) = f_(i-1)(...f_1(x)).

    An empty list is the identity.
    """

    def __init__(self, parts: Sequence[Transform]):
        if isinstance(parts, Transform) or not isinstance(parts, (list, tuple)):
            raise TypeError(f"ComposeTransform: parts must be a list of transforms, e.g. "
                            f"[ExpTransform(), AffineTransform(0.0, 2.0)], got {type(parts).__name__}")
        for position, part in enumerate(parts):
            if not isinstance(part, Transform):
                raise TypeError(f"ComposeTransform: parts[{position}] must be a transform (such as "
                                f"ExpTransform()), got {type(part).__name__}")
        self.parts = list(parts)
        if self.parts:
            self.domain, self.codomain = self.parts[0].domain, self.parts[-1].codomain
        self.event_dim = max((part.event_dim for part in self.parts), default=0)
        self.sign = 1
        for part in self.parts:
            self.sign = self.sign * part.sign  # decreasing twice is increasing

    def __call__(self, x) -> Tensor:
        x = lift(x)
        for part in self.parts:
            x = part(x)
        return x

    def _inverse(self, y) -> Tensor:
        y = lift(y)
        for part in reversed(self.parts):
            y = part.inv(y)
        return y

    def log_abs_det_jacobian(self, x, y) -> Tensor:
        x = lift(x)
        if not self.parts:
            return Tensor(np.zeros(x.shape[:x.ndim - self.event_dim], dtype=x.dtype))
        total = None
        for position, part in enumerate(self.parts):
            x_next = lift(y) if position == len(self.parts) - 1 else part(x)
            term = sum_rightmost(part.log_abs_det_jacobian(x, x_next), self.event_dim - part.event_dim)
            total = term if total is None else total + term
            x = x_next
        return total

    def parameters(self) -> tuple:
        return tuple(parameter for part in self.parts for parameter in part.parameters())

    def forward_shape(self, shape: tuple) -> tuple:
        for part in self.parts:
            shape = part.forward_shape(shape)
        return tuple(shape)

    def __repr__(self) -> str:
        return f"ComposeTransform({self.parts!r})"
