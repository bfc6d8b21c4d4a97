"""Step Functions' own limits, locally, with the numbers and texts of AWS.

"Step Functions service quotas" (developer guide): a task's, state's or execution's input or
output is at most 256 KiB (262,144 bytes) as UTF-8 JSON text; an execution's history at most
25,000 events. "Avoid reaching the history quota": when event 25,000 is not ExecutionSucceeded,
the execution fails. The texts are those AWS records: "The state/task '<name>' returned a result
with a size exceeding the maximum number of bytes service limit." (States.DataLimitExceeded,
awslabs/aws-securityhub-multiaccount-scripts issue 63) and "The execution reached the maximum
number of history events (25000)." (States.Runtime, loads/ardere issue 86).
"""

from __future__ import annotations

from typing import Any

from mlstack.local.asl import ExecutionResult, Interpreter, TaskCall

KIB_256 = 256 * 1024


def execute(states: dict[str, Any], data: Any = None, handler: Any = None) -> ExecutionResult:
    definition = {"StartAt": next(iter(states)), "States": states}
    interp = Interpreter(definition, handler or (lambda c: c.parameters), sleep=lambda s: None)
    return interp.execute(data if data is not None else {}, name="exec-1")


def big(total_bytes: int) -> dict[str, str]:
    """A JSON object whose compact UTF-8 text is exactly ``total_bytes`` long."""
    return {"x": "a" * (total_bytes - len('{"x":""}'))}


def test_a_task_result_over_256_kib_fails_with_aws_cause() -> None:
    result = execute({"T": {"Type": "Task", "Resource": "arn:x", "End": True}},
                     handler=lambda c: big(KIB_256 + 1))  # fmt: skip
    assert result.status == "FAILED"
    assert result.error == "States.DataLimitExceeded"
    assert result.cause == (
        "The state/task 'T' returned a result with a size exceeding the maximum number of "
        "bytes service limit."
    )


def test_a_task_result_of_exactly_256_kib_passes() -> None:
    result = execute({"T": {"Type": "Task", "Resource": "arn:x", "ResultPath": None,
                            "End": True}}, handler=lambda c: big(KIB_256))  # fmt: skip
    assert result.status == "SUCCEEDED", result.cause


def test_a_multibyte_result_counts_its_utf8_bytes() -> None:
    # 'é' is 2 bytes in UTF-8: 131,069 of them (+ the 8 bytes around) pass 256 KiB.
    value = {"x": "é" * 131_069}
    result = execute({"T": {"Type": "Task", "Resource": "arn:x", "End": True}},
                     handler=lambda c: value)  # fmt: skip
    assert result.error == "States.DataLimitExceeded"


def test_states_all_does_not_catch_it_but_its_name_does() -> None:
    def states(errors: list[str]) -> dict[str, Any]:
        return {
            "T": {"Type": "Task", "Resource": "arn:x", "End": True,
                  "Catch": [{"ErrorEquals": errors, "ResultPath": "$.error", "Next": "Caught"}]},
            "Caught": {"Type": "Pass", "Result": "caught", "End": True},
        }  # fmt: skip

    def handler(c: TaskCall) -> Any:
        return big(KIB_256 + 1)

    assert execute(states(["States.ALL"]), handler=handler).error == "States.DataLimitExceeded"
    caught = execute(states(["States.DataLimitExceeded"]), handler=handler)
    assert caught.status == "SUCCEEDED" and caught.output == "caught"


def test_a_state_output_over_256_kib_fails() -> None:
    result = execute({"P": {"Type": "Pass", "Result": big(KIB_256 + 10), "End": True}})
    assert result.error == "States.DataLimitExceeded"
    assert "'P'" in str(result.cause)


def loop(iterations: int) -> dict[str, Any]:
    """Pass (count + 1) -> Choice (count < iterations?) -> Pass ..., then Succeed: four events
    an iteration (Entered, Exited of each), ExecutionStarted, and two of the Succeed state."""
    return {
        "Count": {"Type": "Pass", "Parameters": {"n.$": "States.MathAdd($.n, 1)"},
                  "Next": "More?"},
        "More?": {"Type": "Choice",
                  "Choices": [{"Variable": "$.n", "NumericLessThan": iterations,
                               "Next": "Count"}],
                  "Default": "Done"},
        "Done": {"Type": "Succeed"},
    }  # fmt: skip


def test_an_execution_ending_at_event_25000_with_success_succeeds() -> None:
    # 1 + 4 * 6249 + 2 = 24,999 events; event 25,000 is ExecutionSucceeded.
    result = execute(loop(6249), {"n": 0})
    assert result.status == "SUCCEEDED", result.cause
    assert result.events == 24_999


def test_an_execution_past_25000_events_fails_as_aws_fails_it() -> None:
    result = execute(loop(6250), {"n": 0})
    assert result.status == "FAILED"
    assert result.error == "States.Runtime"
    assert result.cause == "The execution reached the maximum number of history events (25000)."
    assert result.events == 25_000


def test_no_retry_or_catch_outlives_the_history_limit() -> None:
    states = {
        "Work": {"Type": "Task", "Resource": "arn:x", "Next": "Work",
                 "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 99}],
                 "Catch": [{"ErrorEquals": ["States.ALL", "States.Runtime"], "Next": "Work"}]},
    }  # fmt: skip
    result = execute(states, handler=lambda c: {})
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert result.events == 25_000
