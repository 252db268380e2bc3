"""Bad input, everywhere public: a clear TypeError or ValueError, and nothing half-changed.

Each table below is a list of rows ``case(id, call, error, match)``: ``call()`` must raise
``error`` with a message that matches the regex ``match``, and every regex names the function
or argument and what was expected (``"Normal: parameter scale must be positive..."``), so a bare
NumPy or Python message ("'<=' not supported between ...") fails the row. Warnings are errors
while a row runs: a NumPy RuntimeWarning on the way to an error (or to a NaN) is not a clear error.

What is *not* an error is pinned in ``ACCEPTED``, so that validation cannot overreach: integer
and bool data become float64 (so ``Tensor([1, 2], requires_grad=True)`` is a float leaf), a Tensor may
hold NaN and inf (distributions are the ones that refuse them), empty batches are fine, infinite
logits mean probabilities 0 and 1. The exceptions that are not TypeError/ValueError are the
documented ones: IndexError for an index that does not fit (Python's own convention),
RuntimeError for backward() problems (as PyTorch), NotImplementedError for an rsample that does
not exist or a KL pair with no closed form, FileNotFoundError for a missing file.

The last part of the file checks that failures leave state alone: a failed optimizer step
updates no parameter and no buffer, a failed load loads nothing, failed constructions and draws
do not advance the random generator, and so on.
"""
import os
import re
import warnings

import numpy as np
import pytest

import tinygrad_reparam.distributions as D
from tinygrad_reparam import (
    Tensor, binary_cross_entropy_with_logits, concatenate, gradcheck, manual_seed, maximum, minimum, no_grad,
    linear, stack, unbroadcast, where,
)
from tinygrad_reparam import bayes, data, estimators as E, flows, metrics, nn, optim, viz
from tinygrad_reparam import discrete_estimators as DE
from tinygrad_reparam.random import default_generator, get_rng
from tinygrad_reparam.vae import VAE


def case(name, call, error, match):
    """One row: ``call()`` raises ``error`` whose message matches ``match``."""
    return pytest.param(call, error, match, id=name)


