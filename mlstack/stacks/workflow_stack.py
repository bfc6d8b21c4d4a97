"""The training workflow of one environment: images, seeding Lambda and state machine."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_logs as logs
from constructs import Construct

from mlstack import rules
from mlstack.config import (
    PRODUCTION_LOG_RETENTION_DAYS,
    AlarmsConfig,
    EnvironmentConfig,
    thaw,
)
from mlstack.constructs import (
    AlarmThresholds,
    DataBucket,
    DataQualityBaseline,
    DatasetSeeder,
    DeployStage,
    DriftAlarm,
    DriftMonitor,
    HyperparameterTuning,
    LogGroupEncryption,
    ModelImages,
    ModelPackageCleanup,
    ModelRegistry,
    ModelRelease,
    MonitoredEndpoint,
    RetrainingSchedule,
    RetrainOnDrift,
    SpotTraining,
    TrafficShift,
    TrainingWorkflow,
    WorkflowDefaults,
    WorkflowMonitoring,
    WorkloadNetwork,
)
from mlstack.constructs._nag import acknowledge_guard
from mlstack.constructs._prepare_states import PrepareData
from mlstack.constructs.workflow_options import ModelRegistration
from mlstack.stacks._monitor_settings import checked_baseline, monitor_settings
from mlstack.stacks.serving_stack import first_feature, monitors_data_quality, runs_model_monitor

R = logs.RetentionDays
RETENTION_DAYS = {
    1: R.ONE_DAY,
    3: R.THREE_DAYS,
    5: R.FIVE_DAYS,
    7: R.ONE_WEEK,
    14: R.TWO_WEEKS,
    30: R.ONE_MONTH,
    60: R.TWO_MONTHS,
    90: R.THREE_MONTHS,
    120: R.FOUR_MONTHS,
    150: R.FIVE_MONTHS,
    180: R.SIX_MONTHS,
    365: R.ONE_YEAR,
    400: R.THIRTEEN_MONTHS,
    545: R.EIGHTEEN_MONTHS,
    731: R.TWO_YEARS,
    1096: R.THREE_YEARS,
    1827: R.FIVE_YEARS,
    2192: R.SIX_YEARS,
    2557: R.SEVEN_YEARS,
    2922: R.EIGHT_YEARS,
    3288: R.NINE_YEARS,
    3653: R.TEN_YEARS,
}


def alarm_thresholds(alarms: AlarmsConfig) -> AlarmThresholds:
    return AlarmThresholds(
        error_5xx_rate_percent=alarms.error_5xx_rate_percent,
        error_4xx_rate_percent=alarms.error_4xx_rate_percent,
        latency_p99_ms=alarms.latency_p99_ms,
        async_backlog=alarms.async_backlog,
        period=Duration.seconds(alarms.period_seconds),
        evaluation_periods=alarms.evaluation_periods,
    )


def deploy_stage(config: EnvironmentConfig) -> DeployStage | None:
    deploy, gate = config.deploy, config.gate()
    if deploy is None or not deploy.enabled:
        return None
    assert gate is not None  # parse_environment refused a deploy stage without one
    metric, comparison = gate
    return DeployStage(
        metric=metric,
        threshold=deploy.threshold,
        comparison=comparison,
        instance_type=deploy.instance_type,
        instance_count=deploy.instance_count,
        candidate_weight=deploy.candidate_weight,
        traffic=TrafficShift(
            type=deploy.traffic.type,
            step_percent=deploy.traffic.step_percent,
            wait=Duration.seconds(deploy.traffic.wait_seconds),
            termination_wait=Duration.seconds(deploy.traffic.termination_wait_seconds),
        ),
        poll_interval=Duration.seconds(deploy.poll_seconds),
        max_wait=Duration.minutes(deploy.max_wait_minutes),
        alarms=alarm_thresholds(config.alarms),
        endpoint_name=config.deploy_endpoint_name,
        table_gate=(
            None
            if deploy.table_gate is None
            else rules.TableGate(
                deploy.table_gate.metric,
                deploy.table_gate.comparison,
                threshold=deploy.table_gate.threshold,
            )
        ),
    )


def model_registration(config: EnvironmentConfig, registry: ModelRegistry) -> ModelRegistration:
    """Register model: the config's approval status; the instance types a version may serve on
    are the deploy stage's and the Serving endpoint's."""
    realtime = [config.endpoint.instance_type] if config.endpoint.instance_type else []
    if config.deploy is not None:
        realtime.insert(0, config.deploy.instance_type)
    return ModelRegistration(
        registry=registry,
        approval_status=config.registry.approval_status,
        realtime_instance_types=tuple(dict.fromkeys(realtime)) or ("ml.m5.large",),
    )


def spot_training(config: EnvironmentConfig) -> SpotTraining | None:
    spot = config.training.spot
    if spot is None or not spot.enabled:
        return None
    return SpotTraining(max_wait=Duration.seconds(spot.max_wait_seconds))


def data_quality_baseline(config: EnvironmentConfig) -> DataQualityBaseline | None:
    """The Baseline data job, when the endpoint captures what it receives (docs/monitoring.md)."""
    if config.endpoint.data_capture is None:
        return None
    monitoring = config.monitoring
    return DataQualityBaseline(
        instance_type=monitoring.instance_type,
        volume_size_gb=monitoring.volume_size_gb,
        drift_threshold=monitoring.drift_threshold,
        keep_label=config.endpoint.data_capture.captures_output,
    )


def prepare_data(config: EnvironmentConfig) -> PrepareData:
    """The table path: the configured source (or none: the seeder), its instances and the
    hyperparameters of runs on a table (docs/your-data.md)."""
    source: Any = config.dataset.source
    environment = config.training.hyperparameters
    if source is None:
        return PrepareData(hyperparameters=PrepareData.table_hyperparameters(environment, {}))
    table = {key: getattr(source, key) for key in rules.table_source_fields()}
    return PrepareData(
        source=table,
        hyperparameters=PrepareData.table_hyperparameters(environment, source.hyperparameters),
        instance_type=source.instance_type,
        instance_count=source.instance_count,
        external_prefix=source.uri if source.uri.startswith("s3://") else None,
    )


def hyperparameter_tuning(config: EnvironmentConfig) -> HyperparameterTuning | None:
    tuning = config.tuning
    if tuning is None:
        return None
    return HyperparameterTuning(
        objective_metric=tuning.objective.metric,
        objective_type=tuning.objective.type,
        ranges=thaw(tuning.ranges),
        strategy=tuning.strategy,
        max_jobs=tuning.max_jobs,
        max_parallel_jobs=tuning.max_parallel_jobs,
        enabled=tuning.enabled,
        early_stopping=tuning.early_stopping,
    )


def short_retention(stack: Stack, days: int) -> None:
    """Acknowledge AWS Control Tower's one-year log retention (CT.CLOUDWATCH.PR.2) for the log
    groups of an environment that keeps its logs ``days`` days (workflow.log_retention_days)."""
    for node in stack.node.find_all():
        if isinstance(node, logs.CfnLogGroup):
            acknowledge_guard(
                node,
                "cloudwatch_log_group_retention_period_check",
                f"The environment keeps its logs {days} days (workflow.log_retention_days), a "
                "choice for a non-production environment; production keeps them a year or more.",
            )


def workload_network(
    scope: Construct,
    config: EnvironmentConfig,
    data: DataBucket,
    retention: logs.RetentionDays,
    removal: RemovalPolicy,
) -> WorkloadNetwork | None:
    """The environment's private network, or None when its isolation is off (network.vpc null)."""
    vpc = config.network.vpc
    if vpc is None:
        return None
    if vpc == "create":
        return WorkloadNetwork(
            scope,
            "Network",
            bucket=data.bucket,
            keys=[data.key],
            flow_log_retention=retention,
            removal_policy=removal,
            name_prefix=config.name_prefix,
        )
    return WorkloadNetwork(
        scope,
        "Network",
        bucket=data.bucket,
        keys=[data.key],
        vpc_id=vpc.vpc_id,
        subnet_ids=vpc.subnet_ids,
        extra_security_group_ids=vpc.security_group_ids,
    )


