"""The report's execution timeline, read from an execution history in the shape of Step
Functions' ``GetExecutionHistory``.

AWS's side: the history comes through a real boto3 client whose answer is stubbed with botocore's
``Stubber``, which refuses a response that does not match the service model's
``GetExecutionHistoryOutput`` (event types from its ``HistoryEventType`` enum, the details keys
its ``HistoryEvent`` structure names). The layout — a Map iteration's states chained by
``previousEventId`` to its ``MapIterationStarted``, a retry as ``TaskFailed`` followed by a new
``TaskScheduled`` inside one state visit, an uncaught failure ending with ``ExecutionFailed`` and
no ``StateExited`` — is the one the Step Functions developer guide describes ("Viewing Map Run
executions", "Handling errors in Step Functions workflows").

The local side: the interpreter's recorder writes the same shape (checked against the same
model) and gives the same bars.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from mlstack.local.asl import Interpreter, StatesError, TaskCall
from mlstack.report.history import HistoryRecorder, timeline_bars
from mlstack.report.svg import Bar

ARN = "arn:aws:states:us-east-1:123456789012:execution:mlstack-dev:run-1"
T0 = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)


def _event(event_id: int, previous: int, seconds: float, kind: str, **details: Any) -> dict:
    event: dict[str, Any] = {
        "timestamp": T0 + timedelta(seconds=seconds),
        "type": kind,
        "id": event_id,
        "previousEventId": previous,
    }
    event.update(details)
    return event


def _entered(name: str) -> dict:
    return {"stateEnteredEventDetails": {"name": name}}


def _exited(name: str) -> dict:
    return {"stateExitedEventDetails": {"name": name}}


def _history() -> list[dict]:
    return [
        _event(1, 0, 0, "ExecutionStarted", executionStartedEventDetails={}),
        _event(2, 1, 1, "TaskStateEntered", **_entered("Train model")),
        _event(
            3,
            2,
            1,
            "TaskScheduled",
            taskScheduledEventDetails={
                "resourceType": "sagemaker",
                "resource": "createTrainingJob.sync",
                "region": "us-east-1",
                "parameters": "{}",
            },
        ),
        _event(
            4,
            3,
            2,
            "TaskFailed",
            taskFailedEventDetails={
                "resourceType": "sagemaker",
                "resource": "createTrainingJob.sync",
                "error": "SageMaker.AmazonSageMakerException",
            },
        ),
        _event(
            5,
            4,
            3,
            "TaskScheduled",
            taskScheduledEventDetails={
                "resourceType": "sagemaker",
                "resource": "createTrainingJob.sync",
                "region": "us-east-1",
                "parameters": "{}",
            },
        ),
        _event(
            6,
            5,
            5,
            "TaskSucceeded",
            taskSucceededEventDetails={
                "resourceType": "sagemaker",
                "resource": "createTrainingJob.sync",
            },
        ),
        _event(7, 6, 5, "TaskStateExited", **_exited("Train model")),
        _event(8, 7, 5, "MapStateEntered", **_entered("Generate dataset")),
        _event(9, 8, 5, "MapStateStarted", mapStateStartedEventDetails={"length": 2}),
        _event(
            10,
            9,
            5,
            "MapIterationStarted",
            mapIterationStartedEventDetails={"name": "Generate dataset", "index": 0},
        ),
        _event(11, 10, 5, "TaskStateEntered", **_entered("Seed shard")),
        _event(
            12,
            9,
            5.5,
            "MapIterationStarted",
            mapIterationStartedEventDetails={"name": "Generate dataset", "index": 1},
        ),
        _event(13, 12, 5.5, "TaskStateEntered", **_entered("Seed shard")),
        _event(14, 11, 6, "TaskStateExited", **_exited("Seed shard")),
        _event(
            15,
            14,
            6,
            "MapIterationSucceeded",
            mapIterationSucceededEventDetails={"name": "Generate dataset", "index": 0},
        ),
        _event(16, 13, 7, "TaskStateExited", **_exited("Seed shard")),
        _event(
            17,
            16,
            7,
            "MapIterationSucceeded",
            mapIterationSucceededEventDetails={"name": "Generate dataset", "index": 1},
        ),
        _event(18, 17, 7, "MapStateSucceeded"),
        _event(19, 18, 7, "MapStateExited", **_exited("Generate dataset")),
        _event(20, 19, 7, "TaskStateEntered", **_entered("Evaluate model")),
        _event(
            21,
            20,
            8,
            "TaskFailed",
            taskFailedEventDetails={
                "resourceType": "sagemaker",
                "resource": "createProcessingJob.sync",
                "error": "States.TaskFailed",
            },
        ),
        _event(
            22, 21, 8, "ExecutionFailed", executionFailedEventDetails={"error": "States.TaskFailed"}
        ),
    ]


def _from_aws() -> list[dict]:
    client = boto3.client(
        "stepfunctions", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stub:
        stub.add_response("get_execution_history", {"events": _history()}, {"executionArn": ARN})
        return client.get_execution_history(executionArn=ARN)["events"]


def test_each_state_visit_is_a_bar_map_iterations_grouped_retries_and_failures_marked() -> None:
    bars = timeline_bars(_from_aws())
    assert bars == [
        Bar("Train model", 1, 5, "succeeded", [2]),
        Bar("Generate dataset", 5, 7),
        Bar("Generate dataset [0] / Seed shard", 5, 6),
        Bar("Generate dataset [1] / Seed shard", 5.5, 7),
        Bar("Evaluate model", 7, 8, "failed", []),
    ]


def test_an_empty_history_has_no_bars() -> None:
    assert timeline_bars([]) == []


DEFINITION = {
    "StartAt": "Flaky",
    "States": {
        "Flaky": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Retry": [{"ErrorEquals": ["Boom"], "IntervalSeconds": 1, "MaxAttempts": 2}],
            "Next": "Each",
        },
        "Each": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "INLINE"},
                "StartAt": "Work",
                "States": {
                    "Work": {
                        "Type": "Task",
                        "Resource": "arn:aws:states:::lambda:invoke",
                        "End": True,
                    }
                },
            },
            "Next": "Broken",
        },
        "Broken": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Failed"}],
            "Next": "Failed",
        },
        "Failed": {"Type": "Fail", "Error": "Done", "Cause": "caught"},
    },
}


class _Quiet:
    def state_entered(self, *args: Any) -> None:
        pass

    state_exited = state_failed = state_retrying = state_entered


def _local_history() -> list[dict]:
    calls: dict[str, int] = {}

    def handler(call: TaskCall) -> Any:
        calls[call.state_name] = calls.get(call.state_name, 0) + 1
        if call.state_name == "Flaky" and calls["Flaky"] == 1:
            raise StatesError("Boom", "first try")
        if call.state_name == "Broken":
            raise StatesError("Nope", "always")
        return {"items": [1, 2]}

    recorder = HistoryRecorder(_Quiet(), DEFINITION)
    interpreter = Interpreter(DEFINITION, handler, listener=recorder, time_scale=0.001)
    recorder.execution_started()
    result = interpreter.execute({"items": [1, 2]})
    recorder.execution_ended(result.status, result.error, result.cause)
    return recorder.events


def test_a_local_run_records_the_history_in_get_execution_historys_shape() -> None:
    client = boto3.client(
        "stepfunctions", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    events = _local_history()
    with Stubber(client) as stub:  # raises when a field or a type is not the model's
        stub.add_response("get_execution_history", {"events": events}, {"executionArn": ARN})
        client.get_execution_history(executionArn=ARN)
    assert events[0]["type"] == "ExecutionStarted" and events[-1]["type"] == "ExecutionFailed"


def test_a_local_runs_bars_mark_the_retry_the_iterations_and_the_caught_failure() -> None:
    bars = timeline_bars(_local_history())
    lanes = [(b.lane, b.status, len(b.retries)) for b in bars]
    assert lanes == [
        ("Flaky", "succeeded", 1),
        ("Each", "succeeded", 0),
        ("Each [0] / Work", "succeeded", 0),
        ("Each [1] / Work", "succeeded", 0),
        ("Broken", "caught", 0),
        ("Failed", "failed", 0),
    ]
    assert all(b.end >= b.start for b in bars)


@pytest.mark.parametrize("bad", ["s3://bucket", "https://x/evaluation.json"])
def test_a_report_uri_that_is_not_s3_is_refused_by_name(bad: str) -> None:
    from mlstack.report.sources import split_s3_uri

    with pytest.raises(ValueError, match="is not an s3://bucket/key URI"):
        split_s3_uri(bad)
