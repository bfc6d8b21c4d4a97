"""Alarms and a dashboard for the training workflow and its endpoints."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

SAGEMAKER_NAMESPACE = "AWS/SageMaker"
ONE_MINUTE = Duration.minutes(1)
FIVE_MINUTES = Duration.minutes(5)


@dataclass(frozen=True)
class AlarmThresholds:
    """When an endpoint alarm fires: error rates in percent of invocations, p99 model latency,
    the asynchronous backlog, each over ``evaluation_periods`` periods of ``period``."""

    error_5xx_rate_percent: float = 1.0
    error_4xx_rate_percent: float = 10.0
    latency_p99_ms: int = 1000
    async_backlog: int = 100
    period: Duration = ONE_MINUTE
    evaluation_periods: int = 3

    def __post_init__(self) -> None:
        for name in ("error_5xx_rate_percent", "error_4xx_rate_percent"):
            if not 0 < getattr(self, name) <= 100:
                raise ValueError(f"AlarmThresholds.{name}={getattr(self, name)}: expected 0 to 100")
        if self.latency_p99_ms < 1 or self.async_backlog < 1 or self.evaluation_periods < 1:
            raise ValueError(
                f"AlarmThresholds {self!r}: latency_p99_ms, async_backlog and evaluation_periods "
                "must be at least 1"
            )


@dataclass(frozen=True)
class MonitoredEndpoint:
    """An endpoint to watch, by name (CloudWatch's dimension), with its variant names."""

    endpoint_name: str
    variant_names: Sequence[str] = ("AllTraffic",)
    asynchronous: bool = False


def variant_metric(
    endpoint_name: str, variant_name: str, metric_name: str, statistic: str, period: Duration
) -> cw.Metric:
    return cw.Metric(
        namespace=SAGEMAKER_NAMESPACE,
        metric_name=metric_name,
        dimensions_map={"EndpointName": endpoint_name, "VariantName": variant_name},
        statistic=statistic,
        period=period,
    )


def error_rate(
    endpoint_name: str, variant_name: str, kind: str, period: Duration
) -> cw.MathExpression:
    """Percent of a variant's invocations that answered ``kind`` ('4XX' or '5XX')."""
    # Metric ids are unique per expression, so several rates can share one graph.
    suffix = re.sub(r"[^a-z0-9]", "_", f"{kind}_{variant_name}".lower())
    return cw.MathExpression(
        expression=f"100 * errors_{suffix} / invocations_{suffix}",
        using_metrics={
            f"errors_{suffix}": variant_metric(
                endpoint_name, variant_name, f"Invocation{kind}Errors", "Sum", period
            ),
            f"invocations_{suffix}": variant_metric(
                endpoint_name, variant_name, "Invocations", "Sum", period
            ),
        },
        label=f"{variant_name} {kind} %",
        period=period,
    )


def allow_alarm_notifications(topic: sns.ITopic, key: kms.IKey | None) -> None:
    """Let CloudWatch alarms of ``topic``'s stack publish to ``topic`` and use its KMS key.

    Both grants are scoped to the alarms' ARNs with ``aws:SourceArn`` (re:Post knowledge center,
    "CloudWatch alarm SNS notifications"; Amazon SNS developer guide, "Key management": event
    sources from AWS services with an encrypted topic), and the key's use to this topic by the
    encryption context SNS sends (``kms:EncryptionContext:aws:sns:topicArn``). CloudFormation
    names alarms ``<stack name>-<logical id>-<suffix>``, so the stack name scopes them without a
    reference from the key's stack to the alarms' (which would be a cycle).
    """
    stack = Stack.of(topic)
    alarms = stack.format_arn(
        service="cloudwatch",
        resource="alarm",
        resource_name=f"{stack.stack_name}-*",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )
    from_alarms = {"ArnLike": {"aws:SourceArn": alarms}}
    topic.add_to_resource_policy(
        iam.PolicyStatement(
            sid="CloudWatchAlarmsPublish",
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=["sns:Publish"],
            resources=[topic.topic_arn],
            conditions=from_alarms,
        )
    )
    if key is not None:
        topics = stack.format_arn(
            service="sns", resource=f"{stack.stack_name}-*", arn_format=ArnFormat.NO_RESOURCE_NAME
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsEncryptNotifications",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=["*"],  # in a key policy, '*' is this key
                conditions={
                    **from_alarms,
                    "StringLike": {"kms:EncryptionContext:aws:sns:topicArn": topics},
                },
            )
        )


