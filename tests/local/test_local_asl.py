"""The ASL interpreter on small hand-written definitions: each state type, the paths, Retry and
Catch, Choice rules, the context object and errors."""

from __future__ import annotations

import time
from typing import Any

import pytest

from mlstack.local.asl import DefinitionError, Interpreter, StatesError, TaskCall


def machine(states: dict[str, Any], start: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"StartAt": start or next(iter(states)), "States": states, **extra}


def run(definition: dict[str, Any], data: Any = None, handler: Any = None, **kw: Any) -> Any:
    sleeps: list[float] = []
    interp = Interpreter(
        definition, handler or (lambda call: call.parameters), sleep=sleeps.append, **kw
    )
    result = interp.execute(data, name="exec-1")
    result.sleeps = sleeps  # type: ignore[attr-defined]
    return result


def test_pass_with_parameters_result_path_and_output_path() -> None:
    d = machine({
        "P": {"Type": "Pass", "InputPath": "$.in", "Parameters": {"v.$": "$.x", "k": 1,
              "name.$": "$$.Execution.Name", "list": [{"y.$": "$.x"}]},
              "ResultPath": "$.out", "OutputPath": "$.out", "End": True},
    })  # fmt: skip
    result = run(d, {"in": {"x": 5}})
    assert result.status == "SUCCEEDED"
    assert result.output == {"v": 5, "k": 1, "name": "exec-1", "list": [{"y": 5}]}


def test_pass_result_and_null_result_path_keeps_the_input() -> None:
    d = machine(
        {
            "A": {"Type": "Pass", "Result": {"r": 1}, "ResultPath": "$.r", "Next": "B"},
            "B": {"Type": "Pass", "Result": "ignored", "ResultPath": None, "End": True},
        }
    )
    assert run(d, {"x": 1}).output == {"x": 1, "r": {"r": 1}}


def test_task_gets_parameters_and_result_selector_shapes_the_result() -> None:
    calls: list[TaskCall] = []

    def handler(call: TaskCall) -> Any:
        calls.append(call)
        return {"Payload": {"a": call.parameters["n"] * 2}, "noise": 1}

    d = machine({
        "T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
              "Parameters": {"n.$": "$.n"}, "ResultSelector": {"a.$": "$.Payload.a"},
              "ResultPath": "$.r", "TimeoutSeconds": 30, "End": True},
    })  # fmt: skip
    result = run(d, {"n": 4}, handler)
    assert result.output == {"n": 4, "r": {"a": 8}}
    assert calls[0].resource == "arn:aws:states:::lambda:invoke"
    assert calls[0].timeout_seconds == 30 and calls[0].state_name == "T"


def test_retry_backs_off_counts_retries_then_succeeds() -> None:
    attempts: list[int] = []

    def handler(call: TaskCall) -> Any:
        attempts.append(call.context["State"]["RetryCount"])
        if len(attempts) < 3:
            raise StatesError("Svc.Throttled", "slow down")
        return "ok"

    d = machine({
        "T": {"Type": "Task", "Resource": "r", "End": True, "Retry": [
            {"ErrorEquals": ["Other"], "MaxAttempts": 9},
            {"ErrorEquals": ["Svc.Throttled"], "IntervalSeconds": 2, "BackoffRate": 3,
             "MaxAttempts": 5}]},
    })  # fmt: skip
    result = run(d, {}, handler, time_scale=0.5)
    assert result.output == "ok"
    assert attempts == [0, 1, 2]
    assert result.sleeps == [1.0, 3.0]  # 2 s then 6 s, scaled by 0.5


