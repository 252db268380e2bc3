"""KL divergence KL(p || q) = E_p[log p(z) - log q(z)], analytic where a closed form exists.

``kl_divergence(p, q)`` looks the pair of types up in a registry. Each family file registers its
own closed forms with the ``register_kl`` decorator, next to the distribution they belong to, e.g.

    @register_kl(Normal, Normal)
    def _kl_normal_normal(p, q): ...

A pair with no closed form raises NotImplementedError naming both types; estimate it by Monte
Carlo instead: ``(p.log_prob(z) - q.log_prob(z)).mean(axis=0)`` with ``z = p.rsample((n,))``.
"""
from __future__ import annotations

from typing import Callable, Dict, Tuple

from tinygrad_reparam.distributions.base import Distribution
from tinygrad_reparam.tensor import Tensor

_KL_REGISTRY: Dict[Tuple[type, type], Callable] = {}


def register_kl(type_p: type, type_q: type) -> Callable:
    """Decorator: ``fn(p, q)`` computes KL(p || q) for p of type_p and q of type_q."""
    if not (isinstance(type_p, type) and isinstance(type_q, type)):
        raise TypeError(f"register_kl: type_p and type_q must be classes (e.g. Normal, Normal), "
                        f"got {type_p!r} and {type_q!r}")
    def register(fn: Callable) -> Callable:
        _KL_REGISTRY[(type_p, type_q)] = fn
        return fn
    return register


def kl_divergence(p, q) -> Tensor:
    """KL(p || q), elementwise over the broadcast batch shape of p and q."""
    if not (isinstance(p, Distribution) and isinstance(q, Distribution)):
        raise TypeError(f"kl_divergence: p and q must be distributions, got {type(p).__name__} "
                        f"and {type(q).__name__}")
    # Look through the parent classes too, so a subclass of Normal finds Normal's closed form.
    fn = next((_KL_REGISTRY[(a, b)] for a in type(p).__mro__ for b in type(q).__mro__
               if (a, b) in _KL_REGISTRY), None)
    if fn is None:
        raise NotImplementedError(
            f"kl_divergence({type(p).__name__}, {type(q).__name__}): no closed form is registered "
            f"for this pair. Estimate it by Monte Carlo: z = p.rsample((n,)) (or p.sample), then "
            f"(p.log_prob(z) - q.log_prob(z)).mean(axis=0); or register one with "
            f"@register_kl({type(p).__name__}, {type(q).__name__})."
        )
    return fn(p, q)
