"""The sections of an environment's configuration: pydantic v2 dataclasses (strict types, unknown
keys forbidden) whose constraints are the named rules of :mod:`mlstack.rules`.

:mod:`mlstack.config` assembles them into :class:`mlstack.config.EnvironmentConfig`, reads and
validates the files and words the errors; this module holds only the shape of each section.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    create_model,
)
from pydantic.dataclasses import dataclass

from mlstack import rules
from mlstack.rules import (
    HYPERPARAMETER_NAME_PATTERN,
    LOG_RETENTION_DAYS,
    MAX_DATASET_ROWS,
    MAX_TRAINING_RUNTIME_SECONDS,
    SERVERLESS_MEMORY_SIZES,
    InstanceType,
    bounded,
    integer,
    number,
    one_of,
    text,
    vocabulary,
)

STRICT = ConfigDict(strict=True, extra="forbid")
_STRICT = STRICT


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _strings(values: Any) -> Any:
    """Hyperparameter values as SageMaker takes them: strings (numbers converted once, here)."""
    if not isinstance(values, dict):
        return values
    if any(isinstance(v, bool) or not isinstance(v, str | int | float) for v in values.values()):
        raise ValueError("values must be strings or numbers")
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}


def _metric_definitions(value: Any) -> Any:
    try:
        definitions = _METRIC_DEFINITIONS.validate_json(json.dumps(value))
    except ValidationError:
        raise ValueError('not a list of {"Name": str, "Regex": str} objects') from None
    return [dataclasses.asdict(d) for d in definitions]


def _raw_ranges(ranges: Mapping[str, Any]) -> Mapping[str, Any]:
    """Typed ranges back to the plain mappings the constructs take (no absent key added)."""
    return MappingProxyType(
        {
            name: MappingProxyType(
                {k: v for k, v in dataclasses.asdict(spec).items() if v is not None}
            )
            for name, spec in ranges.items()
        }
    )


# --- small types -------------------------------------------------------------------------------

Count = rules.InstanceCount
Rows = Annotated[int, Field(ge=1, le=MAX_DATASET_ROWS)]
Flag = bool
Seconds = integer(0, 3600)
Percent = number(0.01, 100)
NonEmpty = Annotated[str, Field(min_length=1)]
ModelArtifact = text(
    rules.MODEL_ARTIFACT_PATTERN,
    "an 's3://bucket/key' URI or a key inside the data bucket such as 'releases/v1/model.tar.gz'",
)
# SageMaker's VersionedArnOrName (ContainerDefinition.ModelPackageName) ends in '/[0-9]{1,9}'.
ModelPackageVersion = Annotated[
    int,
    Field(
        ge=1,
        le=999_999_999,
        description="a version number of this environment's model package group "
        "('mlstack models --env ENV' lists them); the version must be Approved",
    ),
]
ImageUri = Annotated[str, Field(min_length=1, description="an ECR image URI")]
MetricName = Annotated[
    str,
    Field(
        min_length=1, description="a metric name of the training image, such as 'validation:rmse'"
    ),
]
GateMetric = Annotated[
    str,
    Field(
        min_length=1,
        description="a metric name of the training image, such as 'validation:rmse', or of the "
        "evaluation job, such as 'evaluation:auc' (left out: the problem type's default, "
        "docs/your-data.md)",
    ),
]
Hyperparameters = Annotated[
    Mapping[Annotated[str, Field(pattern=HYPERPARAMETER_NAME_PATTERN)], str],
    BeforeValidator(_strings),
    AfterValidator(MappingProxyType),
    WithJsonSchema(
        {
            "type": "object",
            "propertyNames": {"pattern": HYPERPARAMETER_NAME_PATTERN},
            "additionalProperties": {"type": ["string", "number"]},
            "description": "an object mapping hyperparameter names to strings or numbers",
        }
    ),
]


# A table of the user's (docs/your-data.md): the keys ``prepare`` takes (mlstack.rules, shared
# with the execution input's ``dataset_source``), Prepare data's instances, and the static
# hyperparameters of runs on it (the environment's 'training.hyperparameters' without the
# seeder's 'objective' and 'eval_metric', then these; the execution input's on top).
DatasetSourceConfig: type[BaseModel] = create_model(
    "DatasetSourceConfig",
    __config__=ConfigDict(strict=True, extra="forbid", frozen=True),
    __doc__="A table of yours (CSV or Parquet) instead of the generated dataset: Prepare data "
    "turns it into the run's shards and schema (docs/your-data.md).",
    **rules.table_source_fields(),
    instance_type=(InstanceType, "ml.m5.xlarge"),
    instance_count=(bounded(rules.PREPARE_INSTANCE_COUNT), 1),
    hyperparameters=(Hyperparameters, Field(default_factory=lambda: MappingProxyType({}))),
)


@dataclass(frozen=True, config=_STRICT)
class DatasetConfig:
    """The run's dataset: generated by the seeding Lambda (the demo), or ``source``, a table of
    yours that Prepare data reads (null: the generated one)."""

    rows: Rows
    seed: bounded(rules.SEED)
    max_rows: Rows
    # One object per split and shard: ShardedByS3Key deals them over training hosts, a batch
    # transform over its instances.
    rows_per_shard: bounded(rules.ROWS_PER_SHARD) = rules.DEFAULT_ROWS_PER_SHARD
    # Seeding invocations at once: the Map's MaxConcurrency (an inline Map runs at most 40, a
    # Distributed Map at most 10,000 child executions).
    seeding_concurrency: integer(1, rules.DISTRIBUTED_MAP_MAX_CONCURRENCY) = (
        rules.DEFAULT_SEEDING_CONCURRENCY
    )
    source: DatasetSourceConfig | None = None


@dataclass(frozen=True, config=_STRICT)
class SpotConfig:
    """Managed spot training of the workflow's training job, with checkpoints to resume from."""

    enabled: Flag
    # SageMaker's MaxWaitTimeInSeconds: the wait for spot capacity plus the run.
    max_wait_seconds: integer(1, MAX_TRAINING_RUNTIME_SECONDS)


