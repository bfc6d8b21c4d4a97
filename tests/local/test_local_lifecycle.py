"""Register -> approve -> release, locally: the dev run registers its model (Approved) and the local
EventBridge runs the release state machine from the assembly's rule; EventBridge's pattern
matching; events left by `mlstack local approve` are delivered by the next run."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from mlstack.cli import main
from mlstack.local.assembly import EventRule, LocalAssembly, StateMachine
from mlstack.local.events import LocalEventBridge, matches
from mlstack.local.model_packages import MODEL_PACKAGE_STATE_CHANGE
from mlstack.local.runner import RunReport, deliver_pending, format_summary
from mlstack.local.sagemaker import LocalSageMaker, deployed_endpoints
from tests import once, programs
from tests.local.conftest import LOCAL_RUN_ROWS

# The example event of "SageMaker model package state change" (SageMaker developer guide,
# "Events that Amazon SageMaker AI sends to Amazon EventBridge"), trimmed to what rules read.
DOC_EVENT: dict[str, Any] = {
    "version": "0",
    "id": "844e2571-85d4-695f-b930-0153b71dcb42",
    "detail-type": "SageMaker Model Package State Change",
    "source": "aws.sagemaker",
    "account": "123456789012",
    "time": "2021-02-24T17:00:14Z",
    "region": "us-east-2",
    "resources": [
        "arn:aws:sagemaker:us-east-2:123456789012:model-package/versionedmp-p-idy6c3e1fiqj/2"
    ],
    "detail": {
        "ModelPackageGroupName": "versionedmp-p-idy6c3e1fiqj",
        "ModelPackageVersion": 2,
        "ModelPackageArn": (
            "arn:aws:sagemaker:us-east-2:123456789012:model-package/versionedmp-p-idy6c3e1fiqj/2"
        ),
        "ModelPackageStatus": "Completed",
        "ModelApprovalStatus": "Approved",
    },
}
PATTERN = {
    "source": ["aws.sagemaker"],
    "detail-type": ["SageMaker Model Package State Change"],
    "detail": {
        "ModelPackageGroupName": ["versionedmp-p-idy6c3e1fiqj"],
        "ModelApprovalStatus": ["Approved"],
    },
}


def test_the_release_pattern_matches_an_approval_of_its_group_only() -> None:
    assert matches(PATTERN, DOC_EVENT)
    pending = {**DOC_EVENT, "detail": {**DOC_EVENT["detail"], "ModelApprovalStatus": "Rejected"}}
    other = {**DOC_EVENT, "detail": {**DOC_EVENT["detail"], "ModelPackageGroupName": "other"}}
    no_detail = {k: v for k, v in DOC_EVENT.items() if k != "detail"}
    assert not any(matches(PATTERN, e) for e in (pending, other, no_detail))


def test_pattern_operators_of_the_eventbridge_guide() -> None:
    event = {"source": "aws.sagemaker", "detail": {"status": "Approved", "tags": ["a", "b"]}}
    assert matches({"detail": {"tags": ["b"]}}, event)  # any element of an event's array
    assert matches({"source": [{"prefix": "aws."}]}, event)
    assert matches({"detail": {"status": [{"anything-but": ["Rejected"]}]}}, event)
    assert not matches({"detail": {"status": [{"anything-but": "Approved"}]}}, event)
    assert matches({"detail": {"missing": [{"exists": False}]}}, event)
    assert not matches({"detail": {"status": [{"exists": False}]}}, event)


def bridge(tmp_path: Path) -> tuple[LocalEventBridge, LocalSageMaker]:
    machine = StateMachine("release", "arn:aws:states:us-east-1:0:stateMachine:r", "role", {})
    assembly = LocalAssembly(
        environment="dev",
        directory=tmp_path,
        region="us-east-1",
        account="000000000000",
        templates={},
        definition={},
        state_machine_name="wf",
        state_machine_arn="arn:wf",
        state_machine_role_arn="role",
        lambdas={},
        images={},
        buckets=[],
        topics=[],
        state_machines={machine.arn: machine},
        event_rules=[
            EventRule(
                "OnApproval",
                {**PATTERN, "detail": {"ModelApprovalStatus": ["Approved"]}},
                (machine.arn,),
            )
        ],
    )
    events = LocalEventBridge(assembly)
    sagemaker = LocalSageMaker(tmp_path, None, {}, on_event=events.service_event)  # type: ignore[arg-type]
    sagemaker.ensure_model_package_group("mlstack-dev")
    return events, sagemaker


def test_registration_queues_the_release_only_when_approved(tmp_path: Path) -> None:
    events, sagemaker = bridge(tmp_path)
    spec = {"Containers": [{"Image": "i", "ModelDataUrl": "s3://b/m"}]}
    request = {"ModelPackageGroupName": "mlstack-dev", "InferenceSpecification": spec}
    pending = sagemaker.create_model_package(
        {**request, "ModelApprovalStatus": "PendingManualApproval"}
    )
    assert events.pending == []  # prod: waits for a person
    sagemaker.update_model_package({**pending, "ModelApprovalStatus": "Approved"})
    (delivery,) = events.pending
    assert delivery.event["detail-type"] == MODEL_PACKAGE_STATE_CHANGE
    assert delivery.event["source"] == "aws.sagemaker"
    assert delivery.event["resources"] == [pending["ModelPackageArn"]]
    assert delivery.event["detail"]["ModelPackageVersion"] == 1
    ran = events.drain(lambda d: d.machine.name)
    assert [result for _, result in ran] == ["release"]
    assert events.pending == []


def test_events_left_in_the_account_are_delivered_by_the_next_run(tmp_path: Path) -> None:
    events, sagemaker = bridge(tmp_path)
    detail = dict(DOC_EVENT["detail"])
    sagemaker.pending_events["e1"] = {"detail-type": MODEL_PACKAGE_STATE_CHANGE, "detail": detail}
    deliver_pending(sagemaker, events)
    assert [d.event["detail"] for d in events.pending] == [detail]
    assert sagemaker.pending_events == {}
    registry = json.loads((tmp_path / "sagemaker" / "registry.json").read_text())
    assert registry["pending_events"] == {}


def test_a_dev_run_registers_and_releases_its_model(local_run: RunReport) -> None:
    assert local_run.ok, local_run.failure_reason
    package = local_run.output["model_package"]
    assert package["approval_status"] == "Approved"
    assert package["arn"].endswith(f"model-package/mlstack-dev/{package['version']}")
    # The training workflow ends at Register model; the release deployed the endpoint.
    assert local_run.states[-2:] == ["Register model", "Report results"]
    (release,) = local_run.releases
    assert release["status"] == "SUCCEEDED", release["cause"]
    assert release["output"]["result"] == "deployed"
    assert release["output"]["model_name"].startswith(f"mlstack-dev-v{package['version']}-")
    assert "mlstack-dev-live" in deployed_endpoints(local_run.run_dir)
    summary = format_summary(local_run)
    assert f"Model package     mlstack-dev version {package['version']} (Approved)" in summary
    assert f"Release           version {package['version']} SUCCEEDED, deployed:" in summary


def test_prod_waits_for_approval_and_local_approve_releases_it(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    # prod registers PendingManualApproval (environments/prod.json's registry.approval_status):
    # nothing is deployed until a person approves; `mlstack local approve` then starts the
    # release in the same local account, as the EventBridge rule does in AWS.
    cdk_out, workdir = once.environment_assembly(tmp_path_factory, "prod"), tmp_path / "work"
    common = ["--env", "prod", "--workdir", str(workdir)]
    run_args = ["local", "run", *common, "--cdk-out", str(cdk_out), "--plain"]
    # The programs forked with their libraries imported (tests/programs.py).
    with programs.forked_python():
        code = main([*run_args, "--rows", str(LOCAL_RUN_ROWS), "--input", '{"tune": false}'])
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]
    assert "mlstack-prod version 1 (PendingManualApproval)" in out
    assert "mlstack local approve --env prod --version 1" in out
    account = workdir / "accounts" / "prod"
    assert deployed_endpoints(account) == {}
    with programs.forked_python():
        code = main(["local", "approve", *common, "--version", "1", "--cdk-out", str(cdk_out)])
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]
    assert "Release           version 1 SUCCEEDED, deployed: mlstack-prod-live" in out
    assert "mlstack-prod-live" in deployed_endpoints(account)
    code = main(["local", "models", *common])
    listing = capsys.readouterr().out
    assert code == 0 and re.search(r"^\s+1\s+Approved\s", listing, re.M), listing
    # Approving again changes nothing and starts no second release.
    code = main(["local", "approve", *common, "--version", "1", "--cdk-out", str(cdk_out)])
    out = capsys.readouterr().out
    assert code == 0 and "already Approved: nothing changed" in out and "Release" not in out
