"""A VAE with categorical latents: Gumbel-Softmax (relaxed, straight-through) against REINFORCE.

The latent code of each image is 8 independent categorical variables with 10 classes each,
z = (z_1, ..., z_8), fed to the decoder as one 80-dimensional vector of concatenated one-hots.
Prior p(z) uniform, posterior q(z | x) = prod_j Categorical(softmax(l_j(x))) from an MLP
encoder, Bernoulli decoder on the binarized digits. Training maximizes

    ELBO(x) = E_q[log p(x | z)] - KL(q(z | x) || p(z)),   KL = sum_j (log 10 - H(q_j)),

the KL analytic. (MLPs 64-200-80 and 80-200-64 with tanh, Adam lr 3e-3, batches of 100.)
A categorical draw has no reparameterization z = g(l, eps) that is
differentiable in the logits l, so the gradient of the first term is estimated three ways:

- relaxed (Gumbel-Softmax / Concrete; Jang, Gu & Poole 2017; Maddison, Mnih & Teh 2017):
  the Gumbel-max trick z = one_hot(argmax_i (l_i + g_i)), g_i ~ Gumbel(0, 1), with the argmax
  replaced by a softmax at temperature tau,

      y = softmax((l + g) / tau),

  an rsample: the decoder sees the soft y during training and the gradient flows through it.
  Biased (the decoder is trained on points inside the simplex, not on its corners), low variance;
  its training objective (with the categorical KL, as in Jang et al.) is not the ELBO of the
  discrete model, nor a bound on its likelihood.
- straight_through (hard=True): the forward pass uses the exact one-hot of argmax(y), the backward
  pass the gradient of the soft y: y_hard = (y - stop_gradient(y)) + one_hot(argmax y).
- score_loo: z drawn from Categorical(l) with ``sample()`` (the graph is cut), the encoder's
  gradient the score function with a leave-one-out baseline over S draws per image,

      (1/S) sum_s (f(z_s) - b_s) grad log q(z_s | x),   b_s = mean of f(z_t), t != s,
      f(z) = log p(x | z),

  unbiased for the discrete model (Kool, van Hoof & Welling 2019, "Buy 4 REINFORCE samples").

Equal cost: every method draws S = 4 latent samples per image per step (the Gumbel runs average
their objective over the 4 relaxed draws), so each step costs the same 4 decoder evaluations per
image, and all three start from the same weights and see the same batches, for the same number
of steps. The temperature is annealed per step t as

    tau(t) = max(0.5, exp(-r t)),   r = 1e-3 by default: tau reaches 0.5 at step 693 (of 2000).

Evaluation is the same for every method: the true ELBO of the discrete model, with hard samples
z ~ q(z | x) (what a relaxed-trained decoder never saw during training), the reconstruction term
averaged over 100 draws per image and the KL analytic, on the 360 held-out digits. The data are
those of demos/vae.py: the bundled 8x8 digits binarized at >= 8 of 16, first 1437 images of
np.random.default_rng(0).permutation(1797) for training, the last 360 for testing.

What to look for (full default, seeds 0, 1, 2): straight-through and REINFORCE with 4 samples and
the leave-one-out baseline end level (test ELBO -18.0 to -18.5 nats); the relaxed run ends about
one nat behind (-18.8 to -19.1) although its own training objective reads -14.8: its decoder has
learned to read soft codes. In the figure, dashed (training objective, training batches) sits about
one nat above solid (test ELBO) for the two discrete runs, which is only the train/test gap; for the
relaxed run it sits four nats above. With only 8 variables and 4 draws per image, the unbiased
score function estimator does as well as the straight-through one and better than the relaxation.

    python demos/gumbel_softmax_vae.py               # 2000 steps per method (under a minute)
    python demos/gumbel_softmax_vae.py --quick       # 200 steps, seconds
    python demos/gumbel_softmax_vae.py --steps 6000 --anneal-rate 5e-4 --metrics-json m.json
"""
from __future__ import annotations

import common  # first: pins BLAS to one thread, finds the package from a checkout

import math
import time

import numpy as np

import tinygrad_reparam.distributions as D
from tinygrad_reparam import Tensor, no_grad
from tinygrad_reparam.data import load_binarized_digits
from tinygrad_reparam.estimators import SCORE_LOO, leave_one_out, score_function_surrogate
from tinygrad_reparam.nn import MLP, Module
from tinygrad_reparam.optim import Adam
from tinygrad_reparam.vae import bernoulli_log_likelihood

METHODS = ("relaxed", "straight_through", SCORE_LOO)
MIN_TEMPERATURE = 0.5


