"""A table run's model, end to end (issue #20, "Done when"): one local run of the workflow on a
real dataset with a text label and a categorical column, then ``mlstack local serve --from-run``
of that run, called with raw JSON records by field name from boto3's ``invoke_endpoint`` against
the local gateway and from ``mlstack invoke --json``.

The data is scikit-learn's bundled iris with its species names as the label and a ``region``
column with missing values (tests/local/test_local_your_data.py builds it). The expected labels
and probabilities come from the run's own booster (``Booster.predict``) on rows encoded from the
schema's specification (tests/serving/penguins.py: a category is its index in ``categories``,
missing or unknown is NaN), never from the server; the classes from scikit-learn's copy."""

from __future__ import annotations

import json
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import numpy as np
import pytest
from mlstack_containers import model_io
from sklearn.datasets import load_iris

from mlstack.local.assembly import Image
from mlstack.local.runner import RunReport
from mlstack.local.s3 import EmbeddedS3
from mlstack.local.sagemaker import LocalSageMaker, extract_model
from tests.cli.terminal import REPO, Terminal, mlstack, wait_gone
from tests.local.test_local_your_data import (  # noqa: F401 (fixtures)
    cdk_out,
    environments,
    iris_csv,
    two_runs,
)
from tests.serving.penguins import PenguinModel

IRIS = load_iris(as_frame=True)
FEATURES = list(IRIS.feature_names)  # "sepal length (cm)", ...


def iris_records(rows: range) -> list[dict[str, Any]]:
    """Rows of the iris table as a caller has them: every measurement by its column name and
    the region as text, null where the table has none (as iris_csv writes it)."""
    regions = ["north", "south", "east", None]
    return [
        {**{name: float(IRIS.frame[name][i]) for name in FEATURES}, "region": regions[i % 4]}
        for i in rows
    ]


@pytest.fixture(scope="module")
def table_run(two_runs: tuple[RunReport, RunReport]) -> RunReport:  # noqa: F811
    """The first of test_local_your_data's two iris runs (one per session, tests/once.py)."""
    report = two_runs[0]
    assert report.status == "SUCCEEDED", (report.failed_state, report.cause)
    return report


@dataclass
class Served:
    model: PenguinModel  # the run's booster and schema, with the spec's encoding
    url: str
    name: str


def run_model(report: RunReport, into: Path) -> PenguinModel:
    """The run's model.tar.gz (the training job's, in the run's S3) unpacked: its booster, and
    its schema read into the spec's encoding."""
    uri = report.output["model_artifact_uri"]
    extract_model((report.run_dir / "s3" / uri[len("s3://") :]).read_bytes(), into)
    schema = json.loads((into / "schema.json").read_text(encoding="utf-8"))
    features = [str(f["name"]) for f in schema["features"]]
    categories = {
        str(f["name"]): list(f["categories"]) for f in schema["features"] if f.get("categories")
    }
    booster = model_io.load_booster(into / model_io.MODEL_FILENAME)
    label = str(schema["label"]["name"])
    classes = list(schema["label"]["classes"])
    return PenguinModel(into, booster, schema, label, features, categories, classes)


