"""Retraining on drift (issue #21, 'monitoring.retrain_on_drift'): a monitor alarm going into
ALARM starts the training workflow, at most once per cool-down; the JSONata of the cool-down
check and of the execution name evaluated by the real JSONata engine."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.session
import pytest
from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk.assertions import Template

from mlstack.app import build_app
from mlstack.config import parse_environment
from mlstack.constructs import RetrainOnDrift
from mlstack.constructs.drift_retraining import RETRAIN_STATES
from tests.infra.conftest import MONITOR_MACHINES, REPO, SynthesizedApp, new_app, render_tokens
from tests.infra.test_infra_drift_monitor import evaluate


def retrain_stack(**props: Any) -> Stack:
    stack = Stack(new_app(), "Retrain")
    key = kms.Key(stack, "Key", enable_key_rotation=True)
    workflow = sfn.StateMachine(
        stack, "Workflow", definition_body=sfn.DefinitionBody.from_chainable(sfn.Pass(stack, "P"))
    )
    alarm = cw.Alarm(
        stack,
        "Alarm",
        metric=cw.Metric(namespace="mlstack/test", metric_name="DriftedFeatureShare"),
        threshold=30,
        evaluation_periods=1,
    )
    RetrainOnDrift(
        stack,
        "Retrain",
        state_machine=workflow,
        alarms=props.pop("alarms", [alarm]),
        topic=sns.Topic(stack, "Topic", master_key=key),
        key=key,
        **props,
    )
    return stack


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return Template.from_stack(retrain_stack(cooldown=Duration.hours(24))).to_json()  # type: ignore[no-any-return]


def definition(template: dict[str, Any]) -> dict[str, Any]:
    (machine,) = [
        r
        for k, r in template["Resources"].items()
        if k.startswith("Retrain") and r["Type"] == "AWS::StepFunctions::StateMachine"
    ]
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    return json.loads("".join(p if isinstance(p, str) else "TOKEN" for p in parts))  # type: ignore[no-any-return]


def test_the_states(template: dict[str, Any]) -> None:
    assert set(definition(template)["States"]) == set(RETRAIN_STATES)


def test_an_alarm_going_into_alarm_starts_it(template: dict[str, Any]) -> None:
    # "Alarm events and EventBridge" (CloudWatch User Guide): source aws.cloudwatch,
    # detail-type "CloudWatch Alarm State Change", the alarm's ARN in resources.
    (rule,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::Events::Rule"]
    pattern = rule["Properties"]["EventPattern"]
    (alarm,) = [
        k for k, r in template["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"
    ]
    assert pattern == {
        "source": ["aws.cloudwatch"],
        "detail-type": ["CloudWatch Alarm State Change"],
        "resources": [{"Fn::GetAtt": [alarm, "Arn"]}],
        "detail": {"state": {"value": ["ALARM"]}},
    }


# An alarm event as CloudWatch sends it (abridged from the User Guide's example).
def alarm_event(time: str) -> dict[str, Any]:
    return {
        "source": "aws.cloudwatch",
        "detail-type": "CloudWatch Alarm State Change",
        "time": time,
        "detail": {"alarmName": "drift", "state": {"value": "ALARM"}},
    }


@pytest.mark.parametrize(
    ("last_started_hours_before", "cooling"),
    [(1, True), (23.9, True), (24.1, False), (None, False)],
)
def test_a_run_within_the_cool_down_blocks_a_start(
    template: dict[str, Any], last_started_hours_before: float | None, cooling: bool
) -> None:
    states = definition(template)["States"]
    alarm_time = datetime(2026, 12, 7, 14, 5, tzinfo=UTC)
    state_input: dict[str, Any] = {
        "alarm": "drift",
        "time": alarm_time.isoformat().replace("+00:00", "Z"),
    }
    if last_started_hours_before is not None:
        last = alarm_time - timedelta(hours=last_started_hours_before)
        # ListExecutions' startDate, ISO 8601 with milliseconds.
        state_input["last"] = last.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    (choice,) = states["Cooling down?"]["Choices"]
    assert choice["Next"] == "Cooling down"
    assert evaluate(choice["Condition"], state_input) is cooling


def test_the_last_run_is_read_from_list_executions(template: dict[str, Any]) -> None:
    state = definition(template)["States"]["Last run"]
    assert state["Resource"].endswith(":states:::aws-sdk:sfn:listExecutions")
    members = (
        botocore.session.get_session()
        .get_service_model("stepfunctions")
        .operation_model("ListExecutions")
    )

    # AWS SDK integrations take and return the API's members in PascalCase ("AWS SDK service
    # integrations", Step Functions developer guide).
    def pascal(names: Any) -> set[str]:
        return {n[0].upper() + n[1:] for n in names}

    assert set(state["Arguments"]) <= pascal(members.input_shape.members)
    assert "StartDate" in pascal(members.output_shape.members["executions"].member.members)
    result = {"Executions": [{"StartDate": "2026-12-07T13:05:00.000Z"}]}
    script_input = {"time": "2026-12-07T14:05:00Z", "detail": {"alarmName": "drift"}}
    expression = state["Output"].replace("$states.result", json.dumps(result))
    assert evaluate(expression, script_input) == {
        "alarm": "drift",
        "time": "2026-12-07T14:05:00Z",
        "last": "2026-12-07T13:05:00.000Z",
    }


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        ("2026-12-07T14:05:00Z", "2026-12-07T14:06:00Z", True),
        ("2026-12-07T00:00:00Z", "2026-12-07T23:59:59Z", True),
        ("2026-12-07T23:59:59Z", "2026-12-08T00:00:00Z", False),
    ],
)
def test_alarms_of_one_period_share_an_execution_name(
    template: dict[str, Any], first: str, second: str, same: bool
) -> None:
    start = definition(template)["States"]["Start retraining"]
    names = [evaluate(start["Arguments"]["Name"], {"time": t}) for t in (first, second)]
    assert (names[0] == names[1]) is same
    # Step Functions' execution names: at most 80 characters (botocore's StartExecution Name
    # shape), no whitespace, brackets, wildcards or punctuation ("StartExecution": name).
    name_shape = (
        botocore.session.get_session()
        .get_service_model("stepfunctions")
        .operation_model("StartExecution")
        .input_shape.members["name"]
    )
    for name in names:
        assert len(name) <= name_shape.metadata["max"]
        assert re.fullmatch(r"[A-Za-z0-9_-]+", name)
        assert name.startswith("retrain-on-drift-")
    assert start["Catch"][0] == {
        "ErrorEquals": ["StepFunctions.ExecutionAlreadyExistsException"],
        "Next": "Cooling down",
    }


def test_its_role_reads_and_starts_the_workflow_only(template: dict[str, Any]) -> None:
    statements = [
        s
        for k, r in template["Resources"].items()
        if k.startswith("RetrainRoleDefaultPolicy")
        for s in r["Properties"]["PolicyDocument"]["Statement"]
    ]
    states = {
        json.dumps(s["Action"]): s["Resource"]
        for s in statements
        if "states:" in json.dumps(s["Action"])
    }
    assert set(states) == {'"states:ListExecutions"', '"states:StartExecution"'}
    (workflow,) = [
        k
        for k, r in template["Resources"].items()
        if r["Type"] == "AWS::StepFunctions::StateMachine" and k.startswith("Workflow")
    ]
    assert all(r == {"Ref": workflow} for r in states.values())


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({"cooldown": Duration.minutes(30)}, "RetrainOnDrift cooldown=0.5 h: expected whole hours"),
        (
            {"cooldown": Duration.hours(721)},
            "RetrainOnDrift cooldown=721 h: expected whole hours, an integer from 1 to 720",
        ),
        ({"alarms": []}, "RetrainOnDrift alarms=[]"),
    ],
)
def test_bad_props_name_the_prop(props: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        retrain_stack(**props)


def test_released_prod_retrains_on_drift_only_when_configured(
    released: SynthesizedApp, tmp_path: Any
) -> None:
    assert "RetrainOnDrift" not in json.dumps(
        sorted(released.json("prod", "workflow")["Resources"])
    )
    data = json.loads((REPO / "environments" / "prod.json").read_text())
    data["endpoint"]["model_package_version"] = 1
    data["monitoring"] = {"retrain_on_drift": True, "quality_threshold": 0.8}
    app = build_app(
        new_app(outdir=str(tmp_path)), environments={"prod": parse_environment("prod", data)}
    )
    workflow = Template.from_stack(app.node.find_child("prod").workflow)  # type: ignore[attr-defined]
    rules = workflow.find_resources(
        "AWS::Events::Rule", {"Properties": {"EventPattern": {"source": ["aws.cloudwatch"]}}}
    )
    ((_, rule),) = rules.items()
    alarms = rule["Properties"]["EventPattern"]["resources"]
    assert [a["Fn::GetAtt"][0][:26] for a in alarms] == [
        "DriftMonitorDriftAlarm6112",
        "DriftMonitorQualityAlarmD8",
    ]
    # The scheduled retraining's input (prod.json's schedule.input).
    text = json.dumps(workflow.to_json(), separators=(",", ":"))
    assert '\\"Input\\":{\\"rows\\":200000}' in text
    # Both new definitions (JSONata states in a JSONPath machine) pass the Amazon States
    # Language validator the CLI test runs on the training workflow's.
    for logical_id, machine in workflow.find_resources("AWS::StepFunctions::StateMachine").items():
        if not logical_id.startswith(MONITOR_MACHINES):
            continue
        path = tmp_path / f"{logical_id}.asl.json"
        path.write_text(render_tokens(machine["Properties"]["DefinitionString"]))
        result = subprocess.run(
            ["npx", "--no-install", "asl-validator", "--json-path", str(path)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
