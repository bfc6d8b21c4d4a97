"""A private network for the workload: isolated subnets, VPC endpoints and security groups."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Arn, ArnComponents, Aws, Fn, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from mlstack.constructs._nag import (
    acknowledge_compliance,
    acknowledge_inline_policy,
    acknowledge_star,
    acknowledge_wildcard_resources,
)

HTTPS = ec2.Port.tcp(443)

# The interface endpoints the workload calls (service name suffix after com.amazonaws.<region>.):
# SageMaker API and Runtime (the state machine's jobs and InvokeEndpoint), ECR API and DKR (image
# pulls), CloudWatch Logs and monitoring (job logs and metrics), STS (role sessions inside jobs
# and functions) and KMS (SSE-KMS data keys).
INTERFACE_ENDPOINTS: tuple[tuple[str, ec2.InterfaceVpcEndpointAwsService], ...] = (
    ("SageMakerApi", ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_API),
    ("SageMakerRuntime", ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_RUNTIME),
    ("EcrApi", ec2.InterfaceVpcEndpointAwsService.ECR),
    ("EcrDocker", ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER),
    ("Logs", ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS),
    ("Monitoring", ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_MONITORING),
    ("Sts", ec2.InterfaceVpcEndpointAwsService.STS),
    ("Kms", ec2.InterfaceVpcEndpointAwsService.KMS),
)

# "Give SageMaker access to resources in your Amazon VPC" (SageMaker Developer Guide) lists
# these for a role whose jobs and models run in a VPC; "Giving Lambda functions access to
# resources in an Amazon VPC" (Lambda Developer Guide) lists the Lambda ones.
SAGEMAKER_ENI_ACTIONS = (
    "ec2:CreateNetworkInterfacePermission",
    "ec2:DeleteNetworkInterface",
    "ec2:DeleteNetworkInterfacePermission",
)
LAMBDA_ENI_ACTIONS = (
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
)
SAGEMAKER_DESCRIBE_ACTIONS = (
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeVpcs",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
)
LAMBDA_DESCRIBE_ACTIONS = ("ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets")


@dataclass(frozen=True)
class Placement:
    """Where a job, model or function runs: subnets of ``vpc`` and its security groups."""

    vpc: ec2.IVpc
    subnets: Sequence[ec2.ISubnet]
    security_groups: Sequence[ec2.ISecurityGroup]

    @property
    def subnet_ids(self) -> list[str]:
        return [subnet.subnet_id for subnet in self.subnets]

    @property
    def security_group_ids(self) -> list[str]:
        return [group.security_group_id for group in self.security_groups]

    def vpc_config(self) -> dict[str, list[str]]:
        """SageMaker's ``VpcConfig`` (CreateTrainingJob, CreateModel, ...)."""
        return {"SecurityGroupIds": self.security_group_ids, "Subnets": self.subnet_ids}

    def subnet_selection(self) -> ec2.SubnetSelection:
        return ec2.SubnetSelection(subnets=list(self.subnets))

    def grant_network_interfaces(self, role: iam.IRole, *, service: str) -> None:
        """Give ``role`` the EC2 network-interface permissions that ``service`` ("sagemaker" or
        "lambda") documents for VPC mode, scoped to this placement.

        Service Authorization Reference, Amazon EC2: ``CreateNetworkInterface`` authorizes the
        subnet and security group it uses (resource types ``subnet``, ``security-group``), so
        naming ours confines new interfaces to them; the actions on an existing
        ``network-interface`` take the ``ec2:Vpc`` condition key; the Describe actions support
        no resource-level permissions.
        """
        if service not in ("sagemaker", "lambda"):
            raise ValueError(
                f"grant_network_interfaces service={service!r}: expected 'sagemaker' or 'lambda'"
            )
        stack = Stack.of(role)
        interfaces = _ec2_arn(stack, "network-interface", "*")
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="CreateNetworkInterfacesInOurSubnets",
                actions=["ec2:CreateNetworkInterface"],
                resources=[
                    interfaces,
                    *(_ec2_arn(stack, "subnet", i) for i in self.subnet_ids),
                    *(_ec2_arn(stack, "security-group", i) for i in self.security_group_ids),
                ],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ManageNetworkInterfacesInOurVpc",
                actions=list(
                    SAGEMAKER_ENI_ACTIONS if service == "sagemaker" else LAMBDA_ENI_ACTIONS
                ),
                resources=[interfaces],
                conditions={"ArnEquals": {"ec2:Vpc": _ec2_arn(stack, "vpc", self.vpc.vpc_id)}},
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="DescribeNetwork",
                actions=list(
                    SAGEMAKER_DESCRIBE_ACTIONS
                    if service == "sagemaker"
                    else LAMBDA_DESCRIBE_ACTIONS
                ),
                resources=["*"],
            )
        )
        policy = role.node.try_find_child("DefaultPolicy")
        if isinstance(policy, Construct):
            acknowledge_wildcard_resources(
                policy,
                [
                    (
                        interfaces,
                        "Network interfaces do not exist before the service creates them; "
                        "CreateNetworkInterface is confined by our subnets and security groups, "
                        "the other actions by the ec2:Vpc condition.",
                    )
                ],
            )
            acknowledge_star(
                policy,
                "DescribeNetwork",
                "The EC2 Describe actions support no resource-level permissions "
                "(Service Authorization Reference, Amazon EC2).",
            )


