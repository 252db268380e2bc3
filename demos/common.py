"""What every demo shares: the command line, BLAS threads, metrics, the final table, the figure.

Each demo is a script made of small named functions. This file keeps the plumbing out of them:

    import common                              # first: pins BLAS threads, finds the package
    parser = common.demo_arguments(__doc__)    # --seed --quick --metrics-json --out
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    ...
    common.progress(f"step {step}  loss {loss:.3f}")
    common.print_table(["method", "test log-lik"], rows)
    common.save_figure(draw, args.out, "name.png")   # draw(plt) returns a figure
    common.write_metrics(args.metrics_json, metrics)
    common.tile(images, rows, columns, side)        # an image grid for figures

Importing this module first also pins BLAS to one thread (the matrices in the demos are small,
so threads cost more than they save) and makes ``tinygrad_reparam`` importable from a checkout.
"""
from __future__ import annotations

import os
import sys

# Must happen before NumPy is imported anywhere.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402
import json  # noqa: E402
from typing import Callable, Optional, Sequence  # noqa: E402

import numpy as np  # noqa: E402

try:
    import tinygrad_reparam  # noqa: F401,E402
except ImportError:  # running from a checkout without installing
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

DEFAULT_OUT = os.path.join("demos", "out")


def demo_arguments(docstring: str) -> argparse.ArgumentParser:
    """A parser with the options every demo has: --seed, --quick, --metrics-json, --out."""
    parser = argparse.ArgumentParser(description=docstring.strip().splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0, help="same seed, same numbers")
    parser.add_argument("--quick", action="store_true", help="a short run that finishes in seconds")
    parser.add_argument("--metrics-json", default=None, help="write the key numbers to this JSON file")
    parser.add_argument("--out", default=DEFAULT_OUT, help="folder for the figure")
    return parser


def progress(message: str) -> None:
    """One short progress line, flushed at once so it shows while the demo runs."""
    print(message, flush=True)


def print_table(header: Sequence[str], rows: Sequence[Sequence]) -> None:
    """A Markdown table; floats with 4 significant digits."""
    def cell(value) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    print()
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(cell(value) for value in row) + " |")


def save_figure(draw: Callable, out_dir: str, filename: str) -> Optional[str]:
    """Call ``draw(plt)`` to build a figure and save it as ``out_dir/filename``.

    Without matplotlib, print how to get it and return None: the numbers never depend on it.
    """
    try:
        import matplotlib
    except ImportError:
        print("\nmatplotlib is not installed, so no figure was drawn: pip install matplotlib "
              "(or the package's [demos] extra) to get it.")
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = draw(plt)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, filename)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    print(f"\nfigure: {path}")
    return path


def tile(images: np.ndarray, rows: int, columns: int, side: int, gap: float = 0.3) -> np.ndarray:
    """Lay flat square images out on a rows x columns grid, one grey pixel between neighbours."""
    canvas = np.full((rows * (side + 1) - 1, columns * (side + 1) - 1), gap)
    for index, image in enumerate(images[: rows * columns]):
        top, left = (index // columns) * (side + 1), (index % columns) * (side + 1)
        canvas[top:top + side, left:left + side] = image.reshape(side, side)
    return canvas


def write_metrics(path: Optional[str], metrics: dict) -> None:
    """Write ``metrics`` as JSON when a path was given."""
    if path:
        with open(path, "w") as handle:
            json.dump(metrics, handle, indent=2)
