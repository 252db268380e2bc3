"""Mutation testing for this repository: which formulas does no test pin down?

A *mutant* is the source with one small change that a reader would call a bug: a flipped sign
(``a - b`` -> ``a + b``), a swapped operator (``*`` -> ``/``, ``**`` -> ``*``), a constant off by
one (``0.5`` -> ``1.0``), a boundary moved (``<`` -> ``<=``), a dropped or added minus sign. For
each mutant the tests that exercise the mutated line are run. If one fails, the mutant is
*killed*: the tests notice the bug. If all pass, it *survived*: either the tests have a gap, or
the change makes no difference (an *equivalent* mutant, e.g. ``<`` -> ``<=`` where the two sides
are never equal). The score of a file is

    score = killed / (killed + survived)

Mutants that hang (*timeout*) or cannot even be imported or collected (*error*) count in neither.

How a run goes (each step is a function below):

1. ``find_mutants`` parses every target file with ``ast`` and lists its mutants. Docstrings and
   strings, ``raise`` and ``assert`` statements, error-message construction (blocks that end in a
   ``raise``, calls to ``...Error`` / ``warn``, functions named ``..._error`` / ``..._message``),
   f-strings, annotations, decorators and the conditions of guards (``if ...:`` whose block ends
   in a ``raise``) are left alone: they are not formulas. (``--include-guards`` mutates those
   conditions too.)
2. ``measure_coverage`` runs the mapped tests once on the unchanged tree, with a line tracer that
   records which test executes which line of the targets. It also checks that they all pass.
3. Every mutant is written into a scratch copy of the tree and ``python -m pytest -x`` runs only
   the mapped tests that execute its line (fastest first, so a kill is found early; ``-x`` stops at
   the first failure); then the file is restored. A mutant on a line that no mapped test executes
   survives without a run. ``--no-coverage`` runs every mapped test file instead.
4. ``write_report`` writes ``<out>.json`` (every mutant and its outcome) and ``<out>.md`` (scores per
   file and overall, and every survivor with its original and mutated line).

The tests run with the *system* ``python`` (``--python``), from the copy's root with
``PYTHONPATH=<copy>``, so that they import the copy, never an installed package; the tool checks
this before it starts. This file is also the small pytest plugin that records coverage and
selects the tests (loaded with ``-p mutate``; its hooks do nothing unless the tool asks).

Usage (not part of CI; see tools/README.md)::

    python tools/mutate.py --root /path/to/checkout --out /tmp/mutation/report
    python tools/mutate.py --root . --out /tmp/m --target tinygrad_reparam/optim.py=tests/test_optim.py
    python tools/mutate.py --root . --out /tmp/m --functions Adam._advance --list

Standard library only (plus pytest and the project's test dependencies in the tested python).
"""
from __future__ import annotations

import argparse
import ast
import bisect
import concurrent.futures
import dataclasses
import glob
import io
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import tokenize
from collections import defaultdict
from typing import Optional

# Environment variables through which the tool talks to the plugin half of this file.
COVERAGE_OUT_ENV = "MUTATE_COVERAGE_OUT"      # write per-test coverage (JSON) to this path
COVERAGE_TARGETS_ENV = "MUTATE_TARGET_FILES"  # os.pathsep-separated target files to trace
SELECT_ENV = "MUTATE_SELECT"                  # JSON file: the test node ids to run, in order

OUTSIDE_TESTS = "<outside tests>"             # coverage bucket: imports, collection, teardown

STATUSES = ("killed", "survived", "timeout", "error")


# =============================================================================================
# The default targets: each file with the test files that exercise it
def default_targets(root: str) -> dict[str, list[str]]:
    """The VJPs, the distributions' formulas, the estimators, the VAE and the optimizers, each
    mapped to its nearest tests. Files that do not exist in this checkout are left out."""
    ops_tests = ["tests/test_ops_gradcheck.py", "tests/test_engine.py", "tests/test_stability.py",
                 "tests/test_derivatives.py", "tests/test_fused.py", "tests/test_identities.py",
                 "tests/test_comparisons.py"]
    distribution_tests = [
        "tests/test_distributions_continuous.py", "tests/test_distributions_discrete.py",
        "tests/test_tanh_normal.py", "tests/test_cut.py", "tests/test_stability.py",
        "tests/test_identities.py", "tests/test_bad_input.py", "tests/test_transforms.py",
    ]
    targets = {
        "tinygrad_reparam/ops.py": ops_tests,
        "tinygrad_reparam/composed.py": ops_tests,
        # the fused linear and BCE are what nn.Linear and the VAE run
        "tinygrad_reparam/fused.py": ops_tests + ["tests/test_nn.py", "tests/test_vae.py"],
    }
    pattern = os.path.join(root, "tinygrad_reparam", "distributions", "*.py")
    for path in sorted(glob.glob(pattern)):
        if os.path.basename(path) != "__init__.py":
            targets[os.path.relpath(path, root)] = distribution_tests
    targets["tinygrad_reparam/estimators.py"] = ["tests/test_estimators.py"]
    # the estimators for discrete latents: VIMCO, ARM, DisARM, REBAR and RELAX
    targets["tinygrad_reparam/discrete_estimators.py"] = ["tests/test_discrete_estimators.py",
                                                          "tests/test_bad_input.py"]
    targets["tinygrad_reparam/vae.py"] = ["tests/test_vae.py", "tests/test_stability.py",
                                          "tests/test_vae_gradients.py"]
    targets["tinygrad_reparam/optim.py"] = ["tests/test_optim.py", "tests/test_bad_input.py"]
    # the error function and the Normal quantile, and the CDFs built on them
    targets["tinygrad_reparam/special/erf.py"] = ["tests/test_special_erf.py", "tests/test_derivatives.py",
                                                  "tests/test_distributions_continuous.py",
                                                  "tests/test_transforms.py"]
    # full covariance: the Cholesky factor and triangular solves, and the two Gaussians built on them
    targets["tinygrad_reparam/linalg.py"] = ["tests/test_linalg.py", "tests/test_derivatives.py",
                                             "tests/test_multivariate_normal.py"]
    for name in ("multivariate_normal.py", "lowrank_multivariate_normal.py"):
        targets[f"tinygrad_reparam/distributions/{name}"] = (
            ["tests/test_multivariate_normal.py"] + distribution_tests)
    # implicit reparameterization: the incomplete beta function, and Beta, Dirichlet, StudentT on it
    targets["tinygrad_reparam/special/beta.py"] = ["tests/test_special_beta.py", "tests/test_derivatives.py",
                                                   "tests/test_beta_dirichlet_studentt.py"]
    for name in ("beta.py", "dirichlet.py", "studentt.py"):
        targets[f"tinygrad_reparam/distributions/{name}"] = (
            ["tests/test_beta_dirichlet_studentt.py"] + distribution_tests)
    # implicit reparameterization of the Gamma: lgamma, digamma, the incomplete gamma function and
    # its derivative, and Gamma, Exponential, Chi2 and the check_pathwise_gradient helper on them
    gamma_tests = ["tests/test_special_gamma.py", "tests/test_gamma.py", "tests/test_implicit_identity.py"]
    targets["tinygrad_reparam/special/gamma.py"] = gamma_tests + ["tests/test_derivatives.py"]
    for name in ("gamma.py", "exponential.py", "chi2.py"):
        targets[f"tinygrad_reparam/distributions/{name}"] = gamma_tests + distribution_tests
    targets["tinygrad_reparam/testing.py"] = ["tests/test_implicit_identity.py", "tests/test_testing.py"]
    return {
        target: [t for t in tests if os.path.exists(os.path.join(root, t))]
        for target, tests in targets.items() if os.path.exists(os.path.join(root, target))
    }


