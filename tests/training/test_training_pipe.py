"""Pipe mode: SageMaker streams each channel through a FIFO named <channel>_<epoch>."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from tests.training.conftest import (
    REFERENCE_HYPERPARAMETERS,
    Job,
    assert_succeeded,
    csv_bytes,
    predict,
    recordio_frame,
    recordio_protobuf_bytes,
    reference_data,
)

X, Y = reference_data(2000, seed=5)
X_VAL, Y_VAL = reference_data(500, seed=6)
X_TEST, _ = reference_data(300, seed=7)


def feed(job: Job, channel: str, body: bytes, chunk: int = 4096) -> threading.Thread:
    """Play SageMaker's part: create <channel>_0, write the body in chunks, close it."""
    fifo = job.base / "input" / "data" / f"{channel}_0"
    os.mkfifo(fifo)

    def write() -> None:
        with open(fifo, "wb") as fh:  # blocks until train opens the reading end
            for start in range(0, len(body), chunk):
                fh.write(body[start : start + chunk])

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


@pytest.fixture(scope="module")
def file_mode_predictions(tmp_path_factory) -> np.ndarray:
    job = Job(tmp_path_factory.mktemp("file") / "opt_ml")
    job.hyperparameters(**REFERENCE_HYPERPARAMETERS)
    job.channels(train={"ContentType": "text/csv"}, validation={"ContentType": "text/csv"})
    job.file("train", "train.csv", csv_bytes(X, Y))
    job.file("validation", "validation.csv", csv_bytes(X_VAL, Y_VAL))
    assert_succeeded(job.run(), job)
    return predict(job, X_TEST)


@pytest.mark.parametrize(
    ("content_type", "encode"),
    [
        ("text/csv", csv_bytes),
        ("application/x-recordio-protobuf", recordio_protobuf_bytes),
    ],
    ids=["csv", "recordio-protobuf"],
)
def test_pipe_mode_trains_the_same_model_as_file_mode(
    job, file_mode_predictions, content_type, encode
):
    job.hyperparameters(**REFERENCE_HYPERPARAMETERS)
    pipe = {"ContentType": content_type, "TrainingInputMode": "Pipe"}
    job.channels(train=pipe, validation=pipe)
    writers = [
        feed(job, "train", encode(X, Y)),
        feed(job, "validation", encode(X_VAL, Y_VAL)),
    ]
    result = job.run(timeout=60)
    assert_succeeded(result, job)
    assert "Pipe mode" in result.stdout
    assert "validation-rmse:" in result.stdout
    for writer in writers:
        writer.join(timeout=5)
        assert not writer.is_alive()
    np.testing.assert_allclose(predict(job, X_TEST), file_mode_predictions, rtol=0, atol=1e-6)


def test_pipe_mode_with_recordio_wrapped_csv_objects(job, file_mode_predictions):
    # RecordWrapperType=RecordIO: each S3 object arrives as one RecordIO frame; the second object
    # here has no final newline, so the frames must be joined line-safely.
    half = len(Y) // 2
    objects = [csv_bytes(X[:half], Y[:half]), csv_bytes(X[half:], Y[half:]).rstrip(b"\n")]
    job.hyperparameters(**REFERENCE_HYPERPARAMETERS)
    job.channels(
        train={
            "ContentType": "text/csv",
            "TrainingInputMode": "Pipe",
            "RecordWrapperType": "RecordIO",
        },
        validation={"ContentType": "text/csv", "TrainingInputMode": "File"},
    )
    job.file("validation", "validation.csv", csv_bytes(X_VAL, Y_VAL))
    writer = feed(job, "train", b"".join(recordio_frame(o) for o in objects))
    result = job.run(timeout=60)
    assert_succeeded(result, job)
    writer.join(timeout=5)
    assert f"channel train: {len(Y)} rows" in result.stdout
    np.testing.assert_allclose(predict(job, X_TEST), file_mode_predictions, rtol=0, atol=1e-6)


def test_missing_fifo_fails_with_its_name(job):
    job.hyperparameters(**REFERENCE_HYPERPARAMETERS)
    job.channels(train={"ContentType": "text/csv", "TrainingInputMode": "Pipe"})
    result = job.run(timeout=60)
    assert result.returncode != 0
    assert "Pipe-mode FIFO" in job.failure and "train_0 does not exist" in job.failure
