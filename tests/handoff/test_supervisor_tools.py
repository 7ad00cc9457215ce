"""Supervisors' tools in the console API: every alert in one list with acknowledge (SLA pickup, undelivered
handoffs, repeat complaints, group incidents) and agent accounts created from the console; the admin command
without a terminal."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import redis

from bot.shared.frustration.complaints import ComplaintConfig, ComplaintTracker, ProblemKey
from conversations import keys

ROOT = Path(__file__).resolve().parents[2]


def _complaints(desk) -> ComplaintTracker:
    """The action server's complaint tracker (sync Redis), on the desk's database."""
    return ComplaintTracker(redis.Redis.from_url(desk.settings.redis_url),
                            ComplaintConfig(repeat_threshold=2, group_threshold=2))


async def test_supervisors_see_every_kind_of_alert_and_acknowledge_them(desk) -> None:
    alice = await desk.agent("alice")
    sue = await desk.agent("sue", role="supervisor")
    service = desk.app.state.desk
    sla = await service.raise_alert("sla_pickup", "h1", "c1", since=service.clock.timestamp() - 300,
                                    fields={"reason_code": "complaint", "effective_priority": "2"})
    await service.raise_alert("handoff_undelivered", "", "c2", since=service.clock.timestamp(),
                              fields={"reason_code": "explicit_request", "attempts": 3, "error": "down"})
    tracker = _complaints(desk)
    for _ in range(2):
        await asyncio.to_thread(tracker.record_complaint, "cust-7", "DM2026111501")
    for customer in ("cust-1", "cust-2"):
        await asyncio.to_thread(tracker.report_problem, customer, ProblemKey("carrier_hub", "ZTO Hangzhou Hub"))

    assert (await desk.http.get("/api/agent/alerts", headers=alice.headers)).status_code == 403
    alerts = (await desk.http.get("/api/agent/alerts", headers=sue.headers)).json()
    assert [a["kind"] for a in alerts] == ["sla_pickup", "handoff_undelivered", "repeat_complaint", "group_incident"]
    repeat, incident = alerts[2], alerts[3]
    assert (repeat["customer_id"], repeat["order_number"], repeat["complaints"]) == ("cust-7", "DM2026111501", 2)
    assert (incident["problem_kind"], incident["problem_value"], incident["customers"]) == (
        "carrier_hub", "zto hangzhou hub", 2)
    assert sorted(incident["sample_customers"]) == ["cust-1", "cust-2"]

    # Agents cannot acknowledge, other sites cannot either; a supervisor can, once; each is audited.
    ack = f"/api/agent/alerts/{repeat['id']}/ack"
    assert (await desk.http.post(ack, headers=alice.headers)).status_code == 403
    cross = {**sue.headers, "Origin": "https://evil.example"}
    assert (await desk.http.post(ack, headers=cross)).status_code == 403
    for alert in (repeat, incident, {"id": sla}):
        r = await desk.http.post(f"/api/agent/alerts/{alert['id']}/ack", headers=sue.headers)
        assert r.status_code == 200, r.text
    assert (await desk.http.post(ack, headers=sue.headers)).status_code == 404
    for bad in ("repeat-1-0", "nope", "0123456789ab"):
        assert (await desk.http.post(f"/api/agent/alerts/{bad}/ack", headers=sue.headers)).status_code == 404
    left = (await desk.http.get("/api/agent/alerts", headers=sue.headers)).json()
    assert [a["kind"] for a in left] == ["handoff_undelivered"]
    # The stream entries stay (they are the record); the acknowledgement expires with the desk's retention.
    assert await desk.redis.xlen("csbot:complaints:repeat_flags") == 1
    assert 0 < await desk.redis.ttl(keys.alert_acknowledged(repeat["id"])) <= desk.settings.handoff_retention_s
    assert await desk.redis.zscore(keys.alerts(), sla) is None
    log = (await desk.http.get("/api/agent/audit", headers=sue.headers)).json()
    assert sorted(e["detail"] for e in log if e["action"] == "alert_ack") == sorted(
        [f'{{"alert_id": "{repeat["id"]}", "kind": "repeat_complaint"}}',
         f'{{"alert_id": "{incident["id"]}", "kind": "group_incident"}}',
         f'{{"alert_id": "{sla}", "kind": "sla_pickup"}}'])


async def test_a_supervisor_creates_an_agent_who_can_then_log_in(desk) -> None:
    sue = await desk.agent("sue", role="supervisor")
    body = {"username": "new.agent", "display_name": "New <b>Agent</b>", "password": "long-enough-pw",
            "role": "agent"}
    r = await desk.http.post("/api/agent/agents", json=body, headers={**sue.headers, "Origin": desk.base_url})
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["username"] == "new.agent" and created["role"] == "agent" and "password" not in created
    login = await desk.http.post("/api/agent/login", json={"username": "new.agent", "password": "long-enough-pw"})
    assert login.status_code == 200 and login.json()["agent"]["role"] == "agent"
    desk.http.cookies.clear()
    listed = (await desk.http.get("/api/agent/agents", headers=sue.headers)).json()
    assert "new.agent" in [a["username"] for a in listed]
    log = (await desk.http.get("/api/agent/audit", headers=sue.headers)).json()
    assert [e["agent"] for e in log if e["action"] == "create_agent"] == ["sue"]
    # A second supervisor account too.
    r = await desk.http.post("/api/agent/agents", headers=sue.headers,
                             json={**body, "username": "boss2", "role": "supervisor"})
    assert r.status_code == 201 and r.json()["role"] == "supervisor"


async def test_only_supervisors_from_the_console_create_accounts_under_the_password_policy(desk) -> None:
    alice = await desk.agent("alice")
    sue = await desk.agent("sue", role="supervisor")
    good = {"username": "carl", "display_name": "Carl", "password": "long-enough-pw", "role": "agent"}
    assert (await desk.http.post("/api/agent/agents", json=good)).status_code == 401
    assert (await desk.http.post("/api/agent/agents", json=good, headers=alice.headers)).status_code == 403
    cross = {**sue.headers, "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    assert (await desk.http.post("/api/agent/agents", json=good, headers=cross)).status_code == 403
    for bad in ({"password": "short"}, {"username": "x"}, {"username": "bad name!"}, {"role": "admin"},
                {"display_name": "x" * 81}):
        r = await desk.http.post("/api/agent/agents", json={**good, **bad}, headers=sue.headers)
        assert r.status_code == 422, (bad, r.text)
    assert await desk.app.state.agents.id_for("carl") is None
    assert (await desk.http.post("/api/agent/agents", json=good, headers=sue.headers)).status_code == 201
    taken = await desk.http.post("/api/agent/agents", json={**good, "password": "another-long-pw"}, headers=sue.headers)
    assert taken.status_code == 409 and "taken" in taken.json()["detail"]
    # The existing account kept its password.
    r = await desk.http.post("/api/agent/login", json={"username": "carl", "password": "long-enough-pw"})
    assert r.status_code == 200


def test_admin_command_without_a_terminal_says_what_to_do() -> None:
    env = {k: v for k, v in os.environ.items() if k != "HANDOFF_ADMIN_PASSWORD"}
    env["PYTHONPATH"] = str(ROOT)
    env["REDIS_URL"] = "redis://127.0.0.1:9/0"  # never reached: the missing terminal is found first
    done = subprocess.run([sys.executable, "-m", "handoff.admin", "create-agent", "--username", "ann"],
                          env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, cwd=ROOT,
                          check=False)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "no terminal" in done.stderr and "HANDOFF_ADMIN_PASSWORD" in done.stderr


def test_admin_command_reports_an_unreachable_redis_without_a_traceback() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HANDOFF_ADMIN_PASSWORD": "long-enough-pw",
           "REDIS_URL": "redis://127.0.0.1:9/0"}
    done = subprocess.run([sys.executable, "-m", "handoff.admin", "create-agent", "--username", "ann"],
                          env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, cwd=ROOT,
                          check=False)
    assert done.returncode == 1 and "Traceback" not in done.stderr and "cannot reach Redis" in done.stderr