@dataclass(frozen=True, config=_STRICT)
class TrainingConfig:
    """SageMaker training job defaults (each run may override type, count and hyperparameters)."""

    instance_type: InstanceType
    instance_count: Count
    volume_size_gb: bounded(rules.VOLUME_SIZE_GB)
    max_runtime_seconds: integer(1, MAX_TRAINING_RUNTIME_SECONDS)
    hyperparameters: Hyperparameters
    spot: SpotConfig | None = None


@dataclass(frozen=True, config=_STRICT)
class TransformConfig:
    """Batch transform job defaults (each run may override type and count)."""

    instance_type: InstanceType
    instance_count: Count


@dataclass(frozen=True, config=_STRICT)
class VariantConfig:
    """One production variant of the Serving endpoint (A/B testing: several, with weights)."""

    name: text(rules.NAME_PATTERN, "a variant name: up to 63 letters, digits and dashes")
    weight: number(0.01, 1000)
    instance_type: InstanceType
    instance_count: Count
    model_artifact: ModelArtifact | None = None
    model_package_version: ModelPackageVersion | None = None


@dataclass(frozen=True, config=_STRICT)
class AutoscalingConfig:
    """Target tracking on invocations per instance, applied to every instance-based variant."""

    min_capacity: Count
    max_capacity: Count
    target_invocations_per_instance: integer(1, 1_000_000)
    scale_in_cooldown_seconds: Seconds = 300
    scale_out_cooldown_seconds: Seconds = 60


