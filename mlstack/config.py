"""Environment configuration: the one place an environment's settings are read and validated.

Each environment is a JSON file ``environments/<name>.json``. :func:`load_environment` reads one
into a frozen :class:`EnvironmentConfig`. The sections are pydantic v2 dataclasses (strict types,
unknown keys forbidden; :mod:`mlstack.config_sections`) whose constraints come from
:mod:`mlstack.rules`; every missing, unknown
or ill-typed key is reported at once in one :class:`ConfigError`, each naming the environment,
the key, its value and what is expected. What is expected is worded from the rule itself (its
JSON Schema), so no check repeats its bounds in a text. Checks across keys are the named
``_check_*`` functions below. ``environments/schema.json`` is generated from these classes
(:func:`json_schema`); each environment file points at it with ``"$schema"`` so editors complete
and check keys. Stacks hand the typed values to constructs; constructs never read configuration.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass

from mlstack import portable_rules, rules
from mlstack.config_sections import (
    STRICT,
    AlarmsConfig,
    AutoscalingConfig,
    DatasetConfig,
    DeployConfig,
    EndpointConfig,
    ImagesConfig,
    MonitoringConfig,
    NetworkConfig,
    RegistryConfig,
    ScheduleConfig,
    TrainingConfig,
    TransformConfig,
    TuningConfig,
    WorkflowConfig,
)
from mlstack.rules import (
    INSTANCE_TYPE_PATTERN,
    LOG_RETENTION_DAYS,
    MAX_DATASET_ROWS,
    SERVERLESS_MEMORY_SIZES,
    one_of,
    text,
)

ENVIRONMENTS_DIR = Path(__file__).resolve().parents[1] / "environments"
SCHEMA_FILE = ENVIRONMENTS_DIR / "schema.json"
SCHEMA_REFERENCE = "./schema.json"  # what each environment file's "$schema" says
# Re-exported for readers of the config: each rule lives in mlstack.rules, each section's shape
# in mlstack.config_sections.
__all__ = [
    "INSTANCE_TYPE_PATTERN",
    "LOG_RETENTION_DAYS",
    "MAX_DATASET_ROWS",
    "SERVERLESS_MEMORY_SIZES",
    "AlarmsConfig",
    "AutoscalingConfig",
    "ConfigError",
    "EnvironmentConfig",
    "input_keys",
    "json_schema",
    "load_environment",
    "load_environments",
    "parse_environment",
    "thaw",
]

_STRICT = STRICT


class ConfigError(ValueError):
    """An environment's configuration is missing a key, has an unknown key or an ill-typed value."""


