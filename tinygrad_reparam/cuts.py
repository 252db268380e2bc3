"""Where ``sample()`` cut the graph: the bookkeeping behind one error message and the pictures.

``dist.sample()`` returns a *stochastic node*: a value drawn from a distribution whose parameters
may require grad, but with no gradient path back to them (that is what ``rsample()`` is for).
The chain rule needs nothing from this module; the node simply has no parents. What this module
adds is an explanation. A stochastic node drawn from parameters that require grad is a *cut*, and
every tensor computed from it remembers the cuts upstream (``tensor.cut_nodes``), so that

- ``backward()`` on a loss that reaches the parameters only through cuts can name them and say
  what to use instead (``checks.cut_message``), where it would otherwise only say "does not
  require grad";
- a loss that reaches some parameters directly and others only through a cut lists the cuts in
  ``loss.cut_nodes`` (PyTorch would silently leave those parameters' ``.grad`` as None);
- ``viz`` draws the cut as a dashed edge from the parameters (``display_parents``) to the draw.

A result that does not require grad normally forgets its inputs; downstream of a cut it keeps
them, for display only, so that the picture of a loss can reach the ``sample()`` node.
"""
from __future__ import annotations


def mark_stochastic(node, op: str, parameters: tuple, grad_enabled: bool) -> None:
    """Make ``node`` (a fresh Tensor holding a draw) the stochastic node of ``op``, drawn from
    ``parameters``: remembered for pictures, and a cut if any of them requires grad."""
    node.op = op
    node.display_parents = tuple(p for p in parameters if hasattr(p, "requires_grad"))
    node.why_no_grad = f"it was drawn by {op}(), which cuts the graph"
    if grad_enabled and any(p.requires_grad for p in node.display_parents):
        node.cuts = (node,)


def carry_cuts(out, parents: tuple) -> None:
    """Record on ``out`` every cut recorded on its ``parents`` (each once, in order). A result
    with no gradient keeps its parents, for display only."""
    cuts = []
    for parent in parents:
        for cut in parent.cuts:
            if not any(cut is seen for seen in cuts):  # by identity: == compares values
                cuts.append(cut)
    if cuts:
        out.cuts = tuple(cuts)
        if not out.requires_grad:
            out.parents = parents
