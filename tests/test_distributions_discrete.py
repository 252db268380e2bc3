"""Discrete families and their relaxations: Bernoulli, Categorical, RelaxedBernoulli (Binary
Concrete) and RelaxedOneHotCategorical (Concrete / Gumbel-Softmax), with their KLs.

Exact values at the edges (log 0 = -inf, 0 log 0 = 0, no NaN, no warnings), chi-square tests of
the samplers and of the Gumbel-max trick (with a check that wrong logits fail the same test),
densities that integrate to 1, straight-through gradients, gradcheck, and the error messages:
that the relaxations draw the Gumbel and Logistic families' own noise, that each family's
``arg_constraints`` table drives its parameter checks, and that log_prob names misfit shapes.
"""
import contextlib
import inspect
import math
import warnings

import numpy as np
import pytest

from tinygrad_reparam import Tensor, gradcheck
from tinygrad_reparam.distributions.bernoulli import Bernoulli
from tinygrad_reparam.distributions.categorical import Categorical
from tinygrad_reparam.distributions.gumbel import Gumbel
from tinygrad_reparam.distributions.kl import kl_divergence
from tinygrad_reparam.distributions.logistic import Logistic
from tinygrad_reparam.distributions.relaxed_bernoulli import RelaxedBernoulli
from tinygrad_reparam.distributions.relaxed_categorical import RelaxedOneHotCategorical
from tinygrad_reparam.random import uniform_open

# Upper 0.1% points of the chi-square distribution, by degrees of freedom.
CHI_SQUARE_CRITICAL_0_1_PERCENT = {1: 10.828, 2: 13.816, 3: 16.266, 4: 18.467}
PROBS_5 = np.array([0.1, 0.2, 0.3, 0.25, 0.15])
N_DRAWS = 20_000


@contextlib.contextmanager
def strict_numerics():
    """Any NumPy divide-by-zero, invalid operation, overflow or Python warning is an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(divide="raise", invalid="raise", over="raise"):
            yield


def chi_square(counts, probs):
    expected = counts.sum() * np.asarray(probs)
    return float(((counts - expected) ** 2 / expected).sum())


def assert_frequencies_match(indices, probs):
    counts = np.bincount(np.asarray(indices, dtype=np.int64).reshape(-1), minlength=len(probs))
    statistic = chi_square(counts, probs)
    assert statistic < CHI_SQUARE_CRITICAL_0_1_PERCENT[len(probs) - 1], (counts, statistic)
    return statistic


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def param(values):
    return Tensor(np.asarray(values, dtype=np.float64), requires_grad=True)


# =================================================================================================
# Bernoulli
def test_bernoulli_log_prob_is_exact_at_p_equal_0_and_1_without_nan_or_warnings():
    with strict_numerics():
        certain = Bernoulli(probs=1.0)
        assert certain.log_prob(0).item() == -np.inf
        assert certain.log_prob(1).item() == 0.0
        never = Bernoulli(probs=0.0)
        assert never.log_prob(1).item() == -np.inf
        assert never.log_prob(0).item() == 0.0
        # and the gradient through the edges is not NaN
        p = param([0.0, 1.0, 0.0, 1.0])
        Bernoulli(probs=p).log_prob(np.array([0.0, 1.0, 1.0, 0.0])).backward(np.ones(4))
    assert np.all(np.isfinite(p.grad))
    np.testing.assert_allclose(p.grad[:2], [-1.0, 1.0])  # d log(1-p)/dp at 0, d log p/dp at 1


def test_bernoulli_log_prob_from_extreme_logits_is_finite_and_right():
    logits = np.array([1000.0, -1000.0, 0.5, -30.0])
    with strict_numerics():
        d = Bernoulli(logits=logits)
        log_p1, log_p0 = d.log_prob(1).data, d.log_prob(0).data
    # log p = -log(1 + e^-l), log(1 - p) = -log(1 + e^l)
    np.testing.assert_allclose(log_p1, -np.logaddexp(0, -logits), rtol=1e-14, atol=0)
    np.testing.assert_allclose(log_p0, -np.logaddexp(0, logits), rtol=1e-14, atol=0)
    assert log_p1[1] == -1000.0 and log_p0[0] == -1000.0
    assert log_p1[0] == 0.0 and log_p0[1] == 0.0


def test_bernoulli_log_prob_matches_the_formula_for_both_parameterizations():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.01, 0.99, size=(4, 3))
    values = rng.integers(0, 2, size=(5, 4, 3)).astype(float)
    expected = values * np.log(p) + (1 - values) * np.log(1 - p)
    np.testing.assert_allclose(Bernoulli(probs=p).log_prob(values).data, expected, rtol=1e-12)
    logits = np.log(p) - np.log1p(-p)
    np.testing.assert_allclose(Bernoulli(logits=logits).log_prob(values).data, expected, rtol=1e-12)
    assert Bernoulli(probs=p).log_prob(values).shape == (5, 4, 3)


def test_bernoulli_log_prob_outside_0_1_is_minus_inf_and_nan_is_nan():
    with strict_numerics():
        out = Bernoulli(probs=0.3).log_prob(np.array([0.5, 2.0, -1.0, 1e-9])).data
        assert np.all(out == -np.inf)
        assert np.isnan(Bernoulli(logits=0.3).log_prob(np.nan).item())


def test_bernoulli_entropy_is_zero_at_the_edges_and_right_inside():
    with strict_numerics():
        p = param([0.0, 1.0, 0.3])
        entropy = Bernoulli(probs=p).entropy()
        entropy.sum().backward()
        from_logits = Bernoulli(logits=[1000.0, -1000.0, np.inf, -np.inf, 0.0]).entropy().data
    np.testing.assert_array_equal(entropy.data[:2], [0.0, 0.0])
    assert entropy.data[2] == pytest.approx(-(0.3 * math.log(0.3) + 0.7 * math.log(0.7)), rel=1e-14)
    assert np.all(np.isfinite(p.grad))
    assert p.grad[2] == pytest.approx(math.log(0.7 / 0.3), rel=1e-12)  # dH/dp = log((1-p)/p)
    np.testing.assert_allclose(from_logits, [0, 0, 0, 0, math.log(2)], atol=1e-300, rtol=1e-14)


def test_bernoulli_mean_variance_probs_and_logits():
    p = np.array([0.0, 0.25, 1.0])
    d = Bernoulli(probs=p)
    np.testing.assert_array_equal(d.mean.data, p)
    np.testing.assert_allclose(d.variance.data, p * (1 - p))
    with strict_numerics():
        logits = d.logits.data
    np.testing.assert_allclose(logits, [-np.inf, math.log(1 / 3), np.inf], rtol=1e-15)
    # back through logits: the probabilities come back, edges included
    np.testing.assert_allclose(Bernoulli(logits=logits).probs.data, p, rtol=1e-15, atol=0)
    # logits from a tiny probability keep full relative accuracy (log p - log1p(-p))
    assert Bernoulli(probs=1e-300).logits.item() == pytest.approx(math.log(1e-300), rel=1e-15)
    assert Bernoulli(probs=1e-10).log_prob(0).item() == pytest.approx(math.log1p(-1e-10), rel=1e-15)
    l = np.array([-40.0, 0.3, 40.0])
    d = Bernoulli(logits=l)
    np.testing.assert_allclose(d.probs.data, sigmoid(l), rtol=1e-15)
    np.testing.assert_allclose(d.variance.data, sigmoid(l) * sigmoid(-l), rtol=1e-14)  # not 0 at 40
    assert d.logits is d.parameters()[0]


@pytest.mark.parametrize("family", [Bernoulli, Categorical])
def test_rsample_on_a_discrete_family_says_what_to_use_instead(family):
    d = Bernoulli(probs=0.3) if family is Bernoulli else Categorical(probs=[0.3, 0.7])
    with pytest.raises(NotImplementedError) as error:
        d.rsample((2,))
    message = str(error.value)
    assert family.__name__ in message and "score-function" in message and "Relaxed" in message


def test_bernoulli_sample_is_a_labelled_cut_and_backward_through_it_points_to_rsample():
    p = param([0.2, 0.9])
    s = Bernoulli(probs=p).sample((3,), rng=np.random.default_rng(0))
    assert isinstance(s, Tensor) and not s.requires_grad
    assert s.op == "Bernoulli.sample" and s.shape == (3, 2)
    assert set(np.unique(s.data)) <= {0.0, 1.0}
    assert s.display_parents == (p,)
    loss = (s * 2.0).sum()
    with pytest.raises(RuntimeError, match="rsample"):
        loss.backward()


def test_bernoulli_sample_frequencies_and_edges():
    probs = np.array([0.0, 0.1, 0.5, 0.97, 1.0])
    draws = Bernoulli(probs=probs).sample((N_DRAWS,), rng=np.random.default_rng(1)).data
    assert draws.shape == (N_DRAWS, 5)
    assert np.all(draws[:, 0] == 0) and np.all(draws[:, 4] == 1)
    inside = probs[1:4]
    z = (draws[:, 1:4].mean(axis=0) - inside) / np.sqrt(inside * (1 - inside) / N_DRAWS)
    assert np.all(np.abs(z) < 4), z
    # the same law through logits
    from_logits = Bernoulli(logits=np.log(inside) - np.log1p(-inside))
    draws_logits = from_logits.sample((N_DRAWS,), rng=np.random.default_rng(2)).data
    z = (draws_logits.mean(axis=0) - inside) / np.sqrt(inside * (1 - inside) / N_DRAWS)
    assert np.all(np.abs(z) < 4), z


def test_bernoulli_score_function_gradient_flows_into_logits():
    """d/dl E[f(z)] = sum_z P(z) f(z) d log P(z)/dl = sigmoid'(l) (f(1) - f(0))."""
    l = param(0.4)
    d = Bernoulli(logits=l)
    f = {0.0: 3.0, 1.0: -2.0}
    expectation = sum(d.log_prob(z).exp() * f[z] for z in (0.0, 1.0))
    expectation.backward()
    s = sigmoid(0.4)
    assert l.grad == pytest.approx(s * (1 - s) * (f[1.0] - f[0.0]), rel=1e-12)


