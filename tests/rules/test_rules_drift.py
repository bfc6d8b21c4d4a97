"""Each rule the issue found written twice and drifted now has one home: the layers agree at the
rule's edge, and the edge is the documented one (issue #23).

Each test failed before the rule moved to mlstack.portable_rules: it names the value that was
wrong and where the right one comes from.
"""

from __future__ import annotations

import inspect
import sys

import botocore.session
import pytest
from aws_cdk import aws_stepfunctions as sfn

from mlstack import rules
from mlstack.config import load_environment
from mlstack.constructs.dataset_seeder import DatasetSeeder
from mlstack.constructs.training_workflow import WorkflowDefaults
from mlstack.constructs.workflow_options import (
    DataQualityBaseline,
    DeployStage,
    HyperparameterTuning,
    path_condition,
)
from tests.rules.conftest import config_accepts, input_accepts

seed_handler = sys.modules["seed_handler"]
RANGES = {"max_depth": {"type": "integer", "min": 2, "max": 8}}


def _sagemaker_shape(name: str) -> dict[str, int]:
    shape = botocore.session.get_session().get_service_model("sagemaker").shape_for(name)
    return dict(shape.metadata)


def _tuning_accepts(max_parallel_jobs: int, max_jobs: int) -> bool:
    try:
        HyperparameterTuning(
            objective_metric="validation:rmse",
            ranges=RANGES,
            max_jobs=max_jobs,
            max_parallel_jobs=max_parallel_jobs,
        )
    except ValueError:
        return False
    return True


# SageMaker developer guide, "Resource Limits for Automatic Model Tuning": "Number of parallel
# training jobs per hyperparameter tuning job": 10 by default, "Can be increased to" 100.
# (botocore's MaxParallelTrainingJobs states only its minimum, 1.) Before: config 100, the
# construct and the execution input 500.
MOST_PARALLEL_TRAINING_JOBS = 100


def test_max_parallel_jobs_is_at_most_100_in_config_props_and_execution_input() -> None:
    assert _sagemaker_shape("MaxParallelTrainingJobs") == {"min": 1}
    most = MOST_PARALLEL_TRAINING_JOBS
    assert config_accepts("tuning.max_parallel_jobs", most, tuning__max_jobs=most * 2)
    assert not config_accepts("tuning.max_parallel_jobs", most + 1, tuning__max_jobs=most * 2)
    assert _tuning_accepts(most, most * 2)
    assert not _tuning_accepts(most + 1, most * 2)
    assert input_accepts("tuning_max_parallel_jobs", most)
    assert not input_accepts("tuning_max_parallel_jobs", most + 1)


def test_max_parallel_jobs_above_max_jobs_is_refused_by_config_and_props_alike() -> None:
    assert not config_accepts("tuning.max_parallel_jobs", 5, tuning__max_jobs=4)
    assert not _tuning_accepts(5, 4)
    assert config_accepts("tuning.max_parallel_jobs", 4, tuning__max_jobs=4)
    assert _tuning_accepts(4, 4)


def _deploy_accepts(candidate_weight: float) -> bool:
    try:
        DeployStage(metric="validation:rmse", threshold=0.3, candidate_weight=candidate_weight)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize(("weight", "accepted"), [(0, True), (0.99, True), (0.995, False)])
def test_candidate_weight_is_at_most_0_99_in_config_and_props(
    weight: float, accepted: bool
) -> None:
    # Live keeps round(1 - weight, 6) of the traffic: at most 0.99 leaves it at least 1 %, so
    # both arms of the A/B test serve and the comparison after it has evidence from each.
    # Before: config <= 0.99, DeployStage < 1 (0.995 passed).
    assert config_accepts("deploy.candidate_weight", weight) is accepted
    assert _deploy_accepts(weight) is accepted


# RFC 8259 (JSON), section 6: integers in [-(2**53)+1, (2**53)-1] are interoperable, exact in
# every parser. The seed travels as JSON from the config to the seeding Lambda. Before:
# rules.py (config, execution input) 2**32-1, the seeding Lambda 2**53-1.
JSON_SAFE_MAX = 2**53 - 1


def _defaults_accept(seed: int) -> bool:
    try:
        WorkflowDefaults(seed=seed)
    except ValueError:
        return False
    return True


def _seeder_event_accepts(seed: int) -> bool:
    settings = seed_handler.Settings.from_env({"BUCKET_NAME": "b"})
    try:
        seed_handler.SeedRequest.from_event({"run_id": "r", "seed": seed}, settings)
    except seed_handler.InvalidEventError:
        return False
    return True


