"""Spot tuning with the real training image: the training jobs of a tuning job share the
definition's one CheckpointConfig prefix (HyperParameterTrainingJobDefinition has one
CheckpointConfig for every job it launches; the API reference does not say SageMaker appends the
job's name, so local mode does not). Two jobs of other hyperparameters (eta) run at once, each
is interrupted (``interrupt_training_after``: SIGTERM, checkpoints to S3, new processes with the
prefix restored) and each resumes from its own checkpoints only: its model is the model an
uninterrupted run of the same hyperparameters trains."""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlstack.local.assembly import Image
from mlstack.local.s3 import EmbeddedS3
from mlstack.local.sagemaker import LocalSageMaker
from mlstack.rules import training_image_metric_definitions
from tests.training.conftest import Job, assert_succeeded, csv_bytes, predict, reference_data

REPO = Path(__file__).resolve().parents[2]
IMAGE_URI = "000000000000.dkr.ecr.us-east-1.amazonaws.com/train:local"
METRICS = training_image_metric_definitions()
X, Y = reference_data(3000, seed=3)
X_TEST, _ = reference_data(300, seed=4)
STATIC = {"objective": "binary:logistic", "eval_metric": "logloss", "max_depth": "4",
          "num_round": "400"}  # fmt: skip
PREFIX = "checkpoints/run-1/tuning/"


@pytest.fixture(scope="module")
def s3() -> Iterator[EmbeddedS3]:
    server = EmbeddedS3()
    server.client.create_bucket(Bucket="data")
    server.client.put_object(Bucket="data", Key="csv/train/train.csv", Body=csv_bytes(X, Y))
    yield server
    server.stop()


def request() -> dict[str, Any]:
    return {
        "HyperParameterTuningJobName": "tune-spot",
        "HyperParameterTuningJobConfig": {
            "Strategy": "Random",
            "HyperParameterTuningJobObjective": {"Type": "Minimize",
                                                 "MetricName": "train:logloss"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 2, "MaxParallelTrainingJobs": 2},
            "ParameterRanges": {"ContinuousParameterRanges": [
                {"Name": "eta", "MinValue": "0.01", "MaxValue": "0.5", "ScalingType": "Linear"}]},
            "TrainingJobEarlyStoppingType": "Off",
        },
        "TrainingJobDefinition": {
            "AlgorithmSpecification": {"TrainingImage": IMAGE_URI, "TrainingInputMode": "File",
                                       "MetricDefinitions": METRICS},
            "RoleArn": "arn:aws:iam::000000000000:role/sagemaker",
            "StaticHyperParameters": STATIC,
            "InputDataConfig": [{"ChannelName": "train", "ContentType": "text/csv",
                                 "DataSource": {"S3DataSource": {
                                     "S3DataType": "S3Prefix", "S3Uri": "s3://data/csv/train/"}}}],
            "OutputDataConfig": {"S3OutputPath": "s3://data/models"},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                               "VolumeSizeInGB": 30},
            "StoppingCondition": {"MaxRuntimeInSeconds": 600, "MaxWaitTimeInSeconds": 1200},
            "EnableManagedSpotTraining": True,
            "CheckpointConfig": {"S3Uri": f"s3://data/{PREFIX}",
                                 "LocalPath": "/opt/ml/checkpoints"},
        },
    }  # fmt: skip


def model_predictions(s3: EmbeddedS3, uri: str, into: Path) -> np.ndarray:
    job = Job(into)
    with tarfile.open(fileobj=io.BytesIO(s3.read(uri)), mode="r:gz") as archive:
        archive.extractall(job.base / "model", filter="data")
    return predict(job, X_TEST)


def straight_run(base: Path, eta: str, **more: str) -> Job:
    job = Job(base)
    job.hyperparameters(**{**STATIC, "eta": eta, **more})
    job.channels(train={"ContentType": "text/csv"})
    job.file("train", "train.csv", csv_bytes(X, Y))
    assert_succeeded(job.run(timeout=300), job)
    return job


def paired_seconds(base: Path, **more: str) -> float:
    """Seconds two uninterrupted jobs take, run at once."""
    started = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        for done in [pool.submit(straight_run, base / str(i), "0.2", **more) for i in (1, 2)]:
            done.result()
    return time.monotonic() - started


def test_interrupted_tuning_jobs_resume_only_from_their_own_checkpoints(
    s3: EmbeddedS3, tmp_path: Path
) -> None:
    # The interruption comes halfway through the rounds of an uninterrupted job as long as it
    # takes on this machine now, two at once as the tuning job runs them: its start (a
    # one-round job) plus half of its rounds. (A job interrupted before its first checkpoint
    # starts again from nothing: the identities below still hold, and the other one resumes.)
    start = paired_seconds(tmp_path / "start", num_round="1")
    interrupt = start + 0.5 * (paired_seconds(tmp_path / "calibration") - start)
    image = Image(uri=IMAGE_URI, directory=REPO / "containers", dockerfile="training/Dockerfile")
    sagemaker = LocalSageMaker(
        tmp_path / "run", s3, {IMAGE_URI: image}, interrupt_training_after=interrupt
    )
    tuning = sagemaker.create_hyper_parameter_tuning_job(request())
    assert tuning["HyperParameterTuningJobStatus"] == "Completed", tuning.get("FailureReason")
    etas = {
        d["TrainingJobName"]: d["HyperParameters"]["eta"]
        for d in sagemaker.training_jobs.values()
        if d["TrainingJobName"].startswith("tune-spot-")
    }
    assert len(etas) == 2
    assert len(set(etas.values())) == 2

    # One prefix for both: each job's checkpoints carry its own identity.
    keys = list(s3.keys("data", PREFIX))
    identities = {k.rsplit("/", 1)[1].split(".")[1] for k in keys if "xgboost-checkpoint." in k}
    assert len(identities) == 2, keys

    resumed = 0
    for name, eta in etas.items():
        desc = sagemaker.describe_training_job({"TrainingJobName": name})
        assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
        assert [t["Status"] for t in desc["SecondaryStatusTransitions"]] == ["Interrupted"]
        assert desc["CheckpointConfig"]["S3Uri"] == f"s3://data/{PREFIX}"
        log = (tmp_path / "run" / "jobs" / name / "train.log").read_text()
        resumed += "resuming from the checkpoint after" in log

        straight = straight_run(tmp_path / f"straight-{name}", eta)
        served = model_predictions(
            s3, desc["ModelArtifacts"]["S3ModelArtifacts"], tmp_path / f"tuned-{name}"
        )
        np.testing.assert_allclose(served, predict(straight, X_TEST), rtol=0, atol=1e-6)
    # At least one job was interrupted mid-training and went on from its own checkpoint.
    assert resumed >= 1