# ---------------------------------------------------------------------------------------------
# The model
class CategoricalVAE(Module):
    """x -> hidden -> (variables x classes) logits;  flattened one-hots -> hidden -> pixel logits."""

    def __init__(self, x_dim: int, hidden: int, variables: int, classes: int, rng: np.random.Generator):
        self.variables, self.classes = variables, classes
        self.encoder = MLP([x_dim, hidden, variables * classes], activation="tanh", rng=rng)
        self.decoder = MLP([variables * classes, hidden, x_dim], activation="tanh", rng=rng)

    def posterior_logits(self, x: np.ndarray) -> Tensor:
        """Logits of q(z | x), shape (batch, variables, classes)."""
        return self.encoder(Tensor(x)).reshape(len(x), self.variables, self.classes)

    def decode(self, one_hots) -> Tensor:
        """Bernoulli logits of p(x | z) from one-hots (or relaxed one-hots) of shape
        (..., variables, classes): the variables are concatenated into one input vector."""
        flat = one_hots.reshape(one_hots.shape[:-2] + (self.variables * self.classes,))
        return self.decoder(flat)


def kl_to_uniform_prior(q: D.Categorical) -> Tensor:
    """KL(q(z | x) || uniform), summed over the latent variables: one number per image."""
    uniform = D.Categorical(logits=np.zeros(q.num_categories))
    return D.kl_divergence(q, uniform).sum(axis=-1)


def one_hot(indices: np.ndarray, classes: int) -> Tensor:
    """Class indices (stored as floats) -> one-hot vectors on a new last axis; a constant."""
    return Tensor((np.arange(classes) == indices[..., None]).astype(np.float64))


def temperature(step: int, rate: float) -> float:
    """tau(t) = max(0.5, exp(-r t)): from 1 at the start, annealed down to 0.5 and held there."""
    return max(MIN_TEMPERATURE, math.exp(-rate * step))


# ---------------------------------------------------------------------------------------------
# The three training objectives (each a batch-mean Tensor to maximize)
def gumbel_softmax_elbo(model: CategoricalVAE, x: np.ndarray, tau: float, hard: bool,
                        samples: int, rng: np.random.Generator) -> Tensor:
    """The ELBO with y = softmax((l + g) / tau) in place of z: a pathwise gradient through y.
    hard=True puts the exact one-hot in the forward pass (straight-through)."""
    logits = model.posterior_logits(x)
    relaxed = D.RelaxedOneHotCategorical(tau, logits=logits, hard=hard)
    y = relaxed.rsample((samples,), rng=rng)                  # (samples, batch, variables, classes)
    reconstruction = bernoulli_log_likelihood(model.decode(y), x)   # (samples, batch)
    kl = kl_to_uniform_prior(D.Categorical(logits=logits))
    return reconstruction.mean() - kl.mean()


def score_loo_elbo(model: CategoricalVAE, x: np.ndarray, samples: int,
                       rng: np.random.Generator) -> Tensor:
    """The discrete ELBO; the encoder's gradient is REINFORCE with a leave-one-out baseline."""
    logits = model.posterior_logits(x)
    q = D.Categorical(logits=logits)
    z = q.sample((samples,), rng=rng)                         # (samples, batch, variables): the cut
    reconstruction = bernoulli_log_likelihood(model.decode(one_hot(z.data, model.classes)), x)
    log_q = q.log_prob(z).sum(axis=-1)                        # log q(z_s | x), (samples, batch)
    baseline = leave_one_out(reconstruction.data, axis=0)     # mean of the other draws of the image
    score = score_function_surrogate(log_q, reconstruction, baseline)
    # reconstruction.mean(): the value and the decoder's gradient;
    # score - score.detach(): zero in value, the encoder's REINFORCE gradient.
    return reconstruction.mean() + (score - score.detach()) - kl_to_uniform_prior(q).mean()


def training_objective(method: str, model: CategoricalVAE, x: np.ndarray, tau: float,
                       samples: int, rng: np.random.Generator) -> Tensor:
    """The objective of ``method`` on the batch x: its value to print, its gradient to follow."""
    if method == "relaxed":
        return gumbel_softmax_elbo(model, x, tau, hard=False, samples=samples, rng=rng)
    if method == "straight_through":
        return gumbel_softmax_elbo(model, x, tau, hard=True, samples=samples, rng=rng)
    return score_loo_elbo(model, x, samples, rng)


