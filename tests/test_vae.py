"""The VAE: exact gradients, the bounds' ordering, and training that shows the trick working."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tinygrad_reparam import Tensor, gradcheck
from tinygrad_reparam.optim import Adam
from tinygrad_reparam.vae import (
    VAE, bernoulli_log_likelihood, gaussian_kl_to_standard_normal, standard_normal_log_density,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(REPO, "demos", "vae.py")


def tiny_data(n=6, x_dim=5, seed=0):
    return (np.random.default_rng(seed).random((n, x_dim)) < 0.4).astype(np.float64)


def with_parameters(model, names, tensors):
    """Put ``tensors`` in place of the model's parameters called ``names``."""
    for name, tensor in zip(names, tensors):
        *path, attribute = name.split(".")
        owner = model
        for part in path:
            owner = owner[int(part)] if part.isdigit() else getattr(owner, part)
        setattr(owner, attribute, tensor)


@pytest.mark.parametrize("estimator", ["pathwise", "score_nobaseline"])
def test_elbo_gradients_pass_gradcheck(estimator):
    model = VAE(x_dim=5, hidden=3, z_dim=2, rng=np.random.default_rng(0))
    x = tiny_data()
    names = [name for name, _ in model.named_parameters()]
    params = [Tensor(p.data.copy(), requires_grad=True) for p in model.parameters()]

    def elbo(*tensors):
        with_parameters(model, names, tensors)
        return model.elbo(x, np.random.default_rng(1), estimator=estimator)  # the same noise every call

    if estimator == "pathwise":  # the pathwise gradient is the exact gradient of this one-sample ELBO
        assert gradcheck(elbo, params)
    else:  # the surrogate's decoder gradient is exact; the encoder's is a score-function estimate
        decoder_count = len(model.decoder.parameters())
        fixed = params[:-decoder_count]
        for p in fixed:
            p.requires_grad = False
        assert gradcheck(elbo, params)


def test_closed_forms():
    logits = Tensor(np.array([[-30.0, 0.0, 40.0]]))
    x = np.array([[0.0, 1.0, 1.0]])
    np.testing.assert_allclose(bernoulli_log_likelihood(logits, x).data,
                               [np.log1p(-1 / (1 + np.exp(30.0))) + np.log(0.5) + np.log(1 / (1 + np.exp(-40.0)))])
    mu, log_var = Tensor(np.array([[0.5, -1.0]])), Tensor(np.array([[0.2, -0.3]]))
    var = np.exp(log_var.data)
    np.testing.assert_allclose(gaussian_kl_to_standard_normal(mu, log_var).data,
                               0.5 * np.sum(mu.data ** 2 + var - 1 - log_var.data, axis=-1))
    z = Tensor(np.array([[0.3, -0.4]]))
    np.testing.assert_allclose(standard_normal_log_density(z).data,
                               [-0.5 * 0.25 - np.log(2 * np.pi)])


def test_elbo_below_iwae_and_iwae_rises_with_k():
    from tinygrad_reparam.data import load_digits
    counts, _ = load_digits(raw=True)
    x = (counts[:200] >= 8).astype(np.float64)
    model = VAE(rng=np.random.default_rng(0))
    optimizer = Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(1)
    for _ in range(30):  # a little training so that q is not the prior
        optimizer.zero_grad()
        (-model.elbo(x[:100], rng)).backward()
        optimizer.step()
    elbo = model.evaluate_elbo(x, np.random.default_rng(2), samples=200).mean()
    bounds = [model.iwae_bound(x, k=k, rng=np.random.default_rng(3)).mean() for k in (1, 10, 100)]
    assert bounds[0] == pytest.approx(elbo, abs=0.3)  # IWAE_1 is the ELBO (up to sampling noise)
    assert elbo + 0.2 < bounds[1] < bounds[2]          # tighter as k grows


def test_bad_input_and_estimator():
    model = VAE(x_dim=5, hidden=3, z_dim=2, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"expected \(batch, 5\)"):
        model.elbo(np.zeros((2, 4)), np.random.default_rng(0))
    for unknown in ("reparam", "reinforce", "score_loo", None):  # score_loo needs several draws per image
        with pytest.raises(ValueError, match=r"estimator must be one of \('pathwise', 'score', 'score_nobaseline'\)"):
            model.elbo(tiny_data(), np.random.default_rng(0), estimator=unknown)


