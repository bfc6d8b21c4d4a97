"""A customer-managed KMS key for every CloudWatch Logs log group of a stack."""

from __future__ import annotations

from typing import Any

import jsii
from aws_cdk import (
    Arn,
    ArnComponents,
    ArnFormat,
    Aspects,
    Duration,
    IAspect,
    IStableListProducer,
    Lazy,
    RemovalPolicy,
    Stack,
)
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct, IConstruct


def deny_grants_for_non_aws_resources(key: kms.Key) -> None:
    """Only AWS services may create grants on ``key`` (AWS Control Tower control CT.KMS.PR.3):
    the services that use the key for us (S3, SageMaker, CloudWatch Logs) create their grants
    for AWS resources; no principal needs one for anything else."""
    key.add_to_resource_policy(
        iam.PolicyStatement(
            sid="DenyGrantsExceptForAwsResources",
            effect=iam.Effect.DENY,
            principals=[iam.AnyPrincipal()],
            actions=["kms:CreateGrant"],
            resources=["*"],
            conditions={
                "BoolIfExists": {
                    "kms:GrantIsForAWSResource": "false",
                    "aws:PrincipalIsAWSService": "false",
                }
            },
        )
    )


@jsii.implements(IAspect)
class _EncryptLogGroups:
    def __init__(self, owner: LogGroupEncryption) -> None:
        self._owner = owner

    def visit(self, node: IConstruct) -> None:
        if isinstance(node, logs.CfnLogGroup) and node.kms_key_id is None:
            self._owner.encrypt(node)


class LogGroupEncryption(Construct):
    """Creates a KMS key (rotated) and encrypts every log group of the enclosing stack that has
    no key of its own with it.

    CloudWatch Logs may use the key only for those log groups: the key policy's statement for
    ``logs.<region>.amazonaws.com`` is conditioned on the encryption context
    ``kms:EncryptionContext:aws:logs:arn`` ("Encrypt log data in CloudWatch Logs using AWS Key
    Management Service", CloudWatch Logs User Guide). A named log group is allowed by its ARN;
    an unnamed one by ``<stack name>-*``, the prefix of the names CloudFormation generates.

    Args:
        removal_policy: of the key (default RETAIN: logs already written stay readable).

    Attributes:
        key: the KMS key of the stack's log groups.
    """

    def __init__(
        self, scope: Construct, id: str, *, removal_policy: RemovalPolicy = RemovalPolicy.RETAIN
    ) -> None:
        super().__init__(scope, id)
        self.key = kms.Key(
            self,
            "Resource",
            description="Encrypts the CloudWatch Logs log groups of this stack",
            enable_key_rotation=True,
            removal_policy=removal_policy,
            pending_window=Duration.days(7) if removal_policy == RemovalPolicy.DESTROY else None,
        )
        deny_grants_for_non_aws_resources(self.key)
        self._log_group_arns: list[str] = []
        stack = Stack.of(self)
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchLogsForTheseLogGroupsOnly",
                principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
                actions=[
                    "kms:Encrypt*",
                    "kms:Decrypt*",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:Describe*",
                ],
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": Lazy.list(_Arns(self._log_group_arns))
                    }
                },
            )
        )
        Aspects.of(stack).add(_EncryptLogGroups(self))

    def encrypt(self, log_group: logs.CfnLogGroup) -> None:
        """Encrypt ``log_group`` with the key and allow CloudWatch Logs to use it for it."""
        log_group.kms_key_id = self.key.key_arn
        stack = Stack.of(self)
        # The L2 LogGroup hands its name over as a token that resolves to nothing when unnamed.
        named = log_group.log_group_name is not None and stack.resolve(log_group.log_group_name)
        name: Any = log_group.log_group_name if named else f"{stack.stack_name}-*"
        arn = Arn.format(
            ArnComponents(
                service="logs",
                resource="log-group",
                resource_name=name,
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            ),
            stack,
        )
        if arn not in self._log_group_arns:
            self._log_group_arns.append(arn)


@jsii.implements(IStableListProducer)
class _Arns:
    """The log group ARNs collected until synthesis (the aspect runs after the constructors)."""

    def __init__(self, arns: list[str]) -> None:
        self._arns = arns

    def produce(self) -> list[str]:
        return list(self._arns)
