"""Conformance with the AWS Step Functions developer guide: each case is one of the guide's own
examples (definition, input and the result the page documents), run by the local interpreter.

Pages (https://docs.aws.amazon.com/step-functions/latest/dg/<page>; the same text lives in
github.com/awsdocs/aws-step-functions-developer-guide, doc_source/<page>.md):
intrinsic-functions.html (every intrinsic), input-output-inputpath-params.html (InputPath,
Parameters, ResultSelector), input-output-resultpath.html, input-output-outputpath.html,
input-output-contextobject.html, amazon-states-language-map-state.html,
amazon-states-language-parallel-state.html, amazon-states-language-pass-state.html,
amazon-states-language-fail-state.html, concepts-error-handling.html.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import pytest

from mlstack.local.asl import Interpreter, StatesError, TaskCall

DG = "https://docs.aws.amazon.com/step-functions/latest/dg/"
INTRINSICS = DG + "intrinsic-functions.html"
ARRAY = [1, 2, 3, 4, 5, 6, 7, 8, 9]


class Case(NamedTuple):
    page: str
    states: dict[str, Any]
    data: Any
    expected: Any  # the execution's output, or ("FAILED", error, cause)


def pass_with(parameters: dict[str, Any]) -> dict[str, Any]:
    return {"P": {"Type": "Pass", "Parameters": parameters, "End": True}}


def intrinsic(expr: str, data: Any, expected: Any, key: str = "value") -> Case:
    return Case(INTRINSICS, pass_with({f"{key}.$": expr}), data, {key: expected})


INTRINSIC_CASES = {
    "Format": intrinsic(
        "States.Format('Hello, my name is {}.', $.name)", {"name": "Arnav"},
        "Hello, my name is Arnav.",
    ),
    "Format-template-path": intrinsic(
        "States.Format($.template, $.name)",
        {"name": "Arnav", "template": "Hello, my name is {}."}, "Hello, my name is Arnav.",
    ),
    "Format-escapes": intrinsic(
        r"States.Format('Welcome to {} {}\'s playlist.', $.firstName, $.lastName)",
        {"firstName": "John", "lastName": "Doe"}, "Welcome to John Doe's playlist.",
    ),
    "StringToJson": intrinsic(
        "States.StringToJson($.escapedJsonString)", {"escapedJsonString": '{"foo": "bar"}'},
        {"foo": "bar"},
    ),
    "JsonToString": intrinsic(
        "States.JsonToString($.unescapedJson)", {"unescapedJson": {"foo": "bar"}},
        '{"foo":"bar"}',
    ),
    "Array": intrinsic("States.Array($.Id)", {"Id": 123456}, [123456], key="BuildId"),
    "ArrayPartition": intrinsic(
        "States.ArrayPartition($.inputArray,4)", {"inputArray": ARRAY},
        [[1, 2, 3, 4], [5, 6, 7, 8], [9]], key="inputArray",
    ),
    "ArrayContains": intrinsic(
        "States.ArrayContains($.inputArray, $.lookingFor)",
        {"inputArray": ARRAY, "lookingFor": 5}, True, key="contains",
    ),
    "ArrayRange": intrinsic("States.ArrayRange(1, 9, 2)", {}, [1, 3, 5, 7, 9], key="array"),
    "ArrayGetItem": intrinsic(
        "States.ArrayGetItem($.inputArray, $.index)", {"inputArray": ARRAY, "index": 5}, 6,
        key="item",
    ),
    "ArrayLength": intrinsic(
        "States.ArrayLength($.inputArray)", {"inputArray": ARRAY}, 9, key="length"
    ),
    "ArrayUnique": intrinsic(
        "States.ArrayUnique($.inputArray)", {"inputArray": [1, 2, 3, 3, 3, 3, 3, 3, 4]},
        [1, 2, 3, 4], key="unique",
    ),
    "Base64Encode": intrinsic(
        "States.Base64Encode($.input)", {"input": "Data to encode"}, "RGF0YSB0byBlbmNvZGU=",
        key="base64",
    ),
    "Base64Decode": intrinsic(
        "States.Base64Decode($.base64)", {"base64": "RGF0YSB0byBlbmNvZGU="}, "Data to encode",
        key="data",
    ),
    "Hash": intrinsic(
        "States.Hash($.Data, $.Algorithm)", {"Data": "input data", "Algorithm": "SHA-1"},
        "aaff4a450a104cd177d28d18d74485e8cae074b7", key="output",
    ),
    "JsonMerge": intrinsic(
        "States.JsonMerge($.json1, $.json2, false)",
        {"json1": {"a": {"a1": 1, "a2": 2}, "b": 2}, "json2": {"a": {"a3": 1, "a4": 2}, "c": 3}},
        {"a": {"a3": 1, "a4": 2}, "b": 2, "c": 3}, key="output",
    ),
    "MathAdd": intrinsic(
        "States.MathAdd($.value1, $.step)", {"value1": 111, "step": -1}, 110, key="value1"
    ),
    "StringSplit": intrinsic(
        "States.StringSplit($.inputString, $.splitter)",
        {"inputString": "1,2,3,4,5", "splitter": ","}, ["1", "2", "3", "4", "5"], key="array",
    ),
    "StringSplit-several-delimiters": intrinsic(
        "States.StringSplit($.inputString, $.splitter)",
        {"inputString": "This.is+a,test=string", "splitter": ".+,="},
        ["This", "is", "a", "test", "string"], key="array",
    ),
}  # fmt: skip

GREETING = {
    "comment": "This is a test of the input and output of a Task state.",
    "details": "Default example",
    "who": "AWS Step Functions",
}
HELLO = "Hello, AWS Step Functions!"


def hello_task(**fields: Any) -> dict[str, Any]:
    """The guide's "Creating a Lambda State Machine" function: it answers HELLO."""
    return {"T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:"
                  "HelloFunction", "End": True, **fields}}  # fmt: skip


