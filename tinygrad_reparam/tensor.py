"""The Tensor: a NumPy array that remembers how it was made.

Reverse-mode automatic differentiation in one idea: every operation records its inputs
(``parents``) and, for each input, a function that turns the gradient of the output into the
gradient of that input (its vector-Jacobian product, VJP). ``backward()`` then walks the recorded
graph from the output back to the leaves, applying the chain rule

    dL/d(input) = VJP(dL/d(output)) = dL/d(output) . d(output)/d(input)

node by node, and adding up the contributions of every path (a tensor used twice gets the sum of
both gradients). This file holds the node, ``from_op`` (how a primitive records itself), the
backward pass and ``unbroadcast``, the one place where broadcasting is undone. The
primitives live in ``ops.py``, which also gives Tensor its operators and methods.

Conventions, as in PyTorch:

- ``.grad`` is filled in on leaves (tensors you created with ``requires_grad=True``) and it
  *accumulates* across backward calls: call ``zero_grad`` (or set ``.grad = None``) between steps.
  Intermediate tensors keep ``.grad = None`` unless you call ``retain_grad()`` on them.
- After ``backward()`` the graph is released: each op forgets its inputs and the values its VJP
  saved, so intermediate tensors you do not hold yourself are freed at once, and a second
  backward through the same graph raises. Pass ``retain_graph=True`` to keep the graph (to
  backpropagate again, or to draw it with its gradients afterwards).
- float64 by default; float32 input stays float32 through forward and backward.

Beside it: ``grad_mode.py`` (``no_grad``, which switches the recording off), ``checks.py``
(argument checks and error messages), ``cuts.py`` (the record of where ``sample()`` cut the
graph, which only explains missing gradients) and ``anomaly.py`` (``detect_anomaly``).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from tinygrad_reparam import anomaly, checks
from tinygrad_reparam.anomaly import AnomalyMode
from tinygrad_reparam.cuts import carry_cuts
from tinygrad_reparam.grad_mode import GradMode, is_grad_enabled, no_grad  # noqa: F401 (re-exported)


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum ``grad`` down to ``shape``: the adjoint of NumPy broadcasting.

    If ``x`` of shape ``shape`` was broadcast to ``grad.shape`` in the forward pass, every copy of
    an element received its own gradient; the element's gradient is their sum. So we sum over the
    leading axes that broadcasting added and over the axes where ``shape`` has size 1.
    """
    if grad.shape == shape:
        return grad
    checks.unbroadcastable(grad.shape, shape)
    added = grad.ndim - len(shape)
    leading = tuple(range(added))  # the axes broadcasting added in front
    stretched = tuple(added + axis for axis, size in enumerate(shape)  # the size-1 axes it stretched
                      if size == 1 and grad.shape[added + axis] != 1)
    return grad.sum(axis=leading + stretched).reshape(shape)


