"""Where a synth of the whole app goes: imports (jsii's Node runtime), the Python app, each engine.

    .venv/bin/python bench/synth/profile.py [--rounds 1]

Each configuration runs in a fresh process, as ``cdk synth`` runs the app (the CLI's own start,
~1-2 s, is not included: ``bench/synth/run.sh`` times the real CLI). Per process: seconds to
import ``aws_cdk``, ``cdk_nag`` and the validator (which starts jsii's Node runtime and loads
the libraries), to build the app's constructs (``build_app``: both stages, every construct),
and to synthesize (``App.synth``: the cdk-nag packs run as aspects, cfn-guard as a validation
plugin on every template, the assembly is written). The configurations: no engine, each of the
four engines alone, all four (as ``app.py`` runs). The engines are chosen by replacing
``mlstack.app.policy_engines`` in the measuring process only; nothing in the app changes. The
app gets ``cdk.json``'s context (feature flags), as under ``cdk synth``.
Prints a Markdown table; ``engine cost`` = synth with it - synth with none. ``--rounds`` runs the
configurations round-robin that many times (medians).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, sys, time
started = time.perf_counter()
import aws_cdk
from cdk_nag import AwsSolutionsChecks, HIPAASecurityChecks, NIST80053R5Checks
from cdklabs.cdk_validator_cfnguard import CfnGuardValidator
import mlstack.app
imported = time.perf_counter()
wanted = set(sys.argv[1].split(",")) - {""}
def engines(app):
    made = {
        "AwsSolutions": lambda: AwsSolutionsChecks(app),
        "NIST 800-53 R5": lambda: NIST80053R5Checks(app),
        "HIPAA Security": lambda: HIPAASecurityChecks(app),
        "cfn-guard (Control Tower)": lambda: CfnGuardValidator(control_tower_rules_enabled=True),
    }
    return [make() for name, make in made.items() if name in wanted]
mlstack.app.policy_engines = engines
context = json.loads(open("cdk.json").read())["context"]  # the feature flags cdk synth passes
app = mlstack.app.build_app(aws_cdk.App(outdir=sys.argv[2], context=context))
built = time.perf_counter()
assembly = app.synth()
synthesized = time.perf_counter()
failures = mlstack.app.validation_failures(__import__("pathlib").Path(assembly.directory))
print(json.dumps({"import": imported - started, "build": built - imported,
                  "synth": synthesized - built, "failures": len(failures)}))
"""

ENGINES = ["AwsSolutions", "NIST 800-53 R5", "HIPAA Security", "cfn-guard (Control Tower)"]
CONFIGS = {"no engine": [], **{name: [name] for name in ENGINES}, "all four (app.py)": ENGINES}


def run(engines: list[str]) -> dict[str, float]:
    env = {**os.environ, "CDK_DISABLE_CLI_TELEMETRY": "true", "AWS_REGION": "us-east-1"}
    env["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = "20"
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, ",".join(engines), out],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    results: dict[str, list[dict[str, float]]] = {name: [] for name in CONFIGS}
    for _ in range(args.rounds):
        for name, engines in CONFIGS.items():
            results[name].append(run(engines))
    load_after = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"load average before {load_before}, after {load_after}; {args.rounds} round(s)")
    print()
    print("| configuration | import (s) | build (s) | synth (s) | total (s) | engine cost (s) "
          "| findings |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    base = statistics.median(r["synth"] for r in results["no engine"])
    for name, runs in results.items():
        imp, build, synth = (
            statistics.median(r[k] for r in runs) for k in ("import", "build", "synth")
        )
        cost = "" if name == "no engine" else f"{synth - base:+.1f}"
        print(f"| {name} | {imp:.1f} | {build:.1f} | {synth:.1f} | {imp + build + synth:.1f} "
              f"| {cost} | {int(max(r['failures'] for r in runs))} |")  # fmt: skip


if __name__ == "__main__":
    main()
