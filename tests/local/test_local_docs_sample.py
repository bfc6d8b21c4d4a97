"""docs/local-mode.md's sample `make run` output is checked against a real run: a first run of
dev in an empty account (the session's `local_run`) goes through exactly the states the sample
shows (the workflow's, then the release's), and its summary has the lines the sample shows.
A new state, or a new line in the summary, fails this test until the sample is regenerated
from a real run."""

from __future__ import annotations

import re
from pathlib import Path

from mlstack.local.runner import RunReport, format_summary

SAMPLE = Path(__file__).resolve().parents[2] / "docs" / "local-mode.md"


def _sample() -> str:
    text = SAMPLE.read_text(encoding="utf-8")
    found = re.search(r"```text\n\$ make run\n(.*?)```", text, re.DOTALL)
    assert found, "docs/local-mode.md has no ```text block starting with `$ make run`"
    return found.group(1)


def test_the_sample_shows_the_states_of_a_real_first_run(local_run: RunReport) -> None:
    # As sets: how often a Map iterates or a wait loops depends on the rows and the machine's
    # speed, and a Map's record follows its iterations' in the history, while the display
    # shows it first; which states run does not change.
    shown = re.findall(r"▶ (.+) \(\w+\)$", _sample(), re.MULTILINE)
    ran = list(local_run.states) + [s for r in local_run.releases for s in r["states"]]
    assert set(shown) == set(ran)


def test_the_sample_summary_has_the_lines_of_a_real_summary(local_run: RunReport) -> None:
    real = [line[:20].strip() for line in format_summary(local_run).splitlines()[1:]]
    sample = _sample()
    summary = sample[sample.index("\nLocal run ") + 1 :].splitlines()[1:]
    shown = [line[:20].strip() for line in summary if line.strip()]
    assert shown == real
