"""Our own drift and model-quality monitoring of an endpoint that captures its requests (SageMaker
Model Monitor is closed to new customers): a schedule, a small state machine that runs the
training image's ``monitor`` program as a Processing job and publishes what it measured to
CloudWatch, and alarms on those metrics."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from mlstack.constructs._evaluation_states import ProcessingJob, processing_output
from mlstack.constructs._failure_states import failure_policy_statements, notify_then_fail
from mlstack.constructs._monitor_states import (
    ANY_CAPTURED_DATA,
    METRIC_DATA,
    MONITOR_ENDPOINT,
    MONITOR_FAILED,
    MONITOR_STATES,
    MONITORED,
    NO_CAPTURED_DATA,
    NOTIFY_MONITOR_FAILURE,
    choose_inputs_state,
    find_captured_data_state,
    publish_metrics_state,
    read_metrics_state,
    window_state,
)
from mlstack.constructs._nag import (
    acknowledge_inline_policy,
    acknowledge_star,
    acknowledge_wildcard_resources,
    default_policy,
)
from mlstack.constructs._scaffold import build_state_machine, execution_log_group
from mlstack.constructs._state_builder import StateBuilder
from mlstack.constructs.network import Placement
from mlstack.constructs.roles import (
    StateMachineRole,
    allow_processing_logs,
    allow_sagemaker_metrics,
    allow_volume_data_keys,
    allow_volume_encryption,
)
from mlstack.rules import (
    DRIFTED_SHARE_PERCENT,
    HIGHER_IS_BETTER,
    MONITOR_MIN_RECORDS,
    MONITORING_SCHEDULE_PATTERN,
    P_VALUE,
    PSI_THRESHOLD,
    QUALITY_METRIC_NAMES,
    VOLUME_SIZE_GB,
)

__all__ = ["MONITOR_STATES", "DriftMonitor", "window_hours"]

_SCHEDULE = re.compile(MONITORING_SCHEDULE_PATTERN)
REPORT_OUTPUT = "report"
THIRTY_MINUTES = Duration.minutes(30)


def window_hours(schedule_expression: str) -> int:
    """How many hours a window of ``schedule_expression`` spans: one for hourly
    ``cron(0 * ? * * *)``, M for every M hours ``cron(0 N/M ? * * *)``, 24 for daily
    ``cron(0 N ? * * *)``."""
    match = _SCHEDULE.fullmatch(schedule_expression)
    if match is None:
        raise ValueError(
            f"DriftMonitor schedule_expression={schedule_expression!r}: expected an hourly "
            "'cron(0 * ? * * *)', daily 'cron(0 8 ? * * *)' or every N hours "
            "'cron(0 0/6 ? * * *)' expression"
        )
    hours = match.group(1)
    if hours == "*":
        return 1
    if "/" in hours:
        step = int(hours.split("/")[1])
        if not 1 <= step <= 24:
            raise ValueError(
                f"DriftMonitor schedule_expression={schedule_expression!r}: expected a step "
                "of 1 to 24 hours"
            )
        return step
    return 24


@dataclasses.dataclass(frozen=True)
class MonitorSettings:
    """What the ``monitor`` program is told (its arguments, docs/monitoring.md): records a window
    needs, the drift thresholds, the quality metric and its alarm threshold (None: none)."""

    min_records: int = 100
    psi_threshold: float = 0.2
    p_value: float = 0.01
    drifted_share_percent: float = 30
    quality_metric: str | None = None
    quality_threshold: float | None = None

    def __post_init__(self) -> None:
        for name, bound in (
            ("min_records", MONITOR_MIN_RECORDS),
            ("psi_threshold", PSI_THRESHOLD),
            ("p_value", P_VALUE),
            ("drifted_share_percent", DRIFTED_SHARE_PERCENT),
        ):
            value = getattr(self, name)
            if not bound.accepts(value):
                raise ValueError(f"MonitorSettings {name}={value!r}: expected {bound.words()}")
        if self.quality_metric is not None and self.quality_metric not in QUALITY_METRIC_NAMES:
            raise ValueError(
                f"MonitorSettings quality_metric={self.quality_metric!r}: expected None or one "
                f"of {list(QUALITY_METRIC_NAMES)}"
            )
        if self.quality_threshold is not None and self.quality_metric is None:
            raise ValueError(
                f"MonitorSettings quality_threshold={self.quality_threshold!r}: expected a "
                "quality_metric with it"
            )

    def arguments(self, endpoint_name: str) -> list[str]:
        arguments = [
            "--endpoint", endpoint_name,
            "--min-records", str(self.min_records),
            "--psi-threshold", str(self.psi_threshold),
            "--p-value", str(self.p_value),
            "--drifted-share-percent", str(self.drifted_share_percent),
        ]  # fmt: skip
        if self.quality_metric is not None:
            arguments += ["--quality-metric", self.quality_metric]
        if self.quality_threshold is not None:
            arguments += ["--quality-threshold", str(self.quality_threshold)]
        return arguments


class DriftMonitor(Construct):
    """Creates a schedule that starts a state machine, every window, which runs the training
    image's ``monitor`` program over ``endpoint_name``'s captured requests of the window against
    the baseline under ``baseline_prefix`` (and the ground truth labels under ``ground_truth``),
    writes its reports under ``<reports><endpoint>/<window end>/``, reads the CloudWatch metric
    data it wrote and publishes it in ``namespace``; failures notify ``topic``. Alarms on the
    share of drifted features and, with a quality threshold, on the quality metric notify
    ``topic`` too; no data (a quiet window, too few records) is not breaching.

    Args:
        builder: the training workflow's state builder (name prefix, bucket, key, retries,
            network isolation and the jobs' network).
        training_image_uri: the image with the ``monitor`` program.
        bucket: the data bucket (captured data, baselines, ground truth, reports).
        key: the bucket's KMS key; also encrypts the job volumes and the topic's messages.
        topic: the failure topic, notified of failed runs and by the alarms.
        endpoint_name: the endpoint whose captures are read (its variants' folders).
        variant_names: the endpoint's production variants.
        namespace: the CloudWatch namespace of the metrics.
        settings: the ``monitor`` program's thresholds. Default: :class:`MonitorSettings`.
        schedule_expression: hourly ``cron(0 * ? * * *)`` (default), daily or every N hours.
        baseline_prefix: where the ``baseline`` program's files are. Default:
            ``baselines/latest/``.
        capture_prefix: the endpoint's data capture destination. Default: ``data-capture/``.
        ground_truth: where labels are uploaded. Default: ``ground-truth/``.
        reports: where reports go. Default: ``monitoring/``.
        instance_type: the job's instance type. Default: ``ml.m5.large``.
        volume_size_gb: its volume. Default: 20.
        max_runtime: its longest run. Default: 30 minutes.
        placement: the jobs' subnets and security groups. Default: none (no VPC).
        log_retention: how long execution logs are kept. Default: one year.
        removal_policy: of the execution log group. Default: ``RETAIN``.

    Attributes:
        state_machine: the monitor's state machine (input ``{"scheduled_time": ISO 8601}``).
        role: the state machine's role.
        job_role: the role the ``monitor`` jobs run as; grant it the pull of
            ``training_image_uri`` when that is a private ECR image (``ModelImage.grant_pull``).
        schedule: the EventBridge Scheduler schedule.
        drift_alarm: the alarm on ``DriftedFeatureShare``.
        quality_alarm: the alarm on the quality metric, or None without a threshold.
        alarms: both (those that exist).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        builder: StateBuilder,
        training_image_uri: str,
        bucket: s3.IBucket,
        key: kms.IKey,
        topic: sns.ITopic,
        endpoint_name: str,
        variant_names: Sequence[str],
        namespace: str,
        settings: MonitorSettings | None = None,
        schedule_expression: str = "cron(0 * ? * * *)",
        baseline_prefix: str = "baselines/latest/",
        capture_prefix: str = "data-capture/",
        ground_truth: str = "ground-truth/",
        reports: str = "monitoring/",
        instance_type: str = "ml.m5.large",
        volume_size_gb: int = 20,
        max_runtime: Duration = THIRTY_MINUTES,
        placement: Placement | None = None,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        super().__init__(scope, id)
        self.hours = window_hours(schedule_expression)
        if not VOLUME_SIZE_GB.accepts(volume_size_gb):
            raise ValueError(
                f"DriftMonitor volume_size_gb={volume_size_gb}: expected {VOLUME_SIZE_GB.words()}"
            )
        if not 1 <= max_runtime.to_seconds() <= self.hours * 3600:
            raise ValueError(
                f"DriftMonitor max_runtime={max_runtime.to_seconds()}s: expected 1 s to the "
                f"window ({self.hours * 3600} s), so that one window's job ends before the next"
            )
        if not variant_names:
            raise ValueError("DriftMonitor variant_names=[]: expected the endpoint's variants")
        self.settings = settings or MonitorSettings()
        self.endpoint_name, self.namespace, self.bucket, self.key = (
            endpoint_name,
            namespace,
            bucket,
            key,
        )
        self.capture = f"{capture_prefix}{endpoint_name}/"
        self.ground_truth, self.baseline_prefix = ground_truth, baseline_prefix
        self.reports = f"{reports}{endpoint_name}/"
        self.topic = topic
        self.job_role = self._job_role(placement)
        self.builder = dataclasses.replace(
            builder, name_prefix=f"{builder.name_prefix}-monitor", role_arn=self.job_role.role_arn
        )
        self.job = self._job(training_image_uri, instance_type, volume_size_gb, max_runtime)
        self.role = self._role()
        log_group = execution_log_group(
            self,
            name=self.builder.name_prefix,
            retention=log_retention,
            removal_policy=removal_policy,
        )
        self.state_machine = build_state_machine(
            self,
            start=self._definition(list(variant_names)),
            role=self.role,
            log_group=log_group,
            timeout=Duration.seconds(max_runtime.to_seconds() + 1800),
            comment=f"{self.builder.name_prefix}: drift and model quality of {endpoint_name}",
        )
        self.schedule = self._schedule(schedule_expression)
        self.drift_alarm, self.quality_alarm = _alarms(self)
        self.alarms = [a for a in (self.drift_alarm, self.quality_alarm) if a is not None]

    # --- the job ---------------------------------------------------------------------------

    def _job_role(self, placement: Placement | None) -> iam.Role:
        """Read the captured data, the ground truth and the baseline; write the reports; use the
        key through S3 and for the volumes; write the processing jobs' logs and metrics. Pulling
        the image is granted by its owner (``job_role``: the Workflow stack grants the training
        image's pull)."""
        role = iam.Role(
            self,
            "JobRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="mlstack monitor jobs: read captured data, write drift reports",
        )
        acknowledge_inline_policy(role)
        readable = [self.capture, self.ground_truth, self.baseline_prefix]
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ListMonitorInputs",
                actions=["s3:ListBucket"],
                resources=[self.bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{p}*" for p in readable]}},
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadMonitorInputs",
                actions=["s3:GetObject"],
                resources=[self.bucket.arn_for_objects(f"{p}*") for p in readable],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteReports",
                actions=["s3:PutObject", "s3:AbortMultipartUpload"],
                resources=[self.bucket.arn_for_objects(f"{self.reports}*")],
            )
        )
        role.add_to_policy(self._key_through_s3("UseDataKeyThroughS3", write=True))
        allow_volume_encryption(role, self.key, sid="EncryptJobVolumes")
        allow_volume_data_keys(role, self.key, sid="JobVolumeDataKeys")
        streams = allow_processing_logs(role)
        # A processing job puts its instance metrics in /aws/sagemaker/ProcessingJobs as its
        # role ("CreateProcessingJob API: execution role permissions").
        allow_sagemaker_metrics(role)
        if placement is not None:
            placement.grant_network_interfaces(role, service="sagemaker")
        acknowledge_wildcard_resources(
            default_policy(role),
            [
                *[
                    (self.bucket.arn_for_objects(f"{p}*"), f"Objects under the '{p}' prefix only.")
                    for p in (*readable, self.reports)
                ],
                (
                    streams,
                    "Monitor jobs are processing jobs named per window; their streams are in "
                    "this one log group.",
                ),
            ],
        )
        return role

    def _key_through_s3(self, sid: str, *, write: bool) -> iam.PolicyStatement:
        return iam.PolicyStatement(
            sid=sid,
            actions=["kms:Decrypt", "kms:GenerateDataKey"] if write else ["kms:Decrypt"],
            resources=[self.key.key_arn],
            conditions={"StringEquals": {"kms:ViaService": f"s3.{Aws.REGION}.amazonaws.com"}},
        )

    def _job(
        self, image: str, instance_type: str, volume_size_gb: int, max_runtime: Duration
    ) -> ProcessingJob:
        b = self.builder
        return ProcessingJob(
            b,
            kind="drift",
            app={
                "ImageUri": image,
                "ContainerEntrypoint": ["monitor"],
                # The window's ends come from the execution, the rest is fixed at synth time.
                "ContainerArguments.$": "States.Array('--window-start', $.window.start, "
                "'--window-end', $.window.end, "
                + ", ".join(f"'{a}'" for a in self.settings.arguments(self.endpoint_name))
                + ")",
            },
            inputs={},
            outputs=[
                processing_output(
                    REPORT_OUTPUT,
                    {
                        "S3Uri.$": (
                            f"States.Format('s3://{b.bucket_name}/{self.reports}{{}}/', "
                            "$.window.stamp)"
                        )
                    },
                )
            ],
            instance_type=instance_type,
            volume_size_gb=volume_size_gb,
            max_runtime=max_runtime,
            network={"EnableNetworkIsolation": True} | b.training_network(),
            reads=(self.capture, self.ground_truth, self.baseline_prefix),
            writes=(self.reports,),
        )

    # --- the state machine -----------------------------------------------------------------

    def _role(self) -> iam.Role:
        """Made from its calls: run and watch the monitor job (passing it its role), list the
        candidate input prefixes, read the metric data, put it in ``namespace`` only, notify
        failures."""
        machine_role = StateMachineRole(
            self,
            "Role",
            name_prefix=self.builder.name_prefix,
            sagemaker_role=self.job_role,
            tasks=[self.job],
        )
        role = machine_role.role
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ListCandidateInputs",
                actions=["s3:ListBucket"],
                resources=[self.bucket.bucket_arn],
                conditions={
                    "StringLike": {"s3:prefix": [f"{self.capture}*", f"{self.ground_truth}*"]}
                },
            )
        )
        metric_data = self.bucket.arn_for_objects(f"{self.reports}*/{METRIC_DATA}")
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadMetricData", actions=["s3:GetObject"], resources=[metric_data]
            )
        )
        role.add_to_policy(self._key_through_s3("ReadReportsWithDataKey", write=False))
        # PutMetricData has no resource-level permissions; its namespace condition key confines
        # it ("Actions, resources, and condition keys for Amazon CloudWatch").
        role.add_to_policy(
            iam.PolicyStatement(
                sid="PutMonitorMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": self.namespace}},
            )
        )
        for statement in failure_policy_statements(self.topic, self.key):
            role.add_to_policy(statement)
        acknowledge_star(
            default_policy(role),
            "PutMonitorMetrics",
            "cloudwatch:PutMetricData has no resource-level permissions; the statement is "
            f"confined to the namespace {self.namespace} by cloudwatch:namespace.",
        )
        acknowledge_wildcard_resources(
            default_policy(role),
            [(metric_data, "The monitor's metric data files of this endpoint's reports only.")],
        )
        return role

    def _definition(self, variants: list[str]) -> sfn.IChainable:
        notify = notify_then_fail(
            self,
            notify_id=NOTIFY_MONITOR_FAILURE,
            fail_id=MONITOR_FAILED,
            topic=self.topic,
            subject=f"{self.builder.name_prefix} failed",
            what=f"Monitoring of {self.endpoint_name}",
        )
        window = window_state(self, self, variants)
        find = find_captured_data_state(self, self)
        choose = choose_inputs_state(self, self)
        none = sfn.Succeed(self, NO_CAPTURED_DATA, comment="Nothing captured in the window.")
        monitor = self._monitor_state()
        read = read_metrics_state(self, self)
        publish = publish_metrics_state(self, self)
        for state in (find, monitor, read, publish):
            state.add_catch(notify, errors=["States.ALL"], result_path="$.error")
        any_data = (
            sfn.Choice(self, ANY_CAPTURED_DATA)
            .when(sfn.Condition.number_greater_than("$.captured", 0), monitor)
            .otherwise(none)
        )
        monitor.next(read).next(publish).next(sfn.Succeed(self, MONITORED))
        return window.next(find).next(choose).next(any_data)

    def _monitor_state(self) -> sfn.CustomState:
        parameters = self.job.render_parameters()
        del parameters["ProcessingInputs"]
        parameters["ProcessingInputs.$"] = "$.inputs"
        state = sfn.CustomState(
            self,
            MONITOR_ENDPOINT,
            state_json={
                "Type": "Task",
                "Resource": f"arn:{Aws.PARTITION}:states:::sagemaker:createProcessingJob.sync",
                "Parameters": parameters,
                "ResultSelector": {"ProcessingJobName.$": "$.ProcessingJobName"},
                "ResultPath": "$.job",
            },
        )
        self.builder.retry_sagemaker(state)
        return state

    def _schedule(self, expression: str) -> scheduler.Schedule:
        role = iam.Role(
            self,
            "SchedulerRole",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            ),
            description="EventBridge Scheduler: starts the drift monitor only",
        )
        acknowledge_inline_policy(role)
        self.state_machine.grant_start_execution(role)
        return scheduler.Schedule(
            self,
            "Schedule",
            schedule=scheduler.ScheduleExpression.expression(expression),
            target=scheduler_targets.StepFunctionsStartExecution(
                self.state_machine,
                input=scheduler.ScheduleTargetInput.from_object(
                    {"scheduled_time": scheduler.ContextAttribute.scheduled_time}
                ),
                role=role,
                retry_attempts=2,
            ),
            description=f"Drift and model quality of {self.endpoint_name}, every window",
        )


