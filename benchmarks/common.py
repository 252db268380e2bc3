"""What the benchmarks share: BLAS threads, the package from a checkout, the optional rows.

    import common                               # first: pins BLAS threads, finds the package
    from common import torch, F, autograd, anp  # None when not installed
    names = common.choose_rows(["numpy", "engine"], available, args.skip)

Importing this module first pins BLAS to one thread (the matrices here are small, so threads
cost more than they save) and makes ``tinygrad_reparam`` importable from a checkout. PyTorch and
HIPS autograd are optional comparisons, imported here when installed and never required.
"""
from __future__ import annotations

import os
import sys

# Must happen before NumPy is imported anywhere.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import gc  # noqa: E402
from importlib.metadata import version  # noqa: E402

import numpy as np  # noqa: E402

try:
    import tinygrad_reparam  # noqa: F401,E402
except ImportError:  # running from a checkout without installing: use the repo root
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

# Optional comparisons: used when installed, never required.
try:
    import torch  # noqa: E402
    import torch.nn.functional as F  # noqa: E402
    torch.set_num_threads(1)
except ImportError:
    torch = F = None
try:
    import autograd  # noqa: E402
    import autograd.numpy as anp  # noqa: E402
except ImportError:
    autograd = anp = None

OPTIONAL = ("torch", "autograd")


def choose_rows(names: list, available: dict, skip) -> tuple:
    """``(names, versions)``: the always-present ``names`` followed by each optional row that is
    in ``available`` and not in ``skip`` (printing why the others are absent), and the versions
    line (numpy and each optional library used) for the table's header."""
    names, versions = list(names), [f"numpy {np.__version__}"]
    for name in OPTIONAL:
        if name in skip:
            print(f"({name}: row left out, --skip)")
        elif name in available:
            names.append(name)
            versions.append(f"{name} {version(name)}")
        else:
            print(f"({name} not installed: row skipped)")
    return names, ", ".join(versions)


def freeze_imports() -> None:
    """Move everything alive now (the imports; torch alone brings about 150,000 objects) out of
    the cyclic garbage collector's sight, so that an optional import does not slow down the
    collections that building a graph triggers: rows compare the same with or without it."""
    gc.freeze()