def parse_target(spec: str, root: str) -> dict[str, list[str]]:
    """``FILES=TESTS``: FILES a glob of target files, TESTS comma-separated test files (globs too)."""
    if "=" not in spec:
        raise SystemExit(f"--target {spec!r}: expected FILES=TESTS, e.g. "
                         f"tinygrad_reparam/optim.py=tests/test_optim.py")
    files, tests = spec.split("=", 1)
    targets = _expand(root, [files])
    test_files = _expand(root, tests.split(","))
    if not targets:
        raise SystemExit(f"--target {spec!r}: no file under {root} matches {files!r}")
    if not test_files:
        raise SystemExit(f"--target {spec!r}: no test file under {root} matches {tests!r}")
    return {target: test_files for target in targets}


def _expand(root: str, patterns: list[str]) -> list[str]:
    found = []
    for pattern in patterns:
        matches = sorted(glob.glob(os.path.join(root, pattern.strip())))
        found += [os.path.relpath(m, root) for m in matches if m.endswith(".py")]
    # the demo tests need matplotlib and take long: never part of a mutant's run
    return [f for f in dict.fromkeys(found) if not os.path.basename(f).startswith("test_demo_")]


# =============================================================================================
# Finding mutants
@dataclasses.dataclass
class Mutant:
    """One change to one file: the characters [start, end) of its text become ``replacement``."""
    file: str                # relative to the root
    line: int                # where the change starts (1-based)
    col: int                 # (0-based, in characters)
    kind: str                # e.g. "binop + -> -"
    function: str            # qualified name of the enclosing def/class ("<module>" at top level)
    start: int
    end: int
    replacement: str
    run_lines: tuple         # the lines whose execution means the mutant can matter
    original_line: str = ""
    mutated_line: str = ""

    @property
    def id(self) -> str:
        return f"{self.file}:{self.line}:{self.col}:{self.kind}"

    def apply(self, text: str) -> str:
        return text[:self.start] + self.replacement + text[self.end:]


class SourceText:
    """A file's text with its tokens, and conversion of ``ast`` positions (line, UTF-8 byte
    column) to offsets into the text (characters)."""

    def __init__(self, text: str):
        self.text = text
        self.lines = text.splitlines(keepends=True)
        self.line_starts = [0]
        for line in self.lines:
            self.line_starts.append(self.line_starts[-1] + len(line))
        self.tokens = []  # (start offset, end offset, type, string)
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type in (tokenize.OP, tokenize.NAME):
                start = self.line_starts[token.start[0] - 1] + token.start[1]
                end = self.line_starts[token.end[0] - 1] + token.end[1]
                self.tokens.append((start, end, token.type, token.string))
        self.token_starts = [t[0] for t in self.tokens]

    def offset(self, line: int, byte_col: int) -> int:
        text_of_line = self.lines[line - 1]
        return self.line_starts[line - 1] + len(text_of_line.encode()[:byte_col].decode(errors="ignore"))

    def start_of(self, node: ast.AST) -> int:
        return self.offset(node.lineno, node.col_offset)

    def end_of(self, node: ast.AST) -> int:
        return self.offset(node.end_lineno, node.end_col_offset)

    def tokens_between(self, start: int, end: int, strings: set) -> list:
        """The (start, end) of the tokens spelled as one of ``strings`` in [start, end)."""
        i = bisect.bisect_left(self.token_starts, start)
        found = []
        while i < len(self.tokens) and self.tokens[i][0] < end:
            if self.tokens[i][3] in strings and self.tokens[i][1] <= end:
                found.append(self.tokens[i][:2])
            i += 1
        return found

    def line_at(self, offset: int) -> int:
        return bisect.bisect_right(self.line_starts, offset)


