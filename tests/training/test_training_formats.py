"""`train` end to end in File mode for each content type."""

from __future__ import annotations

import numpy as np
import pytest

from tests.training.conftest import (
    CSV_CHANNEL,
    REFERENCE_HYPERPARAMETERS,
    assert_succeeded,
    csv_bytes,
    libsvm_bytes,
    predict,
    recordio_protobuf_bytes,
    reference_data,
)

X, Y = reference_data(3000, seed=1)
X_TEST, Y_TEST = reference_data(1000, seed=2)


def accuracy(job) -> float:
    return float(np.mean((predict(job, X_TEST) >= 0.5) == (Y_TEST == 1)))


def train_reference(job, channel: dict, files: dict[str, bytes], **hyper) -> np.ndarray:
    job.hyperparameters(**{**REFERENCE_HYPERPARAMETERS, "num_round": 30, **hyper})
    job.channels(train=channel)
    for name, content in files.items():
        job.file("train", name, content)
    result = job.run()
    assert_succeeded(result, job)
    assert "[29]\ttrain-rmse:" in result.stdout
    return predict(job, X_TEST)


@pytest.fixture(scope="module")
def csv_predictions(tmp_path_factory) -> np.ndarray:
    from tests.training.conftest import Job

    job = Job(tmp_path_factory.mktemp("csv") / "opt_ml")
    predictions = train_reference(job, CSV_CHANNEL, {"train.csv": csv_bytes(X, Y)})
    assert accuracy(job) > 0.97
    meta = job.booster().metadata
    assert meta.num_features == 2
    assert meta.objective == "reg:logistic"
    return predictions


def test_csv_model_learns_the_reference_rule(csv_predictions):
    assert float(np.mean((csv_predictions >= 0.5) == (Y_TEST == 1))) > 0.97


def test_csv_with_crlf_line_ends_and_an_s3_key_tree_gives_the_same_model(job, csv_predictions):
    half = len(Y) // 2
    files = {
        # Objects under nested prefixes, one with Windows line ends; hidden and empty files skipped.
        "part/a/0000.csv": csv_bytes(X[:half], Y[:half], newline="\r\n"),
        "part/b/0001.csv": csv_bytes(X[half:], Y[half:]),
        "part/_SUCCESS": b"",
        "part/.0000.csv.crc": b"\x00garbage",
    }
    predictions = train_reference(job, {"ContentType": "text/csv; label_size=1"}, files)
    np.testing.assert_allclose(predictions, csv_predictions, rtol=0, atol=1e-6)


def test_csv_empty_fields_are_missing_values(job):
    job.hyperparameters(**REFERENCE_HYPERPARAMETERS)
    job.channels(train=CSV_CHANNEL)
    job.file("train", "train.csv", csv_bytes(X[:500], Y[:500]) + b"1,,300\n0,50,\n")
    result = job.run()
    assert_succeeded(result, job)
    assert "502 rows x 2 features" in result.stdout


def test_libsvm(job, csv_predictions):
    predictions = train_reference(
        job, {"ContentType": "text/libsvm"}, {"train.libsvm": libsvm_bytes(X, Y)}
    )
    assert accuracy(job) > 0.97
    # Sparse input treats absent entries as missing, dense CSV has no absent entries: the same data
    # (no zeros in the reference features) gives the same model.
    np.testing.assert_allclose(predictions, csv_predictions, rtol=0, atol=1e-6)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_recordio_protobuf(job, csv_predictions, sparse):
    channel = {"ContentType": "application/x-recordio-protobuf", "TrainingInputMode": "File"}
    body = recordio_protobuf_bytes(X, Y, sparse=sparse)
    predictions = train_reference(job, channel, {"part-00000.pbr": body})
    np.testing.assert_allclose(predictions, csv_predictions, rtol=0, atol=1e-6)


def test_channel_without_content_type_is_read_as_recordio_protobuf(job, csv_predictions):
    # What SageMaker Spark sends: no ContentType in inputdataconfig.json.
    body = recordio_protobuf_bytes(X, Y)
    predictions = train_reference(job, {"TrainingInputMode": "File"}, {"part-00000": body})
    np.testing.assert_allclose(predictions, csv_predictions, rtol=0, atol=1e-6)


def test_validation_channel_early_stopping_keeps_the_best_iteration(job):
    X_val, Y_val = reference_data(1000, seed=3)
    # Deep trees on labels with 30% noise overfit fast, so the validation logloss turns up early.
    rng = np.random.default_rng(4)
    noisy = np.where(rng.random(len(Y)) < 0.3, 1 - Y, Y)
    job.hyperparameters(
        objective="binary:logistic",
        eval_metric="error,logloss",
        num_round=200,
        early_stopping_rounds=5,
        max_depth=10,
        eta=0.5,
        min_child_weight=0,
    )
    job.channels(train=CSV_CHANNEL, validation=CSV_CHANNEL)
    job.file("train", "train.csv", csv_bytes(X, noisy))
    job.file("validation", "validation.csv", csv_bytes(X_val, Y_val))
    result = job.run()
    assert_succeeded(result, job)
    lines = [line for line in result.stdout.splitlines() if line.startswith("[")]
    assert "validation-logloss:" in lines[0]
    ran = len(lines)
    assert ran < 200, "early stopping never triggered"
    meta = job.booster().metadata
    assert meta.best_iteration == ran - 1 - 5
    # The saved model holds the trees up to the best iteration only.
    assert meta.num_boosted_rounds == meta.best_iteration + 1
    logloss = [float(line.split("validation-logloss:")[1].split()[0]) for line in lines]
    assert min(logloss) == logloss[meta.best_iteration]
