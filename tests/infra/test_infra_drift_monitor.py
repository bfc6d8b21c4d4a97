"""Our drift monitor (issue #21): released prod (data capture on) gets a schedule, a state machine
that runs the training image's `monitor` program on the window's captured data and publishes its
metric data to CloudWatch, and alarms on those metrics; the JSONata states evaluated by the real
JSONata engine (the npm package asl-validator carries), the requests against botocore's models."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime, timedelta
from typing import Any

import botocore.session
import pytest
from aws_cdk import Duration, Stack
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Match, Template

from mlstack.app import build_app
from mlstack.config import parse_environment
from mlstack.constructs import BucketLayout, DataBucket, DriftMonitor, MonitorSettings
from mlstack.constructs._state_builder import StateBuilder
from mlstack.constructs.drift_monitor import MONITOR_STATES, window_hours
from tests.infra.conftest import REPO, SynthesizedApp, environment_file, new_app

NODE_JSONATA = REPO / "node_modules" / "jsonata"
PREFIX = "mlstack-test"


@pytest.fixture(scope="module")
def workflow(released: SynthesizedApp) -> dict[str, Any]:
    return released.json("prod", "workflow")


def resolved_definition(template: dict[str, Any]) -> dict[str, Any]:
    """The drift monitor's definition with each token replaced by a placeholder string."""
    (machine,) = [
        r
        for k, r in template["Resources"].items()
        if k.startswith(("DriftMonitor", "Monitor"))
        and r["Type"] == "AWS::StepFunctions::StateMachine"
    ]
    body = machine["Properties"]["DefinitionString"]
    parts = body["Fn::Join"][1] if isinstance(body, dict) else [body]
    text = "".join(p if isinstance(p, str) else "TOKEN" for p in parts)
    return json.loads(text)  # type: ignore[no-any-return]


