"""Distributions: ``sample()`` cuts the graph, ``rsample()`` is z = loc + scale * eps and does not.

Import as ``import tinygrad_reparam.distributions as D``. Each family lives in a small file of
its own and registers its closed-form KL divergences there. What families share lives once:
``base.py`` (drawing, the parameter check driven by each family's ``arg_constraints`` table from
``constraints.py``, the shape check of ``log_prob``), ``location_scale.py`` (loc and scale, and
z = loc + scale * eps) and ``probs_logits.py`` (families given by probs or by logits).
"""
from tinygrad_reparam.distributions import constraints
from tinygrad_reparam.distributions.base import Distribution
from tinygrad_reparam.distributions.kl import kl_divergence, register_kl
from tinygrad_reparam.distributions.location_scale import LocationScale
from tinygrad_reparam.distributions.normal import Normal
from tinygrad_reparam.distributions.laplace import Laplace
from tinygrad_reparam.distributions.logistic import Logistic
from tinygrad_reparam.distributions.gumbel import Gumbel
from tinygrad_reparam.distributions.lognormal import LogNormal
from tinygrad_reparam.distributions.uniform import Uniform
from tinygrad_reparam.distributions.bernoulli import Bernoulli
from tinygrad_reparam.distributions.categorical import Categorical
from tinygrad_reparam.distributions.relaxed_bernoulli import RelaxedBernoulli
from tinygrad_reparam.distributions.relaxed_categorical import RelaxedOneHotCategorical
from tinygrad_reparam.distributions.tanh_normal import TanhNormal
from tinygrad_reparam.distributions.gamma import Gamma
from tinygrad_reparam.distributions.exponential import Exponential
from tinygrad_reparam.distributions.chi2 import Chi2
from tinygrad_reparam.distributions.beta import Beta
from tinygrad_reparam.distributions.dirichlet import Dirichlet
from tinygrad_reparam.distributions.studentt import StudentT
from tinygrad_reparam.distributions import transforms
from tinygrad_reparam.distributions.independent import Independent
from tinygrad_reparam.distributions.transformed_distribution import TransformedDistribution
from tinygrad_reparam.distributions.multivariate_normal import MultivariateNormal
from tinygrad_reparam.distributions.lowrank_multivariate_normal import LowRankMultivariateNormal

__all__ = [
    "Distribution", "LocationScale", "constraints", "kl_divergence", "register_kl",
    "Normal", "Laplace", "Logistic", "Gumbel", "LogNormal", "Uniform",
    "Bernoulli", "Categorical", "RelaxedBernoulli", "RelaxedOneHotCategorical", "TanhNormal",
    "Gamma", "Exponential", "Chi2", "Beta", "Dirichlet", "StudentT",
    "transforms", "Independent", "TransformedDistribution",
    "MultivariateNormal", "LowRankMultivariateNormal",
]
