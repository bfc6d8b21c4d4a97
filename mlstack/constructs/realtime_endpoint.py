"""SageMaker realtime endpoint: model, endpoint configuration and endpoint."""

from __future__ import annotations

import re

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from mlstack.constructs._nag import acknowledge, acknowledge_scoped_wildcards, default_policy
from mlstack.constructs.model_images import ModelImage

_INSTANCE_TYPE = re.compile(r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
_ENDPOINT_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


class RealtimeEndpoint(Construct):
    """Creates a SageMaker model (``image`` + the artifact ``model_data_key`` in
    ``model_data_bucket``), an endpoint configuration (one variant of ``instance_type`` x
    ``instance_count``, storage encrypted with ``key``) and the endpoint.

    The endpoint configuration has no fixed name: any change creates a new one and CloudFormation
    points the endpoint at it, so the endpoint (named ``endpoint_name``, or by CloudFormation
    when None) keeps its name. Without ``role`` a role is created that may read only the artifact,
    decrypt with ``key``, pull only ``image`` and write the endpoint's logs.

    Attributes: ``model``, ``endpoint_config``, ``endpoint``, ``role``, ``endpoint_name``.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        image: ModelImage,
        model_data_bucket: s3.IBucket,
        model_data_key: str,
        key: kms.IKey,
        role: iam.IRole | None = None,
        instance_type: str = "ml.m5.large",
        instance_count: int = 1,
        endpoint_name: str | None = None,
        variant_name: str = "AllTraffic",
        network_isolation: bool = True,
    ) -> None:
        super().__init__(scope, id)
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
        if not model_data_key or model_data_key.startswith(("/", "s3://")):
            raise ValueError(
                f"RealtimeEndpoint model_data_key={model_data_key!r}: expected an object key "
                "inside model_data_bucket, such as 'models/release/model.tar.gz'"
            )
        model_data_url = f"s3://{model_data_bucket.bucket_name}/{model_data_key}"

        if role is None:
            created = iam.Role(
                self,
                "Role",
                assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
                description="Realtime endpoint: reads its model artifact and writes its logs",
            )
            created.add_to_policy(
                iam.PolicyStatement(
                    sid="ReadModelArtifact",
                    actions=["s3:GetObject"],
                    resources=[model_data_bucket.arn_for_objects(model_data_key)],
                )
            )
            key.grant_decrypt(created)
            image.grant_pull(created)
            stack = Stack.of(self)
            log_group = f"/aws/sagemaker/Endpoints/{endpoint_name or '*'}"
            created.add_to_policy(
                iam.PolicyStatement(
                    sid="WriteOwnLogs",
                    actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[
                        stack.format_arn(
                            service="logs",
                            resource="log-group",
                            resource_name=name,
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                        for name in (log_group, f"{log_group}:log-stream:*")
                    ],
                )
            )
            created.add_to_policy(
                iam.PolicyStatement(
                    sid="PutSageMakerMetrics",
                    actions=["cloudwatch:PutMetricData"],
                    resources=["*"],  # PutMetricData has no resource-level permissions
                    conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
                )
            )
            policy = default_policy(created)
            acknowledge(
                policy,
                "AwsSolutions-IAM5[Resource::*]",
                "Only ecr:GetAuthorizationToken and cloudwatch:PutMetricData (limited to the "
                "/aws/sagemaker/* namespaces by condition) use '*': neither has resource-level "
                "permissions.",
            )
            acknowledge_scoped_wildcards(
                policy,
                [
                    (f"log-group:{log_group}:log-stream:*", "Log streams of this endpoint only."),
                    (f"log-group:{log_group}", "The log group of this endpoint only."),
                ],
            )
            role = created
        self.role = role

        self.model = sagemaker.CfnModel(
            self,
            "Model",
            execution_role_arn=role.role_arn,
            primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                image=image.image_uri, model_data_url=model_data_url, mode="SingleModel"
            ),
            enable_network_isolation=network_isolation,
        )
        # The model is validated on creation: its role must already carry its policy.
        self.model.node.add_dependency(role)

        self.endpoint_config = sagemaker.CfnEndpointConfig(
            self,
            "Config",
            kms_key_id=key.key_arn,
            production_variants=[
                sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                    variant_name=variant_name,
                    model_name=self.model.attr_model_name,
                    initial_instance_count=instance_count,
                    instance_type=instance_type,
                    initial_variant_weight=1.0,
                )
            ],
        )
        self.endpoint = sagemaker.CfnEndpoint(
            self,
            "Resource",
            endpoint_config_name=self.endpoint_config.attr_endpoint_config_name,
            endpoint_name=endpoint_name,
        )
        self.endpoint_name = self.endpoint.attr_endpoint_name