# ---------------------------------------------------------------------------------------------
# Evaluation: the same for every method
@no_grad()
def discrete_elbo(model: CategoricalVAE, x: np.ndarray, draws: int, rng: np.random.Generator) -> float:
    """Mean over images of the true ELBO of the discrete model: hard z ~ q(z | x), the
    reconstruction term averaged over ``draws`` draws per image, the KL analytic."""
    q = D.Categorical(logits=model.posterior_logits(x))
    z = q.sample((draws,), rng=rng)
    reconstruction = bernoulli_log_likelihood(model.decode(one_hot(z.data, model.classes)), x)
    return float((reconstruction.data.mean(axis=0) - kl_to_uniform_prior(q).data).mean())


@no_grad()
def reconstruct(model: CategoricalVAE, x: np.ndarray) -> np.ndarray:
    """Pixel probabilities decoded from the most probable class of every latent variable."""
    modes = model.posterior_logits(x).data.argmax(axis=-1)
    return model.decode(one_hot(modes, model.classes)).sigmoid().data


# ---------------------------------------------------------------------------------------------
# Training
def new_model(args, x_dim: int) -> CategoricalVAE:
    """The same initial weights for every method (seeded from --seed)."""
    return CategoricalVAE(x_dim, args.hidden, args.variables, args.classes,
                          rng=np.random.default_rng([args.seed, 0]))


def batches(x: np.ndarray, batch_size: int, rng: np.random.Generator):
    """Minibatches without end: a new permutation every epoch, the incomplete last batch dropped."""
    while True:
        order = rng.permutation(len(x))
        for first in range(0, len(order) - batch_size + 1, batch_size):
            yield x[order[first:first + batch_size]]


