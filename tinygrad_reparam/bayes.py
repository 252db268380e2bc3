"""Bayes by Backprop (Blundell et al., 2015): a distribution over every weight, trained by the
reparameterization trick.

Each weight w of a ``BayesianLinear`` layer has its own Gaussian q(w) = N(mu, sigma^2), with the
standard deviation written as sigma = softplus(rho) = log(1 + e^rho), so that the free parameter
rho can be any real number while sigma stays positive. Every forward pass draws fresh weights

    w = mu + softplus(rho) * eps,        eps ~ N(0, 1),

with ``D.Normal(mu, softplus(rho)).rsample()``: the randomness sits in the parameter-free leaf eps,
and the gradient of the loss reaches mu and rho through ordinary ops,

    dw/dmu = 1,        dw/drho = softplus'(rho) * eps = sigmoid(rho) * eps.

Training maximizes the evidence lower bound over the data D = {(x_i, y_i)}, i = 1..N,

    ELBO = E_q[ sum_i log p(y_i | x_i, w) ] - KL(q(w) || p(w)),

whose first term is estimated with one (or a few) weight samples per minibatch; in a minibatch
of size B the per-example loss is  KL / N - (1/B) sum_{i in batch} log p(y_i | x_i, w).

The prior. The paper's preferred prior is a scale mixture of two Gaussians, whose KL to q has no
closed form and is estimated by Monte Carlo from the same weight sample. Here the prior is one
Gaussian, p(w) = N(0, prior_sigma^2), so that

    KL(q || p) = sum_j  log(prior_sigma / sigma_j) + (sigma_j^2 + mu_j^2) / (2 prior_sigma^2) - 1/2

is exact (``kl()``, through ``D.kl_divergence``): one fewer source of noise in the gradient, and a
number the tests can check against its Monte Carlo estimate E_q[log q(w) - log p(w)].

Biases are treated exactly like weights (each has its own mu and rho, and the same prior).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

from tinygrad_reparam import checks, distributions as D
from tinygrad_reparam.nn import ACTIVATIONS, Module
from tinygrad_reparam.random import get_rng
from tinygrad_reparam.tensor import Tensor


def inverse_softplus(sigma: float) -> float:
    """The rho with softplus(rho) = sigma: rho = log(e^sigma - 1)."""
    sigma = checks.number(sigma, "inverse_softplus: sigma", 0, math.inf,
                          lower_open=True, upper_open=True)
    # log(e^sigma - 1) = sigma + log(1 - e^-sigma): the same number, but e^sigma would overflow
    # for sigma > 709, and 1 - e^-sigma = -expm1(-sigma) stays exact down to the tiniest sigma.
    return sigma + math.log(-math.expm1(-sigma))


class BayesianLinear(Module):
    """An affine layer ``y = x @ W + b`` whose W and b are drawn from q = N(mu, softplus(rho)^2)
    afresh on every call.

    Parameters (leaf Tensors, shapes as in ``nn.Linear``): ``weight_mu``, ``weight_rho`` of shape
    ``(in_features, out_features)`` and ``bias_mu``, ``bias_rho`` of shape ``(out_features,)``.
    Initialisation: the means as ``nn.Linear``'s weights, Uniform(-k, k) with
    k = 1 / sqrt(in_features), drawn from ``rng`` (weight first, then bias); every rho at
    ``inverse_softplus(init_sigma)``, so each weight starts almost deterministic.

    ``rng`` is also the default source of the weight noise: ``layer(x)`` draws eps from it, and
    ``layer(x, rng=other)`` from ``other`` instead (pass a freshly seeded generator to repeat the
    same noise). With ``rng=None`` both come from the package's default generator.
    """

    def __init__(self, in_features: int, out_features: int, prior_sigma: float = 1.0,
                 rng: Optional[np.random.Generator] = None, init_sigma: float = 1e-2):
        self.in_features = checks.count(in_features, "BayesianLinear: in_features")
        self.out_features = checks.count(out_features, "BayesianLinear: out_features")
        self.prior_sigma = checks.number(prior_sigma, "BayesianLinear: prior_sigma", 0, math.inf,
                                         lower_open=True, upper_open=True)
        init_sigma = checks.number(init_sigma, "BayesianLinear: init_sigma", 0, math.inf,
                                   lower_open=True, upper_open=True)
        self.rng = rng
        init_rng = get_rng(rng)
        bound = 1.0 / math.sqrt(self.in_features)
        rho = inverse_softplus(init_sigma)
        weight_shape = (self.in_features, self.out_features)
        self.weight_mu = Tensor(init_rng.uniform(-bound, bound, size=weight_shape), requires_grad=True)
        self.weight_rho = Tensor(np.full(weight_shape, rho), requires_grad=True)
        self.bias_mu = Tensor(init_rng.uniform(-bound, bound, size=self.out_features),
                              requires_grad=True)
        self.bias_rho = Tensor(np.full(self.out_features, rho), requires_grad=True)

    # The variational posterior and the prior ------------------------------------------------------
    def weight_posterior(self) -> D.Normal:
        """q(W) = N(weight_mu, softplus(weight_rho)^2), one independent Gaussian per entry."""
        return D.Normal(self.weight_mu, self.weight_rho.softplus())

    def bias_posterior(self) -> D.Normal:
        """q(b) = N(bias_mu, softplus(bias_rho)^2)."""
        return D.Normal(self.bias_mu, self.bias_rho.softplus())

    def prior(self) -> D.Normal:
        """p(w) = N(0, prior_sigma^2) for every weight and bias."""
        return D.Normal(0.0, self.prior_sigma)

    # Sampling and the forward pass ---------------------------------------------------------------
    def sample_parameters(self, rng: Optional[np.random.Generator] = None) -> tuple:
        """(W, b) = (mu + softplus(rho) * eps) for the weight, then the bias: connected to mu and
        rho, so dW/dmu = 1 and dW/drho = sigmoid(rho) * eps."""
        rng = get_rng(rng if rng is not None else self.rng)
        weight = self.weight_posterior().rsample(rng=rng)
        bias = self.bias_posterior().rsample(rng=rng)
        return weight, bias

    def forward(self, x, rng: Optional[np.random.Generator] = None) -> Tensor:
        """x @ W + b with W, b freshly drawn from q: each call is a different network."""
        if not isinstance(x, Tensor):
            x = Tensor(x)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"{self!r}: input of shape {x.shape} should have {self.in_features} "
                             f"features on its last axis (rows are examples)")
        weight, bias = self.sample_parameters(rng)
        return x @ weight + bias

    def kl(self) -> Tensor:
        """KL(q || p) summed over all weights and biases, in closed form (a scalar Tensor)."""
        prior = self.prior()
        return (D.kl_divergence(self.weight_posterior(), prior).sum()
                + D.kl_divergence(self.bias_posterior(), prior).sum())

    def __repr__(self) -> str:
        return (f"BayesianLinear(in_features={self.in_features}, out_features={self.out_features}, "
                f"prior_sigma={self.prior_sigma})")


class BayesianMLP(Module):
    """``BayesianLinear`` layers between consecutive ``sizes``, with the activation after every
    layer except the last. Each call draws a whole new set of weights (one per layer, in order,
    from ``rng``); ``kl()`` is the sum of the layers' KL terms."""

    def __init__(self, sizes: Sequence[int], activation: str = "relu", prior_sigma: float = 1.0,
                 rng: Optional[np.random.Generator] = None, init_sigma: float = 1e-2):
        self.sizes = checks.layer_sizes(sizes, "BayesianMLP")
        if not isinstance(activation, str) or activation not in ACTIVATIONS:
            raise ValueError(f"BayesianMLP: unknown activation {activation!r}; choose one of "
                             f"{sorted(ACTIVATIONS)}")
        self.activation = activation
        self.layers = [BayesianLinear(n_in, n_out, prior_sigma=prior_sigma, rng=rng,
                                      init_sigma=init_sigma)
                       for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:])]

    def forward(self, x, rng: Optional[np.random.Generator] = None) -> Tensor:
        activation = ACTIVATIONS[self.activation]
        for layer in self.layers[:-1]:
            x = activation(layer(x, rng=rng))
        return self.layers[-1](x, rng=rng)

    def kl(self) -> Tensor:
        """KL(q || p) of all layers together: the layers' weights are independent under q and p."""
        total = self.layers[0].kl()
        for layer in self.layers[1:]:
            total = total + layer.kl()
        return total

    def __repr__(self) -> str:
        return (f"BayesianMLP(sizes={list(self.sizes)}, activation={self.activation!r}, "
                f"prior_sigma={self.layers[0].prior_sigma})")
