"""Every CLI test runs with fake AWS settings; none reaches AWS."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fake_aws import use_fake_aws


@pytest.fixture(autouse=True)
def fake_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    use_fake_aws(monkeypatch)
    yield
