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

    def _parameters_with_gradients(self, check_finite: bool = True) -> list[tuple[Tensor, np.ndarray]]:
        """``[(p, p.grad), ...]`` for the parameters that have a gradient, after checking all
        of them, so that a bad one raises before any parameter or buffer is touched.
        (``check_finite=False``: the caller checks finiteness itself, before changing anything.)"""
        ready = []
        for index, p in enumerate(self.params):
            grad = p.grad
            if grad is None:
                continue
            # One cheap test per parameter; the message is only built for a bad one.
            if (type(grad) is not np.ndarray or grad.shape != p.data.shape
                    or (check_finite and not np.isfinite(grad).all()) or not p.data.flags.writeable
                    or (p in self.state and _buffer_shape_changed(self.state[p], p.data.shape))):
                raise ValueError(self._bad_parameter_message(index, p, grad))
            ready.append((p, grad))
        return ready

    def _check_finite(self, gradients: np.ndarray) -> None:
        """Raise, naming the parameter, if ``gradients`` (one gradient, or the entries of all of
        them laid end to end: one NumPy pass instead of one per tensor) holds a NaN or an inf."""
        if not np.isfinite(gradients).all():
            for index, p in enumerate(self.params):
                if p.grad is not None and not np.isfinite(p.grad).all():
                    raise ValueError(self._bad_parameter_message(index, p, p.grad))

    def _bad_parameter_message(self, index: int, p: Tensor, grad) -> str:
        where = f"{type(self).__name__}.step: parameter {index} (shape {p.shape})"
        if not isinstance(grad, np.ndarray) or grad.shape != p.shape:
            return (f"{where} has a gradient of shape {np.shape(grad)}; it must match the "
                    f"parameter. Nothing was updated.")
        if not np.isfinite(grad).all():
            return f"{where} has a gradient containing NaN or infinity. Nothing was updated."
        if not p.data.flags.writeable:
            return f"{where}: its array is read-only, so it cannot be updated in place. Nothing was updated."
        return f"{where}: its shape changed since the optimizer's buffers were made. Nothing was updated."


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

    Speed: these five lines are about ten NumPy calls, and on small models each call costs more
    in overhead (about a microsecond) than in arithmetic. So when all parameters share one dtype,
    their m and v live end to end in two flat arrays (``state[p]["m"]`` is p's view of its part),
    and a step in which every parameter has a gradient and the same t updates all of them with
    one set of calls on the flat arrays: a few calls per parameter tensor instead of ten, as in
    PyTorch's multi-tensor ("foreach") Adam. Otherwise each parameter is updated on its own, with
    the same formula and the same result to the last bit.
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
        # The flat m and v (None with mixed dtypes), and where each parameter's part starts and stops.
        self._flat_m = self._flat_v = self._flat_gradient = self._flat_update = None
        self._spans: list[tuple[int, int]] = []
        if len({p.dtype for p in self.params}) == 1:
            stop = 0
            for p in self.params:
                self._spans.append((stop, stop + p.size))
                stop += p.size
            dtype = self.params[0].dtype
            self._flat_m, self._flat_v = np.zeros(stop, dtype), np.zeros(stop, dtype)
            # scratch space, reused at every step: all gradients end to end, and the update
            self._flat_gradient, self._flat_update = np.empty(stop, dtype), np.empty(stop, dtype)

    def step(self) -> None:
        ready = self._parameters_with_gradients(check_finite=False)
        if not ready:
            return
        if self._can_step_together(ready):  # every parameter, one t: one pass over the flat buffers
            all_gradients = np.concatenate([grad.reshape(-1) for _, grad in ready], out=self._flat_gradient)
            self._check_finite(all_gradients)  # before anything changes
            states = [self._state_of(p) for p in self.params]  # (a new one zeroes its part)
            t = states[0]["step"] + 1
            update = self._advance(self._flat_m, self._flat_v, all_gradients, t, out=self._flat_update)
            for p, state, (start, stop) in zip(self.params, states, self._spans):
                state["step"] = t
                p.data -= update[start:stop].reshape(p.data.shape)
            return
        for p, grad in ready:  # check all of them before changing any
            self._check_finite(grad)
        for p, grad in ready:
            state = self._state_of(p)
            state["step"] += 1
            p.data -= self._advance(state["m"], state["v"], grad, state["step"], out=np.empty_like(p.data))

    def _can_step_together(self, ready: list) -> bool:
        """True when one pass over the flat buffers is exactly the per-parameter update: every
        parameter has a gradient, all have taken the same number of steps, and each one's m and
        v are still its own part of the flat buffers (not resized, not replaced by the user)."""
        if self._flat_m is None or len(ready) != len(self.params):
            return False
        if len({self._steps_taken(p) for p in self.params}) != 1:
            return False
        for p, (start, stop) in zip(self.params, self._spans):
            state = self.state.get(p)
            if p.size != stop - start:
                return False
            if state is not None and (getattr(state["m"], "base", None) is not self._flat_m
                                      or getattr(state["v"], "base", None) is not self._flat_v):
                return False
        return True

    def _steps_taken(self, p: Tensor) -> int:
        state = self.state.get(p)
        return 0 if state is None else state["step"]

    def _state_of(self, p: Tensor) -> dict:
        """p's step count, m and v, created at its first step with a gradient."""
        state = self.state.get(p)
        if state is None:
            state = self.state[p] = self._new_state(p)
        return state

    def _new_state(self, p: Tensor) -> dict:
        """Step 0 with m = v = 0: p's part of the flat buffers, or arrays of its own when there
        are no flat buffers (mixed dtypes) or p.data was replaced by one of another size."""
        if self._flat_m is not None:
            start, stop = self._spans[next(i for i, q in enumerate(self.params) if q is p)]
            if p.size == stop - start:
                m = self._flat_m[start:stop].reshape(p.shape)
                v = self._flat_v[start:stop].reshape(p.shape)
                m[...] = 0.0  # (zero already, unless an earlier state of p was deleted)
                v[...] = 0.0
                return {"step": 0, "m": m, "v": v}
        return {"step": 0, "m": np.zeros_like(p.data), "v": np.zeros_like(p.data)}

    def _advance(self, m: np.ndarray, v: np.ndarray, grad: np.ndarray, t: int,
                 out: np.ndarray) -> np.ndarray:
        """Move m and v (in place) to step t and write the step lr * m_hat / (sqrt(v_hat) + eps)
        into ``out``, which is returned. No array is allocated: on this scale a fresh
        temporary costs more (the allocator maps new pages) than the arithmetic."""
        beta1, beta2 = self.betas
        # One NumPy pass per line. The last five compute lr * m_hat / (sqrt(v_hat) + eps)
        # arranged as PyTorch does: (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps).
        m *= beta1
        np.multiply(grad, 1.0 - beta1, out=out)
        m += out                                       # m = beta1 m + (1 - beta1) g
        v *= beta2
        np.multiply(grad, grad, out=out)
        out *= 1.0 - beta2
        v += out                                       # v = beta2 v + (1 - beta2) g^2
        np.sqrt(v, out=out)
        out /= math.sqrt(1.0 - beta2 ** t)             # sqrt(v_hat)
        out += self.eps                                # sqrt(v_hat) + eps
        np.divide(m, out, out=out)                     # m / (sqrt(v_hat) + eps)
        out *= self.lr / (1.0 - beta1 ** t)            # lr * m_hat / (sqrt(v_hat) + eps)
        return out


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