def test_bernoulli_gradcheck_log_prob_and_entropy():
    values = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    assert gradcheck(lambda l: Bernoulli(logits=l).log_prob(values), [param([0.3, -1.2, 2.5])])
    assert gradcheck(lambda p: Bernoulli(probs=p).log_prob(values), [param([0.3, 0.6, 0.85])])
    assert gradcheck(lambda l: Bernoulli(logits=l).entropy(), [param([0.3, -1.2, 2.5])])
    assert gradcheck(lambda p: Bernoulli(probs=p).entropy(), [param([0.3, 0.6, 0.85])])
    assert gradcheck(lambda p: Bernoulli(probs=p).logits, [param([0.3, 0.6, 0.85])])


# =================================================================================================
# Categorical
def test_categorical_log_prob_picks_log_probabilities_with_exact_minus_inf_for_zeros():
    probs = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    values = np.array([[0.0, 2.0], [2.0, 1.0], [1.0, 0.0]])  # sample_shape (3,) + batch (2,)
    with strict_numerics():
        out = Categorical(probs=probs).log_prob(values).data
    expected = np.array([[math.log(0.5), math.log(0.5)],
                         [-np.inf, math.log(0.3)],
                         [math.log(0.5), math.log(0.2)]])
    np.testing.assert_array_equal(np.isneginf(out), np.isneginf(expected))
    np.testing.assert_allclose(out[np.isfinite(expected)], expected[np.isfinite(expected)], rtol=1e-15)
    # from logits: log_softmax, finite for huge logits
    logits = np.array([1000.0, -1000.0, 0.0])
    with strict_numerics():
        out = Categorical(logits=logits).log_prob(np.array([0.0, 1.0, 2.0])).data
    np.testing.assert_allclose(out, [0.0, -2000.0, -1000.0])
    with strict_numerics():
        masked = Categorical(logits=[0.0, -np.inf, 0.0]).log_prob(np.array([0.0, 1.0])).data
    assert masked[0] == pytest.approx(-math.log(2)) and masked[1] == -np.inf


