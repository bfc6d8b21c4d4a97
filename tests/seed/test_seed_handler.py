"""The Lambda entry point: result contract, structured logs, the lazily created client."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import seed_handler


def _log_lines(stream) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_result_has_exactly_the_contract_keys_and_points_at_the_prefixes(s3, bucket):
    result = seed_handler.handler({"run_id": "exec-2024-01", "rows": 12, "seed": 5}, None)
    assert result == {
        "run_id": "exec-2024-01",
        "rows": 12,
        "seed": 5,
        "rows_per_shard": seed_handler.DEFAULT_ROWS_PER_SHARD,
        "shards": 1,
        "shard": None,
        "train_prefix": f"s3://{bucket}/datasets/exec-2024-01/train/",
        "validation_prefix": f"s3://{bucket}/datasets/exec-2024-01/validation/",
        "test_prefix": f"s3://{bucket}/datasets/exec-2024-01/test/",
        "test_labels_prefix": f"s3://{bucket}/datasets/exec-2024-01/test-labels/",
    }
    json.dumps(result)  # the state machine receives it as JSON
    for split, lines in (("train", 12), ("validation", 2), ("test", 12), ("test_labels", 12)):
        prefix = result[f"{split}_prefix"].removeprefix(f"s3://{bucket}/")
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]
        assert [o["Key"] for o in listed] == [f"{prefix}part-00000.csv"]
        body = s3.get_object(Bucket=bucket, Key=listed[0]["Key"])["Body"].read()
        assert body.count(b"\n") == lines


def test_objects_get_the_bucket_default_encryption(s3, bucket):
    result = seed_handler.handler({"run_id": "enc"}, None)
    key = (result["train_prefix"] + "part-00000.csv").removeprefix(f"s3://{bucket}/")
    assert s3.head_object(Bucket=bucket, Key=key)["ServerSideEncryption"] == "aws:kms"


def test_event_defaults_come_from_the_environment(s3, monkeypatch):
    monkeypatch.setenv("DEFAULT_ROWS", "7")
    monkeypatch.setenv("DEFAULT_SEED", "99")
    result = seed_handler.handler({"run_id": "defaults"}, None)
    assert (result["rows"], result["seed"]) == (7, 99)


def test_success_is_logged_as_one_json_object_a_line(s3, log_stream):
    context = SimpleNamespace(aws_request_id="req-123")
    seed_handler.handler({"run_id": "logged", "rows": 3, "seed": 4}, context)
    lines = _log_lines(log_stream)
    assert [line["message"] for line in lines] == ["seeding dataset", "dataset written"]
    done = lines[-1]
    assert done["level"] == "INFO"
    assert done["logger"] == "mlstack.seed"
    assert (done["run_id"], done["rows"], done["seed"]) == ("logged", 3, 4)
    assert done["aws_request_id"] == "req-123"
    assert done["shards"] == 1
    assert done["prefixes"] == [
        "s3://mlstack-seed-test/datasets/logged/train/",
        "s3://mlstack-seed-test/datasets/logged/validation/",
        "s3://mlstack-seed-test/datasets/logged/test/",
        "s3://mlstack-seed-test/datasets/logged/test-labels/",
    ]
    assert isinstance(done["duration_ms"], float) and done["duration_ms"] >= 0
    assert done["timestamp"].endswith("Z")


def test_log_level_comes_from_the_environment(s3, log_stream, monkeypatch):
    monkeypatch.setenv("LOG_LEVEL", "debug")
    seed_handler.handler({"run_id": "debug", "rows": 2}, None)
    written = [line for line in _log_lines(log_stream) if line["message"] == "file written"]
    assert [line["level"] for line in written] == ["DEBUG"] * 4  # train, validation, test, labels
    assert [line["parts"] for line in written] == [0, 0, 0, 0]
    log_stream.truncate(0)
    log_stream.seek(0)
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    seed_handler.handler({"run_id": "quiet", "rows": 2}, None)
    assert log_stream.getvalue() == ""


def test_invalid_event_is_logged_as_an_error(s3, log_stream):
    with pytest.raises(seed_handler.InvalidEventError):
        seed_handler.handler({"run_id": "r", "rows": 0}, None)
    (line,) = _log_lines(log_stream)
    assert line["level"] == "ERROR"
    assert line["message"] == "invalid event"
    assert "'rows': 0" in line["error"]


def test_s3_failure_is_logged_with_the_traceback_and_raised(s3, log_stream, monkeypatch):
    monkeypatch.setenv("BUCKET_NAME", "no-such-bucket")
    with pytest.raises(Exception, match="NoSuchBucket"):
        seed_handler.handler({"run_id": "r", "rows": 2}, None)
    failed = _log_lines(log_stream)[-1]
    assert failed["message"] == "seeding failed"
    assert failed["run_id"] == "r"
    assert "NoSuchBucket" in failed["exception"]


def test_client_is_created_once_and_honours_the_standard_endpoint_variable(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://localhost:9000")
    client = seed_handler.s3_client()
    assert seed_handler.s3_client() is client
    assert client.meta.endpoint_url == "http://localhost:9000"
    seed_handler.reset_s3_client()
    assert seed_handler.s3_client() is not client


def test_importing_the_module_does_not_import_boto3():
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import handler; "
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(Path(seed_handler.__file__).parent)], check=True
    )
