"""SageMaker Model Monitor data-quality monitoring of an endpoint that captures its requests:
a data-quality job definition, its monitoring schedule, a role and an alarm on drift."""

from __future__ import annotations

import re

from aws_cdk import Aws, CfnMapping, Duration, Fn, Stack, Token
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from constructs import Construct

from mlstack.constructs._nag import (
    acknowledge_inline_policy,
    acknowledge_wildcard_resources,
    default_policy,
)
from mlstack.constructs.instance_storage import has_local_storage
from mlstack.constructs.layout import BucketLayout
from mlstack.constructs.network import Placement
from mlstack.constructs.roles import (
    allow_processing_logs,
    allow_volume_data_keys,
    allow_volume_encryption,
)
from mlstack.rules import (
    DRIFT_THRESHOLD,
    INSTANCE_TYPE_PATTERN,
    MONITORING_SCHEDULE_PATTERN,
    VOLUME_SIZE_GB,
)

# The prebuilt Model Monitor analyzer ("Amazon SageMaker Model Monitor prebuilt container":
# <account>.dkr.ecr.<region>.amazonaws.com[.cn]/sagemaker-model-monitor-analyzer), by region.
# The accounts are AWS's table "Docker Registry Paths and Example Code" (Model Monitor), as the
# SageMaker Python SDK carries it (src/sagemaker/image_uri_config/model-monitor.json).
MODEL_MONITOR_REPOSITORY = "sagemaker-model-monitor-analyzer"
MODEL_MONITOR_ACCOUNTS = {
    "af-south-1": "875698925577",
    "ap-east-1": "001633400207",
    "ap-northeast-1": "574779866223",
    "ap-northeast-2": "709848358524",
    "ap-south-1": "126357580389",
    "ap-southeast-1": "245545462676",
    "ap-southeast-2": "563025443158",
    "ca-central-1": "536280801234",
    "cn-north-1": "453000072557",
    "cn-northwest-1": "453252182341",
    "eu-central-1": "048819808253",
    "eu-north-1": "895015795356",
    "eu-south-1": "933208885752",
    "eu-west-1": "468650794304",
    "eu-west-2": "749857270468",
    "eu-west-3": "680080141114",
    "me-south-1": "607024016150",
    "sa-east-1": "539772159869",
    "us-east-1": "156813124566",
    "us-east-2": "777275614652",
    "us-west-1": "890145073186",
    "us-west-2": "159807026194",
}
# Where the prebuilt container publishes its per-feature metrics for a real-time endpoint, and
# their dimensions ("CloudWatch Metrics for Bring Your Own Containers"; "CloudWatch Metrics",
# Model Monitor): feature_baseline_drift_<feature> is the feature's distance from the baseline.
DATA_METRICS_NAMESPACE = "aws/sagemaker/Endpoints/data-metrics"
ANALYZER_INPUT = "/opt/ml/processing/input/endpoint"
ANALYZER_OUTPUT = "/opt/ml/processing/output"
_INSTANCE_TYPE = re.compile(INSTANCE_TYPE_PATTERN)
_SCHEDULE = re.compile(MONITORING_SCHEDULE_PATTERN)
ONE_HOUR = Duration.hours(1)
THIRTY_MINUTES = Duration.minutes(30)


def model_monitor_image_uri(scope: Construct) -> str:
    """The analyzer image of ``scope``'s region; a region-agnostic stack looks it up at deploy
    time from a mapping of every known region. Raises ``ValueError`` for an unknown region."""
    stack = Stack.of(scope)
    region = stack.region
    if not Token.is_unresolved(region):
        account = MODEL_MONITOR_ACCOUNTS.get(region)
        if account is None:
            raise ValueError(
                f"DataQualityMonitor: no Model Monitor analyzer image is known for region "
                f"{region!r}; known regions: {sorted(MODEL_MONITOR_ACCOUNTS)} (add the account "
                "from AWS's 'Docker Registry Paths and Example Code' to "
                "mlstack.constructs.data_quality_monitor.MODEL_MONITOR_ACCOUNTS)"
            )
    else:
        mapping = stack.node.try_find_child("ModelMonitorAccounts")
        if not isinstance(mapping, CfnMapping):
            mapping = CfnMapping(
                stack,
                "ModelMonitorAccounts",
                mapping={r: {"account": a} for r, a in MODEL_MONITOR_ACCOUNTS.items()},
            )
        account = mapping.find_in_map(Aws.REGION, "account")
    return f"{account}.dkr.ecr.{region}.{Aws.URL_SUFFIX}/{MODEL_MONITOR_REPOSITORY}"


