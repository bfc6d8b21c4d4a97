"""The ``baseline`` program SageMaker Processing runs (``ContainerEntrypoint: ["baseline"]``).

It reads the training channel's labelled CSV objects from ``--input`` (default ``train``: every
object under ``/opt/ml/processing/input/train``) and writes ``statistics.json`` and
``constraints.json`` into each ``--output`` directory (default ``baseline``:
``/opt/ml/processing/output/baseline``). A relative ``--input``/``--output`` is a directory under
``processing/input``/``processing/output`` of ``$SAGEMAKER_BASE_DIR`` (``/opt/ml``), the
``LocalPath`` of a ProcessingInput/ProcessingOutput, so local runs use the same arguments.

Beside them it writes ``feature_baseline.json`` (:mod:`mlstack_containers.feature_baseline`):
each feature's training distribution by feature name, which the ``monitor`` program compares
the captured requests with. ``--schema NAME`` (optional) is the directory of the dataset's
``schema.json`` (a ProcessingInput of a prepared dataset); ``--model NAME`` (optional, what the
workflow's Baseline data job passes) is the directory of the run's model artifact, whose
``schema.json`` a model trained on a prepared dataset carries. Without either, or with a model
that carries none, the names are the seeder's ``x``/``y`` (two features) or ``_c<i>``.

``--label drop`` (default) describes the features alone, as an endpoint that captures only its
input records them; ``--label first`` keeps the label as the first column, where Model Monitor
puts the prediction of an endpoint that also captures its output.

On failure it writes the reason to ``/opt/ml/output/message``, which SageMaker Processing reports
as the job's ``ExitMessage`` ("Save and Access Metadata Information About Your Processing Job"),
and to ``/opt/ml/output/failure`` like the training program, and exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mlstack_containers.baseline.stats import (
    DEFAULT_COMPARISON_THRESHOLD,
    BaselineError,
    constraints,
    feature_baseline,
    read_features,
    statistics,
)
from mlstack_containers.data import channel_files
from mlstack_containers.evaluation import EvaluationError, read_model
from mlstack_containers.paths import SageMakerPaths
from mlstack_containers.schema import Schema, SchemaError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise BaselineError(f"bad arguments: {message}; usage: {self.format_usage().strip()}")


def _arguments(argv: list[str], paths: SageMakerPaths) -> argparse.Namespace:
    processing = paths.base / "processing"
    parser = _Parser(prog="baseline", add_help=False)
    parser.add_argument("--input", type=Path, default=Path("train"))
    parser.add_argument("--output", type=Path, action="append")
    parser.add_argument("--comparison-threshold", type=float, default=DEFAULT_COMPARISON_THRESHOLD)
    parser.add_argument("--label", choices=("drop", "first"), default="drop")
    parser.add_argument("--schema", type=Path)
    parser.add_argument("--model", type=Path)
    args = parser.parse_args(argv)
    if not 0 < args.comparison_threshold <= 1:
        raise BaselineError(
            f"--comparison-threshold {args.comparison_threshold}: expected more than 0, at most 1"
        )
    args.input = processing / "input" / args.input
    args.output = [processing / "output" / o for o in args.output or [Path("baseline")]]
    if args.schema is not None and args.model is not None:
        raise BaselineError("--schema and --model: give one (the model carries its schema.json)")
    if args.schema is not None:
        args.schema = processing / "input" / args.schema
    if args.model is not None:
        args.model = processing / "input" / args.model
    return args


def _model_schema(path: Path | None) -> Schema | None:
    """The schema.json a model trained on a prepared dataset carries (``model.tar.gz`` or
    extracted, as ``evaluate`` reads it); None for a model without one (the seeder's)."""
    if path is None:
        return None
    if not path.is_dir():
        raise BaselineError(f"--model {path}: no such directory (the model artifact's input)")
    try:
        return read_model(path).schema
    except EvaluationError as exc:
        raise BaselineError(f"--model {path}: {exc}") from None


def _schema(path: Path | None) -> Schema | None:
    if path is None:
        return None
    try:
        return Schema.read(path)
    except FileNotFoundError:
        raise BaselineError(f"--schema {path}: no schema.json there") from None
    except SchemaError as exc:
        raise BaselineError(str(exc)) from None


def run(argv: list[str], paths: SageMakerPaths) -> list[Path]:
    """Write the baseline; returns the files written."""
    args = _arguments(argv, paths)
    if not args.input.is_dir():
        raise BaselineError(f"input directory {args.input} does not exist")
    schema = _schema(args.schema) or _model_schema(args.model)
    rows, columns = read_features(channel_files(args.input), keep_label=True)
    stats = statistics(rows, columns if args.label == "first" else columns[1:])
    documents = {
        "statistics.json": stats,
        "constraints.json": constraints(stats, args.comparison_threshold),
    }
    features = feature_baseline(rows, columns[0], columns[1:], schema)
    written = []
    for directory in args.output:
        directory.mkdir(parents=True, exist_ok=True)
        for name, document in documents.items():
            target = directory / name
            target.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
            written.append(target)
        written.append(features.write(directory))
    return written


def _fail(paths: SageMakerPaths, message: str) -> None:
    print(f"baseline: failed: {message}", file=sys.stderr)
    paths.write_output(("message", "failure"), message, "baseline")


def main(argv: list[str] | None = None) -> int:
    paths = SageMakerPaths.from_env()
    try:
        written = run(sys.argv[1:] if argv is None else argv, paths)
    except BaselineError as exc:
        _fail(paths, str(exc))
        return 1
    except (OSError, UnicodeDecodeError) as exc:
        _fail(paths, f"cannot read the input: {exc}")
        return 1
    for target in written:
        print(f"baseline: wrote {target}")
    return 0
