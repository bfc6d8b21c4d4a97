"""The first pass: column types, the problem type, classes, categories, split boundaries, counts
(rows per split, missing values per feature).

Memory holds per-class histograms of split bins (``BINS`` counters a class) and, per categorical
column, one entry per distinct (value, class): it follows the columns' cardinality, never the
number of rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlstack_containers.prepare.read import Batch, PrepareError, Problem
from mlstack_containers.prepare.rows import BINS, NUMBER, Layout, Parsed, missing_mask
from mlstack_containers.schema import (
    CLASSIFICATION,
    Feature,
    Label,
    Rows,
    Schema,
    class_order,
)

INFER_ROWS = 10_000  # a column's type is decided on the first rows, in object order
NUMERIC_SHARE = 0.95  # ... numeric when this share of its present values there are numbers
MULTICLASS_MAX_DISTINCT = 20  # auto: integer labels with 3..20 distinct values are classes
MAX_CLASSES = 1_000
PROBLEMS_SHOWN = 5


def infer_layout(
    batches: Iterable[Batch], label: str, features: tuple[str, ...], categorical: frozenset[str]
) -> Layout:
    """A column is numeric when at least NUMERIC_SHARE of the present (non-missing) values among
    the first INFER_ROWS rows (in object order) are numbers, and it is not forced categorical;
    the label the same. A present value that is not a number in a numeric column makes its row
    bad (a typo in a numeric column is reported, not turned into a category)."""
    seen = 0
    candidates = [name for name in (label, *features) if name not in categorical]
    present = dict.fromkeys(candidates, 0)
    numbers = dict.fromkeys(candidates, 0)
    for batch in batches:
        table = batch.table.slice(0, INFER_ROWS - seen)
        for name in candidates:
            values = pc.utf8_trim_whitespace(table.column(name))
            given = pc.invert(missing_mask(values))
            number = pc.and_(given, pc.fill_null(pc.match_substring_regex(values, NUMBER), False))
            present[name] += pc.sum(pc.cast(given, pa.int64())).as_py() or 0
            numbers[name] += pc.sum(pc.cast(number, pa.int64())).as_py() or 0
        seen += table.num_rows
        if seen >= INFER_ROWS:
            break
    numeric = {n for n in candidates if numbers[n] >= NUMERIC_SHARE * present[n]}
    return Layout(label, features, frozenset(numeric))


@dataclass
class Learner:
    """What the first pass gathers from every row of every object."""

    layout: Layout
    rows: int = 0
    bad: int = 0
    problems: list[Problem] = field(default_factory=list)
    all_bins: np.ndarray = field(default_factory=lambda: np.zeros(BINS, np.int64))
    class_bins: dict[str, np.ndarray] | None = field(default_factory=dict)  # None: too many
    integral: bool = True  # a numeric label holds whole numbers only
    # categorical feature -> {(value, class label): highest split bin}; class "" for regression
    by_class: dict[str, dict[tuple[str, str], int]] | None = None
    by_value: dict[str, dict[str, int]] = field(default_factory=dict)
    # feature -> missing values among the good rows (the rows the shards get)
    missing: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_class = {f: {} for f in self.categorical}
        self.by_value = {f: {} for f in self.categorical}
        self.missing = dict.fromkeys(self.layout.features, 0)

    @property
    def categorical(self) -> tuple[str, ...]:
        return tuple(f for f in self.layout.features if f not in self.layout.numeric)

    def add_problems(self, problems: list[Problem]) -> None:
        """Rows the reader refused (wrong number of fields)."""
        self.rows += len(problems)
        self.bad += len(problems)
        self.problems += problems[: PROBLEMS_SHOWN - len(self.problems)]

    def add(self, batch: Batch, parsed: Parsed) -> None:
        n = batch.table.num_rows
        self.rows += n
        self.bad += len(parsed.bad_rows)
        for row, column, reason in zip(
            parsed.bad_rows[:PROBLEMS_SHOWN], parsed.bad_columns, parsed.bad_reasons, strict=False
        ):
            if len(self.problems) < PROBLEMS_SHOWN:
                self.problems.append(
                    Problem(batch.source.name, batch.place(int(row)), column, reason)
                )
        good = pa.array(parsed.good)
        bins = parsed.bins[parsed.good]
        self.all_bins += np.bincount(bins, minlength=BINS)
        label_numeric = self.layout.label in self.layout.numeric
        keys = pc.filter(parsed.label_keys(self.layout.label), good)
        if label_numeric and self.integral:
            numbers = pc.cast(keys, pa.float64()).to_numpy(zero_copy_only=False)
            self.integral = bool(np.all(numbers == np.floor(numbers)))
        if self.class_bins is not None:
            self._add_classes(keys, bins)
        for name in self.layout.features:  # in a good row, null is missing (text makes it bad)
            self.missing[name] += pc.filter(parsed.values[name], good).null_count
        for name in self.categorical:
            self._add_categories(name, pc.filter(parsed.values[name], good), keys, bins)

    def _add_classes(self, keys: pa.Array, bins: np.ndarray) -> None:
        assert self.class_bins is not None
        codes = pc.dictionary_encode(keys)
        indices = codes.indices.to_numpy(zero_copy_only=False)
        for i, key in enumerate(codes.dictionary.to_pylist()):
            hist = self.class_bins.setdefault(key, np.zeros(BINS, np.int64))
            hist += np.bincount(bins[indices == i], minlength=BINS)
        if len(self.class_bins) > MAX_CLASSES:
            self.class_bins = None
            self.by_class = None

    def _add_categories(
        self, name: str, values: pa.Array, keys: pa.Array, bins: np.ndarray
    ) -> None:
        table = pa.table({"v": values, "c": keys, "b": pa.array(bins)}).filter(pc.is_valid(values))
        for item in table.group_by(["v"]).aggregate([("b", "max")]).to_pylist():
            seen = self.by_value[name]
            seen[item["v"]] = max(seen.get(item["v"], -1), item["b_max"])
        if self.by_class is not None:
            per = self.by_class[name]
            for item in table.group_by(["v", "c"]).aggregate([("b", "max")]).to_pylist():
                key = (item["v"], item["c"])
                per[key] = max(per.get(key, -1), item["b_max"])


@dataclass(frozen=True)
class Plan:
    """The decisions of the first pass that the second pass follows."""

    schema: Schema
    test_end: np.ndarray  # per class (one entry for regression): bins below go to test
    validation_end: np.ndarray  # bins from test_end below this go to validation; the rest train


def problem_type(requested: str, learner: Learner) -> str:
    """The documented rule for ``auto``: a non-numeric label is classification; a numeric label
    with 2 distinct values is binary, with 3..MULTICLASS_MAX_DISTINCT whole-number values
    multiclass, else regression. Binary means 2 classes, multiclass more."""
    layout = learner.layout
    numeric = layout.label in layout.numeric
    distinct = None if learner.class_bins is None else len(learner.class_bins)
    if requested == "regression":
        if not numeric:
            raise PrepareError(
                f"label column {layout.label!r} holds text, so problem type regression is "
                "impossible: use binary or multiclass (or auto)"
            )
        return "regression"
    if requested == "auto":
        if numeric and (distinct is None or distinct > 2):
            few = distinct is not None and distinct <= MULTICLASS_MAX_DISTINCT
            return "multiclass" if few and learner.integral else "regression"
        requested = "binary" if distinct == 2 else "multiclass"
    if distinct is None:
        raise PrepareError(
            f"label column {layout.label!r} has more than {MAX_CLASSES} distinct values: too many "
            f"classes for {requested} (is it a regression label?)"
        )
    if distinct < 2:
        only = next(iter(learner.class_bins or {}), "")
        raise PrepareError(
            f"label column {layout.label!r} has one class ({only!r}) in every good row: a "
            "classifier needs at least two"
        )
    if requested == "binary" and distinct != 2:
        raise PrepareError(
            f"label column {layout.label!r} has {distinct} classes: binary needs exactly 2 "
            "(use multiclass)"
        )
    return requested


def boundaries(hist: np.ndarray, test: float, validation: float) -> tuple[int, int] | None:
    """Bins [0, t) go to test, [t, v) to validation, [v, BINS) to train: t and v put the
    cumulative counts nearest the fractions, each non-empty split keeping a row; None when the
    rows cannot fill every split that has a fraction."""
    cum = np.concatenate([[0], np.cumsum(hist)])
    total = int(cum[-1])

    def nearest(target: float, low: int) -> int:
        candidates = np.arange(low, BINS + 1)
        return int(candidates[np.argmin(np.abs(cum[low:] - target))])

    t = nearest(total * test, 0)
    if test > 0 and cum[t] == 0:
        t = int(np.argmax(cum > 0)) if total else BINS
    v = nearest(total * (test + validation), t)
    if validation > 0 and cum[v] == cum[t]:
        above = np.flatnonzero(cum > cum[t])
        v = int(above[0]) if above.size else BINS
    if (test > 0 and cum[t] == 0) or (validation > 0 and cum[v] == cum[t]) or cum[v] == total:
        return None
    return t, v


def plan(learner: Learner, requested: str, test: float, validation: float) -> Plan:
    layout = learner.layout
    if learner.rows == learner.bad:
        raise PrepareError("the input holds no good rows: nothing to prepare")
    kind = problem_type(requested, learner)
    numeric_label = layout.label in layout.numeric
    classes: list[str] = []
    if kind in CLASSIFICATION:
        assert learner.class_bins is not None
        classes = class_order(learner.class_bins, numeric=numeric_label)
        groups = [learner.class_bins[c] for c in classes]
    else:
        groups = [learner.all_bins]
    ends = []
    for i, hist in enumerate(groups):
        split = boundaries(hist, test, validation)
        if split is None:
            what = f"class {classes[i]!r}" if classes else "the label"
            raise PrepareError(
                f"label column {layout.label!r}: {what} has {int(hist.sum())} rows, too few to "
                f"stratify into train, validation ({validation:g}) and test ({test:g}) (each "
                "split needs one): add rows, drop the class or lower the fractions"
            )
        ends.append(split)
    test_end = np.array([t for t, _ in ends])
    validation_end = np.array([v for _, v in ends])
    counts = {"test": 0, "validation": 0, "train": 0}
    for hist, (t, v) in zip(groups, ends, strict=True):
        counts["test"] += int(hist[:t].sum())
        counts["validation"] += int(hist[t:v].sum())
        counts["train"] += int(hist[v:].sum())
    features = []
    for name in layout.features:
        if name in layout.numeric:
            features.append(Feature(name, "numeric", missing=learner.missing[name]))
            continue
        if kind in CLASSIFICATION:
            assert learner.by_class is not None
            start = {c: int(validation_end[i]) for i, c in enumerate(classes)}
            in_train = {v for (v, c), b in learner.by_class[name].items() if b >= start[c]}
        else:
            in_train = {v for v, b in learner.by_value[name].items() if b >= validation_end[0]}
        categories = tuple(class_order(in_train, numeric=False))
        features.append(Feature(name, "categorical", categories, learner.missing[name]))
    schema = Schema(
        problem_type=kind,
        label=Label(
            layout.label,
            "numeric" if numeric_label else "categorical",
            tuple(classes) if classes else None,
        ),
        features=tuple(features),
        rows=Rows(counts["train"], counts["validation"], counts["test"], learner.bad),
    )
    schema.validate()
    return Plan(schema, test_end, validation_end)


def check_bad_share(learner: Learner, max_percent: float) -> None:
    """Fail when the bad rows exceed ``max_percent`` of all rows, naming the first few."""
    if not learner.bad or learner.bad * 100 <= max_percent * learner.rows:
        return
    share = 100 * learner.bad / learner.rows
    allowed = (
        "no bad rows are allowed (max bad rows percent is 0)"
        if max_percent == 0
        else f"at most {max_percent:g} % may be dropped"
    )
    shown = "; ".join(str(p) for p in learner.problems)
    raise PrepareError(
        f"{learner.bad} bad rows of {learner.rows} ({share:.3g} %), {allowed}: {shown}"
        + (" ..." if learner.bad > len(learner.problems) else "")
    )
