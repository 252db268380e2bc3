"""Check analytic gradients against finite differences.

For a function f of tensors x, the central difference

    df/dx_i  ~  (f(x + h e_i) - f(x - h e_i)) / (2 h)

has error O(h^2), so in float64 with h = 1e-6 it agrees with a correct derivative to about
1e-9 relative, while a wrong VJP is off by O(1). ``gradcheck`` builds the full Jacobian both ways
(one backward pass per output element, two forward passes per input element) and compares every
entry; then, as a second and independent check in the style of autograd's "fast mode", it compares
one random projection v^T J u computed by a single backward pass with the same projection from a
directional central difference.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from tinygrad_reparam import checks
from tinygrad_reparam.tensor import Tensor, no_grad


class GradcheckError(AssertionError):
    """Raised when analytic and numerical gradients disagree."""


def _jacobian_numerical(fn, inputs, index, eps) -> np.ndarray:
    """J[i, j] = d out_i / d x_j for x = inputs[index], by central differences."""
    x = inputs[index]
    original = x.data.copy()
    flat = x.data.reshape(-1)  # a view: writing to it perturbs x in place
    columns = []
    with no_grad():
        for j in range(flat.size):
            flat[j] = original.flat[j] + eps
            plus = _output_array(fn(*inputs)).reshape(-1).copy()
            flat[j] = original.flat[j] - eps
            minus = _output_array(fn(*inputs)).reshape(-1)
            flat[j] = original.flat[j]
            columns.append((plus - minus) / (2 * eps))
    x.data[...] = original
    return np.stack(columns, axis=1)


def _output_array(out) -> np.ndarray:
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    return out.data.astype(np.float64)


def _jacobians_analytical(fn, inputs, checked) -> list:
    """One backward pass per output element with a one-hot output gradient."""
    out = fn(*inputs)
    _output_array(out)
    if not out.requires_grad:
        raise GradcheckError("gradcheck: the output does not depend on any input that requires grad")
    jacobians = [np.zeros((out.size, inputs[k].size)) for k in checked]
    for i in range(out.size):
        one_hot = np.zeros(out.size)
        one_hot[i] = 1.0
        for k in checked:
            inputs[k].grad = None
        out.backward(one_hot.reshape(out.shape), retain_graph=True)
        for row, k in enumerate(checked):
            grad = inputs[k].grad
            if grad is not None:
                if grad.shape != inputs[k].shape:
                    raise GradcheckError(f"gradcheck: input {k} has shape {inputs[k].shape} but its "
                                         f"gradient has shape {grad.shape}")
                jacobians[row][i] = grad.reshape(-1)
    return jacobians


def _compare(analytic, numeric, atol, rtol, what: str) -> None:
    difference = np.abs(analytic - numeric)
    allowed = atol + rtol * np.abs(numeric)
    bad = ~(difference <= allowed)  # NaN counts as a failure
    if bad.any():
        excess = np.where(np.isnan(difference), np.inf, difference - allowed)
        worst = np.unravel_index(np.argmax(excess), excess.shape)
        raise GradcheckError(
            f"gradcheck failed for {what} at entry {tuple(int(i) for i in worst)}: "
            f"analytic {analytic[worst]!r}, numerical {numeric[worst]!r}, "
            f"difference {difference[worst]!r} (allowed {allowed[worst]!r}); "
            f"{int(bad.sum())} of {bad.size} entries disagree"
        )


def gradcheck(fn: Callable[..., Tensor], inputs: Sequence[Tensor], eps: float = 1e-6,
              atol: float = 1e-5, rtol: float = 1e-4, seed: int = 0) -> bool:
    """Return True if ``fn``'s gradients match central differences, else raise GradcheckError.

    ``fn(*inputs)`` must return a Tensor (of any shape) and be deterministic: fix any noise it
    uses outside ``fn``. Every input with ``requires_grad=True`` is checked, in float64 (float32
    inputs are copied to float64 first). Entries are compared as |analytic - numerical| <=
    atol + rtol * |numerical|; the error names the worst entry (output index, input index), the
    two values and their difference.
    """
    if not callable(fn):
        raise TypeError(f"gradcheck: fn must be callable (a function of the input Tensors that "
                        f"returns a Tensor), got {type(fn).__name__}")
    eps = checks.number(eps, "gradcheck: eps", 0, math.inf, lower_open=True, upper_open=True)
    atol = checks.number(atol, "gradcheck: atol", 0, math.inf, upper_open=True)
    rtol = checks.number(rtol, "gradcheck: rtol", 0, math.inf, upper_open=True)
    checks.count(seed, "gradcheck: seed", minimum=0)
    if isinstance(inputs, Tensor):
        inputs = [inputs]
    if not isinstance(inputs, (list, tuple)):
        raise TypeError("gradcheck: inputs must be a non-empty list of Tensors")
    inputs = list(inputs)
    if not inputs or not all(isinstance(x, Tensor) for x in inputs):
        raise TypeError("gradcheck: inputs must be a non-empty list of Tensors")
    inputs = [Tensor(x.data.astype(np.float64), requires_grad=x.requires_grad) for x in inputs]
    checked = [k for k, x in enumerate(inputs) if x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True, so there is nothing to check")
    if any(inputs[k].size == 0 for k in checked):
        raise ValueError("gradcheck: an input that requires grad is empty; there is nothing to check")

    analytic = _jacobians_analytical(fn, inputs, checked)
    for row, k in enumerate(checked):
        numeric = _jacobian_numerical(fn, inputs, k, eps)
        _compare(analytic[row], numeric, atol, rtol,
                 f"input {k} (shape {inputs[k].shape}); entry = (output index, input index)")

    # Random-projection check: v^T J u from one backward pass against a directional difference.
    rng = np.random.default_rng(seed)
    out = fn(*inputs)
    v = rng.standard_normal(out.shape)
    directions = {k: rng.standard_normal(inputs[k].shape) for k in checked}
    for k in checked:
        inputs[k].grad = None
    out.backward(v)
    projected_analytic = sum(
        float(np.sum(inputs[k].grad * directions[k])) for k in checked if inputs[k].grad is not None)
    originals = {k: inputs[k].data.copy() for k in checked}
    with no_grad():
        for k in checked:
            inputs[k].data[...] = originals[k] + eps * directions[k]
        plus = float(np.sum(v * _output_array(fn(*inputs))))
        for k in checked:
            inputs[k].data[...] = originals[k] - eps * directions[k]
        minus = float(np.sum(v * _output_array(fn(*inputs))))
    for k in checked:
        inputs[k].data[...] = originals[k]
    projected_numeric = (plus - minus) / (2 * eps)
    _compare(np.array([projected_analytic]), np.array([projected_numeric]), atol, rtol,
             "the random projection v^T J u")
    return True

