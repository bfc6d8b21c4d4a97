"""Sharded seeding: each shard's bytes depend only on (seed, shard, rows per shard); one
invocation per shard writes what one invocation for all shards writes. (Memory per invocation:
test_seed_upload measures a 1,000,000-row shard.)"""

from __future__ import annotations

import pytest
import seed_handler
from hypothesis import given, settings
from hypothesis import strategies as st


def _objects(s3, bucket: str, prefix: str = "") -> dict[str, bytes]:
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def test_rows_are_split_into_shards_one_object_per_split_and_shard(s3, bucket):
    result = seed_handler.handler({"run_id": "r", "rows": 25, "rows_per_shard": 10}, None)
    assert (result["shards"], result["shard"]) == (3, None)
    objects = _objects(s3, bucket)
    for split, rows in (("train", (10, 10, 5)), ("validation", (2, 2, 1)), ("test", (10, 10, 5))):
        keys = sorted(k for k in objects if k.startswith(f"datasets/r/{split}/"))
        assert keys == [f"datasets/r/{split}/part-{i:05d}.csv" for i in range(3)]
        assert tuple(objects[k].count(b"\n") for k in keys) == rows


def test_one_invocation_per_shard_in_any_order_writes_the_same_bytes(s3, bucket):
    seed_handler.handler({"run_id": "all", "rows": 25, "rows_per_shard": 10, "seed": 3}, None)
    for shard in (2, 0, 1, 0):  # any order, a retry included
        one = seed_handler.handler(
            {"run_id": "each", "rows": 25, "rows_per_shard": 10, "seed": 3, "shard": shard}, None
        )
        assert (one["shard"], one["shards"]) == (shard, 3)
    together = {
        k.removeprefix("datasets/all/"): v for k, v in _objects(s3, bucket, "datasets/all/").items()
    }
    apart = {
        k.removeprefix("datasets/each/"): v
        for k, v in _objects(s3, bucket, "datasets/each/").items()
    }
    assert together == apart and len(together) == 12  # 3 shards x (3 splits + test labels)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**53 - 1),
    rows_per_shard=st.integers(1, 50),
    shard=st.integers(0, 20),
    extra=st.integers(0, 200),
)
def test_a_full_shard_depends_only_on_seed_index_and_rows_per_shard(
    seed, rows_per_shard, shard, extra
):
    """Whatever the dataset's total rows, a full shard is the same bytes."""
    for split in seed_handler.SPLITS:
        rows = seed_handler.split_rows(rows_per_shard, split)
        alone = b"".join(seed_handler.generate_rows(rows, seed, split, shard=shard))
        total = (shard + 1) * rows_per_shard + extra
        assert seed_handler.shard_rows(total, rows_per_shard, shard) == rows_per_shard
        again = b"".join(seed_handler.generate_rows(rows, seed, split, shard=shard, chunk_rows=7))
        assert alone == again
        assert alone.count(b"\n") == rows


def test_shards_differ_from_each_other(s3, bucket):
    seed_handler.handler({"run_id": "d", "rows": 40, "rows_per_shard": 20, "seed": 1}, None)
    objects = _objects(s3, bucket, "datasets/d/train/")
    assert len(set(objects.values())) == 2


def test_a_dataset_of_one_shard_is_the_unsharded_dataset_of_earlier_versions():
    # test_seed_dataset pins these bytes from the generator before sharding existed.
    from tests.seed.test_seed_dataset import TRAIN_5_SEED_7

    assert b"".join(seed_handler.generate_rows(5, 7, "train", shard=0)) == TRAIN_5_SEED_7


@pytest.mark.parametrize(
    ("event", "named"),
    [
        ({"rows": 25, "rows_per_shard": 10, "shard": 3}, r"'shard': 3 is out of range.*0 to 2"),
        ({"rows": 25, "rows_per_shard": 10, "shard": -1}, r"'shard': -1 is out of range"),
        ({"rows": 25, "rows_per_shard": 10, "shard": "1"}, r"'shard': '1' \(str\)"),
        ({"rows_per_shard": 0}, r"'rows_per_shard': 0 is out of range"),
        (
            {"rows_per_shard": seed_handler.MAX_ROWS_PER_SHARD + 1},
            r"'rows_per_shard': 10000001 is out of range; .* to 10000000 \(MAX_ROWS_PER_SHARD",
        ),
    ],
)
def test_bad_shard_fields_are_rejected_naming_the_key_value_and_limit(s3, bucket, event, named):
    with pytest.raises(seed_handler.InvalidEventError, match=named):
        seed_handler.handler({"run_id": "bad", **event}, None)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_rows_per_shard_default_comes_from_the_environment(s3, monkeypatch):
    monkeypatch.setenv("ROWS_PER_SHARD", "4")
    result = seed_handler.handler({"run_id": "env", "rows": 10}, None)
    assert (result["rows_per_shard"], result["shards"]) == (4, 3)


def test_the_shard_limit_is_the_one_the_configuration_checks():
    from mlstack import rules

    assert seed_handler.MAX_ROWS_PER_SHARD == rules.MAX_ROWS_PER_SHARD
