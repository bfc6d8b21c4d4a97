"""``train`` on a prepared dataset (a ``schema`` channel) picks the training defaults of the
schema's problem type when the job names no objective, keeps every hyperparameter the job names,
and refuses one that contradicts the schema, naming it.

Expected values from outside the image: the objectives and evaluation metrics issue #19 asks for
(binary ``binary:logistic``/AUC, multiclass ``multi:softprob`` with ``num_class``/mlogloss,
regression ``reg:squarederror``/RMSE), read back from the trained booster's own configuration
(``Booster.save_config``); the class counts of scikit-learn's bundled datasets (user guide,
"Toy datasets": iris 3 classes, breast cancer 2); the log lines checked with the regexes the
workflow gives SageMaker (``mlstack.rules.training_image_metric_definitions``)."""

from __future__ import annotations

import json
import re
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb
from mlstack_containers.model_io import load_booster
from sklearn import datasets
from sklearn.metrics import accuracy_score

from mlstack import rules
from tests.training.conftest import CSV_CHANNEL, Job, assert_succeeded, predict
from tests.training.test_training_evaluate import run_program
from tests.training.test_training_prepare import frame_with_text_and_gaps, inputs, run_prepare

SHARDS = ("train", "validation")
SCHEMA_CHANNEL = {"ContentType": "application/json", "TrainingInputMode": "File"}
# scikit-learn "Toy datasets": the loader, whether the target has names, the problem type.
DATASETS = {
    "breast_cancer": (datasets.load_breast_cancer, True),
    "iris": (datasets.load_iris, True),
    "diabetes": (datasets.load_diabetes, False),
}
# Issue #19, "Problem types end to end": the objective and evaluation metric of each type.
WANTED = {
    "breast_cancer": ("binary:logistic", "auc"),
    "iris": ("multi:softprob", "mlogloss"),
    "diabetes": ("reg:squarederror", "rmse"),
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each dataset as a user's table (text label, a categorical column, 5 % missing) through
    ``prepare``: name -> its output directory (train/validation shards, schema/)."""
    out = {}
    for name, (load, named) in DATASETS.items():
        base = tmp_path_factory.mktemp(name)
        frame = frame_with_text_and_gaps(load(as_frame=True), named, seed=7)
        frame.to_csv(inputs(base) / "table.csv", index=False)
        result = run_prepare(base, "--label", "label")
        assert result.returncode == 0, result.stderr
        out[name] = base / "processing" / "output"
    return out


def _job(base: Path, output: Path, *, validation: bool = True, **hyperparameters: object) -> Job:
    job = Job(base)
    job.hyperparameters(**hyperparameters)
    channels = {"train": CSV_CHANNEL, "schema": SCHEMA_CHANNEL}
    if validation:
        channels["validation"] = CSV_CHANNEL
    job.channels(**channels)
    for channel in ("train", "validation") if validation else ("train",):
        job.file(channel, "part-00000.csv", (output / channel / "part-00000.csv").read_bytes())
    job.file("schema", "schema/schema.json", (output / "schema" / "schema.json").read_bytes())
    return job


def _config(job: Job) -> dict:
    return json.loads(load_booster(job.base / "model" / "xgboost-model").save_config())


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_a_job_without_hyperparameters_trains_with_its_problem_types_defaults(
    tmp_path, prepared, name
) -> None:
    job = _job(tmp_path, prepared[name])
    result = job.run(timeout=300)
    assert_succeeded(result, job)
    objective, metric = WANTED[name]
    config = _config(job)
    assert config["learner"]["objective"]["name"] == objective
    classes = json.loads((prepared[name] / "schema" / "schema.json").read_text())["label"]
    if objective.startswith("multi:"):
        assert config["learner"]["learner_model_param"]["num_class"] == str(len(classes["classes"]))
    assert "defaults applied: objective=" in result.stdout
    # Early stopping on the validation channel ended training well before the ceiling.
    metadata = json.loads((job.base / "model" / "mlstack-model.json").read_text())
    assert metadata["best_iteration"] is not None
    assert metadata["num_boosted_rounds"] < 1000
    # The evaluation metric is the default's: the workflow's metric definitions read it off the
    # log, one value a round.
    definition = next(
        d
        for d in rules.training_image_metric_definitions() or []
        if d["Name"] == f"validation:{metric}"
    )
    values = [
        m.group(1)
        for m in map(re.compile(definition["Regex"]).match, result.stdout.splitlines())
        if m
    ]
    assert len(values) >= metadata["num_boosted_rounds"]


def test_named_hyperparameters_win_over_the_defaults(tmp_path, prepared) -> None:
    job = _job(tmp_path, prepared["iris"], objective="multi:softmax", num_round=7)
    result = job.run(timeout=300)
    assert_succeeded(result, job)
    config = _config(job)
    assert config["learner"]["objective"]["name"] == "multi:softmax"
    # scikit-learn "Toy datasets": iris has 3 classes; num_class comes from the schema.
    assert config["learner"]["learner_model_param"]["num_class"] == "3"
    metadata = json.loads((job.base / "model" / "mlstack-model.json").read_text())
    assert metadata["num_boosted_rounds"] == 7  # no early stopping added to a named num_round
    assert "defaults applied: num_class=3" in result.stdout


def test_without_a_validation_channel_the_rounds_are_fixed(tmp_path, prepared) -> None:
    job = _job(tmp_path, prepared["breast_cancer"], validation=False)
    result = job.run(timeout=300)
    assert_succeeded(result, job)
    metadata = json.loads((job.base / "model" / "mlstack-model.json").read_text())
    assert metadata["num_boosted_rounds"] == 100
    assert "early_stopping_rounds" not in result.stdout


@pytest.mark.parametrize(
    ("name", "hyperparameters", "named", "advice"),
    [
        ("iris", {"num_class": 4}, "'num_class' is 4", "remove 'num_class'"),
        (
            "iris",
            {"objective": "binary:logistic"},
            "'objective' is 'binary:logistic'",
            "multiclass",
        ),
        (
            "breast_cancer",
            {"objective": "reg:squarederror", "num_round": 5},
            "'objective' is 'reg:squarederror'",
            "binary",
        ),
        (
            "diabetes",
            {"objective": "multi:softprob"},
            "'objective' is 'multi:softprob'",
            "regression",
        ),
    ],
)
def test_a_hyperparameter_that_contradicts_the_schema_fails_the_job_naming_it(
    tmp_path, prepared, name, hyperparameters, named, advice
) -> None:
    job = _job(tmp_path, prepared[name], **hyperparameters)
    result = job.run(timeout=300)
    assert result.returncode == 1, result.stdout
    assert job.failure is not None
    assert named in job.failure and advice in job.failure, job.failure
    assert not (job.base / "model" / "xgboost-model").exists()


def test_the_defaults_train_iris_as_well_as_a_plain_xgboost_script(tmp_path, prepared) -> None:
    """prepare -> train (no hyperparameters) -> the test shard scored by the booster (batch
    transform's stand-in) -> evaluate, against what a user writes by hand on the same split:
    ``xgboost.XGBClassifier()`` with the library's defaults on every non-test row."""
    out = prepared["iris"]
    job = _job(tmp_path / "train", out)
    assert_succeeded(job.run(timeout=300), job)
    test = np.genfromtxt(out / "test" / "part-00000.csv", delimiter=",", ndmin=2)
    probabilities = predict(job, test)

    base = tmp_path / "evaluate"
    processing = base / "processing" / "input"
    for name in ("predictions", "labels", "model"):
        (processing / name).mkdir(parents=True)
    shutil.copy(out / "test-labels" / "part-00000.csv", processing / "labels" / "part-00000.csv")
    (processing / "predictions" / "part-00000.csv.out").write_text(
        "".join(",".join(f"{p:.9g}" for p in row) + "\n" for row in probabilities)
    )
    with tarfile.open(processing / "model" / "model.tar.gz", mode="w:gz") as tar:
        for path in sorted((job.base / "model").iterdir()):  # schema.json too: train copied it
            tar.add(path, arcname=path.name)
    evaluated = run_program(base)
    assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
    accuracy = json.loads((base / "output" / "message").read_text())["metrics"]["accuracy"]

    rows = np.vstack(
        [np.genfromtxt(out / s / "part-00000.csv", delimiter=",", ndmin=2) for s in SHARDS]
    )
    labels = np.loadtxt(out / "test-labels" / "part-00000.csv")
    plain = xgb.XGBClassifier().fit(rows[:, 1:], rows[:, 0].astype(int))
    expected = accuracy_score(labels, plain.predict(test))
    # Within one test row of the hand-written baseline (the goal is one point; iris's
    # test split has about 23 rows, so one row is about 4 points).
    assert accuracy >= expected - 1 / len(labels), (accuracy, expected)


def test_a_tuning_jobs_objective_metric_is_evaluated_too(tmp_path, prepared) -> None:
    # SageMaker adds "_tuning_objective_metric" to a tuning job's hyperparameters ("How
    # Hyperparameter Tuning Works"); the tuner reads that metric off the log with its regex.
    job = _job(tmp_path, prepared["breast_cancer"], _tuning_objective_metric="validation:rmse")
    result = job.run(timeout=300)
    assert_succeeded(result, job)
    assert "eval_metric=auc,rmse" in result.stdout
    definitions = {d["Name"]: d["Regex"] for d in rules.training_image_metric_definitions() or []}
    for name in ("validation:rmse", "validation:auc"):
        assert any(re.match(definitions[name], line) for line in result.stdout.splitlines())
