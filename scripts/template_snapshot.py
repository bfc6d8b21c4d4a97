#!/usr/bin/env python3
"""Write every template a restructure must leave byte-identical into one folder.

``template_snapshot.py OUT`` synthesizes the app (every environment, and prod after its first
release) and a set of bare stacks, one per combination of the training workflow's optional
stages the environments do not cover (deploy without a registry, an evaluation-metric gate,
spot, baseline, tuning, endpoint cleanup), and writes each stack's template to
``OUT/<name>.template.json`` exactly as the synthesizer wrote it. Compare two snapshots with
``cmp`` (or ``diff -r``): a restructure that changes no behaviour changes no byte.

    .venv/bin/python scripts/template_snapshot.py /tmp/before
    # ...change the code...
    .venv/bin/python scripts/template_snapshot.py /tmp/after && diff -r /tmp/before /tmp/after
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aws_cdk import App, Duration, RemovalPolicy, Stack

from mlstack.app import build_app
from mlstack.config import parse_environment
from mlstack.constructs import (
    DataBucket,
    DataQualityBaseline,
    DatasetSeeder,
    DeployStage,
    HyperparameterTuning,
    ModelImages,
    ModelRegistration,
    ModelRegistry,
    ModelRelease,
    SpotTraining,
    TrafficShift,
    TrainingWorkflow,
)

REPO = Path(__file__).resolve().parents[1]


def _context() -> dict[str, Any]:
    context: dict[str, Any] = json.loads((REPO / "cdk.json").read_text())["context"]
    return context


def _workflow(stack: Stack, **props: Any) -> tuple[TrainingWorkflow, DataBucket]:
    data = DataBucket(stack, "Data")
    images = ModelImages(stack, "Images")
    seeder = DatasetSeeder(stack, "Seeder", bucket=data.bucket)
    workflow = TrainingWorkflow(
        stack,
        "Workflow",
        bucket=data.bucket,
        images=images,
        seed_function=seeder.function,
        name_prefix="demo",
        **props,
    )
    return workflow, data


def _defaults(stack: Stack) -> None:
    _workflow(stack)


def _deploy_training_metric(stack: Stack) -> None:
    _workflow(
        stack,
        deploy=DeployStage(metric="validation:rmse", threshold=0.5),
        removal_policy=RemovalPolicy.DESTROY,
    )


def _deploy_evaluation_metric_ab(stack: Stack) -> None:
    _workflow(
        stack,
        deploy=DeployStage(
            metric="evaluation:rmse",
            threshold=0.5,
            candidate_weight=0.1,
            traffic=TrafficShift(type="canary", step_percent=10),
        ),
    )


def _tuning_spot_baseline(stack: Stack) -> None:
    _workflow(
        stack,
        tuning=HyperparameterTuning(
            objective_metric="validation:rmse",
            ranges={"eta": {"type": "continuous", "min": 0.1, "max": 0.5}},
        ),
        spot=SpotTraining(max_wait=Duration.days(2)),
        baseline=DataQualityBaseline(),
        evaluation_instance_type="ml.m5d.large",
    )


def _registration_only(stack: Stack) -> None:
    registry = ModelRegistry(stack, "Registry", group_name="demo-models")
    _workflow(stack, registration=ModelRegistration(registry=registry))


def _registration_release(stack: Stack) -> None:
    registry = ModelRegistry(stack, "Registry", group_name="demo-models")
    workflow, data = _workflow(
        stack,
        registration=ModelRegistration(registry=registry, approval_status="Approved"),
        deploy=DeployStage(metric="validation:rmse", threshold=0.5, candidate_weight=0.2),
    )
    assert workflow.deployment is not None
    ModelRelease(
        stack,
        "Release",
        deployment=workflow.deployment,
        registry=registry,
        key=data.key,
        topic=workflow.topic,
    )


BARE: dict[str, Callable[[Stack], None]] = {
    "bare-defaults": _defaults,
    "bare-deploy-training-metric": _deploy_training_metric,
    "bare-deploy-evaluation-metric-ab": _deploy_evaluation_metric_ab,
    "bare-tuning-spot-baseline": _tuning_spot_baseline,
    "bare-registration-only": _registration_only,
    "bare-registration-release": _registration_release,
}


def _copy_templates(assembly_dir: Path, out: Path, prefix: str) -> None:
    for template in sorted(assembly_dir.rglob("*.template.json")):
        shutil.copyfile(template, out / f"{prefix}{template.name}")


def snapshot(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        # The app as `cdk synth` builds it (mlstack.app.new_app), each bare stack in a plain App.
        app = build_app(context=_context(), outdir=f"{tmp}/app")
        _copy_templates(Path(app.synth().directory), out, "app-")
        data = json.loads((REPO / "environments" / "prod.json").read_text())
        data["endpoint"]["model_package_version"] = 1
        released = build_app(
            environments={"prod": parse_environment("prod", data)},
            context=_context(),
            outdir=f"{tmp}/released",
        )
        _copy_templates(Path(released.synth().directory), out, "released-")
        for name, build in BARE.items():
            app = App(context=_context(), outdir=f"{tmp}/{name}")
            build(Stack(app, "Test"))
            _copy_templates(Path(app.synth().directory), out, f"{name}-")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    snapshot(Path(sys.argv[1]))
