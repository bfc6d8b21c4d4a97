"""Training across the hosts of ``resourceconfig.json`` with XGBoost's own collective.

The first host (hosts sorted by name) runs the tracker; every host, the first included, joins the
communication group with ``dmlc_task_id`` set to its rank, and the tracker sorts by task id, so
a host's rank is its position in the sorted host list.

Knobs (environment), documented because the tests use them on one machine:

* ``MLSTACK_HOST_ADDRESSES`` — a JSON object mapping host names to addresses, used instead of
  DNS (SageMaker resolves ``algo-1``... itself; on a laptop every host is ``127.0.0.1``).
* ``MLSTACK_TRACKER_PORT`` — the tracker's TCP port (default 9099).
* ``MLSTACK_TRACKER_TIMEOUT`` — seconds the group may take to form, data loading included, and
  a worker keeps trying to reach the tracker (default 1800).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass

from xgboost import collective
from xgboost.tracker import RabitTracker

from mlstack_containers.training.config import Cluster, ConfigError

DEFAULT_TRACKER_PORT = 9099
DEFAULT_TRACKER_TIMEOUT = 1800
_RESOLVE_FOR_S = 300  # SageMaker's DNS for algo-N can lag the container start


@dataclass(frozen=True)
class Settings:
    addresses: dict[str, str]
    port: int
    timeout: int

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        addresses: dict[str, str] = {}
        raw = env.get("MLSTACK_HOST_ADDRESSES")
        if raw:
            try:
                addresses = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"MLSTACK_HOST_ADDRESSES is not valid JSON: {exc}") from None
            if not isinstance(addresses, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in addresses.items()
            ):
                raise ConfigError("MLSTACK_HOST_ADDRESSES must map host names to address strings")
        return cls(
            addresses=addresses,
            port=_int_env(env, "MLSTACK_TRACKER_PORT", DEFAULT_TRACKER_PORT, 1, 65535),
            timeout=_int_env(env, "MLSTACK_TRACKER_TIMEOUT", DEFAULT_TRACKER_TIMEOUT, 1, 86400),
        )

    def address(self, host: str) -> str:
        if host in self.addresses:
            return self.addresses[host]
        deadline = time.monotonic() + _RESOLVE_FOR_S
        while True:
            try:
                return socket.gethostbyname(host)
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise ConfigError(f"cannot resolve host {host!r}: {exc}") from None
                time.sleep(2)


def _int_env(env: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = lo - 1
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be an integer in [{lo}, {hi}], got {raw!r}")
    return value


@contextmanager
def tracker(cluster: Cluster, settings: Settings) -> Iterator[None]:
    """Run the tracker for the job's lifetime on the leader; nothing elsewhere or on one host.

    Started before the data is loaded, so workers that load faster find it listening.
    """
    if cluster.size == 1 or not cluster.is_leader:
        yield
        return
    address = settings.address(cluster.leader)
    try:
        rabit = RabitTracker(
            n_workers=cluster.size,
            host_ip=address,
            port=settings.port,
            sortby="task",
            timeout=settings.timeout,
        )
        rabit.start()
    except Exception as exc:  # XGBoostError or OSError: the port is taken, the address is wrong
        raise ConfigError(
            f"cannot start the XGBoost tracker on {address}:{settings.port}: {_first_line(exc)}"
        ) from None
    try:
        yield
    finally:
        # After an error elsewhere the tracker may fail too; the first error is the one to report.
        with suppress(Exception):
            rabit.wait_for(timeout=60)
        rabit.free()


@contextmanager
def communicator(cluster: Cluster, settings: Settings) -> Iterator[None]:
    """Join the communication group (every host; nothing on one host)."""
    if cluster.size == 1:
        yield
        return
    tracker_address = settings.address(cluster.leader)
    if not cluster.is_leader:
        wait_for_tracker(tracker_address, settings.port, settings.timeout)
    args = {
        "dmlc_communicator": "rabit",
        "dmlc_tracker_uri": tracker_address,
        "dmlc_tracker_port": settings.port,
        # Zero-padded: the tracker sorts task ids as strings.
        "dmlc_task_id": f"{cluster.rank:06d}",
        "dmlc_retry": max(3, settings.timeout // 10),
        "dmlc_timeout": settings.timeout,
    }
    with collective.CommunicatorContext(**args):
        if collective.get_rank() != cluster.rank:
            raise ConfigError(
                f"host {cluster.current_host} got rank {collective.get_rank()}, "
                f"expected {cluster.rank}"
            )
        yield


def wait_for_tracker(address: str, port: int, timeout: float) -> None:
    """Poll until the tracker accepts connections.

    XGBoost's own retry backs off linearly (2 s, 4 s, 6 s...), which costs a worker that starts
    before the leader many idle seconds; the tracker ignores a connection closed unused.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((address, port), timeout=5):
                return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise ConfigError(
                    f"the XGBoost tracker at {address}:{port} (first host) did not answer within "
                    f"{timeout:g}s: {exc.strerror or exc}"
                ) from None
            time.sleep(0.2)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
