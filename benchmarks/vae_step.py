"""One VAE training step with the engine against the same step written by hand in NumPy.

The step is forward, backward and an Adam update of the default MLP VAE (64-200-8, tanh,
float64, reparameterized ELBO). The hand-written version is the ceiling for a pure-NumPy engine:
the forward pass keeps exactly what the backward pass needs, and the backward pass is the chain
rule written out for this one model (below). Before timing, both are run from the same weights
on the same batch and noise and must agree on the loss and every gradient to 1e-10 relative.
Rounds of the two are interleaved in one process, and the median time per step is reported.

    python benchmarks/vae_step.py                  # batch sizes 16, 128, 1024
    python benchmarks/vae_step.py --quick          # fewer rounds
"""
from __future__ import annotations

import os

# Small matrices: BLAS threads cost more than they save here (set before NumPy is imported).
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

try:
    import tinygrad_reparam  # noqa: F401,E402
except ImportError:  # running from a checkout without installing: use the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tinygrad_reparam.optim import Adam  # noqa: E402
from tinygrad_reparam.vae import VAE  # noqa: E402

X_DIM, HIDDEN, Z_DIM = 64, 200, 8


# ---------------------------------------------------------------------------------------------
# The hand-written step
class HandWrittenVAE:
    """The same VAE with its gradient derived by hand. Weights are (in, out) matrices, x @ W + b."""

    def __init__(self, weights: list, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8):
        self.params = [w.copy() for w in weights]  # W1 b1 W2 b2 (encoder), W3 b3 W4 b4 (decoder)
        self.m = [np.zeros_like(w) for w in self.params]
        self.v = [np.zeros_like(w) for w in self.params]
        self.lr, self.betas, self.eps, self.t = lr, betas, eps, 0

    def loss_and_grads(self, x: np.ndarray, noise: np.ndarray) -> tuple:
        W1, b1, W2, b2, W3, b3, W4, b4 = self.params
        n = x.shape[0]
        # forward: loss = -mean(log p(x|z) - KL), z = mu + sigma * eps
        h1 = np.tanh(x @ W1 + b1)
        e = h1 @ W2 + b2
        mu, log_var = e[:, :Z_DIM], e[:, Z_DIM:]
        sigma = np.exp(0.5 * log_var)
        z = mu + sigma * noise
        h2 = np.tanh(z @ W3 + b3)
        logits = h2 @ W4 + b4
        softplus = np.maximum(logits, 0) + np.log1p(np.exp(-np.abs(logits)))
        reconstruction = (x * logits - softplus).sum(axis=1)
        kl = 0.5 * (mu * mu + sigma * sigma - 1.0 - log_var).sum(axis=1)
        loss = -(reconstruction - kl).mean()
        # backward
        probabilities = np.exp(logits - softplus)  # sigmoid(logits)
        d_logits = (probabilities - x) / n
        dW4, db4 = h2.T @ d_logits, d_logits.sum(axis=0)
        d_a2 = (d_logits @ W4.T) * (1.0 - h2 * h2)
        dW3, db3 = z.T @ d_a2, d_a2.sum(axis=0)
        d_z = d_a2 @ W3.T
        d_mu = d_z + mu / n
        d_log_var = 0.5 * d_z * sigma * noise + 0.5 * (sigma * sigma - 1.0) / n
        d_e = np.concatenate([d_mu, d_log_var], axis=1)
        dW2, db2 = h1.T @ d_e, d_e.sum(axis=0)
        d_a1 = (d_e @ W2.T) * (1.0 - h1 * h1)
        dW1, db1 = x.T @ d_a1, d_a1.sum(axis=0)
        return loss, [dW1, db1, dW2, db2, dW3, db3, dW4, db4]

    def step(self, x: np.ndarray, noise: np.ndarray) -> float:
        loss, grads = self.loss_and_grads(x, noise)
        self.t += 1
        b1, b2 = self.betas
        step_size = self.lr / (1 - b1 ** self.t)
        root_correction = np.sqrt(1 - b2 ** self.t)
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            p -= step_size * m / (np.sqrt(v) / root_correction + self.eps)
        return loss


# ---------------------------------------------------------------------------------------------
# The engine step
def engine_step(model: VAE, optimizer: Adam, x: np.ndarray, rng: np.random.Generator) -> float:
    optimizer.zero_grad()
    loss = -model.elbo(x, rng)
    loss.backward()
    optimizer.step()
    return loss.item()


