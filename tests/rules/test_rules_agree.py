"""Config, construct props and the execution input accept exactly the same values for every rule
they share, and exactly what the named rule accepts (mlstack.portable_rules): hypothesis draws
values around each edge and of the wrong JSON types (a bool, 5.0, a string)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mlstack import rules
from mlstack.constructs import dataset_seeder
from mlstack.constructs.training_workflow import WorkflowDefaults
from mlstack.constructs.workflow_options import (
    DataQualityBaseline,
    DeployStage,
    HyperparameterTuning,
    ModelRegistration,
    TrafficShift,
)
from tests.rules.conftest import config_accepts, input_accepts

seed_handler = sys.modules["seed_handler"]
FEW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Enough shards that any instance count up to 100 fits the dataset (rows / rows_per_shard).
MANY_SHARDS = {"dataset__rows": 100_000, "dataset__rows_per_shard": 1000}


def props_accept(build: Callable[[], object]) -> bool:
    try:
        build()
    except ValueError:
        return False
    return True


def around(bound: rules.Bound) -> st.SearchStrategy[Any]:
    """Integers at and around the bound's edges, floats, and values of other JSON types."""
    edges = [v for v in (bound.low, bound.high) if v is not None]
    near = [int(e) + d for e in edges for d in (-1, 0, 1)]
    return st.one_of(
        st.sampled_from(near),
        st.integers(min_value=int(min(edges)) - 10, max_value=int(max(edges)) + 10),
        st.floats(allow_nan=False, allow_infinity=False, min_value=-10, max_value=max(edges) + 1),
        st.sampled_from([True, False, "5", None]),
    )


def words(vocabulary: rules.Vocabulary) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(vocabulary.values),
        st.sampled_from(
            [v.lower() for v in vocabulary.values] + [v.upper() for v in vocabulary.values]
        ),
        st.text(max_size=12),
        st.sampled_from([None, 1, True]),
    )


@FEW
@given(around(rules.INSTANCE_COUNT))
def test_instance_count(value: Any) -> None:
    expected = rules.INSTANCE_COUNT.accepts(value)
    assert config_accepts("training.instance_count", value, **MANY_SHARDS) is expected
    assert config_accepts("transform.instance_count", value) is expected
    assert config_accepts("deploy.instance_count", value) is expected
    assert (
        props_accept(lambda: DeployStage("validation:rmse", 0.3, instance_count=value)) is expected
    )
    assert input_accepts("training_instance_count", value) is expected
    assert input_accepts("transform_instance_count", value) is expected


@FEW
@given(st.one_of(around(rules.SEED), st.integers(min_value=-(2**60), max_value=2**60)))
def test_seed(value: Any) -> None:
    expected = rules.SEED.accepts(value)
    assert config_accepts("dataset.seed", value) is expected
    assert props_accept(lambda: WorkflowDefaults(seed=value)) is expected
    seeder = dataset_seeder.SEED_CODE_DIR
    assert props_accept(lambda: dataset_seeder._validate_seed_and_code(value, seeder)) is expected
    assert input_accepts("seed", value) is expected
    env = seed_handler.Settings.from_env({"BUCKET_NAME": "b"})
    try:
        seed_handler.SeedRequest.from_event({"run_id": "r", "seed": value}, env)
        by_lambda = True
    except seed_handler.InvalidEventError:
        by_lambda = False
    assert by_lambda is expected


def _tuning(**kwargs: Any) -> HyperparameterTuning:
    ranges = kwargs.pop("ranges", {"max_depth": {"type": "integer", "min": 2, "max": 8}})
    return HyperparameterTuning(objective_metric="validation:rmse", ranges=ranges, **kwargs)


@FEW
@given(around(rules.TUNING_JOBS))
def test_tuning_max_jobs(value: Any) -> None:
    expected = rules.TUNING_JOBS.accepts(value)
    assert config_accepts("tuning.max_jobs", value, tuning__max_parallel_jobs=1) is expected
    assert props_accept(lambda: _tuning(max_jobs=value, max_parallel_jobs=1)) is expected
    assert input_accepts("tuning_max_jobs", value) is expected


@FEW
@given(around(rules.PARALLEL_TUNING_JOBS))
def test_tuning_max_parallel_jobs(value: Any) -> None:
    expected = rules.PARALLEL_TUNING_JOBS.accepts(value)
    most = rules.MAX_TUNING_JOBS
    assert config_accepts("tuning.max_parallel_jobs", value, tuning__max_jobs=most) is expected
    assert props_accept(lambda: _tuning(max_jobs=most, max_parallel_jobs=value)) is expected
    assert input_accepts("tuning_max_parallel_jobs", value) is expected


@FEW
@given(st.integers(1, 120), st.integers(1, 120))
def test_max_parallel_jobs_within_max_jobs(parallel: int, jobs: int) -> None:
    expected = rules.parallel_beyond_jobs(parallel, jobs) is None and parallel <= 100
    given_keys = {"tuning__max_jobs": jobs}
    assert config_accepts("tuning.max_parallel_jobs", parallel, **given_keys) is expected
    assert props_accept(lambda: _tuning(max_jobs=jobs, max_parallel_jobs=parallel)) is expected


