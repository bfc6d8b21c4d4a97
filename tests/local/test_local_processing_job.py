"""LocalSageMaker.create_processing_job with the training image's real ``baseline`` program, in
the shape of the workflow's Baseline data request: inputs downloaded to their LocalPath, outputs
uploaded from theirs, ``/opt/ml/output/message`` as ExitMessage and FailureReason ("Save and
Access Metadata Information About Your Processing Job")."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlstack.local.assembly import Image
from mlstack.local.s3 import EmbeddedS3
from mlstack.local.sagemaker import JobFailed, LocalSageMaker, SageMakerError

REPO = Path(__file__).resolve().parents[2]
IMAGE_URI = "000000000000.dkr.ecr.us-east-1.amazonaws.com/training:local"


@pytest.fixture(scope="module")
def s3() -> Iterator[EmbeddedS3]:
    server = EmbeddedS3()
    server.client.create_bucket(Bucket="data")
    for key, body in {
        "datasets/r/train/part-00000.csv": b"1,2,10\n0,4,20\n",
        "datasets/r/train/part-00001.csv": b"1,6,30\n",
        "datasets/bad/train/part-00000.csv": b"1,2,x\n",
    }.items():
        server.client.put_object(Bucket="data", Key=key, Body=body)
    yield server
    server.stop()


@pytest.fixture()
def sagemaker(s3: EmbeddedS3, tmp_path: Path) -> LocalSageMaker:
    image = Image(uri=IMAGE_URI, directory=REPO / "containers", dockerfile="training/Dockerfile")
    return LocalSageMaker(tmp_path / "run", s3, {IMAGE_URI: image})


def request(name: str, dataset: str, **overrides: Any) -> dict[str, Any]:
    """A CreateProcessingJob request in the shape of the workflow's Baseline data."""

    def output(name: str, uri: str) -> dict[str, Any]:
        return {
            "OutputName": name,
            "S3Output": {
                "S3Uri": uri,
                "LocalPath": f"/opt/ml/processing/output/{name}",
                "S3UploadMode": "EndOfJob",
            },
        }

    return {
        "ProcessingJobName": name,
        "RoleArn": "arn:aws:iam::000000000000:role/execution",
        "AppSpecification": {
            "ImageUri": IMAGE_URI,
            "ContainerEntrypoint": ["baseline"],
            "ContainerArguments": ["--output", "run", "--output", "latest"],
        },
        "ProcessingInputs": [
            {
                "InputName": "train",
                "S3Input": {
                    "S3Uri": f"s3://data/datasets/{dataset}/train/",
                    "LocalPath": "/opt/ml/processing/input/train",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                },
            }
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                output("run", f"s3://data/baselines/{dataset}/"),
                output("latest", "s3://data/baselines/latest/"),
            ]
        },
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1}},
        "StoppingCondition": {"MaxRuntimeInSeconds": 120},
        **overrides,
    }


def test_baseline_job_uploads_both_outputs_and_is_described(sagemaker, s3):
    desc = sagemaker.create_processing_job(request("baseline-ok", "r"))
    assert desc["ProcessingJobStatus"] == "Completed"
    statistics = json.loads(s3.read("s3://data/baselines/r/statistics.json"))
    assert statistics["dataset"] == {"item_count": 3}
    assert statistics["features"][1]["numerical_statistics"]["sum"] == 60
    assert s3.read("s3://data/baselines/latest/constraints.json") == s3.read(
        "s3://data/baselines/r/constraints.json"
    )
    assert sagemaker.describe_processing_job({"ProcessingJobName": "baseline-ok"}) is desc
    registry = json.loads((sagemaker.root / "sagemaker" / "registry.json").read_text())
    assert registry["processing_jobs"]["baseline-ok"]["ProcessingJobStatus"] == "Completed"


def test_a_failing_program_fails_the_job_with_its_message(sagemaker):
    with pytest.raises(JobFailed) as failed:
        sagemaker.create_processing_job(request("baseline-bad", "bad"))
    desc = failed.value.description
    assert desc["ProcessingJobStatus"] == "Failed"
    assert "part-00000.csv line 1 column 3: 'x' is not a number" in desc["ExitMessage"]
    assert desc["FailureReason"].startswith("AlgorithmError: part-00000.csv line 1")
    assert desc["FailureReason"].endswith("exit code: 1")


def test_a_taken_name_and_a_path_outside_opt_ml_are_refused(sagemaker):
    sagemaker.create_processing_job(request("baseline-once", "r"))
    with pytest.raises(SageMakerError, match="already in use"):
        sagemaker.create_processing_job(request("baseline-once", "r"))
    bad = request("baseline-path", "r")
    bad["ProcessingInputs"][0]["S3Input"]["LocalPath"] = "/tmp/train"
    with pytest.raises(SageMakerError, match="LocalPath '/tmp/train'"):
        sagemaker.create_processing_job(bad)


def test_an_unknown_job_is_not_found(sagemaker):
    with pytest.raises(SageMakerError, match="not found"):
        sagemaker.describe_processing_job({"ProcessingJobName": "nope"})
