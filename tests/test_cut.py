"""The cut, made visible: sample() has no gradient path, rsample() does, and the engine says so."""
import numpy as np
import pytest

import tinygrad_reparam.distributions as D
from tinygrad_reparam import Tensor, no_grad


def normal_params():
    mu = Tensor(np.array([0.5, -1.0]), requires_grad=True, name="mu")
    sigma = Tensor(np.array([2.0, 0.3]), requires_grad=True, name="sigma")
    return mu, sigma


def test_sample_is_a_stochastic_node_without_grad():
    mu, sigma = normal_params()
    s = D.Normal(mu, sigma).sample((4,), rng=np.random.default_rng(0))
    assert not s.requires_grad
    assert s.op == "Normal.sample"
    assert s.shape == (4, 2)
    assert s.display_parents == (mu, sigma)
    assert s.parents == ()  # no gradient edges
    assert s.cut_nodes == [s]


def test_backward_through_only_a_cut_names_it_and_teaches():
    mu, sigma = normal_params()
    s = D.Normal(mu, sigma).sample((4,), rng=np.random.default_rng(0))
    loss = ((s - 1.0) ** 2).mean()
    with pytest.raises(RuntimeError) as error:
        loss.backward()
    message = str(error.value)
    assert "Normal.sample" in message and "(4, 2)" in message
    assert "rsample()" in message and "score-function" in message
    assert mu.grad is None and sigma.grad is None


def test_rsample_gives_the_reparameterization_gradients():
    mu, sigma = normal_params()
    z = D.Normal(mu, sigma).rsample(rng=np.random.default_rng(1))
    eps = (z.data - mu.data) / sigma.data
    z.backward(np.ones(2))
    np.testing.assert_array_equal(mu.grad, [1.0, 1.0])      # dz/dmu = 1
    np.testing.assert_allclose(sigma.grad, eps, rtol=1e-12)  # dz/dsigma = eps


def test_sample_and_rsample_draw_the_same_value_for_the_same_noise():
    mu, sigma = normal_params()
    q = D.Normal(mu, sigma)
    np.testing.assert_array_equal(q.sample((3,), rng=np.random.default_rng(7)).data,
                                  q.rsample((3,), rng=np.random.default_rng(7)).data)


def test_partial_cut_is_recorded_on_the_loss():
    mu, sigma = normal_params()
    s = D.Normal(mu, sigma).sample(rng=np.random.default_rng(0))
    loss = (s * s).sum() + (mu * mu).sum()  # sigma is reachable only through the cut
    loss.backward()
    np.testing.assert_array_equal(mu.grad, 2 * mu.data)
    assert sigma.grad is None
    assert [node.op for node in loss.cut_nodes] == ["Normal.sample"]


def test_no_cut_recorded_for_constant_parameters_or_detach():
    s = D.Normal(0.0, 1.0).sample((3,), rng=np.random.default_rng(0))
    assert s.cut_nodes == []  # nothing to lose: the parameters are constants
    mu, sigma = normal_params()
    cost = (D.Normal(mu, sigma).sample(rng=np.random.default_rng(0)) ** 2).detach()
    assert cost.cut_nodes == []  # detach() is a deliberate cut


def test_sample_under_no_grad_records_no_cut():
    mu, sigma = normal_params()
    with no_grad():
        s = D.Normal(mu, sigma).sample(rng=np.random.default_rng(0))
    assert s.cut_nodes == []


def test_rsample_noise_is_a_labelled_input_leaf():
    mu, sigma = normal_params()
    z = D.Normal(mu, sigma).rsample(rng=np.random.default_rng(0))
    product = z.parents[1]          # z = mu + (sigma * eps)
    eps = product.parents[1]
    assert eps.is_leaf and not eps.requires_grad
    assert eps.name == "eps ~ N(0, 1)"
