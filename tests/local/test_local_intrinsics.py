"""Intrinsic functions: the parser (nesting, quoting, paths) and every function."""

from __future__ import annotations

import hashlib
import re

import pytest

from mlstack.local.intrinsics import FUNCTION_NAMES, IntrinsicError, evaluate

DATA = {"run_id": "abc", "n": 3, "items": [1, 2, 3], "a": {"x": 1, "y": 2}, "b": {"y": 3}}
CTX = {"Execution": {"Name": "exec-1", "RedriveCount": 0}, "State": {"RetryCount": 2}}


def ev(text: str) -> object:
    return evaluate(text, DATA, CTX)


def test_the_whole_documented_set_is_there() -> None:
    assert len(FUNCTION_NAMES) == 18
    assert "States.Format" in FUNCTION_NAMES and "States.UUID" in FUNCTION_NAMES


def test_format_with_paths_and_context() -> None:
    text = "States.Format('p-{}-t{}-{}', $.run_id, $$.Execution.RedriveCount, $$.State.RetryCount)"
    assert ev(text) == "p-abc-t0-2"


def test_format_escapes_braces_and_quotes() -> None:
    assert ev(r"States.Format('\{{}\} it\'s', $.n)") == "{3} it's"


def test_format_argument_count_must_match() -> None:
    with pytest.raises(IntrinsicError, match="placeholder"):
        ev("States.Format('{} {}', $.n)")


def test_nested_calls() -> None:
    assert ev("States.ArrayGetItem(States.StringSplit('arn:x/model-a', '/'), 1)") == "model-a"
    assert ev("States.JsonToString(States.JsonMerge($.a, $.b, false))") == '{"x":1,"y":3}'


def test_hash_is_md5_hex_of_the_string() -> None:
    assert ev("States.Hash($$.Execution.Name, 'MD5')") == hashlib.md5(b"exec-1").hexdigest()
    assert ev("States.Hash('a', 'SHA-256')") == hashlib.sha256(b"a").hexdigest()


def test_json_merge_is_shallow_only() -> None:
    with pytest.raises(IntrinsicError, match="deep"):
        ev("States.JsonMerge($.a, $.b, true)")


def test_arrays() -> None:
    assert ev("States.Array(1, 'two', $.n, null)") == [1, "two", 3, None]
    assert ev("States.ArrayPartition($.items, 2)") == [[1, 2], [3]]
    assert ev("States.ArrayContains($.items, 2)") is True
    assert ev("States.ArrayRange(1, 9, 2)") == [1, 3, 5, 7, 9]
    assert ev("States.ArrayLength($.items)") == 3
    assert ev("States.ArrayUnique(States.Array(1, 1, 2))") == [1, 2]
    with pytest.raises(IntrinsicError, match="out of range"):
        ev("States.ArrayGetItem($.items, 5)")


def test_strings_encoding_math_and_uuid() -> None:
    assert ev("States.StringSplit('a,b;;c', ',;')") == ["a", "b", "c"]
    assert ev("States.Base64Decode(States.Base64Encode('hé'))") == "hé"
    assert ev("States.StringToJson('{\"k\": [1]}')") == {"k": [1]}
    assert ev("States.MathAdd($.n, -5)") == -2
    assert 1 <= ev("States.MathRandom(1, 10, 7)") < 10  # type: ignore[operator]
    assert re.fullmatch(r"[0-9a-f-]{36}", str(ev("States.UUID()")))


@pytest.mark.parametrize(
    "text",
    [
        "States.Nope(1)",
        "States.Format('x'",
        "States.ArrayLength($.missing)",
        "$.x",
        "States.UUID(1)",
    ],
)
def test_errors_name_the_problem(text: str) -> None:
    with pytest.raises(IntrinsicError):
        ev(text)
