"""Every failure writes a readable reason to output/failure and exits non-zero."""

from __future__ import annotations

import subprocess

import pytest

from tests.training.conftest import (
    CSV_CHANNEL,
    REFERENCE_HYPERPARAMETERS,
    TRAIN,
    csv_bytes,
    recordio_frame,
    recordio_protobuf_bytes,
    reference_data,
)

X, Y = reference_data(200)
GOOD_CSV = csv_bytes(X, Y)


def setup_default(job):
    job.hyperparameters(**REFERENCE_HYPERPARAMETERS)
    job.channels(train=CSV_CHANNEL)
    job.file("train", "train.csv", GOOD_CSV)


def unknown_hyperparameter(job):
    job.hyperparameters(**REFERENCE_HYPERPARAMETERS, max_dept=3)


def bad_value(job):
    job.hyperparameters(**REFERENCE_HYPERPARAMETERS, subsample="1.5")


def not_a_number(job):
    job.hyperparameters(**{**REFERENCE_HYPERPARAMETERS, "num_round": "five"})


def missing_num_round(job):
    job.hyperparameters(objective="reg:logistic")


def unknown_objective(job):
    job.hyperparameters(**{**REFERENCE_HYPERPARAMETERS, "objective": "reg:logisitc"})


def unknown_metric(job):
    job.hyperparameters(**{**REFERENCE_HYPERPARAMETERS, "eval_metric": "rmse,accuracy"})


def early_stopping_without_validation(job):
    job.hyperparameters(**REFERENCE_HYPERPARAMETERS, early_stopping_rounds=3)


def no_train_channel(job):
    job.channels(validation=CSV_CHANNEL)


def unknown_channel(job):
    job.channels(train=CSV_CHANNEL, valdation=CSV_CHANNEL)


def unsupported_content_type(job):
    job.channels(train={"ContentType": "application/json"})


def missing_inputdataconfig(job):
    (job.base / "input/config/inputdataconfig.json").unlink()


def empty_channel(job):
    (job.base / "input/data/train/train.csv").write_bytes(b"\n\n")


def missing_channel_directory(job):
    (job.base / "input/data/train/train.csv").unlink()
    (job.base / "input/data/train").rmdir()


def csv_with_header(job):
    job.file("train", "train.csv", b"label,x,y\n" + GOOD_CSV)


def csv_ragged_rows(job):
    job.file("train", "train.csv", GOOD_CSV + b"1,2\n")


def csv_label_only(job):
    job.file("train", "train.csv", b"1\n0\n")


def labels_outside_logistic_range(job):
    job.file("train", "train.csv", csv_bytes(X, Y * 3))


def corrupt_recordio(job):
    (job.base / "input/data/train/train.csv").unlink()
    job.channels(train={"ContentType": "application/x-recordio-protobuf"})
    body = recordio_protobuf_bytes(X, Y)
    job.file("train", "part-0", body[:-7])


def recordio_without_labels(job):
    (job.base / "input/data/train/train.csv").unlink()
    job.channels(train={"ContentType": "application/x-recordio-protobuf"})
    job.file("train", "part-0", recordio_protobuf_bytes(X, None))


def recordio_bad_magic(job):
    (job.base / "input/data/train/train.csv").unlink()
    job.channels(train={"ContentType": "application/x-recordio-protobuf"})
    job.file("train", "part-0", b"\x00" * 4 + recordio_frame(b"")[4:])


def validation_width_differs(job):
    job.channels(train=CSV_CHANNEL, validation=CSV_CHANNEL)
    job.file("validation", "v.csv", b"1,2,3,4\n")


def malformed_hyperparameters_json(job):
    (job.base / "input/config/hyperparameters.json").write_text("{not json")


def bad_resourceconfig(job):
    job.config("resourceconfig", {"current_host": "algo-3", "hosts": ["algo-1", "algo-2"]})


