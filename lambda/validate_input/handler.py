"""Execution-input validation Lambda: the training workflow's first state.

Event (built by the state machine definition)::

    {"input": <the execution input>, "schema": <JSON Schema of the accepted input>,
     "rules": {<rule name>: <its settings>}}     # "rules" optional

``rules`` holds the checks across keys that JSON Schema cannot express (``RULES``), each with the
workflow's settings and the defaults of the keys it reads (an input key left out takes its
default, as Load defaults does):

    ``instances_within_shards``: ``{"rows_per_shard": N, "defaults": {"rows": R,
    "training_instance_count": C}}``: ``training_instance_count`` must not exceed the dataset's
    shards, ``ceil(rows / rows_per_shard)`` (the train channel is ShardedByS3Key: a host beyond
    the shard count gets no data). The rule is ``instances_beyond_shards`` of
    ``portable_rules.py`` beside this file, a generated copy of ``mlstack/portable_rules.py``,
    whose function the config check calls too.

    ``source_fractions``: ``{"defaults": {"validation_fraction": V, "test_fraction": T}}``:
    a ``dataset_source``'s two fractions together below 1 (``fractions_leave_no_training``).

The schema is generated at synth time from the pydantic model in ``mlstack/rules.py`` and written
into the definition, so the definition alone decides what a run accepts, in AWS and in local mode.

Returns ``{"valid": true, "message": ""}``, or ``{"valid": false, "message": M, "problems": [...]}``
where ``M`` names every bad key, its value and what is expected (with a "did you mean" for a key
close to an accepted one). The definition routes an invalid input to its failure path (error
``InvalidExecutionInput``, cause ``M``) before any dataset is generated or any job created.

Standard library only. The interpreter covers the JSON Schema subset the model generates
(``SUPPORTED_KEYWORDS``); a schema using anything else is refused with ``SchemaError`` rather
than checked partially.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

# The rules shared with the app: the generated copy beside this file (Lambda puts this directory
# on sys.path; a test or a tool that loads this file by its path may not).
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.append(_HERE)
import portable_rules  # noqa: E402

SUPPORTED_KEYWORDS = frozenset(
    {
        # checked
        "type",
        "enum",
        "const",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "pattern",
        "properties",
        "additionalProperties",
        "required",
        "propertyNames",
        "items",
        "minItems",
        "maxItems",
        "$ref",
        "anyOf",
        # annotations: documentation only
        "$schema",
        "$defs",
        "description",
        "default",
        "examples",
        "title",
    }
)
JSON_TYPES = {
    "object": "object",
    "array": "array",
    "string": "string",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean",
    "null": "null",
}
MAX_LISTED = 16  # longer lists of allowed values are counted, not listed
MAX_VALUE_TEXT = 80


class SchemaError(ValueError):
    """The schema uses a keyword this validator does not implement (a deployment fault)."""


@dataclass(frozen=True)
class Problem:
    key: str  # dotted path; "" for the input itself
    text: str

    def __str__(self) -> str:
        return f"key '{self.key}' {self.text}" if self.key else f"the input {self.text}"


def json_type(value: Any) -> str:
    """The JSON type name of a parsed JSON value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def describe(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    if len(text) > MAX_VALUE_TEXT:
        text = text[: MAX_VALUE_TEXT - 1] + "…"
    return f"{text} ({json_type(value)})"


def _is_type(value: Any, kind: str) -> bool:
    actual = json_type(value)
    return actual == kind or (kind == "number" and actual == "integer")


def _listing(values: list[Any]) -> str:
    if len(values) > MAX_LISTED:
        return f"one of {len(values)} values"
    if len(values) == 1:
        return json.dumps(values[0])
    return "one of " + ", ".join(json.dumps(v) for v in values)


def _number(value: Any) -> str:
    return json.dumps(value)


def expected(schema: dict[str, Any], root: dict[str, Any]) -> str:
    """What a schema accepts, in words (the end of every problem's sentence)."""
    schema = _resolve(schema, root)
    if "const" in schema:
        return json.dumps(schema["const"])
    if "enum" in schema:
        return _listing(list(schema["enum"]))
    if "anyOf" in schema:
        return " or ".join(expected(s, root) for s in schema["anyOf"])
    kind = schema.get("type")
    if kind in ("integer", "number"):
        noun = "an integer" if kind == "integer" else "a number"
        low, high = schema.get("minimum"), schema.get("maximum")
        if low is not None and high is not None:
            return f"{noun} from {_number(low)} to {_number(high)}"
        if low is not None:
            return f"{noun} >= {_number(low)}"
        if high is not None:
            return f"{noun} <= {_number(high)}"
        if "exclusiveMinimum" in schema:
            return f"{noun} > {_number(schema['exclusiveMinimum'])}"
        return noun
    if kind == "string":
        text = "a string"
        if "pattern" in schema:
            text += f" matching {schema['pattern']}"
        elif schema.get("minLength") == 1:
            text = "a non-empty string"
        if schema.get("examples"):
            text += f" such as {json.dumps(schema['examples'][0])}"
        return text
    if kind == "boolean":
        return "true or false"
    if kind == "array":
        least = schema.get("minItems", 0)
        items = expected(schema.get("items", {}), root) if "items" in schema else "values"
        return ("a non-empty list" if least else "a list") + f" of {_plural(items)}"
    if kind == "object":
        if "properties" in schema:
            return "an object with keys " + ", ".join(f"'{k}'" for k in schema["properties"])
        values = schema.get("additionalProperties")
        if isinstance(values, dict):
            return f"an object of {_plural(expected(values, root))}"
        return "an object"
    if kind == "null":
        return "null"
    return "any value"


def _plural(text: str) -> str:
    for article in ("an ", "a "):
        if text.startswith(article):
            return (
                text[len(article) :].replace("string", "strings", 1).replace("object", "objects", 1)
            )
    return text


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/$defs/"):
            raise SchemaError(f"unsupported $ref {ref!r}: only '#/$defs/<name>'")
        schema = root.get("$defs", {})[ref[len("#/$defs/") :]]
    return schema


def _ecma_pattern(pattern: str) -> re.Pattern[str]:
    """A JSON Schema (ECMA-262) pattern in Python: an unescaped ``$`` outside a class means the
    end of the text, which is Python's ``\\Z`` (Python's ``$`` also matches before a final
    newline)."""
    out, escaped, in_class = [], False, False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "[":
            in_class = True
        elif char == "]":
            in_class = False
        elif char == "$" and not in_class:
            out.append(r"\Z")
            continue
        out.append(char)
    return re.compile("".join(out))


def _check_keywords(schema: dict[str, Any]) -> None:
    unknown = sorted(set(schema) - SUPPORTED_KEYWORDS)
    if unknown:
        raise SchemaError(f"unsupported JSON Schema keywords {unknown}")


def validate(
    value: Any, schema: dict[str, Any], root: dict[str, Any], key: str = ""
) -> Iterator[Problem]:
    """Every problem of ``value`` against ``schema`` (``root`` resolves ``$ref``)."""
    _check_keywords(schema)
    schema = _resolve(schema, root)
    _check_keywords(schema)
    if "anyOf" in schema:
        others = [s for s in schema["anyOf"] if s != {"type": "null"}]
        if value is not None and len(others) == 1:  # an optional value: name what is wrong inside
            yield from validate(value, others[0], root, key)
            return
        if not any(not list(validate(value, s, root, key)) for s in schema["anyOf"]):
            yield Problem(key, f"is {describe(value)}; expected {expected(schema, root)}")
        return
    kind = schema.get("type")
    if kind is not None and kind not in JSON_TYPES:
        raise SchemaError(f"unsupported type {kind!r}")
    if kind is not None and not _is_type(value, kind):
        yield Problem(key, f"is {describe(value)}; expected {expected(schema, root)}")
        return
    if ("const" in schema and not _same(value, schema["const"])) or (
        "enum" in schema and not any(_same(value, v) for v in schema["enum"])
    ):
        yield Problem(
            key, f"is {describe(value)}; expected {expected(schema, root)}{_close(value, schema)}"
        )
        return
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not _in_range(value, schema):
            yield Problem(key, f"is {describe(value)}; expected {expected(schema, root)}")
    elif isinstance(value, str):
        if not _string_ok(value, schema):
            yield Problem(key, f"is {describe(value)}; expected {expected(schema, root)}")
    elif isinstance(value, list):
        yield from _validate_array(value, schema, root, key)
    elif isinstance(value, dict):
        yield from _validate_object(value, schema, root, key)


def _close(value: Any, schema: dict[str, Any]) -> str:
    allowed = [v for v in schema.get("enum", []) if isinstance(v, str)]
    close = difflib.get_close_matches(value, allowed, n=1) if isinstance(value, str) else []
    return f" (did you mean {json.dumps(close[0])}?)" if close else ""


def _same(value: Any, allowed: Any) -> bool:
    return json_type(value) == json_type(allowed) and value == allowed


def _in_range(value: float, schema: dict[str, Any]) -> bool:
    return not (
        ("minimum" in schema and value < schema["minimum"])
        or ("maximum" in schema and value > schema["maximum"])
        or ("exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"])
        or ("exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"])
    )


