"""EventBridge, locally: the app's rules (read from the cloud assembly) matched against the events
local services send, each match queued as an execution of the rule's target state machine.

An event has the envelope EventBridge gives service events (``version``, ``id``,
``detail-type``, ``source``, ``account``, ``time``, ``region``, ``resources``, ``detail``:
"Amazon EventBridge events", EventBridge user guide). Patterns follow "Event patterns" of the same
guide for what the app's rules use: each key of the pattern must be in the event; an array
matches when the event's value (or any element of an event's array) equals one of its values;
an object matches the event's object key by key; ``{"prefix": ...}``, ``{"anything-but": [...]}``
and ``{"exists": true|false}`` are understood.

Executions start after the event, as EventBridge starts its targets asynchronously: the caller
runs them with :meth:`LocalEventBridge.drain` (the local run once its execution has ended).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlstack.local.assembly import EventRule, LocalAssembly, StateMachine


@dataclass(frozen=True)
class Delivery:
    """One execution a rule started: the machine, the event, and what the run of it returned."""

    rule: str
    machine: StateMachine
    event: dict[str, Any]


def matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """Whether ``event`` matches the EventBridge ``pattern``."""
    for key, expected in pattern.items():
        present = key in event
        value = event.get(key)
        if isinstance(expected, Mapping):
            if not isinstance(value, Mapping) or not matches(expected, value):
                return False
            continue
        if not isinstance(expected, list):
            return False  # a pattern's leaves are arrays
        if not any(_leaf_matches(rule, value, present) for rule in expected):
            return False
    return True


def _leaf_matches(rule: Any, value: Any, present: bool) -> bool:
    if isinstance(rule, Mapping):
        if "exists" in rule:
            return bool(rule["exists"]) == present
        if not present:
            return False
        values = value if isinstance(value, list) else [value]
        if "prefix" in rule:
            return any(isinstance(v, str) and v.startswith(rule["prefix"]) for v in values)
        if "anything-but" in rule:
            refused = rule["anything-but"]
            refused = refused if isinstance(refused, list) else [refused]
            return all(v not in refused for v in values)
        return False
    if not present:
        return False
    values = value if isinstance(value, list) else [value]
    return any(v == rule for v in values)


class LocalEventBridge:
    """The assembly's rules; :meth:`service_event` is LocalSageMaker's ``on_event``."""

    def __init__(self, assembly: LocalAssembly) -> None:
        self.region = assembly.region
        self.account = assembly.account
        self.rules: list[EventRule] = list(assembly.event_rules)
        self.machines = dict(assembly.state_machines)
        self.pending: list[Delivery] = []
        self.events: list[dict[str, Any]] = []

    def service_event(self, detail_type: str, detail: dict[str, Any], source: str = "") -> None:
        """An event of a SageMaker resource (``source`` aws.sagemaker), in EventBridge's
        envelope."""
        resources = [str(detail[k]) for k in detail if k.endswith("Arn") and detail[k]][:1]
        self.put(
            {
                "version": "0",
                "id": str(uuid.uuid4()),
                "detail-type": detail_type,
                "source": source or "aws.sagemaker",
                "account": self.account,
                "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "region": self.region,
                "resources": resources,
                "detail": detail,
            }
        )

    def put(self, event: dict[str, Any]) -> None:
        """Queue an execution for each target of each rule the event matches."""
        self.events.append(event)
        for rule in self.rules:
            if not matches(rule.pattern, event):
                continue
            for target in rule.targets:
                machine = self.machines.get(target)
                if machine is not None:
                    self.pending.append(Delivery(rule.name, machine, event))

    def drain(self, run: Callable[[Delivery], Any]) -> list[tuple[Delivery, Any]]:
        """Run every queued execution (and those their events queue), in order."""
        done: list[tuple[Delivery, Any]] = []
        while self.pending:
            delivery = self.pending.pop(0)
            done.append((delivery, run(delivery)))
        return done