def train(method: str, x_train: np.ndarray, x_test: np.ndarray, args) -> dict:
    """Train one model for ``args.steps`` Adam steps; every method sees the same batches.

    Every ``args.eval_every`` steps, for the training curves: the test ELBO (the discrete one, with
    fewer draws than the final evaluation) and the mean training objective since the last point.
    ``train_seconds`` counts the training steps only, not these evaluations.
    """
    model = new_model(args, x_train.shape[1])
    optimizer = Adam(model.parameters(), lr=args.lr)
    batch_stream = batches(x_train, args.batch_size, np.random.default_rng([args.seed, 1]))
    noise_rng = np.random.default_rng([args.seed, 2])
    curve_rng = np.random.default_rng([args.seed, 3])
    curve_steps, curve_elbos, curve_objective, objective = [], [], [], []
    seconds = 0.0
    for step in range(1, args.steps + 1):
        tau = temperature(step - 1, args.anneal_rate)  # t = the number of steps already taken
        started = time.perf_counter()
        optimizer.zero_grad()
        elbo = training_objective(method, model, next(batch_stream), tau, args.samples, noise_rng)
        (-elbo).backward()
        optimizer.step()
        seconds += time.perf_counter() - started
        objective.append(elbo.item())

        if step % args.eval_every == 0 or step == args.steps:
            curve_steps.append(step)
            curve_elbos.append(discrete_elbo(model, x_test, args.curve_draws, curve_rng))
            curve_objective.append(float(np.mean(objective[-args.eval_every:])))
            if len(curve_steps) % max(1, args.curve_points // 4) == 0 or step == args.steps:
                common.progress(f"{method:>16}  step {step:5d}/{args.steps}  tau {tau:.3f}  train objective "
                                f"{curve_objective[-1]:8.3f}  test ELBO {curve_elbos[-1]:8.3f}  {seconds:5.1f}s")
    return {"model": model, "curve_steps": curve_steps, "curve_test_elbo": curve_elbos,
            "curve_train_objective": curve_objective, "train_seconds": seconds}


# ---------------------------------------------------------------------------------------------
# Output
def draw_figure(plt, runs: dict, x_test: np.ndarray, args):
    """Left: the test ELBO of the discrete model (solid) and the training objective (dashed)
    against the step, with the temperature schedule. Right: test digits and their reconstructions."""
    figure, (curves, pictures) = plt.subplots(1, 2, figsize=(11, 4.4), gridspec_kw={"width_ratios": [1.7, 1]})
    for (method, run), colour in zip(runs.items(), ("C0", "C1", "C2")):
        curves.plot(run["curve_steps"], run["curve_test_elbo"], color=colour, label=method)
        curves.plot(run["curve_steps"], run["curve_train_objective"], color=colour, linestyle="--", linewidth=1)
    curves.set_xlabel("training step (4 decoder evaluations per image, every method)")
    curves.set_ylabel("nats per image")
    curves.set_title("8 categorical latents x 10 classes: test ELBO of the discrete model (solid)\n"
                     "and each run's training objective on its batches (dashed)", fontsize=10)
    low = min(min(run["curve_test_elbo"]) for run in runs.values())
    curves.set_ylim(max(low, -30) - 0.5, None)
    curves.legend(loc="lower right")
    schedule = curves.twinx()
    steps = np.arange(args.steps + 1)
    schedule.plot(steps, [temperature(t, args.anneal_rate) for t in steps], color="grey", linestyle=":")
    schedule.set_ylim(0, 1.05)
    schedule.set_ylabel(f"temperature tau = max(0.5, exp(-{args.anneal_rate:g} t)), dotted", color="grey")

    side = int(round(np.sqrt(x_test.shape[1])))
    rows = [x_test[:10]] + [reconstruct(run["model"], x_test[:10]) for run in runs.values()]
    pictures.imshow(common.tile(np.concatenate(rows), len(rows), 10, side), cmap="gray_r", vmin=0, vmax=1)
    pictures.set_yticks([(side + 1) * row + side / 2 - 0.5 for row in range(len(rows))])
    pictures.set_yticklabels(["test digits"] + list(runs), fontsize=9)
    pictures.set_xticks([])
    pictures.set_title("reconstructions from the most probable code", fontsize=10)
    figure.tight_layout()
    return figure


# ---------------------------------------------------------------------------------------------
def parse_args(argv=None):
    parser = common.demo_arguments(__doc__)
    parser.add_argument("--steps", type=int, default=2000, help="Adam steps per method")
    parser.add_argument("--anneal-rate", type=float, default=1e-3, help="r in tau = max(0.5, exp(-r t))")
    parser.add_argument("--samples", type=int, default=4, help="latent draws per image per step (>= 2)")
    parser.add_argument("--variables", type=int, default=8)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--hidden", type=int, default=200)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--test-draws", type=int, default=100, help="draws per test image, final ELBO")
    args = parser.parse_args(argv)
    args.curve_points, args.curve_draws = 20, 10  # the training curves: 20 test ELBOs, 10 draws each
    if args.quick:  # seconds: 200 steps (tau only down to 0.82), 5 points on the curves
        args.steps, args.test_draws, args.curve_points = 200, 20, 5
    args.eval_every = max(1, args.steps // args.curve_points)
    if args.samples < 2:
        parser.error("--samples must be >= 2 (the leave-one-out baseline needs other draws)")
    for name in ("steps", "variables", "classes", "hidden", "batch_size", "test_draws"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    x_train, x_test, _ = load_binarized_digits()
    print(f"digits: {len(x_train)} training and {len(x_test)} test images; latent {args.variables} "
          f"categorical variables x {args.classes} classes; MLPs with {args.hidden} tanh units; Adam lr "
          f"{args.lr}, batch {args.batch_size}, {args.samples} draws per image, {args.steps} steps, "
          f"seed {args.seed}")

    test_rng = np.random.default_rng([args.seed, 4])
    untrained = discrete_elbo(new_model(args, x_train.shape[1]), x_test, args.test_draws, test_rng)
    runs, results = {}, {"untrained": {"test_elbo": untrained}}
    for method in METHODS:
        runs[method] = train(method, x_train, x_test, args)
        test_rng = np.random.default_rng([args.seed, 4])  # the same evaluation draws for each method
        results[method] = {
            "test_elbo": discrete_elbo(runs[method]["model"], x_test, args.test_draws, test_rng),
            "final_train_objective": runs[method]["curve_train_objective"][-1],
            "train_seconds": runs[method]["train_seconds"],
            "curve_steps": runs[method]["curve_steps"],
            "curve_test_elbo": runs[method]["curve_test_elbo"],
            "curve_train_objective": runs[method]["curve_train_objective"],
        }
    results["config"] = {"steps": args.steps, "anneal_rate": args.anneal_rate,
                         "final_temperature": temperature(args.steps - 1, args.anneal_rate),  # of the last step
                         "samples": args.samples, "variables": args.variables, "classes": args.classes,
                         "hidden": args.hidden, "lr": args.lr, "batch_size": args.batch_size,
                         "test_draws": args.test_draws, "seed": args.seed}

    rows = [[method, results[method]["test_elbo"], results[method]["final_train_objective"],
             results[method]["train_seconds"]] for method in METHODS]
    rows.append(["untrained", untrained, "", ""])
    common.print_table(["method", f"test ELBO ({args.steps} steps, nats)",
                        f"train objective (last {args.eval_every} steps)",
                        "train s"], rows)
    print(f"(test ELBO: hard z ~ q(z|x), {args.test_draws} draws per image, KL analytic; the relaxed "
          f"run's train objective is that of the relaxed model, decoder fed soft samples)")
    common.save_figure(lambda plt: draw_figure(plt, runs, x_test, args), args.out, "gumbel_softmax_vae.png")
    common.write_metrics(args.metrics_json, results)
    return results


if __name__ == "__main__":
    main()
