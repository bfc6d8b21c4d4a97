"""Checkpoints in ``/opt/ml/checkpoints`` (SageMaker syncs that directory with S3).

A checkpoint is the booster after N rounds, in UBJSON, named ``xgboost-checkpoint.<N>`` (N
zero-padded). They are written atomically after every round, the two newest kept; a job that
restarts (Managed Spot interruption, a retried job) resumes from the newest one that loads.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import xgboost as xgb

PREFIX = "xgboost-checkpoint."
_NAME = re.compile(re.escape(PREFIX) + r"(\d+)$")
KEEP = 2


class CheckpointDir:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _existing(self) -> list[tuple[int, Path]]:
        if not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.iterdir():
            match = _NAME.match(path.name)
            if match and path.is_file():
                found.append((int(match.group(1)), path))
        return sorted(found)

    def latest(self) -> tuple[int, bytes] | None:
        """(rounds, raw model) of the newest checkpoint that loads, or None."""
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
        target = self.directory / f"{PREFIX}{rounds:06d}"
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
