"""The rules a value must follow, each defined once: patterns, ranges and allowed values.

The environment configuration (:mod:`mlstack.config`), the constructs and the execution input of
the training workflow import their checks from here, so a rule cannot drift between layers.
Rules are pydantic v2 types (``Annotated`` constraints), so the same definition validates in
Python and renders as JSON Schema (``pattern``, ``minimum``, ``enum``...).

The execution input is a pydantic model too: :func:`execution_input_model` builds it for one
workflow (which optional paths it has, what its seeder and its training image accept) and
:func:`execution_input_schema` renders it as the JSON Schema that the workflow's first state
hands to the validation Lambda (``lambda/validate_input``) with every execution.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, create_model

from mlstack.assets import runtime_path
from mlstack.portable_rules import (
    APPROVAL_STATUS,
    BAD_ROWS_PERCENT,
    CANDIDATE_WEIGHT,
    COMPARISON,
    COMPARISONS,
    DEFAULT_ROWS_PER_SHARD,
    DEFAULT_SPLIT_FRACTION,
    DRIFT_THRESHOLD,
    INSTANCE_COUNT,
    MAX_CONTAINER_ARGUMENT,
    MAX_DATASET_ROWS,
    MAX_INSTANCE_COUNT,
    MAX_PARALLEL_TUNING_JOBS,
    MAX_ROWS_PER_SHARD,
    MAX_SEED,
    MAX_SHARDS,
    MAX_TUNING_JOBS,
    OBJECTIVE_TYPE,
    PARALLEL_TUNING_JOBS,
    PREPARE_INSTANCE_COUNT,
    PROBLEM_TYPE,
    ROWS_PER_SHARD,
    SCALING_TYPE,
    SEED,
    SOURCE_FORMAT,
    SPLIT_FRACTION,
    TRAFFIC_TYPE,
    TRAFFIC_TYPES,
    TUNING_JOBS,
    TUNING_STRATEGY,
    VOLUME_SIZE_GB,
    Bound,
    Comparison,
    Vocabulary,
    comparison,
    fractions_leave_no_training,
    instances_beyond_shards,
    objective_not_a_metric,
    parallel_beyond_jobs,
    shard_count,
    traffic_step_problem,
    tuned_and_fixed,
)

__all__ = [  # the named constraints and rules across keys, re-exported from their one home
    "APPROVAL_STATUS",
    "BAD_ROWS_PERCENT",
    "CANDIDATE_WEIGHT",
    "COMPARISON",
    "COMPARISONS",
    "DEFAULT_ROWS_PER_SHARD",
    "DEFAULT_SPLIT_FRACTION",
    "DRIFT_THRESHOLD",
    "INSTANCE_COUNT",
    "MAX_CONTAINER_ARGUMENT",
    "MAX_DATASET_ROWS",
    "MAX_INSTANCE_COUNT",
    "MAX_PARALLEL_TUNING_JOBS",
    "MAX_ROWS_PER_SHARD",
    "MAX_SEED",
    "MAX_SHARDS",
    "MAX_TUNING_JOBS",
    "OBJECTIVE_TYPE",
    "PARALLEL_TUNING_JOBS",
    "PREPARE_INSTANCE_COUNT",
    "PROBLEM_TYPE",
    "ROWS_PER_SHARD",
    "SCALING_TYPE",
    "SEED",
    "SOURCE_FORMAT",
    "SPLIT_FRACTION",
    "TRAFFIC_TYPE",
    "TRAFFIC_TYPES",
    "TUNING_JOBS",
    "TUNING_STRATEGY",
    "VOLUME_SIZE_GB",
    "Bound",
    "Comparison",
    "Vocabulary",
    "comparison",
    "fractions_leave_no_training",
    "instances_beyond_shards",
    "objective_not_a_metric",
    "parallel_beyond_jobs",
    "shard_count",
    "traffic_step_problem",
    "tuned_and_fixed",
]

# --- patterns ----------------------------------------------------------------------------------

INSTANCE_TYPE_PATTERN = r"^ml\.[a-z0-9]+\.[a-z0-9]+$"
# SageMaker's names of endpoints, endpoint configurations and production variants.
NAME_PATTERN = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"
HYPERPARAMETER_NAME_PATTERN = r"^[A-Za-z0-9_.:-]{1,256}$"
# SageMaker's ParameterRanges take their bounds as strings.
INTEGER_STRING_PATTERN = r"^-?[0-9]+$"
NUMBER_STRING_PATTERN = r"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$"

ENV_NAME_PATTERN = r"^[a-z][a-z0-9]{0,11}$"
ACCOUNT_PATTERN = r"^[0-9]{12}$"
REGION_PATTERN = r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]$"
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$"
VPC_ID_PATTERN = r"^vpc-[0-9a-f]{8}([0-9a-f]{9})?$"
SUBNET_ID_PATTERN = r"^subnet-[0-9a-f]{8}([0-9a-f]{9})?$"
SECURITY_GROUP_ID_PATTERN = r"^sg-[0-9a-f]{8}([0-9a-f]{9})?$"
# SageMaker's VpcConfig: 1 to 16 subnets, 1 to 5 security groups (one of them ours).
MAX_SUBNETS = 16
MAX_EXTRA_SECURITY_GROUPS = 4
# Lambda keeps at least 10 concurrent executions of an account unreserved.
MAX_RESERVED_CONCURRENCY = 1000
S3_URI_PATTERN = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/\S+$"
S3_KEY_PATTERN = r"^[A-Za-z0-9!_.*'()/-]+$"
# A model.tar.gz: an s3:// URI, or a key in the data bucket (not starting with "/").
MODEL_ARTIFACT_PATTERN = (
    r"^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/\S+|[A-Za-z0-9!_.*'()-][A-Za-z0-9!_.*'()/-]*)$"
)
# A user's table: an s3:// prefix, or a key prefix under the data bucket's imports/.
SOURCE_URI_PATTERN = MODEL_ARTIFACT_PATTERN
# Column names, comma-separated (what ``prepare`` takes); empty: its default. Not starting with
# '-': the list is its own ContainerArguments item after '--features' (and its siblings), and
# prepare's argparse would read such an item as an option ("expected one argument").
COLUMN_LIST_PATTERN = r"^([^,-][^,]*(,[^,]+)*)?$"
SCHEDULE_EXPRESSION_PATTERN = r"^(rate\([1-9][0-9]* (minute|hour|day)s?\)|cron\([^()]+\))$"
# Model Monitor's schedules: hourly "cron(0 * ? * * *)", daily at an hour "cron(0 8 ? * * *)" or
# every N hours from one "cron(0 0/6 ? * * *)" (SageMaker developer guide, "Cron expression for
# monitoring schedule").
MONITORING_SCHEDULE_PATTERN = r"^cron\(0 (\*|[0-9]{1,2}(/[0-9]{1,2})?) \? \* \* \*\)$"
# A prefix of the data bucket holding statistics.json and constraints.json.
BASELINE_PREFIX_PATTERN = r"^[a-z0-9][a-z0-9-]*/([A-Za-z0-9_-]+/)+$"

# --- our drift monitor (issue #21, docs/monitoring.md) ------------------------------------------
# The `monitor` program's arguments and the alarms on what it publishes. PSI (population stability
# index): 0.1 is a slight and 0.25 a major shift by the usual reading, so 0.2 flags a feature.
MONITOR_MIN_RECORDS = Bound(1, 10_000_000, why="records a window needs before it is judged")
PSI_THRESHOLD = Bound(0.001, 10, integer=False, why="a population stability index")
# A test's p-value below which a feature's distribution differs (0 would never flag, 1 always).
P_VALUE = Bound(0.0001, 0.5, integer=False, why="a significance level")
DRIFTED_SHARE_PERCENT = Bound(0.01, 100, integer=False, why="a percentage of the features")
# One day to 30 days between retrainings started by the drift alarm.
RETRAIN_COOLDOWN_HOURS = Bound(1, 720, why="hours between retrainings on drift")
# The quality metrics the `monitor` program publishes (CloudWatch metric names) when ground truth
# labels arrive, by problem type; the first is the default when 'monitoring.quality_metric' is
# null. A metric in HIGHER_IS_BETTER alarms below its threshold, the others above.
QUALITY_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("AUC", "Accuracy", "F1"),
    "multiclass": ("Accuracy", "F1"),
    "regression": ("RMSE", "MAE"),
}
QUALITY_METRIC_NAMES = tuple(dict.fromkeys(n for names in QUALITY_METRICS.values() for n in names))
QUALITY_METRIC = Vocabulary(QUALITY_METRIC_NAMES)
HIGHER_IS_BETTER = frozenset({"AUC", "Accuracy", "F1"})


def quality_metric_problem(metric: str | None, problem_type: str | None) -> str | None:
    """A quality metric the `monitor` program never publishes for ``problem_type``: what it
    publishes, in words; None when it does (or synth cannot tell the problem type)."""
    if metric is None or problem_type is None or metric in QUALITY_METRICS[problem_type]:
        return None
    names = ", ".join(f"'{n}'" for n in QUALITY_METRICS[problem_type])
    return f"null or a metric the {problem_type} monitor publishes: {names}"


def quality_threshold_problem(metric: str, threshold: float | None) -> str | None:
    """A threshold ``metric`` cannot cross: AUC, accuracy and F1 are shares in [0, 1]."""
    if threshold is None or threshold <= 1 or metric not in HIGHER_IS_BETTER:
        return None
    return f"at most 1 for '{metric}' (a share)"


# --- ranges and allowed values -----------------------------------------------------------------
# The bounds and vocabularies shared by several layers are named constraints in
# mlstack.portable_rules (which the Lambdas carry a copy of); re-exported here.

# Concurrent seeding invocations: an inline Map runs at most 40 iterations at once ("Using Map
# state in Inline mode"), a Distributed Map up to 10,000 child executions ("Using Map state in
# Distributed mode"). Above INLINE_MAX_SHARDS shards the workflow seeds through the Distributed
# Map: an inline Map's iterations share the execution's 25,000-event history (7 events a shard
# without retries; "Step Functions service quotas").
INLINE_MAP_MAX_CONCURRENCY = 40
DISTRIBUTED_MAP_MAX_CONCURRENCY = 10_000
INLINE_MAX_SHARDS = 100
DEFAULT_SEEDING_CONCURRENCY = 5
MAX_TRAINING_RUNTIME_SECONDS = 28 * 24 * 3600  # SageMaker's limit for MaxRuntimeInSeconds
SERVERLESS_MEMORY_SIZES = (1024, 2048, 3072, 4096, 5120, 6144)
# CloudWatch Logs only accepts these retention periods.
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
)  # fmt: skip
APPROVAL_STATUSES = APPROVAL_STATUS.values
TUNING_STRATEGIES = TUNING_STRATEGY.values
OBJECTIVE_TYPES = OBJECTIVE_TYPE.values
SCALING_TYPES = SCALING_TYPE.values
# The training image's contract (containers/common/mlstack_containers/training/contract.json):
# its hyperparameters, metric definitions, content types and the metrics its `evaluate` program
# reports by problem type. A quality gate names one of those as `evaluation:<name>`.
# The checkout's containers/, or the copy an installed wheel carries (mlstack.assets).
CONTAINERS_DIR = runtime_path("containers")
CONTRACT_PATH = Path("common") / "mlstack_containers" / "training" / "contract.json"
EVALUATION_METRIC_PREFIX = "evaluation:"


def training_contract(containers_dir: Path = CONTAINERS_DIR) -> dict[str, Any] | None:
    """The contract the training image built from ``containers_dir`` publishes (None when that
    directory has none)."""
    path = containers_dir / CONTRACT_PATH
    if not path.is_file():
        return None
    contract: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return contract


def _contract() -> dict[str, Any]:
    contract = training_contract()
    if contract is None:  # pragma: no cover - the package carries containers/
        raise FileNotFoundError(f"no training image contract {CONTAINERS_DIR / CONTRACT_PATH}")
    return contract


EVALUATION_METRICS: dict[str, tuple[str, ...]] = {
    kind: tuple(names) for kind, names in _contract()["evaluation_metrics"].items()
}


def evaluation_gate_metrics() -> list[str]:
    """``evaluation:<name>`` for every metric the evaluation job reports, each once."""
    names = dict.fromkeys(name for kind in EVALUATION_METRICS.values() for name in kind)
    return [f"{EVALUATION_METRIC_PREFIX}{name}" for name in names]


# The problem type each objective of the training image trains for (its contract).
OBJECTIVE_PROBLEM_TYPES: dict[str, str] = {
    objective: kind
    for kind, objectives in _contract()["objective_problem_types"].items()
    if kind != "description"
    for objective in objectives
}
# The quality gate when config names no deploy.metric (issue #19): per problem type, a metric
# every evaluation of that type reports and the comparison that passes a better model. AUC for
# binary (threshold-free), accuracy for multiclass (its weighted F1 is there too), RMSE (in the
# label's own unit) for regression.
GATE_DEFAULTS: dict[str, tuple[str, str]] = {
    "binary": (f"{EVALUATION_METRIC_PREFIX}auc", "greater_than_or_equal"),
    "multiclass": (f"{EVALUATION_METRIC_PREFIX}accuracy", "greater_than_or_equal"),
    "regression": (f"{EVALUATION_METRIC_PREFIX}rmse", "less_than_or_equal"),
}


@dataclass(frozen=True)
class TableGate:
    """The quality gate of a run on a table: the evaluation's ``metric`` compared by
    ``comparison`` with ``threshold``, a number, or with the value of ``threshold_metric``, another
    metric of the same evaluation (the trivial model's)."""

    metric: str
    comparison: str
    threshold: float | None = None
    threshold_metric: str | None = None

    def __post_init__(self) -> None:
        if (self.threshold is None) == (self.threshold_metric is None):
            raise ValueError("TableGate: expected a threshold or a threshold_metric, not both")

    def words(self) -> str:
        """The rule in words: ``evaluation:auc > 0.5``."""
        symbol = comparison(self.comparison).symbol
        return f"{self.metric} {symbol} {self.threshold_metric or f'{self.threshold:g}'}"


# The quality gate of a run on a table when the environment names none (issue #19). The problem
# type is known only when Prepare data has run, and no threshold suits every table (an RMSE is
# in the label's unit), so the default gate passes a model that beats the trivial model of its
# problem type on the test split, strictly:
# - binary: AUC above 0.5, the AUC of scores without skill (constant or random: the ROC curve is
#   the diagonal; Fawcett, "An introduction to ROC analysis", 2006, section 4);
# - multiclass: accuracy above the best constant classifier's (always the most frequent class),
#   which the evaluation reports beside it (SageMaker's multiclass_classification_metrics);
# - regression: R^2 above 0, i.e. an RMSE below that of predicting the test labels' mean
#   (R^2 = 1 - MSE / Var(y), scikit-learn's r2_score): the RMSE gate of GATE_DEFAULTS with the
#   one threshold that needs no knowledge of the label's scale.
TABLE_GATE_DEFAULTS: dict[str, TableGate] = {
    "binary": TableGate(f"{EVALUATION_METRIC_PREFIX}auc", "greater_than", threshold=0.5),
    "multiclass": TableGate(
        f"{EVALUATION_METRIC_PREFIX}accuracy",
        "greater_than",
        threshold_metric=f"{EVALUATION_METRIC_PREFIX}accuracy_best_constant_classifier",
    ),
    "regression": TableGate(f"{EVALUATION_METRIC_PREFIX}r2", "greater_than", threshold=0.0),
}


def gate_metric_not_reported(metric: str, problem_type: str) -> str | None:
    """An evaluation gate metric that an evaluation of ``problem_type`` never reports: what it
    reports, in words; None for a metric it reports or a training job metric."""
    if not metric.startswith(EVALUATION_METRIC_PREFIX):
        return None
    reported = EVALUATION_METRICS[problem_type]
    if metric.removeprefix(EVALUATION_METRIC_PREFIX) in reported:
        return None
    return f"a metric the {problem_type} evaluation reports: " + ", ".join(
        f"'{EVALUATION_METRIC_PREFIX}{name}'" for name in reported
    )


InstanceType = Annotated[
    str,
    Field(
        pattern=INSTANCE_TYPE_PATTERN,
        examples=["ml.m5.xlarge"],
        description="a SageMaker instance type such as 'ml.m5.xlarge'",
    ),
]


def bounded(bound: Bound) -> Any:
    """The pydantic type of a named bound (JSON Schema ``minimum``/``maximum``)."""
    if bound.integer:
        return Annotated[int, Field(ge=bound.low, le=bound.high)]
    return number(bound.low, bound.high)


def vocabulary(words: Vocabulary) -> Any:
    """The pydantic type of a named vocabulary (JSON Schema ``enum``)."""
    return Literal[words.values]


InstanceCount = Annotated[int, Field(ge=INSTANCE_COUNT.low, le=INSTANCE_COUNT.high)]
Seed = Annotated[int, Field(ge=SEED.low, le=SEED.high)]
TuningJobCount = Annotated[int, Field(ge=TUNING_JOBS.low, le=TUNING_JOBS.high)]
ParallelTuningJobCount = Annotated[
    int, Field(ge=PARALLEL_TUNING_JOBS.low, le=PARALLEL_TUNING_JOBS.high)
]
HyperparameterName = Annotated[str, Field(pattern=HYPERPARAMETER_NAME_PATTERN)]


def integer(low: int, high: int) -> Any:
    """An integer from ``low`` to ``high``."""
    return Annotated[int, Field(ge=low, le=high)]


def number(low: float | None = None, high: float | None = None) -> Any:
    """A JSON number (an integer stays an integer) from ``low`` to ``high``."""
    schema: dict[str, Any] = {"type": "number"}
    if low is not None:
        schema["minimum"] = low
    if high is not None:
        schema["maximum"] = high
    return Annotated[int | float, Field(ge=low, le=high), WithJsonSchema(schema)]


def one_of(*values: Any) -> Any:
    """Exactly one of ``values``."""
    return Literal[values]


def text(pattern: str, description: str) -> Any:
    """A string matching ``pattern``; ``description`` says what it is in words."""
    return Annotated[str, Field(pattern=pattern, description=description)]


def matches(pattern: str, value: object) -> bool:
    """``value`` is a string matching ``pattern`` as JSON Schema reads it (``$``: end of text)."""
    return isinstance(value, str) and re.fullmatch(pattern.removesuffix("$"), value) is not None


def rows_type(max_rows: int = MAX_DATASET_ROWS) -> Any:
    return Annotated[int, Field(ge=1, le=max_rows)]


# --- the training image's hyperparameters ------------------------------------------------------


def training_image_hyperparameters(
    containers_dir: Path = CONTAINERS_DIR,
) -> tuple[str, ...] | None:
    """The hyperparameter names the training image built from ``containers_dir`` accepts (None
    when that directory publishes no contract), from its contract file."""
    contract = training_contract(containers_dir)
    if contract is None:
        return None
    return tuple(sorted(contract["hyperparameters"]))


def training_image_metric_definitions(
    containers_dir: Path = CONTAINERS_DIR,
) -> list[dict[str, str]] | None:
    """The metric definitions (``Name``, ``Regex``) of the training image built from
    ``containers_dir`` (None when that directory publishes no contract)."""
    contract = training_contract(containers_dir)
    if contract is None:
        return None
    return [dict(d) for d in contract["metric_definitions"]]


# --- the execution input -----------------------------------------------------------------------

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)

