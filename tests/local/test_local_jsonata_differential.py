"""Every JSONata expression our synthesized definitions carry (dev, prod, and prod released with
its monitoring and retraining on drift), evaluated by the local interpreter's engine
(jsonata-python, through mlstack.local.asl_jsonata) and by the reference JavaScript engine
(``node_modules/jsonata``, the JSONata that asl-validator carries, as
tests/infra/test_infra_drift_monitor.py runs it) on hypothesis-generated states: scheduled
times and alarm times as EventBridge writes them (ISO 8601, with and without milliseconds, with
offsets) and hostile ones, ListExecutions results, found and empty prefixes. Both engines give
the same value, or both fail (the interpreter with States.QueryEvaluationError)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlstack.local import assembly
from mlstack.local.asl_jsonata import QUERY_EVALUATION_ERROR, evaluate, is_expression
from mlstack.local.asl_types import StatesError
from tests import once
from tests.local.monitored_prod import REPO, monitored_prod

NODE_JSONATA = REPO / "node_modules" / "jsonata"
# One evaluation a line: {"e": expression, "s": $states} -> {"value": v} | {"undefined": true}
# | {"error": "<code> <message>"}.
NODE_SERVER = """
const jsonata = require(%s);
const rl = require('readline').createInterface({input: process.stdin});
rl.on('line', async (line) => {
  const {e, s} = JSON.parse(line);
  let out;
  try {
    const r = await jsonata(e).evaluate({}, {states: s});
    out = r === undefined ? {undefined: true} : {value: r};
  } catch (err) {
    out = {error: `${err.code} ${err.message}`};
  }
  process.stdout.write(JSON.stringify(out) + '\\n');
});
"""


def expressions_in(value: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str) and is_expression(value):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from expressions_in(item, f"{where}/{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from expressions_in(item, f"{where}/{index}")


def definitions(a: assembly.LocalAssembly) -> dict[str, dict[str, Any]]:
    machines = {m.name: m.definition for m in a.state_machines.values()}
    return {a.state_machine_name: a.definition, **machines}


@pytest.fixture(scope="module")
def expressions(cdk_out: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Where -> expression, for every JSONata string of every state machine."""
    prod = once.environment_assembly(tmp_path_factory, "prod") / "assembly-prod"
    found: dict[str, str] = {}
    for directory, env in (
        (cdk_out / "assembly-dev", "dev"),
        (prod, "prod"),
        (monitored_prod(tmp_path_factory), "monitored prod"),
    ):
        for name, definition in definitions(assembly.read(directory, "prod" if "prod" in env
                                                          else env)).items():  # fmt: skip
            found |= {f"{env} {name}{w}": e for w, e in expressions_in(definition, "")}
    return found


@pytest.fixture(scope="module")
def node() -> Iterator[subprocess.Popen[str]]:
    script = NODE_SERVER % json.dumps(str(NODE_JSONATA))
    process = subprocess.Popen(
        ["node", "-e", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    yield process
    assert process.stdin is not None
    process.stdin.close()
    process.wait(timeout=30)


def reference(node: subprocess.Popen[str], expression: str, states: Any) -> dict[str, Any]:
    assert node.stdin is not None and node.stdout is not None
    node.stdin.write(json.dumps({"e": expression[2:-2], "s": states}) + "\n")
    node.stdin.flush()
    answer: dict[str, Any] = json.loads(node.stdout.readline())
    return answer


def test_the_definitions_carry_the_monitoring_expressions(expressions: dict[str, str]) -> None:
    # dev and prod before its release have no monitor; monitored prod has both machines' six:
    # Compute window, Choose inputs, Last run, Cooling down?, Start retraining (its name and
    # its output).
    assert not [w for w in expressions if not w.startswith("monitored prod")]
    assert len(expressions) == 6
    fields = sorted(w.rsplit("/", 2)[-1] if "Choices" not in w else "Condition"
                    for w in expressions)  # fmt: skip
    assert fields == ["Condition", "Name", "Output", "Output", "Output", "Output"]


# EventBridge's and Scheduler's times ("2026-12-07T14:00:00Z"), the SDK's with milliseconds,
# ISO 8601 offsets; and hostile values the engines must agree on (both fail or both answer).
OFFSETS = [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]


@st.composite
def timestamps(draw: st.DrawFn) -> Any:
    moment = draw(
        st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2099, 12, 30))
    ).replace(tzinfo=UTC)
    zone = draw(st.sampled_from(OFFSETS))
    local = moment.astimezone(zone)
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    if draw(st.booleans()):
        text += f".{local.microsecond // 1000:03d}"
    return text + ("Z" if zone is UTC else local.strftime("%z")[:3] + ":"
                   + local.strftime("%z")[3:])  # fmt: skip


