"""Retraining on drift: when a monitor alarm goes into ALARM, start the training workflow, at most
once per cool-down."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from mlstack.constructs._failure_states import failure_policy_statements, notify_then_fail
from mlstack.constructs._nag import acknowledge_inline_policy
from mlstack.constructs._scaffold import build_state_machine, execution_log_group
from mlstack.constructs.roles import states_principal
from mlstack.rules import RETRAIN_COOLDOWN_HOURS

__all__ = ["RETRAIN_STATES", "RetrainOnDrift"]

LAST_RUN = "Last run"
COOLING_DOWN_CHECK = "Cooling down?"
COOLING_DOWN = "Cooling down"
START_RETRAINING = "Start retraining"
RETRAINING_STARTED = "Retraining started"
KEEP_ERROR = "Keep error"
NOTIFY_RETRAIN_FAILURE = "Notify retrain failure"
RETRAIN_FAILED = "Retrain failed"
RETRAIN_STATES = (
    LAST_RUN,
    COOLING_DOWN_CHECK,
    COOLING_DOWN,
    START_RETRAINING,
    RETRAINING_STARTED,
    KEEP_ERROR,
    NOTIFY_RETRAIN_FAILURE,
    RETRAIN_FAILED,
)
# The execution names of retrainings it starts: the reason, then the start of the cool-down
# period the alarm fell in, so alarms of one period share a name and Step Functions starts one
# execution for them (StartExecution: the same name and input is idempotent, another input
# raises ExecutionAlreadyExists).
EXECUTION_NAME_PREFIX = "retrain-on-drift-"
# Step Functions service errors worth a retry: the SDK's base exception of the service, as the
# AWS SDK ("Sfn.") and the optimized ("StepFunctions.") integrations name it.
SFN_TRANSIENT_ERRORS = ["Sfn.SfnException", "StepFunctions.SfnException"]
ALARM_EVENT = "CloudWatch Alarm State Change"


class RetrainOnDrift(Construct):
    """Creates an EventBridge rule on ``alarms`` going into ALARM ("CloudWatch Alarm State
    Change", Amazon CloudWatch User Guide, "Alarm events and EventBridge") and a small state
    machine it starts, which starts ``state_machine`` with ``input`` unless that state machine
    started an execution within ``cooldown`` of the alarm (its newest execution, any cause: a
    scheduled or manual run counts too), so that alarms cannot start a retraining storm. The
    execution is named ``retrain-on-drift-<start of the alarm's cool-down period>``: alarms that
    fire together start one execution.

    Args:
        state_machine: the training workflow.
        alarms: the alarms whose ALARM state starts it.
        cooldown: the least time between two executions. Default: 24 hours.
        input: the execution input. Default: ``{}`` (the workflow's defaults).
        topic: notified when a start fails.
        key: the topic's KMS key.
        name_prefix: the prefix of its log group. Default: ``mlstack``.
        log_retention: how long execution logs are kept. Default: one year.
        removal_policy: of the log group. Default: ``RETAIN``.

    Attributes:
        state_machine: the cool-down state machine (its input is the alarm event).
        rule: the EventBridge rule.
        role: the state machine's role.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        state_machine: sfn.IStateMachine,
        alarms: Sequence[cw.IAlarm],
        topic: sns.ITopic,
        key: kms.IKey,
        cooldown: Duration = Duration.hours(24),  # noqa: B008 - an immutable value
        input: Mapping[str, Any] | None = None,
        name_prefix: str = "mlstack",
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        super().__init__(scope, id)
        hours = cooldown.to_hours(integral=False)
        if not RETRAIN_COOLDOWN_HOURS.accepts(int(hours)) or hours != int(hours):
            raise ValueError(
                f"RetrainOnDrift cooldown={hours} h: expected whole hours, "
                f"{RETRAIN_COOLDOWN_HOURS.words()}"
            )
        if not alarms:
            raise ValueError("RetrainOnDrift alarms=[]: expected the alarms that start it")
        self.target, self.topic, self.key = state_machine, topic, key
        self.cooldown_ms = int(hours) * 3_600_000
        self.input = dict(input or {})
        self.role = self._role()
        self.state_machine = build_state_machine(
            self,
            start=self._definition(),
            role=self.role,
            log_group=execution_log_group(
                self,
                name=f"{name_prefix}-retrain-on-drift",
                retention=log_retention,
                removal_policy=removal_policy,
            ),
            timeout=Duration.minutes(15),
            comment=f"{name_prefix}: retrain on drift, at most once per {int(hours)} h",
        )
        events_role = iam.Role(
            self, "EventsRole", assumed_by=iam.ServicePrincipal("events.amazonaws.com")
        )
        acknowledge_inline_policy(events_role)
        self.rule = events.Rule(
            self,
            "OnAlarm",
            description="Retrain when a drift or quality alarm of the endpoint goes into ALARM",
            event_pattern=events.EventPattern(
                source=["aws.cloudwatch"],
                detail_type=[ALARM_EVENT],
                resources=[a.alarm_arn for a in alarms],
                detail={"state": {"value": ["ALARM"]}},
            ),
            targets=[targets.SfnStateMachine(self.state_machine, role=events_role)],
        )

    def _role(self) -> iam.Role:
        """Read the workflow's newest execution, start it, notify failures; nothing else."""
        role = iam.Role(
            self,
            "Role",
            assumed_by=states_principal(self),
            description="Step Functions role of retraining on drift",
        )
        acknowledge_inline_policy(role)
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadWorkflowExecutions",
                actions=["states:ListExecutions"],
                resources=[self.target.state_machine_arn],
            )
        )
        self.target.grant_start_execution(role)
        for statement in failure_policy_statements(self.topic, self.key):
            role.add_to_policy(statement)
        return role

    def _definition(self) -> sfn.IChainable:
        """Last run -> Cooling down? -> Start retraining (or Cooling down); failures notify."""
        notify = notify_then_fail(
            self,
            notify_id=NOTIFY_RETRAIN_FAILURE,
            fail_id=RETRAIN_FAILED,
            topic=self.topic,
            subject="Retraining on drift failed",
            what="Retraining on drift",
        )
        # A JSONata state's catcher passes on the error output ({"Error", "Cause"}) as the
        # state's output; the notify path (JSONPath) reads it as $.error.
        keep = sfn.Pass(self, KEEP_ERROR, parameters={"error.$": "$"})
        keep.next(notify)
        last_run = sfn.CustomState(
            self,
            LAST_RUN,
            state_json={
                "Type": "Task",
                "QueryLanguage": "JSONata",
                "Comment": "The workflow's newest execution (ListExecutions: newest first).",
                "Resource": f"arn:{Aws.PARTITION}:states:::aws-sdk:sfn:listExecutions",
                "Arguments": {"StateMachineArn": self.target.state_machine_arn, "MaxResults": 1},
                "Output": (
                    "{% {'alarm': $states.input.detail.alarmName, 'time': $states.input.time, "
                    "'last': $states.result.Executions[0].StartDate} %}"
                ),
                "Retry": [_retry()],
            },
        )
        last_run.add_catch(keep, errors=["States.ALL"])
        cooling = sfn.Succeed(
            self,
            COOLING_DOWN,
            comment="The workflow started an execution within the cool-down.",
            query_language=sfn.QueryLanguage.JSONATA,
        )
        start = sfn.CustomState(
            self,
            START_RETRAINING,
            state_json={
                "Type": "Task",
                "QueryLanguage": "JSONata",
                "Resource": f"arn:{Aws.PARTITION}:states:::states:startExecution",
                "Arguments": {
                    "StateMachineArn": self.target.state_machine_arn,
                    "Name": self.execution_name(),
                    "Input": self.input,
                },
                "Output": (
                    "{% {'alarm': $states.input.alarm, 'execution': $states.result.ExecutionArn} %}"
                ),
                "Retry": [_retry()],
            },
        )
        # Another alarm of the same period started it already (its input differs only when
        # the configuration changed in between).
        start.add_catch(cooling, errors=["StepFunctions.ExecutionAlreadyExistsException"])
        start.add_catch(keep, errors=["States.ALL"])
        start.next(sfn.Succeed(self, RETRAINING_STARTED, query_language=sfn.QueryLanguage.JSONATA))
        check = (
            sfn.Choice(self, COOLING_DOWN_CHECK, query_language=sfn.QueryLanguage.JSONATA)
            .when(sfn.Condition.jsonata(self.cooling_down_condition()), cooling)
            .otherwise(start)
        )
        return last_run.next(check)

    def cooling_down_condition(self) -> str:
        """True when the workflow's newest execution started less than the cool-down before
        the alarm."""
        return (
            "{% $exists($states.input.last) and $toMillis($states.input.last) > "
            f"$toMillis($states.input.time) - {self.cooldown_ms} %}}"
        )

    def execution_name(self) -> str:
        """``retrain-on-drift-<start of the alarm's cool-down period, UTC>``."""
        return (
            f"{{% '{EXECUTION_NAME_PREFIX}' & $fromMillis($floor($toMillis($states.input.time) / "
            f"{self.cooldown_ms}) * {self.cooldown_ms}, '[Y0001][M01][D01]T[H01][m01]Z') %}}"
        )


def _retry() -> dict[str, Any]:
    return {
        "ErrorEquals": SFN_TRANSIENT_ERRORS,
        "IntervalSeconds": 2,
        "MaxAttempts": 3,
        "BackoffRate": 2,
        "JitterStrategy": "FULL",
    }