# Keys of each group, in the order the workflow's defaults list them.
CORE_INPUT_KEYS = (
    "rows",
    "seed",
    "training_instance_type",
    "training_instance_count",
    "transform_instance_type",
    "transform_instance_count",
    "hyperparameters",
)
TUNING_INPUT_KEYS = (
    "tune",
    "tuning_strategy",
    "tuning_max_jobs",
    "tuning_max_parallel_jobs",
    "tuning_objective",
    "tuning_ranges",
)
DEPLOY_INPUT_KEYS = ("quality_threshold",)


# The run's dataset: null for the seeder, else a user's table (TableSource).
SOURCE_INPUT_KEYS = ("dataset_source",)


def input_keys(*, tuning: bool, deploy: bool) -> tuple[str, ...]:
    """The keys an execution input may set, given the workflow's optional paths."""
    return (
        CORE_INPUT_KEYS
        + SOURCE_INPUT_KEYS
        + (TUNING_INPUT_KEYS if tuning else ())
        + (DEPLOY_INPUT_KEYS if deploy else ())
    )


ColumnList = Annotated[
    str,
    Field(
        pattern=COLUMN_LIST_PATTERN,
        max_length=MAX_CONTAINER_ARGUMENT,
        description="column names, comma-separated, at most 256 characters (one "
        "ContainerArguments item), the first not starting with '-'; empty: the default",
    ),
]


