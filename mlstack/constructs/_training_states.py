"""The train-or-tune fragment: [Tune or train? -> Tune model -> Read best training job |] Train
model -> Save model. Each SageMaker task is built by one object that renders its request in
named steps and returns the policy statement of the calls it makes."""

from __future__ import annotations

from typing import Any

from aws_cdk import Aws, Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from mlstack.constructs._fragment import Fragment
from mlstack.constructs._state_builder import StateBuilder
from mlstack.constructs.model_images import ModelImages
from mlstack.constructs.roles import TRAINING_JOBS, ContainerAccess, create_statements
from mlstack.constructs.state_names import (
    READ_BEST_TRAINING_JOB,
    SAVE_MODEL,
    TRAIN_MODEL,
    TUNE_MODEL,
    TUNE_OR_TRAIN,
)
from mlstack.constructs.workflow_options import DeployStage, HyperparameterTuning, SpotTraining

TRAINING_RESOURCES = "$.resources.training"
# Static hyperparameters: the defaults, overridden key by key by the execution input.
HYPERPARAMETERS = "States.JsonMerge($.default_hyperparameters, $.args.hyperparameters, false)"


def run_jobs_statements(
    scope: Construct, builder: StateBuilder, *, sid: str, resource: str, api: str, kind: str
) -> list[iam.PolicyStatement]:
    """Create ``api`` jobs named ``<name_prefix>-*`` as the workflow's requests of ``kind`` do
    (``StateBuilder.create_guards``: isolation, keys, VPC, in IAM's conditions), and describe
    and stop them. Stop*: Step Functions stops a .sync job when the execution is stopped or
    times out ("Run a Job (.sync)"; the integration's documented policy lists them)."""
    return create_statements(
        scope,
        sid=sid,
        resource=resource,
        api=api,
        name_prefix=builder.name_prefix,
        guards=builder.create_guards(kind),
    )


