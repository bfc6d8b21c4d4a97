"""`mlstack report --env ENV --execution NAME` against moto (CloudFormation's outputs, S3, the
training job's description) and a Step Functions client stubbed with botocore's ``Stubber``,
which refuses answers that do not match the service model's DescribeExecution and
GetExecutionHistory output shapes (moto keeps no history of the states' events)."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID

from mlstack.cli import main
from mlstack.cli import report as report_cli
from tests.cli.test_cli_deployed import deploy_stack
from tests.report.test_report_timeline import T0, _history

BUCKET = "dev-data-bucket"
RUN_ID = "b59f25e007811aca924d9665207d7e61"
MACHINE = f"arn:aws:states:us-east-1:{DEFAULT_ACCOUNT_ID}:stateMachine:mlstack-dev"
EXECUTION = f"arn:aws:states:us-east-1:{DEFAULT_ACCOUNT_ID}:execution:mlstack-dev:run-7"
JOB = "mlstack-dev-t0-0"
PREFIX = f"arn:aws:sagemaker:us-east-1:{DEFAULT_ACCOUNT_ID}"
PARTS = {
    "version": 1,
    "problem_type": "binary",
    "rows": 4,
    "roc": {"false_positive_rate": [0, 0, 1], "true_positive_rate": [0, 1, 1], "thresholds": []},
    "precision_recall": {"precision": [0.5, 1, 1], "recall": [1, 1, 0], "thresholds": []},
    "confusion_matrix": {"0": {"0": 2, "1": 0}, "1": {"0": 0, "1": 2}},
    "importance": {"gain": {"x": 3.0, "y": 1.0}},
    "data": {"test_rows": 4, "class_balance": {"0": 2, "1": 2}},
}


def _output() -> dict[str, Any]:
    return {
        "run_id": RUN_ID,
        "training_job_name": JOB,
        "evaluation": {
            "report_uri": f"s3://{BUCKET}/evaluations/{RUN_ID}/evaluation.json",
            "problem_type": "binary",
            "metrics": {"auc": 1.0},
        },
        "model_package": {"version": 3, "approval_status": "Approved"},
    }


def _tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def deployed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    with mock_aws():
        deploy_stack("dev-Workflow", {"StateMachineArn": MACHINE})
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(
            Bucket=BUCKET,
            Key=f"evaluations/{RUN_ID}/report_parts.json",
            Body=json.dumps(PARTS).encode(),
        )
        sagemaker = boto3.client("sagemaker")
        sagemaker.create_training_job(
            TrainingJobName=JOB,
            AlgorithmSpecification={"TrainingImage": "img:1", "TrainingInputMode": "File"},
            RoleArn=f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/sm",
            OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/models"},
            ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
            StoppingCondition={"MaxRuntimeInSeconds": 60},
        )
        artifacts = sagemaker.describe_training_job(TrainingJobName=JOB)["ModelArtifacts"]
        output_key = artifacts["S3ModelArtifacts"].split("/", 3)[3].rsplit("/", 1)[0]
        metrics = {"host": "algo-1", "first_round": 0, "metrics": {"train": {"rmse": [0.3, 0.2]}}}
        s3.put_object(
            Bucket=BUCKET,
            Key=f"{output_key}/output.tar.gz",
            Body=_tar({"metrics-algo-1.json": json.dumps(metrics).encode()}),
        )
        sfn = boto3.client("stepfunctions")
        stub = Stubber(sfn)
        real = report_cli._client
        monkeypatch.setattr(
            report_cli,
            "_client",
            lambda service, region: sfn if service == "stepfunctions" else real(service, region),
        )
        with stub:
            yield stub


def _describe(stub: Stubber, status: str, output: dict[str, Any] | None) -> None:
    answer: dict[str, Any] = {
        "executionArn": EXECUTION,
        "stateMachineArn": MACHINE,
        "name": "run-7",
        "status": status,
        "startDate": T0,
        "input": "{}",
    }
    if output is not None:
        answer["output"] = json.dumps(output)
    stub.add_response("describe_execution", answer, {"executionArn": EXECUTION})


def test_report_is_written_beside_the_evaluation_report_with_every_part(
    deployed: Stubber, capsys: pytest.CaptureFixture[str]
) -> None:
    _describe(deployed, "SUCCEEDED", _output())
    deployed.add_response(
        "get_execution_history", {"events": _history()}, {"executionArn": EXECUTION}
    )
    assert main(["report", "--env", "dev", "--execution", "run-7", "--no-open"]) == 0
    out = capsys.readouterr().out
    uri = f"s3://{BUCKET}/evaluations/{RUN_ID}/report.html"
    assert f"report written to {uri}" in out
    assert "X-Amz-" in out or "Signature=" in out  # the presigned URL to open
    html = boto3.client("s3").get_object(Bucket=BUCKET, Key=f"evaluations/{RUN_ID}/report.html")
    assert html["ContentType"] == "text/html"
    text = html["Body"].read().decode()
    for chart in ("timeline", "training-rmse", "roc", "precision-recall", "importance"):
        assert f'data-chart="{chart}"' in text, chart
    assert "Generate dataset [1] / Seed shard" in text  # the history's Map iteration
    assert "3 (Approved)" in text  # the registered version
    deployed.assert_no_pending_responses()


def test_report_names_an_execution_that_does_not_exist(
    deployed: Stubber, capsys: pytest.CaptureFixture[str]
) -> None:
    deployed.add_client_error(
        "describe_execution", service_error_code="ExecutionDoesNotExist", http_status_code=400
    )
    assert main(["report", "--env", "dev", "--execution", "run-7", "--no-open"]) == 1
    assert "no execution 'run-7' of" in capsys.readouterr().err


def test_report_of_a_run_without_evaluation_says_why_there_is_none(
    deployed: Stubber, capsys: pytest.CaptureFixture[str]
) -> None:
    _describe(deployed, "FAILED", None)
    deployed.add_response(
        "get_execution_history", {"events": _history()}, {"executionArn": EXECUTION}
    )
    assert main(["report", "--env", "dev", "--execution", "run-7", "--no-open"]) == 1
    err = capsys.readouterr().err
    assert "is FAILED and ran no evaluation job" in err


def _succeeded(event_id: int, resource: str, result: dict[str, Any]) -> dict[str, Any]:
    return {
        "timestamp": T0,
        "type": "TaskSucceeded",
        "id": event_id,
        "previousEventId": event_id - 1,
        "taskSucceededEventDetails": {
            "resourceType": "sagemaker",
            "resource": resource,
            "output": json.dumps(result),
        },
    }


def test_a_failed_runs_report_finds_its_evaluation_and_training_job_in_the_history(
    deployed: Stubber, capsys: pytest.CaptureFixture[str]
) -> None:
    # What the .sync tasks return: DescribeTrainingJob's and DescribeProcessingJob's answers
    evaluation = {
        "ProcessingJobName": "mlstack-dev-e0-0",
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "evaluation",
                    "S3Output": {
                        "S3Uri": f"s3://{BUCKET}/evaluations/{RUN_ID}/",
                        "LocalPath": "/opt/ml/processing/output/evaluation",
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ]
        },
    }
    events = _history()
    failed = events[-2:]  # Evaluate model's TaskFailed, ExecutionFailed
    events = [
        *events[:-2],
        _succeeded(21, "createTrainingJob.sync", {"TrainingJobName": JOB}),
        _succeeded(22, "createProcessingJob.sync", evaluation),
    ]
    for i, event in enumerate(failed, start=23):
        events.append({**event, "id": i, "previousEventId": i - 1})
    _describe(deployed, "FAILED", None)
    deployed.add_response("get_execution_history", {"events": events}, {"executionArn": EXECUTION})
    assert main(["report", "--env", "dev", "--execution", "run-7", "--no-open"]) == 0
    body = boto3.client("s3").get_object(Bucket=BUCKET, Key=f"evaluations/{RUN_ID}/report.html")
    text = body["Body"].read().decode()
    for chart in ("timeline", "training-rmse", "roc", "confusion-matrix"):
        assert f'data-chart="{chart}"' in text, chart
    assert "status-FAILED" in text


def test_a_tuned_runs_report_has_each_training_jobs_objective_value_best_marked() -> None:
    tuning = {
        "HyperParameterTuningJobName": "mlstack-dev-h0-0",
        "HyperParameterTuningJobConfig": {
            "HyperParameterTuningJobObjective": {
                "Type": "Minimize",
                "MetricName": "validation:rmse",
            }
        },
        "BestTrainingJob": {"TrainingJobName": "mlstack-dev-h0-0-002-bbbbbbbb"},
    }
    events = [_succeeded(5, "createHyperParameterTuningJob.sync", tuning)]
    sagemaker = boto3.client(
        "sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )

    def summary(name: str, value: float) -> dict[str, Any]:
        return {
            "TrainingJobName": name,
            "TrainingJobArn": f"{PREFIX}:training-job/{name}",
            "CreationTime": T0,
            "TrainingJobStatus": "Completed",
            "TunedHyperParameters": {"eta": "0.1"},
            "FinalHyperParameterTuningJobObjectiveMetric": {
                "Type": "Minimize",
                "MetricName": "validation:rmse",
                "Value": value,
            },
        }

    with Stubber(sagemaker) as stub:  # refuses a request or answer outside botocore's shapes
        stub.add_response(
            "list_training_jobs_for_hyper_parameter_tuning_job",
            {
                "TrainingJobSummaries": [
                    summary("mlstack-dev-h0-0-001-aaaaaaaa", 0.3),
                    summary("mlstack-dev-h0-0-002-bbbbbbbb", 0.1),
                ]
            },
            {
                "HyperParameterTuningJobName": "mlstack-dev-h0-0",
                "SortBy": "CreationTime",
                "SortOrder": "Ascending",
            },
        )
        inputs = report_cli.tuning_inputs(sagemaker, events)
    assert inputs == {
        "tuning_objective": "validation:rmse",
        "tuning": [
            {"name": "mlstack-dev-h0-0-001-aaaaaaaa", "value": 0.3, "best": False},
            {"name": "mlstack-dev-h0-0-002-bbbbbbbb", "value": 0.1, "best": True},
        ],
    }
    assert report_cli.tuning_inputs(sagemaker, []) == {}  # no tuning: nothing asked
