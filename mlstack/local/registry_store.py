"""The local SageMaker account on disk: ``sagemaker/registry.json`` as a typed, versioned document.

The file's keys are written here, one by one, never taken from attribute names, so renaming an
attribute cannot change the file. ``schema_version`` says which layout a file has:

- version 1: the files written before the schema was declared (no ``schema_version`` key). Its
  kinds and records are version 2's (less a transform job's local-only ``LocalRecords``), so it
  is read as version 2 and written back with the key;
  a kind this code does not know is refused (another version of mlstack wrote it, and dropping it
  silently would lose resources);
- version 2: the kinds of :data:`KINDS`, each a JSON object keyed by lower-case name (ARN for
  ``model_packages``, event id for ``pending_events``); whole Describe… responses for every kind
  but ``endpoints``, whose records are :class:`Endpoint`'s (:meth:`Endpoint.to_record`).

A newer version is refused with what to do: run the mlstack that wrote it, or start from an
empty local account (``mlstack local run --clean``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from mlstack.local.account import write_atomically

T = TypeVar("T")

SCHEMA_VERSION = 2
VERSION_KEY = "schema_version"
# Every kind of resource the file keeps, by its key in the file.
KINDS = (
    "models",
    "endpoint_configs",
    "endpoints",
    "training_jobs",
    "tuning_jobs",
    "transform_jobs",
    "processing_jobs",
    "model_package_groups",
    "model_packages",
    "pending_events",
)
_WHAT_TO_DO = (
    "run the version of mlstack that wrote it, or start from an empty local account with "
    "`mlstack local run --clean`"
)


class RegistryError(ValueError):
    """A registry file this version cannot read; the message names the file and what to do."""


class Server(Protocol):
    """A running ``serve`` program (``mlstack.local.sagemaker.ServeProcess``)."""

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] = {},
        timeout: float = 60,
    ) -> tuple[int, dict[str, str], bytes]: ...

    def stop(self, grace: float = 25) -> None: ...


@dataclass
class Endpoint:
    """An endpoint: its record in the registry, and its ``serve`` process while this run
    serves it (``server``, never saved)."""

    name: str
    arn: str
    config_name: str
    status: str
    created_ms: int
    modified_ms: int
    model_name: str = ""
    model_dir: str = ""
    image_uri: str = ""
    variant: str = "AllTraffic"
    failure_reason: str | None = None
    server: Server | None = field(default=None, repr=False, compare=False)

    def to_record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "arn": self.arn,
            "config_name": self.config_name,
            "status": self.status,
            "created_ms": self.created_ms,
            "modified_ms": self.modified_ms,
            "model_name": self.model_name,
            "model_dir": self.model_dir,
            "image_uri": self.image_uri,
            "variant": self.variant,
            "failure_reason": self.failure_reason,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any], where: str) -> Endpoint:
        missing = [
            k
            for k in ("name", "arn", "config_name", "status", "created_ms", "modified_ms")
            if k not in record
        ]
        if missing:
            raise RegistryError(f"{where} lacks {', '.join(missing)}; {_WHAT_TO_DO}")
        try:
            return cls._of(record)
        except TypeError as err:
            raise RegistryError(f"{where}: {err}; {_WHAT_TO_DO}") from None

    @classmethod
    def _of(cls, record: Mapping[str, Any]) -> Endpoint:
        failure = record.get("failure_reason")
        if failure is not None and not isinstance(failure, str):
            raise TypeError(f"failure_reason {failure!r} is not a string")
        return cls(
            name=_typed(record, "name", str),
            arn=_typed(record, "arn", str),
            config_name=_typed(record, "config_name", str),
            status=_typed(record, "status", str),
            created_ms=_typed(record, "created_ms", int),
            modified_ms=_typed(record, "modified_ms", int),
            model_name=_typed(record, "model_name", str, ""),
            model_dir=_typed(record, "model_dir", str, ""),
            image_uri=_typed(record, "image_uri", str, ""),
            variant=_typed(record, "variant", str, "AllTraffic"),
            failure_reason=failure,
        )


def _typed(record: Mapping[str, Any], key: str, kind: type[T], default: T | None = None) -> T:
    """``record[key]`` if it is a ``kind`` (a bool is no int), else ``default`` when absent."""
    value = record.get(key, default)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise TypeError(f"{key} {value!r} is not {'an' if kind is int else 'a'} {kind.__name__}")
    return value


Descriptions = dict[str, dict[str, Any]]


@dataclass
class Registry:
    """Every SageMaker resource of a local account, by kind (dicts keyed as in the file)."""

    models: Descriptions = field(default_factory=dict)
    endpoint_configs: Descriptions = field(default_factory=dict)
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    # Whole descriptions: a later run of the account can describe them, and their names stay
    # taken.
    training_jobs: Descriptions = field(default_factory=dict)
    tuning_jobs: Descriptions = field(default_factory=dict)
    transform_jobs: Descriptions = field(default_factory=dict)
    processing_jobs: Descriptions = field(default_factory=dict)
    model_package_groups: Descriptions = field(default_factory=dict)
    model_packages: Descriptions = field(default_factory=dict)
    # Events of changes made outside a run (`mlstack local approve`), delivered by the next.
    pending_events: Descriptions = field(default_factory=dict)

    def to_document(self) -> dict[str, Any]:
        """The file's content (version :data:`SCHEMA_VERSION`)."""
        return {
            VERSION_KEY: SCHEMA_VERSION,
            "models": self.models,
            "endpoint_configs": self.endpoint_configs,
            "endpoints": {k: e.to_record() for k, e in self.endpoints.items()},
            "training_jobs": self.training_jobs,
            "tuning_jobs": self.tuning_jobs,
            "transform_jobs": self.transform_jobs,
            "processing_jobs": self.processing_jobs,
            "model_package_groups": self.model_package_groups,
            "model_packages": self.model_packages,
            "pending_events": self.pending_events,
        }

    @classmethod
    def from_document(cls, document: Any, where: str) -> Registry:
        """Read a document of any version this code knows (older ones migrated), or raise
        RegistryError saying what is wrong and what to do."""
        if not isinstance(document, dict):
            raise RegistryError(f"{where} is not a SageMaker registry (not a JSON object)")
        document = _migrate(dict(document), where)
        kinds: dict[str, Descriptions] = {}
        for kind in KINDS:
            entries = document.get(kind, {})
            if not isinstance(entries, dict) or not all(
                isinstance(v, dict) for v in entries.values()
            ):
                raise RegistryError(
                    f"{where}: {kind!r} must be an object of objects by name; {_WHAT_TO_DO}"
                )
            kinds[kind] = entries
        endpoints = {
            key: Endpoint.from_record(record, f"{where}: endpoint {key!r}")
            for key, record in kinds.pop("endpoints").items()
        }
        return cls(endpoints=endpoints, **kinds)


