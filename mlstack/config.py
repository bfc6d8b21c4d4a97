"""Environment configuration: the one place an environment's settings are read and validated.

Each environment is a JSON file ``environments/<name>.json``. :func:`load_environment` reads one
into a frozen :class:`EnvironmentConfig`; any missing, unknown or ill-typed key raises
:class:`ConfigError` naming the environment, the key and what is expected. Stacks hand the typed
values to constructs; constructs never read configuration themselves.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

ENVIRONMENTS_DIR = Path(__file__).resolve().parents[1] / "environments"

ENV_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]{0,11}$")
INSTANCE_TYPE_PATTERN = re.compile(r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
ACCOUNT_PATTERN = re.compile(r"^[0-9]{12}$")
REGION_PATTERN = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]$")
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
S3_URI_PATTERN = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/\S+$")
S3_KEY_PATTERN = re.compile(r"^[A-Za-z0-9!_.*'()/-]+$")
HYPERPARAMETER_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,256}$")
VARIANT_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
SCHEDULE_EXPRESSION_PATTERN = re.compile(
    r"^(rate\([1-9][0-9]* (minute|hour|day)s?\)|cron\([^()]+\))$"
)
DEFAULT_METRIC_DEFINITIONS = (
    Path(__file__).resolve().parents[1] / "containers" / "training" / "metric_definitions.json"
)
SERVERLESS_MEMORY_SIZES = (1024, 2048, 3072, 4096, 5120, 6144)
COMPARISONS = ("less_than", "less_than_or_equal", "greater_than", "greater_than_or_equal")
TRAFFIC_TYPES = ("all_at_once", "canary", "linear")

# CloudWatch Logs only accepts these retention periods.
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
)  # fmt: skip
MAX_DATASET_ROWS = 1_000_000  # what the seeding Lambda fits in 256 MB
MAX_TRAINING_RUNTIME_SECONDS = 28 * 24 * 3600  # SageMaker's limit for MaxRuntimeInSeconds


class ConfigError(ValueError):
    """An environment's configuration is missing a key, has an unknown key or an ill-typed value."""


def _meta(expected: str, check: Callable[[Any], bool]) -> dict[str, Any]:
    return {"expected": expected, "check": check}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_in(low: int, high: int) -> Callable[[Any], bool]:
    return lambda v: _is_int(v) and low <= v <= high


def _matches(pattern: re.Pattern[str]) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, str) and pattern.fullmatch(v) is not None


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number_in(low: float, high: float) -> Callable[[Any], bool]:
    return lambda v: _is_number(v) and low <= v <= high


def _one_of(*allowed: Any) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, type(allowed[0])) and v in allowed


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _section(cls: type[Any], *, optional: bool = False, many: bool = False) -> dict[str, Any]:
    """Metadata of a field holding a nested section (``optional``: may be null; ``many``: a
    non-empty list of them)."""
    what = (
        "a non-empty list of objects" if many else "null or an object" if optional else "an object"
    )
    return {"section": cls, "optional": optional, "many": many, "expected": what}


def _is_range(value: Any) -> bool:
    if not isinstance(value, dict) or value.get("type") not in (
        "integer",
        "continuous",
        "categorical",
    ):
        return False
    if value["type"] == "categorical":
        values = value.get("values")
        return (
            set(value) == {"type", "values"}
            and isinstance(values, list)
            and bool(values)
            and all(isinstance(v, str) and v for v in values)
        )
    check = _is_int if value["type"] == "integer" else _is_number
    return (
        set(value) <= {"type", "min", "max", "scaling"}
        and check(value.get("min"))
        and check(value.get("max"))
        and value["min"] < value["max"]
        and value.get("scaling", "Auto") in ("Auto", "Linear", "Logarithmic", "ReverseLogarithmic")
    )


def _is_ranges(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and bool(value)
        and all(
            isinstance(k, str) and HYPERPARAMETER_NAME_PATTERN.fullmatch(k) and _is_range(v)
            for k, v in value.items()
        )
    )


def _is_hyperparameters(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str)
        and HYPERPARAMETER_NAME_PATTERN.fullmatch(k) is not None
        and (isinstance(v, str | float) or _is_int(v))
        for k, v in value.items()
    )


