"""The lessons in docs/lessons/: complete, linked, and checked by a runner that can fail.

The pages themselves run as tests through ``docs/lessons/conftest.py`` (collected because
``setup.cfg`` lists docs/lessons in ``testpaths``). This file checks what a reader relies on
around them: the index lists every page in order and the project README links the index; every
page has its claim, an equation, 5 to 30 lines of code, printed output, links into the source
and to a demo, and one to three exercises with solutions; every relative link resolves, and a
link written as a function name (``[`Normal.cdf`](.../normal.py)``) names something that file
defines; every picture a page shows and draws itself is saved by its own code. And the runner is
tried on pages with a mistake in them: a changed digit, an unshown print, a misplaced output
block, an exception, each must fail.
"""
import ast
import configparser
import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LESSONS = ROOT / "docs" / "lessons"
PAGES = sorted(LESSONS.glob("[0-9][0-9]-*.md"))


def load_runner():
    """docs/lessons/conftest.py as a module of its own (the code that runs the pages)."""
    spec = importlib.util.spec_from_file_location("lesson_runner", LESSONS / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (dataclasses look their module up here)
    spec.loader.exec_module(module)
    return module


runner = load_runner()

LINK = re.compile(r"!?\[([^\]]*)\]\(([^)\s]+)\)")      # [text](target) and ![alt](target)
HTML_IMAGE = re.compile(r"<img [^>]*src=\"([^\"]+)\"")
# `name` or `Class.method` (but not `file.py`): a link text that promises a definition
QUALIFIED_NAME = re.compile(r"^`([A-Za-z_]\w*(?:\.(?!py`)[A-Za-z_]\w*)?)`$")


def relative_links(text: str) -> list:
    """(text, target) of every link to a file: not a web address, not an anchor on the page."""
    links = [(m.group(1), m.group(2)) for m in LINK.finditer(text)]
    links += [("", m.group(1)) for m in HTML_IMAGE.finditer(text)]
    return [(label, target.split("#")[0]) for label, target in links
            if not re.match(r"^[a-z]+:", target) and not target.startswith("#")]


def defined_names(path: Path) -> set:
    """Top-level functions and classes of a Python file, and ``Class.method`` for their methods."""
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        if isinstance(node, ast.ClassDef):
            names.update(f"{node.name}.{item.name}" for item in node.body
                         if isinstance(item, (ast.FunctionDef, ast.ClassDef)))
    return names


def split_page(text: str) -> tuple:
    """The page outside its <details> blocks, and the inside of those blocks."""
    inside = re.findall(r"<details>(.*?)</details>", text, flags=re.DOTALL)
    outside = re.sub(r"<details>.*?</details>", "", text, flags=re.DOTALL)
    return outside, "\n".join(inside)


# ---------------------------------------------------------------------------------------------
# The index and the pages it lists
def test_eleven_numbered_pages_one_per_section():
    assert [page.name[:2] for page in PAGES] == [f"{n:02d}" for n in range(1, 12)]


def test_the_index_lists_every_page_once_in_order_one_line_each():
    index = (LESSONS / "README.md").read_text(encoding="utf-8")
    listed = [target for _, target in relative_links(index) if runner.PAGE_NAME.match(target)]
    assert listed == [page.name for page in PAGES]
    for page in PAGES:
        lines = [line for line in index.splitlines() if f"({page.name})" in line]
        assert len(lines) == 1, f"{page.name} should have exactly one line in the index"


def test_the_project_readme_links_the_lesson_index_and_says_how_to_open_a_notebook():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/lessons/README.md)" in readme
    assert "jupytext --to notebook docs/lessons/" in readme


def test_python_m_pytest_collects_the_lessons():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    assert "docs/lessons" in config["tool:pytest"]["testpaths"].split()


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_page_has_its_parts(page):
    text = page.read_text(encoding="utf-8")
    outside, solutions = split_page(text)
    assert text.startswith(f"# {int(page.name[:2])}. "), "the title is '# N. ...'"
    assert "**Claim.**" in outside and "$$" in outside, "the claim, with its equation"

    blocks = runner.code_blocks(outside, page.name)
    lines = sum(len([row for row in block.code.splitlines() if row.strip()])
                for block in blocks if not block.draws_a_figure)
    assert 5 <= lines <= 30, f"{lines} lines of code outside the solutions and figures"
    assert any(block.expected for block in blocks), "the output the code prints"

    exercises = re.search(r"## Exercises\n(.*?)<details>", outside + "<details>", flags=re.DOTALL)
    assert exercises, "an Exercises section"
    numbered = re.findall(r"^(\d)\. ", exercises.group(1), flags=re.MULTILINE)
    assert 1 <= len(numbered) <= 3, "one to three exercises"
    assert "<summary>" in text and runner.code_blocks(solutions, page.name), \
        "solutions, with code, in a collapsed <details> block"

    targets = [target for _, target in relative_links(text)]
    assert any(re.search(r"demos/\w+\.py$", target) for target in targets), "a link to a demo"
    assert any(re.search(r"tinygrad_reparam/.+\.py$", target) for target in targets), \
        "a link into the source"


