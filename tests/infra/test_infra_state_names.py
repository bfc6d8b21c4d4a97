"""mlstack.constructs.state_names is the one home of the workflow's state names: it names every
state of the synthesized definition, and nothing else."""

from __future__ import annotations

from mlstack.constructs import state_names
from mlstack.constructs._ab_states import AB_STATES
from tests.infra.conftest import SynthesizedApp, state_machine_definition

NAMES = {
    value
    for name, value in vars(state_names).items()
    if name.isupper() and name != "INVALID_EXECUTION_INPUT"
}


def _all_states(machine: dict) -> set[str]:
    """The names of a definition's states, with those inside Map ItemProcessors."""
    names = set(machine["States"])
    for state in machine["States"].values():
        if "ItemProcessor" in state:
            names |= _all_states(state["ItemProcessor"])
    return names


def test_state_names_name_every_state_of_the_definitions(synthesized: SynthesizedApp) -> None:
    # Both environments configure tuning, the registry and the deploy stage (the release state
    # machine's); prod's max_rows needs the Distributed Map and prod's endpoint captures data
    # (Baseline data), so together every optional path is there; only prod's release has the
    # A/B decision (candidate_weight > 0).
    dev, prod = (
        _all_states(state_machine_definition(synthesized.json(env, "workflow")))
        | _all_states(state_machine_definition(synthesized.json(env, "workflow"), release=True))
        for env in ("dev", "prod")
    )
    # Only a gate on an evaluation metric (Gate passed, test_infra_evaluation) and one table gate
    # named for every table (DeployStage.table_gate, test_local_table_gate) add these.
    named = {
        state_names.GATE_PASSED,
        state_names.READ_TABLE_GATE,
        state_names.TABLE_QUALITY_GATE,
        state_names.TABLE_GATE_PASSED,
    }
    assert prod == NAMES - named
    assert NAMES - named - dev == {
        state_names.MANY_SHARDS,
        state_names.GENERATE_DATASET_AT_SCALE,
        state_names.SEED_SHARD_AT_SCALE,
        state_names.BASELINE_DATA,
        *AB_STATES,
    }


def test_invalid_input_error_is_the_reject_states_error(synthesized: SynthesizedApp) -> None:
    definition = state_machine_definition(synthesized.json("dev", "workflow"))
    reject = definition["States"][state_names.REJECT_INPUT]
    assert (
        reject["Parameters"]["Error"]
        == state_names.INVALID_EXECUTION_INPUT
        == ("InvalidExecutionInput")
    )
