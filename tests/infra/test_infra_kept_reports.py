"""cdk-nag's packs with each stack's report kept between synths (mlstack/kept_reports.py).

The expected findings are the upstream pack's own: ``AwsSolutionsChecks`` registered itself and
walking the whole app, on the same stacks. A kept report is marked (its descriptions rewritten) so
that a synth which reads it says so; a synth that must run the pack again does not.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import Acknowledgment, App, Stack, Validations
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from cdk_nag import AwsSolutionsChecks

from mlstack import kept_reports
from mlstack.app import validation_failures
from mlstack.kept_reports import KeptNagPack
from tests.infra.conftest import new_app

MARK = "from the kept report"
# AwsSolutions rules a plain queue breaks (cdk-nag's RULES.md): SQS3 no dead-letter queue,
# SQS4 no policy requiring SSL.
QUEUE_RULES = {"AwsSolutions-SQS3", "AwsSolutions-SQS4"}


def synth(
    outdir: Path,
    plugin: Any,
    *,
    second_queue: bool = False,
    acknowledge_on: str | None = None,
) -> Path:
    """Two stacks that break AwsSolutions rules (a bucket without access logs, queues without
    a dead-letter queue), synthesized with ``plugin`` alone (a function of the app); the
    assembly's directory. ``acknowledge_on``: acknowledge SQS3 on the queue ("queue") or on the
    whole app ("app")."""
    app = new_app(outdir=str(outdir))
    buckets, queues = Stack(app, "Buckets"), Stack(app, "Queues")
    s3.Bucket(buckets, "Bucket")
    queue = sqs.Queue(queues, "Queue")
    if second_queue:
        sqs.Queue(queues, "Second")
    if acknowledge_on is not None:
        target = {"queue": queue, "app": app}[acknowledge_on]
        Validations.of(target).acknowledge(
            Acknowledgment(id="AwsSolutions-SQS3", reason="a test's acknowledgement")
        )
    Validations.of(app).add_plugins(plugin(app))
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    return outdir


def findings(outdir: Path) -> list[tuple[str, str]]:
    """(rule, construct path) of every AwsSolutions finding in the assembly's report."""
    report = json.loads((outdir / "validation-report.json").read_text())
    (pack,) = [p for p in report["pluginReports"] if p["pluginName"] == "AwsSolutions"]
    return sorted(
        (violation["ruleName"], construct["constructPath"])
        for violation in pack["violations"]
        for construct in violation["violatingConstructs"]
    )


def kept_pack(cache: Path) -> Any:
    return lambda app: KeptNagPack(AwsSolutionsChecks(app), cache_dir=cache)


def mark(cache: Path) -> None:
    """Rewrite every kept report's descriptions, so a synth that reads one shows it."""
    for kept in cache.glob("*.json"):
        report = json.loads(kept.read_text())
        for violation in report["violations"]:
            violation["description"] = MARK
        kept.write_text(json.dumps(report))


def read_kept(outdir: Path) -> set[str]:
    """The construct paths whose findings came from a kept report."""
    report = json.loads((outdir / "validation-report.json").read_text())
    (pack,) = [p for p in report["pluginReports"] if p["pluginName"] == "AwsSolutions"]
    return {
        construct["constructPath"]
        for violation in pack["violations"]
        if violation["description"] == MARK
        for construct in violation["violatingConstructs"]
    }


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synth(tmp_path_factory.mktemp("upstream"), AwsSolutionsChecks)


@pytest.fixture()
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def test_the_kept_pack_reports_what_the_pack_reports_on_the_whole_app(
    upstream: Path, tmp_path: Path, cache: Path
) -> None:
    expected = findings(upstream)
    assert {rule for rule, _ in expected} >= QUEUE_RULES | {"AwsSolutions-S1"}, expected
    first = synth(tmp_path / "1", kept_pack(cache))
    assert findings(first) == expected
    assert validation_failures(first) == validation_failures(upstream)
    # One kept report per stack.
    assert len(list(cache.glob("*.json"))) == 2


def test_a_second_synth_reads_the_kept_reports_and_still_fails(
    upstream: Path, tmp_path: Path, cache: Path
) -> None:
    synth(tmp_path / "1", kept_pack(cache))
    mark(cache)
    second = synth(tmp_path / "2", kept_pack(cache))
    assert read_kept(second) == {path for _, path in findings(upstream)}
    assert findings(second) == findings(upstream)
    assert validation_failures(second) == validation_failures(upstream) != []


def test_a_changed_template_runs_the_pack_on_that_stack_only(tmp_path: Path, cache: Path) -> None:
    synth(tmp_path / "1", kept_pack(cache))
    mark(cache)
    changed = synth(tmp_path / "2", kept_pack(cache), second_queue=True)
    # The buckets' stack is unchanged: its report is the kept one; the queues' stack ran again.
    assert read_kept(changed) == {"Buckets/Bucket/Resource"}
    assert ("AwsSolutions-SQS3", "Queues/Second/Resource") in findings(changed)


@pytest.mark.parametrize("on", ["queue", "app"])
def test_a_removed_acknowledgement_runs_the_pack_again(
    tmp_path: Path, cache: Path, on: str
) -> None:
    acknowledged = synth(tmp_path / "1", kept_pack(cache), acknowledge_on=on)
    assert ("AwsSolutions-SQS3", "Queues/Queue/Resource") not in findings(acknowledged)
    # Without the acknowledgement the finding is back: the kept report (which had left it out)
    # is not read.
    plain = synth(tmp_path / "2", kept_pack(cache))
    assert ("AwsSolutions-SQS3", "Queues/Queue/Resource") in findings(plain)
    assert "AwsSolutions-SQS3 at Queues/Queue/Resource" in " ".join(validation_failures(plain))


def test_another_cdk_nag_package_runs_the_pack_again(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synth(tmp_path / "1", kept_pack(cache))
    mark(cache)
    monkeypatch.setattr(kept_reports, "_cdk_nag_digest", lambda: "another cdk-nag release")
    again = synth(tmp_path / "2", kept_pack(cache))
    assert read_kept(again) == set()
    assert len(list(cache.glob("*.json"))) == 4


def test_without_a_cache_the_pack_walks_the_whole_app(upstream: Path, tmp_path: Path) -> None:
    plain = synth(tmp_path, lambda app: KeptNagPack(AwsSolutionsChecks(app), cache_dir=None))
    assert findings(plain) == findings(upstream)


def test_the_kept_pack_is_named_as_the_pack(tmp_path: Path) -> None:
    # Its name, version and rule IDs are the pack's: the CDK writes them into every template's
    # analytics metadata, and acknowledgements are matched by the plugin's name.
    app = App()
    pack = AwsSolutionsChecks(app)
    kept = KeptNagPack(pack, cache_dir=tmp_path)
    assert (kept.name, kept.version, kept.rule_ids) == (pack.name, pack.version, pack.rule_ids)
    assert kept.name == "AwsSolutions"  # the pack's name in the upstream report above
