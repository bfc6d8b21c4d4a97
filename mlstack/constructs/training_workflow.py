"""Step Functions workflow: generate dataset -> train -> save model -> batch transform ->
evaluate."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

from aws_cdk import ArnFormat, Aws, Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct
from pydantic import ValidationError

from mlstack.constructs._deploy_states import (
    allow_deployment,
    deploy_states,
    gate_states,
    gate_value_path,
)
from mlstack.constructs._failure_states import notify_then_fail
from mlstack.constructs._lambda import DEFAULT_RESERVED_CONCURRENCY
from mlstack.constructs._nag import acknowledge, acknowledge_scoped_wildcards, default_policy
from mlstack.constructs._registry_states import register_model
from mlstack.constructs._seeding_states import (
    SeedingStates,
    allow_distributed_map,
    seeding_states,
    uses_distributed_map,
)
from mlstack.constructs._state_builder import StateBuilder as _StateBuilder
from mlstack.constructs.endpoint_cleanup import EndpointCleanup
from mlstack.constructs.input_validator import InputValidator
from mlstack.constructs.instance_storage import has_local_storage, local_storage_patterns
from mlstack.constructs.layout import BucketLayout
from mlstack.constructs.model_images import ModelImages
from mlstack.constructs.monitoring import (
    EndpointAlarms,
    MonitoredEndpoint,
    allow_alarm_notifications,
)
from mlstack.constructs.network import WorkloadNetwork
from mlstack.constructs.roles import (
    SageMakerExecutionRole,
    StateMachineRole,
    validate_name_prefix,
)
from mlstack.constructs.state_names import (
    APPLY_OVERRIDES,
    BASELINE_DATA,
    BATCH_TRANSFORM,
    EVALUATE_MODEL,
    INPUT_VALID,
    INVALID_EXECUTION_INPUT,
    LOAD_DEFAULTS,
    NOTIFY_FAILURE,
    READ_BEST_TRAINING_JOB,
    READ_EVALUATION,
    REJECT_INPUT,
    REPORT_RESULTS,
    SAVE_MODEL,
    TRAIN_MODEL,
    TRAIN_ON_ENCRYPTED_VOLUME,
    TRAIN_ON_INSTANCE_STORAGE,
    TRAINING_STORAGE,
    TRANSFORM_ON_ENCRYPTED_VOLUME,
    TRANSFORM_ON_INSTANCE_STORAGE,
    TRANSFORM_STORAGE,
    TUNE_MODEL,
    TUNE_OR_TRAIN,
    VALIDATE_INPUT,
    WORKFLOW_FAILED,
)
from mlstack.constructs.workflow_options import (
    DataQualityBaseline,
    DeployStage,
    HyperparameterTuning,
    ModelRegistration,
    SpotTraining,
)
from mlstack.rules import (
    CORE_INPUT_KEYS,
    DEFAULT_ROWS_PER_SHARD,
    DEFAULT_SEEDING_CONCURRENCY,
    DISTRIBUTED_MAP_MAX_CONCURRENCY,
    MAX_DATASET_ROWS,
    MAX_ROWS_PER_SHARD,
    MAX_SHARDS,
    NAME_PATTERN,
    SEED,
    VOLUME_SIZE_GB,
    evaluation_gate_metrics,
    execution_input_model,
    execution_input_schema,
    objective_not_a_metric,
    tuned_and_fixed,
)

__all__ = ["DEFAULT_MAX_RUNTIME", "DEFAULT_TIMEOUT", "TrainingWorkflow", "WorkflowDefaults"]

SAGEMAKER_NAME_LIMIT = 63
TUNING_JOB_NAME_LIMIT = 32  # HyperParameterTuningJobName is shorter than other SageMaker names
TUNING_SUFFIX_LENGTH = 8  # the first group of a fresh UUID: 8 hex digits
RUN_ID_LENGTH = 32  # hex MD5 of the execution name
MAX_REDRIVE_DIGITS = 4  # Step Functions redrives an execution at most 1000 times
DEFAULT_MAX_RUNTIME = Duration.days(1)
DEFAULT_TIMEOUT = Duration.hours(26)
FIVE_MINUTES = Duration.minutes(5)

LAMBDA_TRANSIENT_ERRORS = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
]
_ENDPOINT_NAME = re.compile(NAME_PATTERN)
# Static hyperparameters: the defaults, overridden key by key by the execution input.
_HYPERPARAMETERS = "States.JsonMerge($.default_hyperparameters, $.args.hyperparameters, false)"

TRAINING_RESOURCES = "$.resources.training"
TRANSFORM_RESOURCES = "$.resources.transform"
# The evaluation job: one small instance (it reads one score and one label a row).
DEFAULT_EVALUATION_INSTANCE_TYPE = "ml.m5.large"
EVALUATION_VOLUME_GB = 10
EVALUATION_MAX_RUNTIME = Duration.hours(1)
PROCESSING_DIR = "/opt/ml/processing"


@dataclass(frozen=True)
class WorkflowDefaults:
    """Per-run values an execution may override in its input (hyperparameters key by key)."""

    rows: int = 1000
    seed: int = 42
    training_instance_type: str = "ml.m5.xlarge"
    training_instance_count: int = 1
    transform_instance_type: str = "ml.m5.xlarge"
    transform_instance_count: int = 1
    hyperparameters: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType(
            {"objective": "reg:logistic", "eval_metric": "rmse", "num_round": "5"}
        )
    )

    def __post_init__(self) -> None:
        for name in ("rows", "training_instance_count", "transform_instance_count"):
            if getattr(self, name) < 1:
                raise ValueError(f"WorkflowDefaults.{name}={getattr(self, name)}: expected >= 1")
        if not SEED.accepts(self.seed):
            raise ValueError(f"WorkflowDefaults.seed={self.seed}: expected {SEED.words()}")
        for k, v in self.hyperparameters.items():
            if not isinstance(v, str):
                raise ValueError(
                    f"WorkflowDefaults.hyperparameters[{k!r}]={v!r}: SageMaker takes strings"
                )

    def as_state_input(self) -> dict[str, Any]:
        """The default of each core execution input key (``mlstack.rules.CORE_INPUT_KEYS``)."""
        values = {key: getattr(self, key) for key in CORE_INPUT_KEYS}
        values["hyperparameters"] = dict(self.hyperparameters)
        return values


class TrainingWorkflow(Construct):
    """Creates the training state machine, its role, log group and an encrypted failure topic.

    States: Validate input -> Load defaults -> Apply overrides -> Plan shards -> Generate dataset
    (a Map state invoking ``seed_function`` once per shard; a Distributed Map when ``max_rows``
    allows more than ``mlstack.rules.INLINE_MAX_SHARDS`` shards and the input asks for them) ->
    Assemble dataset -> Train model (``createTrainingJob.sync``) -> Save model
    (``createModel``) -> Batch transform (``createTransformJob.sync``) -> Evaluate model
    (``createProcessingJob.sync``: the training image's ``evaluate`` program scores the transform
    output against the seeded test labels into ``<layout.evaluations><run_id>/evaluation.json``)
    -> Read evaluation (``$.evaluation``: report URI, problem type, metrics) -> Report results. Any
    failure is published to ``topic`` and ends in the ``Workflow failed`` Fail state carrying the
    error and cause. The state names are in :mod:`mlstack.constructs.state_names`.

    Validate input checks the execution input against :attr:`input_schema` (generated from
    ``mlstack.rules.execution_input_model``: the keys below, their types and ranges, at most
    ``max_rows`` rows, the training image's hyperparameter names when they are known) with the
    ``input_validator`` Lambda; an input it refuses fails the execution with error
    ``InvalidExecutionInput`` and a cause naming each bad key, before anything is generated.

    Every run gets ``run_id`` = MD5 of the execution name; job and model names are
    ``<name_prefix>-<run_id>-<t|m|b><redrive count>-<retry count>``: unique per attempt, at most
    63 characters. The topic accepts notifications from CloudWatch alarms of the account.

    Methods: ``grant_start_execution(grantee)``, ``grant_read(grantee)``,
    ``metric_executions_failed()``, ``metric_executions_succeeded()``,
    ``metric_execution_time()``.

    Args:
        bucket: the data bucket (datasets, models, transform output).
        images: the training and inference images.
        seed_function: the Lambda that generates the datasets.
        name_prefix: the prefix of every job, model and endpoint name.
        defaults: the values an execution input may override (``hyperparameters`` key by key).
            Default: ``WorkflowDefaults()``.
        key: the bucket's KMS key. Default: ``bucket.encryption_key``.
        layout: the bucket's key prefixes. Default: ``BucketLayout()``.
        execution_role: the role SageMaker's jobs and models run as. Default: a new
            :class:`SageMakerExecutionRole`.
        training_volume_size_gb: the training volume, 1 to 16384 GB. Default: 30.
        training_max_runtime: a training job's longest run. Default: one day.
        timeout: an execution's longest run, more than ``training_max_runtime``. Default: 26
            hours.
        notification_email: subscribed to the failure topic. Default: none.
        log_retention: how long the execution logs are kept. Default: one year.
        removal_policy: what happens to the log groups (and, with ``DESTROY`` and ``deploy``,
            the deployed endpoint) when the stack is deleted. Default: ``RETAIN``.
        network_isolation: run jobs and models without network access. Default: True.
        max_attempts: attempts of each task on transient errors, 1 to 9. Default: 4.
        tuning: adds the optional tuning path (a Choice on the input's ``tune`` before Train
            model: Tune model -> Read best training job -> Save model). Default: none.
        deploy: adds the deploy stage after Read evaluation: quality gate on a final training
            metric or an evaluation metric (``evaluation:<name>``), a new endpoint
            configuration, create or blue/green-update the endpoint (auto-rollback on
            ``deploy_alarms``) and a bounded wait until it is in service.
            Default: none.
        max_rows: the most rows an execution input may ask for.
        network: a :class:`WorkloadNetwork`: training and tuning jobs in its ``training``
            placement (``VpcConfig``, traffic between hosts encrypted), models and so transform
            jobs and the deploy stage's endpoint in its ``inference`` placement, the input
            validator in its ``functions`` placement; the execution role gets the
            network-interface permissions SageMaker documents for VPC mode. Default: none.
        validator_reserved_concurrency: reserved concurrency of the input validator.
        spot: runs Train model and the tuning job's training jobs on managed spot capacity with
            checkpoints under ``<layout.checkpoints><run_id>/`` (its ``max_wait`` at least
            ``training_max_runtime``); the output reports training and billable seconds either
            way. Default: none (on-demand).
        evaluation_instance_type: the evaluation job's instance (one). Default: ml.m5.large.
        rows_per_shard: rows of each dataset shard (one seeding invocation each); at most
            ``mlstack.rules.MAX_SHARDS`` shards, so ``max_rows`` is at most 1,000 times this.
            Default: ``mlstack.rules.DEFAULT_ROWS_PER_SHARD``.
        seeding_concurrency: seeding invocations at once (the inline Map runs at most 40);
            keep it within the seeding function's reserved concurrency. Default: 5.
        registration: adds Register model (``createModelPackage``) after the quality gate, or
            after Batch transform without ``deploy``: a new version of the registry's group with
            the run's model, its evaluation report as model-quality metrics and the run's
            metadata; ``$.model_package`` (arn, version, approval_status) is in the output.
            Default: none.

        baseline: adds ``Baseline data`` after Batch transform: a Processing job
            (``createProcessingJob.sync``) running the training image's ``baseline`` program on
            the run's train channel, writing Model Monitor's ``statistics.json`` and
            ``constraints.json`` under ``<layout.baselines><run_id>/`` and
            ``<layout.baselines>latest/`` (what a data-quality monitor of an endpoint capturing
            its requests compares them with). Default: none.
    Attributes:
        state_machine: the Step Functions state machine.
        role: the state machine's role.
        execution_role: the role SageMaker's jobs and models run as.
        topic: the encrypted failure topic.
        log_group: the execution log group.
        input_validator: the :class:`InputValidator` of Validate input.
        input_schema: the JSON Schema of the execution input.
        input_rules: the checks across input keys Validate input runs beside the schema.
        defaults: the defaults in use.
        name_prefix: the name prefix.
        deploy_endpoint_name: the deploy stage's endpoint name, or None without ``deploy``.
        deploy_alarms: the deploy stage's :class:`EndpointAlarms`, or None without ``deploy``.
        endpoint_cleanup: deletes the deployed endpoint with the stack, or None.
        registration: the :class:`ModelRegistration`, or None.
        deploy: the :class:`DeployStage`, or None. With ``registration`` too, the workflow ends
            at Register model and a :class:`ModelRelease` deploys approved versions.
        state_builder: what the SageMaker task states share (names, tags, retries, network).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        bucket: s3.IBucket,
        images: ModelImages,
        seed_function: lambda_.IFunction,
        name_prefix: str,
        defaults: WorkflowDefaults | None = None,
        key: kms.IKey | None = None,
        layout: BucketLayout | None = None,
        execution_role: iam.IRole | None = None,
        training_volume_size_gb: int = 30,
        training_max_runtime: Duration = DEFAULT_MAX_RUNTIME,
        timeout: Duration = DEFAULT_TIMEOUT,
        notification_email: str | None = None,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        network_isolation: bool = True,
        max_attempts: int = 4,
        tuning: HyperparameterTuning | None = None,
        deploy: DeployStage | None = None,
        max_rows: int = MAX_DATASET_ROWS,
        network: WorkloadNetwork | None = None,
        validator_reserved_concurrency: int | None = DEFAULT_RESERVED_CONCURRENCY,
        spot: SpotTraining | None = None,
        evaluation_instance_type: str = DEFAULT_EVALUATION_INSTANCE_TYPE,
        rows_per_shard: int = DEFAULT_ROWS_PER_SHARD,
        seeding_concurrency: int = DEFAULT_SEEDING_CONCURRENCY,
        baseline: DataQualityBaseline | None = None,
        registration: ModelRegistration | None = None,
    ) -> None:
        super().__init__(scope, id)
        self.registration, self.deploy = registration, deploy
        self.defaults = defaults or WorkflowDefaults()
        self.name_prefix = name_prefix
        self.deploy_endpoint_name: str | None = _validate_props(
            name_prefix=name_prefix,
            defaults=self.defaults,
            images=images,
            max_attempts=max_attempts,
            timeout=timeout,
            training_max_runtime=training_max_runtime,
            training_volume_size_gb=training_volume_size_gb,
            tuning=tuning,
            deploy=deploy,
        )
        _validate_spot(spot, training_max_runtime)
        self._seeding = _validate_seeding(max_rows, rows_per_shard, seeding_concurrency)
        layout = layout or BucketLayout()
        key = _bucket_key(bucket, key)
        self.execution_role = execution_role or self._new_execution_role(
            bucket, key, layout, images, spot is not None, baseline is not None
        )
        self.topic = self._failure_topic(key, notification_email)
        self.log_group = self._log_group(log_retention, removal_policy)
        self.role = self._state_machine_role(tuning)
        self.input_validator = self._input_validator(
            log_retention, removal_policy, validator_reserved_concurrency, network
        )
        if network is not None:
            network.grant_sagemaker(self.execution_role)
        self.input_schema = self._input_schema(images, tuning, deploy, max_rows)
        self.input_rules = self._input_rules(rows_per_shard)
        self._grant_state_machine_role(seed_function, key)
        self.deploy_alarms = self._deploy_alarms(deploy, key)
        self.state_builder = builder = self._state_builder(
            bucket, layout, key, network_isolation, max_attempts, network, evaluation_instance_type
        )
        job = _training_job(
            builder, images, training_volume_size_gb, training_max_runtime, deploy, spot
        )
        start = self._definition(builder, job, images, seed_function, tuning, deploy, key, baseline)
        self.state_machine = self._state_machine(start, timeout, deploy)
        self.endpoint_cleanup = self._endpoint_cleanup(removal_policy)

    def grant_start_execution(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` start executions of this workflow (``states:StartExecution`` on the
        state machine only)."""
        return self.state_machine.grant_start_execution(grantee)

    def grant_read(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` list this workflow's executions and read their status, output and
        history, and nothing of other state machines.

        Not ``StateMachine.grant_read``: that adds ``states:DescribeStateMachine`` and
        ``states:DescribeActivity`` on ``*``, though both take a resource (Service
        Authorization Reference, "Actions defined by AWS Step Functions").
        """
        executions = Stack.of(self).format_arn(
            service="states",
            resource="execution",
            resource_name=f"{self.state_machine.state_machine_name}:*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["states:ListExecutions", "states:DescribeStateMachine"],
            resource_arns=[self.state_machine.state_machine_arn],
        ).combine(
            iam.Grant.add_to_principal(
                grantee=grantee,
                actions=["states:DescribeExecution", "states:GetExecutionHistory"],
                resource_arns=[executions],
            )
        )

    def metric_executions_failed(self, *, period: Duration = FIVE_MINUTES) -> cw.Metric:
        """Executions that failed: Step Functions' ``ExecutionsFailed``, summed per period."""
        return self.state_machine.metric_failed(period=period, statistic="Sum")

    def metric_executions_succeeded(self, *, period: Duration = FIVE_MINUTES) -> cw.Metric:
        """Executions that succeeded: ``ExecutionsSucceeded``, summed per period."""
        return self.state_machine.metric_succeeded(period=period, statistic="Sum")

    def metric_execution_time(self, *, statistic: str = "p99") -> cw.Metric:
        """How long executions ran, in milliseconds: ``ExecutionTime``, p99 by default."""
        return self.state_machine.metric_time(statistic=statistic)

    def _new_execution_role(
        self,
        bucket: s3.IBucket,
        key: kms.IKey,
        layout: BucketLayout,
        images: ModelImages,
        checkpoints: bool,
        baselines: bool,
    ) -> iam.IRole:
        """The role SageMaker's jobs and models run as, when none is handed in."""
        return SageMakerExecutionRole(
            self,
            "ExecutionRole",
            bucket=bucket,
            key=key,
            layout=layout,
            name_prefix=self.name_prefix,
            images=[images.training, images.inference],
            checkpoints=checkpoints,
            baselines=baselines,
        ).role

    def _state_machine_role(self, tuning: HyperparameterTuning | None) -> iam.Role:
        return StateMachineRole(
            self,
            "Role",
            name_prefix=self.name_prefix,
            sagemaker_role=self.execution_role,
            tuning=tuning is not None,
        ).role

    def _input_validator(
        self,
        log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
        reserved_concurrency: int | None,
        network: WorkloadNetwork | None,
    ) -> InputValidator:
        return InputValidator(
            self,
            "InputValidator",
            log_retention=log_retention,
            removal_policy=removal_policy,
            reserved_concurrency=reserved_concurrency,
            placement=network.functions if network else None,
        )

    def _failure_topic(self, key: kms.IKey, notification_email: str | None) -> sns.Topic:
        topic = sns.Topic(
            self,
            "FailureTopic",
            display_name=f"{self.name_prefix} training workflow failures",
            master_key=key,
            enforce_ssl=True,
        )
        if notification_email:
            topic.add_subscription(subscriptions.EmailSubscription(notification_email))
        allow_alarm_notifications(topic, key)
        return topic

    def _log_group(
        self, log_retention: logs.RetentionDays, removal_policy: RemovalPolicy
    ) -> logs.LogGroup:
        # Under /aws/vendedlogs/: CloudWatch Logs resource policies are limited to 5,120
        # characters, and Step Functions' logging best practice is this prefix, which one policy
        # statement covers ("Logging Step Functions execution history in CloudWatch Logs"). The
        # stack's id makes the name unique per deployment: a retained group never blocks a
        # redeploy.
        stack_id = Fn.select(2, Fn.split("/", Aws.STACK_ID))
        return logs.LogGroup(
            self,
            "Logs",
            log_group_name=f"/aws/vendedlogs/states/{self.name_prefix}-workflow-{stack_id}",
            retention=log_retention,
            removal_policy=removal_policy,
        )

    def _definition(
        self,
        builder: _StateBuilder,
        job: _TrainingJob,
        images: ModelImages,
        seed_function: lambda_.IFunction,
        tuning: HyperparameterTuning | None,
        deploy: DeployStage | None,
        key: kms.IKey,
        baseline: DataQualityBaseline | None,
    ) -> sfn.IChainable:
        """Every state, chained, with every task's failure caught; returns the first state."""
        core = self._core_states(builder, job, images, seed_function, tuning, deploy, baseline)
        notify_failure = self._failure_states()
        for state in core.tasks():
            state.add_catch(notify_failure, errors=["States.ALL"], result_path="$.error")
        self._chain(core, notify_failure)
        after_evaluation: sfn.INextable = core.read_evaluation
        if baseline is not None:
            baseline_data = self._baseline_data(builder, images, baseline)
            baseline_data.add_catch(notify_failure, errors=["States.ALL"], result_path="$.error")
            core.read_evaluation.next(baseline_data)
            after_evaluation = baseline_data
        after_evaluation.next(
            self._release_states(deploy, builder, images, key, core.report_results, notify_failure)
        )
        return core.validate_input

    def _release_states(
        self,
        deploy: DeployStage | None,
        builder: _StateBuilder,
        images: ModelImages,
        key: kms.IKey,
        report_results: sfn.CustomState,
        notify_failure: sfn.IChainable,
    ) -> sfn.IChainable:
        """What follows the evaluation: the quality gate, then Register model (deployment is then
        the release's, on approval) or the deploy stage, or neither; ends at ``report_results``."""
        register = (
            register_model(
                self,
                self.registration,
                builder,
                inference_image_uri=images.inference_image_uri,
                gate=None if deploy is None else (deploy.metric, gate_value_path(deploy)),
            )
            if self.registration is not None
            else None
        )
        if register is not None:
            register.add_catch(notify_failure, errors=["States.ALL"], result_path="$.error")
            register.next(report_results)
            if deploy is None:
                return register
            return gate_states(
                self, deploy, builder, on_pass=register, notify_failure=notify_failure
            )
        if deploy is not None:
            return self._deploy_states(deploy, builder, key, report_results, notify_failure, None)
        return report_results

    def _state_builder(
        self,
        bucket: s3.IBucket,
        layout: BucketLayout,
        key: kms.IKey,
        network_isolation: bool,
        max_attempts: int,
        network: WorkloadNetwork | None,
        evaluation_instance_type: str,
    ) -> _StateBuilder:
        """What the SageMaker task states share: names, tags, retries, bucket, key, role and
        network (the release state machine, ModelRelease, builds its states with it too)."""
        builder = _StateBuilder(
            name_prefix=self.name_prefix,
            bucket_name=bucket.bucket_name,
            layout=layout,
            key_arn=key.key_arn,
            role_arn=self.execution_role.role_arn,
            network_isolation=network_isolation,
            max_attempts=max_attempts,
            evaluation_instance_type=evaluation_instance_type,
        )
        return _in_network(builder, network)

    def _state_machine(
        self, start: sfn.IChainable, timeout: Duration, deploy: DeployStage | None
    ) -> sfn.StateMachine:
        state_machine = sfn.StateMachine(
            self,
            "Resource",
            comment=f"{self.name_prefix}: generate dataset, train, save model, batch transform"
            + (", register" if self.registration is not None else "")
            + (", deploy" if deploy is not None and self.registration is None else ""),
            definition_body=sfn.DefinitionBody.from_chainable(start),
            state_machine_type=sfn.StateMachineType.STANDARD,
            role=self.role,
            timeout=timeout,
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
        )
        acknowledge(
            default_policy(self.role),
            "AwsSolutions-IAM5[Resource::*]",
            "Only the X-Ray tracing actions and the CloudWatch Logs delivery actions that the "
            "state machine's logging needs use '*': none has resource-level permissions.",
        )
        rows_per_shard, _, max_rows = self._seeding
        if uses_distributed_map(max_rows, rows_per_shard):
            allow_distributed_map(self.role, state_machine)
        return state_machine

    def _endpoint_cleanup(self, removal_policy: RemovalPolicy) -> EndpointCleanup | None:
        if self.deploy_endpoint_name is None or removal_policy != RemovalPolicy.DESTROY:
            return None
        # The deploy stage's endpoint is no CloudFormation resource: without this, deleting
        # the stack leaves it billing, on a key the same destroy schedules for deletion.
        # Deleted after the state machine, which could create the endpoint again.
        cleanup = EndpointCleanup(self, "EndpointCleanup", endpoint_name=self.deploy_endpoint_name)
        self.state_machine.node.add_dependency(cleanup.resource)
        return cleanup

    def _grant_state_machine_role(self, seed_function: lambda_.IFunction, key: kms.IKey) -> None:
        if self.registration is not None:
            self._allow_registration(self.registration)
        # Explicit statements rather than grant_invoke/grant_publish: the definition calls the
        # unqualified function ARN (no versions or aliases) and needs no kms:GenerateDataKey*.
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="InvokeSeedFunction",
                actions=["lambda:InvokeFunction"],
                resources=[seed_function.function_arn],
            )
        )
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="InvokeInputValidator",
                actions=["lambda:InvokeFunction"],
                resources=[self.input_validator.function.function_arn],
            )
        )
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="PublishFailures", actions=["sns:Publish"], resources=[self.topic.topic_arn]
            )
        )
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="EncryptFailureMessages",
                actions=["kms:GenerateDataKey", "kms:Decrypt"],
                resources=[key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"sns.{Aws.REGION}.amazonaws.com"}},
            )
        )

    def _allow_registration(self, registration: ModelRegistration) -> None:
        """CreateModelPackage on the group's versions, whose numbers SageMaker picks."""
        group = registration.registry.group_name
        registration.registry.grant_register(self.role)
        acknowledge_scoped_wildcards(
            default_policy(self.role),
            [(f"/{group}/*", f"Versions of the model package group {group} only.")],
        )

    def _deploy_alarms(self, deploy: DeployStage | None, key: kms.IKey) -> EndpointAlarms | None:
        """The deployed endpoint's alarms (its rollback alarms) and the role's right to deploy;
        None without a deploy stage."""
        if deploy is None:
            return None
        assert self.deploy_endpoint_name is not None
        alarms = EndpointAlarms(
            self,
            "DeployAlarms",
            endpoint=MonitoredEndpoint(self.deploy_endpoint_name, deploy.variant_names),
            thresholds=deploy.alarms,
            topic=self.topic,
        )
        if self.registration is None:
            allow_deployment(
                self.role,
                self.execution_role,
                name_prefix=self.name_prefix,
                endpoint_name=self.deploy_endpoint_name,
                key=key,
                alarms=alarms.rollback_alarms,
            )
        return alarms

    def _core_states(
        self,
        builder: _StateBuilder,
        job: _TrainingJob,
        images: ModelImages,
        seed_function: lambda_.IFunction,
        tuning: HyperparameterTuning | None,
        deploy: DeployStage | None,
        baseline: DataQualityBaseline | None,
    ) -> _CoreStates:
        """The states of the core path and, with ``tuning``, of the tuning path, unchained."""
        validate_input, input_valid, reject_input = self._validation_states(builder.max_attempts)
        load_defaults, apply_overrides = self._input_states(tuning, deploy)
        training_storage = self._storage_choice(
            builder,
            (TRAINING_STORAGE, TRAIN_ON_INSTANCE_STORAGE, TRAIN_ON_ENCRYPTED_VOLUME),
            "$.args.training_instance_type",
            job.resource_config,
            TRAINING_RESOURCES,
        )
        transform_storage = self._storage_choice(
            builder,
            (TRANSFORM_STORAGE, TRANSFORM_ON_INSTANCE_STORAGE, TRANSFORM_ON_ENCRYPTED_VOLUME),
            "$.args.transform_instance_type",
            {
                "InstanceType.$": "$.args.transform_instance_type",
                "InstanceCount.$": "$.args.transform_instance_count",
            },
            TRANSFORM_RESOURCES,
        )
        rows_per_shard, concurrency, max_rows = self._seeding
        generate_dataset = seeding_states(
            self,
            seed_function=seed_function,
            bucket_name=builder.bucket_name,
            layout=builder.layout,
            rows_per_shard=rows_per_shard,
            concurrency=concurrency,
            max_rows=max_rows,
            lambda_retry=_lambda_retry_json(builder.max_attempts),
        )
        train_model = self._train_model(builder, job)
        # Built here rather than by the caller so that states are created in definition order.
        tuning_states = self._tuning_states(builder, job, tuning) if tuning is not None else None
        return _CoreStates(
            validate_input=validate_input,
            input_valid=input_valid,
            reject_input=reject_input,
            load_defaults=load_defaults,
            apply_overrides=apply_overrides,
            training_storage=training_storage,
            transform_storage=transform_storage,
            generate_dataset=generate_dataset,
            train_model=train_model,
            tuning=tuning_states,
            save_model=self._save_model(builder, images),
            batch_transform=self._batch_transform(builder),
            evaluate_model=self._evaluate_model(builder, images),
            read_evaluation=self._read_evaluation(builder),
            report_results=self._report_results(deploy, builder if baseline else None),
        )

    def _storage_choice(
        self,
        builder: _StateBuilder,
        names: tuple[str, str, str],
        instance_type_path: str,
        resources: dict[str, Any],
        result_path: str,
    ) -> sfn.Choice:
        """A Choice on the instance type: its resources with ``VolumeKmsKeyId`` only where
        SageMaker accepts one (see :mod:`mlstack.constructs.instance_storage`)."""
        choice_name, local_name, encrypted_name = names
        choice = sfn.Choice(
            self,
            choice_name,
            comment="SageMaker refuses VolumeKmsKeyId for instance types with local NVMe storage",
        )
        local = sfn.CustomState(
            self,
            local_name,
            state_json={"Type": "Pass", "Parameters": resources, "ResultPath": result_path},
        )
        encrypted = sfn.CustomState(
            self,
            encrypted_name,
            state_json={
                "Type": "Pass",
                "Parameters": {**resources, "VolumeKmsKeyId": builder.key_arn},
                "ResultPath": result_path,
            },
        )
        matches = [
            sfn.Condition.string_matches(instance_type_path, pattern)
            for pattern in local_storage_patterns()
        ]
        choice.when(sfn.Condition.or_(*matches), local).otherwise(encrypted)
        return choice

    @staticmethod
    def _state_defaults(
        defaults: WorkflowDefaults,
        tuning: HyperparameterTuning | None,
        deploy: DeployStage | None,
    ) -> dict[str, Any]:
        """The default of every execution input key this workflow accepts."""
        state_defaults = defaults.as_state_input()
        if tuning is not None:
            state_defaults.update(tuning.as_state_input())
        if deploy is not None:
            state_defaults["quality_threshold"] = deploy.threshold
        return state_defaults

    def _input_schema(
        self,
        images: ModelImages,
        tuning: HyperparameterTuning | None,
        deploy: DeployStage | None,
        max_rows: int,
    ) -> dict[str, Any]:
        """The JSON Schema of the execution input; the defaults must pass it too."""
        model = execution_input_model(
            self._state_defaults(self.defaults, tuning, deploy),
            max_rows=max_rows,
            hyperparameter_names=images.training_hyperparameter_names,
            metric_names=[m["Name"] for m in images.training_metric_definitions],
            tuning=tuning is not None,
            deploy=deploy is not None,
        )
        try:
            model.model_validate(self._state_defaults(self.defaults, tuning, deploy))
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc'])}={error['input']!r}: {error['msg']}"
                for error in err.errors()
            )
            raise ValueError(
                f"TrainingWorkflow defaults: the execution input would refuse them: {problems}"
            ) from None
        return execution_input_schema(model)

    def _input_rules(self, rows_per_shard: int) -> dict[str, Any]:
        """The checks across keys that the schema cannot express (lambda/validate_input's
        RULES), with the settings and defaults they read."""
        return {
            "instances_within_shards": {
                "rows_per_shard": rows_per_shard,
                "defaults": {
                    "rows": self.defaults.rows,
                    "training_instance_count": self.defaults.training_instance_count,
                },
            }
        }

    def _validation_states(
        self, max_attempts: int
    ) -> tuple[sfn.CustomState, sfn.Choice, sfn.CustomState]:
        """Validate input -> Input valid? -> (no) Reject input: the input checked before any
        other state, against :attr:`input_schema`, by the validation Lambda."""
        validate_input = sfn.CustomState(
            self,
            VALIDATE_INPUT,
            state_json={
                "Type": "Task",
                "Comment": "The execution input against the schema of mlstack.rules.",
                "Resource": f"arn:{Aws.PARTITION}:states:::lambda:invoke",
                "Parameters": {
                    "FunctionName": self.input_validator.function.function_arn,
                    "Payload": {
                        "input.$": "$",
                        "schema": self.input_schema,
                        "rules": self.input_rules,
                    },
                },
                "ResultSelector": {"valid.$": "$.Payload.valid", "message.$": "$.Payload.message"},
                # Load defaults reads the input from the context object, so the result may
                # replace it: this works for an input that is not even an object.
                "ResultPath": "$",
            },
        )
        _retry_lambda(validate_input, max_attempts)
        input_valid = sfn.Choice(self, INPUT_VALID)
        reject_input = sfn.CustomState(
            self,
            REJECT_INPUT,
            state_json={
                "Type": "Pass",
                "Parameters": {"Error": INVALID_EXECUTION_INPUT, "Cause.$": "$.message"},
                "ResultPath": "$.error",
            },
        )
        return validate_input, input_valid, reject_input

    def _input_states(
        self, tuning: HyperparameterTuning | None, deploy: DeployStage | None
    ) -> tuple[sfn.CustomState, sfn.CustomState]:
        """Load defaults and Apply overrides: the run's arguments and its ``run_id``."""
        state_defaults = self._state_defaults(self.defaults, tuning, deploy)
        load_defaults = sfn.CustomState(
            self,
            LOAD_DEFAULTS,
            state_json={
                "Type": "Pass",
                "Comment": "Defaults from the environment's config; the input overrides them.",
                "Parameters": {
                    "defaults": state_defaults,
                    "overrides.$": "$$.Execution.Input",
                    "run_id.$": "States.Hash($$.Execution.Name, 'MD5')",
                },
            },
        )
        apply_overrides = sfn.CustomState(
            self,
            APPLY_OVERRIDES,
            state_json={
                "Type": "Pass",
                "Parameters": {
                    "run_id.$": "$.run_id",
                    "args.$": "States.JsonMerge($.defaults, $.overrides, false)",
                    "default_hyperparameters.$": "$.defaults.hyperparameters",
                },
            },
        )
        return load_defaults, apply_overrides

    def _train_model(self, builder: _StateBuilder, job: _TrainingJob) -> sfn.CustomState:
        train_model = sfn.CustomState(
            self,
            TRAIN_MODEL,
            state_json={
                "Type": "Task",
                "Resource": f"arn:{Aws.PARTITION}:states:::sagemaker:createTrainingJob.sync",
                "Parameters": {
                    "TrainingJobName.$": builder.name("t"),
                    "RoleArn": builder.role_arn,
                    "AlgorithmSpecification": job.algorithm,
                    "HyperParameters.$": _HYPERPARAMETERS,
                    "InputDataConfig": builder.channels(),
                    "OutputDataConfig": job.output_config,
                    "ResourceConfig.$": TRAINING_RESOURCES,
                    "StoppingCondition": job.stopping | job.spot_stopping,
                    "EnableNetworkIsolation": builder.network_isolation,
                    **builder.training_network(),
                    **job.spot,
                    "Tags": builder.tags(),
                },
                "ResultSelector": job.result,
                "ResultPath": "$.training",
            },
        )
        builder.retry_sagemaker(train_model)
        return train_model

    def _tuning_states(
        self, builder: _StateBuilder, job: _TrainingJob, tuning: HyperparameterTuning
    ) -> _TuningStates:
        """Tune model -> Read best training job, and the Choice that picks tuning or training."""
        tune_model = sfn.CustomState(
            self,
            TUNE_MODEL,
            state_json={
                "Type": "Task",
                "Resource": (
                    f"arn:{Aws.PARTITION}:states:::sagemaker:createHyperParameterTuningJob.sync"
                ),
                "Parameters": {
                    "HyperParameterTuningJobName.$": builder.tuning_job_name(),
                    "HyperParameterTuningJobConfig": {
                        "Strategy.$": "$.args.tuning_strategy",
                        "HyperParameterTuningJobObjective.$": "$.args.tuning_objective",
                        "ResourceLimits": {
                            "MaxNumberOfTrainingJobs.$": "$.args.tuning_max_jobs",
                            "MaxParallelTrainingJobs.$": "$.args.tuning_max_parallel_jobs",
                        },
                        "ParameterRanges.$": "$.args.tuning_ranges",
                        "TrainingJobEarlyStoppingType": "Auto" if tuning.early_stopping else "Off",
                    },
                    "TrainingJobDefinition": {
                        "AlgorithmSpecification": job.algorithm,
                        "RoleArn": builder.role_arn,
                        "StaticHyperParameters.$": _HYPERPARAMETERS,
                        "InputDataConfig": builder.channels(),
                        "OutputDataConfig": job.output_config,
                        "ResourceConfig.$": TRAINING_RESOURCES,
                        "StoppingCondition": job.stopping | job.spot_stopping,
                        "EnableNetworkIsolation": builder.network_isolation,
                        **builder.training_network(),
                        **job.tuning_spot,
                    },
                    "Tags": builder.tags(),
                },
                "ResultSelector": {
                    "HyperParameterTuningJobName.$": "$.HyperParameterTuningJobName",
                    "HyperParameterTuningJobArn.$": "$.HyperParameterTuningJobArn",
                    "BestTrainingJob.$": "$.BestTrainingJob",
                },
                "ResultPath": "$.tuning",
            },
        )
        builder.retry_sagemaker(tune_model)
        # The best job's description has the shape of Train model's result, so Save model and
        # the deploy stage read either path the same way.
        read_best = sfn.CustomState(
            self,
            READ_BEST_TRAINING_JOB,
            state_json={
                "Type": "Task",
                "Resource": f"arn:{Aws.PARTITION}:states:::aws-sdk:sagemaker:describeTrainingJob",
                "Parameters": {"TrainingJobName.$": "$.tuning.BestTrainingJob.TrainingJobName"},
                "ResultSelector": job.result,
                "ResultPath": "$.training",
            },
        )
        builder.retry_sagemaker(read_best, sdk=True)
        tune_or_train = sfn.Choice(
            self,
            TUNE_OR_TRAIN,
            comment="Execution input 'tune' (default from the config) picks the path.",
        )
        return _TuningStates(tune_or_train, tune_model, read_best)

    def _save_model(self, builder: _StateBuilder, images: ModelImages) -> sfn.CustomState:
        save_model = sfn.CustomState(
            self,
            SAVE_MODEL,
            state_json={
                "Type": "Task",
                "Resource": f"arn:{Aws.PARTITION}:states:::sagemaker:createModel",
                "Parameters": {
                    "ModelName.$": builder.name("m"),
                    "ExecutionRoleArn": builder.role_arn,
                    "PrimaryContainer": {
                        "Image": images.inference_image_uri,
                        "ModelDataUrl.$": "$.training.ModelArtifacts.S3ModelArtifacts",
                        "Mode": "SingleModel",
                    },
                    "EnableNetworkIsolation": builder.network_isolation,
                    **builder.model_network(),
                    "Tags": builder.tags(),
                },
                # CreateModel answers only the ARN; SageMaker ARNs end in the (lower-case) name.
                "ResultSelector": {
                    "ModelArn.$": "$.ModelArn",
                    "ModelName.$": "States.ArrayGetItem(States.StringSplit($.ModelArn, '/'), 1)",
                },
                "ResultPath": "$.model",
            },
        )
        builder.retry_sagemaker(save_model)
        return save_model

    def _batch_transform(self, builder: _StateBuilder) -> sfn.CustomState:
        batch_transform = sfn.CustomState(
            self,
            BATCH_TRANSFORM,
            state_json={
                "Type": "Task",
                "Resource": f"arn:{Aws.PARTITION}:states:::sagemaker:createTransformJob.sync",
                "Parameters": {
                    "TransformJobName.$": builder.name("b"),
                    "ModelName.$": "$.model.ModelName",
                    "BatchStrategy": "MultiRecord",
                    "TransformInput": {
                        "ContentType": "text/csv",
                        "CompressionType": "None",
                        "SplitType": "Line",
                        "DataSource": {
                            "S3DataSource": {
                                "S3DataType": "S3Prefix",
                                "S3Uri.$": "$.dataset.test_prefix",
                            }
                        },
                    },
                    "TransformOutput": {
                        "S3OutputPath.$": (
                            f"States.Format('s3://{builder.bucket_name}/"
                            f"{builder.layout.transform_output}{{}}/', $.run_id)"
                        ),
                        "Accept": "text/csv",
                        "AssembleWith": "Line",
                        "KmsKeyId": builder.key_arn,
                    },
                    "TransformResources.$": TRANSFORM_RESOURCES,
                    "Tags": builder.tags(),
                },
                "ResultSelector": {
                    "TransformJobName.$": "$.TransformJobName",
                    "TransformJobArn.$": "$.TransformJobArn",
                    "TransformOutput.$": "$.TransformOutput",
                },
                "ResultPath": "$.transform",
            },
        )
        builder.retry_sagemaker(batch_transform)
        return batch_transform

    def _evaluate_model(self, builder: _StateBuilder, images: ModelImages) -> sfn.CustomState:
        """A Processing job of the training image's ``evaluate``: its summary (metrics, problem
        type) comes back as the job's ExitMessage, its report goes to ``layout.evaluations``."""
        network: dict[str, Any] = {"EnableNetworkIsolation": builder.network_isolation}
        if builder.model_vpc is not None:  # beside the transform job, in the inference subnets
            network["VpcConfig"] = builder.model_vpc
        evaluate_model = sfn.CustomState(
            self,
            EVALUATE_MODEL,
            state_json={
                "Type": "Task",
                "Resource": f"arn:{Aws.PARTITION}:states:::sagemaker:createProcessingJob.sync",
                "Parameters": _processing_job(
                    builder,
                    kind="e",
                    app={
                        "ImageUri": images.training_image_uri,
                        "ContainerEntrypoint": ["evaluate"],
                    },
                    inputs={
                        "predictions": "$.transform.TransformOutput.S3OutputPath",
                        "labels": "$.dataset.test_labels_prefix",
                        "model": "$.training.ModelArtifacts.S3ModelArtifacts",
                    },
                    outputs=[
                        _processing_output(
                            "evaluation", {"S3Uri.$": self._evaluation_uri(builder, "")}
                        )
                    ],
                    # One instance: ExitMessage concatenates the messages of every instance.
                    instance_type=builder.evaluation_instance_type,
                    volume_size_gb=EVALUATION_VOLUME_GB,
                    max_runtime=EVALUATION_MAX_RUNTIME,
                    network=network,
                ),
                "ResultSelector": {
                    "ProcessingJobName.$": "$.ProcessingJobName",
                    "ProcessingJobArn.$": "$.ProcessingJobArn",
                    "summary.$": "States.StringToJson($.ExitMessage)",
                },
                "ResultPath": "$.evaluation_job",
            },
        )
        builder.retry_sagemaker(evaluate_model)
        return evaluate_model

    @staticmethod
    def _evaluation_uri(builder: _StateBuilder, file: str) -> str:
        return (
            f"States.Format('s3://{builder.bucket_name}/{builder.layout.evaluations}{{}}/{file}', "
            "$.run_id)"
        )

    def _read_evaluation(self, builder: _StateBuilder) -> sfn.CustomState:
        """``$.evaluation``: where the report is, the problem type and the metrics (name ->
        number; a metric undefined on the data is absent)."""
        return sfn.CustomState(
            self,
            READ_EVALUATION,
            state_json={
                "Type": "Pass",
                "Comment": "The evaluation job's summary (its ExitMessage) beside its report.",
                "Parameters": {
                    "report_uri.$": self._evaluation_uri(builder, "evaluation.json"),
                    "problem_type.$": "$.evaluation_job.summary.problem_type",
                    "metrics.$": "$.evaluation_job.summary.metrics",
                },
                "ResultPath": "$.evaluation",
            },
        )

    def _baseline_data(
        self, builder: _StateBuilder, images: ModelImages, baseline: DataQualityBaseline
    ) -> sfn.CustomState:
        """Baseline data: the image's ``baseline`` program as a Processing job on the run's train
        channel; its two outputs are the run's baseline prefix and ``latest/``."""
        latest = f"s3://{builder.bucket_name}/{builder.layout.baselines}latest/"
        # A job like Train model: in the training placement, traffic between hosts encrypted.
        network = {"EnableNetworkIsolation": builder.network_isolation}
        network |= builder.training_network()
        arguments = ["--input", "train", "--output", "run", "--output", "latest"]
        arguments += ["--comparison-threshold", str(baseline.drift_threshold)]
        arguments += ["--label", "first" if baseline.keep_label else "drop"]
        state = sfn.CustomState(
            self,
            BASELINE_DATA,
            state_json={
                "Type": "Task",
                "Comment": "Model Monitor's statistics and constraints of the training data.",
                "Resource": f"arn:{Aws.PARTITION}:states:::sagemaker:createProcessingJob.sync",
                "Parameters": _processing_job(
                    builder,
                    kind="d",
                    app={
                        "ImageUri": images.training_image_uri,
                        "ContainerEntrypoint": ["baseline"],
                        "ContainerArguments": arguments,
                    },
                    inputs={"train": "$.dataset.train_prefix"},
                    outputs=[
                        _processing_output("run", {"S3Uri.$": _baseline_uri(builder)}),
                        _processing_output("latest", {"S3Uri": latest}),
                    ],
                    instance_type=baseline.instance_type,
                    volume_size_gb=baseline.volume_size_gb,
                    max_runtime=baseline.max_runtime,
                    network=network,
                ),
                "ResultSelector": {
                    "ProcessingJobName.$": "$.ProcessingJobName",
                    "ProcessingJobArn.$": "$.ProcessingJobArn",
                },
                "ResultPath": "$.baseline",
            },
        )
        builder.retry_sagemaker(state)
        return state

    def _report_results(
        self, deploy: DeployStage | None, baseline: _StateBuilder | None
    ) -> sfn.CustomState:
        report: dict[str, Any] = {}
        if deploy is not None and self.registration is not None:
            report = {
                "quality_gate": {
                    "metric": deploy.metric,
                    "value.$": "$.gate.values[0]",
                    "threshold.$": "$.gate.threshold",
                    "comparison": deploy.comparison,
                },
            }
        elif deploy is not None:
            report = {
                "endpoint_name": self.deploy_endpoint_name,
                "endpoint_config_name.$": "$.endpoint_config.EndpointConfigName",
                "quality_gate": {
                    "metric": deploy.metric,
                    "value.$": gate_value_path(deploy),
                    "threshold.$": "$.gate.threshold",
                    "comparison": deploy.comparison,
                },
            }
        if baseline is not None:
            report["baseline_uri.$"] = _baseline_uri(baseline)
        if self.registration is not None:
            report["model_package.$"] = "$.model_package"
        return sfn.CustomState(
            self,
            REPORT_RESULTS,
            state_json={
                "Type": "Pass",
                "Parameters": {
                    **report,
                    "run_id.$": "$.run_id",
                    "dataset.$": "$.dataset",
                    "hyperparameters.$": "$.training.HyperParameters",
                    "training_job_name.$": "$.training.TrainingJobName",
                    "model_name.$": "$.model.ModelName",
                    "model_arn.$": "$.model.ModelArn",
                    "model_artifact_uri.$": "$.training.ModelArtifacts.S3ModelArtifacts",
                    # With spot, billable seconds fall below training seconds: the saving.
                    "training_seconds.$": "$.training.TrainingTimeInSeconds",
                    "billable_seconds.$": "$.training.BillableTimeInSeconds",
                    "transform_job_name.$": "$.transform.TransformJobName",
                    "transform_output_uri.$": "$.transform.TransformOutput.S3OutputPath",
                    "evaluation.$": "$.evaluation",
                },
            },
        )

    def _failure_states(self) -> sfn.CustomState:
        """Notify failure -> Workflow failed; returns Notify failure, the target of every catch."""
        return notify_then_fail(
            self,
            notify_id=NOTIFY_FAILURE,
            fail_id=WORKFLOW_FAILED,
            topic=self.topic,
            subject=f"{self.name_prefix} training workflow failed",
            what="Execution",
        )

    @staticmethod
    def _chain(core: _CoreStates, notify_failure: sfn.IChainable) -> None:
        """Validate input -> Load defaults -> Apply overrides -> instance storage choices ->
        Generate dataset -> ... -> Batch transform; the tuning path rejoins at Save model; a
        refused input goes to Notify failure."""
        core.validate_input.next(
            core.input_valid.when(
                sfn.Condition.boolean_equals("$.valid", False),
                core.reject_input.next(notify_failure),
            ).otherwise(core.load_defaults)
        )
        core.load_defaults.next(core.apply_overrides).next(core.training_storage)
        core.training_storage.afterwards().next(core.transform_storage)
        core.transform_storage.afterwards().next(core.generate_dataset.plan)
        chain = core.generate_dataset.chain()
        if core.tuning is not None:
            tuning = core.tuning
            chain.next(
                tuning.tune_or_train.when(
                    sfn.Condition.boolean_equals("$.args.tune", True), tuning.tune_model
                ).otherwise(core.train_model)
            )
            tuning.tune_model.next(tuning.read_best).next(core.save_model)
            core.train_model.next(core.save_model)
        else:
            chain.next(core.train_model).next(core.save_model)
        core.save_model.next(core.batch_transform)
        core.batch_transform.next(core.evaluate_model).next(core.read_evaluation)

    def _deploy_states(
        self,
        deploy: DeployStage,
        builder: _StateBuilder,
        key: kms.IKey,
        report_results: sfn.IChainable,
        notify_failure: sfn.IChainable,
        register: sfn.CustomState | None,
    ) -> sfn.IChainable:
        """Quality gate -> [Register model] -> endpoint config -> create or blue/green update ->
        bounded wait."""
        assert self.deploy_endpoint_name is not None and self.deploy_alarms is not None
        return deploy_states(
            self,
            deploy,
            builder,
            endpoint_name=self.deploy_endpoint_name,
            key=key,
            rollback_alarms=self.deploy_alarms.rollback_alarms,
            report_results=report_results,
            notify_failure=notify_failure,
            register=register,
        )


