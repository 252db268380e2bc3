"""The shape of the source: no import circle in the package, and a teaching core that stays small.

The engine is read as a textbook. Two promises keep it readable: imports go one way (a reader can
start at tensor.py, then ops.py, and never meet a module that needs one they have not read yet),
and tensor.py plus ops.py stay under 400 lines of code (the README states the count).
"""
import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "tinygrad_reparam"
sys.path.insert(0, str(ROOT / "tools"))
from code_lines import code_lines  # noqa: E402

CORE_LIMIT = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set) -> set:
    """The package modules ``path`` imports: ``from P import m`` counts as importing P.m when
    P.m is a module (P's own __init__ has already run by then), else as importing P."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in known else node.module)
    return found & known


def import_graph() -> dict:
    paths = sorted(PACKAGE.rglob("*.py"))
    known = {module_name(path) for path in paths}
    return {module_name(path): imported_modules(path, known) - {module_name(path)} for path in paths}


def find_cycle(graph: dict):
    """A list of modules that import each other in a circle, or None (iterative DFS)."""
    state = {}  # module -> "open" while on the current path, "done" after
    for start in graph:
        if start in state:
            continue
        path, stack = [], [(start, iter(sorted(graph[start])))]
        state[start] = "open"
        path.append(start)
        while stack:
            module, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                state[path.pop()] = "done"
            elif state.get(child) == "open":
                return path[path.index(child):] + [child]
            elif child not in state:
                state[child] = "open"
                path.append(child)
                stack.append((child, iter(sorted(graph[child]))))
    return None


def test_the_package_has_no_import_circle():
    graph = import_graph()
    assert "tinygrad_reparam.ops" in graph["tinygrad_reparam.composed"]  # the graph is real
    assert find_cycle(graph) is None, f"import circle: {' -> '.join(find_cycle(graph))}"


def test_the_cycle_finder_finds_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_tensor_does_not_import_ops():
    graph = import_graph()
    assert "tinygrad_reparam.ops" not in graph["tinygrad_reparam.tensor"]
    assert "tinygrad_reparam.tensor" in graph["tinygrad_reparam.ops"]


def test_checks_imports_nothing_from_the_package():
    assert import_graph()["tinygrad_reparam.checks"] == set()


@pytest.mark.parametrize("source, expected", [
    ('"""A docstring."""\nx = 1\n', 1),
    ("# a comment\n\nx = (1 +\n     2)  # trailing\n", 2),
    ('def f():\n    """doc\n    string"""\n    return "not a docstring"\n', 2),
    ('s = ("a"\n     "b")\n', 2),
])
def test_code_lines_skips_docstrings_comments_and_blank_lines(source, expected):
    assert code_lines(source) == expected


def test_the_teaching_core_stays_small():
    total = sum(code_lines((PACKAGE / name).read_text(encoding="utf-8"))
                for name in ("tensor.py", "ops.py"))
    assert total <= CORE_LIMIT, (f"tensor.py + ops.py hold {total} lines of code, over the limit "
                                 f"of {CORE_LIMIT}: move validation to checks.py, composed "
                                 f"operations to composed.py")