def test_categorical_log_prob_of_non_indices_is_minus_inf():
    with strict_numerics():
        out = Categorical(probs=[0.25, 0.75]).log_prob(np.array([-1.0, 2.0, 0.5, np.inf, 1.0])).data
        assert np.isnan(Categorical(probs=[0.25, 0.75]).log_prob(np.nan).item())
    np.testing.assert_array_equal(out[:4], -np.inf)
    assert out[4] == pytest.approx(math.log(0.75))


def test_categorical_entropy_with_zero_probabilities_and_from_logits():
    probs = np.array([[0.5, 0.5, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.1, 0.2, 0.3, 0.4]])
    with strict_numerics():
        p = param(probs)
        entropy = Categorical(probs=p).entropy()
        entropy.sum().backward()
        masked = Categorical(logits=[[0.0, 0.0, -np.inf, -np.inf], [1000.0, -1000.0, 0.0, 0.0]]).entropy()
    expected = -np.sum(np.where(probs > 0, probs * np.log(np.where(probs > 0, probs, 1)), 0), axis=-1)
    np.testing.assert_allclose(entropy.data, expected, rtol=1e-14)
    assert entropy.data[1] == 0.0
    assert np.all(np.isfinite(p.grad))
    np.testing.assert_allclose(masked.data, [math.log(2), 0.0], atol=1e-300, rtol=1e-14)


