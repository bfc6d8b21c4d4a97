"""Step Functions workflow: generate dataset -> train -> save model -> batch transform."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cw
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
from mlstack.constructs.monitoring import (
    EndpointAlarms,
    MonitoredEndpoint,
    allow_alarm_notifications,
)
from mlstack.constructs.roles import (
    SageMakerExecutionRole,
    StateMachineRole,
    sagemaker_arn,
    validate_name_prefix,
)
from mlstack.constructs.workflow_options import DeployStage, HyperparameterTuning

SAGEMAKER_NAME_LIMIT = 63
TUNING_JOB_NAME_LIMIT = 32  # HyperParameterTuningJobName is shorter than other SageMaker names
TUNING_SUFFIX_LENGTH = 8  # the first group of a fresh UUID: 8 hex digits
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
_ENDPOINT_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
COMPARISON_SYMBOLS = {
    "less_than": "<",
    "less_than_or_equal": "<=",
    "greater_than": ">",
    "greater_than_or_equal": ">=",
}
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
# The optional tuning path (a Choice before Train model).
TUNE_OR_TRAIN = "Tune hyperparameters?"
TUNE_MODEL = "Tune model"
READ_BEST_TRAINING_JOB = "Read best training job"
# The optional deploy stage, between Batch transform and Report results.
READ_METRIC = "Read validation metric"
QUALITY_GATE = "Quality gate"
REJECT_MODEL = "Reject model"
DESCRIBE_ENDPOINT = "Describe endpoint"
ENDPOINT_MISSING = "Is endpoint missing?"
PLAN_NEW_ENDPOINT = "Plan new endpoint"
PLAN_ENDPOINT_UPDATE = "Plan endpoint update"
CREATE_ENDPOINT_CONFIG = "Create endpoint config"
ENDPOINT_EXISTS = "Endpoint exists?"
CREATE_ENDPOINT = "Create endpoint"
UPDATE_ENDPOINT = "Update endpoint"
START_ENDPOINT_WAIT = "Start endpoint wait"
WAIT_FOR_ENDPOINT = "Wait for endpoint"
CHECK_ENDPOINT = "Check endpoint status"
ENDPOINT_READY = "Endpoint ready?"
COUNT_ENDPOINT_CHECK = "Count endpoint check"
ENDPOINT_FAILED = "Endpoint failed"
ENDPOINT_NOT_IN_SERVICE = "Endpoint not in service"
DEPLOYMENT_ROLLED_BACK = "Deployment rolled back"
ENDPOINT_WAIT_TIMED_OUT = "Endpoint wait timed out"
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

    ``tuning`` adds the optional tuning path (a Choice on the input's ``tune`` before Train model:
    Tune model -> Read best training job -> Save model). ``deploy`` adds the deploy stage after
    Batch transform: quality gate on a final training metric, a new endpoint configuration,
    create or blue/green-update the endpoint (auto-rollback on ``deploy_alarms``) and a bounded
    wait until it is in service; every failure, a rejected model included, ends in Notify failure.
    The topic accepts notifications from CloudWatch alarms of the account.

    Attributes: ``state_machine``, ``execution_role``, ``topic``, ``log_group``, ``role``,
    ``deploy_endpoint_name`` and ``deploy_alarms`` (None without ``deploy``).
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
        tuning: HyperparameterTuning | None = None,
        deploy: DeployStage | None = None,
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
        metric_names = sorted(m["Name"] for m in images.training_metric_definitions)
        if deploy is not None and deploy.metric not in metric_names:
            raise ValueError(
                f"TrainingWorkflow deploy.metric={deploy.metric!r}: expected one of the training "
                f"image's metric definitions {metric_names}"
            )
        if tuning is not None:
            if tuning.objective_metric not in metric_names:
                raise ValueError(
                    f"TrainingWorkflow tuning.objective_metric={tuning.objective_metric!r}: "
                    f"expected one of the training image's metric definitions {metric_names}"
                )
            static = sorted(set(tuning.ranges) & set(self.defaults.hyperparameters))
            if static:
                raise ValueError(
                    f"TrainingWorkflow tuning.ranges: {static} are also fixed in "
                    "defaults.hyperparameters; a hyperparameter is either static or tuned"
                )
        if len(name_prefix) + 1 + TUNING_SUFFIX_LENGTH > TUNING_JOB_NAME_LIMIT:  # pragma: no cover
            raise ValueError(f"TrainingWorkflow name_prefix={name_prefix!r} is too long")
        self.deploy_endpoint_name: str | None = None
        if deploy is not None:
            self.deploy_endpoint_name = deploy.endpoint_name or f"{name_prefix}-live"
            if not _ENDPOINT_NAME.fullmatch(self.deploy_endpoint_name):
                raise ValueError(
                    f"TrainingWorkflow deploy.endpoint_name={self.deploy_endpoint_name!r}: "
                    "expected at most 63 letters, digits and dashes"
                )
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
            self,
            "Role",
            name_prefix=name_prefix,
            sagemaker_role=execution_role,
            tuning=tuning is not None,
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
        allow_alarm_notifications(self.topic, key)
        self.deploy_alarms: EndpointAlarms | None = None
        if deploy is not None and self.deploy_endpoint_name is not None:
            self.deploy_alarms = EndpointAlarms(
                self,
                "DeployAlarms",
                endpoint=MonitoredEndpoint(self.deploy_endpoint_name, deploy.variant_names),
                thresholds=deploy.alarms,
                topic=self.topic,
            )
            self._allow_deploy(
                name_prefix, self.deploy_endpoint_name, key, self.deploy_alarms.rollback_alarms
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

        state_defaults = self.defaults.as_state_input()
        if tuning is not None:
            state_defaults.update(tuning.as_state_input())
        if deploy is not None:
            state_defaults["quality_threshold"] = deploy.threshold
        load_defaults = sfn.CustomState(
            self,
            LOAD_DEFAULTS,
            state_json={
                "Type": "Pass",
                "Comment": "Defaults from the environment's config; the input overrides them.",
                "Parameters": {
                    "defaults": state_defaults,
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
        # DescribeTrainingJob's answer (the .sync result), cut to what later states read; the
        # final metrics feed the deploy stage's quality gate.
        training_result = {
            "TrainingJobName.$": "$.TrainingJobName",
            "TrainingJobArn.$": "$.TrainingJobArn",
            "HyperParameters.$": "$.HyperParameters",
            "ModelArtifacts.$": "$.ModelArtifacts",
        }
        if deploy is not None:
            training_result["FinalMetricDataList.$"] = "$.FinalMetricDataList"
        output_config = {
            "S3OutputPath": f"s3://{bucket.bucket_name}/{layout.models}",
            "KmsKeyId": key.key_arn,
        }
        resource_config = {
            "InstanceType.$": "$.args.training_instance_type",
            "InstanceCount.$": "$.args.training_instance_count",
            "VolumeSizeInGB": training_volume_size_gb,
            "VolumeKmsKeyId": key.key_arn,
        }
        stopping = {"MaxRuntimeInSeconds": int(training_max_runtime.to_seconds())}
        hyperparameters = (
            "States.JsonMerge($.default_hyperparameters, $.args.hyperparameters, false)"
        )
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
                    "HyperParameters.$": hyperparameters,
                    "InputDataConfig": p.channels(),
                    "OutputDataConfig": output_config,
                    "ResourceConfig": resource_config,
                    "StoppingCondition": stopping,
                    "EnableNetworkIsolation": network_isolation,
                    "Tags": p.tags(),
                },
                "ResultSelector": training_result,
                "ResultPath": "$.training",
            },
        )
        retry_sagemaker(train_model)

        tuning_states: list[sfn.CustomState] = []
        tune_or_train: sfn.Choice | None = None
        if tuning is not None:
            tune_model = sfn.CustomState(
                self,
                TUNE_MODEL,
                state_json={
                    "Type": "Task",
                    "Resource": (
                        f"arn:{Aws.PARTITION}:states:::sagemaker:createHyperParameterTuningJob.sync"
                    ),
                    "Parameters": {
                        "HyperParameterTuningJobName.$": p.tuning_job_name(),
                        "HyperParameterTuningJobConfig": {
                            "Strategy.$": "$.args.tuning_strategy",
                            "HyperParameterTuningJobObjective.$": "$.args.tuning_objective",
                            "ResourceLimits": {
                                "MaxNumberOfTrainingJobs.$": "$.args.tuning_max_jobs",
                                "MaxParallelTrainingJobs.$": "$.args.tuning_max_parallel_jobs",
                            },
                            "ParameterRanges.$": "$.args.tuning_ranges",
                            "TrainingJobEarlyStoppingType": "Auto"
                            if tuning.early_stopping
                            else "Off",
                        },
                        "TrainingJobDefinition": {
                            "AlgorithmSpecification": algorithm,
                            "RoleArn": execution_role.role_arn,
                            "StaticHyperParameters.$": hyperparameters,
                            "InputDataConfig": p.channels(),
                            "OutputDataConfig": output_config,
                            "ResourceConfig": resource_config,
                            "StoppingCondition": stopping,
                            "EnableNetworkIsolation": network_isolation,
                        },
                        "Tags": p.tags(),
                    },
                    "ResultSelector": {
                        "HyperParameterTuningJobName.$": "$.HyperParameterTuningJobName",
                        "HyperParameterTuningJobArn.$": "$.HyperParameterTuningJobArn",
                        "BestTrainingJob.$": "$.BestTrainingJob",
                    },
                    "ResultPath": "$.tuning",
                },
            )
            retry_sagemaker(tune_model)
            read_best = sfn.CustomState(
                self,
                READ_BEST_TRAINING_JOB,
                state_json={
                    "Type": "Task",
                    "Resource": (
                        f"arn:{Aws.PARTITION}:states:::aws-sdk:sagemaker:describeTrainingJob"
                    ),
                    "Parameters": {"TrainingJobName.$": "$.tuning.BestTrainingJob.TrainingJobName"},
                    "ResultSelector": training_result,
                    "ResultPath": "$.training",
                },
            )
            retry_sagemaker(read_best)
            tuning_states = [tune_model, read_best]
            tune_or_train = sfn.Choice(
                self,
                TUNE_OR_TRAIN,
                comment="Execution input 'tune' (default from the config) picks the path.",
            )

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

        report: dict[str, Any] = {}
        if deploy is not None:
            report = {
                "endpoint_name": self.deploy_endpoint_name,
                "endpoint_config_name.$": "$.endpoint_config.EndpointConfigName",
                "quality_gate": {
                    "metric": deploy.metric,
                    "value.$": "$.gate.values[0]",
                    "threshold.$": "$.gate.threshold",
                    "comparison": deploy.comparison,
                },
            }
        report_results = sfn.CustomState(
            self,
            REPORT_RESULTS,
            state_json={
                "Type": "Pass",
                "Parameters": {
                    **report,
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

        for state in (generate_dataset, train_model, save_model, batch_transform, *tuning_states):
            state.add_catch(notify_failure, errors=["States.ALL"], result_path="$.error")

        chain = load_defaults.next(apply_overrides).next(generate_dataset)
        if tune_or_train is not None:
            tune_model, read_best = tuning_states
            chain = chain.next(
                tune_or_train.when(
                    sfn.Condition.boolean_equals("$.args.tune", True), tune_model
                ).otherwise(train_model)
            )
            tune_model.next(read_best).next(save_model)
            train_model.next(save_model)
        else:
            chain = chain.next(train_model).next(save_model)
        save_model.next(batch_transform)
        if deploy is not None:
            batch_transform.next(
                self._deploy_states(deploy, p, key, report_results, notify_failure, retry_sagemaker)
            )
        else:
            batch_transform.next(report_results)
        self.state_machine = sfn.StateMachine(
            self,
            "Resource",
            comment=f"{name_prefix}: generate dataset, train, save model, batch transform"
            + (", deploy" if deploy is not None else ""),
            definition_body=sfn.DefinitionBody.from_chainable(load_defaults),
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

    def _allow_deploy(
        self, name_prefix: str, endpoint_name: str, key: kms.IKey, alarms: Sequence[cw.Alarm]
    ) -> None:
        endpoint = sagemaker_arn(self, "endpoint", endpoint_name)
        configs = sagemaker_arn(self, "endpoint-config", f"{name_prefix}-*")
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="CreateEndpointConfigs",
                actions=["sagemaker:CreateEndpointConfig", "sagemaker:AddTags"],
                resources=[configs],
            )
        )
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="DeployEndpoint",
                actions=[
                    "sagemaker:CreateEndpoint",
                    "sagemaker:UpdateEndpoint",
                    "sagemaker:DescribeEndpoint",
                    "sagemaker:AddTags",
                ],
                resources=[endpoint, configs],
            )
        )
        # UpdateEndpoint checks its auto-rollback alarms with the caller's permissions.
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ReadRollbackAlarms",
                actions=["cloudwatch:DescribeAlarms"],
                resources=[alarm.alarm_arn for alarm in alarms],
            )
        )
        # An endpoint configuration with KmsKeyId: SageMaker creates a grant for the volumes as
        # the caller of CreateEndpoint/UpdateEndpoint.
        self.role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="EncryptEndpointStorage",
                actions=["kms:CreateGrant", "kms:DescribeKey"],
                resources=[key.key_arn],
                conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
            )
        )

    def _deploy_states(
        self,
        deploy: DeployStage,
        p: _StateBuilder,
        key: kms.IKey,
        report_results: sfn.IChainable,
        notify_failure: sfn.IChainable,
        retry: Callable[[sfn.CustomState], None],
    ) -> sfn.IChainable:
        """Quality gate -> endpoint config -> create or blue/green update -> bounded wait."""
        assert self.deploy_endpoint_name is not None and self.deploy_alarms is not None
        name = self.deploy_endpoint_name
        partition = Aws.PARTITION

        def task(state_id: str, resource: str, body: dict[str, Any]) -> sfn.CustomState:
            state = sfn.CustomState(
                self,
                state_id,
                state_json={
                    "Type": "Task",
                    "Resource": f"arn:{partition}:states:::{resource}",
                    **body,
                },
            )
            retry(state)
            state.add_catch(notify_failure, errors=["States.ALL"], result_path="$.error")
            return state

        def failure(state_id: str, error: str, cause: str) -> sfn.CustomState:
            state = sfn.CustomState(
                self,
                state_id,
                state_json={
                    "Type": "Pass",
                    "Parameters": {"Error": error, "Cause.$": cause},
                    "ResultPath": "$.error",
                },
            )
            state.next(notify_failure)
            return state

        read_metric = sfn.CustomState(
            self,
            READ_METRIC,
            state_json={
                "Type": "Pass",
                "Comment": "The gate's metric from the training job's final metrics "
                "([] when the job did not report it).",
                "Parameters": {
                    "metric": deploy.metric,
                    "values.$": (
                        "$.training.FinalMetricDataList"
                        f"[?(@.MetricName == '{deploy.metric}')].Value"
                    ),
                    "threshold.$": "$.args.quality_threshold",
                },
                "ResultPath": "$.gate",
            },
        )
        symbol = COMPARISON_SYMBOLS[deploy.comparison]
        reject = failure(
            REJECT_MODEL,
            "QualityGateFailed",
            f"States.Format('Model {{}} has {deploy.metric} = {{}}; the quality gate requires "
            f"{symbol} {{}}. Nothing was deployed.', $.model.ModelName, $.gate.values, "
            "$.gate.threshold)",
        )
        compare = {
            "less_than": sfn.Condition.number_less_than_json_path,
            "less_than_or_equal": sfn.Condition.number_less_than_equals_json_path,
            "greater_than": sfn.Condition.number_greater_than_json_path,
            "greater_than_or_equal": sfn.Condition.number_greater_than_equals_json_path,
        }[deploy.comparison]
        passes = compare("$.gate.values[0]", "$.gate.threshold")

        describe = sfn.CustomState(
            self,
            DESCRIBE_ENDPOINT,
            state_json={
                "Type": "Task",
                "Resource": f"arn:{partition}:states:::aws-sdk:sagemaker:describeEndpoint",
                "Parameters": {"EndpointName": name},
                "ResultSelector": {
                    "EndpointConfigName.$": "$.EndpointConfigName",
                    "EndpointStatus.$": "$.EndpointStatus",
                },
                "ResultPath": "$.endpoint",
            },
        )
        retry(describe)
        missing = sfn.Choice(
            self, ENDPOINT_MISSING, comment="DescribeEndpoint fails for an absent endpoint."
        )
        describe.add_catch(missing, errors=["States.ALL"], result_path="$.error")

        def variant(variant_name: str, model: str, weight: float) -> dict[str, Any]:
            return {
                "VariantName": variant_name,
                "ModelName.$": model,
                "InstanceType": deploy.instance_type,
                "InitialInstanceCount": deploy.instance_count,
                "InitialVariantWeight": weight,
            }

        new_model = "$.model.ModelName"
        if deploy.ab_test:
            share = deploy.candidate_weight
            rest = round(1 - share, 6)
            # The live configuration is named '<model name>-<retry>' (see below): its model is
            # the configuration name without its last dash-separated part.
            parts = "States.StringSplit($.endpoint.EndpointConfigName, '-')"
            first = p.name_prefix.count("-") + 1
            current_model = (
                f"States.Format('{p.name_prefix}-{{}}-{{}}-{{}}', "
                + ", ".join(f"States.ArrayGetItem({parts}, {first + i})" for i in range(3))
                + ")"
            )
            # On creation both variants serve the new model, so every later configuration has
            # the same variant names (a blue/green update requires that).
            new_variants = [
                variant("Live", new_model, rest),
                variant("Candidate", new_model, share),
            ]
            update_variants = [
                variant("Live", current_model, rest),
                variant("Candidate", new_model, share),
            ]
        else:
            new_variants = update_variants = [variant("Live", new_model, 1.0)]

        def plan(state_id: str, exists: bool, variants: list[dict[str, Any]]) -> sfn.CustomState:
            return sfn.CustomState(
                self,
                state_id,
                state_json={
                    "Type": "Pass",
                    "Parameters": {"exists": exists, "variants": variants},
                    "ResultPath": "$.deployment",
                },
            )

        plan_new = plan(PLAN_NEW_ENDPOINT, False, new_variants)
        plan_update = plan(PLAN_ENDPOINT_UPDATE, True, update_variants)
        create_config = task(
            CREATE_ENDPOINT_CONFIG,
            "sagemaker:createEndpointConfig",
            {
                "Parameters": {
                    # '<model name>-<retry>': unique per attempt, at most 63 characters.
                    "EndpointConfigName.$": (
                        "States.Format('{}-{}', $.model.ModelName, $$.State.RetryCount)"
                    ),
                    "ProductionVariants.$": "$.deployment.variants",
                    "KmsKeyId": key.key_arn,
                    "Tags": p.tags(),
                },
                "ResultSelector": {
                    "EndpointConfigArn.$": "$.EndpointConfigArn",
                    "EndpointConfigName.$": (
                        "States.ArrayGetItem(States.StringSplit($.EndpointConfigArn, '/'), 1)"
                    ),
                },
                "ResultPath": "$.endpoint_config",
            },
        )
        exists = sfn.Choice(self, ENDPOINT_EXISTS)
        create = task(
            CREATE_ENDPOINT,
            "sagemaker:createEndpoint",
            {
                "Parameters": {
                    "EndpointName": name,
                    "EndpointConfigName.$": "$.endpoint_config.EndpointConfigName",
                    "Tags": p.tags(),
                },
                "ResultPath": "$.endpoint_request",
            },
        )
        update = task(
            UPDATE_ENDPOINT,
            "sagemaker:updateEndpoint",
            {
                "Parameters": {
                    "EndpointName": name,
                    "EndpointConfigName.$": "$.endpoint_config.EndpointConfigName",
                    "DeploymentConfig": {
                        "BlueGreenUpdatePolicy": {
                            "TrafficRoutingConfiguration": deploy.traffic.routing(),
                            "TerminationWaitInSeconds": int(
                                deploy.traffic.termination_wait.to_seconds()
                            ),
                            "MaximumExecutionTimeoutInSeconds": deploy.blue_green_timeout_seconds,
                        },
                        "AutoRollbackConfiguration": {
                            "Alarms": [
                                {"AlarmName": alarm.alarm_name}
                                for alarm in self.deploy_alarms.rollback_alarms
                            ]
                        },
                    },
                },
                "ResultPath": "$.endpoint_request",
            },
        )
        start_wait = sfn.CustomState(
            self,
            START_ENDPOINT_WAIT,
            state_json={"Type": "Pass", "Result": {"checks": 0}, "ResultPath": "$.wait"},
        )
        wait = sfn.Wait(self, WAIT_FOR_ENDPOINT, time=sfn.WaitTime.duration(deploy.poll_interval))
        check = task(
            CHECK_ENDPOINT,
            "aws-sdk:sagemaker:describeEndpoint",
            {"Parameters": {"EndpointName": name}, "ResultPath": "$.status"},
        )
        count = sfn.CustomState(
            self,
            COUNT_ENDPOINT_CHECK,
            state_json={
                "Type": "Pass",
                "Parameters": {"checks.$": "States.MathAdd($.wait.checks, 1)"},
                "ResultPath": "$.wait",
            },
        )
        ready = sfn.Choice(self, ENDPOINT_READY)
        status = "$.status.EndpointStatus"
        in_service = sfn.Condition.string_equals(status, "InService")
        failed = sfn.Condition.or_(
            sfn.Condition.string_equals(status, "Failed"),
            sfn.Condition.string_equals(status, "UpdateRollbackFailed"),
        )
        ended = sfn.Condition.or_(
            failed,
            sfn.Condition.string_equals(status, "OutOfService"),
            sfn.Condition.string_equals(status, "Deleting"),
        )
        minutes = round(deploy.max_wait.to_seconds() / 60)
        ready.when(
            sfn.Condition.and_(
                in_service,
                sfn.Condition.string_equals_json_path(
                    "$.status.EndpointConfigName", "$.endpoint_config.EndpointConfigName"
                ),
            ),
            report_results,
        ).when(
            in_service,
            failure(
                DEPLOYMENT_ROLLED_BACK,
                "DeploymentRolledBack",
                "States.Format('Endpoint {} rolled back to configuration {}: {} did not survive "
                "the update (a rollback alarm fired or the new fleet failed).', "
                "$.status.EndpointName, $.status.EndpointConfigName, "
                "$.endpoint_config.EndpointConfigName)",
            ),
        ).when(
            sfn.Condition.and_(failed, sfn.Condition.is_present("$.status.FailureReason")),
            failure(
                ENDPOINT_FAILED,
                "EndpointFailed",
                "States.Format('Endpoint {} is {}: {}', $.status.EndpointName, "
                "$.status.EndpointStatus, $.status.FailureReason)",
            ),
        ).when(
            ended,
            failure(
                ENDPOINT_NOT_IN_SERVICE,
                "EndpointNotInService",
                "States.Format('Endpoint {} is {}', $.status.EndpointName, "
                "$.status.EndpointStatus)",
            ),
        ).when(
            sfn.Condition.number_greater_than_equals("$.wait.checks", deploy.max_checks),
            failure(
                ENDPOINT_WAIT_TIMED_OUT,
                "EndpointWaitTimedOut",
                f"States.Format('Endpoint {{}} is still {{}} after {deploy.max_checks} checks "
                f"in {minutes} minutes', $.status.EndpointName, $.status.EndpointStatus)",
            ),
        ).otherwise(wait)

        gate = sfn.Choice(self, QUALITY_GATE, comment=f"{deploy.metric} {symbol} threshold?")
        gate.when(sfn.Condition.not_(sfn.Condition.is_present("$.gate.values[0]")), reject).when(
            sfn.Condition.not_(sfn.Condition.is_numeric("$.gate.threshold")), reject
        ).when(passes, describe).otherwise(reject)
        missing.when(
            sfn.Condition.string_matches("$.error.Cause", "*Could not find endpoint*"), plan_new
        ).otherwise(notify_failure)
        describe.next(plan_update)
        plan_new.next(create_config)
        plan_update.next(create_config)
        create_config.next(exists)
        exists.when(sfn.Condition.boolean_equals("$.deployment.exists", True), update).otherwise(
            create
        )
        create.next(start_wait)
        update.next(start_wait)
        start_wait.next(wait).next(check).next(count).next(ready)
        read_metric.next(gate)
        return read_metric


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

    def tuning_job_name(self) -> str:
        """``<name_prefix>-<8 hex digits of a fresh UUID>``: tuning job names are limited to 32
        characters, too few for the run id; a retry draws a new UUID, so never a taken name."""
        return (
            f"States.Format('{self.name_prefix}-{{}}', "
            "States.ArrayGetItem(States.StringSplit(States.UUID(), '-'), 0))"
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
