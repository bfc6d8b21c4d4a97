"""The model registry: one model package group per environment (stateful, in the data stack) and
the training workflow's Register model state that adds each gated run as a new version."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import RemovalPolicy
from aws_cdk.assertions import Template
from mlstack_containers.serving import codecs

from mlstack.config import ConfigError, parse_environment
from mlstack.constructs import ModelRegistry
from mlstack.constructs.workflow_options import ModelRegistration
from mlstack.local.intrinsics import evaluate as evaluate_intrinsic
from tests.infra.conftest import REPO, SynthesizedApp, new_stack, state_machine_definition

# Renaming it replaces the group and loses every version: part of the public contract.
GROUP_LOGICAL_ID = "ModelRegistryB238A970"


def groups(template: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v
        for k, v in template["Resources"].items()
        if v["Type"] == "AWS::SageMaker::ModelPackageGroup"
    }


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_each_environment_has_one_group_with_a_pinned_logical_id(
    synthesized: SynthesizedApp, env: str
) -> None:
    found = groups(synthesized.json(env, "data"))
    assert set(found) == {GROUP_LOGICAL_ID}
    assert found[GROUP_LOGICAL_ID]["Properties"]["ModelPackageGroupName"] == f"mlstack-{env}"
    outputs = synthesized.json(env, "data")["Outputs"]
    assert outputs["ModelPackageGroupName"]["Value"] == f"mlstack-{env}"


def test_prod_group_is_retained_and_dev_group_destroyed(synthesized: SynthesizedApp) -> None:
    prod = groups(synthesized.json("prod", "data"))[GROUP_LOGICAL_ID]
    dev = groups(synthesized.json("dev", "data"))[GROUP_LOGICAL_ID]
    assert (prod["DeletionPolicy"], prod["UpdateReplacePolicy"]) == ("Retain", "Retain")
    assert dev["DeletionPolicy"] == "Delete"


@pytest.fixture(scope="module")
def definitions(synthesized: SynthesizedApp) -> dict[str, dict[str, Any]]:
    return {
        env: state_machine_definition(synthesized.json(env, "workflow")) for env in ("dev", "prod")
    }


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_register_model_follows_the_passing_quality_gate(
    definitions: dict[str, dict[str, Any]], env: str
) -> None:
    states = definitions[env]["States"]
    passing = states["Quality gate"]["Choices"][-1]
    assert passing["Next"] == "Release model artifact"  # the copy the version serves
    assert states["Release model artifact"]["Next"] == "Table version?"
    # Table version? -> Describe (table) version -> Register model: the version's metadata.
    assert {states[s]["Next"] for s in ("Describe table version", "Describe version")} == {
        "Register model"
    }
    register = states["Register model"]
    # Step Functions has no optimized integration for CreateModelPackage: the AWS SDK one.
    assert register["Resource"] == "arn:aws:states:::aws-sdk:sagemaker:createModelPackage"
    assert register["Catch"][0]["Next"] == "Notify failure"
    assert register["ResultPath"] == "$.model_package"


@pytest.mark.parametrize(
    ("env", "status"), [("dev", "Approved"), ("prod", "PendingManualApproval")]
)
def test_the_version_is_registered_with_the_configured_approval_status(
    definitions: dict[str, dict[str, Any]], env: str, status: str
) -> None:
    register = definitions[env]["States"]["Register model"]
    assert register["Parameters"]["ModelApprovalStatus"] == status
    assert register["Parameters"]["ModelPackageGroupName"] == f"mlstack-{env}"
    assert register["ResultSelector"]["approval_status"] == status


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_inference_specification_is_what_save_model_deploys(
    definitions: dict[str, dict[str, Any]], env: str
) -> None:
    states = definitions[env]["States"]
    spec = states["Register model"]["Parameters"]["InferenceSpecification"]
    saved = states["Save model"]["Parameters"]["PrimaryContainer"]
    (container,) = spec["Containers"]
    assert container["Image"] == saved["Image"]
    # Save model's artifact is the training job's; the version serves Release model artifact's
    # copy of it under releases/<run_id>/ (docs/security.md, "Served artifacts are immutable").
    assert saved["ModelDataUrl.$"] == "$.training.ModelArtifacts.S3ModelArtifacts"
    assert container["ModelDataUrl.$"].startswith("States.Format('s3://")
    assert container["ModelDataUrl.$"].endswith("/releases/{}/model.tar.gz', $.run_id)")
    copy = states["Release model artifact"]["Parameters"]
    assert "/output/model.tar.gz" in copy["CopySource.$"]
    assert "$.training.TrainingJobName" in copy["CopySource.$"]
    # What the inference image's serve program accepts and answers, from its own codecs.
    assert set(spec["SupportedContentTypes"]) == set(codecs.REQUEST_TYPES.values())
    assert set(spec["SupportedResponseMIMETypes"]) == set(codecs.RESPONSE_TYPES.values())
    config = json.loads((REPO / "environments" / f"{env}.json").read_text())
    assert spec["SupportedRealtimeInferenceInstanceTypes"][0] == config["deploy"]["instance_type"]
    assert config["endpoint"]["instance_type"] in spec["SupportedRealtimeInferenceInstanceTypes"]
    assert spec["SupportedTransformInstanceTypes.$"] == (
        "States.Array($.args.transform_instance_type)"
    )


def test_metrics_and_metadata_point_at_the_run(definitions: dict[str, dict[str, Any]]) -> None:
    parameters = definitions["dev"]["States"]["Register model"]["Parameters"]
    statistics = parameters["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert statistics["ContentType"] == "application/json"
    # The report Evaluate model wrote, as Read evaluation names it.
    assert statistics["S3Uri.$"] == "$.evaluation.report_uri"
    report_uri = definitions["dev"]["States"]["Read evaluation"]["Parameters"]["report_uri.$"]
    assert "/evaluations/{}/evaluation.json', $.run_id)" in report_uri
    # Describe (table) version's entries, the table's merged over the common ones.
    assert parameters["CustomerMetadataProperties.$"] == (
        "States.JsonMerge($.version.common, $.version.table, false)"
    )
    metadata = definitions["dev"]["States"]["Describe version"]["Parameters"]["common"]
    assert metadata["run_id.$"] == "$.run_id"
    assert metadata["execution_arn.$"] == "$$.Execution.Id"
    # The training job (and with it its hyperparameters), named, not copied as JSON: a
    # CustomerMetadataValue allows no braces, quotes or commas (botocore's sagemaker model).
    assert metadata["training_job.$"] == "$.training.TrainingJobName"
    assert not any("JsonToString" in str(v) for v in metadata.values())
    assert {metadata[f"{c}_uri.$"] for c in ("train", "validation", "test")} == {
        "$.dataset.train_prefix",
        "$.dataset.validation_prefix",
        "$.dataset.test_prefix",
    }
    # A retried or redriven state must not add a second version for the same run.
    assert parameters["ClientToken.$"] == "$.run_id"


def test_the_version_number_is_read_from_the_arn(definitions: dict[str, dict[str, Any]]) -> None:
    expression = definitions["dev"]["States"]["Register model"]["ResultSelector"]["version.$"]
    # The ARN of a versioned model package (SageMaker API reference, DescribeModelPackage:
    # ModelPackageArn arn:aws:sagemaker:<region>:<account>:model-package/<group>/<version>).
    arn = "arn:aws:sagemaker:us-east-2:123456789012:model-package/mlstack-dev/12"
    assert evaluate_intrinsic(expression, {"ModelPackageArn": arn}, {}) == 12


def test_execution_output_carries_the_model_package(
    definitions: dict[str, dict[str, Any]],
) -> None:
    report = definitions["dev"]["States"]["Report results"]["Parameters"]
    assert report["model_package.$"] == "$.model_package"


def test_a_bad_approval_status_fails_the_config_naming_the_key() -> None:
    raw = json.loads((REPO / "environments" / "dev.json").read_text())
    raw["registry"]["approval_status"] = "Yes"
    with pytest.raises(ConfigError) as error:
        parse_environment("dev", raw)
    assert "registry.approval_status" in str(error.value)
    assert "PendingManualApproval" in str(error.value)


def test_registration_refuses_an_unknown_status() -> None:
    registry = ModelRegistry(new_stack(), "Registry", group_name="team-a")
    with pytest.raises(ValueError, match=r"approval_status='Rejected': expected one of"):
        ModelRegistration(registry=registry, approval_status="Rejected")


def test_registry_refuses_a_group_name_sagemaker_would_change() -> None:
    with pytest.raises(ValueError, match=r"ModelRegistry group_name='Team_A': expected"):
        ModelRegistry(new_stack(), "Registry", group_name="Team_A")


def test_registry_construct_defaults_to_retain() -> None:
    stack = new_stack()
    ModelRegistry(stack, "Registry", group_name="team-a")
    ModelRegistry(stack, "Scratch", group_name="team-b", removal_policy=RemovalPolicy.DESTROY)
    template = Template.from_stack(stack)
    template.has_resource(
        "AWS::SageMaker::ModelPackageGroup",
        {"DeletionPolicy": "Retain", "Properties": {"ModelPackageGroupName": "team-a"}},
    )
    template.has_resource(
        "AWS::SageMaker::ModelPackageGroup",
        {"DeletionPolicy": "Delete", "Properties": {"ModelPackageGroupName": "team-b"}},
    )