def _migrate(document: dict[str, Any], where: str) -> dict[str, Any]:
    """The document as version :data:`SCHEMA_VERSION` lays it out."""
    version = document.pop(VERSION_KEY, 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise RegistryError(f"{where}: {VERSION_KEY} {version!r} is not a version; {_WHAT_TO_DO}")
    if version > SCHEMA_VERSION:
        raise RegistryError(
            f"{where} was written by a newer mlstack (registry schema {version}; this one reads "
            f"up to {SCHEMA_VERSION}): upgrade mlstack, or start from an empty local account "
            "with `mlstack local run --clean`"
        )
    unknown = sorted(set(document) - set(KINDS))
    if unknown:
        raise RegistryError(
            f"{where} (registry schema {version}) holds {', '.join(map(repr, unknown))}, which "
            f"this version of mlstack does not know (it knows {', '.join(KINDS)}): "
            f"{_WHAT_TO_DO}"
        )
    if version == 1:
        # Version 1 has version 2's kinds and records, but for the local-only LocalRecords count
        # of a transform job, which no DescribeTransformJob answer has (botocore's sagemaker model).
        jobs = document.get("transform_jobs")
        for job in jobs.values() if isinstance(jobs, dict) else ():
            if isinstance(job, dict):
                job.pop("LocalRecords", None)
    return document


def load(path: Path) -> Registry:
    """The registry saved at ``path`` (an empty one when there is no file)."""
    if not path.is_file():
        return Registry()
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise RegistryError(
            f"{path} is not a SageMaker registry ({err}); start from an empty local account "
            "with --clean"
        ) from None
    return Registry.from_document(document, str(path))


class RegistryStore:
    """A run's registry and the file it is saved to after every change."""

    def __init__(self, path: Path, registry: Registry, lock: threading.RLock) -> None:
        self.path = path
        self.registry = registry
        self.lock = lock

    def save(self) -> None:
        with self.lock:
            # Jobs running in other threads add keys to their descriptions: the C encoder
            # (no indent) reads each dict's items in one step, so it never sees one change.
            text = json.dumps(self.registry.to_document(), default=str)
            write_atomically(self.path, json.dumps(json.loads(text), indent=2))
