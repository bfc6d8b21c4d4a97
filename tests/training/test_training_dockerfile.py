"""The training Dockerfiles: hadolint clean, pinned, and the launcher they put on PATH works."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.training.conftest import REFERENCE_HYPERPARAMETERS, Job, csv_bytes, reference_data

CONTAINERS = Path(__file__).resolve().parents[2] / "containers"
DOCKERFILES = {
    "cpu": (CONTAINERS / "training" / "Dockerfile", "training/requirements.txt", "xgboost-cpu"),
    "gpu": (
        CONTAINERS / "training" / "Dockerfile.gpu",
        "training/requirements-gpu.txt",
        "xgboost",
    ),
}
HADOLINT = Path(sys.executable).parent / "hadolint"


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def pins(requirements: Path) -> dict[str, str]:
    found = {}
    for line in requirements.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep, f"{requirements.name}: {line!r} is not pinned with =="
            found[name.strip().lower()] = version.strip()
    return found


@pytest.mark.parametrize("variant", DOCKERFILES)
def test_hadolint_is_clean(variant):
    dockerfile = DOCKERFILES[variant][0]
    result = subprocess.run(
        [str(HADOLINT), "--no-color", str(dockerfile)],
        cwd=CONTAINERS,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


@pytest.mark.parametrize("variant", DOCKERFILES)
def test_base_image_is_a_pinned_slim_python(variant):
    froms = [rest for keyword, rest in instructions(DOCKERFILES[variant][0]) if keyword == "FROM"]
    assert len(froms) == 1
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", froms[0]), froms[0]
    assert "latest" not in DOCKERFILES[variant][0].read_text()


@pytest.mark.parametrize("variant", DOCKERFILES)
def test_installs_pinned_requirements_common_package_and_train_on_path(variant):
    dockerfile, requirements, xgboost_dist = DOCKERFILES[variant]
    steps = instructions(dockerfile)
    copies = [rest.split() for keyword, rest in steps if keyword == "COPY"]
    assert [requirements, "/tmp/requirements.txt"] in copies
    assert ["common/", "/tmp/mlstack-common/"] in copies
    assert ["training/train", "/usr/local/bin/train"] in copies
    assert ["training/evaluate", "/usr/local/bin/evaluate"] in copies  # the Processing job's
    runs = " ".join(rest for keyword, rest in steps if keyword == "RUN")
    assert "--requirement /tmp/requirements.txt" in runs
    assert "--no-deps --no-build-isolation /tmp/mlstack-common" in runs
    assert ("CMD", '["train"]') in steps
    # No USER: SageMaker's mounts under /opt/ml are root-owned (see the Dockerfile's comment).
    assert not [rest for keyword, rest in steps if keyword == "USER"]

    # The image pins what the dev venv (and so the tests) use, XGBoost build aside.
    image = pins(CONTAINERS / requirements)
    dev = pins(CONTAINERS / "requirements-dev.txt")
    assert image[xgboost_dist] == dev["xgboost-cpu"] == "3.2.0"
    assert image["numpy"] == dev["numpy"]
    assert image["scipy"] == dev["scipy"]
    assert "setuptools" in image  # the build backend, pinned: no unpinned download at build


def test_dockerignore_keeps_tests_and_caches_out_but_not_what_is_copied():
    patterns = [
        line.strip()
        for line in (CONTAINERS / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for expected in ("**/tests", "**/__pycache__", "**/*.egg-info", "**/.pytest_cache"):
        assert expected in patterns
    for source in (
        "training/train",
        "training/evaluate",
        "training/requirements.txt",
        "common/pyproject.toml",
    ):
        assert (CONTAINERS / source).exists()
        assert not any(fnmatch.fnmatch(source, p) for p in patterns), source


@pytest.mark.parametrize("program", ["train", "evaluate"])
def test_launchers_are_executable_in_git(program):
    mode = subprocess.run(
        ["git", "ls-files", "-s", f"containers/training/{program}"],
        cwd=CONTAINERS.parent,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert mode and mode[0] == "100755"


def test_launcher_runs_as_in_the_image(tmp_path):
    """On PATH, away from the repository's .venv, as the image installs it."""
    bin_dir = tmp_path / "usr" / "local" / "bin"
    bin_dir.mkdir(parents=True)
    shutil.copy2(CONTAINERS / "training" / "train", bin_dir / "train")
    # python3 on PATH stands in for the image's interpreter (which has the package installed).
    (bin_dir / "python3").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (bin_dir / "python3").chmod(0o755)
    job = Job(tmp_path / "opt_ml")
    X, y = reference_data(300)
    job.hyperparameters(**REFERENCE_HYPERPARAMETERS)
    job.channels(train={"ContentType": "text/csv"})
    job.file("train", "train.csv", csv_bytes(X, y))
    env = job.env()
    del env["MLSTACK_PYTHON"]
    env["PATH"] = f"{bin_dir}:/usr/bin:/bin"
    result = subprocess.run(
        ["train"], env=env, capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (job.base / "model" / "xgboost-model").is_file()
