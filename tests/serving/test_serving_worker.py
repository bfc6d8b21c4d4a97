"""The gthread worker's accept: the worker holding fewer connections takes a new one."""

from __future__ import annotations

import pytest
from gunicorn.workers.gthread import ThreadWorker
from mlstack_containers.serving import server
from mlstack_containers.serving.config import ServerConfig


@pytest.mark.parametrize(("held", "delay"), [(0, None), (1, 0.0002), (3, 0.0006), (50, 0.002)])
def test_accept_waits_in_proportion_to_held_connections(monkeypatch, held, delay):
    sleeps, accepted = [], []
    monkeypatch.setattr(server.time, "sleep", sleeps.append)
    monkeypatch.setattr(ThreadWorker, "accept", lambda self, listener: accepted.append(listener))
    worker = object.__new__(server.BalancedThreadWorker)
    worker.nr_conns = held
    worker.accept("listener")
    assert accepted == ["listener"]
    assert sleeps == ([] if delay is None else [pytest.approx(delay)])


@pytest.mark.parametrize(
    ("worker_class", "want"),
    [("gthread", "mlstack_containers.serving.server.BalancedThreadWorker"), ("sync", "sync")],
)
def test_worker_class_setting(worker_class, want):
    app = server.Server(ServerConfig(worker_class=worker_class))
    assert app.cfg.settings["worker_class"].value == want
    if worker_class == "gthread":
        assert app.cfg.worker_class is server.BalancedThreadWorker
