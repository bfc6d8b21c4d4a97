"""The fast tier (`make test-fast`): a pytest plugin that fails any test which synthesizes an app
or starts a process, so the tier stays fast (no synth, no subprocess) as tests are added to it.

Loaded with ``-p tests.fast_tier``; the Makefile's FAST_TESTS names the tier's test files.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import aws_cdk
import pytest
from aws_cdk.assertions import Template


def _refuse(what: str) -> Any:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(
            f"the fast tier runs no {what}: move this test out of FAST_TESTS (Makefile)"
        )

    return refuse


@pytest.fixture(autouse=True)
def _no_synth_and_no_subprocess(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(subprocess.Popen, "__init__", _refuse("subprocess"))
    for cls in (aws_cdk.App, aws_cdk.Stage):
        monkeypatch.setattr(cls, "synth", _refuse("synth"))
    monkeypatch.setattr(Template, "from_stack", _refuse("synth"))
    yield