def test_categorical_draw_frequencies_match_probs_chi_square_and_zero_classes_never_appear():
    rng = np.random.default_rng(3)
    batch = np.stack([PROBS_5, PROBS_5[::-1]])
    draws = Categorical(probs=batch)._draw((N_DRAWS,), rng)
    assert draws.shape == (N_DRAWS, 2) and draws.dtype == np.float64
    assert_frequencies_match(draws[:, 0], PROBS_5)
    assert_frequencies_match(draws[:, 1], PROBS_5[::-1])
    # the same probabilities given as logits
    assert_frequencies_match(Categorical(logits=np.log(PROBS_5))._draw((N_DRAWS,), rng), PROBS_5)
    # zero-probability classes, also at the end of the row
    draws = Categorical(probs=[0.0, 0.6, 0.0, 0.4, 0.0])._draw((N_DRAWS,), rng)
    counts = np.bincount(draws.astype(int), minlength=5)
    assert counts[0] == counts[2] == counts[4] == 0
    assert_frequencies_match(draws[draws != 5] // 2, [0.6, 0.4])  # classes 1 -> 0, 3 -> 1


def test_categorical_draw_without_validation_samples_in_proportion_and_stays_in_range():
    probs = np.array([[0.2, 0.3, 0.0], [5e-324, 0.0, 0.0]])  # sums 0.5 and a subnormal
    draws = Categorical(probs=probs, validate_args=False)._draw((N_DRAWS,), np.random.default_rng(19))
    assert np.all(draws[:, 1] == 0)
    assert np.all(draws[:, 0] < 2)
    assert_frequencies_match(draws[:, 0], [0.4, 0.6])


def test_categorical_draw_would_catch_a_wrong_sampler():
    # the chi-square test has the power to see a sampler that is off by one class
    rng = np.random.default_rng(4)
    draws = Categorical(probs=PROBS_5)._draw((N_DRAWS,), rng)
    counts = np.bincount(draws.astype(int), minlength=5)
    assert chi_square(counts, np.roll(PROBS_5, 1)) > 10 * CHI_SQUARE_CRITICAL_0_1_PERCENT[4]


def test_gumbel_max_trick_is_categorical_and_wrong_logits_fail_the_same_test():
    rng = np.random.default_rng(5)
    logits = np.log(PROBS_5) + 1.7  # logits are defined up to a constant
    gumbel = -np.log(-np.log(uniform_open((N_DRAWS, 5), rng)))
    winners = np.argmax(logits + gumbel, axis=-1)
    counts = np.bincount(winners, minlength=5)
    assert chi_square(counts, Categorical(logits=logits).probs.data) < CHI_SQUARE_CRITICAL_0_1_PERCENT[4]
    wrong = Categorical(logits=1.2 * logits).probs.data  # a temperature slipped in
    assert chi_square(counts, wrong) > CHI_SQUARE_CRITICAL_0_1_PERCENT[4]
    # and noise of the wrong law (uniform instead of Gumbel) fails too
    uniform = np.argmax(logits + uniform_open((N_DRAWS, 5), rng), axis=-1)
    assert chi_square(np.bincount(uniform, minlength=5), PROBS_5) > CHI_SQUARE_CRITICAL_0_1_PERCENT[4]


def test_categorical_sample_is_a_cut_with_batch_shape_and_no_event_shape():
    logits = param([[0.0, 1.0, 2.0], [0.5, 0.5, 0.5]])
    d = Categorical(logits=logits)
    assert d.batch_shape == (2,) and d.event_shape == () and d.num_categories == 3
    s = d.sample((4,), rng=np.random.default_rng(0))
    assert s.op == "Categorical.sample" and s.shape == (4, 2) and not s.requires_grad
    assert np.all(np.isin(s.data, [0.0, 1.0, 2.0]))
    with pytest.raises(RuntimeError, match="rsample"):
        (s + 1.0).sum().backward()
    # log_prob of the sample does carry the score-function gradient
    d.log_prob(s).sum().backward()
    assert logits.grad is not None and np.all(np.isfinite(logits.grad))


def test_categorical_mean_and_variance_raise_with_an_explanation():
    d = Categorical(probs=[0.5, 0.5])
    with pytest.raises(NotImplementedError, match="class labels"):
        d.mean
    with pytest.raises(NotImplementedError, match="class labels"):
        d.variance


def test_categorical_probs_and_logits_agree():
    logits = np.array([[0.3, -1.0, 2.0], [0.0, 0.0, -np.inf]])
    d = Categorical(logits=logits)
    np.testing.assert_allclose(d.probs.data.sum(axis=-1), 1.0)
    with strict_numerics():
        back = Categorical(probs=d.probs.data).logits.data
    np.testing.assert_allclose(back[0] - back[0, 0], logits[0] - logits[0, 0], rtol=1e-13)
    assert back[1, 2] == -np.inf


def test_categorical_gradcheck_log_prob_and_entropy():
    values = np.array([[0.0, 2.0], [1.0, 1.0], [2.0, 0.0]])
    logits = param([[0.3, -1.0, 2.0], [0.1, 0.4, -0.2]])
    assert gradcheck(lambda l: Categorical(logits=l).log_prob(values), [logits])
    assert gradcheck(lambda l: Categorical(logits=l).entropy(), [logits])
    weights = param([[1.0, 2.0, 3.0], [0.5, 0.25, 1.25]])  # normalized inside, so probs sum to 1
    def normalized(w):
        return Categorical(probs=w / w.sum(axis=-1, keepdims=True))

    assert gradcheck(lambda w: normalized(w).log_prob(values), [weights])
    assert gradcheck(lambda w: normalized(w).entropy(), [weights])


# =================================================================================================
# RelaxedBernoulli (Binary Concrete)
def binary_concrete_log_density_paper(y, logits, tau):
    """Maddison et al. (2017): tau a y^(-tau-1) (1-y)^(-tau-1) / (a y^-tau + (1-y)^-tau)^2, a = e^l."""
    a = np.exp(logits)
    return (np.log(tau * a) - (tau + 1) * (np.log(y) + np.log1p(-y))
            - 2 * np.log(a * y ** -tau + (1 - y) ** -tau))


@pytest.mark.parametrize("tau", [0.5, 1.0, 2.0])
def test_relaxed_bernoulli_density_integrates_to_1_and_matches_the_paper(tau):
    # Substitute y = sigmoid(x): the integral over (0, 1) of q(y) dy is the integral of
    # q(sigmoid(x)) sigmoid'(x) dx over the real line, which a fine trapezoid grid handles even
    # where q(y) is unbounded at the ends (tau < 1).
    x = np.linspace(-36.0, 36.0, 72_001)
    y = sigmoid(x)
    for logits in (-1.5, 0.0, 0.8):
        d = RelaxedBernoulli(tau, logits=logits)
        density = np.exp(d.log_prob(y).data)
        integrand = density * y * (1 - y)
        total = float(np.sum((integrand[1:] + integrand[:-1]) / 2 * np.diff(x)))
        assert total == pytest.approx(1.0, abs=2e-6)
        points = np.array([1e-6, 0.1, 0.5, 0.9, 1 - 1e-6])
        np.testing.assert_allclose(d.log_prob(points).data,
                                   binary_concrete_log_density_paper(points, logits, tau),
                                   rtol=1e-9, atol=1e-12)
        # the density is that of the sampler: P(Y <= c) = sigmoid(tau logit(c) - l) both ways
        c = 0.3
        cdf = sigmoid(tau * math.log(c / (1 - c)) - logits)
        below = x <= math.log(c / (1 - c))
        mass = float(np.sum(((integrand[1:] + integrand[:-1]) / 2 * np.diff(x))[below[1:]]))
        assert mass == pytest.approx(cdf, abs=1e-3)
        draws = d.rsample((N_DRAWS,), rng=np.random.default_rng(6)).data
        frequency = np.mean(draws <= c)
        assert abs(frequency - cdf) < 4 * math.sqrt(cdf * (1 - cdf) / N_DRAWS)


def test_relaxed_bernoulli_rounds_to_the_bernoulli_draw_on_the_same_noise():
    logits = np.array([-1.0, 0.0, 2.0])
    for tau in (2.0, 0.5, 0.01):
        y = RelaxedBernoulli(tau, logits=logits).rsample((1000,), rng=np.random.default_rng(7)).data
        z = Bernoulli(logits=logits).sample((1000,), rng=np.random.default_rng(7)).data
        np.testing.assert_array_equal(y > 0.5, z == 1.0)


def test_relaxed_bernoulli_at_low_temperature_is_nearly_binary_with_p1_sigmoid_logits():
    logits = np.array([-1.0, 0.3, 2.0])
    with strict_numerics():
        y = RelaxedBernoulli(0.01, logits=logits).rsample((N_DRAWS,), rng=np.random.default_rng(8)).data
    assert np.all(np.isfinite(y))
    # y is within 1e-6 of 0 or 1 unless |l + L| < c = tau logit(1 - 1e-6): a 3-7% event here
    near_binary = np.minimum(y, 1 - y) < 1e-6
    c = 0.01 * math.log((1 - 1e-6) / 1e-6)
    expected = 1 - (sigmoid(c - logits) - sigmoid(-c - logits))
    assert np.all(expected > 0.93)
    z = (near_binary.mean(axis=0) - expected) / np.sqrt(expected * (1 - expected) / N_DRAWS)
    assert np.all(np.abs(z) < 4), z
    p = sigmoid(logits)
    z = (np.mean(y > 0.5, axis=0) - p) / np.sqrt(p * (1 - p) / N_DRAWS)
    assert np.all(np.abs(z) < 4), z
    # a higher temperature is visibly not binary
    warm = RelaxedBernoulli(1.0, logits=logits).rsample((1000,), rng=np.random.default_rng(8)).data
    assert (np.minimum(warm, 1 - warm) < 1e-6).mean() < 0.01


def test_relaxed_bernoulli_at_temperature_0_01_has_finite_gradients_and_logit_densities():
    logits = param([-1.0, 0.3, 2.0])
    with strict_numerics():
        d = RelaxedBernoulli(0.01, logits=logits)
        y = d.rsample((500,), rng=np.random.default_rng(9))
        (y * np.array([1.0, -2.0, 3.0])).sum().backward()
        x = d.rsample_logit((500,), rng=np.random.default_rng(9))
        log_q = d.log_prob_logit(x).data
    assert np.all(np.isfinite(logits.grad)) and np.any(logits.grad != 0)
    assert np.all(np.isfinite(x.data)) and np.all(np.isfinite(log_q))
    np.testing.assert_array_equal(x.sigmoid().data, y.data)  # the same draw, before the sigmoid


def test_relaxed_bernoulli_log_prob_edges_and_logit_space_agree():
    d = RelaxedBernoulli(0.7, probs=0.3)
    with strict_numerics():
        out = d.log_prob(np.array([0.0, 1.0, -0.5, 1.5])).data
        assert np.isnan(d.log_prob(np.nan).item())
    np.testing.assert_array_equal(out, -np.inf)
    # change of variables: log q(y) = log q(x) - log y - log(1 - y) at x = logit(y)
    x = np.array([-3.0, 0.2, 5.0])
    y = sigmoid(x)
    np.testing.assert_allclose(d.log_prob(y).data,
                               d.log_prob_logit(x).data - np.log(y) - np.log1p(-y), rtol=1e-12)
    assert d.logits.item() == pytest.approx(math.log(0.3 / 0.7), rel=1e-14)
    assert d.probs.item() == 0.3 and d.batch_shape == ()


def test_relaxed_bernoulli_sample_cuts_and_shapes_broadcast():
    tau = param([0.5, 1.0, 2.0])
    d = RelaxedBernoulli(tau, logits=param([[0.1], [0.2]]))
    assert d.batch_shape == (2, 3)
    s = d.sample((4,), rng=np.random.default_rng(0))
    assert s.op == "RelaxedBernoulli.sample" and s.shape == (4, 2, 3) and not s.requires_grad
    r = d.rsample((4,), rng=np.random.default_rng(0))
    assert r.requires_grad
    np.testing.assert_array_equal(r.data, s.data)
    with pytest.raises(NotImplementedError, match="Monte Carlo"):
        d.entropy()
    with pytest.raises(NotImplementedError, match="Monte Carlo"):
        d.mean


def test_relaxed_bernoulli_gradcheck_rsample_with_fixed_noise_and_log_prob():
    logits, tau = param([0.3, -1.2]), param(0.7)
    assert gradcheck(lambda l, t: RelaxedBernoulli(t, logits=l).rsample((3,), rng=np.random.default_rng(0)),
                     [logits, tau])
    assert gradcheck(lambda p: RelaxedBernoulli(0.5, probs=p).rsample((3,), rng=np.random.default_rng(0)),
                     [param([0.3, 0.8])])
    y = param([0.2, 0.9])
    assert gradcheck(lambda l, t, y: RelaxedBernoulli(t, logits=l).log_prob(y), [logits, tau, y])


# =================================================================================================
# RelaxedOneHotCategorical (Concrete / Gumbel-Softmax)
def concrete_log_density_paper(y, logits, tau):
    """(k-1)! tau^(k-1) prod_i (a_i y_i^(-tau-1) / sum_j a_j y_j^-tau), a = e^logits."""
    k = y.shape[-1]
    a = np.exp(logits)
    denominator = np.sum(a * y ** -tau, axis=-1, keepdims=True)
    return (math.log(math.factorial(k - 1)) + (k - 1) * math.log(tau)
            + np.sum(np.log(a * y ** (-tau - 1) / denominator), axis=-1))


def test_relaxed_categorical_at_temperature_0_01_is_nearly_one_hot_with_categorical_argmax():
    logits = np.log(PROBS_5)
    with strict_numerics():
        d = RelaxedOneHotCategorical(0.01, logits=logits)
        y = d.rsample((N_DRAWS,), rng=np.random.default_rng(10)).data
    assert y.shape == (N_DRAWS, 5) and np.all(np.isfinite(y))
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-12)
    one_hot = np.eye(5)[np.argmax(y, axis=-1)]
    near = np.max(np.abs(y - one_hot), axis=-1) < 1e-6
    assert near.mean() > 0.85  # the rest are draws whose top two l_i + g_i are within ~0.14
    assert_frequencies_match(np.argmax(y, axis=-1), PROBS_5)


