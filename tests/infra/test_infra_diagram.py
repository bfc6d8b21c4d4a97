"""The architecture diagram is drawn from the cloud assembly, and the committed one is current."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from aws_cdk import App

from mlstack.app import build_app
from tests.infra.conftest import REPO, cdk_context


def load_script() -> ModuleType:
    path = REPO / "scripts" / "architecture_diagram.py"
    spec = importlib.util.spec_from_file_location("architecture_diagram", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


diagram = load_script()


@pytest.fixture(scope="module")
def cdk_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # As the CLI synthesizes: cdk.json's context plus the construct paths in each resource's
    # metadata (the CLI turns them on; the diagram groups resources by them).
    context = {**cdk_context(), "aws:cdk:enable-path-metadata": True}
    app = build_app(App(context=context, outdir=str(tmp_path_factory.mktemp("cdk.out"))))
    return Path(app.synth().directory)


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_committed_diagram_matches_the_synthesized_app(cdk_out: Path, stage: str) -> None:
    committed = REPO / "docs" / f"architecture-{stage}.dot"
    drawn = diagram.to_dot(stage, diagram.stacks_of(cdk_out, stage))
    assert drawn == committed.read_text(), "docs/ diagram is stale: run `make diagram`"


def test_every_stack_is_a_box_and_cross_stack_reads_are_arrows(cdk_out: Path) -> None:
    dot = diagram.to_dot("prod", diagram.stacks_of(cdk_out, "prod"))
    for stack in ("prod-Data", "prod-Workflow"):
        assert f'label="{stack}"' in dot
    # Prod ships with no released model, so no Serving stack (docs/deploying.md).
    assert "prod-Serving" not in dot
    # The workflow and the seeder read the data stack's bucket (GetStackOutput).
    for source in ("prod-Workflow/Workflow", "prod-Workflow/Seeder"):
        assert f'"{source}" -> "prod-Data/DataBucket";' in dot
    # Image assets are drawn, and the state machine (which runs them) points at them.
    assert '"prod-Workflow/Workflow" -> "prod-Workflow/Images";' in dot
    assert "ECR image Training" in dot


def test_unknown_stage_is_refused(cdk_out: Path) -> None:
    with pytest.raises(FileNotFoundError):
        diagram.stacks_of(cdk_out, "staging")