@dataclass(frozen=True, config=_STRICT)
class DataCaptureConfig:
    """Capture of requests and responses into the data bucket (KMS-encrypted)."""

    sampling_percentage: integer(1, 100)
    capture: one_of("both", "input", "output") = "both"

    @property
    def captures_input(self) -> bool:
        return self.capture in ("both", "input")

    @property
    def captures_output(self) -> bool:
        return self.capture in ("both", "output")


@dataclass(frozen=True, config=_STRICT)
class ServerlessConfig:
    """Serverless inference instead of instances (one variant; no capture, no autoscaling)."""

    memory_size_mb: one_of(*SERVERLESS_MEMORY_SIZES)
    max_concurrency: integer(1, 200)


@dataclass(frozen=True, config=_STRICT)
class AsyncInferenceConfig:
    """Asynchronous inference: results and failures in the data bucket, SNS notifications."""

    max_concurrent_invocations_per_instance: integer(1, 1000) = 4
    notifications: Flag = True


@dataclass(frozen=True, config=_STRICT)
class EndpointConfig:
    """The Serving endpoint: deployed only when ``model_package_version`` names an approved
    version of the environment's model registry (or ``model_artifact`` a model.tar.gz)."""

    instance_type: InstanceType
    instance_count: Count
    model_package_version: ModelPackageVersion | None = None
    model_artifact: ModelArtifact | None = None
    variants: Annotated[tuple[VariantConfig, ...], Field(min_length=1)] | None = None
    autoscaling: AutoscalingConfig | None = None
    data_capture: DataCaptureConfig | None = None
    serverless: ServerlessConfig | None = None
    async_inference: AsyncInferenceConfig | None = None

    @property
    def enabled(self) -> bool:
        return self.model_artifact is not None or self.model_package_version is not None

    @property
    def variant_names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variants) if self.variants else ("AllTraffic",)


@dataclass(frozen=True, config=_STRICT)
class MetricDefinition:
    """A metric of the training image: its name and the regular expression on its log."""

    Name: NonEmpty
    Regex: NonEmpty


@dataclass(frozen=True, config=_STRICT)
class ImagesConfig:
    """Container images; ``null`` builds the image from ``containers/`` as an ECR asset."""

    training_image_uri: ImageUri | None = None
    inference_image_uri: ImageUri | None = None
    training_metric_definitions: (
        Annotated[
            tuple[Mapping[str, str], ...],
            BeforeValidator(_metric_definitions),
            AfterValidator(_freeze),
            WithJsonSchema(
                {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "Name": {"type": "string", "minLength": 1},
                            "Regex": {"type": "string", "minLength": 1},
                        },
                        "required": ["Name", "Regex"],
                        "additionalProperties": False,
                    },
                    "description": 'a list of {"Name": str, "Regex": str} objects',
                }
            ),
        ]
        | None
    ) = None


_METRIC_DEFINITIONS = TypeAdapter(list[MetricDefinition])


@dataclass(frozen=True, config=_STRICT)
class WorkflowConfig:
    """Training workflow (state machine) settings."""

    timeout_minutes: integer(1, 525_600)
    log_retention_days: Annotated[
        one_of(*LOG_RETENTION_DAYS), Field(description="CloudWatch Logs' retention periods")
    ]
    lambda_reserved_concurrency: Annotated[
        integer(1, rules.MAX_RESERVED_CONCURRENCY) | None,
        Field(
            description="reserved concurrency of the seeding and input-validation Lambdas; null "
            "(the default) reserves none, which deploys into any account; a reservation needs "
            "the account's unreserved concurrency to stay at least 100 after it: check the "
            "quota first (docs/deploying.md)"
        ),
    ] = None


