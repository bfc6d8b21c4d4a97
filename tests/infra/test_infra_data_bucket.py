"""DataBucket as a user's stack holds it: the auto-delete provider's role, and its grants."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import (
    CustomResource,
    CustomResourceProvider,
    CustomResourceProviderRuntime,
    RemovalPolicy,
)
from aws_cdk.assertions import Template

from mlstack.constructs import DataBucket
from tests.infra.conftest import new_stack

BASIC_EXECUTION = "service-role/AWSLambdaBasicExecutionRole"


def roles(template: Template) -> dict[str, dict[str, Any]]:
    return template.find_resources("AWS::IAM::Role")  # type: ignore[no-any-return]


def test_auto_delete_provider_writes_only_its_stack_logs_and_other_providers_keep_theirs(
    tmp_path: Path,
) -> None:
    (tmp_path / "index.js").write_text("exports.handler = async () => ({});\n")
    stack = new_stack()
    DataBucket(stack, "Data", removal_policy=RemovalPolicy.DESTROY)
    DataBucket(stack, "Second", removal_policy=RemovalPolicy.DESTROY)
    # A provider of the user's own, with an inline statement: not CDK's auto-delete provider.
    other = CustomResourceProvider.get_or_create_provider(
        stack,
        "Custom::Other",
        code_directory=str(tmp_path),
        runtime=CustomResourceProviderRuntime.NODEJS_22_X,
        policy_statements=[{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}],
    )
    CustomResource(
        stack, "OtherResource", service_token=other.service_token, resource_type="Custom::Other"
    )
    by_id = roles(Template.from_stack(stack))
    auto_delete = [r for i, r in by_id.items() if i.startswith("CustomS3AutoDeleteObjects")]
    own = [r for i, r in by_id.items() if i.startswith("CustomOther")]
    assert len(auto_delete) == 1 and len(own) == 1

    properties = auto_delete[0]["Properties"]
    assert "ManagedPolicyArns" not in properties
    [policy] = properties["Policies"]
    assert policy["PolicyName"] == "WriteOwnLogs"
    resources = str(policy["PolicyDocument"]["Statement"])
    assert "/aws/lambda/" in resources and "AWS::StackName" in resources

    # The user's provider is untouched: its managed policy and inline statement stay.
    assert BASIC_EXECUTION in str(own[0]["Properties"]["ManagedPolicyArns"])
    assert "s3:ListBucket" in str(own[0]["Properties"]["Policies"])


def test_retained_bucket_has_no_auto_delete_provider() -> None:
    stack = new_stack()
    DataBucket(stack, "Data")
    assert not [i for i in roles(Template.from_stack(stack)) if "AutoDelete" in i]
