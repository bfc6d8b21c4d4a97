"""A small, generic interpreter of Amazon States Language state machine definitions, in JSONPath
and (per state machine or per state, ``QueryLanguage``) JSONata: :mod:`mlstack.local.asl_jsonata`
says how a JSONata state runs.

Supported: every state type — Pass, Task, Choice, Wait, Succeed, Fail, Parallel and Map, inline
and distributed (``ItemProcessor.ProcessorConfig.Mode``; items from ``ItemsPath``);
InputPath, Parameters/ItemSelector (``.$`` keys: paths, context-object paths ``$$.…``, intrinsic
functions), ResultSelector, ResultPath, OutputPath; Retry (ErrorEquals, IntervalSeconds,
MaxAttempts, BackoffRate, MaxDelaySeconds, JitterStrategy) and Catch, with ``States.ALL`` and
``States.TaskFailed`` matching as in AWS; every Choice comparison (``String*``, ``Numeric*``,
``Boolean*``, ``Timestamp*``, each with its ``…Path`` form; ``Is*``; ``And``/``Or``/``Not``);
the context object (``$$.Execution.{Id,Name,Input,StartTime,RoleArn,RedriveCount}``,
``$$.State.{Name,EnteredTime,RetryCount}``, ``$$.StateMachine.{Id,Name}``,
``$$.Map.Item.{Index,Value}``); the state machine's TimeoutSeconds and a Task's
TimeoutSeconds/TimeoutSecondsPath (handed to the task, and checked when it returns); Step
Functions' quotas on a state's input, output or task result (256 KiB) and on an execution's
history (25,000 events), as :mod:`mlstack.local.limits` words them.

Map states, the way AWS runs them (Step Functions developer guide, "Using Map state in Inline
mode" and "Using Map state in Distributed mode"):

* ``MaxConcurrency`` N > 1: at most N iterations at once, on threads; an inline Map never runs
  more than 40 at once (AWS's inline limit), a distributed one at most 10,000 (its default when
  MaxConcurrency is absent or 0; locally at most ``DISTRIBUTED_LOCAL_THREADS`` threads then,
  in :mod:`mlstack.local.asl_map`).
  An inline Map without MaxConcurrency (or with 0 or 1) runs its iterations one after another,
  so that event ids stay those of AWS's recorded histories; outputs keep item order whatever the
  concurrency.
* Inline: the first iteration to fail fails the Map with its error (iterations not yet started
  are not started).
* Distributed: each item runs as a child execution (its own ``$$.Execution``, named
  ``<Label or state name>:<uuid>``, its own event ids); ``on_child_execution(state, arn)`` is
  called as each starts (the IAM recorder hears ``states:StartExecution`` there). Failed
  children count against ``ToleratedFailureCount``/``ToleratedFailurePercentage`` (default 0:
  any failure fails the Map); past either, the Map fails with
  ``States.ExceedToleratedFailureThreshold`` ("Tolerated failure threshold for Distributed Map
  state"); a tolerated failure leaves ``{"Error", "Cause"}`` at its item's place in the output
  (not verified against AWS).

Not supported (rejected up front with a message naming the field): variables (``Assign``),
a JSONPath field in a JSONata state or a JSONata field in a JSONPath state (as Step Functions
refuses them), and on a Map ``ItemReader``, ``ItemBatcher``, ``ResultWriter``,
``MaxConcurrencyPath``, ``ToleratedFailureCountPath`` and ``ToleratedFailurePercentagePath``.

Task states call ``task_handler(TaskCall)``; it returns the task's result or raises
:class:`StatesError`. Any other exception from a handler becomes ``States.TaskFailed``. Wait
states and retry intervals last ``time_scale`` times their defined time (local runs shorten them).
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mlstack.local import asl_jsonata, jsonpath, limits
from mlstack.local.asl_data import _java_text
from mlstack.local.asl_data import _matches as _matches
from mlstack.local.asl_jsonata import JSONATA, JSONPATH, JsonataStates
from mlstack.local.asl_map import MapStates
from mlstack.local.asl_types import (
    DefinitionError,
    ExecutionResult,
    Listener,
    StateRecord,
    StatesError,
    TaskCall,
    TaskHandler,
    _iso,
    _NullListener,
    _parse_timestamp,
)

STATE_TYPES = ("Pass", "Task", "Choice", "Wait", "Succeed", "Fail", "Parallel", "Map")
# Map fields local mode does not run (its items come from ItemsPath; results stay in the state).
_UNSUPPORTED_MAP_FIELDS = (
    "ItemReader",
    "ItemBatcher",
    "ResultWriter",
    "MaxConcurrencyPath",
    "ToleratedFailureCountPath",
    "ToleratedFailurePercentagePath",
)
# Errors that States.ALL does not match (AWS: terminal, neither retried nor caught by it).
_NOT_MATCHED_BY_ALL = ("States.Runtime", "States.DataLimitExceeded")


def validate(
    definition: Mapping[str, Any], where: str = "the definition", inherited: str = JSONPATH
) -> None:
    """Check the structure this interpreter relies on; raise :class:`DefinitionError`."""
    machine_language = asl_jsonata.language(definition, inherited)
    if machine_language not in (JSONPATH, JSONATA):
        raise DefinitionError(
            f"{where}: QueryLanguage {machine_language!r}; expected JSONPath or JSONata"
        )
    states = definition.get("States")
    if not isinstance(states, dict) or not states:
        raise DefinitionError(f"{where}: 'States' must be a non-empty object")
    if definition.get("StartAt") not in states:
        raise DefinitionError(f"{where}: StartAt {definition.get('StartAt')!r} is not a state")
    for name, state in states.items():
        kind = state.get("Type")
        if kind not in STATE_TYPES:
            raise DefinitionError(f"state {name!r}: unknown Type {kind!r}")
        asl_jsonata.check_fields(name, state, asl_jsonata.language(state, machine_language))
        for unsupported in ("Assign", *_UNSUPPORTED_MAP_FIELDS):
            if unsupported in state:
                raise DefinitionError(f"state {name!r}: {unsupported} is not supported locally")
        if any("Assign" in c for c in (*state.get("Catch", []), *state.get("Choices", []))):
            raise DefinitionError(f"state {name!r}: Assign is not supported locally")
        targets = [state.get("Next"), state.get("Default")]
        targets += [c.get("Next") for c in state.get("Catch", [])]
        targets += [c.get("Next") for c in state.get("Choices", [])]
        for target in targets:
            if target is not None and target not in states:
                raise DefinitionError(f"state {name!r}: transition to unknown state {target!r}")
        if (
            kind not in ("Choice", "Succeed", "Fail")
            and not state.get("End")
            and not state.get("Next")
        ):
            raise DefinitionError(f"state {name!r}: needs Next or End")
        if kind == "Task" and not isinstance(state.get("Resource"), str):
            raise DefinitionError(f"state {name!r}: a Task needs a Resource string")
        for branch in state.get("Branches", []):
            validate(branch, f"a branch of {name!r}", machine_language)
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if kind == "Map":
            if not isinstance(processor, dict):
                raise DefinitionError(f"state {name!r}: a Map needs an ItemProcessor")
            _validate_map(name, state, processor)
            validate(processor, f"the ItemProcessor of {name!r}", machine_language)


def _validate_map(name: str, state: Mapping[str, Any], processor: Mapping[str, Any]) -> None:
    """The Map fields AWS checks when the definition is created (state-map-distributed.html:
    MaxConcurrency a non-negative integer, tolerated failures a count >= 0 or a percentage 0 to
    100, Label and ToleratedFailure* only in Distributed mode)."""
    config = processor.get("ProcessorConfig", {})
    mode = config.get("Mode", "INLINE")
    if mode not in ("INLINE", "DISTRIBUTED"):
        raise DefinitionError(
            f"state {name!r}: ProcessorConfig.Mode {mode!r}; expected INLINE or DISTRIBUTED"
        )
    if mode == "DISTRIBUTED" and config.get("ExecutionType") not in ("STANDARD", "EXPRESS"):
        raise DefinitionError(
            f"state {name!r}: a Distributed Map needs ProcessorConfig.ExecutionType STANDARD or "
            f"EXPRESS; got {config.get('ExecutionType')!r}"
        )
    concurrency = state.get("MaxConcurrency", 0)
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 0:
        raise DefinitionError(
            f"state {name!r}: MaxConcurrency {concurrency!r}; expected an integer >= 0"
        )
    for key, high in (("ToleratedFailureCount", None), ("ToleratedFailurePercentage", 100)):
        if key not in state:
            continue
        if mode != "DISTRIBUTED":
            raise DefinitionError(f"state {name!r}: {key} is only valid in Distributed mode")
        value = state[key]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or value < 0
            or (high is not None and value > high)
        ):
            bound = "from 0 to 100" if high is not None else ">= 0"
            raise DefinitionError(f"state {name!r}: {key} {value!r}; expected a number {bound}")
    if "Label" in state and mode != "DISTRIBUTED":
        raise DefinitionError(f"state {name!r}: Label is only valid in Distributed mode")


class Interpreter(MapStates, JsonataStates):
    """Runs one definition; :meth:`execute` runs one execution of it."""

    def __init__(
        self,
        definition: Mapping[str, Any],
        task_handler: TaskHandler,
        *,
        listener: Listener | None = None,
        time_scale: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        state_machine_arn: str = "arn:aws:states:us-east-1:000000000000:stateMachine:local",
        role_arn: str = "arn:aws:iam::000000000000:role/local",
        rng: random.Random | None = None,
        on_child_execution: Callable[[str, str], None] | None = None,
    ) -> None:
        validate(definition)
        self._languages = asl_jsonata.languages(definition)
        self.on_child_execution = on_child_execution
        self.definition = definition
        self.task_handler = task_handler
        self.listener: Listener = listener or _NullListener()
        self.time_scale = time_scale
        self.sleep = sleep
        self.state_machine_arn = state_machine_arn
        self.role_arn = role_arn
        self.rng = rng or random.Random()
        self._lock = threading.Lock()

    def execute(
        self, execution_input: Any = None, *, name: str | None = None, redrive_count: int = 0
    ) -> ExecutionResult:
        name = name or str(uuid.uuid4())
        started = time.time()
        execution_input = {} if execution_input is None else execution_input
        sm_name = self.state_machine_arn.rsplit(":", 1)[-1]
        arn = self.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"
        context = {
            "Execution": {
                "Id": arn,
                "Input": execution_input,
                "Name": name,
                "RoleArn": self.role_arn,
                "StartTime": _iso(started),
                "RedriveCount": redrive_count,
            },
            "StateMachine": {"Id": self.state_machine_arn, "Name": sm_name},
        }
        timeout = self.definition.get("TimeoutSeconds")
        deadline = started + timeout if timeout else None
        result = ExecutionResult(status="SUCCEEDED")
        result.event()  # ExecutionStarted
        try:
            result.output = self._run(self.definition, execution_input, context, result, deadline)
        except StatesError as err:
            result.status = "TIMED_OUT" if err.error == "States.Timeout" else "FAILED"
            result.error, result.cause = err.error or None, err.cause or None
        except limits.ExecutionLimitReached as reached:
            result.status, result.error, result.cause = "FAILED", reached.error, reached.cause
        result.seconds = time.time() - started
        return result

    # --- machinery ----------------------------------------------------------------------------

    def _run(
        self,
        machine: Mapping[str, Any],
        data: Any,
        context: dict[str, Any],
        result: ExecutionResult,
        deadline: float | None,
    ) -> Any:
        states = machine["States"]
        name = machine["StartAt"]
        for _ in range(100_000):  # a runaway loop ends; AWS caps an execution at 25,000 events
            if deadline is not None and time.time() > deadline:
                raise StatesError("States.Timeout", "the state machine's TimeoutSeconds elapsed")
            state = states[name]
            kind = state["Type"]
            entered = time.time()
            entered_id = self._event(result)  # <Type>StateEntered
            self.listener.state_entered(name, kind, data)
            try:
                if over := limits.payload_error(name, "an input", data):
                    raise StatesError(*over)
                data, next_name = self._state(name, state, data, context, result, deadline)
                if over := limits.payload_error(name, "an output", data):
                    raise StatesError(*over)
            except _Caught as caught:
                self._event(result)  # <Type>StateExited, towards the catcher's Next
                seconds = time.time() - entered
                self._record(result, StateRecord(name, kind, seconds, "caught", *caught.error))
                self.listener.state_failed(name, kind, *caught.error, seconds)
                data, next_name = caught.output, caught.next_name
            except StatesError as err:
                err.locate(name, entered_id)
                seconds = time.time() - entered
                self._record(
                    result, StateRecord(name, kind, seconds, "failed", err.error, err.cause)
                )
                self.listener.state_failed(name, kind, err.error, err.cause, seconds)
                raise
            else:
                self._event(result)  # <Type>StateExited
                seconds = time.time() - entered
                self._record(result, StateRecord(name, kind, seconds, "succeeded"))
                self.listener.state_exited(name, kind, data, seconds)
            if next_name is None:
                return data
            name = next_name
        raise StatesError("States.Runtime", "the execution exceeded 100000 state transitions")

    def _record(self, result: ExecutionResult, record: StateRecord) -> None:
        with self._lock:
            result.history.append(record)

    def _event(self, result: ExecutionResult, count: int = 1) -> int:
        with self._lock:
            event_id = result.event(count)
            reached = limits.history_full(event_id)
            if reached is not None:
                result.events = limits.MAX_HISTORY_EVENTS  # that event is ExecutionFailed
                raise reached
        return event_id

    def _state(
        self,
        name: str,
        state: Mapping[str, Any],
        raw: Any,
        context: dict[str, Any],
        result: ExecutionResult,
        deadline: float | None,
    ) -> tuple[Any, str | None]:
        kind = state["Type"]
        ctx = {
            **context,
            "State": {"Name": name, "EnteredTime": _iso(time.time()), "RetryCount": 0},
        }
        next_name = None if state.get("End") else state.get("Next")
        if self._languages.get(id(state)) == JSONATA:
            return self._jsonata_state(name, state, raw, ctx, result, deadline, next_name)
        if kind == "Fail":
            return self._fail(state, raw, ctx), None
        effective = self._input_path(state, raw, ctx)
        if kind == "Succeed":
            return self._output_path(state, effective, ctx), None
        if kind == "Choice":
            chosen = self._choose(name, state, effective, ctx)
            return self._output_path(state, effective, ctx), chosen
        if kind == "Wait":
            self._wait(name, state, effective)
            return self._output_path(state, effective, ctx), next_name
        if kind == "Pass":
            value = effective
            if "Parameters" in state:
                value = self._template(state["Parameters"], effective, ctx, name)
            value = state.get("Result", value)
            output = self._output_path(state, self._result_path(state, raw, value), ctx)
            return output, next_name

        # Task, Parallel, Map: retried and caught.
        def attempt() -> Any:
            value = self._work(name, state, effective, ctx, result, deadline)
            if "ResultSelector" in state:
                value = self._template(state["ResultSelector"], value, ctx, name)
            return self._output_path(state, self._result_path(state, raw, value), ctx)

        def caught(catcher: Mapping[str, Any], error_output: dict[str, str]) -> Any:
            path = catcher.get("ResultPath", "$")
            return raw if path is None else self._put(raw, path, error_output)

        return self._retried(name, state, ctx, attempt, caught), next_name

    def _retried(
        self,
        name: str,
        state: Mapping[str, Any],
        ctx: dict[str, Any],
        attempt: Callable[[], Any],
        caught: Callable[[Mapping[str, Any], dict[str, str]], Any],
    ) -> Any:
        """``attempt()``'s output, retried by the state's Retry; an error no retrier takes
        goes to the first catcher that matches, with the output ``caught(catcher, error
        output)`` gives."""
        attempts: dict[int, int] = {}
        retry_count = 0
        while True:
            ctx["State"]["RetryCount"] = retry_count
            try:
                return attempt()
            except StatesError as err:
                delay = self._retry_delay(state, err, attempts)
                if delay is None:
                    catcher = self._catcher(state, err)
                    if catcher is None:
                        raise
                    # An error without a cause has none in the catcher's output
                    # (input-output-resultpath.html: {"error": {"Error": "Error here"}}).
                    error_output = {"Error": err.error}
                    if err.cause:
                        error_output["Cause"] = err.cause
                    output = caught(catcher, error_output)
                    raise _Caught(output, catcher["Next"], (err.error, err.cause)) from None
                retry_count += 1
                self.listener.state_retrying(name, err.error, retry_count, delay)
                self.sleep(delay * self.time_scale)

    def _work(
        self,
        name: str,
        state: Mapping[str, Any],
        effective: Any,
        ctx: dict[str, Any],
        result: ExecutionResult,
        deadline: float | None,
    ) -> Any:
        kind = state["Type"]
        if kind == "Parallel":
            params = self._arguments(state, effective, ctx, name)
            self._event(result)  # ParallelStateStarted
            outputs = [
                self._run(b, params, self._branch_ctx(ctx), result, deadline)
                for b in state["Branches"]
            ]
            self._event(result)  # ParallelStateSucceeded
            return outputs
        if kind == "Map":
            return self._map(name, state, effective, ctx, result, deadline)
        params = self._arguments(state, effective, ctx, name)
        timeout = self._timeout(state, "TimeoutSeconds", effective, ctx, name)
        heartbeat = self._timeout(state, "HeartbeatSeconds", effective, ctx, name)
        call = TaskCall(
            name, state["Resource"], params, ctx["State"]["RetryCount"], timeout, heartbeat, ctx
        )
        started = time.time()
        # TaskScheduled, TaskStarted (and TaskSubmitted for a .sync job), then the outcome.
        self._event(result, 3 if ".sync" in call.resource else 2)
        try:
            value = self.task_handler(call)
        except StatesError:
            self._event(result)  # TaskFailed
            raise
        except Exception as err:  # a handler's own bug or an unexpected failure
            self._event(result)  # TaskFailed
            raise StatesError("States.TaskFailed", f"{type(err).__name__}: {err}") from err
        self._event(result)  # TaskSucceeded
        if over := limits.result_error(name, value):
            raise StatesError(*over)
        if timeout is not None and time.time() - started > timeout:
            raise StatesError("States.Timeout", f"state {name!r} ran past {timeout} s")
        return value

    def _retry_delay(
        self, state: Mapping[str, Any], err: StatesError, attempts: dict[int, int]
    ) -> float | None:
        """Seconds to wait before the next attempt, or None when no retrier applies any more."""
        found = _first(list(state.get("Retry", [])), err.error)
        if found is None:
            return None
        index, retrier = found
        done = attempts.get(index, 0)
        if done >= int(retrier.get("MaxAttempts", 3)):
            return None
        attempts[index] = done + 1
        return _delay(retrier, done + 1, self.rng)

    def _catcher(self, state: Mapping[str, Any], err: StatesError) -> Mapping[str, Any] | None:
        found = _first(list(state.get("Catch", [])), err.error)
        return None if found is None else found[1]

    # --- states -------------------------------------------------------------------------------

    def _fail(self, state: Mapping[str, Any], raw: Any, ctx: Any) -> Any:
        name = ctx["State"]["Name"]

        def text(key: str) -> str | None:
            if f"{key}Path" in state:
                value = self._dynamic(state[f"{key}Path"], raw, ctx, name, f"{key}Path")
                return value if isinstance(value, str) else json.dumps(value)
            return None if state.get(key) is None else str(state[key])

        # No Error (or Cause) fails the execution with none: AWS reports no error name.
        raise StatesError(text("Error"), text("Cause"))

    def _wait(self, name: str, state: Mapping[str, Any], data: Any) -> None:
        if "Seconds" in state:
            seconds = float(state["Seconds"])
        elif "SecondsPath" in state:
            path = state["SecondsPath"]
            try:
                value = jsonpath.get(data, path)
            except jsonpath.PathError:
                raise StatesError(
                    "States.Runtime",
                    f"The SecondsPath parameter does not reference an input value: {path}",
                ) from None
            # AWS takes a long: 1.5 (or "1") fails, as does a negative number.
            if isinstance(value, bool) or not isinstance(value, int):
                raise StatesError(
                    "States.Runtime",
                    "The SecondsPath parameter cannot be parsed as a long value: "
                    f"{path} == {_java_text(value)}",
                )
            if value < 0:
                raise StatesError(
                    "States.Runtime",
                    f"The SecondsPath parameter references a negative value: {path} == {value}",
                )
            seconds = float(value)
        else:
            stamp = state.get("Timestamp")
            if "TimestampPath" in state:
                stamp = self._get(data, state["TimestampPath"], name)
            when = _parse_timestamp(stamp)
            if when is None:
                raise StatesError("States.Runtime", f"state {name!r}: {stamp!r} is no timestamp")
            seconds = max(0.0, when.timestamp() - time.time())
        self.sleep(seconds * self.time_scale)


@dataclass
class _Caught(Exception):
    output: Any
    next_name: str
    error: tuple[str, str]


def _error_matches(names: list[str], error: str) -> bool:
    if error in names:
        return True
    if "States.ALL" in names and error not in _NOT_MATCHED_BY_ALL:
        return True
    return "States.TaskFailed" in names and error not in (*_NOT_MATCHED_BY_ALL, "States.Timeout")


def _first(items: list[Mapping[str, Any]], error: str) -> tuple[int, Mapping[str, Any]] | None:
    for i, item in enumerate(items):
        if _error_matches(list(item.get("ErrorEquals", [])), error):
            return i, item
    return None


def _delay(retrier: Mapping[str, Any], attempt: int, rng: random.Random) -> float:
    interval = float(retrier.get("IntervalSeconds", 1))
    delay = interval * float(retrier.get("BackoffRate", 2.0)) ** (attempt - 1)
    if "MaxDelaySeconds" in retrier:
        delay = min(delay, float(retrier["MaxDelaySeconds"]))
    if retrier.get("JitterStrategy") == "FULL":
        delay = rng.uniform(0, delay)
    return delay
