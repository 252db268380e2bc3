"""The variational autoencoder (Kingma & Welling, 2014) with an MLP encoder and decoder.

The encoder maps an image x to the parameters of q_phi(z | x) = N(mu_phi(x), sigma_phi(x)^2),
the decoder maps a latent z to Bernoulli logits of p_theta(x | z), and the prior is p(z) = N(0, I).
Training maximizes the evidence lower bound

    ELBO(x) = E_{q_phi(z|x)}[log p_theta(x | z)] - KL(q_phi(z | x) || p(z))  <=  log p_theta(x).

The KL between two Gaussians is analytic. The first term is an expectation over q_phi, and its
gradient with respect to the encoder's phi is where the reparameterization trick comes in:

- ``estimator="pathwise"``: z = mu + sigma * eps with eps ~ N(0, I) (``rsample``), so the
  gradient flows from the decoder through z into mu and sigma (the reparameterized gradient);
- ``estimator="score"``: z is drawn with ``sample()`` (the graph is cut at z), and the encoder
  gets the score-function (REINFORCE) estimate (log p(x|z) - b) * grad log q_phi(z | x), with b a
  moving average of past reconstruction terms; ``"score_nobaseline"`` uses b = 0.

Either way the decoder's gradient is the ordinary one, and both draw one z per image, so each
step costs the same number of decoder evaluations. The importance-weighted bound
(Burda et al., 2016)

    IWAE_k(x) = E[ log (1/k) sum_i p(x, z_i) / q(z_i | x) ],   z_i ~ q(z | x),

is tighter than the ELBO (IWAE_1 = ELBO) and rises towards log p(x) as k grows.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from tinygrad_reparam.distributions.normal import Normal
from tinygrad_reparam.estimators import (PATHWISE, SCORE, SCORE_NOBASELINE, MovingAverageBaseline,
                                         score_function_surrogate)
from tinygrad_reparam.nn import MLP, Module
from tinygrad_reparam.fused import binary_cross_entropy_with_logits
from tinygrad_reparam.random import get_rng
from tinygrad_reparam import checks
from tinygrad_reparam.tensor import Tensor, no_grad

ESTIMATORS = (PATHWISE, SCORE, SCORE_NOBASELINE)  # the gradients elbo() can give the encoder
LOG_2PI = math.log(2 * math.pi)


def bernoulli_log_likelihood(logits: Tensor, x) -> Tensor:
    """log p(x | logits) summed over the last axis: sum_j x_j l_j - softplus(l_j).

    This is minus the binary cross-entropy with logits, a fused primitive that never takes log(0).
    """
    return -binary_cross_entropy_with_logits(logits, x).sum(axis=-1)


def gaussian_kl_to_standard_normal(mu: Tensor, log_var: Tensor) -> Tensor:
    """KL(N(mu, exp(log_var)) || N(0, I)) summed over the last axis:
    1/2 sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2), with sigma^2 - 1 = expm1(log_var) so that
    nothing cancels catastrophically near the prior (and the KL never comes out negative)."""
    return 0.5 * (mu * mu + log_var.expm1() - log_var).sum(axis=-1)


def standard_normal_log_density(z: Tensor) -> Tensor:
    """log N(z; 0, I) summed over the last axis."""
    return -0.5 * (z * z).sum(axis=-1) - 0.5 * z.shape[-1] * LOG_2PI


class VAE(Module):
    """MLP VAE for binary images: x_dim -> hidden -> (mu, log_var) and z_dim -> hidden -> logits."""

    def __init__(self, x_dim: int = 64, hidden: int = 200, z_dim: int = 8, activation: str = "tanh",
                 rng: Optional[np.random.Generator] = None, baseline_decay: float = 0.9):
        self.x_dim = checks.count(x_dim, "VAE: x_dim")
        self.hidden = checks.count(hidden, "VAE: hidden")
        self.z_dim = checks.count(z_dim, "VAE: z_dim")
        baseline = MovingAverageBaseline(baseline_decay)  # checked before any weight is drawn
        rng = get_rng(rng)
        self.encoder = MLP([self.x_dim, self.hidden, 2 * self.z_dim], activation=activation, rng=rng)
        self.decoder = MLP([self.z_dim, self.hidden, self.x_dim], activation=activation, rng=rng)
        # The REINFORCE baseline b: a moving average of the batch's mean reconstruction term.
        self.baseline = baseline

    # --- the two networks ----------------------------------------------------------------------
    def encode(self, x) -> tuple:
        """mu and log sigma^2 of q(z | x), each of shape (batch, z_dim)."""
        return self._encode(self._check_input(x))

    def _encode(self, x: Tensor) -> tuple:  # x already checked
        h = self.encoder(x)
        return h[..., : self.z_dim], h[..., self.z_dim:]

    def decode(self, z) -> Tensor:
        """Bernoulli logits of p(x | z), shape (..., x_dim)."""
        return self.decoder(z)

    def posterior(self, x) -> Normal:
        mu, log_var = self.encode(x)
        return Normal(mu, (0.5 * log_var).exp(), validate_args=False)

    def _check_input(self, x) -> Tensor:
        x = x if isinstance(x, Tensor) else Tensor(checks.float_array(x, "VAE input x"))
        if x.ndim < 1 or x.shape[-1] != self.x_dim:
            raise ValueError(f"VAE: input has shape {x.shape}, expected (batch, {self.x_dim})")
        if x.size == 0:
            raise ValueError(f"VAE: input has no images (shape {x.shape})")
        inside = (x.data >= 0) & (x.data <= 1)  # NaN fails too
        if not inside.all():
            bad = x.data[~inside]
            raise ValueError(f"VAE: input pixels must lie in [0, 1] (binary images; divide raw counts by "
                             f"their maximum), got {bad.size} values outside, e.g. {bad[:3]}")
        return x

    # --- objectives ----------------------------------------------------------------------------
    def elbo(self, x, rng: Optional[np.random.Generator] = None, estimator: str = PATHWISE) -> Tensor:
        """The batch mean of the one-sample ELBO estimate, as a Tensor to maximize.

        Its value is the same random quantity under every estimator; what differs is the gradient
        that reaches the encoder (see the module docstring).
        """
        if not isinstance(estimator, str) or estimator not in ESTIMATORS:
            raise ValueError(f"VAE.elbo: estimator must be one of {ESTIMATORS}, got {estimator!r}")
        x = self._check_input(x)
        mu, log_var = self._encode(x)
        q = Normal(mu, (0.5 * log_var).exp(), validate_args=False)
        kl = gaussian_kl_to_standard_normal(mu, log_var)

        if estimator == PATHWISE:
            z = q.rsample(rng=rng)  # z = mu + sigma * eps: the gradient flows through z
            reconstruction = bernoulli_log_likelihood(self.decode(z), x)
            return (reconstruction - kl).mean()

        z = q.sample(rng=rng)  # the graph is cut at z: no gradient reaches the encoder through z
        reconstruction = bernoulli_log_likelihood(self.decode(z), x)
        baseline = None
        if estimator == SCORE:
            baseline = self.baseline.value  # read before the update: b never contains this batch
            self.baseline.update(reconstruction.data)
        log_q = q.log_prob(z).sum(axis=-1)
        score = score_function_surrogate(log_q, reconstruction, baseline)
        # reconstruction.mean(): the value, and the decoder's gradient;
        # score - score.detach(): zero in value, the encoder's REINFORCE gradient.
        return reconstruction.mean() + (score - score.detach()) - kl.mean()

    @no_grad()
    def evaluate_elbo(self, x, rng: Optional[np.random.Generator] = None, samples: int = 100) -> np.ndarray:
        """Per-image ELBO: the reconstruction term averaged over ``samples`` draws, KL analytic."""
        samples = checks.count(samples, "evaluate_elbo: samples")
        x = self._check_input(x)
        mu, log_var = self._encode(x)
        q = Normal(mu, (0.5 * log_var).exp(), validate_args=False)
        z = q.rsample((samples,), rng=rng)                       # (samples, batch, z_dim)
        reconstruction = bernoulli_log_likelihood(self.decode(z), x).data.mean(axis=0)
        return reconstruction - gaussian_kl_to_standard_normal(mu, log_var).data

    @no_grad()
    def iwae_bound(self, x, k: int = 1000, rng: Optional[np.random.Generator] = None,
                   chunk: int = 100) -> np.ndarray:
        """Per-image importance-weighted bound log (1/k) sum_i p(x, z_i) / q(z_i | x).

        The k log-weights are computed ``chunk`` samples at a time (memory), then combined with a
        stable log-sum-exp.
        """
        k = checks.count(k, "iwae_bound: k")
        chunk = checks.count(chunk, "iwae_bound: chunk")
        x = self._check_input(x)
        rng = get_rng(rng)
        q = self.posterior(x)
        log_weights = []
        for start in range(0, k, chunk):
            z = q.rsample((min(chunk, k - start),), rng=rng)
            log_joint = bernoulli_log_likelihood(self.decode(z), x) + standard_normal_log_density(z)
            log_weights.append((log_joint - q.log_prob(z).sum(axis=-1)).data)
        log_weights = Tensor(np.concatenate(log_weights, axis=0))  # (k, batch)
        return log_weights.logsumexp(axis=0).data - math.log(k)

    # --- pictures --------------------------------------------------------------------------------
    @no_grad()
    def reconstruct(self, x) -> np.ndarray:
        """Pixel probabilities of the decoder at the posterior mean z = mu(x)."""
        mu, _ = self.encode(x)
        return self.decode(mu).sigmoid().data

    @no_grad()
    def sample_prior(self, n: int, rng: Optional[np.random.Generator] = None) -> np.ndarray:
        """Pixel probabilities for n latents drawn from the prior N(0, I)."""
        n = checks.count(n, "sample_prior: n", minimum=0)
        z = Tensor(get_rng(rng).standard_normal((n, self.z_dim)))
        return self.decode(z).sigmoid().data
