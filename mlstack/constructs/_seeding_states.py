"""The states that seed a run's dataset: one seeding invocation per shard, through a Map state.

Plan shards -> [Many shards? -> Generate dataset at scale (Distributed Map)] or Generate dataset
(inline Map) -> Assemble dataset.

* Plan shards lists the shards' first rows with ``States.ArrayRange(0, rows - 1,
  rows_per_shard)``: one item per shard, ``ceil(rows / rows_per_shard)`` of them, at most 1,000
  (the intrinsic's limit, hence ``mlstack.rules.MAX_SHARDS``).
* Each iteration invokes the seeding function with ``{"run_id", "rows", "seed",
  "rows_per_shard", "shard": $$.Map.Item.Index}``: it writes that shard's objects only, whose
  bytes depend on (seed, shard, rows per shard) alone, so neither the concurrency nor a retry
  changes the dataset. An iteration's output is ``{"shard": i}``; the Map's result is dropped
  (``ResultPath: null``), so a thousand shards never approach the 256 KiB state payload limit.
* Up to ``INLINE_MAX_SHARDS`` shards an inline Map (at most 40 concurrent iterations); beyond,
  when the workflow's ``max_rows`` allows more, a Distributed Map whose child executions
  (STANDARD) each seed one shard, ``MaxConcurrency`` from the config, no failure tolerated.
* Assemble dataset writes ``$.dataset`` as the seeder's result did: run_id, rows, seed,
  rows_per_shard, shards and the split prefixes (``s3://<bucket>/<datasets><run_id>/<split>/``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from aws_cdk import ArnFormat, Aws, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from mlstack.constructs._fragment import Fragment
from mlstack.constructs._nag import (
    INLINE_POLICY_REASON,
    acknowledge_compliance,
    acknowledge_wildcard_resources,
)
from mlstack.constructs.layout import BucketLayout
from mlstack.constructs.state_names import (
    ASSEMBLE_DATASET,
    GENERATE_DATASET,
    GENERATE_DATASET_AT_SCALE,
    MANY_SHARDS,
    PLAN_SHARDS,
    SEED_SHARD,
    SEED_SHARD_AT_SCALE,
)
from mlstack.rules import INLINE_MAP_MAX_CONCURRENCY, INLINE_MAX_SHARDS

SPLITS = ("train", "validation", "test")
SHARD_STARTS = "$.seeding.shard_starts"


class SeedingStates(NamedTuple):
    plan: sfn.CustomState
    many_shards: sfn.Choice | None
    inline_map: sfn.CustomState
    distributed_map: sfn.CustomState | None
    assemble: sfn.CustomState
    rows_per_shard: int

    def maps(self) -> tuple[sfn.CustomState, ...]:
        """The Map states, whose failures go to Notify failure."""
        return (self.inline_map,) + (
            (self.distributed_map,) if self.distributed_map is not None else ()
        )

    def chain(self) -> sfn.CustomState:
        """Plan -> (choice ->) map(s) -> Assemble; returns Assemble, to chain on from."""
        if self.many_shards is None:
            self.plan.next(self.inline_map)
        else:
            assert self.distributed_map is not None
            self.plan.next(self.many_shards)
            self.many_shards.when(
                sfn.Condition.number_greater_than(
                    "$.args.rows", INLINE_MAX_SHARDS * self.rows_per_shard
                ),
                self.distributed_map,
            ).otherwise(self.inline_map)
            self.distributed_map.next(self.assemble)
        self.inline_map.next(self.assemble)
        return self.assemble


def uses_distributed_map(max_rows: int, rows_per_shard: int) -> bool:
    """Whether a workflow that accepts up to ``max_rows`` needs the Distributed Map."""
    return max_rows > INLINE_MAX_SHARDS * rows_per_shard


def seeding_states(
    scope: Construct,
    *,
    seed_function: lambda_.IFunction,
    bucket_name: str,
    layout: BucketLayout,
    rows_per_shard: int,
    concurrency: int,
    max_rows: int,
    lambda_retry: list[dict[str, Any]],
    channels: list[dict[str, Any]],
) -> SeedingStates:
    """The seeding states, unchained (:meth:`SeedingStates.chain` links them); ``channels``
    the training channels Assemble dataset writes to ``$.dataset.channels``."""
    selector = {
        "run_id.$": "$.run_id",
        "rows.$": "$.args.rows",
        "seed.$": "$.args.seed",
        "rows_per_shard": rows_per_shard,
        "shard.$": "$$.Map.Item.Index",
    }
    inline_map = sfn.CustomState(
        scope,
        GENERATE_DATASET,
        state_json=_map_state(
            SEED_SHARD,
            seed_function,
            selector,
            lambda_retry,
            {"ProcessorConfig": {"Mode": "INLINE"}},
            max_concurrency=min(concurrency, INLINE_MAP_MAX_CONCURRENCY),
        ),
    )
    many_shards = distributed_map = None
    if uses_distributed_map(max_rows, rows_per_shard):
        many_shards = sfn.Choice(
            scope,
            MANY_SHARDS,
            comment=f"More than {INLINE_MAX_SHARDS} shards: child executions, not inline "
            "iterations (an execution's history holds 25,000 events).",
        )
        distributed_map = sfn.CustomState(
            scope,
            GENERATE_DATASET_AT_SCALE,
            state_json={
                **_map_state(
                    SEED_SHARD_AT_SCALE,
                    seed_function,
                    selector,
                    lambda_retry,
                    {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}},
                    max_concurrency=concurrency,
                ),
                "Label": "Seeding",
                "ToleratedFailurePercentage": 0,
            },
        )
    return SeedingStates(
        _plan_state(scope, rows_per_shard),
        many_shards,
        inline_map,
        distributed_map,
        _assemble_state(scope, bucket_name, layout, rows_per_shard, channels),
        rows_per_shard,
    )


def dataset_fragment(states: SeedingStates) -> Fragment:
    """Plan shards -> ... -> Assemble dataset, the Map states its tasks."""
    return Fragment(start=states.plan, ends=(states.chain(),), tasks=states.maps())


def invoke_seed_statement(seed_function: lambda_.IFunction) -> iam.PolicyStatement:
    """The Map states' invocations: the unqualified function ARN (no versions or aliases)."""
    return iam.PolicyStatement(
        sid="InvokeSeedFunction",
        actions=["lambda:InvokeFunction"],
        resources=[seed_function.function_arn],
    )