def test_score_elbo_has_a_visible_cut_and_the_same_value_as_pathwise():
    model = VAE(x_dim=5, hidden=3, z_dim=2, rng=np.random.default_rng(0))
    x = tiny_data()
    pathwise = model.elbo(x, np.random.default_rng(5), estimator="pathwise")
    score = model.elbo(x, np.random.default_rng(5), estimator="score_nobaseline")
    assert score.item() == pytest.approx(pathwise.item(), rel=1e-12)  # same noise, same value
    assert [node.op for node in score.cut_nodes] == ["Normal.sample"]
    assert pathwise.cut_nodes == []


def encoder_and_decoder_gradients(model, x, estimator, seed):
    model.zero_grad()
    (-model.elbo(x, np.random.default_rng(seed), estimator=estimator)).backward()
    flat = lambda module: np.concatenate([p.grad.ravel() for p in module.parameters()])
    return flat(model.encoder), flat(model.decoder)


def test_each_estimator_name_gives_its_own_encoder_gradient():
    """Same weights, same noise: the decoder's gradient is the same under every estimator, the
    encoder's is the pathwise one only under "pathwise", and "score" differs from
    "score_nobaseline" exactly when the moving-average baseline has a value."""
    x = tiny_data()
    new_model = lambda: VAE(x_dim=5, hidden=3, z_dim=2, rng=np.random.default_rng(0))
    grads = {name: encoder_and_decoder_gradients(new_model(), x, name, seed=5)
             for name in ("pathwise", "score", "score_nobaseline")}
    for name in ("score", "score_nobaseline"):
        np.testing.assert_allclose(grads[name][1], grads["pathwise"][1], rtol=1e-12, atol=1e-14)
        assert not np.allclose(grads[name][0], grads["pathwise"][0], rtol=1e-3)
    # a new model has no baseline yet (b = None), so its first "score" step is "score_nobaseline"'s
    np.testing.assert_array_equal(grads["score"][0], grads["score_nobaseline"][0])

    model = new_model()
    model.elbo(tiny_data(seed=1), np.random.default_rng(1), estimator="score")  # b now has a value
    with_baseline, _ = encoder_and_decoder_gradients(model, x, "score", seed=5)
    without_baseline, _ = encoder_and_decoder_gradients(model, x, "score_nobaseline", seed=5)
    assert not np.allclose(with_baseline, without_baseline, rtol=1e-3)


