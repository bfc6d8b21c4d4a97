"""Optional stages of the training workflow: hyperparameter tuning, registration, deployment and
the data-quality baseline."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_stepfunctions as sfn

from mlstack import rules
from mlstack.constructs.model_registry import ModelRegistry
from mlstack.constructs.monitoring import AlarmThresholds
from mlstack.rules import INSTANCE_TYPE_PATTERN, TRAFFIC_TYPES, Bound, Comparison, Vocabulary

_INSTANCE_TYPE = re.compile(INSTANCE_TYPE_PATTERN)
# SageMaker bounds MaximumExecutionTimeoutInSeconds of a blue/green update to 600..14400.
MIN_BLUE_GREEN_TIMEOUT, MAX_BLUE_GREEN_TIMEOUT = 600, 14400
ONE_MINUTE = Duration.minutes(1)
FIVE_MINUTES = Duration.minutes(5)
ONE_HOUR = Duration.hours(1)


def path_condition(comparison: Comparison) -> Callable[[str, str], sfn.Condition]:
    """The CDK Choice condition that renders ``comparison``'s Step Functions operator between a
    variable and a path (``NumericLessThanEqualsPath``: ``number_less_than_equals_json_path``)."""
    words = re.findall(
        "[A-Z][a-z]+", comparison.condition.removeprefix("Numeric").removesuffix("Path")
    )
    method: Callable[[str, str], sfn.Condition] = getattr(
        sfn.Condition, "number_" + "_".join(w.lower() for w in words) + "_json_path"
    )
    return method


def _check(owner: str, prop: str, value: Any, rule: Bound | Vocabulary) -> None:
    """Raise the ValueError naming ``owner``'s ``prop``, its value and what ``rule`` accepts."""
    problem = rule.problem(value)
    if problem:
        raise ValueError(f"{owner} {prop}={value!r}: expected {problem}")


@dataclass(frozen=True)
class TrafficShift:
    """How an endpoint update moves traffic to the new (green) fleet.

    ``type``: ``all_at_once``, ``canary`` (``step_percent`` of capacity first, 1..50) or
    ``linear`` (steps of ``step_percent``, 10..50); ``wait`` between steps (the baking period),
    ``termination_wait`` before the old fleet is removed.
    """

    type: str = "all_at_once"
    step_percent: int | None = None
    wait: Duration = FIVE_MINUTES
    termination_wait: Duration = FIVE_MINUTES

    def __post_init__(self) -> None:
        _check("TrafficShift", "type", self.type, rules.TRAFFIC_TYPE)
        step = rules.traffic_step_problem(self.type, self.step_percent)
        if step:
            raise ValueError(f"TrafficShift step_percent={self.step_percent}: expected {step}")
        for name in ("wait", "termination_wait"):
            if not 0 <= getattr(self, name).to_seconds() <= 3600:
                raise ValueError(f"TrafficShift {name}: expected 0 to 3600 seconds")

    def routing(self) -> dict[str, Any]:
        """SageMaker's ``TrafficRoutingConfiguration``."""
        routing: dict[str, Any] = {
            "Type": TRAFFIC_TYPES[self.type],
            "WaitIntervalInSeconds": int(self.wait.to_seconds()),
        }
        size = {"Type": "CAPACITY_PERCENT", "Value": self.step_percent}
        if self.type == "canary":
            routing["CanarySize"] = size
        elif self.type == "linear":
            routing["LinearStepSize"] = size
        return routing


