"""Each construct on its own in a bare stack: its secure defaults and its prop validation."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk.assertions import Match, Template

from mlstack.constructs import (
    BucketLayout,
    DataBucket,
    DatasetSeeder,
    DeployStage,
    HyperparameterTuning,
    ModelImage,
    ModelImages,
    RealtimeEndpoint,
    RetrainingSchedule,
    TrafficShift,
    TrainingWorkflow,
)
from tests.infra.conftest import new_stack

XGBOOST = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


@pytest.fixture(scope="module")
def stack() -> Stack:
    """One stack holding every construct with its defaults, as a user would compose them."""
    stack = new_stack()
    data = DataBucket(stack, "Data")
    images = ModelImages(stack, "Images")
    seeder = DatasetSeeder(stack, "Seeder", bucket=data.bucket)
    TrainingWorkflow(
        stack,
        "Workflow",
        bucket=data.bucket,
        images=images,
        seed_function=seeder.function,
        name_prefix="demo",
    )
    RealtimeEndpoint(
        stack,
        "Endpoint",
        image=images.inference,
        model_data_bucket=data.bucket,
        model_data_key="models/demo/model.tar.gz",
        key=data.key,
    )
    return stack


@pytest.fixture(scope="module")
def template(stack: Stack) -> Template:
    return Template.from_stack(stack)


def policy_statements(template: Template, role_prefix: str) -> list[dict[str, Any]]:
    policies = template.find_resources("AWS::IAM::Policy")
    statements = []
    for lid, policy in policies.items():
        if lid.startswith(role_prefix):
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    assert statements, f"no policy for {role_prefix}"
    return statements


def by_sid(statements: list[dict[str, Any]], sid: str) -> dict[str, Any]:
    return next(s for s in statements if s.get("Sid") == sid)


# --- DataBucket ---------------------------------------------------------------------------


def test_key_rotates(template: Template) -> None:
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


def test_data_bucket_is_kms_encrypted_versioned_and_logged(template: Template) -> None:
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {
                        "BucketKeyEnabled": True,
                        "ServerSideEncryptionByDefault": {
                            "SSEAlgorithm": "aws:kms",
                            "KMSMasterKeyID": Match.any_value(),
                        },
                    }
                ]
            },
            "VersioningConfiguration": {"Status": "Enabled"},
            "LoggingConfiguration": Match.object_like({"DestinationBucketName": Match.any_value()}),
        },
    )


def test_buckets_block_public_access(template: Template) -> None:
    buckets = template.find_resources("AWS::S3::Bucket")
    assert len(buckets) == 2
    for bucket in buckets.values():
        assert bucket["Properties"]["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }


def test_buckets_deny_insecure_transport(template: Template) -> None:
    policies = template.find_resources("AWS::S3::BucketPolicy")
    assert len(policies) == 2
    for policy in policies.values():
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in policy["Properties"]["PolicyDocument"]["Statement"]
        )


def test_lifecycle_expires_transform_output_and_old_versions(template: Template) -> None:
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "LifecycleConfiguration": {
                "Rules": Match.array_with(
                    [
                        Match.object_like({"Prefix": "transform-output/", "ExpirationInDays": 30}),
                        Match.object_like({"NoncurrentVersionExpiration": {"NoncurrentDays": 30}}),
                    ]
                )
            }
        },
    )


def test_data_is_retained_by_default(template: Template) -> None:
    for bucket in template.find_resources("AWS::S3::Bucket").values():
        assert bucket["DeletionPolicy"] == "Retain"
    template.has_resource("AWS::KMS::Key", {"DeletionPolicy": "Retain"})


def test_data_bucket_rejects_snapshot_removal_policy() -> None:
    with pytest.raises(ValueError, match=r"DataBucket removal_policy=.*RETAIN or"):
        DataBucket(new_stack(), "Data", removal_policy=RemovalPolicy.SNAPSHOT)


def test_layout_rejects_prefix_without_slash() -> None:
    with pytest.raises(
        ValueError, match=r"BucketLayout.datasets='data': expected .* ending in '/'"
    ):
        BucketLayout(datasets="data")


# --- ModelImages --------------------------------------------------------------------------


def test_images_are_built_from_containers(stack: Stack) -> None:
    images = next(c for c in stack.node.children if isinstance(c, ModelImages))
    assert images.training.asset is not None
    assert images.inference.asset is not None
    assert images.training.asset.asset_hash != images.inference.asset.asset_hash
    assert {"Name", "Regex"} == set(images.training_metric_definitions[0])


def test_existing_image_uri_is_used_and_pull_is_scoped_to_its_repository() -> None:
    stack = new_stack()
    images = ModelImages(stack, "Images", training_image_uri=XGBOOST, inference_image_uri=XGBOOST)
    assert images.training.asset is None
    assert images.training_image_uri == XGBOOST
    assert images.training_metric_definitions == []
    data = DataBucket(stack, "Data")
    from mlstack.constructs import ContainerAccess, SageMakerExecutionRole

    SageMakerExecutionRole(
        stack,
        "Role",
        bucket=data.bucket,
        name_prefix="demo",
        images=[images.training],
        jobs=[ContainerAccess("TrainingJobs", reads=("datasets/",), writes=("models/",))],
    )
    statements = policy_statements(Template.from_stack(stack), "Role")
    pull = next(s for s in statements if "ecr:BatchGetImage" in s["Action"])
    assert pull["Resource"] == {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                ":ecr:us-east-1:683313688378:repository/sagemaker-xgboost",
            ],
        ]
    }


def test_image_uri_must_be_ecr() -> None:
    with pytest.raises(ValueError, match=r"image_uri=.docker\.io/xgb:1. is not an ECR image URI"):
        ModelImage(new_stack(), "Image", image_uri="docker.io/xgb:1")


# --- Roles --------------------------------------------------------------------------------


def test_sagemaker_role_reads_datasets_and_writes_models_and_output(template: Template) -> None:
    statements = policy_statements(template, "WorkflowExecutionRole")
    read = by_sid(statements, "ReadDataAndModels")
    write = by_sid(statements, "WriteModelsAndOutput")
    assert read["Action"] == "s3:GetObject"
    # The evaluation job reads the transform output and writes under evaluations/.
    assert sorted(r["Fn::Join"][1][-1] for r in read["Resource"]) == [
        "/datasets/*",
        "/models/*",
        "/transform-output/*",
    ]
    assert sorted(r["Fn::Join"][1][-1] for r in write["Resource"]) == [
        "/evaluations/*",
        "/models/*",
        "/transform-output/*",
    ]
    listing = by_sid(statements, "ListDataAndModels")
    assert listing["Condition"] == {
        "StringLike": {"s3:prefix": ["datasets/*", "models/*", "transform-output/*"]}
    }
    metrics = by_sid(statements, "PutSageMakerMetrics")
    assert metrics["Condition"] == {"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}}


def test_seed_role_only_puts_under_dataset_prefix(template: Template) -> None:
    statements = policy_statements(template, "SeederRole")
    s3_actions = {a for s in statements for a in _list(s["Action"]) if a.startswith("s3:")}
    assert s3_actions == {"s3:PutObject", "s3:AbortMultipartUpload"}
    write = by_sid(statements, "WriteDatasets")
    assert write["Resource"]["Fn::Join"][1][-1] == "/datasets/*"
    kms = by_sid(statements, "EncryptDatasets")
    assert set(kms["Action"]) == {"kms:GenerateDataKey", "kms:Decrypt"}


def test_state_machine_role_is_scoped_to_prefixed_names(template: Template) -> None:
    statements = policy_statements(template, "WorkflowRole")
    for sid, suffix in [
        ("RunTrainingJobs", ":training-job/demo-*"),
        ("RunTransformJobs", ":transform-job/demo-*"),
        ("RunProcessingJobs", ":processing-job/demo-*"),
        ("CreateModels", ":model/demo-*"),
    ]:
        assert by_sid(statements, sid)["Resource"]["Fn::Join"][1][-1].endswith(suffix)
    assert by_sid(statements, "RunProcessingJobs")["Action"] == "sagemaker:CreateProcessingJob"
    assert by_sid(statements, "RunProcessingJobsStatus")["Action"] == [
        "sagemaker:DescribeProcessingJob",
        "sagemaker:StopProcessingJob",
    ]
    assert len(by_sid(statements, "TagOnCreate")["Resource"]) == 4
    pass_role = by_sid(statements, "PassSageMakerRole")
    assert pass_role["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }
    rules = by_sid(statements, "SyncJobEventRules")["Resource"]
    assert sorted(r["Fn::Join"][1][-1] for r in rules) == [
        # createProcessingJob.sync ("IAM policies for Amazon SageMaker AI", Step Functions
        # developer guide: CreateProcessingJob, Run a Job (.sync)).
        ":rule/StepFunctionsGetEventsForSageMakerProcessingJobsRule",
        ":rule/StepFunctionsGetEventsForSageMakerTrainingJobsRule",
        ":rule/StepFunctionsGetEventsForSageMakerTransformJobsRule",
    ]


def test_roles_have_no_managed_policies(template: Template) -> None:
    for role in template.find_resources("AWS::IAM::Role").values():
        if "CustomS3AutoDelete" not in str(role):
            assert "ManagedPolicyArns" not in role["Properties"]


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# --- DatasetSeeder ------------------------------------------------------------------------


def test_seeder_runs_current_python_with_256_mb(template: Template) -> None:
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Runtime": "python3.14",
            "Handler": "handler.handler",
            "MemorySize": 256,
            "Timeout": 300,
            "Environment": {
                "Variables": {
                    "BUCKET_NAME": Match.any_value(),
                    "DATASET_PREFIX": "datasets/",
                    "DEFAULT_ROWS": "1000",
                    "DEFAULT_SEED": "42",
                    "MAX_ROWS": "100000000",
                    "ROWS_PER_SHARD": "100000",
                    "LOG_LEVEL": "INFO",
                }
            },
        },
    )


def test_seeder_rejects_defaults_above_max() -> None:
    stack = new_stack()
    bucket = s3.Bucket(stack, "B")
    with pytest.raises(ValueError, match=r"default_rows=20: expected 1 to max_rows \(10\)"):
        DatasetSeeder(stack, "Seeder", bucket=bucket, default_rows=20, max_rows=10)


def test_seeder_rejects_a_shard_it_could_not_write_in_time() -> None:
    stack = new_stack()
    bucket = s3.Bucket(stack, "B")
    with pytest.raises(
        ValueError, match=r"rows_per_shard=10000001: expected 1 to 10000000 \(what one invocation"
    ):
        DatasetSeeder(stack, "Seeder", bucket=bucket, rows_per_shard=10_000_001)


# --- TrainingWorkflow ---------------------------------------------------------------------


def test_state_machine_logs_all_traces_and_times_out(template: Template) -> None:
    template.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "LoggingConfiguration": Match.object_like(
                {"Level": "ALL", "IncludeExecutionData": True}
            ),
            "TracingConfiguration": {"Enabled": True},
            "StateMachineType": "STANDARD",
        },
    )
    machine = next(iter(template.find_resources("AWS::StepFunctions::StateMachine").values()))
    assert '"TimeoutSeconds":93600' in str(machine["Properties"]["DefinitionString"])


def test_failure_topic_is_encrypted_and_ssl_only(template: Template) -> None:
    template.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": Match.any_value()})
    template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            }
        },
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name_prefix": "Demo"}, "name_prefix='Demo': expected 1 to 20 lower-case"),
        ({"name_prefix": "a" * 21}, "expected 1 to 20"),
        ({"max_attempts": 12}, "max_attempts=12: expected 1 to 9"),
        ({"training_volume_size_gb": 0}, "training_volume_size_gb=0"),
    ],
)
def test_workflow_rejects_bad_props(kwargs: dict[str, Any], message: str) -> None:
    stack = new_stack()
    data = DataBucket(stack, "Data")
    images = ModelImages(stack, "Images", training_image_uri=XGBOOST, inference_image_uri=XGBOOST)
    seeder = DatasetSeeder(stack, "Seeder", bucket=data.bucket)
    props: dict[str, Any] = {"name_prefix": "demo", **kwargs}
    with pytest.raises(ValueError, match=message):
        TrainingWorkflow(
            stack,
            "Workflow",
            bucket=data.bucket,
            images=images,
            seed_function=seeder.function,
            **props,
        )


# --- RealtimeEndpoint ---------------------------------------------------------------------


def test_endpoint_config_is_encrypted_and_unnamed(template: Template) -> None:
    config = next(iter(template.find_resources("AWS::SageMaker::EndpointConfig").values()))
    assert "KmsKeyId" in config["Properties"]
    assert "EndpointConfigName" not in config["Properties"]
    template.has_resource_properties(
        "AWS::SageMaker::Endpoint",
        {
            "EndpointConfigName": {
                "Fn::GetAtt": [Match.string_like_regexp("EndpointConfig"), "EndpointConfigName"]
            }
        },
    )
    template.has_resource_properties("AWS::SageMaker::Model", {"EnableNetworkIsolation": True})


def test_endpoint_role_reads_only_its_artifact(template: Template) -> None:
    read = by_sid(policy_statements(template, "EndpointRole"), "ReadModelArtifact")
    assert read["Resource"]["Fn::Join"][1][-1] == "/models/demo/model.tar.gz"


def test_endpoint_rejects_uri_as_key() -> None:
    stack = new_stack()
    data = DataBucket(stack, "Data")
    image = ModelImage(stack, "Image", image_uri=XGBOOST)
    with pytest.raises(
        ValueError, match=r"model_data_key='s3://b/m\.tar\.gz': expected an object key"
    ):
        RealtimeEndpoint(
            stack,
            "Endpoint",
            image=image,
            model_data_bucket=data.bucket,
            model_data_key="s3://b/m.tar.gz",
            key=data.key,
        )


# --- Workflow options: deploy stage, tuning, schedule ---------------------------------------


RANGES = {"eta": {"type": "continuous", "min": 0.1, "max": 0.5}}


def _workflow(**props: Any) -> TrainingWorkflow:
    stack = new_stack()
    data = DataBucket(stack, "Data")
    images = ModelImages(stack, "Images")
    seeder = DatasetSeeder(stack, "Seeder", bucket=data.bucket)
    return TrainingWorkflow(
        stack,
        "Workflow",
        bucket=data.bucket,
        images=images,
        seed_function=seeder.function,
        name_prefix="demo",
        **props,
    )


@pytest.mark.parametrize(
    ("props", "message"),
    [
        (
            {"deploy": DeployStage(metric="validation:f1", threshold=0.5)},
            "TrainingWorkflow deploy.metric='validation:f1': expected one of the training "
            "image's metric definitions ['train:auc', ",
        ),
        (
            {"tuning": HyperparameterTuning(objective_metric="loss", ranges=RANGES)},
            "TrainingWorkflow tuning.objective_metric='loss': expected one of the training "
            "image's metrics",
        ),
        (
            {
                "tuning": HyperparameterTuning(
                    objective_metric="validation:rmse",
                    ranges={"num_round": {"type": "integer", "min": 1, "max": 50}},
                )
            },
            "TrainingWorkflow tuning.ranges=['num_round']: expected only hyperparameters that "
            "defaults.hyperparameters does not fix (['num_round'] are in both)",
        ),
        (
            {"deploy": DeployStage(metric="validation:rmse", threshold=1, endpoint_name="a_b")},
            "TrainingWorkflow deploy.endpoint_name='a_b': expected at most 63 letters",
        ),
    ],
)
def test_workflow_rejects_impossible_optional_stages(props: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as error:
        _workflow(**props)
    assert str(error.value).startswith(message)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: DeployStage(metric="m", threshold=1, comparison="lte"),
            "DeployStage comparison='lte': expected one of 'less_than', 'less_than_or_equal', ",
        ),
        (
            lambda: DeployStage(metric="m", threshold=1, candidate_weight=1),
            "DeployStage candidate_weight=1: expected a number from 0 to 0.99",
        ),
        (
            lambda: DeployStage(metric="m", threshold=1, instance_type="m5.large"),
            "DeployStage instance_type='m5.large': expected an ml.* instance type",
        ),
        (
            lambda: TrafficShift(type="canary"),
            "TrafficShift step_percent=None: expected an integer from 1 to 50 for 'canary'",
        ),
        (
            lambda: TrafficShift(type="linear", step_percent=5),
            "TrafficShift step_percent=5: expected an integer from 10 to 50 for 'linear'",
        ),
        (
            lambda: TrafficShift(step_percent=5),
            "TrafficShift step_percent=5: expected null for 'all_at_once'",
        ),
        (
            lambda: HyperparameterTuning(
                objective_metric="m", ranges={"eta": {"type": "continuous", "min": 1, "max": 0}}
            ),
            "HyperparameterTuning ranges['eta']=",
        ),
        (
            lambda: HyperparameterTuning(objective_metric="m", ranges=RANGES, max_parallel_jobs=20),
            "HyperparameterTuning max_parallel_jobs=20: expected at most max_jobs (10)",
        ),
        (
            lambda: HyperparameterTuning(objective_metric="m", ranges=RANGES, strategy="Grid"),
            "HyperparameterTuning strategy='Grid': expected one of 'Bayesian', 'Random'",
        ),
    ],
)
def test_option_objects_reject_bad_values(make: Any, message: str) -> None:
    with pytest.raises(ValueError) as error:
        make()
    assert str(error.value).startswith(message)


def test_tuning_ranges_render_as_sagemaker_parameter_ranges() -> None:
    tuning = HyperparameterTuning(
        objective_metric="validation:auc",
        objective_type="Maximize",
        ranges={
            "max_depth": {"type": "integer", "min": 3, "max": 9},
            "eta": {"type": "continuous", "min": 0.01, "max": 0.3, "scaling": "Logarithmic"},
            "booster": {"type": "categorical", "values": ["gbtree", "dart"]},
        },
    )
    assert tuning.as_state_input()["tuning_ranges"] == {
        "IntegerParameterRanges": [
            {"Name": "max_depth", "MinValue": "3", "MaxValue": "9", "ScalingType": "Auto"}
        ],
        "ContinuousParameterRanges": [
            {"Name": "eta", "MinValue": "0.01", "MaxValue": "0.3", "ScalingType": "Logarithmic"}
        ],
        "CategoricalParameterRanges": [{"Name": "booster", "Values": ["gbtree", "dart"]}],
    }
    assert tuning.as_state_input()["tuning_objective"] == {
        "Type": "Maximize",
        "MetricName": "validation:auc",
    }


def test_linear_traffic_and_timeout_bounds() -> None:
    stage = DeployStage(
        metric="m",
        threshold=1,
        traffic=TrafficShift(type="linear", step_percent=20, wait=Duration.minutes(2)),
        max_wait=Duration.minutes(5),
        poll_interval=Duration.seconds(45),
    )
    assert stage.traffic.routing() == {
        "Type": "LINEAR",
        "WaitIntervalInSeconds": 120,
        "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 20},
    }
    assert stage.blue_green_timeout_seconds == 600  # SageMaker's minimum
    assert stage.max_checks == 7  # ceil(300 / 45)


def test_schedule_rejects_a_bad_expression() -> None:
    stack = new_stack()
    machine = sfn.StateMachine(
        stack, "M", definition_body=sfn.DefinitionBody.from_chainable(sfn.Pass(stack, "P"))
    )
    with pytest.raises(ValueError) as error:
        RetrainingSchedule(stack, "S", state_machine=machine, expression="weekly")
    assert str(error.value).startswith(
        "RetrainingSchedule expression='weekly': expected 'rate(<n> <unit>)' or 'cron("
    )
