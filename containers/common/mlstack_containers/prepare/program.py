"""The ``prepare`` program SageMaker Processing runs (``ContainerEntrypoint: ["prepare"]``): a
user's table (CSV or Parquet) in, the schema and the train/validation/test shards out.

Input: every object under ``/opt/ml/processing/input/data/`` (the ProcessingInput's
``LocalPath``; sub-folders are read too, names starting with ``.`` or ``_`` are skipped, as Spark
writes ``_SUCCESS`` beside its data), in key order (Unicode code point). Every object must have
the same columns.

Output, under ``/opt/ml/processing/output/``:

* ``schema/schema.json``: the dataset schema, version 1 (:mod:`mlstack_containers.schema`);
* ``train/part-NNNNN.csv``, ``validation/part-NNNNN.csv``: label first, then the features, no
  header; ``test/part-NNNNN.csv``: the features; ``test-labels/part-NNNNN.csv``: the test rows'
  labels, line by line (the seeder's layout). NNNNN is the input object's index in key order: one
  shard per split per object, none for a split the object gives no row.
* ``rejected/part-NNNNN.jsonl``: one JSON line per bad row dropped (``object``, ``where``,
  ``column``, ``reason``, ``row``), only when ``--max-bad-rows-percent`` lets bad rows through.

Arguments (``AppSpecification.ContainerArguments``); each also reads from the environment
variable in brackets (``Environment``), an argument winning:

* ``--label NAME`` [``PREPARE_LABEL``], required: the label column;
* ``--problem-type auto|binary|multiclass|regression`` [``PREPARE_PROBLEM_TYPE``], default auto;
* ``--format auto|csv|parquet`` [``PREPARE_FORMAT``], default auto: from each object's name
  (``.csv``, ``.csv.gz``, ``.gz``, ``.txt``, ``.tsv`` CSV, gzip when compressed;
  ``.parquet``/``.pq`` Parquet);
* ``--features A,B`` [``PREPARE_FEATURES``]: the feature columns, in shard order; default every
  column but the label, in the input's order;
* ``--categorical A,B`` [``PREPARE_CATEGORICAL``]: columns forced categorical; the others are
  numeric when every non-missing value of their first 10,000 rows is a number;
* ``--validation-fraction F`` [``PREPARE_VALIDATION_FRACTION``], ``--test-fraction F``
  [``PREPARE_TEST_FRACTION``]: default 0.15 each (70/15/15), each in [0, 1), together below 1;
* ``--seed N`` [``PREPARE_SEED``], default 0: the split's seed;
* ``--max-bad-rows-percent P`` [``PREPARE_MAX_BAD_ROWS_PERCENT``], default 0: the share of bad
  rows dropped (and written to ``rejected/``) before the job fails;
* ``--column-names A,B,C`` [``PREPARE_COLUMN_NAMES``]: the columns of a CSV without a header
  row (every object then has no header).

It reads the input twice in fixed-size batches (pass 1 learns types, classes, categories and
split boundaries; pass 2 writes), so its memory follows the number of distinct categories and
classes, not the number of rows. The split is keyed on a hash of each row's content and the seed:
the same rows and seed give the same splits, however the input is cut into objects.

Several instances (``ProcessingResources.ClusterConfig.InstanceCount`` > 1, the input
``FullyReplicated``): every host reads every object in pass 1 (so each learns the same schema and
boundaries), then writes only the objects whose index modulo the host count is its position among
the sorted host names in ``/opt/ml/config/resourceconfig.json``; shard names carry the object's
index, so the union of the hosts' outputs is the same files for any host count. The first host
writes ``schema.json``.

On failure the reason (object, line or row group, column of the first few problems) goes to
``/opt/ml/output/failure`` (the job's ``FailureReason``) and ``/opt/ml/output/message`` (its
``ExitMessage``), and the exit status is 1. On success ``message`` holds a one-line JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mlstack_containers.paths import SageMakerPaths
from mlstack_containers.prepare.learn import (
    Learner,
    Plan,
    check_bad_share,
    infer_layout,
    plan,
)
from mlstack_containers.prepare.read import (
    FORMATS,
    PrepareError,
    Problem,
    Source,
    batches,
    columns,
    list_sources,
)
from mlstack_containers.prepare.rows import Layout, parse
from mlstack_containers.prepare.write import ObjectWriter, encode
from mlstack_containers.schema import PROBLEM_TYPES

ENV_PREFIX = "PREPARE_"
DEFAULT_FRACTION = 0.15


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise PrepareError(f"bad arguments: {message}; usage: {self.format_usage().strip()}")


def _names(text: str | None) -> tuple[str, ...] | None:
    if text is None or not text.strip():
        return None
    return tuple(n.strip() for n in text.split(","))


@dataclass(frozen=True)
class Options:
    label: str
    problem_type: str
    format: str
    features: tuple[str, ...] | None
    categorical: frozenset[str]
    validation: float
    test: float
    seed: int
    max_bad_percent: float
    column_names: tuple[str, ...] | None

    @classmethod
    def parse(cls, argv: list[str], environ: Mapping[str, str]) -> Options:
        parser = _Parser(prog="prepare", add_help=False)
        for name in (
            "label", "problem-type", "format", "features", "categorical", "validation-fraction",
            "test-fraction", "seed", "max-bad-rows-percent", "column-names",
        ):  # fmt: skip
            env = ENV_PREFIX + name.upper().replace("-", "_")
            parser.add_argument(f"--{name}", default=environ.get(env))
        args = parser.parse_args(argv)
        if not args.label:
            raise PrepareError("--label (PREPARE_LABEL) is required: the label column's name")
        problem = args.problem_type or "auto"
        if problem not in ("auto", *PROBLEM_TYPES):
            raise PrepareError(
                f"--problem-type {problem!r}: expected auto, {', '.join(PROBLEM_TYPES)}"
            )
        fmt = args.format or "auto"
        if fmt not in ("auto", *FORMATS):
            raise PrepareError(f"--format {fmt!r}: expected auto, {', '.join(FORMATS)}")
        validation = _number(args.validation_fraction, "--validation-fraction", DEFAULT_FRACTION)
        test = _number(args.test_fraction, "--test-fraction", DEFAULT_FRACTION)
        for value, name in ((validation, "--validation-fraction"), (test, "--test-fraction")):
            if not 0 <= value < 1:
                raise PrepareError(f"{name} {value:g}: expected at least 0 and below 1")
        if validation + test >= 1:
            raise PrepareError(
                f"--validation-fraction {validation:g} + --test-fraction {test:g} leave no "
                "training rows: together they must stay below 1"
            )
        seed = _number(args.seed, "--seed", 0)
        if seed != int(seed) or seed < 0:
            raise PrepareError(f"--seed {args.seed}: expected a whole number >= 0")
        max_bad = _number(args.max_bad_rows_percent, "--max-bad-rows-percent", 0)
        if not 0 <= max_bad <= 100:
            raise PrepareError(f"--max-bad-rows-percent {max_bad:g}: expected 0 to 100")
        return cls(
            label=args.label,
            problem_type=problem,
            format=fmt,
            features=_names(args.features),
            categorical=frozenset(_names(args.categorical) or ()),
            validation=validation,
            test=test,
            seed=int(seed),
            max_bad_percent=max_bad,
            column_names=_names(args.column_names),
        )


def _number(text: str | None, name: str, default: float) -> float:
    if text is None or text == "":
        return default
    try:
        return float(text)
    except ValueError:
        raise PrepareError(f"{name} {text!r}: expected a number") from None


def host_share(paths: SageMakerPaths) -> tuple[int, int]:
    """(this host's position, host count) from ``/opt/ml/config/resourceconfig.json``; (0, 1)
    when the file is absent (one instance, or a local run)."""
    config = paths.base / "config" / "resourceconfig.json"
    if not config.is_file():
        return 0, 1
    document = json.loads(config.read_text("utf-8"))
    hosts = sorted(document["hosts"])
    return hosts.index(document["current_host"]), len(hosts)


def _layout(options: Options, sources: list[Source]) -> tuple[tuple[str, ...], Layout]:
    names = columns(sources[0], options.column_names)
    for source in sources[1:]:
        other = columns(source, options.column_names)
        if other != names:
            where = "row group 0" if source.format == "parquet" else "line 1"
            missing = [c for c in names if c not in other]
            extra = [c for c in other if c not in names]
            detail = (
                f"column {(missing or extra)[0]!r} "
                f"{'missing' if missing else 'not in ' + sources[0].name}"
                if missing or extra
                else "same columns in another order"
            )
            raise PrepareError(
                f"{source.name} {where}: its columns differ from {sources[0].name}'s ({detail}); "
                f"every object of the source needs the columns {', '.join(names)}"
            )
    first = sources[0].name
    if options.label not in names:
        raise PrepareError(
            f"{first} line 1 column {options.label!r}: the label column is not in the input "
            f"(columns: {', '.join(names)})"
        )
    features = options.features or tuple(n for n in names if n != options.label)
    for name in (*features, *options.categorical):
        if name not in names:
            raise PrepareError(
                f"{first} line 1 column {name!r}: named as a feature or categorical column but "
                f"not in the input (columns: {', '.join(names)})"
            )
    if options.label in features:
        raise PrepareError(f"column {options.label!r} is the label: it cannot be a feature too")
    if not features:
        raise PrepareError("no feature columns: the input holds the label alone")
    wanted = (options.label, *features)
    headerless = options.column_names is not None
    sample = (
        b
        for s in sources
        for b in batches(s, names, wanted, headerless, [])  # problems counted in pass 1
    )
    # a label named categorical is taken as text: its classes in code point order
    return names, infer_layout(sample, options.label, features, options.categorical)


def run(argv: list[str], paths: SageMakerPaths, environ: Mapping[str, str]) -> Plan:
    options = Options.parse(argv, environ)
    processing = paths.base / "processing"
    sources = list_sources(processing / "input" / "data", options.format)
    names, layout = _layout(options, sources)
    headerless = options.column_names is not None
    learner = Learner(layout)
    for source in sources:
        problems: list[Problem] = []
        for batch in batches(source, names, layout.columns, headerless, problems):
            learner.add(batch, parse(batch, layout, options.seed))
        learner.add_problems(problems)
    check_bad_share(learner, options.max_bad_percent)
    decided = plan(learner, options.problem_type, options.test, options.validation)
    rank, hosts = host_share(paths)
    out = processing / "output"
    for source in sources:
        if source.index % hosts != rank:
            continue
        writer = ObjectWriter(out, source)
        try:
            problems = []
            for batch in batches(source, names, layout.columns, headerless, problems):
                encode(decided, layout, parse(batch, layout, options.seed), batch, writer)
            for problem in problems:
                writer.reject(problem, None)
        finally:
            writer.close()
    if rank == 0:
        decided.schema.write(out / "schema")
    return decided


# What a model registry version's CustomerMetadataProperties value may hold (SageMaker's
# CustomerMetadataValue: pattern [\p{L}\p{Z}\p{N}_.:/=+\-@]*, 1 to 256 characters): letters,
# separators and numbers by Unicode category, and these.
METADATA_VALUE_PUNCTUATION = frozenset("_.:/=+-@")
METADATA_VALUE_MAX = 256
CLASS_LABEL_SEPARATOR = "/"


def _metadata_character(character: str) -> bool:
    return unicodedata.category(character)[0] in "LZN" or character in METADATA_VALUE_PUNCTUATION


def registry_entries(classes: Sequence[str]) -> dict[str, str]:
    """What Register model adds to the version's metadata (docs/your-data.md): for a
    classification table ``class_count`` and, when they fit a metadata value, ``class_labels``
    (the labels in the schema's order, joined by ``/``: a label holding ``/`` or a character the
    pattern refuses, or labels over 256 characters together, leave it out: schema.json has them);
    nothing for regression."""
    if not classes:
        return {}
    entries = {"class_count": str(len(classes))}
    joined = CLASS_LABEL_SEPARATOR.join(classes)
    fits = len(joined) <= METADATA_VALUE_MAX and all(
        CLASS_LABEL_SEPARATOR not in label and all(_metadata_character(c) for c in label)
        for label in classes
    )
    if fits:
        entries["class_labels"] = joined
    return entries


def main(argv: list[str] | None = None) -> int:
    paths = SageMakerPaths.from_env()
    try:
        decided = run(sys.argv[1:] if argv is None else argv, paths, os.environ)
    except PrepareError as exc:
        message = str(exc)
    except (OSError, MemoryError) as exc:
        message = f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # the job must say why, whatever happened
        traceback.print_exc()
        message = f"internal error ({type(exc).__name__}): {exc}"
    else:
        schema = decided.schema
        summary = {
            "problem_type": schema.problem_type,
            "label": schema.label.name,
            "classes": len(schema.classes),
            "features": len(schema.features),
            "rows": schema.to_dict()["rows"],
            "registry": registry_entries(schema.classes),
        }
        paths.write_output(("message",), json.dumps(summary, separators=(",", ":")), "prepare")
        print(f"prepare: {json.dumps(summary)}")
        return 0
    paths.write_output(("message", "failure"), message, "prepare")
    print(f"prepare: failed: {message}", file=sys.stderr)
    return 1
