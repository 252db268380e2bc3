"""The VAE's central statement: two estimators of one gradient, the same mean, different variances.

At fixed parameters and a fixed batch, the gradient of the ELBO with respect to the encoder is one
vector. ``VAE.elbo`` estimates it either pathwise (z = mu + sigma * eps, the gradient flows through
z) or with the score function (z drawn without a gradient path, the encoder gets
(log p(x|z) - b) grad log q(z|x)). Both are unbiased, so over many independent draws their means
agree within their standard errors; the score function's draws are far noisier.

The entries compared are the gradients of the encoder's output bias (one entry per mu_j and per
log sigma_j^2, averaged over the batch): every image contributes to them, so they carry the most
signal. 400 draws per estimator (fixed seeds); a difference of means passes below 4 standard
errors (a correct pair of estimators fails an entry with probability about 6e-5). The test also
checks that it is sharp enough to see a score term of the wrong sign: that would move the score
estimator's mean by twice the reconstruction part of the gradient, which must exceed 8 standard
errors. (Here the z-scores are between -1.7 and 0; with the sign of vae.py's score term flipped
they are 37 to 65 in size.)
"""
import math

import numpy as np
import pytest

from tinygrad_reparam.data import load_binarized_digits
from tinygrad_reparam.vae import ESTIMATORS, VAE, gaussian_kl_to_standard_normal

# ESTIMATORS lists the pathwise estimator first and the score-function estimator with its
# moving-average baseline second, whatever they are called ("pathwise" and "score" now,
# "reparam" and "reinforce" before).
PATHWISE, SCORE = ESTIMATORS[0], ESTIMATORS[1]
DRAWS = 400
BATCH = 64
Z_DIM = 2


def encoder_gradient(model: VAE) -> np.ndarray:
    """The gradients of the encoder's parameters, flattened into one vector."""
    return np.concatenate([p.grad.ravel() for p in model.encoder.parameters()])


def output_bias(gradients: np.ndarray) -> np.ndarray:
    """The entries of the encoder's output bias (the last 2 * z_dim entries of the flat vector)."""
    return gradients[..., -2 * Z_DIM:]


@pytest.fixture(scope="module")
def setting():
    """A small untrained VAE (seed 0) and a fixed batch of the bundled binarized digits."""
    x = load_binarized_digits()[0][:BATCH]
    model = VAE(x_dim=64, hidden=16, z_dim=Z_DIM, rng=np.random.default_rng(0))
    assert model.encoder.parameters()[-1].shape == (2 * Z_DIM,)  # the output bias comes last
    return model, x


@pytest.fixture(scope="module")
def draws(setting):
    """{estimator: (DRAWS, number of encoder parameters) array of independent gradient draws}."""
    model, x = setting
    result = {}
    for seed, estimator in enumerate((PATHWISE, SCORE)):
        rng = np.random.default_rng([7, seed])
        model.elbo(x, rng, estimator=estimator)  # one draw so that the baseline has a value
        gradients = []
        for _ in range(DRAWS):
            model.zero_grad()
            model.elbo(x, rng, estimator=estimator).backward()
            gradients.append(encoder_gradient(model))
        result[estimator] = np.array(gradients)
    return result


def mean_and_standard_error(samples: np.ndarray) -> tuple:
    return samples.mean(axis=0), samples.std(axis=0, ddof=1) / math.sqrt(len(samples))


def test_pathwise_and_score_gradients_agree_in_expectation(setting, draws):
    pathwise_mean, pathwise_se = mean_and_standard_error(output_bias(draws[PATHWISE]))
    score_mean, score_se = mean_and_standard_error(output_bias(draws[SCORE]))
    standard_error = np.sqrt(pathwise_se ** 2 + score_se ** 2)
    z_scores = (score_mean - pathwise_mean) / standard_error
    assert np.all(np.abs(z_scores) < 4), z_scores

    # Sharp enough: the KL term's gradient is exact and the same in both estimators; the rest,
    # the reconstruction part R, is what the estimators estimate. A score term of the wrong sign
    # would give KL - R instead of KL + R: a difference of 2R, which must be far beyond 4 errors.
    model, x = setting
    model.zero_grad()
    mu, log_var = model.encode(x)
    (-gaussian_kl_to_standard_normal(mu, log_var).mean()).backward()
    reconstruction_part = pathwise_mean - output_bias(encoder_gradient(model))
    assert np.all(2 * np.abs(reconstruction_part) > 8 * standard_error), (
        reconstruction_part, standard_error)


def test_the_score_function_gradient_is_far_noisier(draws):
    pathwise_variance = output_bias(draws[PATHWISE]).var(axis=0, ddof=1)
    score_variance = output_bias(draws[SCORE]).var(axis=0, ddof=1)
    # 10 to 16 times larger here, even with the moving-average baseline
    assert np.all(score_variance > 4 * pathwise_variance), score_variance / pathwise_variance
