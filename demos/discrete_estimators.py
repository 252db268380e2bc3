"""When reparameterization fails: the estimators for discrete latents, side by side.

A Bernoulli draw b = [phi + L > 0] is a step function of its logit, so the pathwise gradient of
E[f(b)] does not exist, and the plain score function (REINFORCE) is noisy. This demo puts the
repairs next to each other, each given the same number of evaluations of f per gradient
estimate (6), on the same problems:

    estimator          draws per estimate    evaluations of f per draw              biased?
    score_nobaseline   6                     1                                      no
    score_loo          6                     1 (leave-one-out baseline)             no
    vimco              6                     1 (gradient of the 6-sample bound)     no
    arm, disarm        3 uniforms            2 (an antithetic pair)                 no
    gumbel_relaxed     6                     1 (f at the relaxed y)                 yes
    gumbel_st          6                     1 (straight-through)                   yes
    rebar              2                     3 (f(b), f(sigma(z)), f(sigma(z~)))    no
    relax              6 (toy), 2 (VAE)      1 + network (toy), 3 + network (VAE)   no

(``tinygrad_reparam.discrete_estimators`` derives each one; Gumbel-Softmax at temperature 0.5.)

**Part 1, the toy** (Tucker et al. 2017, Grathwohl et al. 2018): E_{b ~ Bernoulli(sigmoid(phi))}
[(b - t)^2], exact gradient theta (1 - theta)(1 - 2t), at t = 0.45 (REBAR's setting) and
t = 0.499 (RELAX's: a signal of 5e-4 at phi = 0), phi in {0, 1}. For each estimator, 20,000
estimates: their mean against the exact gradient (a z-score), their variance, and the signal to
noise ratio |mean| / standard deviation. REBAR's temperature and eta and RELAX's network (1-10-1,
tanh) are first tuned at each point for 300 Adam steps on the gradient of the estimate's square.
VIMCO estimates the gradient of a different objective, the 6-sample bound E[log mean_k e^f(b_k)]
(f as log-weights), so its exact gradient is that bound's, summed over the number of ones among
the 6 draws. Then each estimator minimizes the toy from phi = 0 with Adam (lr 0.01, 2000 steps),
the control variates trained along; the curves show theta = P(b = 1), whose optimum is 0
(the excess loss is F - F* = theta (1 - 2t)).

**Part 2, a binary latent VAE**: a sigmoid belief net with one layer of 32 Bernoulli latents,
linear maps as in Grathwohl et al.'s "linear one-layer" model: q(b | x) = Bernoulli(sigmoid(x W_q
+ c_q)), p(b) = Bernoulli(sigmoid(c_0)) with c_0 learned, p(x | b) = Bernoulli(sigmoid(b W_p +
c_p)), on the bundled 8x8 digits (binarized at 8 of 16; the split of demos/vae.py). Each
estimator trains its own model from the same initial weights on the same batches (50 images, Adam
lr 3e-3). The encoder's gradient comes from the estimator; the KL(q || p) between the factorized
Bernoullis is analytic, so f(b) = log p(x | b), except for VIMCO, which trains the 6-sample
importance-weighted bound with log w = log p(x, b) - log q(b | x). REBAR's f'(y) is the
decoder's input gradient, written as Tensor operations (``mlp_input_gradient``); RELAX's control
variate is REBAR's plus a 32-32-1 tanh network of z. Reported: test ELBO (100 draws per image, KL
analytic) and IWAE bound (k = 500) in nats per image, and the variance of the encoder's gradient
(summed over its weights) at one fixed set of parameters (the DisARM-trained model's), 100
estimates on one batch of 100 training images, the control variates re-tuned there first.

What to look for (full default run). On the toy, the relaxation pays only where the relaxed cost
tracks f: at t = 0.45, phi = 1 RELAX's variance is 2.7e-6 against 9.5e-5 for the leave-one-out
baseline, but at t = 0.499, where f(1) - f(0) = 0.002, every estimator that differences two
evaluations of f (score_loo, VIMCO, ARM, DisARM) has a variance of order (f(1) - f(0))^2 and beats
RELAX by 6 to 21 times, DisARM is exact at phi = 0, and REBAR, whose relaxation f(sigmoid(z /
lambda)) dips to f(1/2) = 1e-6 between f(0) = 0.249 and f(1) = 0.251, does no better than
REINFORCE per draw: the weakness that made Grathwohl et al. learn the control variate. The
Gumbel-Softmax estimates are biased (z-scores of 60 to 100 at phi = 1), and with them the
optimization stalls at theta = 0.36 to 0.51, where the relaxed cost is smallest. On the belief net
(seeds 0, 1, 2) the order is stable: encoder gradient variance relative to score_loo 30-32
(score_nobaseline), 1.7-1.9 (ARM), 1.2-1.3 (DisARM), 0.60-0.64 (REBAR and RELAX), 0.06-0.07
(VIMCO, of its own bound) and 0.03-0.05 (Gumbel); test ELBO -22.6 to -22.8 (score_nobaseline),
-21.4 to -21.6 (score_loo, ARM, DisARM, REBAR, RELAX, within 0.15 of each other on every seed),
-22.0 (VIMCO, whose IWAE bound, -19.8, is the best of the unbiased ones) and -21.2 (Gumbel
relaxed, the best ELBO and IWAE: on a linear model the bias costs little, as the Concrete
relaxation's -111.3 against REBAR's -111.6 in Grathwohl et al.'s linear one-layer row).

Published numbers: Grathwohl et al. (2018), the table "Highest training ELBO for discrete
variational autoencoders", binarized MNIST, 200 Bernoulli latents: linear one-layer Concrete
-111.3, NVIL -112.5, MuProp -111.7, REBAR -111.6, RELAX -111.20; linear two-layer -99.62, -99.6,
-99.07, -98.22, -98.00; nonlinear -102.2, -101.5, -101.1, -81.01, -78.13. Ours are on 8x8 digits
with 32 latents (64 pixels, not 784), so only the ordering of the estimators can be compared, not
the numbers.

    python demos/discrete_estimators.py              # both parts (under a minute)
    python demos/discrete_estimators.py --quick      # seconds
    python demos/discrete_estimators.py --part toy --toy-estimates 50000 --metrics-json m.json
"""
from __future__ import annotations

