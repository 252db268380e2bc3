"""A denoising diffusion model (DDPM) on 2-D data: the forward process is the reparameterization.

Denoising diffusion probabilistic models (Ho, Jain & Abbeel, 2020, "Denoising Diffusion
Probabilistic Models", NeurIPS) destroy data step by step with Gaussian noise and learn to undo
it. With a noise schedule beta_1..beta_T, alpha_t = 1 - beta_t and abar_t = alpha_1 ... alpha_t,
the noised point at step t has a closed form,

    q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I),

and it is drawn exactly as the reparameterization trick draws z = mu + sigma * eps:

    x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps,        eps ~ N(0, I).

Because x_t is an ordinary function of parameter-free noise, the noise itself becomes the
regression target: a network eps_theta(x_t, t) is trained to say which eps produced x_t,

    L(theta) = E |eps - eps_theta(sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, t)|^2,

the expectation over data x_0, t uniform on 1..T and eps ~ N(0, I) (Ho et al.'s "simple"
loss), minimized with Adam, every gradient from the engine's backward pass. Generation runs the
chain backwards from pure noise x_T ~ N(0, I) by ancestral sampling, each step again a mean plus
a scale times fresh noise,

    x_{t-1} = 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - abar_t) eps_theta(x_t, t)) + sigma_t z,

with z ~ N(0, I), sigma_t^2 = beta_t (one of Ho et al.'s two choices), and no noise at the last
step (t = 1).

The data are two interleaved half circles ("two moons", made here with NumPy and standardized);
the network is an MLP on (x_t, sinusoidal features of t). The default schedule is linear, beta
from 1e-4 to 0.02 rescaled by 1000 / T as in Nichol & Dhariwal's code for short chains; the
cosine schedule of Nichol & Dhariwal (2021, "Improved Denoising Diffusion Probabilistic
Models", ICML) is an option.

Sample quality is the energy distance (tinygrad_reparam.metrics.energy_distance, Szekely &
Rizzo 2013), 2 E|X - Y| - E|X - X'| - E|Y - Y'|, between the generated points and a fresh draw
of two moons, next to the same number for plain Gaussian noise (where sampling starts: what no
learning gives) and for a second fresh draw of two moons (the noise floor: what perfect
learning gives at this sample size; with n = 3000 points it varies by about 6e-4 from one
pair of draws to the next, around zero, since the estimate is unbiased).

    python demos/diffusion_2d.py                   # T = 100, 8000 Adam steps (under a minute)
    python demos/diffusion_2d.py --quick           # a few seconds
    python demos/diffusion_2d.py --schedule cosine --steps 50 --seed 1 --metrics-json m.json
"""
from __future__ import annotations

import common  # first: pins BLAS to one thread, finds the package from a checkout

import time

import numpy as np

from tinygrad_reparam import Tensor, no_grad
from tinygrad_reparam.metrics import energy_distance
from tinygrad_reparam.nn import MLP, Module
from tinygrad_reparam.optim import Adam

TIME_FREQUENCIES = 8  # the network sees t through sin and cos of this many frequencies


# ---------------------------------------------------------------------------------------------
# Data: two moons, in NumPy
def two_moons(n: int, rng: np.random.Generator, noise: float = 0.1) -> np.ndarray:
    """n points (shape (n, 2)) on two interleaved half circles, plus Gaussian jitter.

    The upper moon is (cos a, sin a) and the lower one (1 - cos a, 0.5 - sin a), with the angle
    a uniform on [0, pi]; each point lands on either moon with probability 1/2.
    """
    angle = rng.uniform(0.0, np.pi, size=n)
    lower = rng.random(n) < 0.5
    x = np.where(lower, 1.0 - np.cos(angle), np.cos(angle))
    y = np.where(lower, 0.5 - np.sin(angle), np.sin(angle))
    return np.stack([x, y], axis=1) + noise * rng.standard_normal((n, 2))