class WorkflowStack(Stack):
    """Images, seeding Lambda, state machine (with its optional tuning path and deploy stage),
    the retraining schedule, and the alarms and dashboard of the environment.

    Args:
        config: the environment's validated config.
        data: the environment's :class:`DataBucket` (from the data stack).
        registry: the environment's :class:`ModelRegistry` (from the data stack); each run that
            passes the quality gate registers a version in it.

    Attributes:
        workflow: the :class:`TrainingWorkflow`.
        release: the :class:`ModelRelease` (deploys approved versions), or None without a
            deploy stage.
        schedule: the :class:`RetrainingSchedule`, or None when the config has none.
        registry_cleanup: the :class:`ModelPackageCleanup` that deletes the registry's versions
            when the stack is deleted, where the data is destroyed (dev); None where it is
            retained (prod).
        monitoring: the :class:`WorkflowMonitoring`.
        network: the :class:`WorkloadNetwork`, or None when the config has no network.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: EnvironmentConfig,
        data: DataBucket,
        registry: ModelRegistry,
        **kwargs: Any,
    ):
        super().__init__(
            scope,
            id,
            description=f"mlstack {config.name}: training workflow",
            # It owns the deploy stage's endpoint (mlstack-<env>-live) and its alarms.
            termination_protection=config.retain_data,
            **kwargs,
        )
        self.workflow = self._workflow(config, data, registry)
        self.release = self._release(config, data, registry)
        self.schedule = self._schedule(config)
        self.registry_cleanup = self._registry_cleanup(config, registry)
        self.drift_monitor = self._drift_monitor(config, data)
        self.retrain_on_drift = self._retrain_on_drift(config, data)
        self.monitoring = self._monitoring(config)
        if not config.production and config.workflow.log_retention_days < (
            PRODUCTION_LOG_RETENTION_DAYS
        ):
            short_retention(self, config.workflow.log_retention_days)
        CfnOutput(self, "StateMachineArn", value=self.workflow.state_machine.state_machine_arn)
        CfnOutput(self, "FailureTopicArn", value=self.workflow.topic.topic_arn)
        CfnOutput(self, "DashboardName", value=self.monitoring.dashboard.dashboard_name)
        if self.workflow.deploy_endpoint_name:
            CfnOutput(self, "DeployEndpointName", value=self.workflow.deploy_endpoint_name)
        if self.release is not None:
            CfnOutput(
                self, "ReleaseStateMachineArn", value=self.release.state_machine.state_machine_arn
            )

    def _workflow(
        self, config: EnvironmentConfig, data: DataBucket, registry: ModelRegistry
    ) -> TrainingWorkflow:
        """The images, the seeding Lambda and the training workflow."""
        removal = RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY
        retention = RETENTION_DAYS[config.workflow.log_retention_days]
        # Every log group of this stack is encrypted with its own customer-managed key.
        LogGroupEncryption(self, "LogsKey", removal_policy=removal)
        self.network = workload_network(self, config, data, retention, removal)
        self.images = images = ModelImages(
            self,
            "Images",
            training_image_uri=config.images.training_image_uri,
            inference_image_uri=config.images.inference_image_uri,
            training_metric_definitions=config.images.training_metric_definitions,
        )
        seeder = DatasetSeeder(
            self,
            "Seeder",
            bucket=data.bucket,
            key=data.key,
            layout=data.layout,
            default_rows=config.dataset.rows,
            default_seed=config.dataset.seed,
            max_rows=config.dataset.max_rows,
            rows_per_shard=config.dataset.rows_per_shard,
            log_retention=retention,
            removal_policy=removal,
            reserved_concurrency=config.workflow.lambda_reserved_concurrency,
            placement=self.network.functions if self.network else None,
        )
        return TrainingWorkflow(
            self,
            "Workflow",
            bucket=data.bucket,
            key=data.key,
            layout=data.layout,
            images=images,
            seed_function=seeder.function,
            name_prefix=config.name_prefix,
            defaults=WorkflowDefaults(
                rows=config.dataset.rows,
                seed=config.dataset.seed,
                training_instance_type=config.training.instance_type,
                training_instance_count=config.training.instance_count,
                transform_instance_type=config.transform.instance_type,
                transform_instance_count=config.transform.instance_count,
                hyperparameters=config.training.hyperparameters,
            ),
            training_volume_size_gb=config.training.volume_size_gb,
            training_max_runtime=Duration.seconds(config.training.max_runtime_seconds),
            timeout=Duration.minutes(config.workflow.timeout_minutes),
            notification_email=config.notification_email,
            log_retention=retention,
            removal_policy=removal,
            tuning=hyperparameter_tuning(config),
            deploy=deploy_stage(config),
            spot=spot_training(config),
            baseline=data_quality_baseline(config),
            registration=model_registration(config, registry),
            max_rows=config.dataset.max_rows,
            rows_per_shard=config.dataset.rows_per_shard,
            seeding_concurrency=config.dataset.seeding_concurrency,
            network=self.network,
            validator_reserved_concurrency=config.workflow.lambda_reserved_concurrency,
            prepare=prepare_data(config),
        )

    def _release(
        self, config: EnvironmentConfig, data: DataBucket, registry: ModelRegistry
    ) -> ModelRelease | None:
        """The release of approved versions to the deploy stage's endpoint."""
        deployment = self.workflow.deployment
        if not config.deploy_enabled or deployment is None:
            return None
        release = ModelRelease(
            self,
            "Release",
            deployment=deployment,
            registry=registry,
            key=data.key,
            topic=self.workflow.topic,
            log_retention=RETENTION_DAYS[config.workflow.log_retention_days],
            removal_policy=RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY,
        )
        cleanup = self.workflow.endpoint_cleanup
        if cleanup is not None:
            # Deleted after the release too, which could create the endpoint again.
            release.state_machine.node.add_dependency(cleanup.resource)
        return release

    def _registry_cleanup(
        self, config: EnvironmentConfig, registry: ModelRegistry
    ) -> ModelPackageCleanup | None:
        """Where the Data stack deletes the group, this stack (deleted first: it depends on the
        Data stack) deletes the group's versions; the state machines that register and release
        versions are deleted before it."""
        if config.retain_data:
            return None
        cleanup = ModelPackageCleanup(self, "RegistryCleanup", registry=registry)
        self.workflow.state_machine.node.add_dependency(cleanup.resource)
        if self.release is not None:
            self.release.state_machine.node.add_dependency(cleanup.resource)
        return cleanup

    def _schedule(self, config: EnvironmentConfig) -> RetrainingSchedule | None:
        if config.schedule is None:
            return None
        return RetrainingSchedule(
            self,
            "RetrainingSchedule",
            state_machine=self.workflow.state_machine,
            expression=config.schedule.expression,
            input=thaw(config.schedule.input),
            enabled=config.schedule.enabled,
            description=f"mlstack {config.name}: scheduled retraining",
        )

    def _drift_monitor(self, config: EnvironmentConfig, data: DataBucket) -> DriftMonitor | None:
        """Our drift and model-quality monitor of the Serving endpoint, when it captures its
        requests: its endpoint has a fixed name, and the training image, the failure topic and
        the training workflow it may start are this stack's (docs/monitoring.md)."""
        if not monitors_data_quality(config):
            return None
        monitoring = config.monitoring
        baseline = checked_baseline(config, data.layout.baselines)
        monitor = DriftMonitor(
            self,
            "DriftMonitor",
            builder=self.workflow.state_builder,
            training_image_uri=self.images.training_image_uri,
            bucket=data.bucket,
            key=data.key,
            topic=self.workflow.topic,
            endpoint_name=config.name_prefix,
            variant_names=config.endpoint.variant_names,
            namespace=config.monitor_namespace,
            settings=monitor_settings(config),
            schedule_expression=monitoring.schedule_expression,
            baseline_prefix=baseline,
            capture_prefix=data.layout.data_capture,
            instance_type=monitoring.instance_type,
            volume_size_gb=monitoring.volume_size_gb,
            max_runtime=Duration.seconds(monitoring.max_runtime_seconds),
            placement=self.network.training if self.network else None,
            log_retention=RETENTION_DAYS[config.workflow.log_retention_days],
            removal_policy=RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY,
        )
        # SageMaker pulls the training image as the monitor job's role.
        self.images.training.grant_pull(monitor.job_role)
        return monitor

    def _retrain_on_drift(
        self, config: EnvironmentConfig, data: DataBucket
    ) -> RetrainOnDrift | None:
        """The monitor's alarms start the training workflow (``monitoring.retrain_on_drift``),
        with the scheduled retraining's input, at most once per cool-down."""
        if self.drift_monitor is None or not config.monitoring.retrain_on_drift:
            return None
        return RetrainOnDrift(
            self,
            "RetrainOnDrift",
            state_machine=self.workflow.state_machine,
            alarms=self.drift_monitor.alarms,
            topic=self.workflow.topic,
            key=data.key,
            cooldown=Duration.hours(config.monitoring.retrain_cooldown_hours),
            input=thaw(config.schedule.input) if config.schedule else None,
            name_prefix=config.name_prefix,
            log_retention=RETENTION_DAYS[config.workflow.log_retention_days],
            removal_policy=RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY,
        )

    def _drift_alarms(self, config: EnvironmentConfig) -> list[Any]:
        """The Serving endpoint's drift alarm, when Model Monitor watches it (serving stack)."""
        if not runs_model_monitor(config):
            return []
        drift = DriftAlarm(
            self,
            "DriftAlarm",
            endpoint_name=config.name_prefix,
            schedule_name=config.monitoring_schedule_name,
            feature_count=config.monitoring.features,
            first_feature=first_feature(config),
            threshold=config.monitoring.drift_threshold,
            topic=self.workflow.topic,
        )
        return [drift.alarm]

    def _monitoring(self, config: EnvironmentConfig) -> WorkflowMonitoring:
        """Alarms and one dashboard for the workflow, the Serving endpoint and the deploy
        stage's endpoint."""
        # The Serving stack's endpoint has a fixed name, so its alarms live here, beside the
        # workflow's and the deploy stage's, on one dashboard.
        serving = []
        if config.endpoint.enabled:
            serving.append(
                MonitoredEndpoint(
                    config.name_prefix,
                    config.endpoint.variant_names,
                    asynchronous=config.endpoint.async_inference is not None,
                )
            )
        extra_alarms = [*self._drift_alarms(config)]
        if self.drift_monitor is not None:
            extra_alarms += self.drift_monitor.alarms
        deployed = []
        deploy_alarms = self.workflow.deploy_alarms
        if self.workflow.deploy_endpoint_name is not None and deploy_alarms is not None:
            deployed.append(
                MonitoredEndpoint(
                    self.workflow.deploy_endpoint_name,
                    deploy_stage(config).variant_names,  # type: ignore[union-attr]
                )
            )
        return WorkflowMonitoring(
            self,
            "Monitoring",
            state_machine=self.workflow.state_machine,
            topic=self.workflow.topic,
            endpoints=serving,
            extra_endpoints=deployed,
            extra_alarms=[*extra_alarms, *(deploy_alarms.alarms if deploy_alarms else ())],
            thresholds=alarm_thresholds(config.alarms),
        )
