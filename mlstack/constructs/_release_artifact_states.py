"""Release model artifact: the training workflow's state that copies the run's model to
``<layout.releases><run_id>/model.tar.gz`` before Register model, so the registry version and
every endpoint that serves it read a copy no job can replace.

The training job writes ``<layout.models><job>/output/model.tar.gz``, a prefix every training
job of the workflow may write (the execution role's grant); the copy lives under
``layout.releases``, which no role of the workflow may write but the state machine's, and that
only by copying a training job's artifact (``s3:x-amz-copy-source``) under the data key.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Aws, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from mlstack.constructs._nag import acknowledge_wildcard_resources, default_policy
from mlstack.constructs._state_builder import StateBuilder
from mlstack.constructs.state_names import RELEASE_MODEL_ARTIFACT

__all__ = [
    "RELEASED_ARTIFACT",
    "allow_release_copy",
    "release_artifact_state",
    "released_artifacts",
    "released_model_data_url",
    "trained_artifacts",
]

# The released copy's name under ``<layout.releases><run_id>/``.
RELEASED_ARTIFACT = "model.tar.gz"


def trained_artifacts(layout_models: str) -> str:
    """The key pattern of the training jobs' artifacts: SageMaker writes
    ``<S3OutputPath>/<training job name>/output/model.tar.gz`` (SageMaker developer guide, "How
    Amazon SageMaker AI Processes Training Output"), the output path being ``layout.models``."""
    return f"{layout_models}*/output/model.tar.gz"


def released_artifacts(layout_releases: str) -> str:
    """The key pattern of the released copies, what registered versions serve."""
    return f"{layout_releases}*/{RELEASED_ARTIFACT}"


def released_model_data_url(builder: StateBuilder) -> str:
    """The intrinsic of the run's released artifact's URI: what Register model records as the
    version's ``ModelDataUrl``."""
    return (
        f"States.Format('s3://{builder.bucket_name}/{builder.layout.releases}{{}}/"
        f"{RELEASED_ARTIFACT}', $.run_id)"
    )


def release_artifact_state(scope: Construct, builder: StateBuilder) -> sfn.CustomState:
    """``s3:copyObject`` (an AWS SDK integration) of the run's training artifact
    (``$.training.TrainingJobName``, Train model's or the tuning job's best) to
    ``<layout.releases><run_id>/model.tar.gz``, encrypted under the data key (the bucket policy
    refuses ``aws:kms`` without it); the copy's ETag goes to ``$.release``."""
    state = sfn.CustomState(
        scope,
        RELEASE_MODEL_ARTIFACT,
        state_json={
            "Type": "Task",
            "Comment": f"Copies the trained model under {builder.layout.releases}, where no job "
            "can write: the version registered next serves this copy.",
            "Resource": f"arn:{Aws.PARTITION}:states:::aws-sdk:s3:copyObject",
            "Parameters": _parameters(builder),
            "ResultSelector": {"etag.$": "$.CopyObjectResult.ETag"},
            "ResultPath": "$.release",
        },
    )
    # S3's throttling and service-side errors, as Step Functions names an AWS SDK
    # integration's ("S3." + the error code; Step Functions developer guide, "AWS SDK service
    # integrations"). A retried copy of the same source writes the same bytes again.
    state.add_retry(
        errors=["S3.SlowDownException", "S3.InternalErrorException"],
        max_attempts=builder.max_attempts,
        backoff_rate=2,
        jitter_strategy=sfn.JitterType.FULL,
    )
    return state


def _parameters(builder: StateBuilder) -> dict[str, Any]:
    # CopySource is "<bucket>/<key>" (CopyObject, Amazon S3 API Reference).
    source = f"{builder.bucket_name}/{builder.layout.models}{{}}/output/model.tar.gz"
    return {
        "Bucket": builder.bucket_name,
        "Key.$": f"States.Format('{builder.layout.releases}{{}}/{RELEASED_ARTIFACT}', $.run_id)",
        "CopySource.$": f"States.Format('{source}', $.training.TrainingJobName)",
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": builder.key_arn,
        "BucketKeyEnabled": True,
    }


def allow_release_copy(role: iam.Role, builder: StateBuilder) -> None:
    """The copy's IAM, for the state machine's ``role``: CopyObject is authorized as
    ``s3:GetObject`` on the source and ``s3:PutObject`` on the destination (Amazon S3 API
    Reference, CopyObject: "Permissions"), with SSE-KMS objects ``kms:Decrypt`` and
    ``kms:GenerateDataKey`` through S3. The write under ``releases`` holds only for a copy of a
    training job's artifact: ``s3:x-amz-copy-source`` ("<bucket>/<key>", Amazon S3 User Guide,
    "Bucket policy examples using condition keys": restricting the copy source) must name one,
    so the role can neither upload bytes of its own there nor copy anything else."""
    bucket, releases, models = builder.bucket_name, builder.layout.releases, builder.layout.models
    artifacts = f"arn:{Aws.PARTITION}:s3:::{bucket}/{trained_artifacts(models)}"
    released = f"arn:{Aws.PARTITION}:s3:::{bucket}/{releases}*"
    role.add_to_policy(
        iam.PolicyStatement(
            sid="ReadTrainedModelsToRelease", actions=["s3:GetObject"], resources=[artifacts]
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="CopyTrainedModelsToReleases",
            actions=["s3:PutObject"],
            resources=[released],
            conditions={
                "StringLike": {"s3:x-amz-copy-source": f"{bucket}/{trained_artifacts(models)}"}
            },
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="UseDataKeyToRelease",
            actions=["kms:Decrypt", "kms:GenerateDataKey"],
            resources=[builder.key_arn],
            conditions={
                "StringEquals": {"kms:ViaService": f"s3.{Stack.of(role).region}.amazonaws.com"}
            },
        )
    )
    acknowledge_wildcard_resources(
        default_policy(role),
        [
            (artifacts, f"The training jobs' model artifacts under '{models}' only, read to copy."),
            (
                released,
                f"Copies of those artifacts under '{releases}' only (s3:x-amz-copy-source).",
            ),
        ],
    )
