"""cfn-guard's own CPU over a synthesized assembly: one run over every template with the rules
that apply to any of them, against one run per template with the rules that apply to it.

    .venv/bin/python bench/synth/guard_cpu.py CDK_OUT [--rounds 2]

Runs the plugin's ``cfn-guard`` binary (as jsii unpacked it) with the plugin's flags; the rules
left out are those :mod:`mlstack.guard` leaves out. Prints each run's user + sys CPU.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
from pathlib import Path

from mlstack.guard import control_tower_rules, rules_that_cannot_apply, template_types

PACKAGES = Path.home() / ".cache/aws/jsii/package-cache/@cdklabs/cdk-validator-cfnguard"


def guard_cpu(binary: Path, rule_files: dict[str, Path], templates: list[str]) -> tuple[int, float]:
    """(rule files run, CPU seconds) of one cfn-guard run over ``templates``."""
    left_out = set(rules_that_cannot_apply(control_tower_rules(), template_types(templates)))
    rules = [str(path) for name, path in rule_files.items() if name not in left_out]
    command = [str(binary), "validate"]
    command += [arg for rule in rules for arg in ("--rules", rule)]
    command += [arg for template in templates for arg in ("--data", template)]
    command += ["--output-format", "json", "--show-summary", "none", "--structured"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, capture_output=True, check=False)  # exits 19 on a finding
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return len(rules), after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("cdk_out", type=Path)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    (package,) = PACKAGES.glob("*/*/")
    binary = package / "bin/ubuntu/x86_64/cfn-guard"
    rule_files = {p.stem: p for p in (package / "rules/control-tower/cfn-guard").rglob("*.guard")}
    templates = sorted(str(p) for p in args.cdk_out.glob("assembly-*/*.template.json"))
    for _ in range(args.rounds):
        count, cpu = guard_cpu(binary, rule_files, templates)
        print(f"one run, {len(templates)} templates, {count} rule files: {cpu:.2f} s CPU")
        total = 0.0
        for template in templates:
            count, cpu = guard_cpu(binary, rule_files, [template])
            total += cpu
            print(f"  {Path(template).name}: {count} rule files, {cpu:.2f} s CPU")
        print(f"one run per template: {total:.2f} s CPU")


if __name__ == "__main__":
    main()