class Tensor:
    """An n-dimensional array with an optional gradient and the record of how it was made.

    ``Tensor(data, requires_grad=False, name=None)``: ``data`` is a number, list or NumPy array;
    integers and bools become float64, float32 stays float32. Set ``requires_grad=True`` on the
    leaves you want gradients for (parameters); results of operations on them require grad.
    ``name`` labels the tensor in pictures of the graph (``viz``).
    """

    # Every node has these (slots keep the many nodes of a training step small and fast) ...
    __slots__ = ("data", "grad", "requires_grad", "op", "parents", "vjps", "is_freed",
                 "__dict__", "__weakref__")
    # ... and a few nodes have these, which otherwise stay at their class-level defaults.
    name: Optional[str] = None
    retains_grad = False     # retain_grad() asked backward() to fill .grad of this intermediate
    why_no_grad: Optional[str] = None  # made by sample(), detach() or inside no_grad()
    cuts: tuple = ()         # the sample() nodes upstream that cut a gradient path (cuts.py)
    display_parents: tuple = ()  # a sample() node's parameters, drawn dashed by viz (cuts.py)
    created_at: Optional[str] = None  # the user's line that made it, under detect_anomaly()

    # NumPy must not treat a Tensor as an array inside its own operators: `array * tensor`
    # then falls through to Tensor.__rmul__ and stays in the graph.
    __array_ufunc__ = None

    def __init__(self, data, requires_grad: bool = False, name: Optional[str] = None):
        if type(data) is not np.ndarray or data.dtype.kind != "f":  # (what every primitive makes)
            data = checks.float_array(data, "Tensor data")  # ints and bools become float64
        self.data = data
        self.grad: Optional[np.ndarray] = None
        if requires_grad is not False:  # (checked: True, or a NumPy bool)
            requires_grad = checks.flag(requires_grad, "Tensor: requires_grad")
        self.requires_grad = requires_grad
        self.op = "leaf"         # the operation that made it
        self.parents: tuple = ()  # its inputs ...
        self.vjps: Optional[tuple] = None  # ... and one VJP per input; None: no graph recorded
        self.is_freed = False    # set when backward() releases parents and VJPs
        if name is not None:
            self.name = name
        if AnomalyMode.enabled:
            self.created_at = anomaly.creation_site()

    # ----------------------------------------------------------------------------------------
    # The backward pass
    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Fill ``.grad`` of every leaf this tensor depends on with d(self)/d(leaf).

        ``grad`` is the gradient of some final scalar with respect to ``self``; it may be left out
        only when ``self`` has one element (it is then 1). Leaves accumulate: their new gradient
        is added to whatever ``.grad`` already holds.
        """
        grads = {self: checks.backward_start(self, grad)}  # gradients waiting for their node
        order = topological_order(self)
        check_anomalies = AnomalyMode.enabled  # detect_anomaly(): see anomaly.py
        while order:
            node = order.pop()  # outputs before inputs; popped, so it is freed once processed
            node_grad = grads.pop(node)  # complete: every path into it has been added
            if node.vjps is None:  # a leaf: store the gradient, added to earlier passes' ones
                node.grad = accumulate(node.grad, node_grad, node.data.dtype)
                continue
            if node.retains_grad:
                node.grad = accumulate(node.grad, node_grad, node.data.dtype)
            for parent, vjp in zip(node.parents, node.vjps):
                if not parent.requires_grad:  # a constant: its VJP is never called
                    continue
                parent_grad = vjp(node_grad)  # the chain rule, one edge
                if parent_grad.shape != parent.data.shape:  # the input was broadcast
                    parent_grad = unbroadcast(parent_grad, parent.data.shape)
                if check_anomalies:
                    anomaly.check_gradient(node, parent, parent_grad)
                if parent in grads:  # a second path to the same tensor: add the contributions
                    parent_grad = grads[parent] + parent_grad
                grads[parent] = parent_grad
            if not retain_graph:  # release the inputs and the arrays the VJPs saved
                node.parents, node.vjps, node.is_freed = (), (), True

    def retain_grad(self) -> "Tensor":
        """Ask backward() to store this intermediate tensor's gradient in ``.grad`` too."""
        if not self.requires_grad:
            raise checks.retain_grad_error(self)
        self.retains_grad = True
        return self

    def zero_grad(self) -> None:
        self.grad = None

    def detach(self) -> "Tensor":
        """Same values, no history: gradients do not flow back through the result."""
        out = from_op("detach", self.data, (), ())
        out.why_no_grad = "it was made by detach(), which cuts the graph on purpose"
        return out

    # ----------------------------------------------------------------------------------------
    # Properties, conversions and comparisons
    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    size = property(lambda self: self.data.size)
    dtype = property(lambda self: self.data.dtype)

    @property
    def is_leaf(self) -> bool:
        """True for tensors you created, and results that record no graph."""
        return self.vjps is None

    @property
    def cut_nodes(self) -> list:
        """The ``sample()`` nodes upstream whose parameters require grad: places where a gradient
        path to those parameters is cut (see cuts.py). Empty when nothing is cut."""
        return list(self.cuts)

    def item(self) -> float:
        if self.data.size != 1:
            raise checks.item_error(self.shape)
        return self.data.item()

    def numpy(self) -> np.ndarray:
        """The underlying array (shared, not copied)."""
        return self.data

    def __array__(self, dtype=None, copy=None):
        if self.requires_grad:  # NumPy would silently drop the graph
            raise checks.array_conversion_error()
        return self.data if dtype is None else self.data.astype(dtype)

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __bool__(self) -> bool:
        return bool(self.data)

    # Comparisons give plain boolean arrays (no gradient): masks, e.g. for where() or indexing.
    # == and != follow NumPy (elementwise; anything that is not a number is simply unequal).
    # Tensors still hash by identity, so they can be dictionary keys (as in backward()).
    def __lt__(self, other): return self.data < checks.float_array(other, "comparison operand")
    def __le__(self, other): return self.data <= checks.float_array(other, "comparison operand")
    def __gt__(self, other): return self.data > checks.float_array(other, "comparison operand")
    def __ge__(self, other): return self.data >= checks.float_array(other, "comparison operand")
    def __eq__(self, other): return self.data == (other.data if isinstance(other, Tensor) else other)
    def __ne__(self, other): return self.data != (other.data if isinstance(other, Tensor) else other)
    __hash__ = object.__hash__

    def __repr__(self) -> str:
        text = np.array2string(self.data, precision=4, threshold=8, edgeitems=2, separator=", ",
                               prefix="Tensor(")
        if self.op != "leaf":
            text += f", op={self.op}"
        if self.requires_grad:
            text += ", requires_grad=True"
        if self.data.dtype != np.float64:
            text += f", dtype={self.data.dtype}"
        return f"Tensor({text})"


