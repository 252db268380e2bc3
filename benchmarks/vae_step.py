"""One VAE training step with the engine against the same step written by hand in NumPy.

The step is forward, backward and an Adam update of the default MLP VAE (64-200-8, tanh,
float64, reparameterized ELBO). The hand-written version is the ceiling for a pure-NumPy engine:
the forward pass keeps exactly what the backward pass needs, and the backward pass is the chain
rule written out for this one model (below). Before timing, both are run from the same weights
on the same batch and noise and must agree on the loss and every gradient to 1e-10 relative.
Rounds of the two are interleaved in one process, and the median time per step is reported,
with the minor page faults per step, the peak traced memory of a few steps, and (after the
table) how much traced memory grows over many steps.

When PyTorch or HIPS autograd happen to be installed, the same step written with each of them
is an extra row, checked against the hand-written step the same way before it is timed. Neither
is a dependency: a missing one is reported as a skipped row.

    python benchmarks/vae_step.py                  # batch sizes 16, 128, 1024
    python benchmarks/vae_step.py --quick          # fewer rounds, shorter growth run
    python benchmarks/vae_step.py --cpu-time       # process CPU time instead of wall time
"""
from __future__ import annotations

import common  # first: pins BLAS threads, finds the package, imports the optional libraries

import argparse  # noqa: E402
import gc  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import numpy as np  # noqa: E402

from common import OPTIONAL, F, anp, autograd, torch  # noqa: E402
from tinygrad_reparam.optim import Adam  # noqa: E402
from tinygrad_reparam.vae import VAE  # noqa: E402

X_DIM, HIDDEN, Z_DIM = 64, 200, 8
LR, BETAS, EPS = 1e-3, (0.9, 0.999), 1e-8


def make_batch(batch: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed + 1).random((batch, X_DIM)) < 0.3).astype(np.float64)


# ---------------------------------------------------------------------------------------------
# The hand-written step
class HandWrittenVAE:
    """The same VAE with its gradient derived by hand. Weights are (in, out) matrices, x @ W + b."""

    def __init__(self, weights: list, lr: float = LR, betas=BETAS, eps: float = EPS):
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


# ---------------------------------------------------------------------------------------------
# Optional: the same step in PyTorch and in HIPS autograd
class TorchVAE:
    """The VAE as one writes it in PyTorch (float64, CPU, one thread): nn.Linear layers (which
    store W transposed, (out, in)), log p(x|z) as minus binary_cross_entropy_with_logits, the
    Gaussian KL in closed form, torch.optim.Adam."""

    def __init__(self, weights: list, lr: float = LR, betas=BETAS, eps: float = EPS):
        self.linears = [self._linear(W, b) for W, b in zip(weights[0::2], weights[1::2])]
        self.encoder = torch.nn.Sequential(self.linears[0], torch.nn.Tanh(), self.linears[1])
        self.decoder = torch.nn.Sequential(self.linears[2], torch.nn.Tanh(), self.linears[3])
        parameters = [p for layer in self.linears for p in (layer.weight, layer.bias)]
        self.optimizer = torch.optim.Adam(parameters, lr=lr, betas=betas, eps=eps)

    @staticmethod
    def _linear(W: np.ndarray, b: np.ndarray):
        layer = torch.nn.Linear(*W.shape, dtype=torch.float64)
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(W.T))
            layer.bias.copy_(torch.from_numpy(b))
        return layer

    def loss(self, x: np.ndarray, noise: np.ndarray):
        x, noise = torch.from_numpy(x), torch.from_numpy(noise)
        mu, log_var = self.encoder(x).split(Z_DIM, dim=1)
        z = mu + torch.exp(0.5 * log_var) * noise
        logits = self.decoder(z)
        reconstruction = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=1)
        kl = 0.5 * (mu * mu + log_var.exp() - 1.0 - log_var).sum(dim=1)
        return -(reconstruction - kl).mean()

    def loss_and_grads(self, x: np.ndarray, noise: np.ndarray) -> tuple:
        self.optimizer.zero_grad()
        loss = self.loss(x, noise)
        loss.backward()
        grads = [g for layer in self.linears for g in (layer.weight.grad.numpy().T, layer.bias.grad.numpy())]
        return loss.item(), grads

    def step(self, x: np.ndarray, noise: np.ndarray) -> float:
        self.optimizer.zero_grad()
        loss = self.loss(x, noise)
        loss.backward()
        self.optimizer.step()
        return loss.item()