def standardize(points: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Shift and scale each coordinate: with the training set's mean and std, zero mean and
    unit variance, the scale of the noise the chain ends in."""
    return (points - mean) / std


# ---------------------------------------------------------------------------------------------
# The forward process: noise schedule and q(x_t | x_0)
class NoiseSchedule:
    """beta_t, alpha_t = 1 - beta_t and abar_t = alpha_1 ... alpha_t for t = 0, 1, ..., T.

    The arrays have T + 1 entries so that index t is step t; entry 0 is "no noise yet"
    (beta_0 = 0, abar_0 = 1).
    """

    def __init__(self, betas: np.ndarray):
        self.steps = len(betas)
        self.betas = np.concatenate([[0.0], betas])
        self.alphas = 1.0 - self.betas
        self.alpha_bars = np.cumprod(self.alphas)


def linear_schedule(steps: int) -> NoiseSchedule:
    """Ho et al.'s betas, 1e-4 to 0.02 over 1000 steps, rescaled by 1000 / steps so that a
    shorter chain still ends in (almost) pure noise (Nichol & Dhariwal's code does the same).
    The last beta is then 20 / steps, so the chain needs more than 20 steps."""
    if steps <= 20:
        raise ValueError(f"linear_schedule: the rescaled linear schedule ends at beta_T = 20 / T, "
                         f"which must be below 1, so T must be above 20 (got {steps}); use the "
                         f"cosine schedule for shorter chains")
    scale = 1000.0 / steps
    return NoiseSchedule(np.linspace(scale * 1e-4, scale * 0.02, steps))


def cosine_schedule(steps: int, offset: float = 0.008) -> NoiseSchedule:
    """Nichol & Dhariwal (2021): abar(t) = f(t) / f(0), f(t) = cos^2((t/T + s) / (1 + s) pi/2);
    beta_t = 1 - abar_t / abar_{t-1}, clipped at 0.999 so the last step is not a division by 0."""
    t = np.arange(steps + 1) / steps
    f = np.cos((t + offset) / (1.0 + offset) * np.pi / 2) ** 2
    alpha_bars = f / f[0]
    return NoiseSchedule(np.minimum(1.0 - alpha_bars[1:] / alpha_bars[:-1], 0.999))


def q_sample(x0: np.ndarray, t: np.ndarray, eps: np.ndarray, schedule: NoiseSchedule) -> np.ndarray:
    """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps: a draw from q(x_t | x_0), reparameterized.

    ``t`` holds one step per row of ``x0``; ``eps`` is standard normal noise of x0's shape.
    With eps = rng.standard_normal(x0.shape) this is, number for number,
    ``D.Normal(sqrt(abar_t) x_0, sqrt(1 - abar_t)).rsample(rng=rng)``; it is written out here
    because the noise eps itself is what the network learns to predict.
    """
    abar = schedule.alpha_bars[t][:, None]
    return np.sqrt(abar) * x0 + np.sqrt(1.0 - abar) * eps


# ---------------------------------------------------------------------------------------------
# The reverse process: a network that predicts the noise
def time_features(t: np.ndarray, steps: int, count: int = TIME_FREQUENCIES) -> np.ndarray:
    """Sinusoidal features of the step t (Vaswani et al. 2017, as in Ho et al.): sin and cos of
    t * w_j for ``count`` frequencies w_j spaced geometrically from 1 down to 1 / steps, so that
    both neighbouring steps and the whole chain are told apart. Shape (len(t), 2 * count)."""
    frequencies = steps ** (-np.arange(count) / (count - 1))
    angles = t[:, None] * frequencies[None, :]
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


class NoisePredictor(Module):
    """eps_theta(x_t, t): an MLP from the point and the features of its step to a guess of
    the 2-D noise that was mixed into the point."""

    def __init__(self, steps: int, hidden: int, layers: int, rng: np.random.Generator):
        self.steps = steps
        self.sizes = [2 + 2 * TIME_FREQUENCIES] + [hidden] * layers + [2]
        self.net = MLP(self.sizes, activation="relu", rng=rng)

    def forward(self, x_t: np.ndarray, t: np.ndarray) -> Tensor:
        return self.net(np.concatenate([x_t, time_features(t, self.steps)], axis=1))


def diffusion_loss(model: NoisePredictor, x0: np.ndarray, schedule: NoiseSchedule,
                   rng: np.random.Generator) -> Tensor:
    """Ho et al.'s simple loss on one batch: t ~ U{1..T}, eps ~ N(0, I), x_t = q_sample(...),
    mean squared error between eps and the network's guess of it."""
    t = rng.integers(1, schedule.steps + 1, size=len(x0))
    eps = rng.standard_normal(x0.shape)
    x_t = q_sample(x0, t, eps, schedule)
    return ((model(x_t, t) - eps) ** 2).mean()


def learning_rate_factor(step: int, total: int) -> float:
    """The learning rate's multiplier: a cosine from 1 down to 0 over the run (Loshchilov &
    Hutter, 2017), big steps first, then small ones that let the weights settle."""
    return 0.5 * (1.0 + np.cos(np.pi * (step - 1) / total))


def train(model: NoisePredictor, data: np.ndarray, schedule: NoiseSchedule, args) -> tuple:
    """Adam on minibatches of the training set; returns (loss per step, seconds)."""
    optimizer = Adam(model.parameters(), lr=args.lr)
    rng = np.random.default_rng([args.seed, 2])
    losses = []
    start = time.perf_counter()
    every = max(1, args.train_steps // 10)
    for step in range(1, args.train_steps + 1):
        batch = data[rng.integers(0, len(data), size=args.batch_size)]
        optimizer.lr = args.lr * learning_rate_factor(step, args.train_steps)
        optimizer.zero_grad()
        loss = diffusion_loss(model, batch, schedule, rng)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if step % every == 0 or step == args.train_steps:
            recent = np.mean(losses[-every:])
            common.progress(f"step {step:5d}/{args.train_steps}  loss (mean of last {every}) "
                            f"{recent:.4f}  {time.perf_counter() - start:5.1f}s")
    return losses, time.perf_counter() - start


@no_grad()
def sample(model: NoisePredictor, n: int, schedule: NoiseSchedule, rng: np.random.Generator,
           keep: tuple = ()) -> tuple:
    """Ancestral sampling from x_T ~ N(0, I) down to x_0.

    Returns (x_0, {t: x_t for t in keep}), the snapshots for the figure.
    """
    x = rng.standard_normal((n, 2))
    snapshots = {schedule.steps: x} if schedule.steps in keep else {}
    for t in range(schedule.steps, 0, -1):
        beta, alpha, abar = schedule.betas[t], schedule.alphas[t], schedule.alpha_bars[t]
        eps_guess = model(x, np.full(n, t)).data
        mean = (x - beta / np.sqrt(1.0 - abar) * eps_guess) / np.sqrt(alpha)
        noise = rng.standard_normal((n, 2)) if t > 1 else 0.0
        x = mean + np.sqrt(beta) * noise
        if t - 1 in keep:
            snapshots[t - 1] = x
    return x, snapshots


# ---------------------------------------------------------------------------------------------
# Output
def draw_figure(plt, data: np.ndarray, snapshots: dict, schedule: NoiseSchedule, losses: list,
                distances: dict, seed: int):
    """Top row: the forward process q(x_t | x_0) at a few t, starting from the data; bottom
    row: the learned reverse process at the same t, ending (t = 0) in the samples. Right: the
    training loss and the energy distances."""
    shown = sorted(snapshots)
    figure, axes = plt.subplots(2, len(shown) + 1, figsize=(2.2 * (len(shown) + 1), 4.6))
    x0 = data[: len(snapshots[0])]
    noise = np.random.default_rng([seed, 5]).standard_normal(x0.shape)
    for column, t in enumerate(shown):
        forward = q_sample(x0, np.full(len(x0), t), noise, schedule)
        for ax, points, color in ((axes[0, column], forward, "tab:blue"),
                                  (axes[1, column], snapshots[t], "tab:orange")):
            ax.scatter(points[:, 0], points[:, 1], s=1, alpha=0.4, color=color, rasterized=True)
            ax.set_xlim(-3.2, 3.2)
            ax.set_ylim(-3.2, 3.2)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_aspect("equal")
        axes[0, column].set_title(f"t = {t}" + ("  (data)" if t == 0 else ""), fontsize=9)
        axes[1, column].set_title(f"t = {t}" + ("  (samples)" if t == 0 else ""), fontsize=9)
    axes[0, 0].set_ylabel(r"forward $q(x_t \mid x_0)$", fontsize=9)
    axes[1, 0].set_ylabel(r"reverse $p_\theta(x_t \mid x_{t+1})$", fontsize=9)

    ax = axes[0, -1]
    window = max(1, len(losses) // 50)
    smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
    ax.plot(np.arange(window, len(losses) + 1), smooth)
    ax.set_title("training loss", fontsize=9)
    ax.set_xlabel("Adam step", fontsize=8)
    ax.tick_params(labelsize=7)

    ax = axes[1, -1]
    labels = {"model": "DDPM", "gaussian": "N(0, I)", "fresh_data": "fresh\ndata"}
    values = [distances[name] for name in labels]
    ax.bar(range(3), values, color=["tab:orange", "gray", "tab:blue"])
    for position, value in enumerate(values):
        ax.text(position, max(value, 0.0), f"{value:.4f}", ha="center", va="bottom", fontsize=7)
    ax.axhline(0.0, color="black", linewidth=0.5)
    ax.set_xticks(range(3))
    ax.set_xticklabels(list(labels.values()), fontsize=7)
    ax.set_ylim(top=1.25 * max(values))
    ax.set_title("energy distance to\nfresh two moons", fontsize=9)
    ax.tick_params(labelsize=7)
    figure.tight_layout()
    return figure


# ---------------------------------------------------------------------------------------------
def parse_args(argv=None):
    parser = common.demo_arguments(__doc__)
    parser.add_argument("--steps", type=int, default=100, help="diffusion steps T")
    parser.add_argument("--schedule", default="linear", choices=["linear", "cosine"])
    parser.add_argument("--train-steps", type=int, default=8000, help="Adam steps")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=3, help="hidden layers of the MLP")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--train-size", type=int, default=4000)
    parser.add_argument("--eval-size", type=int, default=3000, help="points per energy distance")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.train_steps, args.eval_size = 50, 1000, 1000
    if args.schedule == "linear" and args.steps <= 20:
        parser.error("--steps must be above 20 for the linear schedule (its last beta is 20 / T); "
                     "use --schedule cosine for shorter chains")
    for name in ("steps", "train_steps", "batch_size", "hidden", "layers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer")
    for name in ("train_size", "eval_size"):
        if getattr(args, name) < 2:
            parser.error(f"--{name.replace('_', '-')} must be at least 2")
    return args


def sample_quality(generated: np.ndarray, mean: np.ndarray, std: np.ndarray, seed: int) -> dict:
    """Energy distances to one fresh draw of two moons: from the generated points, from plain
    N(0, I) noise (no learning), and from a second fresh draw (the noise floor)."""
    n = len(generated)
    rng = np.random.default_rng([seed, 4])
    fresh = standardize(two_moons(n, rng), mean, std)
    second_fresh = standardize(two_moons(n, rng), mean, std)
    gaussian = rng.standard_normal((n, 2))
    return {"model": energy_distance(generated, fresh),
            "gaussian": energy_distance(gaussian, fresh),
            "fresh_data": energy_distance(second_fresh, fresh)}


def main(argv=None) -> dict:
    args = parse_args(argv)
    raw = two_moons(args.train_size, np.random.default_rng([args.seed, 0]))
    mean, std = raw.mean(axis=0), raw.std(axis=0)
    data = standardize(raw, mean, std)
    schedule = {"linear": linear_schedule, "cosine": cosine_schedule}[args.schedule](args.steps)
    model = NoisePredictor(args.steps, args.hidden, args.layers,
                           rng=np.random.default_rng([args.seed, 1]))
    print(f"two moons: {args.train_size} standardized points; DDPM with T = {args.steps} "
          f"({args.schedule} schedule, abar_T = {schedule.alpha_bars[-1]:.1e}); eps-MLP "
          f"{'-'.join(map(str, model.sizes))} relu; Adam lr {args.lr} (cosine decay), batch "
          f"{args.batch_size}, {args.train_steps} steps, seed {args.seed}")

    losses, seconds = train(model, data, schedule, args)
    tenth = max(1, len(losses) // 10)
    first_loss, final_loss = float(np.mean(losses[:tenth])), float(np.mean(losses[-tenth:]))

    keep = tuple(sorted({0, args.steps // 10, args.steps // 4, args.steps // 2, args.steps}))
    sample_rng = np.random.default_rng([args.seed, 3])
    generated, snapshots = sample(model, args.eval_size, schedule, sample_rng, keep)
    distances = sample_quality(generated, mean, std, args.seed)

    common.print_table(
        ["samples, each against fresh two moons", f"energy distance (n = {args.eval_size})"],
        [("DDPM samples", distances["model"]),
         ("N(0, I) noise (no learning)", distances["gaussian"]),
         ("second fresh two-moons draw (noise floor)", distances["fresh_data"])])
    print(f"\ntraining loss (mean over a tenth of the run): {first_loss:.4f} first, "
          f"{final_loss:.4f} last; training took {seconds:.1f}s")

    common.save_figure(
        lambda plt: draw_figure(plt, data, snapshots, schedule, losses, distances, args.seed),
        args.out, "diffusion_2d.png")
    metrics = {"energy_distance_model": distances["model"],
               "energy_distance_gaussian": distances["gaussian"],
               "energy_distance_fresh_data": distances["fresh_data"],
               "first_loss": first_loss,
               "final_loss": final_loss,
               "train_seconds": seconds,
               "config": {"steps": args.steps, "schedule": args.schedule,
                          "train_steps": args.train_steps, "batch_size": args.batch_size,
                          "hidden": args.hidden, "layers": args.layers, "lr": args.lr,
                          "train_size": args.train_size, "eval_size": args.eval_size,
                          "seed": args.seed}}
    common.write_metrics(args.metrics_json, metrics)
    return metrics


if __name__ == "__main__":
    main()