def _is_metric_definitions(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(item, dict)
        and set(item) == {"Name", "Regex"}
        and all(isinstance(item[k], str) and item[k] for k in item)
        for item in value
    )


def _is_model_artifact(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    if value.startswith("s3://"):
        return S3_URI_PATTERN.fullmatch(value) is not None
    return S3_KEY_PATTERN.fullmatch(value) is not None and not value.startswith("/")


INSTANCE_TYPE = _meta(
    "a SageMaker instance type such as 'ml.m5.xlarge'", _matches(INSTANCE_TYPE_PATTERN)
)
INSTANCE_COUNT = _meta("an integer from 1 to 100", _int_in(1, 100))


@dataclass(frozen=True)
class DatasetConfig:
    """Synthetic dataset generated by the seeding Lambda at the start of each run."""

    rows: int = field(
        metadata=_meta(f"an integer from 1 to {MAX_DATASET_ROWS}", _int_in(1, MAX_DATASET_ROWS))
    )
    seed: int = field(metadata=_meta("an integer from 0 to 2**32 - 1", _int_in(0, 2**32 - 1)))
    max_rows: int = field(
        metadata=_meta(f"an integer from 1 to {MAX_DATASET_ROWS}", _int_in(1, MAX_DATASET_ROWS))
    )


@dataclass(frozen=True)
class TrainingConfig:
    """SageMaker training job defaults (each run may override type, count and hyperparameters)."""

    instance_type: str = field(metadata=INSTANCE_TYPE)
    instance_count: int = field(metadata=INSTANCE_COUNT)
    volume_size_gb: int = field(metadata=_meta("an integer from 1 to 16384", _int_in(1, 16384)))
    max_runtime_seconds: int = field(
        metadata=_meta(
            f"an integer from 1 to {MAX_TRAINING_RUNTIME_SECONDS}",
            _int_in(1, MAX_TRAINING_RUNTIME_SECONDS),
        )
    )
    hyperparameters: Mapping[str, str] = field(
        metadata=_meta(
            "an object mapping hyperparameter names to strings or numbers", _is_hyperparameters
        )
    )


@dataclass(frozen=True)
class TransformConfig:
    """Batch transform job defaults (each run may override type and count)."""

    instance_type: str = field(metadata=INSTANCE_TYPE)
    instance_count: int = field(metadata=INSTANCE_COUNT)


MODEL_ARTIFACT = _meta(
    "null, an 's3://bucket/key' URI or a key inside the data bucket such as "
    "'releases/v1/model.tar.gz'",
    _optional(_is_model_artifact),
)


@dataclass(frozen=True)
class VariantConfig:
    """One production variant of the Serving endpoint (A/B testing: several, with weights)."""

    name: str = field(
        metadata=_meta(
            "a variant name: up to 63 letters, digits and dashes", _matches(VARIANT_NAME_PATTERN)
        )
    )
    weight: float = field(metadata=_meta("a number from 0.01 to 1000", _number_in(0.01, 1000)))
    instance_type: str = field(metadata=INSTANCE_TYPE)
    instance_count: int = field(metadata=INSTANCE_COUNT)
    model_artifact: str | None = field(default=None, metadata=MODEL_ARTIFACT)


@dataclass(frozen=True)
class AutoscalingConfig:
    """Target tracking on invocations per instance, applied to every instance-based variant."""

    min_capacity: int = field(metadata=INSTANCE_COUNT)
    max_capacity: int = field(metadata=INSTANCE_COUNT)
    target_invocations_per_instance: int = field(
        metadata=_meta("an integer from 1 to 1000000", _int_in(1, 1_000_000))
    )
    scale_in_cooldown_seconds: int = field(
        default=300, metadata=_meta("an integer from 0 to 3600", _int_in(0, 3600))
    )
    scale_out_cooldown_seconds: int = field(
        default=60, metadata=_meta("an integer from 0 to 3600", _int_in(0, 3600))
    )


@dataclass(frozen=True)
class DataCaptureConfig:
    """Capture of requests and responses into the data bucket (KMS-encrypted)."""

    sampling_percentage: int = field(metadata=_meta("an integer from 1 to 100", _int_in(1, 100)))
    capture: Literal["both", "input", "output"] = field(
        default="both",
        metadata=_meta("'both', 'input' or 'output'", _one_of("both", "input", "output")),
    )


@dataclass(frozen=True)
class ServerlessConfig:
    """Serverless inference instead of instances (one variant; no capture, no autoscaling)."""

    memory_size_mb: int = field(
        metadata=_meta(
            f"one of {list(SERVERLESS_MEMORY_SIZES)}",
            lambda v: _is_int(v) and v in SERVERLESS_MEMORY_SIZES,
        )
    )
    max_concurrency: int = field(metadata=_meta("an integer from 1 to 200", _int_in(1, 200)))


@dataclass(frozen=True)
class AsyncInferenceConfig:
    """Asynchronous inference: results and failures in the data bucket, SNS notifications."""

    max_concurrent_invocations_per_instance: int = field(
        default=4, metadata=_meta("an integer from 1 to 1000", _int_in(1, 1000))
    )
    notifications: bool = field(default=True, metadata=_meta("true or false", _is_bool))


@dataclass(frozen=True)
class EndpointConfig:
    """Realtime endpoint: deployed only when ``model_artifact`` names a model.tar.gz."""

    model_artifact: str | None = field(metadata=MODEL_ARTIFACT)
    instance_type: str = field(metadata=INSTANCE_TYPE)
    instance_count: int = field(metadata=INSTANCE_COUNT)
    variants: tuple[VariantConfig, ...] | None = field(
        default=None, metadata=_section(VariantConfig, optional=True, many=True)
    )
    autoscaling: AutoscalingConfig | None = field(
        default=None, metadata=_section(AutoscalingConfig, optional=True)
    )
    data_capture: DataCaptureConfig | None = field(
        default=None, metadata=_section(DataCaptureConfig, optional=True)
    )
    serverless: ServerlessConfig | None = field(
        default=None, metadata=_section(ServerlessConfig, optional=True)
    )
    async_inference: AsyncInferenceConfig | None = field(
        default=None, metadata=_section(AsyncInferenceConfig, optional=True)
    )

    @property
    def enabled(self) -> bool:
        return self.model_artifact is not None

    @property
    def variant_names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variants) if self.variants else ("AllTraffic",)