import common  # first: pins BLAS to one thread, finds the package from a checkout

import math
import time

import numpy as np

import tinygrad_reparam.distributions as D
from tinygrad_reparam import Tensor, no_grad
from tinygrad_reparam import discrete_estimators as DE
from tinygrad_reparam.data import load_binarized_digits
from tinygrad_reparam.estimators import (SCORE_LOO, SCORE_NOBASELINE, GradientStats, leave_one_out,
                                         score_function_surrogate)
from tinygrad_reparam.nn import MLP, Module
from tinygrad_reparam.optim import Adam
from tinygrad_reparam.vae import bernoulli_log_likelihood

EVALUATIONS = 6           # evaluations of f per gradient estimate, for every estimator
ESTIMATORS = (SCORE_NOBASELINE, SCORE_LOO, "vimco", "arm", "disarm", "gumbel_relaxed", "gumbel_st",
              "rebar", "relax")
UNBIASED = {name for name in ESTIMATORS if not name.startswith("gumbel")}
EVALUATIONS_PER_DRAW = {"arm": 2, "disarm": 2, "rebar": 3}       # 1 for the others ...
VAE_EVALUATIONS_PER_DRAW = dict(EVALUATIONS_PER_DRAW, relax=3)    # ... RELAX in the VAE holds REBAR's f too
GUMBEL_TEMPERATURE = 0.5
TARGETS = (0.45, 0.499)
LOGITS = (0.0, 1.0)


def draws(name: str, per_draw: dict) -> int:
    """Draws (or uniforms, for the antithetic pairs) per estimate at EVALUATIONS evaluations of f."""
    return EVALUATIONS // per_draw.get(name, 1)


def straight_through(y: Tensor) -> Tensor:
    """Forward: the Bernoulli draw [y > 1/2] (= [phi + L > 0]); backward: the gradient of y."""
    return (y - y.detach()) + Tensor((y.data > 0.5).astype(np.float64))


