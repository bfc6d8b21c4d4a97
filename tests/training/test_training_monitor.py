"""The ``monitor`` program, run as SageMaker Processing runs it, over captures in SageMaker's
documented capture format: drift that is there is found, drift that is not stays quiet, bad lines
and bad ground truth are counted (never a crash, never an alarm), and the outputs keep the
contract with the constructs (``metric_data.json`` in botocore's ``MetricDatum`` shape)."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import botocore.session
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlstack_containers.monitor.program import run
from mlstack_containers.paths import SageMakerPaths

from tests import programs

REPO = Path(__file__).resolve().parents[2]
BASELINE = REPO / "containers" / "training" / "baseline"
MONITOR = REPO / "containers" / "training" / "monitor"

WINDOW = ("--window-start", "2026-01-01T00:00:00Z", "--window-end", "2026-01-01T01:00:00Z")
INSIDE = "2026-01-01T00:30:00Z"
# A module fixture (the baseline) is shared by every example: nothing in it is written.
FIXTURES = [HealthCheck.function_scoped_fixture]
ARGS = (*WINDOW, "--endpoint", "mlstack-dev", "--min-records", "100")


def seeder_rows(n: int, seed: int, shift: int = 0) -> np.ndarray:
    """The seeder's distribution (lambda/seed/handler.py: x and y integers in 0..100, label 1
    when y >= 3x + 5), x shifted by ``shift``."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 101, n) + shift
    y = rng.integers(0, 101, n)
    return np.c_[(y >= 3 * x + 5).astype(int), x, y]


def capture_line(
    data: str,
    *,
    content_type: str = "text/csv",
    encoding: str = "CSV",
    output: str | None = None,
    event_id: str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
    inference_id: str | None = None,
    time: str = INSIDE,
) -> str:
    """One line as AWS's "Capture data from real-time endpoint" shows it ("View Captured Data",
    https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-data-capture-endpoint.html):
    captureData.endpointInput/endpointOutput with observedContentType, mode, data, encoding;
    eventMetadata with eventId, inferenceId (when the request sent one) and inferenceTime;
    eventVersion "0"."""
    capture: dict[str, Any] = {
        "endpointInput": {
            "observedContentType": content_type,
            "mode": "INPUT",
            "data": data,
            "encoding": encoding,
        }
    }
    if output is not None:
        capture["endpointOutput"] = {
            "observedContentType": "text/csv; charset=utf-8",
            "mode": "OUTPUT",
            "data": output,
            "encoding": "CSV",
        }
    meta = {"eventId": event_id, "inferenceTime": time}
    if inference_id is not None:
        meta["inferenceId"] = inference_id
    return json.dumps({"captureData": capture, "eventMetadata": meta, "eventVersion": "0"})


