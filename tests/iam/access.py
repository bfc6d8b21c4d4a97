"""Every AWS call a run of the workflow makes, by principal, as real AWS would authorize it.

Local mode executes the synthesized workflow; this module records, beside it, the requests AWS
would authorize for each call: which principal (a role ARN, or a service principal such as
``cloudwatch.amazonaws.com``), which IAM action on which resource ARN, and the request context
keys a policy condition may test. The IAM proof (``tests/iam``) evaluates each recorded call
against the synthesized policies. Nothing here changes what a run does.

Where each call comes from:

* the state machine role: :class:`RecordingDispatcher` wraps the Task handler and derives each
  task's calls from its resource and parameters (Step Functions developer guide, "IAM policies
  for integrated services": the SageMaker, Lambda and SNS pages), plus the ``.sync`` managed
  EventBridge rules and ``iam:PassRole`` with the service the role is passed to;
* the SageMaker execution role: :class:`RecordingS3` records the S3 reads and writes local
  SageMaker makes for jobs and endpoints (with the KMS use behind SSE-KMS objects), and the
  dispatcher adds what a job or endpoint does besides (image pull, logs, metrics, volume key) from
  the request that started it (SageMaker developer guide, "CreateTrainingJob API: execution role
  permissions" and its CreateTransformJob, CreateModel and deployment guardrails pages);
* the seeding function's role: the objects the function wrote (a listing before and after the
  Lambda task) and its log stream;
* the scheduler's role, CloudWatch alarms and the state machine's logging and tracing: from the
  synthesized resources (:func:`resource_calls`), which local mode does not run.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import parliament

from mlstack.local.asl import TaskCall
from mlstack.local.assembly import LocalAssembly, Resolver
from mlstack.local.s3 import EmbeddedS3, parse_uri, shard_keys

TLS = {"aws:SecureTransport": "true"}


@dataclass(frozen=True)
class Call:
    """One request AWS authorizes: ``principal`` may do ``action`` on ``resource`` given
    ``context`` (condition keys); ``why`` names what made it."""

    principal: str
    action: str
    resource: str
    # A multivalued key (sagemaker:VpcSubnets) has a tuple of values.
    context: tuple[tuple[str, str | tuple[str, ...]], ...] = ()
    why: str = ""

    @property
    def context_map(self) -> dict[str, str | tuple[str, ...]]:
        return dict(self.context)

    def __str__(self) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in self.context)
        return f"{self.action} on {self.resource}" + (f" [{extra}]" if extra else "")


@dataclass
class CallLog:
    """The calls of one or more executions of one environment's workflow."""

    assembly: LocalAssembly
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        a = self.assembly
        self.resolver = StackResolver(a.templates, region=a.region, account=a.account)
        self.region, self.account = a.region, a.account
        self.bucket_keys = _bucket_keys(a, self.resolver)
        self.topic_keys = _topic_keys(a, self.resolver)
        self.execution_role = ""  # the role SageMaker acts as; set by the first job or model

    def record(
        self, principal: str, action: str, resource: str, why: str, **context: str | tuple[str, ...]
    ) -> None:
        self.calls.append(Call(principal, action, resource, tuple(sorted(context.items())), why))

    def arn(self, service: str, resource: str, *, region: bool = True) -> str:
        return f"arn:aws:{service}:{self.region if region else ''}:{self.account}:{resource}"

    def by_principal(self) -> dict[str, list[Call]]:
        grouped: dict[str, list[Call]] = {}
        for call in self.calls:
            grouped.setdefault(call.principal, []).append(call)
        return grouped

    # --- S3 with SSE-KMS ----------------------------------------------------------------------

    def s3_read(self, principal: str, bucket: str, key: str, why: str) -> None:
        self.record(principal, "s3:GetObject", f"arn:aws:s3:::{bucket}/{key}", why, **TLS)
        self._kms_via_s3(principal, bucket, "kms:Decrypt", why)

    def s3_write(self, principal: str, bucket: str, key: str, why: str) -> None:
        self.record(principal, "s3:PutObject", f"arn:aws:s3:::{bucket}/{key}", why, **TLS)
        self._kms_via_s3(principal, bucket, "kms:GenerateDataKey", why)

    def s3_list(self, principal: str, bucket: str, prefix: str, why: str) -> None:
        self.record(
            principal,
            "s3:ListBucket",
            f"arn:aws:s3:::{bucket}",
            why,
            **TLS,
            **{"s3:prefix": prefix},
        )

    def _kms_via_s3(self, principal: str, bucket: str, action: str, why: str) -> None:
        key = self.bucket_keys.get(bucket)
        if key is None:
            return
        # With an S3 Bucket Key the encryption context is the bucket's ARN (S3 user guide,
        # "Reducing the cost of SSE-KMS with Amazon S3 Bucket Keys").
        self.record(
            principal,
            action,
            key,
            why,
            **{
                "kms:ViaService": f"s3.{self.region}.amazonaws.com",
                "kms:EncryptionContext:aws:s3:arn": f"arn:aws:s3:::{bucket}",
            },
        )

    # --- what SageMaker does as the execution role besides S3 ----------------------------------

    def image_pull(self, principal: str, image_uri: str, why: str) -> None:
        """SageMaker's pull of a private ECR image as ``principal``."""
        match = re.fullmatch(r"(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.[a-z0-9.]+/([^:@]+).*", image_uri)
        if match is None:
            return
        account, region, repository = match.groups()
        self.record(principal, "ecr:GetAuthorizationToken", "*", why)
        repo = f"arn:aws:ecr:{region}:{account}:repository/{repository}"
        for action in ("BatchCheckLayerAvailability", "GetDownloadUrlForLayer", "BatchGetImage"):
            self.record(principal, f"ecr:{action}", repo, why)

    def job_logs(self, principal: str, group: str, stream: str, namespace: str, why: str) -> None:
        group_arn = self.arn("logs", f"log-group:{group}")
        self.record(principal, "logs:CreateLogGroup", group_arn, why)
        self.record(principal, "logs:DescribeLogStreams", group_arn, why)
        stream_arn = f"{group_arn}:log-stream:{stream}"
        self.record(principal, "logs:CreateLogStream", stream_arn, why)
        self.record(principal, "logs:PutLogEvents", stream_arn, why)
        self.record(
            principal, "cloudwatch:PutMetricData", "*", why, **{"cloudwatch:namespace": namespace}
        )

    def volume_key(self, principal: str, key_arn: str, why: str) -> None:
        """An ML storage volume encrypted with ``key_arn`` (EBS: "How Amazon EBS uses AWS KMS":
        DescribeKey, CreateGrant for the service, GenerateDataKeyWithoutPlaintext, Decrypt).
        ``kms:GrantIsForAWSResource`` is in the context of CreateGrant only: DescribeKey does
        not support it (Service Authorization Reference, AWS KMS)."""
        via = {"kms:ViaService": f"ec2.{self.region}.amazonaws.com"}
        self.record(principal, "kms:DescribeKey", key_arn, why, **via)
        self.record(
            principal,
            "kms:CreateGrant",
            key_arn,
            why,
            **via,
            **{"kms:GrantIsForAWSResource": "true"},
        )
        self.record(principal, "kms:GenerateDataKeyWithoutPlaintext", key_arn, why, **via)
        self.record(principal, "kms:Decrypt", key_arn, why, **via)


