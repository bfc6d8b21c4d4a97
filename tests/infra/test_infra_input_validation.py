"""The rendered definition validates the execution input first; the validator is least-privilege.

What an AWS execution accepts is decided by the synthesized template alone: the Validate input
state calls the validation Lambda with the JSON Schema written into the definition. The Lambda
is run here on that schema as rendered, with the inputs of issue 13.
"""

from __future__ import annotations

from typing import Any

import pytest

from mlstack import execution_input_docs
from mlstack.config import load_environment
from mlstack.rules import input_keys, training_image_hyperparameters
from tests.infra.conftest import REPO, SynthesizedApp, state_machine_definition
from tests.lambdas import load_handler

ENVS = ("dev", "prod")


def _validator() -> Any:
    return load_handler("validate_input_handler", "validate_input")


@pytest.fixture(scope="module")
def definitions(synthesized: SynthesizedApp) -> dict[str, dict[str, Any]]:
    return {env: state_machine_definition(synthesized.json(env, "workflow")) for env in ENVS}


@pytest.mark.parametrize("env", ENVS)
def test_the_definition_starts_with_the_input_validation(
    definitions: dict[str, dict[str, Any]], env: str
) -> None:
    definition = definitions[env]
    assert definition["StartAt"] == "Validate input"
    validate = definition["States"]["Validate input"]
    assert validate["Resource"] == "arn:aws:states:::lambda:invoke"
    assert "InputValidator" in validate["Parameters"]["FunctionName"]
    assert validate["Parameters"]["Payload"]["input.$"] == "$"
    assert validate["Next"] == "Input valid?"
    choice = definition["States"]["Input valid?"]
    assert choice["Choices"] == [
        {"Variable": "$.valid", "BooleanEquals": False, "Next": "Reject input"}
    ]
    assert choice["Default"] == "Load defaults"
    # Nothing else runs before the verdict: Load defaults is the only way on.
    assert definition["States"]["Load defaults"]["Next"] == "Apply overrides"
    assert definition["States"]["Apply overrides"]["Next"] == "Training instance storage?"


@pytest.mark.parametrize("env", ENVS)
def test_a_refused_input_fails_with_its_message_through_the_notification(
    definitions: dict[str, dict[str, Any]], env: str
) -> None:
    states = definitions[env]["States"]
    assert states["Reject input"] == {
        "Type": "Pass",
        "Parameters": {"Error": "InvalidExecutionInput", "Cause.$": "$.message"},
        "ResultPath": "$.error",
        "Next": "Notify failure",
    }
    assert states["Notify failure"]["Next"] == "Workflow failed"
    assert "States.JsonToString($.error)" in states["Notify failure"]["Parameters"]["Message.$"]
    assert states["Workflow failed"]["CausePath"] == "$.error.Cause"
    # A failure of the validator itself (not a verdict) takes the same path.
    assert states["Validate input"]["Catch"][0]["Next"] == "Notify failure"


@pytest.mark.parametrize("env", ENVS)
def test_the_rendered_schema_is_the_environments_input(
    definitions: dict[str, dict[str, Any]], env: str
) -> None:
    config = load_environment(env)
    schema = execution_input_docs.schema_of(definitions[env])
    assert tuple(schema["properties"]) == input_keys(
        tuning=config.tuning is not None, deploy=config.deploy_enabled
    )
    assert schema["additionalProperties"] is False
    assert schema["properties"]["rows"]["maximum"] == config.dataset.max_rows
    assert schema["properties"]["rows"]["default"] == config.dataset.rows
    names = schema["properties"]["hyperparameters"]["propertyNames"]["enum"]
    assert tuple(names) == training_image_hyperparameters()


@pytest.mark.parametrize(
    ("execution_input", "expected"),
    [
        ({"hyperparamters": {"num_round": "50"}}, "(did you mean 'hyperparameters'?)"),
        ({"training_instance_count": 0}, "key 'training_instance_count' is 0 (integer)"),
        ({"rows": "100"}, "key 'rows' is \"100\" (string); expected an integer"),
        ({"hyperparameters": {"num_round": 50}}, "key 'hyperparameters.num_round' is 50"),
        ({"tuning_max_jobs": 501}, "key 'tuning_max_jobs' is 501"),
        ({"quality_threshold": "high"}, "key 'quality_threshold' is \"high\""),
    ],
)
def test_the_rendered_schema_refuses_the_issues_inputs(
    definitions: dict[str, dict[str, Any]], execution_input: dict[str, Any], expected: str
) -> None:
    schema = execution_input_docs.schema_of(definitions["dev"])
    result = _validator().handler({"input": execution_input, "schema": schema}, None)
    assert result["valid"] is False
    assert expected in result["message"]