# Integers within a 64-bit long: past 2**53 JSONata's numbers (doubles) round them, as the
# interpreter does.
hostile = st.one_of(st.text(max_size=12), st.integers(-(2**63), 2**63), st.none(), st.booleans())
times = st.one_of(timestamps(), timestamps(), timestamps(), hostile)
candidate = st.fixed_dictionaries(
    {
        "name": st.one_of(
            st.sampled_from(["capture-AllTraffic", "capture-Candidate", "ground_truth"]),
            st.text(max_size=10),
        ),
        "prefix": st.text(max_size=20),
        "local": st.text(max_size=20),
        "listed": st.fixed_dictionaries({"KeyCount": st.integers(0, 2)}),
    }
)
states_strategy = st.fixed_dictionaries(
    {
        "input": st.fixed_dictionaries(
            {
                "scheduled_time": times,
                "time": times,
                "alarm": st.text(max_size=10),
                "detail": st.fixed_dictionaries({"alarmName": st.text(max_size=10)}),
                "found": st.lists(candidate, max_size=4),
                "window": st.fixed_dictionaries({"stamp": st.text(max_size=14)}),
            },
            optional={"last": times},
        ),
        "result": st.fixed_dictionaries(
            {
                "Executions": st.lists(st.fixed_dictionaries({"StartDate": times}), max_size=2),
                "ExecutionArn": st.text(max_size=20),
            }
        ),
        "context": st.just({"Execution": {"Name": "exec-1"}}),
    }
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(states=states_strategy)
def test_both_engines_agree_on_every_expression(
    expressions: dict[str, str], node: subprocess.Popen[str], states: dict[str, Any]
) -> None:
    for where, expression in expressions.items():
        expected = reference(node, expression, states)
        try:
            got = json.loads(json.dumps(evaluate(expression, states, where)))
        except StatesError as err:
            assert err.error == QUERY_EVALUATION_ERROR
            assert "value" not in expected, (where, states, expected, err.cause)
            continue
        assert as_doubles(expected) == {"value": as_doubles(got)}, (where, states)


def as_doubles(value: Any) -> Any:
    """Numbers as the doubles they are: past 2**53 the engines write one double's digits
    differently (JavaScript the shortest round trip, 46099935058943170; Python the exact
    integer, 46099935058943168)."""
    if isinstance(value, dict):
        return {k: as_doubles(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_doubles(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


# Found by the test above: jsonata-python's $toMillis read an ISO timestamp's milliseconds
# through a float and truncated them ("...00.001Z" -> ...000, ".123+01:00" -> ...122); the
# reference engine keeps them. Each case is evaluated by both, whatever the draw.
@pytest.mark.parametrize(
    "timestamp",
    [
        "2004-02-01T00:00:00.001Z",
        "2004-02-01T00:00:00.123+01:00",
        "2026-12-07T14:00:00.999Z",
        "1969-12-31T23:59:59.001Z",
        "2026-12-07T14:00:00Z",
    ],
)
def test_to_millis_keeps_the_milliseconds_as_the_reference_engine_does(
    node: subprocess.Popen[str], timestamp: str
) -> None:
    expression = "{% $toMillis($states.input.t) %}"
    states = {"input": {"t": timestamp}}
    expected = reference(node, expression, states)
    assert expected == {"value": evaluate(expression, states, "Output")}
