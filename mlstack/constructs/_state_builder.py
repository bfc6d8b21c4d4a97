"""Plain values and helpers shared by the states of the training workflow."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_cdk import Duration
from aws_cdk import aws_stepfunctions as sfn

from mlstack.constructs.layout import BucketLayout
from mlstack.constructs.roles import CreateGuards

if TYPE_CHECKING:
    from mlstack.constructs.network import WorkloadNetwork

# Throttling and service-side errors of the SageMaker API. A job that runs and fails raises
# States.TaskFailed instead, which is not retried: the same inputs would fail again.
# Optimized integrations (arn:aws:states:::sagemaker:...) raise every API error as
# SageMaker.AmazonSageMakerException. AWS SDK integrations (arn:aws:states:::aws-sdk:sagemaker:...)
# raise "SageMaker." + the error code, always ending in "Exception" even where the API reference
# omits it (Step Functions developer guide, "AWS SDK service integrations": error names), so
# InternalFailure becomes SageMaker.InternalFailureException.
SAGEMAKER_TRANSIENT_ERRORS = ["SageMaker.AmazonSageMakerException"]
SAGEMAKER_SDK_TRANSIENT_ERRORS = [
    "SageMaker.ThrottlingException",
    "SageMaker.InternalFailureException",
    "SageMaker.ServiceUnavailableException",
]


@dataclass(frozen=True)
class StateBuilder:
    name_prefix: str
    bucket_name: str
    layout: BucketLayout
    key_arn: str
    role_arn: str
    network_isolation: bool
    max_attempts: int
    # SageMaker VpcConfig of training (and tuning) jobs and of models (transform jobs and
    # endpoints run in their model's), or None outside a VPC.
    training_vpc: dict[str, list[str]] | None = None
    model_vpc: dict[str, list[str]] | None = None
    evaluation_instance_type: str = "ml.m5.large"

    def in_network(self, network: WorkloadNetwork | None) -> StateBuilder:
        """This builder with the jobs' and models' VpcConfig when there is a ``network``:
        training (and tuning) jobs in its training placement, models in its inference one."""
        if network is None:
            return self
        return dataclasses.replace(
            self,
            training_vpc=network.training.vpc_config(),
            model_vpc=network.inference.vpc_config(),
        )

    def training_network(self) -> dict[str, Any]:
        """A training job's VPC settings. The instance count is an execution input, so traffic
        between the hosts of a multi-host job is always encrypted inside the VPC."""
        if self.training_vpc is None:
            return {}
        return {"VpcConfig": self.training_vpc, "EnableInterContainerTrafficEncryption": True}

    def model_network(self) -> dict[str, Any]:
        return {} if self.model_vpc is None else {"VpcConfig": self.model_vpc}

    def create_guards(self, kind: str) -> CreateGuards:
        """What the workflow's create requests of ``kind`` always send, for IAM to require:
        ``training`` (training and tuning jobs: the training placement, traffic between hosts
        encrypted), ``processing`` (Evaluate model in the inference placement, Baseline and
        Prepare data in the training one), ``transform`` (its model's network) or ``model``
        (the inference placement). Every job's outputs and volume use the data key."""
        vpcs = {
            "training": (self.training_vpc,),
            "processing": (self.training_vpc, self.model_vpc),
            "transform": (),
            "model": (self.model_vpc,),
        }[kind]
        return CreateGuards(
            isolation=self.network_isolation,
            key_arn=None if kind == "model" else self.key_arn,
            vpcs=tuple(v for v in vpcs if v is not None),
            traffic_encryption=kind == "training" and self.training_vpc is not None,
        )

    def retry_sagemaker(self, state: sfn.CustomState, *, sdk: bool = False) -> None:
        """Retry transient API errors: ``sdk`` for an ``aws-sdk:sagemaker:*`` task."""
        state.add_retry(
            errors=SAGEMAKER_SDK_TRANSIENT_ERRORS if sdk else SAGEMAKER_TRANSIENT_ERRORS,
            interval=Duration.seconds(10),
            max_attempts=self.max_attempts,
            backoff_rate=2,
            max_delay=Duration.minutes(5),
            jitter_strategy=sfn.JitterType.FULL,
        )

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

    def channels(self, uris: dict[str, str], *, schema: str | None = None) -> list[dict[str, Any]]:
        """The run's ``train`` and ``validation`` sets at ``uris`` (channel -> a path or an
        intrinsic; the image evaluates the latter every round: early stopping, best iteration,
        and the metric the quality gate reads), and with ``schema`` (a path or an intrinsic to a
        prepared table's ``schema.json``) the File-mode ``schema`` channel ``train`` copies into
        the model. The dataset states write this list to ``$.dataset.channels``.

        ``train`` is ``ShardedByS3Key``: with N instances each gets about 1/N of its objects
        (the seeder's shards) and the hosts train together through the image's collective;
        with one instance that one gets every object, so nothing changes (SageMaker API
        reference, ``S3DataSource.S3DataDistributionType``). ``validation`` is replicated:
        every host evaluates on the whole set, so each reports the same metric."""
        distribution = {"train": "ShardedByS3Key", "validation": "FullyReplicated"}
        channels = [
            {
                "ChannelName": channel,
                "ContentType": "text/csv",
                "CompressionType": "None",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri.$": uris[channel],
                        "S3DataDistributionType": distribution[channel],
                    }
                },
            }
            for channel in ("train", "validation")
        ]
        if schema is not None:
            channels.append(
                {
                    "ChannelName": "schema",
                    "ContentType": "application/json",
                    "CompressionType": "None",
                    "InputMode": "File",
                    "DataSource": {
                        "S3DataSource": {
                            "S3DataType": "S3Prefix",
                            "S3Uri.$": schema,
                            "S3DataDistributionType": "FullyReplicated",
                        }
                    },
                }
            )
        return channels

    def tags(self) -> list[dict[str, str]]:
        return [
            {"Key": "mlstack:workflow", "Value": self.name_prefix},
            {"Key": "mlstack:run-id", "Value.$": "$.run_id"},
        ]
