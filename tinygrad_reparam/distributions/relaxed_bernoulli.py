"""RelaxedBernoulli(temperature, probs or logits): the Binary Concrete (Maddison et al. 2017).

A Bernoulli draw is a step of logistic noise, z = [l + L > 0]. Replace the step by a sigmoid of
temperature tau and the draw becomes a differentiable function of the parameters:

    L = log u - log(1 - u) ~ Logistic(0, 1),     u ~ Uniform(0, 1)   (the noise leaf)
    x = (l + L) / tau,                           y = sigmoid(x) in (0, 1),
    dy/dl = y (1 - y) / tau.

So the Binary Concrete is logistic noise plus a sigmoid, and the code says so: L is drawn by
``Logistic.standard_noise``, the same noise (and random stream) as Bernoulli's draws.

As tau -> 0, y -> z, the Bernoulli draw on the same noise: y > 1/2 exactly when l + L > 0, so
P(y > 1/2) = sigmoid(l) at every temperature. At tau = 0.01 y is 0 or 1 to float64 precision
for most draws; the stable sigmoid keeps the sample and its gradient finite.

Density. x = logit(y) is Logistic(l / tau, 1 / tau), so with f_L(s) = e^-s / (1 + e^-s)^2,

    log q(x) = log tau + log f_L(tau x - l),           log f_L(s) = -s - 2 softplus(-s),
    log q(y) = log q(x) - log y - log(1 - y)           (change of variables, dx/dy = 1/(y(1-y)))
             = log tau + l + (tau - 1)(log y + log(1 - y)) - 2 log(y^tau + e^l (1 - y)^tau),

the second form being the one in the paper. ``log_prob(y)`` uses the first, through
x = log y - log1p(-y), so it is finite for every y strictly inside (0, 1). The support is the
open interval: y = 0 or y = 1 exactly gives -inf (NaN gives NaN). At low temperature float64
rounds most samples to exactly 0 or 1, so work in logit space there: ``rsample_logit`` returns x
(always finite) and ``log_prob_logit(x)`` its log-density, finite for every finite x.

CDF and quantile. x = logit(y) is Logistic(l / tau, 1 / tau), and y <= v exactly when
x <= logit(v), so (the logistic CDF is the sigmoid, its quantile the logit)

    F(v) = sigmoid(tau logit(v) - l)   for 0 < v < 1 (0 at and below 0, 1 at and above 1),
    F^-1(p) = sigmoid((l + logit(p)) / tau).

p = 0 or 1 (logits +-inf) would make the relaxation a point mass with no density, so probs must
lie in the open interval (0, 1) and logits must be finite. There is no closed form for the mean,
variance or entropy: those raise NotImplementedError; estimate them by Monte Carlo.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from tinygrad_reparam import checks
from tinygrad_reparam.distributions import constraints
from tinygrad_reparam.distributions.base import no_closed_form
from tinygrad_reparam.distributions.logistic import Logistic
from tinygrad_reparam.distributions.probs_logits import BinaryProbsOrLogits, outside_support
from tinygrad_reparam.ops import where
from tinygrad_reparam.random import get_rng
from tinygrad_reparam.tensor import Tensor


class RelaxedBernoulli(BinaryProbsOrLogits):
    """y = sigmoid((logits + L) / temperature), L ~ Logistic(0, 1): a Bernoulli you can rsample."""

    has_rsample = True
    noise_label = "L ~ Logistic(0, 1)"
    arg_constraints = {
        "temperature": constraints.positive,
        "probs": constraints.open_unit_interval.because("at 0 or 1 the relaxation has no density"),
        "logits": constraints.finite,
    }

    def __init__(self, temperature, probs=None, logits=None, validate_args: bool = True):
        self.temperature = self._take_parameters(validate_args, temperature=temperature,
                                                 **self._probs_or_logits(probs, logits))[0]
        super().__init__(self._broadcast_parameter_shapes())

    # --- drawing ------------------------------------------------------------------------------
    def rsample_logit(self, sample_shape=(), rng: Optional[np.random.Generator] = None) -> Tensor:
        """x = (logits + L) / temperature: the draw before the sigmoid (finite at any temperature)."""
        noise = Logistic.standard_noise(self._extended_shape(sample_shape), get_rng(rng))
        logistic = Tensor(noise.astype(self._dtype()), name=self.noise_label)
        return (self.logits + logistic) / self.temperature

    def rsample(self, sample_shape=(), rng: Optional[np.random.Generator] = None) -> Tensor:
        """y = sigmoid((logits + L) / temperature)."""
        return self.rsample_logit(sample_shape, rng).sigmoid()

    # --- densities ------------------------------------------------------------------------------
    def log_prob_logit(self, x) -> Tensor:
        """log-density of x = logit(y): log tau + log f_L(tau x - l), f_L the logistic density."""
        s = self.temperature * self._value(x, "log_prob_logit") - self.logits
        return self.temperature.log() - s - 2.0 * (-s).softplus()

    def log_prob(self, value) -> Tensor:
        """log q(y) = log q(x) - log y - log(1 - y) at x = logit(y); -inf unless 0 < y < 1."""
        y = self._value(value)
        v = y.data
        inside = (v > 0) & (v < 1)
        if not inside.all():
            y = where(inside, y, 0.5)  # keeps log away from 0 and 1 where we answer -inf anyway
        log_y, log_one_minus_y = y.log(), (-y).log1p()
        log_q = self.log_prob_logit(log_y - log_one_minus_y) - log_y - log_one_minus_y
        return outside_support(log_q, inside=inside, is_nan=np.isnan(v))

    def cdf(self, value) -> Tensor:
        """P(Y <= value) = sigmoid(temperature logit(value) - logits) inside (0, 1); 0 at and
        below 0, 1 at and above 1."""
        y = self._value(value, "cdf")
        v = y.data
        inside = (v > 0) & (v < 1)
        if not inside.all():
            y = where(inside, y, 0.5)  # logit only inside; the ends are answered below
        probability = (self.temperature * (y.log() - (-y).log1p()) - self.logits).sigmoid()
        if not inside.all():
            probability = where(inside, probability, (v >= 1).astype(probability.dtype))
        return probability

    def icdf(self, value) -> Tensor:
        """sigmoid((logits + logit(p)) / temperature) for p in [0, 1] (0 at 0, 1 at 1)."""
        p = self._value(value, "icdf")
        checks.probabilities(p.data, f"{type(self).__name__}.icdf: value")
        with np.errstate(divide="ignore"):  # logit(0) = -inf and logit(1) = +inf at the ends
            return ((self.logits + (p.log() - (-p).log1p())) / self.temperature).sigmoid()

    def entropy(self) -> Tensor:
        raise no_closed_form(self, "Binary Concrete", "entropy")

    @property
    def mean(self) -> Tensor:
        raise no_closed_form(self, "Binary Concrete", "mean")

    @property
    def variance(self) -> Tensor:
        raise no_closed_form(self, "Binary Concrete", "variance")