@dataclass(frozen=True, config=_STRICT)
class ExistingVpcConfig:
    """A VPC of your own: jobs, models and functions run in its subnets (it must reach S3,
    SageMaker, ECR, CloudWatch, STS and KMS: docs/security.md)."""

    vpc_id: text(rules.VPC_ID_PATTERN, "a VPC ID such as 'vpc-0123456789abcdef0'")
    subnet_ids: Annotated[
        tuple[text(rules.SUBNET_ID_PATTERN, "a subnet ID such as 'subnet-0123456789abcdef0'"), ...],
        Field(min_length=1, max_length=rules.MAX_SUBNETS),
    ]
    security_group_ids: Annotated[
        tuple[
            text(rules.SECURITY_GROUP_ID_PATTERN, "a security group ID such as 'sg-0123abcd'"), ...
        ],
        Field(max_length=rules.MAX_EXTRA_SECURITY_GROUPS),
    ] = ()


@dataclass(frozen=True, config=_STRICT)
class NetworkConfig:
    """Network isolation: where jobs, models, endpoints and the Lambdas run (docs/security.md)."""

    vpc: Annotated[
        one_of("create") | ExistingVpcConfig | None,
        Field(
            description="'create': a VPC of private isolated subnets with VPC endpoints and no "
            "internet path; an existing VPC's IDs; null: no VPC (AWS-managed networking)"
        ),
    ] = None

    @property
    def isolated(self) -> bool:
        return self.vpc is not None


@dataclass(frozen=True, config=_STRICT)
class TrafficConfig:
    """How an endpoint update shifts traffic to the new fleet (SageMaker blue/green)."""

    type: vocabulary(rules.TRAFFIC_TYPE)
    step_percent: integer(1, 50) | None = None
    wait_seconds: Seconds = 300
    termination_wait_seconds: Seconds = 300


@dataclass(frozen=True, config=_STRICT)
class TableGateConfig:
    """The quality gate of every run on a table (docs/your-data.md); left out, a table's gate is
    its problem type's default: better than the trivial model (mlstack.rules.TABLE_GATE_DEFAULTS).
    """

    metric: Annotated[
        one_of(*rules.evaluation_gate_metrics()),
        Field(description="a metric of the evaluation job, such as 'evaluation:f1'"),
    ]
    comparison: vocabulary(rules.COMPARISON)
    threshold: number()


@dataclass(frozen=True, config=_STRICT)
class DeployConfig:
    """The workflow's deploy stage: quality gate, then create or blue/green-update an endpoint."""

    enabled: Flag
    threshold: number()
    instance_type: InstanceType
    instance_count: Count
    traffic: TrafficConfig
    # Left out: the default of the problem type the environment trains for
    # (rules.GATE_DEFAULTS: evaluation:auc >=, evaluation:accuracy >=, evaluation:rmse <=).
    metric: Annotated[
        GateMetric | None,
        Field(
            description="the gated metric; null or left out: the problem type's default, "
            "'evaluation:auc' (binary), 'evaluation:accuracy' (multiclass) or 'evaluation:rmse' "
            "(regression)"
        ),
    ] = None
    comparison: Annotated[
        vocabulary(rules.COMPARISON) | None,
        Field(
            description="how the metric must compare with the threshold to pass; null or left "
            "out with the default metric: its comparison ('greater_than_or_equal' for AUC and "
            "accuracy, 'less_than_or_equal' for RMSE)"
        ),
    ] = None
    candidate_weight: Annotated[
        bounded(rules.CANDIDATE_WEIGHT),
        Field(
            description="0: the new model takes all traffic; above: A/B, the new model gets "
            "this share, the rest goes to the previous candidate when its version's gate metric "
            "did at least as well as Live's (per deploy.comparison), else to the Live model"
        ),
    ] = 0.0
    poll_seconds: integer(5, 3600) = 60
    max_wait_minutes: integer(1, 1440) = 60
    # metric/comparison/threshold gate runs on the generated dataset; a run on a table (its
    # problem type known only when Prepare data has run) is gated by this, else by its problem
    # type's default.
    table_gate: Annotated[
        TableGateConfig | None,
        Field(
            description="the gate of every run on a table; null or left out: its problem type's "
            "default, better than the trivial model ('evaluation:auc' > 0.5, 'evaluation:accuracy' "
            "> the best constant classifier's, 'evaluation:r2' > 0)"
        ),
    ] = None


