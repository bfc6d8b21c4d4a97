"""Encrypted, versioned S3 bucket for datasets, model artifacts and transform output."""

from __future__ import annotations

import jsii
from aws_cdk import (
    Aspects,
    Aws,
    CfnResource,
    CustomResourceProviderBase,
    Duration,
    FeatureFlags,
    IAspect,
    RemovalPolicy,
    Stack,
)
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct, IConstruct

from mlstack.constructs._nag import acknowledge_compliance, acknowledge_guard, skip_checkov
from mlstack.constructs.layout import BucketLayout
from mlstack.constructs.log_encryption import deny_grants_for_non_aws_resources

THIRTY_DAYS = Duration.days(30)
# The resource type of the custom resource behind ``auto_delete_objects``.
AUTO_DELETE_RESOURCE_TYPE = "Custom::S3AutoDeleteObjects"
ONE_YEAR = Duration.days(365)

# Reasons of the findings that stay (docs/security.md lists them).
NO_SELF_LOGGING = (
    "This is the access log destination of the data bucket; logging it to itself would create "
    "a feedback loop of log objects."
)
ACCESS_LOGS_SSE_S3 = (
    "S3 server access logs can only be delivered to a bucket encrypted with SSE-S3, not SSE-KMS "
    "(Amazon S3 User Guide, 'Enabling Amazon S3 server access logging')."
)
SINGLE_REGION = (
    "One environment lives in one region; a replica needs a second bucket and key in another "
    "region that this app does not deploy. Versioning (30 days of noncurrent versions) and S3's "
    "own redundancy across availability zones protect the objects."
)
NO_EVENT_CONSUMER = (
    "Nothing consumes object events: the workflow is driven by Step Functions, which knows each "
    "object it writes; CloudTrail data events are the audit trail."
)
EXPIRED_BY_LIFECYCLE = (
    "Objects here expire by lifecycle rule (transform output, noncurrent versions, access logs); "
    "Object Lock would keep them, and their cost, past that. Released models are protected by "
    "IAM instead: no role of the workflow may write under releases/ but the state machine's "
    "copy of a training job's artifact (docs/security.md)."
)


