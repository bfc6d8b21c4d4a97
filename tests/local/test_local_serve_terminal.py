"""`mlstack local serve`, `local models`, `local approve` and `local reject` as a person runs
them: on a pseudo-terminal, through a pipe, on a taken port, on a machine without AWS set-up.

Expected values come from outside this code: the operating system's wording of EADDRINUSE
(``os.strerror``), boto3 itself running the hint `local serve` prints, the shell's `head`, and
the local account's own registry (the endpoint and model a run deployed).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from mlstack.local.runner import RunReport
from tests.cli.terminal import Terminal, mlstack, wait_gone


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.fixture
def bare_env(tmp_path: Path) -> dict[str, str]:
    """A machine without AWS set-up: no AWS variable, no ~/.aws."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    home = tmp_path / "home"
    home.mkdir()
    env["HOME"] = str(home)
    env["AWS_EC2_METADATA_DISABLED"] = "true"  # never wait on a metadata service in a test
    return env


def test_serve_on_a_taken_port_says_so_in_one_line_and_leaves_nothing(
    local_run: RunReport, tmp_path: Path
) -> None:
    mark = uuid.uuid4().hex
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        term = Terminal(
            mlstack("local", "serve", "--from-run", str(local_run.run_dir), "--port", str(port)),
            env={"MLSTACK_TEST_MARK": mark, "TMPDIR": str(tmp_path)},
        )
        try:
            code = term.wait(120)
        finally:
            term.close()
    lines = _lines(term.output)
    assert code == 1, term.output
    assert len(lines) == 1, term.output
    assert str(port) in lines[0] and "--port" in lines[0]
    assert os.strerror(errno.EADDRINUSE) in lines[0]
    assert wait_gone(mark, 10) == []
    assert list(tmp_path.glob("mlstack-serve-*")) == []


