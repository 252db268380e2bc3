"""Backward through very deep graphs: time must grow linearly with depth, memory too.

The graph is a chain y = -(-(...(-x))) of N unary ops on a one-element tensor, the deepest graph
there is for its size. A recursive backward pass would hit Python's recursion limit near
N = 1000; the engine's iterative topological sort does not, and visits each node once, so the
backward time per node should stay flat from 10^4 to 10^6 nodes. Peak memory (tracemalloc) is
reported for building the chain and for the backward pass.

    python benchmarks/deep_chain.py                 # N = 10^4, 10^5, 10^6
    python benchmarks/deep_chain.py --sizes 10000 100000
"""
from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

try:
    import tinygrad_reparam  # noqa: F401
except ImportError:  # running from a checkout without installing: use the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tinygrad_reparam import Tensor


def build_chain(n: int) -> tuple:
    x = Tensor(np.array([1.0]), requires_grad=True)
    y = x
    for _ in range(n):
        y = -y
    return x, y.sum()


def measure(n: int) -> dict:
    """Times without tracing (tracemalloc slows every allocation), then peaks with it."""
    start = time.perf_counter()
    x, loss = build_chain(n)
    forward_seconds = time.perf_counter() - start
    start = time.perf_counter()
    loss.backward()
    backward_seconds = time.perf_counter() - start
    expected = 1.0 if n % 2 == 0 else -1.0
    if x.grad[0] != expected:
        raise SystemExit(f"wrong gradient for N = {n}: {x.grad[0]}, expected {expected}")
    del x, loss
    tracemalloc.start()
    x, loss = build_chain(n)
    forward_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.reset_peak()
    loss.backward()
    backward_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"forward_s": forward_seconds, "backward_s": backward_seconds,
            "forward_peak_mb": forward_peak / 1e6, "backward_peak_mb": backward_peak / 1e6}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10**4, 10**5, 10**6])
    args = parser.parse_args(argv)
    print(f"{'nodes':>9} {'build s':>8} {'backward s':>11} {'backward us/node':>17} "
          f"{'build peak MB':>14} {'backward peak MB':>17}")
    for n in args.sizes:
        r = measure(n)
        print(f"{n:>9} {r['forward_s']:>8.2f} {r['backward_s']:>11.3f} {1e6 * r['backward_s'] / n:>17.2f} "
              f"{r['forward_peak_mb']:>14.1f} {r['backward_peak_mb']:>17.1f}")


if __name__ == "__main__":
    main()
