"""Local mode checks each request as the service does, against botocore's service models.

Expected values come from outside mlstack: the constraints (patterns, lengths, enums, required
members) are read from botocore's ``service-2.json`` through botocore's own API; the wording of
the refusal is AWS's ("1 validation error detected: Value '...' at 'tableName' failed to satisfy
constraint: Member must satisfy regular expression pattern: ...", aws/aws-cli issue 790; list
members as "'tags.6.member.value'", SWO-GS/auto-tag issue 90); the error names Step Functions
gives are those of its developer guide ("AWS SDK integrations": ServiceName.ErrorName;
optimized SageMaker integrations: SageMaker.AmazonSageMakerException).
"""

from __future__ import annotations

import re
from typing import Any

import botocore.session
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlstack.local import validation
from mlstack.local.validation import ServiceRefusal, rules

SAGEMAKER = botocore.session.get_session().get_service_model("sagemaker")


def shape_of(operation: str, *path: str) -> Any:
    shape = SAGEMAKER.operation_model(operation).input_shape
    for name in path:
        shape = shape.value if name == "*" else shape.members[name]
    return shape


METADATA_VALUE = shape_of("CreateModelPackage", "CustomerMetadataProperties", "*")
METADATA_MAP = shape_of("CreateModelPackage", "CustomerMetadataProperties")

# The request the workflow's Register model sends (the dev definition), with valid values.
REGISTER = {
    "ModelPackageGroupName": "mlstack-dev",
    "ModelPackageDescription": "Run 20260101-abc (execution local-1)",
    "ModelApprovalStatus": "PendingManualApproval",
    "ClientToken": "20260101-abc",
    "InferenceSpecification": {
        "Containers": [
            {
                "Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/inference:1",
                "ModelDataUrl": "s3://bucket/models/job-1/output/model.tar.gz",
            }
        ],
        "SupportedContentTypes": ["text/csv"],
        "SupportedResponseMIMETypes": ["text/csv"],
        "SupportedRealtimeInferenceInstanceTypes": ["ml.m5.large"],
        "SupportedTransformInstanceTypes": ["ml.m5.large"],
    },
    "ModelMetrics": {
        "ModelQuality": {
            "Statistics": {
                "ContentType": "application/json",
                "S3Uri": "s3://bucket/evaluations/20260101-abc/evaluation.json",
            }
        }
    },
    "CustomerMetadataProperties": {
        "run_id": "20260101-abc",
        "execution_arn": "arn:aws:states:us-east-1:123456789012:execution:mlstack-dev:local-1",
        "training_job": "mlstack-dev-20260101-abc",
        "gate_metric": "validation:rmse",
        "gate_value": "0.0976949",
    },
}


def refusal(operation: str, request: Any) -> ServiceRefusal:
    with pytest.raises(ServiceRefusal) as refused:
        rules("sagemaker").check_request(operation, request)
    return refused.value


def with_metadata(**values: str) -> dict[str, Any]:
    return {**REGISTER, "CustomerMetadataProperties": values}


# --- the Register model request of issue 22 -----------------------------------------------------


def test_the_valid_register_request_passes() -> None:
    rules("sagemaker").check_request("CreateModelPackage", REGISTER)


def test_hyperparameters_as_json_are_refused_with_sagemakers_message() -> None:
    value = '{"eta":"0.3","max_depth":"5","num_round":"50"}'
    refused = refusal("CreateModelPackage", with_metadata(hyperparameters=value))
    assert refused.code == "ValidationException"
    assert refused.message == (
        f"1 validation error detected: Value '{value}' at "
        "'customerMetadataProperties.hyperparameters' failed to satisfy constraint: Member must "
        f"satisfy regular expression pattern: {METADATA_VALUE.metadata['pattern']}"
    )


def test_a_list_valued_gate_value_is_refused() -> None:
    refused = refusal("CreateModelPackage", with_metadata(gate_value="[0.0976949]"))
    assert "at 'customerMetadataProperties.gate_value'" in refused.message


def test_the_metadata_constraints_are_botocores() -> None:
    # What issue 22's review read in botocore's sagemaker model, checked there.
    assert METADATA_VALUE.metadata["min"] == 1 and METADATA_VALUE.metadata["max"] == 256
    assert METADATA_MAP.key.metadata["max"] == 128 and METADATA_MAP.metadata["max"] == 50
    assert r"\p{L}\p{Z}\p{N}_.:\/=+\-@" in METADATA_VALUE.metadata["pattern"]


