"""A release started twice for one approval deploys once.

SageMaker "may send multiple events to EventBridge for each state change" (SageMaker developer
guide, "Events that Amazon SageMaker AI sends to Amazon EventBridge"), so the release state
machine may run twice for one approval: one after the other, or at once. The definition runs
here in the local interpreter against one SageMaker stand-in shared by both executions, which
refuses what SageMaker refuses: a second model or endpoint of a taken name, in SageMaker's words
(CreateModel: ValidationException 'Cannot create already existing model "<arn>".', the message
the SageMaker Python SDK's ``Session.create_model`` tests for to reuse an existing model; the
same for an endpoint), inside the Cause Step Functions reports for an optimized integration's error
(``SageMaker.AmazonSageMakerException``, "(Service: AmazonSageMaker; Status Code: 400; Error
Code: ValidationException; ...)").
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from mlstack.local.asl import Interpreter, StatesError, TaskCall
from tests.infra.conftest import SynthesizedApp, state_machine_definition

ACCOUNT = "arn:aws:sagemaker:us-east-1:123456789012"
PACKAGE = f"{ACCOUNT}:model-package/mlstack-dev/3"
EVENT = {
    "version": "0",
    "id": "844e2571-85d4-695f-b930-0153b71dcb42",
    "detail-type": "SageMaker Model Package State Change",
    "source": "aws.sagemaker",
    "account": "123456789012",
    "time": "2026-11-29T10:00:00Z",
    "region": "us-east-1",
    "resources": [PACKAGE],
    "detail": {
        "ModelPackageGroupName": "mlstack-dev",
        "ModelPackageVersion": 3,
        "ModelPackageArn": PACKAGE,
        "ModelApprovalStatus": "Approved",
    },
}


def refused(message: str) -> StatesError:
    """An optimized SageMaker integration's error as Step Functions reports it."""
    return StatesError(
        "SageMaker.AmazonSageMakerException",
        f"{message} (Service: AmazonSageMaker; Status Code: 400; Error Code: "
        "ValidationException; Request ID: 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0; Proxy: null)",
    )


class SharedSageMaker:
    """One account's SageMaker as concurrent executions see it; ``barrier`` holds each execution
    after it read the live endpoint until the other has read it too (both start at once)."""

    def __init__(
        self, live: tuple[str, str] | None, barrier: threading.Barrier | None = None
    ) -> None:
        self.endpoint = live  # (configuration, status)
        self.models: set[str] = set()
        self.barrier = barrier
        self.calls: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()

    def __call__(self, call: TaskCall) -> Any:
        action = call.resource.rsplit(":", 1)[-1]
        who = threading.current_thread().name
        with self.lock:
            self.calls.append((who, call.state_name, action))
        try:
            with self.lock:
                return self._answer(action, call.parameters)
        finally:
            if call.state_name == "Read live endpoint" and self.barrier is not None:
                self.barrier.wait()

    def _answer(self, action: str, p: dict[str, Any]) -> Any:
        if action == "describeModelPackage":
            return {
                "ModelPackageArn": p["ModelPackageName"],
                "ModelPackageVersion": 3,
                "ModelApprovalStatus": "Approved",
                "InferenceSpecification": {
                    "Containers": [{"Image": "image", "ModelDataUrl": "s3://b/m.tar.gz"}]
                },
            }
        if action == "describeEndpoint":
            if self.endpoint is None:
                raise StatesError(
                    "SageMaker.ValidationException", 'Could not find endpoint "mlstack-dev-live".'
                )
            config, status = self.endpoint
            return {"EndpointConfigName": config, "EndpointStatus": status}
        if action == "createModel":
            name = p["ModelName"]
            if name.lower() in self.models:
                raise refused(f'Cannot create already existing model "{ACCOUNT}:model/{name}".')
            self.models.add(name.lower())
            return {"ModelArn": f"{ACCOUNT}:model/{name}"}
        if action == "createEndpointConfig":
            return {"EndpointConfigArn": f"{ACCOUNT}:endpoint-config/{p['EndpointConfigName']}"}
        if action == "createEndpoint":
            if self.endpoint is not None:
                raise refused(
                    f'Cannot create already existing endpoint "{ACCOUNT}:endpoint/'
                    f'{p["EndpointName"]}".'
                )
            self.endpoint = (p["EndpointConfigName"], "InService")
            return {"EndpointArn": f"{ACCOUNT}:endpoint/{p['EndpointName']}"}
        if action == "updateEndpoint":
            assert self.endpoint is not None
            self.endpoint = (p["EndpointConfigName"], "InService")
            return {"EndpointArn": f"{ACCOUNT}:endpoint/{p['EndpointName']}"}
        if action == "publish":
            return {"MessageId": "m-1"}
        return {}

    def actions(self, action: str) -> list[str]:
        return [who for who, _, a in self.calls if a == action]


