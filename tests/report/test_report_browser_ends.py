"""The test browser (tests/browser.py) ends all of Chromium before removing its profile.

CI failed once removing the profile (``OSError: [Errno 39] Directory not empty: 'Default'``): the
browser's children outlived its main process for a moment and wrote the profile meanwhile.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.browser import Browser, group_members


def test_every_chromium_process_has_ended_before_the_profile_is_removed() -> None:
    with Browser() as browser:
        pgid = browser.process.pid
        children = [pid for pid in group_members(pgid) if pid != pgid]
        assert children, "chromium's zygotes and services run in the browser's own group"
        # a child that will not end with its parent: a stopped process ignores SIGTERM's effects
        os.kill(children[0], signal.SIGSTOP)
        profile = Path(browser.profile.name)
        assert profile.is_dir()
    assert group_members(pgid) == []
    assert not profile.exists()
