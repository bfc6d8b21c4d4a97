"""`mlstack run` and `mlstack invoke` against moto: stack outputs, an execution followed to its
end, the endpoint call, and the messages for missing credentials and undeployed stacks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID

from mlstack.cli import main

ROLE = f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/sfn"


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield


def deploy_stack(name: str, outputs: dict[str, str]) -> None:
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {k: {"Value": v} for k, v in outputs.items()},
    }
    boto3.client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(template))


def state_machine(definition: dict[str, Any]) -> str:
    arn: str = boto3.client("stepfunctions").create_state_machine(
        name="wf", definition=json.dumps(definition), roleArn=ROLE
    )["stateMachineArn"]
    deploy_stack("dev-Workflow", {"StateMachineArn": arn})
    return arn


@pytest.mark.usefixtures("aws")
def test_run_follows_the_execution_and_prints_its_output(
    capsys: pytest.CaptureFixture[str],
) -> None:
    state_machine(
        {
            "StartAt": "A",
            "States": {
                "A": {"Type": "Pass", "Parameters": {"rows.$": "$.rows", "ok": True}, "Next": "B"},
                "B": {"Type": "Pass", "End": True},
            },
        }
    )
    code = main(
        [
            "run",
            "--env",
            "dev",
            "--input",
            '{"rows": 7}',
            "--poll",
            "0.05",
            "--plain",
            "--name",
            "exec-1",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "▶ A" in out and "✓ B" in out
    assert "Execution exec-1: SUCCEEDED" in out
    assert json.loads(out[out.index("{") :]) == {"rows": 7, "ok": True}


@pytest.mark.usefixtures("aws")
def test_run_prints_the_failure_cause_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    state_machine(
        {
            "StartAt": "F",
            "States": {
                "F": {"Type": "Fail", "Error": "Training.Failed", "Cause": "max_depth is -1"}
            },
        }
    )
    code = main(["run", "--env", "dev", "--poll", "0.05", "--plain"])
    err = capsys.readouterr().err
    assert code == 1
    assert "FAILED: Training.Failed: max_depth is -1" in err


@pytest.mark.usefixtures("aws")
def test_run_names_a_stack_that_is_not_deployed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--env", "prod", "--plain"]) == 1
    err = capsys.readouterr().err
    assert "stack prod-Workflow is not deployed in us-east-1" in err
    assert "cdk deploy 'prod/*'" in err


def test_run_without_credentials_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # were a call made: refused
    for command in (["run", "--env", "dev"], ["invoke", "--env", "dev", "--file", "x.csv"]):
        assert main(command) == 1
        err = capsys.readouterr().err
        assert "no AWS credentials found" in err and "mlstack local run" in err


@pytest.mark.usefixtures("aws")
def test_invoke_sends_the_file_to_the_stacks_endpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    deploy_stack("dev-Serving", {"EndpointName": "mlstack-dev"})
    data = tmp_path / "data.csv"
    data.write_bytes(b"5,90\n60,10\n")
    sent: list[Any] = []
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # restored after the test
    boto3.setup_default_session()  # the command's clients come from the default session
    boto3.DEFAULT_SESSION.events.register(  # type: ignore[union-attr]
        "request-created.sagemaker-runtime.InvokeEndpoint",
        lambda request, **kw: sent.append(request),
    )
    code = main(["invoke", "--env", "dev", "--file", str(data), "--accept", "application/json"])
    assert code == 0
    assert capsys.readouterr().out == "body\n"  # moto's canned answer
    (request,) = sent
    assert request.url.endswith("/endpoints/mlstack-dev/invocations")
    assert request.headers["Content-Type"] == "text/csv"
    assert request.headers["Accept"] == "application/json"
    assert request.body == b"5,90\n60,10\n"


@pytest.mark.usefixtures("aws")
def test_invoke_json_sends_a_raw_record_to_the_stacks_endpoint_through_boto3(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    deploy_stack("dev-Serving", {"EndpointName": "mlstack-dev"})
    sent: list[Any] = []
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # restored after the test
    boto3.setup_default_session()
    boto3.DEFAULT_SESSION.events.register(  # type: ignore[union-attr]
        "request-created.sagemaker-runtime.InvokeEndpoint",
        lambda request, **kw: sent.append(request),
    )
    record = '{"island": "Biscoe", "bill_length_mm": 45.1, "sex": null}'
    assert main(["invoke", "--env", "dev", "--json", record]) == 0
    # moto's canned answer is no predictions object: printed as it came.
    assert capsys.readouterr().out == "body\n"
    (request,) = sent
    assert request.url.endswith("/endpoints/mlstack-dev/invocations")
    # The raw-record forms of the inference image (docs/serving.md, "Raw records").
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"] == "application/json"
    assert request.body == record.encode()


@pytest.mark.usefixtures("aws")
def test_invoke_names_a_missing_serving_stack(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["invoke", "--env", "dev", "--file", str(tmp_path / "x.csv")]) == 1
    assert "stack dev-Serving is not deployed" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["local", "run", "-H", "no-equals-sign"])
    assert exit_.value.code == 2
    assert "expected name=value" in capsys.readouterr().err


def no_aws_configuration(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """A fresh machine: no AWS variable, an empty HOME (no ~/.aws), no instance metadata."""
    import os

    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no wait on 169.254.169.254


def test_without_a_region_the_message_names_what_the_command_reads(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    no_aws_configuration(monkeypatch, tmp_path)
    for command in (["run", "--env", "dev"], ["invoke", "--env", "dev", "--file", "x.csv"]):
        assert main(command) == 1
        err = capsys.readouterr().err
        assert "no AWS region: pass --region, or set AWS_REGION or AWS_DEFAULT_REGION" in err


@pytest.mark.parametrize("variable", ["AWS_REGION", "AWS_DEFAULT_REGION"])
def test_the_region_variable_the_message_names_is_read(
    variable: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    no_aws_configuration(monkeypatch, tmp_path)
    monkeypatch.setenv(variable, "eu-west-1")
    assert main(["invoke", "--env", "dev", "--file", "x.csv"]) == 1
    err = capsys.readouterr().err
    # Past the region: now it is the credentials that are missing, and it says what it read.
    assert "no AWS region" not in err
    assert "no AWS credentials found" in err and "AWS_ACCESS_KEY_ID" in err


def test_invoke_with_a_local_endpoint_signs_with_dummy_credentials_and_no_region(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    no_aws_configuration(monkeypatch, tmp_path)
    data = tmp_path / "data.csv"
    data.write_bytes(b"5,90\n")
    sent: list[Any] = []

    def answer(request: Any, **kwargs: Any) -> None:
        sent.append(request)
        raise SystemExit(0)  # stop before the (absent) server is called

    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    boto3.setup_default_session()
    boto3.DEFAULT_SESSION.events.register(  # type: ignore[union-attr]
        "before-send.sagemaker-runtime.InvokeEndpoint", answer
    )
    with pytest.raises(SystemExit):
        main(
            [
                "invoke",
                "--endpoint-url",
                "http://127.0.0.1:9",
                "--endpoint-name",
                "e",
                "--file",
                str(data),
            ]
        )
    (request,) = sent
    # SigV4 with the stand-in key and region (AWS docs: "Elements of an AWS API request
    # signature": Credential=<key>/<date>/<region>/<service>/aws4_request).
    assert "Credential=local/" in request.headers["Authorization"].decode()
    assert "/us-east-1/sagemaker/aws4_request" in request.headers["Authorization"].decode()
