"""Pictures of the graph: Graphviz DOT source, rendered images, and an indented text tree.

The picture shows one box per tensor. A box says which operation made the tensor ("leaf" for
tensors you created, "constant" for numbers lifted into the graph), its shape, its values when it
is small, and its gradient once a backward pass has filled one in. Parameters (leaves that
require grad) are blue, inputs and constants grey, results of operations pale yellow; the output
you drew the graph from has a thick border.

Arrows point the way the forward pass ran: from the inputs of an operation to its result.
``backward()`` walks the same arrows in reverse, from the output back to the parameters. A tensor
used several times is still one box, with one arrow per use, and its gradient is the sum over
those arrows. A dashed arrow labelled "no gradient" is a cut: the value flowed forward along it,
but the gradient does not flow back (for example into a ``sample()`` from a distribution).

    from tinygrad_reparam.viz import to_dot, render, print_graph
    print_graph(loss)                 # text, works everywhere
    render(loss, "graph.svg")         # needs Graphviz's `dot` program
    source = to_dot(loss)             # paste into any Graphviz viewer

Every walk over the graph here is a loop with an explicit stack, never recursion, so graphs
with a million nodes can be drawn (as text or DOT) without hitting Python's recursion limit.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator, Optional, TextIO

import numpy as np

from tinygrad_reparam import checks
from tinygrad_reparam.tensor import Tensor

# Fill colours of the kinds of node.
PARAMETER_COLOR = "#bfe1ff"  # leaves that require grad: what training changes
CONSTANT_COLOR = "#e6e6e6"   # inputs, constants, detached values: no gradient is wanted
OP_COLOR = "#fff4d1"         # results of operations
STOCHASTIC_COLOR = "#f6c9c4"  # sample() nodes: a random draw with no gradient path (the cut)

# The image formats render() can write, by file suffix.
RENDER_FORMATS = {".svg": "svg", ".png": "png"}

# The text tree indents two spaces per level, but never more than this many levels, so a long
# chain does not print lines whose length grows with the depth.
MAX_INDENT_LEVELS = 40


# ---------------------------------------------------------------------------------------------
# Walking the graph
def _inputs(tensor: Tensor) -> list:
    """The tensors drawn with an arrow into ``tensor``: its real parents (gradients flow back
    along these), then its display-only parents (the value came from them, no gradient goes
    back). Returns (input, is_cut) pairs."""
    real = [(parent, False) for parent in tensor.parents]
    display_only = [(parent, True) for parent in getattr(tensor, "display_parents", ())]
    return real + display_only


def _walk(root: Tensor) -> Iterator[tuple]:
    """Depth-first walk from ``root`` towards the leaves, with an explicit stack.

    Yields ``(tensor, depth, is_cut, number, seen_before)`` for every arrow followed, in the
    order the text tree prints them. Each distinct tensor (identified by ``id()``) gets a number
    the first time it is met, 0 for the root; when it is met again it is yielded with
    ``seen_before=True`` and its inputs are not walked a second time.
    """
    numbers: dict = {}  # id(tensor) -> number
    stack = [(root, 0, False)]
    while stack:
        tensor, depth, is_cut = stack.pop()
        seen_before = id(tensor) in numbers
        if not seen_before:
            numbers[id(tensor)] = len(numbers)
        yield tensor, depth, is_cut, numbers[id(tensor)], seen_before
        if not seen_before:
            # reversed, so that the first input is popped (and printed) first
            for parent, parent_is_cut in reversed(_inputs(tensor)):
                stack.append((parent, depth + 1, parent_is_cut))


def _distinct_tensors(root: Tensor) -> list:
    """Every tensor reachable from ``root``, once each, in walk order (the root first)."""
    return [tensor for tensor, _, _, _, seen_before in _walk(root) if not seen_before]


# ---------------------------------------------------------------------------------------------
# What a box says
def _format_number(x) -> str:
    return f"{float(x):.4g}"


def _format_array(values: np.ndarray) -> str:
    """Compact one-line text for a small array, 4 significant digits: ``[[1, 2.5], [0.3333, 4]]``."""
    if values.ndim == 0:
        return _format_number(values)
    if values.ndim == 1:  # the common case, without array2string's overhead
        return "[" + ", ".join(_format_number(x) for x in values.tolist()) + "]"
    text = np.array2string(values, separator=", ", formatter={"all": _format_number},
                           max_line_width=sys.maxsize, threshold=sys.maxsize)
    return " ".join(line.strip() for line in text.splitlines())


def _shape_text(tensor: Tensor) -> str:
    text = str(tuple(tensor.shape))
    dtype = np.asarray(tensor.data).dtype
    if dtype != np.float64:
        text += f" {dtype}"
    return text


def _title(tensor: Tensor) -> str:
    """The op that made the tensor, or the name of a named leaf (``mu``, ``eps ~ N(0, 1)``)."""
    name = getattr(tensor, "name", None)
    if not name:
        return tensor.op
    return name if tensor.op == "leaf" else f"{tensor.op} {name}"


def _details(tensor: Tensor, max_values: int) -> list:
    """The lines under the op name and shape: values when small, the gradient when present."""
    details = []
    if getattr(tensor, "is_freed", False):
        details.append("(graph freed by backward; pass retain_graph=True to keep it)")
    data = np.asarray(tensor.data)
    if data.size <= max_values:
        details.append("data " + _format_array(data))
    grad = tensor.grad
    if grad is not None:
        grad = np.asarray(grad)
        if grad.size <= max_values:
            details.append("grad " + _format_array(grad))
        else:
            details.append(f"grad norm {_format_number(np.linalg.norm(grad))}")
    return details


def _node_attributes(tensor: Tensor) -> dict:
    """How a tensor's box looks (Graphviz attributes, without the label).

    One place decides the style of every kind of node, so a new kind of node (a stochastic
    sample, say) is one more branch here.
    """
    if getattr(tensor, "display_parents", ()):  # a sample() node: drawn, not computed
        return {"shape": "ellipse", "style": "filled,bold", "fillcolor": STOCHASTIC_COLOR}
    if tensor.parents:  # made by an operation that gradients flow back through
        return {"shape": "box", "style": "rounded,filled", "fillcolor": OP_COLOR}
    if tensor.requires_grad:  # a leaf that wants a gradient: a parameter
        return {"shape": "box", "style": "filled", "fillcolor": PARAMETER_COLOR}
    # inputs, constants, detached tensors, results computed without grad
    return {"shape": "box", "style": "filled", "fillcolor": CONSTANT_COLOR}


def _is_cut(parent: Tensor, child: Tensor) -> bool:
    """True when the arrow parent -> child is for display only: ``parent`` is one of
    ``child.display_parents`` and not one of its real ``parents``, so no gradient flows back."""
    display_parents = getattr(child, "display_parents", ())
    if not display_parents:  # the usual case, and fast for ops with many inputs (concatenate)
        return False
    return (any(p is parent for p in display_parents)
            and not any(p is parent for p in child.parents))


def _edge_attributes(parent: Tensor, child: Tensor) -> dict:
    """How the arrow from ``parent`` to ``child`` looks (Graphviz attributes)."""
    if _is_cut(parent, child):
        return {"style": "dashed", "label": "no gradient", "color": "gray40", "fontcolor": "gray40"}
    return {}


# ---------------------------------------------------------------------------------------------
# DOT source
def _quote(text: str) -> str:
    """A DOT double-quoted string: backslashes and quotes escaped, newlines written as \\n."""
    text = str(text).replace("\\", "\\\\").replace('"', '\\"')
    return '"' + text.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n") + '"'


def _attribute_list(attributes: dict) -> str:
    return "[" + ", ".join(f"{name}={_quote(value)}" for name, value in attributes.items()) + "]"


def _check_arguments(where: str, tensor, max_values) -> None:
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{where}: expected a Tensor, got {type(tensor).__name__}")
    checks.count(max_values, f"{where}: max_values", minimum=0)


def to_dot(tensor: Tensor, max_values: int = 6) -> str:
    """Graphviz DOT source for the graph that computed ``tensor``.

    One node per distinct tensor reachable through ``.parents`` (and display-only parents), one
    arrow per use, pointing from input to result. Values are shown for tensors with at most
    ``max_values`` elements. Render the text with ``render()``, the ``dot`` program
    (``dot -Tsvg graph.dot -o graph.svg``) or any online Graphviz viewer.
    """
    _check_arguments("to_dot", tensor, max_values)
    tensors = _distinct_tensors(tensor)
    node_names = {id(t): f"t{number}" for number, t in enumerate(tensors)}

    lines = ["digraph tinygrad_reparam {", '  node [fontsize="10"];', '  edge [fontsize="9"];']
    for t in tensors:
        label = "\n".join([_title(t), _shape_text(t)] + _details(t, max_values))
        attributes = {"label": label, **_node_attributes(t)}
        if t is tensor:
            attributes["penwidth"] = "2"  # the output the graph was drawn from
        lines.append(f"  {node_names[id(t)]} {_attribute_list(attributes)};")
    for child in tensors:
        for parent, _ in _inputs(child):
            edge = f"  {node_names[id(parent)]} -> {node_names[id(child)]}"
            attributes = _edge_attributes(parent, child)
            lines.append(f"{edge} {_attribute_list(attributes)};" if attributes else f"{edge};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(tensor: Tensor, path, max_values: int = 6) -> Path:
    """Draw the graph of ``tensor`` into an image file with Graphviz's ``dot`` program.

    The format follows the suffix of ``path``: ``.svg`` or ``.png``. Returns the path.
    Raises ``ValueError`` for other suffixes and ``RuntimeError`` when ``dot`` is missing or fails.
    """
    _check_arguments("render", tensor, max_values)
    path = Path(path)
    image_format = RENDER_FORMATS.get(path.suffix.lower())
    if image_format is None:
        allowed = ", ".join(RENDER_FORMATS)
        raise ValueError(f"render(): cannot write {path.name!r}: the file name must end in one of "
                         f"{allowed} (the image format follows the suffix)")
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError(
            "render() needs Graphviz's `dot` program, which is not installed (not found on PATH). "
            "Install Graphviz: `apt-get install graphviz` (Debian/Ubuntu), "
            "`brew install graphviz` (macOS) or `conda install graphviz`. "
            "Or use to_dot(tensor) to get the DOT source and render it elsewhere "
            "(e.g. an online Graphviz viewer), or print_graph(tensor) for a text picture."
        )
    result = subprocess.run([dot, f"-T{image_format}", "-o", os.fspath(path)],
                            input=to_dot(tensor, max_values).encode("utf-8"),
                            capture_output=True)
    if result.returncode != 0:
        stderr = result.stderr.decode("utf-8", errors="replace").strip()
        raise RuntimeError(f"Graphviz's `dot` failed with exit code {result.returncode} while "
                           f"writing {path}: {stderr or '(no error message)'}")
    return path


# ---------------------------------------------------------------------------------------------
# Text
def graph_text(tensor: Tensor, max_values: int = 6) -> str:
    """The graph as an indented tree of text, from the output down to the leaves.

    Each line is one tensor: ``#number op shape`` and, for small tensors, its values and
    gradient. The inputs of a tensor are the lines below it, indented one step more. A tensor
    that was already printed appears again only as a back-reference, e.g. ``mul (3,)  [see #2]``,
    so shared subgraphs are printed once. Inputs marked ``[no gradient]`` are display-only (a cut).
    """
    _check_arguments("graph_text", tensor, max_values)
    lines = []
    for t, depth, is_cut, number, seen_before in _walk(tensor):
        indent = "  " * min(depth, MAX_INDENT_LEVELS)
        if depth > MAX_INDENT_LEVELS:
            indent += f"(depth {depth}) "
        if is_cut:
            indent += "[no gradient] "
        if seen_before:
            lines.append(f"{indent}{_title(t)} {_shape_text(t)}  [see #{number}]")
        else:
            parts = [f"#{number} {_title(t)} {_shape_text(t)}"] + _details(t, max_values)
            lines.append(indent + "  ".join(parts))
    return "\n".join(lines)


def print_graph(tensor: Tensor, file: Optional[TextIO] = None, max_values: int = 6) -> None:
    """Print ``graph_text(tensor)`` (to ``file``, default standard output)."""
    print(graph_text(tensor, max_values), file=file)
