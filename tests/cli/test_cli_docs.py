"""The commands the README and docs/ show cannot drift from the command line: each `mlstack ...`
command they show parses with the real parser, and docs/operations.md's table names every
command and every option the parser has. The expected values are the parser's own (argparse's
registered subcommands and option strings), read here, not restated."""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Iterator

import pytest

from mlstack.cli import build_parser
from tests.cli.terminal import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# A placeholder as the docs write one, and what stands in for it when parsing.
_PLACEHOLDERS = [
    (re.compile(r"<N>|\bN\b"), "1"),
    (re.compile(r"\bENV\b"), "dev"),
    (re.compile(r"<[^>]+>"), "x"),
    (re.compile(r"\b[A-Z]{2,}\b"), "1"),  # SECONDS, TEXT: a value named in capitals
]


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subparsers:
        yield path, parser
    for action in subparsers:
        for name, child in action.choices.items():
            yield from _commands(child, (*path, name))


def _shown_commands() -> list[tuple[str, str]]:
    """(file, command) for every `mlstack ...` code span or code line the docs show as a
    whole command (not a synopsis with [optional] parts, nor a fragment such as
    `mlstack local …` or `mlstack models/approve/reject`)."""
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        spans = re.findall(r"`((?:\.venv/bin/)?mlstack [^`]+)`", text)
        lines = re.findall(r"^\$? ?((?:\.venv/bin/)?mlstack [^\n]+)$", text, re.MULTILINE)
        for command in spans + lines:
            if any(mark in command for mark in ("[", "|", "…", "/approve", "\\")):
                continue
            if " -" not in command:  # a command named in prose (`mlstack approve`)
                continue
            found.append((path.name, command))
    return found


@pytest.mark.parametrize(("doc", "command"), _shown_commands())
def test_a_command_the_docs_show_parses(doc: str, command: str) -> None:
    for pattern, value in _PLACEHOLDERS:
        command = pattern.sub(value, command)
    words = shlex.split(command)[1:]
    try:
        build_parser().parse_args(words)
    except SystemExit as err:
        pytest.fail(f"{doc}: `{command}` does not parse (exit {err.code})")


def test_operations_table_names_every_command_and_option() -> None:
    text = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| `mlstack ")]
    missing = []
    for path, parser in _commands(build_parser()):
        prefix = "| `mlstack " + " ".join(path) + " "
        row = next(
            (r for r in rows if r.startswith(prefix) or r.startswith(prefix[:-1] + "`")), None
        )
        if row is None:
            missing.append(" ".join(path))
            continue
        synopsis = row.split("` |", 1)[0]
        for action in parser._actions:
            names = [o for o in action.option_strings if o not in ("-h", "--help")]
            if names and not any(re.search(rf"{re.escape(o)}\b", synopsis) for o in names):
                missing.append(f"{' '.join(path)} {names[-1]}")
    assert missing == []


def test_no_shown_command_is_only_skipped() -> None:
    assert len(_shown_commands()) >= 5  # the extraction finds the docs' commands at all
