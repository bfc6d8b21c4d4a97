"""Multi-host training in local mode: ``InstanceCount`` N runs the real ``train`` program as N
processes with SageMaker's ``resourceconfig.json``; a ``ShardedByS3Key`` channel gives each host
only its objects (SageMaker API reference, ``S3DataSource``: "each instance gets approximately
1/n of the number of S3 objects"), a ``FullyReplicated`` one all of them; the hosts train
together through the image's XGBoost collective on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlstack.local.assembly import Image
from mlstack.local.s3 import EmbeddedS3
from mlstack.local.sagemaker import JobFailed, LocalSageMaker
from mlstack.rules import training_image_metric_definitions
from tests.lambdas import load_handler

REPO = Path(__file__).resolve().parents[2]
IMAGE_URI = "000000000000.dkr.ecr.us-east-1.amazonaws.com/train:local"
SERVE_URI = "000000000000.dkr.ecr.us-east-1.amazonaws.com/serve:local"
METRICS = training_image_metric_definitions()
ROWS_PER_SHARD = 3000
SHARDS = 4

# Loaded once under the name tests/seed uses: the handler module sets up the "mlstack.seed"
# logger on import, and a second copy would replace the first one's handler.
seed = load_handler("seed_handler", "seed")


@pytest.fixture(scope="module")
def s3() -> Iterator[EmbeddedS3]:
    """The seeder's shards: 4 train objects, 4 validation objects."""
    server = EmbeddedS3()
    server.client.create_bucket(Bucket="data")
    for shard in range(SHARDS):
        for split in ("train", "validation", "test"):
            rows = seed.split_rows(ROWS_PER_SHARD, split)
            body = b"".join(seed.generate_rows(rows, 5, split, shard=shard))
            server.client.put_object(
                Bucket="data", Key=f"d/{split}/part-{shard:05d}.csv", Body=body
            )
    yield server
    server.stop()


@pytest.fixture()
def sagemaker(s3: EmbeddedS3, tmp_path: Path) -> LocalSageMaker:
    image = Image(uri=IMAGE_URI, directory=REPO / "containers", dockerfile="training/Dockerfile")
    serve = Image(uri=SERVE_URI, directory=REPO / "containers", dockerfile="inference/Dockerfile")
    return LocalSageMaker(tmp_path / "run", s3, {IMAGE_URI: image, SERVE_URI: serve})


def job(name: str, count: int) -> dict[str, Any]:
    """CreateTrainingJob as the workflow's Train model sends it (channels of _state_builder)."""

    def channel(name: str, distribution: str) -> dict[str, Any]:
        return {
            "ChannelName": name,
            "ContentType": "text/csv",
            "CompressionType": "None",
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": f"s3://data/d/{name}/",
                    "S3DataDistributionType": distribution,
                }
            },
        }

    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {
            "TrainingImage": IMAGE_URI,
            "TrainingInputMode": "File",
            "MetricDefinitions": METRICS,
        },
        "RoleArn": "arn:aws:iam::000000000000:role/sagemaker",
        "HyperParameters": {"objective": "reg:logistic", "eval_metric": "rmse", "num_round": "20"},
        "InputDataConfig": [
            channel("train", "ShardedByS3Key"),
            channel("validation", "FullyReplicated"),
        ],
        "OutputDataConfig": {"S3OutputPath": "s3://data/models"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": count},
        "StoppingCondition": {"MaxRuntimeInSeconds": 300},
    }


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _rmse(desc: dict[str, Any]) -> float:
    (value,) = (
        m["Value"] for m in desc["FinalMetricDataList"] if m["MetricName"] == "validation:rmse"
    )
    return float(value)


def test_two_hosts_each_train_on_their_shards_and_together_match_one_host(sagemaker, tmp_path):
    two = sagemaker.create_training_job(job("two-hosts", 2))
    assert two["TrainingJobStatus"] == "Completed"
    root = tmp_path / "run" / "jobs" / "two-hosts"
    hosts = {}
    for host in ("algo-1", "algo-2"):
        base = root / host / "opt" / "ml"
        config = json.loads((base / "input/config/resourceconfig.json").read_text())
        assert config == {
            "current_host": host,
            "hosts": ["algo-1", "algo-2"],
            "network_interface_name": "lo",
        }
        hosts[host] = _files(base / "input/data/train")
        assert _files(base / "input/data/validation") == [f"part-{i:05d}.csv" for i in range(4)]
    # Each host a disjoint half of the objects, together all of them.
    assert hosts == {
        "algo-1": ["part-00000.csv", "part-00002.csv"],
        "algo-2": ["part-00001.csv", "part-00003.csv"],
    }
    for rank, host in enumerate(("algo-1", "algo-2")):
        log = (root / f"train-{host}.log").read_text()
        assert f"host {host} (rank {rank} of 2)" in log
        assert f"channel train: {2 * ROWS_PER_SHARD} rows" in log
    one = sagemaker.create_training_job(job("one-host", 1))
    one_host = tmp_path / "run" / "jobs" / "one-host" / "opt" / "ml" / "input/data/train"
    assert _files(one_host) == [f"part-{i:05d}.csv" for i in range(4)]  # one host: all objects
    # The collective trains one model on all the rows: the same validation error, near enough.
    assert abs(_rmse(two) - _rmse(one)) < 0.01, (_rmse(two), _rmse(one))


def test_more_hosts_than_objects_fails_naming_the_sharding(sagemaker):
    with pytest.raises(JobFailed) as failed:
        sagemaker.create_training_job(job("too-many", 5))
    reason = failed.value.description["FailureReason"]
    assert "algo-5" in reason and "ShardedByS3Key" in reason and "at least 5 objects" in reason


def test_a_two_instance_transform_spreads_the_test_shards_one_output_per_shard(
    sagemaker, s3, tmp_path
):
    trained = sagemaker.create_training_job(job("for-transform", 1))
    sagemaker.create_model(
        {
            "ModelName": "m",
            "PrimaryContainer": {
                "Image": SERVE_URI,
                "ModelDataUrl": trained["ModelArtifacts"]["S3ModelArtifacts"],
            },
        }
    )
    desc = sagemaker.create_transform_job(
        {
            "TransformJobName": "spread",
            "ModelName": "m",
            "BatchStrategy": "MultiRecord",
            "TransformInput": {
                "ContentType": "text/csv",
                "SplitType": "Line",
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://data/d/test/"}
                },
            },
            "TransformOutput": {
                "S3OutputPath": "s3://data/out/",
                "Accept": "text/csv",
                "AssembleWith": "Line",
            },
            "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 2},
        }
    )
    assert desc["TransformJobStatus"] == "Completed"
    # DescribeTransformJob's members only (botocore's sagemaker model): the records are counted
    # in the output below.
    assert "LocalRecords" not in desc
    for shard in range(SHARDS):
        lines = s3.read(f"s3://data/out/part-{shard:05d}.csv.out").splitlines()
        assert len(lines) == ROWS_PER_SHARD  # one line per input row, per shard
    root = tmp_path / "run" / "jobs" / "spread"
    # Each instance's serve process answered the requests of its two shards (one each here).
    for instance in (1, 2):
        log = (root / f"serve-{instance}.log").read_text()
        assert log.count('"POST /invocations HTTP/1.1" 200') == 2, instance
