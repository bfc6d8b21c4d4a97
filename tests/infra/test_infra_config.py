"""Environment configuration: loading, freezing and one error test per kind of mistake."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from mlstack.app import build_app
from mlstack.config import (
    ConfigError,
    EnvironmentConfig,
    load_environment,
    load_environments,
    parse_environment,
)
from tests.infra.conftest import REPO, new_app


@pytest.fixture()
def raw() -> dict[str, Any]:
    return json.loads((REPO / "environments" / "dev.json").read_text())  # type: ignore[no-any-return]


def test_every_environment_file_loads() -> None:
    environments = load_environments()
    assert {"dev", "prod"} <= set(environments)
    assert all(isinstance(c, EnvironmentConfig) for c in environments.values())


def test_config_is_frozen_and_typed() -> None:
    config = load_environment("prod")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.removal_policy = "destroy"  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.training.hyperparameters["num_round"] = "9"  # type: ignore[index]
    assert config.training.instance_count == 1
    assert config.name_prefix == "mlstack-prod"
    # Shipped without a model: the Serving stack appears after the release step.
    assert config.endpoint.enabled is False


def test_numeric_hyperparameters_become_strings(raw: dict[str, Any]) -> None:
    raw["training"]["hyperparameters"]["num_round"] = 7
    raw["training"]["hyperparameters"]["gamma"] = 0.3
    config = parse_environment("dev", raw)
    assert config.training.hyperparameters["num_round"] == "7"
    assert config.training.hyperparameters["gamma"] == "0.3"


def test_account_and_region_are_optional(raw: dict[str, Any]) -> None:
    del raw["account"], raw["region"]
    assert parse_environment("dev", raw).account is None


def mutate(raw: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(raw)
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node[part]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return data


_DELETE = object()
VARIANT = {"name": "a", "weight": 1, "instance_type": "ml.m5.large", "instance_count": 1}


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        # missing key
        (
            "training.instance_type",
            _DELETE,
            "missing key 'training.instance_type'; expected a SageMaker instance type",
        ),
        ("endpoint", _DELETE, "missing key 'endpoint'"),
        # unknown key
        (
            "training.instance_typo",
            "ml.m5.large",
            "unknown key 'training.instance_typo'; expected only",
        ),
        ("colour", "blue", "unknown key 'colour'"),
        # ill-typed
        (
            "training.instance_count",
            "two",
            "key 'training.instance_count' is \"two\" (string); expected an integer from 1 to 100",
        ),
        ("training.instance_count", True, "key 'training.instance_count' is true (boolean)"),
        ("dataset.rows", 1.5, "key 'dataset.rows' is 1.5 (number)"),
        ("training", [], "'training' must be an object"),
        ("training.hyperparameters", {"num_round": [5]}, "key 'training.hyperparameters'"),
        # out of range / bad format
        (
            "dataset.rows",
            200_000_000,
            "key 'dataset.rows' is 200000000 (integer); expected an integer from 1 to 100000000",
        ),
        (
            "dataset.rows_per_shard",
            20_000_000,
            "key 'dataset.rows_per_shard' is 20000000 (integer); expected an integer from 1 to "
            "10000000",
        ),
        (
            "removal_policy",
            "snapshot",
            'key \'removal_policy\' is "snapshot" (string); expected "destroy" or "retain"',
        ),
        ("transform.instance_type", "m5.xlarge", "key 'transform.instance_type'"),
        (
            "account",
            "12345",
            "key 'account' is \"12345\" (string); expected null or a 12-digit AWS account ID",
        ),
        ("region", "Europe", "key 'region'"),
        ("notification_email", "not-an-email", "key 'notification_email'"),
        ("endpoint.model_artifact", "/abs/model.tar.gz", "key 'endpoint.model_artifact'"),
        (
            "workflow.log_retention_days",
            31,
            "key 'workflow.log_retention_days' is 31 (integer); expected one of",
        ),
        ("deploy", [], "'deploy' must be an object"),
        (
            "deploy.enabled",
            "yes",
            "key 'deploy.enabled' is \"yes\" (string); expected true or false",
        ),
        (
            "deploy.comparison",
            "lte",
            'key \'deploy.comparison\' is "lte" (string); expected null or one of "less_than", ',
        ),
        (
            "deploy.threshold",
            "0.3",
            "key 'deploy.threshold' is \"0.3\" (string); expected a number",
        ),
        ("deploy.traffic.type", "blue", "key 'deploy.traffic.type' is \"blue\" (string); expected"),
        (
            "deploy.candidate_weight",
            1,
            "key 'deploy.candidate_weight' is 1 (integer); expected a number",
        ),
        ("deploy.poll_seconds", 1, "key 'deploy.poll_seconds' is 1 (integer); expected an integer"),
        (
            "tuning.strategy",
            "Grid",
            'key \'tuning.strategy\' is "Grid" (string); expected "Bayesian" or "Random"',
        ),
        ("tuning.objective.type", "Min", "key 'tuning.objective.type' is \"Min\" (string)"),
        (
            "tuning.max_jobs",
            0,
            "key 'tuning.max_jobs' is 0 (integer); expected an integer from 1 to 500",
        ),
        (
            "tuning.ranges",
            {"eta": {"type": "continuous", "min": 1, "max": 0}},
            "key 'tuning.ranges' is {\"eta\": ",
        ),
        (
            "tuning.ranges",
            {"booster": {"type": "categorical", "values": []}},
            "key 'tuning.ranges'",
        ),
        ("tuning.ranges", {}, "key 'tuning.ranges' is {} (object)"),
        (
            "schedule.expression",
            "every week",
            "key 'schedule.expression' is \"every week\" (string)",
        ),
        ("schedule.enabled", 1, "key 'schedule.enabled' is 1 (integer); expected true or false"),
        (
            "alarms.period_seconds",
            90,
            "key 'alarms.period_seconds' is 90 (integer); expected 60 or a",
        ),
        ("alarms.latency_p99_ms", 0, "key 'alarms.latency_p99_ms' is 0 (integer)"),
        (
            "endpoint.variants",
            [],
            "key 'endpoint.variants' is [] (array); expected a non-empty list",
        ),
        (
            "endpoint.variants",
            [{"name": "a b", "weight": 1, "instance_type": "ml.m5.large", "instance_count": 1}],
            "key 'endpoint.variants[0].name' is \"a b\" (string); expected a variant name",
        ),
        (
            "endpoint.variants",
            [{"name": "a", "weight": 0, "instance_type": "ml.m5.large", "instance_count": 1}],
            "key 'endpoint.variants[0].weight' is 0 (integer); expected a number from 0.01",
        ),
        (
            "endpoint.serverless",
            {"memory_size_mb": 1000, "max_concurrency": 5},
            "key 'endpoint.serverless.memory_size_mb' is 1000 (integer); expected one "
            "of 1024, 2048, ",
        ),
        ("endpoint.data_capture", {"sampling_percentage": 0}, "'endpoint.data_capture.sampling"),
        ("endpoint.autoscaling", {"min_capacity": 1}, "missing key 'endpoint.autoscaling.max_capa"),
        # inconsistent
        (
            "deploy.metric",
            "validation:f1",
            "key 'deploy.metric' is \"validation:f1\" (string); expected one of the "
            "training image's",
        ),
        (
            "deploy.traffic",
            {"type": "canary"},
            "key 'deploy.traffic.step_percent' is null (null); expected an integer from 1 "
            "to 50 for 'canary'",
        ),
        (
            "deploy.traffic",
            {"type": "linear", "step_percent": 5},
            "key 'deploy.traffic.step_percent' is 5 (integer); expected an integer "
            "from 10 to 50 for",
        ),
        (
            "deploy.traffic",
            {"type": "all_at_once", "step_percent": 10},
            "key 'deploy.traffic.step_percent' is 10 (integer); expected null for 'all_at_once'",
        ),
        (
            "deploy.max_wait_minutes",
            1440,
            "key 'workflow.timeout_minutes' is 180 (integer); expected more than "
            "'training.max_runtime_seconds' + 'deploy.max_wait_minutes' (90000 s)",
        ),
        (
            "tuning.objective.metric",
            "loss",
            "key 'tuning.objective.metric' is \"loss\" (string); expected one of the "
            "training image",
        ),
        (
            "tuning.max_parallel_jobs",
            9,
            "key 'tuning.max_parallel_jobs' is 9 (integer); expected at most 'tuning.max_jobs' (4)",
        ),
        (
            "tuning.ranges",
            {"num_round": {"type": "integer", "min": 1, "max": 9}},
            "key 'tuning.ranges' is [\"num_round\"] (array); expected only hyperparameters that",
        ),
        (
            "schedule.input",
            {"rowz": 5},
            "key 'schedule.input' is [\"rowz\"] (array); expected only execution input keys",
        ),
        (
            "dataset.max_rows",
            10,
            "key 'dataset.rows' is 5000; expected at most 'dataset.max_rows' (10)",
        ),
        (
            "workflow.timeout_minutes",
            60,
            "key 'workflow.timeout_minutes' is 60; expected more than ",
        ),
    ],
)
def test_mistakes_fail_naming_environment_key_and_expectation(
    raw: dict[str, Any], path: str, value: Any, message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        parse_environment("dev", mutate(raw, path, value))
    assert str(error.value).startswith("environment 'dev': ")
    assert message in str(error.value)


def test_bad_environment_name_fails(raw: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="environment 'Dev_1': the name must match"):
        parse_environment("Dev_1", raw)


def test_invalid_json_fails_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "qa.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"environment 'qa': .*qa.json is not valid JSON"):
        load_environment("qa", tmp_path)


def test_empty_environment_directory_fails(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no environment files"):
        load_environments(tmp_path)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"endpoint.serverless": {"memory_size_mb": 2048, "max_concurrency": 5}},
            "key 'endpoint.autoscaling' is {\"min_capacity\": 2, ",
        ),
        (
            {
                "endpoint.serverless": {"memory_size_mb": 2048, "max_concurrency": 5},
                "endpoint.autoscaling": None,
            },
            'key \'endpoint.data_capture\' is {"sampling_percentage": 20, "capture": "both"} '
            "(object); expected null with 'endpoint.serverless' (a serverless endpoint has one",
        ),
        (
            {
                "endpoint.serverless": {"memory_size_mb": 2048, "max_concurrency": 5},
                "endpoint.autoscaling": None,
                "endpoint.data_capture": None,
                "endpoint.variants": [VARIANT],
            },
            "key 'endpoint.variants' is [\"a\"] (array); expected null with 'endpoint.serverless'",
        ),
        (
            {
                "endpoint.async_inference": {},
                "endpoint.variants": [VARIANT, {**VARIANT, "name": "b"}],
            },
            'key \'endpoint.variants\' is ["a", "b"] (array); expected at most one variant with '
            "'endpoint.async_inference'",
        ),
        (
            {"endpoint.variants": [VARIANT, VARIANT]},
            'key \'endpoint.variants\' is ["a", "a"] (array); expected variants with distinct',
        ),
        (
            {"endpoint.autoscaling.min_capacity": 7},
            "key 'endpoint.autoscaling.min_capacity' is 7 (integer); expected at most "
            "'endpoint.autoscaling.max_capacity' (6)",
        ),
        (
            # 1,000 shards at most: States.ArrayRange's limit.
            {"dataset.rows_per_shard": 50_000},
            "key 'dataset.max_rows' is 100000000; expected at most 50000000, 1000 shards of "
            "'dataset.rows_per_shard' (50000)",
        ),
        (
            {"dataset.seeding_concurrency": 21},
            "key 'dataset.seeding_concurrency' is 21; expected at most "
            "'workflow.lambda_reserved_concurrency' (20)",
        ),
        (
            {"dataset.seeding_concurrency": 10_001},
            "key 'dataset.seeding_concurrency' is 10001 (integer); expected an "
            "integer from 1 to 10000",
        ),
        (
            {"training.instance_count": 2, "dataset.rows": 100_000},
            "key 'training.instance_count' is 2 with 'dataset.rows' 100000 and "
            "'dataset.rows_per_shard' 100000; expected at most the dataset's shards (1: 100000 "
            "rows in shards of 100000)",
        ),
        (
            {"images": {"training_image_uri": "1.dkr.ecr.us-east-1.amazonaws.com/x:1"}},
            "key 'deploy.metric' is \"validation:rmse\" (string); expected one of the training "
            "image's metrics []",
        ),
    ],
)
def test_impossible_combinations_fail_naming_the_key(
    prod_raw: dict[str, Any], changes: dict[str, Any], message: str
) -> None:
    data = prod_raw
    for path, value in changes.items():
        data = mutate(data, path, value)
    with pytest.raises(ConfigError) as error:
        parse_environment("prod", data)
    assert str(error.value).startswith("environment 'prod': ")
    assert message in str(error.value)


@pytest.fixture()
def prod_raw() -> dict[str, Any]:
    return json.loads((REPO / "environments" / "prod.json").read_text())  # type: ignore[no-any-return]


def test_operations_sections_are_optional_and_off_by_default(raw: dict[str, Any]) -> None:
    for key in ("deploy", "tuning", "schedule", "alarms"):
        del raw[key]
    config = parse_environment("dev", raw)
    assert (config.deploy, config.tuning, config.schedule) == (None, None, None)
    assert config.deploy_enabled is False
    assert config.alarms.error_5xx_rate_percent == 1.0
    assert config.endpoint.variant_names == ("AllTraffic",)


def test_dev_and_prod_operations_settings() -> None:
    dev, prod = load_environment("dev"), load_environment("prod")
    assert dev.deploy_enabled and prod.deploy_enabled
    assert dev.deploy_endpoint_name == "mlstack-dev-live"
    assert dev.deploy is not None and dev.deploy.traffic.type == "all_at_once"
    assert prod.deploy is not None and prod.deploy.traffic.type == "canary"
    assert dev.tuning is not None and dev.tuning.enabled is False
    assert prod.tuning is not None and prod.tuning.enabled is True
    assert dev.schedule is not None and dev.schedule.enabled is False
    assert prod.schedule is not None and prod.schedule.enabled is True
    assert prod.endpoint.autoscaling is not None and prod.endpoint.data_capture is not None
    assert "validation:rmse" in dev.metric_names()


def test_every_problem_of_single_keys_is_reported_at_once(raw: dict[str, Any]) -> None:
    data = mutate(raw, "training.instance_count", "two")
    data = mutate(data, "dataset.rows", 0)
    data = mutate(data, "colour", "blue")
    with pytest.raises(ConfigError) as error:
        parse_environment("dev", data)
    lines = str(error.value).splitlines()
    assert lines == [
        "environment 'dev': key 'dataset.rows' is 0 (integer); expected an integer "
        "from 1 to 100000000",
        "environment 'dev': key 'training.instance_count' is \"two\" (string); expected an integer "
        "from 1 to 100",
        "environment 'dev': unknown key 'colour'; expected only ['account', 'alarms', 'dataset', "
        "'deploy', 'endpoint', 'images', 'monitoring', 'network', 'notification_email', "
        "'region', 'registry', 'removal_policy', 'schedule', 'training', 'transform', 'tuning', "
        "'workflow']",
    ]


def test_every_inconsistency_is_reported_at_once(prod_raw: dict[str, Any]) -> None:
    data = mutate(prod_raw, "tuning.max_parallel_jobs", 99)
    data = mutate(data, "endpoint.autoscaling.min_capacity", 7)
    with pytest.raises(ConfigError) as error:
        parse_environment("prod", data)
    text = str(error.value)
    assert (
        "key 'tuning.max_parallel_jobs' is 99 (integer); expected at most 'tuning.max_jobs'" in text
    )
    assert "key 'endpoint.autoscaling.min_capacity' is 7 (integer); expected at most" in text


SCHEMA = REPO / "environments" / "schema.json"


def test_the_environment_schema_is_generated_from_the_config_classes() -> None:
    from mlstack.config import json_schema

    assert json.loads(SCHEMA.read_text()) == json_schema(), (
        "environments/schema.json is stale: run `python -m mlstack.config`"
    )


def test_every_environment_file_points_at_the_schema_and_passes_it() -> None:
    from jsonschema import Draft202012Validator

    schema = json.loads(SCHEMA.read_text())
    Draft202012Validator.check_schema(schema)
    for path in sorted((REPO / "environments").glob("*.json")):
        if path == SCHEMA:
            continue
        data = json.loads(path.read_text())
        assert data["$schema"] == "./schema.json", path.name
        assert list(Draft202012Validator(schema).iter_errors(data)) == [], path.name


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("colour", "blue"),
        ("training.instance_typo", "ml.m5.large"),
        ("training.instance_count", "two"),
        ("training.instance_type", "m5.large"),
        ("deploy.comparison", "lte"),
        ("workflow.log_retention_days", 31),
    ],
)
def test_an_editor_reading_the_schema_flags_what_synth_refuses(
    raw: dict[str, Any], path: str, value: Any
) -> None:
    """The schema is an independent check (jsonschema, not pydantic) of the same mistakes."""
    from jsonschema import Draft202012Validator

    data = mutate(raw, path, value)
    assert list(Draft202012Validator(json.loads(SCHEMA.read_text())).iter_errors(data))
    with pytest.raises(ConfigError):
        parse_environment("dev", data)


def test_the_schedules_input_is_checked_like_an_execution_input(raw: dict[str, Any]) -> None:
    """The rules of the workflow's Validate input state (mlstack.rules), applied at synth."""
    data = mutate(
        raw,
        "schedule.input",
        {"rows": 0, "hyperparameters": {"num_round": 5}, "tuning_strategy": "Grid"},
    )
    with pytest.raises(ConfigError) as error:
        parse_environment("dev", data)
    assert str(error.value).splitlines() == [
        "environment 'dev': key 'schedule.input.rows' is 0 (integer); expected an integer from 1 "
        "to 1000000",
        "environment 'dev': key 'schedule.input.hyperparameters' is {\"num_round\": 5} (object); "
        "expected an object of strings",
        "environment 'dev': key 'schedule.input.tuning_strategy' is \"Grid\" (string); expected "
        '"Bayesian" or "Random"',
    ]


