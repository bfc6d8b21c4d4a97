"""Dataset-seeding Lambda: writes deterministic training, validation and test CSVs for one run.

Entry point: ``handler.handler``. Runtime dependencies: the standard library and boto3.

Environment (read on every invocation; a bad value raises ``ConfigurationError`` naming it)
    BUCKET_NAME     required; the bucket the datasets are written to (its default encryption,
                    SSE-KMS, applies; no key is named here).
    DATASET_PREFIX  key prefix, ``""`` or ending in ``/``; default ``datasets/``.
    DEFAULT_ROWS    rows when the event has none; 1..MAX_ROWS; default min(1000, MAX_ROWS).
    DEFAULT_SEED    seed when the event has none; 0..MAX_SEED (2**53-1); default 42.
    MAX_ROWS        largest ``rows`` an event may ask for; >= 1; default 1000000.
    ROWS_PER_SHARD  rows of one shard when the event has none; 1..MAX_ROWS_PER_SHARD;
                    default DEFAULT_ROWS_PER_SHARD (100000).
    LOG_LEVEL       DEBUG, INFO, WARNING, ERROR or CRITICAL; default INFO.

Event (unknown keys are rejected; a bad event raises ``InvalidEventError`` before any S3 call)
    run_id  required str, 1..80 characters from ``[A-Za-z0-9-]`` (an execution name fits).
    rows    optional int, 1..MAX_ROWS; default DEFAULT_ROWS.
    seed    optional int, 0..MAX_SEED (2**53-1, JSON-safe integers); default DEFAULT_SEED.
    rows_per_shard  optional int, 1..MAX_ROWS_PER_SHARD; default ROWS_PER_SHARD.
    shard   optional int, 0..shards-1: write only this shard (one iteration of the workflow's
            Map state); absent: write every shard, one after the other.
    Integers are strict: only JSON integers are accepted. ``true``/``false``, floats (even
    ``5.0``) and numeric strings (``"5"``) are rejected, so a mistyped state machine input fails
    loudly instead of being coerced.

Result (a dict)
    ``{"run_id", "rows", "seed", "rows_per_shard", "shards", "shard", "train_prefix",
    "validation_prefix", "test_prefix", "test_labels_prefix"}``; ``shards`` is the shard count
    (``ceil(rows / rows_per_shard)``), ``shard`` the one written (null: all of them), and
    ``*_prefix`` the split's folder, ending in ``/``
    (``s3://BUCKET/<DATASET_PREFIX><run_id>/train/``), which is what a SageMaker channel or
    transform input takes as ``S3Prefix``: the run's output lists prefixes, not files.

Dataset (the reference workflow's), in shards
    Shard ``i`` holds rows ``i * rows_per_shard`` up to ``rows`` (at most ``rows_per_shard``) and
    writes one object per split, ``<split>/part-<i:05d>.csv``: ``train``: its rows as lines
    ``label,x,y``; ``validation``: ``max(1, shard rows // 5)`` lines ``label,x,y`` (20 %, for the
    training job's ``validation`` channel: evaluation every round, early stopping, the quality
    gate's metric); ``test``: its rows as lines ``x,y``; ``test-labels``: the held-out label of
    each ``test`` line, one a line, in the same order (drawn from the ``test`` generator, so
    ``test-labels/part-<i>.csv`` pairs line by line with ``test/part-<i>.csv``; the evaluation
    job reads both). x and y are integers in 0..100 inclusive, label is 1 if y >= 3x + 5 else 0.
    No header, ``\\n`` line endings, ASCII, content type ``text/csv``.
    One object per shard is what ``ShardedByS3Key`` distributes over training hosts and what a
    multi-instance batch transform spreads over its instances.

Determinism
    A shard's bytes depend only on (seed, shard index, its row count), for ever: each object has
    its own generator, ``random.Random("mlstack-seed:<seed>:<split>")`` for shard 0 and
    ``random.Random("mlstack-seed:<seed>:<split>:<shard>")`` for shard i > 0 (string seeding is
    stable across Python versions), so no object's rows depend on another's, the concurrency and
    retries of the invocations change nothing, a dataset that fits one shard is byte for byte the
    unsharded dataset of earlier versions, and an object of N rows is the prefix of the object of
    M > N rows. Each row is one draw: ``k = floor(rng.random() * 10201)`` (what ``rng.choices``
    over the 101 * 101 (x, y) pairs does), then ``x = k // 101``, ``y = k % 101``.
    Rows are drawn in file order.

Memory
    Whatever ``rows`` and ``rows_per_shard`` are, an invocation holds one part buffer (below) and
    one chunk of rows: about 6 MiB next to the runtime's ~40 MiB, far inside 256 MB
    (``tests/seed`` measures it). What bounds a shard is time: ``MAX_ROWS_PER_SHARD`` rows
    are written well within the function's timeout (``bench/README.md``).

Upload
    Each file is streamed: rows are rendered in chunks into a part buffer; when the buffer
    reaches ``PART_SIZE`` (5 MiB, the S3 minimum) it is uploaded as one part of a multipart
    upload, so memory stays around one part whatever ``rows`` is. A file smaller than one part
    is written with a single PutObject. Any error aborts the multipart upload. (A Lambda timeout
    kills the process before it can abort: give the bucket an AbortIncompleteMultipartUpload
    lifecycle rule.) Re-running a ``run_id`` overwrites its files.

The S3 client is created on first use and cached; boto3 itself honours ``AWS_ENDPOINT_URL`` /
``AWS_ENDPOINT_URL_S3``, so pointing the function at an S3-compatible server needs no code here.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

# The rules shared with the app: the generated copy beside this file (Lambda puts this directory
# on sys.path; a test or a tool that loads this file by its path may not).
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.append(_HERE)
import portable_rules  # noqa: E402

# --- contract constants ---------------------------------------------------------------------

RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9-]{1,80}")
MAX_SEED = portable_rules.MAX_SEED  # the largest integer every JSON parser keeps exact
VALUE_MAX = 100  # x and y are drawn from 0..VALUE_MAX inclusive
CONTENT_TYPE = "text/csv"
PART_SIZE = 5 * 1024 * 1024  # S3's minimum part size (every part but the last)
CHUNK_ROWS = 16384  # rows rendered per chunk; ~130 KiB, small next to a part

DEFAULT_DATASET_PREFIX = "datasets/"
DEFAULT_ROWS = 1000
DEFAULT_SEED = 42
DEFAULT_MAX_ROWS = 1_000_000
DEFAULT_ROWS_PER_SHARD = portable_rules.DEFAULT_ROWS_PER_SHARD
MAX_ROWS_PER_SHARD = portable_rules.MAX_ROWS_PER_SHARD  # written well within the timeout
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

Split = Literal["train", "validation", "test", "test-labels"]
SPLITS: tuple[Split, ...] = ("train", "validation", "test")
# The test set's held-out labels: the rows of "test" (same generator), their labels only.
TEST_LABELS: Split = "test-labels"
VALIDATION_FRACTION = 5  # the validation set has rows // 5 rows (20 %), at least 1


def label_for(x: int, y: int) -> int:
    """The reference workflow's rule: 1 above the line y = 3x + 5 (inclusive), else 0."""
    return 1 if y >= 3 * x + 5 else 0


