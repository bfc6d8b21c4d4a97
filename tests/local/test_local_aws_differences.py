"""The differences from AWS Step Functions that issue 12 lists, each verified by its reporters
against a recorded AWS execution; the expected values below are AWS's.

Error texts: AWS prefixes a ``States.Runtime`` execution failure's cause with "An error occurred
while executing the state 'X' (entered at the event id #N). " — see the recorded failures in the
AWS Step Functions workshop ("Error handling": ``Check Address`` entered at event #7, "The JSONPath
'$.application.address' specified for the field 'address.$' could not be found in the input
'{"flagged":false}'") and AWS re:Post/Knowledge Center answers quoting ``Invalid path '$.Payload' :
No results for path: $['Payload']``.
"""

from __future__ import annotations

from typing import Any

import pytest

from mlstack.local import intrinsics, jsonpath
from mlstack.local.asl import Interpreter, TaskCall


def run(states: dict[str, Any], data: Any, handler: Any = None) -> Any:
    definition = {"StartAt": next(iter(states)), "States": states}
    interp = Interpreter(definition, handler or (lambda c: c.parameters), sleep=lambda s: None)
    return interp.execute(data, name="exec-1")


def test_context_paths_in_input_path_and_output_path_read_the_context_object() -> None:
    states = {
        "A": {"Type": "Pass", "InputPath": "$$.Execution.Input", "Result": 1,
              "ResultPath": "$.r", "Next": "B"},
        "B": {"Type": "Pass", "OutputPath": "$$.Execution.Name", "End": True},
    }  # fmt: skip
    result = run(states, {"x": 1})
    assert result.status == "SUCCEEDED", result.cause
    assert result.output == "exec-1"
    states = {"A": {"Type": "Pass", "InputPath": "$$.Execution.Input", "Result": 1,
                    "ResultPath": "$.r", "OutputPath": "$$.State.Name", "End": True}}  # fmt: skip
    assert run(states, {}).output == "A"
    del states["A"]["OutputPath"]
    assert run(states, {"x": 1}).output == {"x": 1, "r": 1}


@pytest.mark.parametrize(
    "path", ["$.items[*]", "$.items[1:]", "$.item.items[1:5]", "$.items[*].itemValue"]
)
def test_wildcard_or_slice_over_a_missing_field_is_an_empty_list(path: str) -> None:
    assert jsonpath.get({"other": 1}, path) == []
    result = run({"P": {"Type": "Pass", "Parameters": {"v.$": path}, "End": True}}, {"x": 1})
    assert result.status == "SUCCEEDED" and result.output == {"v": []}


@pytest.mark.parametrize(
    ("a", "b", "total"),
    [(0.5, 0, 1), (-1.5, 0, -1), (-2.5, 0, -2), (1.49, 1.5, 3), (111, -1, 110), (0.5, -1.5, 0)],
)
def test_math_add_rounds_each_argument_half_up(a: float, b: float, total: int) -> None:
    value = intrinsics.evaluate(f"States.MathAdd({a}, {b})", {}, {})
    assert value == total and type(value) is int
    assert intrinsics.evaluate("States.MathAdd($.a, $.b)", {"a": a, "b": b}, {}) == total


def test_format_renders_objects_and_arrays_as_aws_does() -> None:
    data = {"o": {"Arg1": 1, "Arg2": []}, "l": [1, "a", {"b": 2}, None, True]}
    assert intrinsics.evaluate("States.Format('{}', $.o)", data, {}) == "{Arg1=1, Arg2=[]}"
    assert intrinsics.evaluate("States.Format('{}', $.l)", data, {}) == "[1, a, {b=2}, null, true]"


def test_string_to_json_of_the_empty_string_is_null() -> None:
    assert intrinsics.evaluate("States.StringToJson('')", {}, {}) is None
    result = run({"P": {"Type": "Pass", "Parameters": {"v.$": "States.StringToJson($.s)"},
                        "End": True}}, {"s": ""})  # fmt: skip
    assert result.output == {"v": None}


def test_fail_without_error_reports_no_error_name() -> None:
    result = run({"F": {"Type": "Fail"}}, {})
    assert result.status == "FAILED"
    assert result.error is None and result.cause is None
    result = run({"F": {"Type": "Fail", "Error": "E"}}, {})
    assert result.error == "E" and result.cause is None


@pytest.mark.parametrize(
    ("seconds", "cause"),
    [
        (1.5, "The SecondsPath parameter cannot be parsed as a long value: $.s == 1.5"),
        (-1, "The SecondsPath parameter references a negative value: $.s == -1"),
    ],
)
def test_seconds_path_must_be_a_non_negative_long(seconds: float, cause: str) -> None:
    result = run({"W": {"Type": "Wait", "SecondsPath": "$.s", "End": True}}, {"s": seconds})
    assert result.status == "FAILED" and result.error == "States.Runtime"
    prefix = "An error occurred while executing the state 'W' (entered at the event id #2). "
    assert result.cause == prefix + cause


def test_runtime_error_causes_use_aws_wording_and_event_ids() -> None:
    # ExecutionStarted #1, A: PassStateEntered #2 / PassStateExited #3, B entered at #4.
    states = {
        "A": {"Type": "Pass", "Next": "B"},
        "B": {"Type": "Pass", "Parameters": {"address.$": "$.application.address"}, "End": True},
    }
    result = run(states, {"flagged": False})
    assert result.error == "States.Runtime"
    assert result.cause == (
        "An error occurred while executing the state 'B' (entered at the event id #4). "
        "The JSONPath '$.application.address' specified for the field 'address.$' could not "
        "be found in the input '{\"flagged\":false}'"
    )
    states["B"] = {"Type": "Pass", "OutputPath": "$.Payload", "End": True}
    assert run(states, {}).cause == (
        "An error occurred while executing the state 'B' (entered at the event id #4). "
        "Invalid path '$.Payload' : No results for path: $['Payload']"
    )


def test_event_ids_count_a_task_as_aws_history_does() -> None:
    # TaskStateEntered #2, TaskScheduled #3, TaskStarted #4, TaskSucceeded #5,
    # TaskStateExited #6; the Pass is entered at #7.
    states = {
        "T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Next": "P"},
        "P": {"Type": "Pass", "InputPath": "$.missing", "End": True},
    }

    def handler(call: TaskCall) -> Any:
        return {}

    result = run(states, {}, handler)
    assert result.cause == (
        "An error occurred while executing the state 'P' (entered at the event id #7). "
        "Invalid path '$.missing' : No results for path: $['missing']"
    )