def expect_error(call, error, match):
    """``pytest.raises(error, match=match)`` around ``call()``, warnings as errors. A failure is
    reported as one line (what was raised instead), without a traceback: that is all a row needs,
    and formatting hundreds of tracebacks would cost seconds."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(error, match=match):
                call()
    except pytest.fail.Exception as failure:  # no error at all
        pytest.fail(str(failure), pytrace=False)
    except Exception as failure:  # the wrong type, or the right type with the wrong message
        pytest.fail(f"{type(failure).__name__}: {failure}", pytrace=False)


# Fresh objects for every row (no row sees what another did to them).
def vec():
    return Tensor([1.0, 2.0, 3.0], requires_grad=True)


def mat():
    return Tensor(np.ones((2, 3)), requires_grad=True)


def rng(seed=0):
    return np.random.default_rng(seed)


OBJECTS = np.array([1.0, "a"], dtype=object)
COMPLEX = np.array([1.0 + 2.0j, 0.0])
EXPECTED_REAL = r"expected real numbers"

# =================================================================================================
# Tensor
TENSOR_CASES = [
    case("Tensor(str)", lambda: Tensor("abc"), TypeError, rf"Tensor data: {EXPECTED_REAL}.*got str"),
    case("Tensor(None)", lambda: Tensor(None), TypeError, rf"Tensor data: {EXPECTED_REAL}.*NoneType"),
    case("Tensor(complex)", lambda: Tensor(1 + 2j), TypeError, rf"Tensor data: {EXPECTED_REAL}.*complex"),
    case("Tensor(complex array)", lambda: Tensor(COMPLEX), TypeError, r"Tensor data: .*dtype complex128"),
    case("Tensor(object array)", lambda: Tensor(OBJECTS), TypeError, r"Tensor data: .*dtype object"),
    case("Tensor(dict)", lambda: Tensor({"a": 1}), TypeError, rf"Tensor data: {EXPECTED_REAL}.*dict"),
    case("Tensor(ragged list)", lambda: Tensor([[1.0, 2.0], [3.0]]), TypeError,
         r"Tensor data: cannot convert list to an array"),
    case("Tensor(datetime64)", lambda: Tensor(np.array(["2020-01-01"], dtype="datetime64[D]")), TypeError,
         r"Tensor data: .*datetime64"),
    case("Tensor(requires_grad='no')", lambda: Tensor([1.0], requires_grad="no"), TypeError,
         r"requires_grad must be True or False, got 'no'"),
    case("item() of 3 elements", lambda: vec().item(), ValueError,
         r"item\(\) needs a tensor with one element, this one has shape \(3,\)"),
    case("len() of 0-d", lambda: len(Tensor(1.0)), TypeError, r"len\(\) of a 0-d tensor"),
    case("backward(grad of wrong shape)", lambda: (vec() * 2).backward(np.ones(4)), ValueError,
         r"backward\(grad=\.\.\.\): grad has shape \(4,\) but the tensor has shape \(3,\)"),
    case("backward(grad='x')", lambda: (vec() * 2).backward("x"), TypeError,
         rf"backward\(grad=\.\.\.\): {EXPECTED_REAL}"),
    case("backward() of non-scalar", lambda: (vec() * 2).backward(), RuntimeError,
         r"backward\(\) without a grad argument needs a scalar, but this tensor has shape \(3,\)"),
    case("backward() without grad", lambda: Tensor([1.0]).sum().backward(), RuntimeError,
         r"does not require grad.*requires_grad=True"),
    case("retain_grad() without grad", lambda: Tensor([1.0]).retain_grad(), RuntimeError,
         r"retain_grad\(\) on a tensor that does not require grad"),
    case("no_grad(func)", lambda: no_grad(lambda: 0), TypeError, r"no_grad takes no arguments"),
    case("unbroadcast((2,3) -> (4,))", lambda: unbroadcast(np.ones((2, 3)), (4,)), ValueError,
         r"unbroadcast: .*\(2, 3\).*\(4,\)"),
    case("unbroadcast((2,3) -> (3,2))", lambda: unbroadcast(np.ones((2, 3)), (3, 2)), ValueError,
         r"unbroadcast: .*\(2, 3\).*\(3, 2\)"),
]


@pytest.mark.parametrize("call, error, match", TENSOR_CASES)
def test_tensor(call, error, match):
    expect_error(call, error, match)


# =================================================================================================
# Operators, methods and package functions
def _broadcast(op, a, b):
    return rf"{op}: shapes \({a}\) and \({b}\) cannot be broadcast together"


OPS_CASES = [
    # operands that are not real numbers
    case("t + 'abc'", lambda: vec() + "abc", TypeError, rf"operand: {EXPECTED_REAL}.*got str"),
    case("'abc' + t", lambda: "abc" + vec(), TypeError, rf"operand: {EXPECTED_REAL}.*got str"),
    case("t + None", lambda: vec() + None, TypeError, rf"operand: {EXPECTED_REAL}.*NoneType"),
    case("t * complex", lambda: vec() * (1 + 2j), TypeError, rf"operand: {EXPECTED_REAL}.*complex"),
    case("t - object array", lambda: vec() - OBJECTS, TypeError, r"operand: .*dtype object"),
    case("t / complex array", lambda: vec()[:2] / COMPLEX, TypeError, r"operand: .*complex128"),
    case("t ** 'a'", lambda: vec() ** "a", TypeError, rf"operand: {EXPECTED_REAL}"),
    case("m @ 'a'", lambda: mat() @ "a", TypeError, rf"operand: {EXPECTED_REAL}"),
    case("t < 'a'", lambda: vec() < "a", TypeError, rf"operand: {EXPECTED_REAL}"),
    # shapes that do not broadcast
    case("add (3,)+(4,)", lambda: vec() + np.ones(4), ValueError, _broadcast("add", "3,", "4,")),
    case("sub (3,)-(2, 3)^T", lambda: vec() - mat().T, ValueError, _broadcast("sub", "3,", "3, 2")),
    case("mul (3,)*(3, 2)", lambda: vec() * np.ones((3, 2)), ValueError, _broadcast("mul", "3,", "3, 2")),
    case("div (3,)/(2,)", lambda: vec() / np.ones(2), ValueError, _broadcast("div", "3,", "2,")),
    case("pow (3,)**(2,)", lambda: vec() ** Tensor([1.0, 2.0]), ValueError, _broadcast("pow", "3,", "2,")),
    case("linear with a vector weight", lambda: linear(mat(), vec()), ValueError,
         r"linear: x of shape \(2, 3\) and weight of shape \(3,\): the weight must be a matrix"),
    case("linear in-features differ", lambda: linear(mat(), mat()), ValueError,
         r"linear: x of shape \(2, 3\) and weight of shape \(2, 3\)"),
    case("linear of a scalar", lambda: linear(2.0, mat()), ValueError, r"linear: x of shape \(\)"),
    case("linear bias shape", lambda: linear(mat(), mat().T, np.ones((1, 2))), ValueError,
         r"linear: bias has shape \(1, 2\), expected \(2,\)"),
    case("linear bias 'a'", lambda: linear(mat(), mat().T, "a"), TypeError, rf"operand: {EXPECTED_REAL}"),
    case("matmul with a scalar", lambda: vec() @ 2.0, ValueError,
         r"matmul: \(3,\) @ \(\): matmul needs at least 1-D"),
    case("matmul inner dims", lambda: mat() @ mat(), ValueError,
         r"matmul: \(2, 3\) @ \(2, 3\): inner dimensions 3 and 2"),
    case("matmul batch dims", lambda: Tensor(np.ones((2, 3, 4))) @ Tensor(np.ones((3, 4, 5))), ValueError,
         r"matmul: .*batch dimensions \(2,\) and \(3,\)"),
    case("maximum (3,),(4,)", lambda: maximum(vec(), np.ones(4)), ValueError, _broadcast("maximum", "3,", "4,")),
    case("minimum (3,),(2,)", lambda: minimum(vec(), Tensor([1.0, 2.0])), ValueError,
         _broadcast("minimum", "3,", "2,")),
    case("minimum(t, 'a')", lambda: minimum(vec(), "a"), TypeError, rf"operand: {EXPECTED_REAL}"),
    case("binary_cross_entropy_with_logits (3,),(4,)",
         lambda: binary_cross_entropy_with_logits(vec(), np.zeros(4)), ValueError,
         _broadcast("binary_cross_entropy_with_logits", "3,", "4,")),
    case("binary_cross_entropy_with_logits(t, None)", lambda: binary_cross_entropy_with_logits(vec(), None),
         TypeError, rf"operand: {EXPECTED_REAL}.*NoneType"),
    # reductions
    case("sum(axis=5)", lambda: vec().sum(axis=5), ValueError,
         r"sum: axis 5 is out of range for a tensor with 1 dim"),
    case("sum(axis=(0, 0))", lambda: mat().sum(axis=(0, 0)), ValueError, r"sum: repeated axis in \(0, 0\)"),
    case("sum(axis='a')", lambda: mat().sum(axis="a"), TypeError,
         r"sum: axis must be None, an int or a tuple of ints, got 'a'"),
    case("sum(axis=1.5)", lambda: mat().sum(axis=1.5), TypeError,
         r"sum: axis must be None, an int or a tuple of ints, got 1\.5"),
    case("mean(axis=2)", lambda: mat().mean(axis=2), ValueError, r"mean: axis 2 is out of range"),
    case("mean(axis=(0, 'a'))", lambda: mat().mean(axis=(0, "a")), TypeError,
         r"mean: axis must be None, an int or a tuple of ints"),
    case("max(axis=-3)", lambda: mat().max(axis=-3), ValueError, r"max: axis -3 is out of range"),
    case("max of empty", lambda: Tensor(np.zeros(0)).max(), ValueError, r"max: the tensor is empty"),
    case("logsumexp(axis=3)", lambda: mat().logsumexp(axis=3), ValueError, r"logsumexp: axis 3 is out of range"),
    case("logsumexp(axis='a')", lambda: mat().logsumexp(axis="a"), TypeError,
         r"logsumexp: axis must be None, an int or a tuple of ints"),
    case("softmax(axis=2)", lambda: mat().softmax(axis=2), ValueError, r"softmax: axis 2 is out of range"),
    case("softmax(axis=None)", lambda: mat().softmax(axis=None), TypeError,
         r"softmax: axis must be an int, got None"),
    case("log_softmax(axis='a')", lambda: mat().log_softmax(axis="a"), TypeError,
         r"log_softmax: axis must be an int, got 'a'"),
    # shape and indexing
    case("reshape(4, 2) of 6", lambda: mat().reshape(4, 2), ValueError,
         r"reshape: cannot reshape a tensor of shape \(2, 3\) \(6 elements\) into \(4, 2\)"),
    case("reshape(-1, -1)", lambda: mat().reshape(-1, -1), ValueError,
         r"reshape: cannot reshape .* into \(-1, -1\)"),
    case("reshape('a')", lambda: mat().reshape("a"), ValueError, r"reshape: cannot reshape .* into \('a',\)"),
    case("reshape(2.0, 3.0)", lambda: mat().reshape(2.0, 3.0), ValueError,
         r"reshape: cannot reshape .* into \(2\.0, 3\.0\)"),
    case("transpose(0, 0)", lambda: mat().transpose(0, 0), ValueError,
         r"transpose: axes \(0, 0\) are not a permutation of the 2 axes"),
    case("transpose(0, 1) of 3-D", lambda: Tensor(np.ones((2, 3, 4))).transpose(0, 1), ValueError,
         r"transpose: axes \(0, 1\) are not a permutation of the 3 axes"),
    case("transpose(5, 0)", lambda: mat().transpose(5, 0), ValueError,
         r"transpose: axes \(5, 0\) are not a permutation of the 2 axes"),
    case("transpose(2, 3)", lambda: mat().transpose(2, 3), ValueError,
         r"transpose: axes \(2, 3\) are not a permutation of the 2 axes"),
    case("transpose('a', 0)", lambda: mat().transpose("a", 0), TypeError,
         r"transpose: axes must be ints, got \('a', 0\)"),
    case("t[5] out of range", lambda: vec()[5], IndexError,
         r"getitem: index 5 does not fit a tensor of shape \(3,\)"),
    case("t['a']", lambda: vec()["a"], IndexError, r"getitem: index 'a' does not fit"),
    case("t[1.5]", lambda: vec()[1.5], IndexError, r"getitem: index 1\.5 does not fit"),
    case("t[mask of length 2]", lambda: vec()[np.array([True, False])], IndexError,
         r"getitem: index .* does not fit a tensor of shape \(3,\)"),
    case("t[Tensor]", lambda: vec()[Tensor([0.0])], TypeError,
         r"getitem: index with NumPy arrays, ints or slices, not Tensors"),
    case("clip()", lambda: vec().clip(), ValueError, r"clip: give at least one of lo and hi"),
    case("clip('a', 1)", lambda: vec().clip("a", 1.0), TypeError, rf"clip: lo: {EXPECTED_REAL}"),
    # where, concatenate, stack
    case("where(int condition)", lambda: where(np.array([1, 0, 1]), vec(), 0.0), TypeError,
         r"where: condition must be a boolean array .*got dtype int64"),
    case("where(condition None)", lambda: where(None, vec(), 0.0), TypeError,
         r"where: condition must be a boolean array .*got dtype object"),
    case("where(condition 'abc')", lambda: where("abc", vec(), 0.0), TypeError,
         r"where: condition must be a boolean array"),
    case("where(shapes)", lambda: where(np.array([True, False]), vec(), 0.0), ValueError,
         r"where: condition \(2,\), a \(3,\) and b \(\) cannot be broadcast together"),
    case("where(b='a')", lambda: where(np.array([True, False, True]), vec(), "a"), TypeError,
         rf"operand: {EXPECTED_REAL}"),
    case("concatenate([])", lambda: concatenate([]), ValueError, r"concatenate: needs at least one tensor"),
    case("concatenate(ndims differ)", lambda: concatenate([vec(), mat()]), ValueError,
         r"concatenate: shapes \[\(3,\), \(2, 3\)\] along axis 0"),
    case("concatenate(axis=3)", lambda: concatenate([vec(), vec()], axis=3), ValueError,
         r"concatenate: shapes .* along axis 3: axis 3 is out of bounds"),
    case("concatenate(0-d)", lambda: concatenate([Tensor(1.0), Tensor(2.0)]), ValueError,
         r"concatenate: .*zero-dimensional"),
    case("concatenate([t, 'a'])", lambda: concatenate([vec(), "a"]), TypeError, rf"operand: {EXPECTED_REAL}"),
    case("concatenate(axis='a')", lambda: concatenate([vec(), vec()], axis="a"), TypeError,
         r"concatenate: axis must be an int, got 'a'"),
    case("concatenate(None)", lambda: concatenate(None), TypeError,
         r"concatenate: tensors must be a list"),
    case("stack([])", lambda: stack([]), ValueError, r"stack: needs at least one tensor"),
    case("stack(shapes differ)", lambda: stack([vec(), Tensor([1.0])]), ValueError,
         r"stack: all tensors must have the same shape, got \[\(3,\), \(1,\)\]"),
    case("stack(axis=3)", lambda: stack([vec(), vec()], axis=3), ValueError, r"stack: axis 3 is out of range"),
    case("stack(axis='a')", lambda: stack([vec(), vec()], axis="a"), TypeError,
         r"stack: axis must be an int, got 'a'"),
    case("stack(None)", lambda: stack(None), TypeError, r"stack: tensors must be a list"),
]


@pytest.mark.parametrize("call, error, match", OPS_CASES)
def test_ops(call, error, match):
    expect_error(call, error, match)


# =================================================================================================
# gradcheck and randomness
def _gradcheck(fn=lambda x: x * 2.0, inputs=None, **options):
    return lambda: gradcheck(fn, [Tensor([1.0, 2.0], requires_grad=True)] if inputs is None else inputs,
                             **options)


GRADCHECK_AND_RANDOM_CASES = [
    case("gradcheck(inputs=[])", _gradcheck(inputs=[]), TypeError,
         r"gradcheck: inputs must be a non-empty list of Tensors"),
    case("gradcheck(inputs=[array])", _gradcheck(inputs=[np.ones(2)]), TypeError,
         r"gradcheck: inputs must be a non-empty list of Tensors"),
    case("gradcheck(inputs=None)", lambda: gradcheck(lambda x: x, None), TypeError,
         r"gradcheck: inputs must be a non-empty list of Tensors"),
    case("gradcheck(no input requires grad)", _gradcheck(inputs=[Tensor([1.0])]), ValueError,
         r"gradcheck: no input has requires_grad=True"),
    case("gradcheck(empty input)", _gradcheck(inputs=[Tensor(np.zeros(0), requires_grad=True)]), ValueError,
         r"gradcheck: an input that requires grad is empty"),
    case("gradcheck(fn returns array)", _gradcheck(fn=lambda x: x.data), TypeError,
         r"gradcheck: fn must return a Tensor, got ndarray"),
    case("gradcheck(fn=5)", _gradcheck(fn=5), TypeError, r"gradcheck: fn must be callable"),
    case("gradcheck(eps=0)", _gradcheck(eps=0.0), ValueError,
         r"gradcheck: eps must be in \(0, inf\), got 0\.0"),
    case("gradcheck(eps='a')", _gradcheck(eps="a"), ValueError,
         r"gradcheck: eps must be a number in \(0, inf\), got 'a'"),
    case("gradcheck(eps=inf)", _gradcheck(eps=np.inf), ValueError, r"gradcheck: eps must be in \(0, inf\), got inf"),
    case("gradcheck(atol=-1)", _gradcheck(atol=-1.0), ValueError,
         r"gradcheck: atol must be in \[0, inf\), got -1\.0"),
    case("gradcheck(rtol=nan)", _gradcheck(rtol=np.nan), ValueError, r"gradcheck: rtol must be in \[0, inf\), got nan"),
    case("gradcheck(seed=True)", _gradcheck(seed=True), ValueError,
         r"gradcheck: seed must be a non-negative integer, got True"),
    case("manual_seed(-1)", lambda: manual_seed(-1), ValueError,
         r"manual_seed: seed must be a non-negative integer, got -1"),
    case("manual_seed(1.5)", lambda: manual_seed(1.5), ValueError,
         r"manual_seed: seed must be a non-negative integer, got 1\.5"),
    case("manual_seed('a')", lambda: manual_seed("a"), ValueError,
         r"manual_seed: seed must be a non-negative integer, got 'a'"),
    case("manual_seed(None)", lambda: manual_seed(None), ValueError,
         r"manual_seed: seed must be a non-negative integer, got None"),
    case("manual_seed(True)", lambda: manual_seed(True), ValueError,
         r"manual_seed: seed must be a non-negative integer, got True"),
    case("get_rng(0)", lambda: get_rng(0), TypeError,
         r"rng must be a numpy\.random\.Generator .*or None, got int"),
    case("get_rng('a')", lambda: get_rng("a"), TypeError, r"rng must be a numpy\.random\.Generator .*got str"),
    case("get_rng(RandomState)", lambda: get_rng(np.random.RandomState(0)), TypeError,
         r"rng must be a numpy\.random\.Generator .*got RandomState"),
]


@pytest.mark.parametrize("call, error, match", GRADCHECK_AND_RANDOM_CASES)
def test_gradcheck_and_random(call, error, match):
    expect_error(call, error, match)


# =================================================================================================
# Distributions: constructors
LOCATION_SCALE = ["Normal", "Laplace", "Logistic", "Gumbel", "LogNormal", "TanhNormal"]  # loc and scale


def _location_scale_cases():
    rows = []
    for name in LOCATION_SCALE:
        family = getattr(D, name)
        scale_rule = rf"{name}: parameter scale must be positive and finite \(> 0\); got 1 bad value"
        rows += [
            case(f"{name}(loc='a')", lambda f=family: f("a", 1.0), TypeError,
                 rf"{name}: parameter loc: {EXPECTED_REAL}.*got str"),
            case(f"{name}(loc=None)", lambda f=family: f(None, 1.0), TypeError,
                 rf"{name}: parameter loc is missing"),
            case(f"{name}(loc=1j)", lambda f=family: f(1j, 1.0), TypeError, rf"{name}: parameter loc: .*complex"),
            case(f"{name}(loc=object array)", lambda f=family: f(OBJECTS, 1.0), TypeError,
                 rf"{name}: parameter loc: .*dtype object"),
            case(f"{name}(scale='a')", lambda f=family: f(0.0, "a"), TypeError,
                 rf"{name}: parameter scale: {EXPECTED_REAL}"),
            case(f"{name}(loc=nan)", lambda f=family: f(np.nan, 1.0), ValueError,
                 rf"{name}: parameter loc must be finite; got 1 bad value: \[nan\]"),
            case(f"{name}(loc=-inf)", lambda f=family: f(np.array([0.0, -np.inf]), 1.0), ValueError,
                 rf"{name}: parameter loc must be finite; got 1 bad value: \[-inf\]"),
            case(f"{name}(scale=0)", lambda f=family: f(0.0, 0.0), ValueError, scale_rule + r": \[0\.\]"),
            case(f"{name}(scale=-1)", lambda f=family: f(0.0, [1.0, -1.0]), ValueError,
                 scale_rule + r": \[-1\.\]"),
            case(f"{name}(scale=nan)", lambda f=family: f(0.0, np.nan), ValueError, scale_rule + r": \[nan\]"),
            case(f"{name}(scale=inf)", lambda f=family: f(0.0, np.inf), ValueError, scale_rule + r": \[inf\]"),
            case(f"{name}(scale=Tensor nan)", lambda f=family: f(0.0, Tensor(np.nan, requires_grad=True)),
                 ValueError,
                 scale_rule + r": \[nan\]"),
            case(f"{name}(shapes (3,) (4,))", lambda f=family: f(np.zeros(3), np.ones(4)), ValueError,
                 rf"{name}: parameter shapes cannot be broadcast together: loc \(3,\), scale \(4,\)"),
        ]
    return rows


def _multivariate_normal_cases():
    """MultivariateNormal and LowRankMultivariateNormal: one matrix of three, SPD and
    lower-triangular rules, and shapes that must fit (loc (..., n), matrices (..., n, n))."""
    mvn, low_rank, eye = D.MultivariateNormal, D.LowRankMultivariateNormal, np.eye(2)
    spd_rule = r"MultivariateNormal: parameter {} must be symmetric positive definite, as M @ M\.T \+ c \* I"
    tril_rule = r"MultivariateNormal: parameter scale_tril must be lower triangular with a positive diagonal"
    return [
        case("MultivariateNormal(no matrix)", lambda: mvn(np.zeros(2)), ValueError,
             r"MultivariateNormal: give exactly one of covariance_matrix, precision_matrix and scale_tril "
             r"\(got none\)"),
        case("MultivariateNormal(two matrices)", lambda: mvn(np.zeros(2), eye, precision_matrix=eye), ValueError,
             r"give exactly one of .* \(got covariance_matrix and precision_matrix\)"),
        case("MultivariateNormal(covariance not PD)", lambda: mvn(np.zeros(2), [[1.0, 2.0], [2.0, 1.0]]),
             ValueError, spd_rule.format("covariance_matrix") + r".*got 4 bad values: \[1\., 2\., 2\., 1\.\]"),
        case("MultivariateNormal(covariance not symmetric)", lambda: mvn(np.zeros(2), [[1.0, 0.5], [0.0, 1.0]]),
             ValueError, spd_rule.format("covariance_matrix") + r".*\[1\. , 0\.5, 0\. , 1\. \]"),
        case("MultivariateNormal(covariance nan)", lambda: mvn(np.zeros(2), [[1.0, np.nan], [np.nan, 1.0]]),
             ValueError, spd_rule.format("covariance_matrix") + r".*nan"),
        case("MultivariateNormal(one bad matrix of a batch)",
             lambda: mvn(np.zeros(2), np.stack([eye, -eye, eye])), ValueError,
             spd_rule.format("covariance_matrix") + r".*got 4 bad values: \[-1\., -0\., -0\., -1\.\]"),
        case("MultivariateNormal(precision not PD)", lambda: mvn(np.zeros(2), precision_matrix=-eye),
             ValueError, spd_rule.format("precision_matrix")),
        case("MultivariateNormal(scale_tril upper)", lambda: mvn(np.zeros(2), scale_tril=[[1.0, 0.5], [0.0, 1.0]]),
             ValueError, tril_rule + r".*got 1 bad value: \[0\.5\]"),
        case("MultivariateNormal(scale_tril diagonal 0)", lambda: mvn(np.zeros(2), scale_tril=[[1.0, 0.0], [3.0, 0.0]]),
             ValueError, tril_rule + r".*got 1 bad value: \[0\.\]"),
        case("MultivariateNormal(scale_tril inf)", lambda: mvn(np.zeros(2), scale_tril=[[1.0, 0.0], [np.inf, 1.0]]),
             ValueError, tril_rule + r".*\[inf\]"),
        case("MultivariateNormal(loc nan)", lambda: mvn([0.0, np.nan], eye), ValueError,
             r"MultivariateNormal: parameter loc must be finite; got 1 bad value: \[nan\]"),
        case("MultivariateNormal(loc='a')", lambda: mvn("a", eye), TypeError,
             rf"MultivariateNormal: parameter loc: {EXPECTED_REAL}"),
        case("MultivariateNormal(loc=None)", lambda: mvn(None, eye), TypeError,
             r"MultivariateNormal: parameter loc is missing"),
        case("MultivariateNormal(scale_tril='a')", lambda: mvn(np.zeros(2), scale_tril="a"), TypeError,
             rf"MultivariateNormal: parameter scale_tril: {EXPECTED_REAL}"),
        case("MultivariateNormal(loc 0-d)", lambda: mvn(0.0, eye), ValueError,
             r"MultivariateNormal: loc needs a vector \(at least 1 dimension, \(\.\.\., n\)\)"),
        case("MultivariateNormal(covariance 1-d)", lambda: mvn(np.zeros(2), np.ones(2)), ValueError,
             r"MultivariateNormal: covariance_matrix must be a square matrix.*got shape \(2,\)"),
        case("MultivariateNormal(covariance 2 x 3)", lambda: mvn(np.zeros(2), np.ones((2, 3))), ValueError,
             r"MultivariateNormal: covariance_matrix must be a square matrix.*got shape \(2, 3\)"),
        case("MultivariateNormal(loc n=3, matrix n=2)", lambda: mvn(np.zeros(3), eye), ValueError,
             r"MultivariateNormal: loc has 3 entries per event \(shape \(3,\)\) but covariance_matrix is 2 x 2"),
        case("MultivariateNormal(batch shapes)", lambda: mvn(np.zeros((3, 2)), np.stack([eye] * 4)), ValueError,
             r"MultivariateNormal: parameter shapes cannot be broadcast together: loc \(3, 2\), "
             r"covariance_matrix \(4, 2, 2\)"),
        case("LowRankMultivariateNormal(cov_diag=0)", lambda: low_rank(np.zeros(2), np.ones((2, 1)), [1.0, 0.0]),
             ValueError, r"LowRankMultivariateNormal: parameter cov_diag must be positive and finite \(> 0\); "
                         r"got 1 bad value: \[0\.\]"),
        case("LowRankMultivariateNormal(cov_diag nan)",
             lambda: low_rank(np.zeros(2), np.ones((2, 1)), [np.nan, 1.0]), ValueError,
             r"LowRankMultivariateNormal: parameter cov_diag must be positive and finite.*\[nan\]"),
        case("LowRankMultivariateNormal(cov_factor inf)",
             lambda: low_rank(np.zeros(2), [[np.inf], [0.0]], np.ones(2)), ValueError,
             r"LowRankMultivariateNormal: parameter cov_factor must be finite; got 1 bad value: \[inf\]"),
        case("LowRankMultivariateNormal(cov_factor=None)", lambda: low_rank(np.zeros(2), None, np.ones(2)),
             TypeError, r"LowRankMultivariateNormal: parameter cov_factor is missing"),
        case("LowRankMultivariateNormal(cov_factor 1-d)", lambda: low_rank(np.zeros(2), np.ones(2), np.ones(2)),
             ValueError, r"LowRankMultivariateNormal: cov_factor needs a matrix \(at least 2 dimensions"),
        case("LowRankMultivariateNormal(cov_factor 3 rows, loc 2)",
             lambda: low_rank(np.zeros(2), np.ones((3, 1)), np.ones(2)), ValueError,
             r"LowRankMultivariateNormal: loc \(2,\) has 2 entries per event, so cov_factor must be \(2, m\) "
             r"and cov_diag \(2,\).*got cov_factor \(3, 1\)"),
        case("LowRankMultivariateNormal(cov_diag 3, loc 2)",
             lambda: low_rank(np.zeros(2), np.ones((2, 1)), np.ones(3)), ValueError,
             r"LowRankMultivariateNormal: .*got cov_factor \(2, 1\) and cov_diag \(3,\)"),
        case("LowRankMultivariateNormal(no columns)", lambda: low_rank(np.zeros(2), np.ones((2, 0)), np.ones(2)),
             ValueError, r"LowRankMultivariateNormal: cov_factor \(2, 0\) needs at least one column"),
        case("LowRankMultivariateNormal(batch shapes)",
             lambda: low_rank(np.zeros((3, 2)), np.ones((4, 2, 1)), np.ones(2)), ValueError,
             r"LowRankMultivariateNormal: parameter shapes cannot be broadcast together: loc \(3, 2\), "
             r"cov_factor \(4, 2, 1\), cov_diag \(2,\)"),
    ]


def _beta_dirichlet_studentt_cases():
    """The implicitly reparameterized families: positive concentrations and df, a last axis of
    categories for the Dirichlet, and the names of their parameters in every message."""
    positive = r"must be positive and finite \(> 0\); got 1 bad value"
    return [
        case("Beta(concentration1=0)", lambda: D.Beta(0.0, 1.0), ValueError,
             rf"Beta: parameter concentration1 {positive}: \[0\.\]"),
        case("Beta(concentration0=nan)", lambda: D.Beta(1.0, [1.0, np.nan]), ValueError,
             rf"Beta: parameter concentration0 {positive}: \[nan\]"),
        case("Beta(concentration0=inf)", lambda: D.Beta(1.0, np.inf), ValueError,
             rf"Beta: parameter concentration0 {positive}: \[inf\]"),
        case("Beta(concentration1='a')", lambda: D.Beta("a", 1.0), TypeError,
             rf"Beta: parameter concentration1: {EXPECTED_REAL}"),
        case("Beta(concentration0=None)", lambda: D.Beta(1.0, None), TypeError,
             r"Beta: parameter concentration0 is missing"),
        case("Beta(shapes)", lambda: D.Beta(np.ones(3), np.ones(4)), ValueError,
             r"Beta: parameter shapes cannot be broadcast together: concentration1 \(3,\), concentration0 \(4,\)"),
        case("Dirichlet(concentration 0-d)", lambda: D.Dirichlet(1.0), ValueError,
             r"Dirichlet: concentration must have a last axis holding at least one category.*got shape \(\).*Beta"),
        case("Dirichlet(concentration empty)", lambda: D.Dirichlet(np.ones((2, 0))), ValueError,
             r"Dirichlet: concentration must have a last axis .*got shape \(2, 0\)"),
        case("Dirichlet(concentration -1)", lambda: D.Dirichlet([1.0, -1.0]), ValueError,
             rf"Dirichlet: parameter concentration {positive}: \[-1\.\]"),
        case("Dirichlet(concentration='a')", lambda: D.Dirichlet("a"), TypeError,
             rf"Dirichlet: parameter concentration: {EXPECTED_REAL}"),
        case("StudentT(df=0)", lambda: D.StudentT(0.0), ValueError, rf"StudentT: parameter df {positive}: \[0\.\]"),
        case("StudentT(df=nan)", lambda: D.StudentT(np.nan), ValueError, rf"StudentT: parameter df {positive}: \[nan\]"),
        case("StudentT(df=None)", lambda: D.StudentT(None), TypeError, r"StudentT: parameter df is missing"),
        case("StudentT(loc=inf)", lambda: D.StudentT(3.0, np.inf), ValueError,
             r"StudentT: parameter loc must be finite; got 1 bad value: \[inf\]"),
        case("StudentT(scale=-1)", lambda: D.StudentT(3.0, 0.0, -1.0), ValueError,
             rf"StudentT: parameter scale {positive}: \[-1\.\]"),
        case("StudentT(shapes)", lambda: D.StudentT(np.ones(2), np.zeros(3)), ValueError,
             r"StudentT: parameter shapes cannot be broadcast together: df \(2,\), loc \(3,\), scale \(\)"),
        case("Dirichlet.log_prob(off the simplex)", lambda: D.Dirichlet([1.0, 2.0]).log_prob([[0.5, 0.5], [0.7, 0.7]]),
             ValueError, r"Dirichlet\.log_prob: value must be on the probability simplex, its entries summing to 1 "
                         r"along the last axis within 1e-06 .*got 1 bad value: \[1\.4\]"),
        case("kl_divergence(Dirichlet k=3, k=2)", lambda: D.kl_divergence(D.Dirichlet(np.ones(3)), D.Dirichlet(np.ones(2))),
             ValueError, r"kl_divergence\(Dirichlet, Dirichlet\): the numbers of categories differ \(3 and 2\)"),
        case("kl_divergence(StudentT, StudentT)", lambda: D.kl_divergence(D.StudentT(3.0), D.StudentT(4.0)),
             NotImplementedError, r"kl_divergence\(StudentT, StudentT\): no closed form is registered.*Monte Carlo"),
        case("Beta.cdf('a')", lambda: D.Beta(1.0, 2.0).cdf("a"), TypeError, rf"cdf value: {EXPECTED_REAL}"),
        case("StudentT.cdf(shape (4,))", lambda: D.StudentT(np.full(3, 3.0)).cdf(np.zeros(4)), ValueError,
             r"^StudentT\.cdf: value of shape \(4,\) cannot be broadcast with the batch shape \(3,\)"),
    ]


def _gamma_cases():
    """Gamma, Exponential and Chi2: positive parameters, named in every message; no icdf for the Gamma."""
    positive = r"must be positive and finite \(> 0\); got 1 bad value"
    return [
        case("Gamma(concentration=0)", lambda: D.Gamma(0.0, 1.0), ValueError,
             rf"Gamma: parameter concentration {positive}: \[0\.\]"),
        case("Gamma(concentration=inf)", lambda: D.Gamma(np.inf, 1.0), ValueError,
             rf"Gamma: parameter concentration {positive}: \[inf\]"),
        case("Gamma(rate=nan)", lambda: D.Gamma(1.0, [1.0, np.nan]), ValueError, rf"Gamma: parameter rate {positive}: \[nan\]"),
        case("Gamma(rate=-1)", lambda: D.Gamma(1.0, -1.0), ValueError, rf"Gamma: parameter rate {positive}: \[-1\.\]"),
        case("Gamma(concentration='a')", lambda: D.Gamma("a", 1.0), TypeError,
             rf"Gamma: parameter concentration: {EXPECTED_REAL}"),
        case("Gamma(rate=None)", lambda: D.Gamma(1.0, None), TypeError, r"Gamma: parameter rate is missing"),
        case("Gamma(shapes)", lambda: D.Gamma(np.ones(3), np.ones(4)), ValueError,
             r"Gamma: parameter shapes cannot be broadcast together: concentration \(3,\), rate \(4,\)"),
        case("Exponential(rate=0)", lambda: D.Exponential(0.0), ValueError, rf"Exponential: parameter rate {positive}: \[0\.\]"),
        case("Exponential(rate=None)", lambda: D.Exponential(None), TypeError, r"Exponential: parameter rate is missing"),
        case("Chi2(df=-2)", lambda: D.Chi2(-2.0), ValueError, rf"Chi2: parameter df {positive}: \[-2\.\]"),
        case("Chi2(df=nan)", lambda: D.Chi2(np.nan), ValueError, rf"Chi2: parameter df {positive}: \[nan\]"),
        case("Chi2(df='a')", lambda: D.Chi2("a"), TypeError, rf"Chi2: parameter df: {EXPECTED_REAL}"),
        case("Gamma.cdf('a')", lambda: D.Gamma(1.0, 2.0).cdf("a"), TypeError, rf"cdf value: {EXPECTED_REAL}"),
        case("Gamma.cdf(shape (4,))", lambda: D.Gamma(np.ones(3), 1.0).cdf(np.zeros(4)), ValueError,
             r"^Gamma\.cdf: value of shape \(4,\) cannot be broadcast with the batch shape \(3,\)"),
        case("Gamma.icdf(0.5)", lambda: D.Gamma(2.0, 1.0).icdf(0.5), NotImplementedError,
             r"Gamma\.icdf: the Gamma quantile has no closed form.*invert cdf\(value\) numerically"),
        case("Exponential.icdf(1.5)", lambda: D.Exponential(1.0).icdf(1.5), ValueError,
             r"Exponential\.icdf: value must be a probability in \[0, 1\].*\[1\.5\]"),
        case("kl_divergence(Gamma, Exponential)", lambda: D.kl_divergence(D.Gamma(1.0, 1.0), D.Exponential(1.0)),
             NotImplementedError, r"kl_divergence\(Gamma, Exponential\): no closed form is registered.*Monte Carlo"),
    ]


DISTRIBUTION_CONSTRUCTOR_CASES = _location_scale_cases() + [
    case("Uniform(low >= high)", lambda: D.Uniform(1.0, 0.0), ValueError,
         r"Uniform: parameter low must be less than high .*got 1 bad value: \[1\.\]"),
    case("Uniform(low=nan)", lambda: D.Uniform(np.nan, 1.0), ValueError,
         r"Uniform: parameter low must be finite.*\[nan\]"),
    case("Uniform(high=inf)", lambda: D.Uniform(0.0, np.inf), ValueError,
         r"Uniform: parameter high must be finite.*\[inf\]"),
    case("Uniform(low='a')", lambda: D.Uniform("a", 1.0), TypeError, rf"Uniform: parameter low: {EXPECTED_REAL}"),
    case("Uniform(high=None)", lambda: D.Uniform(0.0, None), TypeError, r"Uniform: parameter high is missing"),
    case("Uniform(shapes)", lambda: D.Uniform(np.zeros(3), np.ones(4)), ValueError,
         r"Uniform: parameter shapes cannot be broadcast together: low \(3,\), high \(4,\)"),
    case("Bernoulli(probs and logits)", lambda: D.Bernoulli(probs=0.5, logits=0.0), ValueError,
         r"Bernoulli: give exactly one of probs and logits \(got both\)"),
    case("Bernoulli()", lambda: D.Bernoulli(), ValueError,
         r"Bernoulli: give exactly one of probs and logits \(got neither\)"),
    case("Bernoulli(probs=1.5)", lambda: D.Bernoulli(probs=[0.5, 1.5]), ValueError,
         r"Bernoulli: parameter probs must be in \[0, 1\]; got 1 bad value: \[1\.5\]"),
    case("Bernoulli(probs=nan)", lambda: D.Bernoulli(probs=np.nan), ValueError,
         r"Bernoulli: parameter probs must be in \[0, 1\].*nan"),
    case("Bernoulli(logits=nan)", lambda: D.Bernoulli(logits=np.nan), ValueError,
         r"Bernoulli: parameter logits must be a number, not NaN"),
    case("Bernoulli(probs='a')", lambda: D.Bernoulli(probs="a"), TypeError,
         rf"Bernoulli: parameter probs: {EXPECTED_REAL}"),
    case("Bernoulli(probs=0.5j)", lambda: D.Bernoulli(probs=0.5j), TypeError,
         r"Bernoulli: parameter probs: .*complex"),
    case("Categorical(probs sum 1.1)", lambda: D.Categorical(probs=[0.5, 0.6]), ValueError,
         r"Categorical: parameter probs must be a probability vector .*summing to 1.*\[1\.1\]"),
    case("Categorical(probs < 0)", lambda: D.Categorical(probs=[-0.5, 1.5]), ValueError,
         r"Categorical: parameter probs must be >= 0.*\[-0\.5\]"),
    case("Categorical(probs nan)", lambda: D.Categorical(probs=[np.nan, 1.0]), ValueError,
         r"Categorical: parameter probs must be >= 0.*nan"),
    case("Categorical(probs 0-d)", lambda: D.Categorical(probs=1.0), ValueError,
         r"Categorical: probs must have a last axis holding at least one category, got shape \(\)"),
    case("Categorical(probs empty)", lambda: D.Categorical(probs=np.zeros(0)), ValueError,
         r"Categorical: probs must have a last axis holding at least one category, got shape \(0,\)"),
    case("Categorical(logits +inf)", lambda: D.Categorical(logits=[np.inf, 0.0]), ValueError,
         r"Categorical: parameter logits must be a number or -inf .*not NaN or \+inf"),
    case("Categorical(logits all -inf)", lambda: D.Categorical(logits=[-np.inf, -np.inf]), ValueError,
         r"Categorical: parameter logits must be finite somewhere in every row"),
    case("Categorical(probs strings)", lambda: D.Categorical(probs=["a", "b"]), TypeError,
         rf"Categorical: parameter probs: {EXPECTED_REAL}"),
    case("RelaxedBernoulli(temperature=0)", lambda: D.RelaxedBernoulli(0.0, probs=0.5), ValueError,
         r"RelaxedBernoulli: parameter temperature must be positive and finite \(> 0\).*\[0\.\]"),
    case("RelaxedBernoulli(temperature=nan)", lambda: D.RelaxedBernoulli(np.nan, probs=0.5), ValueError,
         r"RelaxedBernoulli: parameter temperature must be positive and finite.*\[nan\]"),
    case("RelaxedBernoulli(temperature=None)", lambda: D.RelaxedBernoulli(None, probs=0.5), TypeError,
         r"RelaxedBernoulli: parameter temperature is missing"),
    case("RelaxedBernoulli(probs=0)", lambda: D.RelaxedBernoulli(0.5, probs=0.0), ValueError,
         r"RelaxedBernoulli: parameter probs must be in the open interval \(0, 1\)"),
    case("RelaxedBernoulli(logits=inf)", lambda: D.RelaxedBernoulli(0.5, logits=np.inf), ValueError,
         r"RelaxedBernoulli: parameter logits must be finite.*\[inf\]"),
    case("RelaxedBernoulli(neither)", lambda: D.RelaxedBernoulli(0.5), ValueError,
         r"RelaxedBernoulli: give exactly one of probs and logits"),
    case("RelaxedBernoulli(shapes)", lambda: D.RelaxedBernoulli(np.ones(2), probs=np.full(3, 0.5)), ValueError,
         r"RelaxedBernoulli: parameter shapes cannot be broadcast together: temperature \(2,\), probs \(3,\)"),
    case("RelaxedOneHotCategorical(temperature=-1)", lambda: D.RelaxedOneHotCategorical(-1.0, probs=[0.5, 0.5]),
         ValueError, r"RelaxedOneHotCategorical: parameter temperature must be positive and finite.*\[-1\.\]"),
    case("RelaxedOneHotCategorical(probs with 0)", lambda: D.RelaxedOneHotCategorical(1.0, probs=[0.0, 1.0]),
         ValueError, r"RelaxedOneHotCategorical: parameter probs must be > 0"),
    case("RelaxedOneHotCategorical(logits nan)", lambda: D.RelaxedOneHotCategorical(1.0, logits=[np.nan, 0.0]),
         ValueError, r"RelaxedOneHotCategorical: parameter logits must be finite"),
    case("RelaxedOneHotCategorical(logits 0-d)", lambda: D.RelaxedOneHotCategorical(1.0, logits=1.0), ValueError,
         r"RelaxedOneHotCategorical: logits must have a last axis holding at least one category"),
    case("RelaxedOneHotCategorical(shapes)",
         lambda: D.RelaxedOneHotCategorical(np.ones(2), probs=np.full((3, 2), 0.5)), ValueError,
         r"RelaxedOneHotCategorical: temperature \(2,\) and probs \(3, 2\) .*cannot be broadcast together"),
    case("RelaxedOneHotCategorical(temperature='a')",
         lambda: D.RelaxedOneHotCategorical("a", probs=[0.5, 0.5]), TypeError,
         rf"RelaxedOneHotCategorical: parameter temperature: {EXPECTED_REAL}"),
] + _multivariate_normal_cases() + _beta_dirichlet_studentt_cases() + _gamma_cases()


@pytest.mark.parametrize("call, error, match", DISTRIBUTION_CONSTRUCTOR_CASES)
def test_distribution_constructors(call, error, match):
    expect_error(call, error, match)


# =================================================================================================
# Distributions: sample, rsample, log_prob; kl_divergence
# A valid instance of every family, batch shape (3,), and a value whose shape does not fit it.
DISTRIBUTIONS = {
    "Normal": (lambda: D.Normal(np.zeros(3), 1.0), np.zeros(4)),
    "Laplace": (lambda: D.Laplace(np.zeros(3), 1.0), np.zeros(4)),
    "Logistic": (lambda: D.Logistic(np.zeros(3), 1.0), np.zeros(4)),
    "Gumbel": (lambda: D.Gumbel(np.zeros(3), 1.0), np.zeros(4)),
    "LogNormal": (lambda: D.LogNormal(np.zeros(3), 1.0), np.ones(4)),
    "TanhNormal": (lambda: D.TanhNormal(np.zeros(3), 1.0), np.zeros(4)),
    "Uniform": (lambda: D.Uniform(np.zeros(3), 1.0), np.full(4, 0.5)),
    "Bernoulli": (lambda: D.Bernoulli(probs=np.full(3, 0.3)), np.zeros(4)),
    "Categorical": (lambda: D.Categorical(probs=np.full((3, 4), 0.25)), np.zeros(4)),
    "RelaxedBernoulli": (lambda: D.RelaxedBernoulli(0.5, probs=np.full(3, 0.3)), np.full(4, 0.5)),
    "RelaxedOneHotCategorical": (lambda: D.RelaxedOneHotCategorical(0.5, probs=np.full((3, 4), 0.25)),
                                 np.full((4, 4), 0.25)),
    "MultivariateNormal": (lambda: D.MultivariateNormal(np.zeros((3, 2)), np.eye(2)), np.zeros((4, 2))),
    "LowRankMultivariateNormal": (lambda: D.LowRankMultivariateNormal(np.zeros((3, 2)), np.ones((2, 1)), np.ones(2)),
                                  np.zeros((4, 2))),
    "Independent": (lambda: D.Independent(D.Normal(np.zeros((3, 2)), 1.0), 1), np.zeros((4, 2))),
    "TransformedDistribution": (lambda: D.TransformedDistribution(D.Normal(np.zeros(3), 1.0),
                                                                  D.transforms.SigmoidTransform()),
                                np.full(4, 0.5)),
    "Beta": (lambda: D.Beta(np.ones(3), 2.0), np.full(4, 0.5)),
    "Dirichlet": (lambda: D.Dirichlet(np.ones((3, 4))), np.full((4, 4), 0.25)),
    "StudentT": (lambda: D.StudentT(np.full(3, 3.0)), np.zeros(4)),
    "Gamma": (lambda: D.Gamma(np.ones(3), 2.0), np.ones(4)),
    "Exponential": (lambda: D.Exponential(np.ones(3)), np.ones(4)),
    "Chi2": (lambda: D.Chi2(np.full(3, 2.0)), np.ones(4)),
}


def _draw_and_density_cases():
    rows = []
    for name, (make, misfit) in DISTRIBUTIONS.items():
        draw = "rsample" if make().has_rsample else "sample"
        rows += [
            case(f"{name}.sample(-1)", lambda m=make: m().sample(-1, rng=rng()), ValueError,
                 r"sample_shape must not contain negative sizes, got \(-1,\)"),
            case(f"{name}.{draw}((2, -3))", lambda m=make, d=draw: getattr(m(), d)((2, -3), rng=rng()),
                 ValueError,
                 r"sample_shape must not contain negative sizes, got \(2, -3\)"),
            case(f"{name}.sample(None)", lambda m=make: m().sample(None, rng=rng()), TypeError,
                 r"sample_shape must be .*tuple of ints, got None"),
            case(f"{name}.{draw}((2.5,))", lambda m=make, d=draw: getattr(m(), d)((2.5,), rng=rng()), TypeError,
                 r"sample_shape must be .*tuple of ints, got \(2\.5,\)"),
            case(f"{name}.{draw}('ab')", lambda m=make, d=draw: getattr(m(), d)("ab", rng=rng()), TypeError,
                 r"sample_shape must be .*tuple of ints, got 'ab'"),
            case(f"{name}.sample(rng=3)", lambda m=make: m().sample((2,), rng=3), TypeError,
                 r"rng must be a numpy\.random\.Generator .*got int"),
            case(f"{name}.log_prob('a')", lambda m=make: m().log_prob("a"), TypeError,
                 rf"log_prob value: {EXPECTED_REAL}.*got str"),
            case(f"{name}.log_prob(None)", lambda m=make: m().log_prob(None), TypeError,
                 rf"log_prob value: {EXPECTED_REAL}.*NoneType"),
            case(f"{name}.log_prob(complex)", lambda m=make: m().log_prob(COMPLEX), TypeError,
                 r"log_prob value: .*complex128"),
            case(f"{name}.log_prob(shape {misfit.shape})", lambda m=make, v=misfit: m().log_prob(v), ValueError,
                 rf"^{name}\.log_prob: value of shape {re.escape(str(misfit.shape))} cannot be broadcast with "
                 rf"the batch shape \(3,\)"),
        ]
    return rows


DRAW_AND_DENSITY_CASES = _draw_and_density_cases() + [
    case("Bernoulli.rsample()", lambda: D.Bernoulli(probs=0.5).rsample(), NotImplementedError,
         r"Bernoulli has no rsample\(\).*score-function estimator.*RelaxedBernoulli"),
    case("Categorical.rsample()", lambda: D.Categorical(probs=[0.5, 0.5]).rsample(), NotImplementedError,
         r"Categorical has no rsample\(\).*score-function estimator.*RelaxedOneHotCategorical"),
    case("Categorical.mean", lambda: D.Categorical(probs=[0.5, 0.5]).mean, NotImplementedError,
         r"Categorical has no mean: its values are class labels"),
    case("kl_divergence(Normal, Uniform)", lambda: D.kl_divergence(D.Normal(0.0, 1.0), D.Uniform(0.0, 1.0)),
         NotImplementedError, r"kl_divergence\(Normal, Uniform\): no closed form is registered.*Monte Carlo"),
    case("kl_divergence(batch shapes (3,), (4,))",
         lambda: D.kl_divergence(D.Normal(np.zeros(3), 1.0), D.Normal(np.zeros(4), 1.0)), ValueError,
         r"cannot be broadcast"),
    case("kl_divergence(Categorical k=4, k=3)",
         lambda: D.kl_divergence(D.Categorical(probs=np.full(4, 0.25)), D.Categorical(probs=np.full(3, 1 / 3))),
         ValueError, r"kl_divergence\(Categorical, Categorical\): the numbers of categories differ \(4 and 3\)"),
    case("kl_divergence(Normal, 3.0)", lambda: D.kl_divergence(D.Normal(0.0, 1.0), 3.0), TypeError,
         r"kl_divergence: p and q must be distributions"),
    case("kl_divergence(None, Normal)", lambda: D.kl_divergence(None, D.Normal(0.0, 1.0)), TypeError,
         r"kl_divergence: p and q must be distributions"),
    case("register_kl('a', Normal)", lambda: D.register_kl("a", D.Normal), TypeError,
         r"register_kl: type_p and type_q must be classes"),
]


@pytest.mark.parametrize("name", list(DISTRIBUTIONS))
def test_log_prob_of_a_value_that_does_not_fit_names_value_batch_and_event_shapes(name):
    """The one shape check in Distribution._value, for every family: the value's shape, the batch
    shape and, where there is one, the event shape, in our words (not NumPy's from deep inside)."""
    make, misfit = DISTRIBUTIONS[name]
    d = make()
    with pytest.raises(ValueError) as error:
        d.log_prob(Tensor(misfit, requires_grad=True))
    message = str(error.value)
    assert message.startswith(f"{name}.log_prob: value of shape {misfit.shape} cannot be broadcast")
    assert f"batch shape {d.batch_shape}" in message
    assert ("event shape" in message) == bool(d.event_shape)
    if d.event_shape:
        assert f"event shape {d.event_shape}" in message
    # a value that does fit, with sample dimensions in front, is fine
    one_value = misfit[(0,) * (misfit.ndim - len(d.event_shape))]
    fitting = np.broadcast_to(one_value, d.batch_shape + d.event_shape)
    assert d.log_prob(np.stack([fitting, fitting])).shape == (2,) + d.batch_shape


@pytest.mark.parametrize("call, error, match", DRAW_AND_DENSITY_CASES)
def test_draws_and_densities(call, error, match):
    expect_error(call, error, match)


# =================================================================================================
# Distributions: transforms, Independent, TransformedDistribution, cdf and icdf
T = D.transforms
CDF_FAMILIES = {  # every family with a quantile function, and one instance of it
    "Normal": lambda: D.Normal(0.0, 1.0), "Laplace": lambda: D.Laplace(0.0, 1.0),
    "Logistic": lambda: D.Logistic(0.0, 1.0), "Gumbel": lambda: D.Gumbel(0.0, 1.0),
    "Uniform": lambda: D.Uniform(0.0, 1.0), "LogNormal": lambda: D.LogNormal(0.0, 1.0),
    "TanhNormal": lambda: D.TanhNormal(0.0, 1.0), "RelaxedBernoulli": lambda: D.RelaxedBernoulli(0.5, probs=0.3),
}


def _quantile_cases():
    rows = []
    for name, make in CDF_FAMILIES.items():
        rows += [
            case(f"{name}.icdf(1.5)", lambda m=make: m().icdf([0.5, 1.5]), ValueError,
                 rf"^{name}\.icdf: value must be a probability in \[0, 1\] .*got 1 bad value: \[1\.5\]"),
            case(f"{name}.icdf(nan)", lambda m=make: m().icdf(np.nan), ValueError,
                 rf"^{name}\.icdf: value must be a probability in \[0, 1\].*\[nan\]"),
            case(f"{name}.cdf('a')", lambda m=make: m().cdf("a"), TypeError, rf"cdf value: {EXPECTED_REAL}"),
        ]
    return rows


TRANSFORM_CASES = _quantile_cases() + [
    case("Normal.cdf(shape (4,))", lambda: D.Normal(np.zeros(3), 1.0).cdf(np.zeros(4)), ValueError,
         r"^Normal\.cdf: value of shape \(4,\) cannot be broadcast with the batch shape \(3,\)"),
    case("AffineTransform(scale=0)", lambda: T.AffineTransform(0.0, [1.0, 0.0]), ValueError,
         r"AffineTransform: scale must be nonzero and finite .*no inverse.*got 1 bad value: \[0\.\]"),
    case("AffineTransform(loc=nan)", lambda: T.AffineTransform(np.nan, 1.0), ValueError,
         r"AffineTransform: loc must be finite; got 1 bad value: \[nan\]"),
    case("AffineTransform(scale=None)", lambda: T.AffineTransform(0.0, None), TypeError,
         r"AffineTransform: parameter scale is missing"),
    case("AffineTransform(event_dim=-1)", lambda: T.AffineTransform(0.0, 1.0, event_dim=-1), ValueError,
         r"AffineTransform: event_dim must be a non-negative integer, got -1"),
    case("ComposeTransform(ExpTransform())", lambda: T.ComposeTransform(T.ExpTransform()), TypeError,
         r"ComposeTransform: parts must be a list of transforms.*got ExpTransform"),
    case("ComposeTransform([exp])", lambda: T.ComposeTransform([np.exp]), TypeError,
         r"ComposeTransform: parts\[0\] must be a transform .*got ufunc"),
    case("Independent(3.0, 1)", lambda: D.Independent(3.0, 1), TypeError,
         r"Independent: base_distribution must be a distribution.*got float"),
    case("Independent(ndims 2 > 1)", lambda: D.Independent(D.Normal(np.zeros(3), 1.0), 2), ValueError,
         r"Independent: reinterpreted_batch_ndims=2 exceeds the 1 batch dimensions .*\(3,\)"),
    case("Independent(ndims True)", lambda: D.Independent(D.Normal(np.zeros(3), 1.0), True), ValueError,
         r"Independent: reinterpreted_batch_ndims must be a non-negative integer, got True"),
    case("TransformedDistribution(3.0, exp)", lambda: D.TransformedDistribution(3.0, T.ExpTransform()), TypeError,
         r"TransformedDistribution: base_distribution must be a distribution.*got float"),
    case("TransformedDistribution(normal, np.exp)",
         lambda: D.TransformedDistribution(D.Normal(0.0, 1.0), np.exp), TypeError,
         r"TransformedDistribution: transforms must be a transform or a list of transforms"),
    case("TransformedDistribution(loc broadcasts the batch)",
         lambda: D.TransformedDistribution(D.Normal(0.0, 1.0), T.AffineTransform(np.zeros(3), 1.0)), ValueError,
         r"TransformedDistribution: the transforms' parameters would broadcast .* \(\) to \(3,\).*noise of "
         r"its own"),
    case("TransformedDistribution(event_dim 1 on a 0-d base)",
         lambda: D.TransformedDistribution(D.Normal(0.0, 1.0), T.AffineTransform(0.0, 1.0, event_dim=1)),
         ValueError, r"TransformedDistribution: the transforms act on events of 1 dimensions"),
    case("TransformedDistribution.entropy()",
         lambda: D.TransformedDistribution(D.Normal(0.0, 1.0), T.SigmoidTransform()).entropy(),
         NotImplementedError, r"TransformedDistribution: the transformed entropy has no closed form.*"
                              r"rsample_with_log_prob"),
    case("TransformedDistribution(event (2,)).cdf",
         lambda: D.TransformedDistribution(D.Normal(np.zeros(2), 1.0), T.AffineTransform(0.0, 1.0, event_dim=1))
         .cdf(np.zeros(2)), NotImplementedError, r"TransformedDistribution\.cdf: .*scalar draws only"),
    case("kl_divergence(Independent 1, Independent 0)",
         lambda: D.kl_divergence(D.Independent(D.Normal(np.zeros(2), 1.0), 1),
                                 D.Independent(D.Normal(np.zeros(2), 1.0), 0)), NotImplementedError,
         r"kl_divergence\(Independent, Independent\): p reinterprets 1 batch dimensions and q 0"),
]


@pytest.mark.parametrize("call, error, match", TRANSFORM_CASES)
def test_transforms_and_quantiles(call, error, match):
    expect_error(call, error, match)


# =================================================================================================
# Estimators
def _params():
    return [Tensor(np.zeros(3), requires_grad=True), Tensor(np.ones(3), requires_grad=True)]


def _log_q():
    mu, sigma = _params()
    return D.Normal(mu, sigma).log_prob(np.zeros(3))


def _factory(mu, sigma):
    return D.Normal(mu, sigma)


def _cost(z):
    return (z ** 2).sum(axis=-1)


def _estimate(factory=_factory, cost_fn=_cost, params=None, **options):
    options.setdefault("rng", rng())
    return lambda: E.estimate_gradient(factory, cost_fn, _params() if params is None else params, **options)


ESTIMATOR_CASES = [
    case("score_function_surrogate(array)", lambda: E.score_function_surrogate(np.zeros(3), np.zeros(3)),
         TypeError,
         r"score_function_surrogate: log_prob must be a Tensor .*got ndarray"),
    case("score_function_surrogate(cost='a')", lambda: E.score_function_surrogate(_log_q(), "a"), TypeError,
         rf"score_function_surrogate: cost: {EXPECTED_REAL}"),
    case("score_function_surrogate(cost=None)", lambda: E.score_function_surrogate(_log_q(), None), TypeError,
         rf"score_function_surrogate: cost: {EXPECTED_REAL}.*NoneType"),
    case("score_function_surrogate(cost complex)", lambda: E.score_function_surrogate(_log_q(), COMPLEX),
         TypeError,
         r"score_function_surrogate: cost: .*complex"),
    case("score_function_surrogate(cost (4,))", lambda: E.score_function_surrogate(_log_q(), np.zeros(4)),
         ValueError,
         r"score_function_surrogate: log_prob has shape \(3,\) and cost has shape \(4,\); they cannot be "
         r"broadcast"),
    case("score_function_surrogate(cost (3, 1))", lambda: E.score_function_surrogate(_log_q(), np.zeros((3, 1))),
         ValueError,
         r"score_function_surrogate: log_prob of shape \(3,\) would broadcast the cost of shape \(3, 1\)"),
    case("score_function_surrogate(baseline (2,))",
         lambda: E.score_function_surrogate(_log_q(), np.zeros(3), np.zeros(2)), ValueError,
         r"score_function_surrogate: baseline of shape \(2,\) does not broadcast to the cost's shape \(3,\)"),
    case("score_function_surrogate(baseline='a')", lambda: E.score_function_surrogate(_log_q(), np.zeros(3), "a"),
         TypeError, rf"score_function_surrogate: baseline: {EXPECTED_REAL}"),
    case("MovingAverageBaseline(1.0)", lambda: E.MovingAverageBaseline(1.0), ValueError,
         r"MovingAverageBaseline: decay must be in \[0, 1\), got 1\.0"),
    case("MovingAverageBaseline(nan)", lambda: E.MovingAverageBaseline(np.nan), ValueError,
         r"MovingAverageBaseline: decay must be in \[0, 1\), got nan"),
    case("MovingAverageBaseline('a')", lambda: E.MovingAverageBaseline("a"), ValueError,
         r"MovingAverageBaseline: decay must be a number in \[0, 1\), got 'a'"),
    case("MovingAverageBaseline(None)", lambda: E.MovingAverageBaseline(None), ValueError,
         r"MovingAverageBaseline: decay must be a number in \[0, 1\), got None"),
    case("MovingAverageBaseline(True)", lambda: E.MovingAverageBaseline(True), ValueError,
         r"MovingAverageBaseline: decay must be a number in \[0, 1\), got True"),
    case("MovingAverageBaseline.update(nan)", lambda: E.MovingAverageBaseline().update([1.0, np.nan]), ValueError,
         r"MovingAverageBaseline\.update: the mean cost is nan; a baseline must be finite"),
    case("MovingAverageBaseline.update(inf)", lambda: E.MovingAverageBaseline().update(np.inf), ValueError,
         r"MovingAverageBaseline\.update: the mean cost is inf"),
    case("MovingAverageBaseline.update('a')", lambda: E.MovingAverageBaseline().update("a"), TypeError,
         rf"MovingAverageBaseline\.update: cost: {EXPECTED_REAL}"),
    case("MovingAverageBaseline.update([])", lambda: E.MovingAverageBaseline().update(np.zeros(0)), ValueError,
         r"MovingAverageBaseline\.update: cost is empty"),
    case("leave_one_out(3.0)", lambda: E.leave_one_out(3.0), ValueError,
         r"leave_one_out: cost is a single number; it needs at least 2 draws"),
    case("leave_one_out(1 draw)", lambda: E.leave_one_out(np.zeros((1, 3))), ValueError,
         r"leave_one_out: needs at least 2 draws along axis 0, cost has shape \(1, 3\)"),
    case("leave_one_out(empty)", lambda: E.leave_one_out(np.zeros(0)), ValueError,
         r"leave_one_out: needs at least 2 draws along axis 0, cost has shape \(0,\)"),
    case("leave_one_out(axis=2)", lambda: E.leave_one_out(np.zeros(3), axis=2), ValueError,
         r"leave_one_out: axis 2 is out of range for cost of shape \(3,\)"),
    case("leave_one_out('abc')", lambda: E.leave_one_out("abc"), TypeError,
         rf"leave_one_out: cost: {EXPECTED_REAL}"),
    case("leave_one_out(axis=1.5)", lambda: E.leave_one_out(np.zeros((3, 2)), axis=1.5), TypeError,
         r"leave_one_out: axis must be an int, got 1\.5"),
    case("leave_one_out(axis='a')", lambda: E.leave_one_out(np.zeros(3), axis="a"), TypeError,
         r"leave_one_out: axis must be an int, got 'a'"),
    case("magic_box(1.0)", lambda: E.magic_box(1.0), TypeError, r"magic_box: tau must be a Tensor .*got float"),
    case("estimate_gradient(params=Tensor)", _estimate(params=Tensor(np.zeros(3), requires_grad=True)), TypeError,
         r"params must be a list of Tensors .*got Tensor"),
    case("estimate_gradient(params without grad)",
         _estimate(params=[Tensor(0.0), Tensor(1.0, requires_grad=True)]),
         TypeError, r"params\[0\] must be a Tensor with requires_grad=True"),
    case("estimate_gradient(estimator='foo')", _estimate(estimator="foo"), ValueError,
         r"estimate_gradient: unknown estimator 'foo'; choose one of "
         r"\('pathwise', 'score', 'score_nobaseline', 'score_loo'\)"),
    case("estimate_gradient(estimator='reinforce')", _estimate(estimator="reinforce"), ValueError,
         r"estimate_gradient: unknown estimator 'reinforce'"),
    case("estimate_gradient(n_samples=0)", _estimate(n_samples=0), ValueError,
         r"estimate_gradient: n_samples must be a positive integer, got 0"),
    case("estimate_gradient(n_samples=2.0)", _estimate(n_samples=2.0), ValueError,
         r"estimate_gradient: n_samples must be a positive integer, got 2\.0"),
    case("estimate_gradient(score_nobaseline, baseline)", _estimate(estimator="score_nobaseline", baseline=1.0),
         ValueError, r"a baseline applies to the 'score' estimator only, not 'score_nobaseline'"),
    case("estimate_gradient(pathwise, baseline)", _estimate(baseline=1.0), ValueError,
         r"a baseline applies to the 'score' estimator only, not 'pathwise'"),
    case("estimate_gradient(score_loo, n_samples=1)", _estimate(estimator="score_loo"), ValueError,
         r"'score_loo' needs n_samples >= 2"),
    case("estimate_gradient(cost of wrong shape)", _estimate(cost_fn=lambda z: z, n_samples=2), ValueError,
         r"cost_fn must return one cost per draw: for draws of shape \(2, 3\) the cost should have shape \(2,\)"),
    case("estimate_gradient(pathwise NumPy cost)", _estimate(cost_fn=lambda z: (z.data ** 2).sum(-1)), TypeError,
         r"the pathwise estimator differentiates cost_fn\(z\), so cost_fn must be built from Tensor operations"),
    case("estimate_gradient(rng=1)", _estimate(rng=1), TypeError, r"rng must be a numpy\.random\.Generator"),
    case("estimate_gradient(dist_factory=3)", _estimate(factory=3), TypeError, r"dist_factory must be callable"),
    case("gradient_samples(repeats=1)",
         lambda: E.gradient_samples(_factory, _cost, _params(), repeats=1, rng=rng()),
         ValueError, r"gradient_samples: repeats .*must be an integer >= 2, got 1"),
    case("gradient_samples(vectorize='yes')",
         lambda: E.gradient_samples(_factory, _cost, _params(), repeats=2, vectorize="yes", rng=rng()),
         TypeError, r"gradient_samples: vectorize must be True or False, got 'yes'"),
    case("gradient_samples(MovingAverageBaseline, vectorized)",
         lambda: E.gradient_samples(_factory, _cost, _params(), estimator="score",
                                    baseline=E.MovingAverageBaseline(), rng=rng()),
         ValueError, r"a MovingAverageBaseline changes from one estimate to the next.*vectorize=False"),
    case("gradient_samples(exact of 1 for 2 params)",
         lambda: E.gradient_samples(_factory, _cost, _params(), repeats=2, exact=[np.zeros(3)], rng=rng()),
         ValueError, r"exact must give one gradient per parameter: 2 parameters, 1 exact gradients"),
    case("gradient_samples(exact of wrong shape)",
         lambda: E.gradient_samples(_factory, _cost, _params(), repeats=2, exact=[np.zeros(2), np.zeros(3)],
                                    rng=rng()),
         ValueError, r"GradientStats: exact gradient has shape \(2,\), the estimates have shape \(3,\)"),
    case("compare_estimators(['foo'])",
         lambda: E.compare_estimators(_factory, _cost, _params(), estimators=["foo"], repeats=2, rng=rng()),
         ValueError, r"unknown estimator 'foo'"),
    case("compare_estimators('pathwise')",
         lambda: E.compare_estimators(_factory, _cost, _params(), estimators="pathwise", repeats=2, rng=rng()),
         TypeError, r"estimators must be a list of names"),
    case("GradientStats(1 estimate)", lambda: E.GradientStats(np.zeros((1, 3))), ValueError,
         r"GradientStats needs at least 2 estimates along axis 0, got shape \(1, 3\)"),
    case("GradientStats('a')", lambda: E.GradientStats("a"), TypeError,
         rf"GradientStats: samples: {EXPECTED_REAL}"),
]


@pytest.mark.parametrize("call, error, match", ESTIMATOR_CASES)
def test_estimators(call, error, match):
    expect_error(call, error, match)


# =================================================================================================
# Estimators for discrete latents
def _phi(values=(0.5, -0.5)):
    return Tensor(np.array(values), requires_grad=True)


def _toy_cost(b):
    return (b - 0.45) ** 2


def _relax(control_variate, cost_fn=_toy_cost):
    return lambda: DE.relax_surrogate(_phi(), cost_fn, control_variate, rng=rng())


def _rebar(cost_fn=_toy_cost, cost_gradient=lambda y: 2.0 * (y - 0.45), temperature=0.5):
    return lambda: DE.rebar_surrogate(_phi(), cost_fn, cost_gradient, temperature, 1.0, rng=rng())


_WHAT_COST_FN_DOES = r"draws b, a constant Tensor of shape samples \+ batch \+ event -> one cost per draw"

DISCRETE_ESTIMATOR_CASES = [
    case("arm_surrogate(array logits)", lambda: DE.arm_surrogate(np.zeros(2), _toy_cost), TypeError,
         r"arm_surrogate: logits must be a Tensor \(the Bernoulli logits phi.*got ndarray"),
    case("disarm_surrogate(logits nan)", lambda: DE.disarm_surrogate(_phi((0.0, np.nan)), _toy_cost), ValueError,
         r"disarm_surrogate: logits must be finite \(an infinite logit is a certain coin.*got 1 bad value: \[nan\]"),
    case("arm_surrogate(logits inf)", lambda: DE.arm_surrogate(_phi((np.inf, 0.0)), _toy_cost), ValueError,
         r"arm_surrogate: logits must be finite.*\[inf\]"),
    case("arm_surrogate(cost_fn=3)", lambda: DE.arm_surrogate(_phi(), 3), TypeError,
         rf"arm_surrogate: cost_fn must be a function \({_WHAT_COST_FN_DOES}.*got int"),
    case("arm_surrogate(n_pairs=0)", lambda: DE.arm_surrogate(_phi(), _toy_cost, n_pairs=0), ValueError,
         r"arm_surrogate: n_pairs must be a positive integer, got 0"),
    case("disarm_surrogate(n_pairs=1.5)", lambda: DE.disarm_surrogate(_phi(), _toy_cost, n_pairs=1.5), ValueError,
         r"disarm_surrogate: n_pairs must be a positive integer, got 1\.5"),
    case("arm_surrogate(rng=1)", lambda: DE.arm_surrogate(_phi(), _toy_cost, rng=1), TypeError,
         r"rng must be a numpy\.random\.Generator"),
    case("arm_surrogate(cost summed over everything)",
         lambda: DE.arm_surrogate(_phi(), lambda b: ((b - 0.45) ** 2).sum(), rng=rng()), ValueError,
         r"arm_surrogate: cost_fn returned shape \(\) for draws of shape \(2, 1, 2\); it must return one cost "
         r"per draw and batch entry, of shape samples \(2, 1\) \+ the leading \(batch\) axes"),
    case("disarm_surrogate(cost with an extra axis)",
         lambda: DE.disarm_surrogate(_phi(), lambda b: b[..., None], rng=rng()), ValueError,
         r"disarm_surrogate: cost_fn returned shape \(2, 1, 2, 1\) for draws of shape \(2, 1, 2\)"),
    case("arm_surrogate(cost nan)", lambda: DE.arm_surrogate(_phi(), lambda b: b * np.nan, rng=rng()),
         ValueError, r"arm_surrogate: cost_fn's result must be finite; got 4 bad values"),
    case("arm_surrogate(cost 'a')", lambda: DE.arm_surrogate(_phi(), lambda b: "a", rng=rng()), TypeError,
         rf"arm_surrogate: cost_fn's result: {EXPECTED_REAL}"),
    case("vimco_surrogate(array log_prob)", lambda: DE.vimco_surrogate(np.zeros((3, 2)), np.zeros((3, 2))),
         TypeError, r"vimco_surrogate: log_prob must be a Tensor connected to the parameters.*got ndarray"),
    case("vimco_surrogate(shapes)", lambda: DE.vimco_surrogate(Tensor(np.zeros((3, 2))), np.zeros((3, 1))),
         ValueError, r"vimco_surrogate: log_weights has shape \(3, 1\) and log_prob has shape \(3, 2\); give "
                     r"one log-weight per draw"),
    case("vimco_surrogate(K=1)", lambda: DE.vimco_surrogate(Tensor(np.zeros((1, 2))), np.zeros((1, 2))),
         ValueError, r"vimco_surrogate: needs K >= 2 draws along axis 0 .*got shape \(1, 2\)"),
    case("vimco_surrogate(0-d)", lambda: DE.vimco_surrogate(Tensor(0.0), 0.0), ValueError,
         r"vimco_surrogate: needs K >= 2 draws along axis 0 .*got shape \(\)"),
    case("vimco_surrogate(log weight -inf)",
         lambda: DE.vimco_surrogate(Tensor(np.zeros(3)), np.array([0.0, -np.inf, 1.0])), ValueError,
         r"vimco_surrogate: log_weights must be finite \(a draw with weight 0 leaves nothing to average\); "
         r"got 1 bad value: \[-inf\]"),
    case("vimco_surrogate(log_weights 'a')", lambda: DE.vimco_surrogate(Tensor(np.zeros(3)), "a"), TypeError,
         rf"vimco_surrogate: log_weights: {EXPECTED_REAL}"),
    case("conditional_logistic(b='a')", lambda: DE.conditional_logistic(0.0, "a", 0.5), TypeError,
         rf"conditional_logistic: b: {EXPECTED_REAL}"),
    case("relax_surrogate(control_variate=None)", _relax(None), TypeError,
         r"relax_surrogate: control_variate must be a function \(z -> \(c\(z\), dc/dz\), Tensors\), got NoneType"),
    case("relax_surrogate(control variate returns one Tensor)", _relax(lambda z: z), TypeError,
         r"relax_surrogate: control_variate\(z\) must return a pair of Tensors \(c\(z\), dc/dz\), got Tensor"),
    case("relax_surrogate(c of z's shape plus one)", _relax(lambda z: (z.reshape(z.shape + (1,)), z)),
         ValueError, r"relax_surrogate: control_variate returned c of shape \(1, 2, 1\); it must have the costs' "
                     r"shape \(1, 2\) \(samples \+ batch\)"),
    case("relax_surrogate(dc/dz of the wrong shape)", _relax(lambda z: (z, z.sum(axis=-1))), ValueError,
         r"relax_surrogate: control_variate returned dc/dz of shape \(1,\); it must have z's shape \(1, 2\)"),
    case("relax_surrogate(n_samples=0)",
         lambda: DE.relax_surrogate(_phi(), _toy_cost, lambda z: (z, z), n_samples=0), ValueError,
         r"relax_surrogate: n_samples must be a positive integer, got 0"),
    case("rebar_surrogate(temperature=0)", _rebar(temperature=0.0), ValueError,
         r"rebar_control_variate: temperature must be positive \(lambda in sigmoid\(z / lambda\)\); got 1 bad "
         r"value: \[0\.\]"),
    case("rebar_surrogate(cost_gradient=None)", _rebar(cost_gradient=None), TypeError,
         r"rebar_control_variate: cost_gradient must be a function \(relaxed draws y -> df/dy"),
    case("rebar_surrogate(NumPy cost)", _rebar(cost_fn=lambda b: (b.data - 0.45) ** 2), TypeError,
         r"rebar_control_variate: cost_fn and cost_gradient must return Tensors built from Tensor operations"),
    case("rebar_surrogate(f' summed)", _rebar(cost_gradient=lambda y: (2.0 * (y - 0.45)).sum()), ValueError,
         r"rebar_control_variate: cost_gradient returned shape \(\); df/dy must have the shape of the relaxed "
         r"draws, \(1, 2\)"),
    case("mlp_input_gradient(Linear)", lambda: DE.mlp_input_gradient(nn.Linear(2, 1), np.zeros(2), np.ones(1)),
         TypeError, r"mlp_input_gradient: mlp must be a tinygrad_reparam\.nn\.MLP, got Linear"),
    case("mlp_input_gradient(output_gradient shape)",
         lambda: DE.mlp_input_gradient(nn.MLP([2, 3, 1], rng=rng()), np.zeros((4, 2)), np.ones(4)), ValueError,
         r"mlp_input_gradient: output_gradient has shape \(4,\); it must have the output's shape \(4, 1\)"),
    case("NeuralControlVariate(latent_shape=3)", lambda: DE.NeuralControlVariate(3), TypeError,
         r"NeuralControlVariate: latent_shape must be a tuple, \(\) for one coin or \(d,\) for d latents, got 3"),
    case("NeuralControlVariate(latent_shape=(0,))", lambda: DE.NeuralControlVariate((0,)), ValueError,
         r"NeuralControlVariate: latent_shape entries must be a positive integer, got 0"),
    case("NeuralControlVariate(z of another latent shape)",
         lambda: DE.NeuralControlVariate((3,), rng=rng())(Tensor(np.zeros((2, 4)))), ValueError,
         r"NeuralControlVariate: z of shape \(2, 4\) does not end in the latent shape \(3,\)"),
]


@pytest.mark.parametrize("call, error, match", DISCRETE_ESTIMATOR_CASES)
def test_discrete_estimators(call, error, match):
    expect_error(call, error, match)


# =================================================================================================
# nn and optim
def _linear():
    return nn.Linear(3, 2, rng=rng())


def _linear_state(**changes):
    state = _linear().state_dict()
    state.update(changes)
    return state


class _Clash(nn.Module):
    """A module whose parameter name is one of np.savez's own argument names."""

    def __init__(self):
        self.file = Tensor([1.0], requires_grad=True)


NN_CASES = [
    case("Linear(0, 2)", lambda: nn.Linear(0, 2), ValueError,
         r"Linear: in_features must be a positive integer, got 0"),
    case("Linear('3', 2)", lambda: nn.Linear("3", 2), ValueError,
         r"Linear: in_features must be a positive integer, got '3'"),
    case("Linear(3.0, 2)", lambda: nn.Linear(3.0, 2), ValueError,
         r"Linear: in_features must be a positive integer, got 3\.0"),
    case("Linear(True, 2)", lambda: nn.Linear(True, 2), ValueError,
         r"Linear: in_features must be a positive integer, got True"),
    case("Linear(3, None)", lambda: nn.Linear(3, None), ValueError,
         r"Linear: out_features must be a positive integer, got None"),
    case("Linear(dtype=int64)", lambda: nn.Linear(3, 2, dtype=np.int64), ValueError,
         r"Linear: dtype must be a floating point type .*got int64"),
    case("Linear(dtype='banana')", lambda: nn.Linear(3, 2, dtype="banana"), TypeError,
         r"Linear: dtype must be a floating point type .*'banana'"),
    case("Linear(rng=0)", lambda: nn.Linear(3, 2, rng=0), TypeError,
         r"rng must be a numpy\.random\.Generator .*got int"),
    case("Linear()(x with 4 features)", lambda: _linear()(np.zeros((2, 4))), ValueError,
         r"Linear\(in_features=3, out_features=2, bias=True\): input of shape \(2, 4\) should have 3 features"),
    case("Linear()(0-d)", lambda: _linear()(1.0), ValueError, r"input of shape \(\) should have 3 features"),
    case("Linear()('abc')", lambda: _linear()("abc"), TypeError, rf"Tensor data: {EXPECTED_REAL}"),
    case("MLP([3])", lambda: nn.MLP([3]), ValueError, r"MLP: sizes needs at least two entries .*got \[3\]"),
    case("MLP([3, 0, 2])", lambda: nn.MLP([3, 0, 2]), ValueError,
         r"MLP: sizes\[1\] must be a positive integer, got 0"),
    case("MLP('32')", lambda: nn.MLP("32"), TypeError, r"MLP: sizes must be a list of layer widths.*got '32'"),
    case("MLP([3, True])", lambda: nn.MLP([3, True]), ValueError, r"MLP: sizes\[1\] must be a positive integer, got True"),
    case("Linear(bias='yes')", lambda: nn.Linear(3, 2, bias="yes"), TypeError,
         r"Linear: bias must be True or False, got 'yes'"),
    case("load_state_dict(strict=None)", lambda: _linear().load_state_dict(_linear_state(), strict=None), TypeError,
         r"load_state_dict: strict must be True or False, got None"),
    case("MLP(activation='gelu')", lambda: nn.MLP([3, 2], activation="gelu"), ValueError,
         r"MLP: unknown activation 'gelu'; choose one of \['relu', 'sigmoid', 'softplus', 'tanh'\]"),
    case("MLP(activation=None)", lambda: nn.MLP([3, 2], activation=None), ValueError,
         r"MLP: unknown activation None"),
    case("MLP(activation=['tanh'])", lambda: nn.MLP([3, 2], activation=["tanh"]), ValueError,
         r"MLP: unknown activation \['tanh'\]"),
    case("MLP(None)", lambda: nn.MLP(None), TypeError, r"MLP: sizes must be a list of layer widths"),
    case("MLP(3)", lambda: nn.MLP(3), TypeError, r"MLP: sizes must be a list of layer widths"),
    case("load_state_dict(list)", lambda: _linear().load_state_dict([1, 2]), TypeError,
         r"load_state_dict: expected a dict of arrays .*got list"),
    case("load_state_dict(missing key)", lambda: _linear().load_state_dict({"weight": np.zeros((3, 2))}),
         ValueError,
         r"(?s)load_state_dict into Linear: nothing was loaded.*missing keys .*\['bias'\]"),
    case("load_state_dict(unexpected key)", lambda: _linear().load_state_dict(_linear_state(extra=np.zeros(1))),
         ValueError, r"(?s)nothing was loaded.*unexpected keys .*\['extra'\]"),
    case("load_state_dict(wrong shape)",
         lambda: _linear().load_state_dict(_linear_state(weight=np.zeros((2, 3)))),
         ValueError, r"(?s)nothing was loaded.*weight: shape \(2, 3\) in the state, \(3, 2\) in the module"),
    case("load_state_dict(int array)",
         lambda: _linear().load_state_dict(_linear_state(weight=np.zeros((3, 2), int))),
         ValueError, r"(?s)nothing was loaded.*weight: dtype int64 is not floating point"),
    case("load_state_dict(str)", lambda: _linear().load_state_dict(_linear_state(weight="abc")), ValueError,
         r"(?s)nothing was loaded.*weight: dtype <U3 is not floating point"),
    case("load_state_dict(None)", lambda: _linear().load_state_dict(_linear_state(bias=None)), ValueError,
         r"(?s)nothing was loaded.*bias: dtype object is not floating point"),
    case("load_state_dict(complex)",
         lambda: _linear().load_state_dict(_linear_state(weight=np.zeros((3, 2), complex))),
         ValueError, r"(?s)nothing was loaded.*weight: dtype complex128 is not floating point"),
    case("load_state_dict(NaN)", lambda: _linear().load_state_dict(_linear_state(weight=np.full((3, 2), np.nan))),
         ValueError, r"(?s)nothing was loaded.*weight: .*(NaN|nan)"),
    case("save(name clash)", lambda: nn.save(_Clash(), os.devnull), ValueError,
         r"save: parameter names \['file'\] clash with np\.savez's own arguments"),
    case("save(path=None)", lambda: nn.save(_linear(), None), TypeError,
         r"save: path must be a str or os\.PathLike, got NoneType"),
    case("save(module='abc')", lambda: nn.save("abc", os.devnull), TypeError,
         r"save: module must be a .*Module, got str"),
    case("load(path=None)", lambda: nn.load(_linear(), None), TypeError,
         r"load: path must be a str or os\.PathLike, got NoneType"),
    case("load(module='abc')", lambda: nn.load("abc", os.devnull), TypeError,
         r"load: module must be a .*Module, got str"),
    case("BayesianLinear(0, 2)", lambda: bayes.BayesianLinear(0, 2, rng=rng()), ValueError,
         r"BayesianLinear: in_features must be a positive integer, got 0"),
    case("BayesianLinear(prior_sigma=inf)", lambda: bayes.BayesianLinear(3, 2, prior_sigma=np.inf, rng=rng()),
         ValueError, r"BayesianLinear: prior_sigma must be in \(0, inf\), got inf"),
    case("BayesianLinear(init_sigma='a')", lambda: bayes.BayesianLinear(3, 2, init_sigma="a", rng=rng()),
         ValueError, r"BayesianLinear: init_sigma must be a number in \(0, inf\), got 'a'"),
    case("BayesianMLP(None)", lambda: bayes.BayesianMLP(None, rng=rng()), TypeError,
         r"BayesianMLP: sizes must be a list of layer widths"),
    case("BayesianMLP([3, 0, 1])", lambda: bayes.BayesianMLP([3, 0, 1], rng=rng()), ValueError,
         r"BayesianMLP: sizes\[1\] must be a positive integer, got 0"),
    case("BayesianMLP(activation=['relu'])", lambda: bayes.BayesianMLP([3, 1], activation=["relu"], rng=rng()),
         ValueError, r"BayesianMLP: unknown activation \['relu'\]"),
    case("inverse_softplus(0)", lambda: bayes.inverse_softplus(0.0), ValueError,
         r"inverse_softplus: sigma must be in \(0, inf\), got 0\.0"),
    case("inverse_softplus('a')", lambda: bayes.inverse_softplus("a"), ValueError,
         r"inverse_softplus: sigma must be a number in \(0, inf\), got 'a'"),
    case("PlanarFlow(dim=True)", lambda: flows.PlanarFlow(True, rng()), ValueError,
         r"PlanarFlow: dim must be a positive integer, got True"),
    case("PlanarFlow(init_scale=-1)", lambda: flows.PlanarFlow(2, rng(), init_scale=-1.0), ValueError,
         r"PlanarFlow: init_scale must be in \(0, inf\), got -1\.0"),
]


def _p():
    return Tensor(np.ones(3), requires_grad=True)


OPTIM_CASES = [
    case("SGD(Tensor)", lambda: optim.SGD(_p(), lr=0.1), TypeError,
         r"SGD: params must be an iterable of Tensors; wrap a single"),
    case("SGD(5)", lambda: optim.SGD(5, lr=0.1), TypeError,
         r"SGD: params must be an iterable of Tensors, got int"),
    case("SGD(None)", lambda: optim.SGD(None, lr=0.1), TypeError,
         r"SGD: params must be an iterable of Tensors, got NoneType"),
    case("SGD(Module)", lambda: optim.SGD(_linear(), lr=0.1), TypeError,
         r"SGD: .*got Linear \(for a Module pass module\.parameters\(\)\)"),
    case("SGD([])", lambda: optim.SGD([], lr=0.1), ValueError, r"SGD: got an empty list of parameters"),
    case("SGD([array])", lambda: optim.SGD([np.zeros(2)], lr=0.1), TypeError,
         r"SGD: parameter 0 is a ndarray, not a Tensor"),
    case("SGD([no grad])", lambda: optim.SGD([Tensor([1.0])], lr=0.1), ValueError,
         r"SGD: parameter 0 \(shape \(1,\)\) does not require grad"),
    case("SGD([p, p])", lambda: (lambda p: optim.SGD([p, p], lr=0.1))(_p()), ValueError,
         r"SGD: parameter 1 \(shape \(3,\)\) appears more than once"),
    case("SGD(lr=0)", lambda: optim.SGD([_p()], lr=0.0), ValueError,
         r"SGD: lr must be in \(0\.0, inf\), got 0\.0"),
    case("SGD(lr=nan)", lambda: optim.SGD([_p()], lr=np.nan), ValueError,
         r"SGD: lr must be in \(0\.0, inf\), got nan"),
    case("SGD(lr=inf)", lambda: optim.SGD([_p()], lr=np.inf), ValueError,
         r"SGD: lr must be in \(0\.0, inf\), got inf"),
    case("SGD(lr='0.1')", lambda: optim.SGD([_p()], lr="0.1"), ValueError,
         r"SGD: lr must be a number in \(0\.0, inf\), got '0\.1'"),
    case("SGD(lr=None)", lambda: optim.SGD([_p()], lr=None), ValueError, r"SGD: lr must be a number .*got None"),
    case("SGD(momentum=1)", lambda: optim.SGD([_p()], lr=0.1, momentum=1.0), ValueError,
         r"SGD: momentum must be in \[0\.0, 1\.0\), got 1\.0"),
    case("SGD(momentum=-0.1)", lambda: optim.SGD([_p()], lr=0.1, momentum=-0.1), ValueError,
         r"SGD: momentum must be in \[0\.0, 1\.0\), got -0\.1"),
    case("Adam(lr=-1)", lambda: optim.Adam([_p()], lr=-1.0), ValueError,
         r"Adam: lr must be in \(0\.0, inf\), got -1\.0"),
    case("Adam(lr=1j)", lambda: optim.Adam([_p()], lr=1j), ValueError, r"Adam: lr must be a number .*got 1j"),
    case("Adam(betas=(0.9,))", lambda: optim.Adam([_p()], betas=(0.9,)), ValueError,
         r"Adam: betas must be a pair \(beta1, beta2\), got \(0\.9,\)"),
    case("Adam(betas='ab')", lambda: optim.Adam([_p()], betas="ab"), ValueError,
         r"Adam: betas must be a pair .*got 'ab'"),
    case("Adam(betas[0]=1)", lambda: optim.Adam([_p()], betas=(1.0, 0.999)), ValueError,
         r"Adam: betas\[0\] must be in \[0\.0, 1\.0\), got 1\.0"),
    case("Adam(betas[1]=nan)", lambda: optim.Adam([_p()], betas=(0.9, np.nan)), ValueError,
         r"Adam: betas\[1\] must be in \[0\.0, 1\.0\), got nan"),
    case("Adam(betas[1]=1)", lambda: optim.Adam([_p()], betas=(0.9, 1.0)), ValueError,
         r"Adam: betas\[1\] must be in \[0\.0, 1\.0\), got 1\.0"),
    case("Adam(eps=-1e-8)", lambda: optim.Adam([_p()], eps=-1e-8), ValueError,
         r"Adam: eps must be in \[0\.0, inf\), got -1e-08"),
    case("Adam(foreach='yes')", lambda: optim.Adam([_p()], foreach="yes"), TypeError,
         r"Adam: foreach must be True or False, got 'yes'"),
    case("Adam(foreach=1)", lambda: optim.Adam([_p()], foreach=1), TypeError,
         r"Adam: foreach must be True or False, got 1"),
]


@pytest.mark.parametrize("call, error, match", NN_CASES)
def test_nn(call, error, match):
    expect_error(call, error, match)


@pytest.mark.parametrize("call, error, match", OPTIM_CASES)
def test_optim(call, error, match):
    expect_error(call, error, match)


# =================================================================================================
# VAE, data, viz
def _vae(**options):
    return VAE(**{"x_dim": 6, "hidden": 4, "z_dim": 2, "rng": rng(), **options})


def _x(n=5):
    return (rng(1).random((n, 6)) < 0.5).astype(np.float64)


VAE_CASES = [
    case("VAE(activation='gelu')", lambda: _vae(activation="gelu"), ValueError, r"unknown activation 'gelu'"),
    case("VAE(baseline_decay=1)", lambda: _vae(baseline_decay=1.0), ValueError, r"decay must be in \[0, 1\)"),
    case("VAE(rng=5)", lambda: _vae(rng=5), TypeError, r"rng must be a numpy\.random\.Generator .*got int"),
    case("VAE(x_dim=0)", lambda: _vae(x_dim=0), ValueError, r"VAE: x_dim must be a positive integer, got 0"),
    case("VAE(hidden='3')", lambda: _vae(hidden="3"), ValueError,
         r"VAE: hidden must be a positive integer, got '3'"),
    case("VAE(z_dim=0)", lambda: _vae(z_dim=0), ValueError, r"VAE: z_dim must be a positive integer, got 0"),
    case("VAE(z_dim=2.0)", lambda: _vae(z_dim=2.0), ValueError,
         r"VAE: z_dim must be a positive integer, got 2\.0"),
    case("elbo(x of 5 pixels)", lambda: _vae().elbo(np.zeros((2, 5)), rng()), ValueError,
         r"VAE: input has shape \(2, 5\), expected \(batch, 6\)"),
    case("elbo(0-d x)", lambda: _vae().elbo(1.0, rng()), ValueError,
         r"VAE: input has shape \(\), expected \(batch, 6\)"),
    case("elbo('abc')", lambda: _vae().elbo("abc", rng()), TypeError, rf"VAE input x: {EXPECTED_REAL}"),
    case("elbo(None)", lambda: _vae().elbo(None, rng()), TypeError, rf"VAE input x: {EXPECTED_REAL}.*NoneType"),
    case("elbo(complex x)", lambda: _vae().elbo(np.zeros((2, 6)) + 0j, rng()), TypeError,
         r"VAE input x: .*complex128"),
    case("elbo(estimator='reparam')", lambda: _vae().elbo(_x(), rng(), estimator="reparam"), ValueError,
         r"VAE\.elbo: estimator must be one of \('pathwise', 'score', 'score_nobaseline'\), "
         r"got 'reparam'"),
    case("elbo(estimator=['pathwise'])", lambda: _vae().elbo(_x(), rng(), estimator=["pathwise"]), ValueError,
         r"VAE\.elbo: estimator must be one of .*got \['pathwise'\]"),
    case("elbo(rng=7)", lambda: _vae().elbo(_x(), rng=7), TypeError, r"rng must be a numpy\.random\.Generator"),
    case("elbo(raw pixel counts 0..16)", lambda: _vae().elbo(_x() * 16, rng()), ValueError,
         r"VAE: input pixels must (lie|be) in \[0, 1\]"),
    case("elbo(NaN pixels)", lambda: _vae().elbo(np.where(_x() > 0, np.nan, 0.0), rng()), ValueError,
         r"VAE: input pixels must"),
    case("elbo(empty batch)", lambda: _vae().elbo(np.zeros((0, 6)), rng()), ValueError,
         r"VAE: input has no images"),
    case("iwae_bound(k=0)", lambda: _vae().iwae_bound(_x(), k=0, rng=rng()), ValueError,
         r"iwae_bound: k must be"),
    case("iwae_bound(x of 5 pixels)", lambda: _vae().iwae_bound(np.zeros((2, 5)), k=3, rng=rng()), ValueError,
         r"VAE: input has shape \(2, 5\), expected \(batch, 6\)"),
    case("iwae_bound(rng='r')", lambda: _vae().iwae_bound(_x(), k=3, rng="r"), TypeError,
         r"rng must be a numpy\.random\.Generator"),
    case("iwae_bound(k='a')", lambda: _vae().iwae_bound(_x(), k="a", rng=rng()), ValueError,
         r"iwae_bound: k must be a positive integer, got 'a'"),
    case("iwae_bound(k=2.5)", lambda: _vae().iwae_bound(_x(), k=2.5, rng=rng()), ValueError,
         r"iwae_bound: k must be a positive integer, got 2\.5"),
    case("iwae_bound(chunk=0)", lambda: _vae().iwae_bound(_x(), k=3, chunk=0, rng=rng()), ValueError,
         r"iwae_bound: chunk must be a positive integer, got 0"),
    case("evaluate_elbo(samples=0)", lambda: _vae().evaluate_elbo(_x(), rng(), samples=0), ValueError,
         r"evaluate_elbo: samples must be a positive integer, got 0"),
    case("evaluate_elbo(samples='a')", lambda: _vae().evaluate_elbo(_x(), rng(), samples="a"), ValueError,
         r"evaluate_elbo: samples must be a positive integer, got 'a'"),
    case("sample_prior(-1)", lambda: _vae().sample_prior(-1, rng=rng()), ValueError,
         r"sample_prior: n must be a non-negative integer, got -1"),
    case("sample_prior(2.5)", lambda: _vae().sample_prior(2.5, rng=rng()), ValueError,
         r"sample_prior: n must be a non-negative integer, got 2\.5"),
    case("reconstruct(x of 5 pixels)", lambda: _vae().reconstruct(np.zeros((2, 5))), ValueError,
         r"VAE: input has shape \(2, 5\), expected \(batch, 6\)"),
]

IDX_HEADER_1D = b"\x00\x00\x08\x01\x00\x00\x00"  # ubyte, 1 dimension; the size byte follows

DATA_AND_VIZ_CASES = [
    case("parse_idx(2 bytes)", lambda: data.parse_idx(b"\x00\x00"), ValueError,
         r"IDX data: too short for an IDX header: 2 bytes, need 4"),
    case("parse_idx(bad magic)", lambda: data.parse_idx(b"\x01\x00\x08\x01\x00\x00\x00\x01\x05"), ValueError,
         r"IDX data: not an IDX file: magic number 01 00 08 01 should start 00 00"),
    case("parse_idx(type code 0x07)", lambda: data.parse_idx(b"\x00\x00\x07\x01\x00\x00\x00\x01\x05"), ValueError,
         r"IDX data: unknown IDX type code 0x07"),
    case("parse_idx(truncated)", lambda: data.parse_idx(IDX_HEADER_1D + b"\x02\x05"), ValueError,
         r"IDX data: truncated IDX data: shape \(2,\) .*needs 2 bytes .*got 1"),
    case("parse_idx(extra bytes)", lambda: data.parse_idx(IDX_HEADER_1D + b"\x01\x05\x06"), ValueError,
         r"IDX data: 1 extra bytes after the IDX data"),
    case("parse_idx(bad gzip)", lambda: data.parse_idx(b"\x1f\x8b\x00\x00"), ValueError,
         r"IDX data: damaged or truncated gzip data"),
    case("parse_idx(bytes, name='labels')", lambda: data.parse_idx(b"\x00", name="labels"), ValueError,
         r"labels: too short for an IDX header"),
    case("parse_idx(None)", lambda: data.parse_idx(None), TypeError,
         r"parse_idx: source must be a path .*got NoneType"),
    case("parse_idx(123)", lambda: data.parse_idx(123), TypeError, r"parse_idx: source must be a path .*got int"),
    case("load_mnist(split='val')", lambda: data.load_mnist(split="val", cache_dir=os.devnull), ValueError,
         r"load_mnist: split must be 'train' or 'test', got 'val'"),
    case("load_mnist(split=None)", lambda: data.load_mnist(split=None, cache_dir=os.devnull), ValueError,
         r"load_mnist: split must be 'train' or 'test', got None"),
    case("load_mnist(split='TRAIN')", lambda: data.load_mnist(split="TRAIN", cache_dir=os.devnull), ValueError,
         r"load_mnist: split must be 'train' or 'test', got 'TRAIN'"),
    case("load_mnist(split=['train'])", lambda: data.load_mnist(split=["train"], cache_dir=os.devnull),
         ValueError,
         r"load_mnist: split must be 'train' or 'test', got \['train'\]"),
    case("viz.render('g.pdf')", lambda: viz.render(Tensor(1.0), os.path.join(os.curdir, "g.pdf")), ValueError,
         r"render\(\): cannot write 'g\.pdf': the file name must end in one of \.svg, \.png"),
    case("viz.to_dot('abc')", lambda: viz.to_dot("abc"), TypeError, r"to_dot: expected a Tensor, got str"),
    case("viz.graph_text(None)", lambda: viz.graph_text(None), TypeError,
         r"graph_text: expected a Tensor, got NoneType"),
    case("viz.to_dot(max_values=-1)", lambda: viz.to_dot(Tensor(1.0), max_values=-1), ValueError,
         r"to_dot: max_values must be a non-negative integer, got -1"),
    case("load_digits(raw='yes')", lambda: data.load_digits(raw="yes"), TypeError,
         r"load_digits: raw must be True or False, got 'yes'"),
    case("load_binarized_digits(train_size=True)", lambda: data.load_binarized_digits(train_size=True), ValueError,
         r"load_binarized_digits: train_size must be a positive integer, got True"),
    case("load_binarized_digits(train_size=1797)", lambda: data.load_binarized_digits(train_size=1797), ValueError,
         r"load_binarized_digits: train_size must be in 1\.\.1796 .*got 1797"),
    case("load_binarized_digits(threshold='8')", lambda: data.load_binarized_digits(threshold="8"), ValueError,
         r"load_binarized_digits: threshold must be a number in \[0, 16\], got '8'"),
    case("load_mnist(timeout=0)", lambda: data.load_mnist(timeout=0, cache_dir=os.devnull), ValueError,
         r"load_mnist: timeout \(seconds\) must be in \(0, inf\), got 0"),
    case("energy_distance('abc')", lambda: metrics.energy_distance("abc", np.zeros((3, 2))), TypeError,
         rf"energy_distance: x: {EXPECTED_REAL}"),
    case("energy_distance(unbiased=1)", lambda: metrics.energy_distance(np.zeros((3, 2)), np.ones((3, 2)), unbiased=1),
         TypeError, r"energy_distance: unbiased must be True or False, got 1"),
]


@pytest.mark.parametrize("call, error, match", VAE_CASES)
def test_vae(call, error, match):
    expect_error(call, error, match)


@pytest.mark.parametrize("call, error, match", DATA_AND_VIZ_CASES)
def test_data_and_viz(call, error, match):
    expect_error(call, error, match)


# =================================================================================================
# Edge input that is NOT an error (the package's documented choices), so validation cannot overreach.
def _integer_leaf_is_a_float_parameter():
    x = Tensor([1, 2], requires_grad=True)
    assert x.dtype == np.float64 and x.requires_grad
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])
    assert x.grad.dtype == np.float64


