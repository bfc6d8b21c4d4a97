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
    the shard count gets no data); not for a run whose ``dataset_source`` is a table (its shards
    are its objects, unknown before Prepare data), nor, with ``"table_by_default": true`` (the
    configuration names a source), for one that leaves ``dataset_source`` out. The rule is
    ``instances_beyond_shards`` of ``portable_rules.py`` beside this file, a generated copy of
    ``mlstack/portable_rules.py``, whose function the config check calls too.

    ``parallel_within_jobs`` (with a tuning path): ``{"defaults": {"tuning_max_jobs": J,
    "tuning_max_parallel_jobs": P}}``: ``tuning_max_parallel_jobs`` must not exceed
    ``tuning_max_jobs`` (``parallel_beyond_jobs``, the rule config and ``HyperparameterTuning``
    check at synth time; the execution input may override either key).

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
JSON_TYPES = {"object", "array", "string", "integer", "number", "boolean", "null"}
# What a schema accepts and what a value is, in words: the same functions word config errors.
json_type = portable_rules.json_type
describe = portable_rules.describe


class SchemaError(ValueError):
    """The schema uses a keyword this validator does not implement (a deployment fault)."""


@dataclass(frozen=True)
class Problem:
    key: str  # dotted path; "" for the input itself
    text: str

    def __str__(self) -> str:
        return f"key '{self.key}' {self.text}" if self.key else f"the input {self.text}"


def _is_type(value: Any, kind: str) -> bool:
    actual = json_type(value)
    return actual == kind or (kind == "number" and actual == "integer")


def expected(schema: dict[str, Any], root: dict[str, Any]) -> str:
    """What a schema accepts, in words (the end of every problem's sentence): the constraints
    alone, as the input's descriptions say what a key sets, not what it accepts."""
    return portable_rules.expected(_resolve(schema, root), root, descriptions=False)


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    try:
        return dict(portable_rules.resolve(schema, root))
    except (ValueError, KeyError) as err:
        raise SchemaError(str(err)) from None


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
            yield Problem(
                key,
                f"is {describe(value)}; expected {expected(schema, root)}"
                + portable_rules.did_you_mean(value, schema, root),
            )
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
            key,
            f"is {describe(value)}; expected {expected(schema, root)}"
            + portable_rules.did_you_mean(value, schema, root),
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
            if len(allowed) > portable_rules.MAX_LISTED
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


def _given(
    execution_input: dict[str, Any], settings: dict[str, Any], keys: tuple[str, ...]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The values a rule reads (an input key left out takes its default) and, for each, the
    note that says it was the default."""
    values = {k: execution_input.get(k, settings["defaults"][k]) for k in keys}
    notes = {k: "" if k in execution_input else " (its default)" for k in keys}
    return values, notes


def _instances_within_shards(
    execution_input: dict[str, Any], settings: dict[str, Any], bad_keys: set[str]
) -> Iterator[Problem]:
    keys = ("rows", "training_instance_count")
    if bad_keys & set(keys):
        return
    default_source = {} if settings.get("table_by_default") else None
    if isinstance(execution_input.get("dataset_source", default_source), dict):
        return  # a table's train shards are its objects (one each), unknown before Prepare data
    values, given = _given(execution_input, settings, keys)
    rows, instances = values["rows"], values["training_instance_count"]
    beyond = portable_rules.instances_beyond_shards(rows, settings["rows_per_shard"], instances)
    if beyond is None:
        return
    yield Problem(
        "training_instance_count",
        f"is {instances}{given['training_instance_count']} with key 'rows' {rows}"
        f"{given['rows']}; expected {beyond}",
    )


def _parallel_within_jobs(
    execution_input: dict[str, Any], settings: dict[str, Any], bad_keys: set[str]
) -> Iterator[Problem]:
    keys = ("tuning_max_jobs", "tuning_max_parallel_jobs")
    if bad_keys & set(keys):
        return
    values, given = _given(execution_input, settings, keys)
    jobs, parallel = values["tuning_max_jobs"], values["tuning_max_parallel_jobs"]
    beyond = portable_rules.parallel_beyond_jobs(parallel, jobs, "'tuning_max_jobs'")
    if beyond is None:
        return
    yield Problem(
        "tuning_max_parallel_jobs",
        f"is {parallel}{given['tuning_max_parallel_jobs']} with key 'tuning_max_jobs' {jobs}"
        f"{given['tuning_max_jobs']}; expected {beyond}",
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
    "parallel_within_jobs": _parallel_within_jobs,
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
