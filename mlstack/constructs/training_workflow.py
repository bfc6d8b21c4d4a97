"""Step Functions workflow: generate dataset -> train -> save model -> batch transform."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from mlstack.constructs._nag import acknowledge, default_policy
from mlstack.constructs.layout import BucketLayout
from mlstack.constructs.model_images import ModelImages
from mlstack.constructs.roles import SageMakerExecutionRole, StateMachineRole, validate_name_prefix

SAGEMAKER_NAME_LIMIT = 63
RUN_ID_LENGTH = 32  # hex MD5 of the execution name
MAX_REDRIVE_DIGITS = 4  # Step Functions redrives an execution at most 1000 times
DEFAULT_MAX_RUNTIME = Duration.days(1)
DEFAULT_TIMEOUT = Duration.hours(26)

LAMBDA_TRANSIENT_ERRORS = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
]
# Throttling and service-side errors of the SageMaker API. A job that runs and fails raises
# States.TaskFailed instead, which is not retried: the same inputs would fail again.
SAGEMAKER_TRANSIENT_ERRORS = [
    "SageMaker.AmazonSageMakerException",
    "SageMaker.ThrottlingException",
    "SageMaker.InternalFailure",
    "SageMaker.ServiceUnavailable",
]
SNS_TRANSIENT_ERRORS = [
    "SNS.ThrottledException",
    "SNS.InternalErrorException",
    "SNS.KMSThrottlingException",
]

# The names of the states, in order; part of the definition's contract with its readers.
LOAD_DEFAULTS = "Load defaults"
APPLY_OVERRIDES = "Apply overrides"
GENERATE_DATASET = "Generate dataset"
TRAIN_MODEL = "Train model"
SAVE_MODEL = "Save model"
BATCH_TRANSFORM = "Batch transform"
REPORT_RESULTS = "Report results"
NOTIFY_FAILURE = "Notify failure"
WORKFLOW_FAILED = "Workflow failed"


@dataclass(frozen=True)
class WorkflowDefaults:
    """Per-run values an execution may override in its input (hyperparameters key by key)."""

    rows: int = 1000
    seed: int = 42
    training_instance_type: str = "ml.m5.xlarge"
    training_instance_count: int = 1
    transform_instance_type: str = "ml.m5.xlarge"
    transform_instance_count: int = 1
    hyperparameters: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType(
            {"objective": "reg:logistic", "eval_metric": "rmse", "num_round": "5"}
        )
    )

    def __post_init__(self) -> None:
        for name in ("rows", "training_instance_count", "transform_instance_count"):
            if getattr(self, name) < 1:
                raise ValueError(f"WorkflowDefaults.{name}={getattr(self, name)}: expected >= 1")
        if self.seed < 0:
            raise ValueError(f"WorkflowDefaults.seed={self.seed}: expected >= 0")
        for k, v in self.hyperparameters.items():
            if not isinstance(v, str):
                raise ValueError(
                    f"WorkflowDefaults.hyperparameters[{k!r}]={v!r}: SageMaker takes strings"
                )

    def as_state_input(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "seed": self.seed,
            "training_instance_type": self.training_instance_type,
            "training_instance_count": self.training_instance_count,
            "transform_instance_type": self.transform_instance_type,
            "transform_instance_count": self.transform_instance_count,
            "hyperparameters": dict(self.hyperparameters),
        }


class TrainingWorkflow(Construct):
    """Creates the training state machine, its role, log group and an encrypted failure topic.

    States: Load defaults -> Apply overrides -> Generate dataset (``seed_function``) -> Train model
    (``createTrainingJob.sync``) -> Save model (``createModel``) -> Batch transform
    (``createTransformJob.sync``) -> Report results. Any failure is published to ``topic`` and ends
    in the ``Workflow failed`` Fail state carrying the error and cause.

    The execution input may override any key of ``defaults`` (``hyperparameters`` key by key).
    Every run gets ``run_id`` = MD5 of the execution name; job and model names are
    ``<name_prefix>-<run_id>-<t|m|b><redrive count>-<retry count>``: unique per attempt, at most
    63 characters. ``execution_role`` defaults to a new :class:`SageMakerExecutionRole`.

    Attributes: ``state_machine``, ``execution_role``, ``topic``, ``log_group``, ``role``.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        bucket: s3.IBucket,
        images: ModelImages,
        seed_function: lambda_.IFunction,
        name_prefix: str,
        defaults: WorkflowDefaults | None = None,
        key: kms.IKey | None = None,
        layout: BucketLayout | None = None,
        execution_role: iam.IRole | None = None,
        training_volume_size_gb: int = 30,
        training_max_runtime: Duration = DEFAULT_MAX_RUNTIME,
        timeout: Duration = DEFAULT_TIMEOUT,
        notification_email: str | None = None,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        network_isolation: bool = True,
        max_attempts: int = 4,
    ) -> None:
        super().__init__(scope, id)
        validate_name_prefix("TrainingWorkflow", name_prefix)
        if not 1 <= max_attempts <= 9:
            raise ValueError(f"TrainingWorkflow max_attempts={max_attempts}: expected 1 to 9")
        longest = len(name_prefix) + 1 + RUN_ID_LENGTH + 2 + MAX_REDRIVE_DIGITS + 1 + 1
        if longest > SAGEMAKER_NAME_LIMIT:  # pragma: no cover - guarded by validate_name_prefix
            raise ValueError(f"TrainingWorkflow name_prefix={name_prefix!r} is too long")
        if timeout.to_seconds() <= training_max_runtime.to_seconds():
            raise ValueError(
                f"TrainingWorkflow timeout={timeout.to_seconds()}s: expected more than "
                f"training_max_runtime ({training_max_runtime.to_seconds()}s)"
            )
        if not 1 <= training_volume_size_gb <= 16384:
            raise ValueError(
                f"TrainingWorkflow training_volume_size_gb={training_volume_size_gb}: "
                "expected 1 to 16384"
            )
        self.defaults = defaults or WorkflowDefaults()
        self.name_prefix = name_prefix
        layout = layout or BucketLayout()
        key = key or bucket.encryption_key
        if key is None:
            raise ValueError(
                "TrainingWorkflow key=None and the bucket has no encryption_key: hand in the KMS "
                "key that encrypts the bucket"
            )

        if execution_role is None:
            execution_role = SageMakerExecutionRole(
                self,
                "ExecutionRole",
                bucket=bucket,
                key=key,
                layout=layout,
                name_prefix=name_prefix,
                images=[images.training, images.inference],
            ).role
        self.execution_role = execution_role

        self.topic = sns.Topic(
            self,
            "FailureTopic",
            display_name=f"{name_prefix} training workflow failures",
            master_key=key,
            enforce_ssl=True,
        )
        if notification_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(notification_email))

        self.log_group = logs.LogGroup(
            self, "Logs", retention=log_retention, removal_policy=removal_policy
        )
        self.role = StateMachineRole(
            self, "Role", name_prefix=name_prefix, sagemaker_role=execution_role
        ).role
        # Explicit statements rather than grant_invoke/grant_publish: the definition calls the
        # unqualified function ARN (no versions or aliases) and needs no kms:GenerateDataKey*.
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="InvokeSeedFunction",
                actions=["lambda:InvokeFunction"],
                resources=[seed_function.function_arn],
            )
        )
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="PublishFailures", actions=["sns:Publish"], resources=[self.topic.topic_arn]
            )
        )
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="EncryptFailureMessages",
                actions=["kms:GenerateDataKey", "kms:Decrypt"],
                resources=[key.key_arn],
                conditions={"StringEquals": {"kms:ViaService": f"sns.{Aws.REGION}.amazonaws.com"}},
            )
        )

        p = _StateBuilder(
            name_prefix=name_prefix,
            bucket_name=bucket.bucket_name,
            layout=layout,
            key_arn=key.key_arn,
            role_arn=execution_role.role_arn,
            network_isolation=network_isolation,
        )

        def retry_sagemaker(state: sfn.CustomState) -> None:
            state.add_retry(
                errors=SAGEMAKER_TRANSIENT_ERRORS,
                interval=Duration.seconds(10),
                max_attempts=max_attempts,
                backoff_rate=2,
                max_delay=Duration.minutes(5),
                jitter_strategy=sfn.JitterType.FULL,
            )

        load_defaults = sfn.CustomState(
            self,
            LOAD_DEFAULTS,
            state_json={
                "Type": "Pass",
                "Comment": "Defaults from the environment's config; the input overrides them.",
                "Parameters": {
                    "defaults": self.defaults.as_state_input(),
                    "overrides.$": "$",
                    "run_id.$": "States.Hash($$.Execution.Name, 'MD5')",
                },
            },
        )
        apply_overrides = sfn.CustomState(
            self,
            APPLY_OVERRIDES,
            state_json={
                "Type": "Pass",
                "Parameters": {
                    "run_id.$": "$.run_id",
                    "args.$": "States.JsonMerge($.defaults, $.overrides, false)",
                    "default_hyperparameters.$": "$.defaults.hyperparameters",
                },
            },
        )
        generate_dataset = sfn.CustomState(
            self,
            GENERATE_DATASET,
            state_json={
                "Type": "Task",
                "Resource": f"arn:{Aws.PARTITION}:states:::lambda:invoke",
                "Parameters": {
                    "FunctionName": seed_function.function_arn,
                    "Payload": {
                        "run_id.$": "$.run_id",
                        "rows.$": "$.args.rows",
                        "seed.$": "$.args.seed",
                    },
                },
                "ResultSelector": {
                    f"{k}.$": f"$.Payload.{k}"
                    for k in (
                        "run_id",
                        "rows",
                        "seed",
                        "train_uri",
                        "train_prefix",
                        "validation_uri",
                        "validation_prefix",
                        "test_uri",
                        "test_prefix",
                    )
                },
                "ResultPath": "$.dataset",
            },
        )
        generate_dataset.add_retry(
            errors=LAMBDA_TRANSIENT_ERRORS,
            interval=Duration.seconds(2),
            max_attempts=max_attempts,
            backoff_rate=2,
            jitter_strategy=sfn.JitterType.FULL,
        )

        algorithm: dict[str, Any] = {
            "TrainingImage": images.training_image_uri,
            "TrainingInputMode": "File",
        }
        if images.training_metric_definitions:
            algorithm["MetricDefinitions"] = images.training_metric_definitions
        train_model = sfn.CustomState(
            self,
            TRAIN_MODEL,
            state_json={
                "Type": "Task",
                "Resource": f"arn:{Aws.PARTITION}:states:::sagemaker:createTrainingJob.sync",
                "Parameters": {
                    "TrainingJobName.$": p.name("t"),
                    "RoleArn": execution_role.role_arn,
                    "AlgorithmSpecification": algorithm,
                    "HyperParameters.$": (
                        "States.JsonMerge($.default_hyperparameters, $.args.hyperparameters, false)"
                    ),
                    "InputDataConfig": p.channels(),
                    "OutputDataConfig": {
                        "S3OutputPath": f"s3://{bucket.bucket_name}/{layout.models}",
                        "KmsKeyId": key.key_arn,
                    },
                    "ResourceConfig": {
                        "InstanceType.$": "$.args.training_instance_type",
                        "InstanceCount.$": "$.args.training_instance_count",
                        "VolumeSizeInGB": training_volume_size_gb,
                        "VolumeKmsKeyId": key.key_arn,
                    },
                    "StoppingCondition": {
                        "MaxRuntimeInSeconds": int(training_max_runtime.to_seconds())
                    },
                    "EnableNetworkIsolation": network_isolation,
                    "Tags": p.tags(),
                },
                "ResultSelector": {
                    "TrainingJobName.$": "$.TrainingJobName",
                    "TrainingJobArn.$": "$.TrainingJobArn",
                    "HyperParameters.$": "$.HyperParameters",
                    "ModelArtifacts.$": "$.ModelArtifacts",
                },
                "ResultPath": "$.training",
            },
        )
        retry_sagemaker(train_model)

        save_model = sfn.CustomState(
            self,
            SAVE_MODEL,
            state_json={
                "Type": "Task",
                "Resource": f"arn:{Aws.PARTITION}:states:::sagemaker:createModel",
                "Parameters": {
                    "ModelName.$": p.name("m"),
                    "ExecutionRoleArn": execution_role.role_arn,
                    "PrimaryContainer": {
                        "Image": images.inference_image_uri,
                        "ModelDataUrl.$": "$.training.ModelArtifacts.S3ModelArtifacts",
                        "Mode": "SingleModel",
                    },
                    "EnableNetworkIsolation": network_isolation,
                    "Tags": p.tags(),
                },
                # CreateModel answers only the ARN; SageMaker ARNs end in the (lower-case) name.
                "ResultSelector": {
                    "ModelArn.$": "$.ModelArn",
                    "ModelName.$": "States.ArrayGetItem(States.StringSplit($.ModelArn, '/'), 1)",
                },
                "ResultPath": "$.model",
            },
        )
        retry_sagemaker(save_model)

        batch_transform = sfn.CustomState(
            self,
            BATCH_TRANSFORM,
            state_json={
                "Type": "Task",
                "Resource": f"arn:{Aws.PARTITION}:states:::sagemaker:createTransformJob.sync",
                "Parameters": {
                    "TransformJobName.$": p.name("b"),
                    "ModelName.$": "$.model.ModelName",
                    "BatchStrategy": "MultiRecord",
                    "TransformInput": {
                        "ContentType": "text/csv",
                        "CompressionType": "None",
                        "SplitType": "Line",
                        "DataSource": {
                            "S3DataSource": {
                                "S3DataType": "S3Prefix",
                                "S3Uri.$": "$.dataset.test_prefix",
                            }
                        },
                    },
                    "TransformOutput": {
                        "S3OutputPath.$": (
                            f"States.Format('s3://{bucket.bucket_name}/"
                            f"{layout.transform_output}{{}}/', $.run_id)"
                        ),
                        "Accept": "text/csv",
                        "AssembleWith": "Line",
                        "KmsKeyId": key.key_arn,
                    },
                    "TransformResources": {
                        "InstanceType.$": "$.args.transform_instance_type",
                        "InstanceCount.$": "$.args.transform_instance_count",
                        "VolumeKmsKeyId": key.key_arn,
                    },
                    "Tags": p.tags(),
                },
                "ResultSelector": {
                    "TransformJobName.$": "$.TransformJobName",
                    "TransformJobArn.$": "$.TransformJobArn",
                    "TransformOutput.$": "$.TransformOutput",
                },
                "ResultPath": "$.transform",
            },
        )
        retry_sagemaker(batch_transform)

        report_results = sfn.CustomState(
            self,
            REPORT_RESULTS,
            state_json={
                "Type": "Pass",
                "Parameters": {
                    "run_id.$": "$.run_id",
                    "dataset.$": "$.dataset",
                    "hyperparameters.$": "$.training.HyperParameters",
                    "training_job_name.$": "$.training.TrainingJobName",
                    "model_name.$": "$.model.ModelName",
                    "model_arn.$": "$.model.ModelArn",
                    "model_artifact_uri.$": "$.training.ModelArtifacts.S3ModelArtifacts",
                    "transform_job_name.$": "$.transform.TransformJobName",
                    "transform_output_uri.$": "$.transform.TransformOutput.S3OutputPath",
                },
            },
        )

        workflow_failed = sfn.Fail(
            self, WORKFLOW_FAILED, error_path="$.error.Error", cause_path="$.error.Cause"
        )
        notify_failure = sfn.CustomState(
            self,
            NOTIFY_FAILURE,
            state_json={
                "Type": "Task",
                "Resource": f"arn:{Aws.PARTITION}:states:::sns:publish",
                "Parameters": {
                    "TopicArn": self.topic.topic_arn,
                    "Subject": f"{name_prefix} training workflow failed",
                    "Message.$": (
                        "States.Format('Execution {} failed: {}', $$.Execution.Id, "
                        "States.JsonToString($.error))"
                    ),
                },
                "ResultPath": "$.notification",
            },
        )
        notify_failure.add_retry(
            errors=SNS_TRANSIENT_ERRORS,
            interval=Duration.seconds(2),
            max_attempts=3,
            backoff_rate=2,
            jitter_strategy=sfn.JitterType.FULL,
        )
        notify_failure.add_catch(
            workflow_failed, errors=["States.ALL"], result_path="$.notify_error"
        )
        notify_failure.next(workflow_failed)

        for state in (generate_dataset, train_model, save_model, batch_transform):
            state.add_catch(notify_failure, errors=["States.ALL"], result_path="$.error")

        chain = (
            load_defaults.next(apply_overrides)
            .next(generate_dataset)
            .next(train_model)
            .next(save_model)
            .next(batch_transform)
            .next(report_results)
        )
        self.state_machine = sfn.StateMachine(
            self,
            "Resource",
            comment=f"{name_prefix}: generate dataset, train, save model, batch transform",
            definition_body=sfn.DefinitionBody.from_chainable(chain),
            state_machine_type=sfn.StateMachineType.STANDARD,
            role=self.role,
            timeout=timeout,
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
        )
        acknowledge(
            default_policy(self.role),
            "AwsSolutions-IAM5[Resource::*]",
            "Only the X-Ray tracing actions and the CloudWatch Logs delivery actions that the "
            "state machine's logging needs use '*': none has resource-level permissions.",
        )


@dataclass(frozen=True)
class _StateBuilder:
    name_prefix: str
    bucket_name: str
    layout: BucketLayout
    key_arn: str
    role_arn: str
    network_isolation: bool

    def name(self, kind: str) -> str:
        """A SageMaker name unique per run, redrive and retry: a retry never reuses a taken name."""
        return (
            f"States.Format('{self.name_prefix}-{{}}-{kind}{{}}-{{}}', $.run_id, "
            "$$.Execution.RedriveCount, $$.State.RetryCount)"
        )

    def channels(self) -> list[dict[str, Any]]:
        """The seeded ``train`` and ``validation`` sets (the image evaluates the latter every
        round: early stopping, best iteration, and the metric the quality gate reads)."""
        return [
            {
                "ChannelName": channel,
                "ContentType": "text/csv",
                "CompressionType": "None",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri.$": f"$.dataset.{channel}_prefix",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
            for channel in ("train", "validation")
        ]

    def tags(self) -> list[dict[str, str]]:
        return [
            {"Key": "mlstack:workflow", "Value": self.name_prefix},
            {"Key": "mlstack:run-id", "Value.$": "$.run_id"},
        ]
