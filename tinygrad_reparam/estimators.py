"""Gradient estimators for E_q[f(z)]: score function (REINFORCE), baselines, DiCE, and a meter.

We want the gradient of an expectation whose distribution depends on the parameters theta:

    L(theta) = E_{z ~ q_theta}[f(z)].

Two unbiased Monte Carlo estimates of dL/dtheta, both written in the same autodiff engine:

**Pathwise (reparameterization).** Write z = g_theta(eps) with parameter-free noise eps
(``dist.rsample()``), then differentiate through the sample:

    dL/dtheta = E_eps[ f'(g_theta(eps)) dg_theta(eps)/dtheta ]        (needs f differentiable)

**Score function (REINFORCE, log-derivative trick).** Since grad q = q grad log q,

    dL/dtheta = grad int q_theta(z) f(z) dz = int q_theta(z) f(z) grad log q_theta(z) dz
              = E_q[ f(z) grad log q_theta(z) ]                    (f may be a black box)

The sample is drawn with ``dist.sample()``, which cuts the graph on purpose: no gradient flows
through z; it all comes from ``log_prob``.

**Baselines.** The score has mean zero, E_q[grad log q] = grad int q = grad 1 = 0, so for any b
that does not depend on z,

    E_q[(f(z) - b) grad log q(z)] = E_q[f(z) grad log q(z)] - b * 0,

still unbiased, and with b close to E[f] much less noisy. The baseline must not depend on the
sample it multiplies: a constant, a moving average of *earlier* costs, or, with several samples,
the mean of the *other* samples (leave-one-out). A baseline that includes the sample itself is
biased: with the batch mean, each term is shrunk by (n - 1) / n.

**The surrogate.** Autodiff computes gradients of scalars, so we build a scalar whose *gradient*
is the estimator and whose *value* is the objective (so it can be printed):

    surrogate = mean(c) + [S - stop_gradient(S)],     S = mean((c - b) * log q(z)),

with c = f(z) and b detached: the bracket is exactly 0 in value, and its gradient is
mean((c - b) * grad log q(z)), the REINFORCE estimate.

**DiCE's magic box.** ``magic_box(tau) = exp(tau - stop_gradient(tau))`` is 1 in value and has
gradient grad tau; with tau = log q(z), f(z) * magic_box(tau) has value f(z) and gradient
f(z) grad log q(z): the score function estimator packed into one factor.

**The meter.** ``estimate_gradient`` draws one estimate per parameter under a named estimator;
``gradient_samples`` draws many and returns ``GradientStats`` (mean, variance, standard error and,
given the exact gradient, bias and its z-score), so pathwise and score function estimators can be
put side by side on the same noise. For f(x) = x^2 under N(mu, sigma^2) (exact gradient
(2 mu, 2 sigma)), the variances of single-sample estimates are:

    estimator                  d/dmu                                d/dsigma
    pathwise                   4 sigma^2                            4 mu^2 + 8 sigma^2
    score function             mu^4/sigma^2 + 14 mu^2 + 15 sigma^2  2 mu^4/sigma^2 + 60 mu^2 + 74 sigma^2
    score, baseline b = E[f]   8 mu^2 + 10 sigma^2                  40 mu^2 + 56 sigma^2

At mu = sigma = 1: pathwise 4 and 12; score function 30 and 136; with the ideal constant
baseline 18 and 96.

**Names.** The package, the demos and their metrics call the estimators by the terms of
Mohamed et al. (2020): "pathwise", "score" (with a baseline, where there is one to choose),
"score_nobaseline" and "score_loo" (the leave-one-out baseline); the constants ``PATHWISE``,
``SCORE``, ``SCORE_NOBASELINE`` and ``SCORE_LOO`` below hold them.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np

from tinygrad_reparam.random import get_rng
from tinygrad_reparam import checks
from tinygrad_reparam.tensor import Tensor

# The estimators' names, one vocabulary for the package, the demos, their metrics and figures
# (the terms of Mohamed et al. 2020, "Monte Carlo Gradient Estimation in Machine Learning"):
PATHWISE = "pathwise"                  # the reparameterized gradient through z = g_theta(eps)
SCORE = "score"                        # score function (REINFORCE), with the API's baseline
SCORE_NOBASELINE = "score_nobaseline"  # score function with b = 0
SCORE_LOO = "score_loo"                # score function with the leave-one-out baseline

# The names the meter below takes; its "score" subtracts the ``baseline`` argument (none: b = 0).
ESTIMATORS = (PATHWISE, SCORE, SCORE_NOBASELINE, SCORE_LOO)


# ---------------------------------------------------------------------------------------------
# The score function surrogate
def _detached(value, what: str) -> Tensor:
    """A Tensor with the values of ``value`` and no gradient path (numbers and arrays too)."""
    if isinstance(value, Tensor):
        return value.detach()
    return Tensor(checks.float_array(value, what))


def score_function_surrogate(log_prob: Tensor, cost, baseline=None) -> Tensor:
    """A scalar whose value is mean(cost) and whose gradient is the REINFORCE estimate.

    ``log_prob``: log q_theta(z) of each draw z (drawn with ``sample()``), a Tensor connected to
    theta. ``cost``: f(z) for each draw, same shape as ``log_prob`` (or with extra axes when one
    draw has several costs). ``baseline``: None, a number, an array or a Tensor that broadcasts
    to the cost's shape; it must not depend on the draw it is subtracted from.

    The gradient is mean((cost - baseline) * grad log q(z)), an unbiased estimate of
    grad E_q[f(z)] because E_q[grad log q] = 0. Cost and baseline are detached here, so a cost
    computed from theta contributes no pathwise gradient through this surrogate (add it yourself
    if you want it). Do not compute ``log_prob`` on an ``rsample()``: that adds a pathwise term.
    """
    if not isinstance(log_prob, Tensor):
        raise TypeError(f"score_function_surrogate: log_prob must be a Tensor connected to the "
                        f"parameters (dist.log_prob(z)), got {type(log_prob).__name__}")
    cost_d = _detached(cost, "score_function_surrogate: cost")
    b = _detached(0.0 if baseline is None else baseline, "score_function_surrogate: baseline")
    _check_surrogate_shapes(log_prob.shape, cost_d.shape, b.shape)

    advantage = cost_d - b                       # a constant: no gradient flows into it
    score_term = (advantage * log_prob).mean()   # gradient: mean((c - b) * grad log q)
    # (score_term - score_term.detach()) is exactly 0 in value and has score_term's gradient.
    return cost_d.mean() + (score_term - score_term.detach())


def _check_surrogate_shapes(log_prob_shape: tuple, cost_shape: tuple, baseline_shape: tuple) -> None:
    """log_prob and baseline must broadcast to the cost's shape without enlarging it: if log_prob
    had an axis the cost lacks (e.g. shape (n,) against (n, 1), or per-dimension log-probs not
    summed over the latent axis) the mean would silently mix draws or rescale the gradient."""
    try:
        joint = np.broadcast_shapes(log_prob_shape, cost_shape)
    except ValueError:
        raise ValueError(
            f"score_function_surrogate: log_prob has shape {log_prob_shape} and cost has shape "
            f"{cost_shape}; they cannot be broadcast together. Give one cost per draw, and sum "
            f"log_prob over the latent (event) axes so that it has one entry per draw too."
        ) from None
    if joint != cost_shape:
        raise ValueError(
            f"score_function_surrogate: log_prob of shape {log_prob_shape} would broadcast the "
            f"cost of shape {cost_shape} up to {joint}, pairing costs with the log-probabilities "
            f"of other draws. Give log_prob and cost the same shape (one entry per draw; sum "
            f"log_prob over latent axes first, and check for a stray axis of length 1)."
        )
    try:
        joint = np.broadcast_shapes(baseline_shape, cost_shape)
    except ValueError:
        joint = None
    if joint != cost_shape:
        raise ValueError(
            f"score_function_surrogate: baseline of shape {baseline_shape} does not broadcast to "
            f"the cost's shape {cost_shape}; use a number or an array of the cost's shape."
        )


# ---------------------------------------------------------------------------------------------
# Baselines
class MovingAverageBaseline:
    """An exponential moving average of past batch-mean costs, used as b in (f(z) - b).

    ``value`` is None until the first ``update``, which sets it to that batch's mean cost;
    afterwards ``value = decay * value + (1 - decay) * mean(cost)``. Use ``value`` *before*
    calling ``update`` with the current costs, so that b never contains the draws it multiplies
    (otherwise the estimator is biased)::

        surrogate = score_function_surrogate(log_q, cost, baseline.value)  # None at first: no baseline
        baseline.update(cost)
    """

    def __init__(self, decay: float = 0.9):
        # decay 0 keeps only the last batch; close to 1, the average reaches back over many.
        self.decay = checks.number(decay, "MovingAverageBaseline: decay", 0, 1, upper_open=True)
        self.value: Optional[float] = None

    def update(self, cost) -> float:
        """Fold the mean of ``cost`` (Tensor, array or number) into the average; return the new value."""
        values = checks.float_array(cost, "MovingAverageBaseline.update: cost")
        if values.size == 0:
            raise ValueError("MovingAverageBaseline.update: cost is empty; pass the costs of at least one draw")
        batch_mean = float(np.mean(values))
        if not np.isfinite(batch_mean):
            raise ValueError(f"MovingAverageBaseline.update: the mean cost is {batch_mean}; "
                             f"a baseline must be finite")
        if self.value is None:
            self.value = batch_mean
        else:
            self.value = self.decay * self.value + (1.0 - self.decay) * batch_mean
        return self.value

    def __repr__(self) -> str:
        return f"MovingAverageBaseline(decay={self.decay}, value={self.value})"


def leave_one_out(cost, axis: int = 0):
    """Each draw's baseline is the mean cost of the *other* draws along ``axis``:

        b_i = (sum_j c_j - c_i) / (n - 1).

    b_i does not depend on draw i (the draws are independent), so the estimator stays unbiased.
    Needs n >= 2 draws along ``axis``. Returns an array for array input and a detached Tensor
    for Tensor input, with the shape of ``cost``.
    """
    values = checks.float_array(cost, "leave_one_out: cost")
    checks.integer_axis(axis, "leave_one_out")
    if values.ndim == 0:
        raise ValueError("leave_one_out: cost is a single number; it needs at least 2 draws along an axis")
    if not -values.ndim <= axis < values.ndim:
        raise ValueError(f"leave_one_out: axis {axis} is out of range for cost of shape {values.shape}")
    n = values.shape[axis]
    if n < 2:
        raise ValueError(f"leave_one_out: needs at least 2 draws along axis {axis}, cost has shape "
                         f"{values.shape}; with one draw there are no others to average "
                         f"(draw more samples, or use a moving-average baseline)")
    others = (values.sum(axis=axis, keepdims=True) - values) / (n - 1)
    return Tensor(others) if isinstance(cost, Tensor) else others


# ---------------------------------------------------------------------------------------------
# DiCE
def magic_box(tau: Tensor) -> Tensor:
    """DiCE's magic box exp(tau - stop_gradient(tau)): value 1, gradient d tau / d theta.

    With tau = log q(z) (z from ``sample()``): d magic_box(tau)/d theta = grad log q(z), so
    ``(cost * magic_box(log_q)).mean()`` has the score function estimate as its gradient. Because
    it is an exp, derivatives of every order keep the same form (Foerster et al. 2018, DiCE).
    """
    if not isinstance(tau, Tensor):
        raise TypeError(f"magic_box: tau must be a Tensor (e.g. a sum of log-probabilities), "
                        f"got {type(tau).__name__}")
    return (tau - tau.detach()).exp()


# ---------------------------------------------------------------------------------------------
# The meter: one estimate, many estimates, statistics
def _objective(dist, cost_fn: Callable, estimator: str, n_samples: int, baseline, rng,
               cost_shape: tuple) -> Tensor:
    """The scalar whose gradient is the estimate: value mean cost, gradient the estimator.

    Draws have shape (n_samples,) + batch_shape + event_shape; ``cost_fn`` returns one cost per
    draw, of shape ``cost_shape``: (n_samples,), or (n_samples, repeats) for stacked copies.
    """
    if estimator == PATHWISE:
        z = dist.rsample((n_samples,), rng=rng)    # z = loc + scale * eps: the path stays open
        cost = cost_fn(z)
        if not isinstance(cost, Tensor) or not cost.requires_grad:
            raise TypeError("the pathwise estimator differentiates cost_fn(z), so cost_fn must be "
                            "built from Tensor operations on z (not NumPy on z.data); for a black-box "
                            "cost use a score function estimator")
        _check_cost_shape(cost, z, cost_shape)
        return cost.mean()

    z = dist.sample((n_samples,), rng=rng)          # the visible cut: no gradient through z
    cost = cost_fn(z)
    _check_cost_shape(cost, z, cost_shape)
    log_q = dist.log_prob(z)
    batch_axes = tuple(range(np.ndim(cost), log_q.ndim))
    if batch_axes:                                  # joint log-probability of each draw
        log_q = log_q.sum(axis=batch_axes)
    cost_values = checks.float_array(cost, "cost")
    if estimator == SCORE_LOO:
        b = leave_one_out(cost_values, axis=0)
    elif isinstance(baseline, MovingAverageBaseline):
        b = baseline.value                          # from earlier estimates only...
        baseline.update(cost_values)                # ...then this one joins the average
    elif callable(baseline):
        b = baseline(cost_values)
    else:
        b = baseline
    return score_function_surrogate(log_q, cost_values, b)


def _check_cost_shape(cost, z: Tensor, expected: tuple) -> None:
    if np.shape(cost) != expected:
        raise ValueError(
            f"cost_fn must return one cost per draw: for draws of shape {z.shape} the cost should "
            f"have shape {expected}, got {np.shape(cost)}. Reduce over the trailing (batch and "
            f"event) axes only, e.g. (z ** 2).sum(axis=-1)."
        )


def _check_arguments(where: str, params, estimator: str, n_samples: int, baseline, dist_factory,
                     cost_fn) -> list:
    """Readable errors, naming the function ``where``, for the arguments that estimate_gradient
    and gradient_samples share."""
    if not callable(dist_factory):
        raise TypeError(f"{where}: dist_factory must be callable (parameters -> distribution), "
                        f"got {type(dist_factory).__name__}")
    if not callable(cost_fn):
        raise TypeError(f"{where}: cost_fn must be callable (draws -> one cost per draw), "
                        f"got {type(cost_fn).__name__}")
    if isinstance(params, Tensor) or not isinstance(params, (list, tuple)):
        raise TypeError(f"{where}: params must be a list of Tensors (the parameters dist_factory "
                        f"takes), got {type(params).__name__}")
    for i, p in enumerate(params):
        if not isinstance(p, Tensor) or not p.requires_grad:
            raise TypeError(f"{where}: params[{i}] must be a Tensor with requires_grad=True (a "
                            f"parameter of the distribution), got {p!r}")
    if not isinstance(estimator, str) or estimator not in ESTIMATORS:
        raise ValueError(f"{where}: unknown estimator {estimator!r}; choose one of {ESTIMATORS}")
    checks.count(n_samples, f"{where}: n_samples")
    if baseline is not None and estimator != SCORE:
        raise ValueError(f"{where}: a baseline applies to the {SCORE!r} estimator only, not "
                         f"{estimator!r} ({SCORE_LOO!r} brings its own leave-one-out baseline)")
    if estimator == SCORE_LOO and n_samples < 2:
        raise ValueError(f"{where}: {SCORE_LOO!r} needs n_samples >= 2: each draw's baseline is the "
                         f"mean of the others")
    return list(params)


def estimate_gradient(dist_factory: Callable, cost_fn: Callable, params: Sequence[Tensor],
                      estimator: str = PATHWISE, n_samples: int = 1, baseline=None,
                      rng: Optional[np.random.Generator] = None) -> list:
    """One estimate of d/dtheta E_{z ~ dist_factory(*params)}[cost_fn(z)], one array per parameter.

    ``estimator``: "pathwise" (``rsample``), "score" (``sample`` + ``log_prob``, with an optional
    ``baseline``: a number, an array, a ``MovingAverageBaseline`` (read, then updated with this
    estimate's costs) or a function from the costs (shape (n_samples,)) to baselines),
    "score_nobaseline" (b = 0) or "score_loo" (the leave-one-out baseline). Each estimate averages
    ``n_samples`` draws. ``cost_fn`` maps draws (shape (n_samples,) + batch + event) to one cost
    per draw (shape (n_samples,)). The parameters' own ``.grad`` is left as it was.
    """
    params = _check_arguments("estimate_gradient", params, estimator, n_samples, baseline,
                              dist_factory, cost_fn)
    saved = [p.grad for p in params]
    for p in params:
        p.grad = None                              # start from zero...
    try:
        objective = _objective(dist_factory(*params), cost_fn, estimator, n_samples, baseline,
                               get_rng(rng), cost_shape=(n_samples,))
        objective.backward()
        return [np.zeros(p.shape) if p.grad is None else p.grad.copy() for p in params]
    finally:
        for p, grad in zip(params, saved):         # ...and leave the user's gradients untouched
            p.grad = grad


def _independent_copies(params: list, repeats: int) -> list:
    """``repeats`` stacked copies of each parameter, as new leaves: shape (repeats, ...).

    Copy r only drives the draws of estimate r, so after one backward pass through the sum of the
    ``repeats`` objectives, copy r's gradient is estimate r: many independent estimates for the
    price of one graph. Lower-dimensional parameters get axes of length 1 after the repeat axis,
    so they still line up with the others under broadcasting (a scalar sigma next to a vector mu).
    """
    ndim = max(p.ndim for p in params)
    copies = []
    for p in params:
        aligned = p.data.reshape((1,) + (1,) * (ndim - p.ndim) + p.shape)
        copies.append(Tensor(np.repeat(aligned, repeats, axis=0), requires_grad=True))
    return copies


def gradient_samples(dist_factory: Callable, cost_fn: Callable, params: Sequence[Tensor],
                     estimator: str = PATHWISE, n_samples: int = 1, repeats: int = 1000,
                     baseline=None, exact: Optional[Sequence] = None,
                     rng: Optional[np.random.Generator] = None, vectorize: bool = True) -> list:
    """Draw ``repeats`` independent estimates (as in ``estimate_gradient``) and return one
    ``GradientStats`` per parameter; ``exact`` (one array per parameter) adds bias and bias_z.

    With ``vectorize=True`` all estimates come from one graph: each parameter gets a leading axis
    of ``repeats`` independent copies, so ``dist_factory`` must accept parameters with that extra
    leading axis (any family built elementwise from its parameters does) and ``cost_fn`` sees draws
    of shape (n_samples, repeats) + batch + event and must return costs of shape
    (n_samples, repeats); a baseline function receives those costs (draws along axis 0).
    ``vectorize=False`` calls ``estimate_gradient`` ``repeats`` times instead: slower, but for any
    factory and for a ``MovingAverageBaseline``, whose state passes from one estimate to the next.
    """
    params = _check_arguments("gradient_samples", params, estimator, n_samples, baseline,
                              dist_factory, cost_fn)
    repeats = checks.count(repeats, "gradient_samples: repeats (a variance needs two estimates)",
                           minimum=2)
    vectorize = checks.flag(vectorize, "gradient_samples: vectorize")
    if exact is None:
        exact = [None] * len(params)
    if len(exact) != len(params):  # before any estimate is drawn
        raise ValueError(f"gradient_samples: exact must give one gradient per parameter: "
                         f"{len(params)} parameters, {len(exact)} exact gradients")
    rng = get_rng(rng)
    if not vectorize:
        estimates = [estimate_gradient(dist_factory, cost_fn, params, estimator, n_samples, baseline, rng)
                     for _ in range(repeats)]
        samples = [np.stack([estimate[i] for estimate in estimates]) for i in range(len(params))]
    else:
        if isinstance(baseline, MovingAverageBaseline):
            raise ValueError("gradient_samples: a MovingAverageBaseline changes from one estimate "
                             "to the next, so the estimates must be drawn one after another: pass "
                             "vectorize=False")
        copies = _independent_copies(params, repeats)
        objective = _objective(dist_factory(*copies), cost_fn, estimator, n_samples, baseline, rng,
                               cost_shape=(n_samples, repeats))
        # The objective is the mean over all n_samples * repeats draws; times repeats it is the
        # sum over copies of each copy's own mean over its n_samples draws.
        (objective * repeats).backward()
        samples = [np.zeros((repeats,) + p.shape) if c.grad is None else c.grad.reshape((repeats,) + p.shape)
                   for p, c in zip(params, copies)]
    return [GradientStats(s, e) for s, e in zip(samples, exact)]


def compare_estimators(dist_factory: Callable, cost_fn: Callable, params: Sequence[Tensor],
                       estimators: Sequence[str] = (PATHWISE, SCORE_NOBASELINE, SCORE_LOO),
                       n_samples: int = 2, repeats: int = 1000,
                       exact: Optional[Sequence] = None,
                       rng: Optional[np.random.Generator] = None) -> dict:
    """``gradient_samples`` for each named estimator, all on the same noise: each one gets a fresh
    generator with the same seed, so they see the same eps (common random numbers) and differ
    only in how they turn it into a gradient. Returns {name: [GradientStats per parameter]}.
    There is no baseline argument, so "score" here is "score_nobaseline". ``n_samples`` defaults
    to 2 because "score_loo" needs at least two draws per estimate."""
    if isinstance(estimators, str):
        raise TypeError(f"compare_estimators: estimators must be a list of names, e.g. "
                        f"['pathwise', 'score_nobaseline'], got the string {estimators!r}")
    seed = int(get_rng(rng).integers(2**63))
    return {name: gradient_samples(dist_factory, cost_fn, params, name, n_samples, repeats,
                                   exact=exact, rng=np.random.default_rng(seed))
            for name in estimators}


class GradientStats:
    """Summary of independent gradient estimates of one parameter (``samples``: shape (n, ...)).

    ``mean``, ``variance`` (unbiased, ddof=1), ``std_error`` = sqrt(variance / n) (of the mean),
    ``variance_std_error`` (of the variance, from the fourth central moment:
    Var(s^2) ~ (m4 - s^4 (n - 3) / (n - 1)) / n). Given ``exact``: ``bias`` = mean - exact and
    ``bias_z`` = bias / std_error; |bias_z| > 4 is strong evidence of a biased estimator.
    All are arrays of the parameter's shape.
    """

    def __init__(self, samples, exact=None):
        samples = checks.float_array(samples, "GradientStats: samples")
        if samples.ndim == 0 or samples.shape[0] < 2:
            raise ValueError(f"GradientStats needs at least 2 estimates along axis 0, got shape {samples.shape}")
        n = samples.shape[0]
        self.samples = samples
        self.n = n
        self.mean = samples.mean(axis=0)
        self.variance = samples.var(axis=0, ddof=1)
        self.std_error = np.sqrt(self.variance / n)
        m4 = ((samples - self.mean) ** 4).mean(axis=0)
        self.variance_std_error = np.sqrt(np.maximum(m4 - self.variance ** 2 * (n - 3) / (n - 1), 0.0) / n)
        self.exact = None if exact is None else np.asarray(exact, dtype=np.float64)
        if self.exact is None:
            self.bias = self.bias_z = None
        else:
            if self.exact.shape != self.mean.shape:
                raise ValueError(f"GradientStats: exact gradient has shape {self.exact.shape}, "
                                 f"the estimates have shape {self.mean.shape}")
            self.bias = self.mean - self.exact
            with np.errstate(divide="ignore", invalid="ignore"):
                self.bias_z = np.where(self.bias == 0, 0.0, self.bias / self.std_error)

    def __repr__(self) -> str:
        def fmt(x):
            return np.array2string(np.asarray(x), precision=4, threshold=6, separator=", ")
        text = (f"GradientStats(n={self.n}, mean={fmt(self.mean)}, variance={fmt(self.variance)}, "
                f"std_error={fmt(self.std_error)}")
        if self.bias is not None:
            text += f", bias={fmt(self.bias)}, bias_z={fmt(self.bias_z)}"
        return text + ")"
