"""Managed spot training and data-parallel training in the synthesized workflow: prod trains on
spot with checkpoints under the run's prefix (and the execution role may write and read them);
dev stays on demand; a max wait shorter than the max runtime fails synth naming the key."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import Duration

from mlstack.config import ConfigError, parse_environment
from mlstack.constructs import SpotTraining
from tests.infra.conftest import REPO, SynthesizedApp, environment_file, state_machine_definition
from tests.infra.test_infra_constructs import _workflow


@pytest.fixture(scope="module")
def train_model(synthesized: SynthesizedApp) -> dict[str, dict[str, Any]]:
    return {
        env: state_machine_definition(synthesized.json(env, "workflow"))["States"]["Train model"]
        for env in ("dev", "prod")
    }


def test_prod_trains_on_managed_spot_with_checkpoints_under_the_run(train_model) -> None:
    # CreateTrainingJob (SageMaker API reference): EnableManagedSpotTraining, CheckpointConfig
    # {S3Uri, LocalPath}, StoppingCondition.MaxWaitTimeInSeconds >= MaxRuntimeInSeconds.
    params = train_model["prod"]["Parameters"]
    assert params["EnableManagedSpotTraining"] is True
    checkpoint = params["CheckpointConfig"]
    assert checkpoint["LocalPath"] == "/opt/ml/checkpoints"
    assert checkpoint["S3Uri.$"].startswith("States.Format('s3://")
    assert checkpoint["S3Uri.$"].endswith("/checkpoints/{}/', $.run_id)")
    training = environment_file("prod")["training"]
    assert params["StoppingCondition"] == {
        "MaxRuntimeInSeconds": training["max_runtime_seconds"],
        "MaxWaitTimeInSeconds": training["spot"]["max_wait_seconds"],
    }


def test_prod_tuning_jobs_train_on_spot_with_checkpoints_of_their_own(
    synthesized: SynthesizedApp,
) -> None:
    # HyperParameterTrainingJobDefinition (SageMaker API reference) takes the same three:
    # EnableManagedSpotTraining, CheckpointConfig and StoppingCondition.MaxWaitTimeInSeconds.
    states = {
        env: state_machine_definition(synthesized.json(env, "workflow"))["States"]
        for env in ("dev", "prod")
    }
    job = states["prod"]["Tune model"]["Parameters"]["TrainingJobDefinition"]
    assert job["EnableManagedSpotTraining"] is True
    training = environment_file("prod")["training"]
    assert job["StoppingCondition"] == {
        "MaxRuntimeInSeconds": training["max_runtime_seconds"],
        "MaxWaitTimeInSeconds": training["spot"]["max_wait_seconds"],
    }
    assert job["CheckpointConfig"]["LocalPath"] == "/opt/ml/checkpoints"
    assert job["CheckpointConfig"]["S3Uri.$"].endswith("/checkpoints/{}/tuning/', $.run_id)")
    on_demand = states["dev"]["Tune model"]["Parameters"]["TrainingJobDefinition"]
    assert "EnableManagedSpotTraining" not in on_demand and "CheckpointConfig" not in on_demand
    assert "MaxWaitTimeInSeconds" not in on_demand["StoppingCondition"]


def test_dev_trains_on_demand(train_model) -> None:
    params = train_model["dev"]["Parameters"]
    assert "EnableManagedSpotTraining" not in params and "CheckpointConfig" not in params
    assert "MaxWaitTimeInSeconds" not in params["StoppingCondition"]


def test_the_output_reports_training_and_billable_seconds(synthesized: SynthesizedApp) -> None:
    states = state_machine_definition(synthesized.json("prod", "workflow"))["States"]
    selected = states["Train model"]["ResultSelector"]
    assert selected["BillableTimeInSeconds.$"] == "$.BillableTimeInSeconds"
    assert selected["TrainingTimeInSeconds.$"] == "$.TrainingTimeInSeconds"
    report = states["Report results"]["Parameters"]
    assert report["billable_seconds.$"] == "$.training.BillableTimeInSeconds"
    assert report["training_seconds.$"] == "$.training.TrainingTimeInSeconds"


def _execution_role_statements(synthesized: SynthesizedApp, env: str) -> list[dict[str, Any]]:
    template = synthesized.json(env, "workflow")
    policies = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::IAM::Policy"
        and "ExecutionRole" in json.dumps(r["Properties"]["Roles"])
    ]
    return [s for p in policies for s in p["PolicyDocument"]["Statement"]]


def _mentions_checkpoints(statement: dict[str, Any]) -> bool:
    return "checkpoints/" in json.dumps(statement["Resource"])


def test_only_a_spot_workflow_may_write_and_read_checkpoints(synthesized: SynthesizedApp) -> None:
    prod = [s for s in _execution_role_statements(synthesized, "prod") if _mentions_checkpoints(s)]
    actions = {
        a for s in prod for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert {"s3:GetObject", "s3:PutObject"} <= actions
    dev = [s for s in _execution_role_statements(synthesized, "dev") if _mentions_checkpoints(s)]
    assert dev == []


def test_a_max_wait_below_the_max_runtime_fails_synth_naming_the_key() -> None:
    data = json.loads((REPO / "environments" / "prod.json").read_text())
    data["training"]["spot"] = {"enabled": True, "max_wait_seconds": 3600}
    with pytest.raises(ConfigError) as error:
        parse_environment("prod", data)
    assert (
        "key 'training.spot.max_wait_seconds' is 3600; expected at least "
        "'training.max_runtime_seconds' (86400)"
    ) in str(error.value)


def test_a_construct_spot_max_wait_below_the_max_runtime_is_refused() -> None:
    with pytest.raises(
        ValueError, match=r"spot.max_wait=600s: expected at least training_max_runtime \(3600s\)"
    ):
        _workflow(
            spot=SpotTraining(max_wait=Duration.minutes(10)), training_max_runtime=Duration.hours(1)
        )


def test_more_training_instances_than_shards_fails_synth_naming_the_keys() -> None:
    data = json.loads((REPO / "environments" / "dev.json").read_text())
    data["dataset"]["rows_per_shard"] = 2000  # dev's 5000 rows: 3 shards
    data["training"]["instance_count"] = 4
    with pytest.raises(ConfigError) as error:
        parse_environment("dev", data)
    # The one rule (mlstack.portable_rules.instances_beyond_shards) names all three keys.
    assert (
        "key 'training.instance_count' is 4 with 'dataset.rows' 5000 and "
        "'dataset.rows_per_shard' 2000; expected at most the dataset's shards (3: "
    ) in str(error.value)
    data["training"]["instance_count"] = 3
    assert parse_environment("dev", data).training.instance_count == 3