class DataQualityMonitor(Construct):
    """Creates a Model Monitor data-quality job definition for ``endpoint_name`` (the region's
    prebuilt analyzer comparing the captured requests with the baseline under
    ``baseline_prefix``), its monitoring schedule, the role the jobs run as, and an alarm when a
    feature drifts from the baseline.

    The jobs read ``layout.data_capture`` and the baseline, write their reports (KMS-encrypted)
    under ``<layout.baselines>reports/<endpoint>/``, encrypt their volumes with ``key`` and run
    without network access (in ``placement`` when given).

    Args:
        endpoint_name: the endpoint to monitor (it must capture its requests).
        bucket: the data bucket (captured data, baselines, reports).
        key: the bucket's KMS key; also encrypts the reports and the job volumes.
        feature_count: how many feature columns the endpoint receives (CSV, no header).
        first_feature: the analyzed column of the first feature: 0, or 1 when the endpoint
            also captures its output (the analyzer puts the prediction first as ``_c0``).
            Default: 0.
        schedule_name: the monitoring schedule's name (unique in the account and region).
        layout: the bucket's key prefixes. Default: ``BucketLayout()``.
        baseline_prefix: where ``statistics.json`` and ``constraints.json`` are. Default:
            ``<layout.baselines>latest/`` (the training workflow's newest baseline).
        schedule_expression: Model Monitor's cron expression. Default: hourly,
            ``cron(0 * ? * * *)``.
        instance_type: the monitoring job's instance type. Default: ``ml.m5.large``.
        volume_size_gb: its volume. Default: 20.
        max_runtime: its longest run (at most one hour). Default: 30 minutes.
        drift_threshold: the alarm fires when a feature's drift is above it. Default: 0.1.
        topic: creates a :class:`DriftAlarm` notifying it. Default: none (no alarm here; a
            :class:`DriftAlarm` elsewhere can watch the schedule by name).
        placement: subnets and security groups of the jobs. Default: none (no VPC).

    Attributes:
        role: the role the monitoring jobs run as.
        job_definition: the ``AWS::SageMaker::DataQualityJobDefinition``.
        schedule: the ``AWS::SageMaker::MonitoringSchedule``.
        drift_alarm: the :class:`DriftAlarm`, or None without ``topic``.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        endpoint_name: str,
        bucket: s3.IBucket,
        key: kms.IKey,
        feature_count: int,
        schedule_name: str,
        first_feature: int = 0,
        layout: BucketLayout | None = None,
        baseline_prefix: str | None = None,
        schedule_expression: str = "cron(0 * ? * * *)",
        instance_type: str = "ml.m5.large",
        volume_size_gb: int = 20,
        max_runtime: Duration = THIRTY_MINUTES,
        drift_threshold: float = 0.1,
        topic: sns.ITopic | None = None,
        placement: Placement | None = None,
    ) -> None:
        super().__init__(scope, id)
        layout = layout or BucketLayout()
        baseline_prefix = baseline_prefix or f"{layout.baselines}latest/"
        _validate(
            feature_count=feature_count,
            schedule_expression=schedule_expression,
            instance_type=instance_type,
            volume_size_gb=volume_size_gb,
            max_runtime=max_runtime,
            drift_threshold=drift_threshold,
            baseline_prefix=baseline_prefix,
            schedule_name=schedule_name,
        )
        reports = f"{layout.baselines}reports/{schedule_name}/"
        self.role = self._role(bucket, key, layout, baseline_prefix, reports, placement)
        self.job_definition = self._job_definition(
            endpoint_name=endpoint_name,
            bucket=bucket,
            key=key,
            baseline_prefix=baseline_prefix,
            reports=reports,
            instance_type=instance_type,
            volume_size_gb=volume_size_gb,
            max_runtime=max_runtime,
            placement=placement,
        )
        self.schedule = sagemaker.CfnMonitoringSchedule(
            self,
            "Resource",
            monitoring_schedule_name=schedule_name,
            endpoint_name=endpoint_name,
            monitoring_schedule_config=sagemaker.CfnMonitoringSchedule.MonitoringScheduleConfigProperty(
                # CloudFormation names the definition; its ARN ends in that name.
                monitoring_job_definition_name=Fn.select(
                    1, Fn.split("/", self.job_definition.attr_job_definition_arn)
                ),
                monitoring_type="DataQuality",
                schedule_config=sagemaker.CfnMonitoringSchedule.ScheduleConfigProperty(
                    schedule_expression=schedule_expression
                ),
            ),
        )
        self.schedule.node.add_dependency(self.job_definition)
        self.drift_alarm: DriftAlarm | None = None
        if topic is not None:
            self.drift_alarm = DriftAlarm(
                self,
                "Drift",
                endpoint_name=endpoint_name,
                schedule_name=schedule_name,
                feature_count=feature_count,
                first_feature=first_feature,
                threshold=drift_threshold,
                topic=topic,
            )

    def _role(
        self,
        bucket: s3.IBucket,
        key: kms.IKey,
        layout: BucketLayout,
        baseline_prefix: str,
        reports: str,
        placement: Placement | None,
    ) -> iam.Role:
        """Read the captured data and the baseline, write the reports, use ``key``, write the
        processing jobs' logs."""
        role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description="Model Monitor data-quality jobs: read captured data and the baseline",
        )
        acknowledge_inline_policy(role)
        readable = [layout.data_capture, baseline_prefix]
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ListCaptureAndBaseline",
                actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{p}*" for p in readable]}},
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadCaptureAndBaseline",
                actions=["s3:GetObject"],
                resources=[bucket.arn_for_objects(f"{p}*") for p in readable],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteReports",
                actions=["s3:PutObject", "s3:AbortMultipartUpload"],
                resources=[bucket.arn_for_objects(f"{reports}*")],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="UseDataKeyThroughS3",
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=[key.key_arn],
                conditions={
                    "StringEquals": {"kms:ViaService": f"s3.{Stack.of(self).region}.amazonaws.com"}
                },
            )
        )
        allow_volume_encryption(role, key, sid="EncryptJobVolumes")
        allow_volume_data_keys(role, key, sid="JobVolumeDataKeys")
        streams = allow_processing_logs(role)
        if placement is not None:
            placement.grant_network_interfaces(role, service="sagemaker")
        acknowledge_wildcard_resources(
            default_policy(role),
            [
                *[
                    (bucket.arn_for_objects(f"{p}*"), f"Objects under the '{p}' prefix only.")
                    for p in (*readable, reports)
                ],
                (
                    streams,
                    "Monitoring executions are processing jobs SageMaker names itself; their "
                    "streams are in this one log group.",
                ),
            ],
        )
        return role

    def _job_definition(
        self,
        *,
        endpoint_name: str,
        bucket: s3.IBucket,
        key: kms.IKey,
        baseline_prefix: str,
        reports: str,
        instance_type: str,
        volume_size_gb: int,
        max_runtime: Duration,
        placement: Placement | None,
    ) -> sagemaker.CfnDataQualityJobDefinition:
        """The analyzer on the endpoint's captured data against the baseline."""
        job = sagemaker.CfnDataQualityJobDefinition
        baseline = f"s3://{bucket.bucket_name}/{baseline_prefix}"
        definition = job(
            self,
            "JobDefinition",
            role_arn=self.role.role_arn,
            data_quality_app_specification=job.DataQualityAppSpecificationProperty(
                image_uri=model_monitor_image_uri(self)
            ),
            data_quality_baseline_config=job.DataQualityBaselineConfigProperty(
                constraints_resource=job.ConstraintsResourceProperty(
                    s3_uri=f"{baseline}constraints.json"
                ),
                statistics_resource=job.StatisticsResourceProperty(
                    s3_uri=f"{baseline}statistics.json"
                ),
            ),
            data_quality_job_input=job.DataQualityJobInputProperty(
                endpoint_input=job.EndpointInputProperty(
                    endpoint_name=endpoint_name,
                    local_path=ANALYZER_INPUT,
                    s3_input_mode="File",
                    s3_data_distribution_type="FullyReplicated",
                )
            ),
            data_quality_job_output_config=job.MonitoringOutputConfigProperty(
                kms_key_id=key.key_arn,
                monitoring_outputs=[
                    job.MonitoringOutputProperty(
                        s3_output=job.S3OutputProperty(
                            local_path=ANALYZER_OUTPUT,
                            s3_uri=f"s3://{bucket.bucket_name}/{reports}",
                            s3_upload_mode="EndOfJob",
                        )
                    )
                ],
            ),
            job_resources=job.MonitoringResourcesProperty(
                cluster_config=job.ClusterConfigProperty(
                    instance_count=1,
                    instance_type=instance_type,
                    volume_size_in_gb=volume_size_gb,
                    volume_kms_key_id=None if has_local_storage(instance_type) else key.key_arn,
                )
            ),
            network_config=job.NetworkConfigProperty(
                enable_network_isolation=True,
                enable_inter_container_traffic_encryption=True,
                vpc_config=job.VpcConfigProperty(
                    security_group_ids=placement.security_group_ids, subnets=placement.subnet_ids
                )
                if placement is not None
                else None,
            ),
            stopping_condition=job.StoppingConditionProperty(
                max_runtime_in_seconds=int(max_runtime.to_seconds())
            ),
        )
        # SageMaker checks the role when the definition is created: it needs its policy first.
        definition.node.add_dependency(self.role)
        return definition


