"""Optimizers: turn the gradients in ``.grad`` into parameter updates.

The training loop is always the same four lines::

    optimizer.zero_grad()          # gradients accumulate across backward calls: clear them
    loss = compute_loss(model)
    loss.backward()                # fills p.grad for every parameter p
    optimizer.step()               # p.data <- p.data - (a step computed from p.grad)

Updates are written with NumPy directly on each parameter's array, in place, so no graph is
recorded and every reference to the parameter (a module, a second optimizer) sees the new values.
Both optimizers follow PyTorch's update formulas exactly, so results can be compared with it.

Before changing anything, ``step()`` checks every gradient (shape, finiteness): a bad gradient
raises and leaves all parameters and all optimizer state as they were. Parameters whose ``.grad``
is None (not reached by the last backward pass) are skipped, and so is their state.
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from tinygrad_reparam.tensor import Tensor


class Optimizer:
    """What SGD and Adam share: the parameter list, ``zero_grad()`` and the checks before a step.

    ``state[p]`` holds the per-parameter buffers (momentum, running averages, step count),
    created at the first step in which ``p`` has a gradient.
    """

    def __init__(self, params: Iterable[Tensor]):
        if isinstance(params, Tensor):
            raise TypeError(f"{type(self).__name__}: params must be an iterable of Tensors; "
                            f"wrap a single tensor in a list: [tensor]")
        if not hasattr(params, "__iter__"):
            raise TypeError(f"{type(self).__name__}: params must be an iterable of Tensors, got "
                            f"{type(params).__name__} (for a Module pass module.parameters())")
        self.params: list[Tensor] = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty list of parameters")
        seen: set[int] = set()
        for index, p in enumerate(self.params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__}: parameter {index} is a "
                                f"{type(p).__name__}, not a Tensor")
            if not p.requires_grad:
                raise ValueError(f"{type(self).__name__}: parameter {index} (shape {p.shape}) "
                                 f"does not require grad, so it would never get a gradient; create "
                                 f"it with Tensor(..., requires_grad=True)")
            if id(p) in seen:
                raise ValueError(f"{type(self).__name__}: parameter {index} (shape {p.shape}) "
                                 f"appears more than once; it would be updated twice per step")
            seen.add(id(p))
        self.state: dict[Tensor, dict] = {}  # Tensors hash by identity

    def zero_grad(self) -> None:
        """Set every parameter's ``.grad`` to None (the next backward starts from nothing)."""
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        raise NotImplementedError

    def _parameters_with_gradients(self) -> list[tuple[Tensor, np.ndarray]]:
        """``[(p, p.grad), ...]`` for the parameters that have a gradient, after checking all
        of them, so that a bad one raises before any parameter or buffer is touched."""
        ready = []
        for index, p in enumerate(self.params):
            grad = p.grad
            if grad is None:
                continue
            where = f"{type(self).__name__}.step: parameter {index} (shape {p.shape})"
            if not isinstance(grad, np.ndarray) or grad.shape != p.shape:
                raise ValueError(f"{where} has a gradient of shape {np.shape(grad)}; it must match "
                                 f"the parameter. Nothing was updated.")
            if not np.isfinite(grad).all():
                raise ValueError(f"{where} has a gradient containing NaN or infinity. Nothing was "
                                 f"updated.")
            if not p.data.flags.writeable:
                raise ValueError(f"{where}: its array is read-only, so it cannot be updated in "
                                 f"place. Nothing was updated.")
            buffers = self.state.get(p)
            if buffers and _buffer_shape_changed(buffers, p.shape):
                raise ValueError(f"{where}: its shape changed since the optimizer's buffers were "
                                 f"made. Nothing was updated.")
            ready.append((p, grad))
        return ready


