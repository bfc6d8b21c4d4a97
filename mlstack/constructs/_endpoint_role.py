"""The realtime endpoint's own role: what its models read, write and log, and nothing else."""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from mlstack.constructs._nag import acknowledge_wildcard_resources
from mlstack.constructs.layout import BucketLayout
from mlstack.constructs.model_images import ModelImage
from mlstack.constructs.roles import allow_sagemaker_metrics, log_group_arn, sagemaker_principal


def endpoint_role(
    scope: Construct,
    *,
    image: ModelImage,
    key: kms.IKey,
    model_data_bucket: s3.IBucket,
    artifact_keys: list[str],
    output_bucket: s3.IBucket,
    layout: BucketLayout,
    data_capture: bool,
    async_inference: bool,
    endpoint_name: str | None,
) -> iam.Role:
    """``Role``: the endpoint's own role: reads only the artifacts (of a model package: the pattern
    ``package_artifacts``; CreateModel's role accesses "model artifacts and docker image"),
    uses ``key``, pulls only ``image``, writes the endpoint's logs and, with ``data_capture`` or
    ``async_inference``, the captured data and asynchronous results."""
    write_prefixes = []
    if data_capture:
        write_prefixes.append(layout.data_capture)
    if async_inference:
        write_prefixes.append(layout.async_inference)
    role = iam.Role(
        scope,
        "Role",
        assumed_by=sagemaker_principal(scope),
        description="Realtime endpoint: reads its model artifact and writes its logs",
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="ReadModelArtifact",
            actions=["s3:GetObject"],
            resources=[model_data_bucket.arn_for_objects(k) for k in artifact_keys],
        )
    )
    key.grant_decrypt(role)
    _allow_capture_and_results(role, key, output_bucket, layout, write_prefixes, async_inference)
    image.grant_pull(role)
    group, streams = _allow_own_logs(role, endpoint_name)
    whose = "this endpoint" if endpoint_name else "the endpoints (CloudFormation names this one)"
    acknowledge_wildcard_resources(
        allow_sagemaker_metrics(role),
        [
            (streams, f"Log streams of {whose} only."),
            *([(group, f"The log groups of {whose} only.")] if endpoint_name is None else []),
            *[
                (output_bucket.arn_for_objects(f"{p}*"), f"Objects under the '{p}' prefix only.")
                for p in write_prefixes
            ],
            *[
                (
                    model_data_bucket.arn_for_objects(k),
                    "The model artifacts the training jobs write, read-only.",
                )
                for k in artifact_keys
                if "*" in k
            ],
            *(
                [
                    (
                        output_bucket.arn_for_objects(f"{layout.async_inference}input/*"),
                        "Asynchronous requests of this endpoint only.",
                    )
                ]
                if async_inference
                else []
            ),
        ],
    )
    return role


def _allow_capture_and_results(
    role: iam.Role,
    key: kms.IKey,
    output_bucket: s3.IBucket,
    layout: BucketLayout,
    write_prefixes: list[str],
    async_inference: bool,
) -> None:
    """Write the captured data and asynchronous results under ``write_prefixes``, encrypted with
    ``key``; with ``async_inference``, read the requests."""
    if write_prefixes:
        role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteCaptureAndResults",
                actions=["s3:PutObject", "s3:AbortMultipartUpload"],
                resources=[output_bucket.arn_for_objects(f"{p}*") for p in write_prefixes],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="EncryptCaptureAndResults",
                actions=["kms:GenerateDataKey", "kms:Encrypt"],
                resources=[key.key_arn],
            )
        )
    if async_inference:
        # InvokeEndpointAsync names an input object; the endpoint reads it as this role.
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadAsyncRequests",
                actions=["s3:GetObject"],
                resources=[output_bucket.arn_for_objects(f"{layout.async_inference}input/*")],
            )
        )


def _allow_own_logs(role: iam.Role, endpoint_name: str | None) -> tuple[str, str]:
    """Let ``role`` write the endpoint's log group (all endpoints' when the name is left to
    CloudFormation); returns the ARNs of the log group and of its streams."""
    log_group = f"/aws/sagemaker/Endpoints/{endpoint_name or '*'}"
    group, streams = (
        log_group_arn(role, name) for name in (log_group, f"{log_group}:log-stream:*")
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="WriteOwnLogs",
            actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[group, streams],
        )
    )
    return group, streams
