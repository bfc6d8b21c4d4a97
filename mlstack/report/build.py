"""The run report: one self-contained HTML file (inline SVG and CSS, no script, nothing fetched)
from what a run leaves: the execution history, the training jobs' metrics per round, the
evaluation's ``report_parts.json`` and the execution's output (the decisions).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

from mlstack.report import REPORT_FILE, svg
from mlstack.report.history import timeline_bars

__all__ = ["REPORT_FILE", "ReportInputs", "render"]
TOP_FEATURES = 20
WRITTEN_SPLITS = ("train", "validation", "test")  # schema.json's rows that a missing count covers

_STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#111;max-width:1120px}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:28px}
.charts{display:flex;flex-wrap:wrap;gap:16px}
figure.chart{margin:0;border:1px solid #ddd;padding:8px}
figcaption{font-size:13px;font-weight:600;margin-bottom:4px}table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}.missing{color:#777;font-style:italic}
.status-SUCCEEDED{color:#2ca02c}.status-FAILED,.status-TIMED_OUT,.status-ABORTED{color:#d62728}
"""


@dataclass
class ReportInputs:
    """What one report shows; every part but the name may be missing (it says so)."""

    execution: str
    environment: str
    status: str
    events: Sequence[Mapping[str, Any]] = ()  # GetExecutionHistory's events
    # {training job: [metrics-<host>.json documents]}
    rounds: Mapping[str, Sequence[Mapping[str, Any]]] = field(default_factory=dict)
    # the tuning jobs' training jobs: [{"name", "value", "status"}], and the objective's name
    tuning: Sequence[Mapping[str, Any]] = ()
    tuning_objective: str = ""
    parts: Mapping[str, Any] | None = None  # report_parts.json
    output: Mapping[str, Any] | None = None  # the execution's output
    releases: Sequence[Mapping[str, Any]] = ()
    error: str | None = None


def render(inputs: ReportInputs) -> str:
    """The report's HTML."""
    sections = [
        _section("Execution timeline", _timeline(inputs.events)),
        _section(
            "Training curves", _training(inputs.rounds, inputs.tuning, inputs.tuning_objective)
        ),
        _section("Evaluation", _evaluation(inputs.parts)),
        _section("Feature importance", _importance(inputs.parts)),
        _section("Data", _data(inputs.parts)),
        _section("Decisions", _decisions(inputs.output, inputs.releases)),
    ]
    title = f"mlstack run {inputs.execution} ({inputs.environment})"
    status = escape(inputs.status)
    error = f"<p>{escape(inputs.error)}</p>" if inputs.error else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>"
        f'<h1>{escape(title)}: <span class="status-{status}">{status}</span></h1>{error}'
        + "".join(sections)
        + "</body></html>\n"
    )


def _section(title: str, body: str) -> str:
    return f"<section><h2>{escape(title)}</h2>{body}</section>"


def _missing(what: str) -> str:
    return f'<p class="missing">{escape(what)}</p>'


def _charts(figures: Sequence[str]) -> str:
    return '<div class="charts">' + "".join(figures) + "</div>"


def _timeline(events: Sequence[Mapping[str, Any]]) -> str:
    bars = timeline_bars(events)
    if not bars:
        return _missing("No execution history.")
    legend = (
        "<p>Green: succeeded; orange: succeeded after retries (black ticks); red: failed or "
        "caught. A state inside a Map iteration is shown as <i>Map [index] / state</i>.</p>"
    )
    return legend + svg.timeline("timeline", "States over time", bars)


