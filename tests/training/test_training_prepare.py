"""The ``prepare`` program, run as a Processing job runs it: objects under
/opt/ml/processing/input/data, shards and schema.json under /opt/ml/processing/output, the failure
reason in /opt/ml/output/failure.

Data: scikit-learn's bundled datasets (load_breast_cancer, load_iris, load_wine, load_diabetes),
whose documented shapes and class counts (scikit-learn user guide, "Toy datasets") are the
expected values; small hand-made tables whose split sizes follow from the documented fractions;
hypothesis-generated tables cut into objects at generated places.
"""

from __future__ import annotations

import collections
import gzip
import itertools
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlstack_containers.paths import SageMakerPaths
from mlstack_containers.prepare import program
from mlstack_containers.schema import Schema
from sklearn import datasets

from tests import programs
from tests.training.conftest import REPO

PREPARE = REPO / "containers" / "training" / "prepare"
SPLITS = ("train", "validation", "test", "test-labels")


def inputs(base: Path) -> Path:
    target = base / "processing" / "input" / "data"
    target.mkdir(parents=True, exist_ok=True)
    return target


def run_prepare(base: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"SAGEMAKER_BASE_DIR": str(base), "PATH": os.environ["PATH"]}
    return programs.run(PREPARE, args, env=env, timeout=300)


def failure(base: Path) -> str:
    return (base / "output" / "failure").read_text()


def shard_lines(base: Path, split: str) -> list[str]:
    out = base / "processing" / "output" / split
    return [line for p in sorted(out.glob("*.csv")) for line in p.read_text().splitlines()]


def decoded_rows(base: Path) -> dict[str, list[tuple[str, ...]]]:
    """Each split's rows back in the input's terms (class label, category text), from the
    shards and schema.json alone, label first."""
    schema = Schema.read(base / "processing" / "output" / "schema")

    def label(field: str) -> str:
        return schema.classes[int(field)] if schema.classes else field

    def feature(i: int, field: str) -> str:
        categories = schema.features[i].categories
        return categories[int(field)] if categories and field != "" else field

    rows: dict[str, list[tuple[str, ...]]] = {}
    for split in ("train", "validation"):
        rows[split] = [
            (label(f[0]), *(feature(i, v) for i, v in enumerate(f[1:])))
            for f in (line.split(",") for line in shard_lines(base, split))
        ]
    tests = [line.split(",") for line in shard_lines(base, "test")]
    labels = shard_lines(base, "test-labels")
    assert len(tests) == len(labels)
    rows["test"] = [
        (label(y), *(feature(i, v) for i, v in enumerate(f)))
        for y, f in zip(labels, tests, strict=True)
    ]
    return rows


def frame_with_text_and_gaps(loaded, label_names: bool, seed: int) -> pd.DataFrame:
    """A scikit-learn dataset as a user's table: the label as text (when it has names), a
    categorical text column made from the first feature's quartiles, and 5 % missing values in
    two feature columns (the datasets have none)."""
    frame = loaded.frame.copy()
    target = frame.pop("target")
    frame["label"] = [loaded.target_names[t] for t in target] if label_names else target
    first = frame.columns[0]
    frame["band"] = pd.qcut(frame[first], 4, labels=["low", "mid", "high", "top"]).astype(str)
    rng = np.random.default_rng(seed)
    for column in (frame.columns[1], "band"):
        frame.loc[rng.random(len(frame)) < 0.05, column] = None
    return frame


# --- real datasets ------------------------------------------------------------------------------


# scikit-learn "Toy datasets": breast cancer 569 rows, classes 212 (malignant) / 357 (benign);
# iris 150 rows, 50 per class; wine 178 rows, classes 59 / 71 / 48; diabetes 442 rows, a
# quantitative target.
REAL = {
    "breast_cancer": (
        datasets.load_breast_cancer,
        True,
        "binary",
        {"malignant": 212, "benign": 357},
    ),
    "iris": (
        datasets.load_iris,
        True,
        "multiclass",
        {"setosa": 50, "versicolor": 50, "virginica": 50},
    ),
    "wine": (datasets.load_wine, False, "multiclass", {"0": 59, "1": 71, "2": 48}),
    "diabetes": (datasets.load_diabetes, False, "regression", None),
}


