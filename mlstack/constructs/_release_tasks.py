"""The release's own SageMaker tasks, each rendering its state and returning its IAM: Describe
package (DescribeModelPackage on the group's versions) and the release's models (Create release
model and the claims: CreateModel of ``<name_prefix>-*``). What the deploy fragment calls is
``EndpointDeployment``'s (``_deploy_states.py``), the A/B decision's ``_ab_states.py``'s."""

from __future__ import annotations

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from mlstack.constructs._release_claim import claim_state, package_model_request
from mlstack.constructs._state_builder import StateBuilder
from mlstack.constructs.model_registry import ModelRegistry
from mlstack.constructs.roles import create_statements, sagemaker_arn
from mlstack.constructs.state_names import CREATE_RELEASE_MODEL, DESCRIBE_PACKAGE

__all__ = ["DescribePackage", "ReleaseModels"]


class DescribePackage:
    """Describe package: the approved version's status, image and artifact at ``$.package``."""

    def __init__(self, registry: ModelRegistry, builder: StateBuilder) -> None:
        self.registry = registry
        self.builder = builder

    def state(self, scope: Construct, notify: sfn.IChainable) -> sfn.CustomState:
        state = sfn.CustomState(
            scope,
            DESCRIBE_PACKAGE,
            state_json={
                "Type": "Task",
                "Resource": f"arn:{Aws.PARTITION}:states:::aws-sdk:sagemaker:describeModelPackage",
                "Parameters": {"ModelPackageName.$": "$.event.detail.ModelPackageArn"},
                "ResultSelector": {
                    "arn.$": "$.ModelPackageArn",
                    "version.$": "$.ModelPackageVersion",
                    "approval_status.$": "$.ModelApprovalStatus",
                    "image.$": "$.InferenceSpecification.Containers[0].Image",
                    "model_data_url.$": "$.InferenceSpecification.Containers[0].ModelDataUrl",
                },
                "ResultPath": "$.package",
            },
        )
        self.builder.retry_sagemaker(state, sdk=True)
        state.add_catch(notify, errors=["States.ALL"], result_path="$.error")
        return state

    def grant(self, role: iam.IRole) -> iam.Grant:
        """DescribeModelPackage on the group's versions only (the registry's read grant)."""
        return self.registry.grant_read(role)


class ReleaseModels:
    """The release's CreateModel tasks: Create release model (``<name_prefix>-v<N>-…``, the
    model the endpoint serves) and the claims (``<name_prefix>-claim-…``,
    ``_release_claim.py``), each tagged with the workflow and the version."""

    def __init__(self, builder: StateBuilder) -> None:
        self.builder = builder

    def claim(
        self, scope: Construct, state_id: str, live_config: str | None, quiet: sfn.IChainable
    ) -> sfn.CustomState:
        return claim_state(scope, state_id, self.builder, live_config, quiet)

    def state(self, scope: Construct, notify: sfn.IChainable) -> sfn.CustomState:
        """Create release model, its name and id at ``$.model``."""
        builder = self.builder
        state = sfn.CustomState(
            scope,
            CREATE_RELEASE_MODEL,
            state_json={
                "Type": "Task",
                "Resource": f"arn:{Aws.PARTITION}:states:::sagemaker:createModel",
                "Parameters": package_model_request(
                    builder,
                    f"States.Format('{builder.name_prefix}-v{{}}-{{}}-{{}}', "
                    "$.package.version, "
                    "States.ArrayGetItem(States.StringSplit(States.UUID(), '-'), 0), "
                    "$$.State.RetryCount)",
                ),
                "ResultSelector": {
                    "ModelArn.$": "$.ModelArn",
                    "ModelName.$": "States.ArrayGetItem(States.StringSplit($.ModelArn, '/'), 1)",
                },
                "ResultPath": "$.model",
            },
        )
        builder.retry_sagemaker(state)
        state.add_catch(notify, errors=["States.ALL"], result_path="$.error")
        return state

    def policy_statements(self, scope: Construct) -> list[iam.PolicyStatement]:
        """CreateModel of the release's models, as the workflow's requests do (isolation and
        network in IAM's conditions: ``StateBuilder.create_guards``), with the tags it sets and
        Step Functions' read of them (ListTags)."""
        create = create_statements(
            scope,
            sid="CreateReleaseModels",
            resource="model",
            api="Model",
            name_prefix=self.builder.name_prefix,
            guards=self.builder.create_guards("model"),
            manage=(),
        )
        tag = iam.PolicyStatement(
            sid="TagReleaseModels",
            actions=["sagemaker:AddTags", "sagemaker:ListTags"],
            resources=[sagemaker_arn(scope, "model", f"{self.builder.name_prefix}-*")],
        )
        return [*create, tag]