@pytest.fixture(scope="module")
def baseline_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real ``baseline`` program over 5000 seeder rows."""
    base = tmp_path_factory.mktemp("baseline")
    train = base / "processing" / "input" / "train"
    train.mkdir(parents=True)
    rows = seeder_rows(5000, seed=1)
    (train / "part-00000.csv").write_text("".join(",".join(map(str, r)) + "\n" for r in rows))
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base)}
    done = subprocess.run([str(BASELINE)], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return base / "processing" / "output" / "baseline"


def job(tmp: Path, baseline_dir: Path, lines: list[str], truth: list[str] | None = None) -> Path:
    """An /opt/ml tree with the Processing inputs of the contract."""
    inputs = tmp / "processing" / "input"
    shutil.copytree(baseline_dir, inputs / "baseline", dirs_exist_ok=True)
    hour = inputs / "capture" / "mlstack-dev" / "AllTraffic" / "2026" / "01" / "01" / "00"
    hour.mkdir(parents=True, exist_ok=True)
    (hour / "capture-0.jsonl").write_text("".join(line + "\n" for line in lines))
    if truth is not None:
        day = inputs / "ground_truth" / "2026" / "01" / "01"
        day.mkdir(parents=True, exist_ok=True)
        (day / "labels.jsonl").write_text("".join(line + "\n" for line in truth))
    return tmp


def run_monitor(base: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base)}
    return programs.run(MONITOR, args, env=env, timeout=300)


def outputs(base: Path) -> tuple[dict[str, Any], list[dict[str, Any]], str]:
    out = base / "processing" / "output" / "report"
    return (
        json.loads((out / "report.json").read_text()),
        json.loads((out / "metric_data.json").read_text())["MetricData"],
        (out / "report.html").read_text(),
    )


def csv_lines(rows: np.ndarray, **kw: Any) -> list[str]:
    return [capture_line(f"{r[1]},{r[2]}", event_id=f"e-{i}", **kw) for i, r in enumerate(rows)]


def by_name(data: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [d for d in data if d["MetricName"] == name]


# -- feature_baseline.json --------------------------------------------------------------------


def test_the_baseline_names_the_seeders_features_x_and_y(baseline_dir):
    document = json.loads((baseline_dir / "feature_baseline.json").read_text())
    assert [f["name"] for f in document["features"]] == ["x", "y"]
    assert document["names_from"] == "seeder"
    assert document["problem_type"] == "binary" and document["classes"] == ["0", "1"]
    rows = seeder_rows(5000, seed=1)
    x = document["features"][0]
    # numpy's deciles of the same column (method "lower": values of the column)
    assert (
        x["edges"]
        == np.unique(np.quantile(rows[:, 1], np.arange(1, 10) / 10, method="lower")).tolist()
    )
    counts = np.bincount(
        np.searchsorted(x["edges"], rows[:, 1], side="left"), minlength=len(x["edges"]) + 1
    )
    assert x["shares"] == pytest.approx((counts / 5000).tolist())
    assert x["missing_share"] == 0.0
    assert len(x["sample"]) == 1000 and x["sample"][0] == rows[:, 1].min()


def test_the_baseline_names_and_counts_a_schemas_categories(tmp_path):
    # A prepared dataset's shards: label index first, then the features in schema order; a
    # categorical feature is the index into its categories, empty when missing (schema.py).
    schema = {
        "schema_version": 1,
        "problem_type": "binary",
        "label": {"name": "sex", "type": "categorical", "classes": ["female", "male"]},
        "features": [
            {"name": "island", "type": "categorical", "categories": ["Biscoe", "Dream"]},
            {"name": "bill_length_mm", "type": "numeric"},
        ],
        "rows": {"train": 5, "validation": 0, "test": 0},
    }
    (tmp_path / "processing" / "input" / "schema").mkdir(parents=True)
    (tmp_path / "processing" / "input" / "schema" / "schema.json").write_text(json.dumps(schema))
    train = tmp_path / "processing" / "input" / "train"
    train.mkdir(parents=True)
    (train / "part-0.csv").write_text("0,0,39.1\n1,1,40.0\n1,1,\n0,,41.5\n1,1,38.0\n")
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(tmp_path)}
    done = programs.run(BASELINE, ["--schema", "schema"], env=env)
    assert done.returncode == 0, done.stderr
    document = json.loads(
        (tmp_path / "processing" / "output" / "baseline" / "feature_baseline.json").read_text()
    )
    island, bill = document["features"]
    assert document["names_from"] == "schema" and document["classes"] == ["female", "male"]
    # By hand: 4 present islands of 5 rows, Biscoe once, Dream three times.
    assert island == {
        "name": "island",
        "type": "categorical",
        "missing_share": 0.2,
        "categories": {"Biscoe": 0.25, "Dream": 0.75},
    }
    assert bill["name"] == "bill_length_mm" and bill["missing_share"] == 0.2


def test_the_baseline_takes_the_names_from_the_schema_its_model_carries(tmp_path):
    # What the workflow's Baseline data job passes: --model, the run's model.tar.gz, which a model
    # trained on a prepared dataset carries schema.json in (train copies it, docs/your-data.md).
    schema = {
        "schema_version": 1,
        "problem_type": "multiclass",
        "label": {"name": "species", "type": "categorical", "classes": ["a", "b", "c"]},
        "features": [
            {"name": "petal width (cm)", "type": "numeric"},
            {"name": "region", "type": "categorical", "categories": ["north", "south"]},
        ],
        "rows": {"train": 4, "validation": 0, "test": 0},
    }
    model = tmp_path / "processing" / "input" / "model"
    model.mkdir(parents=True)
    with tarfile.open(model / "model.tar.gz", "w:gz") as archive:
        for name, document in (
            ("mlstack-model.json", {"objective": "multi:softprob", "num_class": 3}),
            ("schema.json", schema),
        ):
            data = json.dumps(document).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    train = tmp_path / "processing" / "input" / "train"
    train.mkdir(parents=True)
    (train / "part-0.csv").write_text("0,0.2,0\n1,1.3,1\n2,2.1,\n1,1.1,1\n")
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(tmp_path)}
    done = programs.run(BASELINE, ["--model", "model"], env=env)
    assert done.returncode == 0, done.stderr
    document = json.loads(
        (tmp_path / "processing" / "output" / "baseline" / "feature_baseline.json").read_text()
    )
    assert document["names_from"] == "schema"
    assert [f["name"] for f in document["features"]] == ["petal width (cm)", "region"]
    # By hand: 3 present regions of 4 rows, north once, south twice.
    assert document["features"][1]["categories"] == {"north": 1 / 3, "south": 2 / 3}


def test_a_model_without_a_schema_keeps_the_seeders_names(tmp_path):
    model = tmp_path / "processing" / "input" / "model"
    model.mkdir(parents=True)
    (model / "mlstack-model.json").write_text(json.dumps({"objective": "reg:logistic"}))
    train = tmp_path / "processing" / "input" / "train"
    train.mkdir(parents=True)
    (train / "part-0.csv").write_text("0,1,2\n1,3,4\n")
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(tmp_path)}
    done = programs.run(BASELINE, ["--model", "model"], env=env)
    assert done.returncode == 0, done.stderr
    document = json.loads(
        (tmp_path / "processing" / "output" / "baseline" / "feature_baseline.json").read_text()
    )
    assert [f["name"] for f in document["features"]] == ["x", "y"]


# -- drift ------------------------------------------------------------------------------------


def test_a_documented_capture_line_is_read(tmp_path, baseline_dir):
    # AWS's example line carries one CSV record and its CSV prediction; ours have two features.
    line = capture_line("37,82\n", output="0.0254181120544672")
    job(tmp_path, baseline_dir, [line])
    result = run_monitor(tmp_path, *ARGS)
    assert result.returncode == 0, result.stderr
    report, data, _ = outputs(tmp_path)
    assert report["records"]["captured"] == 1 and report["records"]["rejected"] == 0
    assert report["status"] == "not_enough_data"
    # Too few records: neither the drifted share nor a feature's drift is published.
    assert by_name(data, "DriftedFeatureShare") == [] and by_name(data, "FeatureDrift") == []
    assert by_name(data, "CapturedRecords")[0]["Value"] == 1
    assert report["alarms"] == {"drift": False, "quality": False}


def test_shifted_traffic_drifts_and_the_alarm_fires(tmp_path, baseline_dir):
    job(tmp_path, baseline_dir, csv_lines(seeder_rows(2000, seed=2, shift=40)))
    assert run_monitor(tmp_path, *ARGS).returncode == 0
    report, data, page = outputs(tmp_path)
    x, y = report["drift"]["features"]
    assert x["drifted"] and x["psi"] > 0.2 and x["p_value"] < 0.01
    assert not y["drifted"]
    assert report["drift"]["drifted_share_percent"] == 50.0
    assert report["alarms"]["drift"] is True
    assert by_name(data, "DriftedFeatureShare")[0]["Value"] == 50.0
    drift = {d["Dimensions"][1]["Value"]: d["Value"] for d in by_name(data, "FeatureDrift")}
    assert drift["x"] == pytest.approx(x["psi"])
    assert "drift alarm: would fire" in page


def test_unshifted_traffic_stays_quiet(tmp_path, baseline_dir):
    job(tmp_path, baseline_dir, csv_lines(seeder_rows(2000, seed=3)))
    assert run_monitor(tmp_path, *ARGS).returncode == 0
    report, data, page = outputs(tmp_path)
    assert [f["drifted"] for f in report["drift"]["features"]] == [False, False]
    assert all(f["psi"] < 0.05 for f in report["drift"]["features"])
    assert report["alarms"]["drift"] is False
    assert by_name(data, "DriftedFeatureShare")[0]["Value"] == 0.0
    assert "drift alarm: quiet" in page


def test_records_outside_the_window_are_not_counted(tmp_path, baseline_dir):
    rows = seeder_rows(300, seed=4, shift=40)
    lines = csv_lines(rows, time="2026-01-01T01:00:00Z")  # the end is outside: [start, end)
    job(tmp_path, baseline_dir, lines)
    assert run_monitor(tmp_path, *ARGS).returncode == 0
    report, _, _ = outputs(tmp_path)
    assert report["records"]["captured"] == 0 and report["records"]["outside_window"] == 300
    assert report["status"] == "not_enough_data" and not report["alarms"]["drift"]


def test_every_request_form_of_the_serving_container_is_decoded(tmp_path, baseline_dir):
    # The serving container's request forms (docs/serving.md): CSV rows, JSON instances, a JSON
    # list, JSON Lines, and a body SageMaker captured base64-encoded.
    lines = [
        capture_line("1,2\n3,4"),
        capture_line(
            json.dumps({"instances": [[5, 6]]}), content_type="application/json", encoding="JSON"
        ),
        capture_line("[[7, 8]]", content_type="application/json", encoding="JSON"),
        capture_line(
            '{"features": [9, 10]}\n{"features": [11, 12]}',
            content_type="application/jsonlines",
            encoding="JSON",
        ),
        capture_line(base64.b64encode(b"13,14").decode(), encoding="BASE64"),
    ]
    job(tmp_path, baseline_dir, lines)
    assert run_monitor(tmp_path, *ARGS).returncode == 0
    report, _, _ = outputs(tmp_path)
    assert report["records"] == {
        "captured": 7,
        "requests": 5,
        "outside_window": 0,
        "rejected": 0,
        "content_types": {"text/csv": 2, "application/json": 2, "application/jsonlines": 1},
    }


# -- bad input ---------------------------------------------------------------------------------

GOOD = capture_line("50,50")
BAD_LINES = st.one_of(
    st.text(max_size=80),
    st.binary(max_size=80).map(lambda b: b.decode("latin-1")),
    st.integers(1, len(GOOD) - 1).map(lambda n: GOOD[:n]),  # a truncated line
    st.sampled_from(
        [
            capture_line("abc,def"),
            capture_line("1,2,3"),
            capture_line("1,2", content_type="image/png"),
            capture_line("!!!", encoding="BASE64"),
            capture_line("1,2", encoding="GZIP"),
            capture_line("1,2", time="yesterday"),
            '{"captureData": {}, "eventMetadata": {"eventId": "e", "inferenceTime": "'
            + INSIDE
            + '"}}',
            "[]",
            "null",
        ]
    ),
)


@settings(max_examples=40, deadline=None, suppress_health_check=FIXTURES)
@given(bad=st.lists(BAD_LINES, min_size=1, max_size=12))
def test_bad_capture_lines_are_counted_never_a_crash_never_an_alarm(
    tmp_path_factory, baseline_dir, bad
):
    base = tmp_path_factory.mktemp("bad")
    good = csv_lines(seeder_rows(150, seed=5))
    job(base, baseline_dir, good + bad)
    written = run(list(ARGS), SageMakerPaths(base))
    assert written
    report, data, _ = outputs(base)
    blank = sum(1 for line in bad if not line.strip() or "\n" in line)
    assert report["records"]["requests"] + report["records"]["rejected"] <= 150 + len(bad) + blank
    assert report["records"]["requests"] >= 150
    assert report["alarms"]["drift"] is False
    assert len(report["rejected_examples"]) <= 20
    assert by_name(data, "RejectedRecords")[0]["Value"] == report["records"]["rejected"]


def test_an_empty_capture_is_not_enough_data(tmp_path, baseline_dir):
    job(tmp_path, baseline_dir, [])
    assert run_monitor(tmp_path, *ARGS).returncode == 0
    report, data, _ = outputs(tmp_path)
    assert report["status"] == "not_enough_data" and report["records"]["captured"] == 0
    assert {d["MetricName"] for d in data} == {"CapturedRecords", "RejectedRecords"}


def test_no_baseline_fails_the_job_with_a_message(tmp_path):
    (tmp_path / "processing" / "input" / "capture").mkdir(parents=True)
    result = run_monitor(tmp_path, *ARGS)
    assert result.returncode == 1
    message = (tmp_path / "output" / "message").read_text()
    assert "feature_baseline.json does not exist" in message
    assert (tmp_path / "output" / "failure").read_text() == message


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--endpoint", "e"), "--window-start"),
        ((*WINDOW[:2], "--window-end", "2025-01-01T00:00:00Z", "--endpoint", "e"), "before"),
        ((*WINDOW, "--endpoint", "e", "--p-value", "2"), "--p-value 2.0"),
        ((*WINDOW, "--endpoint", "e", "--quality-metric", "RMSE"), "a binary model has"),
    ],
)
def test_bad_arguments_fail_naming_them(tmp_path, baseline_dir, args, expected):
    job(tmp_path, baseline_dir, [])
    result = run_monitor(tmp_path, *args)
    assert result.returncode == 1
    assert expected in (tmp_path / "output" / "message").read_text()


# -- quality -----------------------------------------------------------------------------------


def labelled(n: int, seed: int) -> tuple[list[str], list[int]]:
    """Captured requests with InferenceIds and the model's score, and the true labels."""
    rows = seeder_rows(n, seed)
    lines = [
        capture_line(f"{r[1]},{r[2]}", inference_id=f"id-{i}", output="0.9" if r[0] else "0.1")
        for i, r in enumerate(rows)
    ]
    return lines, [int(r[0]) for r in rows]


