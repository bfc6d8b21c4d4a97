"""The training workflow's optional deploy stage, between Batch transform and Report results."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aws_cdk import Aws
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from mlstack.constructs._fragment import Fragment
from mlstack.constructs._state_builder import StateBuilder
from mlstack.constructs._table_gate_states import gate_passed, table_gate_states
from mlstack.constructs.instance_storage import has_local_storage
from mlstack.constructs.roles import allow_volume_encryption, sagemaker_arn
from mlstack.constructs.state_names import (
    CHECK_ENDPOINT,
    COUNT_ENDPOINT_CHECK,
    CREATE_ENDPOINT,
    CREATE_ENDPOINT_CONFIG,
    DEPLOYMENT_ROLLED_BACK,
    DESCRIBE_ENDPOINT,
    ENDPOINT_EXISTS,
    ENDPOINT_FAILED,
    ENDPOINT_MISSING,
    ENDPOINT_NOT_IN_SERVICE,
    ENDPOINT_READY,
    ENDPOINT_WAIT_TIMED_OUT,
    METRIC_NOT_REPORTED,
    PLAN_ENDPOINT_UPDATE,
    PLAN_NEW_ENDPOINT,
    QUALITY_GATE,
    READ_METRIC,
    REJECT_MODEL,
    START_ENDPOINT_WAIT,
    UPDATE_ENDPOINT,
    WAIT_FOR_ENDPOINT,
)
from mlstack.constructs.workflow_options import DeployStage, path_condition
from mlstack.rules import COMPARISONS, EVALUATION_METRIC_PREFIX

# The gate's comparisons, named in mlstack.rules (their symbol and Step Functions operator).
COMPARISON_SYMBOLS = {c.name: c.symbol for c in COMPARISONS}
COMPARE = {c.name: path_condition(c) for c in COMPARISONS}


def evaluation_metric(deploy: DeployStage) -> str | None:
    """The evaluation metric the gate reads (``auc`` of ``evaluation:auc``), or None for a
    training job metric."""
    if deploy.metric.startswith(EVALUATION_METRIC_PREFIX):
        return deploy.metric.removeprefix(EVALUATION_METRIC_PREFIX)
    return None


# Where a passed gate's value is, whichever gate passed (the seeder's or a table's).
GATE_VALUE = "$.gate.values[0]"


def gate_value_path(deploy: DeployStage) -> str:
    """Where the seeder's gate reads its value: the training job's final metric (read into
    ``$.gate``) or the evaluation's metric (``$.evaluation.metrics``)."""
    name = evaluation_metric(deploy)
    return "$.gate.values[0]" if name is None else f"$.evaluation.metrics.{name}"


def rejection_cause(deploy: DeployStage, symbol: str) -> str:
    """Reject model's cause: the value (a training metric) or, for an evaluation metric that
    may be absent (undefined on the data), every evaluation metric."""
    if evaluation_metric(deploy) is None:
        return (
            f"States.Format('Model {{}} has {deploy.metric} = {{}}; the quality gate "
            f"requires {symbol} {{}}. Nothing was deployed.', $.model.ModelName, "
            "$.gate.values[0], $.gate.threshold)"
        )
    return (
        f"States.Format('Model {{}} has evaluation metrics {{}}; the quality gate requires "
        f"{deploy.metric} {symbol} {{}}. Nothing was deployed.', $.model.ModelName, "
        "States.JsonToString($.evaluation.metrics), $.gate.threshold)"
    )


def not_reported_cause(metric: str) -> str:
    """Metric not reported's cause: the training job's final metrics lack the gate's metric.
    The image prints ``<data>-<name>`` (``validation-rmse``) only when the job evaluates on that
    data set with that ``eval_metric``; its metric definitions read those lines."""
    data, _, name = metric.rpartition(":")
    check = (
        f"that the job evaluates on its {data} data and that its eval_metric hyperparameter "
        f"names {name}"
        if data
        else f"that the training image prints {metric}"
    )
    return (
        f"States.Format('Training job {{}} did not report {metric} (its final metrics: {{}}); "
        f"the quality gate needs it. Check {check}, and that the metric definitions of the "
        "training image read it. Nothing was deployed.', $.training.TrainingJobName, "
        "States.JsonToString($.training.FinalMetricDataList))"
    )