def table_source_fields() -> dict[str, Any]:
    """A user's table, as ``prepare`` takes it (docs/your-data.md): each key's type and default.
    The configuration's ``dataset.source`` and the execution input's ``dataset_source`` are
    built from it."""
    fraction = _described(bounded(SPLIT_FRACTION), "a share of the rows, from 0 to 1")
    return {
        "uri": (
            _described(
                Annotated[str, Field(pattern=SOURCE_URI_PATTERN, max_length=1024)],
                "an 's3://bucket/prefix/' URI or a key prefix under the data bucket's "
                "'imports/' such as 'iris/'",
            ),
            ...,
        ),
        "label": (
            _described(
                Annotated[str, Field(min_length=1, max_length=MAX_CONTAINER_ARGUMENT)],
                "the label column's name",
            ),
            ...,
        ),
        "format": (vocabulary(SOURCE_FORMAT), "auto"),
        "problem_type": (vocabulary(PROBLEM_TYPE), "auto"),
        "features": (ColumnList, ""),
        "categorical": (ColumnList, ""),
        "column_names": (ColumnList, ""),
        "validation_fraction": (fraction, DEFAULT_SPLIT_FRACTION),
        "test_fraction": (fraction, DEFAULT_SPLIT_FRACTION),
        "seed": (Seed, 0),
        "max_bad_rows_percent": (
            _described(bounded(BAD_ROWS_PERCENT), "a percentage of the rows, from 0 to 100"),
            0,
        ),
    }