@dataclass(frozen=True)
class ImagesConfig:
    """Container images; ``null`` builds the image from ``containers/`` as an ECR asset."""

    training_image_uri: str | None = field(
        default=None,
        metadata=_meta(
            "null or an ECR image URI", _optional(lambda v: isinstance(v, str) and bool(v))
        ),
    )
    inference_image_uri: str | None = field(
        default=None,
        metadata=_meta(
            "null or an ECR image URI", _optional(lambda v: isinstance(v, str) and bool(v))
        ),
    )
    training_metric_definitions: tuple[Mapping[str, str], ...] | None = field(
        default=None,
        metadata=_meta(
            'null or a list of {"Name": str, "Regex": str} objects',
            _optional(_is_metric_definitions),
        ),
    )


@dataclass(frozen=True)
class WorkflowConfig:
    """Training workflow (state machine) settings."""

    timeout_minutes: int = field(
        metadata=_meta("an integer from 1 to 525600 (one year)", _int_in(1, 525_600))
    )
    log_retention_days: int = field(
        metadata=_meta(
            f"one of CloudWatch Logs' retention periods {list(LOG_RETENTION_DAYS)}",
            lambda v: _is_int(v) and v in LOG_RETENTION_DAYS,
        )
    )


@dataclass(frozen=True)
class TrafficConfig:
    """How an endpoint update shifts traffic to the new fleet (SageMaker blue/green)."""

    type: Literal["all_at_once", "canary", "linear"] = field(
        metadata=_meta("'all_at_once', 'canary' or 'linear'", _one_of(*TRAFFIC_TYPES))
    )
    step_percent: int | None = field(
        default=None,
        metadata=_meta(
            "null (all_at_once) or the percentage of capacity per step: 1 to 50 for canary, "
            "10 to 50 for linear",
            _optional(_int_in(1, 50)),
        ),
    )
    wait_seconds: int = field(
        default=300, metadata=_meta("an integer from 0 to 3600", _int_in(0, 3600))
    )
    termination_wait_seconds: int = field(
        default=300, metadata=_meta("an integer from 0 to 3600", _int_in(0, 3600))
    )