def _validate_props(
    *,
    name_prefix: str,
    defaults: WorkflowDefaults,
    images: ModelImages,
    max_attempts: int,
    timeout: Duration,
    training_max_runtime: Duration,
    training_volume_size_gb: int,
    tuning: HyperparameterTuning | None,
    deploy: DeployStage | None,
) -> str | None:
    """Reject impossible props at synth time; returns the deploy stage's endpoint name."""
    validate_name_prefix("TrainingWorkflow", name_prefix)
    if not 1 <= max_attempts <= 9:
        raise ValueError(f"TrainingWorkflow max_attempts={max_attempts}: expected 1 to 9")
    longest = len(name_prefix) + 1 + RUN_ID_LENGTH + 2 + MAX_REDRIVE_DIGITS + 1 + 1
    if longest > SAGEMAKER_NAME_LIMIT:  # pragma: no cover - guarded by validate_name_prefix
        raise ValueError(f"TrainingWorkflow name_prefix={name_prefix!r} is too long")
    if timeout.to_seconds() <= training_max_runtime.to_seconds():
        raise ValueError(
            f"TrainingWorkflow timeout={timeout.to_seconds()}s: expected more than "
            f"training_max_runtime ({training_max_runtime.to_seconds()}s)"
        )
    if not VOLUME_SIZE_GB.accepts(training_volume_size_gb):
        raise ValueError(
            f"TrainingWorkflow training_volume_size_gb={training_volume_size_gb}: "
            f"expected {VOLUME_SIZE_GB.words()}"
        )
    metric_names = sorted(m["Name"] for m in images.training_metric_definitions)
    gate_metrics = metric_names + evaluation_gate_metrics()
    if deploy is not None and deploy.metric not in gate_metrics:
        raise ValueError(
            f"TrainingWorkflow deploy.metric={deploy.metric!r}: expected one of the training "
            f"image's metric definitions {metric_names} or an evaluation metric "
            f"{evaluation_gate_metrics()}"
        )
    if tuning is not None:
        objective = objective_not_a_metric(tuning.objective_metric, metric_names)
        if objective:
            raise ValueError(
                f"TrainingWorkflow tuning.objective_metric={tuning.objective_metric!r}: "
                f"expected {objective}"
            )
        both = tuned_and_fixed(
            list(tuning.ranges), list(defaults.hyperparameters), "defaults.hyperparameters"
        )
        if both:
            raise ValueError(
                f"TrainingWorkflow tuning.ranges={sorted(tuning.ranges)}: expected {both}"
            )
    if len(name_prefix) + 1 + TUNING_SUFFIX_LENGTH > TUNING_JOB_NAME_LIMIT:  # pragma: no cover
        raise ValueError(f"TrainingWorkflow name_prefix={name_prefix!r} is too long")
    if deploy is None:
        return None
    endpoint_name = deploy.endpoint_name or f"{name_prefix}-live"
    if not _ENDPOINT_NAME.fullmatch(endpoint_name):
        raise ValueError(
            f"TrainingWorkflow deploy.endpoint_name={endpoint_name!r}: "
            "expected at most 63 letters, digits and dashes"
        )
    return endpoint_name


