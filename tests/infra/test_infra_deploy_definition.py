"""The rendered definition's optional paths: tuning, the quality gate, create-or-update, the
bounded wait loop and its failure paths, blue/green updates and A/B variants."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.conftest import SynthesizedApp, environment_file, state_machine_definition

SAGEMAKER_NAME_LIMIT = 63
TUNING_JOB_NAME_LIMIT = 32
# Every state the tuning path and the deploy stage add, with its Task resource (None: no Task).
NEW_STATES = {
    "Tune hyperparameters?": None,
    "Tune model": "arn:aws:states:::sagemaker:createHyperParameterTuningJob.sync",
    "Read best training job": "arn:aws:states:::aws-sdk:sagemaker:describeTrainingJob",
    "Read validation metric": None,
    "Quality gate": None,
    "Reject model": None,
    "Metric not reported": None,
    "Register model": "arn:aws:states:::aws-sdk:sagemaker:createModelPackage",
    "Describe endpoint": "arn:aws:states:::aws-sdk:sagemaker:describeEndpoint",
    "Is endpoint missing?": None,
    "Plan new endpoint": None,
    "Plan endpoint update": None,
    "Create endpoint config": "arn:aws:states:::sagemaker:createEndpointConfig",
    "Endpoint exists?": None,
    "Create endpoint": "arn:aws:states:::sagemaker:createEndpoint",
    "Update endpoint": "arn:aws:states:::sagemaker:updateEndpoint",
    "Start endpoint wait": None,
    "Wait for endpoint": None,
    "Check endpoint status": "arn:aws:states:::aws-sdk:sagemaker:describeEndpoint",
    "Count endpoint check": None,
    "Endpoint ready?": None,
    "Endpoint failed": None,
    "Endpoint not in service": None,
    "Deployment rolled back": None,
    "Endpoint wait timed out": None,
}


def merged(template: dict[str, Any]) -> dict[str, Any]:
    """The training workflow's states and the release's (the deploy stage's endpoint states run
    in the release since deployment waits for approval; the names are distinct)."""
    training = state_machine_definition(template)
    release = state_machine_definition(template, release=True)
    assert not set(training["States"]) & set(release["States"])
    return {**training, "States": {**training["States"], **release["States"]}}


# The states of NEW_STATES that stay in the training workflow; the rest are the release's.
TRAINING_STATES = {
    "Tune hyperparameters?",
    "Tune model",
    "Read best training job",
    "Read validation metric",
    "Quality gate",
    "Reject model",
    "Metric not reported",
    "Register model",
}


@pytest.fixture(scope="module")
def definitions(synthesized: SynthesizedApp) -> dict[str, dict[str, Any]]:
    return {env: merged(synthesized.json(env, "workflow")) for env in ("dev", "prod")}


@pytest.fixture(scope="module")
def dev(definitions: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return definitions["dev"]


@pytest.fixture(scope="module")
def prod(definitions: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return definitions["prod"]


def states(definition: dict[str, Any]) -> dict[str, Any]:
    return definition["States"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_new_states_exist_with_their_task_resources(
    definitions: dict[str, dict[str, Any]], env: str
) -> None:
    found = states(definitions[env])
    for name, resource in NEW_STATES.items():
        assert name in found, name
        assert found[name].get("Resource") == resource, name


def test_every_new_task_is_retried_and_caught(dev: dict[str, Any]) -> None:
    for name, resource in NEW_STATES.items():
        if resource is None:
            continue
        state = states(dev)[name]
        (retry,) = state["Retry"]
        expected_retry = (
            "SageMaker.ThrottlingException"
            if ":aws-sdk:" in state["Resource"]
            else "SageMaker.AmazonSageMakerException"
        )
        assert expected_retry in retry["ErrorEquals"]
        (catch,) = state["Catch"]
        # The endpoint states run in the release, which notifies its own failures.
        notify = "Notify failure" if name in TRAINING_STATES else "Notify release failure"
        expected = "Is endpoint missing?" if name == "Describe endpoint" else notify
        assert catch == {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": expected}


# --- tuning -------------------------------------------------------------------------------


def test_tuning_choice_follows_the_tune_input_defaulting_to_the_config(
    definitions: dict[str, dict[str, Any]],
) -> None:
    for definition in definitions.values():
        choice = states(definition)["Tune hyperparameters?"]
        assert states(definition)["Assemble dataset"]["Next"] == "Tune hyperparameters?"
        assert choice["Choices"] == [
            {"Variable": "$.args.tune", "BooleanEquals": True, "Next": "Tune model"}
        ]
        assert choice["Default"] == "Train model"
    defaults = {
        env: states(d)["Load defaults"]["Parameters"]["defaults"]["tune"]
        for env, d in definitions.items()
    }
    assert defaults == {"dev": False, "prod": True}


def test_tuning_job_reads_config_or_input_and_the_best_job_flows_into_save_model(
    prod: dict[str, Any],
) -> None:
    tune = states(prod)["Tune model"]
    config = tune["Parameters"]["HyperParameterTuningJobConfig"]
    assert config["Strategy.$"] == "$.args.tuning_strategy"
    assert config["HyperParameterTuningJobObjective.$"] == "$.args.tuning_objective"
    assert config["ParameterRanges.$"] == "$.args.tuning_ranges"
    assert config["ResourceLimits"] == {
        "MaxNumberOfTrainingJobs.$": "$.args.tuning_max_jobs",
        "MaxParallelTrainingJobs.$": "$.args.tuning_max_parallel_jobs",
    }
    assert config["TrainingJobEarlyStoppingType"] == "Auto"
    definition = tune["Parameters"]["TrainingJobDefinition"]
    assert definition["InputDataConfig.$"] == "$.dataset.channels"  # as Train model's
    channels = states(prod)["Assemble dataset"]["Parameters"]["channels"]
    assert [c["ChannelName"] for c in channels] == ["train", "validation"]
    # Tuning jobs' training jobs split the train shards over their instances like Train model.
    assert [c["DataSource"]["S3DataSource"]["S3DataDistributionType"] for c in channels] == [
        "ShardedByS3Key",
        "FullyReplicated",
    ]
    assert definition["StaticHyperParameters.$"].startswith("States.JsonMerge(")
    metrics = {m["Name"] for m in definition["AlgorithmSpecification"]["MetricDefinitions"]}
    defaults = states(prod)["Load defaults"]["Parameters"]["defaults"]
    assert defaults["tuning_objective"]["MetricName"] in metrics
    assert {r["Name"] for r in defaults["tuning_ranges"]["ContinuousParameterRanges"]} == {
        "eta",
        "min_child_weight",
    }
    assert tune["ResultPath"] == "$.tuning"
    assert tune["Next"] == "Read best training job"
    best = states(prod)["Read best training job"]
    assert best["Parameters"] == {"TrainingJobName.$": "$.tuning.BestTrainingJob.TrainingJobName"}
    assert best["ResultSelector"] == states(prod)["Train model"]["ResultSelector"]
    assert best["ResultPath"] == "$.training"
    assert best["Next"] == "Save model"


def test_tuning_job_name_fits_32_characters(definitions: dict[str, dict[str, Any]]) -> None:
    for env, definition in definitions.items():
        expression = states(definition)["Tune model"]["Parameters"]["HyperParameterTuningJobName.$"]
        assert expression == (
            f"States.Format('mlstack-{env}-{{}}', "
            "States.ArrayGetItem(States.StringSplit(States.UUID(), '-'), 0))"
        )
        # The first group of a UUID has 8 hex digits; the longest prefix has 20 characters.
        longest = "m" * 20 + "-" + "f" * 8
        assert len(longest) <= TUNING_JOB_NAME_LIMIT
        assert len(f"mlstack-{env}-" + "f" * 8) <= TUNING_JOB_NAME_LIMIT


# --- quality gate -------------------------------------------------------------------------


def test_training_result_carries_the_final_metrics(dev: dict[str, Any]) -> None:
    selector = states(dev)["Train model"]["ResultSelector"]
    assert selector["FinalMetricDataList.$"] == "$.FinalMetricDataList"


def test_gate_reads_the_configured_metric_from_the_final_metrics(dev: dict[str, Any]) -> None:
    read = states(dev)["Read validation metric"]
    assert read["Parameters"] == {
        "metric": "validation:rmse",
        "comparison": "less_than_or_equal",
        "values.$": "$.training.FinalMetricDataList[?(@.MetricName == 'validation:rmse')].Value",
        "threshold.$": "$.args.quality_threshold",
    }
    assert read["ResultPath"] == "$.gate"
    assert read["Next"] == "Quality gate"


def test_gate_compares_with_the_threshold_and_rejects_otherwise(dev: dict[str, Any]) -> None:
    gate = states(dev)["Quality gate"]
    assert gate["Choices"] == [
        {
            "Not": {"Variable": "$.gate.values[0]", "IsPresent": True},
            "Next": "Metric not reported",
        },
        {"Not": {"Variable": "$.gate.threshold", "IsNumeric": True}, "Next": "Reject model"},
        {
            "Variable": "$.gate.values[0]",
            "NumericLessThanEqualsPath": "$.gate.threshold",
            # The served copy, Register model's metadata, then Register model.
            "Next": "Release model artifact",
        },
    ]
    assert gate["Default"] == "Reject model"


def test_rejected_model_fails_with_a_clear_cause_and_touches_nothing(dev: dict[str, Any]) -> None:
    reject = states(dev)["Reject model"]
    assert reject["Parameters"]["Error"] == "QualityGateFailed"
    cause = reject["Parameters"]["Cause.$"]
    assert "validation:rmse = {}; the quality gate requires <= {}. Nothing was deployed." in cause
    # The one value, not the filter's list (which would read "validation:rmse = [0.0976949]").
    assert cause.endswith("', $.model.ModelName, $.gate.values[0], $.gate.threshold)")
    assert reject["ResultPath"] == "$.error"
    assert reject["Next"] == "Notify failure"  # -> Workflow failed, with this error and cause


def test_a_metric_the_job_did_not_report_fails_with_its_own_cause(dev: dict[str, Any]) -> None:
    missing = states(dev)["Metric not reported"]
    assert missing["Parameters"]["Error"] == "QualityGateFailed"
    cause = missing["Parameters"]["Cause.$"]
    assert "did not report validation:rmse" in cause
    assert "eval_metric hyperparameter names rmse" in cause
    assert "States.JsonToString($.training.FinalMetricDataList)" in cause
    assert missing["ResultPath"] == "$.error"
    assert missing["Next"] == "Notify failure"


def _gate_machine(definition: dict[str, Any]) -> dict[str, Any]:
    """Read validation metric -> Quality gate -> its ends, as in the synthesized definition; the
    states after the gate become ends (Succeed for the passing one)."""
    s = states(definition)
    names = ("Read validation metric", "Quality gate", "Reject model", "Metric not reported")
    machine = {name: dict(s[name]) for name in names}
    for name in ("Reject model", "Metric not reported"):
        del machine[name]["Next"]
        machine[name]["End"] = True
    passing = s["Quality gate"]["Choices"][-1]["Next"]
    machine[passing] = {"Type": "Succeed"}
    return {"StartAt": "Read validation metric", "States": machine}


# DescribeTrainingJob's FinalMetricDataList items (botocore's sagemaker model, MetricData:
# MetricName, Value, Timestamp); the value is one a dev run printed for validation:rmse.
def _gate_input(metrics: dict[str, float], threshold: float) -> dict[str, Any]:
    return {
        "args": {"quality_threshold": threshold},
        "model": {"ModelName": "mlstack-dev-run-1"},
        "training": {
            "TrainingJobName": "mlstack-dev-run-1",
            "FinalMetricDataList": [
                {"MetricName": name, "Value": value, "Timestamp": "2026-12-07T16:00:00Z"}
                for name, value in metrics.items()
            ],
        },
    }


def test_a_failing_gate_reads_one_value_when_executed(dev: dict[str, Any]) -> None:
    from mlstack.local.asl import Interpreter

    machine = _gate_machine(dev)
    data = _gate_input({"train:rmse": 0.05, "validation:rmse": 0.0976949}, 0.05)
    result = Interpreter(machine, lambda call: None).execute(data, name="gate")
    assert result.status == "SUCCEEDED"  # the slice ends at Reject model
    assert result.output["error"]["Error"] == "QualityGateFailed"
    assert result.output["error"]["Cause"] == (
        "Model mlstack-dev-run-1 has validation:rmse = 0.0976949; the quality gate requires "
        "<= 0.05. Nothing was deployed."
    )


def test_an_unreported_metric_says_so_when_executed(dev: dict[str, Any]) -> None:
    from mlstack.local.asl import Interpreter

    machine = _gate_machine(dev)
    data = _gate_input({"train:rmse": 0.05}, 0.05)
    result = Interpreter(machine, lambda call: None).execute(data, name="gate")
    assert result.states[-1] == "Metric not reported"
    cause = result.output["error"]["Cause"]
    assert cause.startswith(
        "Training job mlstack-dev-run-1 did not report validation:rmse (its final metrics: "
        '[{"MetricName":"train:rmse"'
    ), cause
    assert cause.endswith("Nothing was deployed.")


# --- create or update ---------------------------------------------------------------------


def test_absent_endpoint_is_created_and_present_one_updated(dev: dict[str, Any]) -> None:
    s = states(dev)
    describe = s["Describe endpoint"]
    assert describe["Parameters"] == {"EndpointName": "mlstack-dev-live"}
    assert describe["Next"] == "Plan endpoint update"
    missing = s["Is endpoint missing?"]
    assert missing["Choices"] == [
        {
            "Variable": "$.error.Cause",
            "StringMatches": "*Could not find endpoint*",
            "Next": "Plan new endpoint",
        }
    ]
    assert missing["Default"] == "Notify release failure"  # any other error is a failure
    assert s["Plan new endpoint"]["Parameters"]["exists"] is False
    assert s["Plan endpoint update"]["Parameters"]["exists"] is True
    for plan in ("Plan new endpoint", "Plan endpoint update"):
        assert s[plan]["Next"] == "Create endpoint config"
    assert s["Create endpoint config"]["Next"] == "Endpoint exists?"
    branch = s["Endpoint exists?"]
    assert branch["Choices"] == [
        {"Variable": "$.deployment.exists", "BooleanEquals": True, "Next": "Update endpoint"}
    ]
    assert branch["Default"] == "Create endpoint"
    for task in ("Create endpoint", "Update endpoint"):
        assert s[task]["Parameters"]["EndpointName"] == "mlstack-dev-live"
        assert (
            s[task]["Parameters"]["EndpointConfigName.$"] == "$.endpoint_config.EndpointConfigName"
        )
        assert s[task]["Next"] == "Start endpoint wait"
    assert "DeploymentConfig" not in s["Create endpoint"]["Parameters"]


def test_endpoint_config_is_named_after_the_model_and_attempt(dev: dict[str, Any]) -> None:
    create = states(dev)["Create endpoint config"]
    params = create["Parameters"]
    assert params["EndpointConfigName.$"] == (
        "States.Format('{}-{}', $.model.ModelName, $$.State.RetryCount)"
    )
    assert params["ProductionVariants.$"] == "$.deployment.variants"
    assert params["KmsKeyId"].startswith("arn:aws:kms:")
    # The longest model name (20-character prefix, run id, redrive 1000, retry 9) plus '-9'.
    longest_model = "m" * 20 + "-" + "f" * 32 + "-m1000-9"
    assert len(longest_model + "-9") <= SAGEMAKER_NAME_LIMIT
    assert create["ResultSelector"]["EndpointConfigName.$"] == (
        "States.ArrayGetItem(States.StringSplit($.EndpointConfigArn, '/'), 1)"
    )


def test_update_is_blue_green_with_rollback_on_alarms(definitions: dict[str, Any]) -> None:
    dev_policy = states(definitions["dev"])["Update endpoint"]["Parameters"]["DeploymentConfig"]
    assert dev_policy["BlueGreenUpdatePolicy"] == {
        "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 60},
        "TerminationWaitInSeconds": 0,
        "MaximumExecutionTimeoutInSeconds": 1800,
    }
    alarms = dev_policy["AutoRollbackConfiguration"]["Alarms"]
    assert len(alarms) == 2  # 5xx rate and latency of the one variant
    assert all(a["AlarmName"].startswith("ref-workflowdeployalarmslive") for a in alarms)
    prod_policy = states(definitions["prod"])["Update endpoint"]["Parameters"]["DeploymentConfig"]
    traffic = environment_file("prod")["deploy"]["traffic"]
    assert traffic["type"] == "canary"  # the case this test is about
    # SageMaker API reference, TrafficRoutingConfig: Type CANARY with CanarySize
    # {Type: CAPACITY_PERCENT, Value}, WaitIntervalInSeconds.
    assert prod_policy["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"] == {
        "Type": "CANARY",
        "WaitIntervalInSeconds": traffic["wait_seconds"],
        "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": traffic["step_percent"]},
    }
    assert (
        prod_policy["BlueGreenUpdatePolicy"]["TerminationWaitInSeconds"]
        == traffic["termination_wait_seconds"]
    )
    assert len(prod_policy["AutoRollbackConfiguration"]["Alarms"]) == 4  # two variants


def test_dev_deploys_one_variant_taking_all_traffic(dev: dict[str, Any]) -> None:
    deploy = environment_file("dev")["deploy"]
    assert deploy["candidate_weight"] == 0  # no candidate: one variant
    for plan in ("Plan new endpoint", "Plan endpoint update"):
        assert states(dev)[plan]["Parameters"]["variants"] == [
            {
                "VariantName": "Live",
                "ModelName.$": "$.model.ModelName",
                "InstanceType": deploy["instance_type"],
                "InitialInstanceCount": deploy["instance_count"],
                "InitialVariantWeight": 1.0,
            }
        ]


def test_prod_ab_tests_the_candidate_against_the_current_model(prod: dict[str, Any]) -> None:
    update = states(prod)["Plan endpoint update"]["Parameters"]["variants"]
    assert [(v["VariantName"], v["InitialVariantWeight"]) for v in update] == [
        ("Live", 0.9),
        ("Candidate", 0.1),
    ]
    assert update[1]["ModelName.$"] == "$.model.ModelName"
    # The first configuration already has both variants (same names for every blue/green update).
    new = states(prod)["Plan new endpoint"]["Parameters"]["variants"]
    assert [v["VariantName"] for v in new] == ["Live", "Candidate"]
    assert {v["ModelName.$"] for v in new} == {"$.model.ModelName"}
    # Live's model is the release's A/B decision: the previous candidate only on evidence
    # (tests/infra/test_infra_ab_release.py), else the live model.
    assert update[0]["ModelName.$"] == "$.ab.live_model"


# --- wait loop ----------------------------------------------------------------------------


def test_wait_loop_is_a_bounded_wait_describe_count_cycle(
    definitions: dict[str, dict[str, Any]],
) -> None:
    for env, poll, bound in (("dev", 30, 60), ("prod", 60, 60)):
        s = states(definitions[env])
        assert s["Start endpoint wait"] == {
            "Type": "Pass",
            "Result": {"checks": 0},
            "ResultPath": "$.wait",
            "Next": "Wait for endpoint",
        }
        assert s["Wait for endpoint"] == {
            "Type": "Wait",
            "Seconds": poll,
            "Next": "Check endpoint status",
        }
        check = s["Check endpoint status"]
        assert check["Parameters"] == {"EndpointName": f"mlstack-{env}-live"}
        assert check["ResultPath"] == "$.status"
        assert check["Next"] == "Count endpoint check"
        count = s["Count endpoint check"]
        assert count["Parameters"] == {"checks.$": "States.MathAdd($.wait.checks, 1)"}
        assert count["Next"] == "Endpoint ready?"
        ready = s["Endpoint ready?"]
        assert ready["Default"] == "Wait for endpoint"
        assert ready["Choices"][-1] == {
            "Variable": "$.wait.checks",
            "NumericGreaterThanEquals": bound,
            "Next": "Endpoint wait timed out",
        }


def test_in_service_on_the_new_config_succeeds_otherwise_it_rolled_back(
    dev: dict[str, Any],
) -> None:
    first, second = states(dev)["Endpoint ready?"]["Choices"][:2]
    assert first == {
        "And": [
            {"Variable": "$.status.EndpointStatus", "StringEquals": "InService"},
            {
                "Variable": "$.status.EndpointConfigName",
                "StringEqualsPath": "$.endpoint_config.EndpointConfigName",
            },
        ],
        "Next": "Report release",
    }
    assert second == {
        "Variable": "$.status.EndpointStatus",
        "StringEquals": "InService",
        "Next": "Deployment rolled back",
    }


def test_failed_endpoint_ends_the_run_with_its_failure_reason(dev: dict[str, Any]) -> None:
    s = states(dev)
    rule = s["Endpoint ready?"]["Choices"][2]
    assert rule["Next"] == "Endpoint failed"
    assert {"Variable": "$.status.FailureReason", "IsPresent": True} in rule["And"]
    failed = s["Endpoint failed"]
    assert failed["Parameters"]["Error"] == "EndpointFailed"
    assert "$.status.FailureReason" in failed["Parameters"]["Cause.$"]
    for name, error in (
        ("Endpoint failed", "EndpointFailed"),
        ("Endpoint not in service", "EndpointNotInService"),
        ("Deployment rolled back", "DeploymentRolledBack"),
        ("Endpoint wait timed out", "EndpointWaitTimedOut"),
    ):
        assert s[name]["Type"] == "Pass"
        assert s[name]["Parameters"]["Error"] == error
        assert s[name]["ResultPath"] == "$.error"
        assert s[name]["Next"] == "Notify release failure"


def test_report_names_the_endpoint_and_the_gate(dev: dict[str, Any]) -> None:
    release = states(dev)["Report release"]["Parameters"]
    assert release["endpoint_name"] == "mlstack-dev-live"
    assert release["endpoint_config_name.$"] == "$.endpoint_config.EndpointConfigName"
    report = states(dev)["Report results"]["Parameters"]
    # The gate that passed, the seeder's or a table's: each writes $.gate in this shape.
    assert report["quality_gate"] == {
        "metric.$": "$.gate.metric",
        "value.$": "$.gate.values[0]",
        "threshold.$": "$.gate.threshold",
        "comparison.$": "$.gate.comparison",
    }
