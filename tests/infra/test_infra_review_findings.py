"""Two findings of the deploy review (issue #22): what a fresh account can deploy, and the S3
gateway endpoint's statement on ECR's layer bucket."""

from __future__ import annotations

import json
import re
from typing import Any

import botocore.session

from mlstack.config import parse_environment
from tests.infra.conftest import REPO, SynthesizedApp


def resources_of(template: dict[str, Any], kind: str) -> dict[str, Any]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def unreserved_minimum() -> int:
    """What Lambda keeps unreserved, from its API reference as botocore ships it
    (PutFunctionConcurrency: "as long as you leave at least 100 simultaneous executions
    unreserved")."""
    model = botocore.session.get_session().get_service_model("lambda")
    doc = model.operation_model("PutFunctionConcurrency").documentation
    found = re.search(r"leave at least (\d+) simultaneous executions unreserved", doc)
    assert found, doc
    return int(found.group(1))


def test_dev_deploys_into_an_account_with_a_new_accounts_concurrency_quota(
    synthesized: SynthesizedApp,
) -> None:
    # New accounts have reduced concurrency quotas ("Lambda quotas", Lambda developer guide);
    # any quota at or below the unreserved minimum leaves nothing to reserve.
    minimum = unreserved_minimum()
    reserved = 0
    for stack in ("data", "workflow"):
        for function in resources_of(
            synthesized.json("dev", stack), "AWS::Lambda::Function"
        ).values():
            reserved += function["Properties"].get("ReservedConcurrentExecutions", 0)
    for quota in (10, 50, minimum):
        assert quota - reserved >= min(quota, minimum), (quota, reserved)


def test_no_reservation_is_the_default_and_a_reservation_stays_a_setting() -> None:
    data = json.loads((REPO / "environments" / "dev.json").read_text())
    data["workflow"].pop("lambda_reserved_concurrency", None)
    assert parse_environment("dev", data).workflow.lambda_reserved_concurrency is None
    data["workflow"]["lambda_reserved_concurrency"] = 5
    assert parse_environment("dev", data).workflow.lambda_reserved_concurrency == 5


def test_the_s3_gateway_endpoint_allows_only_getobject_on_ecrs_layer_bucket(
    synthesized: SynthesizedApp,
) -> None:
    # "Amazon ECR interface VPC endpoints", ECR User Guide, "Create the Amazon S3 gateway
    # endpoint": the minimum policy allows s3:GetObject on
    # arn:aws:s3:::prod-<region>-starport-layer-bucket/*, all an image pull needs.
    template = synthesized.json("prod", "workflow")
    (gateway,) = [
        e
        for e in resources_of(template, "AWS::EC2::VPCEndpoint").values()
        if e["Properties"].get("VpcEndpointType") == "Gateway"
    ]
    statements = gateway["Properties"]["PolicyDocument"]["Statement"]
    on_layers = [s for s in statements if "starport-layer-bucket" in json.dumps(s["Resource"])]
    assert len(on_layers) == 1
    (layers,) = on_layers
    assert layers["Effect"] == "Allow"
    assert layers["Action"] == "s3:GetObject"
    resources = layers["Resource"] if isinstance(layers["Resource"], list) else [layers["Resource"]]
    assert len(resources) == 1
    rendered = json.dumps(resources[0])
    assert "prod-" in rendered and "-starport-layer-bucket/*" in rendered