def _bool_and_int32_data_become_float64():
    assert Tensor(np.array([True, False]), requires_grad=True).dtype == np.float64
    assert Tensor(np.array([1, 2], dtype=np.int32)).dtype == np.float64
    assert Tensor(np.ones(2, dtype=np.float32)).dtype == np.float32


def _tensors_may_hold_nan_and_inf():
    x = Tensor([np.nan, np.inf, -np.inf], requires_grad=True)
    assert np.isnan(x.data[0]) and np.isinf(x.data[1:]).all()


def _empty_tensors_reduce():
    assert Tensor(np.zeros(0)).sum().item() == 0.0
    assert Tensor(np.zeros((0, 3))).sum(axis=0).shape == (3,)


def _logsumexp_of_nothing_is_minus_inf():
    # the log of an empty sum of probabilities is log 0 = -inf (as in PyTorch and JAX)
    x = Tensor(np.zeros(0), requires_grad=True)
    out = x.logsumexp()
    assert out.item() == -np.inf
    out.backward()
    assert x.grad.shape == (0,)


def _empty_batch_distribution_draws():
    assert D.Normal(np.zeros(0), 1.0).rsample((2,), rng=rng()).shape == (2, 0)


def _infinite_logits_are_certain_outcomes():
    np.testing.assert_array_equal(D.Bernoulli(logits=[np.inf, -np.inf]).probs.data, [1.0, 0.0])
    assert D.Categorical(logits=[-np.inf, 0.0]).log_prob(0.0).item() == -np.inf


