"""The ``monitor`` program SageMaker Processing runs (``ContainerEntrypoint: ["monitor"]``).

Inputs (ProcessingInput ``LocalPath``s under ``$SAGEMAKER_BASE_DIR/processing/input``):
``capture`` (every ``*.jsonl`` below it: the endpoint's data capture), ``baseline`` (the prefix
``baseline`` writes; ``feature_baseline.json`` is read), ``ground_truth`` (optional JSON Lines
``{"inference_id", "label"}``). Output: ``processing/output/report/`` gets ``report.json``,
``report.html`` and ``metric_data.json`` (:mod:`.report`).

Arguments: ``--window-start``/``--window-end`` (ISO 8601; a record whose
``eventMetadata.inferenceTime`` is outside [start, end) is not counted), ``--endpoint`` (the
metrics' ``Endpoint`` dimension), ``--min-records`` (fewer records: ``not_enough_data``, no
drift or quality metric published, never an alarm), ``--psi-threshold``, ``--p-value``,
``--drifted-share-percent`` (the drift alarm: at least this share of the features drifted),
``--quality-metric`` (default per problem type: AUC, Accuracy for multiclass, RMSE for
regression) and
``--quality-threshold`` (none: no quality alarm).

Bad capture lines and ground truth are counted and listed in the report; the program exits 0 on
every window it analysed. When it cannot analyse (bad arguments, no readable baseline) it
writes the reason to ``/opt/ml/output/message`` and ``failure`` and exits 1.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from mlstack_containers.feature_baseline import FeatureBaseline, FeatureBaselineError
from mlstack_containers.monitor import report as reports
from mlstack_containers.monitor.capture import (
    Captured,
    CaptureReader,
    RequestDecoder,
    capture_files,
    parse_time,
    schema_of,
)
from mlstack_containers.monitor.drift import FeatureDrift, categorical_drift, numeric_drift
from mlstack_containers.monitor.quality import (
    DEFAULT_METRIC,
    QUALITY_METRICS,
    GroundTruth,
    breaches,
    join,
    quality_metrics,
    read_ground_truth,
)
from mlstack_containers.paths import SageMakerPaths


class MonitorError(ValueError):
    """The window cannot be analysed; the message says why and what to do."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise MonitorError(f"bad arguments: {message}; usage: {self.format_usage().strip()}")


