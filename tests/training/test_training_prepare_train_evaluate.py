"""A user's table through the container programs as processes with the /opt/ml layout:
``prepare`` (scikit-learn's iris and wine as text-labelled tables with a categorical column and
missing values), ``train`` on its train and validation shards (multi:softprob, num_class from the
schema), the test shard scored by the trained booster (standing in for batch transform), and
``evaluate`` on those predictions with the model's ``schema.json`` (which ``train`` is to copy
into the model directory, issue #20; put there by hand here).

Expected values: the per-class counts of the datasets (scikit-learn user guide, "Toy datasets")
and scikit-learn's own accuracy_score on the same predictions."""

from __future__ import annotations

import io
import json
import shutil
import tarfile

import numpy as np
import pytest
import xgboost as xgb
from sklearn import datasets
from sklearn.metrics import accuracy_score

from tests.training.conftest import CSV_CHANNEL, Job, assert_succeeded
from tests.training.test_training_evaluate import run_program
from tests.training.test_training_prepare import (
    frame_with_text_and_gaps,
    inputs,
    run_prepare,
)


@pytest.mark.parametrize(
    ("load", "classes"),
    [
        (datasets.load_iris, ["setosa", "versicolor", "virginica"]),
        (datasets.load_wine, ["class_0", "class_1", "class_2"]),
    ],
)
def test_prepare_train_evaluate_a_text_labelled_table(tmp_path, load, classes) -> None:
    frame = frame_with_text_and_gaps(load(as_frame=True), True, seed=4)
    frame.to_csv(inputs(tmp_path / "prepare") / "table.csv", index=False)
    result = run_prepare(tmp_path / "prepare", "--label", "label")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "prepare" / "processing" / "output"
    schema = json.loads((out / "schema" / "schema.json").read_text())
    assert schema["problem_type"] == "multiclass"
    assert schema["label"]["classes"] == classes
    # every row is good (only features have gaps): each column's missing values are what pandas
    # counts as missing in the table written (isna: None and NaN, written as empty fields)
    missing = {str(k): int(v) for k, v in frame.drop(columns="label").isna().sum().items()}
    assert {f["name"]: f["missing"] for f in schema["features"]} == missing
    assert sum(missing.values()) > 0

    job = Job(tmp_path / "train")
    job.hyperparameters(
        objective="multi:softprob", num_class=len(classes), num_round=30, eval_metric="mlogloss"
    )
    job.channels(train=CSV_CHANNEL, validation=CSV_CHANNEL)
    for channel in ("train", "validation"):
        job.file(channel, "part-00000.csv", (out / channel / "part-00000.csv").read_bytes())
    assert_succeeded(job.run(timeout=300), job)

    # batch transform's stand-in: the trained booster scores the test shard, K values a line
    test = np.genfromtxt(out / "test" / "part-00000.csv", delimiter=",", ndmin=2)
    probabilities = job.booster().booster.predict(xgb.DMatrix(test))
    assert probabilities.shape == (len(test), len(classes))

    base = tmp_path / "evaluate"
    processing = base / "processing" / "input"
    (processing / "predictions").mkdir(parents=True)
    (processing / "labels").mkdir(parents=True)
    (processing / "model").mkdir(parents=True)
    shutil.copy(out / "test-labels" / "part-00000.csv", processing / "labels" / "part-00000.csv")
    (processing / "predictions" / "part-00000.csv.out").write_text(
        "".join(",".join(f"{p:.6g}" for p in row) + "\n" for row in probabilities)
    )
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted((job.base / "model").iterdir()):
            tar.add(path, arcname=path.name)
        tar.add(out / "schema" / "schema.json", arcname="schema.json")
    (processing / "model" / "model.tar.gz").write_bytes(buffer.getvalue())
    evaluated = run_program(base)
    assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
    report = json.loads((base / "processing/output/evaluation/evaluation.json").read_text())
    metrics = report["multiclass_classification_metrics"]
    labels = np.loadtxt(processing / "labels" / "part-00000.csv")
    assert metrics["accuracy"]["value"] == pytest.approx(
        accuracy_score(labels, probabilities.argmax(axis=1))
    )
    assert metrics["accuracy"]["value"] >= 0.85  # both datasets are easily separable
    assert list(metrics["confusion_matrix"]) == classes
    assert sum(sum(row.values()) for row in metrics["confusion_matrix"].values()) == len(test)
    parts = json.loads((base / "processing/output/evaluation/report_parts.json").read_text())
    assert parts["data"]["missing"] == missing  # the run report's missing values per column