class TrainingJob:
    """A CreateTrainingJob request of the workflow, rendered in named steps; Train model sends
    it whole, Tune model's job definition reuses its parts."""

    sync_rule: str | None = "Training"

    def __init__(
        self,
        builder: StateBuilder,
        images: ModelImages,
        *,
        volume_size_gb: int,
        max_runtime: Duration,
        deploy: DeployStage | None,
        spot: SpotTraining | None,
    ) -> None:
        self.builder = builder
        self.images = images
        self.volume_size_gb = volume_size_gb
        self.max_runtime = max_runtime
        self.deploy = deploy
        self.spot = spot

    def render_algorithm_specification(self) -> dict[str, Any]:
        algorithm: dict[str, Any] = {
            "TrainingImage": self.images.training_image_uri,
            "TrainingInputMode": "File",
        }
        if self.images.training_metric_definitions:
            algorithm["MetricDefinitions"] = self.images.training_metric_definitions
        return algorithm

    def render_result_selector(self) -> dict[str, str]:
        """DescribeTrainingJob's answer (the .sync result), cut to what later states read."""
        result = {
            "TrainingJobName.$": "$.TrainingJobName",
            "TrainingJobArn.$": "$.TrainingJobArn",
            "HyperParameters.$": "$.HyperParameters",
            "ModelArtifacts.$": "$.ModelArtifacts",
            "TrainingTimeInSeconds.$": "$.TrainingTimeInSeconds",
            "BillableTimeInSeconds.$": "$.BillableTimeInSeconds",
        }
        # The final metrics feed the deploy stage's quality gate.
        if self.deploy is not None:
            result["FinalMetricDataList.$"] = "$.FinalMetricDataList"
        return result

    def render_output_data_config(self) -> dict[str, str]:
        b = self.builder
        return {"S3OutputPath": f"s3://{b.bucket_name}/{b.layout.models}", "KmsKeyId": b.key_arn}

    def render_resource_config(self) -> dict[str, Any]:
        """The instances; the instance storage choice adds VolumeKmsKeyId where allowed."""
        return {
            "InstanceType.$": "$.args.training_instance_type",
            "InstanceCount.$": "$.args.training_instance_count",
            "VolumeSizeInGB": self.volume_size_gb,
        }

    def render_stopping_condition(self) -> dict[str, int]:
        """MaxWaitTimeInSeconds only with spot: SageMaker refuses it without
        EnableManagedSpotTraining."""
        stopping = {"MaxRuntimeInSeconds": int(self.max_runtime.to_seconds())}
        if self.spot is not None:
            stopping["MaxWaitTimeInSeconds"] = int(self.spot.max_wait.to_seconds())
        return stopping

    def render_spot(self, suffix: str = "") -> dict[str, Any]:
        """EnableManagedSpotTraining and the run's CheckpointConfig (SageMaker syncs
        ``/opt/ml/checkpoints`` with it and restores it into the job that resumes). The tuning
        job's training jobs checkpoint under ``<run_id>/tuning/``, apart from Train model's."""
        if self.spot is None:
            return {}
        b = self.builder
        return {
            "EnableManagedSpotTraining": True,
            "CheckpointConfig": {
                "S3Uri.$": (
                    f"States.Format('s3://{b.bucket_name}/{b.layout.checkpoints}"
                    f"{{}}/{suffix}', $.run_id)"
                ),
                "LocalPath": "/opt/ml/checkpoints",
            },
        }

    def render_job(self, spot_suffix: str = "") -> dict[str, Any]:
        """What Train model's request and Tune model's job definition share, in request order
        after the hyperparameters."""
        b = self.builder
        return {
            "InputDataConfig.$": "$.dataset.channels",
            "OutputDataConfig": self.render_output_data_config(),
            "ResourceConfig.$": TRAINING_RESOURCES,
            "StoppingCondition": self.render_stopping_condition(),
            "EnableNetworkIsolation": b.network_isolation,
            **b.training_network(),
            **self.render_spot(spot_suffix),
        }

    def render_parameters(self) -> dict[str, Any]:
        b = self.builder
        return {
            "TrainingJobName.$": b.name("t"),
            "RoleArn": b.role_arn,
            "AlgorithmSpecification": self.render_algorithm_specification(),
            "HyperParameters.$": HYPERPARAMETERS,
            **self.render_job(),
            "Tags": b.tags(),
        }

    def state(self, scope: Construct) -> sfn.CustomState:
        """Train model (``createTrainingJob.sync``), its result at ``$.training``."""
        train_model = sfn.CustomState(
            scope,
            TRAIN_MODEL,
            state_json={
                "Type": "Task",
                "Resource": f"arn:{Aws.PARTITION}:states:::sagemaker:createTrainingJob.sync",
                "Parameters": self.render_parameters(),
                "ResultSelector": self.render_result_selector(),
                "ResultPath": "$.training",
            },
        )
        self.builder.retry_sagemaker(train_model)
        return train_model

    def container_access(self) -> ContainerAccess:
        """The train and validation channels from ``layout.datasets``, the model to
        ``layout.models``; with spot, ``layout.checkpoints`` both ways (CheckpointConfig:
        uploaded while training, read back when an interrupted job resumes)."""
        layout = self.builder.layout
        checkpoints = (layout.checkpoints,) if self.spot is not None else ()
        return ContainerAccess(
            TRAINING_JOBS,
            reads=(layout.datasets, *checkpoints),
            writes=(layout.models, *checkpoints),
        )

    def policy_statements(self, scope: Construct) -> list[iam.PolicyStatement]:
        return run_jobs_statements(
            scope,
            self.builder,
            sid="RunTrainingJobs",
            resource="training-job",
            api="TrainingJob",
            kind="training",
        )


