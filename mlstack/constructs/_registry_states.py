"""Register model: the training workflow's state that adds the run's model to the registry."""

from __future__ import annotations

from typing import Any

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from mlstack.constructs._deploy_states import GATE_VALUE, gate_states
from mlstack.constructs._evaluation_states import evaluation_uri
from mlstack.constructs._fragment import Fragment, catch_failure
from mlstack.constructs._nag import acknowledge_wildcard_resources, default_policy
from mlstack.constructs._release_artifact_states import (
    allow_release_copy,
    release_artifact_state,
    released_model_data_url,
)
from mlstack.constructs._state_builder import StateBuilder
from mlstack.constructs.model_registry import REQUEST_CONTENT_TYPES, RESPONSE_CONTENT_TYPES
from mlstack.constructs.state_names import (
    DESCRIBE_TABLE_VERSION,
    DESCRIBE_VERSION,
    REGISTER_MODEL,
    TABLE_VERSION,
)
from mlstack.constructs.workflow_options import DeployStage, ModelRegistration
from mlstack.report import REPORT_FILE


def gate_and_registration_fragment(
    scope: Construct,
    registration: ModelRegistration,
    builder: StateBuilder,
    *,
    deploy: DeployStage | None,
    inference_image_uri: str,
    notify_failure: sfn.IChainable,
) -> Fragment:
    """[the quality gate ->] Release model artifact -> Table version? -> Describe (table) version
    -> Register model: with
    a deploy stage the gate decides what is registered (deployment is then the release's, on
    approval); ends at Register model. Its failures go to ``notify_failure``, wired here."""
    register = register_model(
        scope,
        registration,
        builder,
        inference_image_uri=inference_image_uri,
    )
    catch_failure(register, notify_failure)
    describe = describe_version(
        scope,
        gated=deploy is not None,
        report_uri=evaluation_uri(builder, REPORT_FILE),
        then=register,
    )
    release = release_artifact_state(scope, builder)  # the version serves this copy
    catch_failure(release, notify_failure)
    release.next(describe)
    if deploy is None:
        return Fragment(start=release, ends=(register,))
    gate = gate_states(scope, deploy, builder, on_pass=release, notify_failure=notify_failure)
    return Fragment(start=gate, ends=(register,))


def version_metadata(*, gated: bool, report_uri: str) -> dict[str, Any]:
    """The version's CustomerMetadataProperties on either dataset (each value 1 to 256 of
    letters, spaces, digits and _.:/=+-@: CustomerMetadataValue, SageMaker API reference; no
    JSON). The hyperparameters are the training job's, which the version names; the problem type
    is the evaluation's (what it read from the model's schema, or the objective's); the gate's
    value is a number's text. ``gated``: the quality gate that passed (the seeder's or a table's,
    ``$.gate``) adds its metric, value and comparison, which the release's A/B decision compares
    between versions. ``report_uri``: the run report (`mlstack report` writes it there:
    docs/evaluation.md)."""
    evidence = (
        {
            "gate_metric.$": "$.gate.metric",
            "gate_value.$": f"States.Format('{{}}', {GATE_VALUE})",
            "gate_comparison.$": "$.gate.comparison",
        }
        if gated
        else {}
    )
    return {
        "run_id.$": "$.run_id",
        "execution_arn.$": "$$.Execution.Id",
        "training_job.$": "$.training.TrainingJobName",
        "train_uri.$": "$.dataset.train_prefix",
        "validation_uri.$": "$.dataset.validation_prefix",
        "test_uri.$": "$.dataset.test_prefix",
        "problem_type.$": "$.evaluation.problem_type",
        "report.$": report_uri,
        **evidence,
    }


def describe_version(
    scope: Construct, *, gated: bool, report_uri: str, then: sfn.IChainable
) -> sfn.Choice:
    """Table version? -> Describe table version (with the schema's URI, and the class count and
    labels of Prepare data's ``registry`` entries) | Describe version -> ``then``: the metadata
    Register model records, in ``$.version`` (``common``, and ``table`` merged over it)."""
    choice = sfn.Choice(scope, TABLE_VERSION, comment="A run on a table (Prepare data's)?")
    common = version_metadata(gated=gated, report_uri=report_uri)
    table = sfn.CustomState(
        scope,
        DESCRIBE_TABLE_VERSION,
        state_json={
            "Type": "Pass",
            "Comment": "The schema (the model carries a copy) and its class labels.",
            "Parameters": {
                "common": {**common, "schema_uri.$": "$.dataset.schema_uri"},
                "table.$": "$.dataset.registry",
            },
            "ResultPath": "$.version",
        },
    )
    seeder = sfn.CustomState(
        scope,
        DESCRIBE_VERSION,
        state_json={
            "Type": "Pass",
            "Parameters": {"common": common, "table": {}},
            "ResultPath": "$.version",
        },
    )
    choice.when(sfn.Condition.is_present("$.dataset.schema_uri"), table).otherwise(seeder)
    table.next(then)
    seeder.next(then)
    return choice


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
) -> sfn.CustomState:
    """``createModelPackage`` (an AWS SDK integration: Step Functions has no optimized one for
    it) of a new version in the registry's group; its ARN, number and status go to
    ``$.model_package``. Its metadata is what Describe (table) version wrote to ``$.version``."""
    status = registration.approval_status
    state = sfn.CustomState(
        scope,
        REGISTER_MODEL,
        state_json={
            "Type": "Task",
            "Comment": f"A new version of {registration.registry.group_name}, {status}.",
            "Resource": f"arn:{Aws.PARTITION}:states:::aws-sdk:sagemaker:createModelPackage",
            "Parameters": _parameters(registration, builder, inference_image_uri),
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
) -> dict[str, Any]:
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
        # Describe (table) version's entries, the table's over the common ones.
        "CustomerMetadataProperties.$": (
            "States.JsonMerge($.version.common, $.version.table, false)"
        ),
    }
