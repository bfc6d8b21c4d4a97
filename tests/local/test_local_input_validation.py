"""A bad execution input fails the local run at the definition's first state, before any data.

The local run executes the synthesized definition, so what it refuses here is what an AWS
execution of the same template refuses: Validate input (the validation Lambda from its code
asset, with the schema from the definition) -> Input valid? -> Reject input -> Notify failure ->
Workflow failed, with error ``InvalidExecutionInput``.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from mlstack.cli import main
from mlstack.local.runner import RunOptions, RunReport, run
from mlstack.local.ui import Reporter

REFUSED_PATH = [
    "Validate input",
    "Input valid?",
    "Reject input",
    "Notify failure",
    "Workflow failed",
]


def run_with(cdk_out: Path, tmp_path: Path, execution_input: dict[str, Any]) -> RunReport:
    options = RunOptions(
        environment="dev",
        workdir=tmp_path,
        cdk_out=cdk_out,
        name="refused-1",
        extra_input=execution_input,
    )
    return run(options, Reporter(out=io.StringIO()))


@pytest.mark.parametrize(
    ("execution_input", "expected"),
    [
        pytest.param(
            {"hyperparamters": {"num_round": "50"}},
            "key 'hyperparamters' is not an accepted key (did you mean 'hyperparameters'?)",
            id="misspelt",
        ),
        pytest.param(
            {"hyperparameters": {"num_round": 50}},
            "key 'hyperparameters.num_round' is 50 (integer); expected a string",
            id="mistyped",
        ),
        pytest.param(
            {"training_instance_count": 0},
            "key 'training_instance_count' is 0 (integer); expected an integer from 1 to 100",
            id="out-of-range",
        ),
        pytest.param(
            # dev: 100,000 rows per shard, so 150,000 rows are 2 train shards.
            {"rows": 150_000, "training_instance_count": 3},
            "key 'training_instance_count' is 3 with key 'rows' 150000; expected at most the "
            "dataset's shards (2: 150000 rows in shards of 100000)",
            id="more-hosts-than-shards",
        ),
    ],
)
def test_a_bad_input_key_fails_the_run_before_generate_dataset(
    cdk_out: Path, tmp_path: Path, execution_input: dict[str, Any], expected: str
) -> None:
    report = run_with(cdk_out, tmp_path, execution_input)
    assert report.status == "FAILED"
    assert report.error == "InvalidExecutionInput"
    assert report.cause is not None and expected in report.cause
    record = json.loads((report.run_dir / "execution.json").read_text())
    assert [s["name"] for s in record["states"]] == REFUSED_PATH
    # Nothing was generated for this run (the run id is the MD5 of the execution name) and no
    # job was created. (The embedded S3 may still hold other runs' objects of this process.)
    run_id = hashlib.md5(report.name.encode()).hexdigest()
    assert not list((report.run_dir / "s3").rglob(f"datasets/{run_id}/*"))
    assert not (report.run_dir / "jobs").exists() or not any((report.run_dir / "jobs").iterdir())
    # The failure notification carries the same message.
    (message,) = [
        json.loads(line) for line in (report.run_dir / "sns.jsonl").read_text().splitlines()
    ]
    assert expected in json.loads(message["Message"].split(" failed: ", 1)[1])["Cause"]


def test_every_bad_key_is_named_in_one_message(cdk_out: Path, tmp_path: Path) -> None:
    report = run_with(
        cdk_out,
        tmp_path,
        {"rows": 0, "seed": "7", "training_instance_type": "m5.large", "tune": "yes"},
    )
    assert report.error == "InvalidExecutionInput"
    assert report.cause is not None
    assert report.cause.startswith("invalid execution input (4 problems; nothing was started): ")
    for key in ("'rows' is 0", "'seed' is \"7\" (string)", "'training_instance_type'", "'tune'"):
        assert key in report.cause


def test_the_cli_run_prints_the_message_and_exits_1(
    cdk_out: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "local",
            "run",
            "--input",
            '{"hyperparamters": {"num_round": "50"}}',
            "--plain",
            "--workdir",
            str(tmp_path),
            "--cdk-out",
            str(cdk_out),
            "--name",
            "refused-cli",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "InvalidExecutionInput" in err
    assert "did you mean 'hyperparameters'?" in err


def test_a_valid_input_passes_validation(local_run: RunReport) -> None:
    # The shared successful run (rows given in its input) went through the validation states.
    assert local_run.ok
    assert local_run.states[:3] == ["Validate input", "Input valid?", "Load defaults"]
