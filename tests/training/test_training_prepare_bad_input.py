"""``prepare`` on the bad inputs of issue #19: each fails (exit 1) with the object, the line (or
row group) and the column of the problem in /opt/ml/output/failure, or, within
--max-bad-rows-percent, drops the bad rows and writes each with its reason under rejected/.
Line numbers are counted by hand in the files written here (line 1 is the header)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlstack_containers.paths import SageMakerPaths
from mlstack_containers.prepare import program
from mlstack_containers.prepare.read import PrepareError
from mlstack_containers.schema import Schema

from tests.training.test_training_prepare import failure, inputs, run_prepare, shard_lines

GOOD = [f"{i},{'ab'[i % 2]},{'yn'[i % 2]}" for i in range(40)]  # x,c,label


def write(base, name: str, lines: list[str], header: str = "x,c,label") -> None:
    (inputs(base) / name).write_text("\n".join([header, *lines]) + "\n")


def fails_with(base, *expected: str, args: tuple[str, ...] = ("--label", "label")) -> str:
    result = run_prepare(base, *args)
    assert result.returncode == 1, result.stdout + result.stderr
    reason = failure(base)
    for text in expected:
        assert text in reason
    assert (base / "output" / "message").read_text() == reason
    assert not (base / "processing" / "output" / "schema").exists()
    return reason


def test_a_missing_label_column(tmp_path) -> None:
    write(tmp_path, "t.csv", GOOD)
    fails_with(
        tmp_path,
        "t.csv line 1 column 'target': the label column is not in the input",
        args=("--label", "target"),
    )


def test_columns_that_differ_between_objects(tmp_path) -> None:
    write(tmp_path, "a.csv", GOOD)
    write(tmp_path, "b.csv", GOOD, header="x,colour,label")
    fails_with(tmp_path, "b.csv line 1: its columns differ from a.csv's (column 'c' missing)")


def test_an_empty_prefix(tmp_path) -> None:
    inputs(tmp_path)
    fails_with(tmp_path, "no objects under", "the dataset prefix is empty")


def test_a_label_with_one_class(tmp_path) -> None:
    write(tmp_path, "t.csv", [f"{i},a,y" for i in range(30)])
    fails_with(tmp_path, "label column 'label' has one class ('y')")


def test_a_class_too_rare_to_stratify(tmp_path) -> None:
    write(tmp_path, "t.csv", [*GOOD, "1,a,rare", "2,b,rare"])
    fails_with(tmp_path, "class 'rare' has 2 rows, too few to stratify")


def test_text_in_a_numeric_column(tmp_path) -> None:
    lines = list(GOOD)
    lines[3] = "abc,a,y"  # line 5 of the file
    write(tmp_path, "t.csv", lines)
    fails_with(
        tmp_path,
        "1 bad rows of 40",
        "t.csv line 5 column 'x': 'abc' is not a number (the column is numeric)",
    )


def test_a_row_with_the_wrong_number_of_fields(tmp_path) -> None:
    lines = list(GOOD)
    lines[2] = "7,a"  # line 4
    write(tmp_path, "t.csv", lines)
    fails_with(tmp_path, "t.csv line 4: 2 fields, expected 3")


def test_a_missing_label_value(tmp_path) -> None:
    lines = list(GOOD)
    lines[9] = "9,a,"  # line 11
    write(tmp_path, "t.csv", lines)
    fails_with(tmp_path, "t.csv line 11 column 'label': the label is missing")


def test_an_unreadable_parquet_file(tmp_path) -> None:
    (inputs(tmp_path) / "bad.parquet").write_bytes(b"PAR1 not really parquet")
    fails_with(tmp_path, "bad.parquet: not a readable Parquet file")


def test_text_in_a_numeric_parquet_column_names_the_row_group(tmp_path) -> None:
    x = [str(i) for i in range(40)]
    x[33] = "oops"  # row group 1 (rows 30..59 with row_group_size 30), its 4th row
    table = pa.table({"x": x, "c": ["a", "b"] * 20, "label": ["y", "n"] * 20})
    pq.write_table(table, inputs(tmp_path) / "t.parquet", row_group_size=30)
    fails_with(tmp_path, "t.parquet row group 1 row 4 column 'x': 'oops' is not a number")


def test_first_problems_are_named_and_the_rest_counted(tmp_path) -> None:
    # 7 of 200 values are text: 96.5 % numbers, so x stays numeric (the 95 % rule)
    lines = [f"bad{i},a,y" if i < 7 else f"{i},{'ab'[i % 2]},{'yn'[i % 2]}" for i in range(200)]
    write(tmp_path, "t.csv", lines)
    reason = fails_with(tmp_path, "7 bad rows of 200 (3.5 %)", "t.csv line 2 column 'x'", " ...")
    assert "line 6 column" in reason and "line 7 column" not in reason  # the first five


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ("--label", "label", "--test-fraction", "0.5", "--validation-fraction", "0.5"),
            "together they must stay below 1",
        ),
        (("--label", "label", "--problem-type", "ranking"), "--problem-type 'ranking'"),
        (
            ("--label", "label", "--problem-type", "regression"),
            "label column 'label' holds text, so problem type regression is impossible",
        ),
        (("--label", "label", "--features", "x,zzz"), "column 'zzz': named as a feature"),
        (("--seed", "1"), "--label (PREPARE_LABEL) is required"),
    ],
)
def test_bad_arguments_name_the_argument(tmp_path, args, expected) -> None:
    write(tmp_path, "t.csv", GOOD)
    fails_with(tmp_path, expected, args=args)


def test_bad_rows_within_the_share_are_rejected_with_their_reasons(tmp_path) -> None:
    lines = list(GOOD)
    lines[3] = "abc,a,y"  # line 5
    lines[6] = "6,a"  # line 8: the parser drops it; later lines keep their numbers
    lines[10] = "10,b,"  # line 12
    write(tmp_path, "t.csv", lines)
    args = ("--label", "label", "--max-bad-rows-percent", "7.5")  # 3 of 40
    result = run_prepare(tmp_path, *args)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "processing" / "output"
    rejected = [json.loads(line) for line in (out / "rejected" / "part-00000.jsonl").open()]
    assert sorted((r["where"], r["column"]) for r in rejected) == [
        ("line 12", "label"),
        ("line 5", "x"),
        ("line 8", None),
    ]
    assert next(r for r in rejected if r["where"] == "line 5")["row"] == {
        "x": "abc",
        "c": "a",
        "label": "y",
    }
    schema = Schema.read(out / "schema")
    assert schema.rows.rejected == 3
    written = sum(len(shard_lines(tmp_path, s)) for s in ("train", "validation", "test"))
    assert written == 37 == schema.rows.train + schema.rows.validation + schema.rows.test
    # one more bad row than the share allows fails
    assert run_prepare(tmp_path, "--label", "label", "--max-bad-rows-percent", "5").returncode == 1


# --- hostile input: a reason, never a crash -----------------------------------------------------

_field = st.one_of(
    st.sampled_from(["", "NA", "1", "-2.5e3", "x", "y", '"q,uoted"', "inf", " 7 "]),
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=6),
)
_line = st.lists(_field, min_size=0, max_size=5).map(",".join)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=st.lists(_line, max_size=40), header=st.sampled_from(["x,c,label", "label", "a,a"]))
def test_hostile_csv_gives_a_schema_or_a_reason_never_a_crash(tmp_path_factory, lines, header):
    # hypothesis-generated hostile CSV (any text, quotes, line breaks, odd field counts) behind
    # a header: prepare either writes a valid schema or raises PrepareError with a reason
    base = tmp_path_factory.mktemp("hostile")
    (inputs(base) / "t.csv").write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    args = ["--label", "label", "--max-bad-rows-percent", "50"]
    try:
        decided = program.run(args, SageMakerPaths(base), {})
    except PrepareError as exc:
        assert str(exc)
    else:
        assert Schema.read(base / "processing" / "output" / "schema") == decided.schema