@dataclass(frozen=True)
class EndpointDeployment:
    """The deploy fragment's builder: everything its states and its grants need, by name. The
    training workflow builds it (Quality gate -> endpoint states, or the endpoint states alone
    when a release deploys approved versions); :class:`ModelRelease` takes it and builds the
    same endpoint states in its own state machine.

    Attributes:
        deploy: the deploy stage's settings.
        endpoint_name: the endpoint it creates or updates.
        builder: what the SageMaker task states share (names, tags, retries, network).
        key: the KMS key of the endpoint's storage.
        rollback_alarms: the alarms a blue/green update rolls back on.
        execution_role: the role the endpoint's models run as (it reads the rollback alarms).
    """

    deploy: DeployStage
    endpoint_name: str
    builder: StateBuilder
    key: kms.IKey
    rollback_alarms: Sequence[cw.Alarm]
    execution_role: iam.IRole

    def gated_fragment(
        self, scope: Construct, *, then: sfn.IChainable, notify_failure: sfn.IChainable
    ) -> Fragment:
        """Read validation metric -> Quality gate -> the endpoint states -> ``then``; the states
        are created in ``scope`` (the workflow), so their IDs are the state names."""
        states = self._states(scope, then, notify_failure)
        return Fragment(start=states.build(), ends=())

    def fragment(
        self,
        scope: Construct,
        *,
        then: sfn.IChainable,
        notify_failure: sfn.IChainable,
        live_model: str | None = None,
    ) -> Fragment:
        """Describe endpoint -> endpoint config -> create or blue/green update -> bounded wait ->
        ``then``, for the model named in ``$.model.ModelName``.

        ``live_model``: with A/B, the JSONPath of the model an update puts on ``Live`` (the
        release's decision); default: the live configuration's model (the previous
        candidate)."""
        states = self._states(scope, then, notify_failure, live_model)
        return Fragment(start=states.build_endpoint(), ends=())

    def _states(
        self,
        scope: Construct,
        then: sfn.IChainable,
        notify_failure: sfn.IChainable,
        live_model: str | None = None,
    ) -> _DeployStates:
        return _DeployStates(
            scope,
            self.deploy,
            self.builder,
            notify_failure=notify_failure,
            endpoint=self,
            then=then,
            live_model=live_model,
        )

    def grant(self, role: iam.Role) -> None:
        """What the endpoint states call (:func:`allow_deployment`)."""
        allow_deployment(
            role,
            self.execution_role,
            name_prefix=self.builder.name_prefix,
            endpoint_name=self.endpoint_name,
            key=self.key,
            alarms=self.rollback_alarms,
        )


def allow_deployment(
    role: iam.Role,
    execution_role: iam.IRole,
    *,
    name_prefix: str,
    endpoint_name: str,
    key: kms.IKey,
    alarms: Sequence[cw.Alarm],
) -> None:
    """What the endpoint states need: ``role`` (the state machine's) creates endpoint
    configurations named ``name_prefix-*`` and creates, updates and describes the endpoint;
    ``execution_role`` reads the rollback alarms."""
    endpoint = sagemaker_arn(role, "endpoint", endpoint_name)
    configs = sagemaker_arn(role, "endpoint-config", f"{name_prefix}-*")
    role.add_to_principal_policy(
        iam.PolicyStatement(
            sid="CreateEndpointConfigs",
            actions=["sagemaker:CreateEndpointConfig", "sagemaker:AddTags", "sagemaker:ListTags"],
            resources=[configs],
        )
    )
    role.add_to_principal_policy(
        iam.PolicyStatement(
            sid="DeployEndpoint",
            actions=[
                "sagemaker:CreateEndpoint",
                "sagemaker:UpdateEndpoint",
                "sagemaker:DescribeEndpoint",
                "sagemaker:AddTags",
                "sagemaker:ListTags",
            ],
            resources=[endpoint, configs],
        )
    )
    # A blue/green update with auto-rollback: SageMaker reads the rollback alarms as the
    # *execution role* ("Auto-Rollback Configuration and Monitoring", SageMaker developer
    # guide: the execution role needs cloudwatch:DescribeAlarms on those alarms).
    execution_role.add_to_principal_policy(
        iam.PolicyStatement(
            sid="ReadRollbackAlarms",
            actions=["cloudwatch:DescribeAlarms"],
            resources=[alarm.alarm_arn for alarm in alarms],
        )
    )
    # An endpoint configuration with KmsKeyId: SageMaker creates a grant for the volumes as
    # the caller of CreateEndpoint/UpdateEndpoint.
    allow_volume_encryption(role, key, sid="EncryptEndpointStorage")