@dataclass(frozen=True, config=_STRICT)
class EnvironmentConfig:
    """Everything that differs between environments, typed and validated."""

    name: Annotated[str, Field(pattern=rules.ENV_NAME_PATTERN)]
    removal_policy: one_of("destroy", "retain")
    notification_email: text(rules.EMAIL_PATTERN, "an e-mail address") | None
    dataset: DatasetConfig
    training: TrainingConfig
    transform: TransformConfig
    endpoint: EndpointConfig
    workflow: WorkflowConfig
    images: ImagesConfig = dataclasses.field(default_factory=ImagesConfig)
    deploy: DeployConfig | None = None
    registry: RegistryConfig = dataclasses.field(default_factory=RegistryConfig)
    tuning: TuningConfig | None = None
    schedule: ScheduleConfig | None = None
    alarms: AlarmsConfig = dataclasses.field(default_factory=AlarmsConfig)
    network: NetworkConfig = dataclasses.field(default_factory=NetworkConfig)
    monitoring: MonitoringConfig = dataclasses.field(default_factory=MonitoringConfig)
    account: text(rules.ACCOUNT_PATTERN, "a 12-digit AWS account ID") | None = None
    region: text(rules.REGION_PATTERN, "an AWS region such as 'eu-west-1'") | None = None

    @property
    def retain_data(self) -> bool:
        return self.removal_policy == "retain"

    @property
    def production(self) -> bool:
        """The environment's declared kind: one that retains its data is a production one, held
        to PRODUCTION_REQUIREMENTS; only the others carry non-production acknowledgements."""
        return self.retain_data

    @property
    def name_prefix(self) -> str:
        """Prefix of every SageMaker job and model name this environment creates."""
        return f"mlstack-{self.name}"

    @property
    def monitoring_schedule_name(self) -> str:
        """The Serving endpoint's Model Monitor schedule (docs/monitoring.md)."""
        return f"{self.name_prefix}-data-quality"

    @property
    def monitor_namespace(self) -> str:
        """The CloudWatch namespace of the drift monitor's metrics (docs/monitoring.md)."""
        return f"mlstack/{self.name}"

    @property
    def deploy_enabled(self) -> bool:
        return self.deploy is not None and self.deploy.enabled

    @property
    def deploy_endpoint_name(self) -> str:
        """The endpoint the workflow's deploy stage owns (the Serving stack's is name_prefix)."""
        return f"{self.name_prefix}-live"

    def problem_type(self) -> str | None:
        """What the environment trains for, when synth can tell: the problem type of the
        objective ``training.hyperparameters`` names (the training image's contract), else None
        (a prepared dataset's problem type may be known only when Prepare data runs). For a
        table of the user's (``dataset.source``): its ``problem_type`` unless ``auto``, else the
        objective its own hyperparameters name (the environment's is not passed to a table's
        runs, docs/your-data.md)."""
        source = self.dataset.source
        if source is not None and source.problem_type != "auto":
            return str(source.problem_type)
        hyperparameters = (
            self.training.hyperparameters if source is None else source.hyperparameters
        )
        objective = hyperparameters.get("objective")
        return None if objective is None else rules.OBJECTIVE_PROBLEM_TYPES.get(objective)

    def gate(self) -> tuple[str, str] | None:
        """The quality gate's metric and comparison: ``deploy``'s own, else the default of the
        problem type (``rules.GATE_DEFAULTS``); None without a deploy stage or when neither is
        known (``_check_deploy`` refuses that)."""
        if self.deploy is None:
            return None
        default = rules.GATE_DEFAULTS.get(self.problem_type() or "")
        metric = self.deploy.metric or (default[0] if default else None)
        comparison = self.deploy.comparison
        if comparison is None and default is not None and metric == default[0]:
            comparison = default[1]
        if metric is None or comparison is None:
            return None
        return metric, comparison

    def quality_metric(self) -> str | None:
        """The quality metric the drift monitor watches: ``monitoring.quality_metric``, else the
        problem type's default (``rules.QUALITY_METRICS``); None when neither is known."""
        defaults = rules.QUALITY_METRICS.get(self.problem_type() or "")
        return self.monitoring.quality_metric or (defaults[0] if defaults else None)

    def metric_names(self) -> tuple[str, ...]:
        """Names of the training image's metric definitions (what a gate or tuner may read)."""
        definitions: Any = self.images.training_metric_definitions
        if definitions is None and self.images.training_image_uri is None:
            definitions = rules.training_image_metric_definitions()
        return tuple(d["Name"] for d in definitions or ())


# --- errors in words ---------------------------------------------------------------------------


_describe = portable_rules.describe


@cache
def _adapter() -> TypeAdapter[EnvironmentConfig]:
    return TypeAdapter(EnvironmentConfig)


@cache
def _full_schema() -> dict[str, Any]:
    schema: dict[str, Any] = _adapter().json_schema()
    return schema


def _resolve(node: dict[str, Any], root: dict[str, Any] | None = None) -> dict[str, Any]:
    return dict(portable_rules.resolve(node, root or _full_schema()))


def expected(node: dict[str, Any], root: dict[str, Any] | None = None) -> str:
    """What a schema node accepts, in words (the end of a config error); ``root`` resolves
    ``$ref`` (default: the environment's schema). The wording is the validation Lambda's too
    (:func:`mlstack.portable_rules.expected`)."""
    return portable_rules.expected(node, root or _full_schema())


