"""Planar normalizing flows fitted to the four 2-D energy densities of Rezende & Mohamed (2015).

A target is known only up to its normaliser: p(z) = exp(-U(z)) / Z. A flow pushes
z_0 ~ N(0, I), drawn with rsample, through K planar layers z_k = z_{k-1} + u_hat_k
tanh(w_k^T z_{k-1} + b_k) (tinygrad_reparam.flows) and keeps its density exact:

    log q_K(z_K) = log q_0(z_0) - sum_k log |1 + (1 - tanh^2(w_k^T z_{k-1} + b_k)) w_k^T u_hat_k|.

It is fitted by maximizing the evidence lower bound (reverse KL), a pathwise gradient through
the samples:

    ELBO = E_{z_0 ~ N(0, I)}[ -U(z_K) - log q_K(z_K) ] = log Z - KL(q_K || p)  <=  log Z.

In two dimensions log Z is an ordinary integral, computed here on a fine grid (for U2 it is
also known in closed form, log(0.4 sqrt(2 pi) (8 + 0.2 sqrt(2 pi))) = 2.14287, which the grid
matches), so the gap log Z - ELBO is the KL divergence the fitted flow still misses, in nats.

As in the paper, the energy is annealed: the loss is E[beta_t U(z_K) + log q_K(z_K)] with
beta_t rising linearly from 0.01 to 1 over the first half of training (a hot, flat target
first, so that q spreads out before it has to squeeze into the thin ridges).

The energies are those of Table 1 of the paper, with w1(z) = sin(2 pi z1 / 4),
w2(z) = 3 exp(-((z1 - 1) / 0.6)^2 / 2) and w3(z) = 3 sigmoid((z1 - 1) / 0.3):

    U1(z) = ((|z| - 2) / 0.4)^2 / 2
            - log(exp(-((z1 - 2) / 0.6)^2 / 2) + exp(-((z1 + 2) / 0.6)^2 / 2))
    U2(z) = ((z2 - w1(z)) / 0.4)^2 / 2
    U3(z) = -log(exp(-((z2 - w1(z)) / 0.35)^2 / 2) + exp(-((z2 - w1(z) + w2(z)) / 0.35)^2 / 2))
    U4(z) = -log(exp(-((z2 - w1(z)) / 0.4)^2 / 2) + exp(-((z2 - w1(z) + w3(z)) / 0.35)^2 / 2))

U2, U3 and U4 do not grow along z1 (the sine wave runs on for ever), so exp(-U) has infinite
mass and no normaliser. The paper draws them on the square [-4, 4]^2; here they get a soft wall
there, + ((|z1| - 4)_+ / 0.2)^2 / 2, which leaves the density inside the square exactly as in
Table 1 and makes Z finite.

Reference: D. J. Rezende and S. Mohamed, "Variational Inference with Normalizing Flows",
ICML 2015, section 6.1 and Table 1.

    python demos/planar_flow.py                 # all four, 16 layers: about half a minute
    python demos/planar_flow.py --quick         # a few seconds
    python demos/planar_flow.py --layers 32 --steps 3000 --out demos/out --metrics-json m.json
"""
from __future__ import annotations

import common  # first: pins BLAS to one thread, finds the package from a checkout

import math
import time

import numpy as np

import tinygrad_reparam.distributions as D
from tinygrad_reparam import Tensor, no_grad, stack
from tinygrad_reparam.flows import NormalizingFlow, PlanarFlow
from tinygrad_reparam.optim import Adam

DENSITIES = ("U1", "U2", "U3", "U4")
PLOT_HALF_WIDTH = 4.0        # the paper's window, [-4, 4]^2
WALL_AT, WALL_WIDTH = 4.0, 0.2


# ---------------------------------------------------------------------------------------------
# The four energies of Table 1 (engine ops, so that gradients reach the flow through z)
def w1(z1: Tensor) -> Tensor:
    return (2 * math.pi * z1 / 4).sin()


def w2(z1: Tensor) -> Tensor:
    return 3.0 * (-0.5 * ((z1 - 1.0) / 0.6) ** 2).exp()


