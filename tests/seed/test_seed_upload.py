"""Streaming upload: multipart for big files, abort on errors, memory bounded by one part."""

from __future__ import annotations

import hashlib
import time
import tracemalloc
from typing import Any

import pytest
import seed_handler

MIB = 1024 * 1024


class FailingClient:
    """A real (moto) client whose nth upload_part raises."""

    def __init__(self, client: Any, fail_on_part: int) -> None:
        self._client = client
        self._fail_on_part = fail_on_part
        self.aborted: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def upload_part(self, **kwargs: Any) -> Any:
        if kwargs["PartNumber"] == self._fail_on_part:
            raise ConnectionError("network went away")
        return self._client.upload_part(**kwargs)

    def abort_multipart_upload(self, **kwargs: Any) -> Any:
        self.aborted.append(kwargs["UploadId"])
        return self._client.abort_multipart_upload(**kwargs)


class SinkClient:
    """Accepts an upload, keeps each call's arguments but only the length of each body."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.part_sizes: dict[str, list[int]] = {}
        self.digests: dict[str, Any] = {}

    def _record(self, name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        args = {k: v for k, v in kwargs.items() if k != "Body"}
        if "Body" in kwargs:
            body = kwargs["Body"]
            args["BodyLength"] = len(body)
            self.part_sizes.setdefault(kwargs["Key"], []).append(len(body))
            self.digests.setdefault(kwargs["Key"], hashlib.sha256()).update(body)
        self.calls.append((name, args))
        return args

    def put_object(self, **kwargs: Any) -> dict[str, Any]:
        self._record("put_object", kwargs)
        return {"ETag": '"x"'}

    def create_multipart_upload(self, **kwargs: Any) -> dict[str, Any]:
        self._record("create_multipart_upload", kwargs)
        return {"UploadId": "upload-1"}

    def upload_part(self, **kwargs: Any) -> dict[str, Any]:
        self._record("upload_part", kwargs)
        return {"ETag": f'"etag-{kwargs["PartNumber"]}"'}

    def complete_multipart_upload(self, **kwargs: Any) -> dict[str, Any]:
        self._record("complete_multipart_upload", kwargs)
        return {}

    def abort_multipart_upload(self, **kwargs: Any) -> dict[str, Any]:
        self._record("abort_multipart_upload", kwargs)
        return {}


def _chunks(total: int, size: int = MIB):
    for start in range(0, total, size):
        yield bytes([start // size % 251]) * min(size, total - start)


def test_one_million_rows_are_uploaded_in_parts_with_the_right_content(s3, bucket):
    started = time.perf_counter()
    # One shard of a million rows: each split's object is uploaded in parts.
    event = {"run_id": "big", "rows": 1_000_000, "seed": 11, "rows_per_shard": 1_000_000}
    result = seed_handler.handler(event, None)
    elapsed = time.perf_counter() - started
    print(f"1,000,000 rows generated and uploaded to moto in {elapsed:.2f} s")
    for split, rows in (("train", 1_000_000), ("validation", 200_000), ("test", 1_000_000)):
        key = f"datasets/big/{split}/part-00000.csv"
        expected = b"".join(seed_handler.generate_rows(rows, 11, split))
        head = s3.head_object(Bucket=bucket, Key=key)
        if split == "validation":  # 200,000 rows: under one part, a single PutObject
            assert len(expected) < seed_handler.PART_SIZE and "-" not in head["ETag"]
        else:
            assert len(expected) > seed_handler.PART_SIZE  # otherwise this tests PutObject
            parts = int(head["ETag"].strip('"').rsplit("-", 1)[1])  # a multipart ETag ends in -N
            assert 2 <= parts <= len(expected) // seed_handler.PART_SIZE + 1
        assert head["ContentType"] == "text/csv"
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert body.count(b"\n") == rows
        assert hashlib.sha256(body).digest() == hashlib.sha256(expected).digest()
    assert result["rows"] == 1_000_000
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)


def test_small_file_is_a_single_put_object(s3, bucket):
    upload = seed_handler.upload_stream(s3, bucket, "small.csv", [b"1,2\n", b"3,4\n"])
    assert (upload.size, upload.parts) == (8, 0)
    head = s3.head_object(Bucket=bucket, Key="small.csv")
    assert "-" not in head["ETag"]
    assert s3.get_object(Bucket=bucket, Key="small.csv")["Body"].read() == b"1,2\n3,4\n"


def test_empty_stream_writes_an_empty_object(s3, bucket):
    upload = seed_handler.upload_stream(s3, bucket, "empty.csv", [])
    assert (upload.size, upload.parts) == (0, 0)
    assert s3.head_object(Bucket=bucket, Key="empty.csv")["ContentLength"] == 0


def test_parts_are_at_least_part_size_except_the_last(s3, bucket):
    data = list(_chunks(12 * MIB + 123, size=MIB))
    upload = seed_handler.upload_stream(s3, bucket, "parts.csv", data, part_size=5 * MIB)
    assert upload.parts == 3  # 5 MiB, 5 MiB, 2 MiB + 123 B
    body = s3.get_object(Bucket=bucket, Key="parts.csv")["Body"].read()
    assert body == b"".join(data)
    assert s3.head_object(Bucket=bucket, Key="parts.csv")["ETag"].strip('"').endswith("-3")


def test_failed_part_aborts_the_multipart_upload(s3, bucket):
    client = FailingClient(s3, fail_on_part=2)
    with pytest.raises(ConnectionError, match="network went away"):
        seed_handler.upload_stream(client, bucket, "broken.csv", _chunks(16 * MIB))
    assert len(client.aborted) == 1
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_failing_source_aborts_the_multipart_upload(s3, bucket):
    def source():
        yield from _chunks(7 * MIB)
        raise RuntimeError("generator broke")

    with pytest.raises(RuntimeError, match="generator broke"):
        seed_handler.upload_stream(s3, bucket, "broken.csv", source())
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_failed_complete_aborts_and_a_failed_abort_keeps_the_original_error():
    class Unlucky(SinkClient):
        def complete_multipart_upload(self, **kwargs: Any) -> dict[str, Any]:
            raise TimeoutError("complete timed out")

        def abort_multipart_upload(self, **kwargs: Any) -> dict[str, Any]:
            self._record("abort_multipart_upload", kwargs)
            raise ConnectionError("abort failed too")

    client = Unlucky()
    with pytest.raises(TimeoutError, match="complete timed out"):
        seed_handler.upload_stream(client, "b", "k", _chunks(6 * MIB))
    assert client.calls[-1] == (
        "abort_multipart_upload",
        {"Bucket": "b", "Key": "k", "UploadId": "upload-1"},
    )


def test_upload_names_no_encryption_key_and_sets_csv_and_checksums():
    # Encryption is the bucket default (SSE-KMS); the function must not override it.
    client = SinkClient()
    seed_handler.seed_dataset(
        seed_handler.SeedRequest(run_id="r", rows=1_000_000, seed=1, rows_per_shard=1_000_000),
        seed_handler.Settings.from_env(),
        client,
    )
    names = [name for name, _ in client.calls]
    assert names.count("create_multipart_upload") == 2  # both files exceed one part
    for name, args in client.calls:
        assert not any(k.startswith(("ServerSideEncryption", "SSE")) for k in args), (name, args)
        if name in ("put_object", "create_multipart_upload"):
            assert args["ContentType"] == "text/csv"
        if name == "create_multipart_upload":
            assert args["ChecksumAlgorithm"] == "CRC32"
        if name == "complete_multipart_upload":
            numbers = [p["PartNumber"] for p in args["MultipartUpload"]["Parts"]]
            assert numbers == list(range(1, len(numbers) + 1))


def test_one_million_rows_stay_within_a_few_parts_of_memory():
    """Peak Python allocation of the whole pipeline (generation, buffering, handing parts over).

    The sink keeps only lengths and a running hash, so what tracemalloc sees is the function's
    own buffering. Parts of 1 MiB make the bound (4 MiB) far below the train file alone
    (~7.6 MiB) and the dataset (~13 MiB): building either file in memory fails this test.
    """
    client = SinkClient()
    request = seed_handler.SeedRequest(
        run_id="mem", rows=1_000_000, seed=3, rows_per_shard=1_000_000
    )
    settings = seed_handler.Settings.from_env()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        seed_handler.seed_dataset(request, settings, client, part_size=MIB)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    print(f"peak traced allocation for 1,000,000 rows with 1 MiB parts: {peak / MIB:.2f} MiB")
    sizes = {
        split: client.part_sizes[f"datasets/mem/{split}/part-00000.csv"]
        for split in ("train", "test")
    }
    assert sum(sizes["train"]) > 7 * MIB
    assert peak < 4 * MIB < (sum(sizes["train"]) + sum(sizes["test"])) / 3
    max_chunk = seed_handler.CHUNK_ROWS * len(b"1,100,100\n")
    for split, (*full, last) in sizes.items():
        assert all(MIB <= size < MIB + max_chunk for size in full)
        assert 0 < last < MIB + max_chunk
        expected = hashlib.sha256(b"".join(seed_handler.generate_rows(1_000_000, 3, split)))
        assert client.digests[f"datasets/mem/{split}/part-00000.csv"].digest() == expected.digest()


def test_default_part_size_keeps_one_million_rows_far_below_lambda_memory():
    client = SinkClient()
    request = seed_handler.SeedRequest(run_id="mem", rows=1_000_000, seed=3)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        seed_handler.seed_dataset(request, seed_handler.Settings.from_env(), client)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    print(f"peak traced allocation for 1,000,000 rows with 5 MiB parts: {peak / MIB:.2f} MiB")
    assert peak < 2 * seed_handler.PART_SIZE