class StackResolver(Resolver):
    """The assembly's resolver, plus the stack pseudo parameters policies may use."""

    def _ref_any(self, stack: str, name: str) -> str:
        if name == "AWS::StackName":
            return stack
        if name == "AWS::StackId":
            guid = hashlib.md5(stack.encode()).hexdigest()
            return f"arn:aws:cloudformation:{self.region}:{self.account}:stack/{stack}/{guid}"
        return super()._ref_any(stack, name)

    def attribute(self, stack: str, logical_id: str, attr: str) -> str:
        kind = self._resource(stack, logical_id)["Type"]
        if kind == "AWS::CloudWatch::Alarm" and attr == "Arn":
            # arn:aws:cloudwatch:<region>:<account>:alarm:<name> (CloudWatch resource types).
            name = self.name(stack, logical_id)
            return f"arn:aws:cloudwatch:{self.region}:{self.account}:alarm:{name}"
        return super().attribute(stack, logical_id, attr)


class RecordingS3:
    """The embedded S3 as local SageMaker uses it, recording each request as the execution role."""

    def __init__(self, s3: EmbeddedS3, log: CallLog) -> None:
        self._s3 = s3
        self._log = log

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s3, name)

    @property
    def _principal(self) -> str:
        return self._log.execution_role

    def keys(self, bucket: str, prefix: str = "") -> Iterator[str]:
        self._log.s3_list(self._principal, bucket, prefix, "SageMaker lists an input prefix")
        return self._s3.keys(bucket, prefix)

    def read(self, uri: str) -> bytes:
        bucket, key = parse_uri(uri)
        self._log.s3_read(self._principal, bucket, key, "SageMaker reads an input or model")
        return self._s3.read(uri)

    def write(self, uri: str, data: bytes, content_type: str | None = None) -> None:
        bucket, key = parse_uri(uri)
        self._log.s3_write(self._principal, bucket, key, "SageMaker writes a model or output")
        self._s3.write(uri, data, content_type)

    def download_prefix(
        self, uri: str, dest: Path, shard: tuple[int, int] | None = None
    ) -> list[Path]:
        bucket, prefix = parse_uri(uri)
        why = f"File-mode channel {uri}"
        self._log.s3_list(self._principal, bucket, prefix, why)
        for key in shard_keys(self._s3.keys(bucket, prefix), shard):
            self._log.s3_read(self._principal, bucket, key, why)
        return self._s3.download_prefix(uri, dest, shard)


