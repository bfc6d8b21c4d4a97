"""The dataset-source choice and the table path: Dataset source? -> (null) the seeder's states, or
Table defaults -> Resolve source -> Source in S3? -> Read source from S3 | Read source from imports
-> Table hyperparameters -> Prepare data -> Read prepared dataset.

* The run's source is the execution input's ``dataset_source`` (its default the configuration's
  ``dataset.source``, or null: the seeder). It replaces the default source as a whole; a key it
  leaves out takes the table default of ``mlstack.rules.table_source_fields``.
* Its ``uri`` is an ``s3://`` prefix, or a key prefix under the data bucket's ``imports/``.
* Table hyperparameters: on a table, the static hyperparameters are :attr:`PrepareData.
  hyperparameters` (the environment's without the seeder's objective, so the training image picks
  the objective from the schema), then the execution input's ``hyperparameters`` on top.
* Prepare data is a Processing job running the training image's ``prepare`` with the source's
  keys as arguments; it writes the run's shards in the seeder's layout under
  ``<layout.datasets><run_id>/`` (train, validation, test, test-labels), the schema under
  ``schema/`` and the bad rows it dropped under ``rejected/``. Read prepared dataset writes
  ``$.dataset`` with the same split prefixes as Assemble dataset, so every later state reads
  either the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from aws_cdk import Aws, Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from mlstack import rules
from mlstack.constructs._evaluation_states import ProcessingJob, processing_output
from mlstack.constructs._nag import acknowledge_wildcard_resources, default_policy
from mlstack.constructs._state_builder import StateBuilder
from mlstack.constructs.model_images import ModelImages
from mlstack.constructs.state_names import (
    DATASET_SOURCE,
    PREPARE_DATA,
    READ_PREPARED_DATASET,
    READ_SOURCE_FROM_IMPORTS,
    READ_SOURCE_FROM_S3,
    RESOLVE_SOURCE,
    SOURCE_IN_S3,
    TABLE_DEFAULTS,
    TABLE_HYPERPARAMETERS,
)

# The outputs of ``prepare`` (docs/your-data.md), each uploaded under the run's dataset prefix.
PREPARED_OUTPUTS = ("train", "validation", "test", "test-labels", "schema", "rejected")
# The seeder's hyperparameters that name its problem and its rounds (the demo rule's 5): dropped
# on a table, where the image picks them from the schema (1000 rounds with early stopping on the
# validation channel) when none is given.
SEEDER_HYPERPARAMETERS = ("objective", "eval_metric", "num_class", "num_round")
SOURCE = "$.source"
CHANNELS = ("train", "validation")  # the training channels of either dataset
ONE_DAY = Duration.days(1)


@dataclass(frozen=True)
class PrepareData:
    """The table path: the Prepare data Processing job and the hyperparameters of runs on a
    table.

    ``source``: the default ``dataset_source`` (the keys of ``mlstack.rules.table_source_fields``),
    or None for the seeder. ``hyperparameters``: the static hyperparameters of runs on a table.
    ``instance_type`` x ``instance_count`` (several: each host writes a share of the objects),
    ``volume_size_gb``, ``max_runtime``. ``external_prefix``: an ``s3://bucket/prefix/`` outside
    the data bucket that the SageMaker role may list and read (none: only ``imports/``).
    """

    source: Mapping[str, Any] | None = None
    hyperparameters: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    instance_type: str = "ml.m5.xlarge"
    instance_count: int = 1
    volume_size_gb: int = 30
    max_runtime: Duration = ONE_DAY
    external_prefix: str | None = None

    def __post_init__(self) -> None:
        if not rules.matches(rules.INSTANCE_TYPE_PATTERN, self.instance_type):
            raise ValueError(
                f"PrepareData instance_type={self.instance_type!r}: expected an ml.* instance type"
            )
        for name, value, bound in (
            ("instance_count", self.instance_count, rules.PREPARE_INSTANCE_COUNT),
            ("volume_size_gb", self.volume_size_gb, rules.VOLUME_SIZE_GB),
        ):
            if not bound.accepts(value):
                raise ValueError(f"PrepareData {name}={value!r}: expected {bound.words()}")
        if self.external_prefix is not None and not rules.matches(
            r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/\S*$", self.external_prefix
        ):
            raise ValueError(
                f"PrepareData external_prefix={self.external_prefix!r}: expected an "
                "'s3://bucket/prefix/' URI ending in '/'"
            )

    def as_state_input(self) -> dict[str, Any]:
        """The default of the execution input key ``dataset_source``."""
        return {"dataset_source": dict(self.source) if self.source is not None else None}

    @classmethod
    def seeder(cls, environment: Mapping[str, str]) -> PrepareData:
        """No default source (the seeder), runs on a table taking ``environment``'s
        hyperparameters without the seeder's problem."""
        return cls(hyperparameters=cls.table_hyperparameters(environment, {}))

    @staticmethod
    def table_hyperparameters(
        environment: Mapping[str, str], own: Mapping[str, str]
    ) -> dict[str, str]:
        """A table's static hyperparameters: ``environment`` without the seeder's problem and
        rounds (objective, eval_metric, num_class, num_round), then ``own``."""
        kept = {k: v for k, v in environment.items() if k not in SEEDER_HYPERPARAMETERS}
        return {**kept, **own}


