"""The whole training loop by hand: a tiny MLP fitted with nothing but Tensors and backward().

A 1-16-16-1 network with tanh hidden layers (float64) learns y = sin(3x) from 64 points.
Nothing is hidden in a library: the weights are leaf Tensors with requires_grad=True, the
forward pass is a few matrix products, ``loss.backward()`` fills each weight's ``.grad``, and an
Adam step updates the raw arrays. Gradients accumulate across backward calls (as in PyTorch), so
each step starts by resetting them with ``p.grad = None``.

The Adam step is written out here on purpose, although ``tinygrad_reparam.optim.Adam`` does the
same: it shows the update in plain sight (Kingma & Ba 2015, Algorithm 1), next to the loop that
calls it. The package's Adam (arranged for speed, with argument checks) takes the same steps, up
to rounding. The other demos use ``nn.MLP`` and ``optim.Adam``; this one shows what they do.

The loss is printed every tenth of the run so you can watch it fall. Late in training it can
jump up for a moment before falling again: Adam's step does not shrink by itself as the fit
improves. The script exits with a nonzero status if the final loss is not below a tenth of the
first one. The figure shows the loss curve and the fitted function against the data.

    python demos/tiny_mlp.py                 # 1000 steps, a few seconds
    python demos/tiny_mlp.py --quick         # 300 steps
    python demos/tiny_mlp.py --steps 3000 --seed 1 --metrics-json m.json --out DIR
"""
from __future__ import annotations

import common  # first: pins BLAS to one thread, finds the package from a checkout

import sys

import numpy as np

from tinygrad_reparam import Tensor, no_grad

LAYER_SIZES = (1, 16, 16, 1)
N_POINTS = 64


def make_data(rng: np.random.Generator, n: int = N_POINTS) -> tuple:
    """n points x uniform in [-1, 1] and targets y = sin(3x), both shaped (n, 1)."""
    x = rng.uniform(-1.0, 1.0, size=(n, 1))
    return x, np.sin(3.0 * x)


def init_params(rng: np.random.Generator, sizes=LAYER_SIZES) -> list:
    """One (weight, bias) pair per layer; weights scaled by 1/sqrt(fan_in) so tanh starts
    in its near-linear range."""
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        weight = rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in)
        params.append(Tensor(weight, requires_grad=True))
        params.append(Tensor(np.zeros(fan_out), requires_grad=True))
    return params


def forward(params: list, x) -> Tensor:
    """tanh after every layer but the last, which stays linear."""
    h = Tensor(x)
    n_layers = len(params) // 2
    for i in range(n_layers):
        weight, bias = params[2 * i], params[2 * i + 1]
        h = h @ weight + bias
        if i < n_layers - 1:
            h = h.tanh()
    return h


def mse(prediction: Tensor, target: np.ndarray) -> Tensor:
    return ((prediction - target) ** 2).mean()


def adam_init(params: list) -> dict:
    """Adam's state: running means of the gradient (m) and of its square (v), and the step."""
    return {"m": [np.zeros_like(p.data) for p in params],
            "v": [np.zeros_like(p.data) for p in params],
            "t": 0}


def adam_step(params: list, state: dict, lr: float = 0.01, beta1: float = 0.9,
              beta2: float = 0.999, eps: float = 1e-8) -> None:
    """One Adam update, written out on the arrays (Kingma & Ba, 2015, Algorithm 1)."""
    state["t"] += 1
    t = state["t"]
    with no_grad():  # updating parameters is not part of the model: record no graph
        for p, m, v in zip(params, state["m"], state["v"]):
            g = p.grad
            m[...] = beta1 * m + (1 - beta1) * g
            v[...] = beta2 * v + (1 - beta2) * g * g
            m_hat = m / (1 - beta1 ** t)
            v_hat = v / (1 - beta2 ** t)
            p.data = p.data - lr * m_hat / (np.sqrt(v_hat) + eps)


def train(steps: int, seed: int, lr: float = 0.01, log_every: int | None = None) -> tuple:
    """Fit the network; return (params, data, the loss at every step), printing some losses."""
    rng = np.random.default_rng(seed)
    x, y = make_data(rng)
    params = init_params(rng)
    state = adam_init(params)
    log_every = log_every or max(1, steps // 10)
    losses = []
    for step in range(steps):
        for p in params:
            p.grad = None  # gradients accumulate across backward() calls: reset them first
        loss = mse(forward(params, x), y)
        loss.backward()
        adam_step(params, state, lr)
        losses.append(loss.item())
        if step % log_every == 0 or step == steps - 1:
            common.progress(f"step {step:5d}   loss {losses[-1]:.3e}")
    return params, (x, y), losses


def draw_figure(plt, params: list, data: tuple, losses: list):
    """Left: the loss at every step (log scale). Right: the data and the fitted function."""
    figure, (curve, fit) = plt.subplots(1, 2, figsize=(10, 3.8))
    curve.semilogy(np.arange(len(losses)), losses)
    curve.set_xlabel("Adam step")
    curve.set_ylabel("mean squared error")
    curve.set_title("training loss", fontsize=10)

    x, y = data
    grid = np.linspace(-1.0, 1.0, 200)[:, None]
    with no_grad():
        prediction = forward(params, grid).data
    fit.plot(grid[:, 0], np.sin(3.0 * grid[:, 0]), color="grey", linestyle="--", label="sin(3x)")
    fit.scatter(x[:, 0], y[:, 0], s=12, color="black", label=f"{len(x)} training points")
    fit.plot(grid[:, 0], prediction[:, 0], color="tab:blue", label="the trained MLP")
    fit.set_xlabel("x")
    fit.set_title(f"MLP {'-'.join(map(str, LAYER_SIZES))}, tanh, after {len(losses)} steps", fontsize=10)
    fit.legend(fontsize=8)
    figure.tight_layout()
    return figure


def parse_args(argv=None):
    parser = common.demo_arguments(__doc__)
    parser.add_argument("--steps", type=int, default=1000, help="training steps (default 1000)")
    parser.add_argument("--lr", type=float, default=0.01, help="Adam's learning rate")
    args = parser.parse_args(argv)
    if args.quick:  # 300 steps: seconds
        args.steps = min(args.steps, 300)
    if args.steps < 1:
        parser.error("--steps must be a positive integer")
    if not args.lr > 0:
        parser.error("--lr must be positive")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    n_weights = sum(a * b + b for a, b in zip(LAYER_SIZES[:-1], LAYER_SIZES[1:]))
    print(f"MLP {'-'.join(map(str, LAYER_SIZES))} (tanh, float64, {n_weights} weights) fitting "
          f"y = sin(3x) on {N_POINTS} points, {args.steps} Adam steps (lr {args.lr}), seed {args.seed}")
    params, data, losses = train(args.steps, args.seed, args.lr)
    first, final = losses[0], losses[-1]
    print(f"first loss {first:.3e}, final loss {final:.3e} ({first / final:.1f}x smaller)")

    common.save_figure(lambda plt: draw_figure(plt, params, data, losses), args.out, "tiny_mlp.png")
    common.write_metrics(args.metrics_json, {
        "first_loss": first, "final_loss": final, "loss_ratio": first / final, "losses": losses,
        "config": {"steps": args.steps, "lr": args.lr, "seed": args.seed, "layer_sizes": list(LAYER_SIZES),
                   "points": N_POINTS, "weights": n_weights},
    })
    if not final < first / 10:
        print("FAILED: the final loss is not below a tenth of the first", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
