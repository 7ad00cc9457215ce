"""Complaint SLAs (handoff/complaints.py): a complaint still unanswered 48 h after it was queued becomes a supervisor
alert, raised by the gateway's real SLA loop (not called by the test), once, on the desk's controllable clock
(conversations/clock.py); an answered complaint and other reasons are not escalated; only supervisors see it."""
from __future__ import annotations

import asyncio

import pytest

from conversations import keys

HOUR = 3600


async def _complaint(desk, text: str) -> tuple[str, str]:
    cid = (await desk.say(text))["conversation_id"]
    r = await desk.handoff(cid, reason_code="complaint")
    assert r.status_code in (200, 201), r.text
    return cid, r.json()["handoff_id"]


async def _overdue(desk, headers) -> list[dict]:
    r = await desk.http.get("/api/agent/alerts", headers=headers)
    assert r.status_code == 200, r.text
    return [a for a in r.json() if a["kind"] == "complaint_overdue"]


@pytest.mark.desk_settings(handoff_sla_check_interval_s=0.1)
async def test_an_unanswered_complaint_is_escalated_after_48_hours(desk) -> None:
    boss = await desk.agent("boss", role="supervisor")
    alice = await desk.agent("alice")
    ignored_cid, ignored = await _complaint(desk, "I want to complain about the delivery")
    answered_cid, answered = await _complaint(desk, "I want to complain about the packaging")
    claimed_cid, claimed = await _complaint(desk, "I want to complain about the agent")
    calm_cid = (await desk.say("I want a human"))["conversation_id"]
    assert (await desk.handoff(calm_cid, reason_code="explicit_request")).status_code in (200, 201)
    # One complaint answered, one claimed but never answered, one left in the queue.
    assert (await desk.http.post(f"/api/agent/handoffs/{answered}/claim", headers=alice.headers)).status_code == 200
    r = await desk.http.post(f"/api/agent/handoffs/{answered}/messages", headers=alice.headers,
                             json={"text": "I am sorry, let me fix this.", "client_message_id": "m-1"})
    assert r.status_code in (200, 201), r.text
    assert (await desk.http.post(f"/api/agent/handoffs/{claimed}/claim", headers=alice.headers)).status_code == 200

    desk.app.state.clock.advance(47 * HOUR)
    await asyncio.sleep(0.5)  # several rounds of the loop
    assert await _overdue(desk, boss.headers) == []

    desk.app.state.clock.advance(1 * HOUR + 5)
    for _ in range(100):
        overdue = await _overdue(desk, boss.headers)
        if len(overdue) == 2:
            break
        await asyncio.sleep(0.1)
    assert sorted(a["handoff_id"] for a in overdue) == sorted([ignored, claimed])
    assert {a["conversation_id"] for a in overdue} == {ignored_cid, claimed_cid}
    assert all(a["wait_s"] >= 48 * HOUR for a in overdue)
    await asyncio.sleep(0.5)  # the loop keeps running: still one alert per complaint
    assert len(await _overdue(desk, boss.headers)) == 2
    # Agents do not see supervisors' alerts; a supervisor acknowledges one and it stays acknowledged.
    assert (await desk.http.get("/api/agent/alerts", headers=alice.headers)).status_code == 403
    mine = next(a for a in overdue if a["handoff_id"] == ignored)
    assert (await desk.http.post(f"/api/agent/alerts/{mine['id']}/ack", headers=boss.headers)).status_code == 200
    await asyncio.sleep(0.3)
    assert [a["handoff_id"] for a in await _overdue(desk, boss.headers)] == [claimed]
    assert await desk.redis.exists(keys.complaint_escalated(ignored)) == 1
    assert answered_cid not in {a["conversation_id"] for a in await _overdue(desk, boss.headers)}