SHIPPED = [
    {"prod": "R31", "dest-code": 9511, "quantity": 1344},
    {"prod": "S39", "dest-code": 9511, "quantity": 40},
    {"prod": "R31", "dest-code": 9833, "quantity": 12},
    {"prod": "R40", "dest-code": 9860, "quantity": 887},
    {"prod": "R40", "dest-code": 9511, "quantity": 1220},
]
SHIPMENT = {"ship-date": "2016-03-14T01:59:00Z",
            "detail": {"delivery-partner": "UQS", "shipped": SHIPPED}}  # fmt: skip
ITERATOR = {"StartAt": "Validate", "States": {"Validate": {"Type": "Pass", "End": True}}}
EMR_RESULT = {
    "resourceType": "elasticmapreduce",
    "resource": "createCluster.sync",
    "output": {
        "SdkHttpMetadata": {"HttpHeaders": {"Content-Length": "1112"}, "HttpStatusCode": 200},
        "SdkResponseMetadata": {"RequestId": "6b8c1d4c-9cd2-4fb7-b8a5-fd9e4a9b2a1e"},
        "ClusterId": "AKIAIOSFODNN7EXAMPLE",
    },
}

PROCESSING_CASES = {
    "InputPath": Case(
        DG + "input-output-inputpath-params.html",
        {"P": {"Type": "Pass", "InputPath": "$.dataset2", "End": True}},
        {"comment": "Example for InputPath.", "dataset1": {"val1": 1, "val2": 2, "val3": 3},
         "dataset2": {"val1": "a", "val2": "b", "val3": "c"}},
        {"val1": "a", "val2": "b", "val3": "c"},
    ),
    "Parameters": Case(
        DG + "input-output-inputpath-params.html",
        pass_with({"comment": "Selecting what I care about.",
                   "MyDetails": {"size.$": "$.product.details.size",
                                 "exists.$": "$.product.availability", "StaticValue": "foo"}}),
        {"comment": "Example for Parameters.",
         "product": {"details": {"color": "blue", "size": "small", "material": "cotton"},
                     "availability": "in stock", "sku": "2317", "cost": "$23"}},
        {"comment": "Selecting what I care about.",
         "MyDetails": {"size": "small", "exists": "in stock", "StaticValue": "foo"}},
    ),
    "ResultSelector": Case(
        DG + "input-output-inputpath-params.html",
        {"T": {"Type": "Task", "Resource": "arn:aws:states:::elasticmapreduce:createCluster.sync",
               "ResultSelector": {"ClusterId.$": "$.output.ClusterId",
                                  "ResourceType.$": "$.resourceType"},
               "ResultPath": "$.EMROutput", "End": True}},
        {"in": 1},
        {"in": 1, "EMROutput": {"ClusterId": "AKIAIOSFODNN7EXAMPLE",
                                "ResourceType": "elasticmapreduce"}},
    ),
    "ResultPath-default-replaces-input": Case(
        DG + "input-output-resultpath.html", hello_task(), GREETING, HELLO
    ),
    "ResultPath-includes-result": Case(
        DG + "input-output-resultpath.html", hello_task(ResultPath="$.taskresult"), GREETING,
        {**GREETING, "taskresult": HELLO},
    ),
    "ResultPath-child-node": Case(
        DG + "input-output-resultpath.html", hello_task(ResultPath="$.strings.lambdaresult"),
        {"comment": "An input comment.",
         "strings": {"string1": "foo", "string2": "bar", "string3": "baz"},
         "who": "AWS Step Functions"},
        {"comment": "An input comment.",
         "strings": {"string1": "foo", "string2": "bar", "string3": "baz", "lambdaresult": HELLO},
         "who": "AWS Step Functions"},
    ),
    "ResultPath-updates-node": Case(
        DG + "input-output-resultpath.html", hello_task(ResultPath="$.comment"), GREETING,
        {**GREETING, "comment": HELLO},
    ),
    "ResultPath-null-discards-result": Case(
        DG + "input-output-resultpath.html", hello_task(ResultPath=None), GREETING, GREETING
    ),
    "ResultPath-in-Catch": Case(
        DG + "input-output-resultpath.html",
        {"P": {"Type": "Parallel",
               "Branches": [{"StartAt": "F", "States": {"F": {"Type": "Fail",
                                                              "Error": "Error here"}}}],
               "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "NextTask",
                          "ResultPath": "$.error"}], "End": True},
         "NextTask": {"Type": "Pass", "End": True}},
        {"foo": "bar"}, {"foo": "bar", "error": {"Error": "Error here"}},
    ),
    "OutputPath": Case(
        DG + "input-output-outputpath.html",
        {"P": {"Type": "Pass", "OutputPath": "$.Payload", "End": True}},
        {"ExecutedVersion": "$LATEST", "Payload": {"foo": "bar"}, "StatusCode": 200},
        {"foo": "bar"},
    ),
    "Pass-Result-ResultPath": Case(
        DG + "amazon-states-language-pass-state.html",
        {"No-op": {"Type": "Pass",
                   "Result": {"x-datum": 0.381018, "y-datum": 622.2269926397355},
                   "ResultPath": "$.coords", "End": True}},
        {"georefOf": "Home"},
        {"georefOf": "Home", "coords": {"x-datum": 0.381018, "y-datum": 622.2269926397355}},
    ),
    "Context-Map-Item": Case(
        DG + "input-output-contextobject.html",
        {"ExampleMapState": {"Type": "Map",
                             "Parameters": {"ContextIndex.$": "$$.Map.Item.Index",
                                            "ContextValue.$": "$$.Map.Item.Value"},
                             "Iterator": {"StartAt": "TestPass",
                                          "States": {"TestPass": {"Type": "Pass",
                                                                  "End": True}}},
                             "End": True}},
        [{"who": "bob"}, {"who": "meg"}, {"who": "joe"}],
        [{"ContextValue": {"who": "bob"}, "ContextIndex": 0},
         {"ContextValue": {"who": "meg"}, "ContextIndex": 1},
         {"ContextValue": {"who": "joe"}, "ContextIndex": 2}],
    ),
    "Context-Execution": Case(
        DG + "input-output-contextobject.html",
        pass_with({"MessageBody": {"From": "YVR", "To": "SEA",
                                   "Execution.$": "$$.Execution.Id"}}),
        {}, {"MessageBody": {"From": "YVR", "To": "SEA", "Execution": (
            "arn:aws:states:us-east-1:123456789012:execution:stateMachineName:executionName")}},
    ),
    "Map-ItemsPath-ResultPath": Case(
        DG + "amazon-states-language-map-state.html",
        {"Validate-All": {"Type": "Map", "InputPath": "$.detail", "ItemsPath": "$.shipped",
                          "MaxConcurrency": 0, "Iterator": ITERATOR,
                          "ResultPath": "$.detail.shipped", "End": True}},
        SHIPMENT, SHIPMENT,  # each iteration (a Pass here) answers its item unchanged
    ),
    "Map-Parameters": Case(
        DG + "amazon-states-language-map-state.html",
        {"Validate-All": {"Type": "Map", "InputPath": "$.detail", "ItemsPath": "$.shipped",
                          "MaxConcurrency": 0, "ResultPath": "$.detail.shipped",
                          "Parameters": {"parcel.$": "$$.Map.Item.Value",
                                         "courier.$": "$.delivery-partner"},
                          "Iterator": ITERATOR, "End": True}},
        SHIPMENT,
        {**SHIPMENT, "detail": {"delivery-partner": "UQS",
                                "shipped": [{"parcel": s, "courier": "UQS"} for s in SHIPPED]}},
    ),
    "Parallel-output-is-an-array": Case(
        DG + "amazon-states-language-parallel-state.html",
        {"Parallel": {"Type": "Parallel", "Branches": [
            {"StartAt": "Add", "States": {"Add": {"Type": "Task", "End": True,
             "Resource": "arn:aws:states:us-east-1:123456789012:activity:Add"}}},
            {"StartAt": "Subtract", "States": {"Subtract": {"Type": "Task", "End": True,
             "Resource": "arn:aws:states:us-east-1:123456789012:activity:Subtract"}}}],
            "End": True}},
        {"a": 3, "b": 2}, [5, 1],
    ),
    "Fail": Case(
        DG + "amazon-states-language-fail-state.html",
        {"FailState": {"Type": "Fail", "Cause": "Invalid response.", "Error": "ErrorA"}},
        {}, ("FAILED", "ErrorA", "Invalid response."),
    ),
    "Catch-falls-back": Case(
        DG + "concepts-error-handling.html",
        {"HelloWorld": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:"
                        "function:FailFunction",
                        "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "CatchAllFallback"}],
                        "End": True},
         "CatchAllFallback": {"Type": "Pass", "Result": "This is a fallback from any error code",
                              "End": True}},
        {}, "This is a fallback from any error code",
    ),
    "Retry-then-Catch-custom-error": Case(
        DG + "concepts-error-handling.html",
        {"HelloWorld": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:"
                        "function:FailFunction",
                        "Retry": [{"ErrorEquals": ["CustomError"], "IntervalSeconds": 1,
                                   "MaxAttempts": 2, "BackoffRate": 2.0}],
                        "Catch": [{"ErrorEquals": ["CustomError"],
                                   "Next": "CustomErrorFallback"}], "End": True},
         "CustomErrorFallback": {"Type": "Pass",
                                 "Result": "This is a fallback from a custom Lambda function "
                                           "exception", "End": True}},
        {}, "This is a fallback from a custom Lambda function exception",
    ),
    "States.Runtime-is-not-caught-by-States.ALL": Case(
        DG + "concepts-error-handling.html",
        {"P": {"Type": "Parallel",
               "Branches": [{"StartAt": "B", "States": {"B": {"Type": "Pass",
                                                              "OutputPath": "$.nope",
                                                              "End": True}}}],
               "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}], "End": True},
         "Caught": {"Type": "Succeed"}},
        {}, ("FAILED", "States.Runtime", None),
    ),
}  # fmt: skip


