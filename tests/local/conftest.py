"""Fixtures: fake AWS settings for every test, and the dev app synthesized once per session."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlstack.local.runner import RunOptions, RunReport, run
from mlstack.local.ui import Reporter
from tests import once, programs
from tests.fake_aws import use_fake_aws

LOCAL_RUN_ROWS = 500


@pytest.fixture(autouse=True)
def fake_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test reaches AWS: fake credentials, a region, no instance metadata."""
    use_fake_aws(monkeypatch)
    yield


@pytest.fixture(scope="session")
def cdk_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cloud assembly of the dev environment, synthesized in-process (as `cdk synth` would),
    once per session for every file and worker (tests/once.py); read, never write."""
    return once.environment_assembly(tmp_path_factory, "dev")


@pytest.fixture(scope="session")
def local_run(cdk_out: Path, tmp_path_factory: pytest.TempPathFactory) -> RunReport:
    """One successful local run of dev on 500 rows, shared by the tests that inspect it: made
    once per session for every file and worker (tests/once.py); they read it, never write it."""

    def make(workdir: Path) -> RunReport:
        # The programs forked with their libraries imported (tests/programs.py).
        with pytest.MonkeyPatch.context() as mp, programs.forked_python():
            mp.setenv("AWS_ACCESS_KEY_ID", "testing")
            mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
            mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
            options = RunOptions(
                environment="dev",
                rows=LOCAL_RUN_ROWS,
                workdir=workdir,
                cdk_out=cdk_out,
                name="test-run-1",
            )
            return run(options, Reporter(out=io.StringIO()))

    inputs = {"local run": "dev", "rows": LOCAL_RUN_ROWS, "name": "test-run-1"}
    return once.per_session(tmp_path_factory, inputs, make)
