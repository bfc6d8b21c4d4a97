"""Custom resource handler: on stack deletion, delete the endpoint the workflow deployed.

CloudFormation does not know the endpoint (the state machine creates it), so ``cdk destroy``
would leave it running, billing, and using a KMS key whose deletion the same destroy schedules.
On ``Delete`` this deletes the endpoint named ``EndpointName`` (absent: nothing to do) and waits,
within the function's time, until SageMaker no longer knows it; ``Create`` and ``Update`` do
nothing. The reply goes to CloudFormation's pre-signed ``ResponseURL`` ("Custom resource
response objects", CloudFormation user guide). Standard library and boto3 only.
"""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import boto3
from botocore.exceptions import ClientError

POLL_SECONDS = 15
MARGIN_MS = 30_000


def _gone(error: ClientError) -> bool:
    # SageMaker answers ValidationException "Could not find endpoint ..." for an absent one.
    return "Could not find endpoint" in str(error.response.get("Error", {}).get("Message", ""))


def delete_endpoint(client: Any, name: str, remaining_ms: Any) -> str:
    """Delete ``name`` and wait while time remains; returns what happened."""
    try:
        client.delete_endpoint(EndpointName=name)
    except ClientError as error:
        if _gone(error):
            return f"endpoint {name} does not exist"
        raise
    while remaining_ms() > MARGIN_MS:
        try:
            client.describe_endpoint(EndpointName=name)
        except ClientError as error:
            if _gone(error):
                return f"endpoint {name} deleted"
            raise
        time.sleep(POLL_SECONDS)
    return f"endpoint {name} is being deleted"


def respond(event: dict[str, Any], status: str, reason: str) -> None:
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason[:1000],
            "PhysicalResourceId": event.get("PhysicalResourceId")
            or f"endpoint-cleanup-{event['ResourceProperties']['EndpointName']}",
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
            "NoEcho": False,
            "Data": {},
        }
    ).encode()
    request = urllib.request.Request(
        event["ResponseURL"],
        data=body,
        method="PUT",
        headers={"Content-Type": "", "Content-Length": str(len(body))},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


def handler(event: dict[str, Any], context: Any) -> None:
    name = str(event.get("ResourceProperties", {}).get("EndpointName", ""))
    status, reason = "SUCCESS", "nothing to do"
    try:
        if event["RequestType"] == "Delete":
            reason = delete_endpoint(
                boto3.client("sagemaker"), name, context.get_remaining_time_in_millis
            )
    except Exception as error:  # the reply must always be sent, or the stack hangs for an hour
        status = "FAILED"
        reason = (
            f"could not delete endpoint {name}: {type(error).__name__}: {error}; delete it with "
            f"`aws sagemaker delete-endpoint --endpoint-name {name}` and retry"
        )
    print(json.dumps({"request": event.get("RequestType"), "status": status, "reason": reason}))
    respond(event, status, reason)