@dataclass(frozen=True, config=_STRICT)
class RegistryConfig:
    """The model registry: the status each version the workflow registers starts with."""

    approval_status: Annotated[
        vocabulary(rules.APPROVAL_STATUS),
        Field(
            description="'Approved': each registered version is released at once; "
            "'PendingManualApproval': it waits for `mlstack approve`"
        ),
    ] = "PendingManualApproval"


@dataclass(frozen=True, config=_STRICT)
class ObjectiveConfig:
    """The tuning job's objective: a metric of the training image, minimised or maximised."""

    metric: MetricName
    type: vocabulary(rules.OBJECTIVE_TYPE)


@dataclass(frozen=True, config=_STRICT)
class NumericRange:
    """An integer or continuous hyperparameter range."""

    type: one_of("integer", "continuous")
    min: number()
    max: number()
    scaling: vocabulary(rules.SCALING_TYPE) | None = None

    def __post_init__(self) -> None:
        if not self.min < self.max:
            raise ValueError("min must be less than max")
        if self.type == "integer" and not (isinstance(self.min, int) and isinstance(self.max, int)):
            raise ValueError("an integer range takes integer bounds")


@dataclass(frozen=True, config=_STRICT)
class CategoricalRange:
    """A categorical hyperparameter range."""

    type: one_of("categorical")
    values: Annotated[tuple[NonEmpty, ...], Field(min_length=1)]


Ranges = Annotated[
    Mapping[
        Annotated[str, Field(pattern=HYPERPARAMETER_NAME_PATTERN)],
        Annotated[NumericRange | CategoricalRange, Field(discriminator="type")],
    ],
    Field(
        min_length=1,
        description='an object mapping hyperparameter names to {"type": "integer" or '
        '"continuous", "min": n, "max": n (min < max), "scaling": "Auto", "Linear", '
        '"Logarithmic" or "ReverseLogarithmic" (optional)} or {"type": "categorical", "values": '
        "[strings]}",
    ),
    AfterValidator(_raw_ranges),
]


@dataclass(frozen=True, config=_STRICT)
class TuningConfig:
    """Optional hyperparameter tuning path (``enabled``: taken by default; the input decides)."""

    enabled: Flag
    strategy: vocabulary(rules.TUNING_STRATEGY)
    max_jobs: bounded(rules.TUNING_JOBS)
    max_parallel_jobs: bounded(rules.PARALLEL_TUNING_JOBS)
    objective: ObjectiveConfig
    ranges: Ranges
    early_stopping: Flag = False


@dataclass(frozen=True, config=_STRICT)
class ScheduleConfig:
    """Scheduled retraining: an EventBridge Scheduler schedule that starts the workflow."""

    expression: text(
        rules.SCHEDULE_EXPRESSION_PATTERN,
        "an EventBridge Scheduler expression such as 'rate(7 days)' or 'cron(0 3 ? * SUN *)'",
    )
    enabled: Flag = False
    input: Annotated[
        Mapping[str, Any],
        Field(description="an object (the execution input)"),
        AfterValidator(_freeze),
    ] = dataclasses.field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, config=_STRICT)
class AlarmsConfig:
    """Thresholds of the endpoint alarms (also the deploy stage's auto-rollback alarms)."""

    error_5xx_rate_percent: Percent = 1.0
    error_4xx_rate_percent: Percent = 10.0
    latency_p99_ms: integer(1, 3_600_000) = 1000
    async_backlog: integer(1, 1_000_000) = 100
    period_seconds: Annotated[
        int,
        Field(ge=60, le=86400, multiple_of=60, description="60 or a multiple of 60 up to 86400"),
    ] = 60
    evaluation_periods: integer(1, 100) = 3


