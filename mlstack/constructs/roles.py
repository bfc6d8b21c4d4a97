"""Least-privilege IAM roles of the workflow: SageMaker execution, seeding Lambda, state machine.

No AWS managed policies. Statements use ``Resource: "*"`` only for actions without resource-level
permissions: ``ecr:GetAuthorizationToken`` and ``cloudwatch:PutMetricData`` (namespace-scoped by
condition). Each role acknowledges, on itself, the cdk-nag findings for its prefix-scoped wildcards.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import jsii
from aws_cdk import ArnFormat, IStableStringProducer, Lazy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from mlstack.constructs._nag import (
    acknowledge_inline_policy,
    acknowledge_star,
    acknowledge_wildcard_resources,
    default_policy,
)
from mlstack.constructs.layout import BucketLayout
from mlstack.constructs.model_images import ModelImage

# SageMaker lower-cases names in resource ARNs, so an IAM-scoped prefix must be lower-case.
NAME_PREFIX_PATTERN = re.compile(r"^[a-z0-9](-?[a-z0-9])*$")
MAX_NAME_PREFIX_LENGTH = 20


def validate_name_prefix(owner: str, name_prefix: str) -> None:
    if len(name_prefix) > MAX_NAME_PREFIX_LENGTH or not NAME_PREFIX_PATTERN.fullmatch(name_prefix):
        raise ValueError(
            f"{owner} name_prefix={name_prefix!r}: expected 1 to {MAX_NAME_PREFIX_LENGTH} "
            "lower-case letters, digits and single dashes (SageMaker lower-cases names in ARNs)"
        )


def sagemaker_arn(scope: Construct, resource: str, name: str) -> str:
    return Stack.of(scope).format_arn(
        service="sagemaker",
        resource=resource,
        resource_name=name,
        arn_format=ArnFormat.SLASH_RESOURCE_NAME,
    )


# The SageMaker condition keys each create call of the workflow supports (Service Authorization
# Reference, "Actions, resources, and condition keys for Amazon SageMaker": the Condition keys
# column of each action).
_ISOLATION, _SUBNETS, _GROUPS = (
    "sagemaker:NetworkIsolation",
    "sagemaker:VpcSubnets",
    "sagemaker:VpcSecurityGroupIds",
)
_VOLUME_KEY, _OUTPUT_KEY, _TRAFFIC = (
    "sagemaker:VolumeKmsKey",
    "sagemaker:OutputKmsKey",
    "sagemaker:InterContainerTrafficEncryption",
)
_JOB_KEYS = {_ISOLATION, _SUBNETS, _GROUPS, _VOLUME_KEY, _OUTPUT_KEY, _TRAFFIC}
SAGEMAKER_CREATE_KEYS: dict[str, frozenset[str]] = {
    "CreateTrainingJob": frozenset(_JOB_KEYS),
    "CreateHyperParameterTuningJob": frozenset(_JOB_KEYS),
    "CreateProcessingJob": frozenset(_JOB_KEYS),
    "CreateTransformJob": frozenset({_VOLUME_KEY, _OUTPUT_KEY}),
    "CreateModel": frozenset({_ISOLATION, _SUBNETS, _GROUPS}),
}


@dataclass(frozen=True)
class CreateGuards:
    """What every create request of one kind sends, for IAM to require of it: network isolation,
    the KMS key of its outputs and (where the instance type has an EBS volume) of its volume, the
    subnets and security groups it may name (``vpcs``: SageMaker ``VpcConfig`` dicts; none: no
    VPC), and encrypted traffic between its hosts."""

    isolation: bool
    key_arn: str | None = None
    vpcs: tuple[dict[str, list[str]], ...] = ()
    traffic_encryption: bool = False

    def conditions(self, action: str) -> dict[str, dict[str, object]]:
        """The IAM conditions of ``sagemaker:<action>``, keys it does not support left out.

        The KMS keys are ARNs (``ArnEquals``); the volume key's is ``ArnEqualsIfExists``:
        instance types with local NVMe storage take no ``VolumeKmsKeyId`` (SageMaker refuses
        one), and an execution input may pick either kind.
        The VPC keys are multivalued: ``ForAllValues`` keeps each to the ones named and ``Null``
        false requires them (IAM User Guide, "Condition keys with multiple values": ForAllValues
        also matches a request without the key)."""
        keys = SAGEMAKER_CREATE_KEYS[action]
        out: dict[str, dict[str, object]] = {}

        def put(operator: str, key: str, value: object) -> None:
            if key in keys:
                out.setdefault(operator, {})[key] = value

        if self.isolation:
            put("Bool", _ISOLATION, "true")
        if self.traffic_encryption:
            put("Bool", _TRAFFIC, "true")
        if self.key_arn is not None:
            put("ArnEquals", _OUTPUT_KEY, self.key_arn)
            put("ArnEqualsIfExists", _VOLUME_KEY, self.key_arn)
        if self.vpcs:
            for key, member in ((_SUBNETS, "Subnets"), (_GROUPS, "SecurityGroupIds")):
                named = [v for vpc in self.vpcs for v in vpc[member]]
                put("ForAllValues:StringEquals", key, list(dict.fromkeys(named)))
                put("Null", key, "false")
        return out


def create_statements(
    scope: Construct,
    *,
    sid: str,
    resource: str,
    api: str,
    name_prefix: str,
    guards: CreateGuards,
    manage: Sequence[str] = ("Describe", "Stop"),
) -> list[iam.PolicyStatement]:
    """``sagemaker:Create<api>`` of resources named ``name_prefix-*`` under ``guards``'
    conditions (statement ``sid``), and ``manage`` (``Describe<api>``, ``Stop<api>``) of them in
    a statement of their own (``<sid>Status``): those calls carry none of the create keys."""
    arn = sagemaker_arn(scope, resource, f"{name_prefix}-*")
    action = f"Create{api}"
    statements = [
        iam.PolicyStatement(
            sid=sid,
            actions=[f"sagemaker:{action}"],
            resources=[arn],
            conditions=guards.conditions(action) or None,
        )
    ]
    if manage:
        statements.append(
            iam.PolicyStatement(
                sid=f"{sid}Status",
                actions=[f"sagemaker:{verb}{api}" for verb in manage],
                resources=[arn],
            )
        )
    return statements


def log_group_arn(scope: Construct, name: str) -> str:
    """The ARN of log group ``name`` (or ``<group>:log-stream:<stream>``) in ``scope``'s stack."""
    return Stack.of(scope).format_arn(
        service="logs",
        resource="log-group",
        resource_name=name,
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )


def states_principal(scope: Construct) -> iam.ServicePrincipal:
    """Step Functions, for state machines of this account and region only: the confused-deputy
    conditions of the Step Functions Developer Guide ("Cross-service confused deputy
    prevention": ``aws:SourceAccount`` and ``aws:SourceArn`` on the role's trust policy). The
    ARN names any Step Functions resource of the account and region: the role exists before
    the state machine it serves, and a Distributed Map's child executions run as it too."""
    stack = Stack.of(scope)
    return iam.ServicePrincipal(
        "states.amazonaws.com",
        conditions={
            "StringEquals": {"aws:SourceAccount": stack.account},
            "ArnLike": {
                "aws:SourceArn": f"arn:{stack.partition}:states:{stack.region}:{stack.account}:*"
            },
        },
    )


def sagemaker_principal(scope: Construct) -> iam.ServicePrincipal:
    """SageMaker, for its resources of this account and region only: ``aws:SourceArn`` like
    ``arn:<partition>:sagemaker:<region>:<account>:*`` (SageMaker developer guide,
    "Cross-service confused deputy prevention": its training-job, processing-job and
    transform-job templates are all within this pattern, and for real-time, serverless and
    asynchronous inference the value is exactly it, "do not replace ... with the full ARN of a
    specific model or endpoint"). The account is in the ARN, so the page sets no
    ``aws:SourceAccount``; neither do we."""
    stack = Stack.of(scope)
    return iam.ServicePrincipal(
        "sagemaker.amazonaws.com",
        conditions={
            "ArnLike": {
                "aws:SourceArn": (
                    f"arn:{stack.partition}:sagemaker:{stack.region}:{stack.account}:*"
                )
            }
        },
    )


