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

Adam comes in two forms, as in PyTorch. Read ``adam_update`` first: the algorithm for one
parameter, line by line; ``Adam.step()`` calls it for each parameter in turn. ``FlatAdam`` does
the same arithmetic for all parameters at once (the part PyTorch's multi-tensor "foreach" Adam
plays): it exists only for speed, gives the same numbers to the last bit, and steps aside for the
loop whenever it could not.
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np

from tinygrad_reparam import checks
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
        if type(grad) is not np.ndarray:
            return (f"{where} has a gradient of type {type(grad).__name__}, not a NumPy array; "
                    f"set .grad to an array of shape {p.shape}, e.g. with np.asarray. "
                    f"Nothing was updated.")
        if grad.shape != p.shape:
            return (f"{where} has a gradient of shape {grad.shape}; it must match the "
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
        self.lr = checks.number(lr, "SGD: lr", lower=0.0, lower_open=True, upper_open=True)
        self.momentum = checks.number(momentum, "SGD: momentum", lower=0.0, upper=1.0, upper_open=True)

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
    whatever the scale of the gradient. ``adam_update`` is these lines for one parameter, and
    ``step()`` calls it for each parameter in turn.

    ``foreach``: True (or None, the default) lets ``FlatAdam`` do the same update for all
    parameters at once, with one set of NumPy calls, in the steps where that gives exactly the
    same numbers (it checks); False always takes the loop. Like PyTorch's ``foreach`` argument,
    it changes the speed, never the result.
    """

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3, betas: tuple = (0.9, 0.999),
                 eps: float = 1e-8, foreach: bool | None = None):
        super().__init__(params)
        self.lr = checks.number(lr, "Adam: lr", lower=0.0, lower_open=True, upper_open=True)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"Adam: betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = (checks.number(betas[0], "Adam: betas[0]", lower=0.0, upper=1.0, upper_open=True),
                      checks.number(betas[1], "Adam: betas[1]", lower=0.0, upper=1.0, upper_open=True))
        self.eps = checks.number(eps, "Adam: eps", lower=0.0, upper_open=True)
        self.foreach = True if foreach is None else checks.flag(foreach, "Adam: foreach")
        # The fast form needs one dtype for its flat arrays; with mixed dtypes, the loop it is.
        self._flat = FlatAdam(self.params) if len({p.dtype for p in self.params}) == 1 else None

    def step(self) -> None:
        ready = self._parameters_with_gradients(check_finite=False)  # (finiteness: just below)
        # Python floats (even if the user set, say, lr to a NumPy float), so that float32
        # parameters are updated in float32 arithmetic by both forms alike.
        lr, eps = float(self.lr), float(self.eps)
        beta1, beta2 = float(self.betas[0]), float(self.betas[1])
        if self.foreach and self._flat is not None and self._flat.applies(ready, self.state):
            self._flat.step(ready, self.state, lr, beta1, beta2, eps, self._check_finite)
            return
        for _, grad in ready:  # every gradient is checked before any parameter changes
            self._check_finite(grad)
        for p, grad in ready:
            state = self.state.get(p)
            if state is None:  # p's first step with a gradient: m = v = 0
                state = {"step": 0, "m": np.zeros_like(p.data), "v": np.zeros_like(p.data)}
                self.state[p] = state
            state["step"] += 1
            adam_update(p.data, grad, state["m"], state["v"], state["step"], lr, beta1, beta2, eps)


def adam_update(param: np.ndarray, grad: np.ndarray, m: np.ndarray, v: np.ndarray, t: int,
                lr: float, beta1: float, beta2: float, eps: float) -> None:
    """One Adam step of one parameter at its t-th step, in place on ``param``, ``m`` and ``v``.

    The last two lines are lr * m_hat / (sqrt(v_hat) + eps) in PyTorch's arrangement: the bias
    corrections are folded into two numbers, so that no m_hat or v_hat array is made.
    """
    m[...] = beta1 * m + (1 - beta1) * grad                        # running mean of g
    v[...] = beta2 * v + (1 - beta2) * (grad * grad)               # running mean of g^2
    step_size = lr / (1 - beta1 ** t)                              # lr * m_hat = step_size * m
    denominator = np.sqrt(v) / math.sqrt(1 - beta2 ** t) + eps     # sqrt(v_hat) + eps
    param -= step_size * (m / denominator)


class FlatAdam:
    """Adam's fast form: ``adam_update`` for all parameters at once, one set of NumPy calls.

    Why: ``adam_update`` makes about fifteen NumPy calls, and on a small model each call costs
    more in overhead (about a microsecond) than in arithmetic: eight parameter tensors, a hundred
    and twenty calls. PyTorch's multi-tensor ("foreach") Adam has calls that take a list of
    tensors; NumPy has none, so here the lists are made into single arrays: the m of all
    parameters lie end to end in one flat array, and so do the v. ``state[p]["m"]`` is p's slice of the flat m,
    reshaped to p's shape: a view, so the state the user sees is the flat array itself.

    A step (1) copies all gradients end to end into a scratch array, (2) runs adam_update's
    lines once on the flat arrays, in place or into the scratch arrays (kept from step to step:
    on this scale a new array costs more than the arithmetic, as the allocator maps fresh
    pages), and (3) subtracts each parameter's part of the update from it. Every entry goes
    through the same floating-point operations in the same order as in adam_update, so the
    result is the same to the last bit.

    That holds only while the flat arrays are the state and one t serves every parameter, which
    ``applies`` checks before each step: every parameter has a gradient, has kept its size and
    dtype, and either none has a state yet or all have taken the same number of steps with m
    and v still their views of the flat arrays (not replaced or deleted by the user). When it
    does not hold, ``Adam.step`` takes the loop over adam_update instead.
    """

    def __init__(self, params: list[Tensor]):
        self.params = tuple(params)  # (Adam.params is a list the user may change)
        self.dtype = self.params[0].dtype
        self.sizes = [p.size for p in self.params]
        self.size = sum(self.sizes)
        # m and v of all parameters, and two scratch arrays: the gradients end to end, then the
        # update. (Made here, once; each parameter's views of them are made at its first step.)
        self.m, self.v = np.zeros(self.size, self.dtype), np.zeros(self.size, self.dtype)
        self.gradients, self.update = np.empty(self.size, self.dtype), np.empty(self.size, self.dtype)
        self.m_views: list[np.ndarray] = []
        self.v_views: list[np.ndarray] = []
        self.update_views: list[np.ndarray] = []

    def applies(self, ready: list, state: dict) -> bool:
        """True when one flat step is exactly adam_update on each parameter (see the class)."""
        if len(ready) != len(self.params):
            return False  # some parameter has no gradient in this step
        for (p, grad), q, size in zip(ready, self.params, self.sizes):
            if (p is not q or p.data.size != size or p.data.dtype != self.dtype
                    or grad.dtype != self.dtype):
                return False
        if not any(p in state for p in self.params):
            return True  # everyone's first step
        if not self.m_views:
            return False  # (states made by the loop)
        t = state.get(self.params[0], {}).get("step")
        for p, m, v in zip(self.params, self.m_views, self.v_views):
            p_state = state.get(p, {})
            if p_state.get("step") != t or p_state.get("m") is not m or p_state.get("v") is not v:
                return False
        return True

    def step(self, ready: list, state: dict, lr: float, beta1: float, beta2: float, eps: float,
             check_finite) -> None:
        """One Adam step of every parameter (after ``applies`` said yes). ``check_finite``
        raises, naming the parameter, if the gradients hold a NaN or an infinity."""
        gradients = np.concatenate([grad.reshape(-1) for _, grad in ready], out=self.gradients)
        check_finite(gradients)  # all of them in one pass, before anything changes
        if state.get(self.params[0]) is None:  # (then no parameter has a state: see applies)
            self._start(state)
        t = state[self.params[0]]["step"] + 1
        m, v, update = self.m, self.v, self.update
        # adam_update's lines, each split into in-place calls that keep its order of operations
        m *= beta1
        np.multiply(gradients, 1 - beta1, out=update)
        m += update                                    # m = beta1 * m + (1 - beta1) * g
        v *= beta2
        np.multiply(gradients, gradients, out=update)
        update *= 1 - beta2
        v += update                                    # v = beta2 * v + (1 - beta2) * (g * g)
        np.sqrt(v, out=update)
        update /= math.sqrt(1 - beta2 ** t)
        update += eps                                  # denominator = sqrt(v_hat) + eps
        step_size = lr / (1 - beta1 ** t)
        np.divide(m, update, out=update)
        update *= step_size                            # step_size * (m / denominator)
        for p, p_update in zip(self.params, self.update_views):
            state[p]["step"] = t
            p.data -= p_update

    def _start(self, state: dict) -> None:
        """Everyone's first step: m = v = 0, and each parameter's state holds its views."""
        self.m[...] = 0.0  # (zero already, unless the user deleted the states of earlier steps)
        self.v[...] = 0.0
        self.m_views, self.v_views = self._views(self.m), self._views(self.v)
        self.update_views = self._views(self.update)
        for p, m, v in zip(self.params, self.m_views, self.v_views):
            state[p] = {"step": 0, "m": m, "v": v}

    def _views(self, flat: np.ndarray) -> list[np.ndarray]:
        """Each parameter's part of ``flat``, in its shape. (The shapes cannot change later
        without the check before each step noticing: a state's m must have p's shape.)"""
        views, start = [], 0
        for p, size in zip(self.params, self.sizes):
            views.append(flat[start:start + size].reshape(p.shape))
            start += size
        return views


def _buffer_shape_changed(buffers: dict, shape: tuple) -> bool:
    for buffer in buffers.values():
        if isinstance(buffer, np.ndarray) and buffer.shape != shape:
            return True
    return False

