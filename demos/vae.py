"""The main demo: the same VAE trained with the reparameterized and the REINFORCE gradient.

A VAE on real handwritten digits maximizes ELBO(x) = E_q[log p(x | z)] - KL(q(z | x) || p(z)).
The encoder's gradient of the first term is estimated three ways, on the same data order and seed:

- pathwise:          z = mu + sigma * eps, the gradient goes through the sample (the
                     reparameterization trick);
- score:             REINFORCE, (log p(x|z) - b) grad log q(z|x), with b a moving average
                     (decay 0.9) of the batch's mean reconstruction term (a baseline);
- score_nobaseline:  the plain score-function estimator, b = 0.

At the end it reports, per estimator: the test ELBO (nats per image; the reconstruction term
averaged over 100 draws per image, the KL analytic), the test IWAE bound with k = 1000, the
variance of the encoder's gradient at one common parameter point (as a ratio to pathwise), and
the training time. Whether the reparameterization trick matters in practice becomes a number:
the gap in test ELBO, and gradient variances one to two orders of magnitude apart.

    python demos/vae.py                      # all three estimators, 300 epochs (about half a minute)
    python demos/vae.py --quick              # a few epochs, seconds
    python demos/vae.py --estimator pathwise --epochs 50 --out demos/out --metrics-json m.json
"""
from __future__ import annotations

import common  # first: pins BLAS to one thread, finds the package from a checkout

import sys
import time

import numpy as np

from tinygrad_reparam.data import load_binarized_digits, load_mnist
from tinygrad_reparam.estimators import PATHWISE, SCORE
from tinygrad_reparam.optim import Adam
from tinygrad_reparam.vae import ESTIMATORS, VAE, gaussian_kl_to_standard_normal


# ---------------------------------------------------------------------------------------------
# Data
def load_binarized(dataset: str) -> tuple:
    """(x_train, x_test, labels_test) as float arrays of 0/1 pixels."""
    if dataset == "digits":  # binarized at 8 of 16; first 1437 of a fixed shuffle train, last 360 test
        return load_binarized_digits()
    images, _ = load_mnist("train")
    test_images, test_labels = load_mnist("test")
    return (images >= 0.5).astype(np.float64), (test_images >= 0.5).astype(np.float64), test_labels


# ---------------------------------------------------------------------------------------------
# Training
def train(estimator: str, x_train: np.ndarray, args, log) -> tuple:
    """Train one VAE with one estimator; returns (model, per-epoch train ELBO, seconds).

    Every estimator starts from the same initial weights and sees the same batches in the same
    order (generators seeded from args.seed), so only the gradient estimator differs.
    """
    model = VAE(x_dim=x_train.shape[1], hidden=args.hidden, z_dim=args.z_dim,
                rng=np.random.default_rng([args.seed, 0]))
    optimizer = Adam(model.parameters(), lr=args.lr)
    data_rng = np.random.default_rng([args.seed, 1])
    noise_rng = np.random.default_rng([args.seed, 2])
    curve = []
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        order = data_rng.permutation(len(x_train))
        batch_elbos = []
        for first in range(0, len(order), args.batch_size):
            x = x_train[order[first:first + args.batch_size]]
            optimizer.zero_grad()
            elbo = model.elbo(x, noise_rng, estimator=estimator)
            (-elbo).backward()
            optimizer.step()
            batch_elbos.append(elbo.item())
        curve.append(float(np.mean(batch_elbos)))
        log.epoch(estimator, epoch, args.epochs, curve[-1], time.perf_counter() - start)
    return model, curve, time.perf_counter() - start


class ProgressLog:
    """One progress line per epoch: rewritten in place on a terminal; in a log file, only every
    ``every``-th epoch (and the last) gets a line of its own, so the output stays short."""

    def __init__(self, every: int):
        self.every = every
        self.interactive = sys.stdout.isatty()

    def epoch(self, estimator: str, epoch: int, epochs: int, train_elbo: float, seconds: float) -> None:
        line = f"{estimator:>20}  epoch {epoch:4d}/{epochs}  train ELBO {train_elbo:9.3f}  {seconds:6.1f}s"
        if self.interactive:
            print("\r" + line, end="\n" if epoch == epochs else "", flush=True)
        elif epoch == 1 or epoch % self.every == 0 or epoch == epochs:
            print(line, flush=True)


