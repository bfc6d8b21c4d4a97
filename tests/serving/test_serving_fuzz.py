"""HTTP-level fuzz of the real ``serve``: a few thousand generated requests (every content
type, valid and broken bodies, Content-Length, chunked and broken framings, short bodies,
bodies up to over the payload limit) on keep-alive connections. No answer may be a 5xx, no
connection may be dropped without ``Connection: close``, no worker may die, and ``/ping``
answers after. Bounded in count and time (the longer fuzz + load run is bench/serving_fuzz.py).
"""

from __future__ import annotations

import random
import threading
import time

from tests.serving.conftest import start_serve, stop_serve
from tests.serving.fuzz_client import Connection, Tally, request_for
from tests.serving.test_serving_hostile import booted_workers, worker_pids

REQUESTS = 3000
BUDGET_S = 50  # the machine is shared: stop early rather than run long
CLIENTS = 2


def test_thousands_of_generated_requests_get_no_5xx_no_reset_and_kill_no_worker(trained):
    base, booster = trained
    server = start_serve(
        base, booster, SAGEMAKER_MODEL_SERVER_WORKERS="2", MLSTACK_ACCESS_LOG="false"
    )
    try:
        workers = booted_workers(server.proc.pid)
        assert len(workers) == 2
        tally = Tally()
        deadline = time.monotonic() + BUDGET_S

        def client(seed: int) -> None:
            rng = random.Random(seed)
            conn = Connection(server.port)
            try:
                for _ in range(REQUESTS // CLIENTS):
                    if time.monotonic() > deadline:
                        break
                    conn.send(request_for(rng, width=2), tally)
            finally:
                conn.close()

        threads = [threading.Thread(target=client, args=(seed,)) for seed in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not tally.failures, "\n".join(tally.failures) + server.log_text()[-4000:]
        assert tally.sent >= 1000, f"only {tally.sent} requests in {BUDGET_S} s"
        assert max(tally.statuses) < 500
        assert tally.statuses[200] >= tally.sent // 10  # the fuzz also reaches the model
        assert {400, 404, 405, 406, 413, 415} <= set(tally.statuses), tally.statuses
        assert worker_pids(server.proc.pid) == workers, server.log_text()[-4000:]
        assert server.request("GET", "/ping").status == 200
        assert "Traceback" not in server.log_text(), server.log_text()[-4000:]
    finally:
        stop_serve(server)
