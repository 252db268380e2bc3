"""The Tensor: a NumPy array that remembers how it was made.

Reverse-mode automatic differentiation in one idea: every operation records its inputs
(``parents``) and, for each input, a function that turns the gradient of the output into the
gradient of that input (its vector-Jacobian product, VJP). ``backward()`` then walks the recorded
graph from the output back to the leaves, applying the chain rule

    dL/d(input) = VJP(dL/d(output)) = dL/d(output) . d(output)/d(input)

node by node, and adding up the contributions of every path (a tensor used twice gets the sum of
both gradients). The primitives themselves live in ``ops.py``; this file holds the node, the
backward pass, ``no_grad`` and ``unbroadcast``, the one place where broadcasting is undone.

Conventions, as in PyTorch:

- ``.grad`` is filled in on leaves (tensors you created with ``requires_grad=True``) and it
  *accumulates* across backward calls: call ``zero_grad`` (or set ``.grad = None``) between steps.
  Intermediate tensors keep ``.grad = None`` unless you call ``retain_grad()`` on them.
- After ``backward()`` the graph is released: each op forgets its inputs and the values its VJP
  saved, so intermediate tensors you do not hold yourself are freed at once (as in PyTorch),
  and a second backward through the same graph raises. Pass ``retain_graph=True`` to keep the
  graph (to backpropagate again, or to draw it with its gradients afterwards).
- float64 by default; float32 input stays float32 through forward and backward.
"""
from __future__ import annotations

import functools
from typing import Callable, Optional, Sequence

import numpy as np

from tinygrad_reparam.anomaly import _AnomalyMode, check_forward, check_gradient, creation_site

VJP = Callable[[np.ndarray], np.ndarray]

# Marks a node whose graph was released by backward(): it had inputs, but no longer knows them.
FREED = ("freed by backward()",)


class _GradMode:
    """Whether new operations record a graph (switched off inside ``no_grad``)."""

    enabled = True


class no_grad:
    """Context manager (and decorator) that stops recording the graph.

    Inside ``with no_grad():`` results never require grad, so no graph is kept in memory:
    use it for evaluation and for parameter updates. As a decorator write ``@no_grad()``.
    The previous mode is restored on exit, even when an exception escapes.
    """

    def __init__(self, *args):
        if args:
            raise TypeError(
                "no_grad takes no arguments: write `with no_grad():` or decorate with "
                "`@no_grad()` (with parentheses)"
            )
        self._previous: list[bool] = []

    def __enter__(self) -> "no_grad":
        self._previous.append(_GradMode.enabled)
        _GradMode.enabled = False
        return self

    def __exit__(self, *exc_info) -> None:
        _GradMode.enabled = self._previous.pop()

    def __call__(self, func: Callable) -> Callable:
        @functools.wraps(func)
        def without_grad(*args, **kwargs):
            with no_grad():
                return func(*args, **kwargs)

        return without_grad