def evaluate(expression: str, state_input: Any) -> Any:
    """``expression`` (a ``{% ... %}`` JSONata string) evaluated by the JSONata engine, with
    ``$states.input`` bound as Step Functions binds it."""
    assert expression.startswith("{%") and expression.endswith("%}")
    script = (
        f"const jsonata = require({json.dumps(str(NODE_JSONATA))});"
        "let d='';process.stdin.on('data',c=>d+=c).on('end',async()=>{"
        "const {e, i} = JSON.parse(d);"
        "const r = await jsonata(e).evaluate({}, {states: {input: i}});"
        "process.stdout.write(JSON.stringify(r === undefined ? null : r));});"
    )
    done = subprocess.run(
        ["node", "-e", script],
        input=json.dumps({"e": expression[2:-2], "i": state_input}),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


def test_the_states_are_the_monitors(workflow: dict[str, Any]) -> None:
    definition = resolved_definition(workflow)
    names = set(definition["States"]) | set(
        definition["States"]["Find captured data"]["ItemProcessor"]["States"]
    )
    assert names == set(MONITOR_STATES)
    assert definition["StartAt"] == "Compute window"


def test_the_schedule_starts_it_with_the_scheduled_time(released: SynthesizedApp) -> None:
    # EventBridge Scheduler's context attribute ("Adding context attributes to your target").
    released.template("prod", "workflow").has_resource_properties(
        "AWS::Scheduler::Schedule",
        {
            "ScheduleExpression": "cron(0 * ? * * *)",
            "Target": Match.object_like(
                {
                    "Input": json.dumps(
                        {"scheduled_time": "<aws.scheduler.scheduled-time>"}, separators=(",", ":")
                    )
                }
            ),
        },
    )


@pytest.mark.parametrize(
    ("expression", "hours"),
    [("cron(0 * ? * * *)", 1), ("cron(0 0/6 ? * * *)", 6), ("cron(0 8 ? * * *)", 24)],
)
def test_a_window_spans_the_schedules_period(expression: str, hours: int) -> None:
    assert window_hours(expression) == hours


def window_state(hours: int) -> str:
    stack = monitor_stack(
        schedule_expression=f"cron(0 0/{hours} ? * * *)" if hours < 24 else "cron(0 8 ? * * *)"
    )
    definition = resolved_definition(Template.from_stack(stack).to_json())
    return definition["States"]["Compute window"]["Output"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("hours", "scheduled", "folder"),
    [
        # SageMaker's capture layout: <endpoint>/<variant>/yyyy/mm/dd/hh/ ("Capture data from
        # real-time endpoint"); the deepest folder holding both ends of the window.
        (1, "2026-12-07T14:00:00Z", "2026/12/07/"),
        (1, "2026-12-08T00:00:00Z", "2026/12/"),
        (24, "2026-12-01T08:00:00Z", "2026/"),
        (24, "2027-01-01T08:00:00Z", ""),
        (6, "2026-12-07T18:00:00Z", "2026/12/07/"),
    ],
)
def test_the_window_ends_at_the_scheduled_time(hours: int, scheduled: str, folder: str) -> None:
    end = datetime.fromisoformat(scheduled)
    start = end - timedelta(hours=hours)
    out = evaluate(window_state(hours), {"scheduled_time": scheduled})
    iso = "%Y-%m-%dT%H:%M:%S.000Z"
    assert out["window"] == {
        "start": start.astimezone(UTC).strftime(iso),
        "end": end.astimezone(UTC).strftime(iso),
        "stamp": end.strftime("%Y%m%dT%H%MZ"),
        "folder": folder,
    }
    # A SageMaker job name part (botocore: ProcessingJobName's pattern).
    assert re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", out["run_id"])
    assert out["candidates"] == [
        {
            "name": "capture-AllTraffic",
            "prefix": f"data-capture/my-endpoint/AllTraffic/{folder}",
            "local": "/opt/ml/processing/input/capture/AllTraffic",
        },
        {
            "name": "ground_truth",
            "prefix": f"ground-truth/{folder[:11]}",
            "local": "/opt/ml/processing/input/ground_truth",
        },
    ]


def choose_inputs(found: list[tuple[str, int]]) -> Any:
    definition = resolved_definition(Template.from_stack(monitor_stack()).to_json())
    candidates = {
        "capture-AllTraffic": "/opt/ml/processing/input/capture/AllTraffic",
        "capture-B": "/opt/ml/processing/input/capture/B",
        "ground_truth": "/opt/ml/processing/input/ground_truth",
    }
    state_input = {
        "run_id": "20261207T1400Z",
        "found": [
            {"name": n, "prefix": f"p/{n}/", "local": candidates[n], "listed": {"KeyCount": k}}
            for n, k in found
        ],
    }
    return evaluate(definition["States"]["Choose inputs"]["Output"], state_input)


def test_only_prefixes_that_hold_objects_become_inputs() -> None:
    # An empty S3 prefix fails a SageMaker job's input download ("No S3 objects found under
    # S3 URL", CreateTrainingJob/CreateProcessingJob): a quiet variant is left out.
    out = choose_inputs([("capture-AllTraffic", 1), ("capture-B", 0), ("ground_truth", 1)])
    assert out["captured"] == 1
    assert [i["InputName"] for i in out["inputs"]] == [
        "baseline",
        "capture-AllTraffic",
        "ground_truth",
    ]
    locals_ = [i["S3Input"]["LocalPath"] for i in out["inputs"]]
    assert len(set(locals_)) == len(locals_)  # each input needs its own LocalPath
    assert out["run_id"] == "20261207T1400Z"  # the rest of the input is kept


def test_a_quiet_window_runs_no_job() -> None:
    out = choose_inputs([("capture-AllTraffic", 0), ("ground_truth", 1)])
    assert out["captured"] == 0
    definition = resolved_definition(Template.from_stack(monitor_stack()).to_json())
    choice = definition["States"]["Any captured data?"]
    assert choice["Choices"] == [
        {"Variable": "$.captured", "NumericGreaterThan": 0, "Next": "Monitor endpoint"}
    ]
    assert definition["States"][choice["Default"]]["Type"] == "Succeed"


def test_the_processing_inputs_match_botocores_shape() -> None:
    out = choose_inputs([("capture-AllTraffic", 1), ("capture-B", 1), ("ground_truth", 1)])
    model = botocore.session.get_session().get_service_model("sagemaker")
    shape = model.operation_model("CreateProcessingJob").input_shape.members["ProcessingInputs"]
    assert len(out["inputs"]) <= shape.metadata["max"]
    s3_input = shape.member.members["S3Input"]
    for item in out["inputs"]:
        assert set(item) <= set(shape.member.members)
        assert set(item["S3Input"]) <= set(s3_input.members)
        for key in ("S3InputMode", "S3DataType", "S3DataDistributionType"):
            assert item["S3Input"][key] in s3_input.members[key].enum


def test_the_job_runs_monitor_isolated_in_the_vpc(workflow: dict[str, Any]) -> None:
    job = resolved_definition(workflow)["States"]["Monitor endpoint"]
    assert job["Resource"].endswith(":states:::sagemaker:createProcessingJob.sync")
    parameters = job["Parameters"]
    assert parameters["AppSpecification"]["ContainerEntrypoint"] == ["monitor"]
    assert parameters["NetworkConfig"]["EnableNetworkIsolation"] is True
    assert set(parameters["NetworkConfig"]["VpcConfig"]) == {"SecurityGroupIds", "Subnets"}
    assert parameters["ProcessingInputs.$"] == "$.inputs"
    (output,) = parameters["ProcessingOutputConfig"]["Outputs"]
    assert output["S3Output"]["LocalPath"] == "/opt/ml/processing/output/report"
    assert "/monitoring/mlstack-prod/{}/" in output["S3Output"]["S3Uri.$"]
    assert job["Retry"][0]["ErrorEquals"] == ["SageMaker.AmazonSageMakerException"]
    assert job["Catch"][0]["Next"] == "Notify monitor failure"


def test_the_jobs_arguments_are_the_configs(workflow: dict[str, Any]) -> None:
    # prod.json sets no monitoring thresholds: the contract's defaults; prod is binary
    # ('reg:logistic'), so its quality metric is AUC.
    assert "monitoring" not in environment_file("prod")
    arguments = resolved_definition(workflow)["States"]["Monitor endpoint"]["Parameters"][
        "AppSpecification"
    ]["ContainerArguments.$"]
    assert arguments == (
        "States.Array('--window-start', $.window.start, '--window-end', $.window.end, "
        "'--endpoint', 'mlstack-prod', '--min-records', '100', '--psi-threshold', '0.2', "
        "'--p-value', '0.01', '--drifted-share-percent', '30', '--quality-metric', 'AUC')"
    )


def test_the_metric_data_is_read_and_published_in_the_environments_namespace(
    workflow: dict[str, Any],
) -> None:
    states = resolved_definition(workflow)["States"]
    cloudwatch = botocore.session.get_session().get_service_model("cloudwatch")
    s3 = botocore.session.get_session().get_service_model("s3")
    read, publish = states["Read metrics"], states["Publish metrics"]
    assert read["Resource"].endswith(":states:::aws-sdk:s3:getObject")
    members = s3.operation_model("GetObject").input_shape.members
    assert {k.removesuffix(".$") for k in read["Parameters"]} <= set(members)
    assert read["Parameters"]["Key.$"] == (
        "States.Format('monitoring/mlstack-prod/{}/metric_data.json', $.window.stamp)"
    )
    assert publish["Resource"].endswith(":states:::aws-sdk:cloudwatch:putMetricData")
    members = cloudwatch.operation_model("PutMetricData").input_shape.members
    assert {k.removesuffix(".$") for k in publish["Parameters"]} <= set(members)
    assert publish["Parameters"] == {
        "Namespace": "mlstack/prod",
        "MetricData.$": "$.report.metric_data.MetricData",
    }


def policy_statements(template: dict[str, Any], role_prefix: str) -> list[dict[str, Any]]:
    return [
        s
        for k, r in template["Resources"].items()
        if k.startswith(role_prefix) and r["Type"] == "AWS::IAM::Policy"
        for s in r["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_metrics_go_only_to_the_environments_namespace(workflow: dict[str, Any]) -> None:
    statements = policy_statements(workflow, "DriftMonitorRoleDefaultPolicy")
    (put,) = [s for s in statements if "cloudwatch:PutMetricData" in json.dumps(s["Action"])]
    assert put["Condition"] == {"StringEquals": {"cloudwatch:namespace": "mlstack/prod"}}
    actions = {
        a
        for s in statements
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert {
        "sagemaker:CreateProcessingJob",
        "s3:ListBucket",
        "s3:GetObject",
        "sns:Publish",
    } <= actions
    assert "s3:PutObject" not in actions


def test_the_job_role_writes_only_the_endpoints_reports(workflow: dict[str, Any]) -> None:
    statements = policy_statements(workflow, "DriftMonitorJobRoleDefaultPolicy")
    (write,) = [s for s in statements if s.get("Sid") == "WriteReports"]
    assert "/monitoring/mlstack-prod/*" in json.dumps(write["Resource"])


def test_the_drift_alarm_watches_the_drifted_share(released: SynthesizedApp) -> None:
    released.template("prod", "workflow").has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Namespace": "mlstack/prod",
            "MetricName": "DriftedFeatureShare",
            "Dimensions": [{"Name": "Endpoint", "Value": "mlstack-prod"}],
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "Threshold": 30,
            "Period": 3600,
            "TreatMissingData": "notBreaching",
            "AlarmActions": [{"Ref": Match.string_like_regexp("WorkflowFailureTopic")}],
        },
    )


def test_no_quality_alarm_without_a_threshold(workflow: dict[str, Any]) -> None:
    assert "QualityAlarm" not in json.dumps(sorted(workflow["Resources"]))


def test_dev_without_capture_has_no_monitor(synthesized: SynthesizedApp) -> None:
    assert "DriftMonitor" not in json.dumps(
        sorted(synthesized.json("dev", "workflow")["Resources"])
    )


# --- the construct in a bare stack -------------------------------------------------------------


def monitor_stack(**props: Any) -> Stack:
    stack = Stack(new_app(), "Monitored")
    data = DataBucket(stack, "Data")
    topic = sns.Topic(stack, "Topic", master_key=data.key)
    builder = StateBuilder(
        name_prefix=PREFIX,
        bucket_name=data.bucket.bucket_name,
        layout=BucketLayout(),
        key_arn=data.key.key_arn,
        role_arn="arn:aws:iam::123456789012:role/unused",
        network_isolation=True,
        max_attempts=3,
    )
    DriftMonitor(
        stack,
        "Monitor",
        builder=builder,
        training_image_uri="123456789012.dkr.ecr.eu-west-1.amazonaws.com/training:1",
        bucket=data.bucket,
        key=data.key,
        topic=topic,
        endpoint_name="my-endpoint",
        variant_names=props.pop("variant_names", ["AllTraffic"]),
        namespace="mlstack/test",
        **props,
    )
    return stack


@pytest.mark.parametrize(
    ("metric", "threshold", "operator", "statistic"),
    [
        ("AUC", 0.8, "LessThanThreshold", "Minimum"),
        ("RMSE", 0.3, "GreaterThanThreshold", "Maximum"),
    ],
)
def test_a_quality_threshold_adds_an_alarm_in_the_metrics_direction(
    metric: str, threshold: float, operator: str, statistic: str
) -> None:
    stack = monitor_stack(
        settings=MonitorSettings(quality_metric=metric, quality_threshold=threshold)
    )
    Template.from_stack(stack).has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "MetricName": metric,
            "Threshold": threshold,
            "ComparisonOperator": operator,
            "Statistic": statistic,
            "TreatMissingData": "notBreaching",
        },
    )


