"""Step Functions workflow: generate dataset -> train -> save model -> batch transform ->
evaluate, assembled from fragments (see :class:`TrainingWorkflow`)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
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

from mlstack.constructs._deploy_states import GATE_VALUE, EndpointDeployment
from mlstack.constructs._evaluation_states import (
    DEFAULT_EVALUATION_INSTANCE_TYPE,
    BatchTransform,
    ProcessingJob,
    baseline_job,
    baseline_uri,
    evaluation_fragment,
    evaluation_job,
)
from mlstack.constructs._failure_states import failure_policy_statements, notify_then_fail
from mlstack.constructs._fragment import Fragment, catch_failure
from mlstack.constructs._input_states import (
    ValidateInput,
    input_fragment,
    input_rules,
    input_schema,
    lambda_retry_json,
    state_defaults,
)
from mlstack.constructs._lambda import DEFAULT_RESERVED_CONCURRENCY
from mlstack.constructs._prepare_states import (
    CHANNELS,
    PrepareData,
    dataset_uri,
    grant_prepare,
    prepare_job,
    table_states,
)
from mlstack.constructs._registry_states import allow_registration, gate_and_registration_fragment
from mlstack.constructs._scaffold import build_state_machine, execution_log_group
from mlstack.constructs._seeding_states import (
    allow_distributed_map,
    dataset_fragment,
    invoke_seed_statement,
    seeding_states,
    uses_distributed_map,
)
from mlstack.constructs._state_builder import StateBuilder as _StateBuilder
from mlstack.constructs._training_states import (
    SaveModel,
    TrainingJob,
    TuningJob,
    train_or_tune_fragment,
)
from mlstack.constructs._workflow_props import (
    bucket_key,
    validate_props,
    validate_seeding,
    validate_spot,
)
from mlstack.constructs.endpoint_cleanup import EndpointCleanup
from mlstack.constructs.input_validator import InputValidator
from mlstack.constructs.layout import BucketLayout
from mlstack.constructs.model_images import ModelImages
from mlstack.constructs.monitoring import (
    EndpointAlarms,
    MonitoredEndpoint,
    allow_alarm_notifications,
)
from mlstack.constructs.network import WorkloadNetwork
from mlstack.constructs.roles import (
    ENDPOINTS,
    ContainerAccess,
    PendingRoleArn,
    SageMakerExecutionRole,
    SageMakerJob,
    SageMakerTask,
    StateMachineRole,
)
from mlstack.constructs.state_names import (
    BASELINE_DATA,
    NOTIFY_FAILURE,
    READ_BEST_TRAINING_JOB,
    REPORT_RESULTS,
    TUNE_MODEL,
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
    MAX_DATASET_ROWS,
    SEED,
)

__all__ = ["DEFAULT_MAX_RUNTIME", "DEFAULT_TIMEOUT", "TrainingWorkflow", "WorkflowDefaults"]

DEFAULT_MAX_RUNTIME = Duration.days(1)
DEFAULT_TIMEOUT = Duration.hours(26)
FIVE_MINUTES = Duration.minutes(5)


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

    The definition is six fragments, each a start and its ends (``_fragment.Fragment``): input
    (``_input_states``), dataset (``_seeding_states``), train or tune (``_training_states``),
    transform and evaluation (``_evaluation_states``), gate and registration
    (``_registry_states``), deploy (``_deploy_states``). Each SageMaker task is an object that
    renders its request and returns its policy statements; the role is made from those used.

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
        registration: adds Release model artifact (the run's model copied to
            ``<layout.releases><run_id>/model.tar.gz``) and Register model (``createModelPackage``)
            after the quality gate, or after Batch transform without ``deploy``: a new version of
            the registry's group serving that copy, its evaluation report as model-quality
            metrics and the run's metadata; ``$.model_package`` (arn, version, approval_status)
            is in the output. Default: none.
        baseline: adds ``Baseline data`` after Batch transform: a Processing job
            (``createProcessingJob.sync``) running the training image's ``baseline`` program on
            the run's train channel, writing Model Monitor's ``statistics.json`` and
            ``constraints.json`` under ``<layout.baselines><run_id>/`` and
            ``<layout.baselines>latest/`` (what a data-quality monitor of an endpoint capturing
            its requests compares them with). Default: none.
        prepare: the table path (Dataset source? -> Prepare data): its default source,
            hyperparameters, instances. Default: ``PrepareData.seeder(defaults.hyperparameters)``.
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
        prepare: the table path's :class:`PrepareData`.
        name_prefix: the name prefix.
        deploy_endpoint_name: the deploy stage's endpoint name, or None without ``deploy``.
        deploy_alarms: the deploy stage's :class:`EndpointAlarms`, or None without ``deploy``.
        endpoint_cleanup: deletes the deployed endpoint with the stack, or None.
        registration: the :class:`ModelRegistration`, or None.
        deploy: the :class:`DeployStage`, or None. With ``registration`` too, the workflow ends
            at Register model and a :class:`ModelRelease` deploys approved versions.
        state_builder: what the SageMaker task states share (names, tags, retries, network).
        deployment: the deploy fragment's :class:`EndpointDeployment` (what a
            :class:`ModelRelease` takes), or None without ``deploy``.
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
        prepare: PrepareData | None = None,
    ) -> None:
        super().__init__(scope, id)
        self.registration, self.deploy, self.name_prefix = registration, deploy, name_prefix
        self.defaults = defaults or WorkflowDefaults()
        self.prepare = prepare or PrepareData.seeder(self.defaults.hyperparameters)
        self.deploy_endpoint_name: str | None = validate_props(
            name_prefix=name_prefix, hyperparameters=self.defaults.hyperparameters, images=images,
            max_attempts=max_attempts, timeout=timeout, training_max_runtime=training_max_runtime,
            training_volume_size_gb=training_volume_size_gb, tuning=tuning, deploy=deploy,
        )  # fmt: skip
        validate_spot(spot, training_max_runtime)
        self._seeding = validate_seeding(max_rows, rows_per_shard, seeding_concurrency)
        layout, key = layout or BucketLayout(), bucket_key(bucket, key)
        role_arn = PendingRoleArn(execution_role)  # the tasks name the role made from them
        self.state_builder = builder = _StateBuilder(
            name_prefix=name_prefix, bucket_name=bucket.bucket_name, layout=layout,
            key_arn=key.key_arn, role_arn=role_arn.token, network_isolation=network_isolation,
            max_attempts=max_attempts, evaluation_instance_type=evaluation_instance_type,
        ).in_network(network)  # fmt: skip
        tasks = _Tasks.of(
            builder, images, training_volume_size_gb, training_max_runtime, tuning, deploy, spot,
            baseline, self.prepare,
        )  # fmt: skip
        self.execution_role = role_arn.resolve(execution_role or _new_execution_role(
            self, name_prefix, bucket, key, images, tasks.jobs(layout, deploy, registration)
        ))  # fmt: skip
        self.topic = _failure_topic(self, name_prefix, key, notification_email)
        self.log_group = execution_log_group(
            self, f"{name_prefix}-workflow", log_retention, removal_policy
        )
        self.role = StateMachineRole(  # made from the SageMaker tasks the definition uses
            self, "Role", name_prefix=name_prefix, sagemaker_role=self.execution_role,
            tasks=tasks.sagemaker(),
        ).role  # fmt: skip
        self.input_validator = InputValidator(
            self, "InputValidator", log_retention=log_retention, removal_policy=removal_policy,
            reserved_concurrency=validator_reserved_concurrency,
            placement=network.functions if network else None,
        )  # fmt: skip
        _grant_execution_role(self.execution_role, network, bucket, layout, self.prepare)
        validate = self._validate_input(images, tuning, deploy, max_rows, rows_per_shard)
        self._grant_state_machine_role(seed_function, validate, key)
        self.deploy_alarms = self._deploy_alarms(deploy)
        self.deployment = self._deployment(deploy, builder, key)
        start = self._definition(tasks, validate, images, seed_function, baseline is not None)
        self.state_machine = self._state_machine(start, timeout)
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

    def _validate_input(
        self,
        images: ModelImages,
        tuning: HyperparameterTuning | None,
        deploy: DeployStage | None,
        max_rows: int,
        rows_per_shard: int,
    ) -> ValidateInput:
        """:attr:`input_schema` and :attr:`input_rules`, and the task that checks them."""
        core = {**self.defaults.as_state_input(), **self.prepare.as_state_input()}
        self._state_defaults = state_defaults(core, tuning, deploy)
        self.input_schema = input_schema(self._state_defaults, images, tuning, deploy, max_rows)
        self.input_rules = input_rules(rows_per_shard, self.defaults, tuning, core)
        return ValidateInput(
            self.input_validator.function,
            schema=self.input_schema,
            rules=self.input_rules,
            max_attempts=self.state_builder.max_attempts,
        )

    def _grant_state_machine_role(
        self, seed_function: lambda_.IFunction, validate: ValidateInput, key: kms.IKey
    ) -> None:
        """The statements of the tasks beside SageMaker's: registration, the seeding Map, the
        validation, the failure notification."""
        if self.registration is not None:
            allow_registration(self.role, self.registration, self.state_builder)
        for statement in [
            invoke_seed_statement(seed_function),
            *validate.policy_statements(),
            *failure_policy_statements(self.topic, key),
        ]:
            self.role.add_to_principal_policy(statement)

    def _definition(
        self,
        tasks: _Tasks,
        validate: ValidateInput,
        images: ModelImages,
        seed_function: lambda_.IFunction,
        baseline: bool,
    ) -> sfn.State:
        """The fragments chained, each end to the next start, every failure to Notify failure;
        returns the first state."""
        notify_failure = notify_then_fail(
            self,
            notify_id=NOTIFY_FAILURE,
            fail_id=WORKFLOW_FAILED,
            topic=self.topic,
            subject=f"{self.name_prefix} training workflow failed",
            what="Execution",
        )
        fragments = [
            input_fragment(
                self,
                validate=validate,
                builder=self.state_builder,
                job=tasks.training,
                state_defaults=self._state_defaults,
            ),
            _dataset(self, seed_function, self.state_builder, self._seeding, tasks),
            train_or_tune_fragment(self, tasks.training, tasks.tuning, tasks.save_model),
            evaluation_fragment(self, tasks.transform, tasks.evaluation, tasks.baseline),
        ]
        report = _report_results(
            self,
            deploy=self.deploy,
            registered=self.registration is not None,
            endpoint_name=self.deploy_endpoint_name,
            baseline=self.state_builder if baseline else None,
        )
        _wire_failures(fragments, notify_failure)
        # Built after: the gate and deploy fragments wire their own failures as they build.
        fragments += self._release(images, report, notify_failure)
        for fragment, following in itertools.pairwise(fragments):
            fragment.next(following.start)
        fragments[-1].next(report)
        return fragments[0].start

    def _state_machine(self, start: sfn.IChainable, timeout: Duration) -> sfn.StateMachine:
        state_machine = build_state_machine(
            self,
            start=start,
            role=self.role,
            log_group=self.log_group,
            timeout=timeout,
            comment=f"{self.name_prefix}: generate dataset, train, save model, batch transform"
            + (", register" if self.registration is not None else "")
            + (", deploy" if self.deploy is not None and self.registration is None else ""),
            state_machine_type=sfn.StateMachineType.STANDARD,
        )
        rows_per_shard, _, max_rows = self._seeding
        if uses_distributed_map(max_rows, rows_per_shard):
            allow_distributed_map(self.role, state_machine)
        return state_machine

    def _release(
        self, images: ModelImages, report: sfn.IChainable, notify_failure: sfn.IChainable
    ) -> list[Fragment]:
        """What follows the evaluation: the quality gate, then Register model (deployment is then
        the release's, on approval) or the deploy fragment, or neither; ends at ``report``."""
        if self.registration is not None:
            return [
                gate_and_registration_fragment(
                    self,
                    self.registration,
                    self.state_builder,
                    deploy=self.deploy,
                    inference_image_uri=images.inference_image_uri,
                    notify_failure=notify_failure,
                )
            ]
        if self.deployment is not None:
            return [
                self.deployment.gated_fragment(self, then=report, notify_failure=notify_failure)
            ]
        return []

    def _deploy_alarms(self, deploy: DeployStage | None) -> EndpointAlarms | None:
        """The deployed endpoint's alarms (its rollback alarms); None without a deploy stage."""
        if deploy is None:
            return None
        assert self.deploy_endpoint_name is not None
        return EndpointAlarms(
            self,
            "DeployAlarms",
            endpoint=MonitoredEndpoint(self.deploy_endpoint_name, deploy.variant_names),
            thresholds=deploy.alarms,
            topic=self.topic,
        )

    def _deployment(
        self, deploy: DeployStage | None, builder: _StateBuilder, key: kms.IKey
    ) -> EndpointDeployment | None:
        """The deploy fragment's builder; the state machine's role may deploy unless a release
        does."""
        if deploy is None:
            return None
        assert self.deploy_endpoint_name is not None and self.deploy_alarms is not None
        deployment = EndpointDeployment(
            deploy=deploy,
            endpoint_name=self.deploy_endpoint_name,
            builder=builder,
            key=key,
            rollback_alarms=self.deploy_alarms.rollback_alarms,
            execution_role=self.execution_role,
        )
        if self.registration is None:  # else the release deploys, with its own role
            deployment.grant(self.role)
        return deployment

    def _endpoint_cleanup(self, removal_policy: RemovalPolicy) -> EndpointCleanup | None:
        if self.deploy_endpoint_name is None or removal_policy != RemovalPolicy.DESTROY:
            return None
        # The deploy stage's endpoint is no CloudFormation resource: without this, deleting
        # the stack leaves it billing, on a key the same destroy schedules for deletion.
        # Deleted after the state machine, which could create the endpoint again.
        cleanup = EndpointCleanup(self, "EndpointCleanup", endpoint_name=self.deploy_endpoint_name)
        self.state_machine.node.add_dependency(cleanup.resource)
        return cleanup


def _new_execution_role(
    scope: Construct,
    name_prefix: str,
    bucket: s3.IBucket,
    key: kms.IKey,
    images: ModelImages,
    jobs: Sequence[SageMakerJob],
) -> iam.IRole:
    """``ExecutionRole``: the role SageMaker's jobs and models run as, when none is handed in,
    made from the ``jobs`` that run as it."""
    return SageMakerExecutionRole(
        scope,
        "ExecutionRole",
        bucket=bucket,
        key=key,
        name_prefix=name_prefix,
        images=[images.training, images.inference],
        jobs=jobs,
    ).role


def _grant_execution_role(
    role: iam.IRole,
    network: WorkloadNetwork | None,
    bucket: s3.IBucket,
    layout: BucketLayout,
    prepare: PrepareData,
) -> None:
    """The SageMaker role's grants beside its own: the network's, Prepare data's."""
    if network is not None:
        network.grant_sagemaker(role)
    grant_prepare(role, bucket, layout, prepare)


def _wire_failures(fragments: list[Fragment], notify_failure: sfn.IChainable) -> None:
    """Every task's failure and every failure end of ``fragments`` to ``notify_failure``.

    aws-cdk-lib's state graph lists a state's predecessors in the order their transitions were
    made, and the definition lists its states in that order; so the transitions into Notify
    failure are made in the order the definition has always had (the main path's tasks, the
    tuning path's, a refused input, the baseline), which keeps every template byte-identical.
    """
    tasks = [task for fragment in fragments for task in fragment.tasks]
    late = {TUNE_MODEL, READ_BEST_TRAINING_JOB}
    for task in sorted(tasks, key=lambda task: task.node.id in late):
        if task.node.id != BASELINE_DATA:
            catch_failure(task, notify_failure)
    for fragment in fragments:
        for end in fragment.failures:
            end.next(notify_failure)
    for task in tasks:
        if task.node.id == BASELINE_DATA:
            catch_failure(task, notify_failure)


def _dataset(
    scope: Construct,
    seed_function: lambda_.IFunction,
    builder: _StateBuilder,
    seeding: tuple[int, int, int],
    tasks: _Tasks,
) -> Fragment:
    """The dataset fragment: Dataset source? -> the seeder's states (``_seeding_states``),
    ``seeding`` its rows per shard, concurrency and most rows, or the table path
    (``_prepare_states``)."""
    rows_per_shard, concurrency, max_rows = seeding
    seeder = dataset_fragment(
        seeding_states(
            scope,
            seed_function=seed_function,
            bucket_name=builder.bucket_name,
            layout=builder.layout,
            rows_per_shard=rows_per_shard,
            concurrency=concurrency,
            max_rows=max_rows,
            lambda_retry=lambda_retry_json(builder.max_attempts),
            channels=builder.channels({c: dataset_uri(builder, c) for c in CHANNELS}),
        )
    )
    choice, prepare_data, read = table_states(
        scope, builder, tasks.prepare, tasks.prepare_data, seeder=seeder.start
    )
    return Fragment(start=choice, ends=(*seeder.ends, read), tasks=(*seeder.tasks, prepare_data))


def _failure_topic(
    scope: Construct, name_prefix: str, key: kms.IKey, notification_email: str | None
) -> sns.Topic:
    """``FailureTopic``: encrypted, TLS only, open to the account's CloudWatch alarms."""
    topic = sns.Topic(
        scope,
        "FailureTopic",
        display_name=f"{name_prefix} training workflow failures",
        master_key=key,
        enforce_ssl=True,
    )
    if notification_email:
        topic.add_subscription(subscriptions.EmailSubscription(notification_email))
    allow_alarm_notifications(topic, key)
    return topic


@dataclass(frozen=True)
class _Tasks:
    """The SageMaker tasks of the definition, each rendering its request and its IAM."""

    training: TrainingJob
    tuning: TuningJob | None
    save_model: SaveModel
    transform: BatchTransform
    evaluation: ProcessingJob
    baseline: ProcessingJob | None
    prepare: ProcessingJob
    prepare_data: PrepareData

    @staticmethod
    def of(
        builder: _StateBuilder,
        images: ModelImages,
        volume_size_gb: int,
        max_runtime: Duration,
        tuning: HyperparameterTuning | None,
        deploy: DeployStage | None,
        spot: SpotTraining | None,
        baseline: DataQualityBaseline | None,
        prepare: PrepareData,
    ) -> _Tasks:
        training = TrainingJob(
            builder,
            images,
            volume_size_gb=volume_size_gb,
            max_runtime=max_runtime,
            deploy=deploy,
            spot=spot,
        )
        return _Tasks(
            training=training,
            tuning=TuningJob(training, tuning) if tuning is not None else None,
            save_model=SaveModel(builder, images),
            transform=BatchTransform(builder),
            evaluation=evaluation_job(builder, images),
            baseline=baseline_job(builder, images, baseline) if baseline is not None else None,
            prepare=prepare_job(builder, images, prepare),
            prepare_data=prepare,
        )

    def jobs(
        self,
        layout: BucketLayout,
        deploy: DeployStage | None,
        registration: ModelRegistration | None,
    ) -> list[SageMakerJob]:
        """What runs as the execution role: the jobs, and the deploy stage's endpoint (in the
        workflow or its release), whose model reads its artifact from ``layout.models``, or
        with ``registration`` from ``layout.releases`` (a version serves its released copy)."""
        released = registration is not None
        used: list[SageMakerJob | None] = [
            self.training,
            self.tuning,
            self.transform,
            self.evaluation,
            self.baseline,
            ContainerAccess(ENDPOINTS, reads=(layout.releases if released else layout.models,))
            if deploy is not None
            else None,
        ]
        return [job for job in used if job is not None]

    def sagemaker(self) -> list[SageMakerTask]:
        """The tasks the role is made from, in the order of its statements."""
        used: list[SageMakerTask | None] = [
            self.training,
            self.transform,
            self.evaluation,
            self.baseline,
            self.save_model,
            self.tuning,
            self.prepare,
        ]
        return [task for task in used if task is not None]


# The gate that passed, the seeder's or a table's (_table_gate_states: one shape of $.gate).
_QUALITY_GATE = {
    "metric.$": "$.gate.metric",
    "value.$": GATE_VALUE,
    "threshold.$": "$.gate.threshold",
    "comparison.$": "$.gate.comparison",
}


def _report_results(
    scope: Construct,
    *,
    deploy: DeployStage | None,
    registered: bool,
    endpoint_name: str | None,
    baseline: _StateBuilder | None,
) -> sfn.CustomState:
    """Report results: the run's output (dataset, jobs, model, evaluation, and what the gate,
    the registry, the deploy stage and the baseline added)."""
    report: dict[str, Any] = {}
    if deploy is not None and registered:
        report = {"quality_gate": _QUALITY_GATE}
    elif deploy is not None:
        report = {
            "endpoint_name": endpoint_name,
            "endpoint_config_name.$": "$.endpoint_config.EndpointConfigName",
            "quality_gate": _QUALITY_GATE,
        }
    if baseline is not None:
        report["baseline_uri.$"] = baseline_uri(baseline)
    if registered:
        report["model_package.$"] = "$.model_package"
    return sfn.CustomState(
        scope,
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
