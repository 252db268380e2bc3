"""detect_anomaly(): stop at the first operation that produces a NaN or an infinity.

A NaN spreads: once one op makes it, every op after it (and every gradient before it in the
backward pass) carries it, and the final loss says nothing about where it came from. Inside
``with detect_anomaly():`` every new node remembers the line of *your* code that created it, and

- the forward pass raises ``AnomalyError`` at the first op whose output holds a NaN or an inf;
- the backward pass raises at the first VJP that turns a gradient into a NaN or an inf,

naming the op, the shapes involved and that line, like ``torch.autograd.detect_anomaly``.
It is off by default and costs one flag check per op when off. Legitimate infinities (a
log-probability of -inf outside the support, say) are reported too: use it while debugging.
"""
from __future__ import annotations

import functools
import os
import traceback
from typing import Callable

import numpy as np

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class AnomalyError(RuntimeError):
    """A NaN or an infinity appeared in a forward value or a gradient under detect_anomaly()."""


class AnomalyMode:
    """Whether detect_anomaly() is on (read by the engine at every op)."""

    enabled = False


class detect_anomaly:
    """Context manager (and decorator, ``@detect_anomaly()``) that turns anomaly checks on."""

    def __init__(self):
        self._previous: list[bool] = []

    def __enter__(self) -> "detect_anomaly":
        self._previous.append(AnomalyMode.enabled)
        AnomalyMode.enabled = True
        return self

    def __exit__(self, *exc_info) -> None:
        AnomalyMode.enabled = self._previous.pop()

    def __call__(self, func: Callable) -> Callable:
        @functools.wraps(func)
        def checked(*args, **kwargs):
            with detect_anomaly():
                return func(*args, **kwargs)

        return checked


def is_anomaly_enabled() -> bool:
    return AnomalyMode.enabled


def creation_site() -> str:
    """The innermost stack frame outside this package: the user's line that made the node."""
    for frame in reversed(traceback.extract_stack()):
        if not os.path.abspath(frame.filename).startswith(_PACKAGE_DIR):
            code = f": {frame.line}" if frame.line else ""
            return f"{frame.filename}:{frame.lineno} in {frame.name}{code}"
    return "(inside tinygrad_reparam)"


def _describe(values: np.ndarray) -> str:
    nan, inf = int(np.isnan(values).sum()), int(np.isinf(values).sum())
    return f"{nan} NaN and {inf} infinite of {values.size} values"


def check_forward(node) -> None:
    """Raise if the op that just made ``node`` produced a NaN or an inf."""
    if np.all(np.isfinite(node.data)):
        return
    inputs = ", ".join(str(parent.shape) for parent in node.parents) or "none recorded"
    raise AnomalyError(
        f"detect_anomaly: the forward pass of {node.op!r} produced {_describe(node.data)} "
        f"(output shape {node.shape}, input shapes {inputs}).\n"
        f"  created at {node.created_at}"
    )


def check_gradient(node, parent, grad: np.ndarray) -> None:
    """Raise if the VJP of ``node`` for its input ``parent`` gave a NaN or an inf."""
    if np.all(np.isfinite(grad)):
        return
    parent_index = next(i for i, p in enumerate(node.parents) if p is parent)
    raise AnomalyError(
        f"detect_anomaly: the backward pass of {node.op!r} produced {_describe(grad)} in the "
        f"gradient of its input #{parent_index} (input shape {parent.shape}, output shape "
        f"{node.shape}).\n  that {node.op!r} was created at {node.created_at}"
    )