def prepare_job(builder: StateBuilder, images: ModelImages, prepare: PrepareData) -> ProcessingJob:
    """The training image's ``prepare`` on the run's source, its outputs the run's dataset."""
    network = {"EnableNetworkIsolation": builder.network_isolation}
    network |= builder.training_network()
    return ProcessingJob(
        builder,
        kind="p",
        app={
            "ImageUri": images.training_image_uri,
            "ContainerEntrypoint": ["prepare"],
            "ContainerArguments.$": _arguments(),
        },
        inputs={"data": f"{SOURCE}.uri"},
        outputs=[
            processing_output(name, {"S3Uri.$": dataset_uri(builder, name)})
            for name in PREPARED_OUTPUTS
        ],
        instance_type=prepare.instance_type,
        instance_count=prepare.instance_count,
        volume_size_gb=prepare.volume_size_gb,
        max_runtime=prepare.max_runtime,
        network=network,
    )


def _arguments() -> str:
    """``prepare``'s arguments from the resolved source: one item a value (each at most 256
    characters, botocore's ContainerArgument), numbers as text."""
    table = f"{SOURCE}.table"
    items: list[str] = []
    for key in rules.table_source_fields():
        if key == "uri":
            continue
        value = f"{table}.{key}"
        if key in ("validation_fraction", "test_fraction", "seed", "max_bad_rows_percent"):
            value = f"States.Format('{{}}', {value})"
        items += [f"'--{key.replace('_', '-')}'", value]
    return f"States.Array({', '.join(items)})"


def dataset_uri(builder: StateBuilder, name: str) -> str:
    return (
        f"States.Format('s3://{builder.bucket_name}/{builder.layout.datasets}{{}}/{name}/', "
        "$.run_id)"
    )


def _pass(scope: Construct, name: str, body: dict[str, Any]) -> sfn.CustomState:
    return sfn.CustomState(scope, name, state_json={"Type": "Pass", **body})


