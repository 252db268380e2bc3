"""Backward through very deep graphs: time must grow linearly with depth, memory too.

The graph is a chain y = -(-(...(-x))) of N unary ops on a one-element tensor, the deepest graph
there is for its size. A recursive backward pass would hit Python's recursion limit near
N = 1000; the engine's iterative topological sort does not, and visits each node once, so the
backward time per node should stay flat from 10^4 to 10^6 nodes. Peak memory (tracemalloc) is
reported for building the chain and for the backward pass.

When PyTorch or HIPS autograd happen to be installed, the same chain built with each of them is
an extra row (torch: a float64 tensor of shape (1,) and loss.backward(); autograd: the chain as a
function, traced by autograd.make_vjp and differentiated by the returned vjp, which is what
autograd.grad does). Neither is a dependency: a missing one is reported as a skipped row.

    python benchmarks/deep_chain.py                 # N = 10^4, 10^5, 10^6
    python benchmarks/deep_chain.py --quick         # N = 10^4, 10^5
    python benchmarks/deep_chain.py --sizes 10000 100000 --skip torch autograd
"""
from __future__ import annotations

import common  # first: pins BLAS threads, finds the package, imports the optional libraries

import argparse  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import numpy as np  # noqa: E402

from common import OPTIONAL, autograd, torch  # noqa: E402
from tinygrad_reparam import Tensor  # noqa: E402


def chain(x, n: int):
    """The same chain for every implementation: n negations, then a sum."""
    y = x
    for _ in range(n):
        y = -y
    return y.sum()


# For each implementation: build(n) -> graph, and backward(graph) -> d loss / dx as a float.
def engine_build(n: int) -> tuple:
    x = Tensor(np.array([1.0]), requires_grad=True)
    return x, chain(x, n)


def engine_backward(graph: tuple) -> float:
    x, loss = graph
    loss.backward()
    return float(x.grad[0])


def torch_build(n: int) -> tuple:
    x = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    return x, chain(x, n)


def torch_backward(graph: tuple) -> float:
    x, loss = graph
    loss.backward()
    return float(x.grad[0])


def autograd_build(n: int):
    vjp, _ = autograd.make_vjp(lambda x: chain(x, n))(np.array([1.0]))
    return vjp


def autograd_backward(vjp) -> float:
    return float(vjp(1.0)[0])


IMPLEMENTATIONS = {"engine": (engine_build, engine_backward)}
if torch is not None:
    IMPLEMENTATIONS["torch"] = (torch_build, torch_backward)
if autograd is not None:
    IMPLEMENTATIONS["autograd"] = (autograd_build, autograd_backward)
NOT_TRACED = {"torch"}  # its graph lives outside Python's allocator, where tracemalloc cannot see


def measure(name: str, n: int) -> dict:
    """Times without tracing (tracemalloc slows every allocation), then peaks with it."""
    build, backward = IMPLEMENTATIONS[name]
    start = time.perf_counter()
    graph = build(n)
    forward_seconds = time.perf_counter() - start
    start = time.perf_counter()
    gradient = backward(graph)
    backward_seconds = time.perf_counter() - start
    expected = 1.0 if n % 2 == 0 else -1.0
    if gradient != expected:
        raise SystemExit(f"{name}: wrong gradient for N = {n}: {gradient}, expected {expected}")
    del graph
    result = {"forward_s": forward_seconds, "backward_s": backward_seconds}
    if name not in NOT_TRACED:
        tracemalloc.start()
        graph = build(n)
        result["forward_peak_mb"] = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.reset_peak()
        backward(graph)
        result["backward_peak_mb"] = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10**4, 10**5, 10**6])
    parser.add_argument("--quick", action="store_true", help="N = 10^4 and 10^5 only")
    parser.add_argument("--skip", nargs="+", choices=OPTIONAL, default=[],
                        help="leave out these optional rows even when installed")
    args = parser.parse_args(argv)
    common.freeze_imports()
    sizes = args.sizes
    if args.quick:
        sizes = [n for n in sizes if n <= 10**5] or [10**4]

    names, versions = common.choose_rows(["engine"], IMPLEMENTATIONS, args.skip)
    print(f"chain of y = -y on shape (1,); {versions}")
    print(f"{'nodes':>9}  {'':9s}{'build s':>8} {'backward s':>11} {'backward us/node':>17} "
          f"{'build peak MB':>14} {'backward peak MB':>17}")
    for n in sizes:
        for name in names:
            try:
                r = measure(name, n)
            except RecursionError:  # kept as a row: a recursive backward pass is what this measures
                print(f"{n:>9}  {name:9s}recursion error")
                continue
            peaks = (f"{r['forward_peak_mb']:>14.1f} {r['backward_peak_mb']:>17.1f}" if "forward_peak_mb" in r
                     else f"{'-':>14} {'-':>17}")
            print(f"{n:>9}  {name:9s}{r['forward_s']:>8.2f} {r['backward_s']:>11.3f} "
                  f"{1e6 * r['backward_s'] / n:>17.2f} {peaks}")
    if "torch" in names:
        print("(torch's graph is allocated outside tracemalloc's view: no peaks for it)")


if __name__ == "__main__":
    main()