class ControlVariates:
    """What REBAR and RELAX tune: the temperature lambda (as log lambda) and eta of REBAR's
    eta f(sigmoid(z / lambda)), and RELAX's network, each with its own Adam optimizer."""

    def __init__(self, latent_shape: tuple, hidden: int, seed, lr: float):
        self.log_temperature = Tensor(math.log(0.5), requires_grad=True)
        self.eta = Tensor(1.0, requires_grad=True)
        self.network = DE.NeuralControlVariate(latent_shape, hidden=(hidden,), rng=np.random.default_rng(seed))
        self.rebar_optimizer = Adam([self.log_temperature, self.eta], lr=lr)
        self.relax_optimizer = Adam(self.network.parameters() + [self.log_temperature, self.eta], lr=lr)

    def step(self, name: str, variance: Tensor) -> None:
        """One Adam step of the control variate down the gradient of the estimate's square."""
        optimizer = self.rebar_optimizer if name == "rebar" else self.relax_optimizer
        optimizer.zero_grad()
        variance.backward()
        optimizer.step()


# =============================================================================================
# Part 1: the toy, E[(b - t)^2]
def toy_estimate(name: str, phi: Tensor, t: float, controls: ControlVariates, rng: np.random.Generator):
    """(surrogate, variance or None): the surrogate's gradient is the estimate of dF/dphi for every
    entry of phi (averaged over them: multiply by phi.size for the individual estimates)."""
    k = draws(name, EVALUATIONS_PER_DRAW)
    cost = lambda b: DE.toy_cost(b, t)  # noqa: E731
    if name in (SCORE_NOBASELINE, SCORE_LOO, "vimco"):
        q = D.Bernoulli(logits=phi)
        b = q.sample((k,), rng=rng)                        # the cut: no path through b
        costs = DE.toy_cost(b.data, t)
        if name == "vimco":
            return DE.vimco_surrogate(q.log_prob(b), costs), None
        baseline = leave_one_out(costs, axis=0) if name == SCORE_LOO else None
        return score_function_surrogate(q.log_prob(b), costs, baseline), None
    if name == "arm":
        return DE.arm_surrogate(phi, cost, k, rng), None
    if name == "disarm":
        return DE.disarm_surrogate(phi, cost, k, rng), None
    if name.startswith("gumbel"):
        y = D.RelaxedBernoulli(GUMBEL_TEMPERATURE, logits=phi).rsample((k,), rng=rng)
        return cost(straight_through(y) if name == "gumbel_st" else y).mean(), None
    if name == "rebar":
        estimate = DE.rebar_surrogate(phi, cost, lambda y: 2.0 * (y - t), controls.log_temperature.exp(),
                                      controls.eta, k, rng)
    else:  # RELAX on the toy: the network alone, as in Grathwohl et al.
        estimate = DE.relax_surrogate(phi, cost, controls.network, k, rng)
    return estimate.surrogate, estimate.variance


def vimco_toy_gradient(phi: float, t: float, k: int = EVALUATIONS) -> float:
    """d/dphi E[log (1/K) sum_k e^f(b_k)]: the bound depends on the draws through the number n of
    ones, Binomial(K, theta), and d/dphi theta^n (1 - theta)^(K - n) = that * (n - K theta)."""
    theta = 1 / (1 + math.exp(-phi))
    f0, f1 = t ** 2, (1 - t) ** 2
    total = 0.0
    for n in range(k + 1):
        probability = math.comb(k, n) * theta ** n * (1 - theta) ** (k - n)
        total += probability * (n - k * theta) * math.log((n * math.exp(f1) + (k - n) * math.exp(f0)) / k)
    return total


def tune(name: str, phi: float, t: float, controls: ControlVariates, steps: int, rng) -> None:
    """Train REBAR's or RELAX's control variate at a fixed phi: Adam on |g|^2 over 500 estimates."""
    for _ in range(steps):
        _, variance = toy_estimate(name, Tensor(np.full(500, phi)), t, controls, rng)
        controls.step(name, variance)