def test_relaxed_categorical_argmax_is_categorical_at_any_temperature():
    y = RelaxedOneHotCategorical(2.0, probs=PROBS_5).rsample((N_DRAWS,), rng=np.random.default_rng(11)).data
    assert_frequencies_match(np.argmax(y, axis=-1), PROBS_5)
    counts = np.bincount(np.argmax(y, axis=-1), minlength=5)
    assert chi_square(counts, PROBS_5[::-1]) > CHI_SQUARE_CRITICAL_0_1_PERCENT[4]


def test_relaxed_categorical_gradients_are_finite_at_temperature_0_01():
    logits = param(np.log(PROBS_5))
    with strict_numerics():
        y = RelaxedOneHotCategorical(0.01, logits=logits).rsample((200,), rng=np.random.default_rng(12))
        (y * np.arange(5.0)).sum().backward()
    assert np.all(np.isfinite(logits.grad)) and np.any(logits.grad != 0)


@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_relaxed_categorical_log_prob_is_finite_on_its_own_samples_and_matches_the_paper(tau):
    logits = np.array([[0.3, -1.0, 2.0, 0.0], [1.0, 1.0, -0.5, 0.2]])
    d = RelaxedOneHotCategorical(tau, logits=logits)
    with strict_numerics():
        y = d.rsample((2000,), rng=np.random.default_rng(13))
        log_q = d.log_prob(y).data
    assert log_q.shape == (2000, 2) and np.all(np.isfinite(log_q))
    few = d.rsample((5,), rng=np.random.default_rng(14)).data
    np.testing.assert_allclose(d.log_prob(few).data, concrete_log_density_paper(few, logits, tau), rtol=1e-9)


@pytest.mark.parametrize("tau", [0.5, 1.0, 2.0])
def test_relaxed_categorical_with_two_classes_is_the_binary_concrete(tau):
    logits = np.array([0.9, -0.4])
    y0 = np.array([1e-4, 0.05, 0.3, 0.5, 0.77, 0.999])
    y = np.stack([y0, 1 - y0], axis=-1)
    concrete = RelaxedOneHotCategorical(tau, logits=logits).log_prob(y).data
    binary = RelaxedBernoulli(tau, logits=logits[0] - logits[1]).log_prob(y0).data
    np.testing.assert_allclose(concrete, binary, rtol=1e-10)
    # and on the same noise the first coordinate is a Binary Concrete draw: P(y_0 > 1/2) = sigmoid(l0 - l1)
    d = RelaxedOneHotCategorical(tau, logits=logits)
    draws = d.rsample((N_DRAWS,), rng=np.random.default_rng(15)).data
    p = sigmoid(logits[0] - logits[1])
    assert abs(np.mean(draws[:, 0] > 0.5) - p) < 4 * math.sqrt(p * (1 - p) / N_DRAWS)


