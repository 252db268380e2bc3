"""Constraints on parameters: the rule each value must satisfy, and the words for it.

Every family declares a table ``arg_constraints`` from its parameter names to the constraints
below, for example

    arg_constraints = {"loc": finite, "scale": positive}      # Normal, Laplace, ...

and ``Distribution._take_parameters`` checks each given parameter against its entry, raising a
ValueError that names the family, the parameter, the constraint and the values that break it:

    Normal: parameter scale must be positive and finite (> 0); got 1 bad value: [-1.]

A constraint is a test, values -> boolean array (True where the value is allowed; NaN is never
allowed unless a test says so), and a description that completes "must be ...". ``because``
adds the reason a family has for a rule, e.g. why a relaxation needs 0 < p < 1.

Rules that tie several numbers together (Uniform's low < high, probabilities summing to 1 along
the category axis) are not elementwise, so they are written as small explicit checks in the
family's constructor, through the same error message.
"""
from __future__ import annotations

from typing import Callable

import numpy as np


class Constraint:
    """A rule for every element of a parameter: ``test(values)`` is True where a value obeys it."""

    def __init__(self, description: str, test: Callable[[np.ndarray], np.ndarray]):
        self.description = description
        self.test = test

    def because(self, reason: str) -> "Constraint":
        """The same rule, with the reason appended to its description in parentheses."""
        return Constraint(f"{self.description} ({reason})", self.test)

    def __repr__(self) -> str:
        return f"Constraint({self.description!r})"


finite = Constraint("finite", np.isfinite)
positive = Constraint("positive and finite (> 0)", lambda x: (x > 0) & np.isfinite(x))
greater_than_zero = Constraint("> 0", lambda x: x > 0)
at_least_zero = Constraint(">= 0", lambda x: x >= 0)
unit_interval = Constraint("in [0, 1]", lambda x: (x >= 0) & (x <= 1))
open_unit_interval = Constraint("in the open interval (0, 1)", lambda x: (x > 0) & (x < 1))
not_nan = Constraint("a number, not NaN", lambda x: ~np.isnan(x))
# logits of a Categorical: -inf is a class with probability 0, +inf has no meaning
unnormalized_log_probability = Constraint("a number or -inf (probability 0), not NaN or +inf",
                                          lambda x: ~np.isnan(x) & (x < np.inf))
