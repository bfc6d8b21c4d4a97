"""`mlstack run` and `mlstack invoke` as a person runs them: on a pseudo-terminal, against moto's
server standing in for AWS (`AWS_ENDPOINT_URL`, botocore's service-endpoint setting), and
stopped with Ctrl-C; `invoke` finding the endpoint a dev run deploys.

Expected values come from outside this code: the state names of the definition given to moto,
moto's answers (the execution's status, its canned InvokeEndpoint body), the Workflow stack's
output key as mlstack/stacks/workflow_stack.py declares it, and 128 + SIGINT for a command
Ctrl-C ended (bash(1), "EXIT STATUS").
"""

from __future__ import annotations

import json
import signal
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.server import ThreadedMotoServer

from mlstack.cli import main
from tests.cli.terminal import Terminal, mlstack
from tests.fake_aws import FAKE_AWS_ENV

ROLE = f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/sfn"
PASSES = {
    "StartAt": "Seed data",
    "States": {
        "Seed data": {"Type": "Pass", "Next": "Train model"},
        "Train model": {"Type": "Pass", "End": True},
    },
}


@pytest.fixture
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    yield url
    _post(f"{url}/moto-api/reset", {})  # moto's backends are one per process: empty them
    server.stop()


def _post(url: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    urllib.request.urlopen(request, timeout=10).close()


def _client(service: str, url: str) -> Any:
    return boto3.client(service, endpoint_url=url, region_name="us-east-1")


def _deploy_workflow(url: str, *, execute: bool) -> None:
    # moto's server-mode configuration (POST /moto-api/config): run the states, or leave the
    # execution RUNNING.
    _post(f"{url}/moto-api/config", {"stepfunctions": {"execute_state_machine": execute}})
    arn = _client("stepfunctions", url).create_state_machine(
        name="wf", definition=json.dumps(PASSES), roleArn=ROLE
    )["stateMachineArn"]
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {"StateMachineArn": {"Value": arn}},
    }
    _client("cloudformation", url).create_stack(
        StackName="dev-Workflow", TemplateBody=json.dumps(template)
    )


def _run(url: str) -> Terminal:
    return Terminal(
        mlstack("run", "--env", "dev", "--poll", "0.2"),
        env={**FAKE_AWS_ENV, "AWS_ENDPOINT_URL": url},
    )


def test_run_on_a_terminal_shows_the_live_table_and_the_output(moto_url: str) -> None:
    _deploy_workflow(moto_url, execute=True)
    term = _run(moto_url)
    try:
        code = term.wait(120)
    finally:
        term.close()
    out = term.output
    assert code == 0, out
    assert "\x1b[" in term.raw  # drawn for a terminal
    rows = {line.split("│")[1].strip() for line in out.splitlines() if line.count("│") >= 5}
    assert set(PASSES["States"]) <= rows
    assert "SUCCEEDED" in out


def test_ctrl_c_stops_following_and_says_the_execution_goes_on(moto_url: str) -> None:
    _deploy_workflow(moto_url, execute=False)  # moto leaves the execution RUNNING
    term = _run(moto_url)
    try:
        arn = term.wait_for(r"started (arn:aws:states:\S+)", 60).group(1)
        term.ctrl_c()
        code = term.wait(60)
    finally:
        term.close()
    assert code == 128 + signal.SIGINT, term.output
    assert "Traceback" not in term.output
    last = [line for line in term.output.splitlines() if line.strip()][-1].removeprefix("^C")
    assert last.startswith("mlstack run: SIGINT: stopped following") and arn in last
    status = _client("stepfunctions", moto_url).describe_execution(executionArn=arn)["status"]
    assert status == "RUNNING" and "goes on in AWS" in last


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


def _stack(name: str, outputs: dict[str, str]) -> None:
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {k: {"Value": v} for k, v in outputs.items()},
    }
    boto3.client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(template))


@pytest.mark.usefixtures("aws")
def test_invoke_calls_the_endpoint_a_dev_run_deploys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # dev without a pinned version has no Serving stack: its endpoint is the Workflow stack's
    # DeployEndpointName (mlstack/stacks/workflow_stack.py).
    _stack("dev-Workflow", {"StateMachineArn": "arn", "DeployEndpointName": "mlstack-dev-live"})
    called: list[str] = []
    boto3.setup_default_session()
    boto3.DEFAULT_SESSION.events.register(  # type: ignore[union-attr]
        "before-call.sagemaker-runtime.InvokeEndpoint",
        lambda params, **_: called.append(json.loads(json.dumps(params["url_path"]))),
    )
    body = tmp_path / "data.csv"
    body.write_text("37,82\n", encoding="utf-8")
    assert main(["invoke", "--env", "dev", "--file", str(body)]) == 0, capsys.readouterr().err
    assert called == ["/endpoints/mlstack-dev-live/invocations"]


@pytest.mark.usefixtures("aws")
def test_invoke_without_an_endpoint_says_what_creates_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = tmp_path / "data.csv"
    body.write_text("37,82\n", encoding="utf-8")
    assert main(["invoke", "--env", "dev", "--file", str(body)]) == 1
    err = capsys.readouterr().err
    assert "dev-Serving" in err and "dev-Workflow" in err
    assert "mlstack run --env dev" in err and "--endpoint-name" in err
    assert len(err.strip().splitlines()) == 1
