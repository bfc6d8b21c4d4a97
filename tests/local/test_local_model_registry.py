"""LocalSageMaker's model registry calls, against moto's SageMaker as the reference client
sees it (boto3 shapes), and its events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from mlstack.local.model_packages import MODEL_PACKAGE_STATE_CHANGE
from mlstack.local.sagemaker import LocalSageMaker, SageMakerError

SPEC = {
    "Containers": [
        {"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/x:1", "ModelDataUrl": "s3://b/m"}
    ],
    "SupportedContentTypes": ["text/csv"],
    "SupportedResponseMIMETypes": ["text/csv"],
}
METRICS = {"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": "s3://b/e"}}}


@pytest.fixture()
def local(tmp_path: Path) -> tuple[LocalSageMaker, list[tuple[str, dict[str, Any]]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    sagemaker = LocalSageMaker(
        tmp_path,
        None,  # type: ignore[arg-type]  # the registry calls touch no S3
        {},
        account="123456789012",
        on_event=lambda kind, detail: events.append((kind, detail)),
    )
    sagemaker.ensure_model_package_group("mlstack-dev")
    return sagemaker, events


def scenario(call: Any) -> list[tuple[int, str, str]]:
    """Three versions, the second approved, the third rejected; (version, status, ARN tail)."""
    for status in ("PendingManualApproval", "PendingManualApproval", "Approved"):
        call(
            "create_model_package",
            ModelPackageGroupName="mlstack-dev",
            InferenceSpecification=SPEC,
            ModelApprovalStatus=status,
            ModelMetrics=METRICS,
        )
    listed = call("list_model_packages", ModelPackageGroupName="mlstack-dev")
    arns = [v["ModelPackageArn"] for v in listed["ModelPackageSummaryList"]]
    call("update_model_package", ModelPackageArn=arns[1], ModelApprovalStatus="Approved")
    call(
        "update_model_package",
        ModelPackageArn=arns[2],
        ModelApprovalStatus="Rejected",
        ApprovalDescription="worse than v2",
    )
    listed = call("list_model_packages", ModelPackageGroupName="mlstack-dev")
    rejected = call("describe_model_package", ModelPackageName=arns[2])
    assert rejected["ApprovalDescription"] == "worse than v2"
    assert rejected["ModelMetrics"] == METRICS
    assert rejected["InferenceSpecification"] == SPEC
    return [
        (v["ModelPackageVersion"], v["ModelApprovalStatus"], v["ModelPackageArn"].split(":", 5)[5])
        for v in listed["ModelPackageSummaryList"]
    ]


def test_versions_are_numbered_and_approved_as_moto_does(
    local: tuple[LocalSageMaker, list[tuple[str, dict[str, Any]]]],
) -> None:
    sagemaker, _ = local

    def local_call(name: str, **params: Any) -> Any:
        return getattr(sagemaker, name)(params)

    with mock_aws():
        client = boto3.client("sagemaker", region_name="us-east-1")
        client.create_model_package_group(ModelPackageGroupName="mlstack-dev")
        expected = scenario(lambda name, **params: getattr(client, name)(**params))
    assert scenario(local_call) == expected
    assert [s for _, s, _ in expected] == ["PendingManualApproval", "Approved", "Rejected"]


def test_an_unknown_group_or_status_is_a_validation_error(
    local: tuple[LocalSageMaker, list[tuple[str, dict[str, Any]]]],
) -> None:
    sagemaker, _ = local
    with pytest.raises(SageMakerError, match="does not exist") as error:
        sagemaker.create_model_package(
            {"ModelPackageGroupName": "other", "InferenceSpecification": SPEC}
        )
    assert error.value.code == "ValidationException"
    with pytest.raises(SageMakerError, match="modelApprovalStatus"):
        sagemaker.create_model_package(
            {
                "ModelPackageGroupName": "mlstack-dev",
                "InferenceSpecification": SPEC,
                "ModelApprovalStatus": "Yes",
            }
        )


def test_a_repeated_client_token_answers_the_same_version(
    local: tuple[LocalSageMaker, list[tuple[str, dict[str, Any]]]],
) -> None:
    # CreateModelPackage's ClientToken "guarantees that the call to this API is idempotent"
    # (SageMaker API reference); moto ignores it, so the expectation is the documented one.
    sagemaker, events = local
    request = {"ModelPackageGroupName": "mlstack-dev", "InferenceSpecification": SPEC}
    first = sagemaker.create_model_package({**request, "ClientToken": "run-1"})
    again = sagemaker.create_model_package({**request, "ClientToken": "run-1"})
    other = sagemaker.create_model_package({**request, "ClientToken": "run-2"})
    assert first == again
    assert other["ModelPackageArn"].endswith("/mlstack-dev/2")
    assert len(events) == 2


def test_creation_and_status_changes_are_announced_as_eventbridge_events(
    local: tuple[LocalSageMaker, list[tuple[str, dict[str, Any]]]],
) -> None:
    sagemaker, events = local
    arn = sagemaker.create_model_package(
        {"ModelPackageGroupName": "mlstack-dev", "InferenceSpecification": SPEC}
    )["ModelPackageArn"]
    sagemaker.update_model_package({"ModelPackageArn": arn, "ApprovalDescription": "looked"})
    sagemaker.update_model_package({"ModelPackageArn": arn, "ModelApprovalStatus": "Approved"})
    # A description alone changes no state: two events, creation then approval.
    assert [(kind, d["ModelApprovalStatus"]) for kind, d in events] == [
        (MODEL_PACKAGE_STATE_CHANGE, "PendingManualApproval"),
        (MODEL_PACKAGE_STATE_CHANGE, "Approved"),
    ]
    detail = events[-1][1]
    assert detail["ModelPackageGroupName"] == "mlstack-dev"
    assert detail["ModelPackageVersion"] == 1
    assert detail["ModelPackageArn"] == arn


def test_the_registry_file_keeps_groups_and_versions(
    local: tuple[LocalSageMaker, list[tuple[str, dict[str, Any]]]], tmp_path: Path
) -> None:
    sagemaker, _ = local
    sagemaker.create_model_package(
        {"ModelPackageGroupName": "mlstack-dev", "InferenceSpecification": SPEC}
    )
    registry = json.loads((tmp_path / "sagemaker" / "registry.json").read_text())
    assert set(registry["model_package_groups"]) == {"mlstack-dev"}
    (version,) = registry["model_packages"].values()
    assert version["ModelPackageVersion"] == 1
