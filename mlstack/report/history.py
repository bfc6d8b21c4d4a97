"""An execution's history in the shape of Step Functions' ``GetExecutionHistory`` (its
``events``: ``id``, ``previousEventId``, ``timestamp``, ``type`` and the type's details), and the
timeline's bars read from it.

AWS's history comes from boto3 (``mlstack report``); a local run's is recorded by
:class:`HistoryRecorder`, a listener of the local interpreter, with the same event types and
details (``<Type>StateEntered``/``Exited`` with ``stateEnteredEventDetails.name``,
``TaskFailed`` with ``taskFailedEventDetails``, ``MapIterationStarted`` with
``mapIterationStartedEventDetails.{name, index}``, ``ExecutionFailed``). A state inside a Map
iteration is found as AWS lays it out: by following ``previousEventId`` back to its
``MapIterationStarted``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from mlstack.report.svg import Bar

_FAILURES = (
    "TaskFailed",
    "TaskTimedOut",
    "TaskStartFailed",
    "TaskSubmitFailed",
    "MapStateFailed",
    "ParallelStateFailed",
)
_EXECUTION_ENDS = ("ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted")
_ITERATION_ENDS = ("MapIterationSucceeded", "MapIterationFailed", "MapIterationAborted")


def _seconds(value: Any) -> float:
    """An event's timestamp (a datetime from boto3, an ISO string from a file) as epoch
    seconds."""
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _iterations(events: list[Mapping[str, Any]]) -> dict[int, str]:
    """Each event's Map iteration (``"Map state [index]"``, nested ones joined by " / "), or
    "" at the top of the execution."""
    by_id = {int(e["id"]): e for e in events}
    found: dict[int, str] = {}
    parents: dict[str, str] = {}
    for event in sorted(events, key=lambda e: int(e["id"])):
        previous = event.get("previousEventId")
        inherited = found.get(int(previous), "") if previous in by_id else ""
        kind = event["type"]
        if kind == "MapIterationStarted":
            details = event.get("mapIterationStartedEventDetails", {})
            key = f"{details.get('name')} [{details.get('index')}]"
            key = f"{inherited} / {key}" if inherited else key
            parents[key] = inherited
            found[int(event["id"])] = key
        elif kind in _ITERATION_ENDS:
            details = next(v for k, v in event.items() if k.endswith("EventDetails"))
            key = f"{details.get('name')} [{details.get('index')}]"
            owner = next((k for k in parents if k == key or k.endswith(f" / {key}")), None)
            found[int(event["id"])] = parents.get(owner, "") if owner else inherited
        else:
            found[int(event["id"])] = inherited
    return found


def timeline_bars(events: Iterable[Mapping[str, Any]]) -> list[Bar]:
    """One bar a state visit, from its ``StateEntered`` to its ``StateExited`` (or the failure
    that ended the execution). A failure inside a visit that a new ``TaskScheduled`` follows is
    a retry; a visit that exits after a failure without one was caught; one that the
    execution's failure ends failed."""
    ordered = sorted(events, key=lambda e: int(e["id"]))
    if not ordered:
        return []
    start = _seconds(ordered[0]["timestamp"])
    iterations = _iterations(ordered)
    open_visits: dict[tuple[str, str], dict[str, Any]] = {}
    bars: list[tuple[int, Bar]] = []  # (entered event id, bar)
    for event in ordered:
        kind, at = event["type"], _seconds(event["timestamp"]) - start
        where = iterations[int(event["id"])]
        here = [v for (place, _), v in open_visits.items() if place == where]
        if kind.endswith("StateEntered"):
            name = event["stateEnteredEventDetails"]["name"]
            open_visits[(where, name)] = {
                "start": at,
                "retries": [],
                "failed": None,
                "name": name,
                "order": int(event["id"]),
            }
        elif kind.endswith("StateExited"):
            key = (where, event["stateExitedEventDetails"]["name"])
            if key in open_visits:
                visit = open_visits.pop(key)
                status = "caught" if visit["failed"] is not None else "succeeded"
                bars.append((visit["order"], _bar(visit, where, at, status)))
        elif kind == "TaskScheduled":
            for visit in here:
                if visit["failed"] is not None:
                    visit["retries"].append(visit["failed"])
                    visit["failed"] = None
        elif kind in _EXECUTION_ENDS:
            for (place, _), visit in open_visits.items():
                bars.append((visit["order"], _bar(visit, place, at, "failed")))
            open_visits.clear()
        elif kind in _FAILURES:
            for visit in here:
                visit["failed"] = at
    return [bar for _, bar in sorted(bars, key=lambda pair: (pair[1].start, pair[0]))]


def _bar(visit: dict[str, Any], where: str, end: float, status: str) -> Bar:
    lane = f"{where} / {visit['name']}" if where else visit["name"]
    return Bar(lane=lane, start=visit["start"], end=end, status=status, retries=visit["retries"])