BINARY_SWAPS = {ast.Add: ("+", "-"), ast.Sub: ("-", "+"), ast.Mult: ("*", "/"),
                ast.Div: ("/", "*"), ast.Pow: ("**", "*")}
COMPARE_SWAPS = {ast.Lt: ("<", "<="), ast.LtE: ("<=", "<"), ast.Gt: (">", ">="),
                 ast.GtE: (">=", ">"), ast.Eq: ("==", "!="), ast.NotEq: ("!=", "==")}
# Expressions that a minus sign can sensibly be put in front of, as returned values / VJPs,
# except calls of these builtins, whose results are never numbers
NEGATABLE = (ast.BinOp, ast.Call, ast.Name, ast.Attribute, ast.Subscript)
NOT_NUMBERS = {"tuple", "list", "dict", "set", "frozenset", "str", "repr", "sorted", "reversed",
               "isinstance", "issubclass", "hasattr", "bool", "len", "range", "zip", "enumerate",
               "type", "iter", "next", "super", "id", "hash", "all", "any", "callable"}
ERROR_FUNCTION = re.compile(r"(^|_)(error|errors|message|messages|msg)($|_)", re.IGNORECASE)


def _bumped(value):
    """The constant a mutant puts in place of ``value``: 0.5 -> 1.0, otherwise value + 1."""
    return 1.0 if value == 0.5 else value + 1


def _is_error_call(node: ast.Call) -> bool:
    name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
    return name.endswith(("Error", "Exception", "Warning")) or name == "warn"


def _is_guard(node: ast.If) -> bool:
    """``if <condition>: ...; raise ...`` with no else: argument validation, not a formula."""
    return isinstance(node.body[-1], ast.Raise) and not node.orelse


def _is_string(node: ast.AST) -> bool:
    return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant)
                                               and isinstance(node.value, (str, bytes)))