def toy_statistics(args) -> dict:
    """Mean, variance and SNR of every estimator at every (t, phi), from args.toy_estimates estimates."""
    results = {}
    for t in TARGETS:
        for phi in LOGITS:
            key = f"t={t}, phi={phi:g}"
            results[key] = {}
            for index, name in enumerate(ESTIMATORS):
                rng = np.random.default_rng([args.seed, 10, index])
                controls = ControlVariates((), 10, [args.seed, 11], lr=0.01)
                if name in ("rebar", "relax"):
                    tune(name, phi, t, controls, args.tune_steps, rng)
                leaf = Tensor(np.full(args.toy_estimates, phi), requires_grad=True)
                surrogate, _ = toy_estimate(name, leaf, t, controls, rng)
                surrogate.backward()
                exact = vimco_toy_gradient(phi, t) if name == "vimco" else float(DE.toy_exact_gradient(phi, t))
                stats = GradientStats(leaf.grad * args.toy_estimates, exact)
                results[key][name] = {
                    "mean": float(stats.mean), "exact": exact, "bias_z": bias_z(stats),
                    "variance": float(stats.variance), "variance_std_error": float(stats.variance_std_error),
                    "snr": float(abs(stats.mean) / math.sqrt(stats.variance))
                    if stats.variance > 0 else math.inf,
                    "draws": draws(name, EVALUATIONS_PER_DRAW),
                }
                if name in ("rebar", "relax"):
                    results[key][name]["temperature"] = float(np.exp(controls.log_temperature.data))
                    results[key][name]["eta"] = float(controls.eta.data)
            closed = DE.toy_variances(phi, t)  # one draw (REINFORCE) or one uniform (ARM, DisARM)
            results[key]["closed_form_variance"] = {
                SCORE_NOBASELINE: float(closed["reinforce"]) / EVALUATIONS,
                "arm": float(closed["arm"]) / draws("arm", EVALUATIONS_PER_DRAW),
                "disarm": float(closed["disarm"]) / draws("disarm", EVALUATIONS_PER_DRAW),
            }
    return results


def bias_z(stats: GradientStats) -> float:
    """The bias in standard errors; 0 for an estimator that is exact to rounding (DisARM at
    phi = 0 returns the same number every time, and a standard error of 1e-19 would turn a
    rounding difference of 1e-18 into a z-score of 10)."""
    if abs(stats.bias) <= 1e-12 * abs(stats.exact) and stats.std_error <= 1e-12 * abs(stats.exact):
        return 0.0
    return float(stats.bias_z)


def toy_curve(name: str, t: float, args) -> list:
    """theta after each Adam step minimizing E[(b - t)^2] from phi = 0 (control variates trained along)."""
    rng = np.random.default_rng([args.seed, 20, ESTIMATORS.index(name), int(t * 1000)])
    phi = Tensor(np.zeros(1), requires_grad=True)
    optimizer = Adam([phi], lr=0.01)
    controls = ControlVariates((), 10, [args.seed, 21], lr=0.01)
    thetas = []
    for _ in range(args.toy_steps):
        surrogate, variance = toy_estimate(name, phi, t, controls, rng)
        if variance is not None:
            controls.step(name, variance)
        optimizer.zero_grad()
        surrogate.backward()
        optimizer.step()
        thetas.append(float(1 / (1 + np.exp(-phi.data[0]))))
    return thetas


def run_toy(args) -> dict:
    started = time.perf_counter()
    statistics = toy_statistics(args)
    curves = {t: {name: toy_curve(name, t, args) for name in ESTIMATORS} for t in TARGETS}
    for t in TARGETS:
        common.progress(f"toy t = {t}: final theta " + ", ".join(
            f"{name} {curve[-1]:.3f}" for name, curve in curves[t].items()))
    rows = []
    for key, by_name in statistics.items():
        for name in ESTIMATORS:
            entry = by_name[name]
            rows.append([key, name, entry["draws"], f"{entry['mean']:.3e}", f"{entry['exact']:.3e}",
                         f"{entry['bias_z']:+.2f}", f"{entry['variance']:.3e}", f"{entry['snr']:.3g}"])
    common.print_table(["toy", "estimator", "draws", "mean", "exact", "bias z", "variance", "SNR"], rows)
    print(f"({args.toy_estimates} estimates each, {EVALUATIONS} evaluations of f per estimate; VIMCO's "
          f"exact is the gradient of its 6-sample bound; gumbel_* are biased by design)")
    return {"statistics": statistics, "curves": {str(t): curves[t] for t in TARGETS},
            "seconds": time.perf_counter() - started}


