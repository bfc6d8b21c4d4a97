"""The data-quality baseline in the training workflow: prod (data capture on) runs Baseline data
after Batch transform; dev (no capture) does not."""

from __future__ import annotations

from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator

from mlstack.constructs import DataQualityBaseline
from mlstack.constructs.layout import BucketLayout
from tests.infra.conftest import SynthesizedApp, state_machine_definition


@pytest.fixture(scope="module")
def definitions(synthesized: SynthesizedApp) -> dict[str, dict[str, Any]]:
    return {
        env: state_machine_definition(synthesized.json(env, "workflow")) for env in ("dev", "prod")
    }


@pytest.fixture(scope="module")
def state(definitions: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return definitions["prod"]["States"]["Baseline data"]  # type: ignore[no-any-return]


def as_request(parameters: Any) -> Any:
    """Parameters with each JSONPath/intrinsic ("X.$") replaced by a value of the field's kind."""
    if isinstance(parameters, list):
        return [as_request(p) for p in parameters]
    if not isinstance(parameters, dict):
        return parameters
    request = {}
    for key, value in parameters.items():
        if key.endswith(".$"):
            request[key[:-2]] = "s3://bucket/datasets/r/train/" if "Uri" in key else "name-1"
        else:
            request[key] = as_request(value)
    return request


def test_baseline_runs_after_the_evaluation_only_with_data_capture(definitions):
    prod, dev = definitions["prod"]["States"], definitions["dev"]["States"]
    assert "Baseline data" not in dev
    assert dev["Read evaluation"]["Next"] == "Table run?"
    # Placed right after Read evaluation; what came next (the deploy stage) follows it.
    assert prod["Batch transform"]["Next"] == "Evaluate model"
    assert prod["Read evaluation"]["Next"] == "Baseline data"
    assert prod["Baseline data"]["Next"] == "Table run?"


def test_baseline_is_a_sync_processing_job_of_the_training_image(state, definitions):
    assert state["Resource"] == "arn:aws:states:::sagemaker:createProcessingJob.sync"
    app = state["Parameters"]["AppSpecification"]
    training = definitions["prod"]["States"]["Train model"]["Parameters"]
    assert app["ImageUri"] == training["AlgorithmSpecification"]["TrainingImage"]
    assert app["ContainerEntrypoint"] == ["baseline"]
    assert app["ContainerArguments"] == [
        "--input",
        "train",
        "--output",
        "run",
        "--output",
        "latest",
        "--comparison-threshold",
        "0.1",
        # prod captures the endpoint's output too: Model Monitor puts the prediction first.
        "--label",
        "first",
        # The model's schema.json names the features (a table run's; none on the seeder's).
        "--model",
        "model",
    ]


def test_baseline_reads_the_train_channel_and_writes_the_runs_and_the_latest_prefix(state):
    parameters = state["Parameters"]
    train, model = parameters["ProcessingInputs"]
    assert train["S3Input"]["S3Uri.$"] == "$.dataset.train_prefix"
    assert train["S3Input"]["LocalPath"] == "/opt/ml/processing/input/train"
    # The model Save model registers (Evaluate model reads the same artifact).
    assert model["S3Input"]["S3Uri.$"] == "$.training.ModelArtifacts.S3ModelArtifacts"
    assert model["S3Input"]["LocalPath"] == "/opt/ml/processing/input/model"
    outputs = {
        o["OutputName"]: o["S3Output"] for o in parameters["ProcessingOutputConfig"]["Outputs"]
    }
    assert outputs["run"]["LocalPath"] == "/opt/ml/processing/output/run"
    assert outputs["run"]["S3Uri.$"] == (
        "States.Format('s3://imported-bucket-name/baselines/{}/', $.run_id)"
    )
    assert outputs["latest"]["S3Uri"] == "s3://imported-bucket-name/baselines/latest/"
    assert parameters["ProcessingOutputConfig"]["KmsKeyId"].startswith("arn:aws:kms:")


def test_baseline_job_is_encrypted_isolated_and_in_the_network(state):
    parameters = state["Parameters"]
    cluster = parameters["ProcessingResources"]["ClusterConfig"]
    assert cluster["VolumeKmsKeyId"].startswith("arn:aws:kms:")
    network = parameters["NetworkConfig"]
    assert network["EnableNetworkIsolation"] is True
    assert network["VpcConfig"]["Subnets"] and network["VpcConfig"]["SecurityGroupIds"]
    assert parameters["ProcessingJobName.$"].startswith("States.Format('mlstack-prod-{}-d{}-{}'")


def test_baseline_request_is_valid_for_the_sagemaker_api(state):
    """botocore's model of CreateProcessingJob (the real client's) accepts the request."""
    model = botocore.session.get_session().get_service_model("sagemaker")
    shape = model.operation_model("CreateProcessingJob").input_shape
    report = ParamValidator().validate(as_request(state["Parameters"]), shape)
    assert not report.has_errors(), report.generate_report()


def test_baseline_failure_is_caught_and_transient_errors_retried(state):
    assert state["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Notify failure"}
    ]
    assert state["Retry"][0]["ErrorEquals"] == ["SageMaker.AmazonSageMakerException"]


def test_report_results_carries_the_baseline_prefix(definitions):
    report = definitions["prod"]["States"]["Report results"]["Parameters"]
    assert report["baseline_uri.$"].endswith("/baselines/{}/', $.run_id)")
    assert "baseline_uri.$" not in definitions["dev"]["States"]["Report results"]["Parameters"]


def test_state_machine_role_may_run_processing_jobs_of_its_prefix_only(synthesized):
    template = synthesized.template("prod", "workflow")
    policies = template.find_resources("AWS::IAM::Policy")
    statements = [
        s for p in policies.values() for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    (run,) = [s for s in statements if s.get("Sid") == "RunProcessingJobs"]
    (status,) = [s for s in statements if s.get("Sid") == "RunProcessingJobsStatus"]
    # Create under the SageMaker condition keys (tests/iam), describe and stop without them.
    assert run["Action"] == "sagemaker:CreateProcessingJob"
    assert status["Action"] == ["sagemaker:DescribeProcessingJob", "sagemaker:StopProcessingJob"]
    assert "processing-job/mlstack-prod-*" in str(run["Resource"])
    assert status["Resource"] == run["Resource"]
    # Without data capture the role still runs processing jobs: the evaluation's (Evaluate model).
    dev = synthesized.template("dev", "workflow").find_resources("AWS::IAM::Policy")
    assert "processing-job/mlstack-dev-*" in str(dev) and "mlstack-prod" not in str(dev)


def test_layout_has_the_baselines_prefix():
    assert BucketLayout().baselines == "baselines/"


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({"instance_type": "m5.large"}, "DataQualityBaseline instance_type='m5.large'"),
        ({"drift_threshold": 0}, "DataQualityBaseline drift_threshold=0"),
        ({"volume_size_gb": 0}, "DataQualityBaseline volume_size_gb=0"),
    ],
)
def test_bad_baseline_props_name_the_prop(props, message):
    with pytest.raises(ValueError, match=message):
        DataQualityBaseline(**props)
