"""The input fragment: Validate input -> Input valid? -> (no) Reject input, (yes) Load defaults
-> Apply overrides -> Training storage -> Transform storage: the execution input checked before
any other state, the run's arguments and ``run_id``, and each job's resources with
``VolumeKmsKeyId`` only where SageMaker accepts one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from aws_cdk import Aws, Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct
from pydantic import ValidationError

from mlstack.constructs._evaluation_states import TRANSFORM_RESOURCES
from mlstack.constructs._fragment import Fragment
from mlstack.constructs._state_builder import StateBuilder
from mlstack.constructs._training_states import TRAINING_RESOURCES, TrainingJob
from mlstack.constructs.instance_storage import local_storage_patterns
from mlstack.constructs.model_images import ModelImages
from mlstack.constructs.state_names import (
    APPLY_OVERRIDES,
    INPUT_VALID,
    INVALID_EXECUTION_INPUT,
    LOAD_DEFAULTS,
    REJECT_INPUT,
    TRAIN_ON_ENCRYPTED_VOLUME,
    TRAIN_ON_INSTANCE_STORAGE,
    TRAINING_STORAGE,
    TRANSFORM_ON_ENCRYPTED_VOLUME,
    TRANSFORM_ON_INSTANCE_STORAGE,
    TRANSFORM_STORAGE,
    VALIDATE_INPUT,
)
from mlstack.constructs.workflow_options import DeployStage, HyperparameterTuning
from mlstack.rules import execution_input_model, execution_input_schema, table_source_defaults

LAMBDA_TRANSIENT_ERRORS = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
]


def retry_lambda(state: sfn.CustomState, max_attempts: int) -> None:
    """Retry a Lambda task on the Lambda service's transient errors, with jittered backoff."""
    state.add_retry(
        errors=LAMBDA_TRANSIENT_ERRORS,
        interval=Duration.seconds(2),
        max_attempts=max_attempts,
        backoff_rate=2,
        jitter_strategy=sfn.JitterType.FULL,
    )


def lambda_retry_json(max_attempts: int) -> list[dict[str, Any]]:
    """:func:`retry_lambda`'s retrier as ASL, for a Task inside a Map's ItemProcessor."""
    return [
        {
            "ErrorEquals": LAMBDA_TRANSIENT_ERRORS,
            "IntervalSeconds": 2,
            "MaxAttempts": max_attempts,
            "BackoffRate": 2,
            "JitterStrategy": "FULL",
        }
    ]


def state_defaults(
    core: dict[str, Any],
    tuning: HyperparameterTuning | None,
    deploy: DeployStage | None,
) -> dict[str, Any]:
    """The default of every execution input key the workflow accepts: ``core`` (the
    ``WorkflowDefaults``), the tuning path's and the quality gate's threshold."""
    defaults = dict(core)
    if tuning is not None:
        defaults.update(tuning.as_state_input())
    if deploy is not None:
        defaults["quality_threshold"] = deploy.threshold
    return defaults


def input_schema(
    defaults: dict[str, Any],
    images: ModelImages,
    tuning: HyperparameterTuning | None,
    deploy: DeployStage | None,
    max_rows: int,
) -> dict[str, Any]:
    """The JSON Schema of the execution input; the defaults must pass it too."""
    model = execution_input_model(
        defaults,
        max_rows=max_rows,
        hyperparameter_names=images.training_hyperparameter_names,
        metric_names=[m["Name"] for m in images.training_metric_definitions],
        tuning=tuning is not None,
        deploy=deploy is not None,
    )
    try:
        model.model_validate(defaults)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}={error['input']!r}: {error['msg']}"
            for error in err.errors()
        )
        raise ValueError(
            f"TrainingWorkflow defaults: the execution input would refuse them: {problems}"
        ) from None
    return execution_input_schema(model)