class RecordingDispatcher:
    """Wraps the local Task handler: records the calls each Task state makes, then runs it."""

    def __init__(
        self,
        handler: Callable[[TaskCall], Any],
        log: CallLog,
        s3: EmbeddedS3 | None = None,
        role: str | None = None,
    ) -> None:
        """``role``: the role of the state machine that makes the calls (default: the training
        workflow's)."""
        self.handler = handler
        self.log = log
        self.s3 = s3
        self.role = role or log.assembly.state_machine_role_arn
        self.models: dict[str, Mapping[str, Any]] = {}  # by lower-case name
        self.configs: dict[str, Mapping[str, Any]] = {}  # endpoint configs by lower-case name

    def __call__(self, call: TaskCall) -> Any:
        task_calls(self.log, self.role, call, self.configs)
        self._remember(call)
        before = self._objects() if _is_lambda(call.resource) else None
        result = self.handler(call)
        if _action(call.resource) == "createModelPackage" and isinstance(result, dict):
            # The version's ARN (model-package/<group>/<N>) is known once SageMaker numbered it.
            self.log.record(
                self.role,
                "sagemaker:CreateModelPackage",
                str(result["ModelPackageArn"]),
                f"state {call.state_name!r}",
            )
        if before is not None:
            self._seeded(call, before)
        self._service_side(call)
        return result

    def child_execution(self, state: str, execution_arn: str) -> None:
        """A Distributed Map starts a child execution of this state machine, as its role, and
        follows it (developer guide, "IAM policies for using Distributed Map states")."""
        why = f"state {state!r}: a Distributed Map child execution"
        self.log.record(
            self.role, "states:StartExecution", self.log.assembly.state_machine_arn, why
        )
        self.log.record(self.role, "states:DescribeExecution", execution_arn, why)

    # --- what the request hands SageMaker --------------------------------------------------

    def _remember(self, call: TaskCall) -> None:
        parameters = call.parameters if isinstance(call.parameters, dict) else {}
        action = _action(call.resource)
        if action == "createModel":
            self.models[str(parameters.get("ModelName", "")).lower()] = parameters
        if action == "createEndpointConfig":
            self.configs[str(parameters.get("EndpointConfigName", "")).lower()] = parameters
        role = parameters.get("RoleArn") or parameters.get("ExecutionRoleArn")
        role = role or parameters.get("TrainingJobDefinition", {}).get("RoleArn")
        if role and not self.log.execution_role:
            self.log.execution_role = str(role)

    def _service_side(self, call: TaskCall) -> None:
        """What SageMaker then does as the execution role, other than S3 (recorded live)."""
        log, parameters = self.log, call.parameters if isinstance(call.parameters, dict) else {}
        action = _action(call.resource)
        if action == "createTrainingJob":
            role, name = str(parameters["RoleArn"]), str(parameters["TrainingJobName"])
            _job_calls(
                log,
                role,
                image=parameters["AlgorithmSpecification"]["TrainingImage"],
                log_group="/aws/sagemaker/TrainingJobs",
                stream=f"{name}/algo-1-0",
                volume_key=parameters.get("ResourceConfig", {}).get("VolumeKmsKeyId"),
                vpc=parameters.get("VpcConfig"),
                why=f"training job {name}",
            )
        elif action == "createTransformJob":
            model = self.models.get(str(parameters["ModelName"]).lower(), {})
            role, name = (
                str(model.get("ExecutionRoleArn", log.execution_role)),
                str(parameters["TransformJobName"]),
            )
            _job_calls(
                log,
                role,
                image=model.get("PrimaryContainer", {}).get("Image", ""),
                log_group="/aws/sagemaker/TransformJobs",
                stream=f"{name}/i-0",
                volume_key=parameters.get("TransformResources", {}).get("VolumeKmsKeyId"),
                vpc=model.get("VpcConfig"),
                why=f"transform job {name}",
            )
        elif action == "createProcessingJob":
            role, name = str(parameters["RoleArn"]), str(parameters["ProcessingJobName"])
            cluster = parameters.get("ProcessingResources", {}).get("ClusterConfig", {})
            _job_calls(
                log,
                role,
                image=parameters["AppSpecification"]["ImageUri"],
                log_group="/aws/sagemaker/ProcessingJobs",
                stream=f"{name}/algo-1-0",
                volume_key=cluster.get("VolumeKmsKeyId"),
                vpc=parameters.get("NetworkConfig", {}).get("VpcConfig"),
                why=f"processing job {name}",
            )
        elif action in ("createEndpoint", "updateEndpoint"):
            name = str(parameters["EndpointName"])
            config = self.configs.get(str(parameters["EndpointConfigName"]).lower(), {})
            for variant in config.get("ProductionVariants", []):
                model = self.models.get(str(variant["ModelName"]).lower(), {})
                role = str(model.get("ExecutionRoleArn", log.execution_role))
                why = f"endpoint {name} variant {variant['VariantName']}"
                log.image_pull(role, model.get("PrimaryContainer", {}).get("Image", ""), why)
                log.job_logs(
                    role,
                    f"/aws/sagemaker/Endpoints/{name}",
                    f"{variant['VariantName']}/i-0",
                    "/aws/sagemaker/Endpoints",
                    why,
                )
                if model.get("VpcConfig"):
                    network_interfaces(log, role, model["VpcConfig"], "sagemaker", why)
            alarms = parameters.get("DeploymentConfig", {}).get("AutoRollbackConfiguration", {})
            for alarm in alarms.get("Alarms", []):
                # "Auto-Rollback Configuration and Monitoring": the execution role reads them.
                log.record(
                    log.execution_role,
                    "cloudwatch:DescribeAlarms",
                    log.arn("cloudwatch", f"alarm:{alarm['AlarmName']}"),
                    f"blue/green update of {name}: rollback alarms",
                )

    # --- the seeding function -------------------------------------------------------------

    def _objects(self) -> set[tuple[str, str]]:
        if self.s3 is None:
            return set()
        return {(b, k) for b in self.log.assembly.buckets for k in self.s3.keys(b)}

    def _seeded(self, call: TaskCall, before: set[tuple[str, str]]) -> None:
        parameters = call.parameters if isinstance(call.parameters, dict) else {}
        function = str(parameters.get("FunctionName", call.resource))
        role, log_group = _function_role_and_logs(self.log, function)
        why = f"seeding function ({call.state_name})"
        for bucket, key in sorted(self._objects() - before):
            self.log.s3_write(role, bucket, key, why)
        stream = self.log.arn("logs", f"log-group:{log_group}:log-stream:2026/01/01/[$LATEST]0")
        self.log.record(role, "logs:CreateLogStream", stream, why)
        self.log.record(role, "logs:PutLogEvents", stream, why)


