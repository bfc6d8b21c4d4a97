"""Each construct on its own in a bare stack: its secure defaults and its prop validation."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Match, Template

from mlstack.constructs import (
    BucketLayout,
    DataBucket,
    DatasetSeeder,
    ModelImage,
    ModelImages,
    RealtimeEndpoint,
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
    from mlstack.constructs import SageMakerExecutionRole

    SageMakerExecutionRole(
        stack, "Role", bucket=data.bucket, name_prefix="demo", images=[images.training]
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
    assert [r["Fn::Join"][1][-1] for r in read["Resource"]] == ["/datasets/*", "/models/*"]
    assert [r["Fn::Join"][1][-1] for r in write["Resource"]] == ["/models/*", "/transform-output/*"]
    listing = by_sid(statements, "ListDataAndModels")
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["datasets/*", "models/*"]}}
    metrics = by_sid(statements, "PutSageMakerMetrics")
    assert metrics["Condition"] == {"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}}


def test_seed_role_only_puts_under_dataset_prefix(template: Template) -> None:
    statements = policy_statements(template, "SeederRole")
    s3_actions = {a for s in statements for a in _list(s["Action"]) if a.startswith("s3:")}
    assert s3_actions == {"s3:PutObject", "s3:AbortMultipartUpload"}
    write = by_sid(statements, "WriteDatasets")
    assert write["Resource"]["Fn::Join"][1][-1] == "/datasets/*"
    kms = by_sid(statements, "EncryptDatasets")
    assert set(kms["Action"]) == {"kms:GenerateDataKey", "kms:Encrypt", "kms:Decrypt"}


def test_state_machine_role_is_scoped_to_prefixed_names(template: Template) -> None:
    statements = policy_statements(template, "WorkflowRole")
    for sid, suffix in [
        ("RunTrainingJobs", ":training-job/demo-*"),
        ("RunTransformJobs", ":transform-job/demo-*"),
        ("CreateModels", ":model/demo-*"),
    ]:
        assert by_sid(statements, sid)["Resource"]["Fn::Join"][1][-1].endswith(suffix)
    assert len(by_sid(statements, "TagOnCreate")["Resource"]) == 3
    pass_role = by_sid(statements, "PassSageMakerRole")
    assert pass_role["Condition"] == {
        "StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}
    }
    rules = by_sid(statements, "SyncJobEventRules")["Resource"]
    assert [r["Fn::Join"][1][-1] for r in rules] == [
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
                    "MAX_ROWS": "1000000",
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