def _string_ok(value: str, schema: dict[str, Any]) -> bool:
    # JSON Schema counts characters (code points), as len() does.
    return not (
        ("minLength" in schema and len(value) < schema["minLength"])
        or ("maxLength" in schema and len(value) > schema["maxLength"])
        or ("pattern" in schema and _ecma_pattern(schema["pattern"]).search(value) is None)
    )


def _validate_array(
    value: list[Any], schema: dict[str, Any], root: dict[str, Any], key: str
) -> Iterator[Problem]:
    if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", len(value)):
        yield Problem(key, f"is {describe(value)}; expected {expected(schema, root)}")
        return
    items = schema.get("items")
    if isinstance(items, dict):
        for index, item in enumerate(value):
            yield from validate(item, items, root, f"{key}[{index}]")


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _validate_object(
    value: dict[str, Any], schema: dict[str, Any], root: dict[str, Any], key: str
) -> Iterator[Problem]:
    properties: dict[str, Any] = schema.get("properties", {})
    additional = schema.get("additionalProperties", True)
    names = schema.get("propertyNames")
    for name in schema.get("required", []):
        if name not in value:
            yield Problem(
                _join(key, name),
                f"is missing; expected {expected(properties.get(name, {}), root)}",
            )
    for name, item in value.items():
        path = _join(key, name)
        if isinstance(names, dict):
            name_problems = list(validate(name, names, root))
            if name_problems:
                yield Problem(path, _unknown_name(name, names, root))
                continue
        if name in properties:
            yield from validate(item, properties[name], root, path)
        elif additional is False:
            yield Problem(path, _unknown_name(name, {"enum": list(properties)}, root))
        elif isinstance(additional, dict):
            yield from validate(item, additional, root, path)