def _bucket_key(bucket: s3.IBucket, key: kms.IKey | None) -> kms.IKey:
    key = key or bucket.encryption_key
    if key is None:
        raise ValueError(
            "TrainingWorkflow key=None and the bucket has no encryption_key: hand in the KMS "
            "key that encrypts the bucket"
        )
    return key


class _TrainingJob(NamedTuple):
    """The parts of a training job that Train model and Tune model's job definition share."""

    algorithm: dict[str, Any]
    # DescribeTrainingJob's answer (the .sync result), cut to what later states read.
    result: dict[str, str]
    output_config: dict[str, str]
    resource_config: dict[str, Any]
    stopping: dict[str, int]
    # Spot parameters, and MaxWaitTimeInSeconds (SageMaker refuses it without
    # EnableManagedSpotTraining). The tuning job's training jobs checkpoint under a prefix of
    # their own (``<run_id>/tuning/``), apart from Train model's.
    spot: dict[str, Any]
    spot_stopping: dict[str, int]
    tuning_spot: dict[str, Any]


def _training_job(
    builder: _StateBuilder,
    images: ModelImages,
    volume_size_gb: int,
    max_runtime: Duration,
    deploy: DeployStage | None,
    spot: SpotTraining | None,
) -> _TrainingJob:
    algorithm: dict[str, Any] = {
        "TrainingImage": images.training_image_uri,
        "TrainingInputMode": "File",
    }
    if images.training_metric_definitions:
        algorithm["MetricDefinitions"] = images.training_metric_definitions
    result = {
        "TrainingJobName.$": "$.TrainingJobName",
        "TrainingJobArn.$": "$.TrainingJobArn",
        "HyperParameters.$": "$.HyperParameters",
        "ModelArtifacts.$": "$.ModelArtifacts",
        "TrainingTimeInSeconds.$": "$.TrainingTimeInSeconds",
        "BillableTimeInSeconds.$": "$.BillableTimeInSeconds",
    }
    # The final metrics feed the deploy stage's quality gate.
    if deploy is not None:
        result["FinalMetricDataList.$"] = "$.FinalMetricDataList"
    return _TrainingJob(
        algorithm=algorithm,
        result=result,
        output_config={
            "S3OutputPath": f"s3://{builder.bucket_name}/{builder.layout.models}",
            "KmsKeyId": builder.key_arn,
        },
        resource_config={
            "InstanceType.$": "$.args.training_instance_type",
            "InstanceCount.$": "$.args.training_instance_count",
            "VolumeSizeInGB": volume_size_gb,
        },
        stopping={"MaxRuntimeInSeconds": int(max_runtime.to_seconds())},
        spot=_spot_parameters(builder, spot),
        tuning_spot=_spot_parameters(builder, spot, "tuning/"),
        spot_stopping=(
            {} if spot is None else {"MaxWaitTimeInSeconds": int(spot.max_wait.to_seconds())}
        ),
    )


