"""Planar flows: exact gradients, the log-determinant, the invertibility constraint, and a
density that integrates to one."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import tinygrad_reparam.distributions as D
from tinygrad_reparam import Tensor, concatenate, gradcheck, no_grad
from tinygrad_reparam.flows import NormalizingFlow, PlanarFlow
from tinygrad_reparam.optim import Adam


def planar_layer(dim=2, seed=0, w_dot_u=None):
    """A planar layer with random u, w, b; optionally with u chosen so that w^T u = w_dot_u."""
    rng = np.random.default_rng(seed)
    layer = PlanarFlow(dim, rng, init_scale=1.0)
    layer.b.data[...] = rng.normal(size=1)
    if w_dot_u is not None:
        w = layer.w.data
        layer.u.data += (w_dot_u - w @ layer.u.data) * w / (w @ w)
    return layer


def standard_normal_flow(layers, dim=2, seed=0, init_scale=1.0):
    rng = np.random.default_rng(seed)
    base = D.Normal(np.zeros(dim), np.ones(dim))
    return NormalizingFlow(base, [PlanarFlow(dim, rng, init_scale=init_scale)
                                  for _ in range(layers)])


def numerical_jacobian(f, z, h=1e-6):
    """J[i, j] = d f_i / d z_j at one point z, by central differences."""
    columns = []
    for j in range(len(z)):
        step = np.zeros_like(z)
        step[j] = h
        columns.append((f(z + step) - f(z - step)) / (2 * h))
    return np.stack(columns, axis=1)


def test_planar_layer_passes_gradcheck():
    layer = planar_layer(dim=3, seed=1)
    z = Tensor(np.random.default_rng(2).normal(size=(4, 3)), requires_grad=True)
    params = [Tensor(p.data.copy(), requires_grad=True) for p in (layer.u, layer.w, layer.b)]

    def outputs(z, u, w, b):
        layer.u, layer.w, layer.b = u, w, b
        z_next, log_det = layer(z)
        return concatenate([z_next.reshape(-1), log_det])   # f(z) and log|det J| together

    assert gradcheck(outputs, [z] + params)


def test_flow_elbo_gradient_through_rsample_passes_gradcheck():
    """The pathwise gradient of a one-batch ELBO E[-U(z_K) - log q_K(z_K)] through rsample is
    the exact gradient of that batch's value (same noise every call)."""
    flow = standard_normal_flow(layers=3, seed=3)
    names = [name for name, _ in flow.named_parameters()]
    params = [Tensor(p.data.copy(), requires_grad=True) for p in flow.parameters()]

    def elbo(*tensors):
        for name, tensor in zip(names, tensors):
            _, index, attribute = name.split(".")
            setattr(flow.layers[int(index)], attribute, tensor)
        z, log_q = flow.rsample((5,), rng=np.random.default_rng(4))
        energy = 0.5 * ((z * z).sum(axis=-1).sqrt() - 2.0) ** 2 / 0.16
        return (-energy - log_q).mean()

    assert gradcheck(elbo, params)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("w_dot_u", [None, -0.999, -5.0, 3.0])
def test_log_det_matches_the_numerical_jacobian_determinant(seed, w_dot_u):
    dim = 2 + seed % 3
    layer = planar_layer(dim=dim, seed=seed, w_dot_u=w_dot_u)
    points = np.random.default_rng(100 + seed).normal(scale=2.0, size=(6, dim))
    with no_grad():
        _, log_det = layer(Tensor(points))

        def f(z):
            return layer(Tensor(z))[0].data

        for point, analytic in zip(points, log_det.data):
            sign, numeric = np.linalg.slogdet(numerical_jacobian(f, point))
            assert sign > 0  # orientation kept: the constraint makes f invertible
            assert analytic == pytest.approx(numeric, abs=1e-7)


finite_vectors = arrays(np.float64, 3, elements=st.floats(-30, 30, allow_nan=False))


@given(u=finite_vectors, w=finite_vectors)
def test_u_hat_keeps_w_dot_u_hat_above_minus_one(u, w):
    if w @ w < 1e-6:  # w = 0 has no direction to correct along
        return
    layer = PlanarFlow(3, np.random.default_rng(0))
    layer.u.data[...], layer.w.data[...] = u, w
    with no_grad():
        u_hat, reported = layer.u_hat()
    u_hat = u_hat.data
    w_dot_u_hat = w @ u_hat
    tolerance = 1e-12 * (1 + abs(w @ u) + np.abs(u).sum() * np.abs(w).sum())
    assert w_dot_u_hat >= -1 - tolerance
    # the value is m(w^T u) = -1 + softplus(w^T u), as the layer reports it
    expected = -1 + math.log1p(math.exp(-abs(w @ u))) + max(w @ u, 0.0)
    assert w_dot_u_hat == pytest.approx(expected, abs=tolerance + 1e-9)
    assert float(reported.data) == pytest.approx(expected, abs=1e-12)
    # only u's component along w changed
    change = u_hat - u
    assert np.abs(change - (change @ w) * w / (w @ w)).max() <= 1e-9 * (1 + np.abs(change).max())


