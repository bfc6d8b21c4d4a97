"""dev's registry clean-up: CloudFormation cannot delete a model package group that still holds
versions, so ``cdk destroy`` of dev deletes the versions first (a custom resource of the
Workflow stack, deleted before the Data stack's group). Its function runs here as CloudFormation
runs it: against moto's SageMaker, answering a pre-signed URL served on loopback ("Custom
resource response objects", CloudFormation user guide). prod retains its registry and has none.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sagemaker.models import sagemaker_backends

from mlstack.constructs.model_package_cleanup_code import index
from tests.fake_aws import use_fake_aws
from tests.infra.conftest import SynthesizedApp

GROUP = "mlstack-dev"


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


def register(client: Any, group: str) -> str:
    return str(
        client.create_model_package(
            ModelPackageGroupName=group,
            ModelApprovalStatus="Approved",
            InferenceSpecification={
                "Containers": [
                    {
                        "Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/i:1",
                        "ModelDataUrl": "s3://b/models/j/output/model.tar.gz",
                    }
                ],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
            },
        )["ModelPackageArn"]
    )


def delete_in_moto(params: dict[str, Any], **kwargs: Any) -> tuple[AWSResponse, dict[str, Any]]:
    """DeleteModelPackage, which moto 5.2.5 does not implement: the version leaves moto's own
    store. Runs after botocore checked the request against the service model (its parameters
    were serialized from it)."""
    backend = sagemaker_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    name = json.loads(params["body"])["ModelPackageName"]
    arn = backend.model_package_name_mapping.get(name)
    if arn is None:
        raise ClientError(
            {"Error": {"Code": "ValidationException", "Message": f"{name} does not exist."}},
            "DeleteModelPackage",
        )
    del backend.model_packages[arn]
    for key in [k for k, v in backend.model_package_name_mapping.items() if v == arn]:
        del backend.model_package_name_mapping[key]
    return AWSResponse(params["url"], 200, {}, None), {}


@pytest.fixture()
def sagemaker(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    use_fake_aws(monkeypatch)
    monkeypatch.setattr(index, "POLL_SECONDS", 0)
    with mock_aws():
        client = boto3.client("sagemaker", region_name="us-east-1")
        client.meta.events.register("before-call.sagemaker.DeleteModelPackage", delete_in_moto)
        monkeypatch.setattr(index.boto3, "client", lambda *a, **k: client)
        for group in (GROUP, "someone-else"):
            client.create_model_package_group(ModelPackageGroupName=group)
        for _ in range(3):
            register(client, GROUP)
        register(client, "someone-else")
        yield client


class Context:
    def get_remaining_time_in_millis(self) -> int:
        return 600_000


def event(request_type: str, url: str, group: str = GROUP) -> dict[str, Any]:
    return {
        "RequestType": request_type,
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/dev-Workflow/1",
        "RequestId": "r-1",
        "LogicalResourceId": "RegistryCleanup",
        "PhysicalResourceId": f"model-package-cleanup-{group}",
        "ResourceProperties": {"ServiceToken": "arn", "ModelPackageGroupName": group},
    }


def listed(client: Any, group: str) -> list[str]:
    summaries = client.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]
    return [s["ModelPackageArn"] for s in summaries]


def test_delete_removes_every_version_of_the_group_only(sagemaker: Any, response_url: str) -> None:
    assert len(listed(sagemaker, GROUP)) == 3
    index.handler(event("Delete", response_url), Context())
    (reply,) = Replies.received
    assert reply["Status"] == "SUCCESS", reply
    assert reply["Reason"] == f"deleted 3 versions of {GROUP}"
    assert listed(sagemaker, GROUP) == []
    assert len(listed(sagemaker, "someone-else")) == 1


def test_more_versions_than_a_page_are_all_deleted(sagemaker: Any, response_url: str) -> None:
    # ListModelPackages answers at most 100 per page (MaxResults 1..100, SageMaker API reference).
    for _ in range(101):
        register(sagemaker, GROUP)
    index.handler(event("Delete", response_url), Context())
    (reply,) = Replies.received
    assert (reply["Status"], reply["Reason"]) == ("SUCCESS", f"deleted 104 versions of {GROUP}")
    assert listed(sagemaker, GROUP) == []


@pytest.mark.parametrize("request_type", ["Create", "Update"])
def test_create_and_update_leave_the_versions(
    sagemaker: Any, response_url: str, request_type: str
) -> None:
    index.handler(event(request_type, response_url), Context())
    (reply,) = Replies.received
    assert reply["Status"] == "SUCCESS"
    assert len(listed(sagemaker, GROUP)) == 3


def test_a_refused_delete_fails_the_stack_deletion_naming_the_commands(
    sagemaker: Any, response_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(**kwargs: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "Delete")

    monkeypatch.setattr(sagemaker, "delete_model_package", refuse)
    index.handler(event("Delete", response_url), Context())
    (reply,) = Replies.received
    assert reply["Status"] == "FAILED"
    assert "AccessDeniedException" in reply["Reason"]
    assert f"list-model-packages --model-package-group-name {GROUP}" in reply["Reason"]
    assert len(listed(sagemaker, GROUP)) == 3


# --- the synthesized resource --------------------------------------------------------------------


def cleanups(template: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v for k, v in template["Resources"].items() if v["Type"] == "Custom::ModelPackageCleanup"
    }


def test_only_dev_deletes_its_registry_versions_on_destroy(synthesized: SynthesizedApp) -> None:
    (cleanup, *more) = cleanups(synthesized.json("dev", "workflow")).values()
    assert not more
    assert cleanup["Properties"]["ModelPackageGroupName"] == GROUP
    assert cleanups(synthesized.json("prod", "workflow")) == {}
    # dev's group is deleted with the Data stack (removal_policy "destroy"); prod's is retained.
    for env, policy in (("dev", "Delete"), ("prod", "Retain")):
        (group,) = [
            r
            for r in synthesized.json(env, "data")["Resources"].values()
            if r["Type"] == "AWS::SageMaker::ModelPackageGroup"
        ]
        assert group["DeletionPolicy"] == policy


def test_the_state_machines_that_register_and_release_go_before_the_cleanup(
    synthesized: SynthesizedApp,
) -> None:
    template = synthesized.json("dev", "workflow")
    (logical_id,) = cleanups(template)
    machines = {
        k: r
        for k, r in template["Resources"].items()
        if r["Type"] == "AWS::StepFunctions::StateMachine"
    }
    assert len(machines) == 2
    for machine in machines.values():
        assert logical_id in machine.get("DependsOn", [])


def test_the_cleanup_role_may_list_and_delete_this_groups_versions_only(
    synthesized: SynthesizedApp,
) -> None:
    template = synthesized.json("dev", "workflow")
    (cleanup,) = cleanups(template).values()
    function = template["Resources"][cleanup["Properties"]["ServiceToken"]["Fn::GetAtt"][0]]
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    (policy,) = [
        r
        for r in template["Resources"].values()
        if r["Type"] == "AWS::IAM::Policy" and {"Ref": role} in r["Properties"]["Roles"]
    ]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    actions = {
        a
        for s in statements
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert actions == {
        "sagemaker:ListModelPackages",
        "sagemaker:DeleteModelPackage",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }
    (versions,) = [s for s in statements if "sagemaker:DeleteModelPackage" in s["Action"]]
    assert sorted(versions["Action"]) == [
        "sagemaker:DeleteModelPackage",
        "sagemaker:ListModelPackages",
    ]
    # Scoped to the group's versions: no '*' (tests/infra/test_infra_app.py).
    assert ":model-package/mlstack-dev/*" in json.dumps(versions["Resource"])
