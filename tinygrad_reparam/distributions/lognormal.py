"""LogNormal(loc, scale): z = exp(x) with x ~ Normal(mu, sigma), a law on the positive reals.

The reparameterization is the Normal's followed by one more ordinary op:

    z = exp(mu + sigma eps),  eps ~ N(0, 1),      dz/dmu = z,   dz/dsigma = z eps.

Change of variables (x = log z, dx/dz = 1/z) gives the density:

    log q(z) = log N(log z; mu, sigma) - log z     for z > 0,   -inf for z <= 0.

    E[z] = exp(mu + sigma^2 / 2),    Var[z] = (exp(sigma^2) - 1) exp(2 mu + sigma^2),
    H[q] = mu + 1/2 + log(sigma) + log(2 pi) / 2   (the Normal's entropy plus E[log z] = mu),
    KL(p || q) = KL(Normal(mu_p, sigma_p) || Normal(mu_q, sigma_q))   (KL is invariant under
    the same invertible map, here exp, applied to both).

    F(z) = Phi((log z - mu) / sigma),        F^-1(p) = exp(mu + sigma Phi^-1(p)).

As in PyTorch, it is the TransformedDistribution of Normal(mu, sigma) through ExpTransform: the
draws, ``log_prob`` (-inf for z <= 0), ``cdf`` and ``icdf`` come from there, and this file adds
the closed forms above. ``loc`` and ``scale`` are the mean and standard deviation of log z, not
of z.
"""
from __future__ import annotations

from tinygrad_reparam.distributions.kl import kl_divergence, register_kl
from tinygrad_reparam.distributions.transformed_normal import TransformedNormal
from tinygrad_reparam.distributions.transforms import ExpTransform
from tinygrad_reparam.tensor import Tensor


class LogNormal(TransformedNormal):
    """exp of a Normal(loc, scale): ``loc`` (finite) and ``scale`` (> 0) are the parameters of log z.

    ``log_prob(value)`` is -inf (no NaN, no warning) for value <= 0, outside the support, and
    its gradient with respect to the parameters is 0 there; ``cdf`` is 0 there.
    """

    def __init__(self, loc, scale, validate_args: bool = True):
        super().__init__(loc, scale, ExpTransform(), validate_args)

    def entropy(self) -> Tensor:
        return self.base_dist.entropy() + self.loc  # H[log z] + E[log z]

    @property
    def mean(self) -> Tensor:
        return (self.loc + 0.5 * self.scale ** 2).exp()

    @property
    def variance(self) -> Tensor:
        s2 = self.scale ** 2
        return (s2.exp() - 1.0) * (2.0 * self.loc + s2).exp()


@register_kl(LogNormal, LogNormal)
def _kl_lognormal_lognormal(p: LogNormal, q: LogNormal) -> Tensor:
    """KL between the laws of log z: the Normal-Normal closed form."""
    return kl_divergence(p.base_dist, q.base_dist)
