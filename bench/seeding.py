"""Seeding throughput per shard: one invocation of lambda/seed's ``seed_dataset`` writing one
shard (train + validation + test objects) into an embedded S3 server, as local mode runs it.

    .venv/bin/python bench/seeding.py --rows-per-shard 1000000 --shards 2

Prints rows/s per shard (train rows of the shard / wall seconds of the invocation, all three
objects included). (Memory is measured in tests/seed/test_seed_upload.py with a client that
keeps no bytes: here the embedded S3 server holds every object in this process.)
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mlstack.local.s3 import EmbeddedS3  # noqa: E402

_spec = importlib.util.spec_from_file_location("seed_handler", REPO / "lambda/seed/handler.py")
assert _spec is not None and _spec.loader is not None
seed = importlib.util.module_from_spec(_spec)
sys.modules["seed_handler"] = seed
_spec.loader.exec_module(seed)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows-per-shard", type=int, default=1_000_000)
    parser.add_argument("--shards", type=int, default=2)
    args = parser.parse_args()
    rows = args.rows_per_shard * args.shards
    with EmbeddedS3() as s3:
        s3.create_bucket("bench")
        settings = seed.Settings("bench", "datasets/", 1, 1, rows, "INFO", args.rows_per_shard)
        for shard in range(args.shards):
            request = seed.SeedRequest("bench", rows, 7, args.rows_per_shard, shard)
            started = time.perf_counter()
            seed.seed_dataset(request, settings, s3.client)
            elapsed = time.perf_counter() - started
            print(
                f"shard {shard}: {args.rows_per_shard:,} rows in {elapsed:.2f} s = "
                f"{args.rows_per_shard / elapsed:,.0f} rows/s"
            )


if __name__ == "__main__":
    main()
