"""`mlstack local serve` of a model that carries its schema, called with raw records by
`mlstack invoke --json` / `--jsonl` and by boto3's `invoke_endpoint`.

The model is trained on the Palmer penguins (a real public dataset, tests/serving/penguins.py);
the expected labels and probabilities come from the booster's own ``predict`` on rows encoded
from the schema's specification, not from the serving code, and the answer keys from SageMaker
Autopilot's inference-container docs ("Configure inference output in generated containers")."""

from __future__ import annotations

import json
import re
import shlex
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest

from tests.cli.terminal import REPO, Terminal, mlstack, wait_gone
from tests.serving.penguins import PenguinModel, build, raw_rows

ROWS = [{k: v for k, v in row.items() if k != "species"} for row in raw_rows()]


@dataclass
class Served:
    model: PenguinModel
    url: str
    banner: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    base = tmp_path_factory.mktemp("penguins")
    model = build(base, "species", "multiclass", "multi:softprob")
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
        yield Served(model, f"http://127.0.0.1:{port}", term.output)
        term.ctrl_c()
        assert term.wait(60) == 0
    finally:
        term.close()
    assert wait_gone(mark, 15) == []


def _expected(model: PenguinModel, records: list[dict[str, Any]]) -> list[tuple[str, float]]:
    probabilities = model.predict(records)
    assert model.classes is not None
    return [(model.classes[int(np.argmax(p))], float(np.max(p))) for p in probabilities]


def _invoke(served: Served, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        mlstack("invoke", "--endpoint-url", served.url, "--endpoint-name", "penguins", *args),
        capture_output=True,
        text=True,
        timeout=60,
    )


def _table(stdout: str) -> list[list[str]]:
    lines = stdout.splitlines()
    assert lines[0].split()[:3] == ["record", "predicted_label", "probability"], stdout
    return [line.split(None, 3) for line in lines[1:]]


def test_invoke_json_prints_the_records_label_and_probability(served: Served) -> None:
    record = ROWS[0]  # Adelie, Torgersen, 2007: the dataset's first row
    done = _invoke(served, "--json", json.dumps(record))
    assert done.returncode == 0, done.stderr
    ((label, probability),) = _expected(served.model, [record])
    (row,) = _table(done.stdout)
    assert row[:2] == ["0", label]
    assert float(row[2]) == pytest.approx(probability, abs=5e-5)
    # Every class with its probability, in the schema's order.
    assert served.model.classes is not None
    assert [part.split()[0] for part in row[3].split(", ")] == served.model.classes


def test_invoke_jsonl_prints_one_line_per_record_in_order(served: Served, tmp_path: Path) -> None:
    records = ROWS[::40]  # 9 rows across the three species
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    done = _invoke(served, "--jsonl", str(path))
    assert done.returncode == 0, done.stderr
    rows = _table(done.stdout)
    expected = _expected(served.model, records)
    assert [r[0] for r in rows] == [str(i) for i in range(len(records))]
    assert [r[1] for r in rows] == [label for label, _ in expected]
    assert len({label for label, _ in expected}) > 1  # not one answer for every row


def test_boto3_invoke_endpoint_answers_raw_records_with_labels(served: Served) -> None:
    runtime = boto3.client(
        "sagemaker-runtime",
        endpoint_url=served.url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    records = ROWS[:3]
    answer = runtime.invoke_endpoint(
        EndpointName="penguins",
        ContentType="application/json",
        Accept="application/json",
        Body=json.dumps({"instances": records}).encode(),
    )
    predictions = json.loads(answer["Body"].read())["predictions"]
    expected = _expected(served.model, records)
    assert [p["predicted_label"] for p in predictions] == [label for label, _ in expected]
    assert all(p["labels"] == served.model.classes for p in predictions)


def test_the_banners_raw_record_hint_runs(served: Served) -> None:
    (line,) = [line.strip() for line in served.banner.splitlines() if " --json " in line]
    assert line.startswith("mlstack invoke ")
    words = shlex.split(line)
    record = json.loads(words[words.index("--json") + 1])
    assert list(record) == served.model.features  # every feature, by its schema name
    done = subprocess.run(mlstack(*words[1:]), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    ((label, _),) = _expected(served.model, [record])
    assert _table(done.stdout)[0][1] == label


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"island": "Biscoe",', "--json is not JSON"),
        ('[{"island": "Biscoe"}]', "got a list"),
        ('"Biscoe"', "got a string"),
    ],
)
def test_invoke_json_refuses_what_is_not_a_record(served: Served, text: str, words: str) -> None:
    done = _invoke(served, "--json", text)
    assert done.returncode == 1
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("mlstack invoke: ") and words in line


def test_invoke_jsonl_names_the_bad_line(served: Served, tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n\n[1, 2]\n", encoding="utf-8")
    done = _invoke(served, "--jsonl", str(path))
    assert done.returncode == 1
    assert f"{path} line 3 is a list" in done.stderr


def test_a_field_the_model_does_not_know_is_the_models_400_naming_it(served: Served) -> None:
    done = _invoke(served, "--json", json.dumps({**ROWS[0], "wingspan": 3}))
    assert done.returncode == 1
    # The container's words, through the gateway's ModelError (docs/serving.md, "Raw records").
    assert "field 'wingspan' is not a feature of this model" in done.stderr


def test_the_sample_in_local_mode_md_is_what_invoke_prints(served: Served, tmp_path: Path) -> None:
    # docs/local-mode.md shows this command's output for rows 1 and 201 of penguins.csv.
    text = (REPO / "docs" / "local-mode.md").read_text(encoding="utf-8")
    found = re.search(r"\$ mlstack invoke [^\n]* --jsonl records\.jsonl\n(.*?)```", text, re.S)
    assert found is not None
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(ROWS[i]) + "\n" for i in (0, 200)), encoding="utf-8")
    done = _invoke(served, "--jsonl", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout == found.group(1)


def test_invoke_output_chooses_the_answer_keys(served: Served) -> None:
    # Sent as the custom attribute output=KEYS, the inference image's per-request choice
    # (docs/serving.md; the keys are SageMaker Autopilot's).
    done = _invoke(served, "--json", json.dumps(ROWS[0]), "--output", "labels,probabilities")
    assert done.returncode == 0, done.stderr
    header, row = done.stdout.splitlines()
    assert header.split() == ["record", "probabilities"]
    assert served.model.classes is not None
    assert [part.split()[0] for part in row.split(None, 1)[1].split(", ")] == (served.model.classes)
    done = _invoke(served, "--json", json.dumps(ROWS[0]), "--output", "wingspan")
    assert done.returncode == 1
    assert "unknown output key 'wingspan'" in done.stderr
