"""No function in mlstack/ is longer than MAX_LINES: a long body gets named steps instead.

A function's length runs from its ``def`` line to its last line, docstring and signature
included. ALLOWED may name an exception with its length ceiling and why it stays (it is empty:
every function fits); an entry whose function got short enough (or went away) fails too, so the
list only shrinks.
"""

from __future__ import annotations

import ast
from pathlib import Path

MAX_LINES = 80
PACKAGE = Path(__file__).resolve().parents[2] / "mlstack"

# "path:qualified name": (ceiling, reason). Keep it short; split a function rather than add one.
ALLOWED: dict[str, tuple[int, str]] = {}


def function_lengths() -> dict[str, int]:
    """Every function and method of the package by ``path:qualified name``, with its length."""
    lengths: dict[str, int] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()

        def visit(node: ast.AST, prefix: str, module: str = module) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                    name = f"{prefix}{child.name}"
                    assert child.end_lineno is not None
                    lengths[f"{module}:{name}"] = child.end_lineno - child.lineno + 1
                    visit(child, f"{name}.")
                elif isinstance(child, ast.ClassDef):
                    visit(child, f"{prefix}{child.name}.")

        visit(ast.parse(path.read_text(), filename=str(path)), "")
    return lengths


def test_the_walk_finds_the_package_functions() -> None:
    lengths = function_lengths()
    assert len(lengths) > 300
    assert "constructs/realtime_endpoint.py:RealtimeEndpoint.__init__" in lengths


def test_no_function_is_longer_than_the_limit() -> None:
    too_long = {
        name: length
        for name, length in function_lengths().items()
        if length > ALLOWED.get(name, (MAX_LINES, ""))[0]
    }
    assert not too_long, (
        f"functions over {MAX_LINES} lines (split them into named steps): {too_long}"
    )


def test_allowlist_has_no_stale_entries() -> None:
    lengths = function_lengths()
    stale = [name for name in ALLOWED if lengths.get(name, 0) <= MAX_LINES]
    assert not stale, f"now at most {MAX_LINES} lines or gone; remove from ALLOWED: {stale}"
