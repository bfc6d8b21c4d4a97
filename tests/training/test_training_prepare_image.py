"""The training image carries ``prepare``: its launcher on PATH, pyarrow pinned as the dev venv
pins it, the launcher executable in git (COPY keeps the mode)."""

from __future__ import annotations

import subprocess

from tests.training.test_training_dockerfile import CONTAINERS, instructions, pins


def test_the_image_copies_prepare_onto_path() -> None:
    steps = instructions(CONTAINERS / "training" / "Dockerfile")
    copies = [rest.split() for keyword, rest in steps if keyword == "COPY"]
    assert ["training/prepare", "/usr/local/bin/prepare"] in copies


def test_the_image_pins_the_pyarrow_the_tests_use() -> None:
    image = pins(CONTAINERS / "training" / "requirements.txt")
    dev = pins(CONTAINERS / "requirements-dev.txt")
    assert image["pyarrow"] == dev["pyarrow"] == "26.0.1"


def test_the_prepare_launcher_is_executable_in_git() -> None:
    mode = subprocess.run(
        ["git", "ls-files", "-s", "containers/training/prepare"],
        cwd=CONTAINERS.parent,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert mode and mode[0] == "100755"