def events_principal(scope: Construct) -> iam.ServicePrincipal:
    """EventBridge, for rules of this account and region only: EventBridge sets
    ``aws:SourceAccount`` (the rule's account) and ``aws:SourceArn`` (the rule sending the
    event) when it uses a target's role (EventBridge user guide, "Using IAM policy conditions in
    Amazon EventBridge": its condition keys). Any rule of the account: the role precedes the
    rule that names it, which CloudFormation names."""
    stack = Stack.of(scope)
    rules = f"arn:{stack.partition}:events:{stack.region}:{stack.account}:rule/*"
    return iam.ServicePrincipal(
        "events.amazonaws.com",
        conditions={
            "StringEquals": {"aws:SourceAccount": stack.account},
            "ArnLike": {"aws:SourceArn": rules},
        },
    )


def allow_volume_encryption(role: iam.IRole, key: kms.IKey, *, sid: str) -> None:
    """Let SageMaker, acting for ``role``, encrypt the ML storage volumes with ``key``.

    EBS encrypts a volume with a customer managed key by DescribeKey, CreateGrant (for the
    service: ``kms:GrantIsForAWSResource``), GenerateDataKeyWithoutPlaintext and Decrypt ("How
    Amazon EBS uses AWS KMS"). ``kms:DescribeKey`` is unconditioned: DescribeKey does not support
    ``kms:GrantIsForAWSResource`` (Service Authorization Reference, AWS KMS), so a statement
    conditioned on it never allows DescribeKey.
    """
    role.add_to_principal_policy(
        iam.PolicyStatement(
            sid=sid,
            actions=["kms:CreateGrant"],
            resources=[key.key_arn],
            conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
        )
    )
    role.add_to_principal_policy(
        iam.PolicyStatement(
            sid=f"{sid}DescribeKey", actions=["kms:DescribeKey"], resources=[key.key_arn]
        )
    )


def allow_volume_data_keys(role: iam.IRole, key: kms.IKey, *, sid: str) -> None:
    """The data keys of volumes encrypted by :func:`allow_volume_encryption` (EBS, for SageMaker
    acting as ``role``: GenerateDataKeyWithoutPlaintext to create, Decrypt to attach)."""
    role.add_to_principal_policy(
        iam.PolicyStatement(
            sid=sid,
            actions=["kms:GenerateDataKeyWithoutPlaintext", "kms:Decrypt"],
            resources=[key.key_arn],
            conditions={
                "StringEquals": {"kms:ViaService": f"ec2.{Stack.of(role).region}.amazonaws.com"}
            },
        )
    )


def allow_sagemaker_metrics(role: iam.Role) -> Construct:
    """Let a role SageMaker runs as put metrics into SageMaker's namespaces; returns its policy.

    ``cloudwatch:PutMetricData`` has no resource-level permissions: its ``Resource: "*"`` is
    acknowledged here, for this statement only.
    """
    role.add_to_policy(
        iam.PolicyStatement(
            sid="PutSageMakerMetrics",
            actions=["cloudwatch:PutMetricData"],
            resources=["*"],
            conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
        )
    )
    policy = default_policy(role)
    acknowledge_star(
        policy,
        "PutSageMakerMetrics",
        "cloudwatch:PutMetricData has no resource-level permissions; the /aws/sagemaker/* "
        "namespaces condition scopes it.",
    )
    return policy


# Where SageMaker's containers log (SageMaker developer guide, "Log Amazon SageMaker AI events with
# Amazon CloudWatch"): one log group a job kind, streams named after the job; one log group an
# endpoint, /aws/sagemaker/Endpoints/<endpoint name>.
TRAINING_JOBS, TRANSFORM_JOBS, PROCESSING_JOBS, ENDPOINTS = (
    "TrainingJobs",
    "TransformJobs",
    "ProcessingJobs",
    "Endpoints",
)
_LOG_KINDS = (TRAINING_JOBS, TRANSFORM_JOBS, PROCESSING_JOBS, ENDPOINTS)
# The order of the prefixes in the role's statements: the workflow's stages in the order they
# write, the optional stages' after (BucketLayout field names).
_PREFIX_ORDER = (
    "datasets",
    "models",
    "transform_output",
    "evaluations",
    "checkpoints",
    "baselines",
)