# The SageMaker actions the workflow's tasks call: (ARN resource type, name parameter, the .sync
# job kind of Step Functions' EventBridge rule).
_SAGEMAKER_TARGETS: dict[str, tuple[str, str, str | None]] = {
    "createTrainingJob": ("training-job", "TrainingJobName", "Training"),
    "createTransformJob": ("transform-job", "TransformJobName", "Transform"),
    "createProcessingJob": ("processing-job", "ProcessingJobName", "Processing"),
    "createHyperParameterTuningJob": (
        "hyper-parameter-tuning-job",
        "HyperParameterTuningJobName",
        "Tuning",
    ),
    "createModel": ("model", "ModelName", None),
    "createEndpointConfig": ("endpoint-config", "EndpointConfigName", None),
    "createEndpoint": ("endpoint", "EndpointName", None),
    "updateEndpoint": ("endpoint", "EndpointName", None),
    "describeEndpoint": ("endpoint", "EndpointName", None),
    "describeEndpointConfig": ("endpoint-config", "EndpointConfigName", None),
    "describeTrainingJob": ("training-job", "TrainingJobName", None),
}


def task_calls(
    log: CallLog,
    role: str,
    call: TaskCall,
    configs: Mapping[str, Mapping[str, Any]] = {},
) -> None:
    """Record what the state machine role is authorized for when Step Functions runs ``call``
    (Step Functions developer guide, "IAM policies for integrated services")."""
    parameters = call.parameters if isinstance(call.parameters, dict) else {}
    why = f"state {call.state_name!r}"
    resource = call.resource
    if _is_lambda(resource):
        function = str(parameters.get("FunctionName", resource))
        if not function.startswith("arn:"):
            function = log.arn("lambda", f"function:{function}")
        log.record(role, "lambda:InvokeFunction", function, why)
    elif resource.endswith(":::sns:publish"):
        _sns_publish_calls(log, role, str(parameters["TopicArn"]), why)
    elif resource.endswith(":::aws-sdk:s3:copyObject"):
        _s3_copy_calls(log, role, parameters, why)
    elif resource.endswith(":::aws-sdk:s3:listObjectsV2"):
        # ListObjectsV2 is authorized as s3:ListBucket on the bucket, its Prefix as s3:prefix
        # (Service Authorization Reference, Amazon S3: ListBucket and its condition keys).
        log.s3_list(role, str(parameters["Bucket"]), str(parameters.get("Prefix", "")), why)
    elif resource.endswith(":::aws-sdk:s3:getObject"):
        # GetObject: s3:GetObject on the object, kms:Decrypt for an SSE-KMS one (Amazon S3
        # API Reference, GetObject: "Permissions"; S3 user guide, "Using SSE-KMS").
        log.s3_read(role, str(parameters["Bucket"]), str(parameters["Key"]), why)
    elif resource.endswith(":::aws-sdk:cloudwatch:putMetricData"):
        # PutMetricData: cloudwatch:PutMetricData, no resource-level permissions ("*"), its
        # namespace as cloudwatch:namespace (Service Authorization Reference, CloudWatch).
        namespace = {"cloudwatch:namespace": str(parameters["Namespace"])}
        log.record(role, "cloudwatch:PutMetricData", "*", why, **namespace)
    elif resource.endswith(":::aws-sdk:sfn:listExecutions"):
        # ListExecutions: states:ListExecutions on the state machine (Service Authorization
        # Reference, AWS Step Functions).
        machine = str(parameters["StateMachineArn"])
        log.record(role, "states:ListExecutions", machine, why)
    elif resource.endswith(":::states:startExecution"):
        # Step Functions' own integration, request-response: states:StartExecution on the
        # state machine it starts (developer guide, "IAM policies for Step Functions
        # StartExecution"; .sync would add DescribeExecution and the managed rule).
        log.record(role, "states:StartExecution", str(parameters["StateMachineArn"]), why)
    elif ":sagemaker:" in resource or ":aws-sdk:sagemaker:" in resource:
        _sagemaker_calls(log, role, resource, parameters, why, configs)