QUALITY = (*ARGS, "--quality-metric", "Accuracy", "--quality-threshold", "0.8")


def test_right_labels_give_quality_metrics_and_no_alarm(tmp_path, baseline_dir):
    lines, labels = labelled(200, seed=6)
    truth = [json.dumps({"inference_id": f"id-{i}", "label": v}) for i, v in enumerate(labels)]
    job(tmp_path, baseline_dir, lines, truth)
    assert run_monitor(tmp_path, *QUALITY).returncode == 0
    report, data, _ = outputs(tmp_path)
    assert report["quality"]["labelled"] == 200
    assert report["quality"]["metrics"]["Accuracy"] == 1.0
    assert report["alarms"]["quality"] is False
    assert by_name(data, "Accuracy")[0]["Value"] == 1.0
    assert by_name(data, "LabelledRecords")[0]["Value"] == 200


def test_labels_that_make_accuracy_drop_fire_the_quality_alarm(tmp_path, baseline_dir):
    lines, labels = labelled(200, seed=7)
    # Every fourth label contradicts the prediction: accuracy 0.75, under the threshold 0.8.
    truth = [
        json.dumps({"inference_id": f"id-{i}", "label": 1 - v if i % 4 == 0 else v})
        for i, v in enumerate(labels)
    ]
    job(tmp_path, baseline_dir, lines, truth)
    assert run_monitor(tmp_path, *QUALITY).returncode == 0
    report, data, _ = outputs(tmp_path)
    assert report["quality"]["metrics"]["Accuracy"] == 0.75
    assert report["alarms"]["quality"] is True
    assert by_name(data, "Accuracy")[0]["Value"] == 0.75


