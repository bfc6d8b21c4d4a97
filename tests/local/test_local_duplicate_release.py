"""One approval delivered twice, locally: the local EventBridge (``mlstack/local/events.py``) starts
the release state machine once per event, as EventBridge does for each event SageMaker sends
("SageMaker AI may send multiple events to EventBridge for each state change", SageMaker
developer guide, "Events that Amazon SageMaker AI sends to Amazon EventBridge"). Whether the two
executions run one after the other or at once (both read the live endpoint before either goes
on), the version is deployed once, the other execution succeeds without a second update, and no
failure is mailed. Version 1 comes from a real local run of dev; versions 2 and 3 are
registered beside it (the same artifact) and approved with their event queued twice."""

from __future__ import annotations

import io
import json
import re
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from mlstack.cli.local_registry import RegistryFile
from mlstack.local.account import LocalAccount
from mlstack.local.events import LocalEventBridge
from mlstack.local.runner import RunOptions, RunReport, run
from mlstack.local.tasks import TaskDispatcher
from mlstack.local.ui import Reporter
from tests import programs
from tests.local.conftest import LOCAL_RUN_ROWS

GROUP = "mlstack-dev"
ENDPOINT = "mlstack-dev-live"


def saved(workdir: Path) -> dict[str, Any]:
    account = LocalAccount.of(workdir, "dev")
    return json.loads((account.directory / "sagemaker" / "registry.json").read_text())


def live_version(workdir: Path) -> int:
    registry = saved(workdir)
    config = registry["endpoints"][ENDPOINT]["config_name"]
    found = re.match(r"mlstack-dev-v(\d+)-", config)
    assert found, config
    return int(found.group(1))


def configs_of(workdir: Path, version: int) -> list[str]:
    return [
        c for c in saved(workdir)["endpoint_configs"] if c.startswith(f"mlstack-dev-v{version}-")
    ]


def approve_twice(workdir: Path) -> int:
    """Register a version of version 1's artifact, Approved, its event queued twice."""
    path = LocalAccount.of(workdir, "dev").directory / "sagemaker" / "registry.json"
    reg = RegistryFile(path)
    first = next(p for p in reg.model_packages.values() if p["ModelPackageVersion"] == 1)
    arn = reg.create_model_package(
        {
            "ModelPackageGroupName": GROUP,
            "InferenceSpecification": first["InferenceSpecification"],
            "ModelMetrics": first["ModelMetrics"],
            "ModelApprovalStatus": "Approved",
            "CustomerMetadataProperties": first["CustomerMetadataProperties"],
        }
    )["ModelPackageArn"]
    pending = reg.saved.setdefault("pending_events", {})
    ((kind, detail),) = reg.events
    for _ in range(2):
        pending[str(uuid.uuid4())] = {"detail-type": kind, "detail": detail}
    reg._save_registry()
    return int(arn.rsplit("/", 1)[1])


def release(workdir: Path, cdk_out: Path, name: str) -> RunReport:
    # The programs forked with their libraries imported (tests/programs.py).
    with programs.forked_python():
        return run(
            RunOptions(
                environment="dev", workdir=workdir, cdk_out=cdk_out, release_only=True, name=name
            ),
            Reporter(out=io.StringIO()),
        )


def failure_mails(report: RunReport) -> list[dict[str, Any]]:
    path = report.run_dir / "sns.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def account(tmp_path_factory: pytest.TempPathFactory, cdk_out: Path) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("duplicates")
    workdir = tmp / "work"
    with pytest.MonkeyPatch.context() as mp, programs.forked_python():
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        first = run(
            RunOptions(
                environment="dev", rows=LOCAL_RUN_ROWS, workdir=workdir, cdk_out=cdk_out,
                name="dup-run-1",
            ),
            Reporter(out=io.StringIO()),
        )  # fmt: skip
    assert first.ok, first.failure_reason
    assert live_version(workdir) == 1
    return workdir, cdk_out


def test_the_second_of_two_sequential_executions_leaves_the_release_alone(
    account: tuple[Path, Path],
) -> None:
    workdir, cdk_out = account
    version = approve_twice(workdir)
    report = release(workdir, cdk_out, "dup-sequential")
    assert [r["status"] for r in report.releases] == ["SUCCEEDED", "SUCCEEDED"]
    assert [r["output"]["result"] for r in report.releases] == [
        "deployed",
        "already serving this version",
    ]
    assert live_version(workdir) == version
    assert len(configs_of(workdir, version)) == 1
    assert failure_mails(report) == []


def test_two_executions_at_once_deploy_once(
    account: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    workdir, cdk_out = account
    version = approve_twice(workdir)
    barrier = threading.Barrier(2, timeout=120)
    dispatch = TaskDispatcher.__call__

    def read_live_together(self: TaskDispatcher, call: Any) -> Any:
        try:
            return dispatch(self, call)
        finally:
            if call.state_name == "Read live endpoint":
                barrier.wait()

    def drain_at_once(self: LocalEventBridge, execute: Any) -> list[tuple[Any, Any]]:
        deliveries, self.pending = list(self.pending), []
        results: list[Any] = [None] * len(deliveries)

        def one(i: int) -> None:
            results[i] = execute(deliveries[i])

        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(deliveries))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        return list(zip(deliveries, results, strict=True))

    monkeypatch.setattr(TaskDispatcher, "__call__", read_live_together)
    monkeypatch.setattr(LocalEventBridge, "drain", drain_at_once)
    report = release(workdir, cdk_out, "dup-at-once")
    assert [r["status"] for r in report.releases] == ["SUCCEEDED", "SUCCEEDED"], [
        r["cause"] for r in report.releases
    ]
    assert sorted(r["output"]["result"] for r in report.releases) == [
        "deployed",
        "released by another execution",
    ]
    assert live_version(workdir) == version
    assert len(configs_of(workdir, version)) == 1
    assert failure_mails(report) == []
