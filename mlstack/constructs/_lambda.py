"""What the compliance packs ask of the Lambda functions the state machine invokes."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from mlstack.constructs._nag import acknowledge_compliance, acknowledge_guard, skip_checkov

if TYPE_CHECKING:
    from mlstack.constructs.network import Placement

# Reserved concurrency both guarantees and caps concurrent runs, but Lambda refuses a reservation
# that leaves fewer than 100 of the account's concurrent executions unreserved
# (PutFunctionConcurrency, Lambda API Reference), and new accounts have reduced concurrency
# quotas ("Lambda quotas"): by default nothing is reserved, so the functions deploy into a fresh
# account; reserving is the environment's choice, after the quota check (docs/deploying.md).
DEFAULT_RESERVED_CONCURRENCY: int | None = None

SYNCHRONOUS = (
    "Invoked synchronously by the state machine (lambda:invoke, RequestResponse), which receives "
    "every error and retries or fails the execution; a dead-letter queue only receives "
    "asynchronous invocations."
)
UNRESERVED = (
    "Reserved concurrency left unset on purpose (reserved_concurrency=None): Lambda refuses a "
    "reservation that leaves fewer than 100 concurrent executions of the account unreserved, and "
    "a new account's concurrency quota is below that, so any reservation would fail its deploy."
)
OUTSIDE_VPC = (
    "Created without a placement: the environment's network isolation is off (network.vpc null; "
    "docs/security.md shows how to switch it on). The function reaches S3 and CloudWatch Logs "
    "over TLS with IAM authorization."
)


def acknowledge_lambda_findings(
    function: lambda_.Function, reserved_concurrency: int | None, placement: Placement | None
) -> None:
    """Acknowledge what stays of the packs' Lambda rules for ``function``, each for its reason."""
    acknowledge_compliance(function, "LambdaDLQ", SYNCHRONOUS)
    skip_checkov(function, "CKV_AWS_116", SYNCHRONOUS)
    if reserved_concurrency is None:
        acknowledge_compliance(function, "LambdaConcurrency", UNRESERVED)
        skip_checkov(function, "CKV_AWS_115", UNRESERVED)
    if placement is None:
        acknowledge_compliance(function, "LambdaInsideVPC", OUTSIDE_VPC)
        acknowledge_guard(function, "lambda_inside_vpc_check", OUTSIDE_VPC)
        skip_checkov(function, "CKV_AWS_117", OUTSIDE_VPC)


def python_function(
    scope: Construct,
    *,
    description: str,
    code_directory: Path,
    memory_size: int,
    timeout: Duration,
    role: iam.IRole,
    log_group: logs.ILogGroup,
    reserved_concurrency: int | None,
    placement: Placement | None,
    environment: Mapping[str, str] | None = None,
) -> lambda_.Function:
    """The ``Resource`` function of ``scope``: ``handler.handler`` of ``code_directory`` on the
    current Python runtime (ARM), in ``placement`` when given (``role`` then gets the
    network-interface permissions Lambda documents), with the packs' remaining findings
    acknowledged."""
    function = lambda_.Function(
        scope,
        "Resource",
        description=description,
        runtime=lambda_.Runtime.PYTHON_3_14,
        architecture=lambda_.Architecture.ARM_64,
        handler="handler.handler",
        code=lambda_.Code.from_asset(
            str(code_directory), exclude=["__pycache__", "*.pyc", "tests", ".pytest_cache"]
        ),
        memory_size=memory_size,
        timeout=timeout,
        role=role,
        log_group=log_group,
        reserved_concurrent_executions=reserved_concurrency,
        vpc=placement.vpc if placement else None,
        vpc_subnets=placement.subnet_selection() if placement else None,
        security_groups=list(placement.security_groups) if placement else None,
        environment=dict(environment) if environment is not None else None,
    )
    if placement is not None:
        placement.grant_network_interfaces(role, service="lambda")
    acknowledge_lambda_findings(function, reserved_concurrency, placement)
    return function


__all__ = ["DEFAULT_RESERVED_CONCURRENCY", "acknowledge_lambda_findings", "python_function"]
