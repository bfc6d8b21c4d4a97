"""JSONata states in the ASL interpreter, as the Amazon States Language specification ("JSONata
Concepts", "JSONata Catchers", "JSONata Choice Rules", "Table of State Types and Fields
(JSONata)") and the Step Functions developer guide ("Transforming data with JSONata in Step
Functions") define them; expected outputs are the specification's own examples where it has
one."""

from __future__ import annotations

from typing import Any

import pytest

from mlstack.local.asl import DefinitionError, Interpreter, StatesError, TaskCall


def run(definition: dict[str, Any], data: Any = None, handler: Any = None) -> Any:
    calls: list[TaskCall] = []

    def record(call: TaskCall) -> Any:
        calls.append(call)
        return (handler or (lambda c: c.parameters))(call)

    result = Interpreter(definition, record, sleep=lambda s: None).execute(data, name="exec-1")
    result.calls = calls  # type: ignore[attr-defined]
    return result


# The specification's "JSONata Choice Rules" example, less its Assign fields (variables are not
# supported locally); its second rule reads an unassigned $value, which is undefined.
DISPATCH_EVENT = {
    "QueryLanguage": "JSONata",
    "StartAt": "DispatchEvent",
    "States": {
        "DispatchEvent": {
            "Type": "Choice",
            "Choices": [
                {"Condition": "{% $states.input.type != 'Private' %}", "Next": "Public"},
                {
                    "Condition": "{% $exists($value) and $type($value)='number' and $value>=20 "
                    "and $value<30 %}",
                    "Next": "ValueInTwenties",
                },
                {
                    "Condition": "{% $states.input.rating >= $states.input.auditThreshold %}",
                    "Output": {
                        "excess": "{% $states.input.rating - $states.input.auditThreshold %}"
                    },
                    "Next": "StartAudit",
                },
            ],
            "Default": "RecordEvent",
        },
        **{s: {"Type": "Succeed"} for s in ("Public", "ValueInTwenties", "StartAudit")},
        "RecordEvent": {"Type": "Succeed"},
    },
}


@pytest.mark.parametrize(
    ("data", "path", "output"),
    [
        # "If the third Choice Rule matches, then the state output will be assigned a JSON
        # object with its "excess" field set to the difference".
        (
            {"type": "Private", "rating": 90, "auditThreshold": 70},
            "StartAudit",
            {"excess": 20},
        ),
        # "If no Choice Rules match, ... the state input will be passed through".
        (
            {"type": "Private", "rating": 1, "auditThreshold": 5},
            "RecordEvent",
            {"type": "Private", "rating": 1, "auditThreshold": 5},
        ),
        ({"type": "Public"}, "Public", {"type": "Public"}),
    ],
)
def test_the_specifications_jsonata_choice_runs(data: Any, path: str, output: Any) -> None:
    result = run(DISPATCH_EVENT, data)
    assert result.status == "SUCCEEDED", result.cause
    assert result.states == ["DispatchEvent", path]
    assert result.output == output


def test_a_task_sends_its_arguments_and_outputs_over_its_result() -> None:
    # The specification's "Reserved states variable" example: Output over $states.input,
    # $states.result and $states.context.
    definition = {
        "StartAt": "My Task",
        "States": {
            "My Task": {
                "Type": "Task",
                "QueryLanguage": "JSONata",
                "Resource": "arn:aws:lambda:us-east-1:123456789012:function:HelloWorld",
                "Arguments": {"values": [1, "{% $states.input.two %}", "three"], "static": "$.x"},
                "Output": {
                    "customer": "{% $states.input.customer %}",
                    "resultStatus": "{% $states.result.status %}",
                    "execution": "{% $states.context.Execution.Name %}",
                },
                "End": True,
            }
        },
    }
    result = run(definition, {"customer": "c1", "two": 2}, lambda c: {"status": "ok"})
    assert result.status == "SUCCEEDED", result.cause
    # A string that is no {% %} JSONata string is sent as it is ("not-evaluated" in the guide).
    assert result.calls[0].parameters == {"values": [1, 2, "three"], "static": "$.x"}
    assert result.output == {"customer": "c1", "resultStatus": "ok", "execution": "exec-1"}


