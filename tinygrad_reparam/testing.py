"""Hypothesis strategies for property tests of code built on tinygrad_reparam.

A property test states something that must hold for *every* input (``d(a*b)/da == b``,
``softmax`` sums to 1, a reparameterized sample has ``dz/dsigma == eps``) and lets hypothesis
search for a counterexample. Left unconstrained, that search finds floating-point limits first:
``exp(800)`` overflows, ``1 / 1e-310`` is inf, subnormals lose precision, NaN compares unequal
to itself. Those failures are real, but they are about IEEE 754, not about the mathematics under
test. The strategies here therefore draw values from a safe range: finite, no NaN, no infinity,
no subnormals, magnitudes of at most 10 by default, scales bounded away from 0, and small shapes
(at most 3 dimensions of at most 4 entries), so that a failing property points at a wrong
formula rather than at a rounding artefact, and finite-difference checks stay fast.

Example::

    from hypothesis import given
    from tinygrad_reparam.testing import float_arrays, positive_scales

    @given(float_arrays(shape=(3,)), positive_scales(shape=(3,)))
    def test_standardize_roundtrip(x, s):
        assert np.allclose((x / s) * s, x)

``check_pathwise_gradient`` checks a distribution's ``rsample`` against the implicit
reparameterization identity dz/dtheta = -(dF(z; theta)/dtheta) / p(z; theta), and the law of its
draws against F, using nothing but the distribution's own ``cdf`` and ``log_prob``: point it at
your own distributions.

hypothesis is a test-only dependency: install it with ``pip install "tinygrad_reparam[test]"``.
"""
from __future__ import annotations

import numpy as np

try:
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError as error:  # pragma: no cover - only without the test extra
    raise ImportError(
        'tinygrad_reparam.testing needs hypothesis: pip install "tinygrad_reparam[test]"'
    ) from error

from tinygrad_reparam import checks
from tinygrad_reparam.random import get_rng
from tinygrad_reparam.tensor import Tensor, no_grad

__all__ = ["shapes", "float_arrays", "broadcastable_shapes", "positive_scales",
           "probability_vectors", "tensors", "check_pathwise_gradient"]


def shapes(min_dims: int = 0, max_dims: int = 3, min_side: int = 1, max_side: int = 4):
    """Array shapes (tuples of ints) with ``min_dims..max_dims`` axes of ``min_side..max_side``.

    Example: ``shapes(min_dims=1, max_dims=2)`` draws shapes such as ``(3,)`` or ``(2, 4)``.
    """
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims,
                            min_side=min_side, max_side=max_side)


def _shape_strategy(shape):
    """None -> any small shape; an int or tuple -> exactly that shape; a strategy -> itself."""
    if shape is None:
        return shapes()
    if isinstance(shape, st.SearchStrategy):
        return shape
    if checks.is_integer(shape):
        return st.just((int(shape),))
    return st.just(tuple(int(side) for side in shape))


def _inward_bounds(low: float, high: float, dtype) -> tuple:
    """The closest values of ``dtype`` inside [low, high] (hypothesis needs exact bounds)."""
    low_d, high_d = dtype.type(low), dtype.type(high)
    if low_d < low:
        low_d = np.nextafter(low_d, dtype.type(np.inf))
    if high_d > high:
        high_d = np.nextafter(high_d, dtype.type(-np.inf))
    return float(low_d), float(high_d)


