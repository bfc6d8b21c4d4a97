"""The dataset-seeding Lambda (code in ``lambda/seed/``) with its own role and log group."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from mlstack.assets import runtime_path
from mlstack.constructs._lambda import DEFAULT_RESERVED_CONCURRENCY, python_function
from mlstack.constructs._nag import skip_checkov
from mlstack.constructs.layout import BucketLayout
from mlstack.constructs.network import Placement
from mlstack.constructs.roles import SeedFunctionRole
from mlstack.rules import DEFAULT_ROWS_PER_SHARD, MAX_DATASET_ROWS, MAX_ROWS_PER_SHARD, SEED

# The function's code: the checkout's lambda/seed/, or the copy an installed wheel carries.
SEED_CODE_DIR = runtime_path("lambda/seed")
MAX_SEED_ROWS = MAX_DATASET_ROWS  # what fits in the function's 256 MB
DEFAULT_TIMEOUT = Duration.minutes(5)


class DatasetSeeder(Construct):
    """Creates the seeding Lambda function (Python, boto3 only, 256 MB), its log group and a role
    that may only put objects under ``layout.datasets`` of ``bucket``.

    The function writes the dataset in shards of ``rows_per_shard`` rows, one object per split
    and shard: ``<datasets><run_id>/train/part-00000.csv``, ``.../validation/part-00000.csv``
    (a fifth of the shard's rows, at least one) and ``.../test/part-00000.csv``; an event with a
    ``shard`` writes only that shard (one iteration of a Map state).

    Args:
        bucket: where the datasets go.
        key: the bucket's KMS key. Default: ``bucket.encryption_key``.
        layout: the bucket's key prefixes. Default: ``BucketLayout()``.
        default_rows: rows when an event names none. Default: 1000.
        default_seed: random seed when an event names none. Default: 42.
        max_rows: the most rows an event may ask for. Default: ``mlstack.rules.MAX_DATASET_ROWS``
            (what fits in 256 MB).
        rows_per_shard: rows of each shard (one object per split and shard); a shard's bytes
            depend only on the seed, its index and this. Default: ``DEFAULT_ROWS_PER_SHARD``.
        code_directory: the function's code. Default: ``lambda/seed`` of this package.
        timeout: the function's timeout. Default: 5 minutes.
        log_retention: how long its logs are kept. Default: one year.
        removal_policy: what happens to its log group when the stack is deleted. Default:
            ``RETAIN``.
        log_level: the function's ``LOG_LEVEL``. Default: ``"INFO"``.
        reserved_concurrency: reserved concurrent executions, which both guarantee and cap
            concurrent runs. Default: None, unreserved (a reservation must leave 100 of the
            account's concurrency unreserved, more than a new account has).
        placement: run the function in these VPC subnets and security groups (its role gets the
            network-interface permissions Lambda documents for that). Default: none.

    Attributes:
        function: the seeding function.
        role: its role.
        log_group: its log group.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        bucket: s3.IBucket,
        key: kms.IKey | None = None,
        layout: BucketLayout | None = None,
        default_rows: int = 1000,
        default_seed: int = 42,
        max_rows: int = MAX_SEED_ROWS,
        rows_per_shard: int = DEFAULT_ROWS_PER_SHARD,
        code_directory: Path = SEED_CODE_DIR,
        timeout: Duration = DEFAULT_TIMEOUT,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_YEAR,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        log_level: str = "INFO",
        reserved_concurrency: int | None = DEFAULT_RESERVED_CONCURRENCY,
        placement: Placement | None = None,
    ) -> None:
        super().__init__(scope, id)
        if not 1 <= max_rows <= MAX_SEED_ROWS:
            raise ValueError(f"DatasetSeeder max_rows={max_rows}: expected 1 to {MAX_SEED_ROWS}")
        if not 1 <= default_rows <= max_rows:
            raise ValueError(
                f"DatasetSeeder default_rows={default_rows}: expected 1 to max_rows ({max_rows})"
            )
        if not 1 <= rows_per_shard <= MAX_ROWS_PER_SHARD:
            raise ValueError(
                f"DatasetSeeder rows_per_shard={rows_per_shard}: expected 1 to "
                f"{MAX_ROWS_PER_SHARD} (what one invocation writes within its timeout)"
            )
        _validate_seed_and_code(default_seed, code_directory)
        layout = layout or BucketLayout()

        self.log_group = logs.LogGroup(
            self, "LogGroup", retention=log_retention, removal_policy=removal_policy
        )
        self.role = SeedFunctionRole(
            self, "Role", bucket=bucket, key=key, layout=layout, log_group=self.log_group
        ).role
        self.function = python_function(
            self,
            description="Seeds the training and test datasets of one workflow run",
            code_directory=code_directory,
            memory_size=256,
            timeout=timeout,
            role=self.role,
            log_group=self.log_group,
            reserved_concurrency=reserved_concurrency,
            placement=placement,
            environment={
                "BUCKET_NAME": bucket.bucket_name,
                "DATASET_PREFIX": layout.datasets,
                "DEFAULT_ROWS": str(default_rows),
                "DEFAULT_SEED": str(default_seed),
                "MAX_ROWS": str(max_rows),
                "ROWS_PER_SHARD": str(rows_per_shard),
                "LOG_LEVEL": log_level,
            },
        )
        skip_checkov(
            self.function,
            "CKV_AWS_173",
            "The environment holds no secret (bucket name, prefix, row counts); Lambda encrypts "
            "it at rest with its AWS managed key.",
        )


def _validate_seed_and_code(default_seed: int, code_directory: Path) -> None:
    if not SEED.accepts(default_seed):
        raise ValueError(f"DatasetSeeder default_seed={default_seed}: expected {SEED.words()}")
    if not (code_directory / "handler.py").is_file():
        raise ValueError(f"DatasetSeeder code_directory={code_directory}: no handler.py there")
