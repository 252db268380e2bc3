"""RelaxedOneHotCategorical: the Concrete / Gumbel-Softmax distribution on the simplex.

The Gumbel-max trick draws a class of Categorical(logits) as argmax_i (l_i + g_i) with
g_i = -log(-log u_i) ~ Gumbel(0, 1). Replacing the one-hot of that argmax by a softmax of
temperature tau gives a differentiable sample (Jang et al. 2017; Maddison et al. 2017):

    y = softmax((l + g) / tau),         computed as exp(log_softmax((l + g) / tau)),

a point of the simplex {y_i > 0, sum_i y_i = 1}, so ``event_shape = (k,)``. Its argmax is exactly
the Gumbel-max draw, so P(argmax y = i) = p_i at every temperature; as tau -> 0, y tends to that
one-hot vector. log_softmax keeps tau = 0.01 finite: entries underflow to 0, never to NaN.
Gumbel-Softmax is Gumbel noise plus a softmax, and the code says so: g is drawn by
``Gumbel.standard_noise``, the Gumbel family's own sampler.

Straight-through (``hard=True``): the forward value is the one-hot vector of argmax y, and the
backward pass uses the gradient of the soft y, written with ordinary ops:

    y_hard = (y - y.detach()) + one_hot(argmax y),

whose value is exactly one_hot (y - y is exactly 0) and whose derivative is that of y.

Density (the Concrete density, w.r.t. Lebesgue measure on the first k - 1 coordinates):

    log q(y) = log (k-1)! + (k-1) log tau + sum_i (l_i - (tau + 1) log y_i)
               - k logsumexp_i (l_i - tau log y_i),

computed in log space. For k = 2 it is the density of y_0 under RelaxedBernoulli with logits
l_0 - l_1. ``log_prob`` gives -inf where some y_i <= 0 (outside the open simplex; this includes
the exact one-hot values of ``hard=True``: pass the soft sample) and does not check that y sums
to 1; y must end in the k categories, shape (..., k). At temperatures so low that float64 rounds entries to 0, the density is -inf.

probs must be > 0 and sum to 1 along the last axis within 1e-6; logits must be finite (a zero
probability puts every draw on a face of the simplex, where there is no density). The mean,
variance and entropy have no closed form and raise NotImplementedError.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from tinygrad_reparam import checks
from tinygrad_reparam.distributions import constraints
from tinygrad_reparam.distributions.base import no_closed_form
from tinygrad_reparam.distributions.gumbel import Gumbel
from tinygrad_reparam.distributions.probs_logits import CategoricalProbsOrLogits, outside_support
from tinygrad_reparam.ops import where
from tinygrad_reparam.random import get_rng
from tinygrad_reparam.tensor import Tensor


class RelaxedOneHotCategorical(CategoricalProbsOrLogits):
    """y = softmax((logits + g) / temperature), g ~ Gumbel(0, 1): a one-hot you can rsample."""

    has_rsample = True
    noise_label = "g ~ Gumbel(0, 1)"
    arg_constraints = {
        "temperature": constraints.positive,
        "probs": constraints.greater_than_zero.because("a zero probability leaves the relaxation without "
                                                       "a density"),
        "logits": constraints.finite,
    }

    def __init__(self, temperature, probs=None, logits=None, hard: bool = False,
                 validate_args: bool = True):
        self.temperature = self._take_parameters(validate_args, temperature=temperature,
                                                 **self._probs_or_logits(probs, logits))[0]
        self._check_category_axis()
        if validate_args and self._given == "probs":
            self._check_probability_vectors()
        # the temperature acts on whole one-hot vectors: it broadcasts with the batch shape only
        parameter = self._parameter
        if not checks.broadcastable(self.temperature.shape, parameter.shape[:-1]):
            raise ValueError(f"{type(self).__name__}: temperature {self.temperature.shape} and {self._given} "
                             f"{parameter.shape} (batch shape {parameter.shape[:-1]} plus one category "
                             f"axis) cannot be broadcast together")
        self.hard = bool(hard)
        super().__init__(np.broadcast_shapes(self.temperature.shape, parameter.shape[:-1]),
                         (self.num_categories,))

    def _temperature_per_category(self) -> Tensor:
        """The temperature with a trailing axis, so it broadcasts against the k categories."""
        return self.temperature.reshape(self.temperature.shape + (1,))

    # --- drawing ------------------------------------------------------------------------------
    def rsample(self, sample_shape=(), rng: Optional[np.random.Generator] = None) -> Tensor:
        """softmax((logits + g) / temperature); with hard=True its one-hot, straight-through."""
        noise = Gumbel.standard_noise(self._extended_shape(sample_shape), get_rng(rng))
        gumbel = Tensor(noise.astype(self._dtype()), name=self.noise_label)
        y = ((self.logits + gumbel) / self._temperature_per_category()).log_softmax(axis=-1).exp()
        if not self.hard:
            return y
        one_hot = (np.arange(self.num_categories) == y.data.argmax(axis=-1)[..., None]).astype(y.dtype)
        return (y - y.detach()) + one_hot  # value: one_hot exactly; gradient: that of y

    # --- densities ------------------------------------------------------------------------------
    def log_prob(self, value) -> Tensor:
        """The Concrete log-density; -inf unless every y_i > 0."""
        y = self._value(value)
        v = y.data
        k = self.num_categories
        inside = np.all(v > 0, axis=-1)  # NaN fails v > 0; handled below
        if not inside.all():
            y = where(inside[..., None], y, 1.0 / k)  # log sees only positive numbers
        log_y = y.log()
        tau = self._temperature_per_category()
        logits = self.logits
        log_normalizer = math.lgamma(k) + (k - 1) * self.temperature.log()  # log (k-1)! + (k-1) log tau
        score = ((logits - (tau + 1.0) * log_y).sum(axis=-1)
                 - k * (logits - tau * log_y).logsumexp(axis=-1))
        return outside_support(log_normalizer + score, inside=inside, is_nan=np.isnan(v).any(axis=-1))

    def entropy(self) -> Tensor:
        raise no_closed_form(self, "Concrete", "entropy")

    @property
    def mean(self) -> Tensor:
        raise no_closed_form(self, "Concrete", "mean")

    @property
    def variance(self) -> Tensor:
        raise no_closed_form(self, "Concrete", "variance")

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self._describe_parameters()}, hard={self.hard}, "
                f"batch_shape={self.batch_shape}, event_shape={self.event_shape})")
