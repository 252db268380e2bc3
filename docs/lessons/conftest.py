"""The lessons are tests: every ```python block of a page runs, and what it prints must be the
```output block shown under it.

A page is read from top to bottom, as a reader (or Jupyter, through Jupytext) would run it:

- every fenced ```python block runs, in order, in one namespace per page, the solutions in the
  collapsed <details> blocks too;
- an ```output block that follows a code block, with nothing but blank lines between them, is
  what that block must print. The comparison is exact, line by line, after stripping trailing
  whitespace, so a page prints its numbers at a stated precision (``f"{x:.4f}"``) and the text
  shown is the text produced, to the last digit;
- a block that prints without an ```output block under it is an error too: the page would hide
  something the code says;
- a block that imports matplotlib draws a figure. It runs only where matplotlib is installed (it
  is optional, the package's ``[demos]`` extra), and no ```output block may follow it, so the
  printed numbers never depend on it. Pages run in a temporary directory, so a figure saved
  under a plain file name lands there during the tests, and next to the page when a reader runs
  the page from ``docs/lessons/`` (which is how the pictures in this folder were made).

Run one page with ``python -m pytest docs/lessons/03-the-trick.md``. A failure names the page and
the line of the block, with the expected and the printed text side by side (a unified diff);
an exception raised in a block shows the page's own line in the traceback.
"""
from __future__ import annotations

import contextlib
import difflib
import importlib.util
import io
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import pytest

PAGE_NAME = re.compile(r"^\d\d-[a-z0-9-]+\.md$")   # 01-the-core-problem.md, ...
FENCE = re.compile(r"^```(\S*)\s*$")               # a fence, with its language if it opens a block
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


class LessonError(AssertionError):
    """A page whose code does not do what the page says it does."""


@dataclass
class Block:
    language: str           # "python", "output", "text", ...
    first_line: int         # 1-based line number of the first line of code (after the fence)
    text: str
    follows_code: bool = False  # only blank lines between it and the previous fenced block


@dataclass
class CodeBlock:
    first_line: int
    code: str
    expected: Optional[str]  # the text of the ```output block under it, if there is one

    @property
    def draws_a_figure(self) -> bool:
        return re.search(r"^\s*(import|from) matplotlib", self.code, re.MULTILINE) is not None


def fenced_blocks(text: str, page: str = "page") -> List[Block]:
    """Every fenced block of a Markdown text, in order, with its language and first line."""
    blocks, lines = [], text.splitlines()
    open_at, language, previous_close = None, "", None
    for number, line in enumerate(lines, start=1):
        match = FENCE.match(line)
        if not match:
            if open_at is None and line.lstrip().startswith("```"):
                raise LessonError(f"{page}:{number}: an indented ``` fence would not run; start "
                                  f"code and output blocks at the beginning of the line")
            continue
        if open_at is None:
            open_at, language = number, match.group(1)
        elif match.group(1) == "":
            right_after = previous_close is not None and not any(
                row.strip() for row in lines[previous_close:open_at - 1])  # blank lines only
            blocks.append(Block(language, open_at + 1, "\n".join(lines[open_at:number - 1]),
                                follows_code=right_after))
            open_at, previous_close = None, number
    if open_at is not None:
        raise LessonError(f"{page}:{open_at}: a ``` fence is opened here and never closed")
    return blocks


def code_blocks(text: str, page: str = "page") -> List[CodeBlock]:
    """The ```python blocks of a page, each with the ```output block that shows what it prints."""
    result: List[CodeBlock] = []
    previous: Optional[Block] = None
    for block in fenced_blocks(text, page):
        if block.language == "python":
            result.append(CodeBlock(block.first_line, block.text, None))
        elif block.language == "output":
            if previous is None or previous.language != "python" or not block.follows_code:
                raise LessonError(f"{page}:{block.first_line - 1}: an ```output block must come "
                                  f"right under the ```python block whose output it shows")
            if result[-1].draws_a_figure:
                raise LessonError(f"{page}:{block.first_line - 1}: the block above draws a figure "
                                  f"(it imports matplotlib, which is optional); print the numbers "
                                  f"a page checks from a block of their own")
            result[-1].expected = block.text
        previous = block
    return result


def normalized(text: str) -> str:
    """Trailing whitespace of every line, and blank lines at the end, do not count."""
    return "\n".join(line.rstrip() for line in text.rstrip().splitlines())


def run_block(block: CodeBlock, namespace: dict, page: Path) -> str:
    """Run one block in the page's namespace and return what it printed. The code is compiled
    under the page's file name, shifted to its own lines, so tracebacks quote the page."""
    code = compile("\n" * (block.first_line - 1) + block.code, str(page), "exec")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(code, namespace)
    return printed.getvalue()


def run_page(page: Path, text: Optional[str] = None) -> int:
    """Run every code block of ``page`` (or of ``text``, read as that page) and check its output.
    Returns the number of blocks run; raises LessonError at the first difference."""
    page = Path(page)
    text = page.read_text(encoding="utf-8") if text is None else text
    namespace = {"__name__": "__lesson__"}
    ran = 0
    for block in code_blocks(text, page.name):
        where = f"{page.name}:{block.first_line}"
        if block.draws_a_figure:
            if not HAS_MATPLOTLIB:
                continue
            import matplotlib
            matplotlib.use("Agg")  # no window: the figure goes to a file
        printed = run_block(block, namespace, page)
        ran += 1
        if block.draws_a_figure:
            import matplotlib.pyplot as plt
            plt.close("all")
        if block.expected is None:
            if printed.strip():
                raise LessonError(f"{where}: this block prints\n{printed}\nbut the page shows no "
                                  f"```output block under it")
            continue
        if normalized(printed) != normalized(block.expected):
            diff = difflib.unified_diff(normalized(block.expected).splitlines(),
                                        normalized(printed).splitlines(),
                                        "shown in the page", "printed by the code", lineterm="")
            raise LessonError(f"{where}: the output shown in the page is not what the code "
                              f"prints:\n" + "\n".join(diff))
    return ran


# ---------------------------------------------------------------------------------------------
# pytest: each numbered page of this folder is one test
def pytest_collect_file(file_path, parent):
    if PAGE_NAME.match(file_path.name):
        return LessonPage.from_parent(parent, path=file_path)
    return None


class LessonPage(pytest.File):
    def collect(self):
        yield LessonRun.from_parent(self, name="runs as printed")


class LessonRun(pytest.Item):
    def runtest(self) -> None:
        here = os.getcwd()
        with tempfile.TemporaryDirectory() as scratch:  # figures are saved here, not in docs/
            os.chdir(scratch)
            try:
                run_page(self.path)
            finally:
                os.chdir(here)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, LessonError):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, 0, f"lesson {self.path.name}"