def _baseline_uri(builder: _StateBuilder) -> str:
    """The run's baseline prefix, ``s3://<bucket>/<layout.baselines><run_id>/``."""
    return f"States.Format('s3://{builder.bucket_name}/{builder.layout.baselines}{{}}/', $.run_id)"


def _processing_job(
    builder: _StateBuilder,
    *,
    kind: str,
    app: dict[str, Any],
    inputs: Mapping[str, str],
    outputs: list[dict[str, Any]],
    instance_type: str,
    volume_size_gb: int,
    max_runtime: Duration,
    network: dict[str, Any],
) -> dict[str, Any]:
    """A CreateProcessingJob request of one instance: ``inputs`` (name -> JSONPath of an S3
    prefix) under ``<PROCESSING_DIR>/input/<name>``, outputs encrypted with the bucket key, the
    volume too unless the instance type has local NVMe storage; named ``builder.name(kind)``."""
    cluster: dict[str, Any] = {
        "InstanceCount": 1,
        "InstanceType": instance_type,
        "VolumeSizeInGB": volume_size_gb,
    }
    if not has_local_storage(instance_type):
        cluster["VolumeKmsKeyId"] = builder.key_arn
    return {
        "ProcessingJobName.$": builder.name(kind),
        "RoleArn": builder.role_arn,
        "AppSpecification": app,
        "ProcessingInputs": [
            {
                "InputName": name,
                "S3Input": {
                    "S3Uri.$": uri_path,
                    "LocalPath": f"{PROCESSING_DIR}/input/{name}",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                    "S3DataDistributionType": "FullyReplicated",
                },
            }
            for name, uri_path in inputs.items()
        ],
        "ProcessingOutputConfig": {"Outputs": outputs, "KmsKeyId": builder.key_arn},
        "ProcessingResources": {"ClusterConfig": cluster},
        "StoppingCondition": {"MaxRuntimeInSeconds": int(max_runtime.to_seconds())},
        "NetworkConfig": network,
        "Tags": builder.tags(),
    }


