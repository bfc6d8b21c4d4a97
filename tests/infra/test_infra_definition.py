"""The rendered state machine definition: order, integrations, retries, catches, names, defaults."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.infra.conftest import SynthesizedApp, environment_file, state_machine_definition

MAIN_PATH = [
    "Validate input",
    "Input valid?",
    "Load defaults",
    "Apply overrides",
    "Plan shards",
    "Generate dataset",
    "Assemble dataset",
    "Train model",
    "Save model",
    "Batch transform",
    "Evaluate model",
    "Read evaluation",
    "Report results",
]
SAGEMAKER_TASKS = ["Train model", "Save model", "Batch transform", "Evaluate model"]


@pytest.fixture(scope="module")
def definitions(synthesized: SynthesizedApp) -> dict[str, dict[str, Any]]:
    return {
        env: state_machine_definition(synthesized.json(env, "workflow")) for env in ("dev", "prod")
    }


@pytest.fixture(scope="module")
def dev(definitions: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return definitions["dev"]


def walk_main_path(definition: dict[str, Any], *, stop: str | None = None) -> list[str]:
    """The states a run passes through when every Choice takes its default."""
    order, name = [], definition["StartAt"]
    while name and name != stop:
        order.append(name)
        state = definition["States"][name]
        name = None if state.get("End") else state.get("Next", state.get("Default"))
    return order


def test_core_states_run_in_order(dev: dict[str, Any]) -> None:
    # The core path, with the tuning choice (default: train) before Train model and the deploy
    # stage (from Table run? on) between Read evaluation and Report results.
    path = [s for s in walk_main_path(dev, stop="Table run?")]
    storage = [
        "Training instance storage?",
        "Train on encrypted volume",
        "Transform instance storage?",
        "Transform on encrypted volume",
    ]
    tune, source = "Tune hyperparameters?", "Dataset source?"  # the seeder: no dataset_source
    assert path == [*MAIN_PATH[:4], *storage, source, *MAIN_PATH[4:7], tune, *MAIN_PATH[7:12]]
    assert dev["States"]["Batch transform"]["Next"] == "Evaluate model"
    assert dev["States"]["Evaluate model"]["Next"] == "Read evaluation"
    # Table run? picks a table's gate, or the seeder's (Read validation metric).
    assert dev["States"]["Read evaluation"]["Next"] == "Table run?"
    assert dev["States"]["Table run?"]["Default"] == "Read validation metric"
    assert dev["States"]["Report results"]["End"] is True


def test_task_resources_are_the_service_integrations(dev: dict[str, Any]) -> None:
    resources = {name: s.get("Resource") for name, s in dev["States"].items()}
    seed = dev["States"]["Generate dataset"]["ItemProcessor"]["States"]["Seed shard"]
    assert seed["Resource"] == "arn:aws:states:::lambda:invoke"
    assert resources["Train model"] == "arn:aws:states:::sagemaker:createTrainingJob.sync"
    assert resources["Save model"] == "arn:aws:states:::sagemaker:createModel"
    assert resources["Batch transform"] == "arn:aws:states:::sagemaker:createTransformJob.sync"
    assert resources["Notify failure"] == "arn:aws:states:::sns:publish"


def test_batch_transform_splits_and_assembles_lines(dev: dict[str, Any]) -> None:
    params = dev["States"]["Batch transform"]["Parameters"]
    assert params["BatchStrategy"] == "MultiRecord"
    assert params["TransformInput"]["SplitType"] == "Line"
    assert params["TransformInput"]["ContentType"] == "text/csv"
    assert params["TransformOutput"]["AssembleWith"] == "Line"
    assert (
        params["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri.$"] == "$.dataset.test_prefix"
    )
    assert params["ModelName.$"] == "$.model.ModelName"


def test_training_reads_the_seeded_train_and_validation_channels(dev: dict[str, Any]) -> None:
    params = dev["States"]["Train model"]["Parameters"]
    # The dataset states write the channels (a prepared table adds its schema's).
    assert params["InputDataConfig.$"] == "$.dataset.channels"
    assembled = dev["States"]["Assemble dataset"]
    train, validation = assembled["Parameters"]["channels"]
    for channel, name in ((train, "train"), (validation, "validation")):
        assert channel["ChannelName"] == name
        assert channel["ContentType"] == "text/csv"
        uri = channel["DataSource"]["S3DataSource"]["S3Uri.$"]
        assert uri == assembled["Parameters"][f"{name}_prefix.$"]
    assert assembled["ResultPath"] == "$.dataset"
    assert "validation_prefix.$" in assembled["Parameters"]
    # Data parallel: each training host reads its share of the train shards, all of validation.
    # (SageMaker API reference, S3DataSource: with ShardedByS3Key "each instance gets
    # approximately 1/n of the number of S3 objects"; one instance gets them all.)
    distribution = [
        c["DataSource"]["S3DataSource"]["S3DataDistributionType"] for c in (train, validation)
    ]
    assert distribution == ["ShardedByS3Key", "FullyReplicated"]
    assert assembled["Parameters"]["shards.$"] == "States.ArrayLength($.seeding.shard_starts)"
    # The resources are planned by instance type (local NVMe storage takes no volume key).
    assert params["ResourceConfig.$"] == "$.resources.training"
    planned = dev["States"]["Train on encrypted volume"]["Parameters"]
    assert planned["InstanceType.$"] == "$.args.training_instance_type"
    assert planned["InstanceCount.$"] == "$.args.training_instance_count"
    assert params["EnableNetworkIsolation"] is True
    assert params["OutputDataConfig"]["KmsKeyId"].startswith("arn:aws:kms:")
    assert planned["VolumeKmsKeyId"].startswith("arn:aws:kms:")


def test_training_declares_the_images_metric_definitions(dev: dict[str, Any]) -> None:
    metrics = dev["States"]["Train model"]["Parameters"]["AlgorithmSpecification"][
        "MetricDefinitions"
    ]
    assert {"train:rmse", "validation:rmse"} <= {m["Name"] for m in metrics}


def test_save_model_uses_the_training_artifact(dev: dict[str, Any]) -> None:
    state = dev["States"]["Save model"]
    container = state["Parameters"]["PrimaryContainer"]
    assert container["ModelDataUrl.$"] == "$.training.ModelArtifacts.S3ModelArtifacts"
    assert state["ResultSelector"]["ModelName.$"] == (
        "States.ArrayGetItem(States.StringSplit($.ModelArn, '/'), 1)"
    )


@pytest.mark.parametrize(
    ("state", "name_key", "kind"),
    [
        ("Train model", "TrainingJobName.$", "t"),
        ("Save model", "ModelName.$", "m"),
        ("Batch transform", "TransformJobName.$", "b"),
    ],
)
def test_names_derive_from_execution_and_attempt(
    dev: dict[str, Any], state: str, name_key: str, kind: str
) -> None:
    expression = dev["States"][state]["Parameters"][name_key]
    assert expression == (
        f"States.Format('mlstack-dev-{{}}-{kind}{{}}-{{}}', $.run_id, "
        "$$.Execution.RedriveCount, $$.State.RetryCount)"
    )
    assert dev["States"]["Load defaults"]["Parameters"]["run_id.$"] == (
        "States.Hash($$.Execution.Name, 'MD5')"
    )


def test_longest_possible_name_fits_sagemaker_limit(definitions: dict[str, dict[str, Any]]) -> None:
    for definition in definitions.values():
        for state in SAGEMAKER_TASKS:
            params = definition["States"][state]["Parameters"]
            expression = next(
                v for k, v in params.items() if k.endswith("Name.$") and "Format" in v
            )
            template = re.search(r"'([^']*)'", expression)
            assert template is not None
            # run_id: 32 hex chars; redrive count: at most 1000; retry count: one digit
            longest = template.group(1).replace("{}", "f" * 32, 1).replace("{}", "1000", 1)
            longest = longest.replace("{}", "9", 1)
            assert len(longest) <= 63
            assert re.fullmatch(r"[a-z0-9](-*[a-z0-9])*", longest)


@pytest.mark.parametrize("state", SAGEMAKER_TASKS)
def test_sagemaker_steps_retry_throttling_with_backoff(dev: dict[str, Any], state: str) -> None:
    (retry,) = dev["States"][state]["Retry"]
    # An optimized integration raises every SageMaker API error, throttling included, as this.
    assert retry["ErrorEquals"] == ["SageMaker.AmazonSageMakerException"]
    assert retry["BackoffRate"] == 2
    assert retry["MaxAttempts"] >= 2
    assert retry["JitterStrategy"] == "FULL"
    assert "States.ALL" not in retry["ErrorEquals"]


def test_lambda_step_retries_transient_errors(dev: dict[str, Any]) -> None:
    seed = dev["States"]["Generate dataset"]["ItemProcessor"]["States"]["Seed shard"]
    (retry,) = seed["Retry"]
    assert "Lambda.TooManyRequestsException" in retry["ErrorEquals"]
    assert retry["BackoffRate"] == 2


@pytest.mark.parametrize("state", ["Generate dataset", *SAGEMAKER_TASKS])
def test_every_failure_is_caught_and_notified(dev: dict[str, Any], state: str) -> None:
    (catch,) = dev["States"][state]["Catch"]
    assert catch == {
        "ErrorEquals": ["States.ALL"],
        "ResultPath": "$.error",
        "Next": "Notify failure",
    }


def test_notification_ends_in_fail_state_carrying_the_cause(dev: dict[str, Any]) -> None:
    notify = dev["States"]["Notify failure"]
    assert notify["Next"] == "Workflow failed"
    assert notify["Catch"][0]["Next"] == "Workflow failed"
    assert "$.error" in notify["Parameters"]["Message.$"]
    assert notify["Parameters"]["TopicArn"]
    fail = dev["States"]["Workflow failed"]
    assert fail == {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"}


def _ranges_as_sagemaker_writes_them(ranges: dict[str, Any]) -> dict[str, list[Any]]:
    # SageMaker API reference, ParameterRanges: IntegerParameterRange and
    # ContinuousParameterRange carry Name, MinValue and MaxValue as strings and ScalingType
    # (default Auto); CategoricalParameterRange Name and Values.
    out: dict[str, list[Any]] = {
        "IntegerParameterRanges": [],
        "ContinuousParameterRanges": [],
        "CategoricalParameterRanges": [],
    }
    for name, spec in ranges.items():
        if spec["type"] == "categorical":
            out["CategoricalParameterRanges"].append(
                {"Name": name, "Values": [str(v) for v in spec["values"]]}
            )
            continue
        out[f"{spec['type'].capitalize()}ParameterRanges"].append(
            {
                "Name": name,
                "MinValue": str(spec["min"]),
                "MaxValue": str(spec["max"]),
                "ScalingType": spec.get("scaling", "Auto"),
            }
        )
    return out


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_defaults_come_from_each_environments_config(
    definitions: dict[str, dict[str, Any]], env: str
) -> None:
    defaults = definitions[env]["States"]["Load defaults"]["Parameters"]["defaults"]
    config = environment_file(env)
    tuning, deploy = config["tuning"], config["deploy"]
    assert defaults == {
        "rows": config["dataset"]["rows"],
        "seed": config["dataset"]["seed"],
        "training_instance_type": config["training"]["instance_type"],
        "training_instance_count": config["training"]["instance_count"],
        "transform_instance_type": config["transform"]["instance_type"],
        "transform_instance_count": config["transform"]["instance_count"],
        "hyperparameters": {},  # the input's own, merged over the environment's below
        "tune": tuning["enabled"],
        "tuning_strategy": tuning["strategy"],
        "tuning_max_jobs": tuning["max_jobs"],
        "tuning_max_parallel_jobs": tuning["max_parallel_jobs"],
        "tuning_objective": {
            "Type": tuning["objective"]["type"],
            "MetricName": tuning["objective"]["metric"],
        },
        "tuning_ranges": _ranges_as_sagemaker_writes_them(tuning["ranges"]),
        "quality_threshold": deploy["threshold"],
    }
    load = definitions[env]["States"]["Load defaults"]["Parameters"]
    assert load["default_hyperparameters"] == config["training"]["hyperparameters"]


def test_input_overrides_defaults_and_hyperparameters_key_by_key(dev: dict[str, Any]) -> None:
    load = dev["States"]["Load defaults"]["Parameters"]
    apply = dev["States"]["Apply overrides"]["Parameters"]
    # The input itself, not the state: Validate input replaced the state with its verdict.
    assert load["overrides.$"] == "$$.Execution.Input"
    assert apply["args.$"] == "States.JsonMerge($.defaults, $.overrides, false)"
    train = dev["States"]["Train model"]["Parameters"]
    assert train["HyperParameters.$"] == (
        "States.JsonMerge($.default_hyperparameters, $.args.hyperparameters, false)"
    )
    seeding = dev["States"]["Generate dataset"]
    assert seeding["ItemSelector"] == {
        "run_id.$": "$.run_id",
        "rows.$": "$.args.rows",
        "seed.$": "$.args.seed",
        "rows_per_shard": 100_000,
        "shard.$": "$$.Map.Item.Index",
    }
    seed = seeding["ItemProcessor"]["States"]["Seed shard"]
    assert seed["Parameters"]["Payload.$"] == "$"


def test_output_names_model_artifact_and_transform_output(dev: dict[str, Any]) -> None:
    output = dev["States"]["Report results"]["Parameters"]
    assert output["model_name.$"] == "$.model.ModelName"
    assert output["model_artifact_uri.$"] == "$.training.ModelArtifacts.S3ModelArtifacts"
    assert output["transform_output_uri.$"] == "$.transform.TransformOutput.S3OutputPath"


def test_definition_uses_jsonpath_not_jsonata(dev: dict[str, Any]) -> None:
    assert dev.get("QueryLanguage", "JSONPath") == "JSONPath"
    assert all("QueryLanguage" not in s for s in dev["States"].values())


# --- seeding through a Map state --------------------------------------------------------------


def test_shards_are_planned_with_array_range_one_item_per_shard(dev: dict[str, Any]) -> None:
    # States.ArrayRange(first, last, step) (developer guide, "Intrinsic functions"): the first row
    # of every shard, so ceil(rows / rows_per_shard) items.
    plan = dev["States"]["Plan shards"]
    assert plan["Parameters"] == {
        "shard_starts.$": "States.ArrayRange(0, States.MathAdd($.args.rows, -1), 100000)"
    }
    assert dev["States"]["Generate dataset"]["ItemsPath"] == "$.seeding.shard_starts"


def test_dev_seeds_through_an_inline_map_only(dev: dict[str, Any]) -> None:
    # dev's max_rows (1,000,000) is 10 shards: no run needs the Distributed Map.
    assert dev["States"]["Plan shards"]["Next"] == "Generate dataset"
    seeding = dev["States"]["Generate dataset"]
    assert seeding["Type"] == "Map"
    assert seeding["ItemProcessor"]["ProcessorConfig"] == {"Mode": "INLINE"}
    assert seeding["MaxConcurrency"] == 5
    # Results dropped: a thousand shards' results would pass the 256 KiB payload limit.
    assert seeding["ResultPath"] is None
    assert "Generate dataset at scale" not in dev["States"]


def test_prod_seeds_many_shards_through_a_distributed_map(
    definitions: dict[str, dict[str, Any]],
) -> None:
    prod = definitions["prod"]
    choice = prod["States"]["Many shards?"]
    assert prod["States"]["Plan shards"]["Next"] == "Many shards?"
    # More than 100 shards of 100,000 rows.
    assert choice["Choices"] == [
        {"Variable": "$.args.rows", "NumericGreaterThan": 10_000_000,
         "Next": "Generate dataset at scale"}
    ]  # fmt: skip
    assert choice["Default"] == "Generate dataset"
    at_scale = prod["States"]["Generate dataset at scale"]
    # "Using Map state in Distributed mode": ProcessorConfig Mode DISTRIBUTED with an
    # ExecutionType; MaxConcurrency up to 10,000 child executions.
    assert at_scale["ItemProcessor"]["ProcessorConfig"] == {
        "Mode": "DISTRIBUTED",
        "ExecutionType": "STANDARD",
    }
    assert at_scale["MaxConcurrency"] == 20
    assert at_scale["ToleratedFailurePercentage"] == 0
    assert "ItemReader" not in at_scale
    assert at_scale["Next"] == prod["States"]["Generate dataset"]["Next"] == "Assemble dataset"
    (catch,) = at_scale["Catch"]
    assert catch["Next"] == "Notify failure"


def test_assemble_dataset_lists_the_prefixes_the_seeder_writes(dev: dict[str, Any]) -> None:
    params = dev["States"]["Assemble dataset"]["Parameters"]
    for split in ("train", "validation", "test"):
        assert f"/datasets/{{}}/{split}/', $.run_id)" in params[f"{split}_prefix.$"]
    assert params["rows_per_shard"] == 100_000
