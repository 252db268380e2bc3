"""Estimators for discrete latents: the score function, repaired by the reparameterization trick.

For b ~ Bernoulli(sigmoid(phi)) there is no z = g(phi, eps) with a useful derivative: the draw
b = [phi + L > 0] (L logistic noise) is a step function of phi, flat almost everywhere. So the
gradient of

    F(phi) = E_{b ~ Bernoulli(sigmoid(phi))}[f(b)]

has to come from the score function (REINFORCE), E[f(b) d log p(b)/d phi], whose variance grows
with f's size. Each estimator below keeps it unbiased and lowers the variance with a different
idea:

    estimator   the idea                                                 evaluations of f
    VIMCO       K draws; each one's baseline built from the other K - 1   K
    ARM         two antithetic draws from one uniform, (u - 1/2) weights  2 per uniform
    DisARM      ARM averaged over the uniform given the pair              2 per uniform
                (Rao-Blackwellized)
    REBAR       a relaxed copy of the draw as control variate, its mean   3 per draw (and 2
                put back by the reparameterization trick                  gradients of f)
    RELAX       REBAR with a learned control variate c_psi(z)             1 per draw (and c_psi)

REBAR and RELAX are the reparameterization trick at work inside a score-function estimator: the
control variate c(z) is a smooth function of the *continuous* z whose step is b, and its
expectation's gradient is estimated pathwise, z = phi + logit(u).

**The toy problem** (Tucker et al. 2017; Grathwohl et al. 2018): f(b) = (b - t)^2, so with
theta = sigmoid(phi), F = theta (1 - t)^2 + (1 - theta) t^2 and

    dF/dphi = theta (1 - theta) (f(1) - f(0)) = theta (1 - theta) (1 - 2t),

tiny at t = 0.45 (0.025 at phi = 0) and tinier at t = 0.499 (0.0005): the signal drowns in the
score function's noise. ``toy_exact_gradient`` and ``toy_variances`` (the exact variances of the
one-draw REINFORCE, ARM and DisARM estimates: two outcomes, exact arithmetic) state it in code.

**The call shape** is that of ``estimators.score_function_surrogate``: each function returns a
scalar whose *value* is the mean of the costs it evaluated (an estimate of E[f]) and whose
*gradient* with respect to ``logits`` is the estimate, averaged over the batch:

    logits     a Tensor of shape batch + event, e.g. (images, latents), or () for one coin
    cost_fn    draws b (a constant Tensor of 0s and 1s, shape samples + batch + event) ->
               one cost per draw and batch entry, shape samples + batch (a Tensor or an array)

If the costs are Tensors that depend on other parameters (a decoder), the value's gradient is the
average of their gradients over the draws, an unbiased estimate for those parameters too. REBAR
and RELAX return a ``RelaxEstimate``: the surrogate and ``variance``, a scalar whose gradient is
that of the estimator's variance with respect to the control variate's parameters.

**Second-order gradients.** The engine's VJPs work on NumPy arrays, so backward() cannot be
differentiated again (no double backward). Tuning REBAR's temperature and RELAX's network needs
d|g|^2 / d psi, where g is itself a gradient with respect to phi. Here the structure makes it
first-order: each z_i depends on phi_i only, so dc(z)/dphi = dc/dz * dz/dphi elementwise, with
dz/dphi in closed form (1 for z, ``conditional_logistic`` for z~). What remains is dc/dz, written
as a Tensor expression of the control variate's parameters: for REBAR
eta f'(y) y (1 - y) / lambda with y = sigmoid(z / lambda), f' given by the caller as Tensor
operations (``cost_gradient``); for a network, ``mlp_input_gradient``, the backward pass of an
MLP written with forward operations. The estimate g is then an ordinary Tensor, and backward()
on |g|^2 gives the exact gradient of its square (``tests/test_discrete_estimators.py`` checks it
by central differences).
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional, Sequence

import numpy as np

from tinygrad_reparam import checks
from tinygrad_reparam.nn import ACTIVATIONS, MLP, Module
from tinygrad_reparam.ops import lift, logsumexp
from tinygrad_reparam.random import get_rng, uniform_open
from tinygrad_reparam.tensor import Tensor

COST_FN = "draws b, a constant Tensor of shape samples + batch + event -> one cost per draw, shape samples + batch"


# ---------------------------------------------------------------------------------------------
# The toy problem: E_{b ~ Bernoulli(sigmoid(phi))}[(b - t)^2]
def toy_cost(b, target: float):
    """f(b) = (b - t)^2, for Tensors (so that relaxed b in (0, 1) can be differentiated) and arrays."""
    return (b - target) ** 2


def toy_exact_gradient(logit, target: float) -> np.ndarray:
    """dF/dphi = theta (1 - theta) (1 - 2t), theta = sigmoid(phi): the gradient of
    F = theta (1 - t)^2 + (1 - theta) t^2, since f(1) - f(0) = 1 - 2t."""
    phi = checks.float_array(logit, "toy_exact_gradient: logit")
    return _sigmoid(phi) * _sigmoid(-phi) * (1.0 - 2.0 * target)


def toy_variances(logit, target: float) -> dict:
    """The exact variances of one estimate of dF/dphi on the toy, for three estimators.

    With theta = sigmoid(phi), f0 = t^2, f1 = (1 - t)^2, delta = f1 - f0 and g* = theta (1 - theta) delta:

    - REINFORCE, one draw: g = f(b) (b - theta) is f1 (1 - theta) with probability theta and
      -f0 theta otherwise, so E[g^2] = theta (1 - theta) [(1 - theta) f1^2 + theta f0^2];
    - ARM, one uniform (2 evaluations): g = delta (u - 1/2) on the two end intervals of length
      1 - m, m = max(theta, 1 - theta), and 0 between, so E[g^2] = delta^2 (1/12 - (2/3)(m - 1/2)^3);
    - DisARM, one uniform: g = delta sigmoid(|phi|) / 2 when the pair differs (probability
      2 sigmoid(-|phi|)) and 0 otherwise, so E[g^2] = delta^2 sigmoid(|phi|)^2 sigmoid(-|phi|) / 2.

    Each variance is E[g^2] - g*^2. At phi = 0 DisARM's is exactly 0: the pair always differs.
    """
    phi = checks.float_array(logit, "toy_variances: logit")
    theta, one_minus = _sigmoid(phi), _sigmoid(-phi)
    f0, f1 = target ** 2, (1.0 - target) ** 2
    delta = f1 - f0
    mean_squared = (theta * one_minus * delta) ** 2
    m = np.maximum(theta, one_minus)
    close, far = _sigmoid(np.abs(phi)), _sigmoid(-np.abs(phi))
    return {
        "reinforce": theta * one_minus * (one_minus * f1 ** 2 + theta * f0 ** 2) - mean_squared,
        "arm": delta ** 2 * (1.0 / 12.0 - (2.0 / 3.0) * (m - 0.5) ** 3) - mean_squared,
        "disarm": delta ** 2 * close ** 2 * far / 2.0 - mean_squared,
    }


# ---------------------------------------------------------------------------------------------
# ARM and DisARM: two antithetic draws from one uniform
def arm_surrogate(logits: Tensor, cost_fn: Callable, n_pairs: int = 1,
                  rng: Optional[np.random.Generator] = None) -> Tensor:
    """ARM, augment-REINFORCE-merge (Yin & Zhou 2019): 2 evaluations of f per uniform.

    For one uniform vector u (one u_i per latent), the two draws

        b_up = [u > sigmoid(-phi)],     b_down = [u < sigmoid(phi)]

    are each Bernoulli(sigmoid(phi)) (P(u > 1 - theta) = P(u < theta) = theta), and

        g_i = (f(b_up) - f(b_down)) (u_i - 1/2).

    Why it is unbiased, for one latent (the others only add a factor that does not depend on
    u_i): say theta >= 1/2. For u in (1 - theta, theta) both draws are 1 and g = 0; below
    1 - theta, b_up = 0 and b_down = 1; above theta, b_up = 1 and b_down = 0. So

        E[g] = (f(1) - f(0)) [int_theta^1 (u - 1/2) du - int_0^(1-theta) (u - 1/2) du]
             = (f(1) - f(0)) theta (1 - theta) = dF/dphi

    (the case theta < 1/2 is the mirror image). With d latents the same u drives both draws of
    every latent; the derivation conditions on the others. ``n_pairs`` independent uniforms are
    averaged: 2 n_pairs evaluations. Both draws are evaluated in one call of ``cost_fn``, with
    samples shape (2, n_pairs).
    """
    logits = _logits("arm_surrogate", logits)
    cost_fn = checks.function(cost_fn, "arm_surrogate: cost_fn", COST_FN)
    n_pairs = checks.count(n_pairs, "arm_surrogate: n_pairs")
    phi = logits.data
    u = uniform_open((n_pairs,) + phi.shape, get_rng(rng))
    noise = _logit(u)                             # L = logit(u) ~ Logistic(0, 1)
    b_up = phi + noise > 0                        # [u > sigmoid(-phi)]
    b_down = phi - noise > 0                      # [u < sigmoid(phi)]
    cost, values, batch_size = _evaluate("arm_surrogate", cost_fn, np.stack([b_up, b_down]), logits.shape, 2)
    gradients = (values[0] - values[1]) * (u - 0.5)   # one per pair, shape (n_pairs,) + logits.shape
    return _surrogate(cost, logits, gradients.mean(axis=0) / batch_size)


def disarm_surrogate(logits: Tensor, cost_fn: Callable, n_pairs: int = 1,
                     rng: Optional[np.random.Generator] = None) -> Tensor:
    """DisARM (Dong, Mnih & Tucker 2020): ARM averaged over u given the pair; 2 evaluations per u.

    The antithetic pair b = [u < sigmoid(phi)] and b~ = [1 - u < sigmoid(phi)] (ARM's b_down and
    b_up), and

        g_i = 1/2 (f(b) - f(b~)) (-1)^(b~_i) [b_i != b~_i] sigmoid(|phi_i|).

    This is E[ARM's g_i | b, b~]: given the pair, u_i is uniform on the interval the pair allows,
    and averaging (u_i - 1/2) over it leaves this closed form. Conditional expectations keep the
    mean (so DisARM is unbiased because ARM is) and never raise the variance (the law of total
    variance). Directly, for one latent: the pair differs with probability 2 sigmoid(-|phi|), and
    then g = (f(1) - f(0)) sigmoid(|phi|) / 2 whichever way round it is, so

        E[g] = (f(1) - f(0)) sigmoid(|phi|) sigmoid(-|phi|) = (f(1) - f(0)) theta (1 - theta).

    ``n_pairs`` independent uniforms are averaged: 2 n_pairs evaluations.
    """
    logits = _logits("disarm_surrogate", logits)
    cost_fn = checks.function(cost_fn, "disarm_surrogate: cost_fn", COST_FN)
    n_pairs = checks.count(n_pairs, "disarm_surrogate: n_pairs")
    phi = logits.data
    u = uniform_open((n_pairs,) + phi.shape, get_rng(rng))
    noise = _logit(u)
    b = phi - noise > 0                           # [u < sigmoid(phi)]
    b_anti = phi + noise > 0                      # [1 - u < sigmoid(phi)]
    cost, values, batch_size = _evaluate("disarm_surrogate", cost_fn, np.stack([b, b_anti]), logits.shape, 2)
    sign = 1.0 - 2.0 * b_anti                     # (-1)^(b~)
    weight = np.where(b != b_anti, sign, 0.0) * _sigmoid(np.abs(phi))
    gradients = 0.5 * (values[0] - values[1]) * weight
    return _surrogate(cost, logits, gradients.mean(axis=0) / batch_size)


# ---------------------------------------------------------------------------------------------
# VIMCO: a multi-sample bound, each draw's baseline from the others
def vimco_surrogate(log_prob: Tensor, log_weights) -> Tensor:
    """VIMCO (Mnih & Rezende 2016): the gradient of the K-sample bound with leave-one-out signals.

    ``log_prob``: log q(b_k) of K independent draws, shape (K,) + batch (summed over latents),
    a Tensor connected to q's parameters. ``log_weights``: log w_k, same shape; a Tensor when it
    depends on parameters (in a VAE log w = log p(x, b) - log q(b | x)), else an array. The
    objective is

        L = E[ log (1/K) sum_k w_k ],     (K = 1: the ELBO; K -> infinity: log E[w])

    and its gradient is sum_k E[L_hat grad log q(b_k)] + E[sum_k w~_k grad log w_k] with w~ the
    normalized weights. The first part is a score function with the same L_hat = log mean w for
    every draw, hopelessly noisy, so each draw k gets its own baseline: L_hat with w_k replaced by
    the geometric mean of the others,

        L_-k = log (1/K) (sum_{j != k} w_j + exp(mean_{j != k} log w_j)),
        learning signal of draw k: L_hat - L_-k.

    Unbiased because L_-k depends only on the other draws, which are independent of b_k:
    E[L_-k grad log q(b_k)] = E[L_-k] E[grad log q(b_k)] = 0. Needs K >= 2; K evaluations of the
    weights. The value is the batch mean of L_hat; the pathwise part comes from log_weights' own
    gradient (through logsumexp, whose derivative is w~).
    """
    if not isinstance(log_prob, Tensor):
        raise TypeError(f"vimco_surrogate: log_prob must be a Tensor connected to the parameters "
                        f"(log q(b_k), shape (K,) + batch), got {type(log_prob).__name__}")
    values = checks.float_array(log_weights, "vimco_surrogate: log_weights")
    if values.shape != log_prob.shape:
        raise ValueError(f"vimco_surrogate: log_weights has shape {values.shape} and log_prob has shape "
                         f"{log_prob.shape}; give one log-weight per draw, both of shape (K,) + batch "
                         f"(sum log_prob over the latents first)")
    if values.ndim == 0 or values.shape[0] < 2:
        raise ValueError(f"vimco_surrogate: needs K >= 2 draws along axis 0 (each draw's baseline is "
                         f"built from the others), got shape {values.shape}")
    checks.every_value("vimco_surrogate: log_weights", values, np.isfinite(values),
                       "finite (a draw with weight 0 leaves nothing to average)")
    k = values.shape[0]
    weights = log_weights if isinstance(log_weights, Tensor) else Tensor(values)
    bound = logsumexp(weights, axis=0) - math.log(k)           # L_hat per batch entry
    signal = bound.data - _leave_one_out_bounds(values)          # L_hat - L_-k, shape (K,) + batch
    score_term = (Tensor(signal) * log_prob).sum(axis=0).mean()
    return bound.mean() + (score_term - score_term.detach())


def _leave_one_out_bounds(log_weights: np.ndarray) -> np.ndarray:
    """L_-k = log (1/K) (sum_{j != k} w_j + exp(mean_{j != k} log w_j)) for every k, in log space:
    row k of ``replaced`` is the log-weights with the k-th one replaced by the mean of the others."""
    k = log_weights.shape[0]
    is_own = np.eye(k, dtype=bool).reshape((k, k) + (1,) * (log_weights.ndim - 1))
    others_mean = np.where(is_own, 0.0, log_weights[None]).sum(axis=1) / (k - 1)  # (K,) + batch
    replaced = np.where(is_own, others_mean[:, None], log_weights[None])           # (K, K) + batch
    largest = replaced.max(axis=1)
    return largest + np.log(np.exp(replaced - largest[:, None]).sum(axis=1)) - math.log(k)


# ---------------------------------------------------------------------------------------------
# REBAR and RELAX: a relaxed, reparameterized copy of the draw as the control variate
class RelaxEstimate(NamedTuple):
    """What ``relax_surrogate`` and ``rebar_surrogate`` return.

    ``surrogate``: value the mean cost, gradient the estimate (with respect to the logits, and
    through the costs to anything they depend on). ``variance``: the batch mean of |g|^2 for the
    estimate g of each batch entry; it depends on the control variate's parameters only, and
    since E[g] does not depend on them, its gradient is an unbiased estimate of the gradient of
    the estimator's variance. Minimize it with the control variate's own optimizer.
    """
    surrogate: Tensor
    variance: Tensor


def conditional_logistic(logits, b, v) -> tuple:
    """z~ ~ p(z | b): the logistic variable z = phi + logit(u) given its step b = [z > 0], from a
    second uniform v, and dz~/dphi with v and b held fixed. Arrays in, arrays out.

    Given b = 0, u is uniform on (0, 1 - theta); given b = 1, on (1 - theta, 1) (theta = sigmoid(phi)).
    So u' = v (1 - theta) or u' = (1 - theta) + v theta, and z~ = phi + logit(u') (Tucker et al.
    2017, appendix). Simplified so that nothing cancels:

        b = 0:  z~ = log(v theta) - log(1 - v (1 - theta)),          dz~/dphi = (1 - theta)(1 - v) / (1 - v (1 - theta))
        b = 1:  z~ = log(1 - (1 - v) theta) - log((1 - v)(1 - theta)), dz~/dphi = theta v / (1 - (1 - v) theta)

    (b = 1 is b = 0 with phi -> -phi, v -> 1 - v and the sign of z~ flipped.) z~ < 0 exactly when
    b = 0, for every v in (0, 1).
    """
    phi = checks.float_array(logits, "conditional_logistic: logits")
    b = checks.float_array(b, "conditional_logistic: b")
    v = checks.float_array(v, "conditional_logistic: v")
    theta, one_minus = _sigmoid(phi), _sigmoid(-phi)
    log_theta, log_one_minus = -_softplus(-phi), -_softplus(phi)
    given_0 = np.log(v) + log_theta - np.log1p(-v * one_minus)
    given_1 = np.log1p(-(1.0 - v) * theta) - np.log1p(-v) - log_one_minus
    slope_0 = one_minus * (1.0 - v) / (1.0 - v * one_minus)
    slope_1 = theta * v / (1.0 - (1.0 - v) * theta)
    is_one = b == 1
    return np.where(is_one, given_1, given_0), np.where(is_one, slope_1, slope_0)


def relax_surrogate(logits: Tensor, cost_fn: Callable, control_variate: Callable, n_samples: int = 1,
                    rng: Optional[np.random.Generator] = None) -> RelaxEstimate:
    """RELAX (Grathwohl et al. 2018): a score function whose control variate is put back pathwise.

    Draw z = phi + logit(u) (so b = [z > 0] is the Bernoulli draw) and z~ ~ p(z | b) from a
    second uniform v (``conditional_logistic``). For any differentiable c(z),

        g = [f(b) - c(z~)] d log p(b)/dphi + dc(z)/dphi - dc(z~)/dphi,
        d log p(b)/dphi = b - sigmoid(phi),   dz/dphi = 1,   dz~/dphi from conditional_logistic.

    Why it is unbiased: the first term is REINFORCE minus E_{z|b}[c] times the score. Split the
    reparameterized gradient of E_z[c(z)] by the law of total expectation over b,

        d/dphi E_z[c(z)] = E_b[ E_{z|b}[c(z)] d log p(b)/dphi ] + E_b[ d/dphi E_{z|b}[c(z)] ],

    the left side estimated by dc(z)/dphi and the two terms on the right by c(z~) times the score
    and by dc(z~)/dphi (z~ reparameterized given b). So the three control variate terms have mean
    0, whatever c is: c can be trained to lower the variance without biasing anything.

    ``control_variate(z)`` takes a constant Tensor z (shape samples + batch + event) and returns
    (c, dc/dz): c of the costs' shape, dc/dz of z's shape, both Tensor expressions of its
    parameters (``NeuralControlVariate``, ``rebar_control_variate``). One evaluation of f per
    draw and two of c; ``n_samples`` draws are averaged. The estimate g is a Tensor of the
    control variate's parameters, so ``variance`` = batch mean of |g|^2 is differentiable in them
    (see the module docstring on second-order gradients).
    """
    logits = _logits("relax_surrogate", logits)
    cost_fn = checks.function(cost_fn, "relax_surrogate: cost_fn", COST_FN)
    control_variate = checks.function(control_variate, "relax_surrogate: control_variate",
                                      "z -> (c(z), dc/dz), Tensors")
    n_samples = checks.count(n_samples, "relax_surrogate: n_samples")
    phi = logits.data
    rng = get_rng(rng)
    shape = (n_samples,) + phi.shape
    u, v = uniform_open(shape, rng), uniform_open(shape, rng)
    z = phi + _logit(u)                               # the relaxed variable, reparameterized
    b = z > 0                                         # its step: the Bernoulli draw
    z_tilde, z_tilde_slope = conditional_logistic(phi, b, v)
    cost, values, batch_size = _evaluate("relax_surrogate", cost_fn, b, logits.shape, 1)
    cost_shape = cost.shape
    _, slope_z = _control("relax_surrogate", control_variate, z, cost_shape)
    c_tilde, slope_tilde = _control("relax_surrogate", control_variate, z_tilde, cost_shape)
    score = b - _sigmoid(phi)                         # d log p(b)/dphi
    gradients = ((values - c_tilde.reshape(values.shape)) * score
                 + slope_z - slope_tilde * z_tilde_slope)     # dz/dphi = 1
    estimate = gradients.mean(axis=0)                 # one estimate per batch entry and latent
    variance = (estimate * estimate).sum() / batch_size
    return RelaxEstimate(_surrogate(cost, logits, estimate.data / batch_size), variance)


def rebar_control_variate(cost_fn: Callable, cost_gradient: Callable, temperature, eta) -> Callable:
    """REBAR's control variate c(z) = eta f(sigma_lambda(z)), sigma_lambda(z) = sigmoid(z / lambda),
    as a function z -> (c, dc/dz) for ``relax_surrogate``:

        dc/dz = eta f'(y) y (1 - y) / lambda,     y = sigmoid(z / lambda).

    f is the cost itself, evaluated at the relaxed point y in (0, 1) (so ``cost_fn`` must be
    built from Tensor operations), and ``cost_gradient(y)`` is f'(y), df/dy of y's shape, as a
    Tensor expression of y: the engine has no double backward, and tuning lambda needs the
    derivative of f'(y(lambda)). ``temperature`` (lambda > 0) and ``eta`` are Tensors to tune, or
    numbers. As lambda -> 0, y -> b and c(z~) -> eta f(b): the control variate matches the cost.
    """
    cost_fn = checks.function(cost_fn, "rebar_control_variate: cost_fn", "relaxed draws y -> costs, as Tensors")
    cost_gradient = checks.function(cost_gradient, "rebar_control_variate: cost_gradient",
                                    "relaxed draws y -> df/dy, a Tensor of y's shape")
    temperature = lift(temperature)
    eta = lift(eta)
    checks.every_value("rebar_control_variate: temperature", temperature.data, temperature.data > 0,
                       "positive (lambda in sigmoid(z / lambda))")

    def control(z: Tensor) -> tuple:
        y = (z / temperature).sigmoid()
        cost = cost_fn(y)
        slope = cost_gradient(y)
        if not isinstance(cost, Tensor) or not isinstance(slope, Tensor):
            raise TypeError("rebar_control_variate: cost_fn and cost_gradient must return Tensors built "
                            "from Tensor operations on the relaxed draws y, so that REBAR can "
                            "differentiate f(sigmoid(z / temperature)) and f' in the temperature")
        if slope.shape != y.shape:
            raise ValueError(f"rebar_control_variate: cost_gradient returned shape {slope.shape}; "
                             f"df/dy must have the shape of the relaxed draws, {y.shape}")
        return eta * cost, eta * slope * y * (1.0 - y) / temperature

    return control


def rebar_surrogate(logits: Tensor, cost_fn: Callable, cost_gradient: Callable, temperature, eta,
                    n_samples: int = 1, rng: Optional[np.random.Generator] = None) -> RelaxEstimate:
    """REBAR (Tucker et al. 2017): RELAX with the control variate c(z) = eta f(sigmoid(z / lambda)),

        g = [f(b) - eta f(sigma_lambda(z~))] d log p(b)/dphi
            + eta d f(sigma_lambda(z))/dphi - eta d f(sigma_lambda(z~))/dphi.

    Unbiased for every lambda and eta (``relax_surrogate`` says why), so both can be tuned to
    the variance: E[g] does not depend on them, so d Var(g)/d lambda = d E|g|^2 / d lambda, of
    which ``variance`` (|g|^2) is a one-draw unbiased estimate. Three evaluations of f per draw:
    f(b), f(sigma_lambda(z)) and f(sigma_lambda(z~)), and two of f'. See
    ``rebar_control_variate`` for ``cost_gradient``, ``temperature`` and ``eta``.
    """
    control = rebar_control_variate(cost_fn, cost_gradient, temperature, eta)
    return relax_surrogate(logits, cost_fn, control, n_samples, rng)


# ---------------------------------------------------------------------------------------------
# A learned control variate, and the input gradient of an MLP as Tensor operations
def mlp_input_gradient(mlp: MLP, x, output_gradient) -> tuple:
    """The output of ``mlp`` at x and d(sum of output_gradient * output)/dx, both as Tensors.

    This is the MLP's backward pass with respect to its input written with forward operations,

        g_out = output_gradient,   g <- (g @ W_k^T) * act'(a_{k-1}) layer by layer, down to x,
        act' = 1 - h^2 (tanh), h (1 - h) (sigmoid), sigmoid(a) (softplus), [a > 0] (relu),

    so the result is a Tensor expression of the weights (and of x, and of output_gradient):
    differentiating it again, e.g. the gradient of a RELAX estimate's square with respect to the
    control variate network, is an ordinary backward pass. ``output_gradient`` is a Tensor or
    array of the output's shape, or a function of the output Tensor that returns one (for a
    Bernoulli decoder's log-likelihood, logits -> x - sigmoid(logits)).
    """
    if not isinstance(mlp, MLP):
        raise TypeError(f"mlp_input_gradient: mlp must be a tinygrad_reparam.nn.MLP, got {type(mlp).__name__}")
    x = lift(x)
    activation = ACTIVATIONS[mlp.activation]
    hidden, pre_activations, h = [], [], x
    for layer in mlp.layers[:-1]:
        pre = layer(h)
        h = activation(pre)
        pre_activations.append(pre)
        hidden.append(h)
    out = mlp.layers[-1](h)
    g = output_gradient(out) if callable(output_gradient) else lift(output_gradient)
    if g.shape != out.shape:
        raise ValueError(f"mlp_input_gradient: output_gradient has shape {g.shape}; it must have the "
                         f"output's shape {out.shape}")
    for layer, pre, h in zip(reversed(mlp.layers[1:]), reversed(pre_activations), reversed(hidden)):
        g = (g @ layer.weight.T) * _activation_slope(mlp.activation, pre, h)
    return out, g @ mlp.layers[0].weight.T


def _activation_slope(name: str, pre: Tensor, h: Tensor) -> Tensor:
    """act'(a) as a Tensor, from the pre-activation a and the activation h = act(a)."""
    if name == "tanh":
        return 1.0 - h * h               # d tanh(a)/da = 1 - tanh(a)^2
    if name == "sigmoid":
        return h * (1.0 - h)             # d sigmoid(a)/da = s (1 - s)
    if name == "softplus":
        return pre.sigmoid()             # d softplus(a)/da = sigmoid(a)
    return Tensor((pre.data > 0).astype(pre.data.dtype))  # d relu(a)/da = [a > 0], a constant


class NeuralControlVariate(Module):
    """c_psi(z): an MLP from the latent vector z to one number, for ``relax_surrogate``.

    ``latent_shape`` is the event shape of one draw: () for one coin, (d,) for d latents. Called
    on z of shape leading + latent_shape, it returns (c, dc/dz): c of shape leading, and dc/dz of
    z's shape from ``mlp_input_gradient``, both Tensor expressions of the weights, so the gradient
    of a RELAX estimate's square reaches them. ``hidden`` lists the hidden widths.
    """

    def __init__(self, latent_shape: Sequence[int] = (), hidden: Sequence[int] = (10,),
                 activation: str = "tanh", rng: Optional[np.random.Generator] = None):
        if isinstance(latent_shape, (int, np.integer)) or not isinstance(latent_shape, (tuple, list)):
            raise TypeError(f"NeuralControlVariate: latent_shape must be a tuple, () for one coin or "
                            f"(d,) for d latents, got {latent_shape!r}")
        self.latent_shape = tuple(checks.count(n, "NeuralControlVariate: latent_shape entries") for n in latent_shape)
        if isinstance(hidden, (int, np.integer)):
            hidden = (hidden,)
        self.network = MLP([math.prod(self.latent_shape), *hidden, 1], activation=activation, rng=rng)

    def forward(self, z) -> tuple:
        z = lift(z)
        event_ndim = len(self.latent_shape)
        if z.shape[z.ndim - event_ndim:] != self.latent_shape or z.ndim < event_ndim:
            raise ValueError(f"NeuralControlVariate: z of shape {z.shape} does not end in the latent "
                             f"shape {self.latent_shape}")
        leading = z.shape[:z.ndim - event_ndim]
        flat = z.reshape(leading + (math.prod(self.latent_shape),))
        out, slope = mlp_input_gradient(self.network, flat, np.ones(leading + (1,)))
        return out.reshape(leading), slope.reshape(z.shape)

    def __repr__(self) -> str:
        return f"NeuralControlVariate(latent_shape={self.latent_shape}, network={self.network!r})"


# ---------------------------------------------------------------------------------------------
# Shared plumbing
def _logits(where: str, logits) -> Tensor:
    if not isinstance(logits, Tensor):
        raise TypeError(f"{where}: logits must be a Tensor (the Bernoulli logits phi, connected to the "
                        f"parameters you want gradients for), got {type(logits).__name__}")
    checks.every_value(f"{where}: logits", logits.data, np.isfinite(logits.data),
                       "finite (an infinite logit is a certain coin, with no gradient to estimate)")
    return logits


def _evaluate(where: str, cost_fn: Callable, draws: np.ndarray, logits_shape: tuple, sample_ndim: int) -> tuple:
    """Call cost_fn on the 0/1 draws (shape samples + logits_shape) and check its answer.

    Returns the costs as a Tensor (for the value), their values with axes of length 1 appended for
    the event axes (so that they broadcast against per-latent arrays), and the number of batch
    entries (the gradient is averaged over them, as the value is)."""
    cost = cost_fn(Tensor(draws.astype(np.float64)))
    values = checks.float_array(cost, f"{where}: cost_fn's result")
    samples = draws.shape[:sample_ndim]
    batch_ndim = values.ndim - sample_ndim
    if batch_ndim < 0 or values.shape != samples + logits_shape[:batch_ndim]:
        raise ValueError(f"{where}: cost_fn returned shape {values.shape} for draws of shape {draws.shape}; "
                         f"it must return one cost per draw and batch entry, of shape samples {samples} "
                         f"+ the leading (batch) axes of the logits' shape {logits_shape}, e.g. "
                         f"{samples + logits_shape[:-1]} for logits of shape (batch, latents)")
    checks.every_value(f"{where}: cost_fn's result", values, np.isfinite(values), "finite")
    event_ndim = len(logits_shape) - batch_ndim
    batch_size = math.prod(logits_shape[:batch_ndim])
    cost = cost if isinstance(cost, Tensor) else Tensor(values)
    return cost, values.reshape(values.shape + (1,) * event_ndim), batch_size


def _control(where: str, control_variate: Callable, z: np.ndarray, cost_shape: tuple) -> tuple:
    """control_variate(z) -> (c, dc/dz), checked: c of the costs' shape, dc/dz of z's shape."""
    result = control_variate(Tensor(z))
    if not (isinstance(result, tuple) and len(result) == 2 and all(isinstance(t, Tensor) for t in result)):
        raise TypeError(f"{where}: control_variate(z) must return a pair of Tensors (c(z), dc/dz), "
                        f"got {type(result).__name__}")
    c, slope = result
    if c.shape != cost_shape:
        raise ValueError(f"{where}: control_variate returned c of shape {c.shape}; it must have the "
                         f"costs' shape {cost_shape} (samples + batch)")
    if slope.shape != z.shape:
        raise ValueError(f"{where}: control_variate returned dc/dz of shape {slope.shape}; it must have "
                         f"z's shape {z.shape}")
    return c, slope


def _surrogate(cost: Tensor, logits: Tensor, gradient: np.ndarray) -> Tensor:
    """mean(cost) + [sum(logits * G) - its value]: the value of the mean cost, and gradient G with
    respect to the logits (plus whatever gradient the costs carry themselves)."""
    linear = (logits * Tensor(gradient)).sum()
    return cost.mean() + (linear - linear.detach())


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-x) from e^-|x|, which never overflows."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0, e) / (1.0 + e)


def _softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + e^x) = max(x, 0) + log1p(e^-|x|)."""
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def _logit(u: np.ndarray) -> np.ndarray:
    """log u - log(1 - u): uniform noise to logistic noise (finite: u is strictly inside (0, 1))."""
    return np.log(u) - np.log1p(-u)
