"""A table of the user's through the whole local workflow (issue #19): ``--data FILE --label NAME``
copies it under the data bucket's imports/, Prepare data runs the training image's ``prepare``,
and training, batch transform, evaluation, the quality gate (the problem type's, chosen at run
time), registration and release (dev's deploy stage: the local endpoint answers) run as for the
seeder.

The data is scikit-learn's bundled iris (Fisher's 150 flowers, 50 of each species), with its
species names as a text label and a categorical column with missing values added; the expected
classes and counts come from scikit-learn's copy, not from the code under test."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from sklearn.datasets import load_iris

from mlstack.local import assembly
from mlstack.local.runner import RunOptions, RunReport, format_summary, run
from mlstack.local.s3 import EmbeddedS3
from mlstack.local.sagemaker import LocalSageMaker
from mlstack.local.ui import Reporter
from tests import once, programs
from tests.infra.conftest import REPO

# A table run names no hyperparameters: it drops the environment's (the seeder's reg:logistic,
# 5 rounds) and the training image takes the problem type's from the schema (docs/your-data.md).
NONE: dict[str, str] = {}


@pytest.fixture(scope="module")
def environments(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dev as it is (its deploy stage gates the seeder on validation:rmse, a table on its problem
    type's default), without its retraining schedule (written once per session, tests/once.py)."""

    def write(directory: Path) -> Path:
        directory.mkdir(parents=True)
        data = json.loads((REPO / "environments" / "dev.json").read_text())
        data.pop("schedule")
        (directory / "dev.json").write_text(json.dumps(data))
        (directory / "schema.json").write_text((REPO / "environments" / "schema.json").read_text())
        return directory

    return once.per_session(tmp_path_factory, {"environments": "dev without schedule"}, write)


