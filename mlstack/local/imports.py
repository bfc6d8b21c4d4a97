"""A local run's own table: ``mlstack local run --data PATH`` copies a file or a folder into the
local account's data bucket under ``imports/<key prefix>/`` and the run reads it from there.

The key prefix is ``local-<16 hex digits>/``, the start of a SHA-256 over every file's relative
path and bytes: the same data always lands under the same keys (running twice uploads the same
objects again, nothing piles up), and different data never overwrites another run's.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlstack.constructs.state_names import RESOLVE_SOURCE

# Resolve source's imports_uri: States.Format('s3://<bucket>/<imports prefix>{}', ...).
_IMPORTS_URI = re.compile(r"^States\.Format\('s3://([^/']+)/([^']*)\{\}'")


def data_files(path: Path) -> list[tuple[str, Path]]:
    """(relative name, file) of every file of ``path`` in name order (a file: itself); names
    starting with '.' are skipped as ``prepare`` skips them."""
    if path.is_file():
        return [(path.name, path)]
    if not path.is_dir():
        raise ValueError(
            f"--data {path}: no such file or folder (give a CSV or Parquet file, a "
            "folder of them, or an s3:// URI)"
        )
    files = sorted(
        (f.relative_to(path).as_posix(), f)
        for f in path.rglob("*")
        if f.is_file() and not any(p.startswith(".") for p in f.relative_to(path).parts)
    )
    if not files:
        raise ValueError(f"--data {path}: the folder holds no file")
    return files


def key_prefix(files: list[tuple[str, Path]]) -> str:
    """``local-<16 hex digits of SHA-256 over the names and bytes>/``."""
    digest = hashlib.sha256()
    for name, file in files:
        digest.update(name.encode() + b"\0")
        with file.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return f"local-{digest.hexdigest()[:16]}/"


def imports_location(definition: Mapping[str, Any]) -> tuple[str, str]:
    """The data bucket and its imports prefix, as the definition's Resolve source names them."""
    state = definition.get("States", {}).get(RESOLVE_SOURCE)
    uri = state and state.get("Parameters", {}).get("imports_uri.$")
    match = _IMPORTS_URI.match(uri) if isinstance(uri, str) else None
    if match is None:
        raise ValueError(
            "--data: this workflow has no table path (no Resolve source state); synthesize it "
            "from this version of mlstack"
        )
    return match.group(1), match.group(2)


def upload(client: Any, definition: Mapping[str, Any], path: Path) -> str:
    """Copy ``path`` under the data bucket's imports prefix; returns the key prefix (what the
    run's ``dataset_source.uri`` names)."""
    files = data_files(path)
    prefix = key_prefix(files)
    bucket, imports = imports_location(definition)
    for name, file in files:
        client.upload_file(str(file), bucket, f"{imports}{prefix}{name}")
    return prefix