def _processing_output(name: str, s3_uri: dict[str, str]) -> dict[str, Any]:
    """A ProcessingOutput of ``<PROCESSING_DIR>/output/<name>``, uploaded when the job ends."""
    return {
        "OutputName": name,
        "S3Output": {
            **s3_uri,
            "LocalPath": f"{PROCESSING_DIR}/output/{name}",
            "S3UploadMode": "EndOfJob",
        },
    }


def _retry_lambda(state: sfn.CustomState, max_attempts: int) -> None:
    """Retry a Lambda task on the Lambda service's transient errors, with jittered backoff."""
    state.add_retry(
        errors=LAMBDA_TRANSIENT_ERRORS,
        interval=Duration.seconds(2),
        max_attempts=max_attempts,
        backoff_rate=2,
        jitter_strategy=sfn.JitterType.FULL,
    )


def _lambda_retry_json(max_attempts: int) -> list[dict[str, Any]]:
    """:func:`_retry_lambda`'s retrier as ASL, for a Task inside a Map's ItemProcessor."""
    return [
        {
            "ErrorEquals": LAMBDA_TRANSIENT_ERRORS,
            "IntervalSeconds": 2,
            "MaxAttempts": max_attempts,
            "BackoffRate": 2,
            "JitterStrategy": "FULL",
        }
    ]


