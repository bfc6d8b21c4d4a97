"""Deletes an endpoint that CloudFormation does not own when its stack is deleted."""

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
from mlstack.constructs.roles import sagemaker_arn

CLOUDFORMATION_WAITS = (
    "Invoked only by CloudFormation for this custom resource, which waits for the function's "
    "response and fails the stack operation with its error."
)
ONCE_PER_DELETION = (
    "Runs once per stack deletion; a reservation would only take concurrency from the account "
    "(and fails where fewer than 100 would stay unreserved, as in a new account)."
)
CODE_DIR = Path(__file__).resolve().parent / "endpoint_cleanup_code"


class EndpointCleanup(Construct):
    """Creates a custom resource whose deletion deletes the SageMaker endpoint ``endpoint_name``
    (for example the one a workflow's deploy stage creates), with a function whose role may only
    describe and delete that endpoint and write its own log group.

    Everything else in the stack that the endpoint uses (its alarms, and through the stack's
    dependencies the KMS key of another stack) is deleted after it: add dependencies with
    ``node.add_dependency`` on this construct's ``resource``.

    Args:
        endpoint_name: the endpoint to delete with the stack.

    Attributes:
        resource: the custom resource; what depends on the endpoint should depend on it.
        function: the function that deletes the endpoint.
        role: the function's role.
    """

    def __init__(self, scope: Construct, id: str, *, endpoint_name: str) -> None:
        super().__init__(scope, id)
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
            description=f"Deletes endpoint {endpoint_name} when its stack is deleted",
        )
        acknowledge_inline_policy(self.role)
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="DeleteTheEndpoint",
                actions=["sagemaker:DeleteEndpoint", "sagemaker:DescribeEndpoint"],
                resources=[sagemaker_arn(self, "endpoint", endpoint_name)],
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteOwnLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn],
            )
        )
        acknowledge_scoped_wildcards(
            default_policy(self.role), [(":*", "Log streams of the function's own log group only.")]
        )
        self.function = lambda_.Function(
            self,
            "Function",
            description=f"Deletes endpoint {endpoint_name} when its stack is deleted",
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
            resource_type="Custom::EndpointCleanup",
            properties={"EndpointName": endpoint_name},
        )
        # On deletion the function must still have its permissions and its log group.
        policy = default_policy(self.role).node.default_child
        assert isinstance(policy, CfnResource)
        self.resource.node.add_dependency(policy)
        self.resource.node.add_dependency(log_group)