@pytest.mark.parametrize(("seed", "accepted"), [(2**32, True), (JSON_SAFE_MAX, True)])
def test_the_seed_limit_is_the_json_safe_integer_everywhere(seed: int, accepted: bool) -> None:
    assert config_accepts("dataset.seed", seed) is accepted
    assert input_accepts("seed", seed) is accepted
    assert _defaults_accept(seed) is accepted
    assert _seeder_event_accepts(seed) is accepted


def test_a_seed_beyond_json_safe_integers_is_refused_everywhere() -> None:
    seed = JSON_SAFE_MAX + 1
    assert not config_accepts("dataset.seed", seed)
    assert not input_accepts("seed", seed)
    assert not _defaults_accept(seed)
    assert not _seeder_event_accepts(seed)


def test_rows_per_shard_default_is_the_same_in_the_seeder_config_and_constructs() -> None:
    # The dataset's most rows are States.ArrayRange's most items ("can't contain more than 1000
    # items", Step Functions developer guide) times the default shard. Before: the seeding
    # Lambda's own default was 1,000,000, rules.py's 100,000.
    assert rules.MAX_DATASET_ROWS == 1000 * rules.DEFAULT_ROWS_PER_SHARD
    lambda_default = seed_handler.Settings.from_env({"BUCKET_NAME": "b"}).rows_per_shard
    config_default = load_environment("dev").dataset.rows_per_shard
    seeder_default = inspect.signature(DatasetSeeder.__init__).parameters["rows_per_shard"].default
    assert lambda_default == config_default == seeder_default == rules.DEFAULT_ROWS_PER_SHARD


def _baseline_accepts(volume: int) -> bool:
    try:
        DataQualityBaseline(volume_size_gb=volume)
    except ValueError:
        return False
    return True


def test_volume_size_is_botocores_processing_volume_range_everywhere() -> None:
    shape = _sagemaker_shape("ProcessingVolumeSizeInGB")
    low, high = shape["min"], shape["max"]
    for key in ("training.volume_size_gb", "monitoring.volume_size_gb"):
        assert config_accepts(key, low) and config_accepts(key, high)
        assert not config_accepts(key, low - 1) and not config_accepts(key, high + 1)
    assert _baseline_accepts(low) and _baseline_accepts(high)
    assert not _baseline_accepts(low - 1) and not _baseline_accepts(high + 1)
    assert (rules.VOLUME_SIZE_GB.low, rules.VOLUME_SIZE_GB.high) == (low, high)


# Amazon States Language, "Choice Rules": the comparison operators between a variable and a path.
ASL_OPERATORS = {
    "less_than": "NumericLessThanPath",
    "less_than_or_equal": "NumericLessThanEqualsPath",
    "greater_than": "NumericGreaterThanPath",
    "greater_than_or_equal": "NumericGreaterThanEqualsPath",
}


@pytest.mark.parametrize("name", sorted(ASL_OPERATORS))
def test_each_comparison_renders_its_step_functions_operator(name: str) -> None:
    comparison = rules.comparison(name)
    rendered = path_condition(comparison)("$.value", "$.threshold").render_condition()
    assert rendered == {"Variable": "$.value", ASL_OPERATORS[name]: "$.threshold"}
    assert isinstance(path_condition(comparison)("$.a", "$.b"), sfn.Condition)


@pytest.mark.parametrize("name", sorted(ASL_OPERATORS))
def test_each_comparison_holds_as_its_symbol_says(name: str) -> None:
    comparison = rules.comparison(name)
    pairs = [(1.0, 2.0), (2.0, 2.0), (3.0, 2.0)]
    expected = {"<": [True, False, False], "<=": [True, True, False]}
    expected |= {">": [False, False, True], ">=": [False, True, True]}
    assert [comparison.holds(a, b) for a, b in pairs] == expected[comparison.symbol]


def test_config_and_props_accept_exactly_the_comparisons_of_the_rule() -> None:
    for name in [*ASL_OPERATORS, "equal", "LessThan"]:
        accepted = name in ASL_OPERATORS
        assert config_accepts("deploy.comparison", name) is accepted
        try:
            DeployStage(metric="validation:rmse", threshold=0.3, comparison=name)
            by_props = True
        except ValueError:
            by_props = False
        assert by_props is accepted


def test_instances_beyond_shards_words_come_from_one_rule() -> None:
    # 3 instances, 2 shards: config, construct and Lambda all quote the rule's own words.
    words = rules.instances_beyond_shards(150_000, 100_000, 3)
    assert words is not None and "ShardedByS3Key" in words
    handler = sys.modules["validate_input_handler"]
    settings = {"rows_per_shard": 100_000, "defaults": {"rows": 1, "training_instance_count": 1}}
    problems = handler.check(
        {"rows": 150_000, "training_instance_count": 3},
        {"type": "object"},
        {"instances_within_shards": settings},
    )
    assert [p.text.endswith(words) for p in problems] == [True]
