"""The cut, in the fewest lines: sample() blocks the gradient, rsample() lets it through.

The same loss, L = (z - 2)^2 with z drawn from N(mu, sigma^2), is built twice:

1. with ``z = q.sample()``: z is a stochastic node with no gradient path back to mu and sigma,
   so ``L.backward()`` raises an error that names the cut and says what to do instead;
2. with ``z = q.rsample()``: z = mu + sigma * eps with eps ~ N(0, 1) an input leaf, so the
   gradients flow, dz/dmu = 1 and dz/dsigma = eps, and dL/dsigma = 2 (z - 2) eps.

Both graphs are drawn (SVG when Graphviz's ``dot`` is installed, DOT text otherwise): the cut is
the dashed edge labelled "no gradient".

    python demos/cut_graph.py [--seed 0] [--out DIR] [--metrics-json PATH] [--quick]
"""
from __future__ import annotations

import common  # first: pins BLAS to one thread, finds the package from a checkout

import os
import shutil

import numpy as np

import tinygrad_reparam.distributions as D
from tinygrad_reparam import Tensor
from tinygrad_reparam.viz import print_graph, render, to_dot


def make_parameters():
    mu = Tensor(0.5, requires_grad=True, name="mu")
    sigma = Tensor(1.5, requires_grad=True, name="sigma")
    return mu, sigma


def loss_with_sample(seed: int):
    """z = q.sample(): the graph is cut at z; backward() raises the teaching error."""
    mu, sigma = make_parameters()
    z = D.Normal(mu, sigma).sample(rng=np.random.default_rng(seed))
    loss = (z - 2.0) ** 2
    try:
        loss.backward()
        message = None
    except RuntimeError as error:
        message = str(error)
    return loss, message


def loss_with_rsample(seed: int):
    """z = q.rsample() = mu + sigma * eps: gradients flow into mu and sigma."""
    mu, sigma = make_parameters()
    z = D.Normal(mu, sigma).rsample(rng=np.random.default_rng(seed))
    z.retain_grad()
    loss = (z - 2.0) ** 2
    loss.backward(retain_graph=True)  # keep the graph so that it can be drawn with its gradients
    eps = (z.item() - mu.item()) / sigma.item()
    return loss, {"z": z.item(), "eps": eps, "dL_dz": z.grad.item(),
                  "dL_dmu": mu.grad.item(), "dL_dsigma": sigma.grad.item(),
                  "dz_dmu": mu.grad.item() / z.grad.item(), "dz_dsigma": sigma.grad.item() / z.grad.item()}


def draw(loss, out_dir: str, name: str) -> str:
    """Write the graph as SVG if `dot` is installed, else as DOT source. Returns the path."""
    os.makedirs(out_dir, exist_ok=True)
    if shutil.which("dot"):
        return str(render(loss, os.path.join(out_dir, f"{name}.svg")))
    path = os.path.join(out_dir, f"{name}.dot")
    with open(path, "w") as handle:
        handle.write(to_dot(loss))
    return path


def main(argv=None) -> dict:
    args = common.demo_arguments(__doc__).parse_args(argv)  # --quick changes nothing: it is instant

    cut_loss, message = loss_with_sample(args.seed)
    print("1. z = q.sample(); loss.backward() raises:\n")
    print("   " + (message or "(no error: this should not happen)") + "\n")
    print_graph(cut_loss)

    path_loss, numbers = loss_with_rsample(args.seed)
    print("\n2. z = q.rsample() = mu + sigma * eps; loss.backward() gives:\n")
    print(f"   eps        = {numbers['eps']:+.6f}")
    print(f"   dz/dmu     = {numbers['dz_dmu']:+.6f}   (exactly 1)")
    print(f"   dz/dsigma  = {numbers['dz_dsigma']:+.6f}   (equals eps)")
    print(f"   dL/dsigma  = {numbers['dL_dsigma']:+.6f}   (= 2 (z - 2) eps)\n")
    print_graph(path_loss)

    files = [draw(cut_loss, args.out, "cut_sample"), draw(path_loss, args.out, "cut_rsample")]
    if not shutil.which("dot"):
        print("\n(Graphviz's `dot` is not installed, so the graphs were written as DOT text; "
              "install graphviz to get SVG pictures.)")
    print("\ngraphs:", ", ".join(files))

    metrics = {
        "sample_raises": message is not None and "rsample()" in message,
        "dz_dmu": numbers["dz_dmu"],
        "dz_dsigma": numbers["dz_dsigma"],
        "eps": numbers["eps"],
        "dz_dsigma_minus_eps": abs(numbers["dz_dsigma"] - numbers["eps"]),
        "seed": args.seed,
    }
    common.print_table(["quantity", "value"], [(key, metrics[key]) for key in
                       ("sample_raises", "dz_dmu", "dz_dsigma", "eps", "dz_dsigma_minus_eps")])
    common.write_metrics(args.metrics_json, metrics)
    return metrics


if __name__ == "__main__":
    main()
