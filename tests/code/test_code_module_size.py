"""No module in mlstack/ is over MAX_MODULE_LINES, no class over MAX_CLASS_LINES.

A reader finds a thing by its module's name; a module or a class past these sizes holds several
things. ALLOWED names the exceptions that other work splits, each with its ceiling and why; an
entry that got small enough (or went away) fails too, so the list only shrinks.

mlstack/local/ is left to tests/code/test_code_local_sizes.py and import circles to
tests/code/test_code_import_cycles.py (both from issue #23's local part, on main since 84b16db).
"""

from __future__ import annotations

import ast
from pathlib import Path

MAX_MODULE_LINES = 800
MAX_CLASS_LINES = 400
PACKAGE = Path(__file__).resolve().parents[2] / "mlstack"

LOCAL = "local/"  # tests/code/test_code_local_sizes.py

# "path" or "path:Class": (ceiling, reason). Split a module rather than add one.
ALLOWED: dict[str, tuple[int, str]] = {
    "config.py": (1125, "issue #23 part B makes rules.py the one home of config's checks"),
}


def sizes() -> dict[str, int]:
    """Every module (``path``) and class (``path:Class``, nested ones dotted) with its lines."""
    found: dict[str, int] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        if module.startswith(LOCAL):
            continue
        text = path.read_text()
        found[module] = len(text.splitlines())

        def visit(node: ast.AST, prefix: str, module: str = module) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.ClassDef):
                    assert child.end_lineno is not None
                    name = f"{prefix}{child.name}"
                    found[f"{module}:{name}"] = child.end_lineno - child.lineno + 1
                    visit(child, f"{name}.")

        visit(ast.parse(text, filename=str(path)), "")
    return found


def _limit(name: str) -> int:
    return MAX_CLASS_LINES if ":" in name else MAX_MODULE_LINES


def test_the_walk_finds_the_package_modules_and_classes() -> None:
    found = sizes()
    assert "constructs/training_workflow.py" in found
    assert "constructs/training_workflow.py:TrainingWorkflow" in found
    assert found["constructs/training_workflow.py:TrainingWorkflow"] > 100


def test_no_module_or_class_is_over_its_limit() -> None:
    over = {
        name: lines
        for name, lines in sizes().items()
        if lines > ALLOWED.get(name, (_limit(name), ""))[0]
    }
    assert not over, (
        f"over {MAX_MODULE_LINES} lines a module or {MAX_CLASS_LINES} a class (split them by "
        f"what they hold): {over}"
    )


def test_allowlist_has_no_stale_entries() -> None:
    found = sizes()
    stale = [name for name in ALLOWED if found.get(name, 0) <= _limit(name)]
    assert not stale, f"remove from ALLOWED, they fit now: {stale}"
