"""The drift monitor's configuration (section 'monitoring', issue #21): its defaults are the
contract's (docs/monitoring.md), and a bad value fails synth naming the key and what it takes."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from mlstack.config import ConfigError, parse_environment
from tests.infra.conftest import REPO


@pytest.fixture()
def prod_raw() -> dict[str, Any]:
    return json.loads((REPO / "environments" / "prod.json").read_text())  # type: ignore[no-any-return]


def with_monitoring(raw: dict[str, Any], **keys: Any) -> dict[str, Any]:
    data = copy.deepcopy(raw)
    data.setdefault("monitoring", {}).update(keys)
    return data


def test_the_monitor_keys_default_to_the_contracts_values(prod_raw: dict[str, Any]) -> None:
    # The values of the contract between the `monitor` program and the constructs
    # (issue #21): Model Monitor only on opt-in, since AWS closed it to new customers.
    monitoring = parse_environment("prod", prod_raw).monitoring
    assert monitoring.model_monitor is False
    assert monitoring.min_records == 100
    assert monitoring.psi_threshold == 0.2
    assert monitoring.p_value == 0.01
    assert monitoring.drifted_share_alarm_percent == 30
    assert monitoring.quality_metric is None
    assert monitoring.quality_threshold is None
    assert monitoring.retrain_on_drift is False
    assert monitoring.retrain_cooldown_hours == 24


@pytest.mark.parametrize(
    ("problem", "metric"),
    # prod trains 'reg:logistic', a binary objective (the training image's contract.json);
    # a regression objective from XGBoost's list of learning task parameters.
    [("reg:logistic", "AUC"), ("reg:squarederror", "RMSE")],
)
def test_the_quality_metric_defaults_to_the_problem_types(
    prod_raw: dict[str, Any], problem: str, metric: str
) -> None:
    prod_raw["training"]["hyperparameters"]["objective"] = problem
    prod_raw["deploy"]["metric"] = "validation:rmse"
    assert parse_environment("prod", prod_raw).quality_metric() == metric


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (
            {"min_records": 0},
            "key 'monitoring.min_records' is 0 (integer); expected an integer from 1 to 10000000",
        ),
        (
            {"psi_threshold": 0},
            "key 'monitoring.psi_threshold' is 0 (integer); expected a number from 0.001 to 10",
        ),
        (
            {"p_value": 0.9},
            "key 'monitoring.p_value' is 0.9 (number); expected a number from 0.0001 to 0.5",
        ),
        (
            {"drifted_share_alarm_percent": 101},
            "key 'monitoring.drifted_share_alarm_percent' is 101 (integer); expected a number "
            "from 0.01 to 100",
        ),
        (
            {"quality_metric": "auc"},
            "key 'monitoring.quality_metric' is \"auc\" (string); expected null or one of "
            '"AUC", "Accuracy", "F1", "RMSE", "MAE"',
        ),
        (
            # prod is binary: the monitor publishes no RMSE for a classifier.
            {"quality_metric": "RMSE"},
            "key 'monitoring.quality_metric' is \"RMSE\" (string); expected null or a metric the "
            "binary monitor publishes: 'AUC', 'Accuracy', 'F1'",
        ),
        (
            {"quality_threshold": 1.5},
            "key 'monitoring.quality_threshold' is 1.5 (number); expected at most 1 for 'AUC' "
            "(a share)",
        ),
        (
            {"quality_threshold": -1},
            "key 'monitoring.quality_threshold' is -1 (integer); expected null or a number >= 0",
        ),
        (
            {"retrain_on_drift": "yes"},
            "key 'monitoring.retrain_on_drift' is \"yes\" (string); expected true or false",
        ),
        (
            {"retrain_cooldown_hours": 0},
            "key 'monitoring.retrain_cooldown_hours' is 0 (integer); expected an integer from 1 "
            "to 720",
        ),
        (
            {"model_monitor": 1},
            "key 'monitoring.model_monitor' is 1 (integer); expected true or false",
        ),
    ],
)
def test_a_bad_monitor_key_fails_naming_it(
    prod_raw: dict[str, Any], keys: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        parse_environment("prod", with_monitoring(prod_raw, **keys))
    assert message in str(error.value)


def test_retraining_on_drift_needs_the_captured_data(prod_raw: dict[str, Any]) -> None:
    prod_raw["endpoint"]["data_capture"] = None
    with pytest.raises(ConfigError) as error:
        parse_environment("prod", with_monitoring(prod_raw, retrain_on_drift=True))
    assert (
        "key 'monitoring.retrain_on_drift' is true (boolean); expected false without "
        "'endpoint.data_capture'"
    ) in str(error.value)


def test_a_quality_threshold_needs_a_metric_when_the_problem_type_is_unknown(
    prod_raw: dict[str, Any],
) -> None:
    del prod_raw["training"]["hyperparameters"]["objective"]
    prod_raw["deploy"]["metric"] = "validation:rmse"
    with pytest.raises(ConfigError) as error:
        parse_environment("prod", with_monitoring(prod_raw, quality_threshold=0.8))
    assert (
        "key 'monitoring.quality_metric' is null (null); expected a metric with "
        "'monitoring.quality_threshold'"
    ) in str(error.value)
