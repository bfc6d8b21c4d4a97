"""The realtime endpoint of one environment, deployed when its config names an approved model
package version of the environment's registry (or a model artifact)."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_s3 as s3
from constructs import Construct

from mlstack.config import EnvironmentConfig
from mlstack.constructs import (
    AsyncInference,
    DataBucket,
    DataCapture,
    DataQualityMonitor,
    EndpointVariant,
    ModelImage,
    ModelRegistry,
    RealtimeEndpoint,
    ServerlessInference,
    VariantAutoscaling,
    WorkloadNetwork,
)
from mlstack.constructs._nag import acknowledge_inline_policy
from mlstack.constructs._release_artifact_states import released_artifacts
from mlstack.constructs.model_images import CONTAINERS_DIR
from mlstack.stacks._monitor_settings import checked_baseline


def _split(artifact: str) -> tuple[str | None, str]:
    """(bucket name or None for the data bucket, key) of a config model artifact."""
    if artifact.startswith("s3://"):
        bucket_name, _, key = artifact.removeprefix("s3://").partition("/")
        return bucket_name, key
    return None, artifact


def endpoint_variants(
    config: EnvironmentConfig, registry: ModelRegistry | None = None
) -> list[EndpointVariant]:
    """The config's variants as construct props (one ``AllTraffic`` variant by default); a
    variant's ``model_package_version`` becomes its version's ARN in ``registry``."""
    endpoint = config.endpoint
    bucket_name = _split(endpoint.model_artifact)[0] if endpoint.model_artifact else None
    scaling = endpoint.autoscaling
    autoscaling = (
        VariantAutoscaling(
            min_capacity=scaling.min_capacity,
            max_capacity=scaling.max_capacity,
            target_invocations_per_instance=scaling.target_invocations_per_instance,
            scale_in_cooldown=Duration.seconds(scaling.scale_in_cooldown_seconds),
            scale_out_cooldown=Duration.seconds(scaling.scale_out_cooldown_seconds),
        )
        if scaling
        else None
    )
    if endpoint.serverless is not None:
        return [
            EndpointVariant(
                serverless=ServerlessInference(
                    memory_size_mb=endpoint.serverless.memory_size_mb,
                    max_concurrency=endpoint.serverless.max_concurrency,
                )
            )
        ]
    if not endpoint.variants:
        return [
            EndpointVariant(
                instance_type=endpoint.instance_type,
                instance_count=endpoint.instance_count,
                autoscaling=autoscaling,
            )
        ]
    variants = []
    for index, variant in enumerate(endpoint.variants):
        key = None
        package = None
        if variant.model_package_version is not None:
            assert registry is not None
            package = registry.package_arn(variant.model_package_version)
        if variant.model_artifact is not None:
            variant_bucket, key = _split(variant.model_artifact)
            if variant_bucket != bucket_name:
                raise ValueError(
                    f"environment '{config.name}': endpoint.variants[{index}].model_artifact "
                    f"{variant.model_artifact!r}: expected an artifact in the same bucket as "
                    "endpoint.model_artifact"
                )
        variants.append(
            EndpointVariant(
                name=variant.name,
                weight=variant.weight,
                instance_type=variant.instance_type,
                instance_count=variant.instance_count,
                model_data_key=key,
                model_package_arn=package,
                autoscaling=autoscaling,
            )
        )
    return variants


def _check_released(env: str, key_name: str, key: str, releases: str) -> None:
    """A model served from the data bucket must be a released one: under ``releases``, where no
    role of the workflow may write (docs/deploying.md, "Releasing a model")."""
    if not key.startswith(releases):
        raise ValueError(
            f"environment '{env}': endpoint.{key_name} {key!r}: expected a released artifact "
            f"under '{releases}' of the data bucket (such as '{releases}<version>/model.tar.gz'; "
            "see docs/deploying.md) or an s3:// URI"
        )


def monitors_data_quality(config: EnvironmentConfig) -> bool:
    """The Serving endpoint captures its requests, so Model Monitor can compare them with the
    training data's baseline (docs/monitoring.md)."""
    capture = config.endpoint.data_capture
    return config.endpoint.enabled and capture is not None and capture.captures_input


def runs_model_monitor(config: EnvironmentConfig) -> bool:
    """SageMaker Model Monitor watches the endpoint too: only on opt-in
    (``monitoring.model_monitor``), since Model Monitor is closed to new customers
    (docs/monitoring.md) and its resources would roll back a fresh account's Serving stack."""
    return monitors_data_quality(config) and config.monitoring.model_monitor


def first_feature(config: EnvironmentConfig) -> int:
    """The column of the first feature in what Model Monitor analyses: 1 when the endpoint also
    captures its output, which the analyzer puts first (the baseline keeps the label there)."""
    capture = config.endpoint.data_capture
    return 1 if capture is not None and capture.captures_output else 0


