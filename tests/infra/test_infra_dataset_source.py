"""A dataset source of the user's (issue #19): config ``dataset.source``, the execution input's
``dataset_source`` and the workflow's table path (Dataset source? -> ... -> Prepare data).

Expected values come from outside the code under test: the ``prepare`` program's own argument
parser (containers/common/mlstack_containers/prepare/program.py), botocore's SageMaker service
model and the environment files."""

from __future__ import annotations

import json
import sys
from typing import Any

import botocore.session
import pytest
from aws_cdk.assertions import Template
from mlstack_containers.prepare.program import Options
from mlstack_containers.prepare.read import PrepareError

from mlstack.app import build_app
from mlstack.config import ConfigError, parse_environment
from mlstack.local import jsonpath
from mlstack.local.intrinsics import evaluate
from mlstack.rules import execution_input_model, execution_input_schema, table_source_defaults
from mlstack.stacks import MlStackStage
from tests.infra.conftest import REPO, new_app, state_machine_definition

EXTERNAL = "s3://example-tables/penguins/"


def dev_raw() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((REPO / "environments" / "dev.json").read_text())
    data.pop("$schema")
    return data


def with_source(source: dict[str, Any]) -> dict[str, Any]:
    data = dev_raw()
    data["dataset"]["source"] = source
    return data


