"""``feature_baseline.json``: the training data's distribution of each feature, by feature name.

``baseline`` writes it beside Model Monitor's ``statistics.json``/``constraints.json``;
``monitor`` compares the endpoint's captured requests with it. This module is its one reader and
writer (version 1)::

    {
      "version": 1,
      "names_from": "schema" | "seeder" | "position",
      "problem_type": "binary" | "multiclass" | "regression",
      "classes": ["0", "1"],                   # classification only
      "rows": 1000,
      "features": [
        {"name": "x", "type": "numeric", "missing_share": 0.0,
         "edges": [10.0, 20.0, ...],           # bins (-inf, e0], (e0, e1], ..., (e_last, inf)
         "shares": [0.1, 0.1, ...],            # of the present values, one per bin
         "sample": [0.0, 1.0, ...]},           # up to SAMPLE_SIZE evenly spaced order statistics
        {"name": "island", "type": "categorical", "missing_share": 0.05,
         "categories": {"Biscoe": 0.5, "Dream": 0.3, "Torgersen": 0.2}}   # shares of present
      ]
    }

Names: the training channel's ``schema.json`` when the job has one (a categorical feature's
shard values are indices into its ``categories``), else ``x`` and ``y`` for a two-feature
dataset (the seeder's ``label,x,y`` rows, lambda/seed/handler.py), else ``_c0``, ``_c1``, ...
(the names Model Monitor gives a headerless CSV's columns).

Numeric bins are the deciles of the present values (duplicates merged), so each bin holds about a
tenth of the training data: the population stability index (PSI) then weighs every region of the
distribution alike. ``sample`` keeps evenly spaced order statistics for the two-sample
Kolmogorov-Smirnov test.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FILE = "feature_baseline.json"
VERSION = 1
QUANTILES = 10
SAMPLE_SIZE = 1000
SEEDER_NAMES = ("x", "y")


class FeatureBaselineError(ValueError):
    """A feature_baseline.json that cannot be read; the message names the key."""


@dataclass(frozen=True)
class FeatureProfile:
    """One feature's training distribution."""

    name: str
    type: str  # "numeric" | "categorical"
    missing_share: float
    edges: tuple[float, ...] = ()
    shares: tuple[float, ...] = ()
    sample: tuple[float, ...] = ()
    categories: dict[str, float] = field(default_factory=dict)

    def bin_counts(self, values: np.ndarray) -> np.ndarray:
        """Counts of the present ``values`` in this profile's numeric bins."""
        index = np.searchsorted(np.asarray(self.edges, dtype=np.float64), values, side="left")
        return np.bincount(index, minlength=len(self.edges) + 1)


@dataclass(frozen=True)
class FeatureBaseline:
    names_from: str
    problem_type: str
    classes: tuple[str, ...]
    rows: int
    features: tuple[FeatureProfile, ...]

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "version": VERSION,
            "names_from": self.names_from,
            "problem_type": self.problem_type,
        }
        if self.classes:
            document["classes"] = list(self.classes)
        document["rows"] = self.rows
        document["features"] = [_profile_dict(f) for f in self.features]
        return document

    def write(self, directory: Path) -> Path:
        target = directory / FILE
        target.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return target

    @classmethod
    def read(cls, directory: Path) -> FeatureBaseline:
        target = directory / FILE
        try:
            document = json.loads(target.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FeatureBaselineError(
                f"{target} does not exist: the baseline prefix must hold the {FILE} that the "
                "baseline program writes (re-run the training workflow to write one)"
            ) from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise FeatureBaselineError(f"{target} is not JSON: {exc}") from None
        try:
            return cls.from_dict(document)
        except (KeyError, TypeError, ValueError) as exc:
            raise FeatureBaselineError(f"{target}: {exc}") from None

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> FeatureBaseline:
        if document.get("version") != VERSION:
            raise FeatureBaselineError(
                f"version {document.get('version')!r} is not supported; this reader knows {VERSION}"
            )
        features = []
        for item in document["features"]:
            features.append(
                FeatureProfile(
                    name=str(item["name"]),
                    type=str(item["type"]),
                    missing_share=float(item["missing_share"]),
                    edges=tuple(float(v) for v in item.get("edges", ())),
                    shares=tuple(float(v) for v in item.get("shares", ())),
                    sample=tuple(float(v) for v in item.get("sample", ())),
                    categories={str(k): float(v) for k, v in item.get("categories", {}).items()},
                )
            )
        return cls(
            names_from=str(document["names_from"]),
            problem_type=str(document["problem_type"]),
            classes=tuple(str(c) for c in document.get("classes", ())),
            rows=int(document["rows"]),
            features=tuple(features),
        )


def _profile_dict(f: FeatureProfile) -> dict[str, Any]:
    item: dict[str, Any] = {"name": f.name, "type": f.type, "missing_share": f.missing_share}
    if f.type == "categorical":
        item["categories"] = f.categories
    else:
        item["edges"] = list(f.edges)
        item["shares"] = list(f.shares)
        item["sample"] = list(f.sample)
    return item


def feature_names(width: int, schema_names: Sequence[str] | None) -> tuple[list[str], str]:
    """The names of ``width`` feature columns and where they come from."""
    if schema_names is not None:
        return list(schema_names), "schema"
    if width == len(SEEDER_NAMES):
        return list(SEEDER_NAMES), "seeder"
    return [f"_c{i}" for i in range(width)], "position"


def numeric_profile(name: str, values: np.ndarray, missing: int) -> FeatureProfile:
    """Decile bins, their shares and an order-statistics sample of the present ``values``."""
    total = len(values) + missing
    missing_share = missing / total if total else 0.0
    if len(values) == 0:
        return FeatureProfile(name, "numeric", missing_share)
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    quantiles = np.quantile(ordered, np.arange(1, QUANTILES) / QUANTILES, method="lower")
    edges = np.unique(quantiles)
    profile = FeatureProfile(name, "numeric", missing_share, edges=tuple(edges.tolist()))
    counts = profile.bin_counts(ordered)
    picks = np.unique(np.linspace(0, len(ordered) - 1, min(SAMPLE_SIZE, len(ordered))).round())
    return FeatureProfile(
        name,
        "numeric",
        missing_share,
        edges=profile.edges,
        shares=tuple((counts / len(ordered)).tolist()),
        sample=tuple(ordered[picks.astype(np.int64)].tolist()),
    )


def categorical_profile(
    name: str, indices: np.ndarray, missing: int, categories: Sequence[str]
) -> FeatureProfile:
    """Shares of each category among the present values (shard values: indices into
    ``categories``; an index outside them counts as missing, as serving reads it)."""
    codes = np.asarray(indices, dtype=np.float64)
    valid = (codes >= 0) & (codes < len(categories)) & (codes == np.floor(codes))
    total = len(codes) + missing
    present = codes[valid].astype(np.int64)
    counts = np.bincount(present, minlength=len(categories))
    shares = counts / len(present) if len(present) else np.zeros(len(categories))
    return FeatureProfile(
        name,
        "categorical",
        (missing + int(np.sum(~valid))) / total if total else 0.0,
        categories={c: float(s) for c, s in zip(categories, shares, strict=True)},
    )


def infer_problem_type(labels: np.ndarray) -> tuple[str, tuple[str, ...]]:
    """Without a schema: 0/1 labels are binary (the seeder's, ``reg:logistic``), anything else
    regression."""
    if len(labels) and np.all((labels == 0) | (labels == 1)):
        return "binary", ("0", "1")
    return "regression", ()