# =============================================================================================
# Part 2: a sigmoid belief net on the digits
class BinaryVAE(Module):
    """One layer of Bernoulli latents, linear maps: q(b | x), p(b) with learned logits, p(x | b)."""

    def __init__(self, x_dim: int, latents: int, rng: np.random.Generator):
        self.encoder = MLP([x_dim, latents], rng=rng)      # logits of q(b | x) = x W_q + c_q
        self.decoder = MLP([latents, x_dim], rng=rng)      # logits of p(x | b) = b W_p + c_p
        self.prior_logits = Tensor(np.zeros(latents), requires_grad=True)

    def log_likelihood(self, b, x: np.ndarray) -> Tensor:
        """log p(x | b), one number per draw and image: the cost f(b) the estimators differentiate."""
        return bernoulli_log_likelihood(self.decoder(b), x)

    def log_likelihood_gradient(self, y: Tensor, x: np.ndarray) -> Tensor:
        """d log p(x | y) / dy = ((x - sigmoid(y W_p + c_p)) W_p^T), as Tensor operations (REBAR's f')."""
        return DE.mlp_input_gradient(self.decoder, y, lambda logits: x - logits.sigmoid())[1]

    def kl(self, logits: Tensor) -> Tensor:
        """KL(q(b | x) || p(b)) summed over the latents: one number per image, analytic."""
        q, prior = D.Bernoulli(logits=logits), D.Bernoulli(logits=self.prior_logits)
        return D.kl_divergence(q, prior).sum(axis=-1)

    def log_weights(self, b: Tensor, x: np.ndarray, q: D.Bernoulli) -> Tensor:
        """log w = log p(x | b) + log p(b) - log q(b | x), one per draw and image."""
        prior = D.Bernoulli(logits=self.prior_logits)
        return (self.log_likelihood(b, x) + prior.log_prob(b).sum(axis=-1) - q.log_prob(b).sum(axis=-1))


def vae_objective(name: str, model: BinaryVAE, x: np.ndarray, controls: ControlVariates, rng):
    """(objective to maximize, variance or None). The value of the objective is the estimator's
    estimate of the batch-mean ELBO (VIMCO: of the 6-sample bound); its gradient the estimate."""
    k = draws(name, VAE_EVALUATIONS_PER_DRAW)
    logits = model.encoder(Tensor(x))
    kl = model.kl(logits).mean()
    cost = lambda b: model.log_likelihood(b, x)  # noqa: E731
    if name in (SCORE_NOBASELINE, SCORE_LOO, "vimco"):
        q = D.Bernoulli(logits=logits)
        b = q.sample((k,), rng=rng)
        if name == "vimco":
            return DE.vimco_surrogate(q.log_prob(b).sum(axis=-1), model.log_weights(b, x, q)), None
        reconstruction = cost(b)
        baseline = leave_one_out(reconstruction.data, axis=0) if name == SCORE_LOO else None
        score = score_function_surrogate(q.log_prob(b).sum(axis=-1), reconstruction, baseline)
        return reconstruction.mean() + (score - score.detach()) - kl, None
    if name == "arm":
        return DE.arm_surrogate(logits, cost, k, rng) - kl, None
    if name == "disarm":
        return DE.disarm_surrogate(logits, cost, k, rng) - kl, None
    if name.startswith("gumbel"):
        y = D.RelaxedBernoulli(GUMBEL_TEMPERATURE, logits=logits).rsample((k,), rng=rng)
        return cost(straight_through(y) if name == "gumbel_st" else y).mean() - kl, None
    rebar = DE.rebar_control_variate(cost, lambda y: model.log_likelihood_gradient(y, x),
                                     controls.log_temperature.exp(), controls.eta)
    if name == "rebar":
        control = rebar
    else:
        def control(z):  # RELAX: REBAR's control variate plus a network of z
            (c_rebar, slope_rebar), (c_network, slope_network) = rebar(z), controls.network(z)
            return c_rebar + c_network, slope_rebar + slope_network
    estimate = DE.relax_surrogate(logits, cost, control, k, rng)
    return estimate.surrogate - kl, estimate.variance