def _numpy_integers_are_integers():
    manual_seed(np.int64(3))
    nn.Linear(np.int64(2), np.int32(3), rng=rng())
    D.Normal(0.0, 1.0).sample(np.int64(2), rng=rng())
    optim.SGD((p for p in [_p()]), lr=0.1)  # any iterable of parameters


ACCEPTED = [
    pytest.param(_integer_leaf_is_a_float_parameter, id="Tensor([1, 2], requires_grad=True) is a float leaf"),
    pytest.param(_bool_and_int32_data_become_float64, id="bool and int32 data become float64, float32 stays"),
    pytest.param(_tensors_may_hold_nan_and_inf, id="a Tensor may hold NaN and inf"),
    pytest.param(_empty_tensors_reduce, id="empty tensors sum to 0"),
    pytest.param(_logsumexp_of_nothing_is_minus_inf, id="logsumexp of an empty tensor is -inf"),
    pytest.param(_empty_batch_distribution_draws, id="a distribution with an empty batch draws empty samples"),
    pytest.param(_infinite_logits_are_certain_outcomes, id="infinite logits mean probabilities 1 and 0"),
    pytest.param(_numpy_integers_are_integers, id="NumPy integers and any iterable of parameters are accepted"),
]


@pytest.mark.parametrize("check", ACCEPTED)
def test_accepted_edge_input(check):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check()