def float_arrays(shape=None, low: float = -10.0, high: float = 10.0, dtype=np.float64):
    """NumPy arrays of finite floats in ``[low, high]``: no NaN, no inf, no subnormals.

    ``shape`` is a tuple, an int, a strategy of shapes, or None (any of ``shapes()``);
    ``dtype`` is float64 or float32.

    Example: ``float_arrays(shape=(2, 3), low=-1.0, high=1.0)`` draws 2x3 float64 arrays
    with entries in [-1, 1].
    """
    dtype = checks.float_dtype(dtype, "float_arrays: dtype")
    if dtype.itemsize not in (4, 8):  # the float widths hypothesis draws
        raise ValueError(f"float_arrays: dtype must be float32 or float64, got {dtype}")
    if not low <= high:
        raise ValueError(f"float_arrays: need low <= high, got low={low}, high={high}")
    low, high = _inward_bounds(low, high, dtype)
    elements = st.floats(min_value=low, max_value=high, allow_nan=False, allow_infinity=False,
                         allow_subnormal=False, width=8 * dtype.itemsize)
    return hnp.arrays(dtype, _shape_strategy(shape), elements=elements)


def broadcastable_shapes(num_shapes: int = 2, min_dims: int = 0, max_dims: int = 3,
                         min_side: int = 1, max_side: int = 4):
    """Tuples of ``num_shapes`` shapes that broadcast together under NumPy's rules.

    Sides of 1 and missing leading axes both occur, so both ways of broadcasting are exercised.

    Example: ``broadcastable_shapes()`` draws pairs such as ``((3, 1), (4,))`` or ``((), (2, 2))``;
    ``np.broadcast_shapes(*pair)`` never raises.
    """
    return hnp.mutually_broadcastable_shapes(
        num_shapes=num_shapes, min_dims=min_dims, max_dims=max_dims,
        min_side=min_side, max_side=max_side,
    ).map(lambda drawn: drawn.input_shapes)


def positive_scales(shape=None, low: float = 1e-2, high: float = 10.0, dtype=np.float64):
    """Arrays of strictly positive values in ``[low, high]``: standard deviations, temperatures,
    denominators, bases of logarithms; bounded away from 0 so that 1/s and log s stay tame.

    Example: ``positive_scales(shape=(4,))`` draws arrays such as ``[0.5, 3.0, 0.01, 9.9]``.
    """
    if not 0 < low <= high:
        raise ValueError(f"positive_scales: need 0 < low <= high, got low={low}, high={high}")
    return float_arrays(shape, low=low, high=high, dtype=dtype)


@st.composite
def _probability_vectors(draw, k, min_k, max_k, min_prob):
    size = k if k is not None else draw(st.integers(min_value=min_k, max_value=max_k))
    if size * min_prob > 1.0:
        raise ValueError(f"probability_vectors: {size} entries of at least {min_prob} "
                         f"cannot sum to 1")
    weights = draw(float_arrays(shape=(size,), low=0.0, high=1.0))
    total = weights.sum()
    shares = weights / total if total > 0 else np.full(size, 1.0 / size)
    probs = min_prob + (1.0 - size * min_prob) * shares  # each entry >= min_prob exactly
    return probs.astype(np.float64)


def probability_vectors(k=None, min_k: int = 2, max_k: int = 6, min_prob: float = 0.0):
    """1-D float64 arrays of ``k`` nonnegative probabilities (at least ``min_prob`` each) that sum
    to 1 within 1e-12; ``k=None`` draws the length from ``min_k..max_k``. Entries equal to 0 can
    occur when ``min_prob == 0``; pass e.g. ``min_prob=1e-3`` to keep ``log p`` finite.

    Example: ``probability_vectors(k=3, min_prob=0.05)`` draws vectors such as
    ``[0.05, 0.6, 0.35]``.
    """
    if k is not None:
        k = checks.count(k, "probability_vectors: k")
    min_prob = checks.number(min_prob, "probability_vectors: min_prob", 0, 1)
    return _probability_vectors(k, min_k, max_k, min_prob)


def tensors(shape=None, low: float = -10.0, high: float = 10.0, requires_grad: bool = True,
            dtype=np.float64):
    """``Tensor``s whose data come from ``float_arrays(shape, low, high, dtype)``.

    Example::

        @given(tensors(shape=(3,)))
        def test_sum_gradient_is_ones(x):
            x.sum().backward()
            assert np.array_equal(x.grad, np.ones(3))
    """
    requires_grad = checks.flag(requires_grad, "tensors: requires_grad")
    return float_arrays(shape, low=low, high=high, dtype=dtype).map(
        lambda data: Tensor(data, requires_grad=requires_grad))