def test_relaxed_categorical_log_prob_off_the_open_simplex_is_minus_inf():
    d = RelaxedOneHotCategorical(0.5, probs=[0.2, 0.3, 0.5])
    with strict_numerics():
        out = d.log_prob(np.array([[1.0, 0.0, 0.0], [0.5, 0.6, -0.1]])).data
        assert np.isnan(d.log_prob(np.array([np.nan, 0.5, 0.5])).item())
    np.testing.assert_array_equal(out, -np.inf)


def test_straight_through_is_exactly_one_hot_forward_with_the_soft_gradient():
    weights = np.array([1.0, -2.0, 0.5, 3.0])
    results = {}
    for hard in (False, True):
        logits = param([0.3, -1.0, 2.0, 0.0])
        tau = param(0.7)
        d = RelaxedOneHotCategorical(tau, logits=logits, hard=hard)
        y = d.rsample((50,), rng=np.random.default_rng(16))
        (y * weights).sum().backward()
        results[hard] = (y.data, logits.grad, tau.grad)
    soft, hard = results[False], results[True]
    assert set(np.unique(hard[0])) == {0.0, 1.0}
    np.testing.assert_array_equal(hard[0].sum(axis=-1), 1.0)
    np.testing.assert_array_equal(np.argmax(hard[0], axis=-1), np.argmax(soft[0], axis=-1))
    np.testing.assert_array_equal(hard[1], soft[1])
    np.testing.assert_array_equal(hard[2], soft[2])
    assert np.any(soft[1] != 0)


def test_relaxed_categorical_shapes_sample_and_properties():
    tau = param([0.5, 1.0])
    logits = param([[0.1, 0.2, 0.3], [1.0, 0.0, -1.0]])
    d = RelaxedOneHotCategorical(tau, logits=logits)
    assert d.batch_shape == (2,) and d.event_shape == (3,) and d.num_categories == 3
    s = d.sample((4,), rng=np.random.default_rng(0))
    assert s.op == "RelaxedOneHotCategorical.sample" and s.shape == (4, 2, 3) and not s.requires_grad
    assert d.rsample((4,)).shape == (4, 2, 3)
    assert d.log_prob(s).shape == (4, 2)
    np.testing.assert_allclose(d.probs.data.sum(axis=-1), 1.0)
    d = RelaxedOneHotCategorical(0.5, probs=[0.2, 0.8])
    np.testing.assert_allclose(d.logits.data, np.log([0.2, 0.8]))
    with pytest.raises(NotImplementedError, match="Monte Carlo"):
        d.entropy()


def test_relaxed_categorical_gradcheck_rsample_with_fixed_noise_and_log_prob():
    logits, tau = param([[0.3, -1.0, 2.0], [0.0, 0.5, 0.1]]), param(0.8)
    def relaxed_draw(l, t):  # fresh generator each call: the same noise for every evaluation
        return RelaxedOneHotCategorical(t, logits=l).rsample((2,), rng=np.random.default_rng(0))

    assert gradcheck(relaxed_draw, [logits, tau])
    y = param([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    assert gradcheck(lambda l, t, y: RelaxedOneHotCategorical(t, logits=l).log_prob(y), [logits, tau, y])


# =================================================================================================
# KL divergences
def test_kl_bernoulli_matches_the_formula_and_monte_carlo():
    p, q = np.array([0.1, 0.5, 0.9]), np.array([0.3, 0.5, 0.2])
    kl = kl_divergence(Bernoulli(probs=p), Bernoulli(logits=np.log(q) - np.log1p(-q))).data
    expected = p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))
    np.testing.assert_allclose(kl, expected, rtol=1e-12)
    dp, dq = Bernoulli(probs=p), Bernoulli(probs=q)
    z = dp.sample((N_DRAWS,), rng=np.random.default_rng(17))
    ratios = (dp.log_prob(z) - dq.log_prob(z)).data
    standard_error = ratios.std(axis=0) / math.sqrt(N_DRAWS)
    assert np.all(np.abs(ratios.mean(axis=0) - expected) < 4 * standard_error + 1e-12)


def test_kl_bernoulli_with_zero_probabilities():
    p = param([0.0, 0.3, 0.0, 1.0, 1.0, 0.3])
    q = param([0.3, 0.0, 0.0, 1.0, 0.3, 1.0])
    with strict_numerics():
        kl = kl_divergence(Bernoulli(probs=p), Bernoulli(probs=q))
        kl.sum().backward()
    expected = [-math.log(0.7), np.inf, 0.0, 0.0, -math.log(0.3), np.inf]
    np.testing.assert_allclose(kl.data, expected, rtol=1e-14)
    assert not np.any(np.isnan(p.grad)) and not np.any(np.isnan(q.grad))
    with strict_numerics():
        extreme = kl_divergence(Bernoulli(logits=[1000.0, 5.0]), Bernoulli(logits=[-1000.0, 5.0])).data
    np.testing.assert_allclose(extreme, [1000.0, 0.0], atol=1e-300)


