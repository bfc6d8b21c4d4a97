"""Deletes a model package group's versions when its stack is deleted."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import CfnResource, CustomResource, Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from mlstack.constructs._nag import (
    acknowledge_compliance,
    acknowledge_guard,
    acknowledge_inline_policy,
    acknowledge_scoped_wildcards,
    default_policy,
    skip_checkov,
)
from mlstack.constructs.endpoint_cleanup import CLOUDFORMATION_WAITS, ONCE_PER_DELETION
from mlstack.constructs.model_registry import ModelRegistry

CODE_DIR = Path(__file__).resolve().parent / "model_package_cleanup_code"


class ModelPackageCleanup(Construct):
    """Creates a custom resource whose deletion deletes every version of ``registry``'s model
    package group, so that CloudFormation can then delete the group (it cannot while the group
    holds versions), with a function whose role may only list the group's versions, delete them
    and write its own log group.

    Create it only where the group is deleted with its stack (``RemovalPolicy.DESTROY``), in a
    stack deleted before the group's, and make what registers versions depend on ``resource``
    so that it is deleted first.

    Args:
        registry: the :class:`ModelRegistry` whose versions are deleted with the stack.

    Attributes:
        resource: the custom resource.
        function: the function that deletes the versions.
        role: the function's role.
    """

    def __init__(self, scope: Construct, id: str, *, registry: ModelRegistry) -> None:
        super().__init__(scope, id)
        group = registry.group_name
        log_group = logs.LogGroup(
            self,
            "Logs",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Deletes the versions of model package group {group} with its stack",
        )
        acknowledge_inline_policy(self.role)
        registry.grant_delete_versions(self.role)
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteOwnLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn],
            )
        )
        acknowledge_scoped_wildcards(
            default_policy(self.role),
            [
                (":*", "Log streams of the function's own log group only."),
                (f"/{group}/*", "The versions of this group only."),
            ],
        )
        self.function = lambda_.Function(
            self,
            "Function",
            description=f"Deletes the versions of model package group {group} with its stack",
            runtime=lambda_.Runtime.PYTHON_3_14,
            architecture=lambda_.Architecture.ARM_64,
            handler="index.handler",
            code=lambda_.Code.from_asset(
                str(CODE_DIR), exclude=["__pycache__", "*.pyc", "__init__.py"]
            ),
            timeout=Duration.minutes(15),
            memory_size=128,
            role=self.role,
            log_group=log_group,
        )
        for rule, check, reason in (
            ("LambdaDLQ", "CKV_AWS_116", CLOUDFORMATION_WAITS),
            ("LambdaConcurrency", "CKV_AWS_115", ONCE_PER_DELETION),
        ):
            acknowledge_compliance(self.function, rule, reason)
            skip_checkov(self.function, check, reason)
        outside = (
            "Runs once, when the stack is deleted, and calls only the SageMaker API; it is "
            "created only for environments that destroy their data (dev), which run without "
            "network isolation."
        )
        acknowledge_compliance(self.function, "LambdaInsideVPC", outside)
        acknowledge_guard(self.function, "lambda_inside_vpc_check", outside)
        skip_checkov(self.function, "CKV_AWS_117", outside)
        self.resource = CustomResource(
            self,
            "Resource",
            service_token=self.function.function_arn,
            resource_type="Custom::ModelPackageCleanup",
            properties={"ModelPackageGroupName": group},
        )
        # On deletion the function must still have its permissions and its log group.
        policy = default_policy(self.role).node.default_child
        assert isinstance(policy, CfnResource)
        self.resource.node.add_dependency(policy)
        self.resource.node.add_dependency(log_group)
