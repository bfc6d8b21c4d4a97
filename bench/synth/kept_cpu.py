"""CPU of a whole-app synth with every report kept against one engine run every synth.

    .venv/bin/python bench/synth/kept_cpu.py [--rounds 3] [--against "packs every synth"]

Each synth runs in a fresh process, as ``cdk synth`` runs ``app.py`` (``cdk.json``'s context
plus the CLI's path and asset metadata and version reporting), alternating: every report kept
(a cache filled by a first synth), and the same with one engine not kept: the three cdk-nag
packs registered themselves ("packs every synth"), or aws-cdk-lib's built-in CloudFormation
validation as a plain ``App`` runs it ("built-in validation every synth"). Prints the CPU
seconds (user + sys) of the Python process and of jsii's Node process with its children, read
from ``/proc`` once synth returns.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, os, sys, time
import aws_cdk
import mlstack.app
if sys.argv[2] == "packs every synth":
    mlstack.app.KeptNagPack = lambda pack, cache_dir: pack
context = json.loads(open("cdk.json").read())["context"]
context.update({"policy_cache_dir": sys.argv[3], "aws:cdk:enable-path-metadata": True,
                "aws:cdk:enable-asset-metadata": True, "aws:cdk:version-reporting": True})
if sys.argv[2] == "built-in validation every synth":
    mlstack.app.build_app(aws_cdk.App(outdir=sys.argv[1], context=context)).synth()
else:
    mlstack.app.build_app(outdir=sys.argv[1], context=context).synth()
def children(pid):
    tasks = os.listdir(f"/proc/{pid}/task")
    return [c for t in tasks for c in open(f"/proc/{pid}/task/{t}/children").read().split()]
pending, node = children(os.getpid()), 0.0
while pending:
    pid = pending.pop()
    pending += children(pid)
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    node += sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
print(json.dumps({"python": time.process_time(), "node": node}))
"""

KEPT = "every report kept"
AGAINST = ["packs every synth", "built-in validation every synth"]


def synth(config: str, cache: str) -> dict[str, float]:
    env = {**os.environ, "CDK_DISABLE_CLI_TELEMETRY": "true", "AWS_REGION": "us-east-1"}
    env["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = "20"
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, out, config, cache],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--against", choices=AGAINST, default=AGAINST[0])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        synth(KEPT, cache)  # fills the cache
        for round_ in range(1, args.rounds + 1):
            for config in (KEPT, args.against):
                load = Path("/proc/loadavg").read_text().split()[0]
                cpu = synth(config, cache)
                print(
                    f"round {round_}, load {load}, {config}: Node {cpu['node']:.1f} s, "
                    f"Python {cpu['python']:.1f} s CPU"
                )


if __name__ == "__main__":
    main()