def test_the_constraint_is_what_keeps_the_determinant_positive():
    """With the raw u and w^T u < -1 the determinant changes sign somewhere; u_hat fixes it."""
    layer = planar_layer(seed=7, w_dot_u=-4.0)
    z = np.random.default_rng(8).normal(scale=3.0, size=(2000, 2))
    with no_grad():
        pre = (Tensor(z) @ layer.w.reshape(2, 1) + layer.b).tanh().data[:, 0]
    raw_det = 1 + (1 - pre ** 2) * (layer.w.data @ layer.u.data)
    assert raw_det.min() < 0 < raw_det.max()          # not invertible with u itself
    with no_grad():
        _, log_det = layer(Tensor(z))
    assert np.isfinite(log_det.data).all()             # det > 0 everywhere with u_hat


@pytest.mark.parametrize("w_dot_u", [-0.9999, -2.0, 0.0, 20.0])
def test_inverse_undoes_the_layer(w_dot_u):
    layer = planar_layer(seed=11, w_dot_u=w_dot_u)
    z = np.random.default_rng(12).normal(scale=3.0, size=(500, 2))
    with no_grad():
        y = layer(Tensor(z))[0].data
    assert np.abs(layer.inverse(y) - z).max() < 1e-9
    assert layer.inverse(y[0]).shape == (2,)  # a single point works too


@pytest.mark.parametrize("seed", [0, 1])
def test_flow_density_integrates_to_one_on_a_grid(seed):
    """q_K = q_0(f^-1(z)) / |det J| on a 400 x 400 grid over [-10, 10]^2 (midpoint rule).

    (Layers drawn with init_scale=0.7 give smooth densities; a layer with w^T u_hat close to -1
    squeezes mass into ridges too thin for a grid this coarse.)"""
    flow = standard_normal_flow(layers=6, seed=seed, init_scale=0.7)
    edges = np.linspace(-10, 10, 401)
    centres = 0.5 * (edges[1:] + edges[:-1])
    z1, z2 = np.meshgrid(centres, centres)
    log_q = flow.log_prob(np.stack([z1.ravel(), z2.ravel()], axis=-1))
    mass = np.exp(log_q).sum() * (edges[1] - edges[0]) ** 2
    assert mass == pytest.approx(1.0, abs=1e-4)


def test_log_prob_agrees_with_the_log_density_rsample_returns():
    flow = standard_normal_flow(layers=8, seed=6)
    with no_grad():
        z, log_q = flow.rsample((200,), rng=np.random.default_rng(7))
    assert np.allclose(flow.log_prob(z), log_q.data, atol=1e-8)


def test_change_of_variables_matches_a_histogram_of_samples():
    """An independent check of log q_K: the fraction of samples in a box against the integral
    of q_K over it."""
    flow = standard_normal_flow(layers=4, seed=9)
    with no_grad():
        z, _ = flow.rsample((40000,), rng=np.random.default_rng(10))
    z = z.data
    centre = np.median(z, axis=0)                      # a unit box where the samples are
    fraction = (np.abs(z - centre) < 0.5).all(axis=1).mean()
    offsets = (np.arange(100) + 0.5) / 100 - 0.5       # 100 x 100 cell centres in the box
    c0, c1 = np.meshgrid(centre[0] + offsets, centre[1] + offsets)
    integral = np.exp(flow.log_prob(np.stack([c0.ravel(), c1.ravel()], -1))).sum() * 1e-4
    assert fraction == pytest.approx(integral, abs=4 * math.sqrt(integral * (1 - integral) / 40000))


def test_parameters_are_found_and_train():
    flow = standard_normal_flow(layers=3)
    names = [name for name, _ in flow.named_parameters()]
    assert names == [f"layers.{k}.{p}" for k in range(3) for p in ("u", "w", "b")]
    optimizer = Adam(flow.parameters(), lr=0.05)
    rng = np.random.default_rng(0)

    def negative_elbo():  # target N((3, -1), 0.5^2 I): the flow must move its mass there
        z, log_q = flow.rsample((256,), rng=rng)
        energy = (((z - np.array([3.0, -1.0])) / 0.5) ** 2).sum(axis=-1) / 2
        return (energy + log_q).mean()

    before = np.mean([negative_elbo().item() for _ in range(5)])
    for _ in range(200):
        optimizer.zero_grad()
        negative_elbo().backward()
        optimizer.step()
    after = np.mean([negative_elbo().item() for _ in range(5)])
    log_z = math.log(2 * math.pi * 0.25)
    assert after < before - 1.0
    assert after > -log_z - 0.05   # -ELBO >= -log Z, up to Monte Carlo noise
    assert after < -log_z + 0.3    # and close to it: the flow found the target


def test_a_flow_without_layers_is_its_base():
    base = D.Normal(np.zeros(2), np.ones(2))
    flow = NormalizingFlow(base, [])
    z, log_q = flow.rsample((10,), rng=np.random.default_rng(0))
    assert np.allclose(log_q.data, base.log_prob(z).sum(axis=-1).data)
    assert flow.parameters() == []


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="dim must be a positive integer"):
        PlanarFlow(0)
    with pytest.raises(ValueError, match="batch shape"):
        NormalizingFlow(D.Normal(0.0, 1.0), [PlanarFlow(1)])
    with pytest.raises(ValueError, match=r"layers \[1\] act on \[3\] dimensions"):
        NormalizingFlow(D.Normal(np.zeros(2), np.ones(2)), [PlanarFlow(2), PlanarFlow(3)])
    with pytest.raises(ValueError, match="3 coordinates on its last axis"):
        PlanarFlow(3)(np.zeros((4, 2)))
