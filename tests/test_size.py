"""Sizes a newcomer can read: no module of ``streams/`` or ``sim/`` over 600 lines, and no
function anywhere in the packages over 60 lines of code (blank lines, comments and the
docstring not counted). A longer piece is split where a reader wants its parts named."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULE_LIMIT = 600
MODULE_PACKAGES = ("streams", "sim")
FUNCTION_LIMIT = 60
FUNCTION_PACKAGES = ("streams", "detectors", "topics", "sim", "benchmarks")


def _modules(packages: tuple[str, ...]) -> Iterator[Path]:
    for package in packages:
        yield from sorted((ROOT / package).rglob("*.py"))


def _code_lines(function: ast.FunctionDef | ast.AsyncFunctionDef, source: list[str]) -> int:
    """Lines of ``function`` holding code: not blank, not only a comment, not its docstring."""
    skip: set[int] = set()
    body = function.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        if isinstance(body[0].value.value, str) and body[0].end_lineno is not None:
            skip = set(range(body[0].lineno, body[0].end_lineno + 1))
    first = min([function.lineno, *(d.lineno for d in function.decorator_list)])
    last = function.end_lineno or function.lineno
    return sum(
        1
        for number in range(first, last + 1)
        if number not in skip
        and source[number - 1].strip()
        and not source[number - 1].strip().startswith("#")
    )


def test_no_module_of_streams_or_sim_is_over_the_limit() -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for path in _modules(MODULE_PACKAGES)
        if (lines := len(path.read_text().splitlines())) > MODULE_LIMIT
    }
    assert not long, f"modules over {MODULE_LIMIT} lines: {long}"


def test_no_function_is_over_the_limit() -> None:
    long: dict[str, int] = {}
    for path in _modules(FUNCTION_PACKAGES):
        text = path.read_text()
        source = text.splitlines()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                if (lines := _code_lines(node, source)) > FUNCTION_LIMIT:
                    long[f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"] = lines
    assert not long, f"functions over {FUNCTION_LIMIT} lines of code: {long}"


def test_the_counter_counts_code_only() -> None:
    text = 'def f():\n    """Doc\n    string."""\n\n    # a comment\n    x = 1\n    return x\n'
    function = ast.parse(text).body[0]
    assert isinstance(function, ast.FunctionDef)
    assert _code_lines(function, text.splitlines()) == 3
