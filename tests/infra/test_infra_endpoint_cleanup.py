"""The endpoint clean-up function, run as CloudFormation runs it: against (moto's) SageMaker,
answering a pre-signed URL served on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import boto3
import pytest
from moto import mock_aws

from mlstack.constructs.endpoint_cleanup_code import index
from tests.fake_aws import use_fake_aws


class Replies(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_PUT(self) -> None:
        length = int(self.headers["Content-Length"])
        Replies.received.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture()
def response_url() -> Iterator[str]:
    Replies.received = []
    server = HTTPServer(("127.0.0.1", 0), Replies)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/reply?signature=x"
    server.shutdown()


@pytest.fixture()
def sagemaker(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    use_fake_aws(monkeypatch)
    monkeypatch.setattr(index, "POLL_SECONDS", 0)
    with mock_aws():
        client = boto3.client("sagemaker", region_name="us-east-1")
        client.create_model(
            ModelName="m",
            ExecutionRoleArn="arn:aws:iam::123456789012:role/r",
            PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/i:1"},
        )
        client.create_endpoint_config(
            EndpointConfigName="c",
            ProductionVariants=[
                {
                    "VariantName": "Live",
                    "ModelName": "m",
                    "InitialInstanceCount": 1,
                    "InstanceType": "ml.m5.large",
                }
            ],
        )
        client.create_endpoint(EndpointName="mlstack-dev-live", EndpointConfigName="c")
        yield client


class Context:
    def get_remaining_time_in_millis(self) -> int:
        return 600_000


def event(request_type: str, url: str) -> dict[str, Any]:
    return {
        "RequestType": request_type,
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/dev-Workflow/1",
        "RequestId": "r-1",
        "LogicalResourceId": "Cleanup",
        "PhysicalResourceId": "endpoint-cleanup-mlstack-dev-live",
        "ResourceProperties": {"ServiceToken": "arn", "EndpointName": "mlstack-dev-live"},
    }


def test_delete_removes_the_endpoint_and_reports_success(sagemaker: Any, response_url: str) -> None:
    index.handler(event("Delete", response_url), Context())
    (reply,) = Replies.received
    assert reply["Status"] == "SUCCESS", reply
    assert reply["Reason"] == "endpoint mlstack-dev-live deleted"
    assert reply["PhysicalResourceId"] == "endpoint-cleanup-mlstack-dev-live"
    assert sagemaker.list_endpoints()["Endpoints"] == []


def test_delete_of_an_absent_endpoint_succeeds(sagemaker: Any, response_url: str) -> None:
    sagemaker.delete_endpoint(EndpointName="mlstack-dev-live")
    index.handler(event("Delete", response_url), Context())
    (reply,) = Replies.received
    assert (reply["Status"], reply["Reason"]) == (
        "SUCCESS",
        "endpoint mlstack-dev-live does not exist",
    )


@pytest.mark.parametrize("request_type", ["Create", "Update"])
def test_create_and_update_leave_the_endpoint(
    sagemaker: Any, response_url: str, request_type: str
) -> None:
    index.handler(event(request_type, response_url), Context())
    (reply,) = Replies.received
    assert reply["Status"] == "SUCCESS"
    assert [e["EndpointName"] for e in sagemaker.list_endpoints()["Endpoints"]] == [
        "mlstack-dev-live"
    ]


def test_a_refused_delete_fails_the_stack_deletion_naming_the_command(
    sagemaker: Any, response_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError

    def refuse(**kwargs: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "Delete")

    real = boto3.client
    monkeypatch.setattr(
        index.boto3,
        "client",
        lambda *a, **k: (
            type("C", (), {"delete_endpoint": staticmethod(refuse)})()
            if a == ("sagemaker",)
            else real(*a, **k)
        ),
    )
    index.handler(event("Delete", response_url), Context())
    (reply,) = Replies.received
    assert reply["Status"] == "FAILED"
    assert "aws sagemaker delete-endpoint --endpoint-name mlstack-dev-live" in reply["Reason"]
