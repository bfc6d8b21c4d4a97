"""The "Reusing a construct" example of docs/constructs.md, run as written, in a separate stack."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aws_cdk import Stack
from aws_cdk.assertions import Match, Template

from tests.infra.conftest import REPO


@pytest.fixture(scope="module")
def example() -> dict[str, Any]:
    page = (REPO / "docs" / "constructs.md").read_text()
    match = re.search(r"<!-- example: reuse -->\s*```python\n(.*?)```", page, re.S)
    assert match, "docs/constructs.md lost its reuse example"
    namespace: dict[str, Any] = {}
    exec(compile(match.group(1), "docs/constructs.md", "exec"), namespace)
    return namespace


def test_example_builds_a_stack_of_its_own(example: dict[str, Any]) -> None:
    stack = example["stack"]
    assert isinstance(stack, Stack)
    assert stack.stack_name == "MyTeamTraining"


def test_example_stack_has_the_workflow_with_its_prefix(example: dict[str, Any]) -> None:
    template = Template.from_stack(example["stack"])
    template.resource_count_is("AWS::StepFunctions::StateMachine", 1)
    template.resource_count_is("AWS::Lambda::Function", 2)  # the seeder and the input validator
    template.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Sid": "RunTrainingJobs",
                                "Resource": {
                                    "Fn::Join": [
                                        "",
                                        Match.array_with(
                                            [Match.string_like_regexp(r"training-job/myteam-\*$")]
                                        ),
                                    ]
                                },
                            }
                        )
                    ]
                )
            }
        },
    )
    definition = str(
        template.find_resources("AWS::StepFunctions::StateMachine").popitem()[1]["Properties"]
    )
    assert "sagemaker-xgboost:1.7-1" in definition
    assert "myteam-{}-t{}-{}" in definition