@dataclass(frozen=True)
class ContainerAccess:
    """What the containers of one kind of SageMaker job (or an endpoint) do as the execution
    role: the data bucket prefixes they read and write, and the log group they write to.

    Args:
        logs: the kind whose log group its containers write: ``TrainingJobs``,
            ``TransformJobs``, ``ProcessingJobs`` or ``Endpoints``.
        reads: the key prefixes it reads (its input channels, its model artifact).
        writes: the key prefixes it writes (its outputs).
    """

    logs: str
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.logs not in _LOG_KINDS:
            raise ValueError(f"ContainerAccess logs={self.logs!r}: expected one of {_LOG_KINDS}")

    def container_access(self) -> ContainerAccess:
        return self


class SageMakerJob(Protocol):
    """A job (or endpoint) that runs as the execution role: it declares what its containers
    read, write and log (:class:`ContainerAccess`)."""

    def container_access(self) -> ContainerAccess: ...


class SageMakerExecutionRole(Construct):
    """Creates the role SageMaker jobs, models and endpoints run as, made from those jobs.

    Each of ``jobs`` declares what its containers read and write in ``bucket`` and which log
    group they write (:class:`ContainerAccess`); the role may list and read the union of what
    they read, write the union of what they write, and write the logs of their kinds for
    resources named ``name_prefix*``. It may also use ``key`` for those objects and for job
    volumes, pull only ``images`` and put metrics into SageMaker's namespaces.

    Args:
        bucket: the data bucket.
        name_prefix: the prefix of every job, model and endpoint name it serves.
        images: the only images it may pull.
        jobs: the jobs and endpoints that run as the role (a workflow's tasks; a
            :class:`ContainerAccess` declares one directly).
        key: the bucket's KMS key. Default: ``bucket.encryption_key``.
        extra_read_object_arns: objects outside the bucket it may read (for example a model
            artifact elsewhere). Default: none.

    Attributes:
        role: the IAM role.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        bucket: s3.IBucket,
        name_prefix: str,
        images: Sequence[ModelImage],
        jobs: Sequence[SageMakerJob],
        key: kms.IKey | None = None,
        extra_read_object_arns: Sequence[str] = (),
    ) -> None:
        super().__init__(scope, id)
        validate_name_prefix("SageMakerExecutionRole", name_prefix)
        key = key or bucket.encryption_key
        if key is None:
            raise ValueError(
                "SageMakerExecutionRole key=None and the bucket has no encryption_key: "
                "hand in the KMS key that encrypts the bucket"
            )
        accesses = [job.container_access() for job in jobs]
        if not any(a.reads for a in accesses):
            raise ValueError(
                "SageMakerExecutionRole jobs: expected at least one job that reads the bucket "
                "(a training job's ContainerAccess, for example)"
            )
        self.role = iam.Role(
            self,
            "Resource",
            assumed_by=sagemaker_principal(self),
            description=f"SageMaker execution role for {name_prefix} jobs, models and endpoints",
        )
        acknowledge_inline_policy(self.role)
        prefixes = self._allow_data(bucket, key, accesses, extra_read_object_arns)
        for image in images:
            image.grant_pull(self.role)
        kinds = [k for k in _LOG_KINDS if any(a.logs == k for a in accesses)]
        log_wildcards = self._allow_own_logs(name_prefix, kinds)
        acknowledge_wildcard_resources(
            allow_sagemaker_metrics(self.role),
            [
                *[
                    (
                        bucket.arn_for_objects(f"{p}*"),
                        f"Objects under the '{p}' prefix of the data bucket only.",
                    )
                    for p in dict.fromkeys(prefixes)
                ],
                *log_wildcards,
            ],
        )

    def _allow_data(
        self,
        bucket: s3.IBucket,
        key: kms.IKey,
        accesses: Sequence[ContainerAccess],
        extra_read_object_arns: Sequence[str],
    ) -> list[str]:
        """Read what the jobs read, write what they write, and use ``key`` for them and for job
        volumes; returns the prefixes read, then those written."""
        readable = _in_stage_order(p for a in accesses for p in a.reads)
        writable = _in_stage_order(p for a in accesses for p in a.writes)
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="ListDataAndModels",
                actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{p}*" for p in readable]}},
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadDataAndModels",
                actions=["s3:GetObject"],
                resources=[bucket.arn_for_objects(f"{p}*") for p in readable]
                + list(extra_read_object_arns),
            )
        )
        # AbortMultipartUpload: SageMaker uploads a large model or transform output in parts and
        # aborts a failed upload (not reached by the small runs of tests/iam).
        if writable:
            self.role.add_to_policy(
                iam.PolicyStatement(
                    sid="WriteModelsAndOutput",
                    actions=["s3:PutObject", "s3:AbortMultipartUpload"],
                    resources=[bucket.arn_for_objects(f"{p}*") for p in writable],
                )
            )
        # SSE-KMS reads (Decrypt) and writes (GenerateDataKey) of the bucket's objects and of the
        # outputs encrypted with the key, through S3 only. Not the key's encrypt/decrypt grant:
        # Encrypt and ReEncrypt* are no call of the workflow (tests/iam proves the rest is).
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="UseDataKeyThroughS3",
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=[key.key_arn],
                conditions={
                    "StringEquals": {"kms:ViaService": f"s3.{Stack.of(self).region}.amazonaws.com"}
                },
            )
        )
        allow_volume_encryption(self.role, key, sid="EncryptJobVolumes")
        allow_volume_data_keys(self.role, key, sid="JobVolumeDataKeys")
        return readable + writable

    def _allow_own_logs(self, name_prefix: str, kinds: Sequence[str]) -> list[tuple[str, str]]:
        """Write the logs of jobs and endpoints of ``kinds`` named ``name_prefix*`` only; returns
        the wildcard resources, each with its reason."""
        log_groups = [_log_group(kind, name_prefix) for kind in kinds]
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="CreateOwnLogGroups",
                actions=["logs:CreateLogGroup"],
                resources=[log_group_arn(self, g) for g in log_groups],
            )
        )
        streams = [log_group_arn(self, _log_streams(kind, name_prefix)) for kind in kinds]
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteOwnLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=streams,
            )
        )
        # DescribeLogStreams is authorized on the log group, not on a stream (Service
        # Authorization Reference, CloudWatch Logs: DescribeLogStreams -> log-group*).
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="DescribeOwnLogStreams",
                actions=["logs:DescribeLogStreams"],
                resources=[log_group_arn(self, g) for g in log_groups],
            )
        )
        wildcards = []
        for kind, group, stream in zip(kinds, log_groups, streams, strict=True):
            if kind == ENDPOINTS:
                wildcards += [
                    (
                        log_group_arn(self, group),
                        f"Log groups of endpoints named {name_prefix}* only.",
                    ),
                    (stream, f"Log streams of endpoints named {name_prefix}* only."),
                ]
            else:
                wildcards.append((stream, f"Log streams of jobs named {name_prefix}-* only."))
        return wildcards


def _in_stage_order(prefixes: Iterable[str]) -> list[str]:
    """``prefixes`` once each, a default layout's in ``_PREFIX_ORDER``, any other after."""
    unique = list(dict.fromkeys(prefixes))
    order = [getattr(BucketLayout(), name) for name in _PREFIX_ORDER]
    return sorted(unique, key=lambda p: order.index(p) if p in order else len(order))


