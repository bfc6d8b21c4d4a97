"""Build hook: the wheel carries the runtime code that mlstack's constructs build assets from.

The repository keeps that code in its top-level ``containers/`` (the images' build context) and
``lambda/seed/`` and ``lambda/validate_input/`` (the functions), the one committed copy. A wheel
installed in another project has no checkout beside it, so building the wheel copies those trees
into ``mlstack/_bundled/`` inside the wheel, where ``mlstack.assets.runtime_path`` finds them.
An editable install copies nothing: it imports from the checkout, which has the trees.

Only what a build needs is copied: never caches, virtual environments, build output or tests;
for ``containers/`` also nothing its ``.dockerignore`` leaves out of the Docker build context.
"""

from __future__ import annotations

import fnmatch
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
# Keep in step with mlstack/assets.py (BUNDLED_DIR, and the trees it resolves).
BUNDLED = Path("mlstack", "_bundled")
TREES = ("containers", "lambda/seed", "lambda/validate_input")
ALWAYS_SKIPPED = (
    "__pycache__",
    "*.py[cod]",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".hypothesis",
    ".venv",
    "venv",
    "*.egg-info",
    "build",
    "dist",
    "tests",
)


def _dockerignore_patterns(tree: Path) -> list[str]:
    """The patterns of ``tree/.dockerignore`` that this copy understands: ``**/NAME`` (at any
    depth) and ``PATH`` (from the tree's root). Anything else stops the build rather than ship a
    file Docker would leave out."""
    path = tree / ".dockerignore"
    if not path.is_file():
        return []
    patterns = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("!") or "**" in line.removeprefix("**/"):
            raise SystemExit(
                f"{path}:{number}: {line!r}: setup.py copies only '**/NAME' and 'PATH' "
                "patterns; extend _dockerignore_patterns() before using this form"
            )
        patterns.append(line.rstrip("/"))
    return patterns


def _skipped(relative: str, patterns: list[str]) -> bool:
    name = relative.rsplit("/", 1)[-1]
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in ALWAYS_SKIPPED):
        return True
    for pattern in patterns:
        if pattern.startswith("**/"):
            if fnmatch.fnmatchcase(name, pattern[3:]):
                return True
        elif fnmatch.fnmatchcase(relative, pattern):
            return True
    return False


def copy_tree(source: Path, target: Path) -> list[Path]:
    """Copy what a build of ``source`` needs into ``target`` (modes kept: ``train`` and
    ``serve`` stay executable); return the files copied."""
    patterns = _dockerignore_patterns(source)
    copied = []
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source).as_posix()
        parts = relative.split("/")
        if any(_skipped("/".join(parts[: i + 1]), patterns) for i in range(len(parts))):
            continue
        if path.is_file():
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination)
            copied.append(destination)
    return copied


class BuildPyWithRuntimeCode(build_py):
    """``build_py`` that also copies :data:`TREES` into the wheel's ``mlstack/_bundled/``."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        bundled = Path(self.build_lib) / BUNDLED
        shutil.rmtree(bundled, ignore_errors=True)  # no file left over from an earlier build
        for tree in TREES:
            source = ROOT / tree
            if not source.is_dir():
                raise SystemExit(f"setup.py: {source} is missing; build from a full checkout")
            copy_tree(source, bundled / tree)


setup(cmdclass={"build_py": BuildPyWithRuntimeCode})
