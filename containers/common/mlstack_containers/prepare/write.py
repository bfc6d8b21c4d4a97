"""The second pass: encode each good row as the schema says and write it to its split's shard;
write each bad row, with its reason, under ``rejected/``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from mlstack_containers.prepare.learn import Plan
from mlstack_containers.prepare.read import Batch, Problem, Source
from mlstack_containers.prepare.rows import Layout, Parsed
from mlstack_containers.schema import CLASSIFICATION

SPLIT_DIRS = ("train", "validation", "test", "test-labels")
REJECTED = "rejected"


def shard_name(source: Source) -> str:
    """``part-NNNNN.csv``, NNNNN the object's index in key order: the same name whichever host
    writes it."""
    return f"part-{source.index:05d}.csv"


@dataclass
class ObjectWriter:
    """The shards of one input object, opened on their first row."""

    out: Path
    source: Source
    writers: dict[str, pacsv.CSVWriter] = field(default_factory=dict)
    rejected: Any = None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPLIT_DIRS, 0))

    def write(self, split: str, table: pa.Table) -> None:
        if not table.num_rows:
            return
        writer = self.writers.get(split)
        if writer is None:
            target = self.out / split / shard_name(self.source)
            target.parent.mkdir(parents=True, exist_ok=True)
            writer = pacsv.CSVWriter(
                str(target), table.schema, write_options=pacsv.WriteOptions(include_header=False)
            )
            self.writers[split] = writer
        writer.write_table(table)
        self.counts[split] += table.num_rows

    def reject(self, problem: Problem, row: dict[str, Any] | None) -> None:
        if self.rejected is None:
            target = self.out / REJECTED / shard_name(self.source).replace(".csv", ".jsonl")
            target.parent.mkdir(parents=True, exist_ok=True)
            self.rejected = target.open("w", encoding="utf-8")
        record = {
            "object": problem.object,
            "where": problem.where,
            "column": problem.column,
            "reason": problem.reason,
            "row": row,
        }
        self.rejected.write(json.dumps(record, ensure_ascii=False) + "\n")

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
        if self.rejected is not None:
            self.rejected.close()


def encode(plan: Plan, layout: Layout, parsed: Parsed, batch: Batch, writer: ObjectWriter) -> None:
    """Write a batch's good rows to their splits and its bad rows to rejected/."""
    schema = plan.schema
    for row, column, reason in zip(
        parsed.bad_rows, parsed.bad_columns, parsed.bad_reasons, strict=True
    ):
        raw = {name: batch.table.column(name)[int(row)].as_py() for name in layout.columns}
        writer.reject(Problem(batch.source.name, batch.place(int(row)), column, reason), raw)
    good = pa.array(parsed.good)
    values = {name: pc.filter(parsed.values[name], good) for name in layout.columns}
    bins = parsed.bins[parsed.good]
    if schema.problem_type in CLASSIFICATION:
        keys = values[layout.label]
        label = pc.index_in(keys, value_set=pa.array(schema.classes, pa.string()))
        group = label.to_numpy(zero_copy_only=False).astype(np.int64)
    else:
        label = pc.cast(values[layout.label], pa.float64())
        group = np.zeros(len(bins), np.int64)
    test_end = plan.test_end[group]
    validation_end = plan.validation_end[group]
    splits = {
        "test": bins < test_end,
        "validation": (bins >= test_end) & (bins < validation_end),
        "train": bins >= validation_end,
    }
    columns = {layout.label: label}
    for feature in schema.features:
        column = values[feature.name]
        if feature.categories is None:
            columns[feature.name] = pc.cast(column, pa.float64())
        else:
            categories = pa.array(feature.categories, pa.string())
            columns[feature.name] = pc.index_in(column, value_set=categories)
    table = pa.table(columns)
    features = table.drop_columns([layout.label])
    for split, mask in splits.items():
        keep = pa.array(mask)
        if split == "test":
            writer.write("test", features.filter(keep))
            writer.write("test-labels", table.select([layout.label]).filter(keep))
        else:
            writer.write(split, table.filter(keep))
