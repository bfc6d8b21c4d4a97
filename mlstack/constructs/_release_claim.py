"""The release's claim: of the executions that start for one approved version over one live
endpoint configuration, one deploys and the others end quietly.

SageMaker "may send multiple events to EventBridge for each state change" (SageMaker developer
guide, "Automating SageMaker with Amazon EventBridge"), so the release may start twice for one
approval, at once. Each execution first creates the model
``<name_prefix>-claim-<MD5 of '<version ARN>|<live configuration or none>'>``; SageMaker creates a
name once, so the execution that finds it taken ends quietly (no failure mail, no second update).
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Aws
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from mlstack.constructs._state_builder import StateBuilder
from mlstack.constructs.state_names import CLAIMED_ELSEWHERE, RELEASED_ELSEWHERE

__all__ = ["CLAIM_TAKEN_CAUSE", "claim_state", "released_elsewhere"]

# SageMaker's answer to a CreateModel whose name is taken (ValidationException "Cannot create
# already existing model "<arn>".", the words the SageMaker Python SDK's Session.create_model
# recognises as "already exists"), inside the Cause Step Functions reports.
CLAIM_TAKEN_CAUSE = "*Cannot create already existing model*"


def package_model_request(
    builder: StateBuilder, model_name: str, *tags: dict[str, str]
) -> dict[str, Any]:
    """CreateModel's parameters for the model package version at ``$.package`` (its image and
    artifact), named by the intrinsic ``model_name``, tagged with the workflow, the version and
    ``tags``: a release model, or a claim on the version."""
    return {
        "ModelName.$": model_name,
        "ExecutionRoleArn": builder.role_arn,
        "PrimaryContainer": {
            "Image.$": "$.package.image",
            "ModelDataUrl.$": "$.package.model_data_url",
            "Mode": "SingleModel",
        },
        "EnableNetworkIsolation": builder.network_isolation,
        **builder.model_network(),
        "Tags": [
            {"Key": "mlstack:workflow", "Value": builder.name_prefix},
            {"Key": "mlstack:model-package", "Value.$": "$.package.arn"},
            *tags,
        ],
    }


def claim_state(
    scope: Construct,
    state_id: str,
    builder: StateBuilder,
    live_config: str | None,
    quiet: sfn.IChainable,
) -> sfn.CustomState:
    """CreateModel ``<name_prefix>-claim-<MD5 of '<version ARN>|<live config or none>'>``:
    SageMaker refuses a taken name, so of the executions that start for one version over
    one live configuration, one goes on. No retry: a retried call whose first try created
    the model would find its own claim taken."""
    basis = (
        f"States.Format('{{}}|{{}}', $.package.arn, {live_config})"
        if live_config
        else "States.Format('{}|none', $.package.arn)"
    )
    state = sfn.CustomState(
        scope,
        state_id,
        state_json={
            "Type": "Task",
            "Comment": "Fails for a claim another execution holds: then it releases.",
            "Resource": f"arn:{Aws.PARTITION}:states:::sagemaker:createModel",
            "Parameters": package_model_request(
                builder,
                f"States.Format('{builder.name_prefix}-claim-{{}}', States.Hash({basis}, 'MD5'))",
                {"Key": "mlstack:release-claim", "Value.$": "$$.Execution.Id"},
            ),
            "ResultSelector": {"ModelArn.$": "$.ModelArn"},
            "ResultPath": "$.claim",
        },
    )
    state.add_catch(quiet, errors=["States.ALL"], result_path="$.error")
    return state


def released_elsewhere(scope: Construct, endpoint_name: str, notify: sfn.IChainable) -> sfn.Choice:
    """A taken claim ends the execution quietly; any other failure to claim is a failure."""
    taken = sfn.CustomState(
        scope,
        RELEASED_ELSEWHERE,
        state_json={
            "Type": "Pass",
            "Parameters": {
                "result": "released by another execution",
                "model_package.$": "$.package",
                "endpoint_name": endpoint_name,
            },
            "End": True,
        },
    )
    choice = sfn.Choice(scope, CLAIMED_ELSEWHERE)
    # An error without a Cause must not fail the Choice itself (a path it reads is absent).
    choice.when(
        sfn.Condition.and_(
            sfn.Condition.is_present("$.error.Cause"),
            sfn.Condition.string_matches("$.error.Cause", CLAIM_TAKEN_CAUSE),
        ),
        taken,
    ).otherwise(notify)
    return choice
