"""The job's configuration files: channels (``inputdataconfig.json``) and hosts
(``resourceconfig.json``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlstack_containers.data import normalize_content_type

CHANNELS = ("train", "validation", "schema")
# The dataset's schema.json (written by `prepare` under the dataset's schema/ prefix): copied
# into the model directory, never read as data; any content type, File or FastFile mode.
SCHEMA_CHANNEL = "schema"
INPUT_MODES = ("File", "FastFile", "Pipe")


class ConfigError(ValueError):
    """A configuration file is missing or does not describe a job this program can run."""


def read_json(path: Path, *, required: bool, default: Any = None) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        if required:
            raise ConfigError(f"missing configuration file {path}") from None
        return default
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None


@dataclass(frozen=True)
class Channel:
    name: str
    content_type: str  # canonical, see mlstack_containers.data
    input_mode: str  # File or Pipe (FastFile reads like File)
    record_wrapper: str | None = None  # "RecordIO": Pipe mode wraps each object in a frame

    @property
    def is_pipe(self) -> bool:
        return self.input_mode == "Pipe"


def parse_input_data_config(raw: Any, source: Path) -> dict[str, Channel]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source} must hold a JSON object of channels")
    channels = {}
    for name, entry in raw.items():
        if name not in CHANNELS:
            raise ConfigError(
                f"unknown channel {name!r} in {source.name}; this algorithm reads "
                "'train' (required), 'validation' and 'schema' (optional)"
            )
        if not isinstance(entry, dict):
            raise ConfigError(f"channel {name!r} in {source.name} must be a JSON object")
        mode = entry.get("TrainingInputMode", "File")
        if mode not in INPUT_MODES:
            raise ConfigError(
                f"channel {name!r} has TrainingInputMode {mode!r}; use one of {INPUT_MODES}"
            )
        if name == SCHEMA_CHANNEL:
            if mode == "Pipe":
                raise ConfigError(
                    f"channel {name!r} must use File or FastFile mode (it holds schema.json, "
                    "which is copied, not streamed)"
                )
            content_type = str(entry.get("ContentType") or "application/json")
        else:
            try:
                content_type = normalize_content_type(entry.get("ContentType"))
            except ValueError as exc:
                raise ConfigError(f"channel {name!r}: {exc}") from None
        wrapper = entry.get("RecordWrapperType")
        channels[name] = Channel(
            name=name,
            content_type=content_type,
            input_mode="Pipe" if mode == "Pipe" else "File",
            record_wrapper=wrapper if wrapper and wrapper != "None" else None,
        )
    if "train" not in channels:
        raise ConfigError(f"the 'train' channel is required; {source.name} declares none")
    return channels


@dataclass(frozen=True)
class Cluster:
    """The hosts of the job, sorted: the first runs the tracker and writes the model."""

    hosts: tuple[str, ...]
    current_host: str

    @property
    def rank(self) -> int:
        return self.hosts.index(self.current_host)

    @property
    def size(self) -> int:
        return len(self.hosts)

    @property
    def is_leader(self) -> bool:
        return self.rank == 0

    @property
    def leader(self) -> str:
        return self.hosts[0]


def parse_resource_config(raw: Any, source: Path) -> Cluster:
    if raw is None:  # a local run without resourceconfig.json: one host
        return Cluster(("localhost",), "localhost")
    if not isinstance(raw, dict):
        raise ConfigError(f"{source} must hold a JSON object")
    hosts = raw.get("hosts")
    current = raw.get("current_host")
    if (
        not isinstance(hosts, list)
        or not hosts
        or not all(isinstance(h, str) and h for h in hosts)
        or len(set(hosts)) != len(hosts)
    ):
        raise ConfigError(f"{source.name}: 'hosts' must be a non-empty list of distinct names")
    if current not in hosts:
        raise ConfigError(f"{source.name}: current_host {current!r} is not one of {hosts}")
    return Cluster(tuple(sorted(hosts)), current)
