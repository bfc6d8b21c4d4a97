"""The one scaffold of every state machine of the app (the training workflow, the release): its
execution log group, tracing, logging level and the acknowledgement of the logging grants, as
Solutions Constructs' ``buildStateMachine`` does for its patterns."""

from __future__ import annotations

from aws_cdk import Aws, Duration, Fn, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from mlstack.constructs._nag import acknowledge_star, default_policy

# What StateMachine adds to its role, in one statement on '*', for logging to CloudWatch Logs
# (log delivery) and X-Ray tracing: none of these actions has resource-level permissions.
LOGGING_AND_TRACING_ACTIONS = frozenset(
    {
        *(f"logs:{a}LogDelivery" for a in ("Create", "Delete", "Get", "Update")),
        "logs:DescribeLogGroups",
        "logs:DescribeResourcePolicies",
        "logs:ListLogDeliveries",
        "logs:PutResourcePolicy",
        "xray:GetSamplingRules",
        "xray:GetSamplingTargets",
        "xray:PutTelemetryRecords",
        "xray:PutTraceSegments",
    }
)


def execution_log_group(
    scope: Construct,
    name: str,
    retention: logs.RetentionDays,
    removal_policy: RemovalPolicy,
) -> logs.LogGroup:
    """``Logs``: ``/aws/vendedlogs/states/<name>-<stack id>``.

    Under /aws/vendedlogs/: CloudWatch Logs resource policies are limited to 5,120 characters,
    and Step Functions' logging best practice is this prefix, which one policy statement covers
    ("Logging Step Functions execution history in CloudWatch Logs"). The stack's id makes the
    name unique per deployment: a retained group never blocks a redeploy.
    """
    stack_id = Fn.select(2, Fn.split("/", Aws.STACK_ID))
    return logs.LogGroup(
        scope,
        "Logs",
        log_group_name=f"/aws/vendedlogs/states/{name}-{stack_id}",
        retention=retention,
        removal_policy=removal_policy,
    )


def build_state_machine(
    scope: Construct,
    *,
    start: sfn.IChainable,
    role: iam.Role,
    log_group: logs.ILogGroup,
    timeout: Duration,
    comment: str,
    state_machine_type: sfn.StateMachineType | None = None,
) -> sfn.StateMachine:
    """``Resource``: the state machine from ``start``, run as ``role``, traced, logging every
    event with its data to ``log_group``; acknowledges the '*' of the logging and tracing grants
    Step Functions adds to ``role``."""
    state_machine = sfn.StateMachine(
        scope,
        "Resource",
        comment=comment,
        definition_body=sfn.DefinitionBody.from_chainable(start),
        state_machine_type=state_machine_type,
        role=role,
        timeout=timeout,
        tracing_enabled=True,
        logs=sfn.LogOptions(
            destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True
        ),
    )
    acknowledge_star(
        default_policy(role),
        LOGGING_AND_TRACING_ACTIONS,
        "The X-Ray tracing actions and the CloudWatch Logs delivery actions that the state "
        "machine's logging needs have no resource-level permissions.",
    )
    return state_machine