# Every possible line, rendered once: a row is a table lookup, not a format call. Index k of
# both tables is the pair (x, y) = (k // 101, k % 101).
_PAIRS = [(x, y) for x in range(VALUE_MAX + 1) for y in range(VALUE_MAX + 1)]
_LABELLED = [f"{label_for(x, y)},{x},{y}\n".encode("ascii") for x, y in _PAIRS]
_LINES: dict[Split, list[bytes]] = {
    "train": _LABELLED,
    "validation": _LABELLED,
    "test": [f"{x},{y}\n".encode("ascii") for x, y in _PAIRS],
    TEST_LABELS: [f"{label_for(x, y)}\n".encode("ascii") for x, y in _PAIRS],
}
# The generator each split draws its rows from: the labels replay the test set's draws.
_STREAM: dict[Split, Split] = {TEST_LABELS: "test"}
del _PAIRS, _LABELLED


def split_rows(rows: int, split: Split) -> int:
    """Rows of one file: ``rows`` for train, test and test labels, ``max(1, rows // 5)`` for
    validation."""
    return max(1, rows // VALIDATION_FRACTION) if split == "validation" else rows


shard_count = portable_rules.shard_count  # ceil(rows / rows_per_shard)


def shard_rows(rows: int, rows_per_shard: int, shard: int) -> int:
    """Rows of shard ``shard`` (before the split's fraction): ``rows_per_shard``, the last one
    what is left."""
    return min(rows_per_shard, rows - shard * rows_per_shard)


# --- logging ------------------------------------------------------------------------------------

_RECORD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: timestamp, level, logger, message, then the record's extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in record.__dict__.items():
            if name not in _RECORD_ATTRS and not name.startswith("_") and value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def _build_logger() -> logging.Logger:
    log = logging.getLogger("mlstack.seed")
    # Own handler and no propagation: the Lambda runtime's root handler would prefix and
    # duplicate each line, and one JSON object a line is what log queries want.
    stream = logging.StreamHandler(sys.stdout)
    stream.setFormatter(JsonFormatter())
    log.handlers[:] = [stream]
    log.propagate = False
    log.setLevel(logging.INFO)
    return log


logger = _build_logger()


# --- errors -----------------------------------------------------------------------------------


class InvalidEventError(ValueError):
    """The event is malformed; the message names the key, the bad value and what is allowed."""


class ConfigurationError(RuntimeError):
    """The function's environment is misconfigured; the message names the variable."""


# --- settings -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    bucket_name: str
    dataset_prefix: str
    default_rows: int
    default_seed: int
    max_rows: int
    log_level: str
    rows_per_shard: int = DEFAULT_ROWS_PER_SHARD

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        bucket = env.get("BUCKET_NAME", "").strip()
        if not bucket:
            raise ConfigurationError("BUCKET_NAME is not set; it must name the dataset bucket")
        prefix = env.get("DATASET_PREFIX", DEFAULT_DATASET_PREFIX)
        if prefix.startswith("/") or (prefix and not prefix.endswith("/")):
            raise ConfigurationError(
                f"DATASET_PREFIX={prefix!r} is invalid; expected '' or a key prefix ending in '/'"
                " and not starting with '/' (e.g. 'datasets/')"
            )
        max_rows = _env_int(env, "MAX_ROWS", DEFAULT_MAX_ROWS, 1, None)
        default_rows = _env_int(env, "DEFAULT_ROWS", min(DEFAULT_ROWS, max_rows), 1, max_rows)
        default_seed = _env_int(env, "DEFAULT_SEED", DEFAULT_SEED, 0, MAX_SEED)
        log_level = env.get("LOG_LEVEL", "INFO").strip().upper() or "INFO"
        if log_level not in LOG_LEVELS:
            raise ConfigurationError(
                f"LOG_LEVEL={env['LOG_LEVEL']!r} is invalid; "
                f"expected one of {', '.join(LOG_LEVELS)}"
            )
        rows_per_shard = _env_int(
            env, "ROWS_PER_SHARD", DEFAULT_ROWS_PER_SHARD, 1, MAX_ROWS_PER_SHARD
        )
        return cls(bucket, prefix, default_rows, default_seed, max_rows, log_level, rows_per_shard)


def _env_int(env: Mapping[str, str], name: str, default: int, low: int, high: int | None) -> int:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    allowed = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not an integer; expected {allowed}") from None
    if value < low or (high is not None and value > high):
        raise ConfigurationError(f"{name}={raw!r} is out of range; expected {allowed}")
    return value


# --- event --------------------------------------------------------------------------------------


EVENT_KEYS = ("run_id", "rows", "seed", "rows_per_shard", "shard")


@dataclass(frozen=True)
class SeedRequest:
    run_id: str
    rows: int
    seed: int
    rows_per_shard: int = DEFAULT_ROWS_PER_SHARD
    shard: int | None = None

    @property
    def shards(self) -> int:
        return shard_count(self.rows, self.rows_per_shard)

    @classmethod
    def from_event(cls, event: Any, settings: Settings) -> SeedRequest:
        if not isinstance(event, Mapping):
            raise InvalidEventError(
                "event must be a JSON object with keys run_id, rows, seed; "
                f"got {type(event).__name__}"
            )
        unknown = sorted(str(key) for key in event if key not in EVENT_KEYS)
        if unknown:
            raise InvalidEventError(
                f"unknown event key(s) {', '.join(repr(k) for k in unknown)}; "
                "allowed keys: 'run_id' (required), 'rows', 'seed', 'rows_per_shard', 'shard'"
            )
        if "run_id" not in event:
            raise InvalidEventError(
                "'run_id' is missing; expected 1..80 characters from [A-Za-z0-9-]"
            )
        run_id = event["run_id"]
        if not isinstance(run_id, str) or not RUN_ID_PATTERN.fullmatch(run_id):
            raise InvalidEventError(
                f"'run_id': {run_id!r} is invalid; expected a string of 1..80 characters "
                "from [A-Za-z0-9-]"
            )
        rows = _event_int(event, "rows", settings.default_rows, 1, settings.max_rows, "MAX_ROWS")
        seed = _event_int(event, "seed", settings.default_seed, 0, MAX_SEED, "MAX_SEED, 2**53-1")
        rows_per_shard = _event_int(
            event,
            "rows_per_shard",
            settings.rows_per_shard,
            1,
            MAX_ROWS_PER_SHARD,
            "MAX_ROWS_PER_SHARD, what one invocation writes in time",
        )
        shards = shard_count(rows, rows_per_shard)
        shard = None
        if event.get("shard") is not None:
            shard = _event_int(
                event, "shard", 0, 0, shards - 1, f"shards - 1 for {rows} rows of {rows_per_shard}"
            )
        return cls(run_id, rows, seed, rows_per_shard, shard)


def _event_int(
    event: Mapping[str, Any], key: str, default: int, low: int, high: int, high_name: str
) -> int:
    allowed = f"a JSON integer from {low} to {high} ({high_name})"
    if key not in event:
        return default
    value = event[key]
    # bool is an int subclass; floats and numeric strings are refused rather than coerced.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidEventError(
            f"{key!r}: {value!r} ({type(value).__name__}) is not an integer; expected {allowed}"
        )
    if not low <= value <= high:
        raise InvalidEventError(f"{key!r}: {value!r} is out of range; expected {allowed}")
    return value


