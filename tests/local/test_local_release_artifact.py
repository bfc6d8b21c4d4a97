"""Release model artifact, run locally: dev's synthesized state copies the run's training
artifact under releases/ in the embedded S3 (moto's S3 server), encrypted under the data key, and
fails as Step Functions reports an S3 refusal when there is nothing to copy.

Expected values: SageMaker writes a training job's model to
``<S3OutputPath>/<job>/output/model.tar.gz`` (SageMaker developer guide, "How Amazon SageMaker AI
Processes Training Output"); HeadObject answers ``ServerSideEncryption`` and ``SSEKMSKeyId`` for an
SSE-KMS object (Amazon S3 API Reference, HeadObject); an AWS SDK integration's error is
``<Service>.<Code>Exception`` (Step Functions developer guide, "AWS SDK service integrations"), S3
answers a missing source ``NoSuchKey`` (CopyObject, Amazon S3 API Reference).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from mlstack.local import assembly as assembly_mod
from mlstack.local.asl import ExecutionResult, Interpreter
from mlstack.local.s3 import EmbeddedS3
from mlstack.local.sagemaker import LocalSageMaker
from mlstack.local.tasks import TaskDispatcher
from tests.iam.access import CallLog

EXECUTION = "dev-release-artifact"
RUN_ID = hashlib.md5(EXECUTION.encode()).hexdigest()  # the workflow's run_id: MD5 of the name
JOB = f"mlstack-dev-{RUN_ID}-t0-0"
MODEL = b"\x1f\x8b a model.tar.gz stand-in"


@pytest.fixture(scope="module")
def local(cdk_out: Path) -> assembly_mod.LocalAssembly:
    return assembly_mod.load("dev", cdk_out=cdk_out)


def data_bucket(local: assembly_mod.LocalAssembly) -> str:
    """The bucket encrypted with a KMS key (the access-log bucket has none)."""
    (bucket,) = CallLog(local).bucket_keys
    return str(bucket)


def release(
    local: assembly_mod.LocalAssembly, tmp_path: Path, s3: EmbeddedS3, job: str = JOB
) -> ExecutionResult:
    """Run the one state (its Catch and Next left out) on the state a run has there."""
    state = local.definition["States"]["Release model artifact"]
    state = {k: v for k, v in state.items() if k not in ("Catch", "Next")}
    sagemaker = LocalSageMaker(tmp_path, s3, {}, account=local.account)
    dispatcher = TaskDispatcher(local, s3, sagemaker, tmp_path)
    definition = {"StartAt": "Copy", "States": {"Copy": {**state, "End": True}}}
    run: dict[str, Any] = {"run_id": RUN_ID, "training": {"TrainingJobName": job}}
    return Interpreter(definition, dispatcher, sleep=lambda s: None).execute(run, name=EXECUTION)


def test_the_trained_model_is_copied_under_releases_with_the_data_key(
    local: assembly_mod.LocalAssembly, tmp_path: Path
) -> None:
    bucket = data_bucket(local)
    with EmbeddedS3(local.region) as s3:
        s3.create_bucket(bucket)
        s3.write(f"s3://{bucket}/models/{JOB}/output/model.tar.gz", MODEL)
        result = release(local, tmp_path, s3)
        assert result.status == "SUCCEEDED", result.cause
        key = f"releases/{RUN_ID}/model.tar.gz"
        assert s3.read(f"s3://{bucket}/{key}") == MODEL
        head = s3.client.head_object(Bucket=bucket, Key=key)
    # The data key the bucket policy requires: the bucket's default encryption names it.
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"] == CallLog(local).bucket_keys[bucket]
    assert result.output["release"]["etag"] == head["ETag"]


def test_nothing_to_copy_fails_as_step_functions_reports_s3s_refusal(
    local: assembly_mod.LocalAssembly, tmp_path: Path
) -> None:
    bucket = data_bucket(local)
    with EmbeddedS3(local.region) as s3:
        s3.create_bucket(bucket)
        # moto's backend outlives one server: a job name no other test wrote.
        result = release(local, tmp_path, s3, job=f"{JOB}-never-trained")
    assert result.status == "FAILED"
    assert result.error == "S3.NoSuchKeyException"
