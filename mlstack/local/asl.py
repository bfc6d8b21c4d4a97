"""A small, generic interpreter of Amazon States Language (JSONPath) state machine definitions.

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
  MaxConcurrency is absent or 0; locally at most ``DISTRIBUTED_LOCAL_THREADS`` threads then).
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

Not supported (rejected up front with a message naming the field): JSONata (``QueryLanguage``),
variables (``Assign``), and on a Map ``ItemReader``, ``ItemBatcher``, ``ResultWriter``,
``MaxConcurrencyPath``, ``ToleratedFailureCountPath`` and ``ToleratedFailurePercentagePath``.

Task states call ``task_handler(TaskCall)``; it returns the task's result or raises
:class:`StatesError`. Any other exception from a handler becomes ``States.TaskFailed``. Wait
states and retry intervals last ``time_scale`` times their defined time (local runs shorten them).
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from mlstack.local import intrinsics, jsonpath, limits

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
# AWS's most concurrent iterations: 40 inline ("Using Map state in Inline mode"), 10,000 child
# executions distributed ("Using Map state in Distributed mode": its default MaxConcurrency).
INLINE_MAX_CONCURRENCY = 40
DISTRIBUTED_MAX_CONCURRENCY = 10_000
DISTRIBUTED_LOCAL_THREADS = 16  # an unbounded Distributed Map's threads on this machine
# Errors that States.ALL does not match (AWS: terminal, neither retried nor caught by it).
_NOT_MATCHED_BY_ALL = ("States.Runtime", "States.DataLimitExceeded")


class StatesError(Exception):
    """A state failed with an error name and a cause (what Retry and Catch match on).

    A Fail state without ``Error``/``Cause`` fails with neither (``None``), as in AWS.
    """

    def __init__(self, error: str | None, cause: str | None = "") -> None:
        super().__init__(f"{error}: {cause}" if cause else str(error))
        self.error = error or ""  # "" (none) reaches the execution result as None
        self.cause = cause or ""
        self.located = False  # the cause names the state and its entered event (States.Runtime)

    def locate(self, state: str, event_id: int) -> None:
        """Prefix the cause as AWS does for a States.Runtime failure of the execution."""
        if self.error == "States.Runtime" and not self.located:
            self.cause = (
                f"An error occurred while executing the state '{state}' (entered at the event "
                f"id #{event_id}). {self.cause}"
            )
        self.located = True


class DefinitionError(ValueError):
    """The definition is not valid ASL or uses a feature this interpreter does not support."""


@dataclass(frozen=True)
class TaskCall:
    """What a Task state asks its resource to do."""

    state_name: str
    resource: str
    parameters: Any
    retry_count: int
    timeout_seconds: float | None
    heartbeat_seconds: float | None
    context: Mapping[str, Any]


TaskHandler = Callable[[TaskCall], Any]


class Listener(Protocol):
    def state_entered(self, name: str, state_type: str, data: Any) -> None: ...
    def state_exited(self, name: str, state_type: str, output: Any, seconds: float) -> None: ...
    def state_failed(
        self, name: str, state_type: str, error: str, cause: str, seconds: float
    ) -> None: ...
    def state_retrying(self, name: str, error: str, attempt: int, delay: float) -> None: ...


class _NullListener:
    def state_entered(self, name: str, state_type: str, data: Any) -> None:
        pass

    def state_exited(self, name: str, state_type: str, output: Any, seconds: float) -> None:
        pass

    def state_failed(
        self, name: str, state_type: str, error: str, cause: str, seconds: float
    ) -> None:
        pass

    def state_retrying(self, name: str, error: str, attempt: int, delay: float) -> None:
        pass


@dataclass
class StateRecord:
    """One visit of a state (in a Parallel branch or Map iteration too)."""

    name: str
    state_type: str
    seconds: float
    status: str  # "succeeded", "failed", "caught"
    error: str | None = None
    cause: str | None = None


@dataclass
class ExecutionResult:
    status: str  # "SUCCEEDED", "FAILED", "TIMED_OUT"
    output: Any = None
    error: str | None = None
    cause: str | None = None
    history: list[StateRecord] = field(default_factory=list)
    seconds: float = 0.0
    events: int = 0  # history events, counted as AWS's GetExecutionHistory numbers them

    def event(self, count: int = 1) -> int:
        """Add ``count`` history events; the id of the last one."""
        self.events += count
        return self.events

    @property
    def states(self) -> list[str]:
        return [r.name for r in self.history]


def _iso(t: float) -> str:
    return (
        datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(t % 1 * 1000):03d}Z"
    )


def _parse_timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})", value):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def validate(definition: Mapping[str, Any], where: str = "the definition") -> None:
    """Check the structure this interpreter relies on; raise :class:`DefinitionError`."""
    if definition.get("QueryLanguage", "JSONPath") != "JSONPath":
        raise DefinitionError(
            f"{where}: QueryLanguage {definition['QueryLanguage']!r} is not "
            "supported locally (only JSONPath)"
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
        if state.get("QueryLanguage", "JSONPath") != "JSONPath":
            raise DefinitionError(f"state {name!r}: only JSONPath is supported locally")
        for unsupported in ("Assign", *_UNSUPPORTED_MAP_FIELDS):
            if unsupported in state:
                raise DefinitionError(f"state {name!r}: {unsupported} is not supported locally")
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
            validate(branch, f"a branch of {name!r}")
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if kind == "Map":
            if not isinstance(processor, dict):
                raise DefinitionError(f"state {name!r}: a Map needs an ItemProcessor")
            _validate_map(name, state, processor)
            validate(processor, f"the ItemProcessor of {name!r}")


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


class Interpreter:
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
        attempts: dict[int, int] = {}
        retry_count = 0
        while True:
            ctx["State"]["RetryCount"] = retry_count
            try:
                value = self._work(name, state, effective, ctx, result, deadline)
                if "ResultSelector" in state:
                    value = self._template(state["ResultSelector"], value, ctx, name)
                output = self._output_path(state, self._result_path(state, raw, value), ctx)
                return output, next_name
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
                    path = catcher.get("ResultPath", "$")
                    output = raw if path is None else self._put(raw, path, error_output)
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
            params = self._parameters(state, "Parameters", effective, ctx, name)
            self._event(result)  # ParallelStateStarted
            outputs = [
                self._run(b, params, self._branch_ctx(ctx), result, deadline)
                for b in state["Branches"]
            ]
            self._event(result)  # ParallelStateSucceeded
            return outputs
        if kind == "Map":
            return self._map(name, state, effective, ctx, result, deadline)
        params = self._parameters(state, "Parameters", effective, ctx, name)
        timeout = self._seconds(state, "TimeoutSeconds", effective, name)
        heartbeat = self._seconds(state, "HeartbeatSeconds", effective, name)
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

    def _branch_ctx(self, ctx: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in ctx.items() if k in ("Execution", "StateMachine")}

    def _map(
        self,
        name: str,
        state: Mapping[str, Any],
        effective: Any,
        ctx: dict[str, Any],
        result: ExecutionResult,
        deadline: float | None,
    ) -> list[Any]:
        items = self._items(state, effective, ctx)
        self._event(result)  # MapStateStarted (Distributed: MapRunStarted)
        processor = state.get("ItemProcessor") or state["Iterator"]
        limit = int(state.get("MaxConcurrency", 0))
        if processor.get("ProcessorConfig", {}).get("Mode") == "DISTRIBUTED":
            outputs = self._distributed(name, state, processor, items, effective, ctx, result)
        else:
            workers = min(limit, INLINE_MAX_CONCURRENCY, len(items)) if limit > 1 else 1

            def iteration(index: int) -> Any:
                item_ctx = {**ctx, "Map": {"Item": {"Index": index, "Value": items[index]}}}
                iteration_id = self._event(result)  # MapIterationStarted
                item_input = self._item_input(name, state, effective, item_ctx, iteration_id)
                output = self._run(processor, item_input, self._branch_ctx(ctx), result, deadline)
                self._event(result)  # MapIterationSucceeded
                return output

            outputs = _bounded(len(items), workers, iteration)
        self._event(result)  # MapStateSucceeded (Distributed: MapRunSucceeded)
        return outputs

    def _items(self, state: Mapping[str, Any], effective: Any, ctx: dict[str, Any]) -> list[Any]:
        items_path = state.get("ItemsPath", "$")
        try:
            root = ctx if items_path.startswith("$$") else effective
            items = jsonpath.get(
                root, items_path[1:] if items_path.startswith("$$") else items_path
            )
        except jsonpath.PathError:
            raise StatesError(
                "States.Runtime",
                f"The JSONPath '{items_path}' could not be found in the input "
                f"'{_compact(effective)}'",
            ) from None
        if not isinstance(items, list):
            raise StatesError(
                "States.Runtime",
                f"Map state input must be an array but was: {_java_type(items)}",
            )
        return items

    def _item_input(
        self,
        name: str,
        state: Mapping[str, Any],
        effective: Any,
        item_ctx: dict[str, Any],
        event_id: int,
    ) -> Any:
        """One item's input: the ItemSelector (or the deprecated Parameters) applied, else the
        item itself."""
        selector_key = "ItemSelector" if "ItemSelector" in state else "Parameters"
        if selector_key not in state:
            return item_ctx["Map"]["Item"]["Value"]
        try:
            return self._template(state[selector_key], effective, item_ctx, name)
        except StatesError as err:
            # Evaluated in the iteration: the cause names the path, not the field, and the
            # event is the iteration's (LocalStack's recorded AWS behaviour).
            m = re.match(r"The JSONPath '(.*)' specified for the field", err.cause)
            if err.error == "States.Runtime" and m:
                err.cause = (
                    f"The JSONPath '{m[1]}' could not be found in the input '{_compact(effective)}'"
                )
            err.locate(name, event_id)
            raise

    def _distributed(
        self,
        name: str,
        state: Mapping[str, Any],
        processor: Mapping[str, Any],
        items: list[Any],
        effective: Any,
        ctx: dict[str, Any],
        result: ExecutionResult,
    ) -> list[Any]:
        """Each item as a child execution of the Map Run, at most MaxConcurrency at once."""
        limit = int(state.get("MaxConcurrency", 0)) or DISTRIBUTED_MAX_CONCURRENCY
        workers = max(1, min(limit, len(items), DISTRIBUTED_LOCAL_THREADS))
        label = str(state.get("Label", name))
        # Child executions are "execution:<state machine>/<Map Run label>:<name>" (the resource
        # "IAM policies for using Distributed Map states" grants as execution:<name>/*).
        parent = ctx["StateMachine"]["Id"].replace(":stateMachine:", ":execution:")
        tolerated = _Tolerance(state, len(items))

        def child(index: int) -> Any:
            item_ctx = {**ctx, "Map": {"Item": {"Index": index, "Value": items[index]}}}
            item_input = self._item_input(name, state, effective, item_ctx, result.events)
            child_name = str(uuid.uuid4())
            arn = f"{parent}/{label}:{child_name}"
            if self.on_child_execution is not None:
                self.on_child_execution(name, arn)
            child_ctx = {
                "Execution": {
                    **ctx["Execution"],
                    "Id": arn,
                    "Name": child_name,
                    "Input": item_input,
                    "StartTime": _iso(time.time()),
                    "RedriveCount": 0,
                },
                "StateMachine": ctx["StateMachine"],
            }
            timeout = processor.get("TimeoutSeconds")
            child_deadline = time.time() + timeout if timeout else None
            child_result = ExecutionResult(status="SUCCEEDED")
            child_result.event()  # the child's ExecutionStarted
            try:
                return self._run(processor, item_input, child_ctx, child_result, child_deadline)
            except StatesError as err:
                tolerated.failed(err)  # raises when past the threshold
                return {"Error": err.error or None, "Cause": err.cause or None}
            finally:
                with self._lock:
                    result.history.extend(child_result.history)

        return _bounded(len(items), workers, child)

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


class _Tolerance:
    """A Map Run's tolerated failures (maprun-fail-threshold.html: the run fails when failed
    items exceed ToleratedFailureCount or ToleratedFailurePercentage of all items, either one
    when both are given; with neither, any failure fails it)."""

    def __init__(self, state: Mapping[str, Any], total: int) -> None:
        given = "ToleratedFailureCount" in state or "ToleratedFailurePercentage" in state
        self.count = state.get("ToleratedFailureCount", None if given else 0)
        self.percentage = state.get("ToleratedFailurePercentage", None if given else 0)
        self.total = max(total, 1)
        self.failures = 0
        self._lock = threading.Lock()

    def failed(self, err: StatesError) -> None:
        with self._lock:
            self.failures += 1
            over = (self.count is not None and self.failures > self.count) or (
                self.percentage is not None and self.failures * 100 / self.total > self.percentage
            )
        if over:
            raise StatesError(
                "States.ExceedToleratedFailureThreshold",
                f"The specified tolerated failure threshold was exceeded: {self.failures} of "
                f"{self.total} items failed (last: {err.error}: {err.cause})",
            )


def _bounded(count: int, workers: int, work: Callable[[int], Any]) -> list[Any]:
    """``work(i)`` for i in 0..count-1, at most ``workers`` at once, outputs in index order. The
    first error (in time) stops new work from starting and is raised once the running work has
    ended."""
    outputs: list[Any] = [None] * count
    if workers <= 1:
        for index in range(count):
            outputs[index] = work(index)
        return outputs
    errors: list[BaseException] = []
    pending = iter(range(count))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                index = None if errors else next(pending, None)
            if index is None:
                return
            try:
                outputs[index] = work(index)
            except BaseException as err:  # re-raised on the caller's thread
                with lock:
                    errors.append(err)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return outputs


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
