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
reparameterization identity dz/dtheta = -(dF(z; theta)/dtheta) / p(z; theta), using nothing but the
distribution's own ``cdf`` and ``log_prob``: point it at your own distributions.

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
def check_pathwise_gradient(make_distribution, parameters: dict, sample_shape=(64,), rng=None,
                            rtol: float = 1e-5, atol: float = 1e-8, step: float = 1e-5) -> bool:
    """Check that ``rsample`` moves each sample z as the implicit reparameterization identity says:

        dz/dtheta = -(dF(z; theta)/dtheta) / p(z; theta)

    (Figurnov, Mohamed & Mnih 2018): a sample's quantile F(z; theta) stays fixed as theta moves.
    The left side is what backpropagation through ``rsample`` gives; the right side is computed
    from the distribution's own ``cdf`` (differentiated in theta by central differences, with the
    sample held fixed) and ``log_prob`` (p = exp(log_prob)). For a location-scale family it reduces
    to dz/dloc = 1 and dz/dscale = eps; for a Gamma it is the gradient PyTorch and TensorFlow
    Probability use. Returns True, or raises an AssertionError naming the parameter, the sample,
    and both numbers.

    ``make_distribution(**parameters)`` must build the distribution; ``parameters`` maps each
    parameter's name to its value (a number, array or Tensor: only the values are used). Every
    parameter is checked. The family must be univariate (event shape ()) with parameters acting
    elementwise, so that each sample depends on its own parameter values only: the parameters are
    broadcast to ``sample_shape + batch_shape`` and one value is drawn for each entry, which makes
    every derivative one backward pass and two ``cdf`` calls. ``cdf`` may return a Tensor or an
    array. ``step`` is the central difference's step relative to each parameter value (absolute
    where a value is 0); entries are compared to ``atol + rtol * |dz/dtheta|``, plus the rounding
    error of the difference of two CDF values (so samples far in a tail, where that difference is
    all rounding, cannot fail it spuriously).

    Example, a distribution of your own (Rayleigh: z = scale sqrt(-2 log(1 - u))):

        class Rayleigh(D.Distribution):
            has_rsample = True
            def __init__(self, scale): self.scale = scale; super().__init__(scale.shape)
            def rsample(self, sample_shape=(), rng=None):
                u = get_rng(rng).uniform(size=self._extended_shape(sample_shape))
                return self.scale * Tensor(np.sqrt(-2 * np.log1p(-u)))
            def cdf(self, z): return -(-0.5 * (z / self.scale) ** 2).expm1()
            def log_prob(self, z): return (z / self.scale ** 2).log() - 0.5 * (z / self.scale) ** 2

        check_pathwise_gradient(Rayleigh, {"scale": 2.0})   # True; with 1.01 * np.sqrt(...) it fails
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
    rng = get_rng(rng)
    with no_grad():
        probe = make_distribution(**{name: Tensor(value) for name, value in values.items()})
    _check_univariate_with_cdf(probe)
    shape = checks.sample_shape(sample_shape) + tuple(probe.batch_shape)

    # dz/dtheta through rsample: one draw per entry of the broadcast parameters, one backward pass
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
            upper = _cdf_with(make_distribution, leaves, name, leaf.data + h, sample)
            lower = _cdf_with(make_distribution, leaves, name, leaf.data - h, sample)
            with np.errstate(divide="ignore", invalid="ignore"):
                implicit = -((upper - lower) / (2 * h)) / density
                rounding = 64 * np.finfo(np.float64).eps * np.maximum(np.abs(upper), np.abs(lower)) / (2 * h * density)
            checkable = np.isfinite(implicit) & np.isfinite(rounding)
            if not checkable.any():
                raise ValueError(f"check_pathwise_gradient: no sample could be checked for parameter "
                                 f"{name!r}: the density or the CDF's difference is not finite at "
                                 f"every sample")
            tolerance = atol + rtol * np.abs(implicit) + rounding
            with np.errstate(invalid="ignore"):
                bad = checkable & ~(np.abs(pathwise - implicit) <= tolerance)
            if bad.any():
                raise AssertionError(_mismatch_message(name, leaf.data, sample.data, pathwise,
                                                       implicit, tolerance, bad, rtol, atol))
    return True


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


def _cdf_with(make_distribution, leaves: dict, name: str, moved: np.ndarray, sample: Tensor) -> np.ndarray:
    """The CDF at the fixed sample, with parameter ``name`` set to ``moved`` (the others as drawn)."""
    parameters = {key: Tensor(moved if key == name else leaf.data) for key, leaf in leaves.items()}
    try:
        distribution = make_distribution(**parameters)
    except ValueError as error:
        raise ValueError(f"check_pathwise_gradient: moving parameter {name!r} by the central "
                         f"difference's step left its allowed values ({error}); pass a smaller "
                         f"step") from None
    cdf = distribution.cdf(sample)
    return np.asarray(getattr(cdf, "data", cdf), dtype=np.float64)  # a Tensor or an array


def _mismatch_message(name, parameter, sample, pathwise, implicit, tolerance, bad, rtol, atol) -> str:
    """The worst disagreeing sample, with both derivatives and where they came from."""
    excess = np.where(bad, np.abs(pathwise - implicit) / tolerance, -np.inf)
    index = np.unravel_index(int(np.argmax(excess)), excess.shape)
    position = ", ".join(str(int(i)) for i in index)
    return (f"check_pathwise_gradient: parameter {name!r}, sample z[{position}] = "
            f"{float(sample[index])!r} (where {name} = {float(parameter[index])!r}): rsample's pathwise "
            f"dz/d{name} = {float(pathwise[index])!r}, but the implicit identity -(dF/d{name}) / p "
            f"gives {float(implicit[index])!r} (dF/d{name} by central differences of cdf, p = "
            f"exp(log_prob)); {int(bad.sum())} of {bad.size} samples differ by more than "
            f"atol={atol} + rtol={rtol} * |implicit|")
