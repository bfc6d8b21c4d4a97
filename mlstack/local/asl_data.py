"""Input and output processing of the ASL interpreter (:mod:`mlstack.local.asl`): reference
paths, payload templates (paths, context-object paths, intrinsic functions), ResultPath, and the
Choice state's rules and comparisons, with the errors AWS answers."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from mlstack.local import intrinsics, jsonpath
from mlstack.local.asl_types import StatesError, _parse_timestamp


class DataProcessing:
    """The paths, templates and Choice rules of :class:`mlstack.local.asl.Interpreter`."""

    # --- input and output processing ------------------------------------------------------

    def _get(self, data: Any, path: str, name: str) -> Any:
        try:
            return jsonpath.get(data, path)
        except jsonpath.PathError as err:
            raise StatesError("States.Runtime", f"state {name!r}: {err}") from None

    def _path(self, path: str, data: Any, ctx: Any) -> Any:
        """A reference path (InputPath, OutputPath, ItemsPath, ...) over the data or, for
        ``$$``, the context object; AWS's "Invalid path" error when it selects nothing."""
        root, rel = (ctx, path[1:]) if path.startswith("$$") else (data, path)
        try:
            return jsonpath.get(root, rel)
        except jsonpath.PathError:
            raise StatesError("States.Runtime", _invalid_path(path)) from None

    def _put(self, data: Any, path: str, value: Any) -> Any:
        try:
            return jsonpath.put(data, path, value)
        except jsonpath.PathError as err:
            raise StatesError("States.Runtime", str(err)) from None

    def _input_path(self, state: Mapping[str, Any], raw: Any, ctx: Any) -> Any:
        if "InputPath" not in state:
            return raw
        path = state["InputPath"]
        return {} if path is None else self._path(path, raw, ctx)

    def _output_path(self, state: Mapping[str, Any], data: Any, ctx: Any) -> Any:
        if "OutputPath" not in state:
            return data
        path = state["OutputPath"]
        return {} if path is None else self._path(path, data, ctx)

    def _result_path(self, state: Mapping[str, Any], raw: Any, value: Any) -> Any:
        path = state.get("ResultPath", "$")
        return raw if path is None else self._put(raw, path, value)

    def _parameters(
        self, state: Mapping[str, Any], key: str, effective: Any, ctx: Any, name: str
    ) -> Any:
        return self._template(state[key], effective, ctx, name) if key in state else effective

    def _template(self, template: Any, data: Any, ctx: Any, name: str) -> Any:
        """Evaluate a payload template: ``"key.$"`` fields take a path or an intrinsic function."""
        if isinstance(template, list):
            return [self._template(v, data, ctx, name) for v in template]
        if not isinstance(template, dict):
            return template
        out: dict[str, Any] = {}
        for key, value in template.items():
            if key.endswith(".$"):
                out[key[:-2]] = self._dynamic(value, data, ctx, name, key)
            else:
                out[key] = self._template(value, data, ctx, name)
        return out

    def _dynamic(self, expr: Any, data: Any, ctx: Any, name: str, key: str) -> Any:
        if not isinstance(expr, str):
            raise StatesError("States.Runtime", f"state {name!r}: {key} must be a string")
        if intrinsics.is_intrinsic(expr):
            try:
                return intrinsics.evaluate(expr, data, ctx)
            except intrinsics.ArgumentPathError as err:
                # LocalStack's recorded AWS text (moto's port): the field is named this way.
                raise StatesError(
                    "States.Runtime",
                    f"The JSONPath '{err.path}' specified for the field 'ArgumentJsonPath' could "
                    f"not be found in the input '{_compact(err.root)}'",
                ) from None
            except intrinsics.IntrinsicError as err:
                raise StatesError("States.IntrinsicFailure", f"state {name!r}: {err}") from None
        if expr.startswith("$"):
            root, path = (ctx, expr[1:]) if expr.startswith("$$") else (data, expr)
            try:
                return jsonpath.get(root, path)
            except jsonpath.PathError:
                raise StatesError(
                    "States.Runtime",
                    f"The JSONPath '{expr}' specified for the field '{key}' could not be found "
                    f"in the input '{_compact(root)}'",
                ) from None
        raise StatesError("States.Runtime", f"state {name!r}: {key} {expr!r} is not a path")

    def _seconds(self, state: Mapping[str, Any], key: str, data: Any, name: str) -> float | None:
        if key in state:
            return float(state[key])
        if f"{key}Path" in state:
            value = self._get(data, state[f"{key}Path"], name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise StatesError("States.Runtime", f"state {name!r}: {key}Path is not positive")
            return float(value)
        return None

    def _choose(self, name: str, state: Mapping[str, Any], data: Any, ctx: Any) -> str:
        for rule in state.get("Choices", []):
            if self._rule(rule, data, ctx, name):
                return str(rule["Next"])
        if "Default" in state:
            return str(state["Default"])
        raise StatesError("States.NoChoiceMatched", f"state {name!r}: no choice rule matched")

    def _value(self, path: str, data: Any, ctx: Any, name: str) -> Any:
        root, rel = (ctx, path[1:]) if path.startswith("$$") else (data, path)
        try:
            return jsonpath.get(root, rel)
        except jsonpath.PathError:
            # AWS's recorded cause (an execution's ExecutionFailed event): a Choice rule over a
            # missing field fails the execution rather than taking the Default.
            raise StatesError(
                "States.Runtime",
                "Invalid path: The choice state's condition path references an undefined value.",
            ) from None

    def _rule(self, rule: Mapping[str, Any], data: Any, ctx: Any, name: str) -> bool:
        if "And" in rule:
            return all(self._rule(r, data, ctx, name) for r in rule["And"])
        if "Or" in rule:
            return any(self._rule(r, data, ctx, name) for r in rule["Or"])
        if "Not" in rule:
            return not self._rule(rule["Not"], data, ctx, name)
        variable = rule.get("Variable")
        if not isinstance(variable, str):
            raise StatesError("States.Runtime", f"state {name!r}: a choice rule has no Variable")
        ops = [k for k in rule if k not in ("Variable", "Next", "Comment")]
        if len(ops) != 1:
            raise StatesError("States.Runtime", f"state {name!r}: rule {dict(rule)} needs one test")
        op = ops[0]
        root = ctx if variable.startswith("$$") else data
        path = variable[1:] if variable.startswith("$$") else variable
        if op == "IsPresent":
            return jsonpath.exists(root, path) == bool(rule[op])
        value = self._value(variable, data, ctx, name)
        expected = rule[op]
        if op.endswith("Path"):
            op = op[: -len("Path")]
            expected = self._value(expected, data, ctx, name)
        return _compare(op, value, expected, name)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _compact(value: Any) -> str:
    """JSON as AWS quotes an input in an error: no spaces."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _invalid_path(path: str) -> str:
    try:
        where = jsonpath.normalized(path[1:] if path.startswith("$$") else path)
    except jsonpath.PathError:
        where = path
    return f"Invalid path '{path}' : No results for path: {where}"


def _java_text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, bool) or value is None else str(value)


def _java_type(value: Any) -> str:
    return type(value).__name__


def _matches(value: str, pattern: str) -> bool:
    regex = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            regex.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        regex.append(".*" if c == "*" else re.escape(c))
        i += 1
    return re.fullmatch("".join(regex), value, re.DOTALL) is not None


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": lambda a, b: a == b,
    "LessThan": lambda a, b: a < b,
    "GreaterThan": lambda a, b: a > b,
    "LessThanEquals": lambda a, b: a <= b,
    "GreaterThanEquals": lambda a, b: a >= b,
}


def _compare(op: str, value: Any, expected: Any, name: str) -> bool:
    checks: dict[str, Callable[[Any], bool]] = {
        "IsNull": lambda v: v is None,
        "IsNumeric": _is_number,
        "IsString": lambda v: isinstance(v, str),
        "IsBoolean": lambda v: isinstance(v, bool),
        "IsTimestamp": lambda v: _parse_timestamp(v) is not None,
    }
    if op in checks:
        return checks[op](value) == bool(expected)
    if op == "StringMatches":
        return isinstance(value, str) and isinstance(expected, str) and _matches(value, expected)
    if op == "BooleanEquals":
        return isinstance(value, bool) and isinstance(expected, bool) and value == expected
    for family, convert in (
        ("String", lambda v: v if isinstance(v, str) else None),
        ("Numeric", lambda v: v if _is_number(v) else None),
        ("Timestamp", _parse_timestamp),
    ):
        if op.startswith(family) and op[len(family) :] in _ORDER:
            a, b = convert(value), convert(expected)
            return a is not None and b is not None and _ORDER[op[len(family) :]](a, b)
    raise StatesError("States.Runtime", f"state {name!r}: unknown choice operator {op!r}")