def _field_schema(path: list[str | int]) -> tuple[dict[str, Any] | None, int]:
    """The schema of the key at ``path`` and how much of the path names config keys (the rest,
    inside a mapping such as ``hyperparameters``, belongs to one value)."""
    node: dict[str, Any] = _full_schema()
    depth = 0
    for part in path:
        node = _resolve(node)
        options = [_resolve(n) for n in node.get("anyOf", [node])]
        section = next((o for o in options if "properties" in o or o.get("type") == "array"), None)
        if section is None:
            break
        if isinstance(part, int) and section.get("type") == "array":
            node = section["items"]
        elif isinstance(part, str) and part in section.get("properties", {}):
            node = section["properties"][part]
        else:
            break
        depth += 1
    return (node if depth else None), depth


def _path_text(path: list[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _value_at(data: Any, path: list[str | int]) -> Any:
    for part in path:
        data = data[part]
    return data


def _key_path(error: Mapping[str, Any]) -> list[str | int]:
    # Union branches and validator wrappers add segments that name no key; so does a section's
    # class name (``ExistingVpcConfig``): keys are lower case.
    return [
        p
        for p in error["loc"]
        if isinstance(p, int) or ("[" not in p and p not in _BRANCHES and not p[:1].isupper())
    ]


def _problem(error: Mapping[str, Any], data: Any) -> str:
    loc = _key_path(error)
    kind = error["type"]
    if kind == "none_required":
        return ""  # the null branch of an optional key: the other branch says what is wrong
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        parent, _ = _field_schema(loc[:-1])
        parent = _resolve(parent or _full_schema())
        # A key that is null, a literal or a section: the section's keys.
        sections = [_resolve(o) for o in parent.get("anyOf", [])]
        parent = next((o for o in sections if "properties" in o), parent)
        allowed = sorted(parent.get("properties", {}))
        allowed = [k for k in allowed if k != "name"] if len(loc) == 1 else allowed
        return f"unknown key '{_path_text(loc)}'; expected only {allowed}"
    node, depth = _field_schema(loc)
    key = loc[:depth]
    if kind == "missing":
        return f"missing key '{_path_text(key)}'; expected {expected(node or {})}"
    value = _value_at(data, key)
    options = [o for o in _resolve(node or {}).get("anyOf", []) if o != {"type": "null"}]
    if kind in ("dataclass_type", "dataclass_exact_type") and len(options) > 1:
        return ""  # one branch of a key that is not only a section: the key's error says it all
    if kind in ("dataclass_type", "dataclass_exact_type") and depth == len(loc):
        where = f"'{_path_text(key)}'" if key else "the top level"
        return f"{where} must be an object, got {_describe(value)}"
    words = expected(node or {}) + portable_rules.did_you_mean(value, node or {}, _full_schema())
    return f"key '{_path_text(key)}' is {_describe(value)}; expected {words}"


_BRANCHES = {"int", "float", "str", "bool", "none", "tuple", "list", "dict"}
_WRONG_BRANCH = {"literal_error", "dataclass_type", "dataclass_exact_type"}


def _field_problems(name: str, data: Any) -> tuple[EnvironmentConfig | None, list[str]]:
    if not isinstance(data, dict):
        return None, [f"the top level must be an object, got {_describe(data)}"]
    if "name" in data:
        return None, ["unknown key 'name'; the environment's name is its file's name"]
    data = {k: v for k, v in data.items() if k != "$schema"}
    try:
        return _adapter().validate_json(json.dumps({**data, "name": name})), []
    except ValidationError as err:
        problems: list[str] = []
        errors = err.errors()
        for error in errors:
            inner = [e for e in errors if e["loc"][: len(error["loc"])] == error["loc"] != e["loc"]]
            if error["type"] == "too_short" and inner:
                continue  # a list counted after its items failed: the items say why
            here = _key_path(error)
            deeper = [e for e in errors if len(_key_path(e)) > len(here)]
            if error["type"] in _WRONG_BRANCH and any(
                _key_path(e)[: len(here)] == here for e in deeper
            ):
                continue  # a union's other branch: the section's own errors say what is wrong
            text = _problem(error, data)
            if text and text not in problems:
                problems.append(text)
        return None, problems


# --- checks across keys ------------------------------------------------------------------------


# A production environment (removal_policy "retain") runs isolated and keeps its logs a year:
# AWS Control Tower's CT.CLOUDWATCH.PR.2 asks for a year's retention (docs/security.md).
PRODUCTION_LOG_RETENTION_DAYS = 365


def _check_production(config: EnvironmentConfig) -> Iterator[str]:
    if not config.production:
        return
    kind = "in a production environment (removal_policy 'retain')"
    if not config.network.isolated:
        yield (
            f"key 'network.vpc' is null {kind}; expected \"create\" or an existing VPC's IDs: "
            "production runs its jobs, models and functions isolated (docs/security.md)"
        )
    if config.workflow.log_retention_days < PRODUCTION_LOG_RETENTION_DAYS:
        yield (
            f"key 'workflow.log_retention_days' is {config.workflow.log_retention_days} {kind}; "
            f"expected at least {PRODUCTION_LOG_RETENTION_DAYS} (AWS Control Tower "
            "CT.CLOUDWATCH.PR.2)"
        )


def _check_consistency(config: EnvironmentConfig) -> Iterator[str]:
    yield from _check_production(config)
    if config.dataset.rows > config.dataset.max_rows:
        yield (
            f"key 'dataset.rows' is {config.dataset.rows}; expected at most "
            f"'dataset.max_rows' ({config.dataset.max_rows})"
        )
    if config.workflow.timeout_minutes * 60 <= config.training.max_runtime_seconds:
        yield (
            f"key 'workflow.timeout_minutes' is "
            f"{config.workflow.timeout_minutes}; expected more than "
            f"'training.max_runtime_seconds' ({config.training.max_runtime_seconds} s) so that "
            "the workflow outlives its training job"
        )
    yield from _check_seeding(config)
    yield from _check_source(config)
    spot = config.training.spot
    if spot is not None and spot.enabled:
        if spot.max_wait_seconds < config.training.max_runtime_seconds:
            yield (
                f"key 'training.spot.max_wait_seconds' is {spot.max_wait_seconds}; expected at "
                f"least 'training.max_runtime_seconds' ({config.training.max_runtime_seconds}): "
                "SageMaker's MaxWaitTimeInSeconds covers the wait for spot capacity and the run"
            )
        if config.workflow.timeout_minutes * 60 <= spot.max_wait_seconds:
            yield (
                f"key 'workflow.timeout_minutes' is {config.workflow.timeout_minutes}; expected "
                f"more than 'training.spot.max_wait_seconds' ({spot.max_wait_seconds} s) so that "
                "the workflow outlives its spot training job"
            )


def _check_seeding(config: EnvironmentConfig) -> Iterator[str]:
    dataset = config.dataset
    beyond = rules.instances_beyond_shards(
        dataset.rows, dataset.rows_per_shard, config.training.instance_count
    )
    if beyond:
        yield (
            f"key 'training.instance_count' is {config.training.instance_count} with "
            f"'dataset.rows' {dataset.rows} and 'dataset.rows_per_shard' "
            f"{dataset.rows_per_shard}; expected {beyond}"
        )
    most = rules.MAX_SHARDS * dataset.rows_per_shard
    if dataset.max_rows > most:
        yield (
            f"key 'dataset.max_rows' is {dataset.max_rows}; expected at most {most}, "
            f"{rules.MAX_SHARDS} shards of 'dataset.rows_per_shard' ({dataset.rows_per_shard}): "
            "the seeding Map lists its shards with States.ArrayRange, which makes at most 1,000 "
            "items"
        )
    reserved = config.workflow.lambda_reserved_concurrency
    if reserved is not None and dataset.seeding_concurrency > reserved:
        yield (
            f"key 'dataset.seeding_concurrency' is {dataset.seeding_concurrency}; expected at "
            f"most 'workflow.lambda_reserved_concurrency' ({reserved}): the seeding function "
            "runs no more invocations at once, the rest would be throttled"
        )


def _check_source(config: EnvironmentConfig) -> Iterator[str]:
    """A table source's split leaves rows to train on."""
    source: Any = config.dataset.source
    if source is None:
        return
    left = rules.fractions_leave_no_training(source.validation_fraction, source.test_fraction)
    if left:
        yield (
            f"key 'dataset.source.test_fraction' is {source.test_fraction} with "
            f"'dataset.source.validation_fraction' {source.validation_fraction}; expected {left}"
        )


def _inconsistent(env: str, key: str, value: Any, expected: str) -> str:
    return f"key '{key}' is {_describe(value)}; expected {expected}"


def _check_endpoint_model(env: str, endpoint: EndpointConfig) -> Iterator[str]:
    """One way to name the served model: a registry version or an artifact, never both; the
    variants name theirs the same way as the endpoint."""
    if endpoint.model_artifact is not None and endpoint.model_package_version is not None:
        yield _inconsistent(
            env,
            "endpoint.model_artifact",
            endpoint.model_artifact,
            "null with 'endpoint.model_package_version' "
            f"({endpoint.model_package_version}): name the served model by one of the two keys",
        )
    for index, variant in enumerate(endpoint.variants or ()):
        for key, own, endpoint_key in (
            ("model_artifact", variant.model_artifact, endpoint.model_artifact),
            (
                "model_package_version",
                variant.model_package_version,
                endpoint.model_package_version,
            ),
        ):
            if own is not None and endpoint_key is None:
                yield _inconsistent(
                    env,
                    f"endpoint.variants[{index}].{key}",
                    own,
                    f"null unless 'endpoint.{key}' is set (a variant names its model the way "
                    "the endpoint does)",
                )


def _check_endpoint(env: str, endpoint: EndpointConfig) -> Iterator[str]:
    yield from _check_endpoint_model(env, endpoint)
    variants = endpoint.variants or ()
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        yield _inconsistent(env, "endpoint.variants", names, "variants with distinct names")
    if endpoint.serverless is not None:
        for key, value in (
            ("variants", names or None),
            ("autoscaling", endpoint.autoscaling),
            ("data_capture", endpoint.data_capture),
            ("async_inference", endpoint.async_inference),
        ):
            if value is not None:
                yield _inconsistent(
                    env,
                    f"endpoint.{key}",
                    value if isinstance(value, list) else dataclasses.asdict(value),
                    "null with 'endpoint.serverless' (a serverless endpoint has one variant, "
                    "no instances to scale, no data capture and no asynchronous inference)",
                )
    if endpoint.async_inference is not None and len(variants) > 1:
        yield _inconsistent(
            env, "endpoint.variants", names, "at most one variant with 'endpoint.async_inference'"
        )
    scaling = endpoint.autoscaling
    if scaling is not None and scaling.min_capacity > scaling.max_capacity:
        yield _inconsistent(
            env,
            "endpoint.autoscaling.min_capacity",
            scaling.min_capacity,
            f"at most 'endpoint.autoscaling.max_capacity' ({scaling.max_capacity})",
        )


def _check_deploy(
    env: str, deploy: DeployConfig, metrics: tuple[str, ...], problem_type: str | None
) -> Iterator[str]:
    yield from _check_gate(env, deploy, metrics, problem_type)
    traffic = deploy.traffic
    step = rules.traffic_step_problem(traffic.type, traffic.step_percent)
    if step:
        yield _inconsistent(env, "deploy.traffic.step_percent", traffic.step_percent, step)


def _check_gate(
    env: str, deploy: DeployConfig, metrics: tuple[str, ...], problem_type: str | None
) -> Iterator[str]:
    """A gate metric the image or the evaluation reports (for the problem type, when synth can
    tell it), with its comparison; or none, and a problem type whose default it takes."""
    if deploy.metric is None:
        if problem_type is None:
            yield _inconsistent(
                env,
                "deploy.metric",
                None,
                "a metric, since the problem type is not known at synth time (no objective in "
                "'training.hyperparameters'): such as "
                + ", ".join(f"'{m}' ({k})" for k, (m, _) in rules.GATE_DEFAULTS.items()),
            )
        return
    default = rules.GATE_DEFAULTS.get(problem_type or "")
    if deploy.comparison is None and (default is None or deploy.metric != default[0]):
        yield _inconsistent(
            env,
            "deploy.comparison",
            None,
            f"how 'deploy.metric' ({deploy.metric}) must compare with the threshold: "
            f"{rules.COMPARISON.words()}",
        )
    evaluation = rules.evaluation_gate_metrics()
    if deploy.metric not in metrics and deploy.metric not in evaluation:
        yield _inconsistent(
            env,
            "deploy.metric",
            deploy.metric,
            f"one of the training image's metrics {list(metrics)} or of the evaluation's "
            f"{evaluation}",
        )
    elif problem_type is not None:
        unreported = rules.gate_metric_not_reported(deploy.metric, problem_type)
        if unreported:
            yield _inconsistent(env, "deploy.metric", deploy.metric, unreported)


def _check_tuning(env: str, config: EnvironmentConfig, metrics: tuple[str, ...]) -> Iterator[str]:
    tuning = config.tuning
    assert tuning is not None
    objective = rules.objective_not_a_metric(tuning.objective.metric, metrics)
    if objective:
        yield _inconsistent(env, "tuning.objective.metric", tuning.objective.metric, objective)
    parallel = rules.parallel_beyond_jobs(
        tuning.max_parallel_jobs, tuning.max_jobs, "'tuning.max_jobs'"
    )
    if parallel:
        yield _inconsistent(env, "tuning.max_parallel_jobs", tuning.max_parallel_jobs, parallel)
    both = rules.tuned_and_fixed(
        list(tuning.ranges), list(config.training.hyperparameters), "'training.hyperparameters'"
    )
    if both:
        yield _inconsistent(env, "tuning.ranges", sorted(tuning.ranges), both)


def _check_operations(config: EnvironmentConfig) -> Iterator[str]:
    env = config.name
    yield from _check_endpoint(env, config.endpoint)
    metrics = config.metric_names()
    if config.deploy is not None:
        yield from _check_deploy(env, config.deploy, metrics, config.problem_type())
        if config.deploy_enabled:
            needed = config.training.max_runtime_seconds + config.deploy.max_wait_minutes * 60
            if config.workflow.timeout_minutes * 60 <= needed:
                yield _inconsistent(
                    env,
                    "workflow.timeout_minutes",
                    config.workflow.timeout_minutes,
                    f"more than 'training.max_runtime_seconds' + 'deploy.max_wait_minutes' "
                    f"({needed} s) so that the workflow outlives training and deployment",
                )
    if config.tuning is not None:
        yield from _check_tuning(env, config, metrics)
    if config.schedule is not None:
        yield from _check_schedule_input(env, config)
    yield from _check_monitoring(config)


def _check_monitoring(config: EnvironmentConfig) -> Iterator[str]:
    """A quality metric the monitor publishes for the problem type, a threshold it can cross,
    and retraining on drift only where the endpoint captures the data the monitor reads."""
    env, monitoring = config.name, config.monitoring
    wrong = rules.quality_metric_problem(monitoring.quality_metric, config.problem_type())
    if wrong:
        yield _inconsistent(env, "monitoring.quality_metric", monitoring.quality_metric, wrong)
    metric = config.quality_metric()
    if monitoring.quality_threshold is not None and metric is None:
        yield _inconsistent(
            env,
            "monitoring.quality_metric",
            None,
            "a metric with 'monitoring.quality_threshold', since the problem type is not known "
            f"at synth time: one of {list(rules.QUALITY_METRIC_NAMES)}",
        )
    unreachable = metric and rules.quality_threshold_problem(metric, monitoring.quality_threshold)
    if unreachable:
        yield _inconsistent(
            env, "monitoring.quality_threshold", monitoring.quality_threshold, unreachable
        )
    if monitoring.retrain_on_drift and config.endpoint.data_capture is None:
        yield _inconsistent(
            env,
            "monitoring.retrain_on_drift",
            True,
            "false without 'endpoint.data_capture' (the drift monitor reads the captured data)",
        )


def _check_schedule_input(env: str, config: EnvironmentConfig) -> Iterator[str]:
    """The schedule's input against the execution input the workflow's first state accepts
    (``mlstack.rules.execution_input_model``), so a bad one fails synth, not every run."""
    assert config.schedule is not None
    given = thaw(config.schedule.input)
    unknown = sorted(set(given) - set(input_keys(config)))
    if unknown:
        yield _inconsistent(
            env, "schedule.input", unknown, f"only execution input keys {list(input_keys(config))}"
        )
        return
    model = _input_model(
        config.dataset.max_rows,
        (
            rules.training_image_hyperparameters()
            if config.images.training_image_uri is None
            else None
        ),
        config.metric_names(),
        config.tuning is not None,
        config.deploy_enabled,
    )
    try:
        model.model_validate_json(json.dumps(given))
    except ValidationError as err:
        # The input's descriptions say what a key sets; the expectation comes from its rule.
        schema = rules.execution_input_schema(model)
        for error in err.errors():
            key = str(error["loc"][0])
            yield _inconsistent(
                env,
                f"schedule.input.{key}",
                given[key],
                portable_rules.expected(schema["properties"][key], schema, descriptions=False),
            )


@cache
def _input_model(
    max_rows: int,
    hyperparameter_names: tuple[str, ...] | None,
    metric_names: tuple[str, ...],
    tuning: bool,
    deploy: bool,
) -> type[BaseModel]:
    """The execution input model for these settings, built once (pydantic builds a model class
    in milliseconds; every environment check would otherwise pay for it)."""
    return rules.execution_input_model(
        None,
        max_rows=max_rows,
        hyperparameter_names=hyperparameter_names,
        metric_names=metric_names,
        tuning=tuning,
        deploy=deploy,
    )


def input_keys(config: EnvironmentConfig) -> tuple[str, ...]:
    """The keys an execution input may override in this environment."""
    return rules.input_keys(tuning=config.tuning is not None, deploy=config.deploy_enabled)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of an environment file (``environments/schema.json``)."""
    schema = json.loads(json.dumps(_full_schema()))
    schema["properties"].pop("name")
    schema["required"].remove("name")
    schema["properties"] = {
        "$schema": {"type": "string", "description": "this schema (editors read it)"},
        **schema["properties"],
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "mlstack environment",
        **schema,
    }


def thaw(value: Any) -> Any:
    """A frozen config value as plain JSON-ready dicts and lists."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


def parse_environment(name: str, data: Any) -> EnvironmentConfig:
    """Validate one environment's raw settings and return them as a frozen, typed object.

    Every problem is reported at once: all those of single keys, else all of the checks across
    keys (they need well-typed keys to run)."""
    if not rules.matches(rules.ENV_NAME_PATTERN, name):
        raise ConfigError(
            f"environment '{name}': the name must match {rules.ENV_NAME_PATTERN} "
            "(lower-case letters and digits, at most 12 characters)"
        )
    config, problems = _field_problems(name, data)
    if config is not None:
        problems = list(dict.fromkeys([*_check_consistency(config), *_check_operations(config)]))
    if problems:
        raise ConfigError("\n".join(f"environment '{name}': {p}" for p in problems))
    assert config is not None
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
    """Every environment file in ``directory`` (``*.json`` but the schema), by name, in order."""
    names = sorted(p.stem for p in directory.glob("*.json") if p.name != SCHEMA_FILE.name)
    if not names:
        raise ConfigError(f"no environment files (*.json) in {directory}")
    return {name: load_environment(name, directory) for name in names}


if __name__ == "__main__":
    SCHEMA_FILE.write_text(json.dumps(json_schema(), indent=2) + "\n", encoding="utf-8")
    print(f"wrote {SCHEMA_FILE}")