# --- result -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedResult:
    run_id: str
    rows: int
    seed: int
    rows_per_shard: int
    shards: int
    shard: int | None
    train_prefix: str
    validation_prefix: str
    test_prefix: str
    test_labels_prefix: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def split_prefix(settings: Settings, run_id: str, split: Split) -> str:
    """``<DATASET_PREFIX><run_id>/<split>/``."""
    return f"{settings.dataset_prefix}{run_id}/{split}/"


def dataset_key(settings: Settings, run_id: str, split: Split, shard: int) -> str:
    """``<DATASET_PREFIX><run_id>/<split>/part-<shard:05d>.csv``."""
    return f"{split_prefix(settings, run_id, split)}part-{shard:05d}.csv"


# --- generation ---------------------------------------------------------------------------------


def split_rng(seed: int, split: Split, shard: int = 0) -> random.Random:
    """The generator of one object: independent per split and shard, fixed by the seed (shard 0
    keeps the unsharded generator, so a one-shard dataset is what earlier versions wrote)."""
    suffix = f":{shard}" if shard else ""
    return random.Random(f"mlstack-seed:{seed}:{split}{suffix}")


def generate_rows(
    rows: int, seed: int, split: Split, *, shard: int = 0, chunk_rows: int = CHUNK_ROWS
) -> Iterator[bytes]:
    """Yield the bytes of one CSV object (``rows`` lines of ``split``, shard ``shard``) in chunks
    of ``chunk_rows``."""
    if rows < 0 or chunk_rows < 1 or shard < 0:
        raise ValueError(
            f"rows, shard must be >= 0 and chunk_rows >= 1; got {rows}, {shard}, {chunk_rows}"
        )
    lines = _LINES[split]
    choices = split_rng(seed, _STREAM.get(split, split), shard).choices
    remaining = rows
    while remaining:
        n = min(chunk_rows, remaining)
        yield b"".join(choices(lines, k=n))
        remaining -= n


