"""A misspelt `--env` is refused before anything is made for it: no account folder, no run
folder, and a message naming the environments there are (the files of environments/, listed
here with the same glob the README documents: one JSON file per environment)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlstack.cli import main
from mlstack.config import ENVIRONMENTS_DIR


def test_local_run_of_a_misspelt_environment_makes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir = tmp_path / "work"
    code = main(["local", "run", "--env", "dve", "--workdir", str(workdir), "--name", "r1"])
    err = capsys.readouterr().err
    assert code == 1
    assert not workdir.exists() or list(workdir.rglob("*")) == []
    known = sorted(p.stem for p in ENVIRONMENTS_DIR.glob("*.json") if p.stem != "schema")
    assert known and all(name in err for name in known)
    assert "'dve'" in err and "--env" in err
    assert len(err.strip().splitlines()) == 1
