"""A spot interruption in local mode (``--interrupt-training-after``): a managed-spot training
job with a ``CheckpointConfig`` gets SIGTERM, its checkpoints go to the checkpoint prefix, and a
new ``train`` process starts with them restored into ``/opt/ml/checkpoints`` and finishes the job
(SageMaker developer guide, "Managed Spot Training": an interrupted job resumes from the
checkpoints SageMaker copied to ``CheckpointConfig.S3Uri``).

A stand-in ``train`` program keeps it fast and deterministic: one round every 0.05 s, a
checkpoint file per round, SIGTERM ends it after saving; on start it resumes after the highest
checkpoint it finds. The real image's checkpoint and resume are tested in tests/training."""

from __future__ import annotations

import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlstack.local.assembly import Image
from mlstack.local.s3 import EmbeddedS3
from mlstack.local.sagemaker import LocalSageMaker

IMAGE_URI = "000000000000.dkr.ecr.us-east-1.amazonaws.com/train:local"
ROUNDS = 60

FAKE_TRAIN = """\
#!{python}
import os, signal, sys, time
base = os.environ["SAGEMAKER_BASE_DIR"]
ckpt = os.path.join(base, "checkpoints")
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
done = max([int(n.split("-")[1]) for n in os.listdir(ckpt)] + [0]) if os.path.isdir(ckpt) else 0
print(f"start after {{done}} rounds", flush=True)
for i in range(done + 1, {rounds} + 1):
    if stop:
        print(f"SIGTERM after {{i - 1}} rounds", flush=True)
        break
    time.sleep(0.05)
    if os.path.isdir(ckpt):  # SageMaker creates it only with a CheckpointConfig
        open(os.path.join(ckpt, f"round-{{i}}"), "w").write(str(i))
os.makedirs(os.path.join(base, "model"), exist_ok=True)
open(os.path.join(base, "model/model.txt"), "w").write(str(i))
"""


@pytest.fixture(scope="module")
def s3() -> Iterator[EmbeddedS3]:
    server = EmbeddedS3()
    server.client.create_bucket(Bucket="data")
    server.client.put_object(Bucket="data", Key="d/train/part-00000.csv", Body=b"1,2,3\n")
    yield server
    server.stop()


# The same program slow to start (imports, data loading): SIGTERM's default action, death by
# the signal, until the handler is set 2 s in, and only the first time (no checkpoints yet).
SLOW_START = FAKE_TRAIN.replace(
    "signal.signal(",
    "os.listdir(ckpt) or os.path.exists(os.path.join(base, 'started')) or time.sleep(2)\n"
    "open(os.path.join(base, 'started'), 'w').close()\n"
    "signal.signal(",
)


def _sagemaker(
    s3: EmbeddedS3, tmp_path: Path, interrupt: float | None, program: str = FAKE_TRAIN
) -> LocalSageMaker:
    context = tmp_path / "containers"
    (context / "training").mkdir(parents=True)
    (context / "training/Dockerfile").write_text("FROM scratch\n")
    train = context / "training/train"
    train.write_text(program.format(python=sys.executable, rounds=ROUNDS))
    train.chmod(train.stat().st_mode | stat.S_IEXEC)
    image = Image(uri=IMAGE_URI, directory=context, dockerfile="training/Dockerfile")
    lines: list[str] = []
    return LocalSageMaker(
        tmp_path / "run",
        s3,
        {IMAGE_URI: image},
        log=lambda source, line: lines.append(line),
        interrupt_training_after=interrupt,
    )


def job(name: str, *, spot: bool = True) -> dict[str, Any]:
    request: dict[str, Any] = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": IMAGE_URI, "TrainingInputMode": "File"},
        "RoleArn": "arn:aws:iam::000000000000:role/sagemaker",
        "HyperParameters": {},
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://data/d/train/"}
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath": "s3://data/models"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 120},
    }
    if spot:
        request["EnableManagedSpotTraining"] = True
        request["StoppingCondition"]["MaxWaitTimeInSeconds"] = 240
        request["CheckpointConfig"] = {
            "S3Uri": f"s3://data/checkpoints/{name}/",
            "LocalPath": "/opt/ml/checkpoints",
        }
    return request


def test_an_interrupted_spot_job_resumes_from_its_checkpoints_and_completes(s3, tmp_path):
    sagemaker = _sagemaker(s3, tmp_path, interrupt=1.0)
    desc = sagemaker.create_training_job(job("spot-1"))
    assert desc["TrainingJobStatus"] == "Completed"
    assert [t["Status"] for t in desc["SecondaryStatusTransitions"]] == ["Interrupted"]
    log = (tmp_path / "run/jobs/spot-1/train.log").read_text().splitlines()
    stopped_after = int(next(line for line in log if line.startswith("SIGTERM after")).split()[2])
    assert 0 < stopped_after < ROUNDS
    # The second process found the first one's checkpoints and went on from there.
    assert log[0] == "start after 0 rounds"
    assert f"start after {stopped_after} rounds" in log
    keys = {k for k in s3.keys("data", "checkpoints/spot-1/")}
    assert {f"checkpoints/spot-1/round-{i}" for i in range(1, ROUNDS + 1)} == keys
    model = tmp_path / "run/jobs/spot-1/opt/ml/model/model.txt"
    assert model.read_text() == str(ROUNDS)


def test_an_on_demand_job_is_never_interrupted(s3, tmp_path):
    sagemaker = _sagemaker(s3, tmp_path, interrupt=0.5)
    desc = sagemaker.create_training_job(job("demand-1", spot=False))
    assert desc["TrainingJobStatus"] == "Completed"
    assert "SecondaryStatusTransitions" not in desc
    log = (tmp_path / "run/jobs/demand-1/train.log").read_text()
    assert "SIGTERM" not in log and not (tmp_path / "run/jobs/demand-1/opt/ml/checkpoints").exists()


def test_a_spot_job_interrupted_before_its_program_handles_sigterm_starts_again(s3, tmp_path):
    # A spot interruption reclaims the instance whatever the program was doing: the job starts
    # again on a new one from the checkpoints it has (none yet here), it does not fail ("Managed
    # Spot Training", SageMaker developer guide). The first process dies by the signal (-15).
    sagemaker = _sagemaker(s3, tmp_path, interrupt=0.5, program=SLOW_START)
    desc = sagemaker.create_training_job(job("spot-early"))
    assert desc["TrainingJobStatus"] == "Completed", desc.get("FailureReason")
    assert [t["Status"] for t in desc["SecondaryStatusTransitions"]] == ["Interrupted"]
    log = (tmp_path / "run/jobs/spot-early/train.log").read_text().splitlines()
    assert log.count("start after 0 rounds") == 1  # the first process never got that far
    model = tmp_path / "run/jobs/spot-early/opt/ml/model/model.txt"
    assert model.read_text() == str(ROUNDS)
