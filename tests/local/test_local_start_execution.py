"""A local run starts its executions as Step Functions' StartExecution takes them: a request the
service refuses (botocore's stepfunctions model: ``name`` 1 to 80 characters, ``input`` at most
262,144 characters) is refused before any job runs, in the service's words."""

from __future__ import annotations

import io
from pathlib import Path

import botocore.session
import pytest

from mlstack.local.runner import RunOptions, check_start_execution, run
from mlstack.local.ui import Reporter

START = (
    botocore.session.get_session()
    .get_service_model("stepfunctions")
    .operation_model("StartExecution")
)
NAME_MAX = START.input_shape.members["name"].metadata["max"]
INPUT_MAX = START.input_shape.members["input"].metadata["max"]
ARN = "arn:aws:states:us-east-1:000000000000:stateMachine:mlstack-dev"


def test_the_limits_are_the_services() -> None:
    assert (NAME_MAX, INPUT_MAX) == (80, 262144)  # Step Functions API reference, StartExecution


def test_a_name_of_the_longest_length_starts_and_one_more_is_refused() -> None:
    check_start_execution(ARN, "n" * NAME_MAX, {})
    with pytest.raises(ValueError) as refused:
        check_start_execution(ARN, "n" * (NAME_MAX + 1), {})
    assert (
        f"at 'name' failed to satisfy constraint: Member must have length less than or equal "
        f"to {NAME_MAX}"
    ) in str(refused.value)
    assert str(refused.value).startswith("StartExecution refused: ValidationException: ")


def test_an_input_over_the_limit_is_refused() -> None:
    fits = {"x": "a" * (INPUT_MAX - len('{"x": ""}'))}
    check_start_execution(ARN, "ok", fits)
    with pytest.raises(ValueError, match="at 'input' failed to satisfy constraint"):
        check_start_execution(ARN, "ok", {"x": "a" * INPUT_MAX})


def test_a_run_with_a_name_step_functions_refuses_runs_no_job(
    cdk_out: Path, tmp_path: Path
) -> None:
    options = RunOptions(
        environment="dev", workdir=tmp_path, cdk_out=cdk_out, name="n" * (NAME_MAX + 1)
    )
    with pytest.raises(ValueError, match="StartExecution refused"):
        run(options, Reporter(out=io.StringIO()))
    assert not list((tmp_path / options.name).glob("jobs/*"))
