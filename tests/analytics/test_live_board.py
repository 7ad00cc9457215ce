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


async def test_occupancy_and_load_from_presence_minutes(dashboard) -> None:
    """Presence is sampled once a minute per desk member online (analytics/presence.py). Minutes of the period
    (China-time days) give each member's online minutes, occupancy (minutes owning a conversation / online) and load
    (average owned / limit); a second gateway sampling the same minute adds nothing."""
    from analytics.kpis import Filters
    from analytics.presence import PresenceSampler

    app = dashboard.app
    boss = await dashboard.login("occ-boss")
    alice = await dashboard.login("occ-alice", role="agent")
    ids = {name: (await dashboard.http.get("/api/agent/me", headers=h)).json()["id"]
           for name, h in (("boss", boss), ("alice", alice))}
    gateway_a = PresenceSampler(app.state.agents, app.state.analytics_engine, app.state.desk.policy.tz)
    gateway_b = PresenceSampler(app.state.agents, app.state.analytics_engine, app.state.desk.policy.tz)
    m0 = datetime.fromisoformat("2026-11-23T10:00:30+08:00").timestamp()
    assert await gateway_a.sample_once(m0) == 2  # both online, nobody owns a conversation
    handoff = await _handoff(dashboard, "explicit_request")
    assert (await dashboard.http.post(f"/api/agent/handoffs/{handoff}/claim", headers=alice)).status_code == 200
    assert await gateway_a.sample_once(m0 + 60) == 2
    assert await gateway_b.sample_once(m0 + 75) == 0  # the same minute, from another gateway
    assert await gateway_b.sample_once(m0 + 120) == 2

    r = await dashboard.http.get("/api/analytics/agents", headers=boss,
                                 params={"start": "2026-11-23", "end": "2026-11-23"})
    rows = {row["agent_id"]: row for row in r.json()["rows"]}
    assert {k: rows[ids["alice"]][k] for k in ("online_minutes", "occupancy", "load", "handoffs")} == {
        "online_minutes": 3, "occupancy": 0.6667, "load": 0.2222, "handoffs": 0}  # (0 + 1/3 + 1/3) / 3
    assert {k: rows[ids["boss"]][k] for k in ("online_minutes", "occupancy", "load")} == {
        "online_minutes": 3, "occupancy": 0.0, "load": 0.0}
    s = (await dashboard.http.get("/api/analytics/summary", headers=boss,
                                  params={"start": "2026-11-23", "end": "2026-11-23"})).json()
    assert s["agent_load"] == {"online_minutes": 6, "busy_minutes": 2, "occupancy": 0.3333, "load": 0.1111}
    assert s["targets"]["agent_load"] == {"min": 0.70, "max": 0.80}
    other_day = app.state.analytics_kpis.agent_load(Filters("2026-11-24", "2026-11-24"))
    assert other_day == {"online_minutes": 0, "busy_minutes": 0, "occupancy": None, "load": None}
    csv_text = (await dashboard.http.get("/api/analytics/export/agents.csv", headers=boss,
                                         params={"start": "2026-11-23", "end": "2026-11-23"})).text
    assert "online_minutes,occupancy,load" in csv_text.splitlines()[0]


async def test_each_gateway_samples_presence_and_rolls_settled_days_up_from_its_start(dashboard, tmp_path) -> None:
    """The sampler and the rollups run live: analytics.wiring.start starts them next to the consumer; the sampler
    samples at once, and a settled day of the record (written 3 days ago) is rolled up in the first round."""
    import asyncio
    import time

    from sqlalchemy import text

    from analytics import db, wiring
    from analytics.settings import AnalyticsSettings

    await dashboard.login("occ-live-boss")
    settings = AnalyticsSettings(database_url=f"sqlite:///{tmp_path / 'live.db'}", enabled=True, poll_s=0.2)
    old = time.time() - 3 * 86400
    day = time.strftime("%Y-%m-%d", time.gmtime(old + 8 * 3600))
    engine = db.make_engine(settings.database_url)
    db.write(engine, [{"stream": "csbot:conv:old:messages", "entry_id": "1-0", "conversation_id": "old", "ts": old,
                       "kind": "message_customer", "text": "hi", "day": day, "hour": 9, "dow": 0}],
             [{"conversation_id": "old", "started_ts": old, "day": day, "hour": 9, "dow": 0}])
    engine.dispose()
    app = dashboard.app
    tasks = wiring.start(app, app.state.redis, settings)
    try:
        assert len(tasks) == 3
        for _ in range(50):
            with app.state.analytics_engine.connect() as conn:
                n = conn.execute(text("SELECT COUNT(*) FROM analytics_agent_minutes")).scalar()
                rolled = conn.execute(text("SELECT COUNT(*) FROM analytics_rollup WHERE part = 'conv'")).scalar()
            if n and rolled:
                break
            await asyncio.sleep(0.1)
        assert n == 1  # the supervisor online now
        assert rolled == 1  # the old day's conversation, rolled up by the gateway's own loop
        r = await dashboard.http.get("/api/analytics/summary", params={"start": day, "end": day},
                                     headers=await dashboard.login("occ-live-reader"))
        assert r.json()["conversations"] == 1
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
