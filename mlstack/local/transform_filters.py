"""A batch transform job's ``DataProcessing``, locally: ``InputFilter``, ``JoinSource`` and
``OutputFilter`` as the SageMaker Developer Guide documents them ("Associate Prediction Results
with Input Records", docs.aws.amazon.com/sagemaker/latest/dg/batch-transform-data-processing.html).

- A CSV record is a JSON array of its fields (RFC 4180), so only index paths apply to it: ``$``,
  ``$[1]``, ``$[1,3,5]``, ``$[-1]``, ``$[2:5]``. A slice includes both ends, as that page says
  ("``$[1:4]`` specifies the second through fifth columns"; ``[:5]`` the first through the
  sixth). One range per path: SageMaker refuses ``$[0:2,246:]`` ("only single range filters of
  format (eg: [1:5]) are supported", its error in aws/sagemaker-python-sdk issue 1112).
- A JSON Lines record takes the page's operators: ``.name``, ``*``, ``['a','b']``, indexes and a
  slice. Joined with its input, an object gets the answer as ``SageMakerOutput``; any other
  value becomes ``{"SageMakerInput": ..., "SageMakerOutput": ...}``.
- Joined CSV: the input record's fields followed by the answer's.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CSV = "text/csv"
JSONLINES = ("application/jsonlines", "application/x-jsonlines", "application/json-lines")
OUTPUT_KEY = "SageMakerOutput"
INPUT_KEY = "SageMakerInput"

_NAME = r"[A-Za-z_][A-Za-z0-9_-]*"
_STEP = re.compile(
    rf"\.(?P<name>{_NAME})|\.\*|\[\*\]|\[(?P<names>'[^']*'(?:\s*,\s*'[^']*')*)\]"
    r"|\[(?P<slice>(?:-?\d+)?:(?:-?\d+)?)\]|\[(?P<indexes>-?\d+(?:\s*,\s*-?\d+)*)\]"
)


class FilterError(ValueError):
    """A record a filter cannot select from, or a path SageMaker does not take."""


@dataclass(frozen=True)
class Path:
    """One parsed JSONPath of the supported subset."""

    text: str
    steps: tuple[tuple[str, Any], ...]

    @classmethod
    def parse(cls, text: str, where: str) -> Path:
        if not text.startswith("$"):
            raise FilterError(f"{where} {text!r} must start with $ (the record)")
        if re.search(r"\[(?=[^\]]*:)(?=[^\]]*,)[-\d\s:,]*\]", text):
            raise FilterError(
                f"Invalid JsonPath: {text}: only single range filters of format "
                "(eg: [1:5]) are supported"
            )
        steps: list[tuple[str, Any]] = []
        position = 1
        while position < len(text):
            match = _STEP.match(text, position)
            if match is None:
                raise FilterError(
                    f"{where} {text!r}: cannot read {text[position:]!r}; SageMaker takes $, "
                    ".name, *, ['a','b'], [1,3] and [start:end]"
                )
            steps.append(_step(match))
            position = match.end()
        return cls(text, tuple(steps))

    def select(self, value: Any, record: int) -> Any:
        for kind, arg in self.steps:
            value = _apply(kind, arg, value, self.text, record)
        return value


def _step(match: re.Match[str]) -> tuple[str, Any]:
    if match.group("name"):
        return "names", (match.group("name"),)
    if match.group("names"):
        return "names", tuple(re.findall(r"'([^']*)'", match.group("names")))
    if match.group("slice") is not None:
        start, end = match.group("slice").split(":")
        return "slice", (int(start) if start else None, int(end) if end else None)
    if match.group("indexes"):
        return "indexes", tuple(int(i) for i in match.group("indexes").split(","))
    return "all", None


def _apply(kind: str, arg: Any, value: Any, path: str, record: int) -> Any:
    def missing(what: str) -> FilterError:
        return FilterError(f"record {record}: {path} selects {what}, which the record lacks")

    if kind == "all":
        if not isinstance(value, dict | list):
            raise missing("every element of an array or object")
        return list(value.values()) if isinstance(value, dict) else list(value)
    if kind == "names":
        if not isinstance(value, dict):
            raise missing(f"the field {arg[0]!r} of an object")
        if any(name not in value for name in arg):
            raise missing(", ".join(repr(n) for n in arg if n not in value))
        return value[arg[0]] if len(arg) == 1 else {name: value[name] for name in arg}
    if not isinstance(value, list):
        raise missing("an element of an array")
    if kind == "indexes":
        if any(not -len(value) <= i < len(value) for i in arg):
            raise missing(f"index {', '.join(map(str, arg))} of {len(value)} elements")
        return value[arg[0]] if len(arg) == 1 else [value[i] for i in arg]
    start, end = arg
    if not value:
        return []
    # Both ends included (the Developer Guide's examples); a negative one counts from the end.
    first = 0 if start is None else max(0, len(value) + start) if start < 0 else start
    last = len(value) - 1 if end is None else len(value) + end if end < 0 else end
    return value[first : last + 1] if last >= 0 else []


@dataclass(frozen=True)
class DataProcessing:
    """The filters and the join of one transform job, for its content type."""

    input_filter: Path
    join_input: bool
    output_filter: Path
    csv: bool

    @classmethod
    def of(cls, request: Mapping[str, Any]) -> DataProcessing | None:
        """The ``DataProcessing`` of a CreateTransformJob request; None when it asks for nothing
        beyond the default (``$``, no join). FilterError for a request SageMaker refuses."""
        spec = request.get("DataProcessing") or {}
        content_type = str(request.get("TransformInput", {}).get("ContentType", ""))
        split = request.get("TransformInput", {}).get("SplitType", "None")
        assemble = request.get("TransformOutput", {}).get("AssembleWith", "None")
        input_text = str(spec.get("InputFilter") or "$")
        output_text = str(spec.get("OutputFilter") or "$")
        join = spec.get("JoinSource", "None") == "Input"
        if input_text == "$" and output_text == "$" and not join:
            return None
        kind = content_type.split(";")[0].strip().lower()
        if kind != CSV and kind not in JSONLINES:
            raise FilterError(
                f"DataProcessing takes CSV or JSON Lines input (ContentType text/csv or "
                f"application/jsonlines), not {content_type!r}"
            )
        if split != "Line" or assemble != "Line":
            # "you must also set the SplitType and AssemblyType parameters to line" (the page)
            raise FilterError(
                "DataProcessing filters and joins records: set TransformInput.SplitType and "
                "TransformOutput.AssembleWith to Line"
            )
        paths = Path.parse(input_text, "InputFilter"), Path.parse(output_text, "OutputFilter")
        for path in paths:
            if kind == CSV and any(step == "names" for step, _ in path.steps):
                raise FilterError(
                    f"{path.text}: a CSV record is an array of its fields, so only index "
                    "paths apply ($[0], $[1:], $[0,-1])"
                )
        return cls(paths[0], join, paths[1], kind == CSV)

    def filter_input(self, line: bytes, record: int) -> bytes:
        """The part of an input record the model is sent."""
        return self._write(self.input_filter.select(self._read(line, record, "record"), record))

    def join(self, line: bytes, answer: bytes, record: int) -> bytes:
        """The output record: the answer, joined to its input when asked, then filtered."""
        value = self._read(answer, record, "the model's answer to record")
        if self.join_input:
            given = self._read(line, record, "record")
            if self.csv:
                value = [*given, *(value if isinstance(value, list) else [value])]
            elif isinstance(given, dict):
                value = {**given, OUTPUT_KEY: value}
            else:
                value = {INPUT_KEY: given, OUTPUT_KEY: value}
        return self._write(self.output_filter.select(value, record))

    def _read(self, line: bytes, record: int, what: str) -> Any:
        text = line.decode("utf-8", errors="replace").rstrip("\r")
        if self.csv:
            return next(csv.reader([text]), [])
        try:
            return json.loads(text)
        except (ValueError, RecursionError):
            raise FilterError(
                f"{what} {record} is not JSON ({text[:80]!r}); DataProcessing on JSON Lines "
                "needs JSON Lines answers (TransformOutput.Accept application/jsonlines)"
            ) from None

    def _write(self, value: Any) -> bytes:
        if not self.csv:
            return json.dumps(value, ensure_ascii=False).encode()
        out = io.StringIO()
        csv.writer(out, lineterminator="").writerow(value if isinstance(value, list) else [value])
        return out.getvalue().encode()
