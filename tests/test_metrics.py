"""The energy distance: against a brute-force double loop, the 1-D Cramer identity, a closed-form
population value, and the (un)biasedness its docstring promises."""
import math

import numpy as np
import pytest

from tinygrad_reparam.metrics import energy_distance, mean_distance, pairwise_distances


def brute_force_energy_distance(x, y, unbiased):
    """Every pair by hand, straight from 2 E|X - Y| - E|X - X'| - E|Y - Y'|."""
    def mean_over_pairs(a, b, skip_self):
        total, count = 0.0, 0
        for i in range(len(a)):
            for j in range(len(b)):
                if skip_self and i == j:
                    continue
                total += math.sqrt(sum((a[i][k] - b[j][k]) ** 2 for k in range(len(a[i]))))
                count += 1
        return total / count

    return (2 * mean_over_pairs(x, y, False) - mean_over_pairs(x, x, unbiased)
            - mean_over_pairs(y, y, unbiased))


@pytest.mark.parametrize("unbiased", [True, False])
def test_matches_a_double_loop(unbiased):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((7, 3)), rng.standard_normal((5, 3)) + 0.5
    assert energy_distance(x, y, unbiased=unbiased) == pytest.approx(
        brute_force_energy_distance(x.tolist(), y.tolist(), unbiased), rel=1e-12)


def test_in_one_dimension_it_is_twice_the_cramer_distance():
    """V-statistic form: 2 * integral (F_n(t) - G_m(t))^2 dt, exact for step-function CDFs."""
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal(40), rng.standard_normal(30) * 2 + 1
    knots = np.sort(np.concatenate([x, y]))
    f = np.searchsorted(np.sort(x), knots[:-1], side="right") / len(x)
    g = np.searchsorted(np.sort(y), knots[:-1], side="right") / len(y)
    cramer = np.sum((f - g) ** 2 * np.diff(knots))
    assert energy_distance(x, y, unbiased=False) == pytest.approx(2 * cramer, rel=1e-10)


def test_zero_for_the_same_points_and_symmetric_and_shift_invariant():
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((50, 2)), rng.standard_normal((60, 2)) * 1.5
    assert energy_distance(x, x, unbiased=False) == pytest.approx(0.0, abs=1e-12)
    assert energy_distance(x, y) == pytest.approx(energy_distance(y, x), rel=1e-12)
    shift = np.array([3.0, -7.0])
    assert energy_distance(x + shift, y + shift) == pytest.approx(energy_distance(x, y), rel=1e-9)


def test_population_value_for_two_shifted_normals():
    """X ~ N(0, 1), Y ~ N(d, 1): E|X - Y| = E|N(d, 2)| and E|X - X'| = E|Y - Y'| = 2 / sqrt(pi)."""
    d = 1.0
    s = math.sqrt(2.0)
    folded_mean = s * math.sqrt(2 / math.pi) * math.exp(-d**2 / (2 * s**2)) + d * math.erf(d / (s * math.sqrt(2)))
    exact = 2 * folded_mean - 2 * (2 / math.sqrt(math.pi))
    rng = np.random.default_rng(3)
    estimate = energy_distance(rng.standard_normal(3000), rng.standard_normal(3000) + d)
    assert estimate == pytest.approx(exact, rel=0.1)  # exact = 0.2227; sampling sd about 0.01


def test_unbiased_version_averages_to_zero_on_equal_laws_and_the_v_statistic_does_not():
    rng = np.random.default_rng(4)
    n = 100
    pairs = [(rng.standard_normal(n), rng.standard_normal(n)) for _ in range(200)]
    unbiased = np.array([energy_distance(x, y) for x, y in pairs])
    biased = np.array([energy_distance(x, y, unbiased=False) for x, y in pairs])
    standard_error = unbiased.std(ddof=1) / math.sqrt(len(unbiased))
    assert abs(unbiased.mean()) < 4 * standard_error
    # the V-statistic adds (E|X - X'| + E|Y - Y'|) / n = 2 * (2 / sqrt(pi)) / n on average
    assert (biased - unbiased).mean() == pytest.approx(4 / math.sqrt(math.pi) / n, rel=0.05)


def test_blocks_do_not_change_the_mean_distance():
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((25, 2)), rng.standard_normal((9, 2))
    assert mean_distance(x, y, block=4) == pytest.approx(pairwise_distances(x, y).mean(), rel=1e-12)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="dimension 2 .* dimension 3"):
        energy_distance(np.zeros((4, 2)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="at least 2 points"):
        energy_distance(np.zeros((1, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="NaN or infinity"):
        energy_distance(np.array([[0.0, np.nan], [1.0, 1.0]]), np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"shape \(points, dimension\)"):
        energy_distance(np.zeros((2, 2, 2)), np.zeros((4, 2)))