def test_serve_on_a_terminal_answers_its_boto3_hint_and_ends_clean_on_ctrl_c(
    local_run: RunReport, tmp_path: Path, bare_env: dict[str, str]
) -> None:
    mark = uuid.uuid4().hex
    with socket.socket() as probe:  # a free port, given back for the gateway
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    term = Terminal(
        mlstack("local", "serve", "--from-run", str(local_run.run_dir), "--port", str(port)),
        env={"MLSTACK_TEST_MARK": mark, "TMPDIR": str(tmp_path)},
    )
    try:
        hint = term.wait_for(r"boto3\.client\(.*\)\.invoke_endpoint\(.*\)", 180).group(0)
        assert len(list(tmp_path.glob("mlstack-serve-*"))) == 1
        # The hint as a user pastes it, on a machine without AWS set-up.
        answer = subprocess.run(
            [sys.executable, "-c", f"import boto3; print({hint}['Body'].read().decode())"],
            env=bare_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert answer.returncode == 0, answer.stderr
        assert 0.0 <= float(answer.stdout.split()[0]) <= 1.0  # dev is a binary problem
        # `mlstack invoke` against it, also on a terminal.
        data = tmp_path / "data.csv"
        data.write_text("37,82\n", encoding="utf-8")
        url = term.wait_for(r"--endpoint-url (\S+) --endpoint-name (\S+)", 1)
        invoke = Terminal(
            mlstack("invoke", "--endpoint-url", url.group(1), "--endpoint-name", url.group(2),
                    "--file", str(data)),
            env=bare_env,
        )  # fmt: skip
        try:
            assert invoke.wait(120) == 0, invoke.output
        finally:
            invoke.close()
        assert 0.0 <= float(_lines(invoke.output)[-1].split()[0]) <= 1.0
        term.ctrl_c()
        code = term.wait(60)
    finally:
        term.close()
    assert code == 0, term.output
    assert "Traceback" not in term.output
    assert wait_gone(mark, 10) == []
    assert list(tmp_path.glob("mlstack-serve-*")) == []


def _account_copy(local_run: RunReport, tmp_path: Path) -> Path:
    """The shared run's workdir copied: a test that changes the registry changes its own."""
    workdir = tmp_path / "work"
    shutil.copytree(local_run.run_dir.parent / "accounts", workdir / "accounts", symlinks=True)
    return workdir


def _live_version(workdir: Path) -> tuple[int, str]:
    """The version the account's endpoint serves, read from the registry itself: endpoint ->
    model -> artifact -> the version with that artifact."""
    registry = json.loads(
        (workdir / "accounts" / "dev" / "sagemaker" / "registry.json").read_text("utf-8")
    )
    (endpoint,) = [e for e in registry["endpoints"].values() if e["status"] == "InService"]
    model = registry["models"][endpoint["model_name"].lower()]
    url = model["PrimaryContainer"]["ModelDataUrl"]
    (version,) = [
        p["ModelPackageVersion"]
        for p in registry["model_packages"].values()
        if p["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == url
    ]
    return int(version), str(endpoint["name"])


def test_local_models_on_a_terminal_marks_the_live_version(
    local_run: RunReport, tmp_path: Path
) -> None:
    workdir = _account_copy(local_run, tmp_path)
    version, endpoint = _live_version(workdir)
    term = Terminal(mlstack("local", "models", "--env", "dev", "--workdir", str(workdir)))
    try:
        assert term.wait(120) == 0, term.output
    finally:
        term.close()
    rows = {line.split()[0]: line for line in _lines(term.output) if line.split()[0].isdigit()}
    assert f"(live: {endpoint})" in rows[str(version)]
    # CREATED to the second: "YYYY-MM-DD HH:MM:SSZ", never a cut fraction of a second.
    created = rows[str(version)].split()[2:4]
    assert len(created[0]) == 10 and created[1].endswith("Z") and len(created[1]) == 9


def test_local_models_piped_into_head_ends_without_a_traceback(
    local_run: RunReport, tmp_path: Path
) -> None:
    workdir = _account_copy(local_run, tmp_path)
    command = " ".join(mlstack("local", "models", "--env", "dev", "--workdir", str(workdir)))
    # `head -n 0` exits before reading: every write of mlstack meets a closed pipe.
    done = subprocess.run(
        f"{command} | head -n 0", shell=True, capture_output=True, text=True, timeout=120
    )
    assert done.stderr == ""


def test_local_reject_of_the_live_version_says_it_stays_live(
    local_run: RunReport, tmp_path: Path
) -> None:
    workdir = _account_copy(local_run, tmp_path)
    version, endpoint = _live_version(workdir)
    term = Terminal(
        mlstack("local", "reject", "--env", "dev", "--workdir", str(workdir),
                "--version", str(version), "--reason", "drifted"),
    )  # fmt: skip
    try:
        assert term.wait(120) == 0, term.output
    finally:
        term.close()
    assert f"stays live on endpoint {endpoint}" in term.output


def test_local_approve_on_a_terminal_of_an_approved_version_changes_nothing(
    local_run: RunReport, tmp_path: Path
) -> None:
    workdir = _account_copy(local_run, tmp_path)
    version, _ = _live_version(workdir)
    term = Terminal(
        mlstack("local", "approve", "--env", "dev", "--workdir", str(workdir),
                "--version", str(version)),
    )  # fmt: skip
    try:
        assert term.wait(120) == 0, term.output
    finally:
        term.close()
    assert f"version {version} is already Approved: nothing changed" in term.output


def _register_pending_version(workdir: Path) -> int:
    """A second version of the live version's model, PendingManualApproval, registered as the
    training workflow's Register model does (CreateModelPackage in the account's group)."""
    from mlstack.cli.local_registry import RegistryFile

    reg = RegistryFile(workdir / "accounts" / "dev" / "sagemaker" / "registry.json")
    (group,) = reg.model_package_groups
    first = next(p for p in reg.model_packages.values() if p["ModelPackageVersion"] == 1)
    arn = reg.create_model_package(
        {
            "ModelPackageGroupName": group,
            "InferenceSpecification": first["InferenceSpecification"],
            "ModelApprovalStatus": "PendingManualApproval",
        }
    )["ModelPackageArn"]
    reg._save_registry()
    return int(arn.rsplit("/", 1)[1])


def test_ctrl_c_during_local_approves_release_stops_it_in_one_line(
    local_run: RunReport, cdk_out: Path, tmp_path: Path
) -> None:
    # The exit status of a command SIGINT ended: 128 + 2 (bash(1), "EXIT STATUS").
    workdir = _account_copy(local_run, tmp_path)
    live_version, endpoint = _live_version(workdir)
    version = _register_pending_version(workdir)
    mark = uuid.uuid4().hex
    term = Terminal(
        mlstack("local", "approve", "--env", "dev", "--workdir", str(workdir),
                "--version", str(version), "--cdk-out", str(cdk_out)),
        env={"MLSTACK_TEST_MARK": mark},
    )  # fmt: skip
    try:
        term.wait_for(r"▶ (Update endpoint|Create endpoint) \(Task\)", 240)
        stopped_ms = int(time.time() * 1000)
        term.ctrl_c()
        code = term.wait(120)
    finally:
        term.close()
    out = term.output
    assert code == 128 + signal.SIGINT, out[-4000:]
    assert "Traceback" not in out
    last = _lines(out)[-1].removeprefix("^C")
    assert last.startswith(
        f"mlstack local approve: SIGINT stopped the release of version {version} in state "
    ), out[-3000:]
    assert f"kept: version {version} stays Approved" in last
    assert wait_gone(mark, 15) == []  # no model server outlives the command
    # The account stays usable: the endpoint is still listed live, the version Approved.
    listing = subprocess.run(
        mlstack("local", "models", "--env", "dev", "--workdir", str(workdir)),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert listing.returncode == 0, listing.stderr
    rows = {line.split()[0]: line for line in listing.stdout.splitlines()[2:] if line.strip()}
    assert rows[str(version)].split()[1] == "Approved"
    assert any(f"(live: {endpoint})" in row for row in rows.values()), listing.stdout
    # The update was stopped: the endpoint stays on the live version's model (the release
    # names its models mlstack-dev-v<version>-..., docs/lifecycle.md), as SageMaker rolls back.
    registry = json.loads(
        (workdir / "accounts" / "dev" / "sagemaker" / "registry.json").read_text("utf-8")
    )
    (live,) = [e for e in registry["endpoints"].values() if e["name"] == endpoint]
    assert live["status"] == "InService"
    if not live["model_name"].startswith(f"mlstack-dev-v{live_version}-"):
        # UpdateEndpoint returns at once and the new model server boots in the background; on a
        # loaded machine it can be InService before the signal arrives (as an update in AWS goes
        # on whatever the execution does). Then it swapped before the stop, never after it.
        assert live["model_name"].startswith(f"mlstack-dev-v{version}-"), live["model_name"]
        assert live["modified_ms"] <= stopped_ms + 1000, (live["modified_ms"], stopped_ms)
