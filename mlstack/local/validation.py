"""Requests and responses of local services, checked against the service's own model (botocore's
``service-2.json``) as the service checks them: required members, types, enums, numeric ranges,
lengths and ``pattern`` regular expressions.

botocore's client checks types and required members only; the rest is enforced by the service,
which answers ``ValidationException`` (the error code differs per service, :data:`VALIDATION_CODES`)
with every violation in one message, worded as AWS words it::

    1 validation error detected: Value '{"eta": "0.3"}' at
    'customerMetadataProperties.hyperparameters' failed to satisfy constraint: Member must
    satisfy regular expression pattern: ...

(wording as AWS answers it, e.g. aws/aws-cli issue 790: "1 validation error detected: Value ...
at 'tableName' failed to satisfy constraint: Member must satisfy regular expression pattern:
[a-zA-Z0-9_.-]+"; list members are ``<list>.<N>.member`` counted from 1, as in
"at 'tags.6.member.value'" of SWO-GS/auto-tag issue 90; several violations are joined with
"; "). A map's value is named by its key (``customerMetadataProperties.hyperparameters``).

Patterns are Java regular expressions matched against the whole value (Java's ``matches``: the
table-name pattern ``[a-zA-Z0-9_.-]+`` above refuses a quoted name it contains): they are
translated for the ``regex`` package, which knows ``\\p{L}``-style classes (:func:`translate`).

A type mismatch is the JSON protocol's ``SerializationException``; a member the shape does not
have is refused too (Step Functions refuses it when the state machine is created; botocore's
client refuses it before sending).
"""

from __future__ import annotations

import datetime
import functools
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import botocore.session
import regex

# The error code each service answers for a request that breaks its model's constraints.
# SageMaker, Lambda, EventBridge and Step Functions: ValidationException (e.g. "Error Code:
# ValidationException" of AWSLambda in awslabs/aws-transit-vpc issue 32); the query-protocol
# services SNS and CloudWatch: ValidationError; S3 does not validate this way (InvalidArgument).
VALIDATION_CODES = {
    "sagemaker": "ValidationException",
    "lambda": "ValidationException",
    "events": "ValidationException",
    "stepfunctions": "ValidationException",
    "sns": "ValidationError",
    "cloudwatch": "ValidationError",
    "s3": "InvalidArgument",
    "sagemaker-runtime": "ValidationError",
}
SERIALIZATION = "SerializationException"

# Java's POSIX classes are US-ASCII only (java.util.regex.Pattern, "POSIX character classes");
# the regex package reads the same names as Unicode properties, so they are spelled out.
_POSIX = {
    "Lower": "a-z",
    "Upper": "A-Z",
    "ASCII": "\\x00-\\x7F",
    "Alpha": "a-zA-Z",
    "Digit": "0-9",
    "Alnum": "a-zA-Z0-9",
    "Punct": "!-/:-@\\[-`{-~",
    "Graph": "!-~",
    "Print": " -~",
    "Blank": " \\t",
    "Cntrl": "\\x00-\\x1F\\x7F",
    "XDigit": "0-9a-fA-F",
    "Space": " \\t\\n\\x0B\\f\\r",
}
_SURROGATE_PAIR = regex.compile(r"\\u(D[89AB][0-9A-F]{2})\\u(D[C-F][0-9A-F]{2})", regex.I)
_QUANTIFIED_ANCHOR = regex.compile(r"(?<!\\)([$^])\{\d+(?:,\d*)?\}")


def translate(pattern: str) -> str:
    """A Java pattern of a botocore model as the ``regex`` package reads it the same way:
    a UTF-16 surrogate pair ``\\uD800\\uDC00`` becomes the code point it encodes, a quantified
    anchor (``$`{1,256}``, which Java accepts) the anchor, a POSIX class (``\\p{Alnum}``) its
    ASCII set."""

    def pair(m: regex.Match[str]) -> str:
        high, low = int(m.group(1), 16), int(m.group(2), 16)
        return f"\\U{0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00):08X}"

    text = _QUANTIFIED_ANCHOR.sub(r"\1", _SURROGATE_PAIR.sub(pair, pattern))
    out: list[str] = []
    depth = 0  # inside [...]
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            posix = regex.match(r"\\p\{(\w+)\}", text[i:])
            if posix and posix.group(1) in _POSIX:
                chars = _POSIX[posix.group(1)]
                out.append(chars if depth else f"[{chars}]")
                i += posix.end()
                continue
            out.append(text[i : i + 2])
            i += 2
            continue
        if char == "[":
            depth += 1
        elif char == "]" and depth:
            depth -= 1
        out.append(char)
        i += 1
    return "".join(out)


