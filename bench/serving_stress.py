"""Valid requests under pressure: rounds of mixed clients against the real ``serve``.

    .venv/bin/python bench/serving_stress.py [--rounds 5] [--seconds 8] [--large-mb 4]

Each round runs at once (``tests/serving/stress_client.py`` says what each does): keep-alive
one-record CSV and JSON clients, chunked CSV clients, multi-MB bodies (a 4 MB one-row CSV, a
~5 MB batch; Content-Length or chunked), a client trickling its body, clients that stall in
the body or the head (must get a 408) and hostile clients (``tests/serving/fuzz_client``),
each followed by a valid request on its connection when that stays open. Every valid request
must get its 200 and the right prediction: a reset, a close without an answer, a timeout or
any other status is a failure. The server: 2 workers, ``MLSTACK_BODY_TIMEOUT=5`` (the stalled
clients' 408 in 5 s). Prints the load average, the valid requests answered by kind, the
stalled clients' statuses, the hostile requests' statuses and every failure; exits 1 on any.
``make test`` runs the bounded sibling, ``tests/serving/test_serving_stress.py``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.serving.conftest import reference_data, start_serve, stop_serve  # noqa: E402
from tests.serving.stress_client import MB, Mix, Outcome, run_round  # noqa: E402
from tests.serving.test_serving_hostile import booted_workers, worker_pids  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--large-mb", type=float, default=4)
    parser.add_argument("--workers", default="2")
    parser.add_argument("--scale", type=int, default=1, help="clients of each kind x this")
    args = parser.parse_args()

    import xgboost as xgb
    from mlstack_containers import model_io

    features, labels = reference_data(2000)
    params = {"objective": "reg:logistic", "eval_metric": "rmse", "max_depth": 4}
    booster = xgb.train(params, xgb.DMatrix(features, label=labels), num_boost_round=5)
    base = Path(tempfile.mkdtemp())
    model_io.save_model(booster, base / "model")
    server = start_serve(
        base,
        booster,
        SAGEMAKER_MODEL_SERVER_WORKERS=args.workers,
        MLSTACK_ACCESS_LOG="false",
        MLSTACK_BODY_TIMEOUT="5",
    )
    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    base_mix = Mix()
    mix = Mix(
        small=base_mix.small * args.scale,
        chunked=base_mix.chunked * args.scale,
        large=base_mix.large * args.scale,
        trickle=base_mix.trickle * args.scale,
        stall=base_mix.stall * args.scale,
        head_stall=base_mix.head_stall * args.scale,
        hostile=base_mix.hostile * args.scale,
        large_bytes=int(args.large_mb * MB),
    )
    outcome = Outcome()
    started = time.monotonic()
    try:
        workers = booted_workers(server.proc.pid, int(args.workers))
        for seed in range(args.rounds):
            run_round(
                server.port,
                lambda x: booster.predict(xgb.DMatrix(x)),
                args.seconds,
                seed,
                mix,
                outcome,
            )
        same_workers = worker_pids(server.proc.pid) == workers
        ping = server.request("GET", "/ping").status
    finally:
        stop_serve(server)
    load_after = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    elapsed = time.monotonic() - started
    print(f"{args.rounds} rounds of {args.seconds:g} s ({elapsed:.0f} s); load average before "
          f"{load_before}, after {load_after}")  # fmt: skip
    print(f"valid requests answered 200 and right: {dict(outcome.valid)}")
    print(f"stalled clients: {dict(outcome.stalls)}")
    print(f"hostile requests: {outcome.hostile.sent:,}; by status: "
          f"{dict(sorted(outcome.hostile.statuses.items()))}")  # fmt: skip
    print(f"worker PIDs unchanged: {same_workers}; /ping after: {ping}")
    failures = outcome.failures + outcome.hostile.failures
    print(f"failures: {len(failures)}")
    for line in failures[:30]:
        print("  ", line)
    return 0 if not failures and same_workers and ping == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
