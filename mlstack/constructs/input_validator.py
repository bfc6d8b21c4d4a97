"""The execution-input validation Lambda (code in ``lambda/validate_input/``), its role and logs."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from mlstack.assets import runtime_path
from mlstack.constructs._lambda import DEFAULT_RESERVED_CONCURRENCY, python_function
from mlstack.constructs._nag import (
    acknowledge_inline_policy,
)
from mlstack.constructs.network import Placement

# The function's code: the checkout's lambda/validate_input/, or the copy a wheel carries.
VALIDATE_INPUT_CODE_DIR = runtime_path("lambda/validate_input")


class InputValidator(Construct):
    """Creates the Lambda function that checks an execution input against a JSON Schema
    (Python, standard library only, 128 MB), its log group and a role that may only write to
    that log group: the function reads nothing and writes nothing else.

    The schema travels in each invocation's event (the state machine definition holds it), so
    one function serves any workflow. See ``lambda/validate_input/handler.py`` for the event.

    Args:
        log_retention: retention of the function's log group (default one year).
        removal_policy: of the log group (default RETAIN).
        code_directory: the function's code (default ``lambda/validate_input``).
        reserved_concurrency: reserved (and maximum) concurrent executions (default None,
            unreserved: a reservation must leave 100 of the account's concurrency unreserved).
        placement: VPC subnets and security groups to run in (default: none).

    Attributes:
        function: the validation function.
        role: its role.
        log_group: its log group.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        code_directory: Path = VALIDATE_INPUT_CODE_DIR,
        reserved_concurrency: int | None = DEFAULT_RESERVED_CONCURRENCY,
        placement: Placement | None = None,
    ) -> None:
        super().__init__(scope, id)
        if not (code_directory / "handler.py").is_file():
            raise ValueError(f"InputValidator code_directory={code_directory}: no handler.py there")
        self.log_group = logs.LogGroup(
            self, "LogGroup", retention=log_retention, removal_policy=removal_policy
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Execution input validation Lambda: writes its own logs only",
        )
        acknowledge_inline_policy(self.role)
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteOwnLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn],
            )
        )
        self.function = python_function(
            self,
            description="Checks a training workflow execution's input before anything starts",
            code_directory=code_directory,
            memory_size=128,
            timeout=Duration.seconds(10),
            role=self.role,
            log_group=self.log_group,
            reserved_concurrency=reserved_concurrency,
            placement=placement,
        )
