"""The public hypothesis strategies in tinygrad_reparam.testing produce what they promise."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, strategies as st

from tinygrad_reparam import Tensor
from tinygrad_reparam.testing import (broadcastable_shapes, float_arrays, positive_scales,
                                      probability_vectors, shapes, tensors)


def _is_subnormal(a: np.ndarray) -> np.ndarray:
    return (a != 0) & (np.abs(a) < np.finfo(a.dtype).tiny)


@given(shapes())
def test_shapes_default_range(shape):
    assert isinstance(shape, tuple)
    assert 0 <= len(shape) <= 3
    assert all(isinstance(side, int) and 1 <= side <= 4 for side in shape)


@given(shapes(min_dims=2, max_dims=2, min_side=3, max_side=5))
def test_shapes_custom_range(shape):
    assert len(shape) == 2
    assert all(3 <= side <= 5 for side in shape)


@given(float_arrays())
def test_float_arrays_default(a):
    assert isinstance(a, np.ndarray)
    assert a.dtype == np.float64
    assert a.ndim <= 3 and all(1 <= side <= 4 for side in a.shape)
    assert np.all(np.isfinite(a))
    assert np.all((a >= -10.0) & (a <= 10.0))
    assert not _is_subnormal(a).any()


@given(float_arrays(shape=(2, 3), low=-0.5, high=2.0))
def test_float_arrays_fixed_shape_and_range(a):
    assert a.shape == (2, 3)
    assert np.all((a >= -0.5) & (a <= 2.0))


@given(float_arrays(shape=4))
def test_float_arrays_int_shape(a):
    assert a.shape == (4,)


@given(float_arrays(shape=st.sampled_from([(1,), (2, 2)])))
def test_float_arrays_shape_strategy(a):
    assert a.shape in [(1,), (2, 2)]


@given(float_arrays(shape=(3,), low=0.01, high=0.1, dtype=np.float32))
def test_float_arrays_float32_stays_inside_bounds(a):
    # 0.01 and 0.1 are not float32 numbers: the bounds are rounded inwards, never outwards
    assert a.dtype == np.float32
    assert np.all(np.isfinite(a))
    assert np.all((a >= 0.01) & (a <= 0.1))
    assert not _is_subnormal(a).any()


def test_float_arrays_rejects_bad_arguments():
    with pytest.raises(ValueError, match="low <= high"):
        float_arrays(low=1.0, high=0.0)
    with pytest.raises(ValueError, match="float_arrays: dtype must be a floating point type .*got int64"):
        float_arrays(dtype=np.int64)
    with pytest.raises(TypeError, match="float_arrays: dtype must be a floating point type .*got 'banana'"):
        float_arrays(dtype="banana")
    with pytest.raises(ValueError, match="float_arrays: dtype must be float32 or float64, got float16"):
        float_arrays(dtype=np.float16)


@given(broadcastable_shapes())
def test_broadcastable_shapes_broadcast(pair):
    a, b = pair
    assert all(len(s) <= 3 and all(1 <= side <= 4 for side in s) for s in (a, b))
    np.broadcast_shapes(a, b)  # raises if they do not broadcast
    # and NumPy really broadcasts arrays of those shapes
    assert (np.zeros(a) + np.zeros(b)).shape == np.broadcast_shapes(a, b)


@given(broadcastable_shapes(num_shapes=3, min_dims=1))
def test_broadcastable_shapes_three(shapes_):
    assert len(shapes_) == 3
    assert all(len(s) >= 1 for s in shapes_)
    np.broadcast_shapes(*shapes_)


def test_broadcastable_shapes_do_broadcast_sometimes():
    """Not only equal shapes: some pairs differ (a side of 1 or a missing leading axis)."""
    seen_different = []

    @given(broadcastable_shapes())
    def collect(pair):
        seen_different.append(pair[0] != pair[1])

    collect()
    assert any(seen_different)


@given(positive_scales(shape=(3, 2)))
def test_positive_scales(s):
    assert s.shape == (3, 2)
    assert np.all((s >= 1e-2) & (s <= 10.0))


def test_positive_scales_rejects_nonpositive_low():
    with pytest.raises(ValueError, match="0 < low"):
        positive_scales(low=0.0)


@given(probability_vectors())
def test_probability_vectors(p):
    assert p.dtype == np.float64 and p.ndim == 1
    assert 2 <= p.size <= 6
    assert np.all(p >= 0)
    assert abs(p.sum() - 1.0) <= 1e-12


@given(probability_vectors(k=5, min_prob=0.1))
def test_probability_vectors_fixed_k_and_floor(p):
    assert p.shape == (5,)
    assert np.all(p >= 0.1)
    assert abs(p.sum() - 1.0) <= 1e-12


@given(probability_vectors(k=3, min_prob=1 / 3))
def test_probability_vectors_tight_floor_is_uniform(p):
    assert np.allclose(p, 1 / 3, rtol=0, atol=1e-12)


def test_probability_vectors_impossible_floor():
    @given(probability_vectors(k=4, min_prob=0.3))
    def draw(p):
        pass

    with pytest.raises(ValueError, match="cannot sum to 1"):
        draw()


@given(tensors(shape=(2, 2), low=-1.0, high=1.0))
def test_tensors(t):
    assert isinstance(t, Tensor)
    assert t.requires_grad
    assert t.shape == (2, 2) and t.dtype == np.float64
    assert np.all((t.data >= -1.0) & (t.data <= 1.0))


@given(tensors(requires_grad=False, dtype=np.float32))
def test_tensors_without_grad_float32(t):
    assert not t.requires_grad
    assert t.dtype == np.float32


def test_import_without_hypothesis_says_how_to_install():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'hypothesis' or name.startswith('hypothesis.'):\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "try:\n"
        "    import tinygrad_reparam.testing\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=Path(__file__).resolve().parents[1])
    assert 'pip install "tinygrad_reparam[test]"' in result.stdout
    assert "needs hypothesis" in result.stdout