def test_without_output_a_task_passes_on_its_result_and_a_pass_state_its_input() -> None:
    definition = {
        "QueryLanguage": "JSONata",
        "StartAt": "T",
        "States": {
            "T": {"Type": "Task", "Resource": "arn:aws:states:::x", "Next": "P"},
            "P": {"Type": "Pass", "End": True},
        },
    }
    result = run(definition, {"in": 1}, lambda c: {"out": 2})
    assert result.output == {"out": 2}


def failing(catch: dict[str, Any]) -> dict[str, Any]:
    return {
        "QueryLanguage": "JSONata",
        "StartAt": "T",
        "States": {
            "T": {
                "Type": "Task",
                "Resource": "arn:aws:states:::x",
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Handled", **catch}],
                "End": True,
            },
            "Handled": {"Type": "Pass", "End": True},
        },
    }


def fail(call: TaskCall) -> Any:
    raise StatesError("Oops", "it broke")


def test_a_catcher_without_output_passes_on_the_error_output() -> None:
    # "JSONata Catchers": "If the "Output" field is not provided, the state output is the Error
    # Output."
    result = run(failing({}), {"in": 1}, fail)
    assert result.states == ["T", "Handled"]
    assert result.output == {"Error": "Oops", "Cause": "it broke"}


def test_a_catchers_output_reads_the_error_output_and_the_input() -> None:
    # The specification's example catcher: {"errorDetails": errorOutput, "input": input}.
    catch = {
        "Output": {"errorDetails": "{% $states.errorOutput %}", "input": "{% $states.input %}"}
    }
    result = run(failing(catch), {"in": 1}, fail)
    assert result.output == {
        "errorDetails": {"Error": "Oops", "Cause": "it broke"},
        "input": {"in": 1},
    }


def test_an_undefined_result_fails_with_query_evaluation_error() -> None:
    # "JSONata Runtime Errors": {% $data.thisFieldDoesNotExist %} is an error; the cause as an
    # execution's ExecutionFailed event words it ("... specified for the field
    # 'Arguments/Input/pushLocation' returned nothing (undefined).").
    definition = failing({})
    definition["States"]["T"]["Arguments"] = {"Input": {"where": "{% $states.input.missing %}"}}
    del definition["States"]["T"]["Catch"]
    result = run(definition, {"in": 1})
    assert result.status == "FAILED"
    assert result.error == "States.QueryEvaluationError"
    assert result.cause == (
        "An error occurred while executing the state 'T' (entered at the event id #2). The "
        "JSONata expression '$states.input.missing' specified for the field "
        "'Arguments/Input/where' returned nothing (undefined)."
    )
    assert result.calls == []


def test_a_type_error_is_a_query_evaluation_error_that_states_all_catches() -> None:
    # "{% $x + $y %}" with a string is a type error; Task states "MAY use a Catcher".
    definition = failing({})
    definition["States"]["T"]["Arguments"] = "{% $states.input.name + 1 %}"
    result = run(definition, {"name": "a"})
    assert result.states == ["T", "Handled"]
    assert result.output["Error"] == "States.QueryEvaluationError"
    assert "'Arguments'" in result.output["Cause"]


def test_json_null_is_a_value_and_undefined_is_left_out_of_an_object() -> None:
    definition = {
        "QueryLanguage": "JSONata",
        "StartAt": "P",
        "States": {
            "P": {
                "Type": "Pass",
                "Output": "{% {'null': $states.input.n, 'gone': $states.input.nothing} %}",
                "End": True,
            }
        },
    }
    assert run(definition, {"n": None}).output == {"null": None}