@FEW
@given(
    st.one_of(
        st.floats(min_value=-0.5, max_value=1.5, allow_nan=False),
        st.sampled_from([0, 1, 0.99, 0.990001, True, "0.5"]),
    )
)
def test_candidate_weight(value: Any) -> None:
    expected = rules.CANDIDATE_WEIGHT.accepts(value)
    assert config_accepts("deploy.candidate_weight", value) is expected
    assert (
        props_accept(lambda: DeployStage("validation:rmse", 0.3, candidate_weight=value))
        is expected
    )


@FEW
@given(words(rules.COMPARISON))
def test_comparison(value: Any) -> None:
    expected = rules.COMPARISON.accepts(value)
    assert config_accepts("deploy.comparison", value) is expected
    assert props_accept(lambda: DeployStage("validation:rmse", 0.3, comparison=value)) is expected


@FEW
@given(words(rules.TUNING_STRATEGY))
def test_tuning_strategy(value: Any) -> None:
    expected = rules.TUNING_STRATEGY.accepts(value)
    assert config_accepts("tuning.strategy", value) is expected
    assert props_accept(lambda: _tuning(strategy=value)) is expected
    assert input_accepts("tuning_strategy", value) is expected


@FEW
@given(words(rules.OBJECTIVE_TYPE))
def test_objective_type(value: Any) -> None:
    expected = rules.OBJECTIVE_TYPE.accepts(value)
    assert config_accepts("tuning.objective.type", value) is expected
    assert props_accept(lambda: _tuning(objective_type=value)) is expected
    objective = {"Type": value, "MetricName": "validation:rmse"}
    assert input_accepts("tuning_objective", objective) is expected


@FEW
@given(words(rules.SCALING_TYPE))
def test_scaling_type(value: Any) -> None:
    assume(value is not None)  # null in config is the key left out: SageMaker's "Auto"
    expected = rules.SCALING_TYPE.accepts(value)
    assert config_accepts("tuning.ranges.eta.scaling", value) is expected
    ranges = {"eta": {"type": "continuous", "min": 0.1, "max": 0.5, "scaling": value}}
    assert props_accept(lambda: _tuning(ranges=ranges)) is expected
    one = {"Name": "eta", "MinValue": "0.1", "MaxValue": "0.5", "ScalingType": value}
    assert input_accepts("tuning_ranges", {"ContinuousParameterRanges": [one]}) is expected


@FEW
@given(words(rules.APPROVAL_STATUS))
def test_approval_status(value: Any) -> None:
    expected = rules.APPROVAL_STATUS.accepts(value)
    assert config_accepts("registry.approval_status", value) is expected
    # The registry itself plays no part in the check.
    build = lambda: ModelRegistration(registry=None, approval_status=value)  # type: ignore[arg-type]  # noqa: E731
    assert props_accept(build) is expected


@FEW
@given(words(rules.TRAFFIC_TYPE), st.one_of(st.none(), st.integers(-1, 60)))
def test_traffic_type_and_step(kind: Any, step: int | None) -> None:
    expected = rules.TRAFFIC_TYPE.accepts(kind) and rules.traffic_step_problem(kind, step) is None
    assert (
        config_accepts("deploy.traffic.type", kind, deploy__traffic__step_percent=step) is expected
    )
    assert props_accept(lambda: TrafficShift(type=kind, step_percent=step)) is expected


@FEW
@given(around(rules.VOLUME_SIZE_GB))
def test_volume_size(value: Any) -> None:
    expected = rules.VOLUME_SIZE_GB.accepts(value)
    assert config_accepts("training.volume_size_gb", value) is expected
    assert config_accepts("monitoring.volume_size_gb", value) is expected
    assert props_accept(lambda: DataQualityBaseline(volume_size_gb=value)) is expected


@FEW
@given(
    st.one_of(
        st.floats(min_value=-0.5, max_value=1.5, allow_nan=False),
        st.sampled_from([0, 0.0005, 0.001, 1, 1.0001, True, "0.1"]),
    )
)
def test_drift_threshold(value: Any) -> None:
    expected = rules.DRIFT_THRESHOLD.accepts(value)
    assert config_accepts("monitoring.drift_threshold", value) is expected
    assert props_accept(lambda: DataQualityBaseline(drift_threshold=value)) is expected


@FEW
@given(around(rules.ROWS_PER_SHARD))
def test_rows_per_shard(value: Any) -> None:
    expected = rules.ROWS_PER_SHARD.accepts(value)
    small = {"dataset__rows": 1, "dataset__max_rows": 1}
    assert config_accepts("dataset.rows_per_shard", value, **small) is expected
    if isinstance(value, int) and not isinstance(value, bool):  # the environment is text
        env = {"BUCKET_NAME": "b", "ROWS_PER_SHARD": str(value)}
        try:
            seed_handler.Settings.from_env(env)
            by_lambda = True
        except seed_handler.ConfigurationError:
            by_lambda = False
        assert by_lambda is expected