def from_op(op: str, data, parents: tuple, vjps: tuple) -> Tensor:
    """Record the result of a primitive: its value, its inputs and one VJP per input.

    ``vjps[i]`` maps the gradient of the output (same shape as ``data``) to the gradient of
    ``parents[i]``; it may return a broadcast shape, which ``backward`` sums back down with
    ``unbroadcast``. VJPs run only for inputs that require grad. Every primitive in ``ops.py`` is
    built with this function, and so can your own (check it with ``gradcheck``).
    """
    out = Tensor(data)
    out.op = op
    if not GradMode.enabled:  # inside no_grad(): nothing is recorded
        if parents:
            out.why_no_grad = "it was computed inside a no_grad() block"
        return out
    for parent in parents:
        if parent.requires_grad:  # some input wants a gradient: keep the way back to it
            if len(vjps) != len(parents):
                raise checks.vjp_count_error(op, parents, vjps)
            out.requires_grad, out.parents, out.vjps = True, parents, vjps
            break
    for parent in parents:
        if parent.cuts:  # some input was drawn by sample(): pass the record on (cuts.py)
            carry_cuts(out, parents)
            break
    if AnomalyMode.enabled:
        anomaly.check_forward(out)
    return out


def accumulate(previous: Optional[np.ndarray], grad: np.ndarray, dtype) -> np.ndarray:
    """previous + grad as a new array (grad may be shared: a VJP may pass it through)."""
    if previous is None:
        return np.array(grad, dtype=dtype)  # a copy: the caller's array stays the caller's
    return np.asarray(previous + grad, dtype=dtype)  # (asarray: a 0-d sum is a NumPy scalar)


def topological_order(root: Tensor) -> list:
    """The nodes that require grad, each after all of its parents, ``root`` last.

    An iterative depth-first search (no recursion, so graphs of millions of nodes are fine):
    when a node is first popped it goes back on the stack under a ``None`` marker, with its
    parents above; when the marker comes off again, all of its parents have been placed, so the
    node can be. Raises before any gradient is touched if part of the graph was already freed.
    """
    order, visited, stack = [], set(), [root]
    while stack:
        node = stack.pop()
        if node is None:  # the marker: the node below it has all of its parents placed
            order.append(stack.pop())
        elif node not in visited:
            visited.add(node)
            if node.is_freed:
                raise checks.freed_graph_error(node)
            stack.append(node)
            stack.append(None)
            for parent in node.parents:
                if parent.requires_grad and parent not in visited:
                    stack.append(parent)
    return order
