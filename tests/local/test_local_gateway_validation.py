"""The InvokeEndpoint gateway refuses what SageMaker Runtime refuses, before it looks the endpoint
up: the constraints are botocore's ``sagemaker-runtime`` model's, the error its ``ValidationError``
(HTTP 400) with AWS's wording (aws/aws-cli issue 790); the client is boto3's, unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import botocore.config
import botocore.session
import pytest
from botocore.exceptions import ClientError

from mlstack.local.gateway import Gateway, Target
from mlstack.local.sagemaker import free_port

RUNTIME = botocore.session.get_session().get_service_model("sagemaker-runtime")
INPUT = RUNTIME.operation_model("InvokeEndpoint").input_shape


@pytest.fixture()
def gateway() -> Iterator[Gateway]:
    gateway = Gateway({"known": Target(free_port())}).start()
    yield gateway
    gateway.stop()


def invoke(url: str, **params: Any) -> Any:
    client = boto3.client(
        "sagemaker-runtime",
        endpoint_url=url,
        region_name="us-east-1",
        config=botocore.config.Config(retries={"max_attempts": 0}),
    )
    with pytest.raises(ClientError) as err:
        client.invoke_endpoint(**params)
    return err.value.response


def test_an_endpoint_name_outside_the_pattern_is_a_validation_error(gateway: Gateway) -> None:
    pattern = INPUT.members["EndpointName"].metadata["pattern"]
    response = invoke(gateway.url, EndpointName="bad_name", ContentType="text/csv", Body=b"1")
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert response["Error"] == {
        "Code": "ValidationError",
        "Message": "1 validation error detected: Value 'bad_name' at 'endpointName' failed to "
        f"satisfy constraint: Member must satisfy regular expression pattern: {pattern}",
    }


def test_a_content_type_over_its_length_is_refused_naming_the_limit(gateway: Gateway) -> None:
    limit = INPUT.members["ContentType"].metadata["max"]
    response = invoke(gateway.url, EndpointName="known", ContentType="t/" + "x" * limit, Body=b"1")
    message = str(response["Error"]["Message"])
    assert f"at 'contentType' failed to satisfy constraint: Member must have length less " \
        f"than or equal to {limit}" in message  # fmt: skip
