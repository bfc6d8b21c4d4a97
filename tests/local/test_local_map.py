"""Map states in local mode: MaxConcurrency honoured with real threads, Distributed Map child
executions, tolerated failures, and the fields local mode refuses. Expected values come from the
Step Functions developer guide pages cited per test, and from moto's Step Functions interpreter
(LocalStack's port) for the task-free inline machines it runs."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from mlstack.local.asl import DefinitionError, Interpreter, StatesError, TaskCall
from tests.local.test_local_differential import run_local, run_moto

ITEMS = list(range(12))


class Tracker:
    """A task handler that records how many calls run at once."""

    def __init__(self, seconds: float = 0.05, fail_on: set[int] | None = None) -> None:
        self.seconds = seconds
        self.fail_on = fail_on or set()
        self.running = 0
        self.most = 0
        self.lock = threading.Lock()
        self.contexts: list[dict[str, Any]] = []

    def __call__(self, call: TaskCall) -> Any:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.contexts.append(dict(call.context))
        try:
            time.sleep(self.seconds)
            if call.parameters["i"] in self.fail_on:
                raise StatesError("Custom.Bad", f"item {call.parameters['i']}")
            return {"doubled": call.parameters["v"] * 2}
        finally:
            with self.lock:
                self.running -= 1


def map_machine(mode: str = "INLINE", **fields: Any) -> dict[str, Any]:
    config = {"Mode": mode} | ({"ExecutionType": "STANDARD"} if mode == "DISTRIBUTED" else {})
    return {
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemSelector": {"v.$": "$$.Map.Item.Value", "i.$": "$$.Map.Item.Index"},
                "ItemProcessor": {
                    "ProcessorConfig": config,
                    "StartAt": "T",
                    "States": {"T": {"Type": "Task", "Resource": "arn:local:task", "End": True}},
                },
                "ResultPath": "$.out",
                "End": True,
                **fields,
            }
        },
    }


@pytest.mark.parametrize("mode", ["INLINE", "DISTRIBUTED"])
@pytest.mark.parametrize("limit", [1, 3])
def test_max_concurrency_bounds_the_iterations_running_at_once(mode: str, limit: int) -> None:
    # "MaxConcurrency: ... the maximum number of concurrent iterations" (developer guide, "Map
    # state": Inline and Distributed mode fields).
    tracker = Tracker()
    result = Interpreter(map_machine(mode, MaxConcurrency=limit), tracker).execute({"items": ITEMS})
    assert result.status == "SUCCEEDED", result.cause
    assert result.output["out"] == [{"doubled": 2 * i} for i in ITEMS]  # item order kept
    assert tracker.most == limit


def test_an_inline_map_never_runs_more_than_40_at_once() -> None:
    # "In this mode, the Map state supports up to 40 concurrent iterations" ("Using Map state in
    # Inline mode").
    tracker = Tracker(seconds=0.2)
    interpreter = Interpreter(map_machine(MaxConcurrency=100), tracker)
    result = interpreter.execute({"items": list(range(60))})
    assert result.status == "SUCCEEDED"
    assert 1 < tracker.most <= 40


def test_distributed_children_are_executions_of_their_own() -> None:
    started: list[tuple[str, str]] = []
    tracker = Tracker(seconds=0)
    interpreter = Interpreter(
        map_machine("DISTRIBUTED", MaxConcurrency=2, Label="Seeding"),
        tracker,
        state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:sm",
        on_child_execution=lambda state, arn: started.append((state, arn)),
    )
    result = interpreter.execute({"items": [5, 6]}, name="parent")
    assert result.status == "SUCCEEDED"
    assert len(started) == 2
    prefix = "arn:aws:states:us-east-1:123456789012:execution:sm/Seeding:"
    assert all(state == "M" and arn.startswith(prefix) for state, arn in started)
    # Each child sees its own execution: its ARN, its item input.
    ids = {ctx["Execution"]["Id"] for ctx in tracker.contexts}
    assert ids == {arn for _, arn in started}
    assert sorted(ctx["Execution"]["Input"]["v"] for ctx in tracker.contexts) == [5, 6]


def test_an_inline_iteration_failure_fails_the_map_with_its_error() -> None:
    result = Interpreter(map_machine(MaxConcurrency=3), Tracker(fail_on={4})).execute(
        {"items": ITEMS}
    )
    assert (result.status, result.error, result.cause) == ("FAILED", "Custom.Bad", "item 4")


def test_distributed_map_fails_past_its_tolerated_failures() -> None:
    # "Step Functions returns States.ExceedToleratedFailureThreshold ... the default [percentage]
    # is zero, which means the workflow fails if any one of its child workflow executions
    # fails" ("Tolerated failure threshold for Distributed Map state").
    failing = Tracker(seconds=0, fail_on={3})
    result = Interpreter(map_machine("DISTRIBUTED"), failing).execute({"items": ITEMS})
    assert (result.status, result.error) == ("FAILED", "States.ExceedToleratedFailureThreshold")


def test_distributed_map_tolerates_what_it_is_told_to() -> None:
    # 1 of 12 items is 8.3 %: within 10 %; 2 of 12 (16.7 %) is past it.
    machine = map_machine("DISTRIBUTED", ToleratedFailurePercentage=10)
    ok = Interpreter(machine, Tracker(seconds=0, fail_on={3})).execute({"items": ITEMS})
    assert ok.status == "SUCCEEDED"
    assert ok.output["out"][3] == {"Error": "Custom.Bad", "Cause": "item 3"}
    failed = Interpreter(machine, Tracker(seconds=0, fail_on={3, 4})).execute({"items": ITEMS})
    assert failed.error == "States.ExceedToleratedFailureThreshold"
    by_count = map_machine("DISTRIBUTED", ToleratedFailureCount=2)
    assert (
        Interpreter(by_count, Tracker(seconds=0, fail_on={1, 2})).execute({"items": ITEMS}).status
        == "SUCCEEDED"
    )


@pytest.mark.parametrize(
    ("fields", "mode", "named"),
    [
        ({"ItemReader": {"Resource": "arn:aws:states:::s3:getObject"}}, "DISTRIBUTED",
         "ItemReader"),
        ({"ItemBatcher": {"MaxItemsPerBatch": 2}}, "DISTRIBUTED", "ItemBatcher"),
        ({"ResultWriter": {"Resource": "arn:aws:states:::s3:putObject"}}, "DISTRIBUTED",
         "ResultWriter"),
        ({"MaxConcurrencyPath": "$.n"}, "INLINE", "MaxConcurrencyPath"),
        ({"ToleratedFailurePercentage": 5}, "INLINE", "only valid in Distributed mode"),
        ({"ToleratedFailurePercentage": 101}, "DISTRIBUTED", "from 0 to 100"),
        ({"MaxConcurrency": -1}, "INLINE", "MaxConcurrency -1"),
        ({"Label": "x"}, "INLINE", "Label is only valid in Distributed mode"),
    ],
)  # fmt: skip
def test_unsupported_or_invalid_map_fields_are_refused_by_name(
    fields: dict[str, Any], mode: str, named: str
) -> None:
    with pytest.raises(DefinitionError, match=named):
        Interpreter(map_machine(mode, **fields), Tracker())


def test_a_distributed_map_needs_an_execution_type() -> None:
    machine = map_machine("DISTRIBUTED")
    del machine["States"]["M"]["ItemProcessor"]["ProcessorConfig"]["ExecutionType"]
    with pytest.raises(DefinitionError, match="ExecutionType"):
        Interpreter(machine, Tracker())


def test_aws_inline_map_example_with_item_selector_and_max_concurrency() -> None:
    # The developer guide's "Inline Map state example with ItemSelector" ("Using Map state in
    # Inline mode"), with its MaxConcurrency, and the output that page shows.
    definition = {
        "StartAt": "ExampleMapState",
        "States": {
            "ExampleMapState": {
                "Type": "Map",
                "MaxConcurrency": 2,
                "InputPath": "$.detail",
                "ItemsPath": "$.shipped",
                "ItemSelector": {
                    "parcel.$": "$$.Map.Item.Value",
                    "courier.$": "$.delivery-partner",
                },
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "INLINE"},
                    "StartAt": "CallLambda",
                    "States": {"CallLambda": {"Type": "Pass", "End": True}},
                },
                "End": True,
            }
        },
    }
    data = {
        "ship-date": "2016-03-14T01:59:00Z",
        "detail": {
            "delivery-partner": "UQS",
            "shipped": [
                {"prod": "R31", "dest-code": 9511, "quantity": 1344},
                {"prod": "S39", "dest-code": 9511, "quantity": 40},
            ],
        },
    }
    result = Interpreter(definition, Tracker()).execute(data)
    assert result.output == [
        {"parcel": {"prod": "R31", "dest-code": 9511, "quantity": 1344}, "courier": "UQS"},
        {"parcel": {"prod": "S39", "dest-code": 9511, "quantity": 40}, "courier": "UQS"},
    ]


@pytest.fixture(scope="module")
def sfn() -> Iterator[Any]:
    logging.getLogger("moto").setLevel(logging.CRITICAL)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        yield boto3.client("stepfunctions", region_name="us-east-1")


CONCURRENT_TASK_FREE = [
    # (machine, input): task-free Maps with MaxConcurrency, inline, as moto's interpreter runs
    # them.
    (
        {
            "StartAt": "M",
            "States": {
                "M": {
                    "Type": "Map",
                    "MaxConcurrency": 3,
                    "ItemsPath": "$.items",
                    "ItemSelector": {"v.$": "$$.Map.Item.Value", "i.$": "$$.Map.Item.Index",
                                     "a.$": "$.a"},
                    "ItemProcessor": {
                        "ProcessorConfig": {"Mode": "INLINE"},
                        "StartAt": "P",
                        "States": {"P": {"Type": "Pass", "Parameters": {"s.$":
                                   "States.MathAdd($.v, $.i)"}, "End": True}},
                    },
                    "ResultPath": "$.r",
                    "End": True,
                }
            },
        },
        {"items": [1, 2, 3, 4, 5, 6, 7], "a": "x"},
    ),
    (
        {
            "StartAt": "M",
            "States": {
                "M": {
                    "Type": "Map",
                    "MaxConcurrency": 2,
                    "ItemsPath": "$.items",
                    "ItemProcessor": {
                        "ProcessorConfig": {"Mode": "INLINE"},
                        "StartAt": "F",
                        "States": {"F": {"Type": "Fail", "Error": "Custom.E", "Cause": "c"}},
                    },
                    "End": True,
                }
            },
        },
        {"items": [1, 2, 3]},
    ),
    (
        # Distributed, task-free. (moto's parser refuses ToleratedFailurePercentage, and a
        # failing child leaves null in moto's output where AWS fails the Map Run by default:
        # "Tolerated failure threshold for Distributed Map state"; so only success is compared.)
        {
            "StartAt": "M",
            "States": {
                "M": {
                    "Type": "Map",
                    "MaxConcurrency": 2,
                    "ItemsPath": "$.items",
                    "ItemSelector": {"v.$": "$$.Map.Item.Value", "i.$": "$$.Map.Item.Index"},
                    "ItemProcessor": {
                        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                        "StartAt": "P",
                        "States": {"P": {"Type": "Pass", "Parameters": {"s.$":
                                   "States.MathAdd($.v, $.i)"}, "End": True}},
                    },
                    "ResultPath": "$.r",
                    "End": True,
                }
            },
        },
        {"items": [1, 2, 3, 4, 5]},
    ),
]  # fmt: skip


@pytest.mark.parametrize(("machine", "data"), CONCURRENT_TASK_FREE)
def test_concurrent_task_free_maps_agree_with_moto(sfn: Any, machine: Any, data: Any) -> None:
    local = run_local(machine, data)
    moto = run_moto(sfn, machine, data)
    assert (local.status, local.output, local.error, local.cause) == (
        moto.status,
        json.loads(json.dumps(moto.output)) if moto.output is not None else None,
        moto.error,
        moto.cause,
    )