@functools.cache
def compiled(pattern: str) -> regex.Pattern[str]:
    return regex.compile(translate(pattern))


@dataclass(frozen=True)
class Violation:
    path: str  # AWS's member path: lowerCamelCase members, lists' N.member, maps' keys
    value: Any
    constraint: str
    code: str = ""  # "" the service's validation code, else e.g. SerializationException

    def text(self) -> str:
        shown = _java_text(self.value)
        return f"Value {shown} at '{self.path}' failed to satisfy constraint: {self.constraint}"


class ServiceRefusal(Exception):
    """A request the service refuses: ``code`` and ``message`` as the service answers them."""

    def __init__(self, service: str, operation: str, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.service = service
        self.operation = operation
        self.code = code
        self.message = message


class InvalidResponse(Exception):
    """A response of a local service that the service's model does not allow (a local bug)."""


def refusal_message(violations: list[Violation]) -> str:
    count = len(violations)
    noun = "error" if count == 1 else "errors"
    return f"{count} validation {noun} detected: " + "; ".join(v.text() for v in violations)


@dataclass
class Stats:
    """What the checks covered and cost: operations and shapes checked, seconds spent."""

    operations: set[str] = field(default_factory=set)
    shapes: set[str] = field(default_factory=set)
    checks: int = 0
    seconds: float = 0.0


class ServiceRules:
    """One service's model; :meth:`check_request` and :meth:`check_response` apply it."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.model = botocore.session.get_session().get_service_model(service)
        self.service_id = str(self.model.metadata.get("serviceId", service))
        self.code = VALIDATION_CODES.get(service, "ValidationException")
        self.stats = Stats()
        self._lock = threading.Lock()

    def operation(self, name: str) -> Any:
        """The operation model of ``name`` (``createModelPackage`` or ``CreateModelPackage``)."""
        return self.model.operation_model(name[:1].upper() + name[1:])

    def check_request(self, operation: str, params: Any) -> None:
        """Raise :class:`ServiceRefusal` for a request the service refuses."""
        op = self.operation(operation)
        violations = self._check(op.name, op.input_shape, params)
        if not violations:
            return
        serialization = [v for v in violations if v.code]
        if serialization:
            first = serialization[0]
            raise ServiceRefusal(
                self.service, op.name, first.code, f"{first.constraint} (at '{first.path}')"
            )
        raise ServiceRefusal(self.service, op.name, self.code, refusal_message(violations))

    def check_response(self, operation: str, response: Any) -> None:
        """Raise :class:`InvalidResponse` for a response the model does not allow."""
        op = self.operation(operation)
        violations = self._check(op.name, op.output_shape, response)
        if violations:
            raise InvalidResponse(
                f"local {self.service_id} answered {op.name} with a response its model does "
                f"not allow: {refusal_message(violations)}"
            )

    def _check(self, operation: str, shape: Any, value: Any) -> list[Violation]:
        started = time.perf_counter()
        violations: list[Violation] = []
        shapes: set[str] = set()
        if shape is not None:
            _walk(shape, value, "", violations, shapes)
        with self._lock:
            self.stats.operations.add(f"{self.service_id}.{operation}")
            self.stats.shapes |= {f"{self.service_id}.{s}" for s in shapes}
            self.stats.checks += 1
            self.stats.seconds += time.perf_counter() - started
        return violations


@functools.cache
def rules(service: str) -> ServiceRules:
    """The rules of ``service`` (botocore's name: ``sagemaker``, ``sns``), loaded once."""
    return ServiceRules(service)


class Checked:
    """A local service object whose calls (one mapping of parameters each, as LocalSageMaker's
    methods take them) are checked against ``service``'s model: the request before the call,
    the response after it."""

    def __init__(self, target: Any, service: str) -> None:
        self._target = target
        self._rules = rules(service)

    def call(self, operation: str, method: str, params: Any) -> Any:
        self._rules.check_request(operation, params)
        result = getattr(self._target, method)(params)
        self._rules.check_response(operation, result)
        return result

    def __getattr__(self, method: str) -> Callable[[Any], Any]:
        operation = "".join(part.capitalize() for part in method.split("_"))
        target = getattr(self._target, method)
        if not callable(target) or operation not in self._rules.model.operation_names:
            return target
        return lambda params: self.call(operation, method, params)


# --- the walk over a shape -----------------------------------------------------------------------


def _member_path(path: str, name: str) -> str:
    name = name[:1].lower() + name[1:]
    return f"{path}.{name}" if path else name


def _walk(shape: Any, value: Any, path: str, out: list[Violation], seen: set[str]) -> None:
    seen.add(shape.name)
    kind = shape.type_name
    if kind == "structure":
        _structure(shape, value, path, out, seen)
    elif kind == "list":
        if not _typed(value, list, "a list", path, out):
            return
        _length(shape, value, len(value), path, out)
        for index, item in enumerate(value, start=1):
            _walk(shape.member, item, f"{path}.{index}.member", out, seen)
    elif kind == "map":
        if not _typed(value, Mapping, "a map", path, out):
            return
        _length(shape, value, len(value), path, out)
        for key, item in value.items():
            seen.add(shape.key.name)
            for v in _string_violations(shape.key, key, path):
                out.append(
                    Violation(path, key, f"Map keys must satisfy constraint: [{v.constraint}]")
                )
            _walk(shape.value, item, f"{path}.{key}", out, seen)
    elif kind == "string":
        if _typed(value, str, "a string", path, out):
            out.extend(_string_violations(shape, value, path))
    elif kind in ("integer", "long"):
        if _typed(value, int, "an integer", path, out):
            _range(shape, value, path, out)
    elif kind in ("float", "double"):
        if _typed(value, (int, float), "a number", path, out):
            _range(shape, value, path, out)
    elif kind == "boolean":
        _typed(value, bool, "a boolean", path, out)
    elif kind == "timestamp":
        _typed(value, (str, int, float, datetime.datetime), "a timestamp", path, out)
    elif kind == "blob":
        _typed(value, (str, bytes, bytearray), "a blob", path, out)


def _structure(shape: Any, value: Any, path: str, out: list[Violation], seen: set[str]) -> None:
    if not _typed(value, Mapping, "a structure", path, out):
        return
    for name in shape.required_members:
        if value.get(name) is None:
            out.append(Violation(_member_path(path, name), None, "Member must not be null"))
    for name, item in value.items():
        member = shape.members.get(name)
        if member is None:
            known = ", ".join(shape.members)
            out.append(
                Violation(
                    _member_path(path, name),
                    item,
                    f"{shape.name} has no member {name} (its members: {known})",
                    SERIALIZATION,
                )
            )
        elif item is not None:
            _walk(member, item, _member_path(path, name), out, seen)


def _typed(value: Any, kind: Any, what: str, path: str, out: list[Violation]) -> bool:
    ok = isinstance(value, kind) and not (isinstance(value, bool) and kind in (int, (int, float)))
    if not ok:
        out.append(
            Violation(path, value, f"expected {what}, not {type(value).__name__}", SERIALIZATION)
        )
    return ok


def _length(shape: Any, value: Any, length: int, path: str, out: list[Violation]) -> None:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and length < low:
        out.append(
            Violation(path, value, f"Member must have length greater than or equal to {low}")
        )
    if high is not None and length > high:
        out.append(Violation(path, value, f"Member must have length less than or equal to {high}"))


def _range(shape: Any, value: Any, path: str, out: list[Violation]) -> None:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and value < low:
        out.append(Violation(path, value, f"Member must have value greater than or equal to {low}"))
    if high is not None and value > high:
        out.append(Violation(path, value, f"Member must have value less than or equal to {high}"))


def _string_violations(shape: Any, value: str, path: str) -> list[Violation]:
    out: list[Violation] = []
    enum = shape.enum
    if enum and value not in enum:
        out.append(
            Violation(path, value, f"Member must satisfy enum value set: [{', '.join(enum)}]")
        )
    _length(shape, value, len(value), path, out)
    pattern = shape.metadata.get("pattern")
    if pattern and compiled(pattern).fullmatch(value) is None:
        out.append(
            Violation(path, value, f"Member must satisfy regular expression pattern: {pattern}")
        )
    return out


def _java_text(value: Any) -> str:
    """A value as the service's message shows it: ``null``, or quoted in Java's toString."""
    if value is None:
        return "null"
    return f"'{_java(value)}'"


def _java(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}={_java(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_java(v) for v in value) + "]"
    return str(value)
