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
draw (empty for scalar families, ``(k,)`` for a one-hot over k categories).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from tinygrad_reparam import checks
from tinygrad_reparam.cuts import mark_stochastic
from tinygrad_reparam.tensor import Tensor, is_grad_enabled, no_grad


def as_parameter(value, distribution: str, name: str) -> Tensor:
    """A distribution parameter as a Tensor: Tensors pass through (keeping their graph),
    numbers and arrays become constant float Tensors."""
    if isinstance(value, Tensor):
        return value
    if value is None:
        raise TypeError(f"{distribution}: parameter {name} is missing (got None)")
    return Tensor(checks.float_array(value, f"{distribution}: parameter {name}"))


def location_and_scale(distribution: str, loc, scale, validate_args: bool) -> tuple:
    """``loc`` and ``scale`` as Tensors; with ``validate_args``, loc must be finite and scale
    positive and finite (errors name ``distribution``, the class the user built)."""
    loc = as_parameter(loc, distribution, "loc")
    scale = as_parameter(scale, distribution, "scale")
    if validate_args:
        check_parameter(distribution, "loc", loc.data, np.isfinite(loc.data), "finite")
        check_parameter(distribution, "scale", scale.data, (scale.data > 0) & np.isfinite(scale.data),
                        "positive and finite (> 0)")
    return loc, scale


def check_parameter(distribution: str, name: str, values: np.ndarray, ok: np.ndarray,
                    constraint: str) -> None:
    """Raise ValueError naming the distribution, the parameter, its constraint and the bad values.
    NaN never satisfies a constraint."""
    values, ok = np.broadcast_arrays(np.asarray(values), np.asarray(ok))
    if not ok.all():
        bad = values[~ok]
        shown = np.array2string(np.asarray(bad).reshape(-1)[:5], precision=6, separator=", ")
        count = np.size(bad)
        raise ValueError(
            f"{distribution}: parameter {name} must be {constraint}; got {count} bad "
            f"value{'s' if count != 1 else ''}: {shown}{' ...' if count > 5 else ''}"
        )


def _is_int(n) -> bool:
    return isinstance(n, (int, np.integer)) and not isinstance(n, bool)


def check_sample_shape(sample_shape) -> tuple:
    if _is_int(sample_shape):
        sample_shape = (sample_shape,)
    if not isinstance(sample_shape, (tuple, list)) or not all(_is_int(n) for n in sample_shape):
        raise TypeError(f"sample_shape must be an int or a tuple of ints, got {sample_shape!r}")
    sample_shape = tuple(int(n) for n in sample_shape)
    if any(n < 0 for n in sample_shape):
        raise ValueError(f"sample_shape must not contain negative sizes, got {sample_shape}")
    return sample_shape


class Distribution:
    """Base class. Subclasses set ``has_rsample`` and implement ``log_prob``, ``entropy``,
    ``mean``, ``variance`` and either ``rsample`` (reparameterizable families) or
    ``_draw`` (families whose samples cannot be written as a differentiable function of noise)."""

    has_rsample = False

    def __init__(self, batch_shape: tuple, event_shape: tuple = ()):
        self._batch_shape = tuple(batch_shape)
        self._event_shape = tuple(event_shape)

    @property
    def batch_shape(self) -> tuple:
        return self._batch_shape

    @property
    def event_shape(self) -> tuple:
        return self._event_shape

    def parameters(self) -> tuple:
        """The parameter Tensors, in the order the constructor takes them (for display)."""
        raise NotImplementedError

    def _extended_shape(self, sample_shape=()) -> tuple:
        return check_sample_shape(sample_shape) + self._batch_shape + self._event_shape

    # --- drawing ----------------------------------------------------------------------------
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
                value = self._draw(check_sample_shape(sample_shape), rng)
        node = Tensor(value)  # the draw, as a node with no gradient path: the cut (cuts.py)
        mark_stochastic(node, f"{type(self).__name__}.sample", self.parameters(), is_grad_enabled())
        return node

    # --- densities and moments ----------------------------------------------------------------
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

    def __repr__(self) -> str:
        return f"{type(self).__name__}(batch_shape={self.batch_shape}, event_shape={self.event_shape})"


def no_closed_form(distribution: Distribution, family: str, quantity: str) -> NotImplementedError:
    """The error for an entropy or moment with no closed form, with its Monte Carlo recipe."""
    recipe = {"entropy": "-log_prob(rsample((n,))).mean(axis=0)",
              "mean": "rsample((n,)).mean(axis=0)",
              "variance": "from rsample((n,))"}[quantity]
    return NotImplementedError(f"{type(distribution).__name__}: the {family} {quantity} has no closed "
                               f"form; estimate it by Monte Carlo, {recipe}")


def broadcast_shape(distribution: str, **parameters: Tensor) -> tuple:
    """The batch shape: the broadcast of all parameter shapes, with a clear error."""
    try:
        return np.broadcast_shapes(*(p.shape for p in parameters.values()))
    except ValueError:
        shapes = ", ".join(f"{name} {p.shape}" for name, p in parameters.items())
        raise ValueError(f"{distribution}: parameter shapes cannot be broadcast together: {shapes}") from None


def value_tensor(value) -> Tensor:
    """The argument of log_prob as a Tensor (samples pass through with their graph)."""
    return value if isinstance(value, Tensor) else Tensor(checks.float_array(value, "log_prob value"))