@pytest.mark.parametrize("name", list(REAL))
def test_real_dataset_prepares_with_its_problem_type_and_every_row(tmp_path, name) -> None:
    load, named, expected_type, class_counts = REAL[name]
    loaded = load(as_frame=True)
    frame = frame_with_text_and_gaps(loaded, named, seed=1)
    frame.to_csv(inputs(tmp_path) / f"{name}.csv", index=False)
    result = run_prepare(tmp_path, "--label", "label")
    assert result.returncode == 0, result.stderr
    schema = Schema.read(tmp_path / "processing" / "output" / "schema")
    assert schema.problem_type == expected_type
    assert schema.feature_names == [c for c in frame.columns if c != "label"]
    band = schema.features[-1]
    assert band.type == "categorical"
    assert band.categories == ("high", "low", "mid", "top")  # code point order
    assert {f.type for f in schema.features[:-1]} == {"numeric"}
    rows = decoded_rows(tmp_path)
    assert sum(len(r) for r in rows.values()) == len(loaded.frame)
    assert (schema.rows.train, schema.rows.validation, schema.rows.test) == tuple(
        len(rows[s]) for s in ("train", "validation", "test")
    )
    if class_counts is None:
        assert schema.label.classes is None
        return
    assert sorted(schema.classes) == sorted(class_counts)
    for split, fraction in (("validation", 0.15), ("test", 0.15)):
        counts = collections.Counter(row[0] for row in rows[split])
        for cls, total in class_counts.items():
            # stratified: each class's share of the split is its documented count times the
            # split's fraction, within one row
            assert abs(counts[cls] - total * fraction) <= 1, (split, cls, counts)


def test_missing_values_stay_empty_fields_and_rows_keep_their_values(tmp_path) -> None:
    loaded = datasets.load_iris(as_frame=True)
    frame = frame_with_text_and_gaps(loaded, True, seed=2)
    frame.to_csv(inputs(tmp_path) / "iris.csv", index=False)
    assert run_prepare(tmp_path, "--label", "label").returncode == 0
    rows = [r for split in decoded_rows(tmp_path).values() for r in split]
    columns = ["label", *(c for c in frame.columns if c != "label")]

    def text(v) -> str:
        return (
            ""
            if v is None or (isinstance(v, float) and np.isnan(v))
            else f"{v:g}"
            if isinstance(v, float)
            else str(v)
        )

    expected = [tuple(text(v) for v in row) for row in frame[columns].itertuples(index=False)]
    got = [
        tuple(f"{float(v):g}" if v and i and columns[i] != "band" else v for i, v in enumerate(r))
        for r in rows
    ]
    assert collections.Counter(got) == collections.Counter(expected)


def test_parquet_and_gzip_csv_give_the_same_schema_and_splits_as_csv(tmp_path) -> None:
    frame = frame_with_text_and_gaps(datasets.load_wine(as_frame=True), True, seed=3)
    frame["label"] = frame["label"].astype(str)
    results = {}
    for kind in ("csv", "gz", "parquet"):
        base = tmp_path / kind
        target = inputs(base)
        if kind == "parquet":
            # two row groups: read by row group
            pq.write_table(
                pa.Table.from_pandas(frame, preserve_index=False),
                target / "wine.parquet",
                row_group_size=100,
            )
        elif kind == "gz":
            with gzip.open(target / "wine.csv.gz", "wt") as f:
                frame.to_csv(f, index=False)
        else:
            frame.to_csv(target / "wine.csv", index=False)
        assert run_prepare(base, "--label", "label").returncode == 0
        results[kind] = (Schema.read(base / "processing/output/schema"), decoded_rows(base))
    # numbers are written as Arrow formats a double, so "93.0" (CSV text) and 93.0 (Parquet
    # double) are the same field, in the shards and in the split hash
    assert results["gz"] == results["csv"]
    assert results["parquet"] == results["csv"]


# --- hand-made inputs ---------------------------------------------------------------------------


