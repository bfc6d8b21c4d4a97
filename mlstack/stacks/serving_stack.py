"""The realtime endpoint of one environment, deployed when its config names a model artifact."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_s3 as s3
from constructs import Construct

from mlstack.config import EnvironmentConfig
from mlstack.constructs import DataBucket, ModelImage, RealtimeEndpoint
from mlstack.constructs.model_images import CONTAINERS_DIR


class ServingStack(Stack):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: EnvironmentConfig,
        data: DataBucket,
        **kwargs: Any,
    ):
        super().__init__(
            scope, id, description=f"mlstack {config.name}: realtime endpoint", **kwargs
        )
        artifact = config.endpoint.model_artifact
        if artifact is None:
            raise ValueError(f"environment '{config.name}': endpoint.model_artifact is null")
        if artifact.startswith("s3://"):
            bucket_name, _, key = artifact.removeprefix("s3://").partition("/")
            bucket = s3.Bucket.from_bucket_name(self, "ArtifactBucket", bucket_name)
        else:
            bucket, key = data.bucket, artifact
        image = ModelImage(
            self,
            "InferenceImage",
            directory=CONTAINERS_DIR,
            file=None if config.images.inference_image_uri else "inference/Dockerfile",
            image_uri=config.images.inference_image_uri,
        )
        self.endpoint = RealtimeEndpoint(
            self,
            "Endpoint",
            image=image,
            model_data_bucket=bucket,
            model_data_key=key,
            key=data.key,
            instance_type=config.endpoint.instance_type,
            instance_count=config.endpoint.instance_count,
            endpoint_name=config.name_prefix,
        )
        CfnOutput(self, "EndpointName", value=self.endpoint.endpoint_name)
