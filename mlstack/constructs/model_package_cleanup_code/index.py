"""Custom resource handler: on stack deletion, delete the versions of a model package group.

CloudFormation cannot delete a model package group that still holds versions, and the workflow
registers them (CloudFormation does not know them), so ``cdk destroy`` of an environment that
destroys its data would fail on the group. On ``Delete`` this deletes every version of
``ModelPackageGroupName`` (an absent group: nothing to do) and waits, within the function's
time, until the group lists none; ``Create`` and ``Update`` do nothing. The reply goes to
CloudFormation's pre-signed ``ResponseURL`` ("Custom resource response objects", CloudFormation
user guide). Standard library and boto3 only.
"""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import boto3
from botocore.exceptions import ClientError

POLL_SECONDS = 5
MARGIN_MS = 30_000


def _group_gone(error: ClientError) -> bool:
    # SageMaker answers ValidationException "... does not exist." for an absent group.
    message = str(error.response.get("Error", {}).get("Message", ""))
    return error.response.get("Error", {}).get("Code") == "ValidationException" and (
        "does not exist" in message or "not found" in message.lower()
    )


def versions(client: Any, group: str) -> list[str]:
    """The ARNs of every version of ``group`` (all pages)."""
    arns: list[str] = []
    for page in client.get_paginator("list_model_packages").paginate(
        ModelPackageGroupName=group, ModelPackageType="Versioned"
    ):
        arns.extend(s["ModelPackageArn"] for s in page.get("ModelPackageSummaryList", []))
    return arns


def delete_versions(client: Any, group: str, remaining_ms: Any) -> str:
    """Delete every version of ``group`` and wait while time remains; returns what happened."""
    try:
        found = versions(client, group)
    except ClientError as error:
        if _group_gone(error):
            return f"model package group {group} does not exist"
        raise
    for arn in found:
        try:
            client.delete_model_package(ModelPackageName=arn)
        except ClientError as error:
            if not _group_gone(error):
                raise
    while remaining_ms() > MARGIN_MS:
        if not versions(client, group):
            return f"deleted {len(found)} versions of {group}"
        time.sleep(POLL_SECONDS)
    return f"deleting {len(found)} versions of {group}"


def respond(event: dict[str, Any], status: str, reason: str) -> None:
    group = event["ResourceProperties"]["ModelPackageGroupName"]
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason[:1000],
            "PhysicalResourceId": event.get("PhysicalResourceId")
            or f"model-package-cleanup-{group}",
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
    group = str(event.get("ResourceProperties", {}).get("ModelPackageGroupName", ""))
    status, reason = "SUCCESS", "nothing to do"
    try:
        if event["RequestType"] == "Delete":
            reason = delete_versions(
                boto3.client("sagemaker"), group, context.get_remaining_time_in_millis
            )
    except Exception as error:  # the reply must always be sent, or the stack hangs for an hour
        status = "FAILED"
        reason = (
            f"could not delete the versions of model package group {group}: "
            f"{type(error).__name__}: {error}; delete them with `aws sagemaker "
            f"delete-model-package --model-package-name <arn>` for each ARN of `aws sagemaker "
            f"list-model-packages --model-package-group-name {group}`, and retry"
        )
    print(json.dumps({"request": event.get("RequestType"), "status": status, "reason": reason}))
    respond(event, status, reason)