# =================================================================================================
# Nothing half-changed
def _optimizer_snapshot(optimizer):
    return [(p.data.copy(),
             {key: np.array(value, copy=True) for key, value in optimizer.state.get(p, {}).items()})
            for p in optimizer.params]


def _assert_same_snapshot(before, after):
    assert len(before) == len(after)
    for (data_before, state_before), (data_after, state_after) in zip(before, after):
        np.testing.assert_array_equal(data_before, data_after)
        assert state_before.keys() == state_after.keys()
        for key in state_before:
            np.testing.assert_array_equal(state_before[key], state_after[key])


OPTIMIZERS = [
    pytest.param(lambda params: optim.SGD(params, lr=0.1), id="SGD"),
    pytest.param(lambda params: optim.SGD(params, lr=0.1, momentum=0.9), id="SGD-momentum"),
    pytest.param(lambda params: optim.Adam(params, lr=0.1), id="Adam"),
]
BAD_LAST_GRADIENTS = [
    pytest.param(np.array([1.0, np.nan]), r"parameter 2 \(shape \(2,\)\) has a gradient containing NaN",
                 id="NaN"),
    pytest.param(np.array([np.inf, 1.0]),
                 r"parameter 2 \(shape \(2,\)\) has a gradient containing NaN or infinity", id="inf"),
    pytest.param(np.ones(3), r"parameter 2 \(shape \(2,\)\) has a gradient of shape \(3,\)", id="wrong shape"),
    pytest.param([1.0, 2.0], r"parameter 2 \(shape \(2,\)\) has a gradient of type list, not a NumPy array",
                 id="a list"),
]


