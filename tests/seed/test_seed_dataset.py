"""The generated dataset: exact bytes, determinism, format and the label rule."""

from __future__ import annotations

import math
import random

import pytest
import seed_handler

# Pinned once from the generator: a change here changes every dataset ever seeded with seed 7.
TRAIN_5_SEED_7 = b"0,6,3\n0,1,1\n0,44,47\n0,86,4\n0,64,45\n"
TEST_5_SEED_7 = b"52,5\n41,85\n58,100\n26,98\n8,29\n"
VALIDATION_5_SEED_7 = b"0,98,2\n"  # one row: max(1, 5 // 5)


def _read(s3, uri: str) -> bytes:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def _seed(s3, **event) -> tuple[dict, bytes, bytes]:
    result = seed_handler.handler({"run_id": "run-1", **event}, None)
    return (
        result,
        _read(s3, (result["train_prefix"] + "part-00000.csv")),
        _read(s3, (result["test_prefix"] + "part-00000.csv")),
    )


def test_small_fixed_seed_gives_exact_bytes(s3):
    result, train, test = _seed(s3, rows=5, seed=7)
    assert train == TRAIN_5_SEED_7
    assert test == TEST_5_SEED_7
    assert _read(s3, (result["validation_prefix"] + "part-00000.csv")) == VALIDATION_5_SEED_7


@pytest.mark.parametrize(
    ("rows", "expected"), [(1, 1), (4, 1), (5, 1), (9, 1), (10, 2), (5000, 1000)]
)
def test_validation_set_is_a_fifth_of_the_rows_and_at_least_one(s3, rows, expected):
    result = seed_handler.handler({"run_id": f"v{rows}", "rows": rows, "seed": 3}, None)
    body = _read(s3, (result["validation_prefix"] + "part-00000.csv"))
    assert body.count(b"\n") == expected
    for line in body.decode("ascii").splitlines():
        label, x, y = (int(v) for v in line.split(","))
        assert label == seed_handler.label_for(x, y)


def test_validation_rows_are_their_own_stream_not_a_copy_of_train():
    validation = b"".join(seed_handler.generate_rows(200, 5, "validation"))
    train = b"".join(seed_handler.generate_rows(1000, 5, "train"))
    assert validation and not train.startswith(validation)


def test_generator_follows_the_documented_algorithm():
    # One draw a row, k = floor(random() * 101**2), x = k // 101, y = k % 101, per-split stream.
    for split in seed_handler.SPLITS:
        rng = random.Random(f"mlstack-seed:7:{split}")
        expected = []
        for _ in range(500):
            x, y = divmod(math.floor(rng.random() * 101 * 101), 101)
            label = 1 if y >= 3 * x + 5 else 0
            expected.append(f"{label},{x},{y}\n" if split != "test" else f"{x},{y}\n")
        generated = b"".join(seed_handler.generate_rows(500, 7, split, chunk_rows=64))
        assert generated == "".join(expected).encode()


def test_same_seed_gives_same_bytes_and_another_seed_differs(s3):
    _, train_a, test_a = _seed(s3, rows=2000, seed=123)
    _, train_b, test_b = _seed(s3, rows=2000, seed=123)
    _, train_c, test_c = _seed(s3, rows=2000, seed=124)
    assert (train_a, test_a) == (train_b, test_b)
    assert train_a != train_c
    assert test_a != test_c


def test_chunking_does_not_change_the_bytes():
    whole = b"".join(seed_handler.generate_rows(1000, 9, "train", chunk_rows=1000))
    assert b"".join(seed_handler.generate_rows(1000, 9, "train", chunk_rows=7)) == whole


def test_fewer_rows_is_a_prefix_and_test_set_is_independent_of_train():
    short = b"".join(seed_handler.generate_rows(10, 5, "test"))
    long = b"".join(seed_handler.generate_rows(1000, 5, "test"))
    assert long.startswith(short)
    train = b"".join(seed_handler.generate_rows(50, 5, "train")).splitlines()
    test = b"".join(seed_handler.generate_rows(50, 5, "test")).splitlines()
    assert [line.split(b",", 1)[1] for line in train] != test


def test_train_rows_obey_the_label_rule_and_ranges(s3):
    _, train, _ = _seed(s3, rows=20000, seed=1)
    assert train.endswith(b"\n") and b"\r" not in train
    lines = train.decode("ascii").split("\n")[:-1]
    assert len(lines) == 20000
    labels = set()
    for line in lines:
        label, x, y = (int(v) for v in line.split(","))  # no header: every line is numeric
        assert 0 <= x <= 100 and 0 <= y <= 100
        assert label == (1 if y >= 3 * x + 5 else 0)
        labels.add(label)
    assert labels == {0, 1}
    xs = {int(line.split(",")[1]) for line in lines}
    assert {0, 100} <= xs  # the inclusive ends are reachable


def test_test_rows_are_x_y_pairs_in_range(s3):
    _, _, test = _seed(s3, rows=20000, seed=1)
    assert test.endswith(b"\n") and b"\r" not in test
    lines = test.decode("ascii").split("\n")[:-1]
    assert len(lines) == 20000
    for line in lines:
        x, y = (int(v) for v in line.split(","))
        assert 0 <= x <= 100 and 0 <= y <= 100


@pytest.mark.parametrize("rows", [1, 16384, 16385])
def test_row_count_is_exact_at_chunk_boundaries(rows):
    for split in seed_handler.SPLITS:
        data = b"".join(seed_handler.generate_rows(rows, 3, split))
        assert data.count(b"\n") == rows


def test_objects_are_csv_under_the_run_folder(s3, bucket):
    result, _, _ = _seed(s3, rows=10, seed=2)
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == [
        "datasets/run-1/test-labels/part-00000.csv",
        "datasets/run-1/test/part-00000.csv",
        "datasets/run-1/train/part-00000.csv",
        "datasets/run-1/validation/part-00000.csv",
    ]
    for key in keys:
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["ContentType"] == "text/csv"
    assert (
        result["train_prefix"] + "part-00000.csv"
    ) == f"s3://{bucket}/datasets/run-1/train/part-00000.csv"


def test_test_labels_pair_line_by_line_with_the_test_rows(s3):
    # The rows of TEST_5_SEED_7 (pinned above) under the rule y >= 3x + 5: only (26, 98) and
    # (8, 29) are above the line.
    result, _, test = _seed(s3, rows=5, seed=7)
    labels = _read(s3, result["test_labels_prefix"] + "part-00000.csv")
    assert test == TEST_5_SEED_7
    assert labels == b"0\n0\n0\n1\n1\n"


@pytest.mark.parametrize(("rows", "rows_per_shard"), [(1, 1), (2500, 1000), (16385, 20000)])
def test_every_shard_has_one_label_per_test_row_by_the_rule(s3, bucket, rows, rows_per_shard):
    run_id = f"labels-{rows}-{rows_per_shard}"
    event = {"run_id": run_id, "rows": rows, "seed": 11, "rows_per_shard": rows_per_shard}
    result = seed_handler.handler(event, None)
    for shard in range(result["shards"]):
        name = f"part-{shard:05d}.csv"
        test = _read(s3, result["test_prefix"] + name).decode("ascii").splitlines()
        labels = _read(s3, result["test_labels_prefix"] + name).decode("ascii").splitlines()
        assert len(labels) == len(test) == seed_handler.shard_rows(rows, rows_per_shard, shard)
        for row, label in zip(test, labels, strict=True):
            x, y = (int(v) for v in row.split(","))
            assert int(label) == (1 if y >= 3 * x + 5 else 0)