@dataclass(frozen=True)
class DeployStage:
    """The deploy stage: a quality gate on ``metric`` (a metric definition of the training image,
    read from the training job's final metrics, or ``evaluation:<name>``, a metric of the
    evaluation job such as ``evaluation:auc``) against ``threshold`` by ``comparison``, then a
    new endpoint configuration and the endpoint created, or updated blue/green with ``traffic``
    and auto-rollback on the 5xx and latency alarms of ``alarms``.

    ``candidate_weight`` 0: the new model takes all traffic (variant ``Live``); between 0 and 1:
    A/B, the new model is variant ``Candidate`` with this share and the previously deployed model
    stays as ``Live`` with the rest. The workflow polls the endpoint every ``poll_interval`` for
    at most ``max_wait``. ``endpoint_name`` defaults to ``<name_prefix>-live``.

    ``metric`` gates runs on the generated dataset. A run on a table (Prepare data's) is gated
    by ``table_gate``, an evaluation metric of it, or when None by its problem type's default,
    chosen at run time (``mlstack.rules.TABLE_GATE_DEFAULTS``: better than the trivial model).
    """

    metric: str
    threshold: float
    comparison: str = "less_than_or_equal"
    instance_type: str = "ml.m5.large"
    instance_count: int = 1
    candidate_weight: float = 0.0
    traffic: TrafficShift = field(default_factory=TrafficShift)
    poll_interval: Duration = ONE_MINUTE
    max_wait: Duration = ONE_HOUR
    alarms: AlarmThresholds = field(default_factory=AlarmThresholds)
    endpoint_name: str | None = None
    table_gate: rules.TableGate | None = None

    def __post_init__(self) -> None:
        _check("DeployStage", "comparison", self.comparison, rules.COMPARISON)
        gate = self.table_gate
        if gate is not None and gate.metric not in rules.evaluation_gate_metrics():
            raise ValueError(
                f"DeployStage table_gate metric={gate.metric!r}: expected one of the "
                f"evaluation's {rules.evaluation_gate_metrics()}"
            )
        if gate is not None:
            _check("DeployStage", "table_gate comparison", gate.comparison, rules.COMPARISON)
        if not _INSTANCE_TYPE.fullmatch(self.instance_type):
            raise ValueError(
                f"DeployStage instance_type={self.instance_type!r}: expected an ml.* instance type"
            )
        _check("DeployStage", "instance_count", self.instance_count, rules.INSTANCE_COUNT)
        _check("DeployStage", "candidate_weight", self.candidate_weight, rules.CANDIDATE_WEIGHT)
        if self.poll_interval.to_seconds() < 5:
            raise ValueError("DeployStage poll_interval: expected at least 5 seconds")
        if self.max_wait.to_seconds() < self.poll_interval.to_seconds():
            raise ValueError("DeployStage max_wait: expected at least one poll_interval")

    @property
    def ab_test(self) -> bool:
        return self.candidate_weight > 0

    @property
    def variant_names(self) -> tuple[str, ...]:
        return ("Live", "Candidate") if self.ab_test else ("Live",)

    @property
    def max_checks(self) -> int:
        """How many times the wait loop describes the endpoint before it gives up."""
        return math.ceil(self.max_wait.to_seconds() / self.poll_interval.to_seconds())

    @property
    def blue_green_timeout_seconds(self) -> int:
        return int(
            min(MAX_BLUE_GREEN_TIMEOUT, max(MIN_BLUE_GREEN_TIMEOUT, self.max_wait.to_seconds()))
        )


@dataclass(frozen=True)
class ModelRegistration:
    """Register model: each run that passes the quality gate (or, without a deploy stage, each
    run) adds a version to ``registry`` with ``approval_status`` (``Approved`` releases it at
    once, ``PendingManualApproval`` waits for a person). ``realtime_instance_types`` are the
    instance types the version may be deployed to (its
    ``SupportedRealtimeInferenceInstanceTypes``)."""

    registry: ModelRegistry
    approval_status: str = "PendingManualApproval"
    realtime_instance_types: tuple[str, ...] = ("ml.m5.large",)

    def __post_init__(self) -> None:
        _check("ModelRegistration", "approval_status", self.approval_status, rules.APPROVAL_STATUS)
        bad = [t for t in self.realtime_instance_types if not _INSTANCE_TYPE.fullmatch(t)]
        if not self.realtime_instance_types or bad:
            raise ValueError(
                f"ModelRegistration realtime_instance_types={list(self.realtime_instance_types)}: "
                "expected at least one ml.* instance type"
            )


@dataclass(frozen=True)
class SpotTraining:
    """Managed spot training for Train model: ``EnableManagedSpotTraining``, at most
    ``max_wait`` (``MaxWaitTimeInSeconds``: waiting for spot capacity plus running; at least the
    job's ``MaxRuntimeInSeconds``) and a ``CheckpointConfig`` under the run's
    ``<checkpoints>/<run_id>/`` prefix, from which SageMaker resumes an interrupted job."""

    max_wait: Duration


