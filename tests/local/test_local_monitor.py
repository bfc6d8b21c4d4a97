"""Local data capture and `mlstack local monitor`: one local run of an environment that captures
(prod's settings, a quality alarm added), traffic through the local gateway into the account's
data capture in SageMaker's format, then the monitor job over it: shifted traffic drifts and
the drift alarm would fire, unshifted traffic stays quiet, labels that contradict the model
make the quality alarm fire."""

from __future__ import annotations

import argparse
import io
import json
import random
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest

from mlstack.cli.local_monitor import run_monitor, summary
from mlstack.local.account import LocalAccount
from mlstack.local.assembly import REPO, Image
from mlstack.local.capture import serve_capture
from mlstack.local.gateway import Gateway, Target
from mlstack.local.runner import RunOptions, run
from mlstack.local.sagemaker import extract_model, start_serve
from mlstack.local.ui import Reporter
from tests import programs

ENV = "prod"


@dataclass
class Account:
    workdir: Path
    environments: Path
    directory: Path
    endpoint: str
    model_dir: Path  # the run's model.tar.gz


@pytest.fixture(scope="module")
def account(tmp_path_factory: pytest.TempPathFactory) -> Account:
    """One local run of prod (it captures 20 % of the requests, both sides) with a quality
    alarm: accuracy below 0.8."""
    environments = tmp_path_factory.mktemp("environments")
    for name in ("prod.json", "schema.json"):
        shutil.copy(REPO / "environments" / name, environments / name)
    prod = json.loads((environments / "prod.json").read_text())
    prod.setdefault("monitoring", {}).update(quality_metric="Accuracy", quality_threshold=0.8)
    (environments / "prod.json").write_text(json.dumps(prod))
    workdir = tmp_path_factory.mktemp("work")
    # The programs forked with their libraries imported (tests/programs.py).
    with pytest.MonkeyPatch.context() as mp, programs.forked_python():
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        report = run(
            RunOptions(
                environment=ENV,
                rows=2000,
                workdir=workdir,
                environments_dir=environments,
                name="monitor-run",
            ),
            Reporter(out=io.StringIO()),
        )
    assert report.status == "SUCCEEDED", (report.error, report.cause)
    directory = LocalAccount.of(workdir, ENV).directory
    # prod registers the model for a person's approval: its endpoint is not deployed by the run,
    # so the run's model is served as `mlstack local serve --from-run` serves it.
    model = directory / "s3" / report.output["model_artifact_uri"][len("s3://") :]
    return Account(workdir, environments, directory, "mlstack-prod", model)