class _MutantFinder:
    """Walks one module's AST and collects its mutants, skipping what is not a formula."""

    def __init__(self, source: SourceText, file: str, include_guards: bool):
        self.source = source
        self.file = file
        self.include_guards = include_guards
        self.mutants: list[Mutant] = []

    # --- walking ------------------------------------------------------------------------------
    def visit_body(self, statements: list, scope: str) -> None:
        if statements and isinstance(statements[-1], ast.Raise):
            return  # a block on the way to a raise builds the error, it computes nothing
        for index, statement in enumerate(statements):
            is_docstring = (index == 0 and isinstance(statement, ast.Expr)
                            and _is_string(statement.value))
            if not is_docstring:
                self.visit_statement(statement, scope)

    def visit_statement(self, statement: ast.stmt, scope: str) -> None:
        if isinstance(statement, (ast.Raise, ast.Assert, ast.Import, ast.ImportFrom)):
            return
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
            name = f"{scope}.{statement.name}" if scope != "<module>" else statement.name
            if ERROR_FUNCTION.search(statement.name):
                return
            defaults = statement.args.defaults + [d for d in statement.args.kw_defaults if d]
            for default in defaults:  # evaluated once, at import
                self.visit_expression(default, statement, scope)
            self.visit_body(statement.body, name)
            return
        if isinstance(statement, ast.ClassDef):
            name = f"{scope}.{statement.name}" if scope != "<module>" else statement.name
            self.visit_body(statement.body, name)
            return
        if isinstance(statement, ast.If):
            is_main = "__name__" in ast.dump(statement.test)
            if not is_main and (self.include_guards or not _is_guard(statement)):
                self.visit_expression(statement.test, statement, scope)
            self.visit_body(statement.body, scope)
            self.visit_body(statement.orelse, scope)
            return
        if isinstance(statement, ast.AnnAssign):  # the annotation is not code that runs
            if statement.value is not None:
                self.visit_expression(statement.value, statement, scope)
            return
        if isinstance(statement, ast.AugAssign):
            self.add_augmented_assignment(statement, scope)
        if isinstance(statement, ast.Return) and statement.value is not None:
            self.add_negation(statement.value, statement, scope)
        for field, value in ast.iter_fields(statement):
            if field in ("body", "orelse", "finalbody"):
                self.visit_body(value, scope)
            elif field == "handlers":
                for handler in value:
                    self.visit_body(handler.body, scope)
            elif isinstance(value, ast.expr):
                self.visit_expression(value, statement, scope)
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, ast.expr):
                        self.visit_expression(item, statement, scope)
                    elif isinstance(item, ast.withitem):
                        self.visit_expression(item.context_expr, statement, scope)

    def visit_expression(self, node: ast.expr, statement, scope: str) -> None:
        """Collect the mutants of node and everything inside it. ``statement`` is the innermost
        statement or lambda around it: executing its lines is what makes the mutant matter."""
        if isinstance(node, ast.JoinedStr) or _is_string(node):
            return
        if isinstance(node, ast.Call) and _is_error_call(node):
            return
        if isinstance(node, ast.Lambda):
            for default in node.args.defaults:
                self.visit_expression(default, statement, scope)
            self.add_negation(node.body, node.body, scope)
            self.visit_expression(node.body, node.body, scope)  # runs when the lambda is called
            return
        if isinstance(node, ast.BinOp):
            self.add_binary_operator(node, statement, scope)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            self.add(node, statement, scope, "unary - removed", self.source.start_of(node),
                     self.source.start_of(node.operand), "")
        elif isinstance(node, ast.Compare):
            self.add_comparisons(node, statement, scope)
        elif isinstance(node, ast.BoolOp):
            self.add_boolean_operator(node, statement, scope)
        elif isinstance(node, ast.Constant) and type(node.value) in (int, float):
            new = _bumped(node.value)
            self.add(node, statement, scope, f"constant {node.value!r} -> {new!r}",
                     self.source.start_of(node), self.source.end_of(node), repr(new))
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self.visit_expression(child, statement, scope)
            elif isinstance(child, ast.comprehension):
                for part in [child.iter, *child.ifs]:
                    self.visit_expression(part, statement, scope)
            elif isinstance(child, ast.keyword):
                self.visit_expression(child.value, statement, scope)

    # --- the kinds of mutant ------------------------------------------------------------------
    def add_binary_operator(self, node: ast.BinOp, statement, scope: str) -> None:
        if type(node.op) not in BINARY_SWAPS or _is_string(node.left) or _is_string(node.right):
            return
        old, new = BINARY_SWAPS[type(node.op)]
        self.add_token_swap(node, statement, scope, f"binop {old} -> {new}",
                            self.source.end_of(node.left), self.source.start_of(node.right), old, new)

    def add_augmented_assignment(self, statement: ast.AugAssign, scope: str) -> None:
        if type(statement.op) not in BINARY_SWAPS or _is_string(statement.value):
            return
        old, new = (s + "=" for s in BINARY_SWAPS[type(statement.op)])
        self.add_token_swap(statement, statement, scope, f"augassign {old} -> {new}",
                            self.source.end_of(statement.target),
                            self.source.start_of(statement.value), old, new)

    def add_comparisons(self, node: ast.Compare, statement, scope: str) -> None:
        left = node.left
        for op, right in zip(node.ops, node.comparators):
            if type(op) in COMPARE_SWAPS:
                old, new = COMPARE_SWAPS[type(op)]
                self.add_token_swap(node, statement, scope, f"compare {old} -> {new}",
                                    self.source.end_of(left), self.source.start_of(right), old, new)
            left = right

    def add_boolean_operator(self, node: ast.BoolOp, statement, scope: str) -> None:
        """``a and b and c`` -> ``a or b or c`` (every operator of the chain: one mutant)."""
        old, new = ("and", "or") if isinstance(node.op, ast.And) else ("or", "and")
        spans = []
        for left, right in zip(node.values, node.values[1:]):
            spans += self.source.tokens_between(self.source.end_of(left),
                                                self.source.start_of(right), {old})
        if len(spans) != len(node.values) - 1:
            return
        text = self.source.text
        start, end = spans[0][0], spans[-1][1]
        pieces, position = [], start
        for token_start, token_end in spans:
            pieces += [text[position:token_start], new]
            position = token_end
        self.add(node, statement, scope, f"boolop {old} -> {new}", start, end, "".join(pieces))

    def add_negation(self, value: ast.expr, statement, scope: str) -> None:
        """``return x`` -> ``return -(x)``, and the same for a lambda's body (a VJP)."""
        if not isinstance(value, NEGATABLE) or scope.rsplit(".", 1)[-1].startswith("__"):
            return
        if isinstance(value, ast.Name) and value.id in ("self", "cls", "None"):
            return
        if isinstance(value, ast.Call) and getattr(value.func, "id", None) in NOT_NUMBERS:
            return
        start, end = self.source.start_of(value), self.source.end_of(value)
        self.add(value, statement, scope, "unary - added", start, end,
                 "-(" + self.source.text[start:end] + ")")

    def add_token_swap(self, node, statement, scope, kind, start, end, old, new) -> None:
        spans = self.source.tokens_between(start, end, {old})
        if len(spans) == 1:  # anything else means the positions were not understood: skip
            self.add(node, statement, scope, kind, spans[0][0], spans[0][1], new)

    def add(self, node, statement, scope: str, kind: str, start: int, end: int,
            replacement: str) -> None:
        # The lines whose execution can make the mutant matter: a simple statement's or a lambda
        # body's own lines; for a compound statement (an if's condition, a def's defaults), its
        # header up to the mutated expression.
        first = statement.lineno
        if isinstance(statement, ast.expr) or _is_simple(statement):
            last = statement.end_lineno
        else:
            last = max(node.end_lineno, first)
        line = self.source.line_at(start)
        self.mutants.append(Mutant(
            file=self.file, line=line, col=start - self.source.line_starts[line - 1], kind=kind,
            function=scope, start=start, end=end, replacement=replacement,
            run_lines=tuple(range(first, last + 1)),
        ))


def _is_simple(statement: ast.stmt) -> bool:
    return not any(isinstance(v, list) and v and isinstance(v[0], ast.stmt)
                   for _, v in ast.iter_fields(statement))


def find_mutants(root: str, file: str, include_guards: bool = False) -> list[Mutant]:
    """Every mutant of one target file, in source order, each checked to parse and to differ."""
    with open(os.path.join(root, file), encoding="utf-8") as handle:
        text = handle.read()
    source = SourceText(text)
    tree = ast.parse(text)
    finder = _MutantFinder(source, file, include_guards)
    finder.visit_body(tree.body, "<module>")
    original_dump = ast.dump(tree)
    mutants, seen = [], set()
    for mutant in sorted(finder.mutants, key=lambda m: (m.start, m.end, m.kind)):
        key = (mutant.start, mutant.end, mutant.replacement)
        if key in seen:
            continue
        seen.add(key)
        mutated = mutant.apply(text)
        try:
            if ast.dump(ast.parse(mutated)) == original_dump:
                continue  # e.g. a float too large for + 1 to change it
        except SyntaxError:
            continue
        first, last = source.line_at(mutant.start), source.line_at(max(mutant.end - 1, mutant.start))
        mutant.original_line = "".join(source.lines[first - 1:last]).rstrip("\n")
        shift = len(mutated) - len(text)
        mutated_lines = mutated[source.line_starts[first - 1]:source.line_starts[last] + shift]
        mutant.mutated_line = mutated_lines.rstrip("\n")
        mutants.append(mutant)
    return mutants