@pytest.mark.parametrize("make", OPTIMIZERS)
@pytest.mark.parametrize("bad_grad, message", BAD_LAST_GRADIENTS)
def test_failed_step_updates_no_parameter_and_no_buffer(make, bad_grad, message):
    """A bad gradient in the LAST parameter: the first two (fine) are not updated either."""
    params = [Tensor(np.array([1.0, -2.0]), requires_grad=True) for _ in range(3)]
    optimizer = make(params)
    for p in params:  # one good step first, so that momentum and Adam buffers exist
        p.grad = np.array([0.5, -0.25])
    optimizer.step()
    for p in params:
        p.grad = np.array([1.0, 1.0])
    params[2].grad = bad_grad
    before = _optimizer_snapshot(optimizer)
    with pytest.raises(ValueError, match=message + r".*Nothing was updated"):
        optimizer.step()
    _assert_same_snapshot(before, _optimizer_snapshot(optimizer))


def _mlp(seed):
    return nn.MLP([3, 4, 2], rng=rng(seed))


def _assert_parameters_equal(module, state):
    for name, tensor in module.named_parameters():
        np.testing.assert_array_equal(tensor.data, state[name])


@pytest.mark.parametrize("strict", [True, False])
def test_failed_load_state_dict_loads_nothing(strict):
    """Every value but the LAST one fits; none of them may be copied in."""
    model = _mlp(0)
    before = model.state_dict()
    incoming = _mlp(1).state_dict()
    last = list(incoming)[-1]
    incoming[last] = np.zeros(incoming[last].shape + (1,))
    with pytest.raises(ValueError, match=rf"(?s)nothing was loaded.*{re.escape(last)}: shape"):
        model.load_state_dict(incoming, strict=strict)
    _assert_parameters_equal(model, before)


