"""Fused forms: the same values and gradients as a composed operation, in fewer steps.

``composed.linear`` is ``x @ weight + bias``: two nodes, and the sum allocates a second array the
size of the layer's output. Here the same layer is one primitive that adds the bias in place, so
each layer costs one node and one array, and the backward pass one fewer step. On the small
models this library is for, per-node costs and fresh arrays are a large share of a training
step, so ``nn.Linear`` uses this form.

The plain composed form is the one to read; this one is tested against it (``tests/
test_fused.py``): values and gradients bit for bit where the arithmetic is the same, and to
1e-15 relative where the order of a sum differs (a batch with several leading axes).
"""
from __future__ import annotations

import math

import numpy as np

from tinygrad_reparam import checks
from tinygrad_reparam.ops import lift, operands, pass_through
from tinygrad_reparam.tensor import Tensor, from_op


def linear(x, weight, bias=None) -> Tensor:
    """x @ weight + bias as one primitive; same arguments and result as ``composed.linear``.

    The rows of ``x`` flattened to a matrix X (all leading axes are batch axes), the weight W and
    the output gradient G flattened alike: dL/dX = G W^T, dL/dW = X^T G, dL/db = sum of G's rows.
    The weight's gradient is that one matrix product, which contracts the batch as it multiplies
    (so nothing needs unbroadcasting); the bias's rows are summed by ``unbroadcast``, as in
    ``composed.linear``.
    """
    x, weight = lift(x, weight), lift(weight, x)
    bias = None if bias is None else lift(bias, weight)
    checks.linear(x.shape, weight.shape, None if bias is None else bias.shape)
    in_features, out_features = weight.shape
    rows = math.prod(x.shape[:-1])  # examples in the batch, all batch axes together
    out = x.data @ weight.data
    parents = [x, weight]
    vjps = [
        lambda g: g @ weight.data.T,  # d(xW + b)/dx = W^T
        lambda g: x.data.reshape(rows, in_features).T @ g.reshape(rows, out_features),  # x^T g
    ]
    if bias is not None:
        if np.result_type(out, bias.data) == out.dtype:
            out += bias.data  # in place: `out` is a fresh array that nobody else holds
        else:
            out = out + bias.data  # (a wider bias dtype widens the result, as in NumPy)
        parents.append(bias)
        vjps.append(pass_through)  # d(xW + b)/db = 1, summed over the batch by unbroadcast
    return from_op("linear", out, tuple(parents), tuple(vjps))


def binary_cross_entropy_with_logits(logits, targets) -> Tensor:
    """softplus(l) - t l as one primitive; same result as ``composed.binary_cross_entropy_with_logits``.

    d/dl = sigmoid(l) - t and d/dt = -l, both from e = e^-|l|, computed once in the forward pass.
    """
    logits, targets = operands("binary_cross_entropy_with_logits", logits, targets)
    e = np.exp(-np.abs(logits.data))
    out = np.maximum(logits.data, 0) + np.log1p(e) - targets.data * logits.data
    return from_op("bce_with_logits", out, (logits, targets), (
        lambda g: g * (np.where(logits.data >= 0, 1.0, e) / (1.0 + e) - targets.data),  # s(l) - t
        lambda g: -g * logits.data,                                                    # -l
    ))


def tanh(a: Tensor) -> Tensor:
    """tanh with the VJP of ``ops.tanh``, g * (1 - tanh(a)^2), computed into one new array.

    Written plainly, the VJP makes three arrays (out * out, 1 - that, g * that). In an MLP these
    are the largest arrays of the backward pass, and past about 128 KB each fresh array is fresh
    memory from the operating system (page faults), so ``nn.MLP`` uses this form. The result
    keeps tanh's dtype, as gradients do in PyTorch; with g of the same dtype it is bit for bit
    ``ops.tanh``'s (the same three roundings, in the same order).
    """
    out = np.tanh(a.data)

    def vjp(g):  # d(tanh a)/da = 1 - tanh(a)^2
        grad = np.multiply(out, out, out=np.empty(out.shape, out.dtype))  # (an array even if 0-d)
        np.subtract(1.0, grad, out=grad)
        grad *= g
        return grad

    return from_op("tanh", out, (a,), (vjp,))
