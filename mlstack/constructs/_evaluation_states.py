"""The transform-and-evaluation fragment: Batch transform -> Evaluate model -> Read evaluation
[-> Baseline data]. Each SageMaker task is built by one object that renders its request in named
steps and returns the policy statement of the calls it makes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_cdk import Aws, Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from mlstack.constructs._fragment import Fragment
from mlstack.constructs._state_builder import StateBuilder
from mlstack.constructs._training_states import run_jobs_statements
from mlstack.constructs.instance_storage import has_local_storage
from mlstack.constructs.model_images import ModelImages
from mlstack.constructs.roles import PROCESSING_JOBS, TRANSFORM_JOBS, ContainerAccess
from mlstack.constructs.state_names import (
    BASELINE_DATA,
    BATCH_TRANSFORM,
    EVALUATE_MODEL,
    READ_EVALUATION,
)
from mlstack.constructs.workflow_options import DataQualityBaseline

TRANSFORM_RESOURCES = "$.resources.transform"
# The evaluation job: one small instance (it reads one score and one label a row).
DEFAULT_EVALUATION_INSTANCE_TYPE = "ml.m5.large"
EVALUATION_VOLUME_GB = 10
EVALUATION_MAX_RUNTIME = Duration.hours(1)
PROCESSING_DIR = "/opt/ml/processing"


class BatchTransform:
    """Batch transform's CreateTransformJob request: the run's test set through its model."""

    sync_rule: str | None = "Transform"

    def __init__(self, builder: StateBuilder) -> None:
        self.builder = builder

    def render_transform_input(self) -> dict[str, Any]:
        return {
            "ContentType": "text/csv",
            "CompressionType": "None",
            "SplitType": "Line",
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri.$": "$.dataset.test_prefix"}
            },
        }

    def render_transform_output(self) -> dict[str, Any]:
        b = self.builder
        return {
            "S3OutputPath.$": (
                f"States.Format('s3://{b.bucket_name}/{b.layout.transform_output}{{}}/', $.run_id)"
            ),
            "Accept": "text/csv",
            "AssembleWith": "Line",
            "KmsKeyId": b.key_arn,
        }

    def render_parameters(self) -> dict[str, Any]:
        b = self.builder
        return {
            "TransformJobName.$": b.name("b"),
            "ModelName.$": "$.model.ModelName",
            "BatchStrategy": "MultiRecord",
            "TransformInput": self.render_transform_input(),
            "TransformOutput": self.render_transform_output(),
            "TransformResources.$": TRANSFORM_RESOURCES,
            "Tags": b.tags(),
        }

    def state(self, scope: Construct) -> sfn.CustomState:
        batch_transform = sfn.CustomState(
            scope,
            BATCH_TRANSFORM,
            state_json={
                "Type": "Task",
                "Resource": f"arn:{Aws.PARTITION}:states:::sagemaker:createTransformJob.sync",
                "Parameters": self.render_parameters(),
                "ResultSelector": {
                    "TransformJobName.$": "$.TransformJobName",
                    "TransformJobArn.$": "$.TransformJobArn",
                    "TransformOutput.$": "$.TransformOutput",
                },
                "ResultPath": "$.transform",
            },
        )
        self.builder.retry_sagemaker(batch_transform)
        return batch_transform

    def container_access(self) -> ContainerAccess:
        """The model (SageMaker runs a transform job as its model's role) reads the test set
        from ``layout.datasets`` and its artifact from ``layout.models``, and writes the scores
        to ``layout.transform_output``."""
        layout = self.builder.layout
        return ContainerAccess(
            TRANSFORM_JOBS,
            reads=(layout.datasets, layout.models),
            writes=(layout.transform_output,),
        )

    def policy_statements(self, scope: Construct) -> list[iam.PolicyStatement]:
        return run_jobs_statements(
            scope,
            self.builder,
            sid="RunTransformJobs",
            resource="transform-job",
            api="TransformJob",
            kind="transform",
        )


class ProcessingJob:
    """A CreateProcessingJob request of ``instance_count`` instances (default one) running the
    training image's ``entrypoint``: ``inputs`` (name -> JSONPath of an S3 prefix) under
    ``<PROCESSING_DIR>/input/<name>``, outputs encrypted with the bucket key, the volume too
    unless the instance type has local NVMe storage; named ``builder.name(kind)``; ``reads`` and
    ``writes``, the bucket prefixes of its inputs and outputs, are what the execution role lets
    it read and write. Evaluate model, Baseline data and Prepare data are three."""

    sync_rule: str | None = "Processing"

    def __init__(
        self,
        builder: StateBuilder,
        *,
        kind: str,
        app: dict[str, Any],
        inputs: Mapping[str, str],
        outputs: list[dict[str, Any]],
        instance_type: str,
        volume_size_gb: int,
        max_runtime: Duration,
        network: dict[str, Any],
        reads: tuple[str, ...] = (),
        writes: tuple[str, ...] = (),
        instance_count: int = 1,
    ) -> None:
        self.builder = builder
        self.instance_count = instance_count
        self.kind = kind
        self.reads = reads
        self.writes = writes
        self.app = app
        self.inputs = inputs
        self.outputs = outputs
        self.instance_type = instance_type
        self.volume_size_gb = volume_size_gb
        self.max_runtime = max_runtime
        self.network = network

    def render_processing_inputs(self) -> list[dict[str, Any]]:
        return [
            {
                "InputName": name,
                "S3Input": {
                    "S3Uri.$": uri_path,
                    "LocalPath": f"{PROCESSING_DIR}/input/{name}",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                    "S3DataDistributionType": "FullyReplicated",
                },
            }
            for name, uri_path in self.inputs.items()
        ]

    def render_cluster_config(self) -> dict[str, Any]:
        cluster: dict[str, Any] = {
            "InstanceCount": self.instance_count,
            "InstanceType": self.instance_type,
            "VolumeSizeInGB": self.volume_size_gb,
        }
        if not has_local_storage(self.instance_type):
            cluster["VolumeKmsKeyId"] = self.builder.key_arn
        return cluster

    def render_parameters(self) -> dict[str, Any]:
        b = self.builder
        return {
            "ProcessingJobName.$": b.name(self.kind),
            "RoleArn": b.role_arn,
            "AppSpecification": self.app,
            "ProcessingInputs": self.render_processing_inputs(),
            "ProcessingOutputConfig": {"Outputs": self.outputs, "KmsKeyId": b.key_arn},
            "ProcessingResources": {"ClusterConfig": self.render_cluster_config()},
            "StoppingCondition": {"MaxRuntimeInSeconds": int(self.max_runtime.to_seconds())},
            "NetworkConfig": self.network,
            "Tags": b.tags(),
        }

    def container_access(self) -> ContainerAccess:
        """The prefixes its inputs come from (``reads``) and its outputs go to (``writes``)."""
        return ContainerAccess(PROCESSING_JOBS, reads=self.reads, writes=self.writes)

    def policy_statements(self, scope: Construct) -> list[iam.PolicyStatement]:
        return run_jobs_statements(
            scope,
            self.builder,
            sid="RunProcessingJobs",
            resource="processing-job",
            api="ProcessingJob",
            kind="processing",
        )


def processing_output(name: str, s3_uri: dict[str, str]) -> dict[str, Any]:
    """A ProcessingOutput of ``<PROCESSING_DIR>/output/<name>``, uploaded when the job ends."""
    return {
        "OutputName": name,
        "S3Output": {
            **s3_uri,
            "LocalPath": f"{PROCESSING_DIR}/output/{name}",
            "S3UploadMode": "EndOfJob",
        },
    }


def evaluation_uri(builder: StateBuilder, file: str) -> str:
    return (
        f"States.Format('s3://{builder.bucket_name}/{builder.layout.evaluations}{{}}/{file}', "
        "$.run_id)"
    )


def baseline_uri(builder: StateBuilder) -> str:
    """The run's baseline prefix, ``s3://<bucket>/<layout.baselines><run_id>/``."""
    return f"States.Format('s3://{builder.bucket_name}/{builder.layout.baselines}{{}}/', $.run_id)"


def evaluation_job(builder: StateBuilder, images: ModelImages) -> ProcessingJob:
    """The training image's ``evaluate``: its summary (metrics, problem type) comes back as the
    job's ExitMessage, its report goes to ``layout.evaluations``."""
    network: dict[str, Any] = {"EnableNetworkIsolation": builder.network_isolation}
    if builder.model_vpc is not None:  # beside the transform job, in the inference subnets
        network["VpcConfig"] = builder.model_vpc
    return ProcessingJob(
        builder,
        kind="e",
        app={"ImageUri": images.training_image_uri, "ContainerEntrypoint": ["evaluate"]},
        inputs={
            "predictions": "$.transform.TransformOutput.S3OutputPath",
            "labels": "$.dataset.test_labels_prefix",
            "model": "$.training.ModelArtifacts.S3ModelArtifacts",
        },
        outputs=[processing_output("evaluation", {"S3Uri.$": evaluation_uri(builder, "")})],
        reads=(
            builder.layout.transform_output,
            builder.layout.datasets,
            builder.layout.models,
        ),
        writes=(builder.layout.evaluations,),
        # One instance: ExitMessage concatenates the messages of every instance.
        instance_type=builder.evaluation_instance_type,
        volume_size_gb=EVALUATION_VOLUME_GB,
        max_runtime=EVALUATION_MAX_RUNTIME,
        network=network,
    )


def baseline_job(
    builder: StateBuilder, images: ModelImages, baseline: DataQualityBaseline
) -> ProcessingJob:
    """The image's ``baseline`` program on the run's train channel and its model (for the
    schema's feature names); its two outputs are the run's baseline prefix and ``latest/``."""
    latest = f"s3://{builder.bucket_name}/{builder.layout.baselines}latest/"
    # A job like Train model: in the training placement, traffic between hosts encrypted.
    network = {"EnableNetworkIsolation": builder.network_isolation}
    network |= builder.training_network()
    arguments = ["--input", "train", "--output", "run", "--output", "latest"]
    arguments += ["--comparison-threshold", str(baseline.drift_threshold)]
    arguments += ["--label", "first" if baseline.keep_label else "drop"]
    # The model carries the prepared dataset's schema.json: the features' names by which the
    # monitor compares captured records (none on the seeder's: x and y).
    arguments += ["--model", "model"]
    return ProcessingJob(
        builder,
        kind="d",
        app={
            "ImageUri": images.training_image_uri,
            "ContainerEntrypoint": ["baseline"],
            "ContainerArguments": arguments,
        },
        inputs={
            "train": "$.dataset.train_prefix",
            "model": "$.training.ModelArtifacts.S3ModelArtifacts",
        },
        outputs=[
            processing_output("run", {"S3Uri.$": baseline_uri(builder)}),
            processing_output("latest", {"S3Uri": latest}),
        ],
        reads=(builder.layout.datasets, builder.layout.models),
        writes=(builder.layout.baselines,),
        instance_type=baseline.instance_type,
        volume_size_gb=baseline.volume_size_gb,
        max_runtime=baseline.max_runtime,
        network=network,
    )


def _evaluate_model(scope: Construct, job: ProcessingJob) -> sfn.CustomState:
    state = sfn.CustomState(
        scope,
        EVALUATE_MODEL,
        state_json={
            "Type": "Task",
            "Resource": f"arn:{Aws.PARTITION}:states:::sagemaker:createProcessingJob.sync",
            "Parameters": job.render_parameters(),
            "ResultSelector": {
                "ProcessingJobName.$": "$.ProcessingJobName",
                "ProcessingJobArn.$": "$.ProcessingJobArn",
                "summary.$": "States.StringToJson($.ExitMessage)",
            },
            "ResultPath": "$.evaluation_job",
        },
    )
    job.builder.retry_sagemaker(state)
    return state


def _read_evaluation(scope: Construct, builder: StateBuilder) -> sfn.CustomState:
    """``$.evaluation``: where the report is, the problem type and the metrics (name -> number;
    a metric undefined on the data is absent)."""
    return sfn.CustomState(
        scope,
        READ_EVALUATION,
        state_json={
            "Type": "Pass",
            "Comment": "The evaluation job's summary (its ExitMessage) beside its report.",
            "Parameters": {
                "report_uri.$": evaluation_uri(builder, "evaluation.json"),
                "problem_type.$": "$.evaluation_job.summary.problem_type",
                "metrics.$": "$.evaluation_job.summary.metrics",
            },
            "ResultPath": "$.evaluation",
        },
    )


def _baseline_data(scope: Construct, job: ProcessingJob) -> sfn.CustomState:
    state = sfn.CustomState(
        scope,
        BASELINE_DATA,
        state_json={
            "Type": "Task",
            "Comment": "Model Monitor's statistics and constraints of the training data.",
            "Resource": f"arn:{Aws.PARTITION}:states:::sagemaker:createProcessingJob.sync",
            "Parameters": job.render_parameters(),
            "ResultSelector": {
                "ProcessingJobName.$": "$.ProcessingJobName",
                "ProcessingJobArn.$": "$.ProcessingJobArn",
            },
            "ResultPath": "$.baseline",
        },
    )
    job.builder.retry_sagemaker(state)
    return state


def evaluation_fragment(
    scope: Construct,
    transform: BatchTransform,
    evaluation: ProcessingJob,
    baseline: ProcessingJob | None,
) -> Fragment:
    """Batch transform -> Evaluate model -> Read evaluation [-> Baseline data]."""
    batch_transform = transform.state(scope)
    evaluate_model = _evaluate_model(scope, evaluation)
    read_evaluation = _read_evaluation(scope, transform.builder)
    batch_transform.next(evaluate_model).next(read_evaluation)
    if baseline is None:
        return Fragment(
            start=batch_transform, ends=(read_evaluation,), tasks=(batch_transform, evaluate_model)
        )
    baseline_data = _baseline_data(scope, baseline)
    read_evaluation.next(baseline_data)
    return Fragment(
        start=batch_transform,
        ends=(baseline_data,),
        tasks=(batch_transform, evaluate_model, baseline_data),
    )