def test_more_than_50_entries_or_a_long_value_are_refused() -> None:
    refused = refusal("CreateModelPackage", with_metadata(**{f"k{i}": "v" for i in range(51)}))
    assert "at 'customerMetadataProperties' failed to satisfy constraint: Member must have " \
        "length less than or equal to 50" in refused.message  # fmt: skip
    refused = refusal("CreateModelPackage", with_metadata(run_id="x" * 257))
    assert refused.message.startswith("1 validation error detected:")
    assert "Member must have length less than or equal to 256" in refused.message


def test_several_violations_are_counted_and_joined() -> None:
    refused = refusal("CreateModelPackage", with_metadata(a="{", b="}"))
    assert refused.message.startswith("2 validation errors detected: Value '{' at ")
    assert "; Value '}' at 'customerMetadataProperties.b'" in refused.message


def test_required_enum_and_list_members_are_named_as_aws_names_them() -> None:
    refused = refusal("CreateEndpoint", {"EndpointName": "e"})
    assert refused.message == (
        "1 validation error detected: Value null at 'endpointConfigName' failed to satisfy "
        "constraint: Member must not be null"
    )
    approval = SAGEMAKER.shape_for("ModelApprovalStatus").enum
    refused = refusal("CreateModelPackage", {**REGISTER, "ModelApprovalStatus": "Maybe"})
    assert f"Member must satisfy enum value set: [{', '.join(approval)}]" in refused.message
    containers = [{**REGISTER["InferenceSpecification"]["Containers"][0], "Image": "a b"}]
    spec = {**REGISTER["InferenceSpecification"], "Containers": containers}
    refused = refusal("CreateModelPackage", {**REGISTER, "InferenceSpecification": spec})
    assert "at 'inferenceSpecification.containers.1.member.image'" in refused.message


def test_a_wrong_type_or_unknown_member_is_a_serialization_error() -> None:
    refused = refusal("DescribeEndpoint", {"EndpointName": 7})
    assert refused.code == "SerializationException" and "endpointName" in refused.message
    refused = refusal("DescribeEndpoint", {"EndpointName": "e", "Nope": 1})
    assert refused.code == "SerializationException" and "no member Nope" in refused.message


# --- the translation of botocore's Java patterns --------------------------------------------------


def all_patterns() -> dict[str, str]:
    """Every pattern of the services local mode stands in for, by shape."""
    session = botocore.session.get_session()
    found = {}
    for service in ("sagemaker", "sns", "lambda", "events", "stepfunctions", "s3", "cloudwatch"):
        model = session.get_service_model(service)
        for name in model.shape_names:
            pattern = model.shape_for(name).metadata.get("pattern")
            if pattern:
                found[f"{service}.{name}"] = pattern
    return found


def test_python_re_cannot_read_botocores_patterns_but_every_one_translates() -> None:
    patterns = all_patterns()
    with pytest.raises(re.error):
        re.compile(METADATA_VALUE.metadata["pattern"])
    for pattern in set(patterns.values()):
        validation.compiled(pattern)  # raises if the regex package cannot read it


@pytest.mark.parametrize(
    ("shape", "good", "bad"),
    [
        # \p{L}\p{Z}\p{N} are Unicode: letters and digits of any script, and spaces.
        ("sagemaker.CustomerMetadataValue", ["0.0976949", "ünï 日本 ٣", "a:b/c=d+e-f@g_h"],
         ['{"eta":"0.3"}', "[0.1]", "a,b", "x" * 257, ""]),
        # Java's \p{Alnum} is US-ASCII only (java.util.regex.Pattern, POSIX classes).
        ("sagemaker.TrainingRepositoryCredentialsProviderArn",
         ["arn:aws:lambda:us-east-1:123456789012:function:seed"],
         ["arn:äws:lambda:us-east-1:123456789012:function:seed"]),
        # A UTF-16 surrogate pair range (\uD800\uDC00-\uDBFF\uDFFF): the supplementary planes.
        ("sagemaker.TableName", ["plain", "emoji \U0001f600"], ["bell \x07"]),
    ],
)  # fmt: skip
def test_patterns_match_as_java_matches_them(shape: str, good: list[str], bad: list[str]) -> None:
    service, name = shape.split(".")
    model = botocore.session.get_session().get_service_model(service)
    string = model.shape_for(name)
    for value in good:
        assert not validation._string_violations(string, value, "v"), value
    for value in bad:
        assert validation._string_violations(string, value, "v"), value