def table_source_model() -> type[BaseModel]:
    """The execution input's ``dataset_source`` object (every key but uri and label optional)."""
    model: type[BaseModel] = create_model(
        "TableSource", __config__=_STRICT, **table_source_fields()
    )
    return model


def table_source_defaults() -> dict[str, Any]:
    """The default of every optional key of a table source."""
    return {
        key: default for key, (_, default) in table_source_fields().items() if default is not ...
    }


def _one_of(values: Sequence[str]) -> Any:
    return Literal[tuple(values)]


def list_of(kind: Any) -> Any:
    """``list[kind]`` for a type built at run time."""
    return cast(Any, list)[kind]


def _described(kind: Any, description: str) -> Any:
    return Annotated[kind, Field(description=description)]


def execution_input_model(
    defaults: Mapping[str, Any] | None,
    *,
    max_rows: int = MAX_DATASET_ROWS,
    hyperparameter_names: Sequence[str] | None = None,
    metric_names: Sequence[str] = (),
    tuning: bool = False,
    deploy: bool = False,
) -> type[BaseModel]:
    """The execution input one workflow accepts: every key optional, none unknown.

    ``defaults``: the workflow's default for each key (documentation; the definition applies
    them); None to only check an input. ``hyperparameter_names``: what the training image
    knows (None: any valid name).
    ``metric_names``: the training image's metrics, the only tuning objectives.
    """
    name: Any = (
        _one_of(sorted(hyperparameter_names))
        if hyperparameter_names is not None
        else HyperparameterName
    )
    fields: dict[str, Any] = {
        "rows": (_described(rows_type(max_rows), "Rows of the generated dataset"), None),
        "seed": (_described(Seed, "Seed of the generated dataset"), None),
        "training_instance_type": (
            _described(InstanceType, "Instance type of the training job(s)"),
            None,
        ),
        "training_instance_count": (
            _described(InstanceCount, "Instances of each training job"),
            None,
        ),
        "transform_instance_type": (
            _described(InstanceType, "Instance type of the batch transform job"),
            None,
        ),
        "transform_instance_count": (
            _described(InstanceCount, "Instances of the batch transform job"),
            None,
        ),
        "hyperparameters": (
            _described(
                dict[name, str],
                "Merged key by key into the defaults; SageMaker takes every value as a string",
            ),
            None,
        ),
    }
    fields["dataset_source"] = (
        _described(
            table_source_model() | None,
            "The run's dataset: null for the generated one, else a table (docs/your-data.md)",
        ),
        None,
    )
    if tuning:
        fields.update(_tuning_fields(name, metric_names))
    if deploy:
        fields["quality_threshold"] = (
            _described(float, "The deploy stage's quality gate compares the metric with this"),
            None,
        )
    if defaults is None:  # only to check an input: no key is required
        model: type[BaseModel] = create_model("ExecutionInput", __config__=_STRICT, **fields)
        return model
    for key, (kind, _) in list(fields.items()):
        if key not in defaults:
            raise ValueError(f"execution input key {key!r} has no default in the workflow")
        fields[key] = (kind, defaults[key])
    unknown = sorted(set(defaults) - set(fields))
    if unknown:
        raise ValueError(f"workflow defaults {unknown} are not execution input keys")
    checked: type[BaseModel] = create_model("ExecutionInput", __config__=_STRICT, **fields)
    return checked


