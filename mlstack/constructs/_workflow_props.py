"""The training workflow's props checked at synth time: an impossible combination is refused
with the prop, the value and what is allowed."""

from __future__ import annotations

import re
from collections.abc import Mapping

from aws_cdk import Duration
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3

from mlstack.constructs.model_images import ModelImages
from mlstack.constructs.roles import validate_name_prefix
from mlstack.constructs.workflow_options import DeployStage, HyperparameterTuning, SpotTraining
from mlstack.rules import (
    DISTRIBUTED_MAP_MAX_CONCURRENCY,
    MAX_ROWS_PER_SHARD,
    MAX_SHARDS,
    NAME_PATTERN,
    VOLUME_SIZE_GB,
    evaluation_gate_metrics,
    objective_not_a_metric,
    tuned_and_fixed,
)

SAGEMAKER_NAME_LIMIT = 63
TUNING_JOB_NAME_LIMIT = 32  # HyperParameterTuningJobName is shorter than other SageMaker names
TUNING_SUFFIX_LENGTH = 8  # the first group of a fresh UUID: 8 hex digits
RUN_ID_LENGTH = 32  # hex MD5 of the execution name
MAX_REDRIVE_DIGITS = 4  # Step Functions redrives an execution at most 1000 times
_ENDPOINT_NAME = re.compile(NAME_PATTERN)


def validate_props(
    *,
    name_prefix: str,
    hyperparameters: Mapping[str, str],
    images: ModelImages,
    max_attempts: int,
    timeout: Duration,
    training_max_runtime: Duration,
    training_volume_size_gb: int,
    tuning: HyperparameterTuning | None,
    deploy: DeployStage | None,
) -> str | None:
    """Reject impossible props at synth time; returns the deploy stage's endpoint name."""
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
    if not VOLUME_SIZE_GB.accepts(training_volume_size_gb):
        raise ValueError(
            f"TrainingWorkflow training_volume_size_gb={training_volume_size_gb}: "
            f"expected {VOLUME_SIZE_GB.words()}"
        )
    metric_names = sorted(m["Name"] for m in images.training_metric_definitions)
    gate_metrics = metric_names + evaluation_gate_metrics()
    if deploy is not None and deploy.metric not in gate_metrics:
        raise ValueError(
            f"TrainingWorkflow deploy.metric={deploy.metric!r}: expected one of the training "
            f"image's metric definitions {metric_names} or an evaluation metric "
            f"{evaluation_gate_metrics()}"
        )
    if tuning is not None:
        objective = objective_not_a_metric(tuning.objective_metric, metric_names)
        if objective:
            raise ValueError(
                f"TrainingWorkflow tuning.objective_metric={tuning.objective_metric!r}: "
                f"expected {objective}"
            )
        both = tuned_and_fixed(
            list(tuning.ranges), list(hyperparameters), "defaults.hyperparameters"
        )
        if both:
            raise ValueError(
                f"TrainingWorkflow tuning.ranges={sorted(tuning.ranges)}: expected {both}"
            )
    if len(name_prefix) + 1 + TUNING_SUFFIX_LENGTH > TUNING_JOB_NAME_LIMIT:  # pragma: no cover
        raise ValueError(f"TrainingWorkflow name_prefix={name_prefix!r} is too long")
    if deploy is None:
        return None
    endpoint_name = deploy.endpoint_name or f"{name_prefix}-live"
    if not _ENDPOINT_NAME.fullmatch(endpoint_name):
        raise ValueError(
            f"TrainingWorkflow deploy.endpoint_name={endpoint_name!r}: "
            "expected at most 63 letters, digits and dashes"
        )
    return endpoint_name


def bucket_key(bucket: s3.IBucket, key: kms.IKey | None) -> kms.IKey:
    key = key or bucket.encryption_key
    if key is None:
        raise ValueError(
            "TrainingWorkflow key=None and the bucket has no encryption_key: hand in the KMS "
            "key that encrypts the bucket"
        )
    return key


def validate_seeding(max_rows: int, rows_per_shard: int, concurrency: int) -> tuple[int, int, int]:
    """Reject impossible seeding props; returns (rows_per_shard, concurrency, max_rows)."""
    if not 1 <= rows_per_shard <= MAX_ROWS_PER_SHARD:
        raise ValueError(
            f"TrainingWorkflow rows_per_shard={rows_per_shard}: expected 1 to "
            f"{MAX_ROWS_PER_SHARD} (what one seeding invocation writes within its timeout)"
        )
    if not 1 <= max_rows <= MAX_SHARDS * rows_per_shard:
        raise ValueError(
            f"TrainingWorkflow max_rows={max_rows}: expected 1 to {MAX_SHARDS * rows_per_shard} "
            f"({MAX_SHARDS} shards of rows_per_shard={rows_per_shard}: States.ArrayRange lists "
            "at most 1,000 shards)"
        )
    if not 1 <= concurrency <= DISTRIBUTED_MAP_MAX_CONCURRENCY:
        raise ValueError(
            f"TrainingWorkflow seeding_concurrency={concurrency}: expected 1 to "
            f"{DISTRIBUTED_MAP_MAX_CONCURRENCY} (a Distributed Map's most child executions)"
        )
    return rows_per_shard, concurrency, max_rows


def validate_spot(spot: SpotTraining | None, max_runtime: Duration) -> None:
    if spot is None:
        return
    wait, runtime = int(spot.max_wait.to_seconds()), int(max_runtime.to_seconds())
    if wait < runtime:
        raise ValueError(
            f"TrainingWorkflow spot.max_wait={wait}s: expected at least training_max_runtime "
            f"({runtime}s); SageMaker's MaxWaitTimeInSeconds covers the wait for spot capacity "
            "and the run"
        )
