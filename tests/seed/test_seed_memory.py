"""One seeding invocation (one shard) stays within the function's 256 MB whatever the shard's
size: measured as the peak resident memory of a fresh Python process that imports boto3, builds
an S3 client (what the function does on its first call) and writes one shard through the
handler's upload path to a client that keeps no bytes. The bound per shard is then

    peak(shard) = runtime + boto3 client + one part (5 MiB) + one chunk (~130 KiB) + S3's copy of
                  the part in flight,

independent of the rows: what limits ``rows_per_shard`` is time (``MAX_ROWS_PER_SHARD``,
bench/README.md), not memory, and ``dataset.max_rows`` of 100,000,000 is 1,000 invocations of
one such shard each."""

from __future__ import annotations

import subprocess
import sys

from tests.seed.conftest import SEED_DIR

FUNCTION_MEMORY_MIB = 256  # mlstack.constructs.dataset_seeder: memory_size=256

SCRIPT = r"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("h", sys.argv[1])
h = importlib.util.module_from_spec(spec)
sys.modules["h"] = h
spec.loader.exec_module(h)
import boto3
boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")

class NullS3:
    def put_object(self, **kw): pass
    def create_multipart_upload(self, **kw): return {"UploadId": "u"}
    def upload_part(self, **kw): return {"ETag": "e"}
    def complete_multipart_upload(self, **kw): pass
    def abort_multipart_upload(self, **kw): pass

rows = int(sys.argv[2])
settings = h.Settings("b", "datasets/", 1, 1, rows, "INFO", rows)
h.seed_dataset(h.SeedRequest("r", rows, 1, rows, 0), settings, NullS3())
# VmHWM: this process image's peak resident set (ru_maxrss would carry the parent's over
# exec: "resource usage metrics are preserved across an execve", getrusage(2)).
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        print(int(line.split()[1]) // 1024)
"""


def peak_mib(rows: int) -> int:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(SEED_DIR / "handler.py"), str(rows)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return int(out.stdout.strip())


def test_one_shard_fits_the_function_whatever_its_rows() -> None:
    small, large = peak_mib(10_000), peak_mib(2_000_000)
    # A 200x larger shard costs no more than a part and a chunk more (the part buffer is only
    # filled by shards over 5 MiB).
    assert large - small <= 16, (small, large)
    assert large <= FUNCTION_MEMORY_MIB // 2, large
