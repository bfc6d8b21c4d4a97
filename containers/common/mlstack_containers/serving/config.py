"""The inference server's settings, read once from the environment.

=================================  ==============  ================================================
variable                           default         meaning
=================================  ==============  ================================================
``SAGEMAKER_BIND_TO_PORT``         ``8080``        port to listen on
``MLSTACK_BIND_HOST``              ``0.0.0.0``     interface to listen on (tests: ``127.0.0.1``)
``SAGEMAKER_MODEL_SERVER_WORKERS`` CPUs            worker processes
``MLSTACK_WORKER_CLASS``           ``gthread``     gunicorn worker type, or ``sync``
``MLSTACK_WORKER_THREADS``         ``2``           threads a worker (``/ping`` answered while busy)
``MLSTACK_PREDICT_THREADS``        CPUs / workers  XGBoost threads a prediction
``SAGEMAKER_MODEL_SERVER_TIMEOUT`` ``60``          seconds a request may take before its worker
                                                   is replaced
``MLSTACK_GRACEFUL_TIMEOUT``       ``20``          seconds in-flight requests get after SIGTERM
``SAGEMAKER_MAX_PAYLOAD_IN_MB``    ``6``           body limit (413 above it); ``MaxPayloadInMB``
``MLSTACK_BODY_TIMEOUT``           ``10``          seconds a client may pause while sending a
                                                   body, and may take in all to send a
                                                   request's head, before it gets a 408
``SAGEMAKER_BATCH``                ``false``       batch transform: one CSV line per record
``LOG_LEVEL``                      ``info``        debug, info, warning, error or critical
``MLSTACK_ACCESS_LOG``             ``true``        a log line per request (never for ``/ping``)
``SAGEMAKER_BASE_DIR``             ``/opt/ml``     the model is read from ``<this>/model``
``SAGEMAKER_INFERENCE_OUTPUT``     (unset)         a model with ``schema.json``: the answer's keys,
                                                   e.g. ``predicted_label,probability`` (as
                                                   Autopilot's containers; :mod:`.answers`)
``MLSTACK_UNKNOWN_FIELDS``         ``refuse``      a model with ``schema.json``: a raw record's
                                                   field that is not a feature gets a 400
                                                   (``refuse``) or is dropped (``ignore``)
=================================  ==============  ================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mlstack_containers.paths import SageMakerPaths
from mlstack_containers.serving.answers import parse_keys
from mlstack_containers.serving.records import UNKNOWN_FIELDS

WORKER_CLASSES = ("gthread", "sync")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ConfigError(ValueError):
    """An environment variable holds a value the server cannot use."""


def cpu_count() -> int:
    """CPUs this process may run on (respects affinity masks, e.g. ``docker --cpuset-cpus``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 1) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} must be at least {minimum}")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = (env.get(name) or default).strip().lower()
    if value not in allowed:
        raise ConfigError(f"{name}={value!r} is not one of {', '.join(allowed)}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (true/false)")


@dataclass(frozen=True)
class ServerConfig:
    host: str = "0.0.0.0"
    port: int = 8080
    workers: int = 1
    worker_class: str = "gthread"
    threads: int = 2
    predict_threads: int = 1
    timeout: int = 60
    graceful_timeout: int = 20
    max_payload_mb: int = 6
    body_timeout: int = 10
    batch: bool = False
    log_level: str = "info"
    access_log: bool = True
    model_dir: Path = Path("/opt/ml/model")
    inference_output: tuple[str, ...] | None = None
    unknown_fields: str = "refuse"

    @property
    def max_payload_bytes(self) -> int:
        return self.max_payload_mb * 1024 * 1024

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServerConfig:
        env = os.environ if environ is None else environ
        cpus = cpu_count()
        workers = _int(env, "SAGEMAKER_MODEL_SERVER_WORKERS", cpus)
        log_level = (env.get("LOG_LEVEL") or "info").strip().lower()
        if log_level == "warn":
            log_level = "warning"
        if log_level not in LOG_LEVELS:
            raise ConfigError(f"LOG_LEVEL={log_level!r} is not one of {', '.join(LOG_LEVELS)}")
        return cls(
            host=(env.get("MLSTACK_BIND_HOST") or "0.0.0.0").strip(),
            port=_int(env, "SAGEMAKER_BIND_TO_PORT", 8080),
            workers=workers,
            worker_class=_choice(env, "MLSTACK_WORKER_CLASS", "gthread", WORKER_CLASSES),
            threads=_int(env, "MLSTACK_WORKER_THREADS", 2),
            predict_threads=_int(env, "MLSTACK_PREDICT_THREADS", max(1, cpus // workers)),
            timeout=_int(env, "SAGEMAKER_MODEL_SERVER_TIMEOUT", 60),
            graceful_timeout=_int(env, "MLSTACK_GRACEFUL_TIMEOUT", 20, minimum=0),
            max_payload_mb=_int(env, "SAGEMAKER_MAX_PAYLOAD_IN_MB", 6),
            body_timeout=_int(env, "MLSTACK_BODY_TIMEOUT", 10),
            batch=_bool(env, "SAGEMAKER_BATCH", False),
            log_level=log_level,
            access_log=_bool(env, "MLSTACK_ACCESS_LOG", True),
            model_dir=SageMakerPaths.from_env(env).model_dir,
            inference_output=_keys(env, "SAGEMAKER_INFERENCE_OUTPUT"),
            unknown_fields=_choice(env, "MLSTACK_UNKNOWN_FIELDS", "refuse", UNKNOWN_FIELDS),
        )


def _keys(env: Mapping[str, str], name: str) -> tuple[str, ...] | None:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return None
    try:
        return parse_keys(raw, name)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