def handler(call: TaskCall) -> Any:
    """The guide's functions: HelloFunction answers its greeting, FailFunction raises
    CustomError, the Add/Subtract activities compute, createCluster.sync answers its result."""
    name = call.resource.rsplit(":", 1)[-1]
    if name == "HelloFunction":
        return HELLO
    if name == "FailFunction":
        raise StatesError("CustomError", "This is a custom error!")
    if name in ("Add", "Subtract"):
        a, b = call.parameters["a"], call.parameters["b"]
        return a + b if name == "Add" else a - b
    if name == "createCluster.sync":
        return EMR_RESULT
    raise AssertionError(call.resource)


@pytest.mark.parametrize(
    "case", [*INTRINSIC_CASES.values(), *PROCESSING_CASES.values()],
    ids=[*INTRINSIC_CASES, *PROCESSING_CASES],
)  # fmt: skip
def test_documented_example(case: Case) -> None:
    definition = {"StartAt": next(iter(case.states)), "States": case.states}
    interp = Interpreter(
        definition,
        handler,
        sleep=lambda s: None,
        state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:stateMachineName",
    )
    result = interp.execute(case.data, name="executionName")
    if isinstance(case.expected, tuple):
        status, error, cause = case.expected
        assert (result.status, result.error) == (status, error), case.page
        if cause is not None:
            assert result.cause == cause, case.page
    else:
        assert result.status == "SUCCEEDED", (case.page, result.error, result.cause)
        assert result.output == case.expected, case.page


def test_documented_math_random_and_uuid() -> None:
    """intrinsic-functions.html: States.MathRandom(start, end) is in [start, end); a seed
    repeats its draw; States.UUID is a version 4 UUID."""
    states = pass_with({"random.$": "States.MathRandom($.start, $.end)",
                        "seeded.$": "States.MathRandom($.start, $.end, 7)",
                        "again.$": "States.MathRandom($.start, $.end, 7)",
                        "uuid.$": "States.UUID()"})  # fmt: skip
    output = (
        Interpreter({"StartAt": "P", "States": states}, handler)
        .execute({"start": 1, "end": 999})
        .output
    )
    assert 1 <= output["random"] < 999 and output["seeded"] == output["again"]
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", output["uuid"]
    )


def test_every_intrinsic_function_has_a_documented_case() -> None:
    from mlstack.local.intrinsics import FUNCTION_NAMES

    covered = {re.match(r"States\.(\w+)", c.states["P"]["Parameters"][k]).group(0)  # type: ignore[union-attr]
               for c in INTRINSIC_CASES.values() for k in c.states["P"]["Parameters"]}  # fmt: skip
    assert set(FUNCTION_NAMES) - covered == {"States.MathRandom", "States.UUID"}
