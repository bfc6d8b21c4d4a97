"""Spot tuning with the real training image: the training jobs of a tuning job share the
definition's one CheckpointConfig prefix (HyperParameterTrainingJobDefinition has one
CheckpointConfig for every job it launches; the API reference does not say SageMaker appends the
job's name, so local mode does not). Two jobs of other hyperparameters (eta) run at once, each
is interrupted (``interrupt_training_after``: SIGTERM, checkpoints to S3, new processes with the
prefix restored) and each resumes from its own checkpoints only: its model is the model an
uninterrupted run of the same hyperparameters trains."""

from __future__ import annotations

import dataclasses
import io
import os
import subprocess
import tarfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlstack.local.assembly import Image
from mlstack.local.processes import _wait_hosts
from mlstack.local.s3 import EmbeddedS3
from mlstack.local.sagemaker import LocalSageMaker
from mlstack.local.sagemaker_service import WaitHosts
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
INTERRUPT_AFTER = 50  # of the 400 rounds


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


def interrupt_after_round(rounds: int) -> WaitHosts:
    """``wait_hosts`` whose spot interruption comes once the first host has checkpointed
    ``rounds`` rounds of its own (a checkpoint file that was not there when it started), however
    fast or loaded the machine: mid-training, never before the first checkpoint nor after the
    last round."""

    def wait_hosts(
        procs: Sequence[subprocess.Popen[bytes]], limit: float | None, interrupt: float | None
    ) -> tuple[bool, int, bool]:
        if interrupt is None:
            return _wait_hosts(procs, limit, None)
        checkpoints = Path(os.readlink(f"/proc/{procs[0].pid}/cwd")) / "checkpoints"
        restored = set(checkpoints.iterdir())
        while procs[0].poll() is None and not any(
            path not in restored and int(path.name.rsplit(".", 1)[1]) >= rounds
            for path in checkpoints.glob("xgboost-checkpoint.*")
        ):
            time.sleep(0.002)
        return _wait_hosts(procs, limit, 0.0)

    return wait_hosts


def test_interrupted_tuning_jobs_resume_only_from_their_own_checkpoints(
    s3: EmbeddedS3, tmp_path: Path
) -> None:
    image = Image(uri=IMAGE_URI, directory=REPO / "containers", dockerfile="training/Dockerfile")
    sagemaker = LocalSageMaker(
        tmp_path / "run", s3, {IMAGE_URI: image}, interrupt_training_after=0.0
    )
    sagemaker.service.processes = dataclasses.replace(
        sagemaker.service.processes, wait_hosts=interrupt_after_round(INTERRUPT_AFTER)
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
    # Each job was interrupted mid-training and went on from its own checkpoint.
    assert resumed == 2