def _unknown_name(name: str, names: dict[str, Any], root: dict[str, Any]) -> str:
    names = _resolve(names, root)
    allowed = [str(n) for n in names.get("enum", [])]
    text = "is not an accepted key"
    close = difflib.get_close_matches(name, allowed, n=1)
    if close:
        text += f" (did you mean '{close[0]}'?)"
    if allowed:
        listed = (
            f"one of {len(allowed)} names"
            if len(allowed) > MAX_LISTED
            else ", ".join(f"'{n}'" for n in allowed)
        )
        return f"{text}; expected {listed}"
    return f"{text}; expected a name {expected(names, root).removeprefix('a ')}"


def check(
    execution_input: Any, schema: dict[str, Any], rules: dict[str, Any] | None = None
) -> list[Problem]:
    """Every problem of one execution input; empty when it is accepted. The ``rules`` across
    keys run on keys the schema accepted."""
    problems = list(validate(execution_input, schema, schema))
    if rules and isinstance(execution_input, dict):
        unknown = sorted(set(rules) - set(RULES))
        if unknown:
            raise SchemaError(f"unsupported rules {unknown}; known: {sorted(RULES)}")
        bad_keys = {p.key.split(".", 1)[0].split("[", 1)[0] for p in problems}
        for name, settings in rules.items():
            problems.extend(RULES[name](execution_input, settings, bad_keys))
    return problems


def _instances_within_shards(
    execution_input: dict[str, Any], settings: dict[str, Any], bad_keys: set[str]
) -> Iterator[Problem]:
    keys = ("rows", "training_instance_count")
    if bad_keys & set(keys):
        return
    values = {k: execution_input.get(k, settings["defaults"][k]) for k in keys}
    rows, instances = values["rows"], values["training_instance_count"]
    beyond = portable_rules.instances_beyond_shards(rows, settings["rows_per_shard"], instances)
    if beyond is None:
        return
    given = " (its default)" if "rows" not in execution_input else ""
    count_given = " (its default)" if "training_instance_count" not in execution_input else ""
    yield Problem(
        "training_instance_count",
        f"is {instances}{count_given} with key 'rows' {rows}{given}; expected {beyond}",
    )


def _source_fractions(
    execution_input: dict[str, Any], settings: dict[str, Any], bad_keys: set[str]
) -> Iterator[Problem]:
    """``dataset_source``'s validation and test fractions leave rows to train on."""
    source = execution_input.get("dataset_source")
    if "dataset_source" in bad_keys or not isinstance(source, dict):
        return
    defaults = settings["defaults"]
    validation = source.get("validation_fraction", defaults["validation_fraction"])
    test = source.get("test_fraction", defaults["test_fraction"])
    left = portable_rules.fractions_leave_no_training(validation, test)
    if left is not None:
        yield Problem("dataset_source.test_fraction", f"is {test}; expected {left}")


RULES = {
    "instances_within_shards": _instances_within_shards,
    "source_fractions": _source_fractions,
}


def message(problems: list[Problem]) -> str:
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    return f"invalid execution input ({count}; nothing was started): " + "; ".join(
        str(p) for p in problems
    )


def _log(text: str, **fields: Any) -> None:
    """One JSON object a line on stdout: what CloudWatch Logs Insights queries read."""
    print(json.dumps({"message": text, **fields}), file=sys.stdout, flush=True)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if not isinstance(event, dict) or not {"input", "schema"} <= set(event) <= {
        "input",
        "schema",
        "rules",
    }:
        raise ValueError(
            'event must be {"input": <execution input>, "schema": <JSON Schema>, '
            '"rules": <optional checks across keys>}'
        )
    problems = check(event["input"], event["schema"], event.get("rules"))
    if not problems:
        _log("execution input accepted")
        return {"valid": True, "message": ""}
    text = message(problems)
    _log("execution input rejected", problems=[str(p) for p in problems])
    return {"valid": False, "message": text, "problems": [str(p) for p in problems]}