@dataclass(frozen=True)
class DeployConfig:
    """The workflow's deploy stage: quality gate, then create or blue/green-update an endpoint."""

    enabled: bool = field(metadata=_meta("true or false", _is_bool))
    metric: str = field(
        metadata=_meta(
            "a metric name of the training image, such as 'validation:rmse'",
            lambda v: isinstance(v, str) and bool(v),
        )
    )
    threshold: float = field(metadata=_meta("a number", _is_number))
    comparison: str = field(metadata=_meta(f"one of {list(COMPARISONS)}", _one_of(*COMPARISONS)))
    instance_type: str = field(metadata=INSTANCE_TYPE)
    instance_count: int = field(metadata=INSTANCE_COUNT)
    traffic: TrafficConfig
    candidate_weight: float = field(
        default=0.0,
        metadata=_meta(
            "a number from 0 (the new model takes all traffic) to 0.99 (A/B: the new model "
            "gets this share, the previous one the rest)",
            _number_in(0, 0.99),
        ),
    )
    poll_seconds: int = field(
        default=60, metadata=_meta("an integer from 5 to 3600", _int_in(5, 3600))
    )
    max_wait_minutes: int = field(
        default=60, metadata=_meta("an integer from 1 to 1440", _int_in(1, 1440))
    )


@dataclass(frozen=True)
class ObjectiveConfig:
    """The tuning job's objective: a metric of the training image, minimised or maximised."""

    metric: str = field(
        metadata=_meta(
            "a metric name of the training image", lambda v: isinstance(v, str) and bool(v)
        )
    )
    type: str = field(metadata=_meta("'Minimize' or 'Maximize'", _one_of("Minimize", "Maximize")))


@dataclass(frozen=True)
class TuningConfig:
    """Optional hyperparameter tuning path (``enabled``: taken by default; the input decides)."""

    enabled: bool = field(metadata=_meta("true or false", _is_bool))
    strategy: str = field(metadata=_meta("'Bayesian' or 'Random'", _one_of("Bayesian", "Random")))
    max_jobs: int = field(metadata=_meta("an integer from 1 to 500", _int_in(1, 500)))
    max_parallel_jobs: int = field(metadata=_meta("an integer from 1 to 100", _int_in(1, 100)))
    objective: ObjectiveConfig
    ranges: Mapping[str, Mapping[str, Any]] = field(
        metadata=_meta(
            'an object mapping hyperparameter names to {"type": "integer" or "continuous", '
            '"min": n, "max": n (min < max), "scaling": "Auto", "Linear", "Logarithmic" or '
            '"ReverseLogarithmic" (optional)} or {"type": "categorical", "values": [strings]}',
            _is_ranges,
        )
    )
    early_stopping: bool = field(default=False, metadata=_meta("true or false", _is_bool))


@dataclass(frozen=True)
class ScheduleConfig:
    """Scheduled retraining: an EventBridge Scheduler schedule that starts the workflow."""

    expression: str = field(
        metadata=_meta(
            "an EventBridge Scheduler expression such as 'rate(7 days)' or 'cron(0 3 ? * SUN *)'",
            _matches(SCHEDULE_EXPRESSION_PATTERN),
        )
    )
    enabled: bool = field(default=False, metadata=_meta("true or false", _is_bool))
    input: Mapping[str, Any] = field(
        default_factory=lambda: MappingProxyType({}),
        metadata=_meta("an object (the execution input)", lambda v: isinstance(v, dict)),
    )


