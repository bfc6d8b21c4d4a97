"""The dataset seeded through the workflow's Map states (Plan shards -> Generate dataset ->
Assemble dataset, as tests/infra pins them in the synthesized definition) is the same bytes at
any MaxConcurrency, inline or distributed: each iteration invokes the real handler for one
shard, several at once on local mode's threads."""

from __future__ import annotations

from typing import Any

import pytest
import seed_handler

from mlstack.local.asl import Interpreter, TaskCall
from tests.seed.test_seed_shards import _objects

ROWS, PER_SHARD = 95, 10


def seeding_machine(mode: str, concurrency: int) -> dict[str, Any]:
    config = {"Mode": mode} | ({"ExecutionType": "STANDARD"} if mode == "DISTRIBUTED" else {})
    return {
        "StartAt": "Plan shards",
        "States": {
            "Plan shards": {
                "Type": "Pass",
                "Parameters": {
                    "shard_starts.$": (
                        f"States.ArrayRange(0, States.MathAdd($.args.rows, -1), {PER_SHARD})"
                    )
                },
                "ResultPath": "$.seeding",
                "Next": "Generate dataset",
            },
            "Generate dataset": {
                "Type": "Map",
                "ItemsPath": "$.seeding.shard_starts",
                "ItemSelector": {
                    "run_id.$": "$.run_id",
                    "rows.$": "$.args.rows",
                    "seed.$": "$.args.seed",
                    "rows_per_shard": PER_SHARD,
                    "shard.$": "$$.Map.Item.Index",
                },
                "MaxConcurrency": concurrency,
                "ItemProcessor": {
                    "ProcessorConfig": config,
                    "StartAt": "Seed shard",
                    "States": {
                        "Seed shard": {
                            "Type": "Task",
                            "Resource": "arn:aws:states:::lambda:invoke",
                            "Parameters": {"FunctionName": "seed", "Payload.$": "$"},
                            "ResultSelector": {"shard.$": "$.Payload.shard"},
                            "End": True,
                        }
                    },
                },
                "ResultPath": None,
                "End": True,
            },
        },
    }


def invoke(call: TaskCall) -> Any:
    return {"Payload": seed_handler.handler(call.parameters["Payload"], None)}


@pytest.mark.parametrize(("mode", "concurrency"), [("INLINE", 4), ("DISTRIBUTED", 3)])
def test_the_dataset_is_the_same_at_concurrency_one_and_n(
    s3: Any, bucket: str, mode: str, concurrency: int
) -> None:
    datasets = {}
    for run_id, limit in (("one", 1), ("many", concurrency)):
        result = Interpreter(seeding_machine(mode, limit), invoke).execute(
            {"run_id": run_id, "args": {"rows": ROWS, "seed": 7}}
        )
        assert result.status == "SUCCEEDED", result.cause
        assert result.output["seeding"]["shard_starts"] == list(range(0, ROWS, PER_SHARD))
        prefix = f"datasets/{run_id}/"
        datasets[run_id] = {
            k.removeprefix(prefix): v for k, v in _objects(s3, bucket, prefix).items()
        }
    assert datasets["one"] == datasets["many"]
    assert len(datasets["one"]) == 4 * 10  # 10 shards: train, validation, test, test labels
    # And it is what one invocation writing every shard writes.
    seed_handler.handler({"run_id": "all", "rows": ROWS, "rows_per_shard": PER_SHARD,
                          "seed": 7}, None)  # fmt: skip
    together = {k.removeprefix("datasets/all/"): v
                for k, v in _objects(s3, bucket, "datasets/all/").items()}  # fmt: skip
    assert together == datasets["one"]