# --- upload -------------------------------------------------------------------------------------


class S3Client(Protocol):
    """The S3 operations the upload uses (a boto3 S3 client has them)."""

    def put_object(self, **kwargs: Any) -> Any: ...
    def create_multipart_upload(self, **kwargs: Any) -> Any: ...
    def upload_part(self, **kwargs: Any) -> Any: ...
    def complete_multipart_upload(self, **kwargs: Any) -> Any: ...
    def abort_multipart_upload(self, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class UploadResult:
    key: str
    size: int
    parts: int  # 0 when written with a single PutObject


def upload_stream(
    client: S3Client,
    bucket: str,
    key: str,
    chunks: Iterable[bytes],
    *,
    part_size: int = PART_SIZE,
    content_type: str = CONTENT_TYPE,
) -> UploadResult:
    """Write ``chunks`` to ``s3://bucket/key``, holding about one part in memory.

    Parts are at least ``part_size`` bytes (S3 wants >= 5 MiB for all but the last part) and at
    most ``part_size`` plus one chunk. Content under one part goes up in a single PutObject. On
    any error the multipart upload is aborted and the error re-raised.
    """
    if part_size < 1:
        raise ValueError(f"part_size must be >= 1; got {part_size}")
    buffer = bytearray()
    upload_id: str | None = None
    parts: list[dict[str, Any]] = []
    size = 0
    try:
        for chunk in chunks:
            buffer += chunk
            size += len(chunk)
            if len(buffer) >= part_size:
                if upload_id is None:
                    upload_id = client.create_multipart_upload(
                        Bucket=bucket, Key=key, ContentType=content_type, ChecksumAlgorithm="CRC32"
                    )["UploadId"]
                parts.append(_upload_part(client, bucket, key, upload_id, len(parts) + 1, buffer))
                buffer = bytearray()
        if upload_id is None:
            client.put_object(Bucket=bucket, Key=key, Body=bytes(buffer), ContentType=content_type)
            return UploadResult(key=key, size=size, parts=0)
        if buffer:
            parts.append(_upload_part(client, bucket, key, upload_id, len(parts) + 1, buffer))
        client.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )
        return UploadResult(key=key, size=size, parts=len(parts))
    except BaseException:
        if upload_id is not None:
            _abort(client, bucket, key, upload_id)
        raise