@no_grad()
def test_bounds(model: BinaryVAE, x: np.ndarray, elbo_draws: int, iwae_k: int, rng) -> tuple:
    """Mean test ELBO (hard b ~ q, the reconstruction averaged over draws, KL analytic) and IWAE_k."""
    logits = model.encoder(Tensor(x))
    q = D.Bernoulli(logits=logits)
    b = q.sample((elbo_draws,), rng=rng)
    elbo = model.log_likelihood(b, x).data.mean(axis=0) - model.kl(logits).data
    log_weights = []
    for start in range(0, iwae_k, 100):
        b = q.sample((min(100, iwae_k - start),), rng=rng)
        log_weights.append(model.log_weights(b, x, q).data)
    log_weights = np.concatenate(log_weights)
    largest = log_weights.max(axis=0)
    iwae = largest + np.log(np.exp(log_weights - largest).mean(axis=0))
    return float(elbo.mean()), float(iwae.mean())


def batches(x: np.ndarray, batch_size: int, rng: np.random.Generator):
    """Minibatches without end: a new permutation every epoch, the incomplete last batch dropped."""
    while True:
        order = rng.permutation(len(x))
        for first in range(0, len(order) - batch_size + 1, batch_size):
            yield x[order[first:first + batch_size]]


def train_vae(name: str, x_train: np.ndarray, x_test: np.ndarray, args) -> dict:
    """Train one model with ``name``'s encoder gradient; the same weights and batches for every estimator."""
    model = BinaryVAE(x_train.shape[1], args.latents, np.random.default_rng([args.seed, 30]))
    optimizer = Adam(model.parameters(), lr=args.lr)
    controls = ControlVariates((args.latents,), args.latents, [args.seed, 31], lr=args.lr)
    stream = batches(x_train, args.batch_size, np.random.default_rng([args.seed, 32]))
    noise = np.random.default_rng([args.seed, 33])
    curve_rng = np.random.default_rng([args.seed, 34])
    curve_steps, curve_elbo, seconds = [], [], 0.0
    for step in range(1, args.steps + 1):
        started = time.perf_counter()
        objective, variance = vae_objective(name, model, next(stream), controls, noise)
        if variance is not None:
            controls.step(name, variance)   # (puts gradients on the decoder too: cleared next)
        optimizer.zero_grad()
        (-objective).backward()
        optimizer.step()
        seconds += time.perf_counter() - started
        if step % args.eval_every == 0 or step == args.steps:
            curve_steps.append(step)
            curve_elbo.append(test_bounds(model, x_test, 10, 1, curve_rng)[0])
    common.progress(f"{name:>16}  {args.steps} steps  test ELBO {curve_elbo[-1]:8.3f}  {seconds:5.1f}s")
    return {"model": model, "controls": controls, "curve_steps": curve_steps, "curve_test_elbo": curve_elbo,
            "train_seconds": seconds}


def encoder_gradient_variance(name: str, reference: BinaryVAE, controls: ControlVariates, x: np.ndarray,
                              args) -> float:
    """Sum over the encoder's weights of the variance of ``name``'s gradient estimate at the
    reference parameters (``args.variance_estimates`` estimates on the batch x)."""
    rng = np.random.default_rng([args.seed, 40, ESTIMATORS.index(name)])
    for _ in range(args.variance_tune_steps if name in ("rebar", "relax") else 0):
        _, variance = vae_objective(name, reference, x, controls, rng)
        controls.step(name, variance)
    encoder = reference.encoder.parameters()
    samples = []
    for _ in range(args.variance_estimates):
        reference.zero_grad()
        objective, _ = vae_objective(name, reference, x, controls, rng)
        objective.backward()
        samples.append(np.concatenate([p.grad.ravel() for p in encoder]))
    return float(np.var(np.array(samples), axis=0, ddof=1).sum())


