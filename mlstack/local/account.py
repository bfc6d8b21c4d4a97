"""The persistent local account of one environment, shared by its successive local runs.

``<workdir>/accounts/<env>/`` holds what outlives a run in AWS: ``s3/<bucket>/<key>`` (every
object of the embedded S3, with ``s3/.index.json`` keeping each one's ETag and content type),
``sagemaker/registry.json`` (every SageMaker resource: models, endpoint configs, endpoints, jobs,
the model registry; a typed, versioned file: :mod:`mlstack.local.registry_store`),
``endpoints/<endpoint>/...`` (the model directories the endpoints serve) and ``account.json`` (the
executions run in it, for Step Functions' rule that an execution name is used once). Each
environment has its own account, so two environments never share state; ``clean`` empties one
(``mlstack local run --clean``).

One run at a time: :meth:`LocalAccount.lock` holds an exclusive ``flock`` on ``run.lock``, which
names the holder (pid, run, start time); a second run of the environment is refused with that
name. The operating system drops the lock when its holder ends, so a killed run leaves none.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlstack import rules

ACCOUNTS = "accounts"
REGISTRY = Path("sagemaker") / "registry.json"  # LocalSageMaker's, under a run or an account


class AccountInUse(RuntimeError):
    """Another run holds the environment's local account."""


@dataclass(frozen=True)
class LocalAccount:
    """One environment's account directory (nothing is created until a run takes the lock)."""

    environment: str
    directory: Path

    @classmethod
    def of(cls, workdir: Path, environment: str) -> LocalAccount:
        if not rules.matches(rules.ENV_NAME_PATTERN, environment):
            raise ValueError(
                f"environment {environment!r}: the name must match {rules.ENV_NAME_PATTERN}"
            )
        return cls(environment, (workdir / ACCOUNTS / environment).resolve())

    @property
    def s3_dir(self) -> Path:
        return self.directory / "s3"

    @property
    def registry_path(self) -> Path:
        return self.directory / REGISTRY

    @property
    def lock_path(self) -> Path:
        return self.directory / "run.lock"

    @property
    def record_path(self) -> Path:
        return self.directory / "account.json"

    @contextmanager
    def lock(self, run_name: str) -> Iterator[None]:
        """Hold the account for one run; refuse (AccountInUse) while another run holds it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        handle = self.lock_path.open("a+", encoding="utf-8")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "(a run that has not written its name yet)"
                raise AccountInUse(
                    f"the local account of environment {self.environment!r} ({self.directory}) "
                    f"is in use by another local run: {holder}. Wait for that run to end "
                    "(the lock goes with its process), or run with another --workdir."
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(
                f"pid {os.getpid()}, run {run_name}, started {datetime.now(UTC).isoformat()}\n"
            )
            handle.flush()
            try:
                yield
            finally:
                handle.seek(0)
                handle.truncate()
                fcntl.flock(handle, fcntl.LOCK_UN)
        finally:
            handle.close()

    def clean(self) -> None:
        """Empty the account (call it holding the lock, which stays)."""
        if not self.directory.is_dir():
            return
        for path in self.directory.iterdir():
            if path == self.lock_path:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()

    def executions(self) -> list[dict[str, Any]]:
        """The executions run in this account, oldest first."""
        if not self.record_path.is_file():
            return []
        executions: list[dict[str, Any]] = json.loads(
            self.record_path.read_text(encoding="utf-8")
        ).get("executions", [])
        return executions

    def check_new_execution(self, name: str) -> None:
        """Step Functions refuses an execution name already used on the state machine
        (``ExecutionAlreadyExists``); the job and model names derive from it, so they would
        collide with the earlier run's."""
        for execution in self.executions():
            if execution.get("name") == name:
                raise ValueError(
                    f"execution name {name!r} was already used in the local account of "
                    f"{self.environment} (run dir {execution.get('run_dir')}): Step Functions "
                    "refuses it (ExecutionAlreadyExists) and the job and model names made from "
                    "it are taken. Choose another --name, or start from an empty account with "
                    "--clean."
                )

    def record_execution(self, name: str, run_dir: Path, status: str, started: str) -> None:
        executions = [e for e in self.executions() if e.get("name") != name]
        executions.append(
            {"name": name, "status": status, "run_dir": str(run_dir), "started": started}
        )
        record = {"environment": self.environment, "executions": executions}
        write_atomically(self.record_path, json.dumps(record, indent=2))


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so a reader sees the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