def autograd_loss(params: list, x: np.ndarray, noise: np.ndarray):
    """The same loss in autograd.numpy; autograd traces it and differentiates the trace."""
    W1, b1, W2, b2, W3, b3, W4, b4 = params
    e = anp.tanh(x @ W1 + b1) @ W2 + b2
    mu, log_var = e[:, :Z_DIM], e[:, Z_DIM:]
    z = mu + anp.exp(0.5 * log_var) * noise
    logits = anp.tanh(z @ W3 + b3) @ W4 + b4
    reconstruction = anp.sum(x * logits - anp.logaddexp(0.0, logits), axis=1)
    kl = 0.5 * anp.sum(mu * mu + anp.exp(log_var) - 1.0 - log_var, axis=1)
    return -anp.mean(reconstruction - kl)


class AutogradVAE(HandWrittenVAE):
    """Gradients from autograd.grad of autograd_loss (value_and_grad returns the loss as well);
    the Adam update is HandWrittenVAE's, in plain NumPy."""

    def loss_and_grads(self, x: np.ndarray, noise: np.ndarray) -> tuple:
        return _autograd_value_and_grad(self.params, x, noise)


if autograd is not None:
    _autograd_value_and_grad = autograd.value_and_grad(autograd_loss)

# Every implementation but the engine: built from the engine's initial weights, stepped with noise.
IMPLEMENTATIONS = {"hand-written": HandWrittenVAE}
if torch is not None:
    IMPLEMENTATIONS["torch"] = TorchVAE
if autograd is not None:
    IMPLEMENTATIONS["autograd"] = AutogradVAE
NOT_TRACED = {"torch"}  # its tensors live outside Python's allocator, where tracemalloc cannot see


# ---------------------------------------------------------------------------------------------
# Checking and measuring
def largest_gap(loss: float, grads: list, reference_loss: float, reference_grads: list) -> float:
    gaps = [abs(loss - reference_loss) / abs(reference_loss)]
    for g, reference in zip(grads, reference_grads):
        gaps.append(float(np.max(np.abs(g - reference)) / np.max(np.abs(reference))))
    return max(gaps)


def check_same_step(name: str, batch: int, seed: int = 0) -> float:
    """Loss and all gradients of one implementation and the hand-written step agree, from the same
    weights on the same batch and noise; returns the largest relative gap."""
    model = VAE(rng=np.random.default_rng(seed))
    hand = HandWrittenVAE([p.data for p in model.parameters()])
    x = make_batch(batch, seed)
    noise = np.random.default_rng(seed + 2).standard_normal((batch, Z_DIM))
    if name == "engine":
        loss = -model.elbo(x, np.random.default_rng(seed + 2))  # the same noise, drawn the same way
        loss.backward()
        loss, grads = loss.item(), [p.grad for p in model.parameters()]
    else:
        loss, grads = IMPLEMENTATIONS[name]([p.data for p in model.parameters()]).loss_and_grads(x, noise)
    worst = largest_gap(loss, grads, *hand.loss_and_grads(x, noise))
    if worst > 1e-10:
        raise SystemExit(f"{name} and hand-written VAE disagree: largest relative gap {worst:.2e}")
    return worst


def make_steps(batch: int, names: list, seed: int = 0) -> dict:
    """One zero-argument callable per implementation, doing one training step on its own copy of
    the same initial weights, with the same batch and the same sequence of noise."""
    model = VAE(rng=np.random.default_rng(seed))
    weights = [p.data.copy() for p in model.parameters()]
    optimizer = Adam(model.parameters(), lr=LR, betas=BETAS, eps=EPS)
    x = make_batch(batch, seed)
    steps = {}
    for name in names:
        rng = np.random.default_rng(seed + 2)
        if name == "engine":  # draws its own noise inside elbo, from the same generator
            steps[name] = lambda rng=rng: engine_step(model, optimizer, x, rng)
        else:
            steps[name] = noisy_step(IMPLEMENTATIONS[name](weights), x, rng)
    return steps


def noisy_step(implementation, x: np.ndarray, rng: np.random.Generator):
    return lambda: implementation.step(x, rng.standard_normal((x.shape[0], Z_DIM)))


def minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def time_steps(batch: int, names: list, rounds: int, steps_per_round: int,
               clock=time.perf_counter) -> dict:
    """Interleaved rounds; per implementation, the median ms per step and minor faults per step."""
    steps = make_steps(batch, names)
    times = {name: [] for name in names}
    faults = {name: [] for name in names}
    for _ in range(rounds):
        for name, step in steps.items():
            faults_before, start = minor_faults(), clock()
            for _ in range(steps_per_round):
                step()
            times[name].append((clock() - start) / steps_per_round)
            faults[name].append((minor_faults() - faults_before) / steps_per_round)
    return {name: (1e3 * statistics.median(times[name]), statistics.median(faults[name])) for name in names}