def test_docs_configuration_is_generated_from_the_schema() -> None:
    from mlstack import config_docs
    from mlstack.config import json_schema

    assert config_docs.DOC.read_text(encoding="utf-8") == config_docs.render(json_schema()), (
        "docs/configuration.md is stale: run `python -m mlstack.config_docs`"
    )


@pytest.mark.parametrize(
    ("vpc", "messages"),
    [
        (
            "yes",
            [
                'key \'network.vpc\' is "yes" (string); expected null or "create" or an object '
                "with keys 'vpc_id', 'subnet_ids', 'security_group_ids'"
            ],
        ),
        (
            {"vpc_id": "vpc-1", "subnet_ids": []},
            [
                "key 'network.vpc.vpc_id' is \"vpc-1\" (string); expected a VPC ID such as "
                "'vpc-0123456789abcdef0'",
                "key 'network.vpc.subnet_ids' is [] (array); expected a non-empty list, each a "
                "subnet ID such as 'subnet-0123456789abcdef0'",
            ],
        ),
        (
            {"vpc_id": "vpc-0123456789abcdef0", "subnet_ids": ["subnet-01234567"], "zones": 2},
            [
                "unknown key 'network.vpc.zones'; expected only "
                "['security_group_ids', 'subnet_ids', 'vpc_id']"
            ],
        ),
    ],
)
def test_a_bad_network_section_fails_naming_each_key(
    raw: dict[str, Any], vpc: Any, messages: list[str]
) -> None:
    with pytest.raises(ConfigError) as error:
        parse_environment("dev", {**raw, "network": {"vpc": vpc}})
    assert str(error.value).splitlines() == [f"environment 'dev': {m}" for m in messages]