@dataclass(frozen=True)
class AlarmsConfig:
    """Thresholds of the endpoint alarms (also the deploy stage's auto-rollback alarms)."""

    error_5xx_rate_percent: float = field(
        default=1.0, metadata=_meta("a number from 0.01 to 100", _number_in(0.01, 100))
    )
    error_4xx_rate_percent: float = field(
        default=10.0, metadata=_meta("a number from 0.01 to 100", _number_in(0.01, 100))
    )
    latency_p99_ms: int = field(
        default=1000, metadata=_meta("an integer from 1 to 3600000", _int_in(1, 3_600_000))
    )
    async_backlog: int = field(
        default=100, metadata=_meta("an integer from 1 to 1000000", _int_in(1, 1_000_000))
    )
    period_seconds: int = field(
        default=60,
        metadata=_meta(
            "60 or a multiple of 60 up to 86400",
            lambda v: _is_int(v) and 60 <= v <= 86400 and v % 60 == 0,
        ),
    )
    evaluation_periods: int = field(
        default=3, metadata=_meta("an integer from 1 to 100", _int_in(1, 100))
    )


@dataclass(frozen=True)
class EnvironmentConfig:
    """Everything that differs between environments, typed and validated."""

    name: str
    removal_policy: Literal["destroy", "retain"] = field(
        metadata=_meta("'destroy' or 'retain'", lambda v: v in ("destroy", "retain"))
    )
    notification_email: str | None = field(
        metadata=_meta("null or an e-mail address", _optional(_matches(EMAIL_PATTERN)))
    )
    dataset: DatasetConfig
    training: TrainingConfig
    transform: TransformConfig
    endpoint: EndpointConfig
    workflow: WorkflowConfig
    images: ImagesConfig = field(default_factory=ImagesConfig)
    deploy: DeployConfig | None = field(
        default=None, metadata=_section(DeployConfig, optional=True)
    )
    tuning: TuningConfig | None = field(
        default=None, metadata=_section(TuningConfig, optional=True)
    )
    schedule: ScheduleConfig | None = field(
        default=None, metadata=_section(ScheduleConfig, optional=True)
    )
    alarms: AlarmsConfig = field(default_factory=AlarmsConfig, metadata=_section(AlarmsConfig))
    account: str | None = field(
        default=None,
        metadata=_meta("null or a 12-digit AWS account ID", _optional(_matches(ACCOUNT_PATTERN))),
    )
    region: str | None = field(
        default=None,
        metadata=_meta(
            "null or an AWS region such as 'eu-west-1'", _optional(_matches(REGION_PATTERN))
        ),
    )

    @property
    def retain_data(self) -> bool:
        return self.removal_policy == "retain"

    @property
    def name_prefix(self) -> str:
        """Prefix of every SageMaker job and model name this environment creates."""
        return f"mlstack-{self.name}"

    @property
    def deploy_enabled(self) -> bool:
        return self.deploy is not None and self.deploy.enabled

    @property
    def deploy_endpoint_name(self) -> str:
        """The endpoint the workflow's deploy stage owns (the Serving stack's is name_prefix)."""
        return f"{self.name_prefix}-live"

    def metric_names(self) -> tuple[str, ...]:
        """Names of the training image's metric definitions (what a gate or tuner may read)."""
        definitions: Any = self.images.training_metric_definitions
        if definitions is None and self.images.training_image_uri is None:
            definitions = json.loads(DEFAULT_METRIC_DEFINITIONS.read_text(encoding="utf-8"))
        return tuple(d["Name"] for d in definitions or ())


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _describe(value: Any) -> str:
    return f"{json.dumps(value)} ({type(value).__name__})"


