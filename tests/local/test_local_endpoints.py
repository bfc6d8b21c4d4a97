"""The local endpoint registry through the interpreter: a hand-written deploy stage of the kind
the workflow grows (DescribeEndpoint -> create or update -> Wait/Describe until InService), then
`local serve --from-run` finds the deployed endpoint; and unsupported resources fail clearly."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from mlstack.local import assembly
from mlstack.local.asl import Interpreter
from mlstack.local.runner import RunReport
from mlstack.local.s3 import EmbeddedS3
from mlstack.local.sagemaker import LocalSageMaker, deployed_endpoints
from mlstack.local.tasks import TaskDispatcher
from mlstack.local.ui import Reporter

SM = "arn:aws:states:::sagemaker:"
SDK = "arn:aws:states:::aws-sdk:sagemaker:"


def deploy_definition(image: str, model_data: str) -> dict[str, Any]:
    wait_loop = {
        "Wait": {"Type": "Wait", "Seconds": 30, "Next": "Describe"},
        "Describe": {
            "Type": "Task",
            "Resource": SDK + "describeEndpoint",
            "Parameters": {"EndpointName.$": "$.endpoint"},
            "ResultSelector": {"status.$": "$.EndpointStatus"},
            "ResultPath": "$.described",
            "Next": "InService?",
        },
        "InService?": {
            "Type": "Choice",
            "Default": "Wait",
            "Choices": [
                {"Variable": "$.described.status", "StringEquals": "InService", "Next": "Done"},
                {"Variable": "$.described.status", "StringEquals": "Failed", "Next": "Broken"},
            ],
        },
        "Done": {"Type": "Succeed"},
        "Broken": {"Type": "Fail", "Error": "EndpointFailed"},
    }
    return {
        "StartAt": "Save model",
        "States": {
            "Save model": {
                "Type": "Task",
                "Resource": SM + "createModel",
                "Next": "Config",
                "Parameters": {
                    "ModelName.$": "States.Format('m-{}', $.n)",
                    "PrimaryContainer": {"Image": image, "ModelDataUrl": model_data},
                },
                "ResultPath": None,
            },
            "Config": {
                "Type": "Task",
                "Resource": SM + "createEndpointConfig",
                "Next": "Exists?",
                "Parameters": {
                    "EndpointConfigName.$": "States.Format('c-{}', $.n)",
                    "ProductionVariants": [
                        {
                            "VariantName": "AllTraffic",
                            "InitialInstanceCount": 1,
                            "InstanceType": "ml.t2.medium",
                            "ModelName.$": "States.Format('m-{}', $.n)",
                        }
                    ],
                },
                "ResultPath": None,
            },
            "Exists?": {
                "Type": "Task",
                "Resource": SDK + "describeEndpoint",
                "Parameters": {"EndpointName.$": "$.endpoint"},
                "ResultPath": None,
                "Next": "Update",
                "Catch": [
                    {
                        "ErrorEquals": ["SageMaker.ValidationException"],
                        "ResultPath": None,
                        "Next": "Create",
                    }
                ],
            },
            "Create": {
                "Type": "Task",
                "Resource": SM + "createEndpoint",
                "Next": "Wait",
                "Parameters": {
                    "EndpointName.$": "$.endpoint",
                    "EndpointConfigName.$": "States.Format('c-{}', $.n)",
                },
                "ResultPath": None,
            },
            "Update": {
                "Type": "Task",
                "Resource": SM + "updateEndpoint",
                "Next": "Wait",
                "Parameters": {
                    "EndpointName.$": "$.endpoint",
                    "EndpointConfigName.$": "States.Format('c-{}', $.n)",
                },
                "ResultPath": None,
            },
            **wait_loop,
        },
    }


def test_deploy_stage_creates_then_updates_a_local_endpoint(
    local_run: RunReport, cdk_out: Path, tmp_path: Path
) -> None:
    resolved = assembly.read(cdk_out / "assembly-dev", "dev")
    image = next(uri for uri, i in resolved.images.items() if "inference" in i.dockerfile)
    archive = local_run.run_dir / "s3" / local_run.output["model_artifact_uri"][len("s3://") :]
    with EmbeddedS3() as s3:
        s3.create_bucket("models")
        s3.write("s3://models/model.tar.gz", archive.read_bytes())
        sagemaker = LocalSageMaker(tmp_path, s3, resolved.images)
        dispatcher = TaskDispatcher(resolved, s3, sagemaker, tmp_path)
        interpreter = Interpreter(
            deploy_definition(image, "s3://models/model.tar.gz"),
            dispatcher,
            listener=Reporter(out=io.StringIO()),
            time_scale=0.005,
        )
        try:
            first = interpreter.execute({"n": 1, "endpoint": "mlstack-dev"})
            assert first.status == "SUCCEEDED", first.cause
            assert first.states[:5] == ["Save model", "Config", "Exists?", "Create", "Wait"]
            assert first.states[-2:] == ["InService?", "Done"]
            endpoint = sagemaker.endpoints["mlstack-dev"]
            assert endpoint.server is not None
            assert (
                endpoint.server.request(
                    "POST", "/invocations", b"5,90", {"Content-Type": "text/csv"}
                )[0]
                == 200
            )
            second = interpreter.execute({"n": 2, "endpoint": "mlstack-dev"})
            assert second.status == "SUCCEEDED", second.cause
            assert "Update" in second.states and "Create" not in second.states
            assert sagemaker.endpoints["mlstack-dev"].config_name == "c-2"
        finally:
            sagemaker.stop()
    deployed = deployed_endpoints(tmp_path)
    assert list(deployed) == ["mlstack-dev"]
    assert (Path(deployed["mlstack-dev"]["model_dir"]) / "xgboost-model").is_file()


def test_a_bad_tuning_request_and_unknown_resources_fail_with_a_clear_error(
    cdk_out: Path, tmp_path: Path
) -> None:
    resolved = assembly.read(cdk_out / "assembly-dev", "dev")
    states = {
        "Tune": {
            "Type": "Task",
            "Resource": SM + "createHyperParameterTuningJob.sync",
            "Parameters": {},
            "End": True,
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Queue"}],
        },
        "Queue": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage", "End": True},
    }
    with EmbeddedS3() as s3:
        dispatcher = TaskDispatcher(resolved, s3, LocalSageMaker(tmp_path, s3, {}), tmp_path)
        result = Interpreter({"StartAt": "Tune", "States": states}, dispatcher).execute({})
    # Tuning runs locally (test_local_tuning.py); a request SageMaker refuses is its refusal.
    assert result.history[0].error == "SageMaker.AmazonSageMakerException"
    assert "hyperParameterTuningJobName" in str(result.history[0].cause)
    assert result.error == "Local.UnsupportedResource"
    assert "state 'Queue'" in str(result.cause) and "sqs:sendMessage" in str(result.cause)


@pytest.mark.parametrize("bad", ["", "UPPER-ok-but-way-too-long-" + "x" * 60, "under_score"])
def test_sagemaker_names_are_checked(bad: str, tmp_path: Path) -> None:
    from mlstack.local.sagemaker import SageMakerError

    with EmbeddedS3() as s3, pytest.raises(SageMakerError, match="regular expression"):
        LocalSageMaker(tmp_path, s3, {}).create_model({"ModelName": bad})
