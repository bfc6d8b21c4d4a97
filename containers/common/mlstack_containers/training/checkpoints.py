"""Checkpoints in ``/opt/ml/checkpoints`` (SageMaker syncs that directory with S3).

A checkpoint is the booster after N rounds, in UBJSON, named
``xgboost-checkpoint.<identity>.<N>`` (N zero-padded). They are written atomically after every
round, the job's two newest kept; a job that restarts (Managed Spot interruption, a retried job)
resumes from its newest one that loads.

The identity is a digest of the job's hyperparameters except ``num_round``: a booster after N
rounds is the same whatever round count the job was headed for, and nothing else. The training
jobs of a tuning job all get the definition's one ``CheckpointConfig.S3Uri`` (the
HyperParameterTrainingJobDefinition API reference has one CheckpointConfig for every job it
launches and does not say the job name is appended), so a prefix may hold the checkpoints of
jobs with other hyperparameters: a job resumes only from checkpoints of its own identity and
leaves the others alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

import xgboost as xgb

PREFIX = "xgboost-checkpoint."
KEEP = 2
# The round count a job runs to is no part of what a checkpoint holds.
NOT_IN_IDENTITY = frozenset({"num_round"})


def identity(hyperparameters: Mapping[str, object]) -> str:
    """The digest of ``hyperparameters`` (hyperparameters.json, string values) a checkpoint
    carries in its name."""
    kept = {str(k): str(v) for k, v in hyperparameters.items() if k not in NOT_IN_IDENTITY}
    canonical = json.dumps(kept, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class CheckpointDir:
    def __init__(self, directory: Path, identity: str) -> None:
        if not re.fullmatch(r"[0-9a-f]{16}", identity):
            raise ValueError(f"checkpoint identity {identity!r}: expected 16 hex digits")
        self.directory = directory
        self.identity = identity
        self._name = re.compile(re.escape(f"{PREFIX}{identity}.") + r"(\d+)$")

    def _existing(self) -> list[tuple[int, Path]]:
        if not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.iterdir():
            match = self._name.match(path.name)
            if match and path.is_file():
                found.append((int(match.group(1)), path))
        return sorted(found)

    def others(self) -> int:
        """How many checkpoints here belong to other jobs (another identity, or unnamed)."""
        if not self.directory.is_dir():
            return 0
        return sum(
            1
            for path in self.directory.iterdir()
            if path.name.startswith(PREFIX) and not self._name.match(path.name)
        )

    def latest(self) -> tuple[int, bytes] | None:
        """(rounds, raw model) of this job's newest checkpoint that loads, or None."""
        for rounds, path in reversed(self._existing()):
            raw = path.read_bytes()
            try:
                booster = xgb.Booster()
                booster.load_model(bytearray(raw))
            except xgb.core.XGBoostError:
                continue  # a truncated upload: fall back to the previous checkpoint
            if booster.num_boosted_rounds() == rounds:
                return rounds, raw
        return None

    def save(self, booster: xgb.Booster) -> Path:
        rounds = booster.num_boosted_rounds()
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.directory / f"{PREFIX}{self.identity}.{rounds:06d}"
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-checkpoint.")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(booster.save_raw("ubj"))
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        for _, old in self._existing()[:-KEEP]:
            old.unlink(missing_ok=True)
        return target
