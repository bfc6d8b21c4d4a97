"""LocalSageMaker.create_processing_job: what the container sees and how each ending reads.

The contract is SageMaker's (API reference, CreateProcessingJob and DescribeProcessingJob; "Save
and Access Metadata Information About Your Processing Job": the first 1 KB of
/opt/ml/output/message becomes ExitMessage). A stand-in entrypoint plays each ending; the real
`evaluate` program runs end to end in test_local_run.py.
"""

from __future__ import annotations

import json
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlstack.local.assembly import Image
from mlstack.local.s3 import EmbeddedS3
from mlstack.local.sagemaker import JobFailed, LocalSageMaker, SageMakerError

IMAGE_URI = "000000000000.dkr.ecr.us-east-1.amazonaws.com/train:local"

PROGRAM = """\
#!{python}
import json, os, sys
base = os.environ["SAGEMAKER_BASE_DIR"]
inputs = os.path.join(base, "processing/input")
seen = {{name: sorted(os.listdir(os.path.join(inputs, name))) for name in os.listdir(inputs)}}
seen["args"] = sys.argv[1:]
seen["mode"] = os.environ.get("MODE")
os.makedirs(os.path.join(base, "output"), exist_ok=True)
if seen["mode"] == "fail":
    open(os.path.join(base, "output/message"), "w").write("shard part-00000.csv: 2 for 3")
    sys.exit(1)
out = os.path.join(base, "processing/output/result")
os.makedirs(os.path.join(out, "sub"), exist_ok=True)
open(os.path.join(out, "seen.json"), "w").write(json.dumps(seen))
open(os.path.join(out, "sub/more.txt"), "w").write("x")
open(os.path.join(base, "output/message"), "w").write("m" * 3000)
"""


@pytest.fixture(scope="module")
def s3() -> Iterator[EmbeddedS3]:
    server = EmbeddedS3()
    server.client.create_bucket(Bucket="data")
    for key in ("in/a/part-00000.csv", "in/a/part-00001.csv", "models/j/output/model.tar.gz"):
        server.client.put_object(Bucket="data", Key=key, Body=b"1\n")
    yield server
    server.stop()


@pytest.fixture()
def sagemaker(s3: EmbeddedS3, tmp_path: Path) -> LocalSageMaker:
    context = tmp_path / "containers"
    (context / "training").mkdir(parents=True)
    (context / "training/Dockerfile").write_text("FROM scratch\n")
    program = context / "training/evaluate"
    program.write_text(PROGRAM.format(python=sys.executable))
    program.chmod(program.stat().st_mode | stat.S_IEXEC)
    image = Image(uri=IMAGE_URI, directory=context, dockerfile="training/Dockerfile")
    return LocalSageMaker(tmp_path / "run", s3, {IMAGE_URI: image})


def request(name: str, **changes: Any) -> dict[str, Any]:
    def source(input_name: str, uri: str) -> dict[str, Any]:
        return {
            "InputName": input_name,
            "S3Input": {
                "S3Uri": uri,
                "LocalPath": f"/opt/ml/processing/input/{input_name}",
                "S3DataType": "S3Prefix",
                "S3InputMode": "File",
            },
        }

    return {
        "ProcessingJobName": name,
        "RoleArn": "arn:aws:iam::000000000000:role/r",
        "AppSpecification": {
            "ImageUri": IMAGE_URI,
            "ContainerEntrypoint": ["evaluate"],
            "ContainerArguments": ["--flag"],
        },
        "ProcessingInputs": [
            source("labels", "s3://data/in/a/"),
            source("model", "s3://data/models/j/output/model.tar.gz"),
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "result",
                    "S3Output": {
                        "S3Uri": f"s3://data/out/{name}/",
                        "LocalPath": "/opt/ml/processing/output/result",
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ]
        },
        "ProcessingResources": {
            "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large"}
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
        **changes,
    }


def test_inputs_are_downloaded_and_outputs_uploaded(
    sagemaker: LocalSageMaker, s3: EmbeddedS3
) -> None:
    desc = sagemaker.create_processing_job(request("p-1"))
    assert desc["ProcessingJobStatus"] == "Completed"
    seen = json.loads(s3.read("s3://data/out/p-1/seen.json"))
    # The key tree below the prefix's folder, as for a training channel.
    assert seen["labels"] == ["part-00000.csv", "part-00001.csv"]
    assert seen["model"] == ["model.tar.gz"]
    assert seen["args"] == ["--flag"]
    assert s3.read("s3://data/out/p-1/sub/more.txt") == b"x"
    # ExitMessage: the first 1 KB of /opt/ml/output/message, on success too.
    assert desc["ExitMessage"] == "m" * 1024
    assert sagemaker.describe_processing_job({"ProcessingJobName": "p-1"}) is desc


def test_a_failing_program_fails_the_job_with_its_message(sagemaker: LocalSageMaker) -> None:
    with pytest.raises(JobFailed) as failed:
        sagemaker.create_processing_job(request("p-2", Environment={"MODE": "fail"}))
    desc = failed.value.description
    assert desc["ProcessingJobStatus"] == "Failed"
    assert desc["FailureReason"] == "AlgorithmError: shard part-00000.csv: 2 for 3, exit code: 1"
    assert desc["ExitMessage"] == "shard part-00000.csv: 2 for 3"
    registry = json.loads((sagemaker.root / "sagemaker" / "registry.json").read_text())
    assert registry["processing_jobs"]["p-2"]["ProcessingJobStatus"] == "Failed"


def test_an_empty_input_fails_the_job(sagemaker: LocalSageMaker) -> None:
    job = request("p-3")
    job["ProcessingInputs"][0]["S3Input"]["S3Uri"] = "s3://data/nothing/"
    with pytest.raises(JobFailed) as failed:
        sagemaker.create_processing_job(job)
    assert failed.value.description["FailureReason"] == (
        "ClientError: no objects under s3://data/nothing/ (input labels)"
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {
                "ProcessingResources": {
                    "ClusterConfig": {"InstanceCount": 2, "InstanceType": "ml.m5.large"}
                }
            },
            "one instance",
        ),
        ({"AppSpecification": {"ImageUri": IMAGE_URI}}, "ContainerEntrypoint"),
        ({"ProcessingJobName": "bad_name"}, "failed to satisfy constraint"),
    ],
)
def test_requests_local_mode_cannot_run_are_refused(
    sagemaker: LocalSageMaker, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(SageMakerError, match=message):
        sagemaker.create_processing_job({**request("p-4"), **changes})


def test_a_local_path_outside_processing_is_refused(sagemaker: LocalSageMaker) -> None:
    job = request("p-5")
    job["ProcessingInputs"][0]["S3Input"]["LocalPath"] = "/opt/ml/model"
    with pytest.raises(SageMakerError, match=r"LocalPath '/opt/ml/model': expected a path under"):
        sagemaker.create_processing_job(job)
    # The refused name is free again, as SageMaker never created the job.
    assert sagemaker.create_processing_job(request("p-5"))["ProcessingJobStatus"] == "Completed"


def test_a_name_is_used_once(sagemaker: LocalSageMaker) -> None:
    sagemaker.create_processing_job(request("p-6"))
    with pytest.raises(SageMakerError, match="already in use"):
        sagemaker.create_processing_job(request("P-6"))


def test_describing_an_unknown_job_fails(sagemaker: LocalSageMaker) -> None:
    with pytest.raises(SageMakerError, match="not found"):
        sagemaker.describe_processing_job({"ProcessingJobName": "nope"})