def run_vae(args) -> dict:
    started = time.perf_counter()
    x_train, x_test, _ = load_binarized_digits()
    print(f"\nsigmoid belief net: {args.latents} Bernoulli latents, linear maps; {len(x_train)} training and "
          f"{len(x_test)} test digits; Adam lr {args.lr}, batch {args.batch_size}, {args.steps} steps, "
          f"{EVALUATIONS} evaluations of f per image per step")
    untrained = BinaryVAE(x_train.shape[1], args.latents, np.random.default_rng([args.seed, 30]))
    runs = {name: train_vae(name, x_train, x_test, args) for name in ESTIMATORS}
    results = {"untrained": dict(zip(("test_elbo", "test_iwae"), test_bounds(
        untrained, x_test, args.test_draws, args.iwae_k, np.random.default_rng([args.seed, 35]))))}
    reference_state = runs["disarm"]["model"].state_dict()
    batch = x_train[:100]
    for name in ESTIMATORS:
        elbo, iwae = test_bounds(runs[name]["model"], x_test, args.test_draws, args.iwae_k,
                                 np.random.default_rng([args.seed, 35]))  # the same evaluation draws
        reference = BinaryVAE(x_train.shape[1], args.latents, np.random.default_rng(0))
        reference.load_state_dict(reference_state)
        results[name] = {
            "test_elbo": elbo, "test_iwae": iwae, "train_seconds": runs[name]["train_seconds"],
            "encoder_gradient_variance": encoder_gradient_variance(name, reference, runs[name]["controls"],
                                                                   batch, args),
            "curve_steps": runs[name]["curve_steps"], "curve_test_elbo": runs[name]["curve_test_elbo"],
        }
    loo = results[SCORE_LOO]["encoder_gradient_variance"]
    rows = [[name, results[name]["test_elbo"], results[name]["test_iwae"],
             results[name]["encoder_gradient_variance"] / loo, results[name]["train_seconds"]] for name in ESTIMATORS]
    rows.append(["untrained", results["untrained"]["test_elbo"], results["untrained"]["test_iwae"], "", ""])
    common.print_table(["estimator", "test ELBO", f"test IWAE (k={args.iwae_k})",
                        "encoder grad variance / score_loo", "train s"], rows)
    print(f"(nats per image, {len(x_test)} test digits; the variance at the DisARM-trained parameters, "
          f"{args.variance_estimates} estimates; VIMCO trains the 6-sample bound, gumbel_* a relaxed model)")
    results["seconds"] = time.perf_counter() - started
    return results


