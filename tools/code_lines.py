"""Count lines of code: lines that hold a token other than a comment or a docstring.

Blank lines, comments and docstrings (a string that is a statement of its own) are not code.
This is how the README counts the teaching core (``tensor.py`` plus ``ops.py``), so that the
count it states can be checked, and ``tests/test_structure.py`` keeps it under its limit.

    python tools/code_lines.py tinygrad_reparam/tensor.py tinygrad_reparam/ops.py
"""
from __future__ import annotations

import io
import sys
import tokenize

NOT_CODE = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
            tokenize.ENDMARKER}
STATEMENT_START = {tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.NL}


def code_lines(source: str) -> int:
    """The number of lines of ``source`` that carry code."""
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    lines: set = set()
    for index, token in enumerate(tokens):
        if token.type in NOT_CODE:
            continue
        if token.type == tokenize.STRING and _is_docstring(tokens, index):
            continue
        lines.update(range(token.start[0], token.end[0] + 1))
    return len(lines)


def _is_docstring(tokens: list, index: int) -> bool:
    """A string token that starts a statement and is the whole statement."""
    before = tokens[index - 1].type if index > 0 else tokenize.NEWLINE
    after = index + 1
    while tokens[after].type == tokenize.STRING:  # implicitly concatenated pieces
        after += 1
    return before in STATEMENT_START and tokens[after].type in (tokenize.NEWLINE, tokenize.ENDMARKER)


def main(paths: list) -> int:
    total = 0
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            count = code_lines(handle.read())
        total += count
        print(f"{count:6d}  {path}")
    if len(paths) > 1:
        print(f"{total:6d}  total")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
