"""Distributions: ``sample()`` cuts the graph, ``rsample()`` is z = loc + scale * eps and does not.

Import as ``import tinygrad_reparam.distributions as D``.
"""
from tinygrad_reparam.distributions.base import Distribution
from tinygrad_reparam.distributions.kl import kl_divergence, register_kl
from tinygrad_reparam.distributions.location_scale import LocationScale
from tinygrad_reparam.distributions.normal import Normal

__all__ = ["Distribution", "LocationScale", "Normal", "kl_divergence", "register_kl"]
