"""The evaluation states: Evaluate model (a Processing job of the training image's `evaluate`),
Read evaluation, the execution output's `evaluation`, the grants they need, and a quality gate on
an evaluation metric (config `deploy.metric` = `evaluation:<name>`)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Template

from mlstack.config import ConfigError, parse_environment
from mlstack.constructs import (
    DataBucket,
    DatasetSeeder,
    DeployStage,
    ModelImages,
    TrainingWorkflow,
)
from mlstack.rules import EVALUATION_METRICS
from tests.infra.conftest import REPO, SynthesizedApp, new_stack, state_machine_definition


@pytest.fixture(scope="module")
def dev(synthesized: SynthesizedApp) -> dict[str, Any]:
    return state_machine_definition(synthesized.json("dev", "workflow"))


@pytest.fixture(scope="module")
def evaluate(dev: dict[str, Any]) -> dict[str, Any]:
    return dev["States"]["Evaluate model"]  # type: ignore[no-any-return]


def test_evaluate_model_is_a_processing_job_of_the_training_images_evaluate(
    dev: dict[str, Any], evaluate: dict[str, Any]
) -> None:
    assert evaluate["Resource"] == "arn:aws:states:::sagemaker:createProcessingJob.sync"
    params = evaluate["Parameters"]
    app = params["AppSpecification"]
    assert app["ContainerEntrypoint"] == ["evaluate"]
    training_image = dev["States"]["Train model"]["Parameters"]["AlgorithmSpecification"]
    assert app["ImageUri"] == training_image["TrainingImage"]
    assert params["RoleArn"] == dev["States"]["Train model"]["Parameters"]["RoleArn"]
    assert params["ProcessingJobName.$"] == (
        "States.Format('mlstack-dev-{}-e{}-{}', $.run_id, $$.Execution.RedriveCount, "
        "$$.State.RetryCount)"
    )


def test_inputs_are_the_transform_output_the_test_labels_and_the_model(
    evaluate: dict[str, Any],
) -> None:
    inputs = {i["InputName"]: i["S3Input"] for i in evaluate["Parameters"]["ProcessingInputs"]}
    assert {name: i["S3Uri.$"] for name, i in inputs.items()} == {
        "predictions": "$.transform.TransformOutput.S3OutputPath",
        "labels": "$.dataset.test_labels_prefix",
        "model": "$.training.ModelArtifacts.S3ModelArtifacts",
    }
    for name, source in inputs.items():
        assert source["LocalPath"] == f"/opt/ml/processing/input/{name}"
        assert (source["S3DataType"], source["S3InputMode"]) == ("S3Prefix", "File")


def test_assemble_dataset_names_the_test_labels(dev: dict[str, Any]) -> None:
    # Where lambda/seed writes them: <datasets>/<run_id>/test-labels/ (tests/seed pins the seeder).
    parameters = dev["States"]["Assemble dataset"]["Parameters"]
    uri = parameters["test_labels_prefix.$"]
    assert uri.startswith("States.Format('s3://") and uri.endswith(
        "/datasets/{}/test-labels/', $.run_id)"
    )
    assert uri.replace("test-labels", "test") == parameters["test_prefix.$"]


def test_report_goes_to_evaluations_run_id_encrypted(evaluate: dict[str, Any]) -> None:
    config = evaluate["Parameters"]["ProcessingOutputConfig"]
    (output,) = config["Outputs"]
    assert output["S3Output"]["LocalPath"] == "/opt/ml/processing/output/evaluation"
    uri = output["S3Output"]["S3Uri.$"]
    assert uri.startswith("States.Format('s3://") and "/evaluations/{}/'" in uri
    assert uri.endswith("$.run_id)")
    assert config["KmsKeyId"].startswith("arn:aws:kms:")


def test_one_instance_with_an_encrypted_volume_and_no_network(evaluate: dict[str, Any]) -> None:
    params = evaluate["Parameters"]
    cluster = params["ProcessingResources"]["ClusterConfig"]
    # One instance: SageMaker concatenates the ExitMessage of every instance.
    assert cluster["InstanceCount"] == 1
    assert cluster["InstanceType"] == "ml.m5.large"
    assert cluster["VolumeKmsKeyId"].startswith("arn:aws:kms:")
    assert params["NetworkConfig"] == {"EnableNetworkIsolation": True}
    assert params["StoppingCondition"]["MaxRuntimeInSeconds"] == 3600


def test_the_summary_is_read_from_the_exit_message_into_evaluation(
    dev: dict[str, Any], evaluate: dict[str, Any]
) -> None:
    assert evaluate["ResultSelector"]["summary.$"] == "States.StringToJson($.ExitMessage)"
    assert evaluate["ResultPath"] == "$.evaluation_job"
    read = dev["States"]["Read evaluation"]
    assert read["Type"] == "Pass" and read["ResultPath"] == "$.evaluation"
    params = read["Parameters"]
    assert set(params) == {"report_uri.$", "problem_type.$", "metrics.$"}
    assert params["metrics.$"] == "$.evaluation_job.summary.metrics"
    assert "/evaluations/{}/evaluation.json'" in params["report_uri.$"]
    assert dev["States"]["Report results"]["Parameters"]["evaluation.$"] == "$.evaluation"


def test_a_failed_evaluation_is_notified(dev: dict[str, Any], evaluate: dict[str, Any]) -> None:
    (catch,) = evaluate["Catch"]
    assert catch["ErrorEquals"] == ["States.ALL"] and catch["Next"] == "Notify failure"


def test_instance_types_with_local_storage_take_no_volume_key() -> None:
    workflow = _workflow(evaluation_instance_type="ml.m5d.large")
    cluster = _definition(workflow)["States"]["Evaluate model"]["Parameters"][
        "ProcessingResources"
    ]["ClusterConfig"]
    assert cluster["InstanceType"] == "ml.m5d.large" and "VolumeKmsKeyId" not in cluster


# --- IAM ---------------------------------------------------------------------------------------


def statements(template: dict[str, Any], role_prefix: str) -> list[dict[str, Any]]:
    found = []
    for lid, resource in template["Resources"].items():
        if resource["Type"] == "AWS::IAM::Policy" and lid.startswith(role_prefix):
            found += resource["Properties"]["PolicyDocument"]["Statement"]
    return found


def test_execution_role_writes_processing_job_logs(synthesized: SynthesizedApp) -> None:
    template = synthesized.json("dev", "workflow")
    found: dict[str, str] = {}
    for statement in statements(template, ""):
        if "Sid" in statement:
            found[statement["Sid"]] = found.get(statement["Sid"], "") + json.dumps(statement)
    assert "/aws/sagemaker/ProcessingJobs:log-stream:mlstack-dev-*" in found["WriteOwnLogs"]
    assert "/aws/sagemaker/ProcessingJobs" in found["CreateOwnLogGroups"]


# --- a quality gate on an evaluation metric ------------------------------------------------------


def _workflow(**props: Any) -> TrainingWorkflow:
    stack = new_stack()
    data = DataBucket(stack, "Data")
    images = ModelImages(stack, "Images")
    seeder = DatasetSeeder(stack, "Seeder", bucket=data.bucket)
    return TrainingWorkflow(
        stack,
        "Workflow",
        bucket=data.bucket,
        images=images,
        seed_function=seeder.function,
        name_prefix="demo",
        **props,
    )


def _definition(workflow: TrainingWorkflow) -> dict[str, Any]:
    from aws_cdk import Stack

    return state_machine_definition(Template.from_stack(Stack.of(workflow)).to_json())


@pytest.fixture(scope="module")
def auc_gate() -> dict[str, Any]:
    deploy = DeployStage(metric="evaluation:auc", threshold=0.9, comparison="greater_than_or_equal")
    return _definition(_workflow(deploy=deploy))


def test_gate_on_an_evaluation_metric_reads_the_evaluation(auc_gate: dict[str, Any]) -> None:
    states = auc_gate["States"]
    assert states["Read evaluation"]["Next"] == "Table run?"
    assert states["Table run?"]["Default"] == "Read validation metric"
    assert states["Read validation metric"]["Parameters"] == {
        "metric": "evaluation:auc",
        "comparison": "greater_than_or_equal",
        "threshold.$": "$.args.quality_threshold",
    }
    choices = states["Quality gate"]["Choices"]
    # Absent (undefined on the data, or not a metric of this problem type) or not a number:
    # rejected; else compared with the threshold.
    assert choices[0] == {
        "Not": {"Variable": "$.evaluation.metrics.auc", "IsPresent": True},
        "Next": "Reject model",
    }
    assert choices[1] == {
        "Not": {"Variable": "$.evaluation.metrics.auc", "IsNumeric": True},
        "Next": "Reject model",
    }
    assert {
        "Variable": "$.evaluation.metrics.auc",
        "NumericGreaterThanEqualsPath": "$.gate.threshold",
        "Next": "Gate passed",
    } in choices
    # Gate passed: the value into $.gate.values, where a table's gate writes it too.
    assert states["Gate passed"]["Parameters"] == {
        "metric": "evaluation:auc",
        "comparison": "greater_than_or_equal",
        "values.$": "States.Array($.evaluation.metrics.auc)",
        "threshold.$": "$.gate.threshold",
    }
    assert states["Gate passed"]["Next"] == "Describe endpoint"
    cause = states["Reject model"]["Parameters"]["Cause.$"]
    assert "States.JsonToString($.evaluation.metrics)" in cause
    assert "requires evaluation:auc >= {}" in cause
    gate = states["Report results"]["Parameters"]["quality_gate"]
    assert gate["value.$"] == "$.gate.values[0]"


def test_a_training_metric_gate_is_unchanged(dev: dict[str, Any]) -> None:
    choices = dev["States"]["Quality gate"]["Choices"]
    assert choices[0]["Not"] == {"Variable": "$.gate.values[0]", "IsPresent": True}
    assert not any("IsNumeric" in c.get("Not", {}) and "values" in str(c) for c in choices)


def test_an_unknown_evaluation_metric_fails_synth_naming_the_prop() -> None:
    with pytest.raises(ValueError, match=r"deploy.metric='evaluation:kappa': expected one of"):
        _workflow(deploy=DeployStage(metric="evaluation:kappa", threshold=0.5))


# XGBoost's "Learning Task Parameters": an objective of each problem type.
OBJECTIVES = {
    "binary": "binary:logistic",
    "multiclass": "multi:softprob",
    "regression": "reg:squarederror",
}


@pytest.mark.parametrize(
    ("kind", "name"),
    sorted((kind, name) for kind, names in EVALUATION_METRICS.items() for name in names),
)
def test_config_accepts_every_evaluation_metric_of_its_problem_type(kind: str, name: str) -> None:
    data = json.loads((REPO / "environments" / "dev.json").read_text())
    data["training"]["hyperparameters"]["objective"] = OBJECTIVES[kind]
    data["deploy"]["metric"] = f"evaluation:{name}"
    assert parse_environment("dev", data).deploy.metric == f"evaluation:{name}"  # type: ignore[union-attr]


def test_config_refuses_an_unknown_evaluation_metric_naming_the_key() -> None:
    data = json.loads((REPO / "environments" / "dev.json").read_text())
    data["deploy"]["metric"] = "evaluation:kappa"
    with pytest.raises(ConfigError) as error:
        parse_environment("dev", data)
    message = str(error.value)
    assert "key 'deploy.metric' is \"evaluation:kappa\" (string)" in message
    assert "'evaluation:auc'" in message
