"""Comparisons give plain boolean arrays, == and != included, and Tensors hash by identity.

A comparison that quietly fell back to identity would be a silent wrong result:
``where(x == 0.0, a, x)`` would return x unchanged. So every comparison is elementwise, as in
NumPy and PyTorch, and its result carries no gradient (it is a mask).
"""
import numpy as np
import pytest

from tinygrad_reparam import Tensor, where


def test_equality_is_elementwise_and_where_uses_it():
    x = Tensor([0.0, 2.0, 0.0], requires_grad=True)
    assert np.array_equal(x == 0.0, [True, False, True])
    assert np.array_equal(x != 0.0, [False, True, False])
    y = where(x == 0.0, 5.0, x)
    np.testing.assert_array_equal(y.data, [5.0, 2.0, 5.0])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 1.0, 0.0])


@pytest.mark.parametrize("other", [Tensor([1.0, 5.0]), np.array([1.0, 5.0]), [1.0, 5.0]])
def test_every_comparison_against_tensors_arrays_and_lists(other):
    x = Tensor([1.0, 2.0])
    expected = {
        "<": [False, True], "<=": [True, True], ">": [False, False], ">=": [True, False],
        "==": [True, False], "!=": [False, True],
    }
    results = {"<": x < other, "<=": x <= other, ">": x > other, ">=": x >= other,
               "==": x == other, "!=": x != other}
    for op, result in results.items():
        assert isinstance(result, np.ndarray) and result.dtype == bool, op
        assert result.tolist() == expected[op], op


def test_equality_broadcasts_like_numpy():
    x = Tensor([[1.0, 2.0], [3.0, 1.0]])
    assert np.array_equal(x == Tensor([1.0, 2.0]), [[True, True], [False, False]])


def test_anything_that_is_not_a_number_is_unequal_and_not_an_error():
    x = Tensor([1.0, 2.0])
    assert not (x == None).any()  # noqa: E711 (NumPy's answer: elementwise False)
    assert (x != "a").all()


def test_tensors_hash_by_identity_so_equal_values_are_different_keys():
    a, b = Tensor([1.0]), Tensor([1.0])
    table = {a: "a", b: "b"}
    assert table[a] == "a" and table[b] == "b"
    assert hash(a) != hash(b)
    assert a in {a} and b not in {a}


def test_ordering_comparisons_with_a_non_number_raise_a_clear_error():
    with pytest.raises(TypeError, match="comparison operand"):
        Tensor([1.0]) < "a"