def _build(cls: type[Any], data: Any, path: str, env: str, extra: dict[str, Any]) -> Any:
    where = f"'{path}'" if path else "the top level"
    if not isinstance(data, dict):
        raise ConfigError(f"environment '{env}': {where} must be an object, got {_describe(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in extra}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"environment '{env}': unknown key '{path + '.' if path else ''}{unknown[0]}'; "
            f"expected only {sorted(fields)}"
        )
    values: dict[str, Any] = dict(extra)
    for name, f in fields.items():
        key = f"{path}.{name}" if path else name
        if name not in data:
            if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
                continue
            expected = f.metadata.get("expected", "an object")
            raise ConfigError(f"environment '{env}': missing key '{key}'; expected {expected}")
        value = data[name]
        section = f.metadata.get("section")
        if section is not None:
            if value is None and f.metadata["optional"]:
                values[name] = None
            elif f.metadata["many"]:
                if not isinstance(value, list) or not value:
                    raise ConfigError(
                        f"environment '{env}': key '{key}' is {_describe(value)}; "
                        f"expected {f.metadata['expected']}"
                    )
                values[name] = tuple(
                    _build(section, item, f"{key}[{i}]", env, {}) for i, item in enumerate(value)
                )
            else:
                values[name] = _build(section, value, key, env, {})
            continue
        if isinstance(f.type, str) and f.type.endswith("Config") and "|" not in f.type:
            values[name] = _build(_SECTIONS[f.type], value, key, env, {})
            continue
        if not f.metadata["check"](value):
            raise ConfigError(
                f"environment '{env}': key '{key}' is {_describe(value)}; "
                f"expected {f.metadata['expected']}"
            )
        if name == "hyperparameters":
            # SageMaker takes hyperparameters as strings; convert once, here.
            value = {k: v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}
        values[name] = _freeze(value)
    return cls(**values)


_SECTIONS: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        DatasetConfig,
        TrainingConfig,
        TransformConfig,
        EndpointConfig,
        ImagesConfig,
        WorkflowConfig,
        TrafficConfig,
        ObjectiveConfig,
    )
}


def _check_consistency(config: EnvironmentConfig) -> None:
    env = config.name
    if config.dataset.rows > config.dataset.max_rows:
        raise ConfigError(
            f"environment '{env}': key 'dataset.rows' is {config.dataset.rows}; expected at most "
            f"'dataset.max_rows' ({config.dataset.max_rows})"
        )
    if config.workflow.timeout_minutes * 60 <= config.training.max_runtime_seconds:
        raise ConfigError(
            f"environment '{env}': key 'workflow.timeout_minutes' is "
            f"{config.workflow.timeout_minutes}; expected more than "
            f"'training.max_runtime_seconds' ({config.training.max_runtime_seconds} s) so that "
            "the workflow outlives its training job"
        )


