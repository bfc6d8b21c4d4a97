"""The skeleton of a clean-up that runs when its stack is deleted: a log group, a role, a
function and the custom resource whose deletion invokes it (``EndpointCleanup``,
``ModelPackageCleanup``). Each construct grants its own calls; the rest is written once here."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_cdk import CfnResource, CustomResource, Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from mlstack.constructs._nag import (
    acknowledge_compliance,
    acknowledge_guard,
    acknowledge_inline_policy,
    acknowledge_wildcard_resources,
    default_policy,
    skip_checkov,
)

CLOUDFORMATION_WAITS = (
    "Invoked only by CloudFormation for this custom resource, which waits for the function's "
    "response and fails the stack operation with its error."
)
ONCE_PER_DELETION = (
    "Runs once per stack deletion; a reservation would only take concurrency from the account "
    "(and fails where fewer than 100 would stay unreserved, as in a new account)."
)
OUTSIDE_THE_VPC = (
    "Runs once, when the stack is deleted, and calls only the SageMaker API; it is "
    "created only for environments that destroy their data (dev), which run without "
    "network isolation."
)


@dataclass(frozen=True)
class DeletionCleanup:
    role: iam.Role
    function: lambda_.Function
    resource: CustomResource


def deletion_cleanup(
    scope: Construct,
    *,
    description: str,
    code_dir: Path,
    resource_type: str,
    properties: Mapping[str, Any],
    grant: Callable[[iam.Role], object],
    scoped_wildcards: Sequence[tuple[str, str]] = (),
) -> DeletionCleanup:
    """Build the clean-up in ``scope`` (ids ``Logs``, ``Role``, ``Function``, ``Resource``):
    ``grant`` gives the role the calls the function makes; it may also write its own log group,
    nothing else. The resource depends on the role's policy and the log group, so that on deletion
    the function still has both."""
    log_group = logs.LogGroup(
        scope,
        "Logs",
        retention=logs.RetentionDays.ONE_MONTH,
        removal_policy=RemovalPolicy.DESTROY,
    )
    role = iam.Role(
        scope,
        "Role",
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        description=description,
    )
    acknowledge_inline_policy(role)
    grant(role)
    role.add_to_policy(
        iam.PolicyStatement(
            sid="WriteOwnLogs",
            actions=["logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[log_group.log_group_arn],
        )
    )
    if scoped_wildcards:
        acknowledge_wildcard_resources(default_policy(role), scoped_wildcards)
    function = lambda_.Function(
        scope,
        "Function",
        description=description,
        runtime=lambda_.Runtime.PYTHON_3_14,
        architecture=lambda_.Architecture.ARM_64,
        handler="index.handler",
        code=lambda_.Code.from_asset(
            str(code_dir), exclude=["__pycache__", "*.pyc", "__init__.py"]
        ),
        timeout=Duration.minutes(15),
        memory_size=128,
        role=role,
        log_group=log_group,
    )
    for rule, check, reason in (
        ("LambdaDLQ", "CKV_AWS_116", CLOUDFORMATION_WAITS),
        ("LambdaConcurrency", "CKV_AWS_115", ONCE_PER_DELETION),
    ):
        acknowledge_compliance(function, rule, reason)
        skip_checkov(function, check, reason)
    acknowledge_compliance(function, "LambdaInsideVPC", OUTSIDE_THE_VPC)
    acknowledge_guard(function, "lambda_inside_vpc_check", OUTSIDE_THE_VPC)
    skip_checkov(function, "CKV_AWS_117", OUTSIDE_THE_VPC)
    resource = CustomResource(
        scope,
        "Resource",
        service_token=function.function_arn,
        resource_type=resource_type,
        properties=dict(properties),
    )
    policy = default_policy(role).node.default_child
    assert isinstance(policy, CfnResource)
    resource.node.add_dependency(policy)
    resource.node.add_dependency(log_group)
    return DeletionCleanup(role, function, resource)