def test_retry_exhausted_then_catch_puts_the_error_at_result_path() -> None:
    def handler(call: TaskCall) -> Any:
        raise StatesError("States.TaskFailed", "it broke")

    d = machine({
        "T": {"Type": "Task", "Resource": "r", "Next": "Done",
              "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 2, "MaxDelaySeconds": 1}],
              "Catch": [{"ErrorEquals": ["Nope"], "Next": "Done"},
                        {"ErrorEquals": ["States.TaskFailed"], "ResultPath": "$.error",
                         "Next": "Failed"}]},
        "Done": {"Type": "Succeed"},
        "Failed": {"Type": "Fail", "ErrorPath": "$.error.Error",
                   "CausePath": "States.Format('wrapped: {}', $.error.Cause)"},
    })  # fmt: skip
    result = run(d, {"x": 1}, handler)
    assert result.status == "FAILED"
    assert (result.error, result.cause) == ("States.TaskFailed", "wrapped: it broke")
    assert result.states == ["T", "Failed"]
    assert result.history[0].status == "caught"
    assert result.sleeps == [1.0, 1.0]  # MaxDelaySeconds caps the backoff


def test_states_all_does_not_catch_runtime_errors() -> None:
    d = machine(
        {
            "P": {"Type": "Pass", "Parameters": {"v.$": "$.missing"}, "End": True},
        }
    )
    result = run(d, {})
    assert result.error == "States.Runtime" and "missing" in str(result.cause)
    d = machine({
        "T": {"Type": "Task", "Resource": "r", "Parameters": {"v.$": "$.missing"},
              "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "S"}], "End": True},
        "S": {"Type": "Succeed"},
    })  # fmt: skip
    assert run(d, {}).error == "States.Runtime"


def test_a_handler_exception_becomes_task_failed() -> None:
    def handler(call: TaskCall) -> Any:
        raise KeyError("boom")

    result = run(machine({"T": {"Type": "Task", "Resource": "r", "End": True}}), {}, handler)
    assert result.error == "States.TaskFailed" and "boom" in str(result.cause)


CHOICE = machine({
    "C": {"Type": "Choice", "Default": "Other", "Choices": [
        {"And": [{"Variable": "$.n", "NumericGreaterThanEquals": 10},
                 {"Variable": "$.s", "StringMatches": "log-*.txt"}], "Next": "Big"},
        {"Or": [{"Variable": "$.flag", "BooleanEquals": True},
                {"Not": {"Variable": "$.opt", "IsPresent": True}}], "Next": "Flag"},
        {"Variable": "$.n", "NumericLessThanPath": "$.limit", "Next": "Small"},
        {"Variable": "$.t", "TimestampGreaterThan": "2020-01-01T00:00:00Z", "Next": "Late"},
        {"Variable": "$.s", "IsString": False, "Next": "NotString"}]},
    "Big": {"Type": "Pass", "Result": "big", "End": True},
    "Flag": {"Type": "Pass", "Result": "flag", "End": True},
    "Small": {"Type": "Pass", "Result": "small", "End": True},
    "Late": {"Type": "Pass", "Result": "late", "End": True},
    "NotString": {"Type": "Pass", "Result": "not-string", "End": True},
    "Other": {"Type": "Pass", "Result": "other", "End": True},
})  # fmt: skip


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"n": 10, "s": "log-1.txt", "opt": 1}, "big"),
        ({"n": 10, "s": "log-1.csv", "opt": 1, "flag": True}, "flag"),
        ({"n": 1, "s": "x", "flag": False}, "flag"),  # $.opt absent
        ({"n": 1, "s": "x", "flag": 0, "opt": 1, "limit": 5}, "small"),
        (
            {"n": 9, "s": "x", "flag": 0, "opt": 1, "limit": 5, "t": "2024-05-01T10:00:00.5Z"},
            "late",
        ),
        (
            {"n": 9, "s": 3, "flag": 0, "opt": 1, "limit": 5, "t": "1999-01-01T00:00:00Z"},
            "not-string",
        ),
        (
            {"n": "10", "s": "x", "flag": 0, "opt": 1, "limit": 50, "t": "no"},
            "other",
        ),  # types differ
    ],
)
def test_choice_rules(data: dict[str, Any], expected: str) -> None:
    assert run(CHOICE, data).output == expected


def test_choice_with_no_match_and_no_default_fails() -> None:
    rule = {"Variable": "$.n", "NumericEquals": 1, "Next": "S"}
    d = machine({"C": {"Type": "Choice", "Choices": [rule]}, "S": {"Type": "Succeed"}})
    assert run(d, {"n": 2}).error == "States.NoChoiceMatched"


