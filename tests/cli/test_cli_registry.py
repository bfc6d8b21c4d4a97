"""`mlstack models`, `approve` and `reject` against moto's SageMaker, S3 and CloudFormation, and
`mlstack local models|approve|reject` against a local account's registry."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from mlstack.cli import local_registry, main
from mlstack.local.sagemaker import LocalSageMaker

GROUP = "mlstack-dev"
BUCKET = "data-bucket"
SPEC = {
    "Containers": [
        {"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/i:1", "ModelDataUrl": "s3://b/m"}
    ],
    "SupportedContentTypes": ["text/csv"],
    "SupportedResponseMIMETypes": ["text/csv"],
}
# SageMaker's model quality metrics format (the evaluation step's evaluation.json).
REPORT = {
    "binary_classification_metrics": {
        "accuracy": {"value": 0.9725, "standard_deviation": "NaN"},
        "auc": {"value": 0.99, "standard_deviation": "NaN"},
        "confusion_matrix": {"0": {"0": 10, "1": 1}, "1": {"0": 2, "1": 30}},
    }
}


def metrics(run: str) -> dict[str, Any]:
    uri = f"s3://{BUCKET}/evaluations/{run}/evaluation.json"
    return {"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": uri}}}


@pytest.fixture
def aws() -> Iterator[Any]:
    with mock_aws():
        template = {
            "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
            "Outputs": {"ModelPackageGroupName": {"Value": GROUP}},
        }
        boto3.client("cloudformation").create_stack(
            StackName="dev-Data", TemplateBody=json.dumps(template)
        )
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="evaluations/r1/evaluation.json", Body=json.dumps(REPORT))
        sagemaker = boto3.client("sagemaker")
        sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
        for run in ("r1", "r2"):
            sagemaker.create_model_package(
                ModelPackageGroupName=GROUP,
                InferenceSpecification=SPEC,
                ModelApprovalStatus="PendingManualApproval",
                ModelMetrics=metrics(run),
            )
        yield sagemaker


def test_models_lists_versions_with_status_and_metrics(
    aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["models", "--env", "dev"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"Model package group {GROUP}: 2 version(s)"
    v1, v2 = out[2:]
    assert v1.split()[:2] == ["1", "PendingManualApproval"]
    assert v1.endswith("accuracy=0.9725, auc=0.99")  # no confusion matrix: not one number
    # Version 2's report was never written: said, not fatal.
    assert v2.split()[:2] == ["2", "PendingManualApproval"]
    assert f"(cannot read s3://{BUCKET}/evaluations/r2/evaluation.json" in v2


def test_approve_updates_the_version_and_says_it_releases(
    aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["approve", "--env", "dev", "--version", "2"]) == 0
    assert "version 2 is Approved" in capsys.readouterr().out
    arn = f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{GROUP}/2"
    described = aws.describe_model_package(ModelPackageName=arn)
    assert described["ModelApprovalStatus"] == "Approved"
    assert described["ApprovalDescription"] == "approved with `mlstack approve`"
    other = aws.describe_model_package(ModelPackageName=arn[:-1] + "1")
    assert other["ModelApprovalStatus"] == "PendingManualApproval"
    # Approving it again changes nothing (no second state change, no second release).
    assert main(["approve", "--env", "dev", "--version", "2"]) == 0
    assert "already Approved: nothing changed" in capsys.readouterr().out


def test_reject_needs_a_reason_and_records_it(aws: Any, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as usage:
        main(["reject", "--env", "dev", "--version", "1"])
    assert usage.value.code == 2
    assert "--reason" in capsys.readouterr().err
    assert main(["reject", "--env", "dev", "--version", "1", "--reason", "AUC fell"]) == 0
    arn = f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{GROUP}/1"
    described = aws.describe_model_package(ModelPackageName=arn)
    assert (described["ModelApprovalStatus"], described["ApprovalDescription"]) == (
        "Rejected",
        "AUC fell",
    )
    main(["models", "--env", "dev"])
    assert "[AUC fell]" in capsys.readouterr().out


def test_an_unknown_version_names_the_known_ones(
    aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["approve", "--env", "dev", "--version", "7"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"mlstack approve: model package group {GROUP} has no version 7 (versions: 1, 2)"
    )


@pytest.mark.usefixtures("aws")
def test_an_undeployed_data_stack_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--env", "prod"]) == 1
    assert "stack prod-Data is not deployed" in capsys.readouterr().err


def local_account(workdir: Path) -> LocalSageMaker:
    """A local account's registry as a local run leaves it: one version, its report in S3."""
    account = workdir / "accounts" / "dev"
    report = account / "s3" / BUCKET / "evaluations" / "r1" / "evaluation.json"
    report.parent.mkdir(parents=True)
    report.write_text(json.dumps(REPORT))
    sagemaker = LocalSageMaker(account, None, {})  # type: ignore[arg-type]
    sagemaker.ensure_model_package_group(GROUP)
    sagemaker.create_model_package(
        {
            "ModelPackageGroupName": GROUP,
            "InferenceSpecification": SPEC,
            "ModelApprovalStatus": "PendingManualApproval",
            "ModelMetrics": metrics("r1"),
        }
    )
    return sagemaker


def test_local_commands_read_and_change_the_local_account(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    local_account(tmp_path)
    released: list[Any] = []
    # The release itself is a local run of the account (tests/local); here: that it is started.
    monkeypatch.setattr(local_registry, "release", lambda args: released.append(args) or 0)
    workdir = ["--workdir", str(tmp_path)]
    assert main(["local", "models", "--env", "dev", *workdir]) == 0
    line = capsys.readouterr().out.splitlines()[2]
    assert line.split()[:2] == ["1", "PendingManualApproval"]
    assert line.endswith("accuracy=0.9725, auc=0.99")
    assert main(["local", "approve", "--env", "dev", "--version", "1", *workdir]) == 0
    registry = json.loads((tmp_path / "accounts/dev/sagemaker/registry.json").read_text())
    (version,) = registry["model_packages"].values()
    assert version["ModelApprovalStatus"] == "Approved"
    assert "models" in registry  # the other kinds of the registry are kept
    # The approval's event waits in the account for the release the command then starts.
    (event,) = registry["pending_events"].values()
    assert event["detail-type"] == "SageMaker Model Package State Change"
    assert event["detail"]["ModelApprovalStatus"] == "Approved"
    assert [a.env for a in released] == ["dev"]
    # Rejecting starts nothing.
    assert (
        main(["local", "reject", "--env", "dev", "--version", "1", "--reason", "no", *workdir]) == 0
    )
    assert len(released) == 1


def test_local_commands_without_an_account_say_what_to_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["local", "models", "--env", "prod", "--workdir", str(tmp_path)]) == 1
    assert "run `mlstack local run --env prod` first" in capsys.readouterr().err