def _sns_publish_calls(log: CallLog, role: str, topic: str, why: str) -> None:
    log.record(role, "sns:Publish", topic, why, **TLS)
    key = log.topic_keys.get(topic)
    if key:
        # Publishing to an encrypted topic: the publisher needs GenerateDataKey and Decrypt
        # (Amazon SNS developer guide, "Key management"); SNS calls KMS on its behalf.
        context = {
            "kms:ViaService": f"sns.{log.region}.amazonaws.com",
            "kms:EncryptionContext:aws:sns:topicArn": topic,
        }
        log.record(role, "kms:GenerateDataKey", key, why, **context)
        log.record(role, "kms:Decrypt", key, why, **context)


def _s3_copy_calls(log: CallLog, role: str, parameters: Mapping[str, Any], why: str) -> None:
    """CopyObject: ``s3:GetObject`` on the source, ``s3:PutObject`` on the destination (Amazon
    S3 API Reference, CopyObject: "Permissions"), the destination's request carrying the copy
    source and the encryption headers as condition keys (``s3:x-amz-copy-source``,
    ``s3:x-amz-server-side-encryption``, ``-aws-kms-key-id``: Service Authorization Reference,
    Amazon S3, PutObject), with SSE-KMS the key's use through S3 both ways."""
    source = str(parameters["CopySource"])
    source_bucket, source_key = source.split("/", 1)
    log.s3_read(role, source_bucket, source_key, why)
    headers = {
        "s3:x-amz-server-side-encryption": parameters.get("ServerSideEncryption"),
        "s3:x-amz-server-side-encryption-aws-kms-key-id": parameters.get("SSEKMSKeyId"),
    }
    context = {**TLS, "s3:x-amz-copy-source": source}
    context.update({k: str(v) for k, v in headers.items() if v is not None})
    bucket = str(parameters["Bucket"])
    log.record(role, "s3:PutObject", f"arn:aws:s3:::{bucket}/{parameters['Key']}", why, **context)
    log._kms_via_s3(role, bucket, "kms:GenerateDataKey", why)


def _sagemaker_calls(
    log: CallLog,
    role: str,
    resource: str,
    parameters: Mapping[str, Any],
    why: str,
    configs: Mapping[str, Mapping[str, Any]],
) -> None:
    """The API call a SageMaker task makes and, for an optimized integration, what Step
    Functions adds: tags, PassRole, the endpoint configuration's key, the .sync polling."""
    action = _action(resource)
    if action == "describeModelPackage":
        arn = str(parameters.get("ModelPackageName", ""))
        log.record(role, "sagemaker:DescribeModelPackage", arn, why)
        return
    if action not in _SAGEMAKER_TARGETS:
        return
    kind, name_key, rule = _SAGEMAKER_TARGETS[action]
    target = log.arn("sagemaker", f"{kind}/{str(parameters.get(name_key, '')).lower()}")
    api = action[0].upper() + action[1:]
    log.record(role, f"sagemaker:{api}", target, why, **_create_keys(api, parameters))
    if ":aws-sdk:" in resource:
        return  # an AWS SDK integration makes exactly the API call it names
    if action in ("createEndpoint", "updateEndpoint"):
        _endpoint_config_calls(log, role, api, parameters, why, configs)
    if parameters.get("Tags") and action != "updateEndpoint":
        # Tags at creation need sagemaker:AddTags on the new resource.
        log.record(role, "sagemaker:AddTags", target, why)
    # The optimized SageMaker integration reads the resource's tags.
    log.record(role, "sagemaker:ListTags", target, why)
    passed = parameters.get("RoleArn") or parameters.get("ExecutionRoleArn")
    passed = passed or parameters.get("TrainingJobDefinition", {}).get("RoleArn")
    if passed:
        log.record(
            role,
            "iam:PassRole",
            str(passed),
            why,
            **{"iam:PassedToService": "sagemaker.amazonaws.com"},
        )
    if resource.endswith(".sync"):
        describe = api.replace("Create", "Describe", 1)
        log.record(role, f"sagemaker:{describe}", target, why)
        for event_action in ("PutTargets", "PutRule", "DescribeRule"):
            log.record(
                role,
                f"events:{event_action}",
                log.arn("events", f"rule/StepFunctionsGetEventsForSageMaker{rule}JobsRule"),
                why,
            )