# --- the alarms ------------------------------------------------------------------------


def monitor_metric(m: DriftMonitor, name: str, statistic: str = "Maximum") -> cw.Metric:
    """One of the monitor's endpoint metrics (dimension ``Endpoint``), one datum a window."""
    return cw.Metric(
        namespace=m.namespace,
        metric_name=name,
        dimensions_map={"Endpoint": m.endpoint_name},
        statistic=statistic,
        period=Duration.hours(m.hours),
    )


def _alarms(m: DriftMonitor) -> tuple[cw.Alarm, cw.Alarm | None]:
    settings = m.settings
    drift = cw.Alarm(
        m,
        "DriftAlarm",
        metric=monitor_metric(m, "DriftedFeatureShare"),
        threshold=settings.drifted_share_percent,
        evaluation_periods=1,
        comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        alarm_description=(
            f"Endpoint {m.endpoint_name}: {settings.drifted_share_percent} % or more of "
            "the features drifted from the training data's baseline"
        ),
    )
    drift.add_alarm_action(cw_actions.SnsAction(m.topic))
    metric, threshold = settings.quality_metric, settings.quality_threshold
    if metric is None or threshold is None:
        return drift, None
    higher = metric in HIGHER_IS_BETTER
    quality = cw.Alarm(
        m,
        "QualityAlarm",
        metric=monitor_metric(m, metric, "Minimum" if higher else "Maximum"),
        threshold=threshold,
        evaluation_periods=1,
        comparison_operator=cw.ComparisonOperator.LESS_THAN_THRESHOLD
        if higher
        else cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        alarm_description=(
            f"Endpoint {m.endpoint_name}: {metric} on the labelled records fell "
            f"{'below' if higher else 'above'} {threshold}"
        ),
    )
    quality.add_alarm_action(cw_actions.SnsAction(m.topic))
    return drift, quality
