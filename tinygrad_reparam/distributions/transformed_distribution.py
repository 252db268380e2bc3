"""TransformedDistribution(base, transforms): a base distribution pushed through invertible maps.

Draw x from the base and apply the transforms in order, y = f_k(...f_1(x)). The draw stays
reparameterized when the base's is, because every f is built from the engine's ops:

    y = f(g_phi(eps)),        dy/dphi = f'(x) dx/dphi.

The density follows from the change of variables, undoing the maps one by one from the last
(x_k = y, x_(i-1) = f_i^-1(x_i)):

    log q(y) = log p(x_0) - sum_i log |f_i'(x_(i-1))|,

and so does the CDF, for scalar values and monotone maps: P(f(X) <= y) = F_X(f^-1(y)) when f
increases, 1 - F_X(f^-1(y)) when it decreases (a negative AffineTransform scale), and the quantile
goes forward, F^-1(p) = f(F_X^-1(p)) (with 1 - p when f decreases).

The support is the real line pushed through the maps (each maps an open interval onto an open
interval), e.g. (0, inf) for ExpTransform and (-1, 1) for TanhTransform. Outside it ``log_prob``
is -inf and ``cdf`` is 0 below and 1 above, with no warning and no NaN in the gradients: the
formulas are only ever evaluated at points inside the support (outside values are swapped for
the image of 0 first, then answered by a ``where``).

``rsample_with_log_prob`` returns each draw with its log-density computed on the way forward,
from the x that made it, never inverting a map: exact even where the inverse loses digits (atanh
near +-1) and cheaper. That is the form normalizing flows and SAC's entropy term use.

There is no general closed form for the entropy, mean or variance: they raise, with the Monte
Carlo recipe. LogNormal (exp of a Normal) and TanhNormal (tanh of a Normal) are
TransformedDistributions of a Normal (transformed_normal.py); LogNormal adds its closed forms.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np

from tinygrad_reparam import checks
from tinygrad_reparam.distributions.base import Distribution, no_closed_form
from tinygrad_reparam.distributions.independent import Independent
from tinygrad_reparam.distributions.probs_logits import outside_support
from tinygrad_reparam.distributions.transforms import ComposeTransform, Transform, sum_rightmost
from tinygrad_reparam.ops import where
from tinygrad_reparam.tensor import Tensor, no_grad


class TransformedDistribution(Distribution):
    """The law of y = f_k(...f_1(x)) for x drawn from ``base_distribution`` and ``transforms`` a
    transform or a list [f_1, ..., f_k] (``tinygrad_reparam.distributions.transforms``).

    ``has_rsample`` is the base's; ``base_dist`` and ``transforms`` are kept as attributes, as in
    PyTorch. (``validate_args`` is there for PyTorch's signature: the base distribution and the
    transforms have already checked their own parameters.)
    """

    arg_constraints: dict = {}

    def __init__(self, base_distribution: Distribution, transforms: Union[Transform, Sequence[Transform]],
                 validate_args: bool = True):
        name = type(self).__name__
        if not isinstance(base_distribution, Distribution):
            raise TypeError(f"{name}: base_distribution must be a distribution, e.g. Normal(0.0, 1.0), "
                            f"got {type(base_distribution).__name__}")
        transforms = [transforms] if isinstance(transforms, Transform) else transforms
        if not isinstance(transforms, (list, tuple)) or not all(isinstance(t, Transform) for t in transforms):
            raise TypeError(f"{name}: transforms must be a transform or a list of transforms, e.g. "
                            f"[ExpTransform()] or [AffineTransform(0.0, 2.0), TanhTransform()], "
                            f"got {transforms!r}")
        self.transforms = list(transforms)
        self._composed = ComposeTransform(self.transforms)
        base_shape = base_distribution.batch_shape + base_distribution.event_shape
        event_dim = self._composed.event_dim  # axes the maps act on together
        if len(base_shape) < event_dim:
            raise ValueError(f"{name}: the transforms act on events of {event_dim} dimensions, but "
                             f"the base distribution's draws have shape {base_shape}")
        if self._composed.forward_shape(base_shape) != base_shape:
            raise ValueError(
                f"{name}: the transforms' parameters would broadcast the base distribution's shape "
                f"{base_shape} to {self._composed.forward_shape(base_shape)}, and every element of a "
                f"batch must have noise of its own: give the base distribution parameters of the "
                f"full shape (e.g. Normal(np.zeros({self._composed.forward_shape(base_shape)}), 1.0))")
        if event_dim > len(base_distribution.event_shape):  # maps acting on vectors: read the
            base_distribution = Independent(  # base's last batch axes as one event
                base_distribution, event_dim - len(base_distribution.event_shape))
        self.base_dist = base_distribution
        cut = len(base_shape) - len(base_distribution.event_shape)
        super().__init__(base_shape[:cut], base_shape[cut:])

    @property
    def has_rsample(self) -> bool:
        return self.base_dist.has_rsample

    def parameters(self) -> tuple:
        """The base distribution's parameters, then the transforms' (AffineTransform's loc, scale)."""
        found = []
        for parameter in self.base_dist.parameters() + self._composed.parameters():
            if not any(parameter is seen for seen in found):  # by identity: == compares values
                found.append(parameter)
        return tuple(found)

    # --- drawing -------------------------------------------------------------------------------
    def rsample(self, sample_shape=(), rng: Optional[np.random.Generator] = None) -> Tensor:
        """y = f_k(...f_1(x)) with x = base.rsample(): the base's reparameterization, then the maps."""
        return self._composed(self.base_dist.rsample(sample_shape, rng))

    def _draw(self, sample_shape: tuple, rng) -> np.ndarray:
        """For a base without rsample: its draw, then the maps (``sample()`` runs this in no_grad)."""
        return self._composed(self.base_dist.sample(sample_shape, rng)).data

    def rsample_with_log_prob(self, sample_shape=(),
                              rng: Optional[np.random.Generator] = None) -> tuple:
        """(y, log q(y)) with the log-density taken on the way forward, from the x that made y:

            log q(y) = log p(x_0) - sum_i log |f_i'(x_(i-1))|,     x_i = f_i(x_(i-1)).

        Both are connected to the parameters, and no map is ever inverted, so this stays exact
        where inverting loses digits (TanhTransform near +-1).
        """
        x = self.base_dist.rsample(sample_shape, rng)
        log_q = self.base_dist.log_prob(x)
        log_q = sum_rightmost(log_q, len(self.event_shape) - len(self.base_dist.event_shape))
        for transform in self.transforms:
            y = transform(x)
            log_q = log_q - self._per_event(transform.log_abs_det_jacobian(x, y), transform)
            x = y
        return x, log_q

    # --- the support -------------------------------------------------------------------------
    def _support_bounds(self) -> tuple:
        """(lower, upper), the open interval of the support, elementwise: the real line pushed
        through the maps (a decreasing map swaps the ends)."""
        lower, upper = np.array(-np.inf), np.array(np.inf)
        with no_grad():
            for transform in self.transforms:
                ends = transform(lower).data, transform(upper).data
                lower, upper = np.minimum(*ends), np.maximum(*ends)
        return lower, upper

    def _inside_point(self, shape: tuple, dtype) -> np.ndarray:
        """A value inside the support, the image of 0, in ``shape``: the formulas are evaluated there
        in place of values outside the support (whose answers a ``where`` then gives)."""
        with no_grad():
            return np.broadcast_to(self._composed(np.zeros(())).data, shape).astype(dtype)

    def _per_event(self, term: Tensor, transform: Transform) -> Tensor:
        """A transform's log-derivative summed over the event axes it did not sum itself."""
        return sum_rightmost(term, len(self.event_shape) - transform.event_dim)

    # --- densities -------------------------------------------------------------------------------
    def log_prob(self, value) -> Tensor:
        """log p(x_0) - sum_i log |f_i'(x_(i-1))| with x_0 = f^-1(value), -inf outside the support."""
        y = self._value(value)
        values = y.data
        lower, upper = self._support_bounds()
        inside = (values > lower) & (values < upper)
        if not inside.all():
            y = where(inside, y, self._inside_point(inside.shape, y.dtype))
        log_derivatives = []
        for transform in reversed(self.transforms):
            x = transform.inv(y)
            log_derivatives.append(self._per_event(transform.log_abs_det_jacobian(x, y), transform))
            y = x
        log_q = sum_rightmost(self.base_dist.log_prob(y),
                              len(self.event_shape) - len(self.base_dist.event_shape))
        for term in log_derivatives:
            log_q = log_q - term
        event_axes = tuple(range(-len(self.event_shape), 0))
        return outside_support(log_q, inside=inside.all(axis=event_axes),
                               is_nan=np.isnan(values).any(axis=event_axes))

    def cdf(self, value) -> Tensor:
        """P(Y <= value) = F_base(f^-1(value)) (1 - that where f decreases); 0 below the support,
        1 above it. Differentiable in the parameters and in the value."""
        y = self._value(value, "cdf")
        self._needs_scalar_events("cdf")
        lower, upper = self._support_bounds()
        below, above = y.data <= lower, y.data >= upper
        outside = below | above
        if outside.any():
            y = where(~outside, y, self._inside_point(outside.shape, y.dtype))
        probability = self.base_dist.cdf(self._composed.inv(y))
        sign = self._composed.sign
        if np.any(sign < 0):  # a decreasing map turns "x below" into "x above"
            probability = where(np.asarray(sign) > 0, probability, 1.0 - probability)
        if outside.any():
            probability = where(outside, above.astype(probability.dtype), probability)
        return probability

    def icdf(self, value) -> Tensor:
        """The quantile f(F_base^-1(p)) (with 1 - p where f decreases), for p in [0, 1]."""
        p = self._value(value, "icdf")
        checks.probabilities(p.data, f"{type(self).__name__}.icdf: value")
        self._needs_scalar_events("icdf")
        sign = self._composed.sign
        if np.any(sign < 0):
            p = where(np.asarray(sign) > 0, p, 1.0 - p)  # (the batch may grow to sign's shape)
        return self._composed(self.base_dist.icdf(p))

    def _needs_scalar_events(self, method: str) -> None:
        if self.event_shape or not hasattr(self.base_dist, method):
            why = (f"it is defined for scalar draws only, and these have event_shape {self.event_shape}"
                   if self.event_shape else f"the base distribution {type(self.base_dist).__name__} "
                                            f"has no {method}")
            raise NotImplementedError(f"{type(self).__name__}.{method}: {why}")

    # --- no closed forms in general --------------------------------------------------------------
    def entropy(self) -> Tensor:
        raise no_closed_form(self, "transformed", "entropy",
                             recipe="y, log_q = dist.rsample_with_log_prob((n,)); entropy = "
                                    "-log_q.mean(axis=0)")

    @property
    def mean(self) -> Tensor:
        raise no_closed_form(self, "transformed", "mean")

    @property
    def variance(self) -> Tensor:
        raise no_closed_form(self, "transformed", "variance")

    def _describe_parameters(self) -> str:
        if self._named_parameters:  # a family with parameters of its own, such as LogNormal
            return super()._describe_parameters()
        return f"{self.base_dist!r}, {self.transforms!r}"