def _time(text: str) -> datetime:
    try:
        return parse_time(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from None


def arguments(argv: list[str]) -> argparse.Namespace:
    parser = _Parser(prog="monitor", add_help=False)
    parser.add_argument("--window-start", type=_time, required=True)
    parser.add_argument("--window-end", type=_time, required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--min-records", type=int, default=100)
    parser.add_argument("--psi-threshold", type=float, default=0.2)
    parser.add_argument("--p-value", type=float, default=0.01)
    parser.add_argument("--drifted-share-percent", type=float, default=30.0)
    parser.add_argument("--quality-metric")
    parser.add_argument("--quality-threshold", type=float)
    args = parser.parse_args(argv)
    checks = [
        (args.window_start < args.window_end, "--window-start must be before --window-end"),
        (args.min_records >= 1, f"--min-records {args.min_records}: expected at least 1"),
        (args.psi_threshold > 0, f"--psi-threshold {args.psi_threshold}: expected above 0"),
        (0 < args.p_value < 1, f"--p-value {args.p_value}: expected between 0 and 1"),
        (
            0 < args.drifted_share_percent <= 100,
            f"--drifted-share-percent {args.drifted_share_percent}: expected above 0, at most 100",
        ),
        (
            args.quality_threshold is None or math.isfinite(args.quality_threshold),
            "--quality-threshold must be a finite number",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise MonitorError(message)
    return args


def _decoder(baseline: FeatureBaseline) -> RequestDecoder:
    schema = None
    if baseline.names_from == "schema":
        schema = schema_of(
            [
                (f.name, tuple(f.categories) if f.type == "categorical" else None)
                for f in baseline.features
            ]
        )
    return RequestDecoder(len(baseline.features), schema)


def drift_of(
    baseline: FeatureBaseline, captured: Captured, args: argparse.Namespace
) -> list[FeatureDrift]:
    out = []
    for index, profile in enumerate(baseline.features):
        values = captured.matrix(index)
        if profile.type == "categorical":
            out.append(
                categorical_drift(profile, values, baseline.rows, args.psi_threshold, args.p_value)
            )
        else:
            out.append(numeric_drift(profile, values, args.psi_threshold, args.p_value))
    return out


def _quality(
    baseline: FeatureBaseline,
    truth: GroundTruth | None,
    captured: Captured,
    args: argparse.Namespace,
) -> tuple[dict[str, Any] | None, bool]:
    if truth is None:
        return None, False
    labels, scores, unmatched, mismatched = join(truth, captured.predictions, baseline.problem_type)
    metrics = quality_metrics(baseline.problem_type, labels, scores)
    status = "ok" if len(labels) >= args.min_records else "not_enough_data"
    metric = args.quality_metric or DEFAULT_METRIC[baseline.problem_type]
    fired = (
        status == "ok"
        and args.quality_threshold is not None
        and metric in metrics
        and breaches(metric, metrics[metric], args.quality_threshold)
    )
    section = {
        "problem_type": baseline.problem_type,
        "status": status,
        "labelled": len(labels),
        "metrics": metrics,
        "metric": metric,
        "threshold": args.quality_threshold,
        "ground_truth": {
            "lines": truth.lines,
            "rejected": truth.problems.count - truth.duplicates,
            "duplicates": truth.duplicates,
            "unmatched": unmatched,
            "mismatched": mismatched,
        },
        "ground_truth_problems": [p.to_dict() for p in truth.problems.first],
    }
    return section, fired


def analyse(paths: SageMakerPaths, args: argparse.Namespace) -> dict[str, Any]:
    """The window's report (a JSON-ready dict)."""
    inputs = paths.base / "processing" / "input"
    try:
        baseline = FeatureBaseline.read(inputs / "baseline")
    except FeatureBaselineError as exc:
        raise MonitorError(str(exc)) from None
    if args.quality_metric and args.quality_metric not in QUALITY_METRICS[baseline.problem_type]:
        raise MonitorError(
            f"--quality-metric {args.quality_metric}: a {baseline.problem_type} model has "
            f"{', '.join(QUALITY_METRICS[baseline.problem_type])}"
        )
    truth_dir = inputs / "ground_truth"
    truth = read_ground_truth(truth_dir, baseline.classes) if truth_dir.is_dir() else None
    reader = CaptureReader(
        _decoder(baseline), args.window_start, args.window_end, truth.labels if truth else {}
    )
    capture_dir = inputs / "capture"
    captured = reader.read(capture_files(capture_dir), capture_dir)
    status = "ok" if captured.records >= args.min_records else "not_enough_data"
    features = drift_of(baseline, captured, args) if captured.records else []
    drifted = sum(f.drifted for f in features)
    share = 100.0 * drifted / len(features) if features else 0.0
    quality, quality_fired = _quality(baseline, truth, captured, args)
    return {
        "endpoint": args.endpoint,
        "window": {"start": args.window_start.isoformat(), "end": args.window_end.isoformat()},
        "status": status,
        "records": {
            "captured": captured.records,
            "requests": captured.requests,
            "outside_window": captured.outside_window,
            "rejected": captured.rejected.count,
            "content_types": captured.content_types,
        },
        "rejected_examples": [p.to_dict() for p in captured.rejected.first],
        "thresholds": {
            "min_records": args.min_records,
            "psi": args.psi_threshold,
            "p_value": args.p_value,
            "drifted_share_percent": args.drifted_share_percent,
        },
        "baseline": {"rows": baseline.rows, "names_from": baseline.names_from},
        "drift": {
            "features": [f.to_dict() for f in features],
            "drifted": drifted,
            "drifted_share_percent": share,
        },
        "quality": quality,
        "alarms": {
            "drift": status == "ok" and share >= args.drifted_share_percent,
            "quality": quality_fired,
        },
    }


def run(argv: list[str], paths: SageMakerPaths) -> list[Path]:
    args = arguments(argv)
    started = time.monotonic()
    report = analyse(paths, args)
    report["seconds"] = round(time.monotonic() - started, 3)
    return reports.write(report, paths.base / "processing" / "output" / "report")


def _fail(paths: SageMakerPaths, message: str) -> int:
    print(f"monitor: failed: {message}", file=sys.stderr)
    paths.write_output(("message", "failure"), message, "monitor")
    return 1


def main(argv: list[str] | None = None) -> int:
    paths = SageMakerPaths.from_env()
    np.seterr(all="ignore")
    try:
        written = run(sys.argv[1:] if argv is None else argv, paths)
    except MonitorError as exc:
        return _fail(paths, str(exc))
    except OSError as exc:
        return _fail(paths, f"cannot read the inputs or write the report: {exc}")
    except (ValueError, ArithmeticError) as exc:  # a figure JSON cannot hold, say: never silent
        return _fail(paths, f"cannot analyse the window: {exc!r}")
    for target in written:
        print(f"monitor: wrote {target}")
    return 0
