"""The reparameterization trick's simplest identity, for every input hypothesis can find.

For z = mu + sigma * eps, with eps a constant (the noise), the chain rule gives

    dz/dmu = 1,        dz/dsigma = eps,

exactly: backward multiplies the starting gradient 1 by 1 and by eps, which rounds nothing. The
same holds for ``Normal(mu, sigma).rsample()``, which builds exactly this expression; there eps
is recovered from the sample as (z - mu) / sigma, which is eps up to the rounding of z.
"""
import numpy as np
from hypothesis import given, strategies as st

import tinygrad_reparam.distributions as D
from tinygrad_reparam import Tensor
from tinygrad_reparam.testing import float_arrays, positive_scales

ROUNDING = np.finfo(np.float64).eps  # 2^-52


@given(mu=float_arrays(shape=()), sigma=positive_scales(shape=()),
       eps=float_arrays(shape=(), low=-5.0, high=5.0))
def test_dz_dmu_is_one_and_dz_dsigma_is_eps_exactly(mu, sigma, eps):
    mu_t, sigma_t = Tensor(mu, requires_grad=True), Tensor(sigma, requires_grad=True)
    z = mu_t + sigma_t * Tensor(eps)
    z.backward()
    assert mu_t.grad == 1.0
    assert sigma_t.grad == eps


@given(mu=float_arrays(shape=()), sigma=positive_scales(shape=()), seed=st.integers(0, 2**32 - 1))
def test_normal_rsample_has_dz_dmu_one_and_dz_dsigma_eps(mu, sigma, seed):
    mu_t, sigma_t = Tensor(mu, requires_grad=True), Tensor(sigma, requires_grad=True)
    z = D.Normal(mu_t, sigma_t).rsample(rng=np.random.default_rng(seed))
    z.backward()
    assert mu_t.grad == 1.0
    eps = (z.item() - mu) / sigma
    # z carries the rounding of sigma * eps and of the sum: a few units of |mu| + |z| in the last
    # place, divided by sigma when eps is recovered from it
    rounding = 4 * ROUNDING * (abs(mu) + abs(z.item())) / sigma
    assert abs(sigma_t.grad - eps) <= rounding
    # and it is the generator's draw itself, bit for bit
    assert sigma_t.grad == np.random.default_rng(seed).standard_normal()
