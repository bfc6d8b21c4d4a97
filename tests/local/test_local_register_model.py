"""Register model, run locally with validation on: the request the workflow sent before issue 22
is refused with SageMaker's ValidationException (so every run in AWS would have failed there);
the request it sends now passes, keeps what it must (the training job, the gate value) and the
A/B release reads the gate value back as a number.

Expected values come from botocore's sagemaker model (CustomerMetadataValue's pattern) and AWS's
wording of a validation error (aws/aws-cli issue 790) and of a Step Functions task's cause for a
SageMaker refusal ("(Service: AmazonSageMaker; Status Code: 400; Error Code: ...)", the format
AWS SDK for Java gives every service error, e.g. "(Service: AWSLambda; Status Code: 400; Error
Code: ValidationException ...)" in awslabs/aws-transit-vpc issue 32).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import botocore.session
import pytest
import regex

from mlstack.local import assembly as assembly_mod
from mlstack.local import intrinsics
from mlstack.local.asl import ExecutionResult, Interpreter
from mlstack.local.sagemaker import LocalSageMaker
from mlstack.local.tasks import TaskDispatcher

SAGEMAKER = botocore.session.get_session().get_service_model("sagemaker")
VALUE_PATTERN = SAGEMAKER.shape_for("CustomerMetadataValue").metadata["pattern"]
HYPERPARAMETERS = {"eta": "0.3", "max_depth": "5", "num_round": "50"}
GATE_VALUE = 0.0976949


def run_input() -> dict[str, Any]:
    """What the workflow's state holds when it reaches Register model."""
    return {
        "run_id": "20261207-abc123",
        "args": {"transform_instance_type": "ml.m5.large"},
        "training": {
            "TrainingJobName": "mlstack-dev-20261207-abc123-train0-0",
            "HyperParameters": HYPERPARAMETERS,
            "ModelArtifacts": {"S3ModelArtifacts": "s3://data/models/job/output/model.tar.gz"},
        },
        "dataset": {
            "train_prefix": "s3://data/runs/20261207-abc123/train/",
            "validation_prefix": "s3://data/runs/20261207-abc123/validation/",
            "test_prefix": "s3://data/runs/20261207-abc123/test/",
        },
        "evaluation": {
            "report_uri": "s3://data/evaluations/20261207-abc123/evaluation.json",
            "problem_type": "binary",
            "metrics": {"rmse": GATE_VALUE, "auc": GATE_VALUE, "accuracy": GATE_VALUE},
        },
        "gate": {
            "metric": "validation:rmse",
            "comparison": "less_than_or_equal",
            "values": [GATE_VALUE],
            "threshold": 0.5,
        },
    }


@pytest.fixture(scope="module")
def local(cdk_out: Path) -> assembly_mod.LocalAssembly:
    return assembly_mod.load("dev", cdk_out=cdk_out)


# The states that write the version's metadata, then Register model.
DESCRIBE = ("Table version?", "Describe table version", "Describe version")


def register(
    local: assembly_mod.LocalAssembly,
    tmp_path: Path,
    states: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
) -> tuple[ExecutionResult, LocalSageMaker]:
    """Run Table version? -> Describe (table) version -> Register model (its Catch and Next left
    out) against a local registry."""
    states = states or local.definition["States"]
    register = {k: v for k, v in states["Register model"].items() if k not in ("Catch", "Next")}
    sagemaker = LocalSageMaker(tmp_path, None, {}, account=local.account)  # type: ignore[arg-type]
    for group in local.model_package_groups:
        sagemaker.ensure_model_package_group(group)
    dispatcher = TaskDispatcher(local, None, sagemaker, tmp_path)  # type: ignore[arg-type]
    definition = {
        "StartAt": DESCRIBE[0],
        "States": {
            **{name: states[name] for name in DESCRIBE},
            "Register model": {**register, "End": True},
        },
    }
    interpreter = Interpreter(definition, dispatcher, sleep=lambda s: None)
    result = interpreter.execute(data or run_input())
    return result, sagemaker


