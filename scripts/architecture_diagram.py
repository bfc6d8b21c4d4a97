#!/usr/bin/env python3
"""Draw the synthesized app as a Graphviz diagram: one box per stack, one node per construct
inside it (with the resource types it creates), one arrow per reference between constructs
(``Ref``, ``Fn::GetAtt``, ``DependsOn``, and the cross-stack ``Fn::ImportValue`` and
``Fn::GetStackOutput``).

Reads a cloud assembly (``cdk.out``), so the picture is of what CloudFormation receives, not of
what the code intends. Usage::

    python scripts/architecture_diagram.py cdk.out --stage dev --dot docs/architecture.dot
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Resources that every stack has and that say nothing about the architecture.
IGNORED_TYPES = {"AWS::CDK::Metadata"}


@dataclass
class Stack:
    name: str
    template: dict[str, Any]
    constructs: dict[str, Counter[str]] = field(default_factory=dict)
    owner: dict[str, str] = field(default_factory=dict)  # logical id -> construct node
    images: dict[str, str] = field(default_factory=dict)  # image tag -> construct node


def stacks_of(cdk_out: Path, stage: str) -> list[Stack]:
    """The stacks of one stage (its nested assembly), in the manifest's order."""
    assembly = cdk_out / f"assembly-{stage}"
    manifest = json.loads((assembly / "manifest.json").read_text())
    stacks = []
    for artifact in manifest["artifacts"].values():
        if artifact["type"] != "aws:cloudformation:stack":
            continue
        template = json.loads((assembly / artifact["properties"]["templateFile"]).read_text())
        stack = Stack(name=artifact["displayName"].replace("/", "-"), template=template)
        for logical_id, resource in template.get("Resources", {}).items():
            if resource["Type"] in IGNORED_TYPES:
                continue
            path = resource.get("Metadata", {}).get("aws:cdk:path", logical_id).split("/")
            # dev/Workflow/Seeder/Role/Resource -> "Seeder": the construct under the stack.
            construct = path[2] if len(path) > 2 else logical_id
            node = f"{stack.name}/{construct}"
            stack.owner[logical_id] = node
            stack.constructs.setdefault(node, Counter())[short_type(resource["Type"])] += 1
        add_image_assets(stack, assembly / artifact["properties"]["templateFile"])
        stacks.append(stack)
    if not stacks:
        raise SystemExit(f"no stacks for stage {stage!r} in {cdk_out}")
    return stacks


def add_image_assets(stack: Stack, template_file: Path) -> None:
    """Container image assets are no resources, but the models and jobs run them: draw each one
    as an "ECR image" of the construct that builds it (``Images/Training`` -> ``Images``)."""
    assets_file = template_file.with_name(template_file.name.replace(".template.", ".assets."))
    if not assets_file.exists():
        return
    for asset in json.loads(assets_file.read_text()).get("dockerImages", {}).values():
        construct, _, rest = asset["displayName"].partition("/")
        node = f"{stack.name}/{construct}"
        image = rest.split("/")[0]
        label = "ECR image" if image == "Resource" else f"ECR image {image}"
        stack.constructs.setdefault(node, Counter())[label] += 1
        for destination in asset["destinations"].values():
            stack.images[destination["imageTag"]] = node


def short_type(resource_type: str) -> str:
    """AWS::SageMaker::EndpointConfig -> SageMaker EndpointConfig."""
    parts = resource_type.split("::")
    return " ".join(parts[1:]) if parts[0] in ("AWS", "Custom") else resource_type


def references(value: Any) -> Iterator[tuple[str, str]]:
    """("ref", logical id), ("import", export name) and ("output", "stack/output") pairs found
    anywhere in ``value``."""
    if isinstance(value, dict):
        if "Ref" in value and isinstance(value["Ref"], str):
            yield "ref", value["Ref"]
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            yield "ref", target[0] if isinstance(target, list) else target.split(".")[0]
        if "Fn::ImportValue" in value and isinstance(value["Fn::ImportValue"], str):
            yield "import", value["Fn::ImportValue"]
        if "Fn::GetStackOutput" in value:
            output = value["Fn::GetStackOutput"]
            yield "output", f"{output['StackName']}/{output['OutputName']}"
        for item in value.values():
            yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


def edges_of(stacks: list[Stack]) -> set[tuple[str, str]]:
    # ("import", export name) and ("output", "stack/output") -> the construct node it reads
    published: dict[tuple[str, str], str] = {}
    for stack in stacks:
        for output_name, output in stack.template.get("Outputs", {}).items():
            targets = [t for kind, t in references(output["Value"]) if kind == "ref"]
            if not targets or targets[0] not in stack.owner:
                continue
            published["output", f"{stack.name}/{output_name}"] = stack.owner[targets[0]]
            export = output.get("Export", {}).get("Name")
            if isinstance(export, str):
                published["import", export] = stack.owner[targets[0]]
    edges = set()
    for stack in stacks:
        for logical_id, resource in stack.template.get("Resources", {}).items():
            source = stack.owner.get(logical_id)
            if source is None:
                continue
            depends = resource.get("DependsOn", [])
            found = [("ref", d) for d in ([depends] if isinstance(depends, str) else depends)]
            found += list(references(resource.get("Properties", {})))
            text = json.dumps(resource.get("Properties", {}))
            found += [("image", tag) for tag in stack.images if tag in text]
            for kind, target in found:
                if kind == "ref":
                    node = stack.owner.get(target)
                elif kind == "image":
                    node = stack.images[target]
                else:
                    node = published.get((kind, target))
                if node is not None and node != source:
                    edges.add((source, node))
    return edges


def to_dot(stage: str, stacks: list[Stack]) -> str:
    lines = [
        f'digraph "{stage}" {{',
        '  graph [rankdir=LR, fontname="Helvetica", fontsize=11, compound=true, '
        f'label="mlstack: stage {stage} (synthesized templates)", labelloc=t];',
        '  node [shape=box, style="rounded,filled", fillcolor="#f5f7fa", fontname="Helvetica", '
        "fontsize=10];",
        '  edge [color="#5b6b7f", arrowsize=0.6];',
    ]
    for index, stack in enumerate(stacks):
        lines.append(f"  subgraph cluster_{index} {{")
        lines.append(f'    label="{stack.name}"; style="rounded"; color="#9aa8b8";')
        for node, types in sorted(stack.constructs.items()):
            kinds = "\\n".join(
                f"{t} x{n}" if n > 1 else t for t, n in sorted(types.items(), key=str)
            )
            label = f"{node.split('/', 1)[1]}\\n{kinds}"
            lines.append(f'    "{node}" [label="{label}"];')
        lines.append("  }")
    for source, target in sorted(edges_of(stacks)):
        lines.append(f'  "{source}" -> "{target}";')
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cdk_out", type=Path, help="cloud assembly directory (cdk.out)")
    parser.add_argument("--stage", default="dev", help="stage to draw (default: dev)")
    parser.add_argument("--dot", type=Path, help="write the Graphviz source here (else stdout)")
    args = parser.parse_args(argv)
    dot = to_dot(args.stage, stacks_of(args.cdk_out, args.stage))
    if args.dot is None:
        sys.stdout.write(dot)
    else:
        args.dot.write_text(dot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