def w3(z1: Tensor) -> Tensor:
    return 3.0 * ((z1 - 1.0) / 0.3).sigmoid()


def log_sum_exp(a: Tensor, b: Tensor) -> Tensor:
    """log(exp(a) + exp(b)), computed stably."""
    return stack([a, b], axis=-1).logsumexp(axis=-1)


def wall(z1: Tensor) -> Tensor:
    """((|z1| - 4)_+ / 0.2)^2 / 2: zero inside the paper's square, a steep rise outside."""
    return 0.5 * ((z1.abs() - WALL_AT).relu() / WALL_WIDTH) ** 2


def energy_u1(z: Tensor) -> Tensor:
    z1, z2 = z[..., 0], z[..., 1]
    radius = (z1 * z1 + z2 * z2).sqrt()
    return (0.5 * ((radius - 2.0) / 0.4) ** 2
            - log_sum_exp(-0.5 * ((z1 - 2.0) / 0.6) ** 2, -0.5 * ((z1 + 2.0) / 0.6) ** 2))


def energy_u2(z: Tensor) -> Tensor:
    z1, z2 = z[..., 0], z[..., 1]
    return 0.5 * ((z2 - w1(z1)) / 0.4) ** 2 + wall(z1)


def energy_u3(z: Tensor) -> Tensor:
    z1, z2 = z[..., 0], z[..., 1]
    return -log_sum_exp(-0.5 * ((z2 - w1(z1)) / 0.35) ** 2,
                        -0.5 * ((z2 - w1(z1) + w2(z1)) / 0.35) ** 2) + wall(z1)


def energy_u4(z: Tensor) -> Tensor:
    z1, z2 = z[..., 0], z[..., 1]
    return -log_sum_exp(-0.5 * ((z2 - w1(z1)) / 0.4) ** 2,
                        -0.5 * ((z2 - w1(z1) + w3(z1)) / 0.35) ** 2) + wall(z1)


ENERGIES = {"U1": energy_u1, "U2": energy_u2, "U3": energy_u3, "U4": energy_u4}


