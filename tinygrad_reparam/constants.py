"""Python numbers as constant nodes, made once and shared.

In ``y * 0.5`` the number becomes a constant Tensor (``ops.lift``): a node with no gradient,
whose dtype is the tensor's, so float32 stays float32. Making a new node for every use would make
a number inside a training loop cost noticeably more than a Tensor made once before the loop (a
Python-level object per op), and users write numbers. So each (number, dtype) is made into a
node once and then shared, like an interned constant. Sharing is safe because a constant never
requires grad and its array is read-only; ``tests/test_constants.py`` checks both, and
``benchmarks/op_overhead.py`` measures what a number costs against a Tensor.
"""
from __future__ import annotations

import functools

import numpy as np

from tinygrad_reparam.tensor import Tensor


@functools.lru_cache(maxsize=1024)
def number_constant(number, dtype, sign: float) -> Tensor:
    """The constant node of a Python number in ``dtype``. ``sign`` keeps -0.0 apart from 0.0,
    which compare (and hash) equal; at most 1024 numbers are kept."""
    constant = Tensor(np.asarray(number, dtype))
    constant.data.flags.writeable = False
    constant.op = "constant"
    return constant