@pytest.mark.parametrize("page", PAGES + [LESSONS / "README.md"], ids=lambda page: page.name)
def test_every_link_resolves_and_every_named_function_exists(page):
    text = page.read_text(encoding="utf-8")
    for label, target in relative_links(text):
        path = (page.parent / target).resolve()
        assert path.exists(), f"{page.name}: the link to {target} leads nowhere"
        name = QUALIFIED_NAME.match(label)
        if name and path.suffix == ".py":
            assert name.group(1) in defined_names(path), \
                f"{page.name}: {target} defines no {name.group(1)}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_picture_a_page_draws_is_saved_by_its_own_code(page):
    text = page.read_text(encoding="utf-8")
    own_pictures = [target for _, target in relative_links(text)
                    if "/" not in target and target.endswith(".png")]
    figure_code = "\n".join(block.code for block in runner.code_blocks(text, page.name)
                            if block.draws_a_figure)
    for picture in own_pictures:
        assert f'savefig("{picture}"' in figure_code, f"no block of {page.name} draws {picture}"


FIGURE_PAGES = [page for page in PAGES if any(
    block.draws_a_figure for block in runner.code_blocks(page.read_text(encoding="utf-8")))]


@pytest.mark.parametrize("page", FIGURE_PAGES, ids=lambda page: page.name)
def test_a_page_runs_and_prints_the_same_without_matplotlib(page, monkeypatch, tmp_path):
    """matplotlib is optional: without it the figure blocks are skipped, and nothing after them
    may need what they made."""
    monkeypatch.setattr(runner, "HAS_MATPLOTLIB", False)
    monkeypatch.chdir(tmp_path)
    blocks = runner.code_blocks(page.read_text(encoding="utf-8"), page.name)
    assert runner.run_page(page) == len([block for block in blocks if not block.draws_a_figure])


# ---------------------------------------------------------------------------------------------
# The runner fails on a page that says something its code does not do
PAGE = """# A page

```python
x = 1.25
print(f"x = {x:.2f}")
```

```output
x = 1.25
```
"""


def test_the_runner_passes_a_correct_page_and_fails_on_a_changed_digit():
    assert runner.run_page(Path("page.md"), PAGE) == 1
    with pytest.raises(runner.LessonError, match=r"page.md:4: the output shown in the page is not"):
        runner.run_page(Path("page.md"), PAGE.replace("x = 1.25\n```\n", "x = 1.26\n```\n"))


def test_a_changed_number_in_a_real_lesson_turns_it_red():
    page = LESSONS / "02-why-sampling-is-not-differentiable.md"
    text = page.read_text(encoding="utf-8")
    shown = re.search(r"mu.grad = (-?\d+\.\d{4})", text).group(1)
    changed = shown[:-1] + str((int(shown[-1]) + 1) % 10)
    assert runner.run_page(page, text) >= 2
    with pytest.raises(runner.LessonError, match=re.escape(f"+mu.grad = {shown}")):
        runner.run_page(page, text.replace(f"mu.grad = {shown}", f"mu.grad = {changed}", 1))


def test_a_print_the_page_does_not_show_fails():
    with pytest.raises(runner.LessonError, match="shows no ```output block"):
        runner.run_page(Path("page.md"), "```python\nprint('hidden')\n```\n")


def test_an_output_block_must_sit_right_under_its_code():
    text = "```python\nprint(1)\n```\n\nSome prose.\n\n```output\n1\n```\n"
    with pytest.raises(runner.LessonError, match="must come right under"):
        runner.code_blocks(text, "page.md")


def test_an_indented_code_block_is_refused_rather_than_skipped():
    with pytest.raises(runner.LessonError, match="indented"):
        runner.code_blocks("1. A list item:\n\n   ```python\n   print(1)\n   ```\n", "page.md")


def test_a_figure_block_cannot_carry_the_checked_output():
    text = "```python\nimport matplotlib\nprint(1)\n```\n\n```output\n1\n```\n"
    with pytest.raises(runner.LessonError, match="draws a figure"):
        runner.code_blocks(text, "page.md")


def test_an_exception_in_a_block_points_at_the_line_of_the_page():
    text = "# A page\n\n```python\nx = 1\nraise ValueError('in the page')\n```\n"
    with pytest.raises(ValueError) as error:
        runner.run_page(Path("page.md"), text)
    assert error.traceback[-1].lineno + 1 == 5  # (pytest counts lines from 0)
