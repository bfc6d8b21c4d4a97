"""The Serving endpoint serves a pinned model package version named in config
(``endpoint.model_package_version``), created from the version itself: CreateModel with a
container's ``ModelPackageName`` ("Create a model (using Model Registry)", SageMaker developer
guide, Serverless Inference; ``AWS::SageMaker::Model`` ``Containers``). SageMaker deploys only an
``Approved`` version (CreateModelPackage, ``ModelApprovalStatus``: "must be set to Approved to
deploy the model")."""

from __future__ import annotations

import json
import re
from typing import Any

import botocore.session
import pytest
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3

from mlstack.config import ConfigError, parse_environment
from mlstack.constructs import EndpointVariant, ModelImage, ModelRegistry, RealtimeEndpoint
from mlstack.constructs.model_images import CONTAINERS_DIR
from tests.infra.conftest import REPO, SynthesizedApp, new_stack, render_tokens


def prod_data() -> dict[str, Any]:
    return json.loads((REPO / "environments" / "prod.json").read_text())  # type: ignore[no-any-return]


def resources(template: dict[str, Any], kind: str) -> dict[str, Any]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


@pytest.fixture(scope="module")
def serving(released: SynthesizedApp) -> dict[str, Any]:
    return released.json("prod", "serving")


def test_serving_model_is_created_from_the_pinned_version(serving: dict[str, Any]) -> None:
    (model,) = resources(serving, "AWS::SageMaker::Model").values()
    properties = model["Properties"]
    assert "PrimaryContainer" not in properties
    (container,) = properties["Containers"]
    assert set(container) == {"ModelPackageName"}
    assert render_tokens(container["ModelPackageName"]) == (
        "arn:aws:sagemaker:us-east-1:123456789012:model-package/mlstack-prod/1"
    )


def test_version_arn_matches_what_createmodel_accepts(serving: dict[str, Any]) -> None:
    # botocore's service model: ContainerDefinition.ModelPackageName is a VersionedArnOrName.
    model = botocore.session.get_session().get_service_model("sagemaker")
    shape = model.shape_for("ContainerDefinition").members["ModelPackageName"]
    (resource,) = resources(serving, "AWS::SageMaker::Model").values()
    arn = render_tokens(resource["Properties"]["Containers"][0]["ModelPackageName"])
    assert re.fullmatch(shape.metadata["pattern"], arn)
    assert len(arn) <= shape.metadata["max"]


def test_serving_role_reads_the_registered_artifacts_only(serving: dict[str, Any]) -> None:
    # A version's ModelDataUrl is the workflow's released copy (docs/security.md, "Served
    # artifacts are immutable"): releases/<run_id>/model.tar.gz, not what training jobs write.
    text = json.dumps(resources(serving, "AWS::IAM::Policy"))
    assert "/releases/*/model.tar.gz" in text
    assert "/models/" not in text
    # No registry call is the role's: SageMaker resolves the version for CreateModel's caller.
    assert "sagemaker:DescribeModelPackage" not in text


def test_shipped_environments_name_the_model_by_registry_version() -> None:
    for env in ("dev", "prod"):
        endpoint = json.loads((REPO / "environments" / f"{env}.json").read_text())["endpoint"]
        assert "model_artifact" not in endpoint
        assert endpoint["model_package_version"] is None  # until a version is approved


def test_artifact_and_version_at_once_fail_naming_both_keys() -> None:
    data = prod_data()
    data["endpoint"]["model_package_version"] = 3
    data["endpoint"]["model_artifact"] = "releases/v1/model.tar.gz"
    with pytest.raises(ConfigError) as error:
        parse_environment("prod", data)
    message = str(error.value)
    assert "'endpoint.model_artifact'" in message
    assert "'endpoint.model_package_version'" in message


@pytest.mark.parametrize("bad", [0, -1, 1_000_000_000, "1", 1.5, True])
def test_a_bad_version_fails_naming_the_key(bad: Any) -> None:
    data = prod_data()
    data["endpoint"]["model_package_version"] = bad
    with pytest.raises(ConfigError, match=r"key 'endpoint\.model_package_version' is "):
        parse_environment("prod", data)


def test_a_variant_version_needs_the_endpoint_version() -> None:
    data = prod_data()
    data["endpoint"]["variants"] = [
        {"name": "Live", "weight": 9, "instance_type": "ml.m5.large", "instance_count": 1},
        {
            "name": "Candidate",
            "weight": 1,
            "instance_type": "ml.m5.large",
            "instance_count": 1,
            "model_package_version": 2,
        },
    ]
    with pytest.raises(ConfigError, match=r"key 'endpoint\.variants\[1\]\.model_package_version'"):
        parse_environment("prod", data)
    data["endpoint"]["model_package_version"] = 1
    config = parse_environment("prod", data)
    from mlstack.stacks import MlStackStage
    from tests.infra.conftest import new_app

    stage = MlStackStage(new_app(), "prod", config=config)
    assert stage.serving is not None
    from aws_cdk.assertions import Template

    models = resources(Template.from_stack(stage.serving).to_json(), "AWS::SageMaker::Model")
    names = sorted(
        render_tokens(m["Properties"]["Containers"][0]["ModelPackageName"]).rsplit("/", 1)[1]
        for m in models.values()
    )
    assert names == ["1", "2"]


def test_a_variant_artifact_with_the_endpoint_version_fails() -> None:
    data = prod_data()
    data["endpoint"]["model_package_version"] = 1
    data["endpoint"]["variants"] = [
        {
            "name": "Live",
            "weight": 1,
            "instance_type": "ml.m5.large",
            "instance_count": 1,
            "model_artifact": "releases/v1/model.tar.gz",
        }
    ]
    with pytest.raises(ConfigError, match=r"key 'endpoint\.variants\[0\]\.model_artifact'"):
        parse_environment("prod", data)


def endpoint_props() -> dict[str, Any]:
    stack = new_stack()
    return {
        "scope": stack,
        "image": ModelImage(stack, "Image", directory=CONTAINERS_DIR, file="inference/Dockerfile"),
        "model_data_bucket": s3.Bucket(stack, "Bucket"),
        "key": kms.Key(stack, "Key"),
        "registry": ModelRegistry(stack, "Registry", group_name="my-models"),
    }


def test_construct_takes_exactly_one_model_source() -> None:
    props = endpoint_props()
    registry = props.pop("registry")
    scope = props.pop("scope")
    with pytest.raises(ValueError, match="expected exactly one of them"):
        RealtimeEndpoint(scope, "Neither", **props)
    with pytest.raises(ValueError, match="expected exactly one of them"):
        RealtimeEndpoint(
            scope,
            "Both",
            model_data_key="releases/v1/model.tar.gz",
            model_package_arn=registry.package_arn(1),
            **props,
        )
    with pytest.raises(ValueError, match=r"variants \['B'\]: model_data_key with"):
        RealtimeEndpoint(
            scope,
            "Mixed",
            model_package_arn=registry.package_arn(1),
            variants=[EndpointVariant(name="A"), EndpointVariant(name="B", model_data_key="k")],
            **props,
        )


@pytest.mark.parametrize("bad", [0, -2, True, "3"])
def test_registry_refuses_a_bad_version(bad: Any) -> None:
    registry = ModelRegistry(new_stack(), "Registry", group_name="my-models")
    with pytest.raises(ValueError, match=r"ModelRegistry\.package_arn version="):
        registry.package_arn(bad)
