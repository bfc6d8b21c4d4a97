"""The order `make test`'s two workers take the test files in: slowest first.

`make test` runs ``-n 2 --dist loadfile --no-loadscope-reorder``: a worker takes a whole file at
a time, in collection order. Were a file of several minutes taken last, one worker would run it
alone while the other idles (longest-processing-time-first scheduling avoids that). So each
file's time (setup, call and teardown of its tests) is kept in pytest's cache after every
parallel run, and the next collection puts the files with the most time first; a file never
timed keeps its place after them. A clone without a cache starts from SEED_SECONDS.
"""

from __future__ import annotations

import collections
from typing import Any

import pytest

CACHE_KEY = "mlstack/file-seconds"
# Per-file seconds of a `make test` on main (2026-12-07, the 2-core machine at load 8-12, the
# files of its --durations=80 with 12 s or more): the order of a first run, until the cache
# holds this checkout's own times.
SEED_SECONDS = {
    "tests/iam/test_iam_proof.py": 310.0,
    "tests/local/test_local_terminal.py": 176.0,
    "tests/local/test_local_your_data.py": 169.0,
    "tests/local/test_local_account.py": 148.0,
    "tests/local/test_local_monitor.py": 128.0,
    "tests/training/test_training_checkpoints.py": 99.0,
    "tests/local/test_local_tuning_checkpoints.py": 95.0,
    "tests/infra/test_infra_cli.py": 85.0,
    "tests/local/test_local_gateway.py": 75.0,
    "tests/training/test_training_formats.py": 71.0,
    "tests/local/test_local_serve_terminal.py": 68.0,
    "tests/local/test_local_run.py": 65.0,
    "tests/serving/test_serving_from_run.py": 63.0,
    "tests/local/test_local_ab.py": 62.0,
    "tests/training/test_training_monitor.py": 58.0,
    "tests/local/test_local_multihost.py": 52.0,
    "tests/local/test_local_duplicate_release.py": 50.0,
    "tests/local/test_local_lifecycle.py": 48.0,
    "tests/serving/test_serving_properties.py": 45.0,
    "tests/training/test_training_evaluate.py": 41.0,
    "tests/training/test_training_problem_defaults.py": 40.0,
    "tests/infra/test_infra_security.py": 40.0,
    "tests/training/test_training_prepare_train_evaluate.py": 38.0,
    "tests/training/test_training_pipe.py": 37.0,
    "tests/serving/test_serving_stress.py": 35.0,
    "tests/packaging/test_packaging_wheel.py": 34.0,
    "tests/local/test_local_tuning.py": 29.0,
    "tests/local/test_local_differential.py": 25.0,
    "tests/serving/test_serving_transform_records.py": 24.0,
    "tests/seed/test_seed_upload.py": 24.0,
    "tests/training/test_training_distributed.py": 23.0,
    "tests/serving/test_serving_fuzz.py": 20.0,
    "tests/serving/test_serving_sdk.py": 20.0,
    "tests/training/test_training_model_permissions.py": 15.0,
    "tests/local/test_local_endpoints.py": 14.0,
    "tests/infra/test_infra_evaluation.py": 13.0,
    "tests/local/test_local_map.py": 13.0,
    "tests/infra/test_infra_retrain_on_drift.py": 13.0,
    "tests/cli/test_cli_make.py": 13.0,
}

_seconds: collections.Counter[str] = collections.Counter()


def _file(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    cache = getattr(config, "cache", None)
    known: dict[str, float] = (cache.get(CACHE_KEY, None) if cache else None) or SEED_SECONDS
    # Both workers collect, and must agree on the order: it depends only on the cache's file
    # (written by the controller when a run ends) and the collection.
    first_seen = {f: i for i, f in reversed(list(enumerate(_file(i.nodeid) for i in items)))}
    items.sort(key=lambda i: (-known.get(_file(i.nodeid), 0.0), first_seen[_file(i.nodeid)]))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _seconds[_file(report.nodeid)] += report.duration


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config: Any = session.config
    # Only the controller of a parallel run (not a worker, not a one-process run of a few
    # files, whose times would be partial) keeps what it timed.
    if hasattr(config, "workerinput") or config.getoption("dist", "no") == "no":
        return
    cache = getattr(config, "cache", None)
    if cache is None or not _seconds:
        return
    known = dict(cache.get(CACHE_KEY, None) or {})
    known.update({f: round(s, 1) for f, s in _seconds.items()})
    cache.set(CACHE_KEY, known)