class DriftAlarm(Construct):
    """Creates an alarm on the largest ``feature_baseline_drift_<feature>`` that a Model Monitor
    schedule publishes for an endpoint ("CloudWatch Metrics", Model Monitor), above
    ``threshold``; no data (no run yet, no traffic) is not breaching.

    Args:
        endpoint_name: the monitored endpoint (dimension ``Endpoint``).
        schedule_name: its monitoring schedule (dimension ``MonitoringSchedule``).
        feature_count: how many features it watches (1 to 10).
        first_feature: the column of the first: ``_c<first_feature>`` .. Default: 0.
        threshold: the drift above which it fires. Default: 0.1.
        topic: notified when it fires. Default: none.

    Attributes:
        alarm: the CloudWatch alarm.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        endpoint_name: str,
        schedule_name: str,
        feature_count: int,
        first_feature: int = 0,
        threshold: float = 0.1,
        topic: sns.ITopic | None = None,
    ) -> None:
        super().__init__(scope, id)
        if not 1 <= feature_count <= 10:
            # An alarm's metric math takes at most 10 metrics.
            raise ValueError(f"DriftAlarm feature_count={feature_count}: expected 1 to 10")
        if not 0 < threshold <= 1:
            raise ValueError(f"DriftAlarm threshold={threshold}: expected more than 0, at most 1")
        metrics = {
            f"drift{i}": cw.Metric(
                namespace=DATA_METRICS_NAMESPACE,
                metric_name=f"feature_baseline_drift__c{first_feature + i}",
                dimensions_map={"Endpoint": endpoint_name, "MonitoringSchedule": schedule_name},
                statistic="Maximum",
                period=ONE_HOUR,
            )
            for i in range(feature_count)
        }
        self.alarm = cw.Alarm(
            self,
            "Resource",
            metric=cw.MathExpression(
                expression=f"MAX([{', '.join(metrics)}])",
                using_metrics=metrics,
                label="largest feature drift",
                period=ONE_HOUR,
            ),
            threshold=threshold,
            evaluation_periods=1,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            alarm_description=(
                f"Endpoint {endpoint_name}: a feature of the captured requests drifted more than "
                f"{threshold} from the training data's baseline (Model Monitor schedule "
                f"{schedule_name})"
            ),
        )
        if topic is not None:
            self.alarm.add_alarm_action(cw_actions.SnsAction(topic))


def _validate(
    *,
    feature_count: int,
    schedule_expression: str,
    instance_type: str,
    volume_size_gb: int,
    max_runtime: Duration,
    drift_threshold: float,
    baseline_prefix: str,
    schedule_name: str,
) -> None:
    """Reject impossible props at synth time."""
    if not 1 <= feature_count <= 10:
        # The drift alarm's metric math takes at most 10 metrics.
        raise ValueError(f"DataQualityMonitor feature_count={feature_count}: expected 1 to 10")
    if not _SCHEDULE.fullmatch(schedule_expression):
        raise ValueError(
            f"DataQualityMonitor schedule_expression={schedule_expression!r}: expected a Model "
            "Monitor cron expression such as 'cron(0 * ? * * *)' (hourly)"
        )
    if not _INSTANCE_TYPE.fullmatch(instance_type):
        raise ValueError(
            f"DataQualityMonitor instance_type={instance_type!r}: expected an ml.* instance type"
        )
    if not VOLUME_SIZE_GB.accepts(volume_size_gb):
        raise ValueError(
            f"DataQualityMonitor volume_size_gb={volume_size_gb}: expected {VOLUME_SIZE_GB.words()}"
        )
    if not 1 <= max_runtime.to_seconds() <= 3600:
        raise ValueError(
            f"DataQualityMonitor max_runtime={max_runtime.to_seconds()}s: expected 1 to 3600 s "
            "(a scheduled job ends within the hour)"
        )
    if not DRIFT_THRESHOLD.accepts(drift_threshold):
        raise ValueError(
            f"DataQualityMonitor drift_threshold={drift_threshold}: "
            f"expected {DRIFT_THRESHOLD.words()}"
        )
    if not baseline_prefix.endswith("/") or baseline_prefix.startswith(("/", "s3://")):
        raise ValueError(
            f"DataQualityMonitor baseline_prefix={baseline_prefix!r}: expected a key prefix of "
            "the bucket ending in '/', such as 'baselines/latest/'"
        )
    if not Token.is_unresolved(schedule_name) and not re.fullmatch(
        r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", schedule_name
    ):
        raise ValueError(
            f"DataQualityMonitor schedule_name={schedule_name!r}: expected at most 63 letters, "
            "digits and dashes"
        )


__all__ = [
    "DATA_METRICS_NAMESPACE",
    "MODEL_MONITOR_ACCOUNTS",
    "DataQualityMonitor",
    "DriftAlarm",
    "model_monitor_image_uri",
]