def input_rules(
    rows_per_shard: int,
    defaults: _CoreDefaults,
    tuning: HyperparameterTuning | None,
    state_input: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The checks across keys that the schema cannot express (lambda/validate_input's RULES),
    with the settings and defaults they read. ``state_input``: the input keys' defaults; when
    its ``dataset_source`` is a table, the seeder's shard count bounds no run that leaves the
    key out (``table_by_default``)."""
    table_by_default = (state_input or {}).get("dataset_source") is not None
    fractions = ("validation_fraction", "test_fraction")
    rules: dict[str, Any] = {
        "instances_within_shards": {
            "rows_per_shard": rows_per_shard,
            "defaults": {
                "rows": defaults.rows,
                "training_instance_count": defaults.training_instance_count,
            },
            **({"table_by_default": True} if table_by_default else {}),
        },
        "source_fractions": {"defaults": {key: table_source_defaults()[key] for key in fractions}},
    }
    if tuning is not None:
        rules["parallel_within_jobs"] = {
            "defaults": {
                "tuning_max_jobs": tuning.max_jobs,
                "tuning_max_parallel_jobs": tuning.max_parallel_jobs,
            }
        }
    return rules


class _CoreDefaults(Protocol):
    @property
    def rows(self) -> int: ...

    @property
    def training_instance_count(self) -> int: ...


class ValidateInput:
    """Validate input's Lambda invocation: the input, the schema and the rules to the
    validation function; its verdict replaces the state (Load defaults reads the input from the
    context object, so this works for an input that is not even an object)."""

    def __init__(
        self,
        function: lambda_.IFunction,
        *,
        schema: dict[str, Any],
        rules: dict[str, Any],
        max_attempts: int,
    ) -> None:
        self.function = function
        self.schema = schema
        self.rules = rules
        self.max_attempts = max_attempts

    def render_parameters(self) -> dict[str, Any]:
        return {
            "FunctionName": self.function.function_arn,
            "Payload": {"input.$": "$", "schema": self.schema, "rules": self.rules},
        }

    def state(self, scope: Construct) -> sfn.CustomState:
        validate_input = sfn.CustomState(
            scope,
            VALIDATE_INPUT,
            state_json={
                "Type": "Task",
                "Comment": "The execution input against the schema of mlstack.rules.",
                "Resource": f"arn:{Aws.PARTITION}:states:::lambda:invoke",
                "Parameters": self.render_parameters(),
                "ResultSelector": {"valid.$": "$.Payload.valid", "message.$": "$.Payload.message"},
                "ResultPath": "$",
            },
        )
        retry_lambda(validate_input, self.max_attempts)
        return validate_input

    def policy_statements(self) -> list[iam.PolicyStatement]:
        """The unqualified function ARN the definition calls (no versions or aliases)."""
        return [
            iam.PolicyStatement(
                sid="InvokeInputValidator",
                actions=["lambda:InvokeFunction"],
                resources=[self.function.function_arn],
            )
        ]


def input_fragment(
    scope: Construct,
    *,
    validate: ValidateInput,
    builder: StateBuilder,
    job: TrainingJob,
    state_defaults: dict[str, Any],
) -> Fragment:
    """Validate input -> ... -> Transform storage; a refused input ends in Reject input, one of
    the fragment's ``failures``."""
    validate_input = validate.state(scope)
    input_valid = sfn.Choice(scope, INPUT_VALID)
    reject_input = sfn.CustomState(
        scope,
        REJECT_INPUT,
        state_json={
            "Type": "Pass",
            "Parameters": {"Error": INVALID_EXECUTION_INPUT, "Cause.$": "$.message"},
            "ResultPath": "$.error",
        },
    )
    load_defaults, apply_overrides = _input_states(scope, state_defaults)
    training_storage = storage_choice(
        scope,
        builder,
        (TRAINING_STORAGE, TRAIN_ON_INSTANCE_STORAGE, TRAIN_ON_ENCRYPTED_VOLUME),
        "$.args.training_instance_type",
        job.render_resource_config(),
        TRAINING_RESOURCES,
    )
    transform_storage = storage_choice(
        scope,
        builder,
        (TRANSFORM_STORAGE, TRANSFORM_ON_INSTANCE_STORAGE, TRANSFORM_ON_ENCRYPTED_VOLUME),
        "$.args.transform_instance_type",
        {
            "InstanceType.$": "$.args.transform_instance_type",
            "InstanceCount.$": "$.args.transform_instance_count",
        },
        TRANSFORM_RESOURCES,
    )
    validate_input.next(
        input_valid.when(sfn.Condition.boolean_equals("$.valid", False), reject_input).otherwise(
            load_defaults
        )
    )
    load_defaults.next(apply_overrides).next(training_storage)
    training_storage.afterwards().next(transform_storage)
    return Fragment(
        start=validate_input,
        ends=(transform_storage.afterwards(),),
        tasks=(validate_input,),
        failures=(reject_input,),
    )


def _input_states(
    scope: Construct, state_defaults: dict[str, Any]
) -> tuple[sfn.CustomState, sfn.CustomState]:
    """Load defaults and Apply overrides: the run's arguments and its ``run_id``."""
    load_defaults = sfn.CustomState(
        scope,
        LOAD_DEFAULTS,
        state_json={
            "Type": "Pass",
            "Comment": "Defaults from the environment's config; the input overrides them.",
            "Parameters": {
                # The environment's hyperparameters apart: a run's own (the input's) merge over
                # them, or over a table's (Table hyperparameters replaces them on that path).
                "defaults": {**state_defaults, "hyperparameters": {}},
                "default_hyperparameters": state_defaults["hyperparameters"],
                "overrides.$": "$$.Execution.Input",
                "run_id.$": "States.Hash($$.Execution.Name, 'MD5')",
            },
        },
    )
    apply_overrides = sfn.CustomState(
        scope,
        APPLY_OVERRIDES,
        state_json={
            "Type": "Pass",
            "Parameters": {
                "run_id.$": "$.run_id",
                "args.$": "States.JsonMerge($.defaults, $.overrides, false)",
                "default_hyperparameters.$": "$.default_hyperparameters",
            },
        },
    )
    return load_defaults, apply_overrides


def storage_choice(
    scope: Construct,
    builder: StateBuilder,
    names: tuple[str, str, str],
    instance_type_path: str,
    resources: dict[str, Any],
    result_path: str,
) -> sfn.Choice:
    """A Choice on the instance type: its resources with ``VolumeKmsKeyId`` only where
    SageMaker accepts one (see :mod:`mlstack.constructs.instance_storage`)."""
    choice_name, local_name, encrypted_name = names
    choice = sfn.Choice(
        scope,
        choice_name,
        comment="SageMaker refuses VolumeKmsKeyId for instance types with local NVMe storage",
    )
    local = sfn.CustomState(
        scope,
        local_name,
        state_json={"Type": "Pass", "Parameters": resources, "ResultPath": result_path},
    )
    encrypted = sfn.CustomState(
        scope,
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
