"""The commands README.md and docs/ show, run: every `make` target they name exists and expands
(`make -n`), `make help` runs, every `mlstack` command they show has its `--help` (with each
option the docs use), and the cheap offline ones run as the docs say. The rest are listed in
NOT_RUN with the reason and the test that runs them instead; the list is checked to be
complete, so a command added to the docs is run here or named there.

Expected values come from outside this code: make's own dry run and exit status, the real
argument parser's help text, and the output the docs themselves show."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from mlstack.cli import main
from tests.cli.terminal import REPO, VENV_BIN

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z-]*|-[A-Za-z])\b")

# mlstack commands the docs show and this test does not run for real (their --help runs), and
# why. Every command path the docs show is here or in RUN below; no entry is stale.
NOT_RUN = {
    "local run": "a whole workflow run (minutes); tests/local/test_local_terminal.py and "
    "tests/local/test_local_docs_sample.py run it and check docs/local-mode.md's sample",
    "local serve": "serves until Ctrl-C, from a run's model; tests/local/test_local_serve_"
    "terminal.py runs it on a terminal",
    "local monitor": "needs a local run and captured traffic (minutes); tests/local/test_local_"
    "monitor.py runs it",
    "local approve": "releases a version from a run's local account; tests/local/test_local_"
    "lifecycle.py and test_local_serve_terminal.py run it",
    "local reject": "changes a run's local account; tests/local/test_local_serve_terminal.py",
    "run": "needs a deployed stack (AWS); tests/cli/test_cli_deployed.py runs it against moto",
    "invoke": "needs an endpoint (AWS or `local serve`); tests/cli/test_cli_deployed.py",
    "models": "needs a deployed registry (AWS); tests/cli/test_cli_registry.py runs it on moto",
    "approve": "needs a deployed registry (AWS); tests/cli/test_cli_registry.py",
    "reject": "needs a deployed registry (AWS); tests/cli/test_cli_registry.py",
    "report": "needs a deployed execution (AWS); tests/cli/test_cli_report.py runs it against "
    "moto and botocore's Stubber",
}
# The ones run here, on a fresh local account (offline, in seconds).
RUN = {"local models"}


def _shown() -> list[tuple[str, str]]:
    """(file, command): every `make ...` and `mlstack ...` in a code span or on a line of a code
    block (a `$ ` prompt and `.venv/bin/` dropped, `\\` continuations joined)."""
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        commands = re.findall(r"`((?:\.venv/bin/)?(?:mlstack|make) [^`]+)`", text)
        for block in re.findall(r"```\w*\n(.*?)```", text, re.S):
            joined = re.sub(r"\\\n\s*", " ", block)
            for line in joined.splitlines():
                line = line.removeprefix("$ ").split("  #")[0].strip()
                if re.match(r"(\.venv/bin/)?(mlstack|make) ", line):
                    commands.append(line)
        found += [(path.name, c.removeprefix(".venv/bin/")) for c in commands]
    return found


def _mlstack_paths() -> dict[str, list[str]]:
    """Command path ("local run") -> the commands the docs show for it."""
    paths: dict[str, list[str]] = {}
    for _, command in _shown():
        words = command.split()
        if words[0] != "mlstack" or len(words) < 2:
            continue
        path = words[1:3] if words[1] == "local" else words[1:2]
        name = " ".join(w for w in path if re.fullmatch(r"[a-z]+", w))
        if name in ("local",) or "/" in " ".join(path) or "|" in " ".join(path):
            continue  # `mlstack local …`, `mlstack models/approve/reject`: prose, no command
        paths.setdefault(name, []).append(command)
    return paths


def _make_targets() -> set[str]:
    targets = set()
    for _, command in _shown():
        words = command.split()
        if words[0] == "make" and len(words) > 1 and re.fullmatch(r"[a-z-]+", words[1]):
            targets.add(words[1])
    return targets


def _help(path: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        main([*path.split(), "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


def test_every_command_the_docs_show_is_run_or_skipped_with_a_reason() -> None:
    shown = set(_mlstack_paths())
    assert shown >= {"local run", "local serve", "invoke"}  # the extraction finds them at all
    assert shown == RUN | set(NOT_RUN), (shown - RUN - set(NOT_RUN), RUN | set(NOT_RUN) - shown)
    assert not RUN & set(NOT_RUN)
    assert _make_targets() >= {"run", "test", "setup"}


@pytest.mark.parametrize("path", sorted(_mlstack_paths()))
def test_each_shown_command_has_help_naming_its_options(
    path: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text = _help(path, capsys)
    assert text.startswith(f"usage: mlstack {path}")
    for command in _mlstack_paths()[path]:
        for option in _OPTION.findall(command):
            if option in ("-h", "--help"):
                continue
            assert re.search(rf"(?<![\w-]){re.escape(option)}\b", text), (
                f"`{command}` uses {option}; `mlstack {path} --help` does not name it"
            )


def _make(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    env["PATH"] = f"{VENV_BIN}:{env['PATH']}"
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.mark.parametrize("target", sorted(_make_targets()))
def test_each_make_target_the_docs_name_exists(target: str) -> None:
    # A dry run: make reads the Makefile and expands the target's recipe without running it
    # (make(1), -n); an unknown target is make's "No rule to make target", exit 2.
    done = _make("-n", target)
    assert done.returncode == 0, done.stderr


def test_make_help_names_the_readmes_commands() -> None:
    done = _make("help")
    assert done.returncode == 0, done.stderr
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    named = re.findall(r"^make ([a-z-]+)\s+- ", done.stdout, re.M)
    assert {"run", "test"} <= set(named)
    for target in named:  # what `make help` offers, the README or docs show
        assert target in _make_targets(), target
    assert "make run" in readme and "make test" in readme


def test_local_models_on_a_fresh_account_names_the_command_to_run_first(
    tmp_path: Path,
) -> None:
    (command,) = {c for c in _mlstack_paths()["local models"] if c.endswith("| head")} or {
        "mlstack local models"
    }
    words = shlex.split(command.split("|")[0])
    done = subprocess.run(
        [str(VENV_BIN / "mlstack"), *words[1:], "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    # The command it names is one the docs show, and one that parses.
    first = re.search(r"`(mlstack [^`]+)`", line)
    assert first is not None, line
    assert first.group(1).startswith("mlstack local run")
    assert "local run" in _mlstack_paths()
    assert list(tmp_path.iterdir()) == []  # a listing makes no account