# ---------------------------------------------------------------------------------------------
# Evaluation
def test_bounds(model: VAE, x_test: np.ndarray, args) -> tuple:
    """Mean test ELBO (100 draws per image) and mean test IWAE bound, in nats per image."""
    rng = np.random.default_rng([args.seed, 3])
    elbo = model.evaluate_elbo(x_test, rng, samples=100)
    iwae = model.iwae_bound(x_test, k=args.iwae_k, rng=rng)
    return float(elbo.mean()), float(iwae.mean())


def encoder_gradient_variance(model: VAE, x: np.ndarray, estimator: str, repeats: int, seed: int) -> float:
    """Total variance (summed over all encoder weights) of the encoder's gradient of the batch
    ELBO, over ``repeats`` independent draws of the noise at the model's current parameters."""
    rng = np.random.default_rng([seed, 4])
    encoder_params = model.encoder.parameters()
    if estimator == SCORE:  # start the baseline where training would have it: at E[log p(x|z)]
        reference = model.evaluate_elbo(x, rng, samples=20) + _kl(model, x)
        model.baseline.value = float(reference.mean())
    samples = []
    for _ in range(repeats):
        model.zero_grad()
        (-model.elbo(x, rng, estimator=estimator)).backward()
        samples.append(np.concatenate([p.grad.ravel() for p in encoder_params]))
    model.zero_grad()
    return float(np.var(np.stack(samples), axis=0, ddof=1).sum())


def _kl(model: VAE, x: np.ndarray) -> np.ndarray:
    mu, log_var = model.encode(x)
    return gaussian_kl_to_standard_normal(mu, log_var).data


# ---------------------------------------------------------------------------------------------
# Output
def print_table(results: dict) -> None:
    print("\n| estimator | test ELBO | test IWAE (k={k}) | encoder grad variance / pathwise | train s |"
          .format(k=results["config"]["iwae_k"]))
    print("|---|---|---|---|---|")
    for name in ESTIMATORS:
        if name in results:
            r = results[name]
            ratio = "n/a" if r["grad_variance_ratio"] is None else f"{r['grad_variance_ratio']:.3g}"
            print(f"| {name} | {r['test_elbo']:.2f} | {r['test_iwae']:.2f} | {ratio} | {r['train_seconds']:.1f} |")


