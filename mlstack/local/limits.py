"""Step Functions' own limits on an execution, as local mode enforces them.

From "Step Functions service quotas" (developer guide, "Quotas related to task executions" and
"Quotas related to state machine executions"):

* Maximum input or output size for a task, state, or execution: 256 KiB (262,144 bytes) of
  data as a UTF-8 encoded string. A task whose result is larger fails with
  ``States.DataLimitExceeded``, cause "The state/task '<name>' returned a result with a size
  exceeding the maximum number of bytes service limit." (the cause AWS gives, as reported in
  awslabs/aws-securityhub-multiaccount-scripts issue 63 and jogold/cloudstructs issue 163).
  ``States.ALL`` does not catch it; a Catch naming it does.
* Maximum execution history size: 25,000 events. "Avoid reaching the history quota" (developer
  guide): when the execution has 24,999 events and the next is not ``ExecutionSucceeded``, event
  25,000 is ``ExecutionFailed`` with ``States.Runtime``, "The execution reached the maximum
  number of history events (25000)." (the cause of recorded executions, e.g. loads/ardere issue
  86); no Retry or Catch applies.
"""

from __future__ import annotations

import json
from typing import Any

MAX_PAYLOAD_BYTES = 262_144
MAX_HISTORY_EVENTS = 25_000
DATA_LIMIT_EXCEEDED = "States.DataLimitExceeded"


class ExecutionLimitReached(Exception):
    """The execution itself fails (no Retry or Catch applies): ``error`` and ``cause`` as AWS
    records them in ExecutionFailed."""

    def __init__(self, error: str, cause: str) -> None:
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause


def payload_bytes(value: Any) -> int:
    """The size Step Functions counts: the JSON text's UTF-8 bytes."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def result_error(state: str, value: Any) -> tuple[str, str] | None:
    """(error, cause) when a task's result is over the limit."""
    if payload_bytes(value) <= MAX_PAYLOAD_BYTES:
        return None
    return DATA_LIMIT_EXCEEDED, (
        f"The state/task '{state}' returned a result with a size exceeding the maximum number "
        "of bytes service limit."
    )


def payload_error(state: str, what: str, value: Any) -> tuple[str, str] | None:
    """(error, cause) when a state's input or output (``what``) is over the limit; the cause
    is local wording (AWS's own for these was not found; the quota is the same)."""
    size = payload_bytes(value)
    if size <= MAX_PAYLOAD_BYTES:
        return None
    return DATA_LIMIT_EXCEEDED, (
        f"The state '{state}' has {what} of {size} bytes, over the maximum of "
        f"{MAX_PAYLOAD_BYTES} bytes (256 KiB) of a state's input or output."
    )


def history_full(events: int) -> ExecutionLimitReached | None:
    """The failure once an execution has ``events`` events and another that is not
    ExecutionSucceeded is due (that one would be event 25,000: ExecutionFailed)."""
    if events < MAX_HISTORY_EVENTS:
        return None
    return ExecutionLimitReached(
        "States.Runtime",
        f"The execution reached the maximum number of history events ({MAX_HISTORY_EVENTS}).",
    )