class EndpointAlarms(Construct):
    """Creates, per variant of ``endpoint``, alarms on the 5xx rate, the 4xx rate and the p99 model
    latency, and for an asynchronous endpoint one on its backlog.

    Missing data (no traffic, or an endpoint not created yet) is not breaching.

    Args:
        endpoint: the endpoint to watch, by name and variant names.
        thresholds: where each alarm fires. Default: ``AlarmThresholds()``.
        topic: notified by every alarm. Default: none.

    Attributes:
        alarms: every alarm.
        rollback_alarms: the 5xx and latency alarms, what a blue/green update rolls back on.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        endpoint: MonitoredEndpoint,
        thresholds: AlarmThresholds | None = None,
        topic: sns.ITopic | None = None,
    ) -> None:
        super().__init__(scope, id)
        thresholds = thresholds or AlarmThresholds()
        name = endpoint.endpoint_name
        self.alarms: list[cw.Alarm] = []
        self.rollback_alarms: list[cw.Alarm] = []

        def alarm(
            alarm_id: str, metric: cw.IMetric, threshold: float, description: str
        ) -> cw.Alarm:
            created = cw.Alarm(
                self,
                alarm_id,
                metric=metric,
                threshold=threshold,
                evaluation_periods=thresholds.evaluation_periods,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                alarm_description=description,
            )
            if topic is not None:
                created.add_alarm_action(cw_actions.SnsAction(topic))
            self.alarms.append(created)
            return created

        for variant in endpoint.variant_names:
            self.rollback_alarms.append(
                alarm(
                    f"{variant}Errors5xx",
                    error_rate(name, variant, "5XX", thresholds.period),
                    thresholds.error_5xx_rate_percent,
                    f"Endpoint {name} variant {variant}: more than "
                    f"{thresholds.error_5xx_rate_percent}% of invocations answered 5xx",
                )
            )
            alarm(
                f"{variant}Errors4xx",
                error_rate(name, variant, "4XX", thresholds.period),
                thresholds.error_4xx_rate_percent,
                f"Endpoint {name} variant {variant}: more than "
                f"{thresholds.error_4xx_rate_percent}% of invocations answered 4xx",
            )
            self.rollback_alarms.append(
                alarm(
                    f"{variant}Latency",
                    variant_metric(name, variant, "ModelLatency", "p99", thresholds.period),
                    thresholds.latency_p99_ms * 1000,  # ModelLatency is in microseconds
                    f"Endpoint {name} variant {variant}: p99 model latency above "
                    f"{thresholds.latency_p99_ms} ms",
                )
            )
        if endpoint.asynchronous:
            alarm(
                "Backlog",
                cw.Metric(
                    namespace=SAGEMAKER_NAMESPACE,
                    metric_name="ApproximateBacklogSize",
                    dimensions_map={"EndpointName": name},
                    statistic="Average",
                    period=thresholds.period,
                ),
                thresholds.async_backlog,
                f"Endpoint {name}: more than {thresholds.async_backlog} queued asynchronous "
                "requests",
            )


class WorkflowMonitoring(Construct):
    """Creates alarms on failed and timed-out executions of ``state_machine``, the
    :class:`EndpointAlarms` of each endpoint in ``endpoints``, every one notifying ``topic``, and a
    dashboard with the workflow's and every watched endpoint's figures.

    Args:
        state_machine: the workflow to watch.
        topic: notified by every alarm.
        endpoints: endpoints that get alarms and dashboard widgets. Default: none.
        extra_endpoints: endpoints drawn on the dashboard only (their alarms exist elsewhere,
            for example the deploy stage's rollback alarms). Default: none.
        extra_alarms: alarms created elsewhere, shown on the dashboard. Default: none.
        thresholds: where the endpoint alarms fire. Default: ``AlarmThresholds()``.
        dashboard_name: the dashboard's name. Default: generated by CloudFormation.

    Attributes:
        alarms: every alarm created here.
        dashboard: the CloudWatch dashboard.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        state_machine: sfn.StateMachine,
        topic: sns.ITopic,
        endpoints: Sequence[MonitoredEndpoint] = (),
        extra_endpoints: Sequence[MonitoredEndpoint] = (),
        extra_alarms: Sequence[cw.Alarm] = (),
        thresholds: AlarmThresholds | None = None,
        dashboard_name: str | None = None,
    ) -> None:
        super().__init__(scope, id)
        self.alarms = self._workflow_alarms(state_machine, topic)
        for index, endpoint in enumerate(endpoints):
            alarms = EndpointAlarms(
                self, f"Endpoint{index}", endpoint=endpoint, thresholds=thresholds, topic=topic
            )
            self.alarms += alarms.alarms
        self.dashboard = cw.Dashboard(
            self, "Dashboard", dashboard_name=dashboard_name, default_interval=Duration.days(7)
        )
        self.dashboard.add_widgets(*_workflow_widgets(state_machine))
        period = (thresholds or AlarmThresholds()).period
        for endpoint in [*endpoints, *extra_endpoints]:
            self.dashboard.add_widgets(*_endpoint_widgets(endpoint, period))
        every_alarm = [*self.alarms, *extra_alarms]
        self.dashboard.add_widgets(
            cw.AlarmStatusWidget(alarms=every_alarm, title="Alarms", width=24)
        )

    def _workflow_alarms(
        self, state_machine: sfn.StateMachine, topic: sns.ITopic
    ) -> list[cw.Alarm]:
        """An alarm on failed and one on timed-out executions, each notifying ``topic``."""
        alarms: list[cw.Alarm] = []
        for alarm_id, metric, what in (
            ("ExecutionsFailed", state_machine.metric_failed(period=FIVE_MINUTES), "failed"),
            (
                "ExecutionsTimedOut",
                state_machine.metric_timed_out(period=FIVE_MINUTES),
                "timed out",
            ),
        ):
            alarm = cw.Alarm(
                self,
                alarm_id,
                metric=metric,
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                alarm_description=f"A training workflow execution {what}",
            )
            alarm.add_alarm_action(cw_actions.SnsAction(topic))
            alarms.append(alarm)
        return alarms


