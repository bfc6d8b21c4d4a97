"""What local mode's request/response checks cover and cost in one local run of an environment.

    .venv/bin/python bench/validation.py --env dev --rows 500
    .venv/bin/python bench/validation.py --env prod --rows 2000 \
        --input '{"tuning_max_jobs": 3, "tuning_max_parallel_jobs": 2}'

Runs the environment's workflow locally (as ``mlstack local run`` does, in a fresh work
directory) and prints: the run's status (and error, cause, failed state), its wall seconds, the
seconds spent in the checks (``mlstack.local.validation``'s own clock around each check), their
share of the run, the time to read the services' models (once per process), and the distinct
operations and shapes checked, per service.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mlstack.local import validation  # noqa: E402
from mlstack.local.runner import RunOptions, run  # noqa: E402
from mlstack.local.ui import Reporter  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--env", default="dev")
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--cdk-out", type=Path, default=None)
    parser.add_argument("--input", type=json.loads, default={}, help="more execution input")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlstack-bench-validation-") as tmp:
        started = time.perf_counter()
        report = run(
            RunOptions(
                environment=args.env,
                rows=args.rows,
                workdir=Path(tmp),
                cdk_out=args.cdk_out,
                name="bench-validation",
                extra_input=args.input,
            ),
            Reporter(out=io.StringIO()),
        )
        seconds = time.perf_counter() - started
    print(f"status: {report.status}; releases: {[r['status'] for r in report.releases]}")
    if report.error:
        print(f"failed state: {report.failed_state}\nerror: {report.error}\ncause: {report.cause}")
    for release in report.releases:
        if release["status"] != "SUCCEEDED":
            print(f"release error: {release.get('error')}: {release.get('cause')}")
    checked = [validation.rules(s) for s in validation.VALIDATION_CODES]
    spent = sum(r.stats.seconds for r in checked)
    print(f"run: {seconds:.2f} s; checks: {spent * 1000:.1f} ms ({spent / seconds:.3%} of the run)")
    # Each service's model is read once per process, on its first check (not on the clock
    # above): timed here by reading the models the run used again.
    used = [r.service for r in checked if r.stats.checks]
    load_started = time.perf_counter()
    for service in used:
        validation.ServiceRules(service)
    loading = time.perf_counter() - load_started
    print(f"reading the models of {', '.join(used)}: {loading * 1000:.1f} ms, once per process")
    print(f"checks and models together: {(spent + loading) / seconds:.3%} of the run")
    for r in checked:
        if r.stats.checks:
            print(
                f"{r.service_id}: {r.stats.checks} checks, {len(r.stats.operations)} operations, "
                f"{len(r.stats.shapes)} shapes: {', '.join(sorted(r.stats.operations))}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