@pytest.fixture(scope="module")
def quick_metrics(tmp_path_factory):
    """demos/vae.py --quick in a subprocess, as a user runs it."""
    folder = tmp_path_factory.mktemp("vae_quick")
    metrics_path = folder / "metrics.json"
    result = subprocess.run([sys.executable, DEMO, "--quick", "--metrics-json", str(metrics_path),
                             "--out", str(folder)], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    return json.loads(metrics_path.read_text()), result.stdout


def test_quick_demo_writes_the_documented_metrics(quick_metrics):
    metrics, stdout = quick_metrics
    for estimator in ("pathwise", "score", "score_nobaseline"):
        for key in ("test_elbo", "test_iwae", "grad_variance_ratio", "train_seconds"):
            assert np.isfinite(metrics[estimator][key]), (estimator, key)
        assert metrics[estimator]["test_elbo"] < 0  # a log-likelihood bound, not a loss
        assert metrics[estimator]["test_elbo"] <= metrics[estimator]["test_iwae"] + 0.5
    assert metrics["pathwise"]["grad_variance_ratio"] == 1.0
    for key in ("dataset", "epochs", "batch_size", "lr", "hidden", "z_dim", "seed"):
        assert key in metrics["config"]
    assert metrics["config"]["grad_variance_point"] == "pathwise-trained"
    for estimator in ("pathwise", "score", "score_nobaseline"):
        assert f"| {estimator} |" in stdout


def test_quick_training_improves_and_pathwise_beats_score(quick_metrics):
    metrics, _ = quick_metrics
    untrained = VAE(rng=np.random.default_rng([0, 0]))  # the demo's initial weights
    from tinygrad_reparam.data import load_digits
    counts, _ = load_digits(raw=True)
    order = np.random.default_rng(0).permutation(1797)
    x_test = (counts[order[1437:]] >= 8).astype(np.float64)
    before = untrained.evaluate_elbo(x_test, np.random.default_rng(0), samples=20).mean()
    assert metrics["pathwise"]["test_elbo"] > before + 10      # about -44 -> -23 nats in 10 epochs
    assert metrics["pathwise"]["test_elbo"] > metrics["score"]["test_elbo"] + 1.0
    assert metrics["pathwise"]["test_elbo"] > metrics["score_nobaseline"]["test_elbo"] + 1.0
    # the score-function gradient is far noisier, and the baseline helps
    assert metrics["score_nobaseline"]["grad_variance_ratio"] > metrics["score"]["grad_variance_ratio"] > 5


def test_score_baseline_never_contains_the_batch_it_multiplies(monkeypatch):
    """b must not depend on the draws it is subtracted from (else the estimator is biased):
    the model uses the moving average *before* folding in the current batch."""
    import tinygrad_reparam.vae as vae_module
    used = []
    real = vae_module.score_function_surrogate
    monkeypatch.setattr(vae_module, "score_function_surrogate",
                        lambda log_q, cost, baseline: used.append((baseline, cost.data.mean())) or
                        real(log_q, cost, baseline))
    model = VAE(x_dim=5, hidden=3, z_dim=2, rng=np.random.default_rng(0))
    for seed in range(3):
        model.elbo(tiny_data(seed=seed), np.random.default_rng(seed), estimator="score")
    assert used[0][0] is None                          # no history yet: no baseline
    assert used[1][0] == pytest.approx(used[0][1])     # then only the earlier batches
    assert used[2][0] == pytest.approx(0.9 * used[0][1] + 0.1 * used[1][1])


# --- details no other test pins down (found by tools/mutate.py) --------------------------------
def test_elbo_value_equals_the_formula_computed_by_hand_on_the_same_noise():
    model = VAE(x_dim=5, hidden=3, z_dim=2, rng=np.random.default_rng(0))
    x = tiny_data()
    value = model.elbo(x, rng=np.random.default_rng(7)).item()
    mu, log_var = (t.data for t in model.encode(x))
    eps = np.random.default_rng(7).standard_normal(mu.shape)  # the draw rsample makes
    z = mu + np.exp(0.5 * log_var) * eps                       # sigma = exp(log sigma^2 / 2)
    logits = model.decode(Tensor(z)).data
    reconstruction = (x * logits - np.logaddexp(0.0, logits)).sum(axis=-1)
    kl = 0.5 * (mu ** 2 + np.exp(log_var) - 1.0 - log_var).sum(axis=-1)
    assert value == pytest.approx(np.mean(reconstruction - kl), rel=1e-13)


def test_gaussian_kl_sums_over_the_last_axis_of_any_batch_shape():
    rng = np.random.default_rng(1)
    mu, log_var = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 4))
    kl = gaussian_kl_to_standard_normal(Tensor(mu), Tensor(log_var))
    assert kl.shape == (2, 3)
    np.testing.assert_allclose(kl.data, 0.5 * (mu ** 2 + np.exp(log_var) - 1 - log_var).sum(axis=-1),
                               rtol=1e-13)


def test_reconstruct_and_sample_prior_give_pixel_probabilities():
    model = VAE(x_dim=5, hidden=3, z_dim=2, rng=np.random.default_rng(0))
    x = tiny_data()
    mu, _ = model.encode(x)
    expected = 1.0 / (1.0 + np.exp(-model.decode(mu).data))
    np.testing.assert_allclose(model.reconstruct(x), expected, rtol=1e-14)
    samples = model.sample_prior(4, rng=np.random.default_rng(3))
    z = np.random.default_rng(3).standard_normal((4, 2))
    np.testing.assert_allclose(samples, 1.0 / (1.0 + np.exp(-model.decode(Tensor(z)).data)), rtol=1e-14)
    assert model.sample_prior(0).shape == (0, 5)


@pytest.mark.parametrize("bad", [1.5, -0.5])
def test_pixels_outside_zero_one_are_refused(bad):
    model = VAE(x_dim=5, hidden=3, z_dim=2, rng=np.random.default_rng(0))
    x = tiny_data()
    x[0, 0] = bad
    with pytest.raises(ValueError, match=r"pixels must lie in \[0, 1\]"):
        model.elbo(x)