@pytest.fixture(scope="module")
def runtime(account: Account, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The account's endpoint behind the gateway, capturing as the environment says."""
    base = tmp_path_factory.mktemp("serve")
    extract_model(account.model_dir.read_bytes(), base / "model")
    image = Image(uri="local", directory=REPO / "containers", dockerfile="inference/Dockerfile")
    with programs.forked_python():
        server = start_serve(image, base, log_path=base / "serve.log", source=account.endpoint)
    capture = serve_capture(account.directory, account.environments)
    assert capture is not None and capture.settings.sampling_percentage == 20
    capture.rng = random.Random(7)
    gateway = Gateway({account.endpoint: Target(server.port)}, capture=capture).start()
    client = boto3.client(
        "sagemaker-runtime",
        endpoint_url=gateway.url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    try:
        yield client, capture, gateway
    finally:
        gateway.stop()
        server.stop(grace=5)


def send(runtime: Any, endpoint: str, when: datetime, rows: np.ndarray, ids: bool = False) -> None:
    """Requests of 10 rows each, captured as if at ``when``; flushed to the account."""
    client, capture, _ = runtime
    capture.clock = lambda: when
    for i in range(0, len(rows), 10):
        body = "\n".join(f"{x},{y}" for x, y in rows[i : i + 10]).encode()
        extra = {"InferenceId": f"req-{when:%H}-{i}"} if ids else {}
        client.invoke_endpoint(EndpointName=endpoint, Body=body, ContentType="text/csv", **extra)
    capture.flush()


def seeder(n: int, seed: int, shift: int = 0) -> np.ndarray:
    # The seeder's features (lambda/seed/handler.py): x and y integers in 0..100.
    rng = np.random.default_rng(seed)
    return np.c_[rng.integers(0, 101, n) + shift, rng.integers(0, 101, n)]


def monitor(account: Account, end: datetime, truth: Path | None = None) -> dict[str, Any]:
    args = argparse.Namespace(
        env=ENV,
        ground_truth=truth,
        window_hours=1.0,
        endpoint_name=None,
        workdir=account.workdir,
        environments_dir=account.environments,
    )
    return run_monitor(args, now=end)


NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def test_local_capture_is_in_sagemakers_format_and_layout(account, runtime):
    when = NOW - timedelta(hours=10) + timedelta(minutes=5)
    send(runtime, account.endpoint, when, seeder(1000, seed=1))
    capture_root = account.directory / "s3"
    files = sorted(
        capture_root.glob(f"*/data-capture/{account.endpoint}/AllTraffic/*/*/*/*/*.jsonl")
    )
    assert files, (
        "no capture object under <bucket>/data-capture/<endpoint>/<variant>/yyyy/mm/dd/hh/"
    )
    assert files[0].parent.relative_to(files[0].parents[4]).as_posix() == f"{when:%Y/%m/%d/%H}"
    events = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    # 20 % of 100 requests sampled (a binomial draw: 20 on average).
    assert 5 <= len(events) <= 40
    event = events[0]
    assert event["eventVersion"] == "0"
    request = event["captureData"]["endpointInput"]
    assert request["mode"] == "INPUT" and request["encoding"] == "BASE64"
    assert request["observedContentType"] == "text/csv"
    assert event["captureData"]["endpointOutput"]["mode"] == "OUTPUT"
    assert set(event["eventMetadata"]) == {"eventId", "inferenceTime"}
    index = json.loads((capture_root / ".index.json").read_text())
    assert any(
        f.relative_to(capture_root).as_posix().split("/", 1)[1] in keys
        for f in files
        for keys in index.values()
    )


def test_shifted_traffic_drifts_and_the_drift_alarm_would_fire(account, runtime):
    when = NOW - timedelta(hours=6) + timedelta(minutes=10)
    send(runtime, account.endpoint, when, seeder(8000, seed=2, shift=60))
    report = monitor(account, when + timedelta(minutes=30))
    assert report["status"] == "ok" and report["records"]["captured"] >= 100
    x, y = report["drift"]["features"]
    assert x["name"] == "x" and x["drifted"] and not y["drifted"]
    assert report["alarms"]["drift"] is True  # 50 % drifted, prod alarms at 30 %
    text = summary(report)
    assert "drift alarm: WOULD FIRE" in text
    assert report["report_uri"].endswith("report.html")


def test_unshifted_traffic_stays_quiet(account, runtime):
    when = NOW - timedelta(hours=4) + timedelta(minutes=10)
    send(runtime, account.endpoint, when, seeder(8000, seed=3))
    report = monitor(account, when + timedelta(minutes=30))
    assert report["status"] == "ok"
    assert not any(f["drifted"] for f in report["drift"]["features"])
    assert report["alarms"] == {"drift": False, "quality": False}
    assert "drift alarm: quiet" in summary(report)


def test_labels_that_make_accuracy_drop_fire_the_quality_alarm(account, runtime, tmp_path):
    when = NOW - timedelta(hours=2) + timedelta(minutes=10)
    rows = seeder(8000, seed=4)
    send(runtime, account.endpoint, when, rows, ids=True)
    # The seeder's rule says label 1 when y >= 3x + 5; every label here says the opposite.
    truth = tmp_path / "labels.jsonl"
    truth.write_text(
        "".join(
            json.dumps(
                {
                    "inference_id": f"req-{when:%H}-{i}",
                    "label": [int(y < 3 * x + 5) for x, y in rows[i : i + 10]],
                }
            )
            + "\n"
            for i in range(0, len(rows), 10)
        )
    )
    report = monitor(account, when + timedelta(minutes=30), truth)
    quality = report["quality"]
    assert quality["labelled"] >= 100 and quality["status"] == "ok"
    assert quality["metrics"]["Accuracy"] < 0.5
    assert report["alarms"]["quality"] is True
    assert "quality alarm: WOULD FIRE" in summary(report)
    # The labels went where the scheduled job reads them: ground-truth/<yyyy>/<mm>/<dd>/.
    end = when + timedelta(minutes=30)
    assert list((account.directory / "s3").glob(f"*/ground-truth/{end:%Y/%m/%d}/labels.jsonl"))