# ---------------------------------------------------------------------------------------------
# The true log-normaliser, by numerical integration
def grid_points(half_width: float, points: int) -> tuple:
    """(cell centres, cell area) of a points x points grid on [-half_width, half_width]^2; the
    centres as an (points^2, 2) array, row by row (rows run along z2, columns along z1)."""
    edges = np.linspace(-half_width, half_width, points + 1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    z1, z2 = np.meshgrid(centres, centres)
    return np.stack([z1.ravel(), z2.ravel()], axis=-1), (edges[1] - edges[0]) ** 2


def log_normaliser(energy, half_width: float, points: int) -> float:
    """log Z = log of the integral of exp(-U), by the midpoint rule (a logsumexp over the cells).

    The integrands are smooth and fall off fast, so the midpoint rule converges quickly: the
    demo reports how much log Z moves when the grid is made twice as fine."""
    z, cell_area = grid_points(half_width, points)
    with no_grad():
        log_density = -energy(Tensor(z))
    return float(log_density.logsumexp().item() + math.log(cell_area))


# ---------------------------------------------------------------------------------------------
# The flow and its training
def make_flow(layers: int, rng: np.random.Generator) -> NormalizingFlow:
    """N(0, I) in 2-D pushed through ``layers`` planar layers, u and w ~ N(0, 0.5^2): the
    untrained flow is a mild distortion of the Gaussian, and w is not so small that the
    constraint's w / |w|^2 blows u_hat up."""
    base = D.Normal(np.zeros(2), np.ones(2))
    return NormalizingFlow(base, [PlanarFlow(2, rng, init_scale=0.5) for _ in range(layers)])


def inverse_temperature(step: int, steps: int, anneal_fraction: float) -> float:
    """beta_t = min(1, 0.01 + t / T_anneal), T_anneal = anneal_fraction * steps (0: no annealing)."""
    if anneal_fraction <= 0:
        return 1.0
    return min(1.0, 0.01 + step / (anneal_fraction * steps))


def train_flow(flow: NormalizingFlow, energy, name: str, args, rng: np.random.Generator) -> list:
    """Adam on the annealed negative ELBO E[beta U(z_K) + log q_K(z_K)], the gradient taken
    through z_K = f(z_0), z_0 = rsample(). The learning rate falls linearly to zero. Returns the
    ELBO (beta = 1) of every batch."""
    optimizer = Adam(flow.parameters(), lr=args.lr)
    batch_elbos = []
    start = time.perf_counter()
    report_at = {round(quarter * args.steps / 4) for quarter in range(1, 5)}
    for step in range(args.steps):
        beta = inverse_temperature(step, args.steps, args.anneal_fraction)
        optimizer.lr = args.lr * (1.0 - step / args.steps)
        optimizer.zero_grad()
        z, log_q = flow.rsample((args.batch_size,), rng=rng)   # z_K = f(z_0): a path to w, u, b
        u = energy(z)
        loss = (beta * u + log_q).mean()
        loss.backward()
        optimizer.step()
        batch_elbos.append(float(-(u.data + log_q.data).mean()))
        if step + 1 in report_at:
            recent = np.mean(batch_elbos[-max(1, args.steps // 10):])
            seconds = time.perf_counter() - start
            common.progress(f"{name}  step {step + 1:5d}/{args.steps}  beta {beta:4.2f}  "
                            f"ELBO (recent batches) {recent:7.3f}  {seconds:5.1f}s")
    return batch_elbos


def estimate_elbo(flow: NormalizingFlow, energy, samples: int, rng: np.random.Generator) -> tuple:
    """(ELBO, its standard error) from ``samples`` fresh draws: the mean of -U(z) - log q(z)."""
    with no_grad():
        z, log_q = flow.rsample((samples,), rng=rng)
        values = -energy(z).data - log_q.data
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(samples))


# ---------------------------------------------------------------------------------------------
# Output
def densities_on_grid(flow: NormalizingFlow, energy, log_z: float, points: int) -> tuple:
    """(target p(z), flow q(z)) on the plotting window, as points x points images.

    q is evaluated exactly at the grid points by inverting the planar layers (flows.py)."""
    z, _ = grid_points(PLOT_HALF_WIDTH, points)
    with no_grad():
        target = np.exp(-energy(Tensor(z)).data - log_z)
    model = np.exp(flow.log_prob(z))
    return target.reshape(points, points), model.reshape(points, points)


def draw_figure(plt, images: dict, results: dict):
    """Top row: the targets exp(-U) / Z; bottom row: the fitted flows' densities q_K."""
    figure, axes = plt.subplots(2, len(images), figsize=(2.3 * len(images), 5.2),
                                layout="constrained")
    axes = np.asarray(axes).reshape(2, len(images))
    extent = [-PLOT_HALF_WIDTH, PLOT_HALF_WIDTH, -PLOT_HALF_WIDTH, PLOT_HALF_WIDTH]
    for column, (name, (target, model)) in enumerate(images.items()):
        top = max(target.max(), model.max())
        for row, (image, title) in enumerate([
                (target, f"{name}: target exp(-U) / Z\nlog Z = {results[name]['log_z']:.3f}"),
                (model, f"flow, {results['config']['layers']} planar layers\n"
                        f"KL = log Z - ELBO = {results[name]['kl']:.3f}")]):
            ax = axes[row, column]
            ax.imshow(image, origin="lower", extent=extent, cmap="viridis", vmin=0, vmax=top)
            ax.set_title(title, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    return figure


def print_table(results: dict) -> None:
    rows = []
    for name in results["config"]["densities"]:
        r = results[name]
        rows.append([name, r["log_z"], f"{r['elbo']:.4f} ± {r['elbo_stderr']:.4f}", r["kl"],
                     r["kl_untrained"], r["kl_base"], r["train_seconds"]])
    common.print_table(["density", "log Z (grid)", "ELBO ± s.e.", "KL = log Z - ELBO",
                        "KL, untrained flow", "KL, N(0, I) alone", "train s"], rows)


# ---------------------------------------------------------------------------------------------
def parse_args(argv=None):
    parser = common.demo_arguments(__doc__)
    parser.add_argument("--densities", nargs="+", default=list(DENSITIES), choices=DENSITIES)
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--lr", type=float, default=3e-2)
    parser.add_argument("--anneal-fraction", type=float, default=0.5,
                        help="beta rises from 0.01 to 1 over this fraction of the steps (0: off)")
    parser.add_argument("--elbo-samples", type=int, default=50000)
    parser.add_argument("--grid-points", type=int, default=600,
                        help="log Z on a grid of this many points per axis over [-6, 6]^2")
    parser.add_argument("--plot-points", type=int, default=200)
    args = parser.parse_args(argv)
    if args.quick:
        args.layers, args.steps, args.batch_size = 8, 150, 128
        args.elbo_samples, args.grid_points, args.plot_points = 5000, 200, 60
    for name in ("layers", "steps", "batch_size", "elbo_samples", "grid_points", "plot_points"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer")
    if not 0 <= args.anneal_fraction <= 1:
        parser.error("--anneal-fraction must be in [0, 1]")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    print(f"planar flows: K = {args.layers} layers, Adam lr {args.lr} (linear decay), batch "
          f"{args.batch_size}, {args.steps} steps, annealing over the first "
          f"{args.anneal_fraction:.0%}, seed {args.seed}")
    grid_half_width = 6.0  # holds all the mass: the wall stops z1 near 4, z2 stays within 6
    results = {"config": {"densities": args.densities, "layers": args.layers, "steps": args.steps,
                          "batch_size": args.batch_size, "lr": args.lr,
                          "anneal_fraction": args.anneal_fraction, "elbo_samples": args.elbo_samples,
                          "grid_points": args.grid_points, "grid_half_width": grid_half_width,
                          "seed": args.seed}}
    images = {}
    for name in args.densities:
        energy = ENERGIES[name]
        index = DENSITIES.index(name)  # seeds per density: the same numbers whatever else runs
        log_z = log_normaliser(energy, grid_half_width, args.grid_points)
        log_z_finer = log_normaliser(energy, grid_half_width, 2 * args.grid_points)

        flow = make_flow(args.layers, np.random.default_rng([args.seed, index, 0]))
        elbo_base, _ = estimate_elbo(NormalizingFlow(flow.base, []), energy, args.elbo_samples,
                                     np.random.default_rng([args.seed, index, 1]))
        elbo_untrained, _ = estimate_elbo(flow, energy, args.elbo_samples,
                                          np.random.default_rng([args.seed, index, 1]))
        start = time.perf_counter()
        curve = train_flow(flow, energy, name, args, np.random.default_rng([args.seed, index, 2]))
        seconds = time.perf_counter() - start
        elbo, stderr = estimate_elbo(flow, energy, args.elbo_samples,
                                     np.random.default_rng([args.seed, index, 3]))

        results[name] = {"log_z": log_z, "log_z_grid_change": abs(log_z_finer - log_z),
                         "elbo": elbo, "elbo_stderr": stderr, "kl": log_z - elbo,
                         "elbo_base": elbo_base, "kl_base": log_z - elbo_base,
                         "elbo_untrained": elbo_untrained, "kl_untrained": log_z - elbo_untrained,
                         "train_seconds": seconds, "train_elbo_curve": curve}
        images[name] = densities_on_grid(flow, energy, log_z, args.plot_points)

    print_table(results)
    worst = max(results[name]["log_z_grid_change"] for name in args.densities)
    print(f"(log Z by the midpoint rule on {args.grid_points}^2 cells over [-{grid_half_width:g}, "
          f"{grid_half_width:g}]^2; doubling the resolution moves it by at most {worst:.1e}. "
          f"ELBO from {args.elbo_samples} samples.)")
    common.save_figure(lambda plt: draw_figure(plt, images, results), args.out, "planar_flow.png")
    common.write_metrics(args.metrics_json, results)
    return results


if __name__ == "__main__":
    main()
