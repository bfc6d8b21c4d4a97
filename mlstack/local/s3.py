"""An S3-compatible server on loopback (moto's), for code that talks to S3 through boto3.

Code under test is pointed at it with ``AWS_ENDPOINT_URL_S3`` and fake credentials
(:meth:`EmbeddedS3.environment`): boto3 honours the variable, so the code needs no endpoint logic.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


def shard_keys(keys: Iterable[str], shard: tuple[int, int] | None) -> list[str]:
    """The object keys (folders left out) one host reads: all of them, or with ``shard`` (host
    index, host count) every count-th key from the index, in key order."""
    objects = sorted(k for k in keys if not k.endswith("/"))
    return objects if shard is None else objects[shard[0] :: shard[1]]


def parse_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key)."""
    if not uri.startswith("s3://"):
        raise ValueError(f"{uri!r} is not an s3:// URI")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"{uri!r} names no bucket")
    return bucket, key


INDEX = ".index.json"  # bucket names never start with a dot, so no bucket shadows it


def _file_key(key: str) -> bool:
    """A key that maps to one file below its bucket's directory."""
    return all(part not in ("", ".", "..") for part in key.split("/"))


def _read_index(source: Path) -> dict[str, dict[str, dict[str, str]]]:
    path = source / INDEX
    if not path.is_file():
        return {}
    index: dict[str, dict[str, dict[str, str]]] = json.loads(path.read_text(encoding="utf-8"))
    return index


def kept_buckets(source: Path) -> list[str]:
    """The buckets :meth:`EmbeddedS3.persist` kept in ``source``."""
    return sorted(_read_index(source))


def _remove_unlisted(dest: Path, index: dict[str, dict[str, dict[str, str]]]) -> None:
    """Delete the files (and then empty folders) under ``dest`` that ``index`` does not list."""
    if not dest.is_dir():
        return
    for bucket_dir in dest.iterdir():
        if not bucket_dir.is_dir():
            continue
        listed = index.get(bucket_dir.name)
        if listed is None:
            shutil.rmtree(bucket_dir)
            continue
        for path in sorted(bucket_dir.rglob("*"), reverse=True):  # children before parents
            if path.is_file() and path.relative_to(bucket_dir).as_posix() not in listed:
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()


class EmbeddedS3:
    """moto's S3 server on 127.0.0.1 (a free port), in a thread of this process."""

    def __init__(self, region: str = "us-east-1") -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.region = region
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        self._client: Any = None

    def environment(self) -> dict[str, str]:
        """Variables that point boto3 (in this process or a child) at this server."""
        return {
            **FAKE_CREDENTIALS,
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client(
                "s3",
                endpoint_url=self.endpoint_url,
                region_name=self.region,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
                aws_session_token="testing",
            )
        return self._client

    def create_bucket(self, name: str) -> None:
        self.client.create_bucket(Bucket=name)

    def keys(self, bucket: str, prefix: str = "") -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"]

    def read(self, uri: str) -> bytes:
        bucket, key = parse_uri(uri)
        body: bytes = self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        return body

    def write(self, uri: str, data: bytes, content_type: str | None = None) -> None:
        bucket, key = parse_uri(uri)
        extra = {"ContentType": content_type} if content_type else {}
        self.client.put_object(Bucket=bucket, Key=key, Body=data, **extra)

    def download_prefix(
        self, uri: str, dest: Path, shard: tuple[int, int] | None = None
    ) -> list[Path]:
        """Download every object under ``uri`` as SageMaker's File mode does: the key tree below
        the prefix's folder is kept (``s3://b/a/train/`` + ``a/train/x.csv`` -> ``dest/x.csv``).

        ``shard`` (host index, host count): only that host's objects, as ``ShardedByS3Key``
        gives each of N instances 1/N of the objects (keys in order, dealt round robin).
        """
        bucket, prefix = parse_uri(uri)
        folder = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
        files = []
        for key in shard_keys(self.keys(bucket, prefix), shard):
            path = dest / key[len(folder) :]
            path.parent.mkdir(parents=True, exist_ok=True)
            self.client.download_file(bucket, key, str(path))
            files.append(path)
        return files

    def mirror(self, dest: Path) -> int:
        """Copy every object of every bucket to ``dest/<bucket>/<key>``; returns the count."""
        count = 0
        for bucket in self.client.list_buckets().get("Buckets", []):
            for key in self.keys(bucket["Name"]):
                if key.endswith("/"):
                    continue
                path = dest / bucket["Name"] / key
                path.parent.mkdir(parents=True, exist_ok=True)
                self.client.download_file(bucket["Name"], key, str(path))
                count += 1
        return count

    def restore(self, source: Path, buckets: Iterable[str] = ()) -> int:
        """Make the buckets :meth:`persist` kept in ``source``, and ``buckets``, hold exactly
        the objects kept there (with their content types); returns the count. A bucket that
        exists is emptied first: every server of one process shares moto's backend, so it may
        hold objects of an earlier server of the process."""
        index = _read_index(source)
        existing = {b["Name"] for b in self.client.list_buckets().get("Buckets", [])}
        count = 0
        for bucket in sorted(set(index) | set(buckets)):
            if bucket in existing:
                self._empty(bucket)
            else:
                self.create_bucket(bucket)
            for key, entry in index.get(bucket, {}).items():
                path = source / bucket / key
                extra = {"ContentType": entry["content_type"]} if entry.get("content_type") else {}
                self.client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes(), **extra)
                count += 1
        return count

    def _empty(self, bucket: str) -> None:
        keys = list(self.keys(bucket))
        for start in range(0, len(keys), 1000):  # DeleteObjects takes up to 1000 keys
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            self.client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})

    def persist(self, dest: Path, others: Iterable[str] = ()) -> list[str]:
        """Make ``dest`` hold exactly the server's buckets (but ``others``: another user's of
        the process) and their objects, as ``dest/<bucket>/<key>`` and an index
        (``.index.json``: each object's ETag and content type): new or changed objects (by
        ETag) are downloaded, the others kept, files of deleted objects removed. Returns the
        ``s3://`` URIs of objects that a file cannot hold (a key ending in ``/``, or with an
        empty, ``.`` or ``..`` segment), which are not kept."""
        old = _read_index(dest)
        index: dict[str, dict[str, dict[str, str]]] = {}
        skipped = []
        names = {b["Name"] for b in self.client.list_buckets().get("Buckets", [])}
        for bucket in sorted(names - set(others)):
            objects = index.setdefault(bucket, {})
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=bucket):
                for item in page.get("Contents", []):
                    key, etag = item["Key"], item["ETag"]
                    if not _file_key(key):
                        skipped.append(f"s3://{bucket}/{key}")
                        continue
                    path = dest / bucket / key
                    kept = old.get(bucket, {}).get(key)
                    if kept and kept.get("etag") == etag and path.is_file():
                        objects[key] = kept
                        continue
                    response = self.client.get_object(Bucket=bucket, Key=key)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(response["Body"].read())
                    objects[key] = {"etag": etag, "content_type": response.get("ContentType", "")}
        _remove_unlisted(dest, index)
        dest.mkdir(parents=True, exist_ok=True)
        partial = dest / ".index.json.partial"
        partial.write_text(json.dumps(index, indent=1, sort_keys=True), encoding="utf-8")
        partial.replace(dest / INDEX)
        return skipped

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> EmbeddedS3:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