def test_failed_load_from_a_checkpoint_loads_nothing(tmp_path):
    path = tmp_path / "other.npz"
    nn.save(nn.MLP([3, 4, 1], rng=rng(1)), path)  # the same names, the last layer a different shape
    model = _mlp(0)
    before = model.state_dict()
    loaded_nothing = r"(?s)load from .*other\.npz: .*nothing was loaded.*layers\.1\.weight: shape"
    with pytest.raises(ValueError, match=loaded_nothing):
        nn.load(model, path)
    _assert_parameters_equal(model, before)


def test_failed_save_keeps_the_old_checkpoint_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "model.npz"
    nn.save(_mlp(0), path)
    saved = path.read_bytes()
    with pytest.raises(ValueError, match=r"save: parameter names \['file'\] clash"):
        nn.save(_Clash(), path)
    assert path.read_bytes() == saved
    assert os.listdir(tmp_path) == ["model.npz"]


def _failing_calls_that_could_draw():
    """Calls that fail on a bad argument after (or instead of) touching the default generator."""
    normal = D.Normal(np.zeros(3), 1.0)
    return [
        lambda: D.Normal(0.0, -1.0),
        lambda: normal.rsample((2, -1)),
        lambda: normal.sample((-1,)),
        lambda: D.Bernoulli(probs=[0.3]).sample((-2,)),
        lambda: D.Categorical(probs=[0.5, 0.5]).sample((-2,)),
        lambda: D.RelaxedOneHotCategorical(0.5, probs=[0.5, 0.5]).rsample((-1,)),
        lambda: D.Uniform(0.0, 1.0).rsample(None),
        lambda: nn.MLP([3, 4, 0]),
        lambda: nn.Linear(3, 2, dtype=np.int64),
        lambda: VAE(x_dim=4, hidden=3, z_dim=2, activation="gelu"),
        lambda: manual_seed(-1),
        lambda: DE.disarm_surrogate(_phi(), _toy_cost, n_pairs=0),
        lambda: DE.rebar_surrogate(_phi(), _toy_cost, lambda y: y, -1.0, 1.0),
        lambda: DE.NeuralControlVariate((0,)),
    ]