def _log_group(kind: str, name_prefix: str) -> str:
    """A job kind's log group; an endpoint's is its own, named after it."""
    if kind == ENDPOINTS:
        return f"/aws/sagemaker/Endpoints/{name_prefix}*"
    return f"/aws/sagemaker/{kind}"


def _log_streams(kind: str, name_prefix: str) -> str:
    """The streams of a kind's log group that ``name_prefix`` resources write."""
    if kind == ENDPOINTS:
        return f"/aws/sagemaker/Endpoints/{name_prefix}*:log-stream:*"
    return f"/aws/sagemaker/{kind}:log-stream:{name_prefix}-*"


@jsii.implements(IStableStringProducer)
class PendingRoleArn:
    """A role's ARN before the role exists: a workflow's tasks name the execution role in
    their requests, and that role is made from those tasks, so they name it through
    ``token``, which resolves at synth to the ARN of ``role`` (the one handed in, or the one
    :meth:`resolve` gives once it is made)."""

    def __init__(self, role: iam.IRole | None) -> None:
        self.role = role
        self.token = role.role_arn if role is not None else Lazy.string(self)

    def resolve(self, role: iam.IRole) -> iam.IRole:
        """``role`` is the one ``token`` names; returns it."""
        self.role = role
        return role

    def produce(self) -> str | None:
        if self.role is None:  # pragma: no cover - the constructor sets it
            raise ValueError("PendingRoleArn: resolve() was never called with the role")
        return self.role.role_arn


