"""``train`` copies the dataset's ``schema.json`` from a ``schema`` channel into the model
directory (so ``model.tar.gz`` describes itself), and refuses a schema that does not describe
the training data. The document follows the schema spec of the dataset-source issue (#19)."""

from __future__ import annotations

import json
import stat

from tests.training.conftest import (
    CSV_CHANNEL,
    REFERENCE_HYPERPARAMETERS,
    assert_succeeded,
    csv_bytes,
    reference_data,
)

SCHEMA = {
    "schema_version": 1,
    "problem_type": "binary",
    "label": {"name": "above", "type": "numeric", "classes": ["0", "1"]},
    "features": [{"name": "x", "type": "numeric"}, {"name": "y", "type": "numeric"}],
    "rows": {"train": 300, "validation": 0, "test": 0, "rejected": 0},
}
# File mode keeps the S3 key tree under the channel: prepare writes <dataset>/schema/schema.json.
SCHEMA_KEY = "schema/schema.json"


def _job(job, schema: dict | bytes, schema_mode: str = "File"):
    X, y = reference_data(300)
    job.hyperparameters(**REFERENCE_HYPERPARAMETERS)
    job.channels(
        train=CSV_CHANNEL,
        schema={"ContentType": "application/json", "TrainingInputMode": schema_mode},
    )
    job.file("train", "part-00000.csv", csv_bytes(X, y))
    document = schema if isinstance(schema, bytes) else json.dumps(schema, indent=1).encode()
    job.file("schema", SCHEMA_KEY, document)
    return document


def test_the_schema_channel_is_copied_into_the_model_byte_for_byte(job):
    document = _job(job, SCHEMA)
    result = job.run()
    assert_succeeded(result, job)
    copied = job.base / "model" / "schema.json"
    assert copied.read_bytes() == document
    assert stat.S_IMODE(copied.stat().st_mode) == 0o644  # readable by the serving user
    assert "schema copied to" in result.stdout


def test_a_job_without_a_schema_channel_writes_no_schema(job):
    X, y = reference_data(100)
    job.hyperparameters(**REFERENCE_HYPERPARAMETERS)
    job.channels(train=CSV_CHANNEL)
    job.file("train", "part-00000.csv", csv_bytes(X, y))
    assert_succeeded(job.run(), job)
    assert not (job.base / "model" / "schema.json").exists()


def test_a_schema_of_another_width_fails_the_job_naming_both(job):
    _job(job, {**SCHEMA, "features": [{"name": "x", "type": "numeric"}]})
    result = job.run()
    assert result.returncode == 1
    assert job.failure == (
        "channel 'schema': schema.json describes 1 features but channel 'train' has 2"
    )
    assert not (job.base / "model" / "xgboost-model").exists()


def test_a_malformed_schema_fails_the_job_naming_the_key(job):
    _job(job, {**SCHEMA, "problem_type": "ranking"})
    result = job.run()
    assert result.returncode == 1
    assert job.failure is not None
    assert job.failure.startswith("channel 'schema': ")
    assert "problem_type: 'ranking'" in job.failure


def test_a_schema_channel_without_schema_json_fails_the_job(job):
    _job(job, SCHEMA)
    (job.base / "input" / "data" / "schema" / SCHEMA_KEY).rename(
        job.base / "input" / "data" / "schema" / "schema" / "other.json"
    )
    result = job.run()
    assert result.returncode == 1
    assert job.failure is not None
    assert "channel 'schema' must hold one schema.json" in job.failure


def test_a_schema_channel_in_pipe_mode_is_refused(job):
    _job(job, SCHEMA, schema_mode="Pipe")
    result = job.run()
    assert result.returncode == 1
    assert "channel 'schema' must use File or FastFile mode" in (job.failure or "")
