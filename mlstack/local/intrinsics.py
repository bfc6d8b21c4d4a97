"""Amazon States Language intrinsic functions: a parser for nested calls and quoted strings, and
the whole documented set (``States.Format``, ``States.StringToJson``, ``States.JsonToString``,
``States.Array``, ``States.ArrayPartition``, ``States.ArrayContains``, ``States.ArrayRange``,
``States.ArrayGetItem``, ``States.ArrayLength``, ``States.ArrayUnique``, ``States.Base64Encode``,
``States.Base64Decode``, ``States.Hash``, ``States.JsonMerge``, ``States.MathRandom``,
``States.MathAdd``, ``States.StringSplit``, ``States.UUID``).

A call's arguments are string literals in single quotes (``\\'``, ``\\{``, ``\\}`` and ``\\\\``
escape), numbers, ``true``/``false``/``null``, paths (``$.x``, ``$$.Execution.Name``) or calls.
Any error raises :class:`IntrinsicError` (the state fails with ``States.IntrinsicFailure``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import random
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlstack.local import jsonpath

_NAME = re.compile(r"States\.[A-Za-z0-9]+")
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_HASHES = {
    "MD5": "md5",
    "SHA-1": "sha1",
    "SHA-256": "sha256",
    "SHA-384": "sha384",
    "SHA-512": "sha512",
}


class IntrinsicError(ValueError):
    """An intrinsic function is malformed or its arguments are not what it takes."""


class ArgumentPathError(IntrinsicError):
    """A path argument selects nothing (AWS: a ``States.Runtime`` error, not an intrinsic one)."""

    def __init__(self, path: str, root: Any) -> None:
        super().__init__(f"the path {path!r} selects nothing")
        self.path = path
        self.root = root


@dataclass(frozen=True)
class _Literal:
    value: Any
    raw: str | None = None  # a string literal's text with its escapes, for States.Format


@dataclass(frozen=True)
class _Path:
    path: str


@dataclass(frozen=True)
class _Call:
    name: str
    args: tuple[Any, ...]


def is_intrinsic(text: str) -> bool:
    return _NAME.match(text) is not None


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0

    def fail(self, what: str) -> IntrinsicError:
        return IntrinsicError(f"{self.text!r}: {what} at position {self.i}")

    def skip_space(self) -> None:
        while self.i < len(self.text) and self.text[self.i] == " ":
            self.i += 1

    def parse(self) -> _Call:
        self.skip_space()
        node = self.expr()
        self.skip_space()
        if self.i != len(self.text) or not isinstance(node, _Call):
            raise self.fail("expected one function call and nothing after it")
        return node

    def expr(self) -> Any:
        self.skip_space()
        text, i = self.text, self.i
        if i >= len(text):
            raise self.fail("expected an argument")
        c = text[i]
        if c == "'":
            return self.string()
        if c == "$":
            return self.path()
        m = _NAME.match(text, i)
        if m:
            self.i = m.end()
            self.skip_space()
            if self.i >= len(text) or text[self.i] != "(":
                raise self.fail(f"expected '(' after {m.group()}")
            self.i += 1
            args: list[Any] = []
            self.skip_space()
            if self.i < len(text) and text[self.i] == ")":
                self.i += 1
                return _Call(m.group(), ())
            while True:
                args.append(self.expr())
                self.skip_space()
                if self.i >= len(text):
                    raise self.fail("unterminated argument list")
                if text[self.i] == ",":
                    self.i += 1
                    continue
                if text[self.i] == ")":
                    self.i += 1
                    return _Call(m.group(), tuple(args))
                raise self.fail(f"unexpected {text[self.i]!r}")
        for word, value in (("true", True), ("false", False), ("null", None)):
            if text.startswith(word, i):
                self.i += len(word)
                return _Literal(value)
        m = _NUMBER.match(text, i)
        if m:
            self.i = m.end()
            number = m.group()
            return _Literal(float(number) if any(ch in number for ch in ".eE") else int(number))
        raise self.fail(f"unexpected {c!r}")

    def string(self) -> _Literal:
        text = self.text
        i = self.i + 1
        out: list[str] = []
        raw: list[str] = []
        while i < len(text):
            c = text[i]
            if c == "\\":
                if i + 1 >= len(text):
                    break
                nxt = text[i + 1]
                out.append(nxt)
                raw.append(c + nxt)
                i += 2
                continue
            if c == "'":
                self.i = i + 1
                return _Literal("".join(out), "".join(raw))
            out.append(c)
            raw.append(c)
            i += 1
        raise self.fail("unterminated string literal")

    def path(self) -> _Path:
        text = self.text
        i = self.i
        depth = 0
        quote = ""
        while i < len(text):
            c = text[i]
            if quote:
                if c == quote:
                    quote = ""
            elif c in "'\"" and depth:
                quote = c
            elif c == "[":
                depth += 1
            elif c == "]":
                depth -= 1
            elif depth == 0 and c in ",) ":
                break
            i += 1
        path = text[self.i : i]
        self.i = i
        return _Path(path)


def evaluate(text: str, data: Any, context: Any) -> Any:
    """The value of the intrinsic function call ``text`` over the state's data and context."""
    call = _Parser(text).parse()
    return _Evaluator(data, context).call(call)


