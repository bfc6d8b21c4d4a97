"""tests/programs.py runs a container program as ``subprocess.run`` runs its script: the same
exit status, stdout, stderr and files, and a timeout that ends the program as
``subprocess.run``'s does (``TimeoutExpired``, the process killed). The expected values are
what ``subprocess.run`` gives for the real script, run beside it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import programs
from tests.training.conftest import CSV_CHANNEL, REFERENCE_HYPERPARAMETERS, TRAIN, Job


def _both(job: Job, args: list[str]) -> tuple[tuple[object, ...], tuple[object, ...]]:
    """What the script gives run for real, then through the program server: exit status,
    stdout, stderr and the failure file."""
    results = []
    for runner in ("subprocess", "programs"):
        (job.base / "output" / "failure").unlink(missing_ok=True)
        if runner == "subprocess":
            done = subprocess.run(
                [str(TRAIN), *args], env=job.env(), capture_output=True, text=True, check=False
            )
        else:
            done = programs.run(TRAIN, args, env=job.env())
        # Durations ("... in 0.01s") are the one thing two runs may print differently.
        stdout = re.sub(r"\b\d+\.\d+s\b", "<seconds>", done.stdout)
        results.append((done.returncode, stdout.splitlines(), done.stderr, job.failure))
    return results[0], results[1]


@pytest.mark.parametrize(
    ("args", "hyperparameters", "code"),
    [
        ([], {**REFERENCE_HYPERPARAMETERS, "max_dept": 3}, 1),  # a failure the program reports
        (["serve"], REFERENCE_HYPERPARAMETERS, 2),  # its usage error
        (["train"], REFERENCE_HYPERPARAMETERS, 0),  # a model trained
    ],
    ids=["failure", "usage", "trained"],
)
def test_a_program_run_through_the_server_gives_what_its_script_gives(
    job: Job, args: list[str], hyperparameters: dict[str, object], code: int
) -> None:
    job.hyperparameters(**hyperparameters)
    job.channels(train=CSV_CHANNEL)
    job.file("train", "train.csv", b"1,1,2\n0,3,4\n1,5,6\n0,7,8\n")
    real, served = _both(job, args)
    assert real[0] == code, real
    # Training logs carry no timestamps or pids: the two runs print the same lines.
    assert served == real


def test_a_timeout_kills_the_program_as_subprocess_run_does(job: Job, tmp_path: Path) -> None:
    # Pipe mode opens its channel's FIFO, which nobody writes: the program waits forever.
    job.hyperparameters(**REFERENCE_HYPERPARAMETERS)
    job.channels(train={**CSV_CHANNEL, "TrainingInputMode": "Pipe"})
    os.mkfifo(job.base / "input" / "data" / "train_0")
    with pytest.raises(subprocess.TimeoutExpired) as raised:
        programs.run(TRAIN, env=job.env(), timeout=3)
    assert raised.value.cmd == [str(TRAIN)]
    server = programs.current()
    assert server is not None
    children = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text()
    assert children.split() == []  # killed and reaped
    # The server goes on serving.
    (job.base / "input" / "data" / "train_0").unlink()
    job.channels(train=CSV_CHANNEL)
    job.file("train", "train.csv", b"1,1,2\n0,3,4\n")
    assert programs.run(TRAIN, env=job.env(), timeout=120).returncode == 0


def _blocked_in_pipe_mode(job: Job, python: str) -> tuple[subprocess.Popen[str], int]:
    """The train script started as local mode starts it (``MLSTACK_PYTHON``, a session of its
    own), in Pipe mode, reading its FIFO: its SIGTERM handler is set. Returns the process and
    the FIFO's writing end (kept open, nothing written)."""
    job.hyperparameters(**REFERENCE_HYPERPARAMETERS)
    job.channels(train={**CSV_CHANNEL, "TrainingInputMode": "Pipe"})
    fifo = job.base / "input" / "data" / "train_0"
    os.mkfifo(fifo)
    proc = subprocess.Popen(
        [str(TRAIN)],
        env={**job.env(), "MLSTACK_PYTHON": python},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while True:  # opening the writing end fails (ENXIO) until the program opens its end
        try:
            return proc, os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout
            time.sleep(0.05)


def test_the_shim_passes_sigterm_on_and_ends_as_the_program_ends(job: Job) -> None:
    real = sys.executable
    with programs.forked_python() as shim:
        ends = []
        for python in (real, str(shim)):
            (job.base / "input" / "data" / "train_0").unlink(missing_ok=True)
            proc, writer = _blocked_in_pipe_mode(job, python)
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=60)
            os.close(writer)
            ends.append((proc.returncode, out.splitlines()[-1]))
    # The runner's answer to SIGTERM before training: "nothing to save", exit 0.
    assert ends[0] == (0, "mlstack-train: SIGTERM before training started: nothing to save")
    assert ends[1] == ends[0]


def test_a_killed_shim_takes_its_program_with_it(job: Job) -> None:
    with programs.forked_python() as shim:
        server = programs.current_shim()
        assert server is not None
        proc, writer = _blocked_in_pipe_mode(job, str(shim))
        children = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children")
        assert len(children.read_text().split()) == 1  # the program, forked by the server
        os.killpg(proc.pid, signal.SIGKILL)  # as local mode ends a job's group
        assert proc.wait(10) == -signal.SIGKILL
        deadline = time.monotonic() + 10
        while children.read_text().split() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.close(writer)
        assert children.read_text().split() == []