def table_states(
    scope: Construct,
    builder: StateBuilder,
    job: ProcessingJob,
    prepare: PrepareData,
    *,
    seeder: sfn.IChainable,
) -> tuple[sfn.Choice, sfn.CustomState, sfn.CustomState]:
    """Dataset source? (null: ``seeder``) -> ... -> Read prepared dataset; returns the choice,
    the Prepare data task (whose failure the workflow catches) and Read prepared dataset."""
    choice = sfn.Choice(
        scope,
        DATASET_SOURCE,
        comment="Execution input 'dataset_source' (default from the config): null generates "
        "the dataset, a table is prepared.",
    )
    defaults = _pass(
        scope,
        TABLE_DEFAULTS,
        {
            "Parameters": {
                "defaults": rules.table_source_defaults(),
                "given.$": "$.args.dataset_source",
            },
            "ResultPath": SOURCE,
        },
    )
    imports = f"s3://{builder.bucket_name}/{builder.layout.imports}"
    resolve = _pass(
        scope,
        RESOLVE_SOURCE,
        {
            "Comment": "The run's source: its keys over the table defaults.",
            "Parameters": {
                "table.$": f"States.JsonMerge({SOURCE}.defaults, {SOURCE}.given, false)",
                "imports_uri.$": f"States.Format('{imports}{{}}', {SOURCE}.given.uri)",
            },
            "ResultPath": SOURCE,
        },
    )
    in_s3 = sfn.Choice(scope, SOURCE_IN_S3, comment="An s3:// URI, or a key under imports/.")
    from_s3, from_imports = (
        _pass(
            scope,
            name,
            {"Parameters": {"table.$": f"{SOURCE}.table", "uri.$": uri}, "ResultPath": SOURCE},
        )
        for name, uri in (
            (READ_SOURCE_FROM_S3, f"{SOURCE}.table.uri"),
            (READ_SOURCE_FROM_IMPORTS, f"{SOURCE}.imports_uri"),
        )
    )
    hyperparameters = _pass(
        scope,
        TABLE_HYPERPARAMETERS,
        {
            "Comment": "On a table, the objective comes from its schema unless configured.",
            "Result": dict(prepare.hyperparameters),
            "ResultPath": "$.default_hyperparameters",
        },
    )
    task = _prepare_data(scope, job, prepare)
    read = _read_prepared(scope, builder, summary=prepare.instance_count == 1)
    # Absent or null: the seeder (a null a merge may have dropped reads as absent).
    given = "$.args.dataset_source"
    choice.when(
        sfn.Condition.and_(sfn.Condition.is_present(given), sfn.Condition.is_not_null(given)),
        defaults,
    ).otherwise(seeder)
    defaults.next(resolve).next(
        in_s3.when(sfn.Condition.string_matches(f"{SOURCE}.table.uri", "s3://*"), from_s3)
        .otherwise(from_imports)
        .afterwards()
    )
    from_s3.next(hyperparameters)
    from_imports.next(hyperparameters)
    hyperparameters.next(task).next(read)
    return choice, task, read


def _prepare_data(scope: Construct, job: ProcessingJob, prepare: PrepareData) -> sfn.CustomState:
    selector = {
        "ProcessingJobName.$": "$.ProcessingJobName",
        "ProcessingJobArn.$": "$.ProcessingJobArn",
    }
    if prepare.instance_count == 1:  # ExitMessage joins every instance's message
        selector["summary.$"] = "States.StringToJson($.ExitMessage)"
    state = sfn.CustomState(
        scope,
        PREPARE_DATA,
        state_json={
            "Type": "Task",
            "Comment": "The training image's prepare: the table's schema and shards.",
            "Resource": f"arn:{Aws.PARTITION}:states:::sagemaker:createProcessingJob.sync",
            "Parameters": job.render_parameters(),
            "ResultSelector": selector,
            "ResultPath": "$.prepare",
        },
    )
    job.builder.retry_sagemaker(state)
    return state