def _training(
    rounds: Mapping[str, Sequence[Mapping[str, Any]]],
    tuning: Sequence[Mapping[str, Any]],
    objective: str,
) -> str:
    figures = []
    for job, hosts in rounds.items():
        for host in hosts:
            by_metric: dict[str, list[svg.Series]] = {}
            first = int(host.get("first_round", 0))
            for data_set, metrics in (host.get("metrics") or {}).items():
                for metric, values in metrics.items():
                    x = [first + i for i in range(len(values))]
                    by_metric.setdefault(metric, []).append(svg.Series(data_set, x, values))
            for metric, series in by_metric.items():
                label = f"{job} on {host.get('host')}" if len(hosts) > 1 else job
                figures.append(
                    svg.xy_chart(
                        f"training-{metric}",
                        f"{metric} per round: {label}",
                        series,
                        x_label="round",
                        y_label=metric,
                    )
                )
    scored = [t for t in tuning if isinstance(t.get("value"), int | float)]
    if scored:
        best = next((i for i, t in enumerate(scored) if t.get("best")), None)
        figures.append(
            svg.xy_chart(
                "tuning",
                f"Tuning: {objective or 'objective'} of each training job (best ringed)",
                [
                    svg.Series(
                        objective or "objective",
                        list(range(1, len(scored) + 1)),
                        [float(t["value"]) for t in scored],
                        mark="points",
                        highlight=best,
                    )
                ],
                x_label="training job (in start order)",
                y_label=objective or "objective",
            )
        )
    if not figures:
        return _missing("No per-round metrics (the training job wrote no metrics-<host>.json).")
    return _charts(figures)


def _evaluation(parts: Mapping[str, Any] | None) -> str:
    if not parts:
        return _missing("No report_parts.json from the evaluation job.")
    kind = parts.get("problem_type")
    figures = []
    if kind == "binary" and "roc" in parts:
        roc, pr = parts["roc"], parts["precision_recall"]
        figures.append(
            svg.xy_chart(
                "roc",
                "ROC curve (dashed: chance)",
                [svg.Series("ROC", roc["false_positive_rate"], roc["true_positive_rate"])],
                x_label="false positive rate",
                y_label="true positive rate",
                x_range=(0, 1),
                y_range=(0, 1),
                diagonal=True,
            )
        )
        figures.append(
            svg.xy_chart(
                "precision-recall",
                "Precision-recall curve",
                [svg.Series("precision-recall", pr["recall"], pr["precision"])],
                x_label="recall",
                y_label="precision",
                x_range=(0, 1),
                y_range=(0, 1),
            )
        )
    if isinstance(parts.get("confusion_matrix"), dict):
        figures.append(
            svg.heatmap("confusion-matrix", "Confusion matrix", parts["confusion_matrix"])
        )
    if isinstance(parts.get("per_class"), dict):
        labels = list(parts["per_class"])
        groups = {
            what: [float(parts["per_class"][c][what]) for c in labels]
            for what in ("precision", "recall")
        }
        figures.append(
            svg.bar_chart(
                "per-class",
                "Precision and recall by class",
                labels,
                groups,
                x_label="value",
                y_label="class",
            )
        )
    if kind == "regression" and "predicted_vs_actual" in parts:
        scatter = parts["predicted_vs_actual"]
        figures.append(
            svg.xy_chart(
                "predicted-vs-actual",
                f"Predicted against actual ({len(scatter['actual'])} of {scatter['rows']} rows; "
                "dashed: perfect)",
                [svg.Series("rows", scatter["actual"], scatter["predicted"], mark="points")],
                x_label="actual",
                y_label="predicted",
                diagonal=True,
            )
        )
        residuals = parts["residuals"]
        figures.append(
            svg.histogram(
                "residuals",
                "Residuals (predicted - actual)",
                residuals["edges"],
                residuals["counts"],
                x_label="residual",
            )
        )
    return _charts(figures) if figures else _missing(f"No charts for problem type {kind!r}.")


def _importance(parts: Mapping[str, Any] | None) -> str:
    importance = (parts or {}).get("importance") or {}
    gains = importance.get("gain")
    if not isinstance(gains, dict) or not gains:
        return _missing(f"No feature importance: {importance.get('missing', 'not computed')}.")
    top = list(gains.items())[:TOP_FEATURES]
    return svg.bar_chart(
        "importance",
        f"Total gain by feature (top {len(top)} of {len(gains)})",
        [name for name, _ in top],
        {"gain": [float(v) for _, v in top]},
        x_label="total gain",
        y_label="feature",
    )


