"""The quality gate of a run on a table (issue #19), run by the local interpreter from dev's own
definition: the evaluation's problem type picks the gate at run time, and a model passes when
it beats the trivial model of its problem type.

The metrics are computed by scikit-learn on its bundled datasets, for a real model and for the
trivial one (``DummyClassifier``/``DummyRegressor``), not by the code under test: a fitted model
passes, the trivial one is rejected. The seeder's run (no ``$.dataset.schema_uri``) still takes
dev's own gate on ``validation:rmse``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import accuracy_score, r2_score, roc_auc_score
from sklearn.model_selection import train_test_split

from mlstack.local import assembly as assembly_mod
from mlstack.local.asl import ExecutionResult, Interpreter

# Where the gate hands over: the released copy, then Register model's metadata states (passed),
# or the failure path.
PASSED = "Release model artifact"
FAILED = "Notify failure"


@pytest.fixture(scope="module")
def definition(cdk_out: Path) -> dict[str, Any]:
    return assembly_mod.load("dev", cdk_out=cdk_out).definition  # type: ignore[no-any-return]


def gate_only(definition: dict[str, Any], passed: str = PASSED) -> dict[str, Any]:
    """The definition from Table run? to where the gate hands over, those ends made Succeed."""
    states = {**definition["States"], passed: {"Type": "Succeed"}, FAILED: {"Type": "Succeed"}}
    reachable, todo = {}, ["Table run?"]
    while todo:
        name = todo.pop()
        if name in reachable:
            continue
        state = reachable[name] = states[name]
        todo += [c["Next"] for c in state.get("Choices", [])]
        todo += [state[k] for k in ("Next", "Default") if k in state]
    return {"StartAt": "Table run?", "States": reachable}


def gate(definition: dict[str, Any], data: dict[str, Any], passed: str = PASSED) -> ExecutionResult:
    machine = gate_only(definition, passed)
    interpreter = Interpreter(machine, None, sleep=lambda s: None)  # type: ignore[arg-type]
    result = interpreter.execute(data)
    assert result.status == "SUCCEEDED", result.cause
    return result


def table_run(problem_type: str, metrics: dict[str, float]) -> dict[str, Any]:
    """What a table run's state holds after Read evaluation."""
    return {
        "model": {"ModelName": "mlstack-dev-20261207-abc123"},
        "args": {"quality_threshold": 0.35},
        "dataset": {"schema_uri": "s3://data/datasets/20261207-abc123/schema/schema.json"},
        "evaluation": {"problem_type": problem_type, "metrics": metrics},
    }


def split(data: Any) -> tuple[Any, Any, Any, Any]:
    return train_test_split(data.data, data.target, test_size=0.3, random_state=0)  # type: ignore[no-any-return]


def multiclass_metrics(model: Any) -> dict[str, float]:
    x_train, x_test, y_train, y_test = split(load_iris())
    predicted = model.fit(x_train, y_train).predict(x_test)
    constant = DummyClassifier(strategy="most_frequent").fit(x_train, y_train).predict(x_test)
    return {
        "accuracy": accuracy_score(y_test, predicted),
        "accuracy_best_constant_classifier": accuracy_score(y_test, constant),
    }


def test_a_multiclass_model_better_than_the_constant_classifier_passes(
    definition: dict[str, Any],
) -> None:
    metrics = multiclass_metrics(LogisticRegression(max_iter=1000))
    result = gate(definition, table_run("multiclass", metrics))
    assert "error" not in result.output
    assert result.output["gate"]["metric"] == "evaluation:accuracy"
    assert result.output["gate"]["values"] == [metrics["accuracy"]]
    assert result.output["gate"]["threshold"] == metrics["accuracy_best_constant_classifier"]
    assert result.output["gate"]["comparison"] == "greater_than"


def test_the_constant_classifier_itself_is_rejected(definition: dict[str, Any]) -> None:
    metrics = multiclass_metrics(DummyClassifier(strategy="most_frequent"))
    result = gate(definition, table_run("multiclass", metrics))
    assert result.output["error"]["Error"] == "QualityGateFailed"
    cause = result.output["error"]["Cause"]
    assert "of a multiclass table" in cause
    assert "evaluation:accuracy > evaluation:accuracy_best_constant_classifier" in cause


