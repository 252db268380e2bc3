"""The Distribution base class: where a random variable meets the graph.

Two ways to draw from q_phi(z):

- ``rsample()`` writes the draw as a deterministic function of the parameters and of
  parameter-free noise, z = g_phi(eps). It is built from ordinary ops, so gradients flow into phi:
  this is the reparameterization trick (the pathwise estimator).
- ``sample()`` draws the same random variable but returns it as a *stochastic node*: a Tensor
  with no gradient path back to phi. The graph is cut there, visibly: pictures draw the cut edge
  dashed, and ``backward()`` through it says to use ``rsample()`` or a score-function estimator.

Shapes follow ``sample_shape + batch_shape + event_shape``: ``batch_shape`` is the broadcast shape
of the parameters (independent distributions side by side), ``event_shape`` the shape of one
draw (empty for scalar families, ``(k,)`` for a one-hot over k categories). ``log_prob(value)``
needs a value of that form: it must end in ``event_shape``, and the rest must broadcast with
``batch_shape``; anything else is an error that names the three shapes.

Parameters are checked in one place. Each family declares ``arg_constraints``, a table from its
parameter names to constraints (``constraints.py``), and its constructor hands the parameters to
``_take_parameters``, which turns them into Tensors and checks each against its entry. The
base class also keeps them by name, which is all that ``parameters()`` and ``repr`` need.
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np

from tinygrad_reparam import checks
from tinygrad_reparam.cuts import mark_stochastic
from tinygrad_reparam.distributions.constraints import Constraint
from tinygrad_reparam.tensor import Tensor, is_grad_enabled, no_grad


def as_parameter(value, distribution: str, name: str) -> Tensor:
    """A distribution parameter as a Tensor: Tensors pass through (keeping their graph),
    numbers and arrays become constant float Tensors."""
    if isinstance(value, Tensor):
        return value
    if value is None:
        raise TypeError(f"{distribution}: parameter {name} is missing (got None)")
    return Tensor(checks.float_array(value, f"{distribution}: parameter {name}"))


class Distribution:
    """Base class. Subclasses set ``has_rsample`` and ``arg_constraints``, take their parameters
    with ``_take_parameters``, and implement ``log_prob``, ``entropy``, ``mean``, ``variance``
    and either ``rsample`` (reparameterizable families) or ``_draw`` (families whose samples
    cannot be written as a differentiable function of noise)."""

    has_rsample = False
    arg_constraints: Dict[str, Constraint] = {}  # parameter name -> the rule its values obey
    _named_parameters: Dict[str, Tensor] = {}    # set per instance by _take_parameters

    def __init__(self, batch_shape: tuple, event_shape: tuple = ()):
        self._batch_shape = tuple(batch_shape)
        self._event_shape = tuple(event_shape)

    @property
    def batch_shape(self) -> tuple:
        return self._batch_shape

    @property
    def event_shape(self) -> tuple:
        return self._event_shape

    # --- parameters ----------------------------------------------------------------------------
    def _take_parameters(self, validate_args: bool, **given) -> tuple:
        """The constructor's parameters as Tensors, in the order given (Tensors pass through with
        their graph; numbers and arrays become constants). With ``validate_args`` each one is
        checked against its constraint in ``arg_constraints``."""
        name = type(self).__name__
        tensors = {key: as_parameter(value, name, key) for key, value in given.items()}
        if validate_args:
            for key, tensor in tensors.items():
                constraint = self.arg_constraints[key]
                self._check_values(key, tensor.data, constraint.test(tensor.data), constraint.description)
        self._named_parameters = tensors
        return tuple(tensors.values())

    def _check_values(self, parameter: str, values, ok, constraint: str) -> None:
        """ValueError unless ``ok`` holds everywhere, naming the class the user built, the
        parameter, the constraint and the bad values. Rules that involve several parameters
        (Uniform's low < high) call this directly."""
        checks.every_value(f"{type(self).__name__}: parameter {parameter}", values, ok, constraint)

    def _broadcast_parameter_shapes(self) -> tuple:
        """The batch shape of a family whose parameters all act elementwise: the broadcast of their
        shapes, or an error naming each parameter's shape."""
        try:
            return np.broadcast_shapes(*(tensor.shape for tensor in self._named_parameters.values()))
        except ValueError:
            listed = ", ".join(f"{key} {tensor.shape}" for key, tensor in self._named_parameters.items())
            raise ValueError(f"{type(self).__name__}: parameter shapes cannot be broadcast together: "
                             f"{listed}") from None

    def parameters(self) -> tuple:
        """The parameter Tensors, in the order the constructor takes them (for display)."""
        return tuple(self._named_parameters.values())

    def _dtype(self) -> np.dtype:
        """The dtype of draws: float64 unless every parameter is float32 (noise is drawn in
        float64, then cast)."""
        return np.result_type(*(tensor.dtype for tensor in self.parameters()))

    # --- drawing ----------------------------------------------------------------------------
    def _extended_shape(self, sample_shape=()) -> tuple:
        return checks.sample_shape(sample_shape) + self._batch_shape + self._event_shape

    def rsample(self, sample_shape=(), rng: Optional[np.random.Generator] = None) -> Tensor:
        name = type(self).__name__
        raise NotImplementedError(
            f"{name} has no rsample(): its samples cannot be written as a differentiable function "
            f"of its parameters and parameter-free noise. Use sample() with a score-function "
            f"estimator (tinygrad_reparam.estimators.score_function_surrogate), or a continuous "
            f"relaxation (RelaxedBernoulli / RelaxedOneHotCategorical, i.e. Gumbel-Softmax)."
        )

    def _draw(self, sample_shape: tuple, rng) -> np.ndarray:
        raise NotImplementedError

    def sample(self, sample_shape=(), rng: Optional[np.random.Generator] = None) -> Tensor:
        """Draw without a gradient path: the result is a stochastic node that cuts the graph."""
        with no_grad():
            if self.has_rsample:
                value = self.rsample(sample_shape, rng).data
            else:
                value = self._draw(checks.sample_shape(sample_shape), rng)
        node = Tensor(value)  # the draw, as a node with no gradient path: the cut (cuts.py)
        mark_stochastic(node, f"{type(self).__name__}.sample", self.parameters(), is_grad_enabled())
        return node

    # --- densities and moments ----------------------------------------------------------------
    def _value(self, value, method: str = "log_prob") -> Tensor:
        """The argument of ``log_prob`` as a Tensor (samples pass through with their graph). Its
        shape must be some sample shape + batch_shape + event_shape, where the batch part may
        broadcast: it must end in event_shape, and the rest must broadcast with batch_shape."""
        if not isinstance(value, Tensor):
            value = Tensor(checks.float_array(value, f"{method} value"))
        event, batch = self.event_shape, self.batch_shape
        leading = value.shape[:value.ndim - len(event)]
        if value.shape[len(leading):] != event or not checks.broadcastable(leading, batch):
            expected = f"the batch shape {batch}"
            if event:
                expected += (f" and event shape {event} (the value must end in {event}, after any "
                             f"sample dimensions and the batch shape)")
            raise ValueError(f"{type(self).__name__}.{method}: value of shape {value.shape} cannot be "
                             f"broadcast with {expected}")
        return value

    def log_prob(self, value) -> Tensor:
        raise NotImplementedError

    def entropy(self) -> Tensor:
        raise NotImplementedError

    @property
    def mean(self) -> Tensor:
        raise NotImplementedError

    @property
    def variance(self) -> Tensor:
        raise NotImplementedError

    @property
    def stddev(self) -> Tensor:
        return self.variance.sqrt()

    def _describe_parameters(self) -> str:
        return ", ".join(f"{key}: shape {tensor.shape}" for key, tensor in self._named_parameters.items())

    def __repr__(self) -> str:
        parameters = self._describe_parameters()
        return (f"{type(self).__name__}({parameters}{', ' if parameters else ''}"
                f"batch_shape={self.batch_shape}, event_shape={self.event_shape})")


MONTE_CARLO_RECIPES = {
    "entropy": "-dist.log_prob(dist.rsample((n,))).mean(axis=0)",
    "mean": "dist.rsample((n,)).mean(axis=0)",
    "variance": "z = dist.rsample((n,)); ((z - z.mean(axis=0)) ** 2).mean(axis=0)",
}


def no_closed_form(distribution: Distribution, family: str, quantity: str,
                   recipe: Optional[str] = None) -> NotImplementedError:
    """The error for an entropy or moment with no closed form, with its Monte Carlo recipe
    (``recipe``, or the plain one for that quantity)."""
    recipe = recipe or MONTE_CARLO_RECIPES[quantity]
    return NotImplementedError(f"{type(distribution).__name__}: the {family} {quantity} has no closed "
                               f"form; estimate it by Monte Carlo: {recipe}")