# The SageMaker condition keys each action supports: the Service Authorization Reference
# ("Actions, resources, and condition keys for Amazon SageMaker") as parliament ships it.
_SAR = json.loads(
    (Path(parliament.__file__).parent / "iam_definition.json").read_text(encoding="utf-8")
)
SAGEMAKER_ACTION_KEYS = {
    p["privilege"]: {k for r in p["resource_types"] for k in r["condition_keys"]}
    for service in _SAR
    if service["prefix"] == "sagemaker"
    for p in service["privileges"]
}


def _create_keys(api: str, parameters: Mapping[str, Any]) -> dict[str, str | tuple[str, ...]]:
    """The SageMaker condition keys a create request carries, read from the request's fields as
    the keys' descriptions name them (network isolation, VPC subnets and security groups, volume
    and output keys, inter-container traffic encryption), each only for an action that
    supports it. A tuning job's come from its training job definition; a processing job's
    network from its NetworkConfig."""
    p = parameters.get("TrainingJobDefinition", parameters)
    network = p.get("NetworkConfig", p)
    vpc = network.get("VpcConfig") or {}
    output = p.get("OutputDataConfig") or p.get("ProcessingOutputConfig") or p.get(
        "TransformOutput"
    ) or {}  # fmt: skip
    resources = p.get("ResourceConfig") or p.get("TransformResources") or p.get(
        "ProcessingResources", {}
    ).get("ClusterConfig") or {}  # fmt: skip
    found: dict[str, str | tuple[str, ...] | None] = {
        "sagemaker:NetworkIsolation": _flag(network.get("EnableNetworkIsolation")),
        "sagemaker:InterContainerTrafficEncryption": _flag(
            network.get("EnableInterContainerTrafficEncryption")
        ),
        "sagemaker:VpcSubnets": tuple(vpc["Subnets"]) if vpc else None,
        "sagemaker:VpcSecurityGroupIds": tuple(vpc["SecurityGroupIds"]) if vpc else None,
        "sagemaker:OutputKmsKey": output.get("KmsKeyId"),
        "sagemaker:VolumeKmsKey": resources.get("VolumeKmsKeyId"),
    }
    supported = SAGEMAKER_ACTION_KEYS.get(api, set())
    return {k: v for k, v in found.items() if v is not None and k in supported}


def _flag(value: Any) -> str | None:
    return None if value is None else str(bool(value)).lower()


def _endpoint_config_calls(
    log: CallLog,
    role: str,
    api: str,
    parameters: Mapping[str, Any],
    why: str,
    configs: Mapping[str, Mapping[str, Any]],
) -> None:
    """CreateEndpoint/UpdateEndpoint on the configuration, and the grant for its key."""
    config_name = str(parameters.get("EndpointConfigName", "")).lower()
    log.record(
        role, f"sagemaker:{api}", log.arn("sagemaker", f"endpoint-config/{config_name}"), why
    )
    key = configs.get(config_name, {}).get("KmsKeyId")
    if key:
        # The endpoint's volumes: SageMaker creates a grant as the caller (SageMaker API
        # permissions reference: CreateEndpoint needs kms:CreateGrant when the endpoint
        # configuration has a KmsKeyId).
        via = {"kms:ViaService": f"sagemaker.{log.region}.amazonaws.com"}
        log.record(role, "kms:DescribeKey", str(key), why, **via)
        log.record(
            role,
            "kms:CreateGrant",
            str(key),
            why,
            **via,
            **{"kms:GrantIsForAWSResource": "true"},
        )