def test_split_sizes_follow_the_fractions_per_class(tmp_path) -> None:
    # 40 rows of class a, 20 of class b; fractions 0.25/0.25: a gives 10/10/20, b 5/5/10.
    lines = ["colour,size,label"]
    lines += [f"{['red', 'blue'][i % 2]},{i},a" for i in range(40)]
    lines += [f"green,{i},b" for i in range(20)]
    (inputs(tmp_path) / "t.csv").write_text("\n".join(lines) + "\n")
    result = run_prepare(
        tmp_path, "--label", "label", "--validation-fraction", "0.25", "--test-fraction", "0.25"
    )
    assert result.returncode == 0, result.stderr
    rows = decoded_rows(tmp_path)
    counts = {s: collections.Counter(r[0] for r in rows[s]) for s in rows}
    assert counts == {
        "train": {"a": 20, "b": 10},
        "validation": {"a": 10, "b": 5},
        "test": {"a": 10, "b": 5},
    }
    schema = Schema.read(tmp_path / "processing/output/schema")
    assert schema.problem_type == "binary"
    assert schema.label.type == "categorical"
    assert schema.features[0].categories == tuple(
        sorted({r[1] for r in rows["train"]})
    )  # categories from the train split only


def test_missing_values_are_counted_per_feature_over_the_written_rows(tmp_path) -> None:
    # Counted by hand. 40 good rows over two objects; colour is missing on 4 of them ("", "NA",
    # " null ", ""), size on 4 ("NaN", "", "N/A", "") and weight on none: the missing markers of
    # docs/your-data.md ("Missing values"). Two bad rows, each with an empty colour too (text in
    # the numeric size; no label), are dropped to rejected/ and not counted.
    colour = {3: "", 7: "NA", 11: " null ", 25: ""}
    size = {5: "NaN", 11: "", 20: "N/A", 30: ""}
    lines = [
        f"{'ab'[i % 2]},{colour.get(i, 'red' if i % 3 else 'blue')},{size.get(i, str(i))},{i * 2}"
        for i in range(40)
    ]
    header = "label,colour,size,weight"
    first = [header, *lines[:20], "a,,oops,1"]
    second = [header, *lines[20:], ",,5,1"]
    (inputs(tmp_path) / "part-a.csv").write_text("\n".join(first) + "\n")
    (inputs(tmp_path) / "part-b.csv").write_text("\n".join(second) + "\n")
    result = run_prepare(tmp_path, "--label", "label", "--max-bad-rows-percent", "10")
    assert result.returncode == 0, result.stderr
    schema = Schema.read(tmp_path / "processing/output/schema")
    assert schema.rows.rejected == 2
    assert schema.rows.train + schema.rows.validation + schema.rows.test == 40
    assert schema.missing == {"colour": 4, "size": 4, "weight": 0}
    document = json.loads((tmp_path / "processing/output/schema/schema.json").read_text())
    assert [f["missing"] for f in document["features"]] == [4, 4, 0]
    # the shards agree: every counted value is an empty field in its split's shard
    written = [r for split in decoded_rows(tmp_path).values() for r in split]
    assert sum(r[1] == "" for r in written) == 4 and sum(r[2] == "" for r in written) == 4


def test_same_input_and_seed_give_the_same_bytes_another_seed_other_rows(tmp_path) -> None:
    lines = ["x,y"] + [f"{i},{i % 3}" for i in range(300)]
    outputs = []
    for seed in ("7", "7", "8"):
        base = tmp_path / f"run{len(outputs)}"
        (inputs(base) / "t.csv").write_text("\n".join(lines) + "\n")
        assert run_prepare(base, "--label", "y", "--seed", seed).returncode == 0
        outputs.append({s: shard_lines(base, s) for s in SPLITS})
    assert outputs[0] == outputs[1]
    assert outputs[0]["test"] != outputs[2]["test"]


def test_numeric_integer_labels_are_classes_in_numeric_order(tmp_path) -> None:
    lines = ["x,grade"] + [f"{i},{[2, 10, 9][i % 3]}" for i in range(90)]
    (inputs(tmp_path) / "t.csv").write_text("\n".join(lines) + "\n")
    assert run_prepare(tmp_path, "--label", "grade").returncode == 0
    schema = Schema.read(tmp_path / "processing/output/schema")
    assert schema.problem_type == "multiclass"
    assert schema.label.type == "numeric"
    assert schema.classes == ("2", "9", "10")


