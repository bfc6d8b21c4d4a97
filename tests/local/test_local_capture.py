"""The local data capture writer on its own: sampling, the captured sides, the S3 layout and the
line format of AWS's "Capture data from real-time endpoint" (SageMaker developer guide), and
what the monitor program reads back from it."""

from __future__ import annotations

import base64
import json
import random
from datetime import UTC, datetime

import pytest
from mlstack_containers.monitor.capture import RequestDecoder, decode_output

from mlstack.local.capture import CaptureSettings, DataCapture

WHEN = datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)


def capture(percentage: int, **sides: bool) -> tuple[DataCapture, dict[str, bytes]]:
    objects: dict[str, bytes] = {}
    writer = DataCapture(
        CaptureSettings("s3://bucket/data-capture/", percentage, **sides),
        objects.__setitem__,
        rng=random.Random(1),
        clock=lambda: WHEN,
    )
    return writer, objects


def lines(objects: dict[str, bytes]) -> list[dict]:
    return [json.loads(line) for body in objects.values() for line in body.splitlines()]


def test_every_request_is_captured_at_100_percent_in_sagemakers_layout():
    writer, objects = capture(100)
    for i in range(3):
        writer.record("ep", "AllTraffic", b"37,82", "text/csv", b"0.25", "text/csv", f"id-{i}")
    writer.flush()
    [key] = objects
    # <DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/<file>.jsonl
    assert key.startswith("s3://bucket/data-capture/ep/AllTraffic/2026/03/04/05/")
    assert key.endswith(".jsonl")
    events = lines(objects)
    assert [e["eventMetadata"]["inferenceId"] for e in events] == ["id-0", "id-1", "id-2"]
    first = events[0]
    assert first["eventVersion"] == "0"
    assert first["eventMetadata"]["inferenceTime"] == "2026-03-04T05:06:07.890Z"
    sent = first["captureData"]["endpointInput"]
    assert sent == {
        "observedContentType": "text/csv",
        "mode": "INPUT",
        "data": base64.b64encode(b"37,82").decode(),
        "encoding": "BASE64",  # no CaptureContentTypeHeader: SageMaker base64-encodes
    }
    # What the monitor reads back is what was sent and answered.
    body = base64.b64decode(sent["data"])
    assert RequestDecoder(2, None).rows(body, sent["observedContentType"]).tolist() == [[37, 82]]
    answer = first["captureData"]["endpointOutput"]
    assert decode_output(base64.b64decode(answer["data"]), "text/csv", 1).tolist() == [[0.25]]


def test_sampling_captures_about_the_percentage():
    writer, objects = capture(20)
    taken = sum(
        writer.record("ep", "AllTraffic", b"1,2", "text/csv", b"0.5", "text/csv")
        for _ in range(2000)
    )
    writer.flush()
    # Binomial(2000, 0.2): mean 400, standard deviation about 18.
    assert 320 <= taken <= 480
    assert len(lines(objects)) == taken


def test_zero_percent_captures_nothing():
    writer, objects = capture(0)
    assert not writer.record("ep", "AllTraffic", b"1,2", "text/csv", b"0.5", "text/csv")
    writer.flush()
    assert objects == {}


@pytest.mark.parametrize(
    ("sides", "present"),
    [
        ({"capture_input": True, "capture_output": False}, {"endpointInput"}),
        ({"capture_input": False, "capture_output": True}, {"endpointOutput"}),
    ],
)
def test_only_the_configured_side_is_captured(sides, present):
    writer, objects = capture(100, **sides)
    writer.record("ep", "AllTraffic", b"1,2", "text/csv", b"0.5", "text/csv")
    writer.flush()
    assert set(lines(objects)[0]["captureData"]) == present


@pytest.mark.parametrize(
    ("destination", "percentage", "expected"),
    [
        ("bucket/prefix/", 10, "expected s3://bucket/prefix/"),
        ("s3://bucket/prefix", 10, "expected s3://bucket/prefix/"),
        ("s3://bucket/prefix/", 101, "InitialSamplingPercentage"),
    ],
)
def test_bad_settings_are_refused_naming_them(destination, percentage, expected):
    with pytest.raises(ValueError, match=expected):
        CaptureSettings(destination, percentage)


def test_serving_an_account_captures_as_its_environment_says(tmp_path):
    # environments/prod.json: endpoint.data_capture 20 %, both sides; dev: no capture. The data
    # bucket is the account's bucket holding the baseline prefix.
    from mlstack.local.capture import serve_capture

    for env in ("prod", "dev"):
        s3 = tmp_path / "accounts" / env / "s3"
        (s3 / "data-bucket" / "baselines" / "latest").mkdir(parents=True)
        index = {"data-bucket": {"baselines/latest/feature_baseline.json": {"etag": '"x"'}}}
        (s3 / ".index.json").write_text(json.dumps(index))
    prod = serve_capture(tmp_path / "accounts" / "prod")
    assert prod is not None
    assert prod.settings == CaptureSettings("s3://data-bucket/data-capture/", 20, True, True)
    assert serve_capture(tmp_path / "accounts" / "dev") is None
    assert serve_capture(tmp_path / "accounts" / "nowhere") is None  # no such environment file
    assert serve_capture(tmp_path / "run-dir") is None  # a run's directory, not an account