BAD_TRUTH = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            '{"inference_id": "id-1", "label": "maybe"}',
            '{"inference_id": 5, "label": 1}',
            '{"inference_id": "", "label": 1}',
            '{"inference_id": "id-2", "label": true}',
            '{"inference_id": "id-3", "label": 7}',
            '{"inference_id": "id-4"}',
            '{"inference_id": "id-0", "label": 0}',  # a duplicate of the first line
            '{"inference_id": "nobody", "label": 1}',
            '{"inference_id": "id-5", "label": [1, 0]}',
        ]
    ),
)


@settings(max_examples=30, deadline=None, suppress_health_check=FIXTURES)
@given(bad=st.lists(BAD_TRUTH, max_size=10))
def test_bad_ground_truth_is_counted_never_a_crash_never_an_alarm(
    tmp_path_factory, baseline_dir, bad
):
    base = tmp_path_factory.mktemp("truth")
    lines, labels = labelled(120, seed=8)
    truth = [json.dumps({"inference_id": f"id-{i}", "label": v}) for i, v in enumerate(labels)]
    job(base, baseline_dir, lines, truth + bad)
    run([*QUALITY], SageMakerPaths(base))
    report, _, _ = outputs(base)
    quality = report["quality"]
    # The good labels decide; a bad line never becomes a wrong label.
    assert quality["metrics"]["Accuracy"] == 1.0
    assert report["alarms"]["quality"] is False
    assert quality["labelled"] == 120
    # Every line is accounted for: kept and joined, kept and unmatched, or counted as bad.
    gt = quality["ground_truth"]
    kept = 120 + gt["unmatched"] + gt["mismatched"]
    assert gt["lines"] == kept + gt["rejected"] + gt["duplicates"]