def test_a_pattern_matches_the_whole_value_as_javas_matches_does() -> None:
    # EndpointName: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}; 'a b' contains a match, is refused.
    refused = refusal("DescribeEndpoint", {"EndpointName": "a b"})
    assert "Member must satisfy regular expression pattern" in refused.message


# --- property: invalid requests generated from the shapes are each refused ----------------------

# Characters of \p{L}, \p{Z}, \p{N} (Unicode categories, as hypothesis names them) and _.:/=+-@.
ALLOWED = st.characters(categories=["L", "Z", "N"], include_characters="_.:/=+-@")
FORBIDDEN = st.sampled_from(list("{}[]\",;'<>()!?#%&*|\\~`^$"))
KEYS = st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=20)


@settings(max_examples=150, deadline=None)
@given(
    key=KEYS,
    head=st.text(ALLOWED, max_size=40),
    bad=FORBIDDEN,
    tail=st.text(ALLOWED, max_size=40),
)
def test_a_metadata_value_with_a_forbidden_character_is_refused(
    key: str, head: str, bad: str, tail: str
) -> None:
    value = head + bad + tail
    refused = refusal("CreateModelPackage", with_metadata(**{key: value}))
    assert refused.code == "ValidationException"
    assert f"Value '{value}' at 'customerMetadataProperties.{key}' failed to satisfy " \
        "constraint: Member must satisfy regular expression pattern" in refused.message  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(
    values=st.dictionaries(
        KEYS, st.text(ALLOWED, min_size=1, max_size=256), min_size=1, max_size=50
    )
)
def test_metadata_of_allowed_characters_within_the_limits_passes(values: dict[str, str]) -> None:
    rules("sagemaker").check_request("CreateModelPackage", with_metadata(**values))


def string_members(shape: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """(path, shape) of each top-level and nested string member of a structure."""
    found = []
    for name, member in shape.members.items():
        if member.type_name == "string":
            found.append(((*path, name), member))
        elif member.type_name == "structure" and len(path) < 3:
            found.extend(string_members(member, (*path, name)))
    return found


def aws_path(path: tuple[str, ...]) -> str:
    return ".".join(p[:1].lower() + p[1:] for p in path)


WORKFLOW_OPERATIONS = [
    "CreateModelPackage",
    "CreateEndpointConfig",
    "CreateEndpoint",
    "UpdateEndpoint",
    "DescribeEndpoint",
    "DescribeModelPackage",
    "CreateTrainingJob",
    "CreateTransformJob",
    "CreateProcessingJob",
    "CreateModel",
]
CONSTRAINED = [
    (operation, path, member)
    for operation in WORKFLOW_OPERATIONS
    for path, member in string_members(SAGEMAKER.operation_model(operation).input_shape)
    if member.enum or member.metadata.get("max")
]


@settings(max_examples=200, deadline=None)
@given(target=st.sampled_from(CONSTRAINED), extra=st.text(min_size=1, max_size=3))
def test_an_enum_or_length_violation_anywhere_is_refused_naming_the_member(
    target: tuple[str, tuple[str, ...], Any], extra: str
) -> None:
    operation, path, member = target
    if member.enum:
        value = "".join(member.enum) + extra  # in no enum value set
        constraint = f"Member must satisfy enum value set: [{', '.join(member.enum)}]"
    else:
        value = "a" * member.metadata["max"] + "a" * len(extra)
        constraint = f"Member must have length less than or equal to {member.metadata['max']}"
    request: dict[str, Any] = {}
    node = request
    for name in path[:-1]:
        node = node.setdefault(name, {})
    node[path[-1]] = value
    refused = refusal(operation, request)
    assert refused.code == "ValidationException"
    assert f"Value '{value}' at '{aws_path(path)}' failed to satisfy constraint: {constraint}" \
        in refused.message  # fmt: skip