def _tuning_fields(name: Any, metric_names: Sequence[str]) -> dict[str, Any]:
    metric: Any = _one_of(metric_names) if metric_names else str
    objective = create_model(
        "TuningObjective",
        __config__=_STRICT,
        Type=(_one_of(OBJECTIVE_TYPES), ...),
        MetricName=(metric, ...),
    )

    def numeric_range(kind: str, pattern: str) -> Any:
        bound = Annotated[str, Field(pattern=pattern)]
        return create_model(
            f"{kind}ParameterRange",
            __config__=_STRICT,
            Name=(name, ...),
            MinValue=(bound, ...),
            MaxValue=(bound, ...),
            ScalingType=(_one_of(SCALING_TYPES), "Auto"),
        )

    categorical = create_model(
        "CategoricalParameterRange",
        __config__=_STRICT,
        Name=(name, ...),
        Values=(Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)], ...),
    )
    ranges = create_model(
        "ParameterRanges",
        __config__=_STRICT,
        IntegerParameterRanges=(list_of(numeric_range("Integer", INTEGER_STRING_PATTERN)), []),
        ContinuousParameterRanges=(list_of(numeric_range("Continuous", NUMBER_STRING_PATTERN)), []),
        CategoricalParameterRanges=(list_of(categorical), []),
    )
    return {
        "tune": (_described(bool, "Take the tuning path instead of one training job"), None),
        "tuning_strategy": (_described(_one_of(TUNING_STRATEGIES), "Tuning strategy"), None),
        "tuning_max_jobs": (_described(TuningJobCount, "Training jobs of the tuning job"), None),
        "tuning_max_parallel_jobs": (
            _described(ParallelTuningJobCount, "Training jobs run at the same time"),
            None,
        ),
        "tuning_objective": (
            _described(objective, "SageMaker's HyperParameterTuningJobObjective"),
            None,
        ),
        "tuning_ranges": (_described(ranges, "SageMaker's ParameterRanges"), None),
    }


