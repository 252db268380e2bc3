"""Bayes by Backprop: a neural network with a distribution over every weight, on a 1-D curve.

Blundell, Cornebise, Kavukcuoglu and Wierstra, "Weight Uncertainty in Neural Networks", ICML 2015.
Instead of one value per weight, the network keeps a Gaussian q(w) = N(mu, sigma^2) per weight
with sigma = softplus(rho), and every forward pass uses freshly drawn weights

    w = mu + softplus(rho) * eps,        eps ~ N(0, 1)            (tinygrad_reparam.bayes)

so the gradient of the loss reaches mu and rho through the sample: dw/dmu = 1 and
dw/drho = sigmoid(rho) * eps. Training maximizes the evidence lower bound; per training point
and for a minibatch B of the N points, the loss is

    loss = KL(q(w) || p(w)) / N  -  (1/|B|) sum_{i in B} log N(y_i | f_w(x_i), s^2),

with one weight sample w per minibatch, the prior p(w) = N(0, 1) for every weight (its KL to q
in closed form; the paper's scale-mixture prior would need a Monte Carlo KL) and the noise scale
s a learned point estimate.

The data is the paper's regression curve (Sec. 5.2),

    y = x + 0.3 sin(2 pi (x + e)) + 0.3 sin(4 pi (x + e)) + e,       e ~ N(0, 0.02^2)

(the paper writes N(0, 0.02); like the usual reimplementations we read 0.02 as the standard
deviation), with training and held-out test inputs uniform on [0, 0.5]. Reported: the test
log-likelihood per point under the predictive distribution, Monte Carlo over weight samples,

    log p(y | x) ~ log (1/S) sum_s N(y | f_{w_s}(x), s^2)     (a logsumexp over the S samples),

against a Gaussian fitted to the training targets; and the predictive standard deviation
sqrt(Var_s[f_{w_s}(x)] + s^2) averaged over x inside the training range [0, 0.5] and outside it
(on [-0.5, 0) and (0.5, 1.2]). Their ratio > 1 says the network knows where it has seen no data.

    python demos/bayes_by_backprop.py                # 1500 epochs, about 15 s on two idle cores
    python demos/bayes_by_backprop.py --quick        # 150 epochs, seconds
    python demos/bayes_by_backprop.py --seed 1 --hidden 50 --prior-sigma 0.5
"""
from __future__ import annotations

import common  # first: pins BLAS to one thread, finds the package from a checkout

import math
import time

import numpy as np

import tinygrad_reparam.distributions as D
from tinygrad_reparam import Tensor, no_grad
from tinygrad_reparam.bayes import BayesianMLP, inverse_softplus
from tinygrad_reparam.optim import Adam

TRAIN_RANGE = (0.0, 0.5)
PLOT_RANGE = (-0.5, 1.2)
NOISE_STD = 0.02


