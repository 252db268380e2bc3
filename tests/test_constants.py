"""Python numbers as constants: y * 0.5 lifts 0.5 into a constant node of y's dtype, made once.

``ops.lift`` turns a number that meets a tensor into a constant of that tensor's dtype, and
``constants.number_constant`` remembers it, so that a number inside a loop costs about what a Tensor
made once before the loop costs (``benchmarks/op_overhead.py`` measures it). Sharing one node is
safe because it is read-only and never requires grad; these tests hold that to account.
"""
import math

import numpy as np
import pytest

from tinygrad_reparam import Tensor, constants


def test_the_same_number_in_the_same_dtype_is_one_shared_read_only_constant():
    x = Tensor([1.0, 2.0], requires_grad=True)
    first, second = (x * 0.5).parents[1], (x + 0.5).parents[1]
    assert first is second and first.op == "constant" and not first.requires_grad
    with pytest.raises(ValueError, match="read-only"):
        first.data[...] = 7.0


def test_dtypes_and_the_sign_of_zero_are_kept_apart():
    x64 = Tensor([1.0], requires_grad=True)
    x32 = Tensor(np.array([1.0], np.float32), requires_grad=True)
    assert (x64 * 0.5).parents[1].dtype == np.float64
    assert (x32 * 0.5).parents[1].dtype == np.float32 and (x32 * 0.5).dtype == np.float32
    positive, negative = (x64 * 0.0).parents[1], (x64 * -0.0).parents[1]
    assert positive is not negative and math.copysign(1.0, negative.item()) == -1.0
    with np.errstate(divide="ignore"):
        assert (Tensor([1.0]) / -0.0).item() == -math.inf


def test_numbers_give_the_same_values_and_gradients_as_tensor_constants():
    data = np.array([0.3, -1.2, 2.5])
    results = []
    for wrap in (lambda c: c, Tensor):
        x = Tensor(data, requires_grad=True)
        y = ((x * wrap(1.5) + wrap(-0.25)) ** wrap(2) / wrap(3)).tanh().sum()
        y.backward()
        results.append((y.data, x.grad))
    assert np.array_equal(results[0][0], results[1][0])
    assert np.array_equal(results[0][1], results[1][1])


def test_nan_and_integers_and_numpy_scalars_work_and_the_cache_stays_bounded():
    x = Tensor([1.0, 2.0])
    assert np.isnan((x * float("nan")).data).all()
    np.testing.assert_array_equal((x * 3).data, [3.0, 6.0])
    np.testing.assert_array_equal((x * np.float64(0.5)).data, [0.5, 1.0])
    for k in range(3000):  # many different numbers: the cache keeps at most its maxsize
        x * (k + 0.125)
    assert constants.number_constant.cache_info().currsize <= constants.number_constant.cache_info().maxsize
