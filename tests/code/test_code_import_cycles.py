"""No import circle in mlstack/: every module's imports, at its top, inside functions and under
``TYPE_CHECKING`` alike, form a graph without a cycle, so each module can be read (and loaded)
before the modules that use it. A circle is reported with its modules in order."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "mlstack"


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str], root: Path = ROOT) -> set[str]:
    """The package's modules that ``path`` imports (``from a import b`` counts ``a.b`` when
    that is a module, else ``a``)."""
    found: set[str] = set()
    here = module_name(path, root)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != here:
                found.add(name)
                break
    return found


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Each module of ``package`` with the package's modules it imports."""
    paths = sorted(package.rglob("*.py"))
    root = package.parent
    modules = {module_name(p, root) for p in paths}
    return {module_name(p, root): imports_of(p, modules, root) for p in paths}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_the_package_imports() -> None:
    graph = import_graph()
    assert "mlstack.local.runner" in graph
    # runner.py: `from mlstack.local.sagemaker import LocalSageMaker, deployed_endpoints`.
    assert "mlstack.local.sagemaker" in graph["mlstack.local.runner"]


def test_a_circle_is_found_wherever_its_imports_are(tmp_path: Path) -> None:
    # One at the top, one inside a function and one under TYPE_CHECKING: all three count.
    package = tmp_path / "mlstack"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from mlstack import b\n")
    (package / "b.py").write_text("def f():\n    from mlstack.c import x\n")
    (package / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from mlstack.a import y\n"
    )
    assert cycles(import_graph(package)) == [["mlstack.a", "mlstack.b", "mlstack.c"]]


def test_no_import_circle_in_the_package() -> None:
    found = cycles(import_graph())
    assert not found, f"import circles (break each so one module only uses the other): {found}"