def _inconsistent(env: str, key: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(
        f"environment '{env}': key '{key}' is {_describe(value)}; expected {expected}"
    )


def _check_endpoint(env: str, endpoint: EndpointConfig) -> None:
    variants = endpoint.variants or ()
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise _inconsistent(env, "endpoint.variants", names, "variants with distinct names")
    if endpoint.serverless is not None:
        for key, value in (
            ("variants", names or None),
            ("autoscaling", endpoint.autoscaling),
            ("data_capture", endpoint.data_capture),
            ("async_inference", endpoint.async_inference),
        ):
            if value is not None:
                raise _inconsistent(
                    env,
                    f"endpoint.{key}",
                    value if isinstance(value, list) else dataclasses.asdict(value),
                    "null with 'endpoint.serverless' (a serverless endpoint has one variant, "
                    "no instances to scale, no data capture and no asynchronous inference)",
                )
    if endpoint.async_inference is not None and len(variants) > 1:
        raise _inconsistent(
            env, "endpoint.variants", names, "at most one variant with 'endpoint.async_inference'"
        )
    scaling = endpoint.autoscaling
    if scaling is not None and scaling.min_capacity > scaling.max_capacity:
        raise _inconsistent(
            env,
            "endpoint.autoscaling.min_capacity",
            scaling.min_capacity,
            f"at most 'endpoint.autoscaling.max_capacity' ({scaling.max_capacity})",
        )


def _check_deploy(env: str, deploy: DeployConfig, metrics: tuple[str, ...]) -> None:
    if deploy.metric not in metrics:
        raise _inconsistent(
            env,
            "deploy.metric",
            deploy.metric,
            f"one of the training image's metrics {list(metrics)}",
        )
    traffic = deploy.traffic
    if traffic.type == "all_at_once" and traffic.step_percent is not None:
        raise _inconsistent(
            env, "deploy.traffic.step_percent", traffic.step_percent, "null for 'all_at_once'"
        )
    low = 10 if traffic.type == "linear" else 1
    if traffic.type != "all_at_once" and not (
        traffic.step_percent is not None and low <= traffic.step_percent <= 50
    ):
        raise _inconsistent(
            env,
            "deploy.traffic.step_percent",
            traffic.step_percent,
            f"an integer from {low} to 50 for '{traffic.type}'",
        )


def _check_tuning(env: str, config: EnvironmentConfig, metrics: tuple[str, ...]) -> None:
    tuning = config.tuning
    assert tuning is not None
    if tuning.objective.metric not in metrics:
        raise _inconsistent(
            env,
            "tuning.objective.metric",
            tuning.objective.metric,
            f"one of the training image's metrics {list(metrics)}",
        )
    if tuning.max_parallel_jobs > tuning.max_jobs:
        raise _inconsistent(
            env,
            "tuning.max_parallel_jobs",
            tuning.max_parallel_jobs,
            f"at most 'tuning.max_jobs' ({tuning.max_jobs})",
        )
    static = sorted(set(tuning.ranges) & set(config.training.hyperparameters))
    if static:
        raise _inconsistent(
            env,
            "tuning.ranges",
            static,
            "only hyperparameters that 'training.hyperparameters' does not fix (SageMaker "
            "refuses a hyperparameter that is both static and tuned)",
        )


# Execution input keys a schedule may set (the workflow's defaults, plus its optional paths).
INPUT_KEYS = (
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


def input_keys(config: EnvironmentConfig) -> tuple[str, ...]:
    """The keys an execution input may override in this environment."""
    return (
        INPUT_KEYS
        + (TUNING_INPUT_KEYS if config.tuning is not None else ())
        + (DEPLOY_INPUT_KEYS if config.deploy_enabled else ())
    )


def _check_operations(config: EnvironmentConfig) -> None:
    env = config.name
    _check_endpoint(env, config.endpoint)
    metrics = config.metric_names()
    if config.deploy is not None:
        _check_deploy(env, config.deploy, metrics)
        if config.deploy_enabled:
            needed = config.training.max_runtime_seconds + config.deploy.max_wait_minutes * 60
            if config.workflow.timeout_minutes * 60 <= needed:
                raise _inconsistent(
                    env,
                    "workflow.timeout_minutes",
                    config.workflow.timeout_minutes,
                    f"more than 'training.max_runtime_seconds' + 'deploy.max_wait_minutes' "
                    f"({needed} s) so that the workflow outlives training and deployment",
                )
    if config.tuning is not None:
        _check_tuning(env, config, metrics)
    if config.schedule is not None:
        unknown = sorted(set(config.schedule.input) - set(input_keys(config)))
        if unknown:
            raise _inconsistent(
                env,
                "schedule.input",
                unknown,
                f"only execution input keys {list(input_keys(config))}",
            )


def thaw(value: Any) -> Any:
    """A frozen config value as plain JSON-ready dicts and lists."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


def parse_environment(name: str, data: Any) -> EnvironmentConfig:
    """Validate one environment's raw settings and return them as a frozen, typed object."""
    if not ENV_NAME_PATTERN.fullmatch(name):
        raise ConfigError(
            f"environment '{name}': the name must match {ENV_NAME_PATTERN.pattern} "
            "(lower-case letters and digits, at most 12 characters)"
        )
    config: EnvironmentConfig = _build(EnvironmentConfig, data, "", name, {"name": name})
    _check_consistency(config)
    _check_operations(config)
    return config


def load_environment(name: str, directory: Path = ENVIRONMENTS_DIR) -> EnvironmentConfig:
    """Read ``<directory>/<name>.json`` and validate it."""
    path = directory / f"{name}.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"environment '{name}': no configuration file {path}") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"environment '{name}': {path} is not valid JSON: {err}") from None
    return parse_environment(name, raw)


def load_environments(directory: Path = ENVIRONMENTS_DIR) -> dict[str, EnvironmentConfig]:
    """Every ``*.json`` in ``directory``, by environment name, in name order."""
    names = sorted(p.stem for p in directory.glob("*.json"))
    if not names:
        raise ConfigError(f"no environment files (*.json) in {directory}")
    return {name: load_environment(name, directory) for name in names}
