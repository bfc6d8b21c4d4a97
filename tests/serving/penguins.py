"""The Palmer penguins (a real public dataset, CC0: Horst, Hill & Gorman, palmerpenguins
0.1.6 from PyPI, ``palmerpenguins/data/penguins.csv``, 344 rows) as a prepared dataset: a model
trained on its encoded rows and the ``schema.json`` the dataset-source issue specifies.

The encoding here is written from the schema's specification (issue #19's text), not from the
serving code: a category is its 0-based index in ``categories`` (sorted by code point, train
split), a missing value or unknown category is NaN, class labels sorted by code point.
"""

from __future__ import annotations

import csv
import importlib.resources
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb
from mlstack_containers import model_io

COLUMNS = [
    "species",
    "island",
    "bill_length_mm",
    "bill_depth_mm",
    "flipper_length_mm",
    "body_mass_g",
    "sex",
    "year",
]
CATEGORICAL = {"species", "island", "sex"}


def raw_rows() -> list[dict[str, Any]]:
    """The 344 rows as the CSV has them: text for categories, numbers, None for ``NA``."""
    text = (importlib.resources.files("palmerpenguins") / "data" / "penguins.csv").read_text()
    rows = []
    for record in csv.DictReader(io.StringIO(text)):
        row: dict[str, Any] = {}
        for name in COLUMNS:
            value = record[name]
            if value == "NA":
                row[name] = None
            elif name in CATEGORICAL:
                row[name] = value
            else:
                row[name] = float(value) if "." in value else int(value)
        rows.append(row)
    return rows


@dataclass
class PenguinModel:
    base: Path  # an /opt/ml-like directory: the model is in base/"model"
    booster: xgb.Booster
    schema: dict[str, Any]
    label: str
    features: list[str]
    categories: dict[str, list[str]]
    classes: list[str] | None

    def encode(self, record: dict[str, Any]) -> list[float]:
        """One raw record as the shards hold it (the spec's encoding)."""
        out = []
        for name in self.features:
            value = record.get(name)
            if name in self.categories:
                cats = self.categories[name]
                out.append(float(cats.index(value)) if value in cats else math.nan)
            else:
                out.append(math.nan if value is None else float(value))
        return out

    def predict(self, records: list[dict[str, Any]]) -> np.ndarray:
        matrix = np.array([self.encode(r) for r in records], dtype=np.float32)
        return self.booster.predict(xgb.DMatrix(matrix, missing=np.nan))

    def csv_line(self, record: dict[str, Any]) -> str:
        """A raw record as a CSV line in the features' order (empty for missing)."""
        return ",".join("" if record.get(n) is None else str(record[n]) for n in self.features)


def build(base: Path, label: str, problem_type: str, objective: str) -> PenguinModel:
    rows = [r for r in raw_rows() if r[label] is not None]
    features = [c for c in COLUMNS if c != label]
    categories = {
        name: sorted({r[name] for r in rows if r[name] is not None})
        for name in features
        if name in CATEGORICAL
    }
    classes = sorted({r[label] for r in rows}) if problem_type != "regression" else None
    model = PenguinModel(base, xgb.Booster(), {}, label, features, categories, classes)
    X = np.array([model.encode(r) for r in rows], dtype=np.float32)
    y = np.array([classes.index(r[label]) if classes else r[label] for r in rows], np.float32)
    params: dict[str, Any] = {"objective": objective, "max_depth": 3, "nthread": 1}
    if problem_type == "multiclass":
        params["num_class"] = len(classes or [])
    model.booster = xgb.train(params, xgb.DMatrix(X, label=y), num_boost_round=8)
    label_doc: dict[str, Any] = {
        "name": label,
        "type": "categorical" if label in CATEGORICAL else "numeric",
    }
    if classes:
        label_doc["classes"] = classes
    model.schema = {
        "schema_version": 1,
        "problem_type": problem_type,
        "label": label_doc,
        "features": [
            {"name": n, "type": "categorical", "categories": categories[n]}
            if n in categories
            else {"name": n, "type": "numeric"}
            for n in features
        ],
        "rows": {"train": len(rows), "validation": 0, "test": 0, "rejected": 0},
    }
    model_io.save_model(model.booster, base / "model")
    (base / "model" / "schema.json").write_text(json.dumps(model.schema, indent=2))
    return model
