"""mlstack.constructs.state_names is the one home of the workflow's state names: it names every
state of the synthesized definition, and nothing else."""

from __future__ import annotations

import pytest

from mlstack.constructs import state_names
from tests.infra.conftest import SynthesizedApp, state_machine_definition

NAMES = {
    value
    for name, value in vars(state_names).items()
    if name.isupper() and name != "INVALID_EXECUTION_INPUT"
}


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_state_names_name_every_state_of_the_definition(
    synthesized: SynthesizedApp, env: str
) -> None:
    # Both environments configure tuning and the deploy stage, so every optional path is there.
    template = synthesized.json(env, "workflow")
    training = state_machine_definition(template)
    release = state_machine_definition(template, release=True)
    assert set(training["States"]) | set(release["States"]) == NAMES


def test_invalid_input_error_is_the_reject_states_error(synthesized: SynthesizedApp) -> None:
    definition = state_machine_definition(synthesized.json("dev", "workflow"))
    reject = definition["States"][state_names.REJECT_INPUT]
    assert (
        reject["Parameters"]["Error"]
        == state_names.INVALID_EXECUTION_INPUT
        == ("InvalidExecutionInput")
    )
