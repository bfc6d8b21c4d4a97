"""docs/serving.md's "Every form, with curl and boto3" cannot drift: each curl command and the
boto3 script of that section run, as written, against a real ``mlstack local serve`` of a
Palmer penguins classifier and of a regression model (tests/serving/penguins.py), and each
answer must match the line the doc shows after it (``...`` standing for any text on a line).

The labels the doc shows come from outside the server: the booster's own ``predict`` on the
documented rows of the penguins data, encoded from the schema's specification."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.cli.terminal import Terminal, mlstack, wait_gone
from tests.serving.conftest import REPO
from tests.serving.penguins import PenguinModel, build, raw_rows

DOC = REPO / "docs" / "serving.md"
SECTION = "### Every form, with curl and boto3"


def section_blocks(language: str) -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(SECTION)
    heading = re.compile(r"^#{2,3} ", re.M).search(text, start + len(SECTION))
    body = text[start : heading.start() if heading else len(text)]
    return re.findall(rf"```{language}\n(.*?)```", body, re.S)


def expectation(line: str) -> re.Pattern[str]:
    """A ``# => ...`` line as a pattern: ``\\n`` a line break, ``...`` any text on a line."""
    text = line.removeprefix("# => ").replace("\\n", "\n")
    return re.compile("[^\n]*?".join(re.escape(part) for part in text.split("...")))


def curl_examples() -> list[tuple[str, str, re.Pattern[str]]]:
    """(the block's URL= line, command, expected answer) for each curl command of the
    section's bash blocks."""
    examples: list[tuple[str, str, re.Pattern[str]]] = []
    for block in section_blocks("bash"):
        url = next((line for line in block.splitlines() if line.startswith("URL=")), "")
        command: str | None = None
        for line in block.splitlines():
            if line.startswith("# => "):
                assert command is not None, f"an answer without a command: {line}"
                examples.append((url, command, expectation(line)))
                command = None
            elif line.startswith("curl "):
                assert command is None, f"a command without its answer: {command}"
                command = line
        assert command is None, f"a command without its answer: {command}"
    return examples


@dataclass
class Served:
    model: PenguinModel  # the species model (endpoint "penguins", the doc's port 8080)
    ports: dict[str, int]  # the doc's port -> the port its endpoint is served on here


def serve(base: Path, name: str, port: int, mark: str) -> Terminal:
    return Terminal(
        mlstack("local", "serve", "--model", str(base / "model"), "--port", str(port),
                "--endpoint-name", name),
        env={"MLSTACK_TEST_MARK": mark, "TMPDIR": str(base)},
    )  # fmt: skip


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    species = tmp_path_factory.mktemp("penguins")
    model = build(species, "species", "multiclass", "multi:softprob")
    mass = tmp_path_factory.mktemp("penguin-mass")
    build(mass, "body_mass_g", "regression", "reg:squarederror")
    ports = {}
    for doc_port in ("8080", "8081"):
        with socket.socket() as probe:  # a free port, given back for the gateway
            probe.bind(("127.0.0.1", 0))
            ports[doc_port] = probe.getsockname()[1]
    mark = uuid.uuid4().hex
    terms = [
        serve(species, "penguins", ports["8080"], mark),
        serve(mass, "penguin-mass", ports["8081"], mark),
    ]
    try:
        for term in terms:
            term.wait_for(r"Ctrl-C stops it\.", 180)
        yield Served(model, ports)
        for term in terms:
            term.ctrl_c()
            assert term.wait(60) == 0
    finally:
        for term in terms:
            term.close()
    assert wait_gone(mark, 15) == []


def on_ports(text: str, served: Served) -> str:
    for doc_port, port in served.ports.items():
        text = text.replace(f":{doc_port}", f":{port}")
    return text


def test_the_documented_rows_are_the_classes_the_doc_shows(served: Served) -> None:
    # penguins.csv lines 154, 279 and 10 (line 1 is the header): a Gentoo, a Chinstrap and an
    # Adelie whose sex is NA. The booster predicts each one's own species.
    rows = [raw_rows()[line - 2] for line in (154, 279, 10)]
    assert [r["species"] for r in rows] == ["Gentoo", "Chinstrap", "Adelie"]
    records = [{k: v for k, v in r.items() if k != "species"} for r in rows]
    classes = served.model.classes or []
    predicted = [classes[int(np.argmax(p))] for p in served.model.predict(records)]
    assert predicted == ["Gentoo", "Chinstrap", "Adelie"]
    # The regression examples' rows (lines 154, 32, 279) and the masses the doc names.
    masses = [raw_rows()[line - 2]["body_mass_g"] for line in (154, 32, 279)]
    assert masses == [4500, 3250, 3900]


@pytest.mark.parametrize("index", range(len(curl_examples())))
def test_each_curl_example_answers_as_the_doc_shows(served: Served, index: int) -> None:
    url, command, expected = curl_examples()[index]
    done = subprocess.run(
        ["bash", "-c", on_ports(f"{url}\n{command}", served)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert expected.fullmatch(done.stdout.strip()), (command, done.stdout)


def test_the_boto3_example_answers_as_the_doc_shows(served: Served, tmp_path: Path) -> None:
    (block,) = section_blocks("python")
    expected = [line for line in block.splitlines() if line.startswith("# => ")]
    assert len(expected) == block.count("print(")
    script = tmp_path / "example.py"
    script.write_text(on_ports(block, served), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    pattern = re.compile("\n".join(expectation(line).pattern for line in expected))
    assert pattern.fullmatch(done.stdout.strip()), done.stdout
