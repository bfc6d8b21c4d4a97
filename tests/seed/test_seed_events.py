"""Bad events and bad environments fail with a message that says what is wrong, writing nothing."""

from __future__ import annotations

import pytest
import seed_handler

BAD_EVENTS = [
    # (event, key named in the message, value named in the message)
    ({"run_id": "r1", "rows": 0}, "'rows'", "0"),
    ({"run_id": "r1", "rows": -5}, "'rows'", "-5"),
    ({"run_id": "r1", "rows": 1001}, "'rows'", "1001"),
    ({"run_id": "r1", "rows": True}, "'rows'", "True"),
    ({"run_id": "r1", "rows": 5.0}, "'rows'", "5.0"),
    ({"run_id": "r1", "rows": "5"}, "'rows'", "'5'"),
    ({"run_id": "r1", "rows": None}, "'rows'", "None"),
    ({"run_id": "r1", "seed": "7"}, "'seed'", "'7'"),
    ({"run_id": "r1", "seed": 1.5}, "'seed'", "1.5"),
    ({"run_id": "r1", "seed": False}, "'seed'", "False"),
    ({"run_id": "r1", "seed": -1}, "'seed'", "-1"),
    ({"run_id": "r1", "seed": 2**53}, "'seed'", str(2**53)),
    ({"run_id": "r1", "row": 5}, "'row'", "'row'"),
    ({"run_id": "r1", "rows": 5, "bucket": "other"}, "'bucket'", "'bucket'"),
    ({}, "'run_id'", "missing"),
    ({"rows": 5}, "'run_id'", "missing"),
    ({"run_id": ""}, "'run_id'", "''"),
    ({"run_id": "has space"}, "'run_id'", "'has space'"),
    ({"run_id": "a/b"}, "'run_id'", "'a/b'"),
    ({"run_id": "x" * 81}, "'run_id'", "x" * 81),
    ({"run_id": "trailing-newline\n"}, "'run_id'", "'trailing-newline\\n'"),
    ({"run_id": "caf\u00e9"}, "'run_id'", "'caf\u00e9'"),
    ({"run_id": 123}, "'run_id'", "123"),
    (["run_id", "r1"], "event", "list"),
    (None, "event", "NoneType"),
]


@pytest.mark.parametrize(("event", "key", "value"), BAD_EVENTS, ids=lambda p: repr(p)[:40])
def test_bad_event_is_rejected_naming_key_and_value_and_writes_nothing(
    s3, bucket, monkeypatch, event, key, value
):
    monkeypatch.setenv("MAX_ROWS", "1000")
    with pytest.raises(seed_handler.InvalidEventError) as raised:
        seed_handler.handler(event, None)
    message = str(raised.value)
    assert key in message
    assert value in message
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)


def test_invalid_event_error_is_a_value_error_that_says_what_is_allowed(monkeypatch):
    monkeypatch.setenv("MAX_ROWS", "1000")
    settings = seed_handler.Settings.from_env()
    with pytest.raises(ValueError, match=r"from 1 to 1000 \(MAX_ROWS\)"):
        seed_handler.SeedRequest.from_event({"run_id": "r", "rows": 1001}, settings)
    with pytest.raises(ValueError, match=r"allowed keys: 'run_id' \(required\), 'rows', 'seed'"):
        seed_handler.SeedRequest.from_event({"run_id": "r", "extra": 1}, settings)
    with pytest.raises(ValueError, match=r"1\.\.80 characters from \[A-Za-z0-9-\]"):
        seed_handler.SeedRequest.from_event({"run_id": "r!"}, settings)


def test_boundary_values_are_accepted(monkeypatch):
    monkeypatch.setenv("MAX_ROWS", "1000")
    settings = seed_handler.Settings.from_env()
    request = seed_handler.SeedRequest.from_event(
        {"run_id": "A-z0" + "9" * 76, "rows": 1000, "seed": 2**53 - 1}, settings
    )
    assert request == seed_handler.SeedRequest(run_id="A-z0" + "9" * 76, rows=1000, seed=2**53 - 1)
    low = seed_handler.SeedRequest.from_event({"run_id": "r", "rows": 1, "seed": 0}, settings)
    assert (low.rows, low.seed) == (1, 0)


def test_missing_rows_and_seed_take_the_environment_defaults(monkeypatch):
    monkeypatch.setenv("DEFAULT_ROWS", "250")
    monkeypatch.setenv("DEFAULT_SEED", "9")
    request = seed_handler.SeedRequest.from_event({"run_id": "r"}, seed_handler.Settings.from_env())
    assert request == seed_handler.SeedRequest(run_id="r", rows=250, seed=9)


def test_request_is_frozen():
    request = seed_handler.SeedRequest(run_id="r", rows=1, seed=0)
    with pytest.raises(AttributeError):
        request.rows = 2  # type: ignore[misc]


def test_settings_defaults_when_only_the_bucket_is_set():
    assert seed_handler.Settings.from_env({"BUCKET_NAME": "b"}) == seed_handler.Settings(
        bucket_name="b",
        dataset_prefix="datasets/",
        default_rows=1000,
        default_seed=42,
        max_rows=1_000_000,
        log_level="INFO",
    )


BAD_ENVIRONMENTS = [
    ({"BUCKET_NAME": ""}, "BUCKET_NAME"),
    ({"BUCKET_NAME": None}, "BUCKET_NAME"),
    ({"MAX_ROWS": "lots"}, "MAX_ROWS='lots'"),
    ({"MAX_ROWS": "0"}, "MAX_ROWS='0'"),
    ({"DEFAULT_ROWS": "1.5"}, "DEFAULT_ROWS='1.5'"),
    ({"MAX_ROWS": "10", "DEFAULT_ROWS": "11"}, "DEFAULT_ROWS='11'"),
    ({"DEFAULT_SEED": "-1"}, "DEFAULT_SEED='-1'"),
    ({"DATASET_PREFIX": "datasets"}, "DATASET_PREFIX='datasets'"),
    ({"DATASET_PREFIX": "/datasets/"}, "DATASET_PREFIX='/datasets/'"),
    ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL='LOUD'"),
]


@pytest.mark.parametrize(("changes", "named"), BAD_ENVIRONMENTS)
def test_bad_environment_fails_naming_the_variable(s3, bucket, monkeypatch, changes, named):
    for name, value in changes.items():
        if value is None:
            monkeypatch.delenv(name)
        else:
            monkeypatch.setenv(name, value)
    with pytest.raises(seed_handler.ConfigurationError, match=named):
        seed_handler.handler({"run_id": "r1", "rows": 5}, None)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_empty_prefix_writes_at_the_bucket_root(s3, bucket, monkeypatch):
    monkeypatch.setenv("DATASET_PREFIX", "")
    result = seed_handler.handler({"run_id": "r1", "rows": 3}, None)
    assert (result["train_prefix"] + "part-00000.csv") == f"s3://{bucket}/r1/train/part-00000.csv"
    assert s3.head_object(Bucket=bucket, Key="r1/test/part-00000.csv")["ContentLength"] > 0
