"""Reliability: a handoff the desk could not receive is delivered later, once, or becomes a supervisor alert; the
customer is told only what is true."""
from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import handoff as action
from conversations import keys
from handoff.undelivered import GROUP, UndeliveredConsumer


def _tracker(cid: str, text: str = "I want a human now") -> Tracker:
    events: list[dict[str, Any]] = [{"event": "user", "text": text, "timestamp": 1.0,
                                     "parse_data": {"intent": {"name": "request_human", "confidence": 0.9},
                                                    "entities": [], "frustration": {"score": 40}}}]
    latest = dict(events[-1]["parse_data"], text=text)
    return Tracker(cid, {"language": "en"}, latest, events, False, None, {"name": "webchat"}, "action_listen")


@pytest.fixture
async def desk_down(desk, monkeypatch: pytest.MonkeyPatch):
    """The action server cannot reach the desk (closed port) but reaches Redis; the gateway's own background
    consumer is paused so the test decides when consumers run."""
    monkeypatch.setenv("HANDOFF_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("REDIS_URL", desk.settings.redis_url)
    action.settings.cache_clear()

    async def paused(*_: Any, **__: Any) -> int:
        await asyncio.sleep(0.05)
        return 0

    monkeypatch.setattr(desk.app.state.undelivered, "run_once", paused)
    await asyncio.sleep(1.2)  # let a read that was already blocking (1 s) return
    yield desk
    action.settings.cache_clear()


async def _run_action(cid: str) -> CollectingDispatcher:
    dispatcher = CollectingDispatcher()
    await action.ActionHandoffToHuman().run(dispatcher, _tracker(cid), {})
    return dispatcher


def _consumer(desk, name: str, attempts: int = 3, backoff_s: float = 0.0) -> UndeliveredConsumer:
    state = desk.app.state
    return UndeliveredConsumer(desk.redis, state.desk, state.store, state.webhook, attempts, backoff_s, name)


async def test_stored_while_the_desk_is_down_then_queued_exactly_once(desk_down) -> None:
    desk = desk_down
    await desk.agent("alice")
    cid = (await desk.say("I want a human"))["conversation_id"]
    # The customer asks twice while the desk is unreachable: both requests are kept.
    first, second = await _run_action(cid), await _run_action(cid)
    for dispatcher in (first, second):
        responses = [m.get("response") for m in dispatcher.messages]
        assert responses == ["utter_handoff_empathy_request", "utter_handoff_recorded"]  # no queue position promised
    assert await desk.redis.xlen(keys.undelivered_handoffs()) == 2
    assert await desk.redis.zcard(keys.queue()) == 0

    # Two gateways start consuming at the same time.
    a, b = _consumer(desk, "gw-a"), _consumer(desk, "gw-b")
    for _ in range(3):
        await asyncio.gather(a.run_once(), b.run_once())
    queued = await desk.redis.zrange(keys.queue(), 0, -1)
    assert len(queued) == 1
    assert (await desk.app.state.desk.get(queued[0].decode()))["conversation_id"] == cid
    assert await desk.redis.xlen(keys.undelivered_handoffs()) == 0
    assert (await desk.redis.xpending(keys.undelivered_handoffs(), GROUP))["pending"] == 0
    # The customer now learns they are waiting for an agent (once), and the bot stays silent.
    history = (await desk.http.get(f"/api/webchat/conversations/{cid}/messages")).json()["messages"]
    notices = [m for m in history if m["role"] == "system" and "hold on" in m["text"]]
    assert len(notices) == 1
    calls = len(desk.rasa.calls)
    await desk.say("hello?", cid)
    assert len(desk.rasa.calls) == calls
    assert await desk.redis.zcard(keys.alerts()) == 0


async def test_a_handoff_that_keeps_failing_becomes_a_supervisor_alert(desk_down, monkeypatch) -> None:
    desk = desk_down
    sue = await desk.agent("sue", role="supervisor")
    cid = (await desk.say("I want a human"))["conversation_id"]
    await _run_action(cid)
    calls = {"n": 0}

    async def broken_create(request: dict[str, Any]):
        calls["n"] += 1
        raise ConnectionError("desk storage unavailable")

    monkeypatch.setattr(desk.app.state.desk, "create", broken_create)
    patient = _consumer(desk, "gw-a", attempts=3, backoff_s=30)
    await patient.run_once()
    await patient.run_once()  # the backoff has not passed: no second attempt yet
    assert calls["n"] == 1 and await desk.redis.zcard(keys.alerts()) == 0
    assert (await desk.redis.xpending(keys.undelivered_handoffs(), GROUP))["pending"] == 1

    hasty = _consumer(desk, "gw-b", attempts=3, backoff_s=0)  # another gateway takes the entry over
    for _ in range(5):
        await hasty.run_once()
    assert calls["n"] == 3, "not retried up to the limit, or retried beyond it"
    alerts = (await desk.http.get("/api/agent/alerts", headers=sue.headers)).json()
    assert [(a["kind"], a["conversation_id"]) for a in alerts] == [("handoff_undelivered", cid)]
    assert alerts[0]["attempts"] == "3" and "unavailable" in alerts[0]["error"]
    assert json.loads(alerts[0]["request"])["reason_code"] == "explicit_request"
    assert await desk.redis.xlen(keys.undelivered_handoffs()) == 0  # handed to people, not dropped silently


async def test_an_invalid_or_orphaned_request_is_alerted_at_once(desk_down) -> None:
    desk = desk_down
    await desk.redis.xadd(keys.undelivered_handoffs(), {"body": json.dumps({"conversation_id": "x", "language": "fr"}),
                                                       "ts": 1.0})
    await desk.redis.xadd(keys.undelivered_handoffs(), {"body": json.dumps({
        "conversation_id": "gone", "reason_code": "complaint", "priority": 2, "language": "en"}), "ts": 1.0})
    await _consumer(desk, "gw-a", attempts=5).run_once()
    alerts = await desk.app.state.desk.alerts()
    assert sorted(a["conversation_id"] for a in alerts) == ["gone", "x"]
    assert all(a["attempts"] == "1" for a in alerts)


async def test_when_nothing_can_be_kept_the_customer_is_told_it_did_not_go_through(desk_down, monkeypatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:9/0")  # Redis unreachable as well
    action.settings.cache_clear()
    dispatcher = await _run_action("conv-nowhere")
    texts = [m.get("text") or m.get("response") for m in dispatcher.messages]
    assert texts[0] == "utter_handoff_empathy_request"
    assert "not recorded" in texts[1] and "utter_handoff_recorded" not in texts
    assert "in the queue" not in texts[1]


def test_the_action_sends_no_verification_digits_or_phone() -> None:
    events = [
        {"event": "slot", "name": "requested_slot", "value": "phone_last4"},
        {"event": "user", "text": "5310", "timestamp": 1.0, "parse_data": {"intent": {"name": "goodbye"}}},
        {"event": "user", "text": "call me 13812345310", "timestamp": 2.0,
         "parse_data": {"intent": {"name": "request_human"}}},
    ]
    tracker = Tracker("c1", {"phone_last4": "5310", "verified_orders": {"DM2026110512": "5310"}},
                      events[-1]["parse_data"], events, False, None, {"name": "webchat"}, "action_listen")
    body = action.redact_request({"conversation_id": "c1", "signals": {"said": "5310 / 13812345310"},
                                  "summary": "phone 13812345310", "customer": {"verified": True}}, tracker)
    text = json.dumps(body)
    assert "5310" not in text and "13812345310" not in text
    assert body["conversation_id"] == "c1" and body["summary"] == "phone 138********"
