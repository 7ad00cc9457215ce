"""GET /api/analytics/live: the dashboard's live queue and SLA board, read from the desk's state at the moment it is
asked (analytics/live.py), on the desk's controllable clock; supervisors only; an empty desk is zeros and "no data"."""
from __future__ import annotations

import uuid
from datetime import datetime

import pytest

pytestmark = pytest.mark.asyncio
INTERNAL = "t" * 20  # tests/analytics/conftest.py


async def _handoff(dashboard, reason: str, tier: str = "regular") -> str:
    r = await dashboard.http.post("/api/webchat/messages", json={
        "conversation_id": None, "message_id": uuid.uuid4().hex, "text": "help", "metadata": {"ui_lang": "en"}})
    cid = r.json()["conversation_id"]
    r = await dashboard.http.post("/internal/handoffs", headers={"X-Internal-Token": INTERNAL}, json={
        "conversation_id": cid, "channel": "webchat", "reason_code": reason, "priority": 2, "language": "en",
        "customer": {"id": None, "tier": tier, "verified": False}, "frustration": {"score": 10, "curve": []},
        "signals": {}, "summary": None})
    assert r.status_code in (200, 201), r.text
    return r.json()["handoff_id"]


async def test_live_board_counts_the_desk_as_it_is_now(dashboard) -> None:
    boss = await dashboard.login("live-boss")
    empty = await dashboard.http.get("/api/analytics/live", headers=boss)
    assert empty.status_code == 200
    e = empty.json()
    assert e["waiting"] == {"total": 0, "by_priority": {"1": 0, "2": 0, "3": 0, "4": 0}, "vip": 0,
                            "oldest_wait_s": None, "oldest_vip_wait_s": None}
    assert (e["agents"]["online"], e["agents"]["owned"], e["agents"]["load"]) == (1, 0, 0.0)  # the supervisor
    assert e["breaches"] == {"pickup_sla_s": 60, "pickup": 0, "complaints_24h": 0, "complaints_48h": 0,
                             "alerts_open": 0}

    dashboard.app.state.clock.set(datetime.fromisoformat("2026-11-23T10:00:00+08:00"))
    alice = await dashboard.login("live-alice", role="agent")
    alice_id = (await dashboard.http.get("/api/agent/me", headers=alice)).json()["id"]
    await dashboard.app.state.agents.touch(alice_id)  # what the console's live connection does
    regular = await _handoff(dashboard, "explicit_request")
    await _handoff(dashboard, "explicit_request", tier="platinum")  # VIP: one priority step up
    await _handoff(dashboard, "complaint")
    dashboard.app.state.clock.advance(30)
    assert (await dashboard.http.post(f"/api/agent/handoffs/{regular}/claim", headers=alice)).status_code == 200
    dashboard.app.state.clock.advance(25 * 3600)

    r = await dashboard.http.get("/api/analytics/live", headers=boss)
    b = r.json()
    assert b["waiting"]["total"] == 2 and b["waiting"]["vip"] == 1
    assert b["waiting"]["by_priority"] == {"1": 1, "2": 1, "3": 0, "4": 0}
    assert 25 * 3600 <= b["waiting"]["oldest_wait_s"] < 25 * 3600 + 60
    assert b["waiting"]["oldest_vip_wait_s"] >= 25 * 3600
    assert b["agents"]["online"] == 2 and b["agents"]["owned"] == 1 and b["agents"]["capacity"] == 6
    assert b["agents"]["load"] == 0.1667
    assert [(a["owned"], a["limit"], a["load"]) for a in b["agents"]["rows"]] == [(1, 3, 0.3333), (0, 3, 0.0)]
    assert b["breaches"]["pickup"] == 2  # both waiting longer than HANDOFF_SLA_PICKUP_S (60 s)
    assert (b["breaches"]["complaints_24h"], b["breaches"]["complaints_48h"]) == (1, 0)

    # Only supervisors.
    assert (await dashboard.http.get("/api/analytics/live", headers=alice)).status_code == 403
    assert (await dashboard.http.get("/api/analytics/live")).status_code == 401