def test_failed_constructions_and_draws_leave_the_default_generator_alone():
    manual_seed(7)
    expected = np.random.default_rng(7).standard_normal(5)
    for call in _failing_calls_that_could_draw():
        with pytest.raises((TypeError, ValueError)):
            call()
    np.testing.assert_array_equal(default_generator().standard_normal(5), expected)


def test_failed_distribution_construction_leaves_its_tensors_alone():
    loc = Tensor([0.0, 1.0], requires_grad=True)
    scale = Tensor([1.0, -1.0], requires_grad=True)
    with pytest.raises(ValueError, match=r"Normal: parameter scale must be positive"):
        D.Normal(loc, scale)
    np.testing.assert_array_equal(loc.data, [0.0, 1.0])
    np.testing.assert_array_equal(scale.data, [1.0, -1.0])
    assert loc.grad is None and scale.grad is None and loc.is_leaf and scale.is_leaf


def test_failed_vae_construction_draws_no_random_numbers():
    manual_seed(7)
    expected = np.random.default_rng(7).standard_normal(5)
    with pytest.raises(ValueError, match=r"decay must be in \[0, 1\)"):
        VAE(x_dim=4, hidden=3, z_dim=2, baseline_decay=1.5)
    np.testing.assert_array_equal(default_generator().standard_normal(5), expected)


def test_gradient_samples_checks_exact_before_drawing():
    generator = rng(3)
    state = generator.bit_generator.state
    with pytest.raises(ValueError, match=r"exact must give one gradient per parameter"):
        E.gradient_samples(_factory, _cost, _params(), repeats=2, exact=[np.zeros(3)], rng=generator)
    assert generator.bit_generator.state == state


def test_failed_baseline_update_keeps_the_average():
    baseline = E.MovingAverageBaseline(0.5)
    baseline.update([1.0, 3.0])
    with pytest.raises(ValueError, match=r"mean cost is nan"):
        baseline.update([np.nan, 1.0])
    assert baseline.value == 2.0
    assert baseline.update(4.0) == 3.0


def test_failed_score_elbo_keeps_the_baseline():
    model = _vae()
    model.elbo(_x(), rng(), estimator="score")
    value = model.baseline.value
    with pytest.raises(ValueError, match=r"(?i)nan"):
        model.elbo(np.where(_x() > 0, np.nan, 0.0), rng(), estimator="score")
    assert model.baseline.value == value


def test_failed_estimate_gradient_restores_the_gradients():
    params = _params()
    kept = [np.full(3, 7.0), None]
    params[0].grad, params[1].grad = kept
    with pytest.raises(ValueError, match=r"cost_fn must return one cost per draw"):
        E.estimate_gradient(_factory, lambda z: z, params, n_samples=2, rng=rng())
    assert params[0].grad is kept[0] and params[1].grad is None


def test_failed_backward_leaves_the_graph_and_the_gradients_alone():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = x * x
    with pytest.raises(ValueError, match=r"backward\(grad=\.\.\.\): grad has shape \(3,\)"):
        y.backward(np.ones(3))
    assert x.grad is None and not y.is_freed
    y.backward(np.ones(2))  # the graph is still whole
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])


def test_backward_through_a_freed_graph_touches_no_gradient():
    x = Tensor([1.0, 2.0], requires_grad=True)
    w = Tensor([3.0, 4.0], requires_grad=True)
    y = x * 2.0
    y.sum().backward()  # frees y's graph
    np.testing.assert_array_equal(x.grad, [2.0, 2.0])
    with pytest.raises(RuntimeError, match=r"backward\(\) through a graph that was already freed.*retain_graph"):
        (y * w).sum().backward()  # w would be reached first, but nothing may be accumulated
    np.testing.assert_array_equal(x.grad, [2.0, 2.0])
    assert w.grad is None


def test_failed_gradcheck_leaves_the_inputs_alone():
    x = Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match=r"gradcheck: fn must return a Tensor"):
        gradcheck(lambda t: t.data * 2, [x])
    np.testing.assert_array_equal(x.data, [1.0, 2.0])
    assert x.grad is None
