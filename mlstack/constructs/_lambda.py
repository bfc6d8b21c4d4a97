"""What the compliance packs ask of the Lambda functions the state machine invokes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_cdk import aws_lambda as lambda_

from mlstack.constructs._nag import acknowledge_compliance, acknowledge_guard, skip_checkov

if TYPE_CHECKING:
    from mlstack.constructs.network import Placement

# Reserved concurrency both guarantees and caps concurrent runs; one workflow execution invokes
# each function once, so 5 covers 5 executions starting at once. Lambda keeps 10 concurrent
# executions of an account unreserved: in an account whose limit is 10 (new accounts), any
# reservation fails the deploy, and the environment sets it to null (docs/security.md).
DEFAULT_RESERVED_CONCURRENCY = 5

SYNCHRONOUS = (
    "Invoked synchronously by the state machine (lambda:invoke, RequestResponse), which receives "
    "every error and retries or fails the execution; a dead-letter queue only receives "
    "asynchronous invocations."
)
UNRESERVED = (
    "Reserved concurrency left unset on purpose (reserved_concurrency=None): in an account whose "
    "Lambda concurrency limit is 10, Lambda keeps all 10 unreserved and any reservation fails."
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


__all__ = ["DEFAULT_RESERVED_CONCURRENCY", "acknowledge_lambda_findings"]