def _text_key(mutant) -> tuple:
    """What identifies a mutant across commits, where its line number may have moved."""
    get = mutant.get if isinstance(mutant, dict) else lambda name: getattr(mutant, name)
    return (get("file"), get("kind"), get("original_line").strip(), get("mutated_line").strip())


def restrict(mutants: list[Mutant], line_ranges: list[str], functions: list[str]) -> list[Mutant]:
    """Keep the mutants inside the given ``FILE:FIRST-LAST`` ranges and ``functions`` (a name
    matches a qualified name equal to it, ending in ``.name``, or, for a class, inside it)."""
    def in_ranges(m: Mutant) -> bool:
        for spec in line_ranges:
            file, _, span = spec.rpartition(":")
            first, _, last = span.partition("-")
            if (not file or m.file == file or m.file.endswith("/" + file)) and \
                    int(first) <= m.line <= int(last or first):
                return True
        return False

    def in_functions(m: Mutant) -> bool:
        return any(m.function == f or m.function.endswith("." + f) or m.function.startswith(f + ".")
                   for f in functions)

    return [m for m in mutants
            if (not line_ranges or in_ranges(m)) and (not functions or in_functions(m))]


def sample(mutants: list[Mutant], file: str, seed: int, max_mutants: Optional[int]) -> list[Mutant]:
    """At most max_mutants of a file's mutants, the same ones for the same seed, in source order."""
    if max_mutants is None or len(mutants) <= max_mutants:
        return mutants
    chosen = random.Random(f"{seed}:{file}").sample(range(len(mutants)), max_mutants)
    return [mutants[i] for i in sorted(chosen)]


# =============================================================================================
# Running pytest in a copy of the tree
def make_copy(root: str, destination: str) -> str:
    """A copy of the checkout without git data, caches or bytecode (stale .pyc files of the
    same size and second as a mutated file would otherwise be imported instead of it)."""
    if os.path.exists(destination):
        shutil.rmtree(destination)
    shutil.copytree(root, destination, ignore=shutil.ignore_patterns(
        ".git", "__pycache__", "*.pyc", ".hypothesis", ".pytest_cache", "*.egg-info"))
    return destination


def subprocess_environment(copy: str) -> dict:
    env = dict(os.environ)
    tool_directory = os.path.dirname(os.path.abspath(__file__))
    env["PYTHONPATH"] = os.pathsep.join([copy, tool_directory])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONHASHSEED"] = "0"
    env["MPLBACKEND"] = "Agg"
    env["COLUMNS"] = "300"  # pytest cuts its summary lines to the terminal's width
    for name in (COVERAGE_OUT_ENV, COVERAGE_TARGETS_ENV, SELECT_ENV):
        env.pop(name, None)
    return env


def check_imports_from_copy(python: str, copy: str, targets: list[str]) -> None:
    """Stop unless every target module is imported from the copy (not an installed package)."""
    modules = [t[:-3].replace("/", ".").replace(os.sep, ".") for t in targets]
    script = ("import importlib.util, json, sys\n"
              "print(json.dumps([importlib.util.find_spec(m).origin for m in sys.argv[1:]]))")
    result = subprocess.run([python, "-c", script, *modules], cwd=copy, env=subprocess_environment(copy),
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{python} cannot import the targets from {copy}:\n{result.stderr}")
    for target, origin in zip(targets, json.loads(result.stdout)):
        if os.path.realpath(origin) != os.path.realpath(os.path.join(copy, target)):
            raise SystemExit(f"{python} imports {target} from {origin}, not from the copy {copy}: "
                             f"use a python without the package installed (--python)")


def build_pytest_command(python: str, test_files: list[str], stop_at_first_failure: bool = True) -> list:
    command = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
               "-p", "mutate", "--tb=line", "-r", "fE"]
    return command + (["-x"] if stop_at_first_failure else []) + list(test_files)


def measure_coverage(python: str, copy: str, targets: dict, work: str) -> dict:
    """Run all mapped tests once, unmutated and traced. Returns {"tests": {node id: {"file": ...,
    "lines": {target: [lines]}, "seconds": ..., "outcome": ...}}, "outside": {target: [lines]}}."""
    out = os.path.join(work, "coverage.json")
    env = subprocess_environment(copy)
    env[COVERAGE_OUT_ENV] = out
    env[COVERAGE_TARGETS_ENV] = os.pathsep.join(os.path.join(copy, t) for t in targets)
    test_files = sorted({t for tests in targets.values() for t in tests})
    started = time.perf_counter()
    result = subprocess.run(build_pytest_command(python, test_files, stop_at_first_failure=False),
                            cwd=copy, env=env, capture_output=True, text=True)
    print(f"coverage run: {time.perf_counter() - started:.0f} s, pytest exit code "
          f"{result.returncode}", flush=True)
    if result.returncode not in (0, 1) or not os.path.exists(out):
        raise SystemExit(f"the coverage run failed; pytest said:\n{result.stdout[-3000:]}\n"
                         f"{result.stderr[-3000:]}")
    with open(out) as handle:
        coverage = json.load(handle)
    failed = [n for n, t in coverage["tests"].items() if t["outcome"] == "failed"]
    if failed:
        print(f"warning: {len(failed)} tests fail on the unmutated tree and are left out: "
              f"{failed[:5]}", flush=True)
    for target in targets:
        if not any(target in t["lines"] for t in coverage["tests"].values()):
            print(f"warning: no mapped test executes any line of {target}", flush=True)
    return coverage


