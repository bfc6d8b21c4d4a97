"""The JSONPath subset Amazon States Language uses: ``$``, ``.name``, ``['name']``, ``[n]``,
``[*]``/``.*``, ``[start:end]`` and filters ``[?(@.a.b == 'x')]`` (``== != < <= > >=``, a bare
``@.a`` for presence, ``&&``/``||``). Reference paths (InputPath, ResultPath, OutputPath, a Choice
rule's Variable) must be definite: no wildcard or slice.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from typing import Any

_NAME = re.compile(r"[^.\[\]]+")


class PathError(ValueError):
    """A path is malformed, or names something the data does not have."""


@dataclass(frozen=True)
class _Step:
    kind: str  # "key", "index", "wild", "slice", "filter"
    key: str = ""
    index: int = 0
    end: int | None = None


def _parse(path: str) -> tuple[str, list[_Step]]:
    if path.startswith("$$"):
        root, i = "$$", 2
    elif path.startswith("$"):
        root, i = "$", 1
    else:
        raise PathError(f"path {path!r} does not start with '$'")
    steps: list[_Step] = []
    while i < len(path):
        c = path[i]
        if c == ".":
            if path.startswith(".*", i):
                steps.append(_Step("wild"))
                i += 2
                continue
            m = _NAME.match(path, i + 1)
            if m is None:
                raise PathError(f"path {path!r}: expected a name after '.' at {i}")
            steps.append(_Step("key", key=m.group()))
            i = m.end()
        elif c == "[":
            if path.startswith("[?(", i):
                close = _filter_end(path, i + 3)
                steps.append(_Step("filter", key=path[i + 3 : close]))
                i = close + 2
                continue
            end = path.find("]", i)
            if path[i + 1 : i + 2] in ("'", '"'):
                quote = path[i + 1]
                close = path.find(quote + "]", i + 2)
                if close < 0:
                    raise PathError(f"path {path!r}: unterminated {quote} at {i}")
                steps.append(_Step("key", key=path[i + 2 : close]))
                i = close + 2
                continue
            if end < 0:
                raise PathError(f"path {path!r}: unterminated '[' at {i}")
            inner = path[i + 1 : end].strip()
            if inner == "*":
                steps.append(_Step("wild"))
            elif ":" in inner:
                a, _, b = inner.partition(":")
                try:
                    steps.append(
                        _Step("slice", index=int(a) if a else 0, end=int(b) if b else None)
                    )
                except ValueError:
                    raise PathError(f"path {path!r}: bad slice [{inner}]") from None
            else:
                try:
                    steps.append(_Step("index", index=int(inner)))
                except ValueError:
                    raise PathError(
                        f"path {path!r}: [{inner}] is not supported (filters are not)"
                    ) from None
            i = end + 1
        else:
            raise PathError(f"path {path!r}: unexpected {c!r} at {i}")
    return root, steps


def _filter_end(path: str, i: int) -> int:
    """Index of the ``)]`` that closes the filter expression starting at ``i``."""
    quote = ""
    depth = 0
    while i < len(path):
        c = path[i]
        if quote:
            if c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            if depth == 0 and path.startswith(")]", i):
                return i
            depth -= 1
        i += 1
    raise PathError(f"path {path!r}: unterminated filter expression")


_COMPARISON = re.compile(
    r"^\s*@(?P<path>[^=!<>\s]*)\s*(?:(?P<op>==|!=|<=|>=|<|>)\s*(?P<literal>.+?))?\s*$"
)
_OPERATORS = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _literal(text: str, path: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    try:
        return json.loads(text)
    except ValueError:
        raise PathError(f"path {path!r}: {text!r} is not a literal") from None


def _split_top(expr: str, token: str) -> list[str]:
    parts, quote, start, i = [], "", 0, 0
    while i < len(expr):
        c = expr[i]
        if quote:
            quote = "" if c == quote else quote
        elif c in "'\"":
            quote = c
        elif expr.startswith(token, i):
            parts.append(expr[start:i])
            start = i + len(token)
            i += len(token)
            continue
        i += 1
    parts.append(expr[start:])
    return parts


def _predicate(expr: str, item: Any, path: str) -> bool:
    """A filter expression: ``@.a.b OP literal`` or ``@.a.b``, joined by ``||`` and ``&&``."""
    if len(alternatives := _split_top(expr, "||")) > 1:
        return any(_predicate(e, item, path) for e in alternatives)
    if len(conjuncts := _split_top(expr, "&&")) > 1:
        return all(_predicate(e, item, path) for e in conjuncts)
    m = _COMPARISON.match(expr)
    if m is None:
        raise PathError(f"path {path!r}: filter {expr!r} is not supported")
    try:
        value = get(item, "$" + m["path"])
    except PathError:
        return False
    if m["op"] is None:
        return True
    expected = _literal(m["literal"], path)
    try:
        return bool(_OPERATORS[m["op"]](value, expected))
    except TypeError:
        return False


def is_definite(path: str) -> bool:
    """True when ``path`` selects at most one value (a reference path)."""
    _, steps = _parse(path)
    return all(s.kind in ("key", "index") for s in steps)


def root_of(path: str) -> str:
    """``"$$"`` for a context-object path, ``"$"`` otherwise."""
    return _parse(path)[0]


def get(data: Any, path: str) -> Any:
    """The value ``path`` selects in ``data`` (a list when the path has a wildcard or slice).

    A definite path that names nothing raises :class:`PathError`; a path with a wildcard, slice
    or filter anywhere selects ``[]`` then (AWS: ``$.items[*]`` over a missing ``items`` is ``[]``).
    """
    _, steps = _parse(path)
    values = [data]
    multiple = any(s.kind not in ("key", "index") for s in steps)
    for step in steps:
        found: list[Any] = []
        for value in values:
            if step.kind == "key":
                if isinstance(value, dict) and step.key in value:
                    found.append(value[step.key])
                elif not multiple:
                    raise PathError(f"the path {path!r} names a field ({step.key!r}) not present")
            elif step.kind == "index":
                if isinstance(value, list) and -len(value) <= step.index < len(value):
                    found.append(value[step.index])
                elif not multiple:
                    raise PathError(f"the path {path!r}: index {step.index} is not present")
            elif step.kind == "wild":
                multiple = True
                if isinstance(value, dict):
                    found.extend(value.values())
                elif isinstance(value, list):
                    found.extend(value)
            elif step.kind == "filter":
                multiple = True
                items = value if isinstance(value, list) else []
                items = list(value.values()) if isinstance(value, dict) else items
                found.extend(item for item in items if _predicate(step.key, item, path))
            else:
                multiple = True
                if isinstance(value, list):
                    found.extend(value[step.index : step.end])
        values = found
    return values if multiple else values[0]


def normalized(path: str) -> str:
    """The path in bracket notation, as AWS quotes it in errors (``$['a']['b'][0]``)."""
    root, steps = _parse(path)
    parts = []
    for s in steps:
        if s.kind == "key":
            parts.append(f"['{s.key}']")
        elif s.kind == "index":
            parts.append(f"[{s.index}]")
        elif s.kind == "wild":
            parts.append("[*]")
        elif s.kind == "slice":
            parts.append(f"[{s.index}:{'' if s.end is None else s.end}]")
        else:
            parts.append(f"[?({s.key})]")
    return root + "".join(parts)


def exists(data: Any, path: str) -> bool:
    try:
        get(data, path)
    except PathError:
        return False
    return True


def put(data: Any, path: str, value: Any) -> Any:
    """A copy of ``data`` with ``value`` placed at the reference path ``path`` (ResultPath).

    ``$`` replaces the whole input; missing objects on the way are created.
    """
    _, steps = _parse(path)
    if not steps:
        return value
    if any(s.kind not in ("key", "index") for s in steps):
        raise PathError(f"ResultPath {path!r} must be a reference path (no wildcard or slice)")
    result = copy.deepcopy(data)
    if not isinstance(result, dict | list) or (
        not isinstance(result, dict) and steps[0].kind == "key"
    ):
        raise PathError(f"cannot apply ResultPath {path!r} to a non-object input")
    node: Any = result
    for i, step in enumerate(steps):
        last = i == len(steps) - 1
        if step.kind == "key":
            if not isinstance(node, dict):
                raise PathError(f"ResultPath {path!r}: {step.key!r} is inside a non-object")
            if last:
                node[step.key] = value
            else:
                if not isinstance(node.get(step.key), dict | list):
                    node[step.key] = {}
                node = node[step.key]
        else:
            if not isinstance(node, list) or not -len(node) <= step.index < len(node):
                raise PathError(f"ResultPath {path!r}: index {step.index} is not present")
            if last:
                node[step.index] = value
            else:
                node = node[step.index]
    return result
