"""Stateful resources of one environment: the KMS key, the buckets and the model registry."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from constructs import Construct

from mlstack.config import EnvironmentConfig
from mlstack.constructs import DataBucket, ModelRegistry


class DataStack(Stack):
    """The stateful part of one environment: the :class:`DataBucket` (bucket, key, access logs)
    and the :class:`ModelRegistry` (the model's versions), retained unless the config's
    ``removal_policy`` is ``"destroy"``.

    Args:
        config: the environment's validated config.

    Attributes:
        data: the :class:`DataBucket`.
        registry: the :class:`ModelRegistry`, its group named after the environment.
    """

    def __init__(self, scope: Construct, id: str, *, config: EnvironmentConfig, **kwargs: Any):
        super().__init__(
            scope,
            id,
            description=f"mlstack {config.name}: data bucket, access logs, KMS key, model registry",
            termination_protection=config.retain_data,
            **kwargs,
        )
        removal = RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY
        self.data = DataBucket(self, "DataBucket", removal_policy=removal)
        self.registry = ModelRegistry(
            self,
            "ModelRegistry",
            group_name=config.name_prefix,
            description=f"mlstack {config.name}: versions of the model the workflow trains",
            removal_policy=removal,
        )
        CfnOutput(self, "BucketName", value=self.data.bucket.bucket_name)
        CfnOutput(self, "ModelPackageGroupName", value=self.registry.group_name)
