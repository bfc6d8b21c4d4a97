"""Progress of long local steps: a Map's iterations (the seeding shards), training rounds and
transform objects.
On a terminal (a real pseudo-terminal, as tests/cli/terminal.py opens them) the live table's row
says ``k/n iterations`` and ``round k``; elsewhere each iteration done is a plain line."""

from __future__ import annotations

import io
import os
import threading
from typing import Any

from mlstack.local.asl import Interpreter, TaskCall
from mlstack.local.ui import RichReporter, reporter_for
from mlstack.report.history import HistoryRecorder
from tests.cli.terminal import plain

ITEMS = 4
OBJECTS = 3
DEFINITION = {
    "StartAt": "Seed shards",
    "States": {
        "Seed shards": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "MaxConcurrency": 2,
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "INLINE"},
                "StartAt": "Seed shard",
                "States": {
                    "Seed shard": {
                        "Type": "Task",
                        "Resource": "arn:aws:states:::lambda:invoke",
                        "End": True,
                    }
                },
            },
            "ResultPath": None,
            "Next": "Train model",
        },
        "Train model": {
            "Type": "Task",
            "Resource": "arn:aws:states:::sagemaker:createTrainingJob.sync",
            "Next": "Batch transform",
        },
        "Batch transform": {
            "Type": "Task",
            "Resource": "arn:aws:states:::sagemaker:createTransformJob.sync",
            "End": True,
        },
    },
}


def _run(reporter: Any) -> None:
    def handler(call: TaskCall) -> Any:
        if call.state_name == "Train model":
            for k in range(3):  # what `train` prints each round (XGBoost's evaluation line)
                reporter.log("algo-1", f"[{k}]\ttrain-rmse:0.{5 - k}")
        if call.state_name == "Batch transform":  # what the local transform job logs
            for k in range(1, OBJECTS + 1):
                reporter.log("job-t", f"mlstack-transform: {k}/{OBJECTS} objects transformed")
        return {}

    # the run's listener: the history recorder, which passes every event on to the reporter
    recorder = HistoryRecorder(reporter, DEFINITION)
    with reporter:
        result = Interpreter(DEFINITION, handler, listener=recorder).execute(
            {"items": list(range(ITEMS))}
        )
    assert result.status == "SUCCEEDED"


def test_plain_output_says_each_iteration_done_with_the_count() -> None:
    out = io.StringIO()
    reporter = reporter_for(out)
    assert not isinstance(reporter, RichReporter)  # a StringIO is not a terminal
    _run(reporter)
    text = out.getvalue()
    for done in range(1, ITEMS + 1):
        assert f"… Seed shards: {done}/{ITEMS} iterations done" in text
    assert "[2]\ttrain-rmse:0.3" in text  # each round's line
    for done in range(1, OBJECTS + 1):  # each transformed object's line
        assert f"mlstack-transform: {done}/{OBJECTS} objects transformed" in text


def test_a_terminal_shows_iterations_and_the_training_round_in_the_live_table() -> None:
    master, slave = os.openpty()
    screen = bytearray()

    def read() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the slave side closed
                return
            if not chunk:
                return
            screen.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    with os.fdopen(slave, "w", encoding="utf-8") as terminal:
        reporter = reporter_for(terminal)
        assert isinstance(reporter, RichReporter)  # a pty is a terminal
        _run(reporter)
    reader.join(10)
    os.close(master)
    text = plain(screen.decode("utf-8", errors="replace"))
    assert f"{ITEMS}/{ITEMS} iterations" in text
    assert "round 2" in text
    assert f"{OBJECTS}/{OBJECTS} objects" in text
    assert "… Seed shards" not in text  # no plain lines on a terminal: the table says it