def _data(parts: Mapping[str, Any] | None) -> str:
    data = (parts or {}).get("data") or {}
    figures = []
    rows = data.get("rows")
    if isinstance(rows, dict):
        figures.append(
            svg.bar_chart(
                "rows",
                "Rows per split",
                list(rows),
                {"rows": [float(v) for v in rows.values()]},
                x_label="rows",
                y_label="split",
            )
        )
    balance = data.get("class_balance")
    if isinstance(balance, dict):
        figures.append(
            svg.bar_chart(
                "class-balance",
                f"Class balance of the {data.get('test_rows')} test rows",
                list(balance),
                {"rows": [float(v) for v in balance.values()]},
                x_label="rows",
                y_label="class",
            )
        )
    missing_chart, missing_text = _missing_values(data.get("missing"), rows)
    figures += missing_chart
    note = (
        ""
        if isinstance(rows, dict)
        else _missing("Rows per split: the run has no schema.json (the generated dataset).")
    )
    return note + (_charts(figures) if figures else _missing("No data summary.")) + missing_text


def _missing_values(missing: Any, rows: Any) -> tuple[list[str], str]:
    """Missing values per feature column (schema.json's ``features[].missing``): a bar chart and
    a table of the columns that have any, most first, and a sentence for the others."""
    if not isinstance(missing, dict):
        return [], _missing(
            "Missing values per column: the model's schema.json does not count them (the "
            "generated dataset, or a dataset prepared before the counts)."
        )
    counted = {str(k): int(v) for k, v in missing.items() if isinstance(v, int) and v > 0}
    if not counted:
        return [], f"<p>No missing values in any of the {len(missing)} feature columns.</p>"
    top = sorted(counted.items(), key=lambda kv: -kv[1])[:TOP_FEATURES]
    written = sum(int(rows.get(s, 0)) for s in WRITTEN_SPLITS) if isinstance(rows, dict) else 0
    of = f" of {written} rows" if written else ""
    chart = svg.bar_chart(
        "missing-values",
        "Missing values per column"
        + (f" (top {len(top)} of {len(counted)})" if len(counted) > len(top) else ""),
        [name for name, _ in top],
        {"missing": [float(n) for _, n in top]},
        x_label=f"missing values{of}",
        y_label="column",
    )
    body = "".join(
        f"<tr><td>{escape(name)}</td><td>{n}</td>"
        f"<td>{f'{100 * n / written:.3g} %' if written else ''}</td></tr>"
        for name, n in top
    )
    table = (
        f"<p>{len(counted)} of {len(missing)} feature columns have missing values{of}:</p>"
        '<table class="missing-values"><tr><th>Column</th><th>Missing</th><th>Share</th></tr>'
        f"{body}</table>"
    )
    return [chart], table


def _decisions(output: Mapping[str, Any] | None, releases: Sequence[Mapping[str, Any]]) -> str:
    out = output or {}
    rows: list[tuple[str, str]] = []
    evaluation = out.get("evaluation")
    if isinstance(evaluation, dict):
        metrics = evaluation.get("metrics") or {}
        shown = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, int | float))
        rows.append(("Evaluation", f"{evaluation.get('problem_type')}: {shown}"))
    gate = out.get("gate") or out.get("quality_gate")
    if isinstance(gate, dict):
        rows.append(("Quality gate", json.dumps(gate, sort_keys=True)[:400]))
    package = out.get("model_package")
    if isinstance(package, dict):
        rows.append(
            (
                "Registered version",
                f"{package.get('version')} ({package.get('approval_status')}) "
                f"{package.get('arn', '')}",
            )
        )
    elif out:
        rows.append(("Registered version", "none (no model_package in the output)"))
    for release in releases:
        output = release.get("output")
        result: Mapping[str, Any] = output if isinstance(output, dict) else {}
        ab = result.get("ab")
        what = f"{release.get('status')}: {result.get('result', release.get('error', ''))}"
        rows.append(("Release", what))
        if isinstance(ab, dict):
            rows.append(("A/B", f"{ab.get('decision')}: {ab.get('reason', '')}"))
    if not rows:
        return _missing("No decisions: the execution has no output.")
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"
