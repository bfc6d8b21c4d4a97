"""The quality gate's default per problem type: config that names no ``deploy.metric`` gates on
the default of the problem type the environment trains for, and a gate metric that problem
type's evaluation never reports fails synth naming the key.

Expected values: issue #19 ("the quality gate's default metric per type": binary AUC, multiclass
accuracy, regression RMSE, each compared so that a better model passes); the problem type of
an objective from XGBoost's "Learning Task Parameters"; the metric names an evaluation reports
from running the ``evaluate`` program's own computation on labels and scores of each type."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from mlstack_containers import evaluation

from mlstack import rules
from mlstack.config import ConfigError, parse_environment
from mlstack.stacks.workflow_stack import deploy_stage
from tests.infra.conftest import REPO

# XGBoost "Learning Task Parameters": an objective of each problem type, and what issue #19
# asks the gate to default to for it.
CASES = {
    "binary": ("binary:logistic", "evaluation:auc", "greater_than_or_equal"),
    "multiclass": ("multi:softprob", "evaluation:accuracy", "greater_than_or_equal"),
    "regression": ("reg:squarederror", "evaluation:rmse", "less_than_or_equal"),
}


def _dev(objective: str | None, **deploy: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((REPO / "environments" / "dev.json").read_text())
    hyperparameters = data["training"]["hyperparameters"]
    hyperparameters.pop("eval_metric")
    if objective is None:
        hyperparameters.pop("objective")
    else:
        hyperparameters["objective"] = objective
    for key in ("metric", "comparison"):
        data["deploy"].pop(key)
    data["deploy"].update(deploy)
    return data


@pytest.mark.parametrize("kind", sorted(CASES))
def test_a_deploy_stage_without_a_metric_gates_on_its_problem_types_default(kind: str) -> None:
    objective, metric, comparison = CASES[kind]
    config = parse_environment("dev", _dev(objective))
    stage = deploy_stage(config)
    assert stage is not None
    assert (stage.metric, stage.comparison) == (metric, comparison)


@pytest.mark.parametrize("kind", sorted(CASES))
def test_the_default_gate_metric_is_in_the_evaluations_flat_metrics(kind: str) -> None:
    # The gate reads $.evaluation.metrics.<name>: the flat metrics of evaluate's summary.
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3 if kind == "multiclass" else 2, 300).astype(float)
    if kind == "multiclass":
        scores = rng.random((300, 3))
        scores /= scores.sum(axis=1, keepdims=True)
        result = evaluation.evaluate(
            "multi:softprob", labels, scores, kind=kind, classes=("a", "b", "c")
        )
    else:
        result = evaluation.evaluate(CASES[kind][0], labels, rng.random(300))
    summary = json.loads(result.summary())
    assert summary["problem_type"] == kind
    assert CASES[kind][1].removeprefix("evaluation:") in summary["metrics"]


def test_a_named_metric_and_comparison_win_over_the_default() -> None:
    data = _dev("binary:logistic", metric="evaluation:f1", comparison="greater_than")
    stage = deploy_stage(parse_environment("dev", data))
    assert stage is not None
    assert (stage.metric, stage.comparison) == ("evaluation:f1", "greater_than")


def test_without_an_objective_the_metric_is_required_naming_the_key() -> None:
    with pytest.raises(ConfigError) as error:
        parse_environment("dev", _dev(None))
    message = str(error.value)
    assert "key 'deploy.metric' is null" in message
    assert "'evaluation:auc' (binary)" in message


@pytest.mark.parametrize(
    ("kind", "metric"),
    [
        ("binary", "evaluation:rmse"),
        ("regression", "evaluation:auc"),
        ("multiclass", "evaluation:f1"),
    ],
)
def test_a_gate_metric_the_problem_type_does_not_report_fails_naming_the_key(
    kind: str, metric: str
) -> None:
    data = _dev(CASES[kind][0], metric=metric, comparison="greater_than_or_equal")
    with pytest.raises(ConfigError) as error:
        parse_environment("dev", data)
    message = str(error.value)
    assert f"key 'deploy.metric' is \"{metric}\" (string)" in message
    assert f"a metric the {kind} evaluation reports" in message
    assert f"'{CASES[kind][1]}'" in message


def test_a_named_metric_without_a_comparison_fails_naming_the_key() -> None:
    with pytest.raises(ConfigError) as error:
        parse_environment("dev", _dev("binary:logistic", metric="evaluation:f1"))
    assert "key 'deploy.comparison' is null" in str(error.value)


def test_every_default_is_a_metric_of_its_type_and_a_comparison() -> None:
    assert set(rules.GATE_DEFAULTS) == set(rules.EVALUATION_METRICS)
    for kind, (metric, comparison) in rules.GATE_DEFAULTS.items():
        assert rules.gate_metric_not_reported(metric, kind) is None
        assert rules.COMPARISON.accepts(comparison)