class DataBucket(Construct):
    """Creates a KMS key (rotated), the data bucket encrypted with it and an access log bucket.

    Both buckets block public access and deny non-TLS requests. The data bucket is versioned,
    logs every request to the log bucket and denies uploads that ask for any encryption but
    SSE-KMS under ``key`` (:func:`require_data_key`; uploads without encryption headers get
    ``key`` by default encryption).

    Args:
        removal_policy: ``RemovalPolicy.RETAIN`` (default) keeps key and buckets when the stack
            is deleted; ``DESTROY`` deletes them and empties the buckets first (auto-delete
            objects, its provider limited to its own logs). Nothing else is allowed.
        layout: the key prefixes the other constructs use. Default: ``BucketLayout()``.
        transform_output_expiry: batch transform output expires after this. Default: 30 days.
        noncurrent_version_expiry: noncurrent object versions expire after this. Default: 30
            days.
        access_log_expiry: access logs expire after this. Default: 365 days.

    Attributes:
        bucket: the data bucket (SSE-KMS with ``key``, versioned).
        key: the KMS key of the bucket, its topics and the jobs' volumes.
        log_bucket: the access log bucket (SSE-S3: log delivery cannot use KMS).
        layout: the key prefixes in use.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        layout: BucketLayout | None = None,
        transform_output_expiry: Duration = THIRTY_DAYS,
        noncurrent_version_expiry: Duration = THIRTY_DAYS,
        access_log_expiry: Duration = ONE_YEAR,
    ) -> None:
        super().__init__(scope, id)
        if removal_policy not in (RemovalPolicy.RETAIN, RemovalPolicy.DESTROY):
            raise ValueError(
                f"DataBucket removal_policy={removal_policy}: expected RemovalPolicy.RETAIN or "
                "RemovalPolicy.DESTROY"
            )
        destroy = removal_policy == RemovalPolicy.DESTROY
        self.layout = layout or BucketLayout()

        self.key = kms.Key(
            self,
            "Key",
            description="Encrypts mlstack datasets, models, transform output and notifications",
            enable_key_rotation=True,
            removal_policy=removal_policy,
            pending_window=Duration.days(7) if destroy else None,
        )
        deny_grants_for_non_aws_resources(self.key)

        self.log_bucket = self._log_bucket(removal_policy, access_log_expiry)
        self.bucket = self._data_bucket(
            removal_policy, transform_output_expiry, noncurrent_version_expiry
        )
        for bucket in (self.log_bucket, self.bucket):
            acknowledge_compliance(bucket, "S3BucketReplicationEnabled", SINGLE_REGION)
            acknowledge_guard(bucket, "s3_event_notifications_enabled_check", NO_EVENT_CONSUMER)
            acknowledge_guard(bucket, "s3_bucket_object_lock_enabled_check", EXPIRED_BY_LIFECYCLE)
        if destroy:
            ScopedAutoDeleteLogs.apply_to(Stack.of(self))

    def _log_bucket(self, removal_policy: RemovalPolicy, access_log_expiry: Duration) -> s3.Bucket:
        destroy = removal_policy == RemovalPolicy.DESTROY
        # S3 server access logs can only be delivered to an SSE-S3 bucket, not an SSE-KMS one.
        # With the feature flag, log delivery is granted by bucket policy and ACLs stay disabled;
        # without it (apps without that flag) CDK grants delivery by ACL, which needs ObjectWriter.
        policy_grants = FeatureFlags.of(self).is_enabled(
            "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy"
        )
        log_bucket = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED
            if policy_grants
            else s3.ObjectOwnership.OBJECT_WRITER,
            # Versioned like the data bucket (NIST 800-53 SI-12): a deleted or overwritten log
            # object stays recoverable until the noncurrent version expires.
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireAccessLogs",
                    expiration=access_log_expiry,
                    noncurrent_version_expiration=THIRTY_DAYS,
                    expired_object_delete_marker=False,
                )
            ],
            removal_policy=removal_policy,
            auto_delete_objects=destroy,
        )
        # cdk-nag's AwsSolutions-S1 reports no server access log destination: nothing to
        # acknowledge there (tests/infra/test_infra_acknowledgements.py finds stale ones).
        acknowledge_guard(log_bucket, "s3_bucket_logging_enabled_check", NO_SELF_LOGGING)
        skip_checkov(log_bucket, "CKV_AWS_18", NO_SELF_LOGGING)
        acknowledge_compliance(log_bucket, "S3DefaultEncryptionKMS", ACCESS_LOGS_SSE_S3)
        acknowledge_guard(log_bucket, "s3_bucket_default_encryption_kms_check", ACCESS_LOGS_SSE_S3)
        return log_bucket

    def _data_bucket(
        self,
        removal_policy: RemovalPolicy,
        transform_output_expiry: Duration,
        noncurrent_version_expiry: Duration,
    ) -> s3.Bucket:
        destroy = removal_policy == RemovalPolicy.DESTROY
        bucket = s3.Bucket(
            self,
            "Resource",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            server_access_logs_bucket=self.log_bucket,
            server_access_logs_prefix="data-bucket/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireTransformOutput",
                    prefix=self.layout.transform_output,
                    expiration=transform_output_expiry,
                ),
                s3.LifecycleRule(
                    id="ExpireOldVersions",
                    noncurrent_version_expiration=noncurrent_version_expiry,
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                    expired_object_delete_marker=True,
                ),
            ],
            removal_policy=removal_policy,
            auto_delete_objects=destroy,
        )
        for statement in require_data_key(bucket, self.key):
            bucket.add_to_resource_policy(statement)
        return bucket

    def grant_read_transform_output(self, grantee: iam.IGrantable) -> iam.Grant:
        """Let ``grantee`` read the batch transform output (the predictions), under
        ``layout.transform_output`` only, and decrypt it with :attr:`key`."""
        return self.bucket.grant_read(grantee, f"{self.layout.transform_output}*")


def require_data_key(bucket: s3.IBucket, key: kms.IKey) -> list[iam.PolicyStatement]:
    """Deny every upload that asks for encryption other than SSE-KMS under ``key``.

    S3 evaluates the bucket policy before it applies default encryption, so a deny on a missing
    header would refuse uploads that default encryption (SSE-KMS, ``key``) would have encrypted
    as required (Amazon S3 User Guide, "Setting default server-side encryption behavior for
    Amazon S3 buckets": "Amazon S3 evaluates and applies bucket policies before applying bucket
    encryption settings"). An upload without encryption headers gets ``key``; these statements
    deny the headers that would choose anything else: another algorithm (SSE-S3, DSSE-KMS),
    ``aws:kms`` without a key ID (S3 then uses the AWS managed key ``aws/s3``: PutObject,
    Amazon S3 API Reference), another KMS key, or a customer-provided key (SSE-C). The key ID
    condition takes the key's ARN (S3 User Guide, "Specifying server-side encryption with AWS
    KMS"), which is what the workflow's ``KmsKeyId`` parameters pass.
    """
    sse = "s3:x-amz-server-side-encryption"
    key_id = "s3:x-amz-server-side-encryption-aws-kms-key-id"
    denials = {
        "DenyOtherEncryption": {"StringNotEquals": {sse: "aws:kms"}, "Null": {sse: "false"}},
        "DenyKmsWithoutTheDataKey": {"StringEquals": {sse: "aws:kms"}, "Null": {key_id: "true"}},
        "DenyOtherKmsKeys": {"StringNotEquals": {key_id: key.key_arn}, "Null": {key_id: "false"}},
        "DenyCustomerProvidedKeys": {
            "Null": {"s3:x-amz-server-side-encryption-customer-algorithm": "false"}
        },
    }
    return [
        iam.PolicyStatement(
            sid=sid,
            effect=iam.Effect.DENY,
            principals=[iam.AnyPrincipal()],
            actions=["s3:PutObject"],
            resources=[bucket.arn_for_objects("*")],
            conditions=conditions,
        )
        for sid, conditions in denials.items()
    ]


@jsii.implements(IAspect)
class ScopedAutoDeleteLogs:
    """An Aspect that swaps the AWS managed policy of CDK's auto-delete provider role for a
    scoped inline one.

    CDK attaches ``AWSLambdaBasicExecutionRole`` (logs in every log group of the account) to the
    provider that empties buckets with ``auto_delete_objects`` on ``cdk destroy``; accounts that
    forbid AWS managed policies reject that role. The handler only needs to write its own logs,
    and CloudFormation names it ``<stack name>-<logical id>-<suffix>``, so the stack name scopes
    the log groups.

    The provider is recognised by what it is, not by where CDK puts it: a
    ``CustomResourceProviderBase`` whose service token a ``Custom::S3AutoDeleteObjects``
    resource of the same stack uses; its role is its ``AWS::IAM::Role`` resource.
    """

    def visit(self, node: IConstruct) -> None:
        if not isinstance(node, CustomResourceProviderBase) or not _empties_buckets(node):
            return
        for child in node.node.children:
            if not isinstance(child, CfnResource):
                continue
            if child.cfn_resource_type == "AWS::Lambda::Function":
                _acknowledge_provider_findings(child)
            elif child.cfn_resource_type == "AWS::IAM::Role":
                _write_own_logs_only(child)

    @staticmethod
    def apply_to(stack: Stack) -> None:
        """Add the aspect to ``stack`` once, however many buckets ask for it."""
        aspects = Aspects.of(stack)
        if not any(isinstance(aspect, ScopedAutoDeleteLogs) for aspect in aspects.all):
            aspects.add(ScopedAutoDeleteLogs())


def _empties_buckets(provider: CustomResourceProviderBase) -> bool:
    stack = Stack.of(provider)
    token = stack.resolve(provider.service_token)
    return any(
        isinstance(node, CfnResource)
        and node.cfn_resource_type == AUTO_DELETE_RESOURCE_TYPE
        # Read through CfnResource's subclass API: a custom resource has no typed properties.
        and stack.resolve(node._cfn_properties).get("ServiceToken") == token
        for node in stack.node.find_all()
    )


def _acknowledge_provider_findings(handler: CfnResource) -> None:
    provider_reason = (
        "CDK's provider that empties the buckets on `cdk destroy`, created only when the "
        "data is destroyed with the stack (dev): it runs once, invoked by CloudFormation, "
        "which waits for its answer, and calls only the S3 API."
    )
    acknowledge_guard(handler, "lambda_inside_vpc_check", provider_reason)
    for check in ("CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117"):
        skip_checkov(handler, check, provider_reason)


def _write_own_logs_only(role: CfnResource) -> None:
    log_groups = (
        f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:/aws/lambda/"
        f"{Aws.STACK_NAME}-*"
    )
    role.add_property_deletion_override("ManagedPolicyArns")
    role.add_property_override(
        "Policies",
        [
            {
                "PolicyName": "WriteOwnLogs",
                "PolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                            "Resource": [log_groups, f"{log_groups}:log-stream:*"],
                        },
                        {
                            "Effect": "Allow",
                            "Action": "logs:CreateLogGroup",
                            "Resource": log_groups,
                        },
                    ],
                },
            }
        ],
    )