def test_headerless_csv_takes_column_names_from_the_arguments(tmp_path) -> None:
    lines = [f"{i},{'yes' if i % 2 else 'no'}" for i in range(60)]
    (inputs(tmp_path) / "t.csv").write_text("\n".join(lines) + "\n")
    result = run_prepare(tmp_path, "--label", "answer", "--column-names", "n,answer")
    assert result.returncode == 0, result.stderr
    schema = Schema.read(tmp_path / "processing/output/schema")
    assert schema.classes == ("no", "yes")
    assert sum(len(r) for r in decoded_rows(tmp_path).values()) == 60


def test_several_hosts_write_the_shards_one_host_writes(tmp_path) -> None:
    for i in range(5):
        lines = ["x,c,y"] + [f"{i * 100 + j},{'pq'[j % 2]},{j % 2}" for j in range(40)]
        (inputs(tmp_path / "one") / f"part{i}.csv").write_text("\n".join(lines) + "\n")
    assert run_prepare(tmp_path / "one", "--label", "y").returncode == 0
    single = tmp_path / "one" / "processing" / "output"
    union: dict[str, bytes] = {}
    for host in ("algo-2", "algo-1"):
        base = tmp_path / host
        (base / "processing").mkdir(parents=True)
        os.symlink(tmp_path / "one" / "processing" / "input", base / "processing" / "input")
        config = base / "config" / "resourceconfig.json"
        config.parent.mkdir(parents=True)
        config.write_text(json.dumps({"current_host": host, "hosts": ["algo-1", "algo-2"]}))
        assert run_prepare(base, "--label", "y").returncode == 0
        out = base / "processing" / "output"
        for p in out.rglob("*"):
            if p.is_file():
                assert p.relative_to(out).as_posix() not in union
                union[p.relative_to(out).as_posix()] = p.read_bytes()
    assert union == {
        p.relative_to(single).as_posix(): p.read_bytes() for p in single.rglob("*") if p.is_file()
    }
    assert (tmp_path / "algo-1/processing/output/schema/schema.json").exists()
    assert not (tmp_path / "algo-2/processing/output/schema").exists()


# --- property: nothing lost, nothing duplicated, the cut does not matter ------------------------


table = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.sampled_from(["", "u", "v", "w,x"]),
        st.one_of(
            st.just(""), st.integers(-5, 5).map(str), st.floats(-1e3, 1e3).map(lambda f: f"{f:.3f}")
        ),
    ),
    min_size=30,
    max_size=120,
)


def _prepare_in_process(base: Path, parts: list[list[tuple[str, str, str]]]) -> dict:
    target = inputs(base)
    for i, part in enumerate(parts):
        body = "label,cat,num\n" + "".join(f'{a},"{b}",{c}\n' for a, b, c in part)
        (target / f"obj-{i:03d}.csv").write_text(body)
    program.run(
        [
            "--label",
            "label",
            "--problem-type",
            "multiclass",
            "--validation-fraction",
            "0.1",
            "--test-fraction",
            "0.1",
        ],
        SageMakerPaths(base),
        {},
    )
    return decoded_rows(base)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=table, cuts=st.lists(st.integers(1, 119), max_size=4))
def test_no_row_is_lost_or_duplicated_and_the_cut_does_not_matter(tmp_path_factory, rows, cuts):
    # every class needs a row in each split: give each class 10 rows at least
    rows = rows + [(cls, "u", str(i)) for cls in "abc" for i in range(10)]
    bounds = sorted({0, len(rows), *(c for c in cuts if c < len(rows))})
    whole = _prepare_in_process(tmp_path_factory.mktemp("whole"), [rows])
    cut = _prepare_in_process(
        tmp_path_factory.mktemp("cut"), [rows[a:b] for a, b in itertools.pairwise(bounds)]
    )
    for split in ("train", "validation", "test"):
        assert collections.Counter(whole[split]) == collections.Counter(cut[split])

    def canonical(r):
        a, b, c = r
        return (a, b, "" if c == "" else f"{float(c):g}")

    everything = collections.Counter(canonical(r) for s in whole.values() for r in s)
    assert everything == collections.Counter(canonical(r) for r in rows)