def _validate_seeding(max_rows: int, rows_per_shard: int, concurrency: int) -> tuple[int, int, int]:
    """Reject impossible seeding props; returns (rows_per_shard, concurrency, max_rows)."""
    if not 1 <= rows_per_shard <= MAX_ROWS_PER_SHARD:
        raise ValueError(
            f"TrainingWorkflow rows_per_shard={rows_per_shard}: expected 1 to "
            f"{MAX_ROWS_PER_SHARD} (what one seeding invocation writes within its timeout)"
        )
    if not 1 <= max_rows <= MAX_SHARDS * rows_per_shard:
        raise ValueError(
            f"TrainingWorkflow max_rows={max_rows}: expected 1 to {MAX_SHARDS * rows_per_shard} "
            f"({MAX_SHARDS} shards of rows_per_shard={rows_per_shard}: States.ArrayRange lists "
            "at most 1,000 shards)"
        )
    if not 1 <= concurrency <= DISTRIBUTED_MAP_MAX_CONCURRENCY:
        raise ValueError(
            f"TrainingWorkflow seeding_concurrency={concurrency}: expected 1 to "
            f"{DISTRIBUTED_MAP_MAX_CONCURRENCY} (a Distributed Map's most child executions)"
        )
    return rows_per_shard, concurrency, max_rows