def resource_calls(log: CallLog) -> None:
    """Calls of what local mode does not run, from the synthesized resources: the scheduler's
    StartExecution, CloudWatch alarms publishing to an encrypted topic, and the state machine
    role's logging and tracing (Step Functions: "IAM policies for logging to CloudWatch Logs",
    "AWS X-Ray and Step Functions")."""
    r = log.resolver
    for stack, template in log.assembly.templates.items():
        for lid, resource in template.get("Resources", {}).items():
            props = resource.get("Properties", {})
            kind = resource["Type"]
            if kind == "AWS::Scheduler::Schedule":
                target = r.resolve(stack, props["Target"])
                log.record(
                    str(target["RoleArn"]),
                    "states:StartExecution",
                    str(target["Arn"]),
                    f"schedule {lid}",
                )
            elif kind == "AWS::Events::Rule":
                for target in r.resolve(stack, props.get("Targets", [])):
                    if ":states:" in str(target["Arn"]) and target.get("RoleArn"):
                        log.record(
                            str(target["RoleArn"]),
                            "states:StartExecution",
                            str(target["Arn"]),
                            f"EventBridge rule {lid}",
                        )
            elif kind == "Custom::EndpointCleanup":
                # Its deletion: the function deletes the endpoint and waits until it is gone.
                function = str(r.resolve(stack, props["ServiceToken"]))
                role, log_group = _function_role_and_logs(log, function)
                endpoint = log.arn("sagemaker", f"endpoint/{str(props['EndpointName']).lower()}")
                why = f"endpoint clean-up {lid} on stack deletion"
                log.record(role, "sagemaker:DeleteEndpoint", endpoint, why)
                log.record(role, "sagemaker:DescribeEndpoint", endpoint, why)
                stream = log.arn("logs", f"log-group:{log_group}:log-stream:2026/01/01/[$LATEST]0")
                log.record(role, "logs:CreateLogStream", stream, why)
                log.record(role, "logs:PutLogEvents", stream, why)
            elif kind == "Custom::ModelPackageCleanup":
                # Its deletion: the function lists the group's versions and deletes each.
                function = str(r.resolve(stack, props["ServiceToken"]))
                role, log_group = _function_role_and_logs(log, function)
                group = str(props["ModelPackageGroupName"]).lower()
                why = f"model package clean-up {lid} on stack deletion"
                versions = log.arn("sagemaker", f"model-package/{group}/*")
                log.record(role, "sagemaker:ListModelPackages", versions, why)
                version = log.arn("sagemaker", f"model-package/{group}/1")
                log.record(role, "sagemaker:DeleteModelPackage", version, why)
                stream = log.arn("logs", f"log-group:{log_group}:log-stream:2026/01/01/[$LATEST]0")
                log.record(role, "logs:CreateLogStream", stream, why)
                log.record(role, "logs:PutLogEvents", stream, why)
            elif kind == "AWS::Lambda::Function" and props.get("VpcConfig"):
                role = str(r.resolve(stack, props["Role"]))
                vpc = r.resolve(stack, props["VpcConfig"])
                network_interfaces(log, role, vpc, "lambda", f"function {lid} in a VPC")
            elif kind == "AWS::CloudWatch::Alarm":
                _alarm_calls(log, stack, lid, props)
            elif kind == "AWS::StepFunctions::StateMachine":
                role = str(r.resolve(stack, props["RoleArn"]))
                why = "state machine logging (created or updated with a log destination)"
                if props.get("LoggingConfiguration"):
                    for action in (
                        "CreateLogDelivery",
                        "GetLogDelivery",
                        "UpdateLogDelivery",
                        "DeleteLogDelivery",
                        "ListLogDeliveries",
                        "PutResourcePolicy",
                        "DescribeResourcePolicies",
                        "DescribeLogGroups",
                    ):
                        log.record(role, f"logs:{action}", "*", why)
                if props.get("TracingConfiguration", {}).get("Enabled"):
                    for action in (
                        "PutTraceSegments",
                        "PutTelemetryRecords",
                        "GetSamplingRules",
                        "GetSamplingTargets",
                    ):
                        log.record(role, f"xray:{action}", "*", "X-Ray tracing of executions")


def _alarm_calls(log: CallLog, stack: str, lid: str, props: Mapping[str, Any]) -> None:
    """A CloudWatch alarm publishing to a topic (and using its key, when encrypted)."""
    r = log.resolver
    alarm = log.arn("cloudwatch", f"alarm:{r.name(stack, lid)}")
    for action in r.resolve(stack, props.get("AlarmActions", [])):
        if ":sns:" not in str(action):
            continue
        context = {"aws:SourceArn": alarm, "aws:SourceAccount": log.account}
        why = f"alarm {lid} notifies"
        log.record(
            "cloudwatch.amazonaws.com",
            "sns:Publish",
            str(action),
            why,
            **context,
            **TLS,
        )
        key = log.topic_keys.get(str(action))
        if key:
            kms_context = {
                **context,
                "kms:EncryptionContext:aws:sns:topicArn": str(action),
                "kms:ViaService": f"sns.{log.region}.amazonaws.com",
            }
            for kms_action in ("kms:GenerateDataKey", "kms:Decrypt"):
                log.record("cloudwatch.amazonaws.com", kms_action, key, why, **kms_context)


# What a service does with the role of a function, job or model it places in a VPC: Lambda
# ("Giving Lambda functions access to resources in an Amazon VPC") when the function is created
# or updated, SageMaker ("Give SageMaker access to resources in your Amazon VPC") when a job or
# endpoint starts.
ENI_CALLS = {
    "lambda": (
        ("ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses"),
        ("ec2:UnassignPrivateIpAddresses",),
        ("ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"),
    ),
    "sagemaker": (
        ("ec2:CreateNetworkInterfacePermission", "ec2:DeleteNetworkInterface"),
        ("ec2:DeleteNetworkInterfacePermission",),
        (
            "ec2:DescribeNetworkInterfaces",
            "ec2:DescribeVpcs",
            "ec2:DescribeDhcpOptions",
            "ec2:DescribeSubnets",
            "ec2:DescribeSecurityGroups",
        ),
    ),
}


