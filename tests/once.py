"""What several test files build alike, built once per session for all of them and for both of
`make test`'s workers: synthesized cloud assemblies, the shared local run.

Synthesizing the app runs the four policy engines, and many files read the same app (every
environment, dev or prod alone, prod after its release); many read the same local run of dev.
Each distinct input is built once per pytest session, into a directory under the session's base
temp that both xdist workers see (a worker's base temp is ``<session base temp>/gwN``); a file
lock lets one worker build it while the other waits, then each reads the result (pickled). The
key is a digest of everything that decides the output: the inputs the caller names
(environments, configs, run options), cdk.json's context, every file under the sources the app,
its assets and the local run read, and the versions of the packages that synthesize it.

What is built here is read, never written: a test that changes files in it copies them first.
A test whose point is its own synth or run (the real ``cdk synth`` CLI, a changed config in tmp,
two runs in one account) keeps its own.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import pickle
import shutil
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[1]
# What the app reads when it synthesizes (mlstack/local/assembly.py's SOURCES; cdk.json's "watch").
SOURCES = ("app.py", "cdk.json", "mlstack", "environments", "lambda", "containers")
_SKIP_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
# The packages whose code writes the templates and runs the policy engines.
PACKAGES = (
    "aws-cdk-lib",
    "constructs",
    "jsii",
    "cdk-nag",
    "cdklabs.cdk-validator-cfnguard",
    "aws-cdk.asset-awscli-v1",
    "aws-cdk.asset-node-proxy-agent-v6",
    "aws-cdk.cloud-assembly-schema",
)


@functools.cache
def sources_digest() -> str:
    """A digest of every source file's path and bytes, and of the packages' versions."""
    digest = hashlib.sha256()
    for name in SOURCES:
        top = REPO / name
        files = [top] if top.is_file() else []
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(
                d for d in dirnames if d not in _SKIP_DIRS and not d.endswith(".egg-info")
            )
            files += [Path(dirpath, f) for f in sorted(filenames) if not f.endswith(".pyc")]
        for path in files:
            digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    for package in PACKAGES:
        try:
            version = metadata.version(package)
        except metadata.PackageNotFoundError:
            version = "absent"
        digest.update(f"{package}=={version}\0".encode())
    return digest.hexdigest()


def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's directory of shared assemblies, the same for both xdist workers."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # <session base temp>/gwN -> <session base temp>
    root = base / "shared-assemblies"
    root.mkdir(parents=True, exist_ok=True)
    return root


def cache_key(inputs: Any) -> str:
    context = json.loads((REPO / "cdk.json").read_text(encoding="utf-8"))["context"]
    document = json.dumps(
        {"inputs": inputs, "context": context, "sources": sources_digest()},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(document.encode()).hexdigest()[:24]


def per_session(
    tmp_path_factory: pytest.TempPathFactory, inputs: Any, make: Callable[[Path], T]
) -> T:
    """``make(directory)``'s result for ``inputs``, made once per session (``directory`` is new
    and empty, and stays: the result may point into it).

    ``inputs`` must name everything ``make`` depends on besides the sources and cdk.json: an
    environment's name, the configs it synthesizes, a run's options (JSON-able data).
    """
    root = cache_root(tmp_path_factory)
    key = cache_key(inputs)
    directory, result = root / key, root / f"{key}.pickle"
    with (root / f"{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not result.is_file():
            shutil.rmtree(directory, ignore_errors=True)  # a failed try's leftovers
            value = make(directory)
            (root / f"{key}.inputs.json").write_text(json.dumps(inputs, default=str, indent=1))
            partial = root / f"{key}.part"
            partial.write_bytes(pickle.dumps(value))
            partial.rename(result)
            return value
    loaded: T = pickle.loads(result.read_bytes())
    return loaded


def environment_assembly(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """``cdk.out`` of one shipped environment alone, as ``mlstack.local.assembly.synthesize``
    (what ``mlstack local run`` does) writes it."""
    from mlstack.local import assembly

    def synthesize(outdir: Path) -> Path:
        assembly.synthesize(name, outdir)
        return outdir

    return per_session(tmp_path_factory, {"synthesize": name}, synthesize)