def tests_for(mutant: Mutant, mapped_files: list[str], coverage: Optional[dict]) -> list[str]:
    """The node ids (or, without coverage, the files) to run for a mutant, fastest first."""
    if coverage is None:
        return list(mapped_files)
    lines = set(mutant.run_lines)
    usable = {node: t for node, t in coverage["tests"].items()
              if t["file"] in mapped_files and t["outcome"] == "passed"}
    if lines & set(coverage["outside"].get(mutant.file, ())):  # runs at import: every test
        chosen = list(usable)
    else:
        chosen = [node for node, t in usable.items() if lines & set(t["lines"].get(mutant.file, ()))]
    return sorted(chosen, key=lambda node: usable[node]["seconds"])


def run_mutant(mutant: Mutant, original_text: str, copy: str, tests: list[str], python: str,
               timeout: float, use_coverage: bool) -> dict:
    """Write the mutant into the copy, run its tests, restore the file. Returns its result."""
    result = {"id": mutant.id, "tests": len(tests), "killed_by": None, "detail": ""}
    if not tests:
        return dict(result, status="survived", seconds=0.0, detail="no mapped test runs this line")
    path = os.path.join(copy, mutant.file)
    env = subprocess_environment(copy)
    test_files = tests
    if use_coverage:
        selection = os.path.join(copy, ".mutate_selection.json")
        with open(selection, "w") as handle:
            json.dump(tests, handle)
        env[SELECT_ENV] = selection
        test_files = sorted({node.split("::", 1)[0] for node in tests})
    started = time.perf_counter()
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(mutant.apply(original_text))
        process = subprocess.Popen(build_pytest_command(python, test_files), cwd=copy, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   start_new_session=True)
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the test process and anything it started
            process.communicate()
            return dict(result, status="timeout", seconds=time.perf_counter() - started,
                        detail=f"no result after {timeout:.0f} s")
    finally:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(original_text)
        shutil.rmtree(os.path.join(copy, ".hypothesis"), ignore_errors=True)
    seconds = time.perf_counter() - started
    failures = [line for line in output.splitlines() if line.startswith(("FAILED ", "ERROR "))]
    if process.returncode == 1 and failures:
        test, _, reason = failures[0].split(" ", 1)[1].partition(" - ")
        return dict(result, status="killed", seconds=seconds, killed_by=test, detail=reason[:200])
    if process.returncode == 0:
        return dict(result, status="survived", seconds=seconds)
    # 2: interrupted (e.g. the mutant fails at import), 3: internal error, 5: no tests, 1 without
    # a FAILED line: an error in collection
    lines = failures or [line.strip("! ") for line in output.strip().splitlines()[-3:]]
    return dict(result, status="error", seconds=seconds,
                detail=f"pytest exit code {process.returncode}: {' | '.join(lines)[:300]}")


# =============================================================================================
# Reports
def summarize(results: list[dict]) -> dict:
    counts = {status: 0 for status in STATUSES}
    for r in results:
        counts[r["status"]] += 1
    decided = counts["killed"] + counts["survived"]
    counts["not_run"] = sum(1 for r in results if r["status"] == "survived" and r["tests"] == 0)
    counts["score"] = round(counts["killed"] / decided, 4) if decided else None
    return counts


def write_report(out: str, config: dict, enumerated: dict, results: list[dict]) -> None:
    by_file = defaultdict(list)
    for r in results:
        by_file[r["file"]].append(r)
    per_file = {f: dict(summarize(by_file[f]), enumerated=enumerated[f]) for f in enumerated}
    overall = dict(summarize(results), enumerated=sum(enumerated.values()))
    report = {"config": config, "overall": overall, "files": per_file, "mutants": results}
    with open(out + ".json", "w") as handle:
        json.dump(report, handle, indent=1)

    def percent(score):
        return "n/a" if score is None else f"{100 * score:.1f}%"

    md = [f"# Mutation testing report: {config['root']}", "",
          f"{config['started']}; {overall['enumerated']} mutants found, {len(results)} run "
          f"(seed {config['seed']}, at most {config['max_mutants'] or 'all'} per file), "
          f"{config['minutes']:.1f} min with {config['jobs']} job(s) "
          f"({config['reused']} results reused from an earlier run), python `{config['python']}`; "
          f"coverage run {config['coverage_run_seconds']:.0f} s, mutants' test runs "
          f"{config['mutant_run_seconds'] / 60:.1f} min in all.",
          "", "score = killed / (killed + survived); timeouts and errors count in neither. "
          "'not run': survivors on lines that no mapped test executes.", "",
          "| file | found | run | killed | survived | (not run) | timeout | error | score |",
          "|---|---|---|---|---|---|---|---|---|"]
    for f, s in per_file.items():
        md.append(f"| {f} | {s['enumerated']} | {len(by_file[f])} | {s['killed']} | "
                  f"{s['survived']} | {s['not_run']} | {s['timeout']} | {s['error']} | "
                  f"{percent(s['score'])} |")
    md.append(f"| **overall** | {overall['enumerated']} | {len(results)} | {overall['killed']} | "
              f"{overall['survived']} | {overall['not_run']} | {overall['timeout']} | "
              f"{overall['error']} | **{percent(overall['score'])}** |")
    md += ["", "## The tests run for each file", ""]
    test_sets = defaultdict(list)
    for f, tests in config["targets"].items():
        test_sets[tuple(tests)].append(f)
    for tests, files in test_sets.items():
        md.append(f"- {', '.join(f'`{f}`' for f in files)}: {', '.join(tests)}")
    for status in ("survived", "timeout", "error"):
        chosen = [r for r in results if r["status"] == status]
        if not chosen:
            continue
        md += ["", f"## {status.capitalize()} ({len(chosen)})", ""]
        for r in chosen:
            note = f" ({r['detail']})" if r["detail"] else ""
            md.append(f"- `{r['file']}:{r['line']}` in `{r['function']}`, {r['kind']}, "
                      f"{r['tests']} tests{note}")
            md.append("  ```")
            md += ["  - " + line for line in r["original_line"].splitlines()]
            md += ["  + " + line for line in r["mutated_line"].splitlines()]
            md.append("  ```")
    with open(out + ".md", "w") as handle:
        handle.write("\n".join(md) + "\n")