def _upload_part(
    client: S3Client, bucket: str, key: str, upload_id: str, number: int, body: bytearray
) -> dict[str, Any]:
    response = client.upload_part(
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        PartNumber=number,
        Body=body,
        ChecksumAlgorithm="CRC32",
    )
    part: dict[str, Any] = {"PartNumber": number, "ETag": response["ETag"]}
    if "ChecksumCRC32" in response:
        part["ChecksumCRC32"] = response["ChecksumCRC32"]
    return part


def _abort(client: S3Client, bucket: str, key: str, upload_id: str) -> None:
    try:
        client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    except Exception:
        # The original error matters more; the bucket's lifecycle rule cleans up what is left.
        logger.exception("abort of multipart upload failed", extra={"key": key})
    else:
        logger.warning("multipart upload aborted", extra={"key": key})


# --- orchestration ------------------------------------------------------------------------------


def seed_dataset(
    request: SeedRequest, settings: Settings, client: S3Client, *, part_size: int = PART_SIZE
) -> SeedResult:
    """Generate and upload the objects of ``request`` (its shard, or every shard); return
    where they are."""
    shards = range(request.shards) if request.shard is None else (request.shard,)
    for shard in shards:
        rows = shard_rows(request.rows, request.rows_per_shard, shard)
        for split in (*SPLITS, TEST_LABELS):
            key = dataset_key(settings, request.run_id, split, shard)
            chunks = generate_rows(split_rows(rows, split), request.seed, split, shard=shard)
            upload = upload_stream(client, settings.bucket_name, key, chunks, part_size=part_size)
            logger.debug(
                "file written",
                extra={"key": upload.key, "bytes": upload.size, "parts": upload.parts},
            )

    def prefix(split: Split) -> str:
        return f"s3://{settings.bucket_name}/{split_prefix(settings, request.run_id, split)}"

    return SeedResult(
        run_id=request.run_id,
        rows=request.rows,
        seed=request.seed,
        rows_per_shard=request.rows_per_shard,
        shards=request.shards,
        shard=request.shard,
        train_prefix=prefix("train"),
        validation_prefix=prefix("validation"),
        test_prefix=prefix("test"),
        test_labels_prefix=prefix(TEST_LABELS),
    )


_s3_client: Any = None


def s3_client() -> Any:
    """The cached boto3 S3 client, created on first use (boto3 is imported only then)."""
    global _s3_client
    if _s3_client is None:
        import boto3  # deferred: keeps importing this module, and so the cold start, cheap

        _s3_client = boto3.client("s3")
    return _s3_client


def reset_s3_client() -> None:
    """Forget the cached client (tests, or after changing credentials/endpoint settings)."""
    global _s3_client
    _s3_client = None


def handler(event: Any, context: Any) -> dict[str, Any]:
    started = time.perf_counter()
    request_id = getattr(context, "aws_request_id", None)
    try:
        settings = Settings.from_env()
    except ConfigurationError as error:
        logger.error("invalid configuration", extra={"error": str(error)})
        raise
    logger.setLevel(settings.log_level)
    try:
        request = SeedRequest.from_event(event, settings)
    except InvalidEventError as error:
        logger.error("invalid event", extra={"error": str(error), "aws_request_id": request_id})
        raise
    fields = {
        "run_id": request.run_id,
        "rows": request.rows,
        "seed": request.seed,
        "rows_per_shard": request.rows_per_shard,
        "shard": request.shard,
        "aws_request_id": request_id,
    }
    logger.info("seeding dataset", extra=fields)
    try:
        result = seed_dataset(request, settings, s3_client())
    except Exception:
        logger.exception(
            "seeding failed",
            extra={**fields, "duration_ms": round((time.perf_counter() - started) * 1000, 1)},
        )
        raise
    logger.info(
        "dataset written",
        extra={
            **fields,
            "shards": result.shards,
            "prefixes": [
                result.train_prefix,
                result.validation_prefix,
                result.test_prefix,
                result.test_labels_prefix,
            ],
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
        },
    )
    return result.to_dict()
