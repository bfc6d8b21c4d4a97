"""The SageMaker execution role is made from the jobs that run as it, and the release's role
from its tasks: each declares what it needs beside its request (issue 23)."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from aws_cdk import Stack
from aws_cdk.assertions import Template

from mlstack.constructs import (
    ContainerAccess,
    DataBucket,
    DeployStage,
    ModelImages,
    ModelRelease,
    SageMakerExecutionRole,
)
from tests.infra.conftest import new_app
from tests.infra.test_infra_constructs import _workflow, by_sid, policy_statements


def _tails(resources: Any) -> list[str]:
    """The last literal part of each resource ARN (``Fn::Join`` or a plain string)."""
    items = resources if isinstance(resources, list) else [resources]
    return [r["Fn::Join"][1][-1] if isinstance(r, dict) else r for r in items]


def test_the_role_reads_writes_and_logs_what_its_jobs_declare() -> None:
    stack = Stack(new_app(), "Role")
    data = DataBucket(stack, "Data")
    images = ModelImages(stack, "Images")
    SageMakerExecutionRole(
        stack,
        "Execution",
        bucket=data.bucket,
        name_prefix="demo",
        images=[images.training],
        jobs=[
            ContainerAccess("TrainingJobs", reads=("datasets/",), writes=("models/",)),
            ContainerAccess("ProcessingJobs", reads=("datasets/", "models/")),
        ],
    )
    statements = policy_statements(Template.from_stack(stack), "Execution")
    assert _tails(by_sid(statements, "ReadDataAndModels")["Resource"]) == [
        "/datasets/*",
        "/models/*",
    ]
    assert _tails(by_sid(statements, "WriteModelsAndOutput")["Resource"]) == ["/models/*"]
    assert by_sid(statements, "ListDataAndModels")["Condition"] == {
        "StringLike": {"s3:prefix": ["datasets/*", "models/*"]}
    }
    # CloudWatch Logs ARNs (Service Authorization Reference): log-group:<name>:log-stream:<name>.
    assert sorted(_tails(by_sid(statements, "WriteOwnLogs")["Resource"])) == [
        ":log-group:/aws/sagemaker/ProcessingJobs:log-stream:demo-*",
        ":log-group:/aws/sagemaker/TrainingJobs:log-stream:demo-*",
    ]


def test_a_role_no_job_reads_with_is_refused() -> None:
    stack = Stack(new_app(), "Role")
    data = DataBucket(stack, "Data")
    with pytest.raises(ValueError, match="SageMakerExecutionRole jobs: expected at least one job"):
        SageMakerExecutionRole(
            stack, "Execution", bucket=data.bucket, name_prefix="demo", images=[], jobs=[]
        )


def test_an_unknown_log_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="ContainerAccess logs='Notebooks'"):
        ContainerAccess("Notebooks")


def _log_resources(workflow_props: dict[str, Any]) -> list[str]:
    workflow = _workflow(**workflow_props)
    template = Template.from_stack(Stack.of(workflow))
    statements = policy_statements(template, "WorkflowExecutionRole")
    return _tails(by_sid(statements, "WriteOwnLogs")["Resource"])


def test_only_a_workflow_that_deploys_may_write_endpoint_logs() -> None:
    without = _log_resources({})
    with_deploy = _log_resources({"deploy": DeployStage(metric="validation:rmse", threshold=0.5)})
    assert not any("Endpoints" in r for r in without)
    assert [r for r in with_deploy if r not in without] == [
        ":log-group:/aws/sagemaker/Endpoints/demo*:log-stream:*"
    ]


def test_the_execution_role_has_no_flags_only_jobs() -> None:
    props = inspect.signature(SageMakerExecutionRole.__init__).parameters
    assert "jobs" in props
    assert not {"checkpoints", "baselines", "layout"} & set(props)


def test_the_release_role_writes_no_sagemaker_grant_of_its_own() -> None:
    # Its grants come from its tasks (DescribePackage, ReleaseModels, the deploy fragment).
    source = inspect.getsource(ModelRelease._role)
    assert "sagemaker:" not in source and "grant_read" not in source
