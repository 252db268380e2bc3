"""Sample-quality metrics: how far apart are two clouds of points?

A generative model is judged by comparing its samples with fresh data. The energy distance
(Szekely & Rizzo, 2013, "Energy statistics: a class of statistics based on distances") does this
with nothing but Euclidean distances between points. For random vectors X ~ P and Y ~ Q,

    D^2(P, Q) = 2 E|X - Y| - E|X - X'| - E|Y - Y'|,

with X' an independent copy of X and Y' of Y. D^2 >= 0, and D^2 = 0 exactly when P = Q. In one
dimension it is twice the Cramer distance, 2 * integral (F(t) - G(t))^2 dt, between the CDFs.

``energy_distance(x, y)`` computes it from samples, exactly (every pair of points, no random
subsets), so the same samples always give the same number. Each expectation becomes a mean over
pairs of points:

- ``unbiased=True`` (the default): the within-sample means skip the zero distance of each point
  to itself (divide by n (n - 1)). The result is an unbiased estimate of D^2: two samples from
  the same law give a number that is zero on average (it can come out slightly negative), and
  this number is the noise floor against which a model's samples can be read.
- ``unbiased=False``: every pair, including a point with itself (divide by n^2): the energy
  statistic of Szekely & Rizzo, always >= 0 but biased upwards by about E|X - X'| / n.

The cost is O(n m d) time (a second for 5000 points against 5000 in 2-D); memory stays small
because the distance matrices are summed a block of rows at a time.
"""
from __future__ import annotations

import numpy as np

from tinygrad_reparam import checks


def pairwise_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The (n, m) matrix of Euclidean distances |x_i - y_j| between the rows of x and of y.

    Summed coordinate by coordinate, (x_ik - y_jk)^2, rather than through |x|^2 + |y|^2 - 2 x.y,
    which loses all precision for nearby points and can go negative under the square root.
    """
    squared = np.zeros((x.shape[0], y.shape[0]))
    for k in range(x.shape[1]):
        squared += (x[:, k, None] - y[None, :, k]) ** 2
    return np.sqrt(squared)


def mean_distance(x: np.ndarray, y: np.ndarray, block: int = 1000) -> float:
    """The mean of |x_i - y_j| over all n * m pairs, a block of rows of x at a time, so that
    memory stays at block * m numbers however many points there are."""
    total = 0.0
    for first in range(0, x.shape[0], block):
        total += pairwise_distances(x[first:first + block], y).sum()
    return total / (x.shape[0] * y.shape[0])


def energy_distance(x, y, unbiased: bool = True) -> float:
    """The squared energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| between two samples.

    ``x`` has shape (n, d) and ``y`` shape (m, d): rows are points (a 1-D array is read as n
    points in one dimension). See the module docstring for ``unbiased``.
    """
    x, y = _as_points(x, "x"), _as_points(y, "y")
    unbiased = checks.flag(unbiased, "energy_distance: unbiased")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"energy_distance: x has points of dimension {x.shape[1]} and y of "
                         f"dimension {y.shape[1]}; they must match")
    n, m = x.shape[0], y.shape[0]
    between = mean_distance(x, y)                       # E|X - Y|
    within_x = mean_distance(x, x)                      # E|X - X'|, over all n^2 pairs ...
    within_y = mean_distance(y, y)
    if unbiased:  # ... the n zeros |x_i - x_i| left out: n^2 pairs -> n (n - 1)
        within_x *= n / (n - 1)
        within_y *= m / (m - 1)
    return float(2.0 * between - within_x - within_y)


def _as_points(values, name: str) -> np.ndarray:
    points = checks.float_array(values, f"energy_distance: {name}").astype(np.float64, copy=False)
    if points.ndim == 1:
        points = points[:, None]
    if points.ndim != 2:
        raise ValueError(f"energy_distance: {name} must have shape (points, dimension), got "
                         f"shape {points.shape}")
    if points.shape[0] < 2:
        raise ValueError(f"energy_distance: {name} needs at least 2 points, got {points.shape[0]}")
    if not np.isfinite(points).all():
        raise ValueError(f"energy_distance: {name} contains NaN or infinity")
    return points
