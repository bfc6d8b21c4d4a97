"""Data capture, locally: what a SageMaker endpoint with a ``DataCaptureConfig`` writes to S3.

AWS's "Capture data from real-time endpoint" (SageMaker developer guide) is the format: one
JSON Lines object per sampled request, in objects under
``<DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/`` (the hour of the request, UTC)::

    {"captureData": {"endpointInput": {"observedContentType", "mode": "INPUT", "data",
                                       "encoding"},
                     "endpointOutput": {"observedContentType", "mode": "OUTPUT", "data",
                                        "encoding"}},
     "eventMetadata": {"eventId", "inferenceId" (when the request sent one), "inferenceTime"},
     "eventVersion": "0"}

``encoding`` is ``BASE64``: without a ``CaptureContentTypeHeader`` (our endpoint configurations
set none) SageMaker base64-encodes every body (API reference, ``DataCaptureConfig``). The
sampling percentage, the captured sides (input, output or both) and the destination come from
the environment's ``endpoint.data_capture`` and the data bucket's ``data-capture/`` prefix, as
the Serving stack's endpoint configuration has them.

Captured lines are buffered and written as one object per endpoint, variant and hour when
:data:`FLUSH_LINES` lines wait or :meth:`DataCapture.flush` is called (the gateway flushes when
it stops), as SageMaker writes its capture in batches.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlstack.local.s3 import INDEX, parse_uri

FLUSH_LINES = 1000


@dataclass(frozen=True)
class CaptureSettings:
    """``destination``: ``s3://bucket/prefix/``; ``sampling_percentage`` 0..100."""

    destination: str
    sampling_percentage: int
    capture_input: bool = True
    capture_output: bool = True

    def __post_init__(self) -> None:
        if not self.destination.startswith("s3://") or not self.destination.endswith("/"):
            raise ValueError(
                f"capture destination {self.destination!r}: expected s3://bucket/prefix/"
            )
        if not 0 <= self.sampling_percentage <= 100:
            raise ValueError(
                f"sampling_percentage {self.sampling_percentage}: expected 0 to 100 "
                "(DataCaptureConfig.InitialSamplingPercentage)"
            )


def capture_line(
    request: bytes,
    request_type: str,
    answer: bytes | None,
    answer_type: str | None,
    *,
    when: datetime,
    inference_id: str | None = None,
    event_id: str | None = None,
) -> dict[str, object]:
    """One captured event; ``answer`` None: the output is not captured."""
    capture: dict[str, object] = {}
    if request_type:
        capture["endpointInput"] = _side(request, request_type, "INPUT")
    if answer is not None:
        capture["endpointOutput"] = _side(answer, answer_type or "", "OUTPUT")
    meta = {"eventId": event_id or str(uuid.uuid4())}
    if inference_id:
        meta["inferenceId"] = inference_id
    meta["inferenceTime"] = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return {"captureData": capture, "eventMetadata": meta, "eventVersion": "0"}


def _side(body: bytes, content_type: str, mode: str) -> dict[str, str]:
    return {
        "observedContentType": content_type,
        "mode": mode,
        "data": base64.b64encode(body).decode("ascii"),
        "encoding": "BASE64",
    }


class DataCapture:
    """Samples and buffers captured events; ``write(uri, data)`` puts one S3 object."""

    def __init__(
        self,
        settings: CaptureSettings,
        write: Callable[[str, bytes], None],
        *,
        rng: random.Random | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.write = write
        self.rng = rng or random.Random()
        self.clock = clock
        self._lock = threading.Lock()
        self._buffers: dict[str, list[str]] = {}
        self.captured = 0

    def record(
        self,
        endpoint: str,
        variant: str,
        request: bytes,
        request_type: str,
        answer: bytes,
        answer_type: str,
        inference_id: str | None = None,
    ) -> bool:
        """Capture one answered request when the sampling draw says so; True when captured."""
        if self.rng.random() * 100 >= self.settings.sampling_percentage:
            return False
        when = self.clock()
        event = capture_line(
            request if self.settings.capture_input else b"",
            request_type if self.settings.capture_input else "",
            answer if self.settings.capture_output else None,
            answer_type,
            when=when,
            inference_id=inference_id,
        )
        folder = f"{self.settings.destination}{endpoint}/{variant}/{when:%Y/%m/%d/%H}/"
        with self._lock:
            lines = self._buffers.setdefault(folder, [])
            lines.append(json.dumps(event, separators=(",", ":")))
            self.captured += 1
            full = len(lines) >= FLUSH_LINES
        if full:
            self._flush(folder)
        return True

    def flush(self) -> None:
        """Write every buffered line."""
        for folder in list(self._buffers):
            self._flush(folder)

    def _flush(self, folder: str) -> None:
        with self._lock:
            lines = self._buffers.pop(folder, [])
        if lines:
            stamp = self.clock().strftime("%M-%S-%f")[:-3]
            self.write(f"{folder}{stamp}-{uuid.uuid4()}.jsonl", ("\n".join(lines) + "\n").encode())


def account_writer(s3_dir: Path) -> Callable[[str, bytes], None]:
    """``write(uri, data)`` into a local account's S3 folder (``<bucket>/<key>`` and its
    ``.index.json``), where the account's next run or ``mlstack local monitor`` finds it."""
    lock = threading.Lock()

    def write(uri: str, data: bytes) -> None:
        bucket, key = parse_uri(uri)
        path = s3_dir / bucket / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        with lock:
            index_path = s3_dir / INDEX
            index = json.loads(index_path.read_text("utf-8")) if index_path.is_file() else {}
            etag = f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'
            index.setdefault(bucket, {})[key] = {"etag": etag, "content_type": "application/jsonl"}
            partial = index_path.with_name(INDEX + ".partial")
            partial.write_text(json.dumps(index, indent=1, sort_keys=True), encoding="utf-8")
            partial.replace(index_path)

    return write


def account_capture(
    s3_dir: Path, data_capture: Any, baseline_prefix: str, capture_prefix: str = "data-capture/"
) -> DataCapture | None:
    """The capture of a local account's endpoint as the environment's ``endpoint.data_capture``
    sets it (None when off), into the data bucket (the account's bucket holding the baseline
    prefix) under ``data-capture/``."""
    if data_capture is None:
        return None
    for bucket, keys in sorted(_index(s3_dir).items()):
        if any(k.startswith(baseline_prefix) for k in keys):
            settings = CaptureSettings(
                f"s3://{bucket}/{capture_prefix}",
                data_capture.sampling_percentage,
                data_capture.captures_input,
                data_capture.captures_output,
            )
            return DataCapture(settings, account_writer(s3_dir))
    return None


def _index(s3_dir: Path) -> dict[str, dict[str, Any]]:
    path = s3_dir / INDEX
    return json.loads(path.read_text("utf-8")) if path.is_file() else {}


def serve_capture(run_dir: Path | None, environments_dir: Path | None = None) -> DataCapture | None:
    """The capture of ``mlstack local serve --from-run <workdir>/accounts/<env>``: the
    environment's ``endpoint.data_capture`` into that account (None for any other source, when
    the environment captures nothing, or when this checkout has no file of that environment)."""
    if run_dir is None or run_dir.resolve().parent.name != "accounts":
        return None
    from mlstack.config import ENVIRONMENTS_DIR, load_environment

    name = run_dir.resolve().name
    directory = environments_dir or ENVIRONMENTS_DIR
    if not (directory / f"{name}.json").is_file():
        return None
    config = load_environment(name, directory)
    return account_capture(run_dir / "s3", config.endpoint.data_capture, config.monitoring.baseline)
