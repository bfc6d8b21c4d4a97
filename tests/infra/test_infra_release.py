"""Release readiness (issue 9): every shipped environment deploys into a fresh account, the
definition's error names and instance storage follow AWS's rules, endpoints survive updates and
deletions the way a platform engineer expects."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from aws_cdk import Stack

from mlstack.config import parse_environment
from mlstack.constructs.instance_storage import has_local_storage, local_storage_patterns
from mlstack.local.asl import Interpreter, StatesError, TaskCall
from mlstack.stacks import MlStackStage
from tests.infra.conftest import (
    REPO,
    SynthesizedApp,
    new_app,
    render_tokens,
    state_machine_definition,
)

STACKS = ("data", "workflow", "serving")


def stacks_of(source: SynthesizedApp, env: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for stack in STACKS:
        if getattr(source.stages[env], stack) is not None:
            yield stack, source.json(env, stack)


# --- 1. a fresh account ---------------------------------------------------------------------


def test_no_shipped_environment_makes_a_model_from_an_artifact_nothing_wrote(
    synthesized: SynthesizedApp,
) -> None:
    # `cdk deploy '<env>/*'` into a fresh account creates the data bucket empty and writes no
    # object into it; CreateModel validates ModelDataUrl ("Could not find model data") and
    # the stack rolls back. So no shipped environment may hold a CloudFormation-managed model.
    for env in synthesized.stages:
        for stack, template in stacks_of(synthesized, env):
            models = [
                lid
                for lid, r in template["Resources"].items()
                if r["Type"] == "AWS::SageMaker::Model"
            ]
            assert models == [], f"{env}/{stack} creates models {models} from unreleased data"


def test_serving_stack_appears_only_once_a_model_is_released(
    synthesized: SynthesizedApp, released: SynthesizedApp
) -> None:
    assert {env: s.serving for env, s in synthesized.stages.items()} == {
        "dev": None,
        "prod": None,
    }
    assert released.stages["prod"].serving is not None


def test_a_served_artifact_in_the_data_bucket_must_be_released() -> None:
    data = json.loads((REPO / "environments" / "prod.json").read_text())
    data["endpoint"]["model_artifact"] = "models/release/model.tar.gz"
    config = parse_environment("prod", data)
    with pytest.raises(ValueError) as error:
        MlStackStage(new_app(), "prod", config=config)
    assert str(error.value) == (
        "environment 'prod': endpoint.model_artifact 'models/release/model.tar.gz': expected a "
        "released artifact under 'releases/' of the data bucket (such as "
        "'releases/<version>/model.tar.gz'; see docs/deploying.md) or an s3:// URI"
    )


# --- 5. error names in Retry and Catch -------------------------------------------------------

# Step Functions developer guide, "Error names" (States.*) and "Handle transient Lambda service
# exceptions"; "AWS SDK service integrations": an SDK task's error is ServiceName.ErrorName, the
# name always ending in "Exception"; the optimized SageMaker integration raises
# SageMaker.AmazonSageMakerException, which an aws-sdk task never raises.
STATES_ERRORS = {
    "States.ALL",
    "States.TaskFailed",
    "States.Timeout",
    "States.HeartbeatTimeout",
    "States.Permissions",
    "States.ResultPathMatchFailure",
    "States.ParameterPathFailure",
    "States.BranchFailed",
    "States.NoChoiceMatched",
    "States.IntrinsicFailure",
    "States.ExceedToleratedFailureThreshold",
    "States.ItemReaderFailed",
    "States.ResultWriterFailed",
    "States.QueryEvaluationError",
}
LAMBDA_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}


def error_name_problem(name: str, resource: str) -> str | None:
    """Why ``name`` can never be raised by a Task state on ``resource`` (None when it can)."""
    if name.startswith("States."):
        return None if name in STATES_ERRORS else "not a States.* error Step Functions raises"
    service, _, error = name.partition(".")
    integration = resource.split(":::", 1)[-1]
    sdk = integration.startswith("aws-sdk:")
    target = integration.split(":")[1 if sdk else 0].lower()
    if service.lower() != target:
        return f"a {service} error on a {target} task"
    if service == "Lambda":
        return None if name in LAMBDA_ERRORS else "not a documented Lambda service error"
    if not error.endswith("Exception"):
        return "an error name always ends in 'Exception'"
    if sdk and name == "SageMaker.AmazonSageMakerException":
        return "raised by the optimized integration only, never by an aws-sdk task"
    if not sdk and service == "SageMaker" and name != "SageMaker.AmazonSageMakerException":
        return "the optimized SageMaker integration raises SageMaker.AmazonSageMakerException"
    return None


def test_the_error_name_rule_rejects_the_names_aws_never_raises() -> None:
    sdk = "arn:aws:states:::aws-sdk:sagemaker:describeEndpoint"
    optimized = "arn:aws:states:::sagemaker:createModel"
    assert error_name_problem("SageMaker.InternalFailure", sdk)
    assert error_name_problem("SageMaker.ServiceUnavailable", sdk)
    assert error_name_problem("SageMaker.AmazonSageMakerException", sdk)
    assert error_name_problem("SageMaker.ThrottlingException", sdk) is None
    assert error_name_problem("SageMaker.AmazonSageMakerException", optimized) is None


@pytest.mark.parametrize("source_name", ["synthesized", "released"])
def test_every_retried_and_caught_error_can_be_raised(
    request: pytest.FixtureRequest, source_name: str
) -> None:
    source: SynthesizedApp = request.getfixturevalue(source_name)
    problems = []
    for env in source.stages:
        definition = state_machine_definition(source.json(env, "workflow"))
        for state_name, state in definition["States"].items():
            for clause in [*state.get("Retry", []), *state.get("Catch", [])]:
                for name in clause["ErrorEquals"]:
                    problem = error_name_problem(name, state.get("Resource", ""))
                    if problem:
                        problems.append(f"{env} {state_name!r}: {name}: {problem}")
    assert problems == []


# --- 6. instance types with local NVMe storage -----------------------------------------------


def asl_matches(value: str, pattern: str) -> bool:
    """StringMatches as Step Functions documents it (``*`` matches any run of characters)."""
    from mlstack.local.asl import _matches

    return _matches(value, pattern)


# Every shape of an instance type name: series letters, generation, attribute letters, size;
# the attribute letters range over every combination of the letters AWS uses (and 'd' in
# every position), so an unknown future family is checked too.
SERIES = ("m", "c", "r", "g", "p", "t", "x", "z", "trn", "inf", "gr", "dl")
GENERATIONS = ("1", "3", "4", "5", "6", "7")
ATTRIBUTES = ["", *("".join(c) for n in (1, 2, 3) for c in itertools.product("adegin", repeat=n))]
SIZES = ("medium", "large", "xlarge", "24xlarge", "metal-48xl")


def test_the_definitions_patterns_agree_with_the_synth_rule() -> None:
    disagree = []
    for series, generation, attributes in itertools.product(SERIES, GENERATIONS, ATTRIBUTES):
        for size in SIZES:
            instance_type = f"ml.{series}{generation}{attributes}.{size}"
            by_pattern = any(asl_matches(instance_type, p) for p in local_storage_patterns())
            if by_pattern != has_local_storage(instance_type):
                disagree.append(instance_type)
    assert disagree == []


@pytest.mark.parametrize(
    ("instance_type", "local"),
    [
        # AWS's instance store list (EC2 "Instance store volume limits"): NVMe on these ...
        ("ml.p4d.24xlarge", True),
        ("ml.p4de.24xlarge", True),
        ("ml.p3dn.24xlarge", True),
        ("ml.g4dn.xlarge", True),
        ("ml.g5.2xlarge", True),
        ("ml.g6e.xlarge", True),
        ("ml.p5.48xlarge", True),
        ("ml.trn1.32xlarge", True),
        ("ml.m5d.large", True),
        ("ml.c5d.xlarge", True),
        ("ml.r5d.large", True),
        # ... and EBS only on these.
        ("ml.m5.large", False),
        ("ml.m5.xlarge", False),
        ("ml.c5.xlarge", False),
        ("ml.p3.2xlarge", False),
        ("ml.t2.medium", False),
        ("ml.inf2.xlarge", False),
    ],
)
def test_local_storage_follows_aws_list(instance_type: str, local: bool) -> None:
    assert has_local_storage(instance_type) is local


def run_until(definition: dict[str, Any], execution_input: dict[str, Any], stop: str) -> Any:
    """Interpret ``definition`` until the Task ``stop``; return the parameters it was given."""
    seen: dict[str, Any] = {}
    answers = {
        "Validate input": {"Payload": {"valid": True, "message": ""}},
        "Seed shard": {"Payload": {"shard": 0}},
        "Train model": {
            "TrainingJobName": "j",
            "TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/j",
            "HyperParameters": {},
            "ModelArtifacts": {"S3ModelArtifacts": "s3://b/m.tar.gz"},
            "FinalMetricDataList": [],
            "TrainingTimeInSeconds": 60,
            "BillableTimeInSeconds": 30,
        },
        "Save model": {"ModelArn": "arn:aws:sagemaker:us-east-1:123456789012:model/m"},
    }

    def handler(call: TaskCall) -> Any:
        if call.state_name == stop:
            seen["parameters"] = call.parameters
            raise StatesError("Test.Stop", "stop here")
        if call.state_name in answers:
            return answers[call.state_name]
        return {}

    Interpreter(definition, handler, time_scale=0).execute(execution_input, name="storage")
    return seen["parameters"]


@pytest.mark.parametrize(
    ("key", "state", "resources", "instance_type", "encrypted"),
    [
        ("training_instance_type", "Train model", "ResourceConfig", "ml.p4d.24xlarge", False),
        ("training_instance_type", "Train model", "ResourceConfig", "ml.g5.xlarge", False),
        ("training_instance_type", "Train model", "ResourceConfig", "ml.m5.xlarge", True),
        (
            "transform_instance_type",
            "Batch transform",
            "TransformResources",
            "ml.g4dn.xlarge",
            False,
        ),
        ("transform_instance_type", "Batch transform", "TransformResources", "ml.c5.xlarge", True),
    ],
)
def test_an_input_instance_type_with_local_storage_gets_no_volume_key(
    synthesized: SynthesizedApp,
    key: str,
    state: str,
    resources: str,
    instance_type: str,
    encrypted: bool,
) -> None:
    definition = state_machine_definition(synthesized.json("dev", "workflow"))
    params = run_until(definition, {key: instance_type}, state)
    assert params[resources]["InstanceType"] == instance_type
    assert ("VolumeKmsKeyId" in params[resources]) is encrypted


def test_an_endpoint_on_local_storage_gets_no_kms_key() -> None:
    data = json.loads((REPO / "environments" / "prod.json").read_text())
    data["endpoint"]["model_package_version"] = 1
    data["endpoint"]["instance_type"] = "ml.g5.xlarge"
    data["deploy"]["instance_type"] = "ml.g4dn.xlarge"
    stage = MlStackStage(new_app(), "prod", config=parse_environment("prod", data))
    assert stage.serving is not None
    from aws_cdk.assertions import Template

    serving = Template.from_stack(stage.serving).to_json()
    (config,) = [
        r for r in serving["Resources"].values() if r["Type"] == "AWS::SageMaker::EndpointConfig"
    ]
    assert "KmsKeyId" not in config["Properties"]
    definition = state_machine_definition(
        Template.from_stack(stage.workflow).to_json(), release=True
    )
    assert "KmsKeyId" not in definition["States"]["Create endpoint config"]["Parameters"]


# --- 7. the state machine's log group --------------------------------------------------------


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_state_machine_logs_go_to_a_vended_logs_group(
    synthesized: SynthesizedApp, env: str
) -> None:
    # Step Functions: "Logging ... in CloudWatch Logs": log groups under /aws/vendedlogs/ keep
    # the CloudWatch Logs resource policy (5,120 characters) from filling up.
    template = synthesized.json(env, "workflow")
    names = set()
    for machine in template["Resources"].values():
        if machine["Type"] != "AWS::StepFunctions::StateMachine":
            continue
        destination = machine["Properties"]["LoggingConfiguration"]["Destinations"][0]
        group_id = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
        name = render_tokens(template["Resources"][group_id]["Properties"]["LogGroupName"])
        names.add(name.split(f"mlstack-{env}-", 1)[1].split("-", 1)[0])
        # The training workflow's and the release's.
        assert name.startswith(f"/aws/vendedlogs/states/mlstack-{env}-")
    assert names == {"workflow", "release"}


# --- 8. updates keep scaled capacity; prod endpoints are protected ---------------------------


def test_autoscaled_endpoint_keeps_its_instance_count_across_updates(
    released: SynthesizedApp,
) -> None:
    # AWS::SageMaker::Endpoint: RetainAllVariantProperties keeps what Application Auto Scaling
    # set; ExcludeRetainedVariantProperties lets the config still change weights and capture.
    released.template("prod", "serving").has_resource_properties(
        "AWS::SageMaker::Endpoint",
        {
            "RetainAllVariantProperties": True,
            "ExcludeRetainedVariantProperties": [
                {"VariantPropertyType": "DesiredWeight"},
                {"VariantPropertyType": "DataCaptureConfig"},
            ],
        },
    )


def test_prod_stacks_holding_endpoints_have_termination_protection(
    synthesized: SynthesizedApp, released: SynthesizedApp
) -> None:
    prod = released.stages["prod"]
    assert prod.serving is not None and prod.serving.termination_protection is True
    assert prod.workflow.termination_protection is True
    dev = synthesized.stages["dev"]
    assert dev.workflow.termination_protection is False


# --- 9. what may publish to the failure topic with the data key -------------------------------


def test_cloudwatch_may_use_the_key_only_for_this_stacks_alarms_and_topic(
    synthesized: SynthesizedApp,
) -> None:
    key_policy = next(
        r["Properties"]["KeyPolicy"]
        for r in synthesized.json("dev", "data")["Resources"].values()
        if r["Type"] == "AWS::KMS::Key"
    )
    (statement,) = [
        s for s in key_policy["Statement"] if s.get("Sid") == "CloudWatchAlarmsEncryptNotifications"
    ]
    condition = {
        op: {k: render_tokens(v) for k, v in values.items()}
        for op, values in statement["Condition"].items()
    }
    assert condition["ArnLike"]["aws:SourceArn"] == (
        "arn:aws:cloudwatch:us-east-1:123456789012:alarm:dev-Workflow-*"
    )
    assert condition["StringLike"]["kms:EncryptionContext:aws:sns:topicArn"] == (
        "arn:aws:sns:us-east-1:123456789012:dev-Workflow-*"
    )
    assert Stack.of(synthesized.stages["dev"].workflow).stack_name == "dev-Workflow"


# --- 10. cdk destroy and the workflow-owned endpoint ------------------------------------------


def test_dev_destroy_deletes_the_deploy_stages_endpoint_before_its_key(
    synthesized: SynthesizedApp,
) -> None:
    template = synthesized.json("dev", "workflow")
    (cleanup_id,) = [
        lid for lid, r in template["Resources"].items() if r["Type"] == "Custom::EndpointCleanup"
    ]
    assert template["Resources"][cleanup_id]["Properties"]["EndpointName"] == "mlstack-dev-live"
    # The key lives in the Data stack, which the Workflow stack depends on: CloudFormation
    # deletes the Workflow stack, this resource (so the endpoint) with it, before the key.
    assert synthesized.stages["dev"].workflow.dependencies == [synthesized.stages["dev"].data]
    machines = [
        r for r in template["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"
    ]
    # Both may create the endpoint: the training workflow (without a registry) and the release.
    assert len(machines) == 2
    assert all(cleanup_id in machine["DependsOn"] for machine in machines)


def test_prod_destroy_keeps_the_deploy_stages_endpoint(synthesized: SynthesizedApp) -> None:
    # prod retains what it serves, as it retains its data (docs/deploying.md names the command).
    template = synthesized.json("prod", "workflow")
    kinds = {r["Type"] for r in template["Resources"].values()}
    assert "Custom::EndpointCleanup" not in kinds
