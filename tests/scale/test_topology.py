"""The replicated topology (scripts/topology.py) under load: customers chat through HAProxy while one gateway, one
Rasa worker, one action server and the Redis primary are killed (kill -9) in turn.

The load, the per-message bookkeeping and the table are tests/e2e/test_faults.py's (``Load``, ``Fault``,
``_count``): every message answered or told to retry (apology), 0 lost, 0 duplicated. Here a fault's "back" is when
the service as a whole serves again: at once for a part that has a second copy (the load balancer or the gateway's
Rasa failover routes around it), the Sentinels' promotion of the replica for the Redis primary; recovery is from
then until every customer had a message answered by the bot. The killed part's own restart time is printed too.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.e2e.test_faults import (
    CUSTOMERS,
    GATEWAY_LEASE_BOUND_S,
    LOAD_MAX_S,
    MESSAGE_DEADLINE_S,
    RECOVERY_TARGET_S,
    Fault,
    Load,
    _count,
    _recovered_at,
)

pytestmark = pytest.mark.e2e

FAULTS = ["web1", "rasa1", "actions1", "redis-primary"]
# Two known waits, bounded here (every other customer recovers within test_faults' 10 s): a message whose turn was
# in flight on the killed gateway stays leased to it (test_faults.GATEWAY_LEASE_BOUND_S); a conversation whose turn
# was in flight on the killed Rasa worker keeps that worker's ticket lock in Redis until TICKET_LOCK_LIFETIME (20 s)
# ends, then the usual target applies.
LOCK_BOUND_S = {"web1": GATEWAY_LEASE_BOUND_S, "rasa1": 20.0 + RECOVERY_TARGET_S}
PROMOTION_TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory, relaxed_client_limits: dict) -> Iterator[object]:
    from topology import Topology  # scripts/topology.py

    running = Topology(tmp_path_factory.mktemp("topology-var"), extra_env=relaxed_client_limits)
    try:
        running.start()
    except Exception as exc:  # noqa: BLE001 - the services' logs say why
        logs = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}"
                         for p in (Path(running.var_dir) / "logs").glob("*.log"))
        pytest.fail(f"topology did not start: {exc}\n{logs}")
    yield running
    running.stop()


def test_the_public_frontend_refuses_the_internal_api_and_the_internal_one_needs_the_token(topology) -> None:  # noqa: ANN001
    body = {"conversation_id": "x", "reason": "customer_request"}
    public = httpx.post(f"{topology.web_url}/internal/handoffs", json=body,
                        headers={"X-Internal-Token": topology.internal_token})
    assert public.status_code == 404  # HAProxy: never forwarded
    internal = httpx.post(f"{topology.internal_url}/internal/handoffs", json=body,
                          headers={"X-Internal-Token": "wrong"})
    assert internal.status_code in (401, 403)
    assert httpx.get(f"{topology.internal_url}/").status_code == 404  # only /internal/ behind that frontend


def test_customers_through_the_load_balancer_survive_each_part_killed(topology) -> None:  # noqa: ANN001
    load = Load(topology.web_url)
    threads = [threading.Thread(target=load.customer, args=(i,), daemon=True) for i in range(CUSTOMERS)]
    started = time.monotonic()
    for t in threads:
        t.start()
    faults: list[Fault] = []
    restarts: dict[str, float] = {}
    try:
        time.sleep(8)  # every customer mid-conversation
        for part in FAULTS:
            name = topology.primary_name() if part == "redis-primary" else part
            fault = Fault(part, time.monotonic())
            if part == "redis-primary":
                old = topology.sentinel_primary()
                topology.supervisor.hold(name)
                topology.kill(name)
                deadline = time.monotonic() + PROMOTION_TIMEOUT_S
                while topology.sentinel_primary() in (old, None):
                    assert time.monotonic() < deadline, "the Sentinels did not promote the replica"
                    time.sleep(0.1)
                fault.back = time.monotonic()
                topology.supervisor.release(name)  # it comes back and is turned into a replica
            else:
                topology.kill(name)
                fault.back = fault.killed  # its second copy serves
            deadline = fault.back + 60
            while time.monotonic() < deadline and not fault.recovered:
                fault.recovered = _recovered_at(load, fault.back)
                time.sleep(0.2)
            faults.append(fault)
            if part != "rasa1":  # a Rasa worker reloads its model for ~1 min: do not wait for it here
                restarts[name] = topology.wait_ready(name, timeout_s=120) - fault.killed
            time.sleep(3)
            assert time.monotonic() - started < LOAD_MAX_S
    finally:
        load.stop.set()
        for t in threads:
            t.join(timeout=MESSAGE_DEADLINE_S + 40)

    primary = topology.sentinel_primary()
    client = redis.Redis(host=primary[0], port=primary[1], password=topology.password)
    table, problems = _count(load, faults, client, started, bounds=LOCK_BOUND_S)
    out = Path(topology.var_dir) / "topology-fault-table.md"
    restarted = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in restarts.items())
    out.write_text(table + f"\n\nkilled part ready again after: {restarted}\n")
    print("\n" + table + f"\nkilled part ready again after: {restarted}\n(written to {out})")
    assert not problems, "\n".join(problems)


def _cpu_seconds(pids: set[int]) -> float:
    """utime + stime of these processes (/proc/<pid>/stat, clock ticks), those still alive."""
    import os

    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / tick


def test_cpu_seconds_per_message_of_each_part_without_faults(topology) -> None:  # noqa: ANN001
    """Measured, not asserted: CPU per answered customer message of each part, over a quiet load (docs/CAPACITY.md)."""
    from stack import session_members

    for name in topology.supervisor.services:
        topology.wait_ready(name, timeout_s=180)
    groups = {"gateways": ["web1", "web2"], "rasa workers": ["rasa1", "rasa2"], "action servers": ["actions1",
              "actions2"], "haproxy": ["lb"], "redis + sentinels": ["redis1", "redis2", "sentinel1", "sentinel2",
                                                                   "sentinel3"]}
    pids = {g: set().union(*(session_members(topology.pid_of(n)) for n in names)) for g, names in groups.items()}
    load = Load(topology.web_url)
    threads = [threading.Thread(target=load.customer, args=(i,), daemon=True) for i in range(CUSTOMERS)]
    before = {g: _cpu_seconds(p) for g, p in pids.items()}
    started = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(20)
    load.stop.set()
    for t in threads:
        t.join(timeout=60)
    elapsed = time.monotonic() - started
    after = {g: _cpu_seconds(p) for g, p in pids.items()}
    answered = sum(1 for s in load.sent if s.outcome == "answered")
    assert answered > 0
    lines = [f"{answered} messages answered in {elapsed:.1f} s by {CUSTOMERS} customers through HAProxy",
             "| part (both copies) | CPU s | CPU ms per answered message |", "|---|---|---|"]
    for g in groups:
        used = after[g] - before[g]
        lines.append(f"| {g} | {used:.2f} | {1000 * used / answered:.0f} |")
    table = "\n".join(lines)
    (Path(topology.var_dir) / "topology-cpu.md").write_text(table + "\n")
    print("\n" + table)