def test_network_isolation_is_on_in_prod_and_off_in_dev_by_default(raw: dict[str, Any]) -> None:
    assert load_environment("prod").network.vpc == "create"
    assert parse_environment("dev", raw).network.vpc is None
    existing = {"vpc_id": "vpc-0123456789abcdef0", "subnet_ids": ["subnet-01234567"]}
    network = parse_environment("dev", {**raw, "network": {"vpc": existing}}).network
    assert network.vpc.subnet_ids == ("subnet-01234567",)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("key", "change", "message"),
    [
        (
            "network.vpc",
            lambda raw: raw.pop("network"),
            "key 'network.vpc' is null in a production environment (removal_policy 'retain')",
        ),
        (
            "workflow.log_retention_days",
            lambda raw: raw["workflow"].update(log_retention_days=30),
            "key 'workflow.log_retention_days' is 30 in a production environment",
        ),
    ],
)
def test_a_production_environment_without_isolation_or_a_years_logs_fails_synth(
    prod_raw: dict[str, Any], tmp_path: Path, key: str, change: Any, message: str
) -> None:
    """Non-production acknowledgements (Lambdas outside a VPC, short log retention) follow the
    environment's kind: one that retains its data (prod) may not take them, whatever its other
    settings; synth stops on the key. A year: AWS Control Tower CT.CLOUDWATCH.PR.2."""
    change(prod_raw)
    (tmp_path / "prod.json").write_text(json.dumps(prod_raw))
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_app(new_app(), environments_dir=tmp_path)
    # The same settings are a valid non-production environment.
    prod_raw["removal_policy"] = "destroy"
    assert parse_environment("prod", prod_raw).production is False
