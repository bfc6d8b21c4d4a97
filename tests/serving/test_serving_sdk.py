"""The SageMaker Python SDK against ``mlstack local serve`` (issue #20): its ``Predictor`` with
``JSONSerializer``/``JSONDeserializer`` and ``CSVSerializer``, as a user of the SDK calls an
endpoint, sending raw penguin records by field name and raw CSV rows.

The SDK (sagemaker 2.x, pinned in requirements-sdk.txt) cannot share ``.venv``: it pins
``rich<15`` and ``protobuf<7`` below mlstack's. It runs from ``.venv-sdk`` (``make setup``), in a
client script this test starts; the expected labels come from the booster's own ``predict``
on rows encoded from the schema's specification (tests/serving/penguins.py), not from the
server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from tests.cli.terminal import Terminal, mlstack, wait_gone
from tests.serving.conftest import REPO
from tests.serving.penguins import PenguinModel, build, raw_rows

SDK_PYTHON = REPO / ".venv-sdk" / "bin" / "python"
RECORDS = [
    {k: v for k, v in row.items() if k != "species"}
    for row in raw_rows()[::30]
    if all(v is not None for v in row.values())
]

CLIENT = """
import json, sys

import boto3
import sagemaker
from sagemaker.deserializers import CSVDeserializer, JSONDeserializer
from sagemaker.predictor import Predictor
from sagemaker.serializers import CSVSerializer, JSONSerializer

url, records, rows = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
boto = boto3.Session(
    region_name="us-east-1", aws_access_key_id="local", aws_secret_access_key="local"
)
session = sagemaker.Session(
    boto_session=boto,
    sagemaker_runtime_client=boto.client("sagemaker-runtime", endpoint_url=url),
)
as_json = Predictor(
    "penguins", session, serializer=JSONSerializer(), deserializer=JSONDeserializer()
)
as_csv = Predictor("penguins", session, serializer=CSVSerializer(), deserializer=CSVDeserializer())
print(json.dumps({
    "version": sagemaker.__version__,
    "instances": as_json.predict({"instances": records}),
    "bare": as_json.predict(records[0]),
    "custom": as_json.predict(
        {"instances": records}, custom_attributes="output=predicted_label"
    ),
    "csv": as_csv.predict(rows),
    "csv_to_json": Predictor(
        "penguins", session, serializer=CSVSerializer(), deserializer=JSONDeserializer()
    ).predict(rows),
}))
"""


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> PenguinModel:
    return build(tmp_path_factory.mktemp("penguins"), "species", "multiclass", "multi:softprob")


@pytest.fixture(scope="module")
def answers(model: PenguinModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """What the SDK's predictors returned, from one client run against ``local serve``."""
    base = model.base
    with socket.socket() as probe:  # a free port, given back for the gateway
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mark = uuid.uuid4().hex
    term = Terminal(
        mlstack("local", "serve", "--model", str(base / "model"), "--port", str(port),
                "--endpoint-name", "penguins"),
        env={"MLSTACK_TEST_MARK": mark, "TMPDIR": str(base)},
    )  # fmt: skip
    try:
        term.wait_for(r"Ctrl-C stops it\.", 180)
        rows = [[r[name] for name in model.features] for r in RECORDS]
        home = tmp_path_factory.mktemp("home")  # no user's SDK or AWS configuration
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        done = subprocess.run(
            [str(SDK_PYTHON), "-c", CLIENT, f"http://127.0.0.1:{port}", json.dumps(RECORDS),
             json.dumps(rows)],
            capture_output=True, text=True, timeout=180, check=False,
            env={**env, "HOME": str(home), "AWS_EC2_METADATA_DISABLED": "true"},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        yield json.loads(done.stdout.strip().splitlines()[-1])
        term.ctrl_c()
        assert term.wait(60) == 0
    finally:
        term.close()
    assert wait_gone(mark, 15) == []


def expected(model: PenguinModel, records: list[dict[str, Any]]) -> list[str]:
    classes = model.classes or []
    return [classes[int(np.argmax(p))] for p in model.predict(records)]


def test_the_client_is_the_sagemaker_python_sdk_2(answers: Any) -> None:
    assert answers["version"].split(".")[0] == "2", answers["version"]


def test_json_serializer_sends_instances_and_json_deserializer_reads_the_labels(
    answers: Any, model: PenguinModel
) -> None:
    predictions = answers["instances"]["predictions"]
    assert [p["predicted_label"] for p in predictions] == expected(model, RECORDS)
    assert len(set(expected(model, RECORDS))) == 3  # the records span the three species
    want = model.predict(RECORDS)
    for prediction, probabilities in zip(predictions, want, strict=True):
        assert prediction["labels"] == model.classes
        assert prediction["probabilities"] == pytest.approx(probabilities.tolist(), abs=1e-6)


def test_json_serializer_sends_one_bare_record(answers: Any, model: PenguinModel) -> None:
    (prediction,) = answers["bare"]["predictions"]
    assert prediction["predicted_label"] == expected(model, RECORDS[:1])[0]


def test_csv_serializer_sends_raw_rows_and_csv_deserializer_reads_label_and_probability(
    answers: Any, model: PenguinModel
) -> None:
    # CSVDeserializer gives a list of rows of strings: predicted_label,probability (the CSV
    # answer's default columns).
    rows = answers["csv"]
    assert [r[0] for r in rows] == expected(model, RECORDS)
    want = model.predict(RECORDS).max(axis=1)
    assert [float(r[1]) for r in rows] == pytest.approx(want.tolist(), abs=1e-6)


def test_csv_serializer_with_json_deserializer_gets_every_key(
    answers: Any, model: PenguinModel
) -> None:
    predictions = answers["csv_to_json"]["predictions"]
    assert [p["predicted_label"] for p in predictions] == expected(model, RECORDS)
    assert all(set(p) == {"predicted_label", "probability", "labels", "probabilities"}
               for p in predictions)  # fmt: skip


def test_the_predictors_custom_attributes_choose_the_answer_keys(
    answers: Any, model: PenguinModel
) -> None:
    # predict(..., custom_attributes=...) is the SDK's InvokeEndpoint CustomAttributes: the
    # per-request way to choose the keys (docs/serving.md, "Choosing the keys").
    predictions = answers["custom"]["predictions"]
    assert predictions == [{"predicted_label": label} for label in expected(model, RECORDS)]