def is_grad_enabled() -> bool:
    """True unless inside a ``no_grad()`` block."""
    return _GradMode.enabled


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum ``grad`` down to ``shape``: the adjoint of NumPy broadcasting.

    If ``x`` of shape ``shape`` was broadcast to ``grad.shape`` in the forward pass, every copy of
    an element received its own gradient; the element's gradient is their sum. So we sum over the
    leading axes that broadcasting added and over the axes where ``shape`` has size 1.
    This is the only place in the engine where broadcasting is undone.
    """
    if grad.shape == shape:
        return grad
    extra_leading_axes = grad.ndim - len(shape)
    if extra_leading_axes > 0 and grad.shape[extra_leading_axes:] == shape:
        # only leading axes were added (a bias added to a batch, say): sum them away
        return grad.sum(axis=tuple(range(extra_leading_axes)))
    if len(shape) > grad.ndim or any(s != 1 and s != g for s, g in zip(reversed(shape), reversed(grad.shape))):
        raise ValueError(f"unbroadcast: a gradient of shape {grad.shape} cannot be summed to shape {shape}: "
                         f"{shape} does not broadcast to {grad.shape}")
    if extra_leading_axes > 0:
        grad = grad.sum(axis=tuple(range(extra_leading_axes)))
    stretched_axes = tuple(
        axis for axis, size in enumerate(shape) if size == 1 and grad.shape[axis] != 1
    )
    if stretched_axes:
        grad = grad.sum(axis=stretched_axes, keepdims=True)
    return grad.reshape(shape)


def as_array(value, what: str = "value") -> np.ndarray:
    """Convert user input to a float ndarray: ints and bools become float64, floats keep their
    precision. Strings, objects, complex numbers and Tensors-with-grad get a TypeError."""
    if isinstance(value, Tensor):
        return value.data
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{what}: cannot convert {type(value).__name__} to an array: {error}") from None
    if array.dtype.kind == "f":
        return array
    if array.dtype.kind in "iub":
        return array.astype(np.float64)
    raise TypeError(
        f"{what}: expected real numbers (a number, list or NumPy array of floats, ints or bools), "
        f"got {type(value).__name__} with dtype {array.dtype}"
    )


class Tensor:
    """An n-dimensional array with an optional gradient and the record of how it was made.

    ``Tensor(data, requires_grad=False)``: ``data`` is a number, list or NumPy array; integers and
    bools become float64, float32 stays float32. Set ``requires_grad=True`` on the leaves you want
    gradients for (parameters); results of operations on them require grad automatically.
    """

    # __slots__ keeps each graph node small and attribute access fast (many nodes per step).
    __slots__ = ("data", "grad", "requires_grad", "name", "_parents", "_vjps", "_op", "_note",
                 "_retains_grad", "_cuts", "_cut_from", "_created_at", "__weakref__")
    # NumPy must not treat a Tensor as an array inside its own operators: `array * tensor`
    # then falls through to Tensor.__rmul__ and stays in the graph.
    __array_ufunc__ = None

    def __init__(self, data, requires_grad: bool = False, name: Optional[str] = None):
        self.data = as_array(data, "Tensor data")
        self.grad: Optional[np.ndarray] = None
        if not isinstance(requires_grad, (bool, np.bool_)):
            raise TypeError(f"Tensor: requires_grad must be True or False, got {requires_grad!r}")
        self.requires_grad = bool(requires_grad)
        self.name = name  # optional label for graph pictures, e.g. "mu" or "eps ~ N(0, 1)"
        self._parents: tuple = ()
        self._vjps: Optional[tuple] = None
        self._op = "leaf"
        self._note = None
        self._retains_grad = False
        self._cuts: tuple = ()
        self._cut_from: tuple = ()
        self._created_at = creation_site() if _AnomalyMode.enabled else None

    # ----------------------------------------------------------------------------------------
    # Properties and conversions
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def op(self) -> str:
        """Name of the operation that made this tensor ("leaf" for tensors you created)."""
        return self._op

    @property
    def parents(self) -> tuple:
        """The tensors this one was computed from (empty for leaves)."""
        return self._parents

    @property
    def is_leaf(self) -> bool:
        """True for tensors you created (and results that record no graph)."""
        return self._vjps is None

    @property
    def is_freed(self) -> bool:
        """True once backward() has released the graph that made this tensor."""
        return self._vjps is FREED

    @property
    def display_parents(self) -> tuple:
        """For a stochastic node made by ``sample()``: the distribution's parameters it was drawn
        from. They are kept for pictures only; no gradient flows along these edges (the cut)."""
        return self._cut_from

    @property
    def cut_nodes(self) -> list:
        """The ``sample()`` nodes upstream of this tensor whose parameters require grad: places
        where a gradient path to those parameters is cut. Empty when nothing is cut."""
        return list(self._cuts)

    def item(self) -> float:
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, this one has shape {self.shape}")
        return self.data.item()

    def numpy(self) -> np.ndarray:
        """The underlying array (shared, not copied)."""
        return self.data

    def detach(self) -> "Tensor":
        """Same values, no history: gradients do not flow back through the result."""
        out = from_op("detach", self.data, (), ())
        out._note = "it was made by detach(), which cuts the graph on purpose"
        out._cuts = ()  # a deliberate cut is not reported as a lost gradient
        return out

    def retain_grad(self) -> "Tensor":
        """Ask backward() to store this intermediate tensor's gradient in ``.grad`` too."""
        if not self.requires_grad:
            raise RuntimeError(f"retain_grad() on a tensor that does not require grad: "
                               f"{self._no_grad_reason()}")
        self._retains_grad = True
        return self

    def zero_grad(self) -> None:
        self.grad = None

    def __array__(self, dtype=None, copy=None):
        if self.requires_grad:
            raise TypeError(
                "this Tensor requires grad, so turning it into a NumPy array would silently drop "
                "its graph: use tensor.detach().numpy() for the values, or tinygrad_reparam.stack "
                "to combine Tensors"
            )
        return self.data if dtype is None else self.data.astype(dtype)

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __bool__(self) -> bool:
        return bool(self.data)

    def __repr__(self) -> str:
        values = np.array2string(self.data, precision=4, threshold=8, edgeitems=2, separator=", ",
                                 prefix="Tensor(")
        extras = []
        if self._op != "leaf":
            extras.append(f"op={self._op}")
        if self.requires_grad:
            extras.append("requires_grad=True")
        if self.data.dtype != np.float64:
            extras.append(f"dtype={self.data.dtype}")
        return f"Tensor({values}{''.join(', ' + e for e in extras)})"

    # ----------------------------------------------------------------------------------------
    # The backward pass
    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Fill ``.grad`` of every leaf this tensor depends on with d(self)/d(leaf).

        ``grad`` is the gradient of some final scalar with respect to ``self``; it may be left out
        only when ``self`` has one element (it is then 1). Leaves accumulate: their new gradient
        is added to whatever ``.grad`` already holds.
        """
        if not self.requires_grad:
            if self._cuts:
                raise RuntimeError(_cut_message(self))
            raise RuntimeError(self._why_no_graph())
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward() without a grad argument needs a scalar, but this tensor has shape "
                    f"{self.shape}: reduce it first (e.g. .sum() or .mean()), or pass "
                    f"grad=<array of shape {self.shape}>"
                )
            grad = np.ones_like(self.data)
        else:
            grad = as_array(grad, "backward(grad=...)").astype(self.dtype, copy=False)
            if grad.shape != self.shape:
                raise ValueError(f"backward(grad=...): grad has shape {grad.shape} but the tensor has "
                                 f"shape {self.shape}; they must match")

        order = _topological_order(self)
        check_anomalies = _AnomalyMode.enabled  # detect_anomaly(): see anomaly.py
        grads = {self: grad}  # gradients waiting for their node; each node is summed before use
        while order:  # outputs before inputs
            # pop() drops the list's reference: once its consumers have released it (below), a
            # node (and its value) is freed as soon as it is processed, unless the caller holds it
            node = order.pop()
            node_grad = grads.pop(node)
            vjps = node._vjps
            if vjps is None:  # a leaf: accumulate into .grad, out of place
                node.grad = _accumulate(node.grad, node_grad, node.data.dtype)
                continue
            if node._retains_grad:
                node.grad = _accumulate(node.grad, node_grad, node.data.dtype)
            for parent, vjp in zip(node._parents, vjps):
                if not parent.requires_grad:  # a constant: its VJP is never called
                    continue
                parent_grad = vjp(node_grad)
                if parent_grad.shape != parent.data.shape:  # (skips a call in the common case)
                    parent_grad = unbroadcast(parent_grad, parent.data.shape)
                if check_anomalies:
                    check_gradient(node, parent, parent_grad)
                if parent in grads:  # a second path to the same tensor: add the contributions
                    grads[parent] = grads[parent] + parent_grad
                else:
                    grads[parent] = parent_grad
            if not retain_graph:  # release the inputs and the arrays the VJPs saved
                node._parents = ()
                node._vjps = FREED

    def _no_grad_reason(self) -> str:
        if self._note:
            return self._note
        if self._op in ("leaf", "constant"):
            return "it is a leaf created with requires_grad=False"
        return "none of the tensors it was computed from requires grad"

    def _why_no_graph(self) -> str:
        return (
            f"backward() called on a tensor that does not require grad ({self._op}, shape "
            f"{self.shape}): {self._no_grad_reason()}. Create the inputs you want gradients for with "
            f"Tensor(..., requires_grad=True), outside any no_grad() block."
        )

    # ----------------------------------------------------------------------------------------
    # Operators and methods: thin wrappers around the primitives in ops.py
    def __add__(self, other): return _ops.add(self, other)
    def __radd__(self, other): return _ops.add(other, self)
    def __sub__(self, other): return _ops.sub(self, other)
    def __rsub__(self, other): return _ops.sub(other, self)
    def __mul__(self, other): return _ops.mul(self, other)
    def __rmul__(self, other): return _ops.mul(other, self)
    def __truediv__(self, other): return _ops.div(self, other)
    def __rtruediv__(self, other): return _ops.div(other, self)
    def __pow__(self, other): return _ops.pow(self, other)
    def __rpow__(self, other): return _ops.pow(other, self)
    def __matmul__(self, other): return _ops.matmul(self, other)
    def __rmatmul__(self, other): return _ops.matmul(other, self)
    def __neg__(self): return _ops.neg(self)
    def __getitem__(self, index): return _ops.getitem(self, index)

    # Comparisons give plain boolean arrays (no gradient): use them as masks, e.g. in where().
    def __lt__(self, other): return self.data < _value(other)
    def __le__(self, other): return self.data <= _value(other)
    def __gt__(self, other): return self.data > _value(other)
    def __ge__(self, other): return self.data >= _value(other)

    def exp(self): return _ops.exp(self)
    def log(self): return _ops.log(self)
    def log1p(self): return _ops.log1p(self)
    def expm1(self): return _ops.expm1(self)
    def sqrt(self): return _ops.sqrt(self)
    def tanh(self): return _ops.tanh(self)
    def sigmoid(self): return _ops.sigmoid(self)
    def relu(self): return _ops.relu(self)
    def softplus(self): return _ops.softplus(self)
    def abs(self): return _ops.abs(self)
    def sin(self): return _ops.sin(self)
    def cos(self): return _ops.cos(self)

    def sum(self, axis=None, keepdims: bool = False): return _ops.sum(self, axis, keepdims)
    def mean(self, axis=None, keepdims: bool = False): return _ops.mean(self, axis, keepdims)
    def max(self, axis=None, keepdims: bool = False): return _ops.max(self, axis, keepdims)
    def min(self, axis=None, keepdims: bool = False): return _ops.min(self, axis, keepdims)
    def logsumexp(self, axis=None, keepdims: bool = False): return _ops.logsumexp(self, axis, keepdims)
    def softmax(self, axis: int = -1): return _ops.softmax(self, axis)
    def log_softmax(self, axis: int = -1): return _ops.log_softmax(self, axis)
    def reshape(self, *shape): return _ops.reshape(self, *shape)
    def transpose(self, *axes): return _ops.transpose(self, *axes)
    def clip(self, lo=None, hi=None): return _ops.clip(self, lo, hi)

    @property
    def T(self): return _ops.transpose(self)


def _value(x):
    """The raw array behind a Tensor, or x as a real array (for comparisons)."""
    return x.data if isinstance(x, Tensor) else as_array(x, "comparison operand")


def stochastic_node(op: str, data, distribution_parameters: Sequence[Tensor]) -> Tensor:
    """The result of ``sample()``: a value drawn from a distribution, with no gradient path.

    The graph is cut here on purpose: the result does not require grad. The distribution's
    parameters are remembered as ``display_parents`` so pictures can draw the cut edge, and if any
    of them requires grad the node is recorded as a cut on everything computed from it
    (``cut_nodes``), so that ``backward()`` can say where the gradient was lost.
    """
    out = from_op(op, data, (), ())
    out._cut_from = tuple(p for p in distribution_parameters if isinstance(p, Tensor))
    if _GradMode.enabled and any(p.requires_grad for p in out._cut_from):
        out._cuts = (out,)
    out._note = f"it was drawn by {op}(), which cuts the graph"
    return out


def _cut_message(tensor: Tensor) -> str:
    names = ", ".join(f"{cut._op} (shape {cut.shape})" for cut in tensor._cuts)
    return (
        f"backward() called on a tensor ({tensor._op}, shape {tensor.shape}) whose every path to "
        f"the parameters runs through a sample() node: {names}. sample() draws a value without a "
        f"gradient path, so no gradient can reach the distribution's parameters. Use rsample() for "
        f"a pathwise (reparameterized) gradient, z = loc + scale * eps, or a score-function "
        f"estimator (tinygrad_reparam.estimators.score_function_surrogate) for distributions "
        f"without rsample."
    )


def from_op(op: str, data, parents: Sequence[Tensor], vjps: Sequence[VJP]) -> Tensor:
    """Record the result of a primitive: its value, its inputs and one VJP per input.

    ``vjps[i]`` maps the gradient of the output (same shape as ``data``) to the gradient of
    ``parents[i]``; it may return a broadcast shape, which ``backward`` sums back down with
    ``unbroadcast``. VJPs run only for inputs that require grad. Every primitive in ``ops.py`` is
    built with this function, and so can your own (check it with ``gradcheck``).
    """
    # This runs once per operation, so it is written flat: no helper calls, one loop.
    out = Tensor.__new__(Tensor)
    # 0-d results of NumPy arithmetic come back as NumPy scalars; keep .data an ndarray.
    out.data = data if type(data) is np.ndarray else np.asarray(data)
    out.grad = None
    out.name = None
    out._op = op
    out._retains_grad = False
    out._cut_from = ()
    out._created_at = None
    if type(parents) is not tuple:
        parents = tuple(parents)
    any_parent_requires_grad = False
    cuts = ()  # the sample() nodes upstream (see stochastic_node)
    for parent in parents:
        if parent.requires_grad:
            any_parent_requires_grad = True
        if parent._cuts:
            cuts += tuple(cut for cut in parent._cuts if cut not in cuts)
    grad_enabled = _GradMode.enabled
    out._cuts = cuts if grad_enabled else ()
    if grad_enabled and any_parent_requires_grad:
        if type(vjps) is not tuple:
            vjps = tuple(vjps)
        if len(vjps) != len(parents):
            raise ValueError(f"from_op({op!r}): got {len(parents)} parents but {len(vjps)} VJPs; "
                             f"give exactly one VJP per parent, in the same order")
        out.requires_grad = True
        out._parents = parents
        out._vjps = vjps
        out._note = None
    else:  # nothing to differentiate: keep no graph, but remember why for the error message
        out.requires_grad = False
        out._parents = parents if out._cuts else ()  # downstream of a cut: kept for display
        out._vjps = None
        out._note = None if grad_enabled or not parents else "it was computed inside a no_grad() block"
    if _AnomalyMode.enabled and parents:  # detect_anomaly(): see anomaly.py
        out._created_at = creation_site()
        check_forward(out)
    return out


def _accumulate(previous: Optional[np.ndarray], grad: np.ndarray, dtype) -> np.ndarray:
    """New gradient array = previous + grad, never written in place (grad may be shared)."""
    if previous is None:
        return np.array(grad, dtype=dtype)  # a copy: the caller's array stays the caller's
    return (previous + grad).astype(dtype, copy=False)


def _topological_order(root: Tensor) -> list:
    """Nodes that require grad, each after all of its parents (iterative depth-first search).

    No recursion, so graphs of millions of nodes are fine; each node and edge is visited once.
    When a node is first popped, it goes back on the stack with a ``None`` marker above it and
    its parents above that; when the marker comes off again, every parent has been placed, so
    the node below it is. (A marker instead of (node, flag) pairs: no tuple per node, which
    makes this loop twice as fast.)
    Raises before any gradient is touched if part of the graph was already freed.
    """
    order: list = []
    visited: set = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if node is None:  # the marker: the node below it has all of its parents placed
            order.append(stack.pop())
            continue
        if node in visited:
            continue
        visited.add(node)
        if node._vjps is FREED:
            raise RuntimeError(
                f"backward() through a graph that was already freed: the {node._op!r} node "
                f"(shape {node.shape}) released its saved values in an earlier backward(). "
                f"Pass retain_graph=True to the first backward() to backpropagate through the same "
                f"graph twice, or recompute the forward pass."
            )
        stack.append(node)
        stack.append(None)
        for parent in node._parents:
            if parent.requires_grad and parent not in visited:
                stack.append(parent)
    return order


from tinygrad_reparam import ops as _ops  # noqa: E402  (ops.py needs Tensor, defined above)