@dataclass(frozen=True, config=_STRICT)
class MonitoringConfig:
    """Data-quality monitoring, used when 'endpoint.data_capture' is on: the workflow's Baseline
    data job, and on the Serving endpoint our drift monitor (a scheduled `monitor` Processing job
    whose metrics feed alarms), plus SageMaker Model Monitor's schedule only on opt-in
    (docs/monitoring.md)."""

    schedule_expression: text(
        rules.MONITORING_SCHEDULE_PATTERN,
        "the monitor's schedule (UTC; each window spans its period): hourly 'cron(0 * ? * * *)', "
        "daily 'cron(0 8 ? * * *)' or every N hours 'cron(0 0/6 ? * * *)'",
    ) = "cron(0 * ? * * *)"
    baseline: text(
        rules.BASELINE_PREFIX_PATTERN,
        "a prefix of the data bucket under 'baselines/' such as 'baselines/latest/' (the newest "
        "run's) or 'baselines/<run_id>/' (pinned)",
    ) = "baselines/latest/"
    features: Annotated[
        integer(1, 10),
        Field(
            description="how many feature columns the endpoint receives as CSV without a "
            "header, 2 for the seeded x and y; the drift alarm watches each"
        ),
    ] = 2
    instance_type: InstanceType = "ml.m5.large"
    volume_size_gb: bounded(rules.VOLUME_SIZE_GB) = 20
    # An hourly schedule's job must end within the hour.
    max_runtime_seconds: integer(1, 3600) = 1800
    drift_threshold: Annotated[
        bounded(rules.DRIFT_THRESHOLD),
        Field(
            description="the distribution distance above which a feature has drifted: the "
            "baseline's comparison_threshold and the drift alarm's threshold"
        ),
    ] = 0.1
    model_monitor: Annotated[
        Flag,
        Field(
            description="true: also a SageMaker Model Monitor data-quality schedule and its drift "
            "alarm (Model Monitor is closed to new customers, docs/monitoring.md); false: only "
            "our drift monitor"
        ),
    ] = False
    min_records: Annotated[
        bounded(rules.MONITOR_MIN_RECORDS),
        Field(
            description="captured records a window needs to be judged; fewer: the report says "
            "'not_enough_data' and no drift or quality metric is published (never an alarm)"
        ),
    ] = 100
    psi_threshold: Annotated[
        bounded(rules.PSI_THRESHOLD),
        Field(description="the population stability index above which a feature has drifted"),
    ] = 0.2
    p_value: Annotated[
        bounded(rules.P_VALUE),
        Field(
            description="the significance level below which a feature's test (Kolmogorov-"
            "Smirnov for numbers, chi-squared for categories) says its distribution changed"
        ),
    ] = 0.01
    drifted_share_alarm_percent: Annotated[
        bounded(rules.DRIFTED_SHARE_PERCENT),
        Field(
            description="the share of drifted features, in percent, at or above which the drift "
            "alarm fires"
        ),
    ] = 30
    quality_metric: Annotated[
        vocabulary(rules.QUALITY_METRIC) | None,
        Field(
            description="the quality metric watched against ground truth labels; null: the "
            "problem type's default, 'AUC' (binary), 'Accuracy' (multiclass) or 'RMSE' "
            "(regression)"
        ),
    ] = None
    quality_threshold: Annotated[
        number(0) | None,
        Field(
            description="null: no quality alarm; else the alarm fires when the quality metric "
            "falls below it ('AUC', 'Accuracy', 'F1') or rises above it ('RMSE', 'MAE')"
        ),
    ] = None
    retrain_on_drift: Annotated[
        Flag,
        Field(
            description="true: the drift alarm starts the training workflow (at most once per "
            "'retrain_cooldown_hours')"
        ),
    ] = False
    retrain_cooldown_hours: Annotated[
        bounded(rules.RETRAIN_COOLDOWN_HOURS),
        Field(description="the least time between two retrainings the drift alarm starts"),
    ] = 24