def draw_figure(plt, models: dict, curves: dict, x_test: np.ndarray, labels: np.ndarray, seed: int):
    """Training curves, test images and reconstructions, prior samples, and the test set's
    posterior means projected to 2-D (principal components) coloured by digit."""
    side = int(round(np.sqrt(x_test.shape[1])))
    best = models.get(PATHWISE) or next(iter(models.values()))
    figure = plt.figure(figsize=(13, 8.5))
    grid = figure.add_gridspec(2, 3)

    ax = figure.add_subplot(grid[0, :2])
    for name, curve in curves.items():
        ax.plot(np.arange(1, len(curve) + 1), curve, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("train ELBO (nats per image)")
    ax.set_title("Training: pathwise (reparameterized) against score-function (REINFORCE) gradients")
    ax.legend()
    low = min(min(curve) for curve in curves.values())
    ax.set_ylim(max(low, -60), None)

    ax = figure.add_subplot(grid[0, 2])
    rows = [x_test[:8]] + [models[name].reconstruct(x_test[:8]) for name in models]
    ax.imshow(common.tile(np.concatenate(rows), len(rows), 8, side), cmap="gray_r", vmin=0, vmax=1)
    ax.set_title("top: test images; below: reconstructions\n(" + ", ".join(models) + ")", fontsize=9)
    ax.axis("off")

    ax = figure.add_subplot(grid[1, 0])
    prior = best.sample_prior(36, rng=np.random.default_rng([seed, 5]))
    ax.imshow(common.tile(prior, 6, 6, side), cmap="gray_r", vmin=0, vmax=1)
    ax.set_title("samples from the prior (pixel probabilities)", fontsize=9)
    ax.axis("off")

    for column, name in enumerate([n for n in (PATHWISE, SCORE) if n in models][:2], start=1):
        ax = figure.add_subplot(grid[1, column])
        mu, _ = models[name].encode(x_test)
        means = mu.data - mu.data.mean(axis=0)
        _, _, directions = np.linalg.svd(means, full_matrices=False)
        projected = means @ directions[:2].T
        points = ax.scatter(projected[:, 0], projected[:, 1], c=labels, cmap="tab10", s=8)
        ax.set_title(f"test-set posterior means, {name}\n(first 2 principal components)", fontsize=9)
        figure.colorbar(points, ax=ax, ticks=range(10))
    figure.tight_layout()
    return figure


# ---------------------------------------------------------------------------------------------
def parse_args(argv=None):
    parser = common.demo_arguments(__doc__)
    parser.add_argument("--estimator", default="all", choices=list(ESTIMATORS) + ["all"])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--z-dim", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=200)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--dataset", default="digits", choices=["digits", "mnist"])
    parser.add_argument("--iwae-k", type=int, default=1000)
    parser.add_argument("--variance-repeats", type=int, default=200)
    args = parser.parse_args(argv)
    if args.quick:  # 10 epochs, IWAE k = 100: seconds
        args.epochs, args.iwae_k, args.variance_repeats = 10, 100, 50
    for name in ("epochs", "z_dim", "hidden", "batch_size", "iwae_k", "variance_repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    estimators = list(ESTIMATORS) if args.estimator == "all" else [args.estimator]
    x_train, x_test, labels_test = load_binarized(args.dataset)
    print(f"{args.dataset}: {len(x_train)} training and {len(x_test)} test images of {x_train.shape[1]} "
          f"binary pixels; VAE {x_train.shape[1]}-{args.hidden}-{args.z_dim}, Adam lr {args.lr}, "
          f"batch {args.batch_size}, {args.epochs} epochs, seed {args.seed}")

    log = ProgressLog(every=max(1, args.epochs // 10))
    models, curves, results = {}, {}, {}
    for estimator in estimators:
        model, curve, seconds = train(estimator, x_train, args, log)
        test_elbo, test_iwae = test_bounds(model, x_test, args)
        models[estimator], curves[estimator] = model, curve
        results[estimator] = {"test_elbo": test_elbo, "test_iwae": test_iwae,
                              "grad_variance_ratio": None, "train_seconds": seconds,
                              "train_elbo_curve": curve}

    # Gradient variance of every estimator at ONE parameter point: the trained pathwise model if
    # there is one (else the first trained model), on the first batch of the training set.
    point = PATHWISE if PATHWISE in models else estimators[0]
    probe = models[point]
    batch = x_train[: args.batch_size]
    variances = {name: encoder_gradient_variance(probe, batch, name, args.variance_repeats, args.seed)
                 for name in ESTIMATORS}
    for name in estimators:
        results[name]["grad_variance_ratio"] = variances[name] / variances[PATHWISE]

    results["config"] = {"dataset": args.dataset, "epochs": args.epochs, "batch_size": args.batch_size,
                         "lr": args.lr, "hidden": args.hidden, "z_dim": args.z_dim, "seed": args.seed,
                         "iwae_k": args.iwae_k, "grad_variance_point": f"{point}-trained",
                         "grad_variance_repeats": args.variance_repeats}
    print_table(results)
    print(f"(gradient variances measured at the {point}-trained parameters, {args.variance_repeats} draws)")

    common.save_figure(lambda plt: draw_figure(plt, models, curves, x_test, labels_test, args.seed),
                       args.out, "vae.png")
    common.write_metrics(args.metrics_json, results)
    return results


if __name__ == "__main__":
    main()