@pytest.fixture(scope="module")
def served(table_run: RunReport, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    base = tmp_path_factory.mktemp("served")
    model = run_model(table_run, base / "model")
    with socket.socket() as probe:  # a free port, given back for the gateway
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mark = uuid.uuid4().hex
    term = Terminal(
        mlstack("local", "serve", "--from-run", str(table_run.run_dir), "--port", str(port)),
        env={"MLSTACK_TEST_MARK": mark, "TMPDIR": str(base)},
    )
    try:
        name = term.wait_for(r"Serving endpoint '([^']+)'", 180).group(1)
        term.wait_for(r"Ctrl-C stops it\.", 60)
        yield Served(model, f"http://127.0.0.1:{port}", name)
        term.ctrl_c()
        assert term.wait(60) == 0
    finally:
        term.close()
    assert wait_gone(mark, 15) == []


def expected(model: PenguinModel, records: list[dict[str, Any]]) -> list[tuple[str, np.ndarray]]:
    """Each record's class (the most probable) and class probabilities, from the booster."""
    assert model.classes is not None
    return [(model.classes[int(np.argmax(p))], p) for p in model.predict(records)]


def runtime(served: Served) -> Any:
    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=served.url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def test_the_run_serves_the_model_trained_on_the_table(served: Served) -> None:
    # The model the run trained carries the table's schema: the species as classes (in
    # scikit-learn's copy) and the region as a category.
    assert served.model.classes == sorted(IRIS.target_names)
    assert served.model.features == [*FEATURES, "region"]
    assert set(served.model.categories["region"]) == {"east", "north", "south"}


def test_boto3_invoke_endpoint_answers_raw_json_records_with_labels_and_probabilities(
    served: Served,
) -> None:
    records = iris_records(range(0, 150, 7))  # 22 rows across the three species
    records[1]["region"] = "west"  # a category the model never saw: missing
    del records[2]["region"]  # an absent field: missing
    answer = runtime(served).invoke_endpoint(
        EndpointName=served.name,
        ContentType="application/json",
        Accept="application/json",
        Body=json.dumps({"instances": records}).encode(),
    )
    predictions = json.loads(answer["Body"].read())["predictions"]
    want = expected(served.model, records)
    assert [p["predicted_label"] for p in predictions] == [label for label, _ in want]
    assert len({label for label, _ in want}) == 3  # the rows span every species
    for prediction, (_, probabilities) in zip(predictions, want, strict=True):
        assert prediction["labels"] == sorted(IRIS.target_names)
        assert prediction["probabilities"] == pytest.approx(probabilities.tolist(), abs=1e-6)
        assert prediction["probability"] == pytest.approx(float(probabilities.max()), abs=1e-6)


def test_a_bare_record_and_json_lines_are_answered_the_same_way(served: Served) -> None:
    records = iris_records(range(60, 63))
    client = runtime(served)
    bare = client.invoke_endpoint(
        EndpointName=served.name,
        ContentType="application/json",
        Accept="application/jsonlines",
        Body=json.dumps(records[0]).encode(),
    )
    lines = client.invoke_endpoint(
        EndpointName=served.name,
        ContentType="application/jsonlines",
        Accept="text/csv",
        Body="".join(json.dumps(r) + "\n" for r in records).encode(),
    )
    want = expected(served.model, records)
    assert json.loads(bare["Body"].read())["predicted_label"] == want[0][0]
    # CSV answers: predicted_label,probability per record (Autopilot's default columns).
    rows = [line.split(",") for line in lines["Body"].read().decode().splitlines()]
    assert [r[0] for r in rows] == [label for label, _ in want]
    assert [float(r[1]) for r in rows] == pytest.approx([float(p.max()) for _, p in want], 1e-6)


def test_a_record_of_the_wrong_type_is_refused_naming_the_record_and_field(
    served: Served,
) -> None:
    records = iris_records(range(2))
    records[1]["petal width (cm)"] = "wide"
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        runtime(served).invoke_endpoint(
            EndpointName=served.name,
            ContentType="application/json",
            Body=json.dumps({"instances": records}).encode(),
        )
    # InvokeEndpoint's ModelError for a container's 4xx (botocore's sagemaker-runtime model:
    # ModelError carries OriginalStatusCode and OriginalMessage).
    error = caught.value.response
    assert error["Error"]["Code"] == "ModelError"
    assert error["OriginalStatusCode"] == 400
    assert "record 1: field 'petal width (cm)' must be a number" in error["OriginalMessage"]


def test_mlstack_invoke_json_prints_the_records_label(served: Served) -> None:
    (record,) = iris_records(range(120, 121))
    done = subprocess.run(
        mlstack("invoke", "--endpoint-url", served.url, "--endpoint-name", served.name,
                "--json", json.dumps(record)),
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    ((label, probabilities),) = expected(served.model, [record])
    header, row = done.stdout.splitlines()
    assert header.split()[:3] == ["record", "predicted_label", "probability"]
    index, predicted, probability, every = row.split(None, 3)
    assert (index, predicted) == ("0", label)
    assert float(probability) == pytest.approx(float(probabilities.max()), abs=5e-5)
    assert [part.split()[0] for part in every.split(", ")] == sorted(IRIS.target_names)


def test_a_transform_job_of_raw_csv_rows_writes_each_row_joined_to_its_label(
    table_run: RunReport, tmp_path: Path
) -> None:
    # The run's model.tar.gz through local mode's CreateTransformJob, the rows as the table
    # has them (no label, the region as text or empty), JoinSource Input ("Associate
    # Prediction Results with Input Records", SageMaker Developer Guide): each input row
    # followed by its predicted_label,probability, one line per row, in order.
    records = iris_records(range(3, 150, 5))
    rows = [",".join(repr(r[n]) for n in FEATURES) + "," + (r["region"] or "") for r in records]
    uri = table_run.output["model_artifact_uri"]
    image_uri = "000000000000.dkr.ecr.us-east-1.amazonaws.com/inference:local"
    image = Image(uri=image_uri, directory=REPO / "containers", dockerfile="inference/Dockerfile")
    with EmbeddedS3() as s3:
        s3.create_bucket("data")
        s3.write("s3://data/model.tar.gz", (table_run.run_dir / "s3" / uri[5:]).read_bytes())
        s3.write("s3://data/rows/iris.csv", ("\n".join(rows) + "\n").encode())
        sagemaker = LocalSageMaker(tmp_path / "run", s3, {image_uri: image})
        try:
            sagemaker.create_model(
                {
                    "ModelName": "iris",
                    "PrimaryContainer": {
                        "Image": image_uri,
                        "ModelDataUrl": "s3://data/model.tar.gz",
                    },
                    "ExecutionRoleArn": "arn:aws:iam::000000000000:role/sagemaker",
                }
            )
            sagemaker.create_transform_job(
                {
                    "TransformJobName": "iris-rows",
                    "ModelName": "iris",
                    "TransformInput": {
                        "DataSource": {
                            "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://data/rows/"}
                        },
                        "ContentType": "text/csv",
                        "SplitType": "Line",
                    },
                    "TransformOutput": {
                        "S3OutputPath": "s3://data/out",
                        "Accept": "text/csv",
                        "AssembleWith": "Line",
                    },
                    "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
                    "DataProcessing": {"JoinSource": "Input"},
                }
            )
            output = s3.read("s3://data/out/iris.csv.out").decode().splitlines()
        finally:
            sagemaker.stop()
    want = expected(run_model(table_run, tmp_path / "model"), records)
    assert len(output) == len(rows)
    for line, row, (label, probabilities) in zip(output, rows, want, strict=True):
        given, predicted, probability = line.rsplit(",", 2)
        assert (given, predicted) == (row, label)
        assert float(probability) == pytest.approx(float(probabilities.max()), abs=1e-6)