class _Evaluator:
    def __init__(self, data: Any, context: Any) -> None:
        self.data = data
        self.context = context

    def value(self, node: Any) -> Any:
        if isinstance(node, _Literal):
            return node.value
        if isinstance(node, _Path):
            root = self.context if node.path.startswith("$$") else self.data
            path = node.path[1:] if node.path.startswith("$$") else node.path
            try:
                return jsonpath.get(root, path)
            except jsonpath.PathError:
                raise ArgumentPathError(node.path, root) from None
        return self.call(node)

    def call(self, call: _Call) -> Any:
        fn = _FUNCTIONS.get(call.name)
        if fn is None:
            raise IntrinsicError(f"{call.name} is not an intrinsic function")
        if call.name == "States.Format":
            if not call.args:
                raise IntrinsicError("States.Format needs a template")
            first = call.args[0]
            template = first.raw if isinstance(first, _Literal) and first.raw is not None else None
            if template is None:
                value = self.value(first)
                if not isinstance(value, str):
                    raise IntrinsicError("States.Format: the template must be a string")
                template = value
            return _format(template, [self.value(a) for a in call.args[1:]])
        return fn(call.name, [self.value(a) for a in call.args])


def _arity(name: str, args: list[Any], *counts: int) -> None:
    if len(args) not in counts:
        expected = " or ".join(str(c) for c in counts)
        raise IntrinsicError(f"{name} takes {expected} argument(s), got {len(args)}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _need(name: str, ok: bool, what: str) -> None:
    if not ok:
        raise IntrinsicError(f"{name}: {what}")


def _to_text(v: Any) -> str:
    """An argument as States.Format renders it: strings bare, an object ``{k=v, ...}`` and an
    array ``[a, b]`` (Java's ``Map``/``List`` text, as AWS writes them)."""
    if isinstance(v, str):
        return v
    if isinstance(v, bool) or v is None:
        return json.dumps(v)
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}={_to_text(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(_to_text(x) for x in v) + "]"
    return str(v)


def _format(template: str, args: list[Any]) -> str:
    out: list[str] = []
    used = 0
    i = 0
    while i < len(template):
        c = template[i]
        if c == "\\" and i + 1 < len(template):
            out.append(template[i + 1])
            i += 2
            continue
        if template.startswith("{}", i):
            if used >= len(args):
                raise IntrinsicError("States.Format: more {} placeholders than arguments")
            out.append(_to_text(args[used]))
            used += 1
            i += 2
            continue
        out.append(c)
        i += 1
    if used != len(args):
        raise IntrinsicError(
            f"States.Format: {len(args)} argument(s) for {used} placeholder(s) in the template"
        )
    return "".join(out)


def _array(name: str, a: list[Any]) -> Any:
    return list(a)


def _partition(name: str, a: list[Any]) -> Any:
    _arity(name, a, 2)
    arr, size = a
    _need(name, isinstance(arr, list), "the first argument must be an array")
    _need(name, _is_int(size) and size > 0, "the chunk size must be a positive integer")
    return [arr[i : i + size] for i in range(0, len(arr), size)]


def _contains(name: str, a: list[Any]) -> Any:
    _arity(name, a, 2)
    _need(name, isinstance(a[0], list), "the first argument must be an array")
    return a[1] in a[0]


def _range(name: str, a: list[Any]) -> Any:
    _arity(name, a, 3)
    start, end, step = a
    _need(name, all(_is_int(v) for v in a), "start, end and step must be integers")
    _need(name, step != 0, "step must not be 0")
    values = list(range(start, end + (1 if step > 0 else -1), step))
    _need(name, len(values) <= 1000, "at most 1000 items")
    return values


def _get_item(name: str, a: list[Any]) -> Any:
    _arity(name, a, 2)
    arr, index = a
    _need(name, isinstance(arr, list), "the first argument must be an array")
    _need(name, _is_int(index) and 0 <= index < len(arr), f"index {index!r} is out of range")
    return arr[index]


def _length(name: str, a: list[Any]) -> Any:
    _arity(name, a, 1)
    _need(name, isinstance(a[0], list), "the argument must be an array")
    return len(a[0])


def _unique(name: str, a: list[Any]) -> Any:
    _arity(name, a, 1)
    _need(name, isinstance(a[0], list), "the argument must be an array")
    seen: list[str] = []
    out = []
    for item in a[0]:
        key = json.dumps(item, sort_keys=True)
        if key not in seen:
            seen.append(key)
            out.append(item)
    return out


def _b64encode(name: str, a: list[Any]) -> Any:
    _arity(name, a, 1)
    _need(name, isinstance(a[0], str), "the argument must be a string")
    return base64.b64encode(a[0].encode()).decode()


def _b64decode(name: str, a: list[Any]) -> Any:
    _arity(name, a, 1)
    _need(name, isinstance(a[0], str), "the argument must be a string")
    try:
        return base64.b64decode(a[0], validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as err:
        raise IntrinsicError(f"{name}: {err}") from None


def _hash(name: str, a: list[Any]) -> Any:
    _arity(name, a, 2)
    data, algorithm = a
    _need(name, algorithm in _HASHES, f"algorithm {algorithm!r} is not one of {list(_HASHES)}")
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return hashlib.new(_HASHES[algorithm], text.encode()).hexdigest()


def _merge(name: str, a: list[Any]) -> Any:
    _arity(name, a, 3)
    left, right, deep = a
    _need(name, isinstance(left, dict) and isinstance(right, dict), "both inputs must be objects")
    _need(name, deep is False, "deep merging is not supported: the third argument must be false")
    return {**left, **right}


def _random(name: str, a: list[Any]) -> Any:
    _arity(name, a, 2, 3)
    _need(name, all(_is_int(v) for v in a), "start, end (and seed) must be integers")
    _need(name, a[0] < a[1], "start must be less than end")
    rng = random.Random(a[2]) if len(a) == 3 else random
    return rng.randrange(a[0], a[1])


def _round_half_up(v: float) -> int:
    return int(v) if _is_int(v) else math.floor(v + 0.5)


def _add(name: str, a: list[Any]) -> Any:
    # AWS rounds each argument to an integer first, halves up (0.5 -> 1, -1.5 -> -1, -2.5 -> -2):
    # "States.MathAdd ... if you specify a non-integer value ... rounds it off to the nearest
    # integer" (Step Functions developer guide, "Intrinsic functions for math operations").
    _arity(name, a, 2)
    _need(name, all(_is_number(v) for v in a), "both arguments must be numbers")
    return _round_half_up(a[0]) + _round_half_up(a[1])


def _split(name: str, a: list[Any]) -> Any:
    _arity(name, a, 2)
    _need(name, all(isinstance(v, str) for v in a), "both arguments must be strings")
    text, delimiters = a
    if not delimiters:
        return [text] if text else []
    parts = re.split("[" + re.escape(delimiters) + "]", text)
    return [p for p in parts if p]


def _to_json(name: str, a: list[Any]) -> Any:
    _arity(name, a, 1)
    _need(name, isinstance(a[0], str), "the argument must be a string")
    if not a[0].strip():
        return None  # AWS: States.StringToJson('') is null
    try:
        return json.loads(a[0])
    except json.JSONDecodeError as err:
        raise IntrinsicError(f"{name}: {err}") from None


def _to_string(name: str, a: list[Any]) -> Any:
    _arity(name, a, 1)
    return json.dumps(a[0], separators=(",", ":"), ensure_ascii=False)


def _uuid(name: str, a: list[Any]) -> Any:
    _arity(name, a, 0)
    return str(uuid.uuid4())


_FUNCTIONS: dict[str, Callable[[str, list[Any]], Any]] = {
    "States.Format": lambda name, a: None,  # handled in _Evaluator.call (needs the raw template)
    "States.StringToJson": _to_json,
    "States.JsonToString": _to_string,
    "States.Array": _array,
    "States.ArrayPartition": _partition,
    "States.ArrayContains": _contains,
    "States.ArrayRange": _range,
    "States.ArrayGetItem": _get_item,
    "States.ArrayLength": _length,
    "States.ArrayUnique": _unique,
    "States.Base64Encode": _b64encode,
    "States.Base64Decode": _b64decode,
    "States.Hash": _hash,
    "States.JsonMerge": _merge,
    "States.MathRandom": _random,
    "States.MathAdd": _add,
    "States.StringSplit": _split,
    "States.UUID": _uuid,
}

FUNCTION_NAMES = tuple(sorted(_FUNCTIONS))