# ---------------------------------------------------------------------------------------------
# Data
def regression_curve(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blundell et al.'s curve: y = x + 0.3 sin(2 pi (x + e)) + 0.3 sin(4 pi (x + e)) + e."""
    e = rng.normal(0.0, NOISE_STD, size=x.shape)
    return x + 0.3 * np.sin(2 * np.pi * (x + e)) + 0.3 * np.sin(4 * np.pi * (x + e)) + e


def make_data(n_train: int, n_test: int, rng: np.random.Generator) -> tuple:
    """(x_train, y_train, x_test, y_test), each of shape (n, 1), inputs uniform on [0, 0.5]."""
    x_train = rng.uniform(*TRAIN_RANGE, size=(n_train, 1))
    y_train = regression_curve(x_train, rng)
    x_test = rng.uniform(*TRAIN_RANGE, size=(n_test, 1))
    y_test = regression_curve(x_test, rng)
    return x_train, y_train, x_test, y_test


# ---------------------------------------------------------------------------------------------
# The model and its loss
def build_model(args) -> tuple:
    """A 1-hidden-hidden-1 Bayesian MLP and the likelihood's noise scale s = softplus(noise_rho)."""
    model = BayesianMLP([1, args.hidden, args.hidden, 1], activation="relu",
                        prior_sigma=args.prior_sigma, rng=np.random.default_rng([args.seed, 1]))
    noise_rho = Tensor([inverse_softplus(0.1)], requires_grad=True)  # s starts at 0.1
    return model, noise_rho


def negative_elbo_per_point(model: BayesianMLP, noise_rho: Tensor, x: np.ndarray, y: np.ndarray,
                            n_train: int, rng: np.random.Generator) -> tuple:
    """KL / N - mean log N(y | f_w(x), s^2) over the minibatch, with one fresh weight sample w.
    Returns (loss, kl) as Tensors."""
    prediction = model(x, rng=rng)  # w = mu + softplus(rho) * eps, drawn inside each layer
    log_likelihood = D.Normal(prediction, noise_rho.softplus()).log_prob(y).mean()
    kl = model.kl()
    return kl / n_train - log_likelihood, kl


def train(model: BayesianMLP, noise_rho: Tensor, x_train: np.ndarray, y_train: np.ndarray,
          args) -> list:
    """Adam on the minibatch ELBO; returns the ELBO per training point, averaged over each epoch."""
    optimizer = Adam(model.parameters() + [noise_rho], lr=args.lr)
    order_rng = np.random.default_rng([args.seed, 2])
    weight_rng = np.random.default_rng([args.seed, 3])
    n_train = len(x_train)
    every = max(1, args.epochs // 10)
    curve = []
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        order = order_rng.permutation(n_train)
        losses = []
        for first in range(0, n_train, args.batch_size):
            batch = order[first:first + args.batch_size]
            optimizer.zero_grad()
            loss, kl = negative_elbo_per_point(model, noise_rho, x_train[batch], y_train[batch],
                                               n_train, weight_rng)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        curve.append(-float(np.mean(losses)))
        if epoch == 1 or epoch % every == 0 or epoch == args.epochs:
            common.progress(f"epoch {epoch:5d}/{args.epochs}  ELBO per point {curve[-1]:8.3f}  "
                            f"KL {kl.item():8.1f}  noise s {noise_scale(noise_rho):.3f}  "
                            f"{time.perf_counter() - start:5.1f}s")
    return curve


def noise_scale(noise_rho: Tensor) -> float:
    return float(noise_rho.softplus().data[0])


# ---------------------------------------------------------------------------------------------
# The predictive distribution, by Monte Carlo over weight samples
def function_samples(model: BayesianMLP, x: np.ndarray, samples: int,
                     rng: np.random.Generator) -> np.ndarray:
    """f_{w_s}(x) for s = 1..samples, each with its own weight draw: shape (samples, len(x))."""
    with no_grad():
        return np.stack([model(x, rng=rng).data[:, 0] for _ in range(samples)])


def predictive_log_likelihood(f: np.ndarray, y: np.ndarray, noise: float) -> float:
    """Mean over points of log (1/S) sum_s N(y | f_s(x), noise^2)  (f of shape (S, n))."""
    with no_grad():
        log_densities = D.Normal(Tensor(f), noise).log_prob(y[:, 0])  # (S, n)
        per_point = log_densities.logsumexp(axis=0) - math.log(len(f))
    return float(per_point.data.mean())


def gaussian_baseline_log_likelihood(y_train: np.ndarray, y_test: np.ndarray) -> float:
    """Test log-likelihood per point of N(mean, variance) fitted to the training targets: a
    model that ignores x."""
    return float(D.Normal(y_train.mean(), y_train.std()).log_prob(y_test).data.mean())


def predictive_std(f: np.ndarray, noise: float) -> np.ndarray:
    """sqrt(Var_w[f_w(x)] + s^2): the spread of the function (epistemic) plus the noise."""
    return np.sqrt(f.var(axis=0) + noise ** 2)


def uncertainty_by_region(x_grid: np.ndarray, f: np.ndarray, noise: float) -> dict:
    """Predictive and function (epistemic) std averaged inside [0, 0.5] and outside it."""
    inside = (x_grid >= TRAIN_RANGE[0]) & (x_grid <= TRAIN_RANGE[1])
    total, epistemic = predictive_std(f, noise), f.std(axis=0)
    return {
        "std_inside": float(total[inside].mean()),
        "std_outside": float(total[~inside].mean()),
        "std_ratio_outside_inside": float(total[~inside].mean() / total[inside].mean()),
        "std_left": float(total[x_grid < TRAIN_RANGE[0]].mean()),
        "std_right": float(total[x_grid > TRAIN_RANGE[1]].mean()),
        "epistemic_std_inside": float(epistemic[inside].mean()),
        "epistemic_std_outside": float(epistemic[~inside].mean()),
    }


# ---------------------------------------------------------------------------------------------
# Output
def draw_figure(plt, x_train, y_train, x_grid, f, noise, curve):
    """Left: data, predictive mean, +-2 std band and a few sampled networks. Right: the predictive
    std against x. Below: the ELBO during training."""
    mean, std = f.mean(axis=0), predictive_std(f, noise)
    figure = plt.figure(figsize=(11, 6.2))
    grid = figure.add_gridspec(2, 2, height_ratios=[2.2, 1])

    ax = figure.add_subplot(grid[0, 0])
    ax.axvspan(*TRAIN_RANGE, color="0.92", label="training range")
    ax.fill_between(x_grid, mean - 2 * std, mean + 2 * std, color="tab:blue", alpha=0.25,
                    label="predictive mean +- 2 std")
    for sample in f[:5]:
        ax.plot(x_grid, sample, color="tab:blue", lw=0.6, alpha=0.6)
    ax.plot(x_grid, mean, color="tab:blue", lw=2)
    ax.plot([], [], color="tab:blue", lw=0.6, label="networks drawn from q(w)")
    ax.scatter(x_train[:, 0], y_train[:, 0], s=6, color="black", label="training data", zorder=3)
    ax.set_xlim(*PLOT_RANGE)
    ax.set_ylim(-1.5, 2.5)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title("Bayes by Backprop: w = mu + softplus(rho) * eps")
    ax.legend(loc="upper left", fontsize=8)

    ax = figure.add_subplot(grid[0, 1])
    ax.axvspan(*TRAIN_RANGE, color="0.92")
    ax.plot(x_grid, std, color="tab:red", label="predictive std")
    ax.plot(x_grid, f.std(axis=0), color="tab:orange", ls="--", label="std of f_w(x) (weights only)")
    ax.axhline(noise, color="0.4", lw=0.8, ls=":", label=f"learned noise s = {noise:.3f}")
    ax.set_xlim(*PLOT_RANGE)
    ax.set_xlabel("x")
    ax.set_title("uncertainty grows away from the training data")
    ax.legend(loc="upper center", fontsize=8)

    ax = figure.add_subplot(grid[1, :])
    ax.plot(np.arange(1, len(curve) + 1), curve, color="tab:green")
    ax.set_ylim(min(curve[len(curve) // 10:]), max(curve) + 0.1)  # the start is far below (KL)
    ax.set_xlabel("epoch")
    ax.set_ylabel("train ELBO per point")
    figure.tight_layout()
    return figure


# ---------------------------------------------------------------------------------------------
def parse_args(argv=None):
    parser = common.demo_arguments(__doc__)
    parser.add_argument("--epochs", type=int, default=1500)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--n-train", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--prior-sigma", type=float, default=1.0)
    parser.add_argument("--samples", type=int, default=500, help="weight samples for the predictive")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.samples = 150, 200
    for name in ("epochs", "hidden", "n_train", "batch_size", "samples"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer")
    if not (args.lr > 0 and args.prior_sigma > 0):
        parser.error("--lr and --prior-sigma must be positive")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    data_rng = np.random.default_rng([args.seed, 0])
    x_train, y_train, x_test, y_test = make_data(args.n_train, 500, data_rng)
    model, noise_rho = build_model(args)
    n_weights = sum(p.size for p in model.parameters()) // 2
    print(f"{args.n_train} training and {len(x_test)} test points on [0, 0.5]; Bayesian MLP "
          f"1-{args.hidden}-{args.hidden}-1 (ReLU, {n_weights} Gaussian weights), prior N(0, "
          f"{args.prior_sigma}^2), Adam lr {args.lr}, batch {args.batch_size}, {args.epochs} epochs, "
          f"seed {args.seed}")

    curve = train(model, noise_rho, x_train, y_train, args)

    noise = noise_scale(noise_rho)
    eval_rng = np.random.default_rng([args.seed, 4])
    x_grid = np.linspace(*PLOT_RANGE, 341)
    f_test = function_samples(model, x_test, args.samples, eval_rng)
    f_grid = function_samples(model, x_grid[:, None], args.samples, eval_rng)
    metrics = {
        "test_log_likelihood": predictive_log_likelihood(f_test, y_test, noise),
        "baseline_test_log_likelihood": gaussian_baseline_log_likelihood(y_train, y_test),
        "noise_scale": noise,
        "kl": float(model.kl().item()),
        "final_train_elbo_per_point": curve[-1],
        **uncertainty_by_region(x_grid, f_grid, noise),
        "config": {"epochs": args.epochs, "hidden": args.hidden, "n_train": args.n_train,
                   "batch_size": args.batch_size, "lr": args.lr, "prior_sigma": args.prior_sigma,
                   "samples": args.samples, "seed": args.seed},
    }

    common.print_table(["quantity", "value"], [
        ["test log-likelihood per point, Bayes by Backprop", metrics["test_log_likelihood"]],
        ["test log-likelihood per point, Gaussian fit to train y",
         metrics["baseline_test_log_likelihood"]],
        ["learned noise scale s", metrics["noise_scale"]],
        ["predictive std inside [0, 0.5]", metrics["std_inside"]],
        ["predictive std on [-0.5, 0)", metrics["std_left"]],
        ["predictive std on (0.5, 1.2]", metrics["std_right"]],
        ["predictive std outside / inside", metrics["std_ratio_outside_inside"]],
        ["std of f_w(x) inside / outside (weights only)",
         f"{metrics['epistemic_std_inside']:.3g} / {metrics['epistemic_std_outside']:.3g}"],
    ])
    common.save_figure(lambda plt: draw_figure(plt, x_train, y_train, x_grid, f_grid, noise, curve),
                       args.out, "bayes_by_backprop.png")
    common.write_metrics(args.metrics_json, metrics)
    return metrics


if __name__ == "__main__":
    main()