# =============================================================================================
# The command line
def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=".", help="the checkout to test (it is not modified)")
    parser.add_argument("--out", default="mutation_report",
                        help="report path without extension: writes OUT.json and OUT.md")
    parser.add_argument("--target", action="append", default=[], metavar="FILES=TESTS",
                        help="a target file (glob) and its comma-separated test files; repeat. "
                             "Default: the VJPs, distributions, estimators, VAE and optimizers")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    parser.add_argument("--max-mutants", type=int, default=None,
                        help="at most this many mutants per file, sampled with --seed")
    parser.add_argument("--lines", action="append", default=[], metavar="FILE:FIRST-LAST",
                        help="only mutants on these lines (FILE may be a path suffix); repeat")
    parser.add_argument("--functions", default="",
                        help="only mutants in these comma-separated functions or classes, "
                             "e.g. Adam._advance,sigmoid")
    parser.add_argument("--jobs", type=int, default=1, help="mutants tested in parallel (default 1)")
    parser.add_argument("--python", default="python",
                        help="the python that runs pytest; it must not have the package installed "
                             "(default: python on PATH)")
    parser.add_argument("--timeout-factor", type=float, default=3.0,
                        help="a mutant times out after this many times its tests' traced "
                             "baseline time, plus --timeout-extra seconds (default 3)")
    parser.add_argument("--timeout-extra", type=float, default=20.0)
    parser.add_argument("--no-coverage", action="store_true",
                        help="run all mapped test files for every mutant (slower)")
    parser.add_argument("--include-guards", action="store_true",
                        help="also mutate the conditions of `if ...: raise` guards")
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    parser.add_argument("--resume", action="store_true",
                        help="reuse the results in OUT.partial.jsonl from an interrupted run")
    parser.add_argument("--survivors-of", metavar="REPORT.json",
                        help="only the mutants that survived in an earlier report (matched by "
                             "file and text, so moved lines still match), e.g. after adding tests")
    args = parser.parse_args(argv)

    root = os.path.abspath(args.root)
    targets: dict[str, list[str]] = {}
    for spec in args.target:
        targets.update(parse_target(spec, root))
    if not args.target:
        targets = default_targets(root)
    functions = [f.strip() for f in args.functions.split(",") if f.strip()]
    survivors = set()
    if args.survivors_of:
        with open(args.survivors_of) as handle:
            survivors = {_text_key(r) for r in json.load(handle)["mutants"] if r["status"] == "survived"}

    enumerated, chosen = {}, []
    for file in targets:
        mutants = restrict(find_mutants(root, file, args.include_guards), args.lines, functions)
        if args.survivors_of:
            mutants = [m for m in mutants if _text_key(m) in survivors]
        enumerated[file] = len(mutants)
        chosen += sample(mutants, file, args.seed, args.max_mutants)
    print(f"{sum(enumerated.values())} mutants in {len(targets)} files, {len(chosen)} to run",
          flush=True)
    if args.list:
        for m in chosen:
            first_line = m.mutated_line.strip().splitlines()[0]
            print(f"{m.file}:{m.line}:{m.col} [{m.function}] {m.kind}: {first_line}")
        return 0

    out = os.path.abspath(args.out)
    work = out + ".work"
    os.makedirs(work, exist_ok=True)
    copies = [make_copy(root, os.path.join(work, f"copy{i}")) for i in range(max(1, args.jobs))]
    python = shutil.which(args.python) or args.python
    check_imports_from_copy(python, copies[0], list(targets))
    started_at, started = time.strftime("%Y-%m-%d %H:%M:%S"), time.perf_counter()

    partial = out + ".partial.jsonl"
    done = {}
    if args.resume and os.path.exists(partial):
        with open(partial) as handle:
            for line in handle:
                r = json.loads(line)
                done[(r["id"], r["mutated_line"])] = r
    elif os.path.exists(partial):
        os.remove(partial)
    coverage = None
    if not args.no_coverage and any((m.id, m.mutated_line) not in done for m in chosen):
        coverage = measure_coverage(python, copies[0], targets, work)
    coverage_seconds = time.perf_counter() - started
    originals = {}
    for file in targets:
        with open(os.path.join(root, file), encoding="utf-8") as handle:
            originals[file] = handle.read()

    free_copies = list(copies)
    lock = threading.Lock()
    results: dict[int, dict] = {}

    def work_on(index: int, mutant: Mutant) -> None:
        description = {k: v for k, v in dataclasses.asdict(mutant).items()
                       if k not in ("start", "end", "replacement", "run_lines")}
        key = (mutant.id, mutant.mutated_line)
        if key in done:
            outcome = done[key]
        else:
            tests = tests_for(mutant, targets[mutant.file], coverage)
            seconds = sum(coverage["tests"][t]["seconds"] for t in tests) if coverage else 60.0
            timeout = args.timeout_factor * seconds + args.timeout_extra
            with lock:
                copy = free_copies.pop()
            try:
                outcome = dict(description, **run_mutant(mutant, originals[mutant.file], copy,
                                                         tests, python, timeout, coverage is not None))
            finally:
                with lock:
                    free_copies.append(copy)
        with lock:
            results[index] = outcome
            if key not in done:
                with open(partial, "a") as handle:
                    handle.write(json.dumps(outcome) + "\n")
            print(f"[{len(results):4d}/{len(chosen)}] {mutant.file}:{mutant.line} {mutant.kind}: "
                  f"{outcome['status']} ({outcome['seconds']:.1f} s, {outcome['tests']} tests)",
                  flush=True)

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(copies)) as pool:
        for future in [pool.submit(work_on, i, m) for i, m in enumerate(chosen)]:
            future.result()

    for copy in copies:  # every file is back as it was
        for file, text in originals.items():
            with open(os.path.join(copy, file), encoding="utf-8") as handle:
                assert handle.read() == text, f"{copy}/{file} was not restored"
    config = {"root": root, "targets": targets, "seed": args.seed, "max_mutants": args.max_mutants,
              "lines": args.lines, "functions": functions, "jobs": len(copies), "python": python,
              "coverage": coverage is not None, "include_guards": args.include_guards,
              "started": started_at, "minutes": (time.perf_counter() - started) / 60,
              "coverage_run_seconds": round(coverage_seconds, 1),
              "reused": sum(1 for m in chosen if (m.id, m.mutated_line) in done),
              "mutant_run_seconds": round(sum(r["seconds"] for r in results.values()), 1)}
    write_report(out, config, enumerated, [results[i] for i in range(len(chosen))])
    overall = summarize(list(results.values()))
    print(f"score {overall['score']}: {overall['killed']} killed, {overall['survived']} survived, "
          f"{overall['timeout']} timeouts, {overall['error']} errors; report in {out}.md", flush=True)
    return 0