class SGD(Optimizer):
    """Stochastic gradient descent, with optional momentum (PyTorch's form):

        without momentum:  p <- p - lr * g
        with momentum:     buf <- momentum * buf + g   (buf = g at the first step)
                           p   <- p - lr * buf
    """

    def __init__(self, params: Iterable[Tensor], lr: float, momentum: float = 0.0):
        super().__init__(params)
        self.lr = _check_number(lr, "lr", "SGD", lower=0.0, lower_open=True)
        self.momentum = _check_number(momentum, "momentum", "SGD", lower=0.0, upper=1.0)

    def step(self) -> None:
        for p, grad in self._parameters_with_gradients():
            if self.momentum == 0.0:
                p.data -= self.lr * grad
                continue
            state = self.state.setdefault(p, {})
            buffer = state.get("momentum_buffer")
            if buffer is None:
                buffer = state["momentum_buffer"] = np.array(grad, dtype=p.dtype)  # a copy
            else:
                buffer *= self.momentum
                buffer += grad
            p.data -= self.lr * buffer


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) as PyTorch implements it. For each parameter p with gradient g,
    at its t-th step (t counts the steps in which p had a gradient):

        m <- beta1 * m + (1 - beta1) * g          running mean of the gradient
        v <- beta2 * v + (1 - beta2) * g^2        running mean of its square
        m_hat = m / (1 - beta1^t)                 bias correction: m and v start at 0,
        v_hat = v / (1 - beta2^t)                 so early averages are too small
        p <- p - lr * m_hat / (sqrt(v_hat) + eps)

    The first step therefore moves every entry by about ``lr`` (m_hat = g, v_hat = g^2),
    whatever the scale of the gradient.
    """

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3, betas: tuple = (0.9, 0.999),
                 eps: float = 1e-8):
        super().__init__(params)
        self.lr = _check_number(lr, "lr", "Adam", lower=0.0, lower_open=True)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"Adam: betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = (_check_number(betas[0], "betas[0]", "Adam", lower=0.0, upper=1.0),
                      _check_number(betas[1], "betas[1]", "Adam", lower=0.0, upper=1.0))
        self.eps = _check_number(eps, "eps", "Adam", lower=0.0)

    def step(self) -> None:
        beta1, beta2 = self.betas
        for p, grad in self._parameters_with_gradients():
            state = self.state.get(p)
            if state is None:
                state = self.state[p] = {"step": 0, "m": np.zeros_like(p.data),
                                         "v": np.zeros_like(p.data)}
            state["step"] += 1
            t = state["step"]
            m, v = state["m"], state["v"]
            # In place (m, v and p keep their arrays), one NumPy pass per line: this runs for
            # every tensor at every step. The last five lines compute
            # lr * m_hat / (sqrt(v_hat) + eps) arranged as PyTorch does:
            # (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps).
            m *= beta1
            m += (1.0 - beta1) * grad                      # m = beta1 m + (1 - beta1) g
            v *= beta2
            v += (1.0 - beta2) * np.square(grad)           # v = beta2 v + (1 - beta2) g^2
            update = np.sqrt(v, out=np.empty_like(v))      # (out=: stays an array for 0-d too)
            update /= math.sqrt(1.0 - beta2 ** t)          # sqrt(v_hat)
            update += self.eps                             # sqrt(v_hat) + eps
            np.divide(m, update, out=update)               # m / (sqrt(v_hat) + eps)
            update *= self.lr / (1.0 - beta1 ** t)         # lr * m_hat / (sqrt(v_hat) + eps)
            p.data -= update


def _buffer_shape_changed(buffers: dict, shape: tuple) -> bool:
    for buffer in buffers.values():
        if isinstance(buffer, np.ndarray) and buffer.shape != shape:
            return True
    return False


def _check_number(value, what: str, where: str, lower: float, upper: float = math.inf,
                  lower_open: bool = False) -> float:
    """``value`` as a float if it lies in [lower, upper) (or (lower, upper) when lower_open),
    else a ValueError that names the argument and the allowed range."""
    allowed = f"{'(' if lower_open else '['}{lower}, {upper})"
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{where}: {what} must be a number in {allowed}, got {value!r}")
    value = float(value)
    too_low = value <= lower if lower_open else value < lower
    if math.isnan(value) or too_low or not value < upper:
        raise ValueError(f"{where}: {what} must be in {allowed}, got {value!r}")
    return value
