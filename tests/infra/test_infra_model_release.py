"""Release on approval: the training workflow ends at Register model; an EventBridge rule on
SageMaker's model package state change (this environment's group, Approved) starts the release
state machine, which deploys that version once, however often the event arrives."""

from __future__ import annotations

from typing import Any

import pytest

from mlstack.local.asl import Interpreter, StatesError, TaskCall
from tests.infra.conftest import SynthesizedApp, state_machine_definition

# "SageMaker model package state change" (SageMaker developer guide, "Events that Amazon
# SageMaker AI sends to Amazon EventBridge"): source aws.sagemaker, this detail-type, and a
# detail with the version's ModelPackageGroupName, ModelPackageVersion, ModelPackageArn and
# ModelApprovalStatus.
PATTERN = {
    "source": ["aws.sagemaker"],
    "detail-type": ["SageMaker Model Package State Change"],
    "detail": {"ModelPackageGroupName": ["mlstack-{env}"], "ModelApprovalStatus": ["Approved"]},
}
ARN = "arn:aws:sagemaker:us-east-1:123456789012:model-package/mlstack-dev/3"
EVENT = {
    "version": "0",
    "id": "844e2571-85d4-695f-b930-0153b71dcb42",
    "detail-type": "SageMaker Model Package State Change",
    "source": "aws.sagemaker",
    "account": "123456789012",
    "time": "2026-11-29T10:00:00Z",
    "region": "us-east-1",
    "resources": [ARN],
    "detail": {
        "ModelPackageGroupName": "mlstack-dev",
        "ModelPackageVersion": 3,
        "ModelPackageArn": ARN,
        "ModelApprovalStatus": "Approved",
    },
}


def rules(template: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == "AWS::Events::Rule"}


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_rule_starts_the_release_on_approval_of_this_group(
    synthesized: SynthesizedApp, env: str
) -> None:
    template = synthesized.json(env, "workflow")
    (rule,) = rules(template).values()
    expected = dict(PATTERN)
    expected["detail"] = {
        "ModelPackageGroupName": [f"mlstack-{env}"],
        "ModelApprovalStatus": ["Approved"],
    }
    assert rule["Properties"]["EventPattern"] == expected
    (target,) = rule["Properties"]["Targets"]
    machine = template["Resources"][target["Arn"]["Ref"]]
    assert machine["Type"] == "AWS::StepFunctions::StateMachine"
    # The whole event is the input (no InputPath or Input): the release reads its detail.
    assert "Input" not in target and "InputPath" not in target
    # EventBridge's role may start this state machine and nothing else.
    role_id = target["RoleArn"]["Fn::GetAtt"][0]
    policies = [
        r
        for r in template["Resources"].values()
        if r["Type"] == "AWS::IAM::Policy" and {"Ref": role_id} in r["Properties"]["Roles"]
    ]
    (statement,) = [s for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]]
    assert statement["Action"] == "states:StartExecution"
    assert statement["Resource"] == {"Ref": target["Arn"]["Ref"]}


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_training_workflow_ends_at_register_model(
    synthesized: SynthesizedApp, env: str
) -> None:
    states = state_machine_definition(synthesized.json(env, "workflow"))["States"]
    assert states["Register model"]["Next"] == "Report results"
    deploying = {
        "Describe endpoint",
        "Create endpoint config",
        "Create endpoint",
        "Update endpoint",
    }
    assert not deploying & set(states)


@pytest.fixture(scope="module")
def release(synthesized: SynthesizedApp) -> dict[str, Any]:
    return state_machine_definition(synthesized.json("dev", "workflow"), release=True)


def test_the_release_creates_a_model_from_the_approved_version(release: dict[str, Any]) -> None:
    states = release["States"]
    assert release["StartAt"] == "Start release"
    describe = states["Describe model package"]
    assert describe["Resource"] == "arn:aws:states:::aws-sdk:sagemaker:describeModelPackage"
    assert describe["Parameters"] == {"ModelPackageName.$": "$.event.detail.ModelPackageArn"}
    create = states["Create release model"]
    assert create["Resource"] == "arn:aws:states:::sagemaker:createModel"
    container = create["Parameters"]["PrimaryContainer"]
    assert container["Image.$"] == "$.package.image"
    assert container["ModelDataUrl.$"] == "$.package.model_data_url"
    assert create["Next"] == "Describe endpoint"


class StandIns:
    """Task results for an execution of the release definition, and the calls it made."""

    def __init__(self, live_config: str | None, status: str = "Approved") -> None:
        self.live_config = live_config
        self.status = status
        self.calls: list[str] = []

    def __call__(self, call: TaskCall) -> Any:
        action = call.resource.rsplit(":", 1)[-1]
        self.calls.append(f"{call.state_name}: {action}")
        p = call.parameters
        if action == "describeModelPackage":
            return {
                "ModelPackageArn": p["ModelPackageName"],
                "ModelPackageVersion": 3,
                "ModelApprovalStatus": self.status,
                "InferenceSpecification": {
                    "Containers": [{"Image": "image", "ModelDataUrl": "s3://b/m.tar.gz"}]
                },
            }
        if action == "describeEndpoint":
            if self.live_config is None:
                raise StatesError("SageMaker.ValidationException", 'Could not find endpoint "x".')
            return {"EndpointConfigName": self.live_config, "EndpointStatus": "InService"}
        if action == "createModel":
            return {"ModelArn": f"arn:aws:sagemaker:r:1:model/{p['ModelName']}"}
        if action == "createEndpointConfig":
            self.live_config = p["EndpointConfigName"]
            return {
                "EndpointConfigArn": f"arn:aws:sagemaker:r:1:endpoint-config/{self.live_config}"
            }
        return {}


def execute(release: dict[str, Any], stand_ins: StandIns) -> Any:
    return Interpreter(release, stand_ins, time_scale=0).execute(EVENT, name="release")


def test_a_new_version_is_deployed_and_a_repeated_event_changes_nothing(
    release: dict[str, Any],
) -> None:
    stand_ins = StandIns(live_config=None)
    first = execute(release, stand_ins)
    assert first.status == "SUCCEEDED", first.cause
    assert first.output["result"] == "deployed"
    assert first.output["model_name"].startswith("mlstack-dev-v3-")
    assert "Create endpoint: createEndpoint" in stand_ins.calls
    # The same event again (EventBridge may deliver it twice): the endpoint serves version 3.
    stand_ins.calls.clear()
    again = execute(release, stand_ins)
    assert again.status == "SUCCEEDED", again.cause
    assert again.output["result"] == "already serving this version"
    assert [c.split(": ")[1] for c in stand_ins.calls] == [
        "describeModelPackage",
        "describeEndpoint",
    ]


def test_another_live_version_is_updated_blue_green(release: dict[str, Any]) -> None:
    stand_ins = StandIns(live_config="mlstack-dev-v2-0a1b2c3d-0-0")
    result = execute(release, stand_ins)
    assert result.status == "SUCCEEDED", result.cause
    assert "Update endpoint: updateEndpoint" in stand_ins.calls


def test_a_version_no_longer_approved_is_not_deployed(release: dict[str, Any]) -> None:
    stand_ins = StandIns(live_config=None, status="Rejected")
    result = execute(release, stand_ins)
    assert result.status == "SUCCEEDED"
    assert result.history[-1].name == "Not approved any more"
    assert stand_ins.calls == ["Describe model package: describeModelPackage"]