class ServingStack(Stack):
    """The Serving endpoint of one environment (CloudFormation-managed, name ``mlstack-<env>``):
    variants, autoscaling, data capture, serverless or asynchronous inference from the config.

    Args:
        config: the environment's validated config; it names the served model:
            ``endpoint.model_package_version``, an approved version of ``registry``'s group, or
            ``endpoint.model_artifact``, a released artifact.
        data: the environment's :class:`DataBucket` (from the data stack).
        registry: the environment's :class:`ModelRegistry` (from the data stack).
        network: the workflow stack's :class:`WorkloadNetwork`, whose ``inference`` placement
            the endpoint's models run in. Default: None (no VPC).

    Attributes:
        endpoint: the :class:`RealtimeEndpoint`.
        monitor: the :class:`DataQualityMonitor` when the endpoint captures its requests and
            ``monitoring.model_monitor`` is on, else None.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: EnvironmentConfig,
        data: DataBucket,
        registry: ModelRegistry,
        network: WorkloadNetwork | None = None,
        **kwargs: Any,
    ):
        super().__init__(
            scope,
            id,
            description=f"mlstack {config.name}: realtime endpoint",
            termination_protection=config.retain_data,
            **kwargs,
        )
        bucket, key, package = self._served_model(config, data, registry)
        image = ModelImage(
            self,
            "InferenceImage",
            directory=CONTAINERS_DIR,
            file=None if config.images.inference_image_uri else "inference/Dockerfile",
            image_uri=config.images.inference_image_uri,
        )
        capture = config.endpoint.data_capture
        asynchronous = config.endpoint.async_inference
        self.endpoint = RealtimeEndpoint(
            self,
            "Endpoint",
            image=image,
            model_data_bucket=bucket,
            model_data_key=key,
            model_package_arn=package,
            # The copies Release model artifact makes of what the workflow registers.
            package_artifacts=released_artifacts(data.layout.releases),
            key=data.key,
            endpoint_name=config.name_prefix,
            variants=endpoint_variants(config, registry),
            # Serverless endpoints do not support network isolation.
            network_isolation=config.endpoint.serverless is None,
            data_capture=DataCapture(
                sampling_percentage=capture.sampling_percentage,
                capture_input=capture.capture in ("both", "input"),
                capture_output=capture.capture in ("both", "output"),
            )
            if capture
            else None,
            async_inference=AsyncInference(
                max_concurrent_invocations_per_instance=(
                    asynchronous.max_concurrent_invocations_per_instance
                ),
                notifications=asynchronous.notifications,
            )
            if asynchronous
            else None,
            output_bucket=data.bucket,
            layout=data.layout,
            # A serverless endpoint has no VPC configuration of its own.
            placement=network.inference if network and not config.endpoint.serverless else None,
        )
        acknowledge_inline_policy(self.endpoint.role)
        self.monitor = self._monitor(config, data, network, self.endpoint.endpoint_name)
        CfnOutput(self, "EndpointName", value=self.endpoint.endpoint_name)

    def _served_model(
        self, config: EnvironmentConfig, data: DataBucket, registry: ModelRegistry
    ) -> tuple[s3.IBucket, str | None, str | None]:
        """(bucket of the artifacts, artifact key or None, model package ARN or None): the
        registry's version ``endpoint.model_package_version``, or a released artifact."""
        version = config.endpoint.model_package_version
        if version is not None:
            return data.bucket, None, registry.package_arn(version)
        artifact = config.endpoint.model_artifact
        if artifact is None:
            raise ValueError(
                f"environment '{config.name}': endpoint.model_package_version and "
                "endpoint.model_artifact are null; expected one of them (the served model)"
            )
        bucket_name, key = _split(artifact)
        releases = data.layout.releases
        for index, variant in enumerate(config.endpoint.variants or ()):
            if variant.model_artifact is not None and _split(variant.model_artifact)[0] is None:
                _check_released(
                    config.name,
                    f"variants[{index}].model_artifact",
                    variant.model_artifact,
                    releases,
                )
        if bucket_name is None:
            _check_released(config.name, "model_artifact", key, releases)
        bucket = (
            s3.Bucket.from_bucket_name(self, "ArtifactBucket", bucket_name)
            if bucket_name
            else data.bucket
        )
        return bucket, key, None

    def _monitor(
        self,
        config: EnvironmentConfig,
        data: DataBucket,
        network: WorkloadNetwork | None,
        endpoint_name: str,
    ) -> DataQualityMonitor | None:
        """Model Monitor's data-quality schedule on the endpoint when it captures requests and
        the environment opts in; its drift alarm is the workflow stack's, beside the endpoint's
        other alarms."""
        if not runs_model_monitor(config):
            return None
        monitoring = config.monitoring
        checked_baseline(config, data.layout.baselines)
        return DataQualityMonitor(
            self,
            "DataQuality",
            endpoint_name=endpoint_name,
            bucket=data.bucket,
            key=data.key,
            feature_count=monitoring.features,
            first_feature=first_feature(config),
            schedule_name=config.monitoring_schedule_name,
            layout=data.layout,
            baseline_prefix=monitoring.baseline,
            schedule_expression=monitoring.schedule_expression,
            instance_type=monitoring.instance_type,
            volume_size_gb=monitoring.volume_size_gb,
            max_runtime=Duration.seconds(monitoring.max_runtime_seconds),
            drift_threshold=monitoring.drift_threshold,
            # Like the endpoint: its models run in the inference placement.
            placement=network.inference if network else None,
        )