@pytest.mark.parametrize(
    ("state", "field"),
    [
        ({"Type": "Task", "Resource": "x", "Parameters": {}, "End": True}, "Parameters"),
        ({"Type": "Task", "Resource": "x", "ResultPath": "$.r", "End": True}, "ResultPath"),
        ({"Type": "Pass", "InputPath": "$.a", "End": True}, "InputPath"),
        ({"Type": "Pass", "OutputPath": "$.a", "End": True}, "OutputPath"),
        ({"Type": "Task", "Resource": "x", "ResultSelector": {}, "End": True}, "ResultSelector"),
        (
            {
                "Type": "Task",
                "Resource": "x",
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.e", "Next": "S"}],
                "End": True,
            },
            "ResultPath",
        ),
        (
            {"Type": "Choice", "Choices": [{"Variable": "$.a", "IsNull": True, "Next": "S"}]},
            "Variable",
        ),
    ],
)
def test_a_jsonpath_field_in_a_jsonata_state_is_refused_by_name(
    state: dict[str, Any], field: str
) -> None:
    # Step Functions refuses the definition: "Field '...' is not supported when QueryLanguage
    # is JSONata" (the developer guide's JSONata fields table lists only Arguments and Output).
    definition = {
        "StartAt": "X",
        "States": {"X": {**state, "QueryLanguage": "JSONata"}, "S": {"Type": "Succeed"}},
    }
    with pytest.raises(DefinitionError) as raised:
        Interpreter(definition, lambda c: None)
    assert str(raised.value) == (
        f"state 'X': Field '{field}' is not supported when QueryLanguage is JSONata"
    )


def test_a_jsonata_field_in_a_jsonpath_state_is_refused_by_name() -> None:
    definition = {
        "StartAt": "X",
        "States": {"X": {"Type": "Task", "Resource": "x", "Arguments": {}, "End": True}},
    }
    with pytest.raises(DefinitionError, match="Field 'Arguments' is not supported when "
                       "QueryLanguage is JSONPath"):  # fmt: skip
        Interpreter(definition, lambda c: None)


def test_a_state_may_choose_jsonata_in_a_jsonpath_machine() -> None:
    definition = {
        "StartAt": "Path",
        "States": {
            "Path": {"Type": "Pass", "Parameters": {"x.$": "$.a"}, "Next": "Ata"},
            "Ata": {
                "Type": "Pass",
                "QueryLanguage": "JSONata",
                "Output": "{% $states.input.x * 2 %}",
                "End": True,
            },
        },
    }
    assert run(definition, {"a": 21}).output == 42


def test_a_jsonata_map_takes_items_and_an_item_selector() -> None:
    definition = {
        "QueryLanguage": "JSONata",
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "Items": "{% $states.input.xs %}",
                "ItemSelector": {
                    "value": "{% $states.context.Map.Item.Value %}",
                    "index": "{% $states.context.Map.Item.Index %}",
                },
                "ItemProcessor": {
                    "StartAt": "P",
                    "States": {"P": {"Type": "Pass", "End": True}},
                },
                "Output": "{% $count($states.result) %}",
                "End": True,
            }
        },
    }
    result = run(definition, {"xs": ["a", "b", "c"]})
    assert result.status == "SUCCEEDED", result.cause
    assert result.output == 3


def test_a_jsonata_fail_state_evaluates_its_error_and_cause() -> None:
    definition = {
        "QueryLanguage": "JSONata",
        "StartAt": "F",
        "States": {"F": {"Type": "Fail", "Error": "Bad", "Cause": "{% $states.input.why %}"}},
    }
    result = run(definition, {"why": "because"})
    assert (result.status, result.error, result.cause) == ("FAILED", "Bad", "because")


def test_an_integer_past_two_to_the_53_is_read_as_jsonatas_double() -> None:
    # JSONata's numbers are IEEE 754 doubles (the reference JavaScript engine: 2**53 + 1 reads
    # as 2**53); the differential test found jsonata-python keeping Python's exact integer.
    definition = {
        "QueryLanguage": "JSONata",
        "StartAt": "P",
        "States": {"P": {"Type": "Pass", "Output": "{% $states.input.n %}", "End": True}},
    }
    assert run(definition, {"n": 2**53 + 1}).output == 2**53
    assert run(definition, {"n": 2**53 - 1}).output == 2**53 - 1
