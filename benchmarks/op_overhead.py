"""Per-op overhead of the engine against the same computation written by hand in NumPy.

The workload is a chain of N small elementwise ops on a vector of 16 float64 numbers,

    y = x;  repeat: y = y * c_mul;  y = y + c_add;  y = tanh(y)
    loss = sum(y)

followed by the gradient d loss / dx. With arrays this small NumPy itself spends most of its time
in per-call overhead, so the comparison measures what the engine adds per op: creating a node,
recording parents and VJP closures in the forward pass, the topological sort and the gradient
bookkeeping in the backward pass.

The baseline is the best pure NumPy can do: a forward pass that keeps only what the backward pass
needs (the tanh outputs), then the chain rule by hand in reverse. Before timing, the script checks
that both give the same gradient (elementwise, to 1e-10 relative). Rounds of the two are
interleaved in one process so that drifts in machine load hit both alike, and the median over
rounds is reported, in microseconds per op.

A second table answers a question about what users write: ``y * 0.5`` with a Python number
as the constant. The same chain runs with scalar constants given as Python floats and as 0-d
Tensors made once before the chain; the engine lifts a number into a constant node at every op,
so the first costs a little more. The ratio of the two is printed (target: at most 1.15).

When PyTorch or HIPS autograd happen to be installed, the same chain is run with each of them
as extra rows (torch: float64 tensors of shape (16,) and loss.backward(); autograd: the chain as
an autograd.numpy function and its gradient), checked against the NumPy gradient the same way
first and timed in the same rounds. Neither is a dependency: a missing one is reported as a
skipped row.

    python benchmarks/op_overhead.py              # N = 2000, 25 rounds
    python benchmarks/op_overhead.py --quick      # N = 300, 5 rounds
    python benchmarks/op_overhead.py --n 10000 --rounds 9
    python benchmarks/op_overhead.py --skip torch autograd   # leave the optional rows out
"""
from __future__ import annotations

import common  # first: pins BLAS threads, finds the package, imports the optional libraries

import argparse  # noqa: E402
import gc  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from common import OPTIONAL, anp, autograd, torch  # noqa: E402
from tinygrad_reparam import Tensor  # noqa: E402

SIZE = 16
OPS_PER_CYCLE = 3  # multiply, add, tanh


