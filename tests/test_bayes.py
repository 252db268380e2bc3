"""Bayes by Backprop layers: w = mu + softplus(rho) * eps, its exact gradients, and the KL term."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_reparam.distributions as D
from tinygrad_reparam import Tensor, gradcheck
from tinygrad_reparam.bayes import BayesianLinear, BayesianMLP, inverse_softplus
from tinygrad_reparam.testing import float_arrays

PARAMETER_NAMES = ["weight_mu", "weight_rho", "bias_mu", "bias_rho"]


def spread_out_layer(in_features=3, out_features=2, prior_sigma=0.7, seed=0):
    """A layer whose sigmas are far from their small initial value, so every term matters."""
    layer = BayesianLinear(in_features, out_features, prior_sigma=prior_sigma,
                           rng=np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 100)
    layer.weight_rho.data[...] = rng.uniform(-2.0, 1.0, size=layer.weight_rho.shape)
    layer.bias_rho.data[...] = rng.uniform(-2.0, 1.0, size=layer.bias_rho.shape)
    return layer


def test_forward_with_fixed_noise_passes_gradcheck_in_mu_and_rho():
    layer = spread_out_layer()
    x = np.random.default_rng(1).standard_normal((4, 3))
    params = [Tensor(getattr(layer, name).data.copy(), requires_grad=True) for name in PARAMETER_NAMES]

    def forward(*tensors):
        for name, tensor in zip(PARAMETER_NAMES, tensors):
            setattr(layer, name, tensor)
        return layer(x, rng=np.random.default_rng(2))  # the same eps on every call

    assert gradcheck(forward, params)


def test_the_kl_term_passes_gradcheck():
    layer = spread_out_layer()
    params = [Tensor(getattr(layer, name).data.copy(), requires_grad=True) for name in PARAMETER_NAMES]

    def kl(*tensors):
        for name, tensor in zip(PARAMETER_NAMES, tensors):
            setattr(layer, name, tensor)
        return layer.kl()

    assert gradcheck(kl, params)


@given(mu=float_arrays((3, 2), low=-3.0, high=3.0), rho=float_arrays((3, 2), low=-6.0, high=4.0),
       seed=st.integers(0, 2**31))
def test_dw_dmu_is_one_and_dw_drho_is_sigmoid_rho_times_eps(mu, rho, seed):
    layer = BayesianLinear(3, 2, rng=np.random.default_rng(0))
    layer.weight_mu.data[...] = mu
    layer.weight_rho.data[...] = rho
    weight, _ = layer.sample_parameters(rng=np.random.default_rng(seed))
    eps = np.random.default_rng(seed).standard_normal((3, 2))  # the weight's noise is drawn first
    sigma = np.log1p(np.exp(rho))
    np.testing.assert_allclose(weight.data, mu + sigma * eps, rtol=1e-12, atol=1e-12)

    weight.backward(np.ones((3, 2)))
    np.testing.assert_array_equal(layer.weight_mu.grad, np.ones((3, 2)))        # dw/dmu = 1
    np.testing.assert_allclose(layer.weight_rho.grad, eps / (1.0 + np.exp(-rho)),  # sigmoid(rho) eps
                               rtol=1e-12, atol=1e-300)
    assert layer.bias_mu.grad is None  # W does not depend on the bias


def test_every_call_draws_new_weights_and_a_seeded_generator_repeats_them():
    layer = spread_out_layer()
    x = np.ones((2, 3))
    first, second = layer(x), layer(x)
    assert not np.allclose(first.data, second.data)
    again = [layer(x, rng=np.random.default_rng(5)).data for _ in range(2)]
    np.testing.assert_array_equal(again[0], again[1])
    # the layer's own generator is used when no rng is given
    twin = spread_out_layer()
    np.testing.assert_array_equal(twin(x).data, spread_out_layer()(x).data)


def test_kl_is_the_closed_form_and_matches_a_monte_carlo_estimate():
    layer = spread_out_layer(prior_sigma=0.7)
    mu = np.concatenate([layer.weight_mu.data.ravel(), layer.bias_mu.data.ravel()])
    rho = np.concatenate([layer.weight_rho.data.ravel(), layer.bias_rho.data.ravel()])
    sigma = np.log1p(np.exp(rho))
    closed_form = np.sum(np.log(0.7 / sigma) + (sigma ** 2 + mu ** 2) / (2 * 0.7 ** 2) - 0.5)
    assert layer.kl().item() == pytest.approx(closed_form, rel=1e-12)

    # E_q[log q(w) - log p(w)] over 20000 draws of all the layer's weights and biases
    rng = np.random.default_rng(3)
    prior = layer.prior()
    terms = 0.0
    for q in (layer.weight_posterior(), layer.bias_posterior()):
        w = q.sample((20000,), rng=rng)
        terms = terms + (q.log_prob(w) - prior.log_prob(w)).data.reshape(20000, -1).sum(axis=1)
    standard_error = terms.std() / math.sqrt(len(terms))
    assert abs(terms.mean() - layer.kl().item()) < 4 * standard_error
    assert standard_error < 0.05 * layer.kl().item()  # the check is sharp enough to mean something


def test_kl_is_zero_when_q_is_the_prior():
    layer = BayesianLinear(2, 2, prior_sigma=0.5, rng=np.random.default_rng(0))
    for mu, rho in ((layer.weight_mu, layer.weight_rho), (layer.bias_mu, layer.bias_rho)):
        mu.data[...] = 0.0
        rho.data[...] = inverse_softplus(0.5)
    assert abs(layer.kl().item()) < 1e-12


def test_bayesian_mlp_shapes_parameters_and_kl():
    model = BayesianMLP([1, 4, 3, 2], activation="tanh", prior_sigma=0.5,
                        rng=np.random.default_rng(0))
    names = [name for name, _ in model.named_parameters()]
    assert names[:4] == ["layers.0.weight_mu", "layers.0.weight_rho",
                         "layers.0.bias_mu", "layers.0.bias_rho"]
    assert len(names) == 12
    assert model(np.zeros((5, 1))).shape == (5, 2)
    assert model.kl().item() == pytest.approx(sum(layer.kl().item() for layer in model.layers),
                                              rel=1e-12)
    out = model(np.linspace(0, 1, 5)[:, None], rng=np.random.default_rng(1)).sum() + model.kl()
    out.backward()
    assert all(p.grad is not None and np.all(np.isfinite(p.grad)) for p in model.parameters())


def test_initial_sigma_and_inverse_softplus():
    layer = BayesianLinear(2, 3, init_sigma=0.05, rng=np.random.default_rng(0))
    np.testing.assert_allclose(layer.weight_posterior().scale.data, 0.05, rtol=1e-12)
    assert isinstance(layer.weight_posterior(), D.Normal)
    assert Tensor(inverse_softplus(2.5)).softplus().item() == pytest.approx(2.5, rel=1e-12)


@pytest.mark.parametrize("sigma", [1e-300, 1e-8, 0.01, 1.0, 40.0, 1e3, 1e300])
def test_inverse_softplus_is_finite_and_exact_from_tiny_to_huge_sigma(sigma):
    """log(e^sigma - 1) written as sigma + log(1 - e^-sigma): no overflow for a large sigma
    (e^1000 is not a float), full precision for a small one (softplus(rho) = e^rho there)."""
    rho = inverse_softplus(sigma)
    assert math.isfinite(rho)
    assert Tensor(rho).softplus().item() == pytest.approx(sigma, rel=1e-13)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"BayesianLinear: prior_sigma must be in \(0, inf\), got 0\.0"):
        BayesianLinear(2, 3, prior_sigma=0.0)
    with pytest.raises(ValueError, match="out_features must be a positive integer"):
        BayesianLinear(2, 0)
    with pytest.raises(ValueError, match="should have 2 features"):
        BayesianLinear(2, 3, rng=np.random.default_rng(0))(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="unknown activation"):
        BayesianMLP([1, 2, 1], activation="swish")
    with pytest.raises(ValueError, match=r"BayesianMLP: sizes\[1\] must be a positive integer, got 0"):
        BayesianMLP([1, 0, 1])
