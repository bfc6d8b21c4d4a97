"""The SageMaker container file layout (``/opt/ml``), rooted at ``SAGEMAKER_BASE_DIR``.

SageMaker mounts everything a container reads and writes under ``/opt/ml``. Tests and local runs
point ``SAGEMAKER_BASE_DIR`` at a directory laid out the same way, so the programs run unchanged
on a laptop. Every path the training and inference programs use comes from here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

BASE_DIR_ENV = "SAGEMAKER_BASE_DIR"
DEFAULT_BASE_DIR = "/opt/ml"
# SageMaker keeps the first 1 KB of output/message (a Processing job's ExitMessage) and of
# output/failure (a job's FailureReason).
MESSAGE_LIMIT = 1024


@dataclass(frozen=True)
class SageMakerPaths:
    """Paths inside one ``/opt/ml``-like tree."""

    base: Path

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SageMakerPaths:
        """The layout rooted at ``$SAGEMAKER_BASE_DIR`` (``/opt/ml`` when unset or empty)."""
        env = os.environ if environ is None else environ
        return cls(Path(env.get(BASE_DIR_ENV) or DEFAULT_BASE_DIR))

    # -- input -------------------------------------------------------------------------------
    @property
    def input_dir(self) -> Path:
        return self.base / "input"

    @property
    def config_dir(self) -> Path:
        return self.input_dir / "config"

    @property
    def hyperparameters_file(self) -> Path:
        return self.config_dir / "hyperparameters.json"

    @property
    def input_data_config_file(self) -> Path:
        return self.config_dir / "inputdataconfig.json"

    @property
    def resource_config_file(self) -> Path:
        return self.config_dir / "resourceconfig.json"

    @property
    def data_dir(self) -> Path:
        return self.input_dir / "data"

    def channel_dir(self, channel: str) -> Path:
        """File mode: the directory holding a channel's objects (the S3 key tree is kept)."""
        return self.data_dir / channel

    def channel_fifo(self, channel: str, epoch: int) -> Path:
        """Pipe mode: the FIFO SageMaker opens for one pass (epoch) over a channel."""
        return self.data_dir / f"{channel}_{epoch}"

    # -- output ------------------------------------------------------------------------------
    @property
    def model_dir(self) -> Path:
        """Training writes the model here; SageMaker extracts ``model.tar.gz`` here for serving."""
        return self.base / "model"

    @property
    def output_dir(self) -> Path:
        return self.base / "output"

    @property
    def failure_file(self) -> Path:
        """Its first 1024 characters become the training job's ``FailureReason``."""
        return self.output_dir / "failure"

    def write_output(self, names: Sequence[str], text: str, program: str) -> None:
        """``text``, its first :data:`MESSAGE_LIMIT` characters, into ``output/<name>`` for each
        of ``names`` (``message``, ``failure``); a folder that cannot be written is said on
        stderr (``<program>: cannot write …``), the program's exit status still says how it
        ended."""
        try:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            for name in names:
                (self.output_dir / name).write_text(text[:MESSAGE_LIMIT], "utf-8")
        except OSError as exc:
            print(f"{program}: cannot write {self.output_dir}: {exc}", file=sys.stderr)

    @property
    def output_data_dir(self) -> Path:
        """Extra training artefacts (uploaded to S3 as ``output.tar.gz``)."""
        return self.output_dir / "data"

    @property
    def checkpoints_dir(self) -> Path:
        """SageMaker's default ``CheckpointConfig.LocalPath``, synced with S3 during training."""
        return self.base / "checkpoints"

    @property
    def code_dir(self) -> Path:
        return self.base / "code"