def gate_states(
    scope: Construct,
    deploy: DeployStage,
    builder: StateBuilder,
    *,
    on_pass: sfn.IChainable,
    notify_failure: sfn.IChainable,
) -> sfn.State:
    """Read validation metric -> Quality gate -> ``on_pass`` (or Reject model -> failure)."""
    return _DeployStates(scope, deploy, builder, notify_failure=notify_failure).build_gate(on_pass)


def _table_or_seeder(
    states: _DeployStates, seeder_gate: sfn.State, on_pass: sfn.IChainable
) -> sfn.State:
    """Table run? -> a table's gate (chosen at run time) or ``seeder_gate``."""
    return table_gate_states(
        states.scope,
        seeder_gate=seeder_gate,
        on_pass=on_pass,
        notify_failure=states.notify_failure,
        named=states.deploy.table_gate,
    )


class _DeployStates:
    """The states of one deploy stage in ``scope``: the quality gate's, and with ``endpoint``
    (whose states go on to ``then``) the endpoint's."""

    def __init__(
        self,
        scope: Construct,
        deploy: DeployStage,
        builder: StateBuilder,
        *,
        notify_failure: sfn.IChainable,
        endpoint: EndpointDeployment | None = None,
        then: sfn.IChainable | None = None,
        live_model: str | None = None,
    ) -> None:
        self.scope = scope
        self.deploy = deploy
        self.builder = builder
        self.notify_failure = notify_failure
        self._endpoint = endpoint
        self._then = then
        self.symbol = COMPARISON_SYMBOLS[deploy.comparison]
        self.live_model = live_model

    @property
    def endpoint(self) -> EndpointDeployment:
        assert self._endpoint is not None, "the endpoint states need an EndpointDeployment"
        return self._endpoint

    @property
    def report_results(self) -> sfn.IChainable:
        assert self._then is not None, "the endpoint states need the state that follows them"
        return self._then

    def build(self) -> sfn.State:
        """Quality gate -> the endpoint states; returns the first state."""
        read_metric, gate, reject = self._gate()
        describe = self.build_endpoint()
        self._wire_gate(gate, reject, describe)
        return _table_or_seeder(self, read_metric, describe)

    def build_gate(self, on_pass: sfn.IChainable) -> sfn.State:
        """Read validation metric -> Quality gate -> ``on_pass`` or Reject model."""
        read_metric, gate, reject = self._gate()
        self._wire_gate(gate, reject, on_pass)
        return _table_or_seeder(self, read_metric, on_pass)

    def _gate(self) -> tuple[sfn.CustomState, sfn.Choice, sfn.CustomState]:
        read_metric = self._read_metric()
        reject = self._failure(
            REJECT_MODEL, "QualityGateFailed", rejection_cause(self.deploy, self.symbol)
        )
        gate = sfn.Choice(
            self.scope, QUALITY_GATE, comment=f"{self.deploy.metric} {self.symbol} threshold?"
        )
        read_metric.next(gate)
        return read_metric, gate, reject

    def _wire_gate(self, gate: sfn.Choice, reject: sfn.IChainable, on_pass: sfn.IChainable) -> None:
        value = gate_value_path(self.deploy)
        passes = COMPARE[self.deploy.comparison](value, "$.gate.threshold")
        if evaluation_metric(self.deploy) is None:
            # A training metric the job never printed: a cause of its own, not "= []".
            missing = self._failure(
                METRIC_NOT_REPORTED, "QualityGateFailed", not_reported_cause(self.deploy.metric)
            )
            gate.when(sfn.Condition.not_(sfn.Condition.is_present(value)), missing)
        else:
            gate.when(sfn.Condition.not_(sfn.Condition.is_present(value)), reject)
            gate.when(sfn.Condition.not_(sfn.Condition.is_numeric(value)), reject)
            # Its value into $.gate.values, where Register model and Report results read it.
            on_pass = gate_passed(self.scope, self.deploy.metric, self.deploy.comparison, on_pass)
        gate.when(sfn.Condition.not_(sfn.Condition.is_numeric("$.gate.threshold")), reject).when(
            passes, on_pass
        ).otherwise(reject)

    def build_endpoint(self) -> sfn.State:
        """Describe endpoint -> endpoint config -> create or blue/green update -> bounded wait
        -> ``report_results``; returns Describe endpoint."""
        # Creation order only shapes the construct tree (tree.json); the definition follows
        # the transitions wired at the end.
        describe, missing = self._describe_endpoint()
        new_variants, update_variants = self._variants()
        plan_new = self._plan(PLAN_NEW_ENDPOINT, False, new_variants)
        plan_update = self._plan(PLAN_ENDPOINT_UPDATE, True, update_variants)
        create_config = self._create_endpoint_config()
        exists = sfn.Choice(self.scope, ENDPOINT_EXISTS)
        create = self._create_endpoint()
        update = self._update_endpoint()
        start_wait = sfn.CustomState(
            self.scope,
            START_ENDPOINT_WAIT,
            state_json={"Type": "Pass", "Result": {"checks": 0}, "ResultPath": "$.wait"},
        )
        wait = sfn.Wait(
            self.scope, WAIT_FOR_ENDPOINT, time=sfn.WaitTime.duration(self.deploy.poll_interval)
        )
        check = self._task(
            CHECK_ENDPOINT,
            "aws-sdk:sagemaker:describeEndpoint",
            {"Parameters": {"EndpointName": self.endpoint.endpoint_name}, "ResultPath": "$.status"},
        )
        count = sfn.CustomState(
            self.scope,
            COUNT_ENDPOINT_CHECK,
            state_json={
                "Type": "Pass",
                "Parameters": {"checks.$": "States.MathAdd($.wait.checks, 1)"},
                "ResultPath": "$.wait",
            },
        )
        ready = self._endpoint_ready(wait)
        missing.when(
            sfn.Condition.string_matches("$.error.Cause", "*Could not find endpoint*"), plan_new
        ).otherwise(self.notify_failure)
        describe.next(plan_update)
        plan_new.next(create_config)
        plan_update.next(create_config)
        create_config.next(exists)
        exists.when(sfn.Condition.boolean_equals("$.deployment.exists", True), update).otherwise(
            create
        )
        create.next(start_wait)
        update.next(start_wait)
        start_wait.next(wait).next(check).next(count).next(ready)
        return describe

    def _task(self, state_id: str, resource: str, body: dict[str, Any]) -> sfn.CustomState:
        state = sfn.CustomState(
            self.scope,
            state_id,
            state_json={
                "Type": "Task",
                "Resource": f"arn:{Aws.PARTITION}:states:::{resource}",
                **body,
            },
        )
        self.builder.retry_sagemaker(state, sdk=resource.startswith("aws-sdk:"))
        state.add_catch(self.notify_failure, errors=["States.ALL"], result_path="$.error")
        return state

    def _failure(self, state_id: str, error: str, cause: str) -> sfn.CustomState:
        state = sfn.CustomState(
            self.scope,
            state_id,
            state_json={
                "Type": "Pass",
                "Parameters": {"Error": error, "Cause.$": cause},
                "ResultPath": "$.error",
            },
        )
        state.next(self.notify_failure)
        return state

    def _read_metric(self) -> sfn.CustomState:
        metric = self.deploy.metric
        if evaluation_metric(self.deploy) is not None:
            return sfn.CustomState(
                self.scope,
                READ_METRIC,
                state_json={
                    "Type": "Pass",
                    "Comment": "The gate compares $.evaluation.metrics with the threshold.",
                    "Parameters": {
                        "metric": metric,
                        "comparison": self.deploy.comparison,
                        "threshold.$": "$.args.quality_threshold",
                    },
                    "ResultPath": "$.gate",
                },
            )
        return sfn.CustomState(
            self.scope,
            READ_METRIC,
            state_json={
                "Type": "Pass",
                "Comment": "The gate's metric from the training job's final metrics "
                "([] when the job did not report it).",
                "Parameters": {
                    "metric": metric,
                    "comparison": self.deploy.comparison,
                    "values.$": (
                        f"$.training.FinalMetricDataList[?(@.MetricName == '{metric}')].Value"
                    ),
                    "threshold.$": "$.args.quality_threshold",
                },
                "ResultPath": "$.gate",
            },
        )

    def _describe_endpoint(self) -> tuple[sfn.CustomState, sfn.Choice]:
        describe = sfn.CustomState(
            self.scope,
            DESCRIBE_ENDPOINT,
            state_json={
                "Type": "Task",
                "Resource": f"arn:{Aws.PARTITION}:states:::aws-sdk:sagemaker:describeEndpoint",
                "Parameters": {"EndpointName": self.endpoint.endpoint_name},
                "ResultSelector": {
                    "EndpointConfigName.$": "$.EndpointConfigName",
                    "EndpointStatus.$": "$.EndpointStatus",
                },
                "ResultPath": "$.endpoint",
            },
        )
        self.builder.retry_sagemaker(describe, sdk=True)
        missing = sfn.Choice(
            self.scope, ENDPOINT_MISSING, comment="DescribeEndpoint fails for an absent endpoint."
        )
        # Not _task's catch: an absent endpoint is the expected first-deploy path, not a failure.
        describe.add_catch(missing, errors=["States.ALL"], result_path="$.error")
        return describe, missing

    def _variant(self, variant_name: str, model: str, weight: float) -> dict[str, Any]:
        return {
            "VariantName": variant_name,
            "ModelName.$": model,
            "InstanceType": self.deploy.instance_type,
            "InitialInstanceCount": self.deploy.instance_count,
            "InitialVariantWeight": weight,
        }

    def _variants(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The production variants of a new endpoint and of an update of the live one."""
        new_model = "$.model.ModelName"
        if not self.deploy.ab_test:
            variants = [self._variant("Live", new_model, 1.0)]
            return variants, variants
        share = self.deploy.candidate_weight
        rest = round(1 - share, 6)
        # The live configuration is named '<model name>-<retry>' (see below): its model is
        # the configuration name without its last dash-separated part.
        prefix = self.builder.name_prefix
        parts = "States.StringSplit($.endpoint.EndpointConfigName, '-')"
        first = prefix.count("-") + 1
        current_model = (
            f"States.Format('{prefix}-{{}}-{{}}-{{}}', "
            + ", ".join(f"States.ArrayGetItem({parts}, {first + i})" for i in range(3))
            + ")"
        )
        # On creation both variants serve the new model, so every later configuration has
        # the same variant names (a blue/green update requires that).
        new_variants = [
            self._variant("Live", new_model, rest),
            self._variant("Candidate", new_model, share),
        ]
        update_variants = [
            self._variant("Live", self.live_model or current_model, rest),
            self._variant("Candidate", new_model, share),
        ]
        return new_variants, update_variants

    def _plan(self, state_id: str, exists: bool, variants: list[dict[str, Any]]) -> sfn.CustomState:
        return sfn.CustomState(
            self.scope,
            state_id,
            state_json={
                "Type": "Pass",
                "Parameters": {"exists": exists, "variants": variants},
                "ResultPath": "$.deployment",
            },
        )

    def _key_arn(self) -> str:
        return self.endpoint.key.key_arn

    def _create_endpoint_config(self) -> sfn.CustomState:
        return self._task(
            CREATE_ENDPOINT_CONFIG,
            "sagemaker:createEndpointConfig",
            {
                "Parameters": {
                    # '<model name>-<retry>': unique per attempt, at most 63 characters.
                    "EndpointConfigName.$": (
                        "States.Format('{}-{}', $.model.ModelName, $$.State.RetryCount)"
                    ),
                    "ProductionVariants.$": "$.deployment.variants",
                    # Not for instance types with local NVMe storage: SageMaker refuses it.
                    **(
                        {}
                        if has_local_storage(self.deploy.instance_type)
                        else {"KmsKeyId": self._key_arn()}
                    ),
                    "Tags": self.builder.tags(),
                },
                "ResultSelector": {
                    "EndpointConfigArn.$": "$.EndpointConfigArn",
                    "EndpointConfigName.$": (
                        "States.ArrayGetItem(States.StringSplit($.EndpointConfigArn, '/'), 1)"
                    ),
                },
                "ResultPath": "$.endpoint_config",
            },
        )

    def _create_endpoint(self) -> sfn.CustomState:
        return self._task(
            CREATE_ENDPOINT,
            "sagemaker:createEndpoint",
            {
                "Parameters": {
                    "EndpointName": self.endpoint.endpoint_name,
                    "EndpointConfigName.$": "$.endpoint_config.EndpointConfigName",
                    "Tags": self.builder.tags(),
                },
                "ResultPath": "$.endpoint_request",
            },
        )

    def _update_endpoint(self) -> sfn.CustomState:
        traffic = self.deploy.traffic
        return self._task(
            UPDATE_ENDPOINT,
            "sagemaker:updateEndpoint",
            {
                "Parameters": {
                    "EndpointName": self.endpoint.endpoint_name,
                    "EndpointConfigName.$": "$.endpoint_config.EndpointConfigName",
                    "DeploymentConfig": {
                        "BlueGreenUpdatePolicy": {
                            "TrafficRoutingConfiguration": traffic.routing(),
                            "TerminationWaitInSeconds": int(traffic.termination_wait.to_seconds()),
                            "MaximumExecutionTimeoutInSeconds": (
                                self.deploy.blue_green_timeout_seconds
                            ),
                        },
                        "AutoRollbackConfiguration": {
                            "Alarms": [
                                {"AlarmName": alarm.alarm_name}
                                for alarm in self.endpoint.rollback_alarms
                            ]
                        },
                    },
                },
                "ResultPath": "$.endpoint_request",
            },
        )

    def _endpoint_ready(self, wait: sfn.Wait) -> sfn.Choice:
        ready = sfn.Choice(self.scope, ENDPOINT_READY)
        status = "$.status.EndpointStatus"
        in_service = sfn.Condition.string_equals(status, "InService")
        failed = sfn.Condition.or_(
            sfn.Condition.string_equals(status, "Failed"),
            sfn.Condition.string_equals(status, "UpdateRollbackFailed"),
        )
        ended = sfn.Condition.or_(
            failed,
            sfn.Condition.string_equals(status, "OutOfService"),
            sfn.Condition.string_equals(status, "Deleting"),
        )
        max_checks = self.deploy.max_checks
        minutes = round(self.deploy.max_wait.to_seconds() / 60)
        # InService on another configuration means SageMaker rolled the update back.
        ready.when(
            sfn.Condition.and_(
                in_service,
                sfn.Condition.string_equals_json_path(
                    "$.status.EndpointConfigName", "$.endpoint_config.EndpointConfigName"
                ),
            ),
            self.report_results,
        ).when(
            in_service,
            self._failure(
                DEPLOYMENT_ROLLED_BACK,
                "DeploymentRolledBack",
                "States.Format('Endpoint {} rolled back to configuration {}: {} did not survive "
                "the update (a rollback alarm fired or the new fleet failed).', "
                "$.status.EndpointName, $.status.EndpointConfigName, "
                "$.endpoint_config.EndpointConfigName)",
            ),
        ).when(
            sfn.Condition.and_(failed, sfn.Condition.is_present("$.status.FailureReason")),
            self._failure(
                ENDPOINT_FAILED,
                "EndpointFailed",
                "States.Format('Endpoint {} is {}: {}', $.status.EndpointName, "
                "$.status.EndpointStatus, $.status.FailureReason)",
            ),
        ).when(
            ended,
            self._failure(
                ENDPOINT_NOT_IN_SERVICE,
                "EndpointNotInService",
                "States.Format('Endpoint {} is {}', $.status.EndpointName, "
                "$.status.EndpointStatus)",
            ),
        ).when(
            sfn.Condition.number_greater_than_equals("$.wait.checks", max_checks),
            self._failure(
                ENDPOINT_WAIT_TIMED_OUT,
                "EndpointWaitTimedOut",
                f"States.Format('Endpoint {{}} is still {{}} after {max_checks} checks "
                f"in {minutes} minutes', $.status.EndpointName, $.status.EndpointStatus)",
            ),
        ).otherwise(wait)
        return ready