@dataclass(frozen=True)
class HyperparameterTuning:
    """The optional tuning path: a SageMaker tuning job over ``ranges`` optimising
    ``objective_metric`` (a metric definition of the training image), whose best training job's
    model then flows into Save model.

    ``ranges`` maps hyperparameter names to ``{"type": "integer"|"continuous", "min", "max",
    "scaling"}`` or ``{"type": "categorical", "values": [...]}``. ``enabled`` is the default of the
    execution input key ``tune``; strategy, limits, objective and ranges are defaults of
    ``tuning_*`` input keys.
    """

    objective_metric: str
    ranges: Mapping[str, Mapping[str, Any]]
    objective_type: str = "Minimize"
    strategy: str = "Bayesian"
    max_jobs: int = 10
    max_parallel_jobs: int = 2
    enabled: bool = False
    early_stopping: bool = False

    def __post_init__(self) -> None:
        owner = "HyperparameterTuning"
        _check(owner, "objective_type", self.objective_type, rules.OBJECTIVE_TYPE)
        _check(owner, "strategy", self.strategy, rules.TUNING_STRATEGY)
        _check(owner, "max_jobs", self.max_jobs, rules.TUNING_JOBS)
        _check(owner, "max_parallel_jobs", self.max_parallel_jobs, rules.PARALLEL_TUNING_JOBS)
        parallel = rules.parallel_beyond_jobs(self.max_parallel_jobs, self.max_jobs)
        if parallel:
            raise ValueError(
                f"{owner} max_parallel_jobs={self.max_parallel_jobs}: expected {parallel}"
            )
        if not self.ranges:
            raise ValueError("HyperparameterTuning ranges={}: expected at least one range")
        self.parameter_ranges()  # validates each range

    def parameter_ranges(self) -> dict[str, list[dict[str, Any]]]:
        """SageMaker's ``ParameterRanges``."""
        ranges: dict[str, list[dict[str, Any]]] = {
            "IntegerParameterRanges": [],
            "ContinuousParameterRanges": [],
            "CategoricalParameterRanges": [],
        }
        for name, spec in self.ranges.items():
            kind = spec.get("type")
            if kind == "categorical" and spec.get("values"):
                ranges["CategoricalParameterRanges"].append(
                    {"Name": name, "Values": [str(v) for v in spec["values"]]}
                )
            elif kind in ("integer", "continuous") and spec.get("min", 0) < spec.get("max", 0):
                scaling = spec.get("scaling", "Auto")
                _check(
                    f"HyperparameterTuning ranges[{name!r}]", "scaling", scaling, rules.SCALING_TYPE
                )
                ranges[f"{kind.capitalize()}ParameterRanges"].append(
                    {
                        "Name": name,
                        "MinValue": str(spec["min"]),
                        "MaxValue": str(spec["max"]),
                        "ScalingType": scaling,
                    }
                )
            else:
                raise ValueError(
                    f"HyperparameterTuning ranges[{name!r}]={dict(spec)!r}: expected "
                    '{"type": "integer"|"continuous", "min": n, "max": n > min} or '
                    '{"type": "categorical", "values": [...]}'
                )
        return ranges

    def as_state_input(self) -> dict[str, Any]:
        """The defaults the execution input may override, key by key."""
        return {
            "tune": self.enabled,
            "tuning_strategy": self.strategy,
            "tuning_max_jobs": self.max_jobs,
            "tuning_max_parallel_jobs": self.max_parallel_jobs,
            "tuning_objective": {"Type": self.objective_type, "MetricName": self.objective_metric},
            "tuning_ranges": self.parameter_ranges(),
        }


# Model Monitor's own default comparison threshold ("Schema for Constraints (constraints.json
# file)": distribution_constraints.comparison_threshold 0.1).
DEFAULT_DRIFT_THRESHOLD = 0.1


@dataclass(frozen=True)
class DataQualityBaseline:
    """The ``Baseline data`` Processing job: the training image's ``baseline`` program on the
    run's train channel, writing Model Monitor's statistics and constraints to
    ``<layout.baselines><run_id>/`` and again to ``<layout.baselines>latest/``.

    ``instance_type`` x ``instance_count`` (the program runs on one; more only copy it),
    ``volume_size_gb``, ``max_runtime``; ``drift_threshold`` is the constraints'
    ``comparison_threshold`` (0 < t <= 1), the distance above which Model Monitor reports drift;
    ``keep_label`` keeps the label as the baseline's first column (``_c0``), where Model Monitor
    puts the prediction of an endpoint that also captures its output.
    """

    instance_type: str = "ml.m5.large"
    volume_size_gb: int = 30
    max_runtime: Duration = ONE_HOUR
    drift_threshold: float = DEFAULT_DRIFT_THRESHOLD
    keep_label: bool = False

    def __post_init__(self) -> None:
        if not _INSTANCE_TYPE.fullmatch(self.instance_type):
            raise ValueError(
                f"DataQualityBaseline instance_type={self.instance_type!r}: expected an ml.* "
                "instance type"
            )
        _check("DataQualityBaseline", "volume_size_gb", self.volume_size_gb, rules.VOLUME_SIZE_GB)
        _check(
            "DataQualityBaseline", "drift_threshold", self.drift_threshold, rules.DRIFT_THRESHOLD
        )
        if not 1 <= self.max_runtime.to_seconds() <= 5 * 24 * 3600:
            raise ValueError(
                f"DataQualityBaseline max_runtime={self.max_runtime.to_seconds()}s: expected 1 s "
                "to 5 days (SageMaker Processing's MaxRuntimeInSeconds)"
            )
