"""The app as a whole: every difference between dev and prod, pinned logical IDs, IAM hygiene."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Match

from tests.infra.conftest import SynthesizedApp, environment_file

# Renaming any of these replaces a stateful resource: they are part of the public contract.
DATA_LOGICAL_IDS = {
    "AWS::KMS::Key": "DataBucketKeyF77F009F",
    "AWS::S3::Bucket": {"DataBucketB1A7365C", "DataBucketAccessLogsC7D55B3F"},
}
ENDPOINT_LOGICAL_ID = "EndpointEEF1FD8F"

# Actions with no resource-level permissions: the only ones allowed on Resource "*".
WILDCARD_ONLY_ACTIONS = {
    "ecr:GetAuthorizationToken",
    "cloudwatch:PutMetricData",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
    # VPC mode (Service Authorization Reference, Amazon EC2: no resource types for these).
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeVpcs",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
}


def resources_of(template: dict[str, Any], type_: str) -> dict[str, Any]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_}


def test_app_synthesizes_with_nag_clean(synthesized: SynthesizedApp) -> None:
    # The session fixture synthesizes with the AwsSolutions plugin, which raises on findings.
    assert set(synthesized.stages) == {"dev", "prod"}


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_data_logical_ids_are_pinned(synthesized: SynthesizedApp, env: str) -> None:
    template = synthesized.json(env, "data")
    assert set(resources_of(template, "AWS::KMS::Key")) == {DATA_LOGICAL_IDS["AWS::KMS::Key"]}
    assert set(resources_of(template, "AWS::S3::Bucket")) == DATA_LOGICAL_IDS["AWS::S3::Bucket"]


def test_endpoint_logical_id_is_pinned(released: SynthesizedApp) -> None:
    template = released.json("prod", "serving")
    assert set(resources_of(template, "AWS::SageMaker::Endpoint")) == {ENDPOINT_LOGICAL_ID}


def test_dev_data_is_destroyed_and_emptied(synthesized: SynthesizedApp) -> None:
    template = synthesized.template("dev", "data")
    template.has_resource("AWS::S3::Bucket", {"DeletionPolicy": "Delete"})
    template.has_resource("AWS::KMS::Key", {"DeletionPolicy": "Delete"})
    template.resource_count_is("Custom::S3AutoDeleteObjects", 2)
    template.has_resource_properties("AWS::KMS::Key", {"PendingWindowInDays": 7})


def test_prod_data_is_retained(synthesized: SynthesizedApp) -> None:
    template = synthesized.template("prod", "data")
    for resource in template.find_resources("AWS::S3::Bucket").values():
        assert resource["DeletionPolicy"] == "Retain"
    template.has_resource("AWS::KMS::Key", {"DeletionPolicy": "Retain"})
    template.resource_count_is("Custom::S3AutoDeleteObjects", 0)


def test_only_prod_data_has_termination_protection(synthesized: SynthesizedApp) -> None:
    assert synthesized.stages["prod"].data.termination_protection is True
    assert synthesized.stages["dev"].data.termination_protection is False


def test_released_prod_deploys_the_endpoint(released: SynthesizedApp) -> None:
    serving = released.template("prod", "serving")
    endpoint = environment_file("prod")["endpoint"]
    serving.has_resource_properties(
        "AWS::SageMaker::EndpointConfig",
        {
            "ProductionVariants": [
                Match.object_like(
                    {
                        "InstanceType": endpoint["instance_type"],
                        "InitialInstanceCount": endpoint["instance_count"],
                    }
                )
            ]
        },
    )
    serving.has_resource_properties("AWS::SageMaker::Endpoint", {"EndpointName": "mlstack-prod"})
    # The model is the pinned registry version (docs/deploying.md), no artifact path.
    serving.has_resource_properties(
        "AWS::SageMaker::Model",
        {
            "Containers": [
                {
                    "ModelPackageName": Match.object_like(
                        {
                            "Fn::Join": Match.array_with(
                                [Match.array_with([":model-package/mlstack-prod/1"])]
                            )
                        }
                    )
                }
            ]
        },
    )


def test_only_prod_notifies_by_email(synthesized: SynthesizedApp) -> None:
    synthesized.template("prod", "workflow").has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "ml-alerts@example.com"}
    )
    synthesized.template("dev", "workflow").resource_count_is("AWS::SNS::Subscription", 0)


@pytest.mark.parametrize(("env", "days"), [("dev", 30), ("prod", 365)])
def test_log_retention_per_environment(synthesized: SynthesizedApp, env: str, days: int) -> None:
    template = synthesized.template(env, "workflow")
    groups = template.find_resources("AWS::Logs::LogGroup")
    assert groups and all(g["Properties"]["RetentionInDays"] == days for g in groups.values())
    removal = "Retain" if env == "prod" else "Delete"
    assert all(g["DeletionPolicy"] == removal for g in groups.values())


@pytest.mark.parametrize(("env", "runtime", "minutes"), [("dev", 3600, 180), ("prod", 86400, 1560)])
def test_training_limits_and_timeout_per_environment(
    synthesized: SynthesizedApp, env: str, runtime: int, minutes: int
) -> None:
    template = synthesized.template(env, "workflow")
    template.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "DefinitionString": Match.object_like(
                {
                    "Fn::Join": Match.array_with(
                        [
                            Match.array_with(
                                [Match.string_like_regexp(f'"TimeoutSeconds":{minutes * 60}')]
                            )
                        ]
                    )
                }
            )
        },
    )
    definition = str(template.to_json())
    assert f'"MaxRuntimeInSeconds":{runtime}' in definition


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_seeder_defaults_per_environment(synthesized: SynthesizedApp, env: str) -> None:
    dataset = environment_file(env)["dataset"]
    # Lambda environment variables are strings (Lambda API reference, Environment.Variables).
    synthesized.template(env, "workflow").has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Environment": {
                "Variables": Match.object_like(
                    {"DEFAULT_ROWS": str(dataset["rows"]), "DEFAULT_SEED": str(dataset["seed"])}
                )
            }
        },
    )


def all_statements(synthesized: SynthesizedApp) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for env, stage in synthesized.stages.items():
        for stack in ("data", "workflow", "serving"):
            if getattr(stage, stack) is None:
                continue
            template = synthesized.json(env, stack)
            for lid, res in template["Resources"].items():
                if res["Type"] == "AWS::IAM::Policy":
                    for st in res["Properties"]["PolicyDocument"]["Statement"]:
                        found.append((f"{env}/{stack}/{lid}", st))
    return found


def test_resource_star_only_for_actions_without_resource_level_permissions(
    synthesized: SynthesizedApp,
) -> None:
    for where, statement in all_statements(synthesized):
        resources = statement["Resource"]
        if resources == "*" or "*" in (resources if isinstance(resources, list) else []):
            actions = statement["Action"]
            actions = [actions] if isinstance(actions, str) else actions
            assert set(actions) <= WILDCARD_ONLY_ACTIONS, (where, actions)


def test_no_aws_managed_policies_on_any_role(synthesized: SynthesizedApp) -> None:
    # Includes CDK's auto-delete provider in dev's data stack, whose managed policy we replace.
    for env, stage in synthesized.stages.items():
        for stack in ("data", "workflow", "serving"):
            if getattr(stage, stack) is None:
                continue
            for role in resources_of(synthesized.json(env, stack), "AWS::IAM::Role").values():
                assert "ManagedPolicyArns" not in role["Properties"]


def test_dev_auto_delete_provider_writes_only_its_own_stack_logs(
    synthesized: SynthesizedApp,
) -> None:
    roles = resources_of(synthesized.json("dev", "data"), "AWS::IAM::Role").values()
    (provider,) = [r for r in roles if "Policies" in r["Properties"]]
    (policy,) = provider["Properties"]["Policies"]
    statements = policy["PolicyDocument"]["Statement"]
    assert {a for s in statements for a in _as_list(s["Action"])} == {
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }
    for statement in statements:
        for resource in _as_list(statement["Resource"]):
            rendered = json.dumps(resource)
            assert ":log-group:/aws/lambda/" in rendered and "AWS::StackName" in rendered


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_no_iam_action_wildcards(synthesized: SynthesizedApp) -> None:
    for where, statement in all_statements(synthesized):
        actions = statement["Action"]
        actions = [actions] if isinstance(actions, str) else actions
        wildcards = [a for a in actions if "*" in a]
        assert wildcards == [], (where, wildcards)
