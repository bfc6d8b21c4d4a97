"""The workflow's construct API after the fragments: the release takes the deploy fragment by
name, and the state machine's role is made from the SageMaker tasks the definition uses."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import Duration, Stack
from aws_cdk.assertions import Template

from mlstack.constructs import (
    DataBucket,
    DatasetSeeder,
    DeployStage,
    HyperparameterTuning,
    ModelImages,
    ModelRegistration,
    ModelRegistry,
    ModelRelease,
    SpotTraining,
    TrainingWorkflow,
)
from tests.infra.conftest import new_stack, render_tokens


def _workflow(stack: Stack, **props: Any) -> tuple[TrainingWorkflow, DataBucket]:
    data = DataBucket(stack, "Data")
    seeder = DatasetSeeder(stack, "Seeder", bucket=data.bucket)
    workflow = TrainingWorkflow(
        stack,
        "Workflow",
        bucket=data.bucket,
        images=ModelImages(stack, "Images"),
        seed_function=seeder.function,
        name_prefix="demo",
        **props,
    )
    return workflow, data


def _statements(template: Template, prefix: str) -> list[dict[str, Any]]:
    return [
        statement
        for lid, policy in template.find_resources("AWS::IAM::Policy").items()
        if lid.startswith(prefix)
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _actions(statements: list[dict[str, Any]]) -> set[str]:
    found: set[str] = set()
    for statement in statements:
        actions = statement["Action"]
        found.update([actions] if isinstance(actions, str) else actions)
    return found


@pytest.fixture(scope="module")
def released() -> Template:
    """A workflow that registers and a release built from its deploy fragment, by name."""
    stack = new_stack()
    registry = ModelRegistry(stack, "Registry", group_name="demo-models")
    workflow, data = _workflow(
        stack,
        registration=ModelRegistration(registry=registry),
        deploy=DeployStage(metric="validation:rmse", threshold=0.5),
    )
    assert workflow.deployment is not None
    ModelRelease(
        stack,
        "Release",
        deployment=workflow.deployment,
        registry=registry,
        key=data.key,
        topic=workflow.topic,
    )
    return Template.from_stack(stack)


@pytest.fixture(scope="module")
def tuned() -> Template:
    stack = new_stack()
    _workflow(
        stack,
        tuning=HyperparameterTuning(
            objective_metric="validation:rmse",
            ranges={"eta": {"type": "continuous", "min": 0.1, "max": 0.5}},
        ),
        spot=SpotTraining(max_wait=Duration.days(2)),
    )
    return Template.from_stack(stack)


@pytest.fixture(scope="module")
def plain() -> Template:
    stack = new_stack()
    _workflow(stack)
    return Template.from_stack(stack)


def test_release_deploys_with_the_deploy_fragment_it_was_given(released: Template) -> None:
    machines = released.find_resources("AWS::StepFunctions::StateMachine")
    (release,) = [m for lid, m in machines.items() if lid.startswith("Release")]
    definition = json.loads(render_tokens(release["Properties"]["DefinitionString"]))
    resources = {
        state.get("Resource", "").rsplit(":::", 1)[-1] for state in definition["States"].values()
    }
    # The SageMaker API calls of a deployment (SageMaker API reference: CreateEndpointConfig,
    # CreateEndpoint, UpdateEndpoint, DescribeEndpoint), as Step Functions names them.
    assert {
        "sagemaker:createEndpointConfig",
        "sagemaker:createEndpoint",
        "sagemaker:updateEndpoint",
        "aws-sdk:sagemaker:describeEndpoint",
    } <= resources
    # The workflow ends at Register model: only the release may deploy.
    assert "sagemaker:CreateEndpoint" in _actions(_statements(released, "ReleaseRole"))
    assert "sagemaker:CreateEndpoint" not in _actions(_statements(released, "WorkflowRole"))


def test_release_refuses_a_workflow_without_a_deploy_stage() -> None:
    stack = new_stack()
    registry = ModelRegistry(stack, "Registry", group_name="demo-models")
    workflow, data = _workflow(stack, registration=ModelRegistration(registry=registry))
    assert workflow.deployment is None
    with pytest.raises(ValueError, match=r"ModelRelease deployment=None: .*deploy stage"):
        ModelRelease(
            stack,
            "Release",
            deployment=workflow.deployment,  # type: ignore[arg-type]
            registry=registry,
            key=data.key,
            topic=workflow.topic,
        )


def test_role_of_a_tuning_workflow_runs_tuning_jobs(tuned: Template) -> None:
    statements = _statements(tuned, "WorkflowRole")
    # createHyperParameterTuningJob.sync's policy ("IAM policies for Amazon SageMaker AI", Step
    # Functions developer guide): create, describe and stop the tuning job, and its rule.
    assert {
        "sagemaker:CreateHyperParameterTuningJob",
        "sagemaker:DescribeHyperParameterTuningJob",
        "sagemaker:StopHyperParameterTuningJob",
    } <= _actions(statements)
    (rules,) = [s["Resource"] for s in statements if s.get("Sid") == "SyncJobEventRules"]
    assert ":rule/StepFunctionsGetEventsForSageMakerTuningJobsRule" in json.dumps(rules)


def test_role_of_a_workflow_without_tuning_has_no_tuning_grant(plain: Template) -> None:
    statements = _statements(plain, "WorkflowRole")
    assert not {a for a in _actions(statements) if "HyperParameterTuningJob" in a}
    (rules,) = [s["Resource"] for s in statements if s.get("Sid") == "SyncJobEventRules"]
    assert "SageMakerTrainingJobsRule" in json.dumps(rules)
    assert "TuningJobsRule" not in json.dumps(rules)
