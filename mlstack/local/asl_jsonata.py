"""JSONata states of the ASL interpreter (:mod:`mlstack.local.asl`), as the Amazon States
Language specification ("JSONata Concepts") and the Step Functions developer guide
("Transforming data with JSONata in Step Functions") define them.

A state's query language is its own ``QueryLanguage``, else its state machine's (``JSONPath``
by default). In a JSONata state, strings ``{% … %}`` in ``Arguments``, ``Output``, a Choice
rule's ``Condition``, a Catcher's ``Output``, a Map's ``Items`` and ``ItemSelector``, a Fail's
``Error``/``Cause``, a Wait's ``Seconds``/``Timestamp`` and a Task's ``TimeoutSeconds``/
``HeartbeatSeconds`` are evaluated with the reserved variable ``$states``: ``input`` (the
state input), ``context`` (the context object), ``result`` (a Task's, Map's or Parallel's
result, in its ``Output``) and ``errorOutput`` (``{"Error", "Cause"}``, in a Catcher's
``Output``). Without ``Output`` a Task, Map or Parallel passes on its result, a Catcher the
error output, any other state its input.

An expression that fails, or returns nothing (undefined) where a value is needed, fails the
state with ``States.QueryEvaluationError`` (the specification's "JSONata Runtime Errors"),
which Retry and Catch match like any error. The JSONPath fields are refused in a JSONata
state, and the JSONata fields in a JSONPath state, when the definition is validated, with the
words Step Functions answers ("Field '…' is not supported when QueryLanguage is …").

The engine is ``jsonata-python`` (a pure-Python port of JSONata), against the JSONata 2.0.6
that Step Functions implements; ``tests/local/test_local_jsonata_differential.py`` holds it to
the reference JavaScript engine on every expression our definitions carry. Step Functions' own
JSONata functions (``$partition``, ``$range``, ``$hash``, ``$random``, ``$uuid``, ``$parse``)
and state machine variables (``Assign``) are not supported locally.
"""

from __future__ import annotations

import datetime
import functools
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import jsonata
from jsonata.functions import Functions
from jsonata.utils import Utils

from mlstack.local.asl_types import DefinitionError, StatesError, _parse_timestamp

JSONATA = "JSONata"
JSONPATH = "JSONPath"
QUERY_EVALUATION_ERROR = "States.QueryEvaluationError"
# The fields of one query language only (the specification's "Table of State Types and Fields"
# for each language, and the JSONPath-only ...Path variants of Wait, Fail and Task fields).
JSONPATH_FIELDS = (
    "InputPath",
    "Parameters",
    "ResultSelector",
    "ResultPath",
    "OutputPath",
    "ItemsPath",
    "TimeoutSecondsPath",
    "HeartbeatSecondsPath",
    "SecondsPath",
    "TimestampPath",
    "ErrorPath",
    "CausePath",
    "Result",
)
JSONATA_FIELDS = ("Arguments", "Output", "Items")

_lock = threading.Lock()  # a compiled expression keeps evaluation state on itself
_EXACT = 2**53  # the largest integer a double holds exactly, and all below it


def language(state: Mapping[str, Any], inherited: str) -> str:
    """The state's query language: its own, else its state machine's."""
    return str(state.get("QueryLanguage", inherited))


def check_fields(name: str, state: Mapping[str, Any], query_language: str) -> None:
    """Refuse the other language's fields, as Step Functions does when the definition is
    created (a catcher's ResultPath and a choice rule's Variable or Condition included)."""
    if query_language not in (JSONATA, JSONPATH):
        raise DefinitionError(
            f"state {name!r}: QueryLanguage {query_language!r}; expected JSONPath or JSONata"
        )
    other = JSONPATH_FIELDS if query_language == JSONATA else JSONATA_FIELDS
    found = [f for f in other if f in state]
    for catcher in state.get("Catch", []):
        found += [f for f in (("ResultPath",) if query_language == JSONATA else ("Output",))
                  if f in catcher]  # fmt: skip
    for rule in state.get("Choices", []):
        found += [f for f in (("Variable", "And", "Or", "Not") if query_language == JSONATA
                              else ("Condition",)) if f in rule]  # fmt: skip
    if found:
        raise DefinitionError(
            f"state {name!r}: Field '{found[0]}' is not supported when QueryLanguage is "
            f"{query_language}"
        )
    if query_language == JSONATA:
        for rule in state.get("Choices", []):
            if "Condition" not in rule:
                raise DefinitionError(f"state {name!r}: a JSONata choice rule needs a Condition")


