"""Register model: the training workflow's state that adds the run's model to the registry."""

from __future__ import annotations

from typing import Any

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from mlstack.constructs._deploy_states import gate_states, gate_value_path
from mlstack.constructs._fragment import Fragment, catch_failure
from mlstack.constructs._nag import acknowledge_wildcard_resources, default_policy
from mlstack.constructs._release_artifact_states import (
    allow_release_copy,
    release_artifact_state,
    released_model_data_url,
)
from mlstack.constructs._state_builder import StateBuilder
from mlstack.constructs.model_registry import REQUEST_CONTENT_TYPES, RESPONSE_CONTENT_TYPES
from mlstack.constructs.state_names import REGISTER_MODEL
from mlstack.constructs.workflow_options import DeployStage, ModelRegistration


def gate_and_registration_fragment(
    scope: Construct,
    registration: ModelRegistration,
    builder: StateBuilder,
    *,
    deploy: DeployStage | None,
    inference_image_uri: str,
    notify_failure: sfn.IChainable,
) -> Fragment:
    """[Read validation metric -> Quality gate ->] Register model: with a deploy stage the
    gate decides what is registered (deployment is then the release's, on approval); ends at
    Register model. Its failures go to ``notify_failure``, wired here."""
    register = register_model(
        scope,
        registration,
        builder,
        inference_image_uri=inference_image_uri,
        gate=None if deploy is None else (deploy.metric, gate_value_path(deploy)),
    )
    catch_failure(register, notify_failure)
    release = release_artifact_state(scope, builder)  # the version serves this copy
    catch_failure(release, notify_failure)
    release.next(register)
    if deploy is None:
        return Fragment(start=release, ends=(register,))
    gate = gate_states(scope, deploy, builder, on_pass=release, notify_failure=notify_failure)
    return Fragment(start=gate, ends=(register,))


def allow_registration(
    role: iam.Role, registration: ModelRegistration, builder: StateBuilder
) -> None:
    """Register model's CreateModelPackage on the group's versions, whose numbers SageMaker
    picks, and Release model artifact's copy before it."""
    group = registration.registry.group_name
    registration.registry.grant_register(role)
    acknowledge_wildcard_resources(
        default_policy(role),
        [
            (
                registration.registry.package_arns,
                f"Versions of the model package group {group} only.",
            )
        ],
    )
    allow_release_copy(role, builder)


def register_model(
    scope: Construct,
    registration: ModelRegistration,
    builder: StateBuilder,
    *,
    inference_image_uri: str,
    gate: tuple[str, str] | None = None,
) -> sfn.CustomState:
    """``createModelPackage`` (an AWS SDK integration: Step Functions has no optimized one for
    it) of a new version in the registry's group; its ARN, number and status go to
    ``$.model_package``. ``gate`` (the quality gate's metric and the path of its value) adds
    both to the version's metadata (``gate_metric``, ``gate_value``): the release's A/B
    decision compares them between versions."""
    status = registration.approval_status
    state = sfn.CustomState(
        scope,
        REGISTER_MODEL,
        state_json={
            "Type": "Task",
            "Comment": f"A new version of {registration.registry.group_name}, {status}.",
            "Resource": f"arn:{Aws.PARTITION}:states:::aws-sdk:sagemaker:createModelPackage",
            "Parameters": _parameters(registration, builder, inference_image_uri, gate),
            "ResultSelector": {
                "arn.$": "$.ModelPackageArn",
                # model-package/<group>/<N>: the version is the ARN's last part.
                "version.$": (
                    "States.StringToJson(States.ArrayGetItem("
                    "States.StringSplit($.ModelPackageArn, '/'), 2))"
                ),
                "approval_status": status,
            },
            "ResultPath": "$.model_package",
        },
    )
    builder.retry_sagemaker(state, sdk=True)
    return state


def _parameters(
    registration: ModelRegistration,
    builder: StateBuilder,
    inference_image_uri: str,
    gate: tuple[str, str] | None,
) -> dict[str, Any]:
    evidence = (
        {"gate_metric": gate[0], "gate_value.$": f"States.Format('{{}}', {gate[1]})"}
        if gate is not None
        else {}
    )
    return {
        "ModelPackageGroupName": registration.registry.group_name,
        "ModelPackageDescription.$": "States.Format('Run {} (execution {})', $.run_id, "
        "$$.Execution.Name)",
        "ModelApprovalStatus": registration.approval_status,
        # One version per run, however often the state is retried or the run redriven.
        "ClientToken.$": "$.run_id",
        "InferenceSpecification": {
            "Containers": [
                {
                    "Image": inference_image_uri,
                    "ModelDataUrl.$": released_model_data_url(builder),
                }
            ],
            "SupportedContentTypes": list(REQUEST_CONTENT_TYPES),
            "SupportedResponseMIMETypes": list(RESPONSE_CONTENT_TYPES),
            "SupportedRealtimeInferenceInstanceTypes": list(registration.realtime_instance_types),
            "SupportedTransformInstanceTypes.$": "States.Array($.args.transform_instance_type)",
        },
        "ModelMetrics": {
            "ModelQuality": {
                "Statistics": {
                    "ContentType": "application/json",
                    # Read evaluation's report (evaluations/<run_id>/evaluation.json).
                    "S3Uri.$": "$.evaluation.report_uri",
                }
            }
        },
        # Each value 1 to 256 of letters, spaces, digits and _.:/=+-@ (CustomerMetadataValue,
        # SageMaker API reference): no JSON. The hyperparameters are the training job's, which
        # the version names; the gate value is a number's text.
        "CustomerMetadataProperties": {
            "run_id.$": "$.run_id",
            "execution_arn.$": "$$.Execution.Id",
            "training_job.$": "$.training.TrainingJobName",
            "train_uri.$": "$.dataset.train_prefix",
            "validation_uri.$": "$.dataset.validation_prefix",
            "test_uri.$": "$.dataset.test_prefix",
            **evidence,
        },
    }