# =============================================================================================
# The pytest plugin half (loaded by the test runs with ``-p mutate``): it does nothing unless the
# tool set one of the environment variables above.
_coverage_state: dict = {}


def _start_tracing() -> None:
    """Record which lines of the target files run, per test, with a ``sys.settrace`` tracer that
    only follows frames of the target files (everything else runs untraced)."""
    targets = {os.path.realpath(p) for p in os.environ[COVERAGE_TARGETS_ENV].split(os.pathsep)}
    outside = defaultdict(set)
    state = _coverage_state
    state.update(outside=outside, bucket=outside, tests={}, known={})
    known = state["known"]  # co_filename -> real path if it is a target, else None

    def is_target(filename: str) -> bool:
        if filename not in known:
            real = os.path.realpath(filename)
            known[filename] = real if real in targets else None
        return known[filename] is not None

    def local_tracer(frame, event, arg):
        if event == "line":
            state["bucket"][frame.f_code.co_filename].add(frame.f_lineno)
        return local_tracer

    def global_tracer(frame, event, arg):
        if event == "call" and is_target(frame.f_code.co_filename):
            return local_tracer
        return None

    sys.settrace(global_tracer)
    threading.settrace(global_tracer)


def pytest_configure(config) -> None:
    if os.environ.get(COVERAGE_OUT_ENV) and not _coverage_state:
        _start_tracing()


def pytest_collection_modifyitems(session, config, items) -> None:
    selection = os.environ.get(SELECT_ENV)
    if not selection:
        return
    with open(selection) as handle:
        order = {node: i for i, node in enumerate(json.load(handle))}
    chosen = sorted((item for item in items if item.nodeid in order), key=lambda i: order[i.nodeid])
    deselected = [item for item in items if item.nodeid not in order]
    items[:] = chosen
    if deselected:
        config.hook.pytest_deselected(items=deselected)


def pytest_runtest_logstart(nodeid, location) -> None:
    if _coverage_state:
        _coverage_state["bucket"] = _coverage_state["tests"].setdefault(
            nodeid, {"lines": defaultdict(set), "seconds": 0.0, "outcome": "passed"})["lines"]


def pytest_runtest_logreport(report) -> None:
    if _coverage_state:
        test = _coverage_state["tests"][report.nodeid]
        test["seconds"] += report.duration
        if report.outcome == "failed" or (report.outcome == "skipped" and report.when == "call"):
            test["outcome"] = report.outcome
        elif report.outcome == "skipped" and test["outcome"] == "passed":
            test["outcome"] = "skipped"


def pytest_runtest_logfinish(nodeid, location) -> None:
    if _coverage_state:
        _coverage_state["bucket"] = _coverage_state["outside"]


def pytest_sessionfinish(session, exitstatus) -> None:
    if not _coverage_state:
        return
    sys.settrace(None)
    known = _coverage_state["known"]
    copy = os.getcwd()  # the tests run from the copy's root

    def relative(lines_by_file: dict) -> dict:
        converted = {}
        for filename, lines in lines_by_file.items():
            real = known.get(filename) or os.path.realpath(filename)
            converted[os.path.relpath(real, copy)] = sorted(lines)
        return converted

    tests = {node: {"file": node.split("::", 1)[0], "lines": relative(t["lines"]),
                    "seconds": round(t["seconds"], 4), "outcome": t["outcome"]}
             for node, t in _coverage_state["tests"].items()}
    with open(os.environ[COVERAGE_OUT_ENV], "w") as handle:
        json.dump({"tests": tests, "outside": relative(_coverage_state["outside"])}, handle)


if __name__ == "__main__":
    sys.exit(main())