def test_metric_data_fits_botocores_put_metric_data(tmp_path, baseline_dir):
    lines, labels = labelled(200, seed=9)
    truth = [json.dumps({"inference_id": f"id-{i}", "label": v}) for i, v in enumerate(labels)]
    job(tmp_path, baseline_dir, lines, truth)
    assert run_monitor(tmp_path, *QUALITY).returncode == 0
    _, data, _ = outputs(tmp_path)
    model = botocore.session.get_session().get_service_model("cloudwatch")
    shape = model.operation_model("PutMetricData").input_shape.members["MetricData"]
    datum = shape.member
    units = datum.members["Unit"].enum
    assert len(data) <= 1000
    for item in data:
        assert set(item) <= set(datum.members)  # MetricName, Dimensions, Value, Unit
        assert item["Unit"] in units
        assert 1 <= len(item["MetricName"]) <= datum.members["MetricName"].metadata["max"]
        for dimension in item["Dimensions"]:
            assert set(dimension) == set(datum.members["Dimensions"].member.required_members)
    # The namespace is the state machine's: not in the file.
    assert not any("Namespace" in item for item in data)
    names = {d["MetricName"] for d in data}
    assert names == {
        "CapturedRecords",
        "RejectedRecords",
        "LabelledRecords",
        "Accuracy",
        "AUC",
        "F1",
        "DriftedFeatureShare",
        "FeatureDrift",
    }


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.gpu"])
def test_the_images_put_monitor_on_path_for_processing_jobs(dockerfile):
    # Processing runs `monitor` as ContainerEntrypoint ("How Amazon SageMaker Processing Runs
    # Your Processing Container Image"): it must be on the image's PATH, executable in git.
    lines = (REPO / "containers" / "training" / dockerfile).read_text().splitlines()
    assert "COPY training/monitor /usr/local/bin/monitor" in lines
    mode = subprocess.run(
        ["git", "ls-files", "-s", "containers/training/monitor"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert mode and mode[0] == "100755"


def test_the_quality_metrics_are_the_ones_the_config_and_alarms_know():
    # One rule, two readers: mlstack.rules (config validation, the alarms' comparison) and the
    # program (what it publishes); the container cannot import mlstack, so they are compared.
    from mlstack_containers.monitor import quality

    from mlstack import rules

    assert {k: tuple(v) for k, v in quality.QUALITY_METRICS.items()} == rules.QUALITY_METRICS
    assert quality.HIGHER_IS_BETTER == rules.HIGHER_IS_BETTER
    assert {k: v[0] for k, v in rules.QUALITY_METRICS.items()} == quality.DEFAULT_METRIC


# -- a model that carries its schema: raw records, a categorical feature ------------------------

PENGUINS = {
    "schema_version": 1,
    "problem_type": "binary",
    "label": {"name": "sex", "type": "categorical", "classes": ["female", "male"]},
    "features": [
        {"name": "island", "type": "categorical", "categories": ["Biscoe", "Dream", "Torgersen"]},
        {"name": "bill_length_mm", "type": "numeric"},
    ],
    "rows": {"train": 3000, "validation": 0, "test": 0},
}


@pytest.fixture(scope="module")
def schema_baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real ``baseline`` program over prepared shards (a category's index, as prepare
    writes it: schema.py) with the schema as an input: islands 50/30/20 %."""
    base = tmp_path_factory.mktemp("schema-baseline")
    inputs = base / "processing" / "input"
    (inputs / "schema").mkdir(parents=True)
    (inputs / "schema" / "schema.json").write_text(json.dumps(PENGUINS))
    (inputs / "train").mkdir()
    rng = np.random.default_rng(11)
    islands = rng.choice(3, 3000, p=[0.5, 0.3, 0.2])
    bills = rng.normal(44, 5, 3000).round(1)
    pairs = enumerate(zip(islands, bills, strict=True))
    shard = "".join(f"{i % 2},{island},{bill}\n" for i, (island, bill) in pairs)
    (inputs / "train" / "part-0.csv").write_text(shard)
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base)}
    done = programs.run(BASELINE, ["--schema", "schema"], env=env)
    assert done.returncode == 0, done.stderr
    return base / "processing" / "output" / "baseline"


def raw_records(n: int, seed: int, shares: list[float]) -> list[str]:
    """Raw JSON records as a client of the schema model sends them (docs/serving.md): one
    bare object a request, the island by name."""
    rng = np.random.default_rng(seed)
    names = ["Biscoe", "Dream", "Torgersen"]
    return [
        capture_line(
            json.dumps({"island": names[i], "bill_length_mm": float(b)}),
            content_type="application/json",
            encoding="JSON",
            event_id=f"r-{k}",
        )
        for k, (i, b) in enumerate(
            zip(rng.choice(3, n, p=shares), rng.normal(44, 5, n).round(1), strict=True)
        )
    ]


def test_raw_records_of_a_schema_model_drift_by_category(tmp_path, schema_baseline):
    # Torgersen from 20 % to 60 % of the traffic: chi-squared and PSI both see it.
    job(tmp_path, schema_baseline, raw_records(1500, seed=12, shares=[0.2, 0.2, 0.6]))
    assert run_monitor(tmp_path, *ARGS).returncode == 0
    report, data, _ = outputs(tmp_path)
    island, bill = report["drift"]["features"]
    assert (island["name"], island["type"], island["test"]) == ("island", "categorical", "chi2")
    assert island["drifted"] and island["p_value"] < 0.01 and island["psi"] > 0.2
    assert bill["name"] == "bill_length_mm" and not bill["drifted"]
    assert report["records"]["rejected"] == 0 and report["alarms"]["drift"] is True
    features = {d["Dimensions"][1]["Value"] for d in by_name(data, "FeatureDrift")}
    assert features == {"island", "bill_length_mm"}


def test_raw_records_in_the_training_shares_stay_quiet(tmp_path, schema_baseline):
    job(tmp_path, schema_baseline, raw_records(1500, seed=13, shares=[0.5, 0.3, 0.2]))
    assert run_monitor(tmp_path, *ARGS).returncode == 0
    report, _, _ = outputs(tmp_path)
    assert [f["drifted"] for f in report["drift"]["features"]] == [False, False]
    assert report["alarms"]["drift"] is False


# Step Functions service quotas: "Maximum input or output size for a task, state, or execution:
# 256 KiB of data as a UTF-8 encoded string"; a larger task result fails the task with
# States.DataLimitExceeded. Read metrics (S3 GetObject) carries the whole file as its Body.
STEP_FUNCTIONS_PAYLOAD_BYTES = 262_144
# CloudWatch's Dimension Value: 1 to 1024 characters (botocore's cloudwatch model).
DIMENSION_VALUE_MAX = (
    botocore.session.get_session()
    .get_service_model("cloudwatch")
    .shape_for("DimensionValue")
    .metadata["max"]
)


@settings(max_examples=20, deadline=None)
@given(
    names=st.lists(
        st.text(min_size=1, max_size=DIMENSION_VALUE_MAX), min_size=1, max_size=1200, unique=True
    ),
    seed=st.integers(0, 2**32 - 1),
)
def test_metric_data_fits_the_task_result_read_metrics_gets(names, seed):
    from mlstack_containers.monitor import report as report_mod

    psi = np.random.default_rng(seed).random(len(names))
    report = {
        "endpoint": "mlstack-prod-endpoint",
        "status": "ok",
        "records": {"captured": 5000, "rejected": 3},
        "drift": {
            "drifted_share_percent": 40.0,
            "features": [{"name": n, "psi": float(v)} for n, v in zip(names, psi, strict=True)],
        },
    }
    # What write() puts in metric_data.json (the end-to-end runs above read that file).
    body = report_mod.metric_data_text(report_mod.metric_data(report)).decode()
    # The GetObject result as the AWS SDK integration returns it (Body as a string).
    result = {
        "Body": body,
        "AcceptRanges": "bytes",
        "ContentLength": len(body),
        "ContentType": "application/json",
        "ETag": '"0123456789abcdef0123456789abcdef"',
        "LastModified": "2026-12-07T14:05:00Z",
        "Metadata": {},
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": "arn:aws:kms:us-east-1:111122223333:key/" + "0" * 36,
    }
    result_bytes = len(json.dumps(result, ensure_ascii=False).encode())
    assert result_bytes <= STEP_FUNCTIONS_PAYLOAD_BYTES - 32 * 1024  # room for the state input
    data = json.loads(body)["MetricData"]
    assert len(data) <= 1000
    assert [d["MetricName"] for d in data[:3]] == [
        "CapturedRecords",
        "RejectedRecords",
        "DriftedFeatureShare",
    ]
    kept = {d["Dimensions"][1]["Value"]: d["Value"] for d in data[3:]}
    assert kept, "the most drifted feature is always published"
    # What is left out is never more drifted than what is kept.
    left_out = [f["psi"] for f in report["drift"]["features"] if f["name"] not in kept]
    assert not left_out or max(left_out) <= min(kept.values())
    for name, value in kept.items():
        assert value == dict(zip(names, psi.tolist(), strict=True))[name]
