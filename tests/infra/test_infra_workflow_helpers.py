"""TrainingWorkflow's grant and metric helpers, used from a user's stack.

Expected values come from AWS documentation, not from the construct: Step Functions publishes
ExecutionsFailed, ExecutionsSucceeded (counts) and ExecutionTime (milliseconds) in the
AWS/States namespace with the StateMachineArn dimension ("Monitoring Step Functions metrics
using Amazon CloudWatch"); StartExecution, ListExecutions and DescribeStateMachine take the
stateMachine resource type, DescribeExecution and GetExecutionHistory the execution resource
type (Service Authorization Reference, "Actions defined by AWS Step Functions").
"""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Template

from mlstack.constructs import DataBucket, DatasetSeeder, ModelImages, TrainingWorkflow
from tests.infra.conftest import new_stack


@pytest.fixture(scope="module")
def helpers() -> tuple[dict[str, Any], str]:
    stack = new_stack("WorkflowHelpers")
    data = DataBucket(stack, "Data")
    seeder = DatasetSeeder(stack, "Seeder", bucket=data.bucket)
    workflow = TrainingWorkflow(
        stack,
        "Workflow",
        bucket=data.bucket,
        images=ModelImages(stack, "Images"),
        seed_function=seeder.function,
        name_prefix="demo",
    )
    starter = iam.Role(stack, "Starter", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    workflow.grant_start_execution(starter)
    reader = iam.Role(stack, "Reader", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    workflow.grant_read(reader)
    for name, metric in (
        ("Failed", workflow.metric_executions_failed()),
        ("Succeeded", workflow.metric_executions_succeeded()),
        ("Time", workflow.metric_execution_time()),
    ):
        metric.create_alarm(stack, name, threshold=1, evaluation_periods=1)
    data.grant_read_transform_output(reader)
    template = Template.from_stack(stack).to_json()
    return template, stack.get_logical_id(workflow.state_machine.node.default_child)


def statements_of(template: dict[str, Any], role_prefix: str) -> list[dict[str, Any]]:
    return [
        statement
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::IAM::Policy"
        and resource["Properties"]["Roles"][0]["Ref"].startswith(role_prefix)
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_grant_start_execution_allows_start_execution_of_this_state_machine_only(
    helpers: tuple[dict[str, Any], str],
) -> None:
    template, machine_id = helpers
    assert statements_of(template, "Starter") == [
        {"Action": "states:StartExecution", "Effect": "Allow", "Resource": {"Ref": machine_id}}
    ]


def test_grant_read_reads_this_state_machines_executions_and_nothing_on_star(
    helpers: tuple[dict[str, Any], str],
) -> None:
    template, machine_id = helpers
    statements = statements_of(template, "Reader")
    assert all(s["Resource"] != "*" for s in statements)
    by_actions = {tuple(sorted(_list(s["Action"]))): s["Resource"] for s in statements}
    assert by_actions[("states:DescribeStateMachine", "states:ListExecutions")] == {
        "Ref": machine_id
    }
    executions = by_actions[("states:DescribeExecution", "states:GetExecutionHistory")]
    parts = executions["Fn::Join"][1]
    assert ":states:" in parts and ":execution:" in parts and parts[-1] == ":*"
    assert {"Fn::GetAtt": [machine_id, "Name"]} in parts


def test_grant_read_transform_output_reads_only_that_prefix_and_decrypts(
    helpers: tuple[dict[str, Any], str],
) -> None:
    template, _ = helpers
    statements = statements_of(template, "Reader")
    s3_reads = [s for s in statements if "s3:GetObject*" in _list(s["Action"])]
    assert len(s3_reads) == 1
    objects = [r for r in _list(s3_reads[0]["Resource"]) if "Fn::Join" in r]
    assert [r["Fn::Join"][1][-1] for r in objects] == ["/transform-output/*"]
    assert any("kms:Decrypt" in _list(s["Action"]) for s in statements)


@pytest.mark.parametrize(
    ("metric_name", "statistic"),
    [
        ("ExecutionsFailed", {"Statistic": "Sum"}),
        ("ExecutionsSucceeded", {"Statistic": "Sum"}),
        ("ExecutionTime", {"ExtendedStatistic": "p99"}),
    ],
)
def test_metric_helpers_read_step_functions_metrics_of_this_state_machine(
    helpers: tuple[dict[str, Any], str], metric_name: str, statistic: dict[str, str]
) -> None:
    template, machine_id = helpers
    Template.from_json(template).has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Namespace": "AWS/States",
            "MetricName": metric_name,
            "Period": 300,
            "Dimensions": [{"Name": "StateMachineArn", "Value": {"Ref": machine_id}}],
            **statistic,
        },
    )


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
