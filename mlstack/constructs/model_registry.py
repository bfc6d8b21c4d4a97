"""The model registry of one environment: a SageMaker model package group."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from mlstack.constructs.roles import MAX_NAME_PREFIX_LENGTH, NAME_PREFIX_PATTERN, sagemaker_arn
from mlstack.rules import APPROVAL_STATUSES

__all__ = ["APPROVAL_STATUSES", "REQUEST_CONTENT_TYPES", "RESPONSE_CONTENT_TYPES", "ModelRegistry"]

# What the inference image's serve program accepts and answers (the canonical names of
# containers/common/mlstack_containers/serving/codecs.py; tests/infra keeps the two in step).
REQUEST_CONTENT_TYPES = (
    "text/csv",
    "application/json",
    "application/jsonlines",
    "text/libsvm",
    "application/x-recordio-protobuf",
)
RESPONSE_CONTENT_TYPES = (
    "text/csv",
    "application/json",
    "application/jsonlines",
    "application/x-recordio-protobuf",
)


class ModelRegistry(Construct):
    """Creates one SageMaker model package group (``AWS::SageMaker::ModelPackageGroup``): the
    versions of the environment's model, each with its metrics and approval status.

    The group is stateful (its versions are the release history): keep its construct ID stable
    and retain it in production. CloudFormation cannot delete a group that still has versions:
    where the group is destroyed with its stack, a :class:`ModelPackageCleanup` deletes them
    first (the app's workflow stack has one for an environment whose ``removal_policy`` is
    ``destroy``).

    Methods: ``package_arn(version)``, ``grant_register(grantee)``, ``grant_read(grantee)``,
    ``grant_approve(grantee)``, ``grant_delete_versions(grantee)``.

    Args:
        group_name: the group's name (letters, digits and dashes; SageMaker names versions
            ``model-package/<group_name>/<N>``).
        description: the group's description. Default: none.
        removal_policy: what happens to the group when the stack is deleted. Default:
            ``RETAIN``.

    Attributes:
        resource: the ``CfnModelPackageGroup``.
        group_name: the group's name.
        group_arn: the group's ARN.
        package_arns: the ARN pattern of the group's versions.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        group_name: str,
        description: str | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        super().__init__(scope, id)
        # Lower case: SageMaker lower-cases names in ARNs, so the grants match what it checks.
        if len(group_name) > MAX_NAME_PREFIX_LENGTH or not NAME_PREFIX_PATTERN.fullmatch(
            group_name
        ):
            raise ValueError(
                f"ModelRegistry group_name={group_name!r}: expected 1 to {MAX_NAME_PREFIX_LENGTH} "
                "lower-case letters, digits and single dashes"
            )
        self.resource = sagemaker.CfnModelPackageGroup(
            self,
            "Resource",
            model_package_group_name=group_name,
            model_package_group_description=description,
        )
        self.resource.apply_removal_policy(removal_policy)
        self.group_name = group_name
        self.group_arn = self.resource.attr_model_package_group_arn
        # A version's ARN is the group's name and its number: model-package/<group>/<N>.
        self.package_arns = sagemaker_arn(self, "model-package", f"{group_name}/*")

    def package_arn(self, version: int) -> str:
        """The ARN of the group's version ``version`` (``model-package/<group>/<N>``), what
        CreateModel takes as a container's ``ModelPackageName``."""
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValueError(
                f"ModelRegistry.package_arn version={version!r}: expected a version number >= 1"
            )
        return sagemaker_arn(self, "model-package", f"{self.group_name}/{version}")

    def grant_register(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` add versions to this group (``sagemaker:CreateModelPackage`` on the
        group's versions only)."""
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["sagemaker:CreateModelPackage"],
            resource_arns=[self.package_arns],
        )

    def grant_read(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` describe the group's versions (``sagemaker:DescribeModelPackage``)."""
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["sagemaker:DescribeModelPackage"],
            resource_arns=[self.package_arns],
        )

    def grant_approve(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` approve or reject the group's versions
        (``sagemaker:UpdateModelPackage``)."""
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["sagemaker:UpdateModelPackage"],
            resource_arns=[self.package_arns],
        )

    def grant_delete_versions(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` list and delete the group's versions (``sagemaker:ListModelPackages``
        and ``sagemaker:DeleteModelPackage`` on the group's versions only: both take the
        ``model-package`` resource type, and AWS's cross-account registry policies grant
        ListModelPackages on ``model-package/<group>/*``)."""
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["sagemaker:ListModelPackages", "sagemaker:DeleteModelPackage"],
            resource_arns=[self.package_arns],
        )