@pytest.mark.parametrize(
    ("props", "message"),
    [
        (
            {"schedule_expression": "rate(1 hour)"},
            "DriftMonitor schedule_expression='rate(1 hour)'",
        ),
        (
            {"max_runtime": Duration.hours(2)},
            "DriftMonitor max_runtime=7200s: expected 1 s to the window (3600 s)",
        ),
        ({"variant_names": []}, "DriftMonitor variant_names=[]"),
        ({"volume_size_gb": 0}, "DriftMonitor volume_size_gb=0"),
    ],
)
def test_bad_monitor_props_name_the_prop(props: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        monitor_stack(**props)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"psi_threshold": 0},
            "MonitorSettings psi_threshold=0: expected a number from 0.001 to 10",
        ),
        ({"quality_metric": "auc"}, "MonitorSettings quality_metric='auc'"),
        (
            {"quality_threshold": 0.5},
            "MonitorSettings quality_threshold=0.5: expected a quality_metric",
        ),
    ],
)
def test_bad_settings_name_the_setting(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        MonitorSettings(**settings)


def test_a_baseline_outside_baselines_fails_synth_naming_the_key(tmp_path: Any) -> None:
    # Checked for the drift monitor too, not only for Model Monitor's opt-in.
    data = environment_file("prod")
    data["endpoint"]["model_package_version"] = 1
    data["monitoring"] = {"baseline": "releases/v1/"}
    expected = "monitoring.baseline 'releases/v1/': expected a prefix under 'baselines/'"
    with pytest.raises(ValueError, match=re.escape(expected)):
        build_app(
            new_app(outdir=str(tmp_path)), environments={"prod": parse_environment("prod", data)}
        )