def test_the_request_before_issue_22_is_refused_as_sagemaker_refuses_it(
    local: assembly_mod.LocalAssembly, tmp_path: Path
) -> None:
    states = copy.deepcopy(local.definition["States"])
    metadata = states["Describe version"]["Parameters"]["common"]
    del metadata["training_job.$"]
    metadata["hyperparameters.$"] = "States.JsonToString($.training.HyperParameters)"
    result, _ = register(local, tmp_path, states)
    assert result.status == "FAILED"
    assert result.error == "SageMaker.ValidationException"
    shown = intrinsics.evaluate("States.JsonToString($.h)", {"h": HYPERPARAMETERS}, {})
    assert json.loads(shown) == HYPERPARAMETERS
    assert result.cause == (
        f"1 validation error detected: Value '{shown}' at "
        "'customerMetadataProperties.hyperparameters' failed to satisfy constraint: Member must "
        f"satisfy regular expression pattern: {VALUE_PATTERN} (Service: AmazonSageMaker; "
        "Status Code: 400; Error Code: ValidationException)"
    )


def test_the_register_request_now_passes_and_keeps_the_evidence(
    local: assembly_mod.LocalAssembly, tmp_path: Path
) -> None:
    result, sagemaker = register(local, tmp_path)
    assert result.status == "SUCCEEDED", result.cause
    (package,) = sagemaker.model_packages.values()
    metadata = package["CustomerMetadataProperties"]
    # Read with the regex package straight from botocore's pattern (Java's matches: the whole).
    pattern = regex.compile(VALUE_PATTERN)
    assert all(pattern.fullmatch(v) and 1 <= len(v) <= 256 for v in metadata.values()), metadata
    # The training job is named: DescribeTrainingJob gives its hyperparameters.
    assert metadata["training_job"] == run_input()["training"]["TrainingJobName"]
    # The A/B release reads gate_value with States.StringToJson: a number again.
    assert metadata["gate_metric"]
    assert intrinsics.evaluate("States.StringToJson($.v)", {"v": metadata["gate_value"]}, {}) == (
        GATE_VALUE
    )
    # The gate's comparison too: a table's gate compares the other way round (accuracy >).
    assert metadata["gate_comparison"] == "less_than_or_equal"
    assert metadata["problem_type"] == "binary"
    assert "schema_uri" not in metadata and "class_labels" not in metadata


def iris_run() -> dict[str, Any]:
    """A run on scikit-learn's iris table (species names as the label) at Register model: what
    Read prepared dataset and the multiclass gate wrote."""
    from mlstack_containers.prepare.program import registry_entries
    from sklearn.datasets import load_iris

    data = run_input()
    data["dataset"]["schema_uri"] = "s3://data/datasets/20261207-abc123/schema/schema.json"
    data["dataset"]["registry"] = registry_entries(sorted(load_iris().target_names))
    data["evaluation"]["problem_type"] = "multiclass"
    data["gate"] = {
        "metric": "evaluation:accuracy",
        "comparison": "greater_than",
        "values": [0.96],
        "threshold": 0.33,
    }
    return data


def test_a_table_version_records_its_problem_type_schema_and_class_labels(
    local: assembly_mod.LocalAssembly, tmp_path: Path
) -> None:
    from sklearn.datasets import load_iris

    result, sagemaker = register(local, tmp_path, data=iris_run())
    assert result.status == "SUCCEEDED", result.cause
    (package,) = sagemaker.model_packages.values()
    metadata = package["CustomerMetadataProperties"]
    pattern = regex.compile(VALUE_PATTERN)
    key_pattern = regex.compile(SAGEMAKER.shape_for("CustomerMetadataKey").metadata["pattern"])
    assert all(pattern.fullmatch(v) and 1 <= len(v) <= 256 for v in metadata.values()), metadata
    assert all(key_pattern.fullmatch(k) and 1 <= len(k) <= 128 for k in metadata), metadata
    # CustomerMetadataProperties: at most 50 entries (botocore's CustomerMetadataMap).
    assert len(metadata) <= SAGEMAKER.shape_for("CustomerMetadataMap").metadata["max"]
    assert metadata["problem_type"] == "multiclass"
    assert metadata["schema_uri"] == iris_run()["dataset"]["schema_uri"]
    # schema.json's class order (code point order of the names), scikit-learn's names.
    assert metadata["class_labels"].split("/") == sorted(load_iris().target_names)
    assert metadata["class_count"] == "3"
    assert (metadata["gate_metric"], metadata["gate_comparison"]) == (
        "evaluation:accuracy",
        "greater_than",
    )
    assert intrinsics.evaluate("States.StringToJson($.v)", {"v": metadata["gate_value"]}, {}) == (
        0.96
    )
