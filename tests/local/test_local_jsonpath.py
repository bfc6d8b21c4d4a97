"""The JSONPath subset: reading, wildcards, and ResultPath placement."""

from __future__ import annotations

import pytest

from mlstack.local import jsonpath

DATA = {"a": {"b": [10, 20, {"c": "x"}]}, "odd key": 1}


def test_get_dot_bracket_and_index() -> None:
    assert jsonpath.get(DATA, "$.a.b[1]") == 20
    assert jsonpath.get(DATA, "$['a']['b'][2].c") == "x"
    assert jsonpath.get(DATA, "$['odd key']") == 1
    assert jsonpath.get(DATA, "$") is DATA


def test_wildcards_and_slices_give_lists() -> None:
    assert jsonpath.get(DATA, "$.a.b[*]") == [10, 20, {"c": "x"}]
    assert jsonpath.get(DATA, "$.a.b[0:2]") == [10, 20]
    assert not jsonpath.is_definite("$.a.b[*]") and jsonpath.is_definite("$.a.b[0]")


def test_missing_field_raises() -> None:
    with pytest.raises(jsonpath.PathError, match="'nope'"):
        jsonpath.get(DATA, "$.a.nope")
    assert not jsonpath.exists(DATA, "$.a.nope") and jsonpath.exists(DATA, "$.a.b")


def test_put_creates_objects_and_leaves_the_input_alone() -> None:
    result = jsonpath.put(DATA, "$.new.deep", 5)
    assert result["new"] == {"deep": 5} and "new" not in DATA
    assert jsonpath.put(DATA, "$", 7) == 7
    assert jsonpath.put(DATA, "$.a.b[0]", 0)["a"]["b"][0] == 0


METRICS = {"m": [{"Name": "train:rmse", "Value": 0.1}, {"Name": "validation:rmse", "Value": 0.2}]}


def test_filter_expressions_select_matching_items() -> None:
    assert jsonpath.get(METRICS, "$.m[?(@.Name == 'validation:rmse')].Value") == [0.2]
    assert jsonpath.get(METRICS, '$.m[?(@.Value >= 0.1 && @.Name != "train:rmse")].Name') == [
        "validation:rmse"
    ]
    assert jsonpath.get(METRICS, "$.m[?(@.Value < 0 || @.Name == 'train:rmse')].Value") == [0.1]
    assert jsonpath.get(METRICS, "$.m[?(@.Missing)]") == []
    assert not jsonpath.is_definite("$.m[?(@.Value)]")
