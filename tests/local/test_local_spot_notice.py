"""`--interrupt-training-after` that never fires (the job ended first) says so, in a line the
run shows without --verbose, instead of nothing."""

from __future__ import annotations

from pathlib import Path

from mlstack.local.s3 import EmbeddedS3
from mlstack.local.ui import interesting
from tests.local.test_local_spot import ROUNDS, _sagemaker, job, s3  # noqa: F401 (fixture)


def test_a_spot_interruption_later_than_the_job_says_it_was_not_sent(
    s3: EmbeddedS3,  # noqa: F811
    tmp_path: Path,
) -> None:
    # The stand-in train program runs ROUNDS rounds of 0.05 s: it ends long before 600 s.
    late = 600.0
    assert late > ROUNDS * 0.05
    lines: list[tuple[str, str]] = []
    sagemaker = _sagemaker(s3, tmp_path, interrupt=late)
    sagemaker.log = lambda source, line: lines.append((source, line))
    desc = sagemaker.create_training_job(job("spot-late"))
    assert desc["TrainingJobStatus"] == "Completed"
    assert "SecondaryStatusTransitions" not in desc or not [
        t for t in desc["SecondaryStatusTransitions"] if t["Status"] == "Interrupted"
    ]
    notices = [(s, line) for s, line in lines if "not sent" in line]
    assert len(notices) == 1 and "600 s" in notices[0][1]
    assert interesting(*notices[0])  # shown without --verbose