@pytest.fixture(scope="module")
def cdk_out(environments: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    def synthesize(out: Path) -> Path:
        assembly.synthesize("dev", out, environments)
        return out

    inputs = {"synthesize": "dev", "environments": "dev without schedule"}
    return once.per_session(tmp_path_factory, inputs, synthesize)


@pytest.fixture(scope="module")
def iris_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    iris = load_iris(as_frame=True)
    frame = iris.frame.drop(columns=["target"])
    frame["species"] = [iris.target_names[t] for t in iris.target]
    regions = ["north", "south", "east", ""]  # a quarter of the rows: missing
    frame["region"] = [regions[i % 4] for i in range(len(frame))]
    path = tmp_path_factory.mktemp("data") / "iris.csv"
    frame.to_csv(path, index=False)
    return path


def local(
    environments: Path,
    cdk_out: Path,
    workdir: Path,
    name: str,
    data: Path,
    label: str,
    hyperparameters: dict[str, str] = NONE,
) -> RunReport:
    # The programs forked with their libraries imported (tests/programs.py).
    with pytest.MonkeyPatch.context() as mp, programs.forked_python():
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        options = RunOptions(
            environment="dev",
            environments_dir=environments,
            cdk_out=cdk_out,
            workdir=workdir,
            name=name,
            hyperparameters=hyperparameters,
            data=str(data),
            label=label,
        )
        return run(options, Reporter(out=io.StringIO()))


@pytest.fixture(scope="module")
def two_runs(
    environments: Path, cdk_out: Path, iris_csv: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[RunReport, RunReport]:
    """Two runs of iris in one account, made once per session (tests/serving/ serves the first's
    model too): read them, never write into them."""

    def make(workdir: Path) -> tuple[RunReport, RunReport]:
        first = local(environments, cdk_out, workdir, "iris-1", iris_csv, "species")
        second = local(environments, cdk_out, workdir, "iris-2", iris_csv, "species")
        return first, second

    inputs = {"local runs": ["iris-1", "iris-2"], "table": "iris", "label": "species"}
    return once.per_session(tmp_path_factory, inputs, make)


def training_log(report: RunReport) -> str:
    job = report.output["training_job_name"]
    return (Path(report.run_dir) / "jobs" / job / "train.log").read_text()


def model_schema(report: RunReport) -> dict[str, Any]:
    """The schema the training job wrote into its model directory (what model.tar.gz holds)."""
    job = report.output["training_job_name"]
    path = Path(report.run_dir) / "jobs" / job / "opt" / "ml" / "model" / "schema.json"
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def test_a_csv_table_trains_evaluates_and_registers(two_runs: tuple[RunReport, RunReport]) -> None:
    first, _ = two_runs
    assert first.status == "SUCCEEDED", (first.failed_state, first.cause)
    # dev approves each version at once: its release deployed it.
    assert first.ok, [(r["status"], r.get("cause")) for r in first.releases]
    assert "Prepare data" in first.states and "Generate dataset" not in first.states
    evaluation = first.output["evaluation"]
    assert evaluation["problem_type"] == "multiclass"
    # SageMaker's multiclass_classification_metrics: accuracy and weighted F1 among them; the
    # constant classifier of three balanced classes scores 1/3.
    assert evaluation["metrics"]["accuracy"] > 0.8
    assert evaluation["metrics"]["accuracy_best_constant_classifier"] == pytest.approx(1 / 3, 0.2)
    assert first.output["model_package"]["version"] == 1
    # The image's multiclass defaults (XGBoost's parameter names): the softmax objective over
    # the schema's three classes, stopped early on the validation channel.
    log = training_log(first)
    assert "objective=multi:softprob" in log and "num_class=3" in log
    assert "num_round=1000" in log and "early_stopping_rounds=20" in log


def test_the_gate_is_the_multiclass_default_chosen_at_run_time(
    two_runs: tuple[RunReport, RunReport],
) -> None:
    first, _ = two_runs
    metrics = first.output["evaluation"]["metrics"]
    assert (
        "Multiclass quality gate" in first.states and "Read validation metric" not in first.states
    )
    assert first.output["quality_gate"] == {
        "metric": "evaluation:accuracy",
        "comparison": "greater_than",
        "value": metrics["accuracy"],
        "threshold": metrics["accuracy_best_constant_classifier"],
    }


def registered(report: RunReport) -> dict[str, dict[str, Any]]:
    """The local account's model package versions, by version number."""
    assert report.account is not None
    registry = json.loads((report.account / "sagemaker" / "registry.json").read_text())
    return {p["ModelPackageVersion"]: p for p in registry["model_packages"].values()}


def test_the_version_records_problem_type_schema_and_class_labels(
    two_runs: tuple[RunReport, RunReport],
) -> None:
    first, _ = two_runs
    metadata = registered(first)[1]["CustomerMetadataProperties"]
    assert metadata["problem_type"] == "multiclass"
    assert metadata["schema_uri"] == first.output["dataset"]["schema_uri"]
    assert metadata["class_labels"].split("/") == sorted(load_iris().target_names)
    assert metadata["gate_metric"] == "evaluation:accuracy"


def test_the_run_summary_shows_the_problem_type_and_class_labels(
    two_runs: tuple[RunReport, RunReport],
) -> None:
    summary = format_summary(two_runs[0])
    assert "multiclass, label 'species'" in summary
    assert f"Classes           {', '.join(sorted(load_iris().target_names))}" in summary
    assert "Quality gate      evaluation:accuracy = " in summary


def test_the_released_endpoint_answers_a_raw_record(
    two_runs: tuple[RunReport, RunReport], environments: Path, cdk_out: Path, tmp_path: Path
) -> None:
    _, second = two_runs
    assert second.account is not None
    resolved = assembly.load("dev", cdk_out=cdk_out)
    iris = load_iris(as_frame=True)
    # scikit-learn's first iris flower, a setosa, as a raw record by feature name.
    record = {**iris.data.iloc[0].to_dict(), "region": "north"}
    with EmbeddedS3(resolved.region) as s3:
        s3.restore(second.account / "s3")
        sagemaker = LocalSageMaker(
            tmp_path / "run",
            s3,
            resolved.images,
            region=resolved.region,
            account=resolved.account,
            restore_registry=second.account / "sagemaker" / "registry.json",
            endpoints_dir=tmp_path / "endpoints",
        )
        try:
            server = sagemaker.endpoint_server("mlstack-dev-live")
            status, _, body = server.request(
                "POST",
                "/invocations",
                json.dumps(record).encode(),
                {"Content-Type": "application/json", "Accept": "application/json"},
            )
        finally:
            sagemaker.stop()
    assert status == 200, body
    answer = json.loads(body)
    answer = answer["predictions"][0] if "predictions" in answer else answer
    assert answer["predicted_label"] == iris.target_names[iris.target[0]] == "setosa"


def test_the_model_carries_the_tables_schema(two_runs: tuple[RunReport, RunReport]) -> None:
    schema = model_schema(two_runs[0])
    iris = load_iris()
    assert schema["problem_type"] == "multiclass"
    assert schema["label"]["classes"] == sorted(iris.target_names)
    features = {f["name"]: f for f in schema["features"]}
    assert set(features) == {*iris.feature_names, "region"}
    assert features["region"]["type"] == "categorical"
    assert set(features["region"]["categories"]) <= {"east", "north", "south"}
    rows = schema["rows"]
    assert rows["train"] + rows["validation"] + rows["test"] == len(iris.target)


def test_running_twice_registers_version_two(two_runs: tuple[RunReport, RunReport]) -> None:
    first, second = two_runs
    assert second.status == "SUCCEEDED", (second.failed_state, second.cause)
    assert second.output["model_package"]["version"] == 2
    assert second.ok, [(r["status"], r.get("cause")) for r in second.releases]
    # The same file lands under the same imports/ key: the runs read the same source.
    assert first.output["dataset"]["source_uri"] == second.output["dataset"]["source_uri"]
    assert "/imports/local-" in first.output["dataset"]["source_uri"]


def test_a_missing_label_column_fails_prepare_data_naming_it(
    environments: Path, cdk_out: Path, iris_csv: Path, tmp_path: Path
) -> None:
    report = local(environments, cdk_out, tmp_path / "work", "iris-bad", iris_csv, "target")
    assert report.status == "FAILED"
    assert report.failed_state == "Prepare data"
    # prepare's words (docs/your-data.md): the object, line 1 (the header) and the column.
    reason = f"{report.cause} {report.failure_reason}"
    assert "iris.csv line 1 column 'target': the label column is not in the input" in reason


def test_the_same_table_as_parquet_trains_the_same_way(
    environments: Path, cdk_out: Path, iris_csv: Path, tmp_path: Path
) -> None:
    import pandas as pd

    parquet = tmp_path / "iris.parquet"
    pd.read_csv(iris_csv, keep_default_na=False).to_parquet(parquet, index=False)
    report = local(environments, cdk_out, tmp_path / "work", "iris-pq", parquet, "species")
    assert report.ok, (report.failed_state, report.cause, report.releases)
    assert report.output["evaluation"]["problem_type"] == "multiclass"
    assert model_schema(report)["label"]["classes"] == sorted(load_iris().target_names)


def test_a_regression_table_trains_and_evaluates(
    environments: Path, cdk_out: Path, tmp_path: Path
) -> None:
    from sklearn.datasets import load_diabetes

    # scikit-learn's diabetes: 442 patients, ten numeric features, a disease progression score.
    frame = load_diabetes(as_frame=True).frame
    path = tmp_path / "diabetes.csv"
    frame.to_csv(path, index=False)
    report = local(environments, cdk_out, tmp_path / "work", "diabetes", path, "target")
    assert report.ok, (report.failed_state, report.cause, report.releases)
    assert model_schema(report)["problem_type"] == "regression"
    # The regression default gate: R^2 above 0, the mean's (scikit-learn's r2_score reference).
    assert report.output["quality_gate"]["metric"] == "evaluation:r2"
    assert report.output["quality_gate"]["value"] > 0
    evaluation = report.output["evaluation"]
    assert evaluation["problem_type"] == "regression"
    # The targets range from 25 to 346 (scikit-learn's description): a model that learnt
    # anything has an RMSE well below that spread.
    assert 0 < evaluation["metrics"]["rmse"] < 100
