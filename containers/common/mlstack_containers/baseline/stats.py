"""Statistics and constraints of a numeric CSV dataset in SageMaker Model Monitor's formats.

The formats are AWS's "Schema for Statistics (statistics.json file)" and "Schema for Constraints
(constraints.json file)" (SageMaker developer guide, Model Monitor, bring your own containers):
https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-byoc-statistics.html and
https://docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-byoc-constraints.html.

Columns are named ``_c0``, ``_c1``, ...: the names the prebuilt analyzer gives the columns of a
headerless CSV, which is what the endpoint receives and captures. The label is dropped (the
endpoint's input alone), or kept as ``_c0`` ahead of the features when the endpoint also captures
its output: the analyzer then puts the prediction first ("Create a Baseline", Model Monitor: "the
prediction/output column(s) are assumed to be the 1st column(s) in the training dataset").
``std_dev`` is the population standard deviation. The KLL ``sketch`` holds every value while
they fit in ``k``; beyond, level ``L`` holds every ``2**L``-th value of the sorted column (each
standing for ``2**L`` values), the remainder spread over lower levels by its binary digits, so
the weights add up to ``num_present`` exactly.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlstack_containers.feature_baseline import (
    FeatureBaseline,
    categorical_profile,
    feature_names,
    infer_problem_type,
    numeric_profile,
)
from mlstack_containers.schema import Schema

KLL_K = 2048
KLL_C = 0.64
BUCKETS = 10
DEFAULT_COMPARISON_THRESHOLD = 0.1


class BaselineError(ValueError):
    """The dataset cannot be baselined; the message says where and why."""


@dataclass
class Column:
    """The present values of one feature column, and how many rows lacked it."""

    values: list[float] = field(default_factory=list)
    missing: int = 0
    integral: bool = True

    def add(self, cell: str, where: str) -> None:
        text = cell.strip()
        if not text:
            self.missing += 1
            return
        try:
            value = float(text)
        except ValueError:
            raise BaselineError(
                f"{where}: {cell!r} is not a number; the baseline takes numeric CSV features"
            ) from None
        if not math.isfinite(value):
            raise BaselineError(f"{where}: {cell!r} is not a finite number")
        self.integral = self.integral and value.is_integer()
        self.values.append(value)


def read_features(files: Sequence[Path], *, keep_label: bool = False) -> tuple[int, list[Column]]:
    """Rows and columns of headerless CSV ``files``: the features, the label (first column)
    dropped unless ``keep_label``."""
    if not files:
        raise BaselineError("no input files: expected the training channel's CSV objects")
    columns: list[Column] | None = None
    rows = 0
    for path in files:
        with path.open(newline="", encoding="utf-8") as handle:
            for line, record in enumerate(csv.reader(handle), start=1):
                if not record or record == [""]:
                    continue
                where = f"{path.name} line {line}"
                if len(record) < 2:
                    raise BaselineError(
                        f"{where}: {len(record)} column; expected the label then at least one "
                        "feature"
                    )
                dropped = 0 if keep_label else 1
                features = record[dropped:]
                if columns is None:
                    columns = [Column() for _ in features]
                if len(features) != len(columns):
                    raise BaselineError(
                        f"{where}: {len(record)} columns; expected {len(columns) + dropped} like "
                        "the first row"
                    )
                for index, (column, cell) in enumerate(zip(columns, features, strict=True)):
                    column.add(cell, f"{where} column {index + dropped + 1}")
                rows += 1
    if columns is None or rows == 0:
        raise BaselineError("the input files hold no rows: expected labelled CSV rows")
    return rows, columns


def feature_name(index: int) -> str:
    return f"_c{index}"


def _number(value: float, integral: bool) -> float | int:
    return int(value) if integral else value


def kll_levels(sorted_values: Sequence[float], k: int = KLL_K) -> list[list[float]]:
    """Compactor levels of the sorted values: level ``i`` items weigh ``2**i``."""
    n = len(sorted_values)
    if n <= k:
        return [list(sorted_values)]
    top = 0
    while n >> top > k:
        top += 1
    step = 1 << top
    levels: list[list[float]] = [[] for _ in range(top + 1)]
    full = (n // step) * step
    levels[top] = [sorted_values[i] for i in range(step - 1, full, step)]
    # The rest (n - full < step values), by the binary digits of its size.
    rest = list(sorted_values[full:])
    position = 0
    for level in range(top - 1, -1, -1):
        size = 1 << level
        if len(rest) - position >= size:
            levels[level].append(rest[position + size - 1])
            position += size
    return levels


def buckets(sorted_values: Sequence[float], count: int = BUCKETS) -> list[dict[str, float | int]]:
    """``count`` equal-width buckets from min to max (the last one closed), with their counts."""
    low, high = sorted_values[0], sorted_values[-1]
    if low == high:
        return [{"lower_bound": low, "upper_bound": high, "count": len(sorted_values)}]
    width = (high - low) / count
    counts = [0] * count
    for value in sorted_values:
        counts[min(int((value - low) / width), count - 1)] += 1
    return [
        {
            "lower_bound": low + i * width,
            "upper_bound": high if i == count - 1 else low + (i + 1) * width,
            "count": counts[i],
        }
        for i in range(count)
    ]


def feature_statistics(index: int, column: Column) -> dict[str, Any]:
    present = len(column.values)
    common = {"num_present": present, "num_missing": column.missing}
    inferred = "Integral" if column.integral else "Fractional"
    if present == 0:
        return {
            "name": feature_name(index),
            "inferred_type": "Unknown",
            "numerical_statistics": {"common": common},
        }
    ordered = sorted(column.values)
    total = math.fsum(ordered)
    mean = total / present
    variance = math.fsum((v - mean) ** 2 for v in ordered) / present
    return {
        "name": feature_name(index),
        "inferred_type": inferred,
        "numerical_statistics": {
            "common": common,
            "mean": mean,
            "sum": _number(total, column.integral),
            "std_dev": math.sqrt(variance),
            "min": _number(ordered[0], column.integral),
            "max": _number(ordered[-1], column.integral),
            "distribution": {
                "kll": {
                    "buckets": buckets(ordered),
                    "sketch": {
                        "parameters": {"c": KLL_C, "k": KLL_K},
                        "data": kll_levels(ordered),
                    },
                }
            },
        },
    }


def statistics(rows: int, columns: Iterable[Column]) -> dict[str, Any]:
    """statistics.json: ``version``, ``dataset.item_count`` and one entry per feature."""
    return {
        "version": 0,
        "dataset": {"item_count": rows},
        "features": [feature_statistics(i, c) for i, c in enumerate(columns)],
    }


def constraints(
    stats: dict[str, Any], comparison_threshold: float = DEFAULT_COMPARISON_THRESHOLD
) -> dict[str, Any]:
    """constraints.json suggested from ``stats``: each feature's type, its completeness (the
    share of rows that had it) and, for numbers, whether it was never negative."""
    rows = stats["dataset"]["item_count"]
    features = []
    for feature in stats["features"]:
        numeric = feature["numerical_statistics"]
        entry: dict[str, Any] = {
            "name": feature["name"],
            "inferred_type": feature["inferred_type"],
            "completeness": numeric["common"]["num_present"] / rows,
        }
        if "min" in numeric:
            entry["num_constraints"] = {"is_non_negative": numeric["min"] >= 0}
        features.append(entry)
    return {
        "version": 0,
        "features": features,
        "monitoring_config": {
            "evaluate_constraints": "Enabled",
            "emit_metrics": "Enabled",
            "datatype_check_threshold": 0.1,
            "domain_content_threshold": 0.1,
            "distribution_constraints": {
                "perform_comparison": "Enabled",
                "comparison_threshold": comparison_threshold,
                "comparison_method": "Robust",
                "categorical_comparison_threshold": 0.1,
                "categorical_drift_method": "LInfinity",
            },
        },
    }


def feature_baseline(
    rows: int, label: Column, features: Sequence[Column], schema: Schema | None
) -> FeatureBaseline:
    """feature_baseline.json of the label and feature columns: by the schema's names and types
    when there is one, else numeric columns named as :func:`feature_names` says."""
    if schema is not None and len(schema.features) != len(features):
        raise BaselineError(
            f"schema.json has {len(schema.features)} features, the training data "
            f"{len(features)} feature columns: give the schema of this dataset"
        )
    names, names_from = feature_names(
        len(features), None if schema is None else schema.feature_names
    )
    profiles = []
    for index, (name, column) in enumerate(zip(names, features, strict=True)):
        values = np.asarray(column.values, dtype=np.float64)
        spec = None if schema is None else schema.features[index]
        if spec is not None and spec.categories is not None:
            profiles.append(categorical_profile(name, values, column.missing, spec.categories))
        else:
            profiles.append(numeric_profile(name, values, column.missing))
    if schema is not None:
        problem, classes = schema.problem_type, schema.classes
    else:
        problem, classes = infer_problem_type(np.asarray(label.values, dtype=np.float64))
    return FeatureBaseline(names_from, problem, tuple(classes), rows, tuple(profiles))
