"""Scheduled retraining: an EventBridge Scheduler schedule that starts the training workflow."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from mlstack.constructs._nag import acknowledge_inline_policy
from mlstack.rules import SCHEDULE_EXPRESSION_PATTERN

_EXPRESSION = re.compile(SCHEDULE_EXPRESSION_PATTERN)


class RetrainingSchedule(Construct):
    """Creates a schedule that starts ``state_machine``, and a role that may only
    ``states:StartExecution`` that state machine (assumed by EventBridge Scheduler of this
    account only).

    Every run gets a fresh execution name from the scheduler, so a fresh run id.

    Args:
        state_machine: the workflow to start.
        expression: ``rate(...)`` or ``cron(...)``, in UTC.
        input: the execution input. Default: ``{}`` (the workflow's defaults).
        enabled: False creates the schedule switched off. Default: True.
        description: the schedule's description.

    Attributes:
        schedule: the EventBridge Scheduler schedule.
        role: the role the scheduler starts executions as.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        state_machine: sfn.IStateMachine,
        expression: str,
        input: Mapping[str, Any] | None = None,
        enabled: bool = True,
        description: str | None = None,
    ) -> None:
        super().__init__(scope, id)
        if not _EXPRESSION.fullmatch(expression):
            raise ValueError(
                f"RetrainingSchedule expression={expression!r}: expected 'rate(<n> <unit>)' or "
                "'cron(<six fields>)', such as 'rate(7 days)'"
            )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            ),
            description="EventBridge Scheduler: starts the retraining workflow only",
        )
        acknowledge_inline_policy(self.role)
        state_machine.grant_start_execution(self.role)
        self.schedule = scheduler.Schedule(
            self,
            "Resource",
            schedule=scheduler.ScheduleExpression.expression(expression),
            target=targets.StepFunctionsStartExecution(
                state_machine,
                input=scheduler.ScheduleTargetInput.from_object(dict(input or {})),
                role=self.role,
                retry_attempts=2,
            ),
            enabled=enabled,
            description=description or "Retrains the model on a schedule",
        )