class SeedFunctionRole(Construct):
    """Creates the seeding Lambda's role: put objects under ``layout.datasets`` of ``bucket`` only
    (SSE-KMS with ``key``, multipart included) and write to its own ``log_group``.

    Args:
        bucket: the data bucket.
        log_group: the function's log group, the only one it writes.
        key: the bucket's KMS key. Default: ``bucket.encryption_key``.
        layout: the bucket's key prefixes. Default: ``BucketLayout()``.

    Attributes:
        role: the IAM role.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        bucket: s3.IBucket,
        log_group: logs.ILogGroup,
        key: kms.IKey | None = None,
        layout: BucketLayout | None = None,
    ) -> None:
        super().__init__(scope, id)
        layout = layout or BucketLayout()
        key = key or bucket.encryption_key
        self.role = iam.Role(
            self,
            "Resource",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Seeding Lambda: writes datasets only",
        )
        acknowledge_inline_policy(self.role)
        # AbortMultipartUpload: lambda/seed aborts its multipart upload (datasets over 5 MiB)
        # when a part fails.
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteDatasets",
                actions=["s3:PutObject", "s3:AbortMultipartUpload"],
                resources=[bucket.arn_for_objects(f"{layout.datasets}*")],
            )
        )
        if key is not None:
            # SSE-KMS puts need a data key; a multipart upload (lambda/seed, above 5 MiB) also
            # decrypts it to complete (S3 user guide, "multipart upload and SSE-KMS"), a call
            # tests/iam's runs do not reach with their small datasets.
            self.role.add_to_policy(
                iam.PolicyStatement(
                    sid="EncryptDatasets",
                    actions=["kms:GenerateDataKey", "kms:Decrypt"],
                    resources=[key.key_arn],
                    conditions={
                        "StringEquals": {
                            "kms:ViaService": f"s3.{Stack.of(self).region}.amazonaws.com"
                        }
                    },
                )
            )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteOwnLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn],
            )
        )
        acknowledge_wildcard_resources(
            default_policy(self.role),
            [
                (
                    bucket.arn_for_objects(f"{layout.datasets}*"),
                    f"Objects under the '{layout.datasets}' prefix only.",
                )
            ],
        )


class SageMakerTask(Protocol):
    """A task of the workflow that calls SageMaker: it returns the policy statements of its
    calls, and names the EventBridge rule kind Step Functions manages to wait for it (``.sync``
    jobs), or None."""

    @property
    def sync_rule(self) -> str | None: ...

    def policy_statements(self, scope: Construct) -> list[iam.PolicyStatement]: ...


class StateMachineRole(Construct):
    """Creates the workflow state machine's role, made from the SageMaker tasks it runs.

    Each of ``tasks`` adds the statements of its calls (training, transform, processing and
    tuning jobs named ``name_prefix-*``: create, describe, stop; models named ``name_prefix-*``:
    create), once per statement id; the role may also tag and read the tags of those resources,
    pass ``sagemaker_role`` to SageMaker only, and manage the EventBridge rules Step Functions
    uses to wait for the tasks' ``.sync`` jobs. Lambda invoke, SNS publish, logging and tracing
    grants are added by the other tasks themselves.

    Args:
        name_prefix: the prefix of every job and model name the workflow creates.
        sagemaker_role: the role it passes to SageMaker, and no other.
        tasks: the SageMaker tasks of the workflow, in the order their statements appear.

    Attributes:
        role: the IAM role.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        name_prefix: str,
        sagemaker_role: iam.IRole,
        tasks: Sequence[SageMakerTask],
    ) -> None:
        super().__init__(scope, id)
        validate_name_prefix("StateMachineRole", name_prefix)
        self.role = iam.Role(
            self,
            "Resource",
            assumed_by=states_principal(self),
            description=f"Step Functions role of the {name_prefix} training workflow",
        )
        acknowledge_inline_policy(self.role)
        tagged = self._allow_tasks(tasks)
        self.role.add_to_policy(
            iam.PolicyStatement(sid="TagOnCreate", actions=["sagemaker:AddTags"], resources=tagged)
        )
        # Step Functions' SageMaker integration reads the tags of what it created (the policies
        # it documents include sagemaker:ListTags); ListTags has resource-level permissions.
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="ListTagsOfOwnResources", actions=["sagemaker:ListTags"], resources=tagged
            )
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="PassSageMakerRole",
                actions=["iam:PassRole"],
                resources=[sagemaker_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            )
        )
        self._allow_sync_job_rules(
            list(dict.fromkeys(t.sync_rule for t in tasks if t.sync_rule is not None))
        )
        acknowledge_wildcard_resources(
            default_policy(self.role),
            [
                (arn, f"SageMaker jobs and models named {name_prefix}-* only.")
                for arn in dict.fromkeys(tagged)
                if ":sagemaker:" in arn and arn.endswith(f"/{name_prefix}-*")
            ],
        )

    def _allow_tasks(self, tasks: Sequence[SageMakerTask]) -> list[str]:
        """Each task's statements, once per statement id; returns the resources they name (what
        the workflow creates, and so tags)."""
        added: set[str | None] = set()
        tagged: list[str] = []
        for task in tasks:
            for statement in task.policy_statements(self):
                if statement.sid in added:
                    continue
                added.add(statement.sid)
                self.role.add_to_policy(statement)
                tagged.extend(r for r in statement.resources if r not in tagged)
        return tagged

    def _allow_sync_job_rules(self, kinds: Sequence[str]) -> None:
        """The EventBridge rules Step Functions manages to wait for ``.sync`` SageMaker jobs
        (Step Functions developer guide, "IAM policies for Amazon SageMaker AI": one rule per job
        kind, StepFunctionsGetEventsForSageMaker<Kind>JobsRule)."""
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="SyncJobEventRules",
                actions=["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                resources=[
                    Stack.of(self).format_arn(
                        service="events",
                        resource="rule",
                        resource_name=f"StepFunctionsGetEventsForSageMaker{kind}JobsRule",
                    )
                    for kind in kinds
                ],
            )
        )


def allow_processing_logs(role: iam.Role) -> str:
    """Let ``role``'s Processing jobs write their logs (``/aws/sagemaker/ProcessingJobs``, the
    group SageMaker Processing logs to); returns the ARN of its log streams (for the exact
    acknowledgement of the ``:*`` wildcard)."""
    group = "/aws/sagemaker/ProcessingJobs"
    arns = [log_group_arn(role, name) for name in (group, f"{group}:log-stream:*")]
    role.add_to_policy(
        iam.PolicyStatement(
            sid="WriteProcessingLogs",
            actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            resources=arns,
        )
    )
    # SageMaker describes the group's streams as the job's role ("CreateProcessingJob API:
    # execution role permissions"); DescribeLogStreams is authorized on the log group (Service
    # Authorization Reference, CloudWatch Logs: DescribeLogStreams -> log-group*).
    role.add_to_policy(
        iam.PolicyStatement(
            sid="DescribeProcessingLogStreams",
            actions=["logs:DescribeLogStreams"],
            resources=[arns[0]],
        )
    )
    return arns[1]