class TuningJob:
    """Tune model's CreateHyperParameterTuningJob request (its training jobs are ``job``'s) and
    Read best training job, whose answer has the shape of Train model's result."""

    sync_rule: str | None = "Tuning"

    def __init__(self, job: TrainingJob, tuning: HyperparameterTuning) -> None:
        self.job = job
        self.tuning = tuning

    def container_access(self) -> ContainerAccess:
        """Its training jobs are ``job``'s: they read and write what ``job`` does."""
        return self.job.container_access()

    def render_tuning_job_config(self) -> dict[str, Any]:
        return {
            "Strategy.$": "$.args.tuning_strategy",
            "HyperParameterTuningJobObjective.$": "$.args.tuning_objective",
            "ResourceLimits": {
                "MaxNumberOfTrainingJobs.$": "$.args.tuning_max_jobs",
                "MaxParallelTrainingJobs.$": "$.args.tuning_max_parallel_jobs",
            },
            "ParameterRanges.$": "$.args.tuning_ranges",
            "TrainingJobEarlyStoppingType": "Auto" if self.tuning.early_stopping else "Off",
        }

    def render_training_job_definition(self) -> dict[str, Any]:
        return {
            "AlgorithmSpecification": self.job.render_algorithm_specification(),
            "RoleArn": self.job.builder.role_arn,
            "StaticHyperParameters.$": HYPERPARAMETERS,
            **self.job.render_job("tuning/"),
        }

    def render_parameters(self) -> dict[str, Any]:
        b = self.job.builder
        return {
            "HyperParameterTuningJobName.$": b.tuning_job_name(),
            "HyperParameterTuningJobConfig": self.render_tuning_job_config(),
            "TrainingJobDefinition": self.render_training_job_definition(),
            "Tags": b.tags(),
        }

    def states(self, scope: Construct) -> tuple[sfn.CustomState, sfn.CustomState]:
        """Tune model -> Read best training job (its description at ``$.training``)."""
        b = self.job.builder
        tune_model = sfn.CustomState(
            scope,
            TUNE_MODEL,
            state_json={
                "Type": "Task",
                "Resource": (
                    f"arn:{Aws.PARTITION}:states:::sagemaker:createHyperParameterTuningJob.sync"
                ),
                "Parameters": self.render_parameters(),
                "ResultSelector": {
                    "HyperParameterTuningJobName.$": "$.HyperParameterTuningJobName",
                    "HyperParameterTuningJobArn.$": "$.HyperParameterTuningJobArn",
                    "BestTrainingJob.$": "$.BestTrainingJob",
                },
                "ResultPath": "$.tuning",
            },
        )
        b.retry_sagemaker(tune_model)
        # The best job's description has the shape of Train model's result, so Save model and
        # the deploy stage read either path the same way.
        read_best = sfn.CustomState(
            scope,
            READ_BEST_TRAINING_JOB,
            state_json={
                "Type": "Task",
                "Resource": f"arn:{Aws.PARTITION}:states:::aws-sdk:sagemaker:describeTrainingJob",
                "Parameters": {"TrainingJobName.$": "$.tuning.BestTrainingJob.TrainingJobName"},
                "ResultSelector": self.job.render_result_selector(),
                "ResultPath": "$.training",
            },
        )
        b.retry_sagemaker(read_best, sdk=True)
        return tune_model, read_best

    def policy_statements(self, scope: Construct) -> list[iam.PolicyStatement]:
        """Read best training job's DescribeTrainingJob is in Train model's statement."""
        return run_jobs_statements(
            scope,
            self.job.builder,
            sid="RunTuningJobs",
            resource="hyper-parameter-tuning-job",
            api="HyperParameterTuningJob",
            kind="training",
        )


class SaveModel:
    """Save model's CreateModel request: the inference image with the run's artifact."""

    sync_rule: str | None = None

    def __init__(self, builder: StateBuilder, images: ModelImages) -> None:
        self.builder = builder
        self.images = images

    def render_parameters(self) -> dict[str, Any]:
        b = self.builder
        return {
            "ModelName.$": b.name("m"),
            "ExecutionRoleArn": b.role_arn,
            "PrimaryContainer": {
                "Image": self.images.inference_image_uri,
                "ModelDataUrl.$": "$.training.ModelArtifacts.S3ModelArtifacts",
                "Mode": "SingleModel",
            },
            "EnableNetworkIsolation": b.network_isolation,
            **b.model_network(),
            "Tags": b.tags(),
        }

    def state(self, scope: Construct) -> sfn.CustomState:
        save_model = sfn.CustomState(
            scope,
            SAVE_MODEL,
            state_json={
                "Type": "Task",
                "Resource": f"arn:{Aws.PARTITION}:states:::sagemaker:createModel",
                "Parameters": self.render_parameters(),
                # CreateModel answers only the ARN; SageMaker ARNs end in the (lower-case) name.
                "ResultSelector": {
                    "ModelArn.$": "$.ModelArn",
                    "ModelName.$": "States.ArrayGetItem(States.StringSplit($.ModelArn, '/'), 1)",
                },
                "ResultPath": "$.model",
            },
        )
        self.builder.retry_sagemaker(save_model)
        return save_model

    def policy_statements(self, scope: Construct) -> list[iam.PolicyStatement]:
        return create_statements(
            scope,
            sid="CreateModels",
            resource="model",
            api="Model",
            name_prefix=self.builder.name_prefix,
            guards=self.builder.create_guards("model"),
            manage=(),
        )


def train_or_tune_fragment(
    scope: Construct,
    job: TrainingJob,
    tuning: TuningJob | None,
    save_model: SaveModel,
) -> Fragment:
    """[Tune or train? -> (tune) Tune model -> Read best training job |] Train model -> Save
    model; ends at Save model."""
    train_model = job.state(scope)
    save = save_model.state(scope)
    if tuning is None:
        train_model.next(save)
        return Fragment(start=train_model, ends=(save,), tasks=(train_model, save))
    tune_model, read_best = tuning.states(scope)
    tune_or_train = sfn.Choice(
        scope,
        TUNE_OR_TRAIN,
        comment="Execution input 'tune' (default from the config) picks the path.",
    )
    tune_or_train.when(sfn.Condition.boolean_equals("$.args.tune", True), tune_model).otherwise(
        train_model
    )
    tune_model.next(read_best).next(save)
    train_model.next(save)
    return Fragment(
        start=tune_or_train, ends=(save,), tasks=(train_model, save, tune_model, read_best)
    )