@pytest.fixture(scope="module")
def release(synthesized: SynthesizedApp) -> dict[str, Any]:
    return state_machine_definition(synthesized.json("dev", "workflow"), release=True)


def run_at_once(release: dict[str, Any], sagemaker: SharedSageMaker) -> list[Any]:
    results: list[Any] = [None, None]

    def execute(i: int) -> None:
        interpreter = Interpreter(release, sagemaker, time_scale=0)
        results[i] = interpreter.execute(EVENT, name=f"release-{i}")

    threads = [threading.Thread(target=execute, args=(i,), name=f"e{i}") for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(r is not None for r in results), "an execution did not finish"
    return results


@pytest.mark.parametrize(
    ("live", "deploy_call"),
    [(None, "createEndpoint"), (("mlstack-dev-v2-0a1b2c3d-0-0", "InService"), "updateEndpoint")],
    ids=["first release", "blue/green update"],
)
def test_two_executions_at_once_deploy_once_and_the_second_ends_quietly(
    release: dict[str, Any], live: tuple[str, str] | None, deploy_call: str
) -> None:
    sagemaker = SharedSageMaker(live, threading.Barrier(2, timeout=60))
    results = run_at_once(release, sagemaker)
    assert [r.status for r in results] == ["SUCCEEDED", "SUCCEEDED"], [r.cause for r in results]
    outcomes = sorted(r.output["result"] for r in results)
    assert outcomes == ["deployed", "released by another execution"]
    assert len(sagemaker.actions(deploy_call)) == 1
    assert sagemaker.actions("publish") == []  # no failure mail
    # Both claimed the same name; only the winner created a release model.
    claims = [c for c in sagemaker.calls if c[1].startswith("Claim")]
    assert len(claims) == 2
    assert len([c for c in sagemaker.calls if c[1] == "Create release model"]) == 1


@pytest.mark.parametrize("status", ["Creating", "Updating", "InService"])
def test_an_execution_after_the_first_leaves_its_deployment_alone(
    release: dict[str, Any], status: str
) -> None:
    # The first execution's configuration for version 3 is on the endpoint, which SageMaker is
    # still creating (or updating for something else, or done): the second one changes nothing.
    sagemaker = SharedSageMaker(("mlstack-dev-v3-9f8e7d6c-0-0", status))
    result = Interpreter(release, sagemaker, time_scale=0).execute(EVENT, name="again")
    assert result.status == "SUCCEEDED", result.cause
    assert result.output["result"] == "already serving this version"
    assert [a for _, _, a in sagemaker.calls] == ["describeModelPackage", "describeEndpoint"]


def test_another_failure_to_claim_still_mails_and_fails(release: dict[str, Any]) -> None:
    class Throttled(SharedSageMaker):
        def _answer(self, action: str, p: dict[str, Any]) -> Any:
            if action == "createModel":
                raise StatesError(
                    "SageMaker.AmazonSageMakerException",
                    "Rate exceeded (Service: AmazonSageMaker; Status Code: 400; Error Code: "
                    "ThrottlingException; Request ID: 1)",
                )
            return super()._answer(action, p)

    sagemaker = Throttled(None)
    result = Interpreter(release, sagemaker, time_scale=0).execute(EVENT, name="throttled")
    assert result.status == "FAILED"
    assert sagemaker.actions("publish")


def test_the_claim_is_a_model_named_for_the_version_and_the_live_configuration(
    release: dict[str, Any],
) -> None:
    states = release["States"]
    claim, first = states["Claim release"], states["Claim first release"]
    for state in (claim, first):
        assert state["Resource"] == "arn:aws:states:::sagemaker:createModel"
        # A retried call whose first try created the model would find its own claim taken.
        assert "Retry" not in state
        (catch,) = state["Catch"]
        assert catch == {
            "ErrorEquals": ["States.ALL"],
            "ResultPath": "$.error",
            "Next": "Claimed by another execution?",
        }
    assert "$.live.EndpointConfigName" in claim["Parameters"]["ModelName.$"]
    assert "'{}|none', $.package.arn" in first["Parameters"]["ModelName.$"]
    # SageMaker model names: 1-63 characters ([a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}, CreateModel API
    # reference): the longest name prefix (20), '-claim-' and an MD5 in hex (32) fit.
    assert 20 + len("-claim-") + 32 <= 63
    assert states["Read live endpoint"]["Catch"][0]["Next"] == "Claim first release"
