"""Grad mode: whether new operations record the graph, and ``no_grad()`` to switch it off.

Recording costs memory (every node keeps its inputs and what its VJPs need) and time. Where no
gradient is wanted (evaluating a model, updating its parameters), ``with no_grad():`` makes every
result a plain value with no history, as ``torch.no_grad`` does.
"""
from __future__ import annotations

import functools
from typing import Callable

from tinygrad_reparam import checks


class GradMode:
    """Whether new operations record a graph (switched off inside ``no_grad``)."""

    enabled = True


def is_grad_enabled() -> bool:
    """True unless inside a ``no_grad()`` block."""
    return GradMode.enabled


class no_grad:
    """Context manager (and decorator, ``@no_grad()``) that stops recording the graph.

    Inside ``with no_grad():`` results never require grad, so no graph is kept in memory: use it
    for evaluation and for parameter updates. The previous mode is restored on exit, even when an
    exception escapes.
    """

    def __init__(self, *args):
        if args:  # `@no_grad` without parentheses hands us the function
            raise checks.no_grad_arguments_error()
        self.previous: list = []  # a stack: the same object may be entered again inside itself

    def __enter__(self) -> "no_grad":
        self.previous.append(GradMode.enabled)
        GradMode.enabled = False
        return self

    def __exit__(self, *exc_info) -> None:
        GradMode.enabled = self.previous.pop()

    def __call__(self, func: Callable) -> Callable:
        @functools.wraps(func)
        def without_grad(*args, **kwargs):
            with no_grad():
                return func(*args, **kwargs)
        return without_grad