def _workflow_widgets(state_machine: sfn.StateMachine) -> list[cw.IWidget]:
    return [
        cw.GraphWidget(
            title="Workflow executions",
            left=[
                state_machine.metric_started(period=FIVE_MINUTES),
                state_machine.metric_succeeded(period=FIVE_MINUTES),
                state_machine.metric_failed(period=FIVE_MINUTES),
                state_machine.metric_timed_out(period=FIVE_MINUTES),
            ],
            width=12,
        ),
        cw.GraphWidget(
            title="Workflow execution time",
            left=[
                state_machine.metric_time(statistic="p50", period=FIVE_MINUTES),
                state_machine.metric_time(statistic="Maximum", period=FIVE_MINUTES),
            ],
            width=12,
        ),
    ]


def _endpoint_widgets(endpoint: MonitoredEndpoint, period: Duration) -> list[cw.IWidget]:
    """Invocations, error rates and p99 latency per variant; the backlog when asynchronous."""
    name, variants = endpoint.endpoint_name, endpoint.variant_names
    widgets: list[cw.IWidget] = [
        cw.GraphWidget(
            title=f"{name}: invocations",
            left=[variant_metric(name, v, "Invocations", "Sum", period) for v in variants],
            width=6,
        ),
        cw.GraphWidget(
            title=f"{name}: error rates (%)",
            left=[error_rate(name, v, k, period) for v in variants for k in ("4XX", "5XX")],
            width=6,
        ),
        cw.GraphWidget(
            title=f"{name}: model latency p99 (us)",
            left=[variant_metric(name, v, "ModelLatency", "p99", period) for v in variants],
            width=6,
        ),
    ]
    if endpoint.asynchronous:
        widgets.append(
            cw.GraphWidget(
                title=f"{name}: asynchronous backlog",
                left=[
                    cw.Metric(
                        namespace=SAGEMAKER_NAMESPACE,
                        metric_name="ApproximateBacklogSize",
                        dimensions_map={"EndpointName": name},
                        statistic="Average",
                        period=period,
                    )
                ],
                width=6,
            )
        )
    return widgets