# =============================================================================================
# Output
def draw_figure(plt, toy: dict, vae: dict, args):
    figure, axes = plt.subplots(2, 2, figsize=(13, 9))
    colours = {name: f"C{index}" for index, name in enumerate(ESTIMATORS)}
    if toy:
        bars = axes[0, 0]
        keys = list(toy["statistics"])
        width = 0.8 / len(ESTIMATORS)
        floor = 1e-10  # DisARM at phi = 0 has variance 0 (to rounding): drawn at the floor, marked "0"
        for index, name in enumerate(ESTIMATORS):
            values = np.array([toy["statistics"][key][name]["variance"] for key in keys])
            positions = np.arange(len(keys)) + (index - len(ESTIMATORS) / 2 + 0.5) * width
            bars.bar(positions, np.maximum(values, floor), width, color=colours[name], label=name)
            for position in positions[values < floor]:
                bars.text(position, floor * 1.5, "0", ha="center", fontsize=8)
        bars.set_yscale("log")
        bars.set_ylim(floor, 30.0)  # room for the legend above the bars
        bars.set_xticks(np.arange(len(keys)))
        bars.set_xticklabels(keys, fontsize=9)
        bars.set_ylabel(f"variance of one estimate ({EVALUATIONS} evaluations of f)")
        bars.set_title("toy E[(b - t)^2]: the variance of each estimator at equal cost", fontsize=10)
        bars.legend(fontsize=7, ncol=3)
        curves = axes[0, 1]
        for t, style in zip(TARGETS, ("-", ":")):
            for name, thetas in toy["curves"][str(t)].items():
                curves.plot(np.arange(1, len(thetas) + 1), thetas, style, color=colours[name], linewidth=1)
        curves.set_yscale("log")
        curves.set_xlabel("Adam step (lr 0.01, from phi = 0)")
        curves.set_ylabel("theta = P(b = 1); the optimum is 0")
        curves.set_title("minimizing the toy: t = 0.45 solid, t = 0.499 dotted (colours as on the left)",
                         fontsize=10)
    if vae:
        curves = axes[1, 0]
        for name in ESTIMATORS:
            curves.plot(vae[name]["curve_steps"], vae[name]["curve_test_elbo"], color=colours[name], label=name)
        low = min(min(vae[name]["curve_test_elbo"]) for name in ESTIMATORS)
        curves.set_ylim(max(low, vae["untrained"]["test_elbo"]) - 0.5, None)
        curves.set_xlabel(f"training step ({EVALUATIONS} evaluations of f per image, every estimator)")
        curves.set_ylabel("test ELBO, nats per image (10 draws)")
        curves.set_title(f"sigmoid belief net, {args.latents} Bernoulli latents, 8x8 digits", fontsize=10)
        curves.legend(fontsize=7, ncol=3, loc="lower right")
        variance = axes[1, 1]
        values = [vae[name]["encoder_gradient_variance"] for name in ESTIMATORS]
        variance.bar(np.arange(len(ESTIMATORS)), values, color=[colours[name] for name in ESTIMATORS])
        variance.set_yscale("log")
        variance.set_xticks(np.arange(len(ESTIMATORS)))
        variance.set_xticklabels(ESTIMATORS, rotation=30, ha="right", fontsize=8)
        variance.set_ylabel("encoder gradient variance (sum over weights)")
        variance.set_title("at fixed parameters (the DisARM-trained model)", fontsize=10)
    for axis in axes.ravel():
        if not axis.has_data():
            axis.set_visible(False)
    figure.tight_layout()
    return figure


def parse_args(argv=None):
    parser = common.demo_arguments(__doc__)
    parser.add_argument("--part", choices=("toy", "vae", "all"), default="all")
    parser.add_argument("--toy-estimates", type=int, default=20_000, help="estimates per estimator and point")
    parser.add_argument("--tune-steps", type=int, default=300, help="REBAR/RELAX tuning steps per toy point")
    parser.add_argument("--toy-steps", type=int, default=2000, help="Adam steps of the toy optimization")
    parser.add_argument("--steps", type=int, default=2000, help="training steps of each VAE")
    parser.add_argument("--latents", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--test-draws", type=int, default=100, help="draws per test image, ELBO")
    parser.add_argument("--iwae-k", type=int, default=500)
    parser.add_argument("--variance-estimates", type=int, default=100)
    args = parser.parse_args(argv)
    args.curve_points, args.variance_tune_steps = 20, 100
    if args.quick:
        args.toy_estimates, args.tune_steps, args.toy_steps = 4000, 40, 100
        args.steps, args.test_draws, args.iwae_k, args.variance_estimates = 100, 20, 50, 10
        args.curve_points, args.variance_tune_steps = 4, 5
    for name in ("toy_estimates", "toy_steps", "steps", "latents", "batch_size", "test_draws", "iwae_k"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer")
    if args.variance_estimates < 2 or args.tune_steps < 0:
        parser.error("--variance-estimates must be >= 2 and --tune-steps >= 0")
    args.eval_every = max(1, args.steps // args.curve_points)
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    metrics = {"config": {key: value for key, value in vars(args).items() if key not in ("out", "metrics_json")}}
    toy = run_toy(args) if args.part in ("toy", "all") else {}
    vae = run_vae(args) if args.part in ("vae", "all") else {}
    if toy:
        metrics["toy"] = toy
    if vae:
        metrics["vae"] = vae
    common.save_figure(lambda plt: draw_figure(plt, toy, vae, args), args.out, "discrete_estimators.png")
    common.write_metrics(args.metrics_json, metrics)
    return metrics


if __name__ == "__main__":
    main()