def test_the_validator_role_may_only_write_its_own_logs(synthesized: SynthesizedApp) -> None:
    template = synthesized.json("dev", "workflow")
    resources = template["Resources"]
    (role_id,) = [
        k for k, r in resources.items() if r["Type"] == "AWS::IAM::Role" and "InputValidator" in k
    ]
    assert "ManagedPolicyArns" not in resources[role_id]["Properties"]
    policies = [
        r["Properties"]["PolicyDocument"]["Statement"]
        for r in resources.values()
        if r["Type"] == "AWS::IAM::Policy" and {"Ref": role_id} in r["Properties"]["Roles"]
    ]
    assert policies == [
        [
            {
                "Sid": "WriteOwnLogs",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Effect": "Allow",
                "Resource": {"Fn::GetAtt": [policies[0][0]["Resource"]["Fn::GetAtt"][0], "Arn"]},
            }
        ]
    ]
    assert "InputValidatorLogGroup" in policies[0][0]["Resource"]["Fn::GetAtt"][0]


def test_the_state_machine_may_invoke_the_validator(synthesized: SynthesizedApp) -> None:
    template = synthesized.json("dev", "workflow")
    statements = [
        s
        for r in template["Resources"].values()
        if r["Type"] == "AWS::IAM::Policy"
        for s in r["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Sid") == "InvokeInputValidator"
    ]
    assert len(statements) == 1
    assert statements[0]["Action"] == "lambda:InvokeFunction"
    assert "InputValidator" in statements[0]["Resource"]["Fn::GetAtt"][0]


def test_docs_execution_input_is_generated_from_the_definitions(
    definitions: dict[str, dict[str, Any]],
) -> None:
    schemas = {env: execution_input_docs.schema_of(d) for env, d in definitions.items()}
    assert execution_input_docs.DOC.read_text(encoding="utf-8") == execution_input_docs.render(
        schemas
    ), "docs/execution-input.md is stale: run `python -m mlstack.execution_input_docs`"


def test_the_readme_links_the_execution_input_reference() -> None:
    assert "(docs/execution-input.md)" in (REPO / "README.md").read_text(encoding="utf-8")


def test_defaults_the_input_rules_refuse_fail_at_synth() -> None:
    """A direct user of the construct gets the same rules as an execution's input."""
    from aws_cdk import Stack

    from mlstack.constructs import DataBucket, DatasetSeeder, ModelImages, TrainingWorkflow
    from mlstack.constructs.training_workflow import WorkflowDefaults
    from tests.infra.conftest import new_app

    stack = Stack(new_app(), "Defaults")
    data = DataBucket(stack, "Data")
    seeder = DatasetSeeder(stack, "Seeder", bucket=data.bucket, key=data.key)
    with pytest.raises(
        ValueError, match=r"training_instance_type='m5\.large': String should match"
    ):
        TrainingWorkflow(
            stack,
            "Workflow",
            bucket=data.bucket,
            images=ModelImages(stack, "Images"),
            seed_function=seeder.function,
            name_prefix="t",
            defaults=WorkflowDefaults(training_instance_type="m5.large"),
        )


@pytest.mark.parametrize("env", ENVS)
def test_the_rendered_rules_refuse_more_parallel_tuning_jobs_than_jobs(
    definitions: dict[str, dict[str, Any]], env: str
) -> None:
    # Config checks tuning.max_parallel_jobs <= tuning.max_jobs at synth; an execution input may
    # override either, so Validate input checks the same rule on the values the run will use.
    tuning = load_environment(env).tuning
    assert tuning is not None
    payload = definitions[env]["States"]["Validate input"]["Parameters"]["Payload"]
    event = {"schema": payload["schema"], "rules": payload["rules"]}
    over = _validator().handler(
        {**event, "input": {"tuning_max_parallel_jobs": tuning.max_jobs + 1}}, None
    )
    assert over["problems"] == [
        f"key 'tuning_max_parallel_jobs' is {tuning.max_jobs + 1} with key 'tuning_max_jobs' "
        f"{tuning.max_jobs} (its default); expected at most 'tuning_max_jobs' "
        f"({tuning.max_jobs}), the tuning job's training jobs in all"
    ]
    fewer = {"tuning_max_jobs": tuning.max_parallel_jobs - 1}
    assert _validator().handler({**event, "input": fewer}, None)["valid"] is False
    both = {"tuning_max_jobs": 1, "tuning_max_parallel_jobs": 1}
    assert _validator().handler({**event, "input": both}, None)["valid"] is True
