"""Stateful resources of one environment: the KMS key and the buckets."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from constructs import Construct

from mlstack.config import EnvironmentConfig
from mlstack.constructs import DataBucket


class DataStack(Stack):
    """The stateful part of one environment: the :class:`DataBucket` (bucket, key, access logs),
    retained unless the config's ``removal_policy`` is ``"destroy"``.

    Args:
        config: the environment's validated config.

    Attributes:
        data: the :class:`DataBucket`.
    """

    def __init__(self, scope: Construct, id: str, *, config: EnvironmentConfig, **kwargs: Any):
        super().__init__(
            scope,
            id,
            description=f"mlstack {config.name}: data bucket, access logs and KMS key",
            termination_protection=config.retain_data,
            **kwargs,
        )
        self.data = DataBucket(
            self,
            "DataBucket",
            removal_policy=RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY,
        )
        CfnOutput(self, "BucketName", value=self.data.bucket.bucket_name)
