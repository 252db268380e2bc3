"""The one source of randomness: explicit ``np.random.Generator`` objects.

Every function that draws random numbers takes ``rng=None``. Pass your own generator
(``np.random.default_rng(seed)``) for full control, or leave it out to use the package's default
generator, which ``manual_seed(seed)`` resets. Nothing here touches NumPy's global random state,
so a seed gives the same numbers whatever else your program does.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from tinygrad_reparam import checks

_default_generator = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Reset the package's default generator to ``np.random.default_rng(seed)`` and return it."""
    global _default_generator
    seed = checks.count(seed, "manual_seed: seed", minimum=0)
    _default_generator = np.random.default_rng(seed)
    return _default_generator


def default_generator() -> np.random.Generator:
    """The generator used when a function is called with ``rng=None``."""
    return _default_generator


def get_rng(rng: Optional[np.random.Generator] = None) -> np.random.Generator:
    """``rng`` itself, or the default generator when it is None. Anything else is an error:
    legacy ``np.random.RandomState`` and the global ``np.random.*`` functions are not used."""
    if rng is None:
        return _default_generator
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng must be a numpy.random.Generator (e.g. np.random.default_rng(0)) or None, "
            f"got {type(rng).__name__}"
        )
    return rng


def uniform_open(shape, rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """Uniform noise strictly inside (0, 1), so that log(u) and log(1 - u) are always finite.

    Draws the midpoints (2k + 1) / 2^53 of 2^52 equal bins: exactly representable in float64,
    never 0 or 1, and symmetric (u and 1 - u have the same law), which keeps the logistic and
    Gumbel noise built from it exact in both tails.
    """
    k = get_rng(rng).integers(0, 2**52, size=shape)
    return (2.0 * k + 1.0) / 2.0**53
