"""Saving and loading the model artefact shared by the training and inference images.

Layout of a model directory (``/opt/ml/model`` in both images)::

    xgboost-model          the booster, in XGBoost's UBJSON format (same file name as SageMaker's
                           built-in XGBoost, so a model from either loads in the other)
    mlstack-model.json     metadata: feature count, objective, best iteration, versions
    schema.json            the dataset's schema (features, categories, classes), when the
                           job had a ``schema`` channel: see ``mlstack_containers.schema``

The booster file is written with ``Booster.save_raw("ubj")``: an explicit format instead of one
guessed from the file name. ``load_model`` also accepts the JSON format and a directory without
metadata (a model trained elsewhere); the metadata is then read off the booster itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import xgboost as xgb

from mlstack_containers.schema import SCHEMA_FILE

MODEL_FILENAME = "xgboost-model"
# World-readable: SageMaker tars /opt/ml/model into model.tar.gz keeping these modes, and the
# inference image reads the unpacked files as its own unprivileged user (uid 10001).
FILE_MODE = 0o644
DIR_MODE = 0o755
METADATA_FILENAME = "mlstack-model.json"
METADATA_SCHEMA_VERSION = 1


class ModelError(ValueError):
    """The model directory is missing, unreadable or inconsistent."""


@dataclass(frozen=True)
class ModelMetadata:
    """What the server needs to validate requests without inspecting the booster."""

    num_features: int
    objective: str
    num_class: int = 0  # 0 unless the objective is multi:softmax / multi:softprob
    best_iteration: int | None = None  # set when early stopping chose an iteration
    num_boosted_rounds: int = 0
    feature_names: list[str] | None = None
    xgboost_version: str = xgb.__version__
    model_format: str = "ubj"
    schema_version: int = METADATA_SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelMetadata:
        try:
            num_features = int(data["num_features"])
            objective = str(data["objective"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{METADATA_FILENAME}: missing or invalid field ({exc!r})") from None
        best = data.get("best_iteration")
        return cls(
            num_features=num_features,
            objective=objective,
            num_class=int(data.get("num_class") or 0),
            best_iteration=None if best is None else int(best),
            num_boosted_rounds=int(data.get("num_boosted_rounds") or 0),
            feature_names=data.get("feature_names"),
            xgboost_version=str(data.get("xgboost_version", "unknown")),
            model_format=str(data.get("model_format", "ubj")),
            schema_version=int(data.get("schema_version", METADATA_SCHEMA_VERSION)),
            extra=dict(data.get("extra") or {}),
        )


@dataclass(frozen=True)
class LoadedModel:
    booster: xgb.Booster
    metadata: ModelMetadata


def booster_objective(booster: xgb.Booster) -> tuple[str, int]:
    """The booster's objective name and class count, read from its saved configuration."""
    config = json.loads(booster.save_config())
    learner = config.get("learner", {})
    objective = learner.get("objective", {}).get("name", "reg:squarederror")
    num_class = int(learner.get("learner_model_param", {}).get("num_class", "0") or 0)
    return objective, num_class


def metadata_for(booster: xgb.Booster, **extra: Any) -> ModelMetadata:
    """Metadata describing ``booster``; keyword arguments land in ``extra``."""
    objective, num_class = booster_objective(booster)
    best = booster.attr("best_iteration")
    return ModelMetadata(
        num_features=booster.num_features(),
        objective=objective,
        num_class=num_class,
        best_iteration=None if best is None else int(best),
        num_boosted_rounds=booster.num_boosted_rounds(),
        feature_names=list(booster.feature_names) if booster.feature_names else None,
        extra=dict(extra),
    )


def _atomic_write(path: Path, data: bytes) -> None:
    # A reader (or a SageMaker upload after SIGTERM) never sees a half-written file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            os.fchmod(fh.fileno(), FILE_MODE)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_model(
    booster: xgb.Booster, model_dir: str | os.PathLike[str], **extra: Any
) -> ModelMetadata:
    """Write ``booster`` and its metadata into ``model_dir`` (created if missing)."""
    directory = Path(model_dir)
    directory.mkdir(parents=True, exist_ok=True)
    # Also when /opt/ml/model existed with a stricter mode (another user's: left as it is).
    with contextlib.suppress(PermissionError):
        directory.chmod(DIR_MODE)
    metadata = metadata_for(booster, **extra)
    _atomic_write(directory / MODEL_FILENAME, bytes(booster.save_raw("ubj")))
    payload = json.dumps(metadata.to_dict(), indent=2, sort_keys=True) + "\n"
    _atomic_write(directory / METADATA_FILENAME, payload.encode())
    return metadata


def save_schema(document: bytes, model_dir: str | os.PathLike[str]) -> Path:
    """Write the dataset's ``schema.json`` (already validated, copied byte for byte) beside the
    booster, with the model files' mode: ``model.tar.gz`` then describes its own features."""
    target = Path(model_dir) / SCHEMA_FILE
    _atomic_write(target, document)
    return target


def load_booster(path: str | os.PathLike[str]) -> xgb.Booster:
    """Load a booster file in UBJSON or JSON format."""
    file = Path(path)
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"model file not found: {file}") from None
    except OSError as exc:
        raise ModelError(f"cannot read model file {file}: {exc.strerror}") from None
    booster = xgb.Booster()
    try:
        booster.load_model(bytearray(raw))
    except xgb.core.XGBoostError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unknown error"
        raise ModelError(f"{file} is not an XGBoost model: {first}") from None
    return booster


def check_readable(model_dir: str | os.PathLike[str]) -> None:
    """Raise :class:`ModelError` naming the file and the reason when this process cannot
    read the model directory or a file :func:`load_model` reads (no XGBoost call)."""
    directory = Path(model_dir)
    if not directory.is_dir():
        raise ModelError(f"model directory not found: {directory}")
    if not os.access(directory, os.R_OK | os.X_OK):
        raise ModelError(f"cannot read the model directory {directory}: Permission denied")
    for name in (MODEL_FILENAME, METADATA_FILENAME):
        file = directory / name
        if name == METADATA_FILENAME and not file.exists():
            continue
        try:
            with file.open("rb") as fh:
                fh.read(1)
        except FileNotFoundError:
            raise ModelError(f"model file not found: {file}") from None
        except OSError as exc:
            raise ModelError(f"cannot read model file {file}: {exc.strerror}") from None


def load_model(model_dir: str | os.PathLike[str]) -> LoadedModel:
    """Load the booster and metadata from ``model_dir``.

    Without ``mlstack-model.json`` (a model from SageMaker's built-in XGBoost) the metadata is
    derived from the booster.
    """
    directory = Path(model_dir)
    if not directory.is_dir():
        raise ModelError(f"model directory not found: {directory}")
    booster = load_booster(directory / MODEL_FILENAME)
    meta_file = directory / METADATA_FILENAME
    if not meta_file.exists():
        return LoadedModel(booster, metadata_for(booster))
    try:
        data = json.loads(meta_file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read {meta_file}: {exc}") from None
    if not isinstance(data, dict):
        raise ModelError(f"{meta_file} must hold a JSON object")
    metadata = ModelMetadata.from_dict(data)
    if metadata.num_features != booster.num_features():
        raise ModelError(
            f"{meta_file} says {metadata.num_features} features but the booster has "
            f"{booster.num_features()}"
        )
    return LoadedModel(booster, metadata)