@pytest.mark.parametrize(
    ("model", "passes"),
    [(LogisticRegression(max_iter=5000), True), (DummyClassifier(strategy="prior"), False)],
)
def test_a_binary_model_passes_on_an_auc_above_chance(
    definition: dict[str, Any], model: Any, passes: bool
) -> None:
    x_train, x_test, y_train, y_test = split(load_breast_cancer())
    scores = model.fit(x_train, y_train).predict_proba(x_test)[:, 1]
    auc = roc_auc_score(y_test, scores)  # a constant score's AUC is 0.5 (scikit-learn)
    result = gate(definition, table_run("binary", {"auc": auc, "accuracy": 0.9}))
    assert ("error" not in result.output) is passes, result.output.get("error")
    if passes:
        assert result.output["gate"]["values"] == [auc]


@pytest.mark.parametrize(
    ("model", "passes"), [(LinearRegression(), True), (DummyRegressor(strategy="mean"), False)]
)
def test_a_regression_model_passes_when_it_beats_the_mean(
    definition: dict[str, Any], model: Any, passes: bool
) -> None:
    x_train, x_test, y_train, y_test = split(load_diabetes())
    r2 = r2_score(y_test, model.fit(x_train, y_train).predict(x_test))
    result = gate(definition, table_run("regression", {"rmse": 55.0, "r2": r2}))
    assert ("error" not in result.output) is passes, result.output.get("error")


def test_an_undefined_metric_is_a_rejection(definition: dict[str, Any]) -> None:
    # evaluate leaves out a metric undefined on the data (an AUC of a test split of one class).
    result = gate(definition, table_run("binary", {"accuracy": 1.0}))
    assert result.output["error"]["Error"] == "QualityGateFailed"
    assert "evaluation:auc > 0.5" in result.output["error"]["Cause"]


def test_a_seeder_run_keeps_devs_gate_on_the_training_metric(definition: dict[str, Any]) -> None:
    data = table_run("binary", {"auc": 0.99})
    del data["dataset"]["schema_uri"]
    data["training"] = {
        "TrainingJobName": "job",
        "FinalMetricDataList": [{"MetricName": "validation:rmse", "Value": 0.5}],
    }
    result = gate(definition, data)
    # dev's gate: validation:rmse <= 0.35 (environments/dev.json); 0.5 fails it.
    assert result.states[:2] == ["Table run?", "Read validation metric"]
    assert "validation:rmse = 0.5" in result.output["error"]["Cause"]


def test_a_named_table_gate_from_config_gates_every_table() -> None:
    from aws_cdk import Stack
    from aws_cdk.assertions import Template
    from sklearn.metrics import f1_score

    from mlstack.config import parse_environment
    from mlstack.stacks.workflow_stack import deploy_stage
    from tests.infra.conftest import REPO, state_machine_definition
    from tests.infra.test_infra_evaluation import _workflow

    config = json.loads((REPO / "environments" / "dev.json").read_text())
    named = {"metric": "evaluation:weighted_f1", "comparison": "greater_than", "threshold": 0.9}
    config["deploy"]["table_gate"] = named
    stage = deploy_stage(parse_environment("dev", config))
    assert stage is not None and stage.table_gate is not None
    workflow = _workflow(deploy=stage)
    definition = state_machine_definition(Template.from_stack(Stack.of(workflow)).to_json())
    x_train, x_test, y_train, y_test = split(load_iris())
    for model, passes in ((LogisticRegression(max_iter=1000), True), (DummyClassifier(), False)):
        predicted = model.fit(x_train, y_train).predict(x_test)
        weighted_f1 = f1_score(y_test, predicted, average="weighted")
        data = table_run("multiclass", {"weighted_f1": weighted_f1, "accuracy": 0.5})
        result = gate(definition, data, passed="Describe endpoint")  # no registry: deploy
        assert "Table quality gate" in result.states
        assert ("error" not in result.output) is passes, result.output.get("error")
    assert "evaluation:weighted_f1 > 0.9" in result.output["error"]["Cause"]


def test_a_table_gate_metric_the_evaluation_does_not_report_fails_synth_naming_the_key() -> None:
    from mlstack.config import ConfigError, parse_environment
    from tests.infra.conftest import REPO

    config = json.loads((REPO / "environments" / "dev.json").read_text())
    config["deploy"]["table_gate"] = {
        "metric": "validation:rmse",  # a training job metric: a table's job may not report it
        "comparison": "less_than",
        "threshold": 0.3,
    }
    with pytest.raises(ConfigError, match=r"key 'deploy.table_gate.metric' is \"validation:rmse\""):
        parse_environment("dev", config)