def test_kl_categorical_matches_enumeration_monte_carlo_and_zero_cases():
    p = np.array([[0.1, 0.2, 0.7], [0.5, 0.5, 0.0]])
    q = np.array([[0.3, 0.3, 0.4], [0.25, 0.25, 0.5]])
    kl = kl_divergence(Categorical(probs=p), Categorical(logits=np.log(q) + 3.0)).data
    expected = np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1) / q), 0), axis=-1)
    np.testing.assert_allclose(kl, expected, rtol=1e-12)
    dp, dq = Categorical(probs=p), Categorical(probs=q)
    z = dp.sample((N_DRAWS,), rng=np.random.default_rng(18))
    ratios = (dp.log_prob(z) - dq.log_prob(z)).data
    standard_error = ratios.std(axis=0) / math.sqrt(N_DRAWS)
    assert np.all(np.abs(ratios.mean(axis=0) - expected) < 4 * standard_error + 1e-12)
    # q rules out a class p allows: +inf; the reverse is finite; no NaN in value or gradient
    a = param([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]])
    b = param([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    with strict_numerics():
        forward = kl_divergence(Categorical(probs=a), Categorical(probs=b))
        forward.sum().backward()
        backward = kl_divergence(Categorical(probs=b), Categorical(probs=a)).data
    np.testing.assert_array_equal(forward.data, [np.inf, 0.0])
    np.testing.assert_allclose(backward, [math.log(2), 0.0])
    assert not np.any(np.isnan(a.grad)) and not np.any(np.isnan(b.grad))
    with pytest.raises(ValueError, match="categories"):
        kl_divergence(Categorical(probs=[0.5, 0.5]), Categorical(probs=[0.2, 0.3, 0.5]))


def test_kl_gradcheck():
    assert gradcheck(lambda a, b: kl_divergence(Bernoulli(logits=a), Bernoulli(probs=b)),
                     [param([0.3, -2.0]), param([0.4, 0.7])])
    assert gradcheck(lambda a, b: kl_divergence(Categorical(logits=a), Categorical(logits=b)),
                     [param([0.3, -2.0, 1.0]), param([0.4, 0.7, 0.0])])


# =================================================================================================
# Validation: the class the user built, the parameter, the constraint and the bad values
class MyBernoulli(Bernoulli):
    pass


@pytest.mark.parametrize("build, words", [
    (lambda: Bernoulli(probs=[0.5, 1.5, np.nan]), ["Bernoulli", "probs", "[0, 1]", "1.5", "nan"]),
    (lambda: Bernoulli(probs=-0.25), ["Bernoulli", "probs", "[0, 1]", "-0.25"]),
    (lambda: Bernoulli(logits=[0.0, np.nan]), ["Bernoulli", "logits", "NaN", "nan"]),
    (lambda: MyBernoulli(probs=2.0), ["MyBernoulli", "probs", "2."]),
    (lambda: Bernoulli(), ["Bernoulli", "exactly one", "neither"]),
    (lambda: Bernoulli(probs=0.5, logits=0.0), ["Bernoulli", "exactly one", "both"]),
    (lambda: Categorical(probs=[[0.5, 0.4], [0.5, 0.5]]), ["Categorical", "probs", "sum", "0.9"]),
    (lambda: Categorical(probs=[0.5, -0.1, 0.6]), ["Categorical", "probs", ">= 0", "-0.1"]),
    (lambda: Categorical(probs=0.5), ["Categorical", "probs", "last axis", "()"]),
    (lambda: Categorical(logits=[0.0, np.inf]), ["Categorical", "logits", "+inf", "inf"]),
    (lambda: Categorical(logits=[-np.inf, -np.inf]), ["Categorical", "logits", "finite", "-inf"]),
    (lambda: RelaxedBernoulli(0.0, logits=0.1), ["RelaxedBernoulli", "temperature", "> 0", "0."]),
    (lambda: RelaxedBernoulli([1.0, -1.0], logits=0.1), ["RelaxedBernoulli", "temperature", "-1."]),
    (lambda: RelaxedBernoulli(np.nan, probs=0.3), ["RelaxedBernoulli", "temperature", "nan"]),
    (lambda: RelaxedBernoulli(0.5, probs=1.0), ["RelaxedBernoulli", "probs", "(0, 1)", "1."]),
    (lambda: RelaxedBernoulli(0.5), ["RelaxedBernoulli", "exactly one"]),
    (lambda: RelaxedOneHotCategorical(-2.0, logits=[0.0, 1.0]),
     ["RelaxedOneHotCategorical", "temperature", "> 0", "-2."]),
    (lambda: RelaxedOneHotCategorical(0.5, probs=[0.3, 0.3]),
     ["RelaxedOneHotCategorical", "probs", "sum", "0.6"]),
    (lambda: RelaxedOneHotCategorical(0.5, probs=[0.0, 1.0]),
     ["RelaxedOneHotCategorical", "probs", "> 0", "0."]),
    (lambda: RelaxedOneHotCategorical([0.5, 1.0, 2.0], logits=[[0.0, 1.0], [1.0, 0.0]]),
     ["RelaxedOneHotCategorical", "temperature", "broadcast"]),
])
def test_bad_parameters_raise_value_error_naming_class_parameter_and_values(build, words):
    with pytest.raises(ValueError) as error:
        build()
    message = str(error.value)
    for word in words:
        assert word in message, (word, message)


@pytest.mark.parametrize("build", [
    lambda: Bernoulli(probs=np.float32([0.3, 1.0])),
    lambda: Categorical(logits=np.float32([0.1, 0.2, -0.5])),
    lambda: RelaxedBernoulli(np.float32(0.5), logits=np.float32([0.1, -0.4])),
    lambda: RelaxedOneHotCategorical(np.float32(0.5), logits=np.float32([0.1, 0.2])),
    lambda: RelaxedOneHotCategorical(np.float32(0.5), probs=np.float32([0.25, 0.75]), hard=True),
])
def test_float32_parameters_give_float32_samples_and_log_probs(build):
    d = build()
    s = d.sample((3,), rng=np.random.default_rng(0))
    assert s.dtype == np.float32 and d.log_prob(s).dtype == np.float32


# =================================================================================================
# One noise, one validation routine, one shape check
def test_concrete_noise_is_the_gumbel_and_logistic_families_standard_noise():
    """Gumbel-Softmax is Gumbel(0, 1) noise plus a softmax, the Binary Concrete Logistic(0, 1)
    noise plus a sigmoid, and a Bernoulli draw the same logistic noise plus a step: on the same
    seed each equals the formula written with the standard family's own draw."""
    logits, tau = np.array([[0.3, -1.0, 2.0], [0.0, 0.5, 0.1]]), 0.7
    g = Gumbel(0.0, 1.0).rsample((4, 2, 3), rng=np.random.default_rng(20)).data
    y = RelaxedOneHotCategorical(tau, logits=logits).rsample((4,), rng=np.random.default_rng(20)).data
    scaled = (logits + g) / tau
    expected = np.exp(scaled - scaled.max(axis=-1, keepdims=True))
    np.testing.assert_allclose(y, expected / expected.sum(axis=-1, keepdims=True), rtol=1e-13)

    binary_logits = np.array([0.3, -1.2, 4.0])
    noise = Logistic(0.0, 1.0).rsample((50, 3), rng=np.random.default_rng(21)).data
    x = RelaxedBernoulli(tau, logits=binary_logits).rsample_logit((50,), rng=np.random.default_rng(21)).data
    np.testing.assert_array_equal(x, (binary_logits + noise) / tau)
    z = Bernoulli(logits=binary_logits).sample((50,), rng=np.random.default_rng(21)).data
    np.testing.assert_array_equal(z, (binary_logits + noise > 0).astype(float))
    np.testing.assert_array_equal(z, (x > 0).astype(float))  # the relaxation rounds to this draw


def test_categorical_log_prob_of_a_value_that_does_not_broadcast_names_the_shapes():
    d = Categorical(probs=np.full((2, 3), 1 / 3))
    with pytest.raises(ValueError, match=r"^Categorical\.log_prob: value of shape \(4,\) cannot be broadcast "
                                         r"with the batch shape \(2,\)$"):
        d.log_prob(np.zeros(4))
    assert d.log_prob(np.zeros((4, 1))).shape == (4, 2)  # sample dimensions in front broadcast
    relaxed = RelaxedOneHotCategorical(0.5, probs=np.full((2, 3), 1 / 3))
    with pytest.raises(ValueError, match=r"value of shape \(2, 2\) .*batch shape \(2,\) and event shape \(3,\)"):
        relaxed.log_prob(np.full((2, 2), 0.5))  # the category axis must match exactly, not broadcast
    with pytest.raises(ValueError, match=r"RelaxedBernoulli\.log_prob_logit: value of shape \(3,\)"):
        RelaxedBernoulli(0.5, probs=[0.3, 0.6]).log_prob_logit(np.zeros(3))


DISCRETE_BUILDERS = {  # family -> build(parameter name, values, **options), valid values elsewhere
    Bernoulli: lambda name, v, **options: Bernoulli(**{name: v}, **options),
    Categorical: lambda name, v, **options: Categorical(**{name: v}, **options),
    RelaxedBernoulli: lambda name, v, **options: (
        RelaxedBernoulli(v, probs=0.5, **options) if name == "temperature"
        else RelaxedBernoulli(0.5, **{name: v}, **options)),
    RelaxedOneHotCategorical: lambda name, v, **options: (
        RelaxedOneHotCategorical(v, probs=[0.5, 0.5], **options) if name == "temperature"
        else RelaxedOneHotCategorical(0.5, **{name: v}, **options)),
}
BREAKS_THE_RULE = {  # one value per (family, parameter) that its arg_constraints entry rejects
    (Bernoulli, "probs"): [0.5, 1.5], (Bernoulli, "logits"): [0.0, np.nan],
    (Categorical, "probs"): [-0.5, 1.5], (Categorical, "logits"): [np.inf, 0.0],
    (RelaxedBernoulli, "temperature"): [1.0, 0.0], (RelaxedBernoulli, "probs"): [0.5, 1.0],
    (RelaxedBernoulli, "logits"): [0.0, -np.inf],
    (RelaxedOneHotCategorical, "temperature"): [1.0, -1.0], (RelaxedOneHotCategorical, "probs"): [0.0, 1.0],
    (RelaxedOneHotCategorical, "logits"): [0.0, np.nan],
}


@pytest.mark.parametrize("family, name", list(BREAKS_THE_RULE), ids=lambda x: getattr(x, "__name__", x))
def test_arg_constraints_table_drives_the_check_and_its_message(family, name):
    values = np.array(BREAKS_THE_RULE[(family, name)])
    constraint = family.arg_constraints[name]
    bad = values[~constraint.test(values)]
    assert bad.size == 1
    with pytest.raises(ValueError) as error:
        DISCRETE_BUILDERS[family](name, values)
    shown = np.array2string(bad, precision=6, separator=", ")
    assert str(error.value) == (f"{family.__name__}: parameter {name} must be {constraint.description}; "
                                f"got 1 bad value: {shown}")
    # validate_args=False is the way around the check (at the caller's risk)
    DISCRETE_BUILDERS[family](name, values, validate_args=False)


@pytest.mark.parametrize("family", list(DISCRETE_BUILDERS), ids=lambda f: f.__name__)
def test_every_constructor_parameter_has_a_constraint(family):
    taken = set(inspect.signature(family).parameters) - {"validate_args", "hard"}
    assert set(family.arg_constraints) == taken


# --- details no other test pins down (found by tools/mutate.py) --------------------------------
@pytest.mark.parametrize("hard", [False, True])
def test_relaxed_categorical_samples_live_on_the_last_axis_with_a_batch_and_sample_shape(hard):
    q = RelaxedOneHotCategorical(0.5, logits=np.log([[0.1, 0.2, 0.3, 0.4], [0.7, 0.1, 0.1, 0.1]]),
                                 hard=hard)
    y = q.rsample((3,), rng=np.random.default_rng(0))
    assert y.shape == (3, 2, 4)
    np.testing.assert_allclose(y.data.sum(axis=-1), 1.0, rtol=1e-14)
    if hard:  # exactly one 1 per (sample, batch) row
        assert set(np.unique(y.data)) == {0.0, 1.0}
        np.testing.assert_array_equal((y.data == 1.0).sum(axis=-1), np.ones((3, 2)))


@pytest.mark.parametrize("family", [Bernoulli, Categorical])
def test_validate_args_false_accepts_nan_logits_without_raising(family):
    logits = np.array([np.nan, 0.0])
    with pytest.raises(ValueError, match="logits"):
        family(logits=logits)
    family(logits=logits, validate_args=False)  # the user's call: no check, no error


def test_a_zero_probability_gets_gradient_zero_in_entropy_and_kl():
    """At p_i = 0 the exact derivative of -p log p is infinite; the library's convention is 0
    (probs_logits.py), in the entropy and in KL(p || q) alike."""
    p = Tensor([0.0, 0.3, 0.7], requires_grad=True)
    Categorical(probs=p).entropy().backward()
    assert p.grad[0] == 0.0
    np.testing.assert_allclose(p.grad[1:], -np.log([0.3, 0.7]) - 1.0, rtol=1e-14)
    p = Tensor([0.0, 0.3, 0.7], requires_grad=True)
    q = Categorical(probs=np.array([0.2, 0.3, 0.5]))
    kl_divergence(Categorical(probs=p), q).backward()
    assert p.grad[0] == 0.0
    np.testing.assert_allclose(p.grad[1:], np.log(np.array([0.3, 0.7]) / [0.3, 0.5]) + 1.0, rtol=1e-14)