def _plan_state(scope: Construct, rows_per_shard: int) -> sfn.CustomState:
    return sfn.CustomState(
        scope,
        PLAN_SHARDS,
        state_json={
            "Type": "Pass",
            "Comment": "The first row of each shard: one Map item per shard.",
            "Parameters": {
                "shard_starts.$": (
                    f"States.ArrayRange(0, States.MathAdd($.args.rows, -1), {rows_per_shard})"
                )
            },
            "ResultPath": "$.seeding",
        },
    )


def _assemble_state(
    scope: Construct,
    bucket_name: str,
    layout: BucketLayout,
    rows_per_shard: int,
    channels: list[dict[str, Any]],
) -> sfn.CustomState:
    return sfn.CustomState(
        scope,
        ASSEMBLE_DATASET,
        state_json={
            "Type": "Pass",
            "Comment": "Where the shards are: what Train model, the tuning job and Batch "
            "transform read.",
            "Parameters": {
                "run_id.$": "$.run_id",
                "rows.$": "$.args.rows",
                "seed.$": "$.args.seed",
                "rows_per_shard": rows_per_shard,
                "shards.$": f"States.ArrayLength({SHARD_STARTS})",
                **{
                    f"{split}_prefix.$": (
                        f"States.Format('s3://{bucket_name}/{layout.datasets}{{}}/{split}/', "
                        "$.run_id)"
                    )
                    for split in SPLITS
                },
                # The held-out labels the seeder writes beside the test features (evaluation).
                "test_labels_prefix.$": (
                    f"States.Format('s3://{bucket_name}/{layout.datasets}{{}}/test-labels/', "
                    "$.run_id)"
                ),
                # Train model's InputDataConfig (Read prepared dataset adds the schema's).
                "channels": channels,
            },
            "ResultPath": "$.dataset",
        },
    )


def _map_state(
    task_name: str,
    seed_function: lambda_.IFunction,
    selector: dict[str, Any],
    lambda_retry: list[dict[str, Any]],
    processor: dict[str, Any],
    *,
    max_concurrency: int,
) -> dict[str, Any]:
    return {
        "Type": "Map",
        "Comment": "One seeding invocation per shard.",
        "ItemsPath": SHARD_STARTS,
        "ItemSelector": selector,
        "MaxConcurrency": max_concurrency,
        "ItemProcessor": {
            **processor,
            "StartAt": task_name,
            "States": {
                task_name: {
                    "Type": "Task",
                    "Resource": f"arn:{Aws.PARTITION}:states:::lambda:invoke",
                    "Parameters": {
                        "FunctionName": seed_function.function_arn,
                        "Payload.$": "$",
                    },
                    "ResultSelector": {"shard.$": "$.Payload.shard"},
                    "Retry": lambda_retry,
                    "End": True,
                }
            },
        },
        "ResultPath": sfn.JsonPath.DISCARD,  # renders as null: the results are dropped
    }


def allow_distributed_map(role: iam.IRole, state_machine: sfn.StateMachine) -> iam.Policy:
    """The state machine role may start its own child executions and follow and stop them (Step
    Functions developer guide, "IAM policies for using Distributed Map states"). In a policy of
    its own: the role's default policy is a dependency of the state machine, whose ARN this
    policy names."""
    stack = Stack.of(state_machine)
    executions = stack.format_arn(
        service="states",
        resource="execution",
        # Child executions are <state machine>/<Map Run label>:<execution name>.
        resource_name=f"{state_machine.state_machine_name}/*:*",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )
    policy = iam.Policy(
        state_machine,
        "DistributedMapPolicy",
        roles=[role],
        statements=[
            iam.PolicyStatement(
                sid="StartSeedingChildExecutions",
                actions=["states:StartExecution"],
                resources=[state_machine.state_machine_arn],
            ),
            iam.PolicyStatement(
                sid="FollowSeedingChildExecutions",
                actions=["states:DescribeExecution", "states:StopExecution"],
                resources=[executions],
            ),
        ],
    )
    acknowledge_compliance(policy, "IAMNoInlinePolicy", INLINE_POLICY_REASON)
    acknowledge_wildcard_resources(
        policy, [(executions, "Child executions of this state machine's Distributed Map only.")]
    )
    return policy