def check_same_step(batch: int, seed: int = 0) -> float:
    """Loss and all gradients of engine and hand-written agree; returns the largest relative gap."""
    model = VAE(rng=np.random.default_rng(seed))
    hand = HandWrittenVAE([p.data for p in model.parameters()])
    x = (np.random.default_rng(seed + 1).random((batch, X_DIM)) < 0.3).astype(np.float64)
    noise = np.random.default_rng(seed + 2).standard_normal((batch, Z_DIM))
    loss = -model.elbo(x, np.random.default_rng(seed + 2))  # the same noise, drawn the same way
    loss.backward()
    hand_loss, hand_grads = hand.loss_and_grads(x, noise)
    gaps = [abs(loss.item() - hand_loss) / abs(hand_loss)]
    for p, g in zip(model.parameters(), hand_grads):
        gaps.append(float(np.max(np.abs(p.grad - g)) / np.max(np.abs(g))))
    worst = max(gaps)
    if worst > 1e-10:
        raise SystemExit(f"engine and hand-written VAE disagree: largest relative gap {worst:.2e}")
    return worst


def time_steps(batch: int, rounds: int, steps_per_round: int, seed: int = 0,
               clock=time.perf_counter) -> dict:
    model = VAE(rng=np.random.default_rng(seed))
    optimizer = Adam(model.parameters(), lr=1e-3)
    hand = HandWrittenVAE([p.data for p in model.parameters()])
    x = (np.random.default_rng(seed + 1).random((batch, X_DIM)) < 0.3).astype(np.float64)
    engine_rng, hand_rng = np.random.default_rng(seed + 2), np.random.default_rng(seed + 2)
    engine_times, hand_times = [], []
    for _ in range(rounds):
        start = clock()
        for _ in range(steps_per_round):
            engine_step(model, optimizer, x, engine_rng)
        engine_times.append((clock() - start) / steps_per_round)
        start = clock()
        for _ in range(steps_per_round):
            hand.step(x, hand_rng.standard_normal((batch, Z_DIM)))
        hand_times.append((clock() - start) / steps_per_round)
    engine, handwritten = statistics.median(engine_times), statistics.median(hand_times)
    return {"engine_ms": 1e3 * engine, "numpy_ms": 1e3 * handwritten, "ratio": engine / handwritten}


def peak_memory(batch: int, steps: int = 5) -> tuple:
    """Peak traced memory (MB) of a few steps, engine and hand-written."""
    model = VAE(rng=np.random.default_rng(0))
    optimizer = Adam(model.parameters(), lr=1e-3)
    hand = HandWrittenVAE([p.data for p in model.parameters()])
    x = (np.random.default_rng(1).random((batch, X_DIM)) < 0.3).astype(np.float64)
    rng = np.random.default_rng(2)
    peaks = []
    for step in (lambda: engine_step(model, optimizer, x, rng),
                 lambda: hand.step(x, rng.standard_normal((batch, Z_DIM)))):
        step()  # optimizer state allocated before measuring
        tracemalloc.start()
        for _ in range(steps):
            step()
        peaks.append(tracemalloc.get_traced_memory()[1] / 1e6)
        tracemalloc.stop()
    return tuple(peaks)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 128, 1024])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time with process CPU time instead of wall time (steadier on a busy machine)")
    args = parser.parse_args(argv)
    rounds = 3 if args.quick else args.rounds

    print(f"VAE {X_DIM}-{HIDDEN}-{Z_DIM} tanh float64, one Adam step; numpy {np.__version__}")
    for batch in args.batches:
        print(f"batch {batch}: engine and hand-written agree to {check_same_step(batch):.1e} (relative)")
    print(f"\n{'batch':>6} {'engine ms':>10} {'numpy ms':>10} {'ratio':>7} {'engine MB':>10} {'numpy MB':>9}")
    for batch in args.batches:
        steps = max(5, 4000 // batch)
        result = time_steps(batch, rounds, steps, clock=time.process_time if args.cpu_time else time.perf_counter)
        engine_mb, numpy_mb = peak_memory(batch)
        print(f"{batch:>6} {result['engine_ms']:>10.3f} {result['numpy_ms']:>10.3f} {result['ratio']:>7.2f} "
              f"{engine_mb:>10.2f} {numpy_mb:>9.2f}")


if __name__ == "__main__":
    main()