def peak_memory(batch: int, names: list, steps: int = 5) -> dict:
    """Peak traced memory (MB) of a few steps of each implementation tracemalloc can see."""
    peaks = {}
    for name, step in make_steps(batch, [n for n in names if n not in NOT_TRACED]).items():
        step()  # optimizer state allocated before measuring
        tracemalloc.start()
        for _ in range(steps):
            step()
        peaks[name] = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
    return peaks


def memory_growth(names: list, batch: int, steps: int, mark: int = 100) -> dict:
    """Traced memory after the last step minus after step `mark` (bytes), a gc.collect() before
    each reading, for each implementation tracemalloc can see."""
    growth = {}
    for name, step in make_steps(batch, [n for n in names if n not in NOT_TRACED]).items():
        gc.collect()
        tracemalloc.start()
        for i in range(1, steps + 1):
            step()
            if i == mark:
                gc.collect()
                at_mark = tracemalloc.get_traced_memory()[0]
        gc.collect()
        growth[name] = tracemalloc.get_traced_memory()[0] - at_mark
        tracemalloc.stop()
    return growth


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 128, 1024])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="3 rounds, 200 steps for the growth run")
    parser.add_argument("--growth-steps", type=int, default=1000,
                        help="steps of the memory-growth run at batch 128 (default 1000; 200 with --quick)")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time with process CPU time instead of wall time (steadier on a busy machine)")
    parser.add_argument("--skip", nargs="+", choices=OPTIONAL, default=[],
                        help="leave out these optional rows even when installed (e.g. --skip torch autograd)")
    args = parser.parse_args(argv)
    common.freeze_imports()
    rounds = 3 if args.quick else args.rounds
    growth_steps = min(args.growth_steps, 200) if args.quick else args.growth_steps
    if growth_steps <= 100:
        parser.error("--growth-steps must be more than 100 (growth is measured from step 100)")
    clock = time.process_time if args.cpu_time else time.perf_counter

    names, versions = common.choose_rows(["hand-written", "engine"], IMPLEMENTATIONS, args.skip)
    print(f"VAE {X_DIM}-{HIDDEN}-{Z_DIM} tanh float64, one Adam step; {versions}")
    for batch in args.batches:
        gaps = ", ".join(f"{name} {check_same_step(name, batch):.1e}" for name in names[1:])
        print(f"batch {batch}: agree with hand-written (largest relative gap): {gaps}")

    print(f"\nmedian of {rounds} interleaved rounds, {'CPU' if args.cpu_time else 'wall'} time; "
          f"ratio = ms / hand-written ms; peak MB traced by tracemalloc over 5 steps")
    print(f"{'batch':>6}  {'':14s}{'ms/step':>9} {'ratio':>7} {'peak MB':>8} {'minor faults/step':>18}")
    peak_ratios = {}
    for batch in args.batches:
        result = time_steps(batch, names, rounds, max(5, 4000 // batch), clock=clock)
        peaks = peak_memory(batch, names)
        hand_ms = result["hand-written"][0]
        for name in names:
            ms, faults = result[name]
            peak = f"{peaks[name]:>8.2f}" if name in peaks else f"{'-':>8}"
            print(f"{batch:>6}  {name:14s}{ms:>9.3f} {ms / hand_ms:>7.2f} {peak} {faults:>18.1f}")
        peak_ratios[batch] = peaks["engine"] / peaks["hand-written"]

    print("\nmemory")
    print("  peak traced memory, engine / hand-written: "
          + ", ".join(f"batch {batch} {ratio:.2f}x" for batch, ratio in peak_ratios.items()))
    growth = memory_growth(names, batch=128, steps=growth_steps)
    print(f"  growth of traced memory at batch 128, from step 100 to step {growth_steps} "
          f"(gc.collect() before each reading):")
    for name, grown in growth.items():
        print(f"    {name:14s}{grown:>+10d} bytes")
    if "torch" in names:
        print("  (torch's tensors are allocated outside tracemalloc's view: no peak or growth for it)")
    if "torch" in names and max(args.batches) > 128:
        print("note: once torch has run steps at a large batch, glibc malloc in this process keeps\n"
              "  freed memory instead of returning it to the OS (its mmap and trim thresholds only\n"
              "  ever rise, and a large free raises them): from then on the engine and hand-written\n"
              "  steps take far fewer minor faults, so their times at large batches are not\n"
              "  comparable with a run without torch (--skip torch).")


if __name__ == "__main__":
    main()