def sagemaker_shape(name: str) -> dict[str, Any]:
    model = botocore.session.get_session().get_service_model("sagemaker")
    return model.shape_for(name).metadata  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def with_table(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """dev with an external source configured, synthesized (the policy engines run)."""
    config = parse_environment(
        "dev",
        with_source({"uri": EXTERNAL, "label": "species", "instance_count": 2}),
    )
    app = build_app(
        new_app(outdir=str(tmp_path_factory.mktemp("cdk.out"))), environments={"dev": config}
    )
    app.synth()
    stage = next(c for c in app.node.children if isinstance(c, MlStackStage))
    return Template.from_stack(stage.workflow).to_json()  # type: ignore[no-any-return]


# --- configuration -----------------------------------------------------------------------------


def test_the_seeder_stays_the_default() -> None:
    assert parse_environment("dev", dev_raw()).dataset.source is None


def test_a_source_takes_prepares_own_defaults() -> None:
    config = parse_environment("dev", with_source({"uri": "iris/", "label": "species"}))
    source: Any = config.dataset.source
    # prepare's parser with only the label: its documented defaults (docs/your-data.md).
    options = Options.parse(["--label", "species"], {})
    assert (source.format, source.problem_type) == (options.format, options.problem_type)
    assert (source.validation_fraction, source.test_fraction) == (
        options.validation,
        options.test,
    )
    assert (source.seed, source.max_bad_rows_percent) == (options.seed, options.max_bad_percent)
    assert (source.instance_count, source.instance_type) == (1, "ml.m5.xlarge")


@pytest.mark.parametrize(
    ("source", "named"),
    [
        ({"uri": "iris/", "label": "species", "lable": "x"}, "unknown key 'dataset.source.lable'"),
        ({"uri": "iris/"}, "missing key 'dataset.source.label'"),
        ({"uri": "iris/", "label": "s", "format": "xlsx"}, "key 'dataset.source.format'"),
        ({"uri": "iris/", "label": "s", "problem_type": "ranking"}, "dataset.source.problem_type"),
        (
            {"uri": "iris/", "label": "s", "test_fraction": 1.5},
            "key 'dataset.source.test_fraction'",
        ),
        (
            {"uri": "iris/", "label": "s", "test_fraction": 0.5, "validation_fraction": 0.5},
            "key 'dataset.source.test_fraction' is 0.5",
        ),
        ({"uri": "iris/", "label": "s", "features": "a,,b"}, "key 'dataset.source.features'"),
        # prepare's argparse would take '-x' as an option (test below).
        ({"uri": "iris/", "label": "s", "categorical": "-x,b"}, "dataset.source.categorical"),
        ({"uri": "iris/", "label": "s", "instance_count": 101}, "dataset.source.instance_count"),
        ({"uri": " iris", "label": "s"}, "key 'dataset.source.uri'"),
    ],
)
def test_a_bad_source_key_fails_synth_naming_it(source: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match="environment 'dev': ") as caught:
        parse_environment("dev", with_source(source))
    assert named in str(caught.value)


def test_a_column_list_is_at_most_one_container_argument() -> None:
    # botocore: ContainerArgument is a string of at most 256 characters.
    most = sagemaker_shape("ContainerArgument")["max"]
    names = ",".join(f"c{i:03d}" for i in range(60))[:most]
    names = names.rstrip(",")
    parse_environment("dev", with_source({"uri": "t/", "label": "y", "features": names}))
    longer = names + ",c9" * ((most - len(names)) // 3 + 1)
    with pytest.raises(ConfigError, match=r"dataset\.source\.features"):
        parse_environment("dev", with_source({"uri": "t/", "label": "y", "features": longer}))


# --- the execution input -----------------------------------------------------------------------


def lambda_check(value: dict[str, Any]) -> list[str]:
    import tests.validate_input.conftest  # noqa: F401  (loads the handler module)

    handler = sys.modules["validate_input_handler"]
    schema = execution_input_schema(execution_input_model(None))
    rules = {"source_fractions": {"defaults": table_source_defaults()}}
    return [str(p) for p in handler.check(value, schema, rules)]


def test_the_input_accepts_a_table_or_null() -> None:
    assert lambda_check({"dataset_source": None}) == []
    assert lambda_check({"dataset_source": {"uri": "s3://bkt/t/", "label": "y"}}) == []


def test_a_bad_input_source_fails_naming_the_key() -> None:
    problems = lambda_check({"dataset_source": {"uri": "t/", "label": "y", "formt": "csv"}})
    assert any("dataset_source.formt" in p for p in problems), problems
    problems = lambda_check(
        {"dataset_source": {"uri": "t/", "label": "y", "validation_fraction": 0.6,
                            "test_fraction": 0.4}}
    )  # fmt: skip
    assert problems == [
        "key 'dataset_source.test_fraction' is 0.4; expected below 1 - validation_fraction (0.4) "
        "so that rows are left to train on"
    ]


# --- the definition ----------------------------------------------------------------------------


def test_the_run_takes_the_table_path_only_for_a_table(with_table: dict[str, Any]) -> None:
    states = state_machine_definition(with_table)["States"]
    choice = states["Dataset source?"]
    given = "$.args.dataset_source"
    assert choice["Choices"] == [
        {
            "And": [
                {"Variable": given, "IsPresent": True},
                {"Variable": given, "IsNull": False},
            ],
            "Next": "Table defaults",
        }
    ]
    assert choice["Default"] == "Plan shards"
    defaults = states["Load defaults"]["Parameters"]["defaults"]
    assert defaults["dataset_source"] == {
        "uri": EXTERNAL, "label": "species", **table_source_defaults()
    }  # fmt: skip


def value_of(text: str, data: Any) -> Any:
    """A ``.$`` field's value: an intrinsic function or a path."""
    return evaluate(text, data, {}) if text.startswith("States.") else jsonpath.get(data, text)


def resolved(definition: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """Run the table path's Pass states on ``given`` with the intrinsic evaluator."""
    states = definition["States"]
    data: dict[str, Any] = {"run_id": "r1", "args": {"dataset_source": given}}
    for name in ("Table defaults", "Resolve source"):
        params = states[name]["Parameters"]
        data["source"] = {
            k.removesuffix(".$"): value_of(v, data) if k.endswith(".$") else v
            for k, v in params.items()
        }
    return data


def test_prepare_data_hands_prepare_the_sources_keys(with_table: dict[str, Any]) -> None:
    definition = state_machine_definition(with_table)
    given = {"uri": "iris/", "label": "species", "features": "a,b", "test_fraction": 0.2,
             "seed": 7, "max_bad_rows_percent": 1.5}  # fmt: skip
    data = resolved(definition, given)
    app = definition["States"]["Prepare data"]["Parameters"]["AppSpecification"]
    arguments = evaluate(app["ContainerArguments.$"], data, {})
    assert all(isinstance(a, str) and len(a) <= 256 for a in arguments)
    options = Options.parse(arguments, {})
    assert (options.label, options.features, options.test, options.validation) == (
        "species", ("a", "b"), 0.2, 0.15,
    )  # fmt: skip
    assert (options.seed, options.max_bad_percent, options.categorical) == (7, 1.5, frozenset())
    assert options.column_names is None and options.format == "auto"


def test_prepare_data_writes_the_seeders_layout(with_table: dict[str, Any]) -> None:
    definition = state_machine_definition(with_table)
    job = definition["States"]["Prepare data"]["Parameters"]
    outputs = {o["OutputName"]: o["S3Output"] for o in job["ProcessingOutputConfig"]["Outputs"]}
    assert set(outputs) == {"train", "validation", "test", "test-labels", "schema", "rejected"}
    assessed = definition["States"]["Assemble dataset"]["Parameters"]
    read = definition["States"]["Read prepared dataset"]["Parameters"]
    for split in ("train", "validation", "test", "test_labels"):
        assert read[f"{split}_prefix.$"] == assessed[f"{split}_prefix.$"]
    assert job["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 2
    assert job["ProcessingInputs"][0]["S3Input"]["LocalPath"] == (
        "/opt/ml/processing/input/data"  # where prepare reads (its module docstring)
    )


def test_the_sagemaker_role_reads_only_imports_and_the_configured_prefix(
    with_table: dict[str, Any],
) -> None:
    roles = [
        r
        for r in with_table["Resources"].values()
        if r["Type"] == "AWS::IAM::Policy" and "ExecutionRole" in json.dumps(r["Properties"])
    ]
    text = json.dumps(roles)
    assert 'arn:", {"Ref": "AWS::Partition"}, ":s3:::example-tables/penguins/*' in text
    statements = [s for r in roles for s in r["Properties"]["PolicyDocument"]["Statement"]]
    external = [s for s in statements if s.get("Sid") == "ListExternalSource"]
    assert external[0]["Condition"] == {"StringLike": {"s3:prefix": ["penguins/*"]}}
    assert any(s.get("Sid") == "ReadImports" for s in statements)


def test_a_column_list_starting_with_a_dash_is_refused_since_prepare_cannot_read_it() -> None:
    # The reason, from prepare's own parser: the list after '--features' is read as an option.
    with pytest.raises(PrepareError, match="expected one argument"):
        Options.parse(["--label", "y", "--features", "-x,b"], {})
    Options.parse(["--label", "y", "--features", "x,-b"], {})  # only the first character
    parse_environment("dev", with_source({"uri": "t/", "label": "y", "features": "x,-b"}))
    with pytest.raises(ConfigError, match=r"key 'dataset\.source\.features' is \"-x,b\""):
        parse_environment("dev", with_source({"uri": "t/", "label": "y", "features": "-x,b"}))


def test_validate_input_knows_the_default_source_is_a_table(with_table: dict[str, Any]) -> None:
    # Its shards are its objects: the seeder's shard count bounds no run that leaves
    # dataset_source out (lambda/validate_input: instances_within_shards).
    definition = state_machine_definition(with_table)
    rules = definition["States"]["Validate input"]["Parameters"]["Payload"]["rules"]
    assert rules["instances_within_shards"]["table_by_default"] is True