def network_interfaces(
    log: CallLog, role: str, vpc_config: Mapping[str, Any], service: str, why: str
) -> None:
    """The EC2 calls ``service`` makes as ``role`` to attach to the subnets and security groups
    of ``vpc_config`` (a Lambda ``VpcConfig`` or SageMaker's, resolved)."""
    subnets = [str(s) for s in vpc_config.get("SubnetIds", vpc_config.get("Subnets", []))]
    groups = [str(g) for g in vpc_config.get("SecurityGroupIds", [])]
    vpc = _vpc_of(log, subnets)
    interface = log.arn("ec2", "network-interface/eni-0123456789abcdef0")
    log.record(role, "ec2:CreateNetworkInterface", interface, why)
    for subnet in subnets:
        log.record(role, "ec2:CreateNetworkInterface", log.arn("ec2", f"subnet/{subnet}"), why)
    for group in groups:
        log.record(
            role, "ec2:CreateNetworkInterface", log.arn("ec2", f"security-group/{group}"), why
        )
    on_interface, more, describe = ENI_CALLS[service]
    context = {"ec2:Vpc": log.arn("ec2", f"vpc/{vpc}")} if vpc else {}
    for action in (*on_interface, *more):
        log.record(role, action, interface, why, **context)
    for action in describe:
        log.record(role, action, "*", why)


def _vpc_of(log: CallLog, subnets: list[str]) -> str | None:
    r = log.resolver
    for stack, template in log.assembly.templates.items():
        for lid, resource in template.get("Resources", {}).items():
            if resource["Type"] == "AWS::EC2::Subnet" and r.ref(stack, lid) in subnets:
                return str(r.resolve(stack, resource["Properties"]["VpcId"]))
    return None


def _is_lambda(resource: str) -> bool:
    return resource.startswith("arn:aws:lambda:") or resource.endswith(":::lambda:invoke")


def _action(resource: str) -> str:
    """``createTrainingJob`` of ``arn:aws:states:::sagemaker:createTrainingJob.sync``."""
    return resource.rsplit(":", 1)[-1].split(".", 1)[0]


def _bucket_keys(assembly: LocalAssembly, r: Resolver) -> dict[str, str]:
    keys = {}
    for stack, template in assembly.templates.items():
        for lid, resource in template.get("Resources", {}).items():
            if resource["Type"] != "AWS::S3::Bucket":
                continue
            rules = resource.get("Properties", {}).get("BucketEncryption", {})
            for rule in rules.get("ServerSideEncryptionConfiguration", []):
                key = rule.get("ServerSideEncryptionByDefault", {}).get("KMSMasterKeyID")
                if key:
                    keys[r.ref(stack, lid)] = str(r.resolve(stack, key))
    return keys


def _topic_keys(assembly: LocalAssembly, r: Resolver) -> dict[str, str]:
    keys = {}
    for stack, template in assembly.templates.items():
        for lid, resource in template.get("Resources", {}).items():
            key = resource.get("Properties", {}).get("KmsMasterKeyId")
            if resource["Type"] == "AWS::SNS::Topic" and key:
                keys[r.ref(stack, lid)] = str(r.resolve(stack, key))
    return keys


def _function_role_and_logs(log: CallLog, function: str) -> tuple[str, str]:
    r = log.resolver
    for stack, template in log.assembly.templates.items():
        for lid, resource in template.get("Resources", {}).items():
            if resource["Type"] != "AWS::Lambda::Function":
                continue
            if function not in (r.ref(stack, lid), r.attribute(stack, lid, "Arn")):
                continue
            props = resource["Properties"]
            group = r.resolve(stack, props.get("LoggingConfig", {}).get("LogGroup", ""))
            return str(r.resolve(stack, props["Role"])), str(group or f"/aws/lambda/{lid}")
    raise ValueError(f"no function {function} in the assembly")


def _job_calls(
    log: CallLog,
    role: str,
    *,
    image: str,
    log_group: str,
    stream: str,
    volume_key: str | None,
    vpc: Mapping[str, Any] | None,
    why: str,
) -> None:
    """What a SageMaker job does as its role besides its S3 reads and writes: pull its image,
    write its logs, use the volume key and, in a VPC, manage its network interfaces."""
    log.image_pull(role, image, why)
    log.job_logs(role, log_group, stream, log_group, why)
    if volume_key:
        log.volume_key(role, volume_key, why)
    if vpc:
        network_interfaces(log, role, vpc, "sagemaker", why)
