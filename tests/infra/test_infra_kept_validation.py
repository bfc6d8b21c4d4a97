"""aws-cdk-lib's built-in CloudFormation validation with each template's report kept
(mlstack/kept_validation.py, registered by mlstack.app.new_app).

The expected findings are the built-in plugin's own: a plain ``App`` (aws-cdk-lib 2.275 registers
its "CloudFormation Validate" plugin itself) synthesizing the same stacks. A kept report is marked
(its descriptions rewritten) so that a synth which reads it says so; and the engine's construction
is counted (aws-cdk-lib builds the WASM engine in ``CloudFormationValidatePlugin``'s constructor),
so a synth that builds none shows it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, CloudFormationValidatePlugin, Stack
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs

from mlstack import kept_validation
from mlstack.app import new_app, validation_failures
from tests.infra.conftest import REPO, cdk_context

PLUGIN = "CloudFormation Validate"  # aws-cdk-lib's CloudFormationValidatePlugin.PLUGIN_NAME
MARK = "from the kept report"
# What cfn-lint's rules in aws-cdk-lib's engine say about these stacks (the upstream report, run
# in `upstream` below): F3002 an unknown property, F3034 a queue's VisibilityTimeout above
# SQS's maximum of 43,200 seconds (AWS::SQS::Queue's documentation).
RULES = {"F3002", "F3034"}


def synth(outdir: Path, make_app: Any, *, second_queue: bool = False, fails: bool = True) -> Path:
    """Two stacks the engine reports on (a bucket with an unknown property, a queue with a
    visibility timeout over the maximum), synthesized in ``make_app(outdir)``; the assembly.
    ``fails``: synth fails on the findings (cdk.json's "validate against default rules")."""
    app = make_app(outdir)
    bucket = s3.CfnBucket(Stack(app, "Buckets"), "Bucket")
    bucket.add_property_override("Unknown", 1)
    queues = Stack(app, "Queues")
    sqs.CfnQueue(queues, "Queue", visibility_timeout=999_999)
    if second_queue:
        sqs.Queue(queues, "Second")
    if fails:
        with pytest.raises(RuntimeError, match="ValidationFailed"):
            app.synth()
    else:
        app.synth()
    return outdir


# cdk.json turns this flag on: the plugin's findings are errors. Off (aws-cdk-lib's default), the
# CDK downgrades the errors of the plugin with this name to warnings.
STRICT = "@aws-cdk/core:validateAgainstDefaultRules"


def builtin(outdir: Path, **context: Any) -> App:
    return App(context={**cdk_context(), **context}, outdir=str(outdir))


def kept(cache: Path | str, *, context: Any = None, **kwargs: Any) -> Any:
    context = {**cdk_context(), "policy_cache_dir": str(cache), **(context or {})}
    return lambda outdir: new_app(context=context, outdir=str(outdir), **kwargs)


def report(outdir: Path) -> list[dict[str, Any]]:
    """The CloudFormation Validate plugin's reports in the assembly (none: validation off)."""
    path = outdir / "validation-report.json"
    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    return [p for p in data["pluginReports"] if p["pluginName"] == PLUGIN]


def findings(outdir: Path) -> list[tuple[str, str, str, str]]:
    """(rule, severity, construct path, description) of every finding of the plugin."""
    (plugin,) = report(outdir)
    return sorted(
        (v["ruleName"], v["severity"], c["constructPath"], v["description"])
        for v in plugin["violations"]
        for c in v["violatingConstructs"]
    )


def mark(cache: Path) -> None:
    """Rewrite every kept report's descriptions, so a synth that reads one shows it."""
    for path in cache.glob("cloudformation-validate/*.json"):
        data = json.loads(path.read_text())
        for violation in data.get("violations", []):
            violation["description"] = MARK
        path.write_text(json.dumps(data))


def read_kept(outdir: Path) -> set[str]:
    """The construct paths whose findings came from a kept report."""
    return {path for _, _, path, description in findings(outdir) if description == MARK}


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synth(tmp_path_factory.mktemp("upstream"), builtin)


@pytest.fixture()
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture()
def engines(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Every CloudFormationValidatePlugin (its engine) the kept plugin builds from now on."""
    built: list[object] = []

    def counted() -> CloudFormationValidatePlugin:
        built.append(CloudFormationValidatePlugin())
        return built[-1]  # type: ignore[return-value]

    monkeypatch.setattr(kept_validation, "CloudFormationValidatePlugin", counted)
    kept_validation._engine.cache_clear()
    yield built
    kept_validation._engine.cache_clear()


def test_the_kept_plugin_reports_what_the_builtin_plugin_reports(
    upstream: Path, tmp_path: Path, cache: Path
) -> None:
    expected = findings(upstream)
    assert {rule for rule, *_ in expected} == RULES, expected
    assert {severity for _, severity, *_ in expected} == {"error"}
    assert findings(synth(tmp_path / "1", kept(cache))) == expected
    # One kept report per template, and the plugin's version and rule IDs.
    assert len(list((cache / "cloudformation-validate").glob("*.json"))) == 3
    (plugin,) = report(upstream)
    (ours,) = report(tmp_path / "1")
    assert ours["pluginVersion"] == plugin["pluginVersion"]
    assert validation_failures(tmp_path / "1") == validation_failures(upstream) != []


def test_its_errors_are_warnings_as_the_builtin_plugin_s_without_the_flag(
    tmp_path: Path, cache: Path
) -> None:
    expected = findings(
        synth(tmp_path / "upstream", lambda o: builtin(o, **{STRICT: False}), fails=False)
    )
    assert {severity for _, severity, *_ in expected} == {"warning"}
    ours = synth(tmp_path / "kept", kept(cache, context={STRICT: False}), fails=False)
    assert findings(ours) == expected


def test_a_second_synth_reads_the_kept_reports_and_builds_no_engine(
    upstream: Path, tmp_path: Path, cache: Path, engines: list[object]
) -> None:
    synth(tmp_path / "1", kept(cache))
    assert len(engines) == 1
    (upstream_plugin,) = engines
    mark(cache)
    engines.clear()
    kept_validation._engine.cache_clear()
    second = synth(tmp_path / "2", kept(cache))
    assert engines == []
    assert read_kept(second) == {path for _, _, path, _ in findings(upstream)}
    assert [f[:3] for f in findings(second)] == [f[:3] for f in findings(upstream)]
    # The version and rule IDs the CDK lists in every template's analytics metadata: kept, and
    # aws-cdk-lib's plugin's own.
    plugin = kept_validation.KeptCloudFormationValidation(
        cache_dir=cache / "cloudformation-validate"
    )
    assert plugin.version == upstream_plugin.version  # type: ignore[attr-defined]
    assert plugin.rule_ids == upstream_plugin.rule_ids  # type: ignore[attr-defined]
    assert plugin.rule_ids and engines == []


def test_a_changed_template_is_validated_again(tmp_path: Path, cache: Path) -> None:
    synth(tmp_path / "1", kept(cache))
    mark(cache)
    changed = synth(tmp_path / "2", kept(cache), second_queue=True)
    # The buckets' template is unchanged: its report is the kept one; the queues' ran again.
    assert read_kept(changed) == {"Buckets/Bucket"}
    assert ("F3034", "error", "Queues/Queue") in [f[:3] for f in findings(changed)]


def test_another_aws_cdk_lib_validates_again(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synth(tmp_path / "1", kept(cache))
    mark(cache)
    monkeypatch.setattr(kept_validation, "_aws_cdk_lib_version", lambda: "2.999.0")
    again = synth(tmp_path / "2", kept(cache))
    assert read_kept(again) == set()
    assert len(list((cache / "cloudformation-validate").glob("*.json"))) == 6


def test_another_plugin_version_validates_again(tmp_path: Path, cache: Path) -> None:
    synth(tmp_path / "1", kept(cache))
    mark(cache)
    (about,) = [
        path
        for path in (cache / "cloudformation-validate").glob("*.json")
        if "version" in json.loads(path.read_text())
    ]
    about.write_text(json.dumps({**json.loads(about.read_text()), "version": "0.0.1"}))
    again = synth(tmp_path / "2", kept(cache))
    assert read_kept(again) == set()
    (plugin,) = report(again)
    assert plugin["pluginVersion"] == "0.0.1"


def test_without_a_cache_every_template_is_validated(
    upstream: Path, tmp_path: Path, engines: list[object]
) -> None:
    plain = synth(tmp_path, kept(""))
    assert findings(plain) == findings(upstream)
    assert len(engines) == 1
    assert not (tmp_path / "cloudformation-validate").exists()


def test_cdk_validation_false_validates_nothing(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch, engines: list[object]
) -> None:
    # `cdk synth --no-validation` runs the app with CDK_VALIDATION=false (aws-cdk 2.1148's
    # CLI); aws-cdk-lib then registers no built-in validation (`defaultValidationEnabled`).
    monkeypatch.setenv("CDK_VALIDATION", "false")
    assert report(synth(tmp_path, kept(cache), fails=False)) == []
    assert engines == []
    assert not cache.exists()


def test_builtin_validation_off_validates_nothing(
    tmp_path: Path, cache: Path, engines: list[object]
) -> None:
    off = kept(cache, builtin_cloud_formation_validation=False)
    assert report(synth(tmp_path, off, fails=False)) == []
    assert engines == []


@pytest.mark.parametrize(("flags", "expected"), [(["--no-validation"], "false"), ([], None)])
def test_the_cli_turns_validation_off_through_cdk_validation(
    tmp_path: Path, flags: list[str], expected: str | None
) -> None:
    # What new_app reads is what the real CLI sets: an app that records its CDK_VALIDATION.
    probe = tmp_path / "cdk_validation.json"
    app = tmp_path / "probe_app.py"
    app.write_text(
        "import json, os\n"
        f"open({str(probe)!r}, 'w').write(json.dumps(os.environ.get('CDK_VALIDATION')))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "CDK_VALIDATION"}
    env["CDK_DISABLE_CLI_TELEMETRY"] = "true"
    command = ["npx", "--no-install", "cdk", "--no-notices", "synth", *flags]
    subprocess.run(
        [*command, "--app", f"{sys.executable} {app}", "--output", str(tmp_path / "out")],
        cwd=REPO,
        env=env,
        capture_output=True,
        timeout=120,
    )  # the probe writes no assembly: the CLI's exit status says so, the probe is what counts
    assert json.loads(probe.read_text()) == expected
