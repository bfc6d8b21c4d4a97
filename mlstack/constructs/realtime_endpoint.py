"""SageMaker realtime endpoint: models, endpoint configuration and endpoint, with production
variants (A/B), autoscaling, data capture, serverless and asynchronous inference."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Duration, Stack
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from constructs import Construct

from mlstack.constructs._endpoint_role import endpoint_role
from mlstack.constructs.instance_storage import has_local_storage
from mlstack.constructs.layout import BucketLayout
from mlstack.constructs.model_images import ModelImage
from mlstack.constructs.monitoring import variant_metric
from mlstack.constructs.network import Placement
from mlstack.rules import INSTANCE_TYPE_PATTERN, NAME_PATTERN, SERVERLESS_MEMORY_SIZES

_INSTANCE_TYPE = re.compile(INSTANCE_TYPE_PATTERN)
_ENDPOINT_NAME = re.compile(NAME_PATTERN)
FIVE_MINUTES = Duration.minutes(5)
ONE_MINUTE = Duration.minutes(1)


@dataclass(frozen=True)
class ServerlessInference:
    """A serverless variant: ``memory_size_mb`` (1024..6144 in steps of 1024) and
    ``max_concurrency`` (1..200) instead of instances."""

    memory_size_mb: int = 2048
    max_concurrency: int = 5

    def __post_init__(self) -> None:
        if self.memory_size_mb not in SERVERLESS_MEMORY_SIZES:
            raise ValueError(
                f"ServerlessInference memory_size_mb={self.memory_size_mb}: expected one of "
                f"{list(SERVERLESS_MEMORY_SIZES)}"
            )
        if not 1 <= self.max_concurrency <= 200:
            raise ValueError(
                f"ServerlessInference max_concurrency={self.max_concurrency}: expected 1..200"
            )


@dataclass(frozen=True)
class VariantAutoscaling:
    """Target tracking on SageMakerVariantInvocationsPerInstance between ``min_capacity`` and
    ``max_capacity`` instances."""

    min_capacity: int = 1
    max_capacity: int = 4
    target_invocations_per_instance: int = 100
    scale_in_cooldown: Duration = FIVE_MINUTES
    scale_out_cooldown: Duration = ONE_MINUTE

    def __post_init__(self) -> None:
        if not 1 <= self.min_capacity <= self.max_capacity <= 100:
            raise ValueError(
                f"VariantAutoscaling min_capacity={self.min_capacity}, max_capacity="
                f"{self.max_capacity}: expected 1 <= min_capacity <= max_capacity <= 100"
            )
        if self.target_invocations_per_instance < 1:
            raise ValueError(
                "VariantAutoscaling target_invocations_per_instance="
                f"{self.target_invocations_per_instance}: expected at least 1"
            )


@dataclass(frozen=True)
class EndpointVariant:
    """One production variant: ``weight`` shares traffic with the others (A/B testing);
    ``instance_type`` x ``instance_count``, or ``serverless``; ``model_data_key`` (in the
    endpoint's ``model_data_bucket``) or ``model_package_arn`` (a model package version, when
    the endpoint serves one) defaults to the endpoint's model; ``autoscaling`` registers the
    variant with Application Auto Scaling."""

    name: str = "AllTraffic"
    weight: float = 1.0
    instance_type: str = "ml.m5.large"
    instance_count: int = 1
    model_data_key: str | None = None
    model_package_arn: str | None = None
    serverless: ServerlessInference | None = None
    autoscaling: VariantAutoscaling | None = None

    def __post_init__(self) -> None:
        if not _ENDPOINT_NAME.fullmatch(self.name):
            raise ValueError(
                f"EndpointVariant name={self.name!r}: expected at most 63 letters, digits and "
                "dashes"
            )
        if self.weight <= 0:
            raise ValueError(f"EndpointVariant {self.name} weight={self.weight}: expected > 0")
        if not _INSTANCE_TYPE.fullmatch(self.instance_type):
            raise ValueError(
                f"EndpointVariant {self.name} instance_type={self.instance_type!r}: expected an "
                "ml.* instance type"
            )
        if not 1 <= self.instance_count <= 100:
            raise ValueError(
                f"EndpointVariant {self.name} instance_count={self.instance_count}: expected 1..100"
            )
        if self.serverless is not None and self.autoscaling is not None:
            raise ValueError(
                f"EndpointVariant {self.name}: serverless and autoscaling exclude each other (a "
                "serverless variant scales itself)"
            )


@dataclass(frozen=True)
class DataCapture:
    """Capture ``sampling_percentage`` % of requests and/or responses into the bucket."""

    sampling_percentage: int = 100
    capture_input: bool = True
    capture_output: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.sampling_percentage <= 100:
            raise ValueError(
                f"DataCapture sampling_percentage={self.sampling_percentage}: expected 1..100"
            )
        if not (self.capture_input or self.capture_output):
            raise ValueError("DataCapture: capture_input or capture_output must be True")


@dataclass(frozen=True)
class AsyncInference:
    """Asynchronous inference: requests queue; results and failures go to the bucket, and with
    ``notifications`` to a success and an error topic (encrypted with the endpoint's key)."""

    max_concurrent_invocations_per_instance: int = 4
    notifications: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.max_concurrent_invocations_per_instance <= 1000:
            raise ValueError(
                "AsyncInference max_concurrent_invocations_per_instance="
                f"{self.max_concurrent_invocations_per_instance}: expected 1..1000"
            )


class RealtimeEndpoint(Construct):
    """Creates a SageMaker model (``image`` + the artifact ``model_data_key`` in
    ``model_data_bucket``, or the model package version ``model_package_arn``; plus one model
    per variant with a model of its own), an endpoint configuration (storage encrypted with
    ``key``) and the endpoint.

    The endpoint configuration has no fixed name: any change creates a new one and CloudFormation
    points the endpoint at it, so the endpoint keeps its name. Impossible combinations of props
    raise ``ValueError`` naming the prop.

    Methods: ``grant_invoke(grantee)``; ``metric(name)``, ``metric_invocations()``,
    ``metric_model_latency()`` and ``metric_errors('4XX'|'5XX')``, per variant.

    Args:
        image: the inference image.
        model_data_bucket: the bucket holding the model artifact(s), also those of the model
            package versions.
        model_data_key: the artifact's key, such as ``releases/v1/model.tar.gz``. Exactly one of
            ``model_data_key`` and ``model_package_arn``.
        model_package_arn: the ARN of a model package version (``ModelRegistry.package_arn``):
            the model is created from it (``Containers: [{ModelPackageName: ...}]``), its image
            and artifact come from the version's inference specification. SageMaker creates a
            model only from an ``Approved`` version. Default: None.
        package_artifacts: the key pattern, in ``model_data_bucket``, of the artifacts of the
            model package versions, which the created role may read. Default:
            ``releases/*/model.tar.gz`` (where the training workflow copies what it
            registers).
        key: the KMS key of the bucket; also encrypts the endpoint's storage, captured data,
            asynchronous results and topics.
        role: the role the models run as. Default: a new role that may read only the
            artifacts (``package_artifacts`` for a model package), use ``key``, pull only
            ``image``, write the endpoint's logs and its capture/async prefixes, and publish to
            its topics.
        instance_type: the default variant's instance type. Default: ``ml.m5.large``.
        instance_count: the default variant's instance count, 1 to 100. Default: 1.
        endpoint_name: the endpoint's name. Default: None (named by CloudFormation).
        variant_name: the default variant's name. Default: ``AllTraffic``.
        network_isolation: run the models without network access. Default: True (a serverless
            endpoint needs False).
        variants: production variants sharing traffic by weight (A/B testing), each
            instance-based, optionally autoscaled, or serverless (then the only variant, without
            network isolation, data capture or asynchronous inference). Default: one variant of
            ``variant_name``, ``instance_type`` x ``instance_count``.
        data_capture: capture requests/responses under ``layout.data_capture`` of
            ``output_bucket``. Default: off.
        async_inference: asynchronous inference, results and failures under
            ``layout.async_inference`` of ``output_bucket``. Default: off.
        output_bucket: where captured data and asynchronous results go. Default:
            ``model_data_bucket``.
        layout: the bucket's key prefixes. Default: ``BucketLayout()``.
        placement: a ``WorkloadNetwork``'s ``inference``: every model gets a ``VpcConfig`` in
            those subnets and security groups, and the created role the network-interface
            permissions SageMaker documents for VPC mode. Default: none (no VPC).

    Attributes:
        model: the default variant's model.
        models: every variant's model, by variant name.
        endpoint_config: the endpoint configuration.
        endpoint: the endpoint (``AWS::SageMaker::Endpoint``).
        endpoint_name: the endpoint's name (a token when CloudFormation names it).
        role: the role the models run as.
        variants: the production variants.
        scalable_targets: the Application Auto Scaling targets, by variant name.
        success_topic: the asynchronous success topic, or None.
        error_topic: the asynchronous error topic, or None.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        image: ModelImage,
        model_data_bucket: s3.IBucket,
        model_data_key: str | None = None,
        model_package_arn: str | None = None,
        package_artifacts: str = "releases/*/model.tar.gz",
        key: kms.IKey,
        role: iam.IRole | None = None,
        instance_type: str = "ml.m5.large",
        instance_count: int = 1,
        endpoint_name: str | None = None,
        variant_name: str = "AllTraffic",
        network_isolation: bool = True,
        variants: Sequence[EndpointVariant] | None = None,
        data_capture: DataCapture | None = None,
        async_inference: AsyncInference | None = None,
        output_bucket: s3.IBucket | None = None,
        layout: BucketLayout | None = None,
        placement: Placement | None = None,
    ) -> None:
        super().__init__(scope, id)
        self._placement = placement
        self._packaged = model_package_arn is not None
        if variants is None:
            variants = [
                EndpointVariant(
                    name=variant_name, instance_type=instance_type, instance_count=instance_count
                )
            ]
        self.variants = list(variants)
        artifact_keys = _validate(
            self.variants,
            instance_type=instance_type,
            instance_count=instance_count,
            endpoint_name=endpoint_name,
            model_data_key=model_data_key,
            model_package_arn=model_package_arn,
            package_artifacts=package_artifacts,
            data_capture=data_capture,
            async_inference=async_inference,
            network_isolation=network_isolation,
        )
        layout = layout or BucketLayout()
        output_bucket = output_bucket or model_data_bucket
        self.role = (
            role
            if role is not None
            else endpoint_role(
                self,
                image=image,
                key=key,
                model_data_bucket=model_data_bucket,
                artifact_keys=artifact_keys,
                output_bucket=output_bucket,
                layout=layout,
                data_capture=data_capture is not None,
                async_inference=async_inference is not None,
                endpoint_name=endpoint_name,
            )
        )
        if placement is not None:
            # SageMaker attaches the endpoint's instances to the VPC as this role.
            placement.grant_network_interfaces(self.role, service="sagemaker")
        self.model, self.models = self._models(
            image, model_data_bucket, model_data_key or model_package_arn, network_isolation
        )
        self.success_topic: sns.Topic | None = None
        self.error_topic: sns.Topic | None = None
        async_config = self._async_config(async_inference, key, output_bucket, layout)
        capture_config = _capture_config(data_capture, key, output_bucket, layout)
        self.endpoint_config = self._endpoint_config(key, capture_config, async_config)
        self.endpoint = self._endpoint(endpoint_name)
        self.endpoint_name = self.endpoint.attr_endpoint_name
        self.scalable_targets = self._autoscaling()
        self._asynchronous = async_inference is not None

    def _models(
        self,
        image: ModelImage,
        model_data_bucket: s3.IBucket,
        source: str | None,
        network_isolation: bool,
    ) -> tuple[sagemaker.CfnModel, dict[str, sagemaker.CfnModel]]:
        """The default model, then one model per variant with a model of its own (``source``:
        an artifact key or a model package ARN); returns the default model and every variant's
        model by variant name."""
        assert source is not None

        def container(source: str) -> sagemaker.CfnModel.ContainerDefinitionProperty:
            if source in packages:
                # CreateModel with a container's ModelPackageName: SageMaker takes the image
                # and the artifact from the version ("Create a model (using Model Registry)",
                # SageMaker developer guide, Serverless Inference; API_ContainerDefinition).
                return sagemaker.CfnModel.ContainerDefinitionProperty(model_package_name=source)
            return sagemaker.CfnModel.ContainerDefinitionProperty(
                image=image.image_uri,
                model_data_url=f"s3://{model_data_bucket.bucket_name}/{source}",
                mode="SingleModel",
            )

        def new_model(model_id: str, source: str) -> sagemaker.CfnModel:
            packaged = source in packages
            model = sagemaker.CfnModel(
                self,
                model_id,
                execution_role_arn=self.role.role_arn,
                primary_container=None if packaged else container(source),
                containers=[container(source)] if packaged else None,
                enable_network_isolation=network_isolation,
                vpc_config=sagemaker.CfnModel.VpcConfigProperty(
                    security_group_ids=self._placement.security_group_ids,
                    subnets=self._placement.subnet_ids,
                )
                if self._placement is not None
                else None,
            )
            # The model is validated on creation: its role must already carry its policy.
            model.node.add_dependency(self.role)
            return model

        packages = {source} if self._packaged else set()
        packages |= {v.model_package_arn for v in self.variants if v.model_package_arn}
        default_model = new_model("Model", source)
        models: dict[str, sagemaker.CfnModel] = {}
        for variant in self.variants:
            own = variant.model_package_arn or variant.model_data_key
            if own and own != source:
                models[variant.name] = new_model(f"Model{_id_part(variant.name)}", own)
            else:
                models[variant.name] = default_model
        return default_model, models

    def _async_config(
        self,
        async_inference: AsyncInference | None,
        key: kms.IKey,
        output_bucket: s3.IBucket,
        layout: BucketLayout,
    ) -> sagemaker.CfnEndpointConfig.AsyncInferenceConfigProperty | None:
        """Where asynchronous results and failures go; with notifications, creates
        :attr:`success_topic` and :attr:`error_topic` and lets the role publish to them."""
        if async_inference is None:
            return None
        notification = None
        if async_inference.notifications:
            self.success_topic = sns.Topic(self, "AsyncSuccess", master_key=key, enforce_ssl=True)
            self.error_topic = sns.Topic(self, "AsyncErrors", master_key=key, enforce_ssl=True)
            for topic in (self.success_topic, self.error_topic):
                topic.grant_publish(self.role)
            notification = sagemaker.CfnEndpointConfig.AsyncInferenceNotificationConfigProperty(
                success_topic=self.success_topic.topic_arn,
                error_topic=self.error_topic.topic_arn,
            )
        prefix = f"s3://{output_bucket.bucket_name}/{layout.async_inference}"
        return sagemaker.CfnEndpointConfig.AsyncInferenceConfigProperty(
            output_config=sagemaker.CfnEndpointConfig.AsyncInferenceOutputConfigProperty(
                s3_output_path=f"{prefix}output/",
                s3_failure_path=f"{prefix}failures/",
                kms_key_id=key.key_arn,
                notification_config=notification,
            ),
            client_config=sagemaker.CfnEndpointConfig.AsyncInferenceClientConfigProperty(
                max_concurrent_invocations_per_instance=(
                    async_inference.max_concurrent_invocations_per_instance
                )
            ),
        )

    def _endpoint_config(
        self,
        key: kms.IKey,
        capture_config: sagemaker.CfnEndpointConfig.DataCaptureConfigProperty | None,
        async_config: sagemaker.CfnEndpointConfig.AsyncInferenceConfigProperty | None,
    ) -> sagemaker.CfnEndpointConfig:
        """The endpoint configuration: every variant, with its model, data capture and
        asynchronous inference."""
        serverless = any(v.serverless for v in self.variants)
        local_storage = any(
            v.serverless is None and has_local_storage(v.instance_type) for v in self.variants
        )
        return sagemaker.CfnEndpointConfig(
            self,
            "Config",
            # Serverless endpoints have no volumes, and instance types with local NVMe storage
            # encrypt it themselves: SageMaker refuses a KmsKeyId for either.
            kms_key_id=None if serverless or local_storage else key.key_arn,
            production_variants=[
                _production_variant(v, self.models[v.name].attr_model_name) for v in self.variants
            ],
            data_capture_config=capture_config,
            async_inference_config=async_config,
        )

    def _endpoint(self, endpoint_name: str | None) -> sagemaker.CfnEndpoint:
        autoscaled = any(v.autoscaling is not None for v in self.variants)
        return sagemaker.CfnEndpoint(
            self,
            "Resource",
            endpoint_config_name=self.endpoint_config.attr_endpoint_config_name,
            endpoint_name=endpoint_name,
            # Application Auto Scaling owns an autoscaled variant's instance count: an update to a
            # new configuration keeps it (RetainAllVariantProperties) while weights and data
            # capture still come from the configuration (ExcludeRetainedVariantProperties);
            # AWS::SageMaker::Endpoint in the CloudFormation resource reference.
            retain_all_variant_properties=True if autoscaled else None,
            exclude_retained_variant_properties=[
                sagemaker.CfnEndpoint.VariantPropertyProperty(variant_property_type=t)
                for t in ("DesiredWeight", "DataCaptureConfig")
            ]
            if autoscaled
            else None,
        )

    def _autoscaling(self) -> dict[str, appscaling.ScalableTarget]:
        """A scalable target with target tracking for each variant with ``autoscaling``."""
        scalable_targets: dict[str, appscaling.ScalableTarget] = {}
        # Application Auto Scaling acts on SageMaker through its service-linked role (created
        # on first use); a role of our own would need sagemaker:UpdateEndpointWeightsAndCapacities.
        scaling_role = iam.Role.from_role_arn(
            self,
            "ScalingRole",
            Stack.of(self).format_arn(
                service="iam",
                region="",
                resource="role",
                resource_name="aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
                "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint",
            ),
        )
        for variant in self.variants:
            scaling = variant.autoscaling
            if scaling is None:
                continue
            target = appscaling.ScalableTarget(
                self,
                f"Scaling{_id_part(variant.name)}",
                service_namespace=appscaling.ServiceNamespace.SAGEMAKER,
                resource_id=f"endpoint/{self.endpoint_name}/variant/{variant.name}",
                scalable_dimension="sagemaker:variant:DesiredInstanceCount",
                role=scaling_role,
                min_capacity=scaling.min_capacity,
                max_capacity=scaling.max_capacity,
            )
            target.node.add_dependency(self.endpoint)
            target.scale_to_track_metric(
                "InvocationsPerInstance",
                target_value=scaling.target_invocations_per_instance,
                predefined_metric=(
                    appscaling.PredefinedMetric.SAGEMAKER_VARIANT_INVOCATIONS_PER_INSTANCE
                ),
                scale_in_cooldown=scaling.scale_in_cooldown,
                scale_out_cooldown=scaling.scale_out_cooldown,
            )
            scalable_targets[variant.name] = target
        return scalable_targets

    def grant_invoke(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` call InvokeEndpoint (and InvokeEndpointAsync when the endpoint is
        asynchronous) on this endpoint only.

        The resource is the endpoint's ARN, which ``Ref`` of AWS::SageMaker::Endpoint returns;
        both actions support the ``endpoint`` resource type (Service Authorization Reference,
        "Actions defined by Amazon SageMaker").
        """
        actions = ["sagemaker:InvokeEndpoint"]
        if self._asynchronous:
            actions.append("sagemaker:InvokeEndpointAsync")
        return iam.Grant.add_to_principal(
            grantee=grantee, actions=actions, resource_arns=[self.endpoint.ref]
        )

    def metric(
        self,
        metric_name: str,
        *,
        variant_name: str | None = None,
        statistic: str = "Sum",
        period: Duration = FIVE_MINUTES,
    ) -> cw.Metric:
        """A metric of ``variant_name`` (default: the first variant) in SageMaker's
        ``AWS/SageMaker`` namespace, by ``EndpointName`` and ``VariantName``."""
        return variant_metric(
            self.endpoint_name,
            self._variant_name(variant_name),
            metric_name,
            statistic,
            period,
        )

    def metric_invocations(self, *, variant_name: str | None = None) -> cw.Metric:
        """Requests sent to the variant's model: ``Invocations``, summed over 5 minutes."""
        return self.metric("Invocations", variant_name=variant_name)

    def metric_model_latency(
        self, *, variant_name: str | None = None, statistic: str = "p99"
    ) -> cw.Metric:
        """Time the model took to answer, in microseconds: ``ModelLatency``, p99 by default."""
        return self.metric("ModelLatency", variant_name=variant_name, statistic=statistic)

    def metric_errors(self, kind: str = "5XX", *, variant_name: str | None = None) -> cw.Metric:
        """Invocations answered with a ``kind`` ('4XX' or '5XX') status: summed over 5 minutes."""
        if kind not in ("4XX", "5XX"):
            raise ValueError(
                f"RealtimeEndpoint.metric_errors kind={kind!r}: expected '4XX' or '5XX'"
            )
        return self.metric(f"Invocation{kind}Errors", variant_name=variant_name)

    def _variant_name(self, variant_name: str | None) -> str:
        names = [v.name for v in self.variants]
        if variant_name is None:
            return names[0]
        if variant_name not in names:
            raise ValueError(
                f"RealtimeEndpoint variant_name={variant_name!r}: expected one of {names}"
            )
        return variant_name


def _id_part(name: str) -> str:
    return "".join(c for c in name.title() if c.isalnum())


def _production_variant(
    variant: EndpointVariant, model_name: str
) -> sagemaker.CfnEndpointConfig.ProductionVariantProperty:
    if variant.serverless is not None:
        return sagemaker.CfnEndpointConfig.ProductionVariantProperty(
            variant_name=variant.name,
            model_name=model_name,
            initial_variant_weight=variant.weight,
            serverless_config=sagemaker.CfnEndpointConfig.ServerlessConfigProperty(
                memory_size_in_mb=variant.serverless.memory_size_mb,
                max_concurrency=variant.serverless.max_concurrency,
            ),
        )
    return sagemaker.CfnEndpointConfig.ProductionVariantProperty(
        variant_name=variant.name,
        model_name=model_name,
        initial_instance_count=variant.instance_count,
        instance_type=variant.instance_type,
        initial_variant_weight=variant.weight,
    )


def _validate(
    variants: list[EndpointVariant],
    *,
    instance_type: str,
    instance_count: int,
    endpoint_name: str | None,
    model_data_key: str | None,
    model_package_arn: str | None,
    package_artifacts: str,
    data_capture: DataCapture | None,
    async_inference: AsyncInference | None,
    network_isolation: bool,
) -> list[str]:
    """Reject impossible props at synth time; returns every artifact key (or, for model
    packages, key pattern) the endpoint reads."""
    _check_variants(variants, data_capture, async_inference, network_isolation)
    if (model_data_key is None) == (model_package_arn is None):
        raise ValueError(
            f"RealtimeEndpoint model_data_key={model_data_key!r}, model_package_arn="
            f"{model_package_arn!r}: expected exactly one of them (an artifact or a model "
            "package version)"
        )
    if model_package_arn is not None:
        mixed = [v.name for v in variants if v.model_data_key is not None]
        if mixed:
            raise ValueError(
                f"RealtimeEndpoint variants {mixed}: model_data_key with model_package_arn; "
                "expected each variant's model_package_arn (or none: the endpoint's version)"
            )
        if not package_artifacts or package_artifacts.startswith(("/", "s3://")):
            raise ValueError(
                f"RealtimeEndpoint package_artifacts={package_artifacts!r}: expected a key "
                "pattern inside model_data_bucket, such as 'releases/*/model.tar.gz'"
            )
        return [package_artifacts]
    mixed = [v.name for v in variants if v.model_package_arn is not None]
    if mixed:
        raise ValueError(
            f"RealtimeEndpoint variants {mixed}: model_package_arn with model_data_key; "
            "expected the endpoint's model_package_arn instead of model_data_key"
        )
    if not _INSTANCE_TYPE.fullmatch(instance_type):
        raise ValueError(
            f"RealtimeEndpoint instance_type={instance_type!r}: expected an ml.* instance type"
        )
    if not 1 <= instance_count <= 100:
        raise ValueError(f"RealtimeEndpoint instance_count={instance_count}: expected 1..100")
    if endpoint_name is not None and not _ENDPOINT_NAME.fullmatch(endpoint_name):
        raise ValueError(
            f"RealtimeEndpoint endpoint_name={endpoint_name!r}: expected at most 63 letters, "
            "digits and dashes, starting with a letter or digit"
        )
    assert model_data_key is not None
    if not model_data_key or model_data_key.startswith(("/", "s3://")):
        raise ValueError(
            f"RealtimeEndpoint model_data_key={model_data_key!r}: expected an object key "
            "inside model_data_bucket, such as 'releases/v1/model.tar.gz'"
        )
    artifact_keys = sorted(
        {model_data_key} | {v.model_data_key for v in variants if v.model_data_key}
    )
    for artifact in artifact_keys:
        if artifact.startswith(("/", "s3://")):
            raise ValueError(
                f"RealtimeEndpoint variants: model_data_key={artifact!r}: expected an object "
                "key inside model_data_bucket"
            )
    return artifact_keys


def _capture_config(
    data_capture: DataCapture | None,
    key: kms.IKey,
    output_bucket: s3.IBucket,
    layout: BucketLayout,
) -> sagemaker.CfnEndpointConfig.DataCaptureConfigProperty | None:
    """Capture the sampled requests and/or responses under ``layout.data_capture``."""
    if data_capture is None:
        return None
    modes = [
        mode
        for mode, enabled in (
            ("Input", data_capture.capture_input),
            ("Output", data_capture.capture_output),
        )
        if enabled
    ]
    return sagemaker.CfnEndpointConfig.DataCaptureConfigProperty(
        enable_capture=True,
        initial_sampling_percentage=data_capture.sampling_percentage,
        destination_s3_uri=f"s3://{output_bucket.bucket_name}/{layout.data_capture}",
        kms_key_id=key.key_arn,
        capture_options=[
            sagemaker.CfnEndpointConfig.CaptureOptionProperty(capture_mode=mode) for mode in modes
        ],
    )


def _check_variants(
    variants: list[EndpointVariant],
    data_capture: DataCapture | None,
    async_inference: AsyncInference | None,
    network_isolation: bool,
) -> None:
    names = [v.name for v in variants]
    if not 1 <= len(variants) <= 10:
        raise ValueError(f"RealtimeEndpoint variants={names}: expected 1 to 10 variants")
    if len(set(names)) != len(names):
        raise ValueError(f"RealtimeEndpoint variants={names}: expected distinct names")
    serverless = [v.name for v in variants if v.serverless is not None]
    if serverless:
        if len(variants) > 1:
            raise ValueError(
                f"RealtimeEndpoint variants={names}: a serverless variant ({serverless[0]!r}) "
                "must be the endpoint's only variant"
            )
        if data_capture is not None:
            raise ValueError(
                "RealtimeEndpoint data_capture: a serverless endpoint does not support data "
                "capture; expected data_capture=None"
            )
        if async_inference is not None:
            raise ValueError(
                "RealtimeEndpoint async_inference: asynchronous inference needs instance-based "
                "variants, not serverless"
            )
        if network_isolation:
            raise ValueError(
                "RealtimeEndpoint network_isolation=True: a serverless endpoint does not support "
                "network isolation; expected network_isolation=False"
            )
    if async_inference is not None and len(variants) > 1:
        raise ValueError(
            f"RealtimeEndpoint async_inference: expected exactly one variant, got {names}"
        )
