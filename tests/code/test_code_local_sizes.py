"""Local mode stays readable in pieces: no module of mlstack/local/ over MAX_MODULE_LINES lines
and no class over MAX_CLASS_LINES (issue #23: one module per entity behind a thin facade, as the
SageMaker Python SDK's local mode keeps one class per job kind). A class's length runs from its
``class`` line (decorators excluded) to its last line."""

from __future__ import annotations

import ast
from pathlib import Path

MAX_MODULE_LINES = 800
MAX_CLASS_LINES = 400
LOCAL = Path(__file__).resolve().parents[2] / "mlstack" / "local"


def module_lengths() -> dict[str, int]:
    return {
        p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in sorted(LOCAL.glob("*.py"))
    }


def class_lengths() -> dict[str, int]:
    lengths: dict[str, int] = {}
    for path in sorted(LOCAL.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.ClassDef):
                assert node.end_lineno is not None
                lengths[f"{path.name}:{node.name}"] = node.end_lineno - node.lineno + 1
    return lengths


def test_the_walk_finds_the_local_modules_and_classes() -> None:
    assert "sagemaker.py" in module_lengths()
    assert "sagemaker.py:LocalSageMaker" in class_lengths()
    assert "asl.py:Interpreter" in class_lengths()


def test_no_local_module_is_longer_than_the_limit() -> None:
    too_long = {n: length for n, length in module_lengths().items() if length > MAX_MODULE_LINES}
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines (split them): {too_long}"


def test_no_local_class_is_longer_than_the_limit() -> None:
    too_long = {n: length for n, length in class_lengths().items() if length > MAX_CLASS_LINES}
    assert not too_long, f"classes over {MAX_CLASS_LINES} lines (split them): {too_long}"
