"""The monitor's outputs: ``report.json``, a self-contained ``report.html`` and
``metric_data.json``, the ``MetricData`` of CloudWatch's ``PutMetricData`` without the namespace
(the state machine that publishes them sets ``Namespace``).

``MetricData`` items follow botocore's ``MetricDatum`` shape (``MetricName``, ``Dimensions`` of
``{"Name", "Value"}``, ``Value``, ``Unit``); PutMetricData takes at most 1000 of them, so with more
features than fit, the most drifted features' ``FeatureDrift`` are kept (the report has all).

The state machine reads the file whole (Read metrics: S3 GetObject, its ``Body`` a JSON string in
the task's result), and Step Functions fails a task whose result passes 256 KiB
(``States.DataLimitExceeded``, "Step Functions service quotas"). Feature names of up to 1,024
characters (a ``Dimension`` value's limit) would take 1000 datums far past it, so the file is
compact and its text, escaped as a JSON string, at most ``MAX_METRIC_DATA_BYTES``: the least
drifted features' datums are left out until it fits.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

MAX_DATUMS = 1000
# The Body as the task's result carries it (a JSON string: each quote and backslash escaped),
# leaving room under Step Functions' 262,144 bytes for the result's other members and the
# state's input (the window and its inputs).
MAX_METRIC_DATA_BYTES = 200 * 1024


def _datum(name: str, value: float, unit: str, endpoint: str, **dims: str) -> dict[str, Any]:
    dimensions = [{"Name": "Endpoint", "Value": endpoint}]
    dimensions += [{"Name": k, "Value": v} for k, v in dims.items()]
    return {"MetricName": name, "Dimensions": dimensions, "Value": float(value), "Unit": unit}


def metric_data(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's CloudWatch datums. With too few records, neither the drifted share, nor any
    feature's drift, nor a quality metric is published: the alarms see missing data, which they
    treat as not breaching."""
    endpoint = report["endpoint"]
    records = report["records"]
    data = [
        _datum("CapturedRecords", records["captured"], "Count", endpoint),
        _datum("RejectedRecords", records["rejected"], "Count", endpoint),
    ]
    quality = report.get("quality")
    if quality is not None:
        data.append(_datum("LabelledRecords", quality["labelled"], "Count", endpoint))
        if quality["status"] == "ok":
            for name, value in quality["metrics"].items():
                data.append(_datum(name, value, "None", endpoint))
    if report["status"] != "ok":
        return data
    drift = report["drift"]
    data.append(_datum("DriftedFeatureShare", drift["drifted_share_percent"], "Percent", endpoint))
    room = MAX_DATUMS - len(data)
    size = escaped_size(metric_data_text(data))
    for feature in sorted(drift["features"], key=lambda f: -f["psi"])[:room]:
        datum = _datum("FeatureDrift", feature["psi"], "None", endpoint, Feature=feature["name"])
        size += escaped_size(_compact(datum)) - 2 + 1  # without the string's quotes, and a comma
        if size > MAX_METRIC_DATA_BYTES:
            break
        data.append(datum)
    return data


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def metric_data_text(data: list[dict[str, Any]]) -> bytes:
    """``metric_data.json``'s bytes: compact JSON (ASCII), as the state machine reads it."""
    return _compact({"MetricData": data}) + b"\n"


def escaped_size(text: bytes) -> int:
    """The bytes of ``text`` as a JSON string (quotes included)."""
    return len(json.dumps(text.decode()))


def write(report: dict[str, Any], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "report.json": json.dumps(report, indent=2, allow_nan=False) + "\n",
        "metric_data.json": metric_data_text(metric_data(report)).decode(),
        "report.html": render_html(report),
    }
    written = []
    for name, text in files.items():
        (directory / name).write_text(text, encoding="utf-8")
        written.append(directory / name)
    return written


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _rows(items: list[list[Any]]) -> str:
    return "".join(
        "<tr>" + "".join(f"<td>{html.escape(_number(v))}</td>" for v in row) + "</tr>"
        for row in items
    )


_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;"
    "text-align:left}th{background:#f3f3f3}.alarm{color:#b00020;font-weight:bold}"
    ".quiet{color:#1b5e20}"
)


def render_html(report: dict[str, Any]) -> str:
    """One page, no script, no external resource: the window, the alarms, each feature's drift,
    the quality figures and the rejected lines."""
    e = html.escape
    alarms = report["alarms"]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>mlstack monitor: {e(report['endpoint'])}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Endpoint {e(report['endpoint'])}</h1>",
        f"<p>Window {e(report['window']['start'])} to {e(report['window']['end'])}: "
        f"status <b>{e(report['status'])}</b>, {report['records']['captured']} records in "
        f"{report['records']['requests']} requests, {report['records']['rejected']} rejected.</p>",
    ]
    for name, fired in alarms.items():
        css, word = ("alarm", "would fire") if fired else ("quiet", "quiet")
        parts.append(f"<p class='{css}'>{e(name)} alarm: {word}</p>")
    drift = report["drift"]
    parts.append(
        f"<h2>Drift</h2><p>{_number(drift['drifted_share_percent'])} % of the features drifted "
        f"(alarm at {_number(report['thresholds']['drifted_share_percent'])} %).</p>"
    )
    parts.append(
        "<table><tr><th>feature</th><th>type</th><th>PSI</th><th>test</th><th>statistic</th>"
        "<th>p-value</th><th>drifted</th><th>missing share</th></tr>"
    )
    parts.append(
        _rows(
            [
                [
                    f["name"],
                    f["type"],
                    f["psi"],
                    f["test"],
                    f["statistic"],
                    f["p_value"],
                    "yes" if f["drifted"] else "no",
                    f["missing_share"],
                ]
                for f in drift["features"]
            ]
        )
        + "</table>"
    )
    quality = report.get("quality")
    if quality is not None:
        parts.append(
            f"<h2>Quality ({e(quality['problem_type'])})</h2><p>{quality['labelled']} labelled "
            f"records, status {e(quality['status'])}.</p><table><tr><th>metric</th><th>value</th>"
            "</tr>" + _rows([[k, v] for k, v in quality["metrics"].items()]) + "</table>"
        )
    problems = report["rejected_examples"] + (quality or {}).get("ground_truth_problems", [])
    if problems:
        parts.append(
            "<h2>Rejected lines (first few)</h2><table><tr><th>file</th><th>line</th>"
            "<th>reason</th></tr>"
        )
        parts.append(_rows([[p["file"], p["line"], p["reason"]] for p in problems]) + "</table>")
    parts.append("</body></html>\n")
    return "".join(parts)