def exact_across_hosts(job):
    job.hyperparameters(**REFERENCE_HYPERPARAMETERS, tree_method="exact")
    job.config("resourceconfig", {"current_host": "algo-1", "hosts": ["algo-1", "algo-2"]})


def multiclass_label_out_of_range(job):
    job.hyperparameters(objective="multi:softmax", num_class=2, num_round=2)
    job.file("train", "train.csv", GOOD_CSV + b"2,1,1\n")


def xgboost_rejects_a_parameter_combination(job):
    # Well-formed, but XGBoost itself finds three constraints for two features.
    job.hyperparameters(**REFERENCE_HYPERPARAMETERS, monotone_constraints="(1,0,0)")


def cuda_on_cpu_build(job):
    job.hyperparameters(**REFERENCE_HYPERPARAMETERS, device="cuda")


CASES = [
    (unknown_hyperparameter, "unknown hyperparameter 'max_dept' (did you mean 'max_depth'?)"),
    (bad_value, "hyperparameter 'subsample' has an invalid value '1.5'"),
    (not_a_number, "hyperparameter 'num_round' has an invalid value 'five' (not an integer)"),
    (missing_num_round, "hyperparameter 'num_round' is required"),
    (unknown_objective, "hyperparameter 'objective' has an invalid value 'reg:logisitc'"),
    (unknown_metric, "unknown metric 'accuracy'"),
    (early_stopping_without_validation, "'early_stopping_rounds' needs a 'validation' channel"),
    (no_train_channel, "the 'train' channel is required"),
    (unknown_channel, "unknown channel 'valdation'"),
    (unsupported_content_type, "unsupported content type 'application/json'"),
    (missing_inputdataconfig, "missing configuration file"),
    (empty_channel, "no data rows"),
    (missing_channel_directory, "channel directory"),
    (csv_with_header, "invalid CSV"),
    (csv_ragged_rows, "invalid CSV"),
    (csv_label_only, "rows have 1 column(s), expected a label, then features"),
    (
        labels_outside_logistic_range,
        "channel 'train': objective 'reg:logistic' needs labels in [0, 1]; row ",
    ),
    (corrupt_recordio, "truncated RecordIO record"),
    (recordio_without_labels, "channel 'train': the data carries no labels"),
    (recordio_bad_magic, "bad RecordIO magic"),
    (validation_width_differs, "channel 'validation' has 3 features but 'train' has 2"),
    (malformed_hyperparameters_json, "hyperparameters.json is not valid JSON"),
    (bad_resourceconfig, "current_host 'algo-3' is not one of"),
    (exact_across_hosts, "'exact', which XGBoost cannot train across 2 hosts"),
    (multiclass_label_out_of_range, "integer labels in [0, 1] (num_class=2); row 201 has label 2"),
    (
        xgboost_rejects_a_parameter_combination,
        "XGBoost rejected the job: Check failed: p.monotone_constraints.size() <= n_features",
    ),
    (cuda_on_cpu_build, "CPU-only build"),
]


@pytest.mark.parametrize(("break_job", "expected"), CASES, ids=[c[0].__name__ for c in CASES])
def test_failure_is_reported_in_the_failure_file(job, break_job, expected):
    setup_default(job)
    break_job(job)
    result = job.run()
    assert result.returncode != 0
    reason = job.failure
    assert reason is not None, result.stdout + result.stderr
    assert expected in reason
    assert "Traceback" not in reason
    assert len(reason) <= 1024
    assert not (job.base / "model" / "xgboost-model").exists()
    # The reason is also in the log, where CloudWatch shows it.
    assert expected in result.stdout


def test_unexpected_arguments_fail(job):
    setup_default(job)
    result = subprocess.run(
        [str(TRAIN), "serve"], env=job.env(), capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "unexpected arguments ['serve']; usage: train" in (job.failure or "")


def test_accepts_the_train_argument_sagemaker_passes(job):
    setup_default(job)
    result = subprocess.run(
        [str(TRAIN), "train"], env=job.env(), capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout
