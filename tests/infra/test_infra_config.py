"""Environment configuration: loading, freezing and one error test per kind of mistake."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from mlstack.config import (
    ConfigError,
    EnvironmentConfig,
    load_environment,
    load_environments,
    parse_environment,
)
from tests.infra.conftest import REPO


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
    assert config.endpoint.enabled is True


def test_numeric_hyperparameters_become_strings(raw: dict[str, Any]) -> None:
    raw["training"]["hyperparameters"]["num_round"] = 7
    raw["training"]["hyperparameters"]["eta"] = 0.3
    config = parse_environment("dev", raw)
    assert config.training.hyperparameters["num_round"] == "7"
    assert config.training.hyperparameters["eta"] == "0.3"


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
            "key 'training.instance_count' is \"two\" (str); expected an integer from 1 to 100",
        ),
        ("training.instance_count", True, "key 'training.instance_count' is true (bool)"),
        ("dataset.rows", 1.5, "key 'dataset.rows' is 1.5 (float)"),
        ("training", [], "'training' must be an object"),
        ("training.hyperparameters", {"num_round": [5]}, "key 'training.hyperparameters'"),
        # out of range / bad format
        (
            "dataset.rows",
            2_000_000,
            "key 'dataset.rows' is 2000000 (int); expected an integer from 1 to 1000000",
        ),
        (
            "removal_policy",
            "snapshot",
            "key 'removal_policy' is \"snapshot\" (str); expected 'destroy' or 'retain'",
        ),
        ("transform.instance_type", "m5.xlarge", "key 'transform.instance_type'"),
        (
            "account",
            "12345",
            "key 'account' is \"12345\" (str); expected null or a 12-digit AWS account ID",
        ),
        ("region", "Europe", "key 'region'"),
        ("notification_email", "not-an-email", "key 'notification_email'"),
        ("endpoint.model_artifact", "/abs/model.tar.gz", "key 'endpoint.model_artifact'"),
        (
            "workflow.log_retention_days",
            31,
            "key 'workflow.log_retention_days' is 31 (int); expected one of",
        ),
        # inconsistent
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
