"""Operations per environment: retraining schedule, alarms, dashboard, and the IAM of each."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from mlstack.config import parse_environment
from mlstack.stacks import MlStackStage
from tests.infra.conftest import (
    REPO,
    SynthesizedApp,
    environment_file,
    new_app,
    training_machine_id,
)


def resources(template: dict[str, Any], type_: str) -> dict[str, Any]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_}


def statements_by_sid(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {}
    for policy in resources(template, "AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if "Sid" in statement:
                found[statement["Sid"]] = statement
    return found


def tail(resource: Any) -> str:
    """The literal end of an ARN built with Fn::Join."""
    return str(resource["Fn::Join"][1][-1])


# --- schedule -----------------------------------------------------------------------------


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_schedule_starts_the_workflow_per_environment(
    synthesized: SynthesizedApp, env: str
) -> None:
    schedule_config = environment_file(env)["schedule"]
    template = synthesized.json(env, "workflow")
    (schedule,) = resources(template, "AWS::Scheduler::Schedule").values()
    props = schedule["Properties"]
    # AWS::Scheduler::Schedule State: ENABLED or DISABLED (CloudFormation reference).
    assert props["State"] == ("ENABLED" if schedule_config["enabled"] else "DISABLED")
    assert props["ScheduleExpression"] == schedule_config["expression"]
    machine = training_machine_id(template)
    assert props["Target"]["Arn"] == {"Ref": machine}
    assert json.loads(props["Target"]["Input"]) == schedule_config["input"]


def test_schedule_role_may_only_start_this_state_machine(synthesized: SynthesizedApp) -> None:
    template = synthesized.json("prod", "workflow")
    (schedule,) = resources(template, "AWS::Scheduler::Schedule").values()
    role_id = schedule["Properties"]["Target"]["RoleArn"]["Fn::GetAtt"][0]
    role = template["Resources"][role_id]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
    policies = [
        p for p in resources(template, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
    ]  # fmt: skip
    (statement,) = [s for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]]
    machine = training_machine_id(template)
    assert statement == {
        "Action": "states:StartExecution",
        "Effect": "Allow",
        "Resource": {"Ref": machine},
    }


@pytest.fixture(scope="module")
def bare_stage() -> MlStackStage:
    """An environment without the optional sections: no deploy stage, tuning or schedule."""
    raw = json.loads((REPO / "environments" / "dev.json").read_text())
    for key in ("deploy", "tuning", "schedule", "alarms"):
        del raw[key]
    return MlStackStage(new_app(), "bare", config=parse_environment("bare", raw))


def test_optional_sections_are_off_by_default(
    bare_stage: MlStackStage, synthesized: SynthesizedApp
) -> None:
    template = Template.from_stack(bare_stage.workflow).to_json()
    assert resources(template, "AWS::Scheduler::Schedule") == {}
    machine = next(iter(resources(template, "AWS::StepFunctions::StateMachine").values()))
    definition = json.dumps(machine["Properties"]["DefinitionString"])
    dev = json.dumps(synthesized.json("dev", "workflow"))
    for state in ("Tune model", "Quality gate", "Update endpoint"):
        assert state in dev
        assert state not in definition
    sids = statements_by_sid(template)
    assert not {"DeployEndpoint", "RunTuningJobs", "ReadRollbackAlarms"} & set(sids)
    # The execution alarms and the dashboard are always there.
    assert len(resources(template, "AWS::CloudWatch::Alarm")) == 2
    assert len(resources(template, "AWS::CloudWatch::Dashboard")) == 1


# --- alarms and dashboard -----------------------------------------------------------------


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_failed_and_timed_out_executions_alarm_the_topic(
    synthesized: SynthesizedApp, env: str
) -> None:
    template = synthesized.template(env, "workflow")
    topic = next(iter(template.find_resources("AWS::SNS::Topic")))
    for metric in ("ExecutionsFailed", "ExecutionsTimedOut"):
        template.has_resource_properties(
            "AWS::CloudWatch::Alarm",
            {
                "MetricName": metric,
                "Namespace": "AWS/States",
                "Threshold": 1,
                "AlarmActions": [{"Ref": topic}],
                "TreatMissingData": "notBreaching",
            },
        )


@pytest.mark.parametrize(
    ("env", "endpoints", "count", "latency_us"),
    [
        ("dev", {"mlstack-dev-live": {"Live"}}, 2 + 3, 2_000_000),
        (
            "prod",
            {"mlstack-prod-live": {"Live", "Candidate"}, "mlstack-prod": {"AllTraffic"}},
            2 + 6 + 3 + 1,  # + the Serving endpoint's drift alarm (docs/monitoring.md)
            500_000,
        ),
    ],
)
def test_endpoint_alarms_per_variant(
    request: pytest.FixtureRequest,
    env: str,
    endpoints: dict[str, set[str]],
    count: int,
    latency_us: int,
) -> None:
    # prod's Serving endpoint (mlstack-prod) exists once a model is released.
    source = request.getfixturevalue("released" if env == "prod" else "synthesized")
    template = source.json(env, "workflow")
    alarms = resources(template, "AWS::CloudWatch::Alarm").values()
    assert len(alarms) == count
    seen: dict[str, set[str]] = {}
    for alarm in alarms:
        props = alarm["Properties"]
        assert len(props["AlarmActions"]) == 1  # the notification topic
        dimension_lists = [props.get("Dimensions", [])] + [
            m["MetricStat"]["Metric"].get("Dimensions", [])
            for m in props.get("Metrics", [])
            if "MetricStat" in m
        ]
        for dimensions in dimension_lists:
            dims = {d["Name"]: d["Value"] for d in dimensions}
            if "EndpointName" in dims:
                seen.setdefault(dims["EndpointName"], set()).add(dims["VariantName"])
        if props.get("MetricName") == "ModelLatency":
            assert props["Threshold"] == latency_us
            assert props["ExtendedStatistic"] == "p99"
    assert seen == endpoints


def test_error_rate_alarms_divide_errors_by_invocations(synthesized: SynthesizedApp) -> None:
    template = synthesized.template("dev", "workflow")
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Threshold": 5,
            "Metrics": Match.array_with(
                [Match.object_like({"Expression": "100 * errors_5xx_live / invocations_5xx_live"})]
            ),
        },
    )


@pytest.mark.parametrize(
    ("env", "names"),
    [("dev", ["mlstack-dev-live"]), ("prod", ["mlstack-prod", "mlstack-prod-live"])],
)
def test_one_dashboard_per_environment_with_workflow_and_endpoints(
    request: pytest.FixtureRequest, env: str, names: list[str]
) -> None:
    source = request.getfixturevalue("released" if env == "prod" else "synthesized")
    template = source.json(env, "workflow")
    (dashboard,) = resources(template, "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    assert "Workflow executions" in body
    for name in names:
        assert f"{name}: invocations" in body
        assert f"{name}: error rates" in body


def test_alarms_may_publish_to_the_encrypted_topic(synthesized: SynthesizedApp) -> None:
    workflow = synthesized.template("dev", "workflow")
    workflow.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Sid": "CloudWatchAlarmsPublish",
                                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                                "Action": "sns:Publish",
                            }
                        )
                    ]
                )
            }
        },
    )
    synthesized.template("dev", "data").has_resource_properties(
        "AWS::KMS::Key",
        {
            "KeyPolicy": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Sid": "CloudWatchAlarmsEncryptNotifications",
                                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                            }
                        )
                    ]
                )
            }
        },
    )


# --- IAM of the new paths -----------------------------------------------------------------


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_state_machine_may_deploy_only_its_endpoint(synthesized: SynthesizedApp, env: str) -> None:
    sids = statements_by_sid(synthesized.json(env, "workflow"))
    configs = sids["CreateEndpointConfigs"]
    assert tail(configs["Resource"]).endswith(f":endpoint-config/mlstack-{env}-*")
    deploy = sids["DeployEndpoint"]
    assert set(deploy["Action"]) == {
        "sagemaker:CreateEndpoint",
        "sagemaker:UpdateEndpoint",
        "sagemaker:DescribeEndpoint",
        "sagemaker:AddTags",
        "sagemaker:ListTags",
    }
    ends = sorted(tail(r).rsplit(":", 1)[1] for r in deploy["Resource"])
    assert ends == [f"endpoint-config/mlstack-{env}-*", f"endpoint/mlstack-{env}-live"]
    alarms = sids["ReadRollbackAlarms"]
    assert alarms["Action"] == "cloudwatch:DescribeAlarms"
    assert all(r["Fn::GetAtt"][1] == "Arn" for r in alarms["Resource"])
    grant = sids["EncryptEndpointStorage"]
    assert grant["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_state_machine_may_run_only_its_tuning_jobs(synthesized: SynthesizedApp, env: str) -> None:
    sids = statements_by_sid(synthesized.json(env, "workflow"))
    tuning = sids["RunTuningJobs"]
    assert tail(tuning["Resource"]).endswith(f":hyper-parameter-tuning-job/mlstack-{env}-*")
    rules = [tail(r) for r in sids["SyncJobEventRules"]["Resource"]]
    assert ":rule/StepFunctionsGetEventsForSageMakerTuningJobsRule" in rules
    passing = sids["PassSageMakerRole"]
    assert passing["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }
