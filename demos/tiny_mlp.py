"""Train a tiny MLP by hand with the engine: the whole training loop in plain sight.

A 1-16-16-1 network with tanh hidden layers (float64) learns y = sin(3x) from 64 points.
Nothing is hidden in a library: the weights are leaf Tensors with requires_grad=True, the
forward pass is a few matrix products, ``loss.backward()`` fills each weight's ``.grad``, and a
hand-written Adam step updates the raw arrays. Gradients accumulate across backward calls (as in
PyTorch), so each step starts by resetting them with ``p.grad = None``.

The loss is printed every tenth of the run so you can watch it fall. Late in training it can
jump up for a moment before falling again: Adam's step does not shrink by itself as the fit
improves. The script exits with a nonzero status if the final loss is not below a tenth of the
first one.

    python demos/tiny_mlp.py                 # 1000 steps, a few seconds
    python demos/tiny_mlp.py --quick         # 300 steps
    python demos/tiny_mlp.py --steps 3000 --seed 1
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

try:
    import tinygrad_reparam  # noqa: F401
except ImportError:  # running from a checkout without installing: use the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tinygrad_reparam import Tensor, no_grad

LAYER_SIZES = (1, 16, 16, 1)


def make_data(rng: np.random.Generator, n: int = 64) -> tuple:
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


def train(steps: int, seed: int, lr: float = 0.01, log_every: int | None = None) -> list:
    """Fit the network and return the loss at every step (printing some of them)."""
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
            print(f"step {step:5d}   loss {losses[-1]:.3e}")
    return losses


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="training steps (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed for data and weights")
    parser.add_argument("--quick", action="store_true", help="a shorter run (300 steps)")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps = min(args.steps, 300)
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    n_weights = sum(a * b + b for a, b in zip(LAYER_SIZES[:-1], LAYER_SIZES[1:]))
    print(f"MLP {'-'.join(map(str, LAYER_SIZES))} (tanh, float64, {n_weights} weights) "
          f"fitting y = sin(3x) on 64 points, {args.steps} Adam steps, seed {args.seed}")
    losses = train(args.steps, args.seed)
    first, final = losses[0], losses[-1]
    print(f"first loss {first:.3e}, final loss {final:.3e} ({first / final:.1f}x smaller)")
    if not final < first / 10:
        print("FAILED: the final loss is not below a tenth of the first", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
