"""RealtimeEndpoint features: A/B variants, autoscaling, data capture, serverless, async, and
the impossible combinations; and what prod's Serving stack makes of its config."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Match, Template

from mlstack.constructs import (
    AsyncInference,
    DataBucket,
    DataCapture,
    EndpointVariant,
    ModelImage,
    RealtimeEndpoint,
    ServerlessInference,
    VariantAutoscaling,
)
from tests.infra.conftest import SynthesizedApp, new_stack

XGBOOST = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
SERVICE_LINKED_ROLE = (
    "aws-service-role/sagemaker.application-autoscaling.amazonaws.com/"
    "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
)


def endpoint(stack: Stack, **props: Any) -> RealtimeEndpoint:
    data = DataBucket(stack, "Data")
    image = ModelImage(stack, "Image", image_uri=XGBOOST)
    return RealtimeEndpoint(
        stack,
        "Endpoint",
        image=image,
        model_data_bucket=data.bucket,
        model_data_key="models/current/model.tar.gz",
        key=data.key,
        endpoint_name="demo",
        **props,
    )


@pytest.fixture(scope="module")
def ab() -> Template:
    stack = new_stack("AB")
    endpoint(
        stack,
        variants=[
            EndpointVariant(
                name="Current",
                weight=0.8,
                instance_type="ml.m5.xlarge",
                instance_count=2,
                autoscaling=VariantAutoscaling(
                    min_capacity=2,
                    max_capacity=8,
                    target_invocations_per_instance=500,
                    scale_in_cooldown=Duration.minutes(10),
                    scale_out_cooldown=Duration.seconds(30),
                ),
            ),
            EndpointVariant(
                name="Candidate",
                weight=0.2,
                instance_type="ml.m5.large",
                model_data_key="models/candidate/model.tar.gz",
            ),
        ],
        data_capture=DataCapture(sampling_percentage=25, capture_output=False),
    )
    return Template.from_stack(stack)


def test_variants_share_traffic_by_weight_each_with_its_instances_and_model(
    ab: Template,
) -> None:
    config = next(iter(ab.find_resources("AWS::SageMaker::EndpointConfig").values()))
    current, candidate = config["Properties"]["ProductionVariants"]
    assert (current["VariantName"], current["InitialVariantWeight"]) == ("Current", 0.8)
    assert (current["InstanceType"], current["InitialInstanceCount"]) == ("ml.m5.xlarge", 2)
    assert (candidate["VariantName"], candidate["InitialVariantWeight"]) == ("Candidate", 0.2)
    assert (candidate["InstanceType"], candidate["InitialInstanceCount"]) == ("ml.m5.large", 1)
    assert current["ModelName"]["Fn::GetAtt"][0] != candidate["ModelName"]["Fn::GetAtt"][0]
    urls = [
        m["Properties"]["PrimaryContainer"]["ModelDataUrl"]["Fn::Join"][1][-1]
        for m in ab.find_resources("AWS::SageMaker::Model").values()
    ]
    assert sorted(urls) == ["/models/candidate/model.tar.gz", "/models/current/model.tar.gz"]


def test_endpoint_role_reads_every_variant_artifact(ab: Template) -> None:
    statements = [
        s
        for p in ab.find_resources("AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    read = next(s for s in statements if s.get("Sid") == "ReadModelArtifact")
    assert sorted(r["Fn::Join"][1][-1] for r in read["Resource"]) == [
        "/models/candidate/model.tar.gz",
        "/models/current/model.tar.gz",
    ]
    write = next(s for s in statements if s.get("Sid") == "WriteCaptureAndResults")
    assert write["Resource"]["Fn::Join"][1][-1] == "/data-capture/*"


def test_autoscaling_tracks_invocations_per_instance_of_its_variant(ab: Template) -> None:
    ab.resource_count_is("AWS::ApplicationAutoScaling::ScalableTarget", 1)  # Current only
    ab.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget",
        {
            "MinCapacity": 2,
            "MaxCapacity": 8,
            "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
            "ServiceNamespace": "sagemaker",
            "ResourceId": {
                "Fn::Join": [
                    "",
                    [
                        "endpoint/",
                        {"Fn::GetAtt": [Match.any_value(), "EndpointName"]},
                        "/variant/Current",
                    ],
                ]
            },
            "RoleARN": {
                "Fn::Join": ["", Match.array_with([Match.string_like_regexp(SERVICE_LINKED_ROLE)])]
            },
        },
    )
    ab.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        {
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": {
                "PredefinedMetricSpecification": {
                    "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
                },
                "TargetValue": 500,
                "ScaleInCooldown": 600,
                "ScaleOutCooldown": 30,
            },
        },
    )


def test_data_capture_writes_sampled_requests_to_the_bucket_with_kms(ab: Template) -> None:
    config = next(iter(ab.find_resources("AWS::SageMaker::EndpointConfig").values()))
    capture = config["Properties"]["DataCaptureConfig"]
    assert capture["EnableCapture"] is True
    assert capture["InitialSamplingPercentage"] == 25
    assert capture["CaptureOptions"] == [{"CaptureMode": "Input"}]
    assert capture["DestinationS3Uri"]["Fn::Join"][1][-1] == "/data-capture/"
    assert capture["KmsKeyId"]["Fn::GetAtt"][1] == "Arn"


def test_serverless_variant_has_memory_and_concurrency_instead_of_instances() -> None:
    stack = new_stack("Serverless")
    endpoint(
        stack,
        variants=[
            EndpointVariant(serverless=ServerlessInference(memory_size_mb=3072, max_concurrency=20))
        ],
        network_isolation=False,
    )
    template = Template.from_stack(stack)
    config = next(iter(template.find_resources("AWS::SageMaker::EndpointConfig").values()))
    (variant,) = config["Properties"]["ProductionVariants"]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 3072, "MaxConcurrency": 20}
    assert "InstanceType" not in variant and "InitialInstanceCount" not in variant
    assert "KmsKeyId" not in config["Properties"]
    template.has_resource_properties("AWS::SageMaker::Model", {"EnableNetworkIsolation": False})


def test_async_inference_writes_results_and_failures_and_notifies() -> None:
    stack = new_stack("Async")
    created = endpoint(
        stack, async_inference=AsyncInference(max_concurrent_invocations_per_instance=8)
    )
    template = Template.from_stack(stack)
    config = next(iter(template.find_resources("AWS::SageMaker::EndpointConfig").values()))
    async_config = config["Properties"]["AsyncInferenceConfig"]
    assert async_config["ClientConfig"] == {"MaxConcurrentInvocationsPerInstance": 8}
    output = async_config["OutputConfig"]
    assert output["S3OutputPath"]["Fn::Join"][1][-1] == "/async-inference/output/"
    assert output["S3FailurePath"]["Fn::Join"][1][-1] == "/async-inference/failures/"
    assert "KmsKeyId" in output
    assert set(output["NotificationConfig"]) == {"SuccessTopic", "ErrorTopic"}
    template.resource_count_is("AWS::SNS::Topic", 2)
    assert created.success_topic is not None and created.error_topic is not None
    template.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": Match.any_value()})


@pytest.mark.parametrize(
    ("props", "message"),
    [
        (
            {
                "variants": [
                    EndpointVariant(serverless=ServerlessInference()),
                    EndpointVariant(name="B"),
                ],
                "network_isolation": False,
            },
            "RealtimeEndpoint variants=['AllTraffic', 'B']: a serverless variant ('AllTraffic') "
            "must be the endpoint's only variant",
        ),
        (
            {
                "variants": [EndpointVariant(serverless=ServerlessInference())],
                "network_isolation": False,
                "data_capture": DataCapture(),
            },
            "RealtimeEndpoint data_capture: a serverless endpoint does not support data capture; "
            "expected data_capture=None",
        ),
        (
            {
                "variants": [EndpointVariant(serverless=ServerlessInference())],
                "network_isolation": False,
                "async_inference": AsyncInference(),
            },
            "RealtimeEndpoint async_inference: asynchronous inference needs instance-based "
            "variants, not serverless",
        ),
        (
            {"variants": [EndpointVariant(serverless=ServerlessInference())]},
            "RealtimeEndpoint network_isolation=True: a serverless endpoint does not support "
            "network isolation; expected network_isolation=False",
        ),
        (
            {
                "variants": [EndpointVariant(name="A"), EndpointVariant(name="B")],
                "async_inference": AsyncInference(),
            },
            "RealtimeEndpoint async_inference: expected exactly one variant, got ['A', 'B']",
        ),
        (
            {"variants": [EndpointVariant(name="A"), EndpointVariant(name="A")]},
            "RealtimeEndpoint variants=['A', 'A']: expected distinct names",
        ),
        ({"variants": []}, "RealtimeEndpoint variants=[]: expected 1 to 10 variants"),
    ],
)
def test_impossible_combinations_raise_naming_the_prop(props: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as error:
        endpoint(new_stack(), **props)
    assert str(error.value) == message


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: EndpointVariant(
                serverless=ServerlessInference(), autoscaling=VariantAutoscaling()
            ),
            "EndpointVariant AllTraffic: serverless and autoscaling exclude each other (a "
            "serverless variant scales itself)",
        ),
        (
            lambda: ServerlessInference(memory_size_mb=1000),
            "ServerlessInference memory_size_mb=1000: expected one of [1024, 2048, 3072, 4096, "
            "5120, 6144]",
        ),
        (
            lambda: VariantAutoscaling(min_capacity=5, max_capacity=2),
            "VariantAutoscaling min_capacity=5, max_capacity=2: expected 1 <= min_capacity <= "
            "max_capacity <= 100",
        ),
        (
            lambda: DataCapture(sampling_percentage=0),
            "DataCapture sampling_percentage=0: expected 1..100",
        ),
        (lambda: EndpointVariant(weight=0), "EndpointVariant AllTraffic weight=0: expected > 0"),
    ],
)
def test_bad_feature_props_raise_naming_the_prop(make: Any, message: str) -> None:
    with pytest.raises(ValueError) as error:
        make()
    assert str(error.value) == message


# --- prod's Serving stack -----------------------------------------------------------------


def test_prod_serving_endpoint_autoscales_and_captures(released: SynthesizedApp) -> None:
    serving = released.template("prod", "serving")
    serving.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget", {"MinCapacity": 2, "MaxCapacity": 6}
    )
    serving.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        {
            "TargetTrackingScalingPolicyConfiguration": Match.object_like(
                {"TargetValue": 700, "ScaleInCooldown": 300, "ScaleOutCooldown": 60}
            )
        },
    )
    serving.has_resource_properties(
        "AWS::SageMaker::EndpointConfig",
        {
            "DataCaptureConfig": Match.object_like(
                {
                    "InitialSamplingPercentage": 20,
                    "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
                }
            )
        },
    )


# --- grant and metric helpers -------------------------------------------------------------
# Expected names come from "Monitor SageMaker AI with Amazon CloudWatch"
# (https://docs.aws.amazon.com/sagemaker/latest/dg/monitoring-cloudwatch.html): namespace
# AWS/SageMaker, dimensions EndpointName and VariantName; Invocations and Invocation4XX/5XXErrors
# are counts (Sum); ModelLatency is in microseconds. The actions come from the Service
# Authorization Reference for SageMaker (InvokeEndpoint, InvokeEndpointAsync: resource type
# "endpoint").


def helper_template(**props: Any) -> tuple[Template, str]:
    stack = new_stack("Helpers")
    served = endpoint(stack, **props)
    caller = iam.Role(stack, "Caller", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    served.grant_invoke(caller)
    for name, metric in (
        ("Invocations", served.metric_invocations()),
        ("Latency", served.metric_model_latency()),
        ("Errors5xx", served.metric_errors()),
        ("Errors4xx", served.metric_errors("4XX", variant_name=served.variants[-1].name)),
    ):
        metric.create_alarm(stack, name, threshold=1, evaluation_periods=1)
    endpoint_id = stack.get_logical_id(served.endpoint)
    return Template.from_stack(stack), endpoint_id


def test_grant_invoke_allows_invoke_endpoint_on_this_endpoint_only() -> None:
    template, endpoint_id = helper_template()
    template.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": [
                    {
                        "Action": "sagemaker:InvokeEndpoint",
                        "Effect": "Allow",
                        "Resource": {"Ref": endpoint_id},
                    }
                ]
            },
            "Roles": [{"Ref": Match.string_like_regexp("^Caller")}],
        },
    )


def test_grant_invoke_of_an_async_endpoint_adds_invoke_endpoint_async() -> None:
    template, endpoint_id = helper_template(async_inference=AsyncInference())
    template.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": [
                    {
                        "Action": ["sagemaker:InvokeEndpoint", "sagemaker:InvokeEndpointAsync"],
                        "Effect": "Allow",
                        "Resource": {"Ref": endpoint_id},
                    }
                ]
            },
            "Roles": [{"Ref": Match.string_like_regexp("^Caller")}],
        },
    )


@pytest.mark.parametrize(
    ("metric_name", "statistic"),
    [
        ("Invocations", {"Statistic": "Sum"}),
        ("ModelLatency", {"ExtendedStatistic": "p99"}),
        ("Invocation5XXErrors", {"Statistic": "Sum"}),
    ],
)
def test_metric_helpers_read_sagemaker_metrics_of_the_first_variant(
    metric_name: str, statistic: dict[str, str]
) -> None:
    template, _ = helper_template()
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Namespace": "AWS/SageMaker",
            "MetricName": metric_name,
            "Period": 300,
            "Dimensions": Match.array_with(
                [
                    {"Name": "EndpointName", "Value": Match.any_value()},
                    {"Name": "VariantName", "Value": "AllTraffic"},
                ]
            ),
            **statistic,
        },
    )


def test_metric_helpers_take_a_variant_by_name() -> None:
    template, _ = helper_template(
        variants=[EndpointVariant(name="Current"), EndpointVariant(name="Candidate", weight=0.1)]
    )
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "MetricName": "Invocation4XXErrors",
            "Dimensions": Match.array_with([{"Name": "VariantName", "Value": "Candidate"}]),
        },
    )


def test_metric_of_an_unknown_variant_is_refused() -> None:
    served = endpoint(new_stack("UnknownVariant"))
    with pytest.raises(ValueError, match=r"variant_name='Blue': expected one of \['AllTraffic'\]"):
        served.metric_invocations(variant_name="Blue")


def test_metric_errors_takes_4xx_or_5xx_only() -> None:
    served = endpoint(new_stack("ErrorKind"))
    with pytest.raises(ValueError, match=r"kind='500': expected '4XX' or '5XX'"):
        served.metric_errors("500")
