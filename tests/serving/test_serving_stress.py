"""A valid request is answered whatever else the server is doing (issue 26).

A few bounded rounds of :mod:`tests.serving.stress_client` against the real ``serve`` (2
workers, 2 threads each): keep-alive one-record requests, chunked bodies, multi-MB bodies
(Content-Length and chunked), a client trickling its body, clients that stop sending their body
or their request's head (more of them than the server has threads), and generated hostile
requests, all at once. Every valid request must get a 200 with XGBoost's own prediction
(``Booster.predict``, outside the server): a reset, a close without an answer, a timeout or any
other status fails the test; the stalled clients must get 408 and the hostile ones no 5xx. The
longer run is ``bench/serving_stress.py``.
"""

from __future__ import annotations

import xgboost as xgb

from tests.serving.conftest import start_serve, stop_serve
from tests.serving.stress_client import MB, Mix, Outcome, run_round
from tests.serving.test_serving_hostile import booted_workers, worker_pids

ROUNDS = 3
ROUND_S = 6
BODY_TIMEOUT_S = 3  # MLSTACK_BODY_TIMEOUT: a stalled client's 408 within a round


def test_valid_requests_get_their_answer_amid_large_chunked_slow_and_hostile_clients(trained):
    base, booster = trained
    server = start_serve(
        base,
        booster,
        SAGEMAKER_MODEL_SERVER_WORKERS="2",
        MLSTACK_ACCESS_LOG="false",
        MLSTACK_BODY_TIMEOUT=str(BODY_TIMEOUT_S),
    )
    mix = Mix(large_bytes=4 * MB, body_timeout=BODY_TIMEOUT_S, client_timeout=20)
    outcome = Outcome()
    try:
        workers = booted_workers(server.proc.pid)
        for seed in range(ROUNDS):
            run_round(
                server.port,
                lambda x: booster.predict(xgb.DMatrix(x)),
                ROUND_S,
                seed,
                mix,
                outcome,
            )
        log = server.log_text()[-4000:]
        assert not outcome.failures, _report(outcome) + log
        assert not outcome.hostile.failures, _report(outcome) + log
        kinds = {"small CSV", "chunked CSV", "large CSV", "trickled CSV"}
        assert kinds <= set(outcome.valid), _report(outcome)  # every kind was answered
        assert set(outcome.stalls) == {408}, _report(outcome)
        assert outcome.hostile.sent >= 20, _report(outcome)
        assert worker_pids(server.proc.pid) == workers, log
        assert server.request("GET", "/ping").status == 200
    finally:
        stop_serve(server)


def _report(outcome: Outcome) -> str:
    lines = [
        f"valid answered: {dict(outcome.valid)}",
        f"stalled clients' statuses: {dict(outcome.stalls)}",
        f"hostile: {outcome.hostile.sent} sent, {dict(outcome.hostile.statuses)}",
        *outcome.failures,
        *outcome.hostile.failures,
    ]
    return "\n".join(lines) + "\n"