def _in_network(builder: _StateBuilder, network: WorkloadNetwork | None) -> _StateBuilder:
    """The state builder with the jobs' and models' VpcConfig when there is a ``network``."""
    if network is None:
        return builder
    return dataclasses.replace(
        builder,
        training_vpc=network.training.vpc_config(),
        model_vpc=network.inference.vpc_config(),
    )


def _spot_parameters(
    builder: _StateBuilder, spot: SpotTraining | None, suffix: str = ""
) -> dict[str, Any]:
    """EnableManagedSpotTraining and the run's CheckpointConfig (SageMaker syncs
    ``/opt/ml/checkpoints`` with it and restores it into the job that resumes)."""
    if spot is None:
        return {}
    return {
        "EnableManagedSpotTraining": True,
        "CheckpointConfig": {
            "S3Uri.$": (
                f"States.Format('s3://{builder.bucket_name}/{builder.layout.checkpoints}"
                f"{{}}/{suffix}', $.run_id)"
            ),
            "LocalPath": "/opt/ml/checkpoints",
        },
    }


def _validate_spot(spot: SpotTraining | None, max_runtime: Duration) -> None:
    if spot is None:
        return
    wait, runtime = int(spot.max_wait.to_seconds()), int(max_runtime.to_seconds())
    if wait < runtime:
        raise ValueError(
            f"TrainingWorkflow spot.max_wait={wait}s: expected at least training_max_runtime "
            f"({runtime}s); SageMaker's MaxWaitTimeInSeconds covers the wait for spot capacity "
            "and the run"
        )


class _TuningStates(NamedTuple):
    tune_or_train: sfn.Choice
    tune_model: sfn.CustomState
    read_best: sfn.CustomState


class _CoreStates(NamedTuple):
    validate_input: sfn.CustomState
    input_valid: sfn.Choice
    reject_input: sfn.CustomState
    load_defaults: sfn.CustomState
    apply_overrides: sfn.CustomState
    training_storage: sfn.Choice
    transform_storage: sfn.Choice
    generate_dataset: SeedingStates
    train_model: sfn.CustomState
    tuning: _TuningStates | None
    save_model: sfn.CustomState
    batch_transform: sfn.CustomState
    evaluate_model: sfn.CustomState
    read_evaluation: sfn.CustomState
    report_results: sfn.CustomState

    def tasks(self) -> tuple[sfn.CustomState, ...]:
        """The Task states whose failures go to Notify failure."""
        tuning = (self.tuning.tune_model, self.tuning.read_best) if self.tuning is not None else ()
        return (
            self.validate_input,
            *self.generate_dataset.maps(),
            self.train_model,
            self.save_model,
            self.batch_transform,
            self.evaluate_model,
            *tuning,
        )