def is_expression(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("{%") and value.endswith("%}")


def resolve(template: Any, states: Mapping[str, Any], field: str) -> Any:
    """``template`` with every JSONata string in it (however deeply nested) replaced by its
    value (the specification's "JSONata Evaluation"); ``field`` names where it is, for the
    error."""
    if is_expression(template):
        return evaluate(template, states, field)
    if isinstance(template, dict):
        return {k: resolve(v, states, f"{field}/{k}") for k, v in template.items()}
    if isinstance(template, list):
        return [resolve(v, states, f"{field}/{i}") for i, v in enumerate(template)]
    return template


def evaluate(text: str, states: Mapping[str, Any], field: str) -> Any:
    """The value of one JSONata string; ``States.QueryEvaluationError`` when it fails or
    returns nothing (JSON cannot hold an undefined value)."""
    body = text[2:-2].strip()
    try:
        expression = _compiled(body)
        with _lock:
            value = expression.evaluate(None, {"states": _nulls_in(states)})
    except Exception as err:  # the engine's errors (JException, and Python's own on bad input)
        raise StatesError(
            QUERY_EVALUATION_ERROR,
            f"The JSONata expression '{body}' specified for the field '{field}' threw an error: "
            f"{err}",
        ) from None
    if value is None:
        # The cause Step Functions writes (an execution's recorded ExecutionFailed event).
        raise StatesError(
            QUERY_EVALUATION_ERROR,
            f"The JSONata expression '{body}' specified for the field '{field}' returned nothing "
            "(undefined).",
        )
    return _json(Utils.convert_nulls(value))


def condition(text: Any, states: Mapping[str, Any], field: str) -> bool:
    """A Choice rule's Condition: a boolean, or a JSONata string that evaluates to one."""
    value = evaluate(text, states, field) if is_expression(text) else text
    if not isinstance(value, bool):
        raise StatesError(
            QUERY_EVALUATION_ERROR,
            f"The Condition of a choice rule evaluated to {value!r}; expected a boolean ({field}).",
        )
    return value


@functools.lru_cache(maxsize=512)
def _compiled(body: str) -> Any:
    expression = jsonata.Jsonata(body)
    # null stays JSONata's null (Utils.NULL_VALUE) so that None means undefined.
    expression.set_output_convert_nulls(False)
    expression.register_lambda("toMillis", _to_millis)
    return expression


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def _to_millis(timestamp: Any = None, picture: Any = None) -> Any:
    """``$toMillis``: jsonata-python's, except that an ISO 8601 timestamp keeps its
    milliseconds (its own reads them through a float and truncates: ``...00.001Z`` gives
    ``...000``; the reference engine keeps them, tests/local/test_local_jsonata_differential.py).
    """
    millis = Functions.datetime_to_millis(timestamp, picture)  # its checks and its errors
    if millis is None or picture is not None or Functions.is_numeric(timestamp):
        return millis
    parsed = datetime.datetime.fromisoformat(timestamp)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return (parsed - _EPOCH) // datetime.timedelta(milliseconds=1)


def _nulls_in(value: Any) -> Any:
    """JSON null as the engine's null value (None is its undefined); an integer beyond 2**53 as
    the double JSONata's numbers hold (the reference engine reads 9007199254740993 as
    9007199254740992)."""
    if value is None:
        return Utils.NULL_VALUE
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _EXACT:
        return int(float(value))
    if isinstance(value, dict):
        return {k: _nulls_in(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nulls_in(v) for v in value]
    return value


def _json(value: Any) -> Any:
    """A result as plain JSON data: the engine's sequences are lists, whole floats stay
    floats (JSONata numbers are doubles; 1.0 and 1 are one JSON number)."""
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if callable(value):
        raise StatesError(QUERY_EVALUATION_ERROR, "a JSONata expression returned a function")
    return value


def languages(definition: Mapping[str, Any], inherited: str = JSONPATH) -> dict[int, str]:
    """Each state's query language, by the state object's id (branches and item processors
    inherit their state machine's)."""
    machine = language(definition, inherited)
    found: dict[int, str] = {}
    for state in definition["States"].values():
        found[id(state)] = language(state, machine)
        for branch in state.get("Branches", []):
            found |= languages(branch, machine)
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if isinstance(processor, dict):
            found |= languages(processor, machine)
    return found


class JsonataStates:
    """How :class:`mlstack.local.asl.Interpreter` runs a JSONata state."""

    # Provided by the Interpreter.
    _languages: dict[int, str]
    sleep: Callable[[float], None]
    time_scale: float

    def _retried(
        self,
        name: str,
        state: Mapping[str, Any],
        ctx: dict[str, Any],
        attempt: Callable[[], Any],
        caught: Callable[[Mapping[str, Any], dict[str, str]], Any],
    ) -> Any:  # pragma: no cover - the Interpreter's
        raise NotImplementedError

    def _work(
        self,
        name: str,
        state: Mapping[str, Any],
        effective: Any,
        ctx: dict[str, Any],
        result: Any,
        deadline: float | None,
    ) -> Any:  # pragma: no cover - the Interpreter's
        raise NotImplementedError

    def _parameters(
        self, state: Mapping[str, Any], key: str, effective: Any, ctx: Any, name: str
    ) -> Any:  # pragma: no cover - DataProcessing's
        raise NotImplementedError

    def _seconds(
        self, state: Mapping[str, Any], key: str, data: Any, name: str
    ) -> float | None:  # pragma: no cover - DataProcessing's
        raise NotImplementedError

    def _is_jsonata(self, state: Mapping[str, Any]) -> bool:
        return self._languages.get(id(state)) == JSONATA

    def _arguments(self, state: Mapping[str, Any], effective: Any, ctx: Any, name: str) -> Any:
        """What a Task sends, or a Parallel hands its branches: Parameters (JSONPath) or
        Arguments (JSONata), else the effective input."""
        if not self._is_jsonata(state):
            return self._parameters(state, "Parameters", effective, ctx, name)
        if "Arguments" not in state:
            return effective
        return resolve(state["Arguments"], {"input": effective, "context": ctx}, "Arguments")

    def _timeout(
        self, state: Mapping[str, Any], key: str, effective: Any, ctx: Any, name: str
    ) -> float | None:
        """TimeoutSeconds or HeartbeatSeconds: a positive integer, or in a JSONata state a
        JSONata string that evaluates to one."""
        if not self._is_jsonata(state):
            return self._seconds(state, key, effective, name)
        value = state.get(key)
        if isinstance(value, str) and is_expression(value):
            value = evaluate(value, {"input": effective, "context": ctx}, key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise StatesError(QUERY_EVALUATION_ERROR, f"{key} {value!r} is not a positive number")
        return float(value)

    def _jsonata_state(
        self,
        name: str,
        state: Mapping[str, Any],
        raw: Any,
        ctx: dict[str, Any],
        result: Any,
        deadline: float | None,
        next_name: str | None,
    ) -> tuple[Any, str | None]:
        """One visit of a JSONata state: its output and the next state's name."""
        kind = state["Type"]
        states = {"input": raw, "context": ctx}
        if kind == "Fail":
            error, cause = (
                None if state.get(k) is None else str(resolve(state[k], states, k))
                for k in ("Error", "Cause")
            )
            raise StatesError(error, cause)
        if kind == "Choice":
            return self._jsonata_choice(name, state, raw, states)
        if kind in ("Pass", "Succeed", "Wait"):
            if kind == "Wait":
                self._jsonata_wait(name, state, states)
            output = resolve(state["Output"], states, "Output") if "Output" in state else raw
            return output, None if kind == "Succeed" else next_name

        # Task, Parallel, Map: the result, or the Output over it; a catcher passes on the
        # error output, or its own Output over it.
        def attempt() -> Any:
            value = self._work(name, state, raw, ctx, result, deadline)
            if "Output" not in state:
                return value
            return resolve(state["Output"], {**states, "result": value}, "Output")

        def caught(catcher: Mapping[str, Any], error_output: dict[str, str]) -> Any:
            if "Output" not in catcher:
                return error_output
            return resolve(catcher["Output"], {**states, "errorOutput": error_output}, "Output")

        return self._retried(name, state, ctx, attempt, caught), next_name

    def _jsonata_choice(
        self, name: str, state: Mapping[str, Any], raw: Any, states: Mapping[str, Any]
    ) -> tuple[Any, str]:
        for index, rule in enumerate(state.get("Choices", [])):
            if condition(rule["Condition"], states, f"Choices/{index}/Condition"):
                where = f"Choices/{index}/Output"
                output = resolve(rule["Output"], states, where) if "Output" in rule else raw
                return output, str(rule["Next"])
        if "Default" in state:
            output = resolve(state["Output"], states, "Output") if "Output" in state else raw
            return output, str(state["Default"])
        raise StatesError("States.NoChoiceMatched", f"state {name!r}: no choice rule matched")

    def _jsonata_wait(self, name: str, state: Mapping[str, Any], states: Mapping[str, Any]) -> None:
        if "Seconds" in state:
            seconds = resolve(state["Seconds"], states, "Seconds")
            if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 0:
                raise StatesError(
                    QUERY_EVALUATION_ERROR,
                    f"state {name!r}: Seconds {seconds!r} is not a long >= 0",
                )
            self.sleep(seconds * self.time_scale)
            return
        stamp = resolve(state.get("Timestamp"), states, "Timestamp")
        when = _parse_timestamp(stamp)
        if when is None:
            raise StatesError(QUERY_EVALUATION_ERROR, f"state {name!r}: {stamp!r} is no timestamp")
        self.sleep(max(0.0, when.timestamp() - time.time()) * self.time_scale)
