"""Map states of the ASL interpreter (:mod:`mlstack.local.asl`), inline and distributed, the way
AWS runs them (see the interpreter's docstring): at most ``MaxConcurrency`` iterations at once,
outputs in item order, a distributed Map's items as child executions against its tolerated
failures."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from mlstack.local import jsonpath
from mlstack.local.asl_data import DataProcessing, _compact, _java_type
from mlstack.local.asl_jsonata import JSONATA, QUERY_EVALUATION_ERROR, resolve
from mlstack.local.asl_types import ExecutionResult, StatesError, _iso

# AWS's most concurrent iterations: 40 inline ("Using Map state in Inline mode"), 10,000 child
# executions distributed ("Using Map state in Distributed mode": its default MaxConcurrency).
INLINE_MAX_CONCURRENCY = 40
DISTRIBUTED_MAX_CONCURRENCY = 10_000
DISTRIBUTED_LOCAL_THREADS = 16  # an unbounded Distributed Map's threads on this machine


class MapStates(DataProcessing):
    """The Map (and Parallel branch) machinery of :class:`mlstack.local.asl.Interpreter`."""

    # Provided by the Interpreter.
    on_child_execution: Callable[[str, str], None] | None
    _languages: dict[int, str]  # each state's query language, by the state's id
    listener: Any
    _lock: threading.Lock

    def _iteration_event(self, name: str, index: int, status: str, total: int) -> None:
        """Tell a listener that has ``map_iteration`` (the history recorder, the progress) of an
        iteration's start or end (MapIterationStarted, MapIterationSucceeded,
        MapIterationFailed) among ``total``."""
        hook = getattr(self.listener, "map_iteration", None)
        if hook is not None:
            hook(name, index, status, total)

    def _run(
        self,
        machine: Mapping[str, Any],
        data: Any,
        context: dict[str, Any],
        result: ExecutionResult,
        deadline: float | None,
    ) -> Any:  # pragma: no cover - the Interpreter's
        raise NotImplementedError

    def _event(self, result: ExecutionResult, count: int = 1) -> int:  # pragma: no cover
        raise NotImplementedError

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
                self._iteration_event(name, index, "Started", len(items))
                item_input = self._item_input(name, state, effective, item_ctx, iteration_id)
                try:
                    output = self._run(
                        processor, item_input, self._branch_ctx(ctx), result, deadline
                    )
                except StatesError:
                    self._iteration_event(name, index, "Failed", len(items))
                    raise
                self._event(result)  # MapIterationSucceeded
                self._iteration_event(name, index, "Succeeded", len(items))
                return output

            outputs = _bounded(len(items), workers, iteration)
        self._event(result)  # MapStateSucceeded (Distributed: MapRunSucceeded)
        return outputs

    def _items(self, state: Mapping[str, Any], effective: Any, ctx: dict[str, Any]) -> list[Any]:
        if self._languages.get(id(state)) == JSONATA:
            # JSONata: Items (a JSON array or a JSONata string), else the state input.
            states = {"input": effective, "context": ctx}
            found = resolve(state["Items"], states, "Items") if "Items" in state else effective
            if not isinstance(found, list):
                raise StatesError(
                    QUERY_EVALUATION_ERROR,
                    f"Map state items must be an array but was: {_java_type(found)}",
                )
            return found
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
        if self._languages.get(id(state)) == JSONATA:
            states = {"input": effective, "context": item_ctx}
            return resolve(state["ItemSelector"], states, "ItemSelector")
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
            self._iteration_event(name, index, "Started", len(items))
            try:
                output = self._run(processor, item_input, child_ctx, child_result, child_deadline)
                self._iteration_event(name, index, "Succeeded", len(items))
                return output
            except StatesError as err:
                self._iteration_event(name, index, "Failed", len(items))
                tolerated.failed(err)  # raises when past the threshold
                return {"Error": err.error or None, "Cause": err.cause or None}
            finally:
                with self._lock:
                    result.history.extend(child_result.history)

        return _bounded(len(items), workers, child)


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