# ---------------------------------------------------------------------------------------------
# The implicit reparameterization identity, as a check of any distribution's rsample
LAW_THRESHOLD = 33.0  # Neyman's statistic (chi-square, 4 degrees of freedom): a correct sampler
                      # exceeds it about once in a million runs


def check_pathwise_gradient(make_distribution, parameters: dict, sample_shape=(64,), rng=None,
                            rtol: float = 1e-5, atol: float = 1e-8, step: float = 1e-5,
                            law_samples: int = 200_000) -> bool:
    """Check a distribution's ``rsample`` against its own ``cdf`` and ``log_prob``, two ways.

    1. The implicit reparameterization identity (Figurnov, Mohamed & Mnih 2018),

           dz/dtheta = -(dF(z; theta)/dtheta) / p(z; theta),

       which says that a draw keeps its quantile F(z; theta) as theta moves. The left side is what
       backpropagation through ``rsample`` gives, for each of ``sample_shape`` draws; the right
       side comes from ``cdf`` (differentiated in theta by central differences, the draw held
       fixed) and ``log_prob`` (p = exp(log_prob)). For a location-scale family it reduces to
       dz/dloc = 1 and dz/dscale = eps; for a Gamma it is the gradient PyTorch and TensorFlow
       Probability use. A mismatch raises an AssertionError naming the parameter, the draw and
       both derivatives.
    2. The law of the draws: u = F(z) of ``law_samples`` draws must be uniform on (0, 1). The
       identity cannot see a sampler that draws the wrong values but moves them the right way:
       ``loc + 1.01 * scale * eps`` keeps its quantile Phi(1.01 eps) fixed as loc and scale move,
       so it passes part 1 exactly, while its draws come from N(loc, 1.01 scale). Neyman's smooth
       test (the means of the first four Legendre polynomials of 2u - 1, whose squared z-scores
       add up to a chi-square with 4 degrees of freedom) fails above ``LAW_THRESHOLD``. With the
       default 200,000 draws it finds a Normal's scale 2% off; 1% needs about a million
       (``law_samples=10**6``). ``law_samples=0`` skips this part. Batch entries whose law float64
       cannot resolve (their draws pile up on a few floats, as Beta(1, 0.01)'s do next to 1) are
       left out of it.

    ``make_distribution(**parameters)`` must build the distribution; ``parameters`` maps each
    parameter's name to its value (a number, array or Tensor: only the values are used). Every
    parameter is checked. The family must be univariate (event shape ()) with parameters acting
    elementwise, so that each draw depends on its own parameter values only: for part 1 the
    parameters are broadcast to ``sample_shape + batch_shape`` and one value is drawn for each
    entry, which makes every derivative one backward pass and two ``cdf`` calls. ``cdf`` may
    return a Tensor or an array. ``step`` is the central difference's step relative to each
    parameter value (absolute where a value is 0); entries are compared to
    ``atol + rtol * |dz/dtheta|``, plus the rounding error of the difference of two CDF values
    (so that draws far in a tail, where that difference is all rounding, cannot fail it
    spuriously). Returns True when both parts pass.

    Example, a distribution of your own (Rayleigh: z = scale sqrt(-2 log(1 - u)), u ~ U(0, 1)):

        class Rayleigh(D.Distribution):
            has_rsample = True
            def __init__(self, scale): self.scale = scale; super().__init__(scale.shape)
            def rsample(self, sample_shape=(), rng=None):
                u = get_rng(rng).uniform(size=self._extended_shape(sample_shape))
                return self.scale * Tensor(np.sqrt(-2 * np.log1p(-u)))
            def cdf(self, z): return -(-0.5 * (z / self.scale) ** 2).expm1()
            def log_prob(self, z): return (z / self.scale ** 2).log() - 0.5 * (z / self.scale) ** 2

        check_pathwise_gradient(Rayleigh, {"scale": 2.0})   # True

    With ``self.scale ** 1.01 * Tensor(...)`` in rsample it raises: dz/dscale is 1.01 z / scale
    where the identity says z / scale. With ``1.1 * self.scale * Tensor(...)`` the gradient is
    right for the wrong draws, and the law check raises.
    """
    if not callable(make_distribution):
        raise TypeError(f"check_pathwise_gradient: make_distribution must be callable (a distribution "
                        f"class or a function of the parameters), got {type(make_distribution).__name__}")
    if not isinstance(parameters, dict) or not parameters:
        raise TypeError(f"check_pathwise_gradient: parameters must be a non-empty dict from parameter "
                        f"names to values, e.g. {{'loc': 0.0, 'scale': 1.0}}, got {parameters!r}")
    values = {name: checks.float_array(value, f"check_pathwise_gradient: parameter {name}")
              .astype(np.float64) for name, value in parameters.items()}
    rtol = checks.number(rtol, "check_pathwise_gradient: rtol", lower=0.0)
    atol = checks.number(atol, "check_pathwise_gradient: atol", lower=0.0)
    step = checks.number(step, "check_pathwise_gradient: step", lower=0.0, lower_open=True)
    law_samples = checks.count(law_samples, "check_pathwise_gradient: law_samples", minimum=0)
    shape = checks.sample_shape(sample_shape)
    rng = get_rng(rng)
    probe = _build(make_distribution, {name: Tensor(value) for name, value in values.items()})
    _check_univariate_with_cdf(probe)
    shape += tuple(probe.batch_shape)

    # 1. dz/dtheta through rsample: one draw per entry of the broadcast parameters, one backward pass
    leaves = {name: Tensor(np.broadcast_to(value, shape).copy(), requires_grad=True)
              for name, value in values.items()}
    z = make_distribution(**leaves).rsample((), rng=rng)
    if z.shape != shape:
        raise ValueError(f"check_pathwise_gradient: with parameters broadcast to {shape}, rsample() "
                         f"returned shape {z.shape}; the family's parameters must act elementwise")
    if z.requires_grad:
        z.sum().backward()
    sample = Tensor(z.data.astype(np.float64))  # the draw, held fixed from here on

    with no_grad():
        distribution = make_distribution(**{name: Tensor(leaf.data) for name, leaf in leaves.items()})
        density = np.exp(np.asarray(distribution.log_prob(sample).data, dtype=np.float64))
        for name, leaf in leaves.items():
            pathwise = np.zeros(shape) if leaf.grad is None else leaf.grad
            h = step * np.where(leaf.data != 0, np.abs(leaf.data), 1.0)
            implicit, rounding, inside = _implicit_derivative(make_distribution, leaves, name, h, sample, density)
            implicit_fine, rounding_fine, _ = _implicit_derivative(make_distribution, leaves, name, h / 10,
                                                                   sample, density)
            # Left out: draws where moving the parameter by the step leaves the support (Uniform's
            # low, a shifted law's edge) or where F is not smooth at the scale of the step (close to
            # such an edge), so that the difference with a ten times smaller step disagrees.
            with np.errstate(invalid="ignore"):
                smooth = np.abs(implicit - implicit_fine) <= atol + rtol * np.abs(implicit) + rounding + rounding_fine
            checkable = np.isfinite(implicit) & np.isfinite(rounding) & inside & smooth
            if not checkable.any():
                raise ValueError(f"check_pathwise_gradient: no sample could be checked for parameter "
                                 f"{name!r}: at every sample the density or the CDF's difference is not "
                                 f"finite, moving {name} by the step leaves the support, or the central "
                                 f"differences with the step and a tenth of it disagree (pass another step)")
            tolerance = atol + rtol * np.abs(implicit) + rounding
            with np.errstate(invalid="ignore"):
                bad = checkable & ~(np.abs(pathwise - implicit) <= tolerance)
            if bad.any():
                raise AssertionError(_mismatch_message(name, leaf.data, sample.data, pathwise,
                                                       implicit, tolerance, bad, checkable, rtol, atol))

        # 2. the law of the draws: their quantiles u = F(z) are uniform
        if law_samples:
            batch_size = max(int(np.prod(probe.batch_shape)), 1)
            count = -(-law_samples // batch_size)  # draws per batch entry (rounded up)
            draws = probe.rsample((count,), rng=rng).data.astype(np.float64)
            u = _cdf_values(probe, draws).reshape(count, -1)
            # float64 cannot hold every law: Beta(1, 0.01) has 69% of its mass within 1e-16 of 1,
            # where its draws pile up on the last few floats below 1 and u = F(z) cannot be uniform.
            # Batch entries whose draws do (F rises by more than 1e-9 across a draw's float
            # neighbours at more than one draw in a thousand) are left out of this part.
            rise = (_cdf_values(probe, np.nextafter(draws, np.inf))
                    - _cdf_values(probe, np.nextafter(draws, -np.inf))).reshape(count, -1)
            resolved = np.mean(rise > 1e-9, axis=0) <= 1e-3
            _check_uniform(u[:, resolved], type(probe).__name__)
    return True


def _cdf_values(distribution, values: np.ndarray) -> np.ndarray:
    cdf = distribution.cdf(Tensor(values))
    return np.asarray(getattr(cdf, "data", cdf), dtype=np.float64)  # (a Tensor or an array)


def _build(make_distribution, parameters: dict):
    """make_distribution(**parameters) (without a graph), with a Python TypeError about the
    arguments (a name it does not take, one it misses) said in the helper's words."""
    try:
        with no_grad():
            return make_distribution(**parameters)
    except TypeError as error:
        if "argument" not in str(error):
            raise
        raise TypeError(f"check_pathwise_gradient: make_distribution(**parameters) with parameters "
                        f"named {list(parameters)} failed: {error}. The keys of parameters must be the "
                        f"argument names of make_distribution, e.g. {{'loc': 0.0, 'scale': 1.0}} for "
                        f"Normal") from None


def _check_univariate_with_cdf(distribution) -> None:
    name = type(distribution).__name__
    if not getattr(distribution, "has_rsample", False):
        raise TypeError(f"check_pathwise_gradient: {name} has no rsample(), so there is no pathwise "
                        f"gradient to check")
    if tuple(distribution.event_shape) != ():
        raise ValueError(f"check_pathwise_gradient: {name} has event shape {distribution.event_shape}; "
                         f"the check needs a univariate family (event shape ()), whose CDF is one number "
                         f"per sample")
    if not callable(getattr(distribution, "cdf", None)):
        raise TypeError(f"check_pathwise_gradient: {name} has no cdf(value); the implicit identity "
                        f"needs the CDF F(z; theta) (and log_prob for the density)")


def _implicit_derivative(make_distribution, leaves: dict, name: str, h: np.ndarray, sample: Tensor,
                         density: np.ndarray) -> tuple:
    """-(dF/dtheta) / p at the fixed sample by a central difference of the CDF with step h in
    parameter ``name`` (the others as drawn); the rounding error of that difference, in the same
    units; and where the sample stays inside the support (log_prob > -inf) at both ends."""
    ends = []
    for moved in (leaves[name].data + h, leaves[name].data - h):
        parameters = {key: Tensor(moved if key == name else leaf.data) for key, leaf in leaves.items()}
        try:
            distribution = make_distribution(**parameters)
        except ValueError as error:
            raise ValueError(f"check_pathwise_gradient: moving parameter {name!r} by the central "
                             f"difference's step left its allowed values ({error}); pass a smaller "
                             f"step") from None
        cdf, log_prob = distribution.cdf(sample), distribution.log_prob(sample)  # (Tensors or arrays)
        ends.append((np.asarray(getattr(cdf, "data", cdf), dtype=np.float64),
                     np.asarray(getattr(log_prob, "data", log_prob)) > -np.inf))
    (upper, inside_upper), (lower, inside_lower) = ends
    with np.errstate(divide="ignore", invalid="ignore"):
        implicit = -((upper - lower) / (2 * h)) / density
        rounding = 64 * np.finfo(np.float64).eps * np.maximum(np.abs(upper), np.abs(lower)) / (2 * h * density)
    return implicit, rounding, inside_upper & inside_lower


def _mismatch_message(name, parameter, sample, pathwise, implicit, tolerance, bad, checked, rtol,
                      atol) -> str:
    """The worst disagreeing sample, with both derivatives and where they came from."""
    excess = np.where(bad, np.abs(pathwise - implicit) / tolerance, -np.inf)
    index = np.unravel_index(int(np.argmax(excess)), excess.shape)
    position = ", ".join(str(int(i)) for i in index)
    return (f"check_pathwise_gradient: parameter {name!r}, sample z[{position}] = "
            f"{float(sample[index])!r} (where {name} = {float(parameter[index])!r}): rsample's pathwise "
            f"dz/d{name} = {float(pathwise[index])!r}, but the implicit identity -(dF/d{name}) / p "
            f"gives {float(implicit[index])!r} (dF/d{name} by central differences of cdf, p = "
            f"exp(log_prob)); {int(bad.sum())} of the {int(checked.sum())} samples checked (of "
            f"{bad.size}) differ by more than atol={atol} + rtol={rtol} * |implicit|")


def _check_uniform(u: np.ndarray, name: str) -> None:
    """Neyman's smooth test that u, the CDF at rsample's draws, is uniform on (0, 1): the mean of
    the k-th Legendre polynomial of t = 2u - 1 is 0 for uniform u, with variance 1 / (2k + 1) per
    draw, so sqrt(n (2k + 1)) times it is a z-score; their squares add up to a chi-square with 4
    degrees of freedom for k = 1..4 (k = 1 sees a shifted law, k = 2 a law too wide or too narrow,
    k = 3 and 4 skew and tails)."""
    u = u.reshape(-1)
    if u.size == 0:  # (an empty batch)
        return
    outside = ~((u >= 0) & (u <= 1))  # (NaN is outside)
    if outside.any():
        raise AssertionError(f"check_pathwise_gradient: {name}.cdf at rsample's draws must lie in "
                             f"[0, 1], got {u[outside][:5]} at {int(outside.sum())} of {u.size} draws")
    t = 2.0 * u - 1.0
    previous, current, scores = np.ones_like(t), t, []
    for k in range(1, 5):  # Bonnet's recurrence: (k + 1) P_(k+1) = (2k + 1) t P_k - k P_(k-1)
        scores.append(float(np.sqrt(u.size * (2 * k + 1)) * current.mean()))
        previous, current = current, ((2 * k + 1) * t * current - k * previous) / (k + 1)
    statistic = sum(score * score for score in scores)
    if statistic > LAW_THRESHOLD:
        raise AssertionError(
            f"check_pathwise_gradient: rsample's draws do not follow {name}'s own cdf: over {u.size} "
            f"draws, u = cdf(z) should be uniform on (0, 1), but mean(u) = {u.mean():.6f} (uniform: "
            f"0.5) and mean((u - 1/2)^2) = {np.mean((u - 0.5) ** 2):.6f} (uniform: 1/12 = 0.083333); "
            f"Neyman's smooth test gives z-scores {[round(score, 1) for score in scores]} for the "
            f"Legendre moments 1..4, statistic {statistic:.1f} > {LAW_THRESHOLD} (a correct sampler "
            f"exceeds it about once in a million runs). The gradient identity cannot see this: a "
            f"sampler that draws the wrong values but keeps each one's quantile fixed as the "
            f"parameters move passes it.")