def test_a_choice_variable_that_is_absent_is_a_runtime_error() -> None:
    rule = {"Variable": "$.n", "NumericEquals": 1, "Next": "S"}
    d = machine(
        {"C": {"Type": "Choice", "Choices": [rule], "Default": "S"}, "S": {"Type": "Succeed"}}
    )
    result = run(d, {})
    assert result.error == "States.Runtime"
    assert result.cause == (  # AWS's recorded wording (test_local_differential.MOTO_IS_WRONG)
        "An error occurred while executing the state 'C' (entered at the event id #2). "
        "Invalid path: The choice state's condition path references an undefined value."
    )


def test_wait_seconds_path_is_scaled() -> None:
    d = machine(
        {
            "W": {"Type": "Wait", "SecondsPath": "$.s", "Next": "V"},
            "V": {"Type": "Wait", "Seconds": 10, "End": True},
        }
    )
    result = run(d, {"s": 30}, time_scale=0.1)
    assert result.status == "SUCCEEDED" and result.sleeps == pytest.approx([3.0, 1.0])


def test_parallel_and_map() -> None:
    d = machine({
        "Par": {"Type": "Parallel", "Next": "Map", "ResultPath": "$.par", "Branches": [
            machine({"A": {"Type": "Pass", "Parameters": {"a.$": "$.k"}, "End": True}}),
            machine({"B": {"Type": "Pass", "Result": 2, "End": True}})]},
        "Map": {"Type": "Map", "ItemsPath": "$.items", "ResultPath": "$.mapped",
                "ItemSelector": {"i.$": "$$.Map.Item.Index", "v.$": "$$.Map.Item.Value",
                                 "k.$": "$.k"},
                "ItemProcessor": machine({"Double": {"Type": "Pass", "Parameters": {
                    "out.$": "States.MathAdd($.v, $.v)", "i.$": "$.i"}, "End": True}}),
                "End": True},
    })  # fmt: skip
    out = run(d, {"k": "K", "items": [1, 5]}).output
    assert out["par"] == [{"a": "K"}, 2]
    assert out["mapped"] == [{"out": 2, "i": 0}, {"out": 10, "i": 1}]


def test_intrinsic_failure_is_its_own_error() -> None:
    d = machine({"P": {"Type": "Pass", "Parameters": {"x.$": "States.ArrayGetItem($.a, 3)"},
                       "End": True}})  # fmt: skip
    assert run(d, {"a": [1]}).error == "States.IntrinsicFailure"


def test_state_machine_timeout() -> None:
    d = machine({"T": {"Type": "Task", "Resource": "r", "Next": "T2"},
                 "T2": {"Type": "Pass", "End": True}}, TimeoutSeconds=1)  # fmt: skip
    result = run(d, {}, lambda call: time.sleep(1.05))
    assert result.status == "TIMED_OUT" and result.states == ["T"]


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        (machine({"A": {"Type": "Pass", "Next": "Nowhere"}}), "unknown state 'Nowhere'"),
        (machine({"A": {"Type": "Magic", "End": True}}), "unknown Type"),
        (machine({"A": {"Type": "Pass"}}), "needs Next or End"),
        # JSONata runs (tests/local/test_local_jsonata.py); a language ASL lacks does not.
        (
            {"QueryLanguage": "JMESPath", **machine({"A": {"Type": "Succeed"}})},
            "QueryLanguage 'JMESPath'; expected JSONPath or JSONata",
        ),
        (machine({"A": {"Type": "Pass", "Assign": {}, "End": True}}), "Assign"),
        (
            machine(
                {
                    "A": {
                        "Type": "Choice",
                        "Choices": [
                            {"Variable": "$.x", "IsNull": True, "Assign": {"y": 1}, "Next": "B"}
                        ],
                        "Default": "B",
                    },
                    "B": {"Type": "Succeed"},
                }
            ),
            "state 'A': Assign is not supported locally",
        ),
    ],
)
def test_invalid_or_unsupported_definitions_are_refused(
    definition: dict[str, Any], message: str
) -> None:
    with pytest.raises(DefinitionError, match=message):
        Interpreter(definition, lambda call: None)
