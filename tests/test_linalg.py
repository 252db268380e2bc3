"""linalg.py: the Cholesky factor and the triangular solve, checked against NumPy and by gradcheck.

Forward values are compared with NumPy's own routines (``np.linalg.cholesky``, ``np.linalg.solve``
on the triangle), gradients with central differences (``gradcheck``) over hypothesis-drawn stacks
of symmetric positive definite matrices M M^T + n I and well-conditioned triangular systems,
with batch axes that broadcast. The hand-written VJPs are in test_derivatives.py.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinygrad_reparam import Tensor, gradcheck
from tinygrad_reparam.linalg import (cholesky, diag_embed, diagonal, matrix_transpose,
                                     solve_triangular, tril, triu)
from tinygrad_reparam.testing import broadcastable_shapes, float_arrays, shapes


def swap(m):
    return np.swapaxes(m, -1, -2)


@st.composite
def spd_matrices(draw, max_n=4):
    """M M^T + n I: symmetric, eigenvalues in [n, n + n^2] (entries of M in [-1, 1])."""
    batch, n = draw(shapes(max_dims=2, max_side=3)), draw(st.integers(1, max_n))
    m = draw(float_arrays(batch + (n, n), low=-1.0, high=1.0))
    return m @ swap(m) + n * np.eye(n)


@st.composite
def triangular_systems(draw):
    """(a, b, lower): a with diagonal entries of size 1 to 3 and either sign, batch axes of a and
    b that broadcast against each other (sides of 1 and missing axes both occur)."""
    batch_a, batch_b = draw(broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3))
    n, k = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    a = draw(float_arrays(batch_a + (n, n), low=-1.0, high=1.0))
    diagonal_sizes = draw(float_arrays(batch_a + (n,), low=1.0, high=3.0))
    signs = np.where(draw(float_arrays(batch_a + (n,), low=-1.0, high=1.0)) < 0, -1.0, 1.0)
    a[..., np.arange(n), np.arange(n)] = signs * diagonal_sizes
    return a, draw(float_arrays(batch_b + (n, k))), draw(st.booleans())


# --- cholesky --------------------------------------------------------------------------------------
@given(spd_matrices())
def test_cholesky_is_numpys_factor_lower_triangular_with_positive_diagonal(a):
    factor = cholesky(Tensor(a)).data
    np.testing.assert_allclose(factor, np.linalg.cholesky(a), rtol=1e-14, atol=1e-14)
    np.testing.assert_array_equal(factor, np.tril(factor))
    assert np.all(np.diagonal(factor, axis1=-2, axis2=-1) > 0)
    np.testing.assert_allclose(factor @ swap(factor), a, rtol=1e-13, atol=1e-13)


@settings(max_examples=25)
@given(spd_matrices())
def test_cholesky_gradcheck(a):
    assert gradcheck(cholesky, [Tensor(a, requires_grad=True)])


@settings(max_examples=15)
@given(spd_matrices(max_n=3), st.integers(0, 2**32 - 1))
def test_cholesky_gradcheck_through_a_loss_of_the_whole_factor(a, seed):
    """A scalar that uses every entry of L, as log_prob and KL do: sum(w * L) + sum(log diag L)."""
    w = np.random.default_rng(seed).standard_normal(a.shape)

    def loss(x):
        factor = cholesky(x)
        return (factor * w).sum() + diagonal(factor).log().sum()

    assert gradcheck(loss, [Tensor(a, requires_grad=True)])


def test_the_gradient_of_cholesky_is_symmetric_and_that_of_log_det_is_the_inverse():
    """d log det A / dA = A^-1, and log det A = 2 sum_i log L_ii: a classical identity."""
    m = np.random.default_rng(0).standard_normal((2, 4, 4))
    a = Tensor(m @ swap(m) + 4 * np.eye(4), requires_grad=True)
    (2 * diagonal(cholesky(a)).log().sum()).backward()
    np.testing.assert_allclose(a.grad, swap(a.grad), rtol=0, atol=1e-15)
    np.testing.assert_allclose(a.grad, np.linalg.inv(a.data), rtol=1e-12, atol=1e-14)


def test_cholesky_keeps_float32():
    m = np.random.default_rng(1).standard_normal((3, 3)).astype(np.float32)
    a = Tensor(m @ m.T + 3 * np.eye(3, dtype=np.float32), requires_grad=True)
    factor = cholesky(a)
    factor.sum().backward()
    assert factor.dtype == np.float32 and a.grad.dtype == np.float32
    np.testing.assert_allclose(factor.data, np.linalg.cholesky(a.data.astype(np.float64)), rtol=1e-5)


@pytest.mark.parametrize("bad, match", [
    (np.array([[1.0, 2.0], [2.0, 1.0]]),
     r"cholesky: a must be symmetric positive definite, but the matrix is not positive definite: "
     r"its smallest eigenvalue is -1.*M @ M\.T \+ c \* I"),
    (np.stack([np.eye(2), [[1.0, 0.0], [0.0, -2.0]]]),
     r"cholesky: a .*the matrix at batch index \(1,\) is not positive definite: its smallest "
     r"eigenvalue is -2"),
    (np.array([[2.0, 1.0], [-1.0, 2.0]]),
     r"cholesky: a .*the matrix is not symmetric: entry \[0, 1\] is 1\.0 and entry \[1, 0\] is -1\.0"),
    (np.array([[1.0, np.nan], [np.nan, 1.0]]), r"cholesky: a .*holds NaN or inf"),
    (np.zeros((2, 3)), r"cholesky: a must be a square matrix.*got shape \(2, 3\)"),
    (np.ones(3), r"cholesky: a must be a square matrix.*got shape \(3,\)"),
    (np.zeros((2, 2)), r"not positive definite: its smallest eigenvalue is 0"),
])
def test_cholesky_of_a_matrix_that_is_not_symmetric_positive_definite_is_a_value_error(bad, match):
    with pytest.raises(ValueError, match=match):
        cholesky(Tensor(bad, requires_grad=True))


def test_a_rounding_asymmetry_is_accepted_and_only_the_symmetric_part_is_factorized():
    a = np.array([[4.0, 2.0], [2.0 + 1e-9, 3.0]])
    np.testing.assert_allclose(cholesky(a).data, np.linalg.cholesky((a + a.T) / 2), rtol=1e-15)


# --- solve_triangular --------------------------------------------------------------------------------
@given(triangular_systems())
def test_solve_triangular_solves_the_triangle_only(system):
    a, b, lower = system
    triangle = np.tril(a) if lower else np.triu(a)
    x = solve_triangular(Tensor(a), Tensor(b), lower=lower).data
    assert x.shape == np.broadcast_shapes(a.shape[:-2], b.shape[:-2]) + b.shape[-2:]
    np.testing.assert_allclose(triangle @ x, np.broadcast_to(b, x.shape), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(x, np.linalg.solve(np.broadcast_to(triangle, x.shape[:-1] + a.shape[-1:]), b),
                               rtol=1e-10, atol=1e-12)


@settings(max_examples=25)
@given(triangular_systems())
def test_solve_triangular_gradcheck_with_broadcast_batches(system):
    a, b, lower = system
    assert gradcheck(lambda a, b: solve_triangular(a, b, lower=lower),
                     [Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)])


def test_solve_triangular_gradient_of_the_other_triangle_is_zero():
    rng = np.random.default_rng(2)
    a = Tensor(rng.standard_normal((3, 3)) + 3 * np.eye(3), requires_grad=True)
    solve_triangular(a, rng.standard_normal((3, 2))).sum().backward()
    assert np.all(np.triu(a.grad, 1) == 0) and np.all(a.grad[np.tril_indices(3)] != 0)


def test_solve_triangular_keeps_float32_and_takes_arrays():
    a = np.array([[2.0, 0.0], [1.0, 4.0]], dtype=np.float32)
    x = solve_triangular(a, np.array([[2.0], [9.0]], dtype=np.float32))
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x.data, [[1.0], [2.0]])


@pytest.mark.parametrize("call, match", [
    (lambda: solve_triangular(np.array([[1.0, 0.0], [1.0, 0.0]]), np.ones((2, 1))),
     r"solve_triangular: a is singular: the matrix has 0\.0 on its diagonal at \[1, 1\]"),
    (lambda: solve_triangular(np.stack([np.eye(2), np.eye(2) * [1.0, np.nan]]), np.ones((2, 1))),
     r"solve_triangular: a is singular: the matrix at batch index \(1,\) has nan on its diagonal"),
    (lambda: solve_triangular(np.eye(3), np.ones(3)),
     r"solve_triangular: b must have shape \(\.\.\., 3, k\).*v\[\.\.\., None\].*got shape \(3,\)"),
    (lambda: solve_triangular(np.eye(3), np.ones((2, 1))), r"solve_triangular: b must have shape"),
    (lambda: solve_triangular(np.ones((2, 3)), np.ones((2, 1))), r"solve_triangular: a must be a square matrix"),
    (lambda: solve_triangular(np.ones((2, 2, 2)) + np.eye(2), np.ones((3, 2, 1))),
     r"solve_triangular: the batch dimensions of a \(2, 2, 2\) and b \(3, 2, 1\) cannot be broadcast"),
    (lambda: solve_triangular(np.eye(2), np.ones((2, 1)), lower="yes"),
     r"solve_triangular: lower must be True or False"),
])
def test_solve_triangular_bad_input(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


# --- the composed helpers --------------------------------------------------------------------------
@given(float_arrays(shapes(min_dims=2)), st.integers(-3, 3))
def test_tril_triu_diagonal_and_transpose_match_numpy(a, k):
    np.testing.assert_array_equal(tril(a, k).data, np.tril(a, k))
    np.testing.assert_array_equal(triu(a, k).data, np.triu(a, k))
    np.testing.assert_array_equal(matrix_transpose(a).data, swap(a))
    square = a[..., :1, :1] if a.shape[-1] != a.shape[-2] else a
    np.testing.assert_array_equal(diagonal(square).data, np.diagonal(square, axis1=-2, axis2=-1))


@given(float_arrays(shapes(min_dims=1)))
def test_diag_embed_puts_the_vector_on_the_diagonal(v):
    out = diag_embed(v).data
    assert out.shape == v.shape + v.shape[-1:]
    np.testing.assert_array_equal(np.diagonal(out, axis1=-2, axis2=-1), v)
    np.testing.assert_array_equal(out - diag_embed(v).data * np.eye(v.shape[-1]), 0.0)


def test_composed_helpers_keep_float32_and_gradcheck():
    a = np.arange(12.0, dtype=np.float32).reshape(3, 2, 2)
    for fn in (tril, triu, diagonal, matrix_transpose, diag_embed):
        assert fn(Tensor(a)).dtype == np.float32
        assert gradcheck(fn, [Tensor(a, requires_grad=True)])


@pytest.mark.parametrize("call, match", [
    (lambda: tril(np.ones(3)), r"tril: a needs a matrix \(at least 2 dimensions"),
    (lambda: triu(np.ones((2, 2)), 0.5), r"triu: diagonal must be an int"),
    (lambda: diagonal(np.ones((2, 3))), r"diagonal: a must be a square matrix"),
    (lambda: diag_embed(np.float64(2.0)), r"diag_embed: v needs a vector \(at least 1 dimension"),
    (lambda: matrix_transpose(np.ones(2)), r"matrix_transpose: a needs a matrix"),
])
def test_composed_helpers_bad_input(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
