"""What the Amazon States Language interpreter (:mod:`mlstack.local.asl`) and its callers share:
its errors, a Task's call, the listener of an execution, and an execution's result."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

# The errors whose cause AWS prefixes with the state and its entered event (recorded
# ExecutionFailed events of both).
_LOCATED = ("States.Runtime", "States.QueryEvaluationError")


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
        """Prefix the cause as AWS does for a States.Runtime or States.QueryEvaluationError
        failure of the execution."""
        if self.error in _LOCATED and not self.located:
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
