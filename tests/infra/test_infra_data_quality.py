"""Model Monitor on the Serving endpoint, only on opt-in ('monitoring.model_monitor'): prod (data
capture on, once a model is released) then gets a data-quality job definition on the region's
analyzer image, an hourly schedule and a drift alarm into the failure topic; by default none of
them (AWS: "Amazon SageMaker Model Monitor is no longer open to new customers")."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from aws_cdk import Environment, Stack
from aws_cdk.assertions import Match, Template

from mlstack.app import build_app
from mlstack.config import parse_environment
from mlstack.constructs import BucketLayout, DataBucket, DataQualityMonitor, DriftAlarm
from mlstack.constructs.data_quality_monitor import MODEL_MONITOR_ACCOUNTS
from tests.infra.conftest import REPO, SynthesizedApp, new_app, synthesized_app

JOB_DEFINITION_ID = "DataQualityJobDefinition4C800B79"
SCHEDULE_ID = "DataQualityAF0361AE"
ENDPOINT_NAME = {"Fn::GetAtt": ["EndpointEEF1FD8F", "EndpointName"]}


def resources_of(template: dict[str, Any], kind: str) -> dict[str, Any]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


MODEL_MONITOR_TYPES = (
    "AWS::SageMaker::DataQualityJobDefinition",
    "AWS::SageMaker::MonitoringSchedule",
)


@pytest.fixture(scope="module")
def opted_in(tmp_path_factory: pytest.TempPathFactory) -> SynthesizedApp:
    """Released prod with Model Monitor on ('monitoring.model_monitor': true)."""
    return synthesized_app(tmp_path_factory, {"prod": prod_with({"model_monitor": True})})


@pytest.fixture(scope="module")
def serving(opted_in: SynthesizedApp) -> dict[str, Any]:
    return opted_in.json("prod", "serving")


def monitored_stack(region: str | None, **props: Any) -> Stack:
    env = Environment(account="123456789012", region=region) if region else None
    stack = Stack(new_app(), "Monitored", env=env)
    data = DataBucket(stack, "Data")
    DataQualityMonitor(
        stack,
        "Monitor",
        endpoint_name="my-endpoint",
        bucket=data.bucket,
        key=data.key,
        feature_count=2,
        schedule_name="my-endpoint-data-quality",
        **props,
    )
    return stack


def prod_with(monitoring: dict[str, Any]) -> Any:
    data = json.loads((REPO / "environments" / "prod.json").read_text())
    data["endpoint"]["model_package_version"] = 1
    data["monitoring"] = monitoring
    return parse_environment("prod", data)


def test_logical_ids_are_pinned(serving):
    assert set(resources_of(serving, "AWS::SageMaker::DataQualityJobDefinition")) == {
        JOB_DEFINITION_ID
    }
    assert set(resources_of(serving, "AWS::SageMaker::MonitoringSchedule")) == {SCHEDULE_ID}


def test_schedule_is_hourly_data_quality_on_the_serving_endpoint(serving):
    schedule = serving["Resources"][SCHEDULE_ID]["Properties"]
    assert schedule["MonitoringScheduleName"] == "mlstack-prod-data-quality"
    assert schedule["EndpointName"] == ENDPOINT_NAME
    config = schedule["MonitoringScheduleConfig"]
    assert config["MonitoringType"] == "DataQuality"
    assert config["ScheduleConfig"] == {"ScheduleExpression": "cron(0 * ? * * *)"}
    # The definition's name, which CloudFormation generates: the last part of its ARN.
    arn = {"Fn::GetAtt": [JOB_DEFINITION_ID, "JobDefinitionArn"]}
    assert config["MonitoringJobDefinitionName"] == {"Fn::Select": [1, {"Fn::Split": ["/", arn]}]}


def test_job_definition_compares_captured_requests_with_the_latest_baseline(serving):
    job = serving["Resources"][JOB_DEFINITION_ID]["Properties"]
    endpoint_input = job["DataQualityJobInput"]["EndpointInput"]
    assert endpoint_input["EndpointName"] == ENDPOINT_NAME
    assert endpoint_input["LocalPath"] == "/opt/ml/processing/input/endpoint"
    baseline = job["DataQualityBaselineConfig"]
    constraints = baseline["ConstraintsResource"]["S3Uri"]["Fn::Join"][1][-1]
    statistics = baseline["StatisticsResource"]["S3Uri"]["Fn::Join"][1][-1]
    assert constraints == "/baselines/latest/constraints.json"
    assert statistics == "/baselines/latest/statistics.json"
    output = job["DataQualityJobOutputConfig"]
    assert "/baselines/reports/mlstack-prod-data-quality/" in json.dumps(output)
    assert "KmsKeyId" in output


def test_job_definition_runs_the_regions_analyzer_image(serving):
    image = serving["Resources"][JOB_DEFINITION_ID]["Properties"]["DataQualityAppSpecification"]
    assert image["ImageUri"] == {
        "Fn::Join": [
            "",
            [
                {"Fn::FindInMap": ["ModelMonitorAccounts", {"Ref": "AWS::Region"}, "account"]},
                ".dkr.ecr.",
                {"Ref": "AWS::Region"},
                ".",
                {"Ref": "AWS::URLSuffix"},
                "/sagemaker-model-monitor-analyzer",
            ],
        ]
    }
    mapping = serving["Mappings"]["ModelMonitorAccounts"]
    # AWS's "Amazon SageMaker Model Monitor prebuilt container" page gives the us-west-2 example
    # 159807026194.dkr.ecr.us-west-2.amazonaws.com/sagemaker-model-monitor-analyzer.
    assert mapping["us-west-2"] == {"account": "159807026194"}
    assert mapping["us-east-1"] == {"account": "156813124566"}
    assert len(mapping) == len(MODEL_MONITOR_ACCOUNTS)


def test_job_definition_is_encrypted_isolated_and_in_the_vpc(serving):
    job = serving["Resources"][JOB_DEFINITION_ID]["Properties"]
    cluster = job["JobResources"]["ClusterConfig"]
    assert cluster["InstanceType"] == "ml.m5.large" and cluster["InstanceCount"] == 1
    assert "VolumeKmsKeyId" in cluster
    network = job["NetworkConfig"]
    assert network["EnableNetworkIsolation"] is True
    assert network["EnableInterContainerTrafficEncryption"] is True
    assert network["VpcConfig"]["Subnets"] and network["VpcConfig"]["SecurityGroupIds"]
    assert job["StoppingCondition"] == {"MaxRuntimeInSeconds": 1800}


def test_monitor_role_reads_capture_and_baseline_and_writes_reports_only(serving):
    role_id = serving["Resources"][JOB_DEFINITION_ID]["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    (policy,) = [
        p
        for p in resources_of(serving, "AWS::IAM::Policy").values()
        if p["Properties"]["Roles"] == [{"Ref": role_id}]
    ]
    statements = {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    read = json.dumps(statements["ReadCaptureAndBaseline"]["Resource"])
    assert "/data-capture/*" in read and "/baselines/latest/*" in read
    assert statements["ReadCaptureAndBaseline"]["Action"] == "s3:GetObject"
    write = json.dumps(statements["WriteReports"]["Resource"])
    assert "/baselines/reports/mlstack-prod-data-quality/*" in write
    assert "/baselines/latest" not in write
    # Only the VPC-mode Describe calls, which have no resource-level permissions, take '*'.
    wildcard = [s["Action"] for s in statements.values() if s["Resource"] == "*"]
    assert all(a.startswith("ec2:Describe") for actions in wildcard for a in actions), wildcard


def test_drift_alarm_notifies_the_failure_topic(opted_in: SynthesizedApp):
    drift0 = {
        "Id": "drift0",
        "MetricStat": {
            "Metric": {
                "Namespace": "aws/sagemaker/Endpoints/data-metrics",
                # prod captures output too: the prediction is _c0, the features _c1 and _c2.
                "MetricName": "feature_baseline_drift__c1",
                "Dimensions": Match.array_with(
                    [
                        {"Name": "Endpoint", "Value": "mlstack-prod"},
                        {"Name": "MonitoringSchedule", "Value": "mlstack-prod-data-quality"},
                    ]
                ),
            },
            "Period": 3600,
            "Stat": "Maximum",
        },
        "ReturnData": False,
    }
    opted_in.template("prod", "workflow").has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": 0.1,
            "TreatMissingData": "notBreaching",
            "AlarmActions": [{"Ref": Match.string_like_regexp("WorkflowFailureTopic")}],
            "Metrics": Match.array_with(
                [Match.object_like({"Expression": "MAX([drift0, drift1])"}), drift0]
            ),
        },
    )


def test_released_prod_has_no_model_monitor_resource_by_default(released: SynthesizedApp):
    # A fresh account cannot create them ("Amazon SageMaker Model Monitor availability
    # change", SageMaker developer guide): they would roll back the Serving stack.
    serving = released.json("prod", "serving")
    for kind in MODEL_MONITOR_TYPES:
        assert resources_of(serving, kind) == {}
    assert "sagemaker-model-monitor-analyzer" not in json.dumps(serving)
    assert "Model Monitor data-quality jobs" not in json.dumps(serving)  # its role
    assert released.stages["prod"].serving.monitor is None  # type: ignore[union-attr]
    assert "feature_baseline_drift" not in json.dumps(released.json("prod", "workflow"))


def test_no_monitoring_without_capture_or_released_model(synthesized: SynthesizedApp):
    # Shipped prod has no released model (no Serving stack), dev no data capture.
    assert synthesized.stages["prod"].serving is None
    assert "feature_baseline_drift" not in json.dumps(synthesized.json("dev", "workflow"))
    assert "feature_baseline_drift" not in json.dumps(synthesized.json("prod", "workflow"))


def test_a_known_region_gets_its_literal_image():
    template = Template.from_stack(monitored_stack("eu-west-1"))
    uri = {
        "Fn::Join": [
            "",
            [
                "468650794304.dkr.ecr.eu-west-1.",
                {"Ref": "AWS::URLSuffix"},
                "/sagemaker-model-monitor-analyzer",
            ],
        ]
    }
    template.has_resource_properties(
        "AWS::SageMaker::DataQualityJobDefinition",
        {"DataQualityAppSpecification": {"ImageUri": uri}},
    )
    assert "Mappings" not in template.to_json()


def test_an_unknown_region_fails_synth_naming_it():
    expected = "no Model Monitor analyzer image is known for region 'xx-moon-1'"
    with pytest.raises(ValueError, match=re.escape(expected)):
        monitored_stack("xx-moon-1")


def test_a_bare_stack_monitor_creates_no_alarm_without_a_topic():
    template = Template.from_stack(monitored_stack(None))
    template.resource_count_is("AWS::CloudWatch::Alarm", 0)
    template.resource_count_is("AWS::SageMaker::MonitoringSchedule", 1)


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({"schedule_expression": "rate(1 hour)"}, "schedule_expression='rate(1 hour)'"),
        ({"drift_threshold": 1.5}, "drift_threshold=1.5"),
        ({"baseline_prefix": "/baselines/x/"}, "baseline_prefix='/baselines/x/'"),
        ({"instance_type": "large"}, "instance_type='large'"),
    ],
)
def test_bad_monitor_props_name_the_prop(props, message):
    with pytest.raises(ValueError, match=re.escape(f"DataQualityMonitor {message}")):
        monitored_stack(None, **props)


def test_drift_alarm_takes_at_most_ten_features():
    with pytest.raises(ValueError, match="DriftAlarm feature_count=11: expected 1 to 10"):
        DriftAlarm(
            Stack(new_app(), "S"), "D", endpoint_name="e", schedule_name="s", feature_count=11
        )


def test_config_baseline_outside_baselines_fails_synth_naming_the_key(tmp_path):
    config = prod_with({"baseline": "releases/v1/", "model_monitor": True})
    expected = "monitoring.baseline 'releases/v1/': expected a prefix under 'baselines/'"
    with pytest.raises(ValueError, match=re.escape(expected)):
        build_app(new_app(outdir=str(tmp_path)), environments={"prod": config})


def test_config_schedule_threshold_and_baseline_reach_the_templates(tmp_path):
    config = prod_with(
        {
            "schedule_expression": "cron(0 0/6 ? * * *)",
            "drift_threshold": 0.25,
            "baseline": "baselines/0123abcd/",
            "model_monitor": True,
        }
    )
    app = build_app(new_app(outdir=str(tmp_path)), environments={"prod": config})
    stage = app.node.find_child("prod")
    serving = Template.from_stack(stage.serving)  # type: ignore[attr-defined]
    serving.has_resource_properties(
        "AWS::SageMaker::MonitoringSchedule",
        {
            "MonitoringScheduleConfig": Match.object_like(
                {"ScheduleConfig": {"ScheduleExpression": "cron(0 0/6 ? * * *)"}}
            )
        },
    )
    assert "/baselines/0123abcd/constraints.json" in json.dumps(serving.to_json())
    workflow = Template.from_stack(stage.workflow)  # type: ignore[attr-defined]
    workflow.has_resource_properties("AWS::CloudWatch::Alarm", {"Threshold": 0.25})
    assert BucketLayout().baselines == "baselines/"


def test_input_only_capture_drops_the_label_and_watches_from_c0(tmp_path):
    data = json.loads((REPO / "environments" / "prod.json").read_text())
    data["endpoint"]["model_package_version"] = 1
    data["endpoint"]["data_capture"]["capture"] = "input"
    data["monitoring"] = {"model_monitor": True}
    app = build_app(
        new_app(outdir=str(tmp_path)), environments={"prod": parse_environment("prod", data)}
    )
    workflow = Template.from_stack(app.node.find_child("prod").workflow)  # type: ignore[attr-defined]
    text = json.dumps(workflow.to_json())
    assert "feature_baseline_drift__c0" in text and "feature_baseline_drift__c2" not in text
    assert '\\"--label\\",\\"drop\\"' in text


def test_output_only_capture_has_no_data_quality_schedule(tmp_path):
    data = json.loads((REPO / "environments" / "prod.json").read_text())
    data["endpoint"]["model_package_version"] = 1
    data["endpoint"]["data_capture"]["capture"] = "output"
    data["monitoring"] = {"model_monitor": True}
    app = build_app(
        new_app(outdir=str(tmp_path)), environments={"prod": parse_environment("prod", data)}
    )
    stage = app.node.find_child("prod")
    assert stage.serving.monitor is None  # type: ignore[attr-defined]
    Template.from_stack(stage.serving).resource_count_is(  # type: ignore[attr-defined]
        "AWS::SageMaker::MonitoringSchedule", 0
    )