def _read_prepared(scope: Construct, builder: StateBuilder, *, summary: bool) -> sfn.CustomState:
    """``$.dataset`` as Assemble dataset writes it (the split prefixes), with the source, the
    schema and the rejected rows' prefix."""
    parameters: dict[str, Any] = {
        "run_id.$": "$.run_id",
        "source_uri.$": f"{SOURCE}.uri",
        "label.$": f"{SOURCE}.table.label",
        **{
            f"{name.replace('-', '_')}_prefix.$": dataset_uri(builder, name)
            for name in ("train", "validation", "test", "test-labels", "rejected")
        },
        "schema_uri.$": (
            f"States.Format('s3://{builder.bucket_name}/{builder.layout.datasets}"
            "{}/schema/schema.json', $.run_id)"
        ),
    }
    # Train model's InputDataConfig: the seeder's channels and the schema (train copies it into
    # the model, so model.tar.gz describes itself).
    parameters["channels"] = builder.channels(
        {c: dataset_uri(builder, c) for c in CHANNELS}, schema=dataset_uri(builder, "schema")
    )
    # What Register model adds to the version's metadata (class count and labels, each a valid
    # CustomerMetadataValue: prepare's registry_entries); none when the hosts' messages are joined.
    if summary:
        parameters["problem_type.$"] = "$.prepare.summary.problem_type"
        parameters["class_count.$"] = "$.prepare.summary.classes"
        parameters["split_rows.$"] = "$.prepare.summary.rows"
        parameters["registry.$"] = "$.prepare.summary.registry"
    else:
        parameters["registry"] = {}
    return _pass(
        scope,
        READ_PREPARED_DATASET,
        {
            "Comment": "Where the prepared shards are: what every later state reads.",
            "Parameters": parameters,
            "ResultPath": "$.dataset",
        },
    )


def allow_prepare(
    role: iam.IRole, bucket: s3.IBucket, layout: Any, prepare: PrepareData
) -> list[tuple[str, str]]:
    """The SageMaker role may list and read the data bucket's ``imports/`` (and the configured
    external prefix, named exactly) and write the run's datasets; returns the scoped wildcards
    to acknowledge."""
    role.add_to_principal_policy(
        iam.PolicyStatement(
            sid="ListImports",
            actions=["s3:ListBucket"],
            resources=[bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{layout.imports}*"]}},
        )
    )
    role.add_to_principal_policy(
        iam.PolicyStatement(
            sid="ReadImports",
            actions=["s3:GetObject"],
            resources=[bucket.arn_for_objects(f"{layout.imports}*")],
        )
    )
    role.add_to_principal_policy(
        iam.PolicyStatement(
            sid="WritePreparedDatasets",
            actions=["s3:PutObject", "s3:AbortMultipartUpload"],
            resources=[bucket.arn_for_objects(f"{layout.datasets}*")],
        )
    )
    # The execution role's own wording for its prefixes (one resource, one reason).
    wildcards = [
        (
            bucket.arn_for_objects(f"{p}*"),
            f"Objects under the '{p}' prefix of the data bucket only.",
        )
        for p in (layout.imports, layout.datasets)
    ]
    if prepare.external_prefix is not None:
        external_bucket, _, prefix = prepare.external_prefix.removeprefix("s3://").partition("/")
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ListExternalSource",
                actions=["s3:ListBucket"],
                resources=[f"arn:{Aws.PARTITION}:s3:::{external_bucket}"],
                conditions={"StringLike": {"s3:prefix": [f"{prefix}*"]}},
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                sid="ReadExternalSource",
                actions=["s3:GetObject"],
                resources=[f"arn:{Aws.PARTITION}:s3:::{external_bucket}/{prefix}*"],
            )
        )
        wildcards.append(
            (
                f"arn:{Aws.PARTITION}:s3:::{external_bucket}/{prefix}*",
                "The configured table source's prefix only.",
            )
        )
    return wildcards


def grant_prepare(role: iam.IRole, bucket: s3.IBucket, layout: Any, prepare: PrepareData) -> None:
    """:func:`allow_prepare`, its prefix-scoped wildcards acknowledged (cdk-nag IAM5)."""
    wildcards = allow_prepare(role, bucket, layout, prepare)
    if isinstance(role, iam.Role):
        acknowledge_wildcard_resources(default_policy(role), wildcards)
