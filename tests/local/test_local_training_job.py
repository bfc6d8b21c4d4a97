"""LocalSageMaker.create_training_job: what the train program sees and how each ending reads.

The container contract comes from SageMaker's "How Amazon SageMaker Provides Training
Information" (string hyperparameters in hyperparameters.json, ``current_host``/``hosts`` in
resourceconfig.json, channel data under /opt/ml/input/data/<channel>/) and "How Amazon SageMaker
Processes Training Output" (the model from /opt/ml/model, the failure file becomes
FailureReason). A stand-in ``train`` program plays each ending.
"""

from __future__ import annotations

import io
import json
import stat
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlstack.local.assembly import Image
from mlstack.local.s3 import EmbeddedS3
from mlstack.local.sagemaker import JobFailed, LocalSageMaker, SageMakerError

IMAGE_URI = "000000000000.dkr.ecr.us-east-1.amazonaws.com/train:local"

TRAIN = """\
#!{python}
import json, os, sys, time
base = os.environ["SAGEMAKER_BASE_DIR"]
config = os.path.join(base, "input/config")
seen = {{name: json.load(open(os.path.join(config, name + ".json")))
        for name in ("hyperparameters", "resourceconfig", "inputdataconfig")}}
seen["data"] = sorted(os.listdir(os.path.join(base, "input/data/train")))
mode = seen["hyperparameters"]["mode"]
print("[0]#011validation-rmse:0.25000", flush=True)
if mode == "fail":
    os.makedirs(os.path.join(base, "output"), exist_ok=True)
    open(os.path.join(base, "output/failure"), "w").write("ValueError: no label column")
    sys.exit(3)
if mode == "hang":
    time.sleep(60)
os.makedirs(os.path.join(base, "model"), exist_ok=True)
open(os.path.join(base, "model/seen.json"), "w").write(json.dumps(seen))
"""


@pytest.fixture(scope="module")
def s3() -> Iterator[EmbeddedS3]:
    server = EmbeddedS3()
    server.client.create_bucket(Bucket="data")
    server.client.put_object(Bucket="data", Key="csv/train/train.csv", Body=b"1,2\n")
    yield server
    server.stop()


@pytest.fixture()
def sagemaker(s3: EmbeddedS3, tmp_path: Path) -> LocalSageMaker:
    context = tmp_path / "containers"
    (context / "training").mkdir(parents=True)
    (context / "training/Dockerfile").write_text("FROM scratch\n")
    train = context / "training/train"
    train.write_text(TRAIN.format(python=sys.executable))
    train.chmod(train.stat().st_mode | stat.S_IEXEC)
    image = Image(uri=IMAGE_URI, directory=context, dockerfile="training/Dockerfile")
    return LocalSageMaker(tmp_path / "run", s3, {IMAGE_URI: image})


def request(mode: str, **overrides: Any) -> dict[str, Any]:
    """A CreateTrainingJob request in the shape of the workflow's Train model."""
    return {
        "TrainingJobName": f"job-{mode}",
        "AlgorithmSpecification": {
            "TrainingImage": IMAGE_URI,
            "TrainingInputMode": "File",
            "MetricDefinitions": [
                {"Name": "validation:rmse", "Regex": r"validation-rmse:([0-9\.]+)"}
            ],
        },
        "RoleArn": "arn:aws:iam::000000000000:role/sagemaker",
        "HyperParameters": {"mode": mode, "num_round": "5"},
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "ContentType": "text/csv",
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://data/csv/train/"}
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath": "s3://data/models"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        **overrides,
    }


def test_completed_job_uploads_the_model_built_from_what_train_was_given(
    sagemaker: LocalSageMaker, s3: EmbeddedS3
) -> None:
    desc = sagemaker.create_training_job(request("ok"))
    assert desc["TrainingJobStatus"] == desc["SecondaryStatus"] == "Completed"
    artifact = desc["ModelArtifacts"]["S3ModelArtifacts"]
    assert artifact == "s3://data/models/job-ok/output/model.tar.gz"
    with tarfile.open(fileobj=io.BytesIO(s3.read(artifact))) as archive:
        member = archive.extractfile("seen.json")
        assert member is not None
        seen = json.loads(member.read())
    assert seen["hyperparameters"] == {"mode": "ok", "num_round": "5"}
    assert seen["resourceconfig"]["current_host"] == "algo-1"
    assert seen["resourceconfig"]["hosts"] == ["algo-1"]
    assert seen["inputdataconfig"]["train"]["ContentType"] == "text/csv"
    assert seen["data"] == ["train.csv"]
    [metric] = desc["FinalMetricDataList"]
    assert (metric["MetricName"], metric["Value"]) == ("validation:rmse", 0.25)


def test_failure_file_becomes_the_failure_reason(sagemaker: LocalSageMaker) -> None:
    with pytest.raises(JobFailed) as failed:
        sagemaker.create_training_job(request("fail"))
    desc = failed.value.description
    assert desc["TrainingJobStatus"] == "Failed"
    assert desc["FailureReason"] == "AlgorithmError: ValueError: no label column, exit code: 3"
    assert "ModelArtifacts" not in desc


def test_job_past_max_runtime_fails_with_max_runtime_exceeded(sagemaker: LocalSageMaker) -> None:
    with pytest.raises(JobFailed) as failed:
        sagemaker.create_training_job(request("hang", StoppingCondition={"MaxRuntimeInSeconds": 1}))
    assert failed.value.description["FailureReason"].startswith("MaxRuntimeExceeded")


def test_empty_channel_fails_naming_the_channel(sagemaker: LocalSageMaker) -> None:
    empty = request("ok")
    empty["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] = "s3://data/none/"
    with pytest.raises(JobFailed) as failed:
        sagemaker.create_training_job(empty)
    reason = failed.value.description["FailureReason"]
    assert reason == "ClientError: no objects under s3://data/none/ (channel train)"


def test_non_string_hyperparameter_is_refused(sagemaker: LocalSageMaker) -> None:
    with pytest.raises(SageMakerError) as refused:
        sagemaker.create_training_job(request("ok", HyperParameters={"num_round": 5}))
    assert refused.value.code == "ValidationException"
    assert "'num_round'=5" in refused.value.message
