"""``evaluate`` on multiclass models: SageMaker's ``multiclass_classification_metrics`` (SageMaker
developer guide, "Model quality metrics":
https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-model-quality-metrics.html names
accuracy, weighted_recall, weighted_precision, weighted_f0_5, weighted_f1, weighted_f2, their
*_best_constant_classifier twins and the confusion_matrix), with the class labels of the model's
schema.json. Expected values come from scikit-learn's metrics (accuracy_score,
precision_recall_fscore_support / fbeta_score with average="weighted", confusion_matrix), a
reference implementation outside this code."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mlstack_containers import evaluation
from sklearn import metrics as sk

from tests.training.test_training_evaluate import lines, message, report, run_program

IRIS_SCHEMA = {
    "schema_version": 1,
    "problem_type": "multiclass",
    "label": {"name": "species", "type": "categorical",
              "classes": ["setosa", "versicolor", "virginica"]},
    "features": [{"name": "petal_length", "type": "numeric"}],
    "rows": {"train": 105, "validation": 24, "test": 21, "rejected": 0},
}  # fmt: skip


def tree(
    base: Path,
    objective: str,
    labels: list[int],
    predictions: list,
    *,
    num_class: int = 3,
    schema: dict | None = None,
) -> Path:
    inputs = base / "processing" / "input"
    (inputs / "labels").mkdir(parents=True)
    (inputs / "predictions").mkdir(parents=True)
    (inputs / "model").mkdir(parents=True)
    (inputs / "labels" / "part-00000.csv").write_bytes(lines(labels))
    body = "".join(
        (",".join(f"{v:g}" for v in p) if isinstance(p, list | tuple) else f"{p:g}") + "\n"
        for p in predictions
    )
    (inputs / "predictions" / "part-00000.csv.out").write_text(body)
    files = {"mlstack-model.json": {"objective": objective, "num_class": num_class}}
    if schema is not None:
        files["schema.json"] = schema
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, document in files.items():
            data = json.dumps(document).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (inputs / "model" / "model.tar.gz").write_bytes(buffer.getvalue())
    return base


def expected(labels, predicted) -> dict[str, float]:
    values = {"accuracy": sk.accuracy_score(labels, predicted)}
    for name, beta in (("f0_5", 0.5), ("f1", 1.0), ("f2", 2.0)):
        values[f"weighted_{name}"] = sk.fbeta_score(
            labels, predicted, beta=beta, average="weighted", zero_division=0
        )
    precision, recall, _, _ = sk.precision_recall_fscore_support(
        labels, predicted, average="weighted", zero_division=0
    )
    values["weighted_precision"] = precision
    values["weighted_recall"] = recall
    return values


def test_softprob_with_a_schema_reports_metrics_and_a_matrix_by_class_label(tmp_path) -> None:
    labels = [0, 0, 1, 1, 1, 2, 2, 2, 2]
    probabilities = [
        (0.8, 0.1, 0.1), (0.2, 0.7, 0.1), (0.1, 0.8, 0.1), (0.1, 0.6, 0.3), (0.5, 0.2, 0.3),
        (0.1, 0.1, 0.8), (0.2, 0.2, 0.6), (0.3, 0.3, 0.4), (0.1, 0.7, 0.2),
    ]  # fmt: skip
    base = tree(tmp_path, "multi:softprob", labels, probabilities, schema=IRIS_SCHEMA)
    result = run_program(base)
    assert result.returncode == 0, result.stdout + result.stderr
    body = report(base)["multiclass_classification_metrics"]
    predicted = [int(np.argmax(p)) for p in probabilities]
    names = IRIS_SCHEMA["label"]["classes"]
    matrix = sk.confusion_matrix(labels, predicted, labels=[0, 1, 2])
    assert body["confusion_matrix"] == {
        names[i]: {names[j]: int(matrix[i, j]) for j in range(3)} for i in range(3)
    }
    for name, value in expected(labels, predicted).items():
        assert body[name]["value"] == pytest.approx(value), name
    # the best constant classifier always says the most frequent label (virginica, 4 of 9)
    for name, value in expected(labels, [2] * len(labels)).items():
        assert body[f"{name}_best_constant_classifier"]["value"] == pytest.approx(value), name
    assert set(body) == {"confusion_matrix", *evaluation.MULTICLASS_METRICS}
    summary = json.loads(message(base))
    assert summary["problem_type"] == "multiclass" and summary["rows"] == 9


def test_softmax_without_a_schema_names_classes_by_index(tmp_path) -> None:
    labels, predicted = [0, 1, 2, 3, 3], [0, 2, 2, 3, 1]
    base = tree(tmp_path, "multi:softmax", labels, predicted, num_class=4)
    assert run_program(base).returncode == 0
    body = report(base)["multiclass_classification_metrics"]
    assert list(body["confusion_matrix"]) == ["0", "1", "2", "3"]
    assert body["confusion_matrix"]["3"] == {"0": 0, "1": 1, "2": 0, "3": 1}
    assert body["accuracy"]["value"] == pytest.approx(sk.accuracy_score(labels, predicted))


@pytest.mark.parametrize(
    ("objective", "labels", "predictions", "schema", "reason"),
    [
        ("multi:softprob", [0, 1], [(0.5, 0.5, 0.0), (0.5, 0.5)], IRIS_SCHEMA,
         "predictions part-00000.csv.out line 2: 2 values, expected 3"),
        ("multi:softmax", [0, 3], [0, 1], IRIS_SCHEMA,
         "label 3 (row 2 in shard order) is not a class index 0..2"),
        ("multi:softmax", [0, 1], [0, 1.5], IRIS_SCHEMA, "prediction 1.5 (row 2 in shard order)"),
        ("binary:logistic", [0, 1], [0.1, 0.9], IRIS_SCHEMA,
         "schema.json says problem_type multiclass but it was trained with binary:logistic"),
    ],
)  # fmt: skip
def test_bad_multiclass_input_fails_with_a_reason(
    tmp_path, objective, labels, predictions, schema, reason
) -> None:
    base = tree(tmp_path, objective, labels, predictions, schema=schema)
    assert run_program(base).returncode == 1
    assert reason in message(base)
    assert (base / "output" / "failure").read_text() == message(base)


@settings(max_examples=60, deadline=None)
@given(pairs=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=400))
def test_multiclass_metrics_match_scikit_learn(pairs) -> None:
    labels = np.array([a for a, _ in pairs], dtype=float)
    predicted = np.array([b for _, b in pairs], dtype=float)
    result = evaluation.evaluate(
        "multi:softmax", labels, predicted, kind="multiclass", classes=tuple("abcde")
    )
    for name, value in expected(labels, predicted).items():
        assert result.metrics[name] == pytest.approx(value), name
    matrix = sk.confusion_matrix(labels, predicted, labels=[0, 1, 2, 3, 4])
    assert result.confusion_matrix == {
        c: {d: int(matrix[i, j]) for j, d in enumerate("abcde")} for i, c in enumerate("abcde")
    }