def make_inputs(seed: int) -> tuple:
    """x and the two constants. Multipliers just above 1 and tiny shifts keep the chain's
    Jacobian close to 1, so the gradient after thousands of ops is small but far from underflow
    and the correctness check compares real numbers, not zeros."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 0.5, SIZE)
    c_mul = rng.uniform(1.0, 1.01, SIZE)
    c_add = rng.normal(0.0, 1e-3, SIZE)
    return x, c_mul, c_add


# ---------------------------------------------------------------------------------------------
# The engine (and, below, torch and autograd: the same function with their tensors and tanh)
def chain(x, c_mul, c_add, n_ops: int, tanh):
    y = x
    for i in range(n_ops):
        step = i % OPS_PER_CYCLE
        if step == 0:
            y = y * c_mul
        elif step == 1:
            y = y + c_add
        else:
            y = tanh(y)
    return y.sum()


def engine_round(x0, c_mul, c_add, n_ops: int, wrap=Tensor) -> tuple:
    """(forward seconds, backward seconds, gradient) for one forward + backward pass."""
    x = Tensor(x0, requires_grad=True)
    c_mul, c_add = wrap(c_mul), wrap(c_add)  # constants: no gradient wanted
    start = time.perf_counter()
    loss = chain(x, c_mul, c_add, n_ops, Tensor.tanh)
    middle = time.perf_counter()
    loss.backward()
    end = time.perf_counter()
    return middle - start, end - middle, x.grad


# ---------------------------------------------------------------------------------------------
# The same thing by hand
def numpy_forward(x: np.ndarray, c_mul: np.ndarray, c_add: np.ndarray, n_ops: int) -> tuple:
    """The loss and the tanh outputs, which are all the backward pass needs."""
    y = x
    tanh_outputs = []
    for i in range(n_ops):
        step = i % OPS_PER_CYCLE
        if step == 0:
            y = y * c_mul
        elif step == 1:
            y = y + c_add
        else:
            y = np.tanh(y)
            tanh_outputs.append(y)
    return y.sum(), tanh_outputs


def numpy_backward(c_mul: np.ndarray, tanh_outputs: list, n_ops: int) -> np.ndarray:
    """The chain rule, last op first: d sum/dy = 1, d(y*c)/dy = c, d(y+c)/dy = 1,
    d tanh(y)/dy = 1 - tanh(y)^2."""
    g = np.ones(SIZE)
    for i in reversed(range(n_ops)):
        step = i % OPS_PER_CYCLE
        if step == 0:
            g = g * c_mul
        elif step == 2:
            t = tanh_outputs.pop()
            g = g * (1 - t * t)
        # step == 1 (add): the gradient passes through unchanged
    return g


def numpy_round(x0, c_mul, c_add, n_ops: int) -> tuple:
    start = time.perf_counter()
    _, saved = numpy_forward(x0, c_mul, c_add, n_ops)
    middle = time.perf_counter()
    grad = numpy_backward(c_mul, saved, n_ops)
    end = time.perf_counter()
    return middle - start, end - middle, grad


# ---------------------------------------------------------------------------------------------
# Optional: torch and autograd
def torch_round(x0, c_mul, c_add, n_ops: int) -> tuple:
    x = torch.tensor(x0, requires_grad=True)  # float64, like x0
    c_mul, c_add = torch.from_numpy(c_mul), torch.from_numpy(c_add)
    start = time.perf_counter()
    loss = chain(x, c_mul, c_add, n_ops, torch.tanh)
    middle = time.perf_counter()
    loss.backward()
    end = time.perf_counter()
    return middle - start, end - middle, x.grad.numpy()


def autograd_round(x0, c_mul, c_add, n_ops: int) -> tuple:
    """autograd.grad(f)(x) is make_vjp(f)(x) (the traced forward pass) followed by vjp(1.0) (the
    backward pass); calling the two halves separately times them separately."""
    start = time.perf_counter()
    vjp, _ = autograd.make_vjp(lambda x: chain(x, c_mul, c_add, n_ops, anp.tanh))(x0)
    middle = time.perf_counter()
    grad = vjp(1.0)
    end = time.perf_counter()
    return middle - start, end - middle, grad


def engine_numbers_round(x0, c_mul, c_add, n_ops: int) -> tuple:
    """The chain with Python floats as constants (``y * 1.004``): lifted at every op."""
    return engine_round(x0, c_mul, c_add, n_ops, wrap=lambda c: c)


RUNS = {"numpy": numpy_round, "engine": engine_round}  # numpy first: it is the reference
if torch is not None:
    RUNS["torch"] = torch_round
if autograd is not None:
    RUNS["autograd"] = autograd_round


# ---------------------------------------------------------------------------------------------
def check_gradients(names: list, x0, c_mul, c_add, n_ops: int) -> None:
    """Each implementation and the hand-written chain rule must agree before speeds mean anything."""
    *_, numpy_grad = numpy_round(x0, c_mul, c_add, n_ops)
    if not (np.all(np.isfinite(numpy_grad)) and np.all(numpy_grad != 0)):
        raise SystemExit(f"the hand-written gradient has zeros or non-finite values for N = "
                         f"{n_ops}; the check would be empty. Use a smaller --n.")
    for name in names[1:]:
        *_, grad = RUNS[name](x0, c_mul, c_add, n_ops)
        worst = np.max(np.abs(grad - numpy_grad) / np.abs(numpy_grad))
        if not np.allclose(grad, numpy_grad, rtol=1e-10, atol=0.0):
            raise SystemExit(f"{name} and hand-written gradients differ: largest relative "
                             f"difference {worst:.3e} > 1e-10")
        print(f"gradient check: {name} == hand-written NumPy (largest relative difference "
              f"{worst:.1e}; |dloss/dx| from {np.abs(numpy_grad).min():.2e} to "
              f"{np.abs(numpy_grad).max():.2e})")


def time_rounds(names: list, x0, c_mul, c_add, n_ops: int, rounds: int) -> dict:
    """Interleaved rounds after one untimed warm-up of each; times in seconds."""
    for name in names:
        RUNS[name](x0, c_mul, c_add, n_ops)
    times = {name: [] for name in names}
    for _ in range(rounds):
        for name in names:
            gc.collect()  # start every round from the same heap; gc stays enabled while timing
            forward, backward, _ = RUNS[name](x0, c_mul, c_add, n_ops)
            times[name].append((forward, backward))
    return times


def per_op_medians(samples: list, n_ops: int) -> tuple:
    """Median forward, backward and total microseconds per op."""
    scale = 1e6 / n_ops
    forward = statistics.median(f for f, _ in samples) * scale
    backward = statistics.median(b for _, b in samples) * scale
    total = statistics.median(f + b for f, b in samples) * scale
    return forward, backward, total


def print_table(times: dict, n_ops: int, rounds: int) -> None:
    hand = per_op_medians(times["numpy"], n_ops)
    print(f"\nchain of {n_ops} ops on shape ({SIZE},), median of {rounds} interleaved rounds, "
          f"microseconds per op; ratio = time / numpy time")
    print(f"{'':10s}" + "  ".join(f"{label:>16s}" for label in ("forward", "backward", "forward+backward")))
    print(f"{'':10s}" + "  ".join([f"{'us/op':>9s}{'ratio':>7s}"] * 3))
    for name, samples in times.items():
        cells = [f"{t:9.2f}{t / h:6.1f}x" for t, h in zip(per_op_medians(samples, n_ops), hand)]
        print(f"{name:10s}" + "  ".join(cells))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="ops in the chain (default 2000)")
    parser.add_argument("--rounds", type=int, default=25, help="timed rounds (default 25)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="N = 300 and 5 rounds")
    parser.add_argument("--skip", nargs="+", choices=OPTIONAL, default=[],
                        help="leave out these optional rows even when installed")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.rounds = min(args.n, 300), min(args.rounds, 5)
    if args.n < 1 or args.rounds < 1:
        parser.error("--n and --rounds must be at least 1")
    return args


def compare_number_constants(x0, n_ops: int, rounds: int) -> None:
    """Python floats against 0-d Tensor constants, same chain, same values, same gradient."""
    c_mul, c_add = 1.004, 1e-3
    runs = {"Tensor constants": engine_round, "Python numbers": engine_numbers_round}
    gradients = [run(x0, c_mul, c_add, n_ops)[2] for run in runs.values()]
    if not np.array_equal(*gradients):
        raise SystemExit("Python-number and Tensor constants give different gradients")
    times = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            gc.collect()
            forward, backward, _ = run(x0, c_mul, c_add, n_ops)
            times[name].append(forward + backward)
    per_op = {name: statistics.median(samples) * 1e6 / n_ops for name, samples in times.items()}
    ratio = per_op["Python numbers"] / per_op["Tensor constants"]
    print("\nscalar constants, same chain (gradients identical), microseconds per op:")
    for name, value in per_op.items():
        print(f"{name:18s} {value:6.2f}")
    print(f"Python numbers / Tensor constants: {ratio:.3f} (target <= 1.15)")


def main(argv=None) -> int:
    args = parse_args(argv)
    common.freeze_imports()
    names, versions = common.choose_rows(["numpy", "engine"], RUNS, args.skip)
    print(f"python {platform.python_version()}, {versions}, {platform.machine()}")
    x0, c_mul, c_add = make_inputs(args.seed)
    check_gradients(names, x0, c_mul, c_add, args.n)
    times = time_rounds(names, x0, c_mul, c_add, args.n, args.rounds)
    print_table(times, args.n, args.rounds)
    compare_number_constants(x0, args.n, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