# Every endpoint statement the workload's own calls use: principals of this account only.
THIS_ACCOUNT = {"StringEquals": {"aws:PrincipalAccount": Aws.ACCOUNT_ID}}


def _ec2_arn(stack: Stack, resource: str, name: str) -> str:
    return Arn.format(ArnComponents(service="ec2", resource=resource, resource_name=name), stack)


class WorkloadNetwork(Construct):
    """Creates the security groups of the workload and, with ``vpc_id=None``, a VPC of private
    isolated subnets in two availability zones (no NAT or internet gateway) with the VPC
    endpoints the workload calls: an S3 gateway endpoint and the interface endpoints in
    :data:`INTERFACE_ENDPOINTS`, each with a policy for this account's principals and resources.

    Args:
        bucket: the data bucket, the only bucket the S3 gateway endpoint allows besides ECR's
            image layer bucket.
        keys: the KMS keys the KMS endpoint allows.
        vpc_id: an existing VPC to use instead (with ``subnet_ids``); it must already reach the
            services above (endpoints or a NAT): none are created in it. Default: None (a VPC
            is created).
        subnet_ids: the subnets of ``vpc_id`` to run in.
        extra_security_group_ids: security groups attached beside ours (an existing VPC's
            mandated groups, for example).
        flow_log_retention: retention of the created VPC's flow log group.
        name_prefix: the prefix of the SageMaker resources the workload names (jobs, models,
            endpoints): the SageMaker API and Runtime endpoints allow only those. Default: None
            (every SageMaker resource of the account).
        removal_policy: of the created VPC's flow log group.

    Attributes:
        vpc: the VPC.
        training: placement of training and tuning jobs (its group allows traffic between the
            job's own hosts).
        inference: placement of transform jobs, models and endpoints.
        functions: placement of Lambda functions.
        endpoints_security_group: the VPC endpoints' group (None for an existing VPC).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        bucket: s3.IBucket,
        keys: Sequence[kms.IKey] = (),
        vpc_id: str | None = None,
        subnet_ids: Sequence[str] = (),
        extra_security_group_ids: Sequence[str] = (),
        flow_log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        name_prefix: str | None = None,
    ) -> None:
        super().__init__(scope, id)
        self._name_prefix = name_prefix
        if vpc_id is None and (subnet_ids or extra_security_group_ids):
            raise ValueError(
                "WorkloadNetwork subnet_ids/extra_security_group_ids: expected them only with "
                "vpc_id (an existing VPC)"
            )
        if vpc_id is not None and len(subnet_ids) < 1:
            raise ValueError(
                f"WorkloadNetwork vpc_id={vpc_id!r}: expected subnet_ids, the subnets to run in"
            )
        self.endpoints_security_group: ec2.SecurityGroup | None = None
        if vpc_id is None:
            self.vpc: ec2.IVpc = self._create_vpc(bucket, keys, flow_log_retention, removal_policy)
            subnets = self.vpc.isolated_subnets
        else:
            self.vpc = ec2.Vpc.from_vpc_attributes(
                self,
                "Vpc",
                vpc_id=vpc_id,
                # Only the subnets named are used; their zones matter to nothing here.
                availability_zones=[Fn.select(i, Fn.get_azs()) for i in range(len(subnet_ids))],
                isolated_subnet_ids=list(subnet_ids),
            )
            subnets = [
                ec2.Subnet.from_subnet_id(self, f"Subnet{i}", s) for i, s in enumerate(subnet_ids)
            ]
        extra = [
            ec2.SecurityGroup.from_security_group_id(self, f"Extra{i}", g, mutable=False)
            for i, g in enumerate(extra_security_group_ids)
        ]
        training = self._group("Training", "mlstack training and tuning jobs")
        # Multi-host training: the hosts of one job talk to each other (any port), nothing else.
        training.add_ingress_rule(training, ec2.Port.all_traffic(), "Between the job's own hosts")
        training.add_egress_rule(training, ec2.Port.all_traffic(), "Between the job's own hosts")
        acknowledge_compliance(
            training,
            "EC2RestrictedCommonPorts",
            "The only ingress rule admits this security group itself: the hosts of one "
            "distributed training job (SageMaker's inter-host traffic uses any port); no other "
            "source can reach them.",
        )
        inference = self._group("Inference", "mlstack transform jobs, models and endpoints")
        functions = self._group("Functions", "mlstack Lambda functions")
        self.training = Placement(self.vpc, subnets, [training, *extra])
        self.inference = Placement(self.vpc, subnets, [inference, *extra])
        self.functions = Placement(self.vpc, subnets, [functions, *extra])
        if self.endpoints_security_group is not None:
            for group in (training, inference, functions):
                self.endpoints_security_group.add_ingress_rule(
                    group, HTTPS, f"HTTPS from {group.node.id}"
                )

    def grant_sagemaker(self, role: iam.IRole) -> None:
        """Give ``role`` (the execution role of jobs and models) the network-interface
        permissions SageMaker documents for VPC mode, in the training and inference groups."""
        groups = {
            g.node.path: g
            for g in (*self.training.security_groups, *self.inference.security_groups)
        }
        Placement(self.vpc, self.training.subnets, list(groups.values())).grant_network_interfaces(
            role, service="sagemaker"
        )

    def _group(self, id: str, description: str) -> ec2.SecurityGroup:
        group = ec2.SecurityGroup(
            self, id, vpc=self.vpc, description=description, allow_all_outbound=False
        )
        # HTTPS to the interface endpoints and, through the gateway endpoint, S3. S3's prefix list
        # ID is not known at synth time (no lookup offline), so the rule names any address: the
        # isolated subnets route nowhere but the VPC and the S3 gateway endpoint.
        group.add_egress_rule(ec2.Peer.any_ipv4(), HTTPS, "HTTPS to VPC endpoints and S3")
        return group

    def _create_vpc(
        self,
        bucket: s3.IBucket,
        keys: Sequence[kms.IKey],
        flow_log_retention: logs.RetentionDays,
        removal_policy: RemovalPolicy,
    ) -> ec2.Vpc:
        vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=2,
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="Isolated", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=22
                )
            ],
            restrict_default_security_group=False,
        )
        acknowledge_compliance(
            vpc,
            "VPCDefaultSecurityGroupClosed",
            "Nothing is placed in the default security group: every network interface of the "
            "workload gets one of ours. Closing it takes a custom-resource Lambda outside the VPC.",
        )
        self._add_flow_logs(vpc, flow_log_retention, removal_policy)
        s3_endpoint = vpc.add_gateway_endpoint("S3", service=ec2.GatewayVpcEndpointAwsService.S3)
        s3_endpoint.add_to_policy(
            iam.PolicyStatement(
                sid="OurBucket",
                principals=[iam.AnyPrincipal()],
                conditions=THIS_ACCOUNT,
                actions=[
                    "s3:GetObject",
                    "s3:PutObject",
                    "s3:ListBucket",
                    "s3:GetBucketLocation",
                    "s3:AbortMultipartUpload",
                    "s3:ListMultipartUploadParts",
                ],
                resources=[bucket.bucket_arn, bucket.arn_for_objects("*")],
            )
        )
        s3_endpoint.add_to_policy(
            iam.PolicyStatement(
                sid="EcrImageLayers",
                principals=[iam.AnyPrincipal()],
                # ECR keeps image layers in this AWS-owned bucket and pulls need only GetObject
                # on it ("Amazon ECR interface VPC endpoints", ECR User Guide: "Minimum Amazon S3
                # bucket permissions for Amazon ECR"). No aws:PrincipalAccount condition here:
                # the layer is fetched with the URL GetDownloadUrlForLayer returns, presigned by
                # ECR, not by a principal of this account, and AWS's minimum policy has none.
                actions=["s3:GetObject"],
                resources=[f"arn:{Aws.PARTITION}:s3:::prod-{Aws.REGION}-starport-layer-bucket/*"],
            )
        )
        self.endpoints_security_group = ec2.SecurityGroup(
            self,
            "Endpoints",
            vpc=vpc,
            description="mlstack VPC interface endpoints: HTTPS from the workload only",
            allow_all_outbound=False,
        )
        for id, service in INTERFACE_ENDPOINTS:
            endpoint = vpc.add_interface_endpoint(
                id,
                service=service,
                private_dns_enabled=True,
                security_groups=[self.endpoints_security_group],
                open=False,
            )
            for statement in _endpoint_statements(id, keys, self._name_prefix):
                endpoint.add_to_policy(statement)
        return vpc

    def _add_flow_logs(
        self, vpc: ec2.Vpc, flow_log_retention: logs.RetentionDays, removal_policy: RemovalPolicy
    ) -> None:
        # Every accepted and rejected flow, to a log group of this stack (encrypted like the
        # stack's other log groups when the stack has a LogGroupEncryption).
        flow_logs = logs.LogGroup(
            self,
            "FlowLogs",
            retention=flow_log_retention,
            removal_policy=removal_policy,
        )
        flow_log = vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs),
            traffic_type=ec2.FlowLogTrafficType.ALL,
        )
        flow_log_role = flow_log.node.try_find_child("IAMRole")
        if isinstance(flow_log_role, iam.Role):
            acknowledge_inline_policy(flow_log_role)


def _endpoint_access(
    id: str, keys: Sequence[kms.IKey], name_prefix: str | None
) -> tuple[list[str], list[str]]:
    """The actions the workload calls through interface endpoint ``id``, and the resources of
    this account they are called on."""

    partition, region, account = _pseudo_parameters()

    def arn(service: str, resource: str) -> str:
        return f"arn:{partition}:{service}:{region}:{account}:{resource}"

    if id == "Kms":  # the only entry that reads the constructs (one jsii call per key)
        actions = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
        return actions, [key.key_arn for key in keys] or [arn("kms", "key/*")]

    # SageMaker lower-cases names in ARNs; the prefix is lower-case (validate_name_prefix).
    named = f"{name_prefix}*" if name_prefix else "*"
    # One ARN per resource type the Describe actions take (parliament checks each action's
    # resource format, so no '*/<prefix>*' across types).
    described = (
        "training-job",
        "transform-job",
        "hyper-parameter-tuning-job",
        "model",
        "endpoint",
        "endpoint-config",
    )
    sagemaker = [arn("sagemaker", f"{kind}/{named}") for kind in described]
    return {
        # Reading the state of jobs, models and endpoints from inside the VPC (the state machine
        # itself calls SageMaker from the Step Functions service, not from here).
        "SageMakerApi": (
            [
                "sagemaker:DescribeTrainingJob",
                "sagemaker:DescribeTransformJob",
                "sagemaker:DescribeHyperParameterTuningJob",
                "sagemaker:DescribeModel",
                "sagemaker:DescribeEndpoint",
                "sagemaker:DescribeEndpointConfig",
            ],
            sagemaker,
        ),
        "SageMakerRuntime": (
            [
                "sagemaker:InvokeEndpoint",
                "sagemaker:InvokeEndpointAsync",
                "sagemaker:InvokeEndpointWithResponseStream",
            ],
            [arn("sagemaker", f"endpoint/{named}")],
        ),
        # Image pulls: the token (no resource-level permission) and the layers of this
        # account's repositories.
        "EcrApi": (_ECR_PULL, [arn("ecr", "repository/*")]),
        "EcrDocker": (_ECR_PULL, [arn("ecr", "repository/*")]),
        "Logs": (
            [
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
                "logs:DescribeLogStreams",
            ],
            [arn("logs", "log-group:*")],
        ),
        # PutMetricData has no resource-level permission.
        "Monitoring": (["cloudwatch:PutMetricData"], ["*"]),
        # Nothing in the workload assumes a role (lambda/ and containers/ make no STS call;
        # SageMaker assumes the execution role from outside the VPC): the endpoint answers
        # who-am-I only, for SDKs in AWS's images that ask (GetCallerIdentity takes no resource).
        "Sts": (["sts:GetCallerIdentity"], ["*"]),
    }[id]


@functools.cache
def _pseudo_parameters() -> tuple[str, str, str]:
    """``Aws.PARTITION``, ``Aws.REGION``, ``Aws.ACCOUNT_ID``: tokens aws-cdk-lib creates once, so
    read once (each read is a jsii round trip)."""
    return Aws.PARTITION, Aws.REGION, Aws.ACCOUNT_ID


def _endpoint_statements(
    id: str, keys: Sequence[kms.IKey], name_prefix: str | None
) -> list[iam.PolicyStatement]:
    """This account's principals only, for the calls the workload makes, on this account's
    resources wherever the action takes one."""
    actions, resources = _endpoint_access(id, keys, name_prefix)
    account = THIS_ACCOUNT
    statements = [
        iam.PolicyStatement(
            sid="ThisAccountOnly",
            principals=[iam.AnyPrincipal()],
            actions=actions,
            resources=resources,
            conditions=account,
        )
    ]
    # Calls that take no resource: the principal condition is their only scope.
    global_action = {"EcrApi": "ecr:GetAuthorizationToken"}
    if id in global_action:
        statements.append(
            iam.PolicyStatement(
                sid="ThisAccountOnlyNoResource",
                principals=[iam.AnyPrincipal()],
                actions=[global_action[id]],
                resources=["*"],
                conditions=account,
            )
        )
    return statements


_ECR_PULL = [
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchCheckLayerAvailability",
]