def task_resources(definition: Mapping[str, Any]) -> dict[str, str]:
    """Every Task state's ``Resource`` by state name, nested Map and Parallel states too."""
    found: dict[str, str] = {}
    for name, state in (definition.get("States") or {}).items():
        if state.get("Type") == "Task":
            found[name] = str(state.get("Resource", ""))
        for inner in [
            state.get("ItemProcessor") or state.get("Iterator"),
            *state.get("Branches", []),
        ]:
            if isinstance(inner, Mapping):
                found.update(task_resources(inner))
    return found


def _details_key(kind: str) -> str:
    """The event's details key as AWS names it (``TaskStateEntered`` → ``stateEnteredEventDetails``,
    ``TaskFailed`` → ``taskFailedEventDetails``)."""
    for suffix in ("StateEntered", "StateExited"):
        if kind.endswith(suffix):
            return "state" + suffix[len("State") :] + "EventDetails"
    return kind[0].lower() + kind[1:] + "EventDetails"


class HistoryRecorder:
    """A listener of the local interpreter that records GetExecutionHistory's events and passes
    every call on to ``inner`` (the run's progress reporter)."""

    def __init__(
        self, inner: Any, definition: Mapping[str, Any] | None = None, region: str = "us-east-1"
    ) -> None:
        self.inner = inner
        self.region = region
        self.resources = task_resources(definition or {})
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._local = threading.local()
        self._entered: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:  # the reporter's other methods (info, log, rows)
        return getattr(self.inner, name)

    def _add(self, kind: str, details: Mapping[str, Any], previous: int | None = None) -> int:
        with self._lock:
            event_id = len(self.events) + 1
            if previous is None:
                previous = getattr(self._local, "last", None) or event_id - 1
            self.events.append(
                {
                    "timestamp": datetime.fromtimestamp(time.time(), UTC).isoformat(),
                    "type": kind,
                    "id": event_id,
                    "previousEventId": previous,
                    _details_key(kind): dict(details),
                }
            )
            self._local.last = event_id
            return event_id

    def _task(self, name: str) -> dict[str, str]:
        """``resourceType`` and ``resource`` of a Task's events, as AWS splits the ARN."""
        arn = self.resources.get(name, "")
        prefix = "arn:aws:states:::"
        if arn.startswith(prefix) and ":" in arn[len(prefix) :]:
            kind, resource = arn[len(prefix) :].split(":", 1)
            return {"resourceType": kind, "resource": resource}
        return {"resourceType": "lambda" if ":lambda:" in arn else "activity", "resource": arn}

    def _close_caught(self) -> None:
        """The state that failed on this thread and was caught exits as its catcher's Next is
        entered (an uncaught failure ends the execution instead, without an exit)."""
        pending = getattr(self._local, "failed", None)
        if pending is not None:
            self._local.failed = None
            self._add(f"{pending[1]}StateExited", {"name": pending[0]})

    def execution_started(self) -> None:
        self._add("ExecutionStarted", {}, previous=0)

    def execution_ended(self, status: str, error: str | None, cause: str | None) -> None:
        self._local.failed = None
        if status == "SUCCEEDED":
            self._add("ExecutionSucceeded", {})
            return
        kind = {"TIMED_OUT": "ExecutionTimedOut", "ABORTED": "ExecutionAborted"}.get(
            status, "ExecutionFailed"
        )
        self._add(kind, {"error": error or "", "cause": (cause or "")[:32768]})

    # --- asl.Listener -------------------------------------------------------------------------
    def state_entered(self, name: str, state_type: str, data: Any) -> None:
        self._close_caught()
        self._entered[name] = self._add(f"{state_type}StateEntered", {"name": name})
        self.inner.state_entered(name, state_type, data)

    def state_exited(self, name: str, state_type: str, output: Any, seconds: float) -> None:
        self._close_caught()
        self._add(f"{state_type}StateExited", {"name": name})
        self.inner.state_exited(name, state_type, output, seconds)

    def state_failed(
        self, name: str, state_type: str, error: str, cause: str, seconds: float
    ) -> None:
        kind = {"Task": "TaskFailed", "Map": "MapStateFailed", "Parallel": "ParallelStateFailed"}
        if state_type in kind:
            details = {"error": error, "cause": (cause or "")[:32768]}
            if state_type == "Task":
                details.update(self._task(name))
            self._add(kind[state_type], details)
            self._local.failed = (name, state_type)
        self.inner.state_failed(name, state_type, error, cause, seconds)

    def state_retrying(self, name: str, error: str, attempt: int, delay: float) -> None:
        self._add("TaskFailed", {**self._task(name), "error": error, "cause": f"retry {attempt}"})
        # the parameters are not recorded locally: "{}" stands for them
        self._add("TaskScheduled", {**self._task(name), "region": self.region, "parameters": "{}"})
        self.inner.state_retrying(name, error, attempt, delay)

    def map_iteration(self, name: str, index: int, status: str, total: int) -> None:
        """``status``: Started (on the iteration's thread), Succeeded or Failed."""
        if status == "Started":
            self._local.last = self._entered.get(name, 0)
        else:
            self._close_caught()
            self._local.failed = None
        self._add(f"MapIteration{status}", {"name": name, "index": index})
        inner = getattr(self.inner, "map_iteration", None)
        if inner is not None:  # the run's progress
            inner(name, index, status, total)