def execution_input_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model as JSON Schema (draft 2020-12), without pydantic's generated titles."""
    schema = _drop_titles(model.model_json_schema(mode="validation"))
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def _drop_titles(node: Any, *, in_properties: bool = False) -> Any:
    if isinstance(node, dict):
        return {
            k: v
            if not in_properties and k in ("default", "examples", "enum", "const")
            else _drop_titles(v, in_properties=k in ("properties", "$defs") and not in_properties)
            for k, v in node.items()
            if in_properties or k != "title"
        }
    if isinstance(node, list):
        return [_drop_titles(v) for v in node]
    return node


# --- the Lambdas' copies of the portable rules ---------------------------------------------------

PORTABLE_RULES = Path(__file__).with_name("portable_rules.py")
# The functions whose code carries a copy (their code directory is all Lambda gets).
PORTABLE_RULES_COPIES = tuple(
    Path(__file__).resolve().parents[1] / "lambda" / name / PORTABLE_RULES.name
    for name in ("seed", "validate_input")
)
_COPY_HEADER = (
    "# Generated from mlstack/portable_rules.py by `make docs` (python -m mlstack.rules): do not\n"
    "# edit; tests/code/test_code_rules.py fails when this copy differs from its source.\n"
)


def portable_rules_copy() -> str:
    """What each Lambda's copy of :mod:`mlstack.portable_rules` holds."""
    return _COPY_HEADER + PORTABLE_RULES.read_text(encoding="utf-8")


if __name__ == "__main__":
    for copy in PORTABLE_RULES_COPIES:
        copy.write_text(portable_rules_copy(), encoding="utf-8")
        print(f"wrote {copy}")
