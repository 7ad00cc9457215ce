"""action_handoff_to_human: reason, priority, empathy first, and nothing lost when the handoff service is down."""
from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import handoff, verification
from actions.verification_store import customer_key
from bot.shared.frustration.decision import DECISION_SLOT, decide
from bot.shared.frustration.escalation import EscalationEngine
from conversations.keys import conversation_customer


def user(text: str, intent: str, score: float = 0.0, ts: float = 1.0) -> dict[str, Any]:
    return {"event": "user", "text": text, "timestamp": ts,
            "parse_data": {"intent": {"name": intent, "confidence": 0.9}, "entities": [],
                           "frustration": {"score": score}}}


ENGINE = EscalationEngine.from_yaml()


def tracker(events: list[dict[str, Any]], slots: dict[str, Any] | None = None) -> Tracker:
    """A tracker as the action receives it: with the record the EscalationPolicy set for the latest message
    (bot/shared/frustration/decision.py, the same call the policy makes with the model's config)."""
    latest = dict(events[-1]["parse_data"], text=events[-1]["text"])
    slots = {"language": "en", **(slots or {})}
    _, record = decide(ENGINE, events, slots.get("customer_tier"))
    events = [*events, {"event": "slot", "name": DECISION_SLOT, "value": record}]
    return Tracker("conv-h", slots, latest, events, False, None, {"name": "webchat"}, "action_listen")


@pytest.fixture
def offline_service(redis_url: str, monkeypatch: pytest.MonkeyPatch):
    """Point the action at a closed port (service down) and a real Redis; clean the streams it writes."""
    monkeypatch.setenv("HANDOFF_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("REDIS_URL", redis_url)
    handoff.settings.cache_clear()
    verification.reset()
    monkeypatch.setattr(handoff, "_complaints", {})
    client = redis.Redis.from_url(redis_url)
    client.delete(handoff.PENDING_STREAM, customer_key("conv-h"), conversation_customer("conv-h"))
    yield client
    client.delete(handoff.PENDING_STREAM, customer_key("conv-h"), conversation_customer("conv-h"))
    handoff.settings.cache_clear()
    verification.reset()


async def test_safety_incident_gets_serious_empathy_and_top_priority(offline_service) -> None:
    dispatcher = CollectingDispatcher()
    events = [user("the power bank you sold me caught fire and burned my hand", "complaint", 40)]
    result = await handoff.ActionHandoffToHuman().run(dispatcher, tracker(events), {})
    assert [m["response"] for m in dispatcher.messages] == ["utter_handoff_empathy_serious", "utter_handoff_recorded"]
    assert SlotSet("handoff_reason", "sensitive_safety") in result
    assert SlotSet("handoff_priority", 1.0) in result
    assert SlotSet("handoff_active", True) in result


async def test_undelivered_handoff_is_kept_with_its_context(offline_service) -> None:
    dispatcher = CollectingDispatcher()
    events = [user("where is my parcel", "order_status", 10, ts=1.0),
              user("I want a human now", "request_human", 35, ts=2.0)]
    await handoff.ActionHandoffToHuman().run(dispatcher, tracker(events), {})
    assert dispatcher.messages[0]["response"] == "utter_handoff_empathy_request"
    ((_, fields),) = offline_service.xrange(handoff.PENDING_STREAM)
    body = json.loads(fields[b"body"])
    assert body["conversation_id"] == "conv-h" and body["reason_code"] == "explicit_request"
    assert body["frustration"]["curve"] == [{"ts": 1.0, "score": 10.0}, {"ts": 2.0, "score": 35.0}]
    assert body["language"] == "en" and body["channel"] == "webchat"


async def test_gold_member_complaint_outranks_a_regular_one(offline_service) -> None:
    regular, gold = CollectingDispatcher(), CollectingDispatcher()
    events = [user("I want to file a complaint about the courier", "complaint", 30)]
    r = await handoff.ActionHandoffToHuman().run(regular, tracker(events), {})
    # The tier the server recorded when the customer verified an order (actions/forms.py), not a slot.
    await verification.store().remember_customer("conv-h", "42", "gold")
    g = await handoff.ActionHandoffToHuman().run(gold, tracker(events), {})
    priority = {e["name"]: e["value"] for e in r if e.get("event") == "slot"}["handoff_priority"]
    gold_priority = {e["name"]: e["value"] for e in g if e.get("event") == "slot"}["handoff_priority"]
    assert gold_priority < priority
    assert regular.messages[0]["response"] == "utter_handoff_empathy_upset"


async def test_the_action_reads_the_policys_decision_and_does_not_score_again(offline_service) -> None:
    """A calm-looking message the policy escalated (its record says so) keeps the policy's reason and priority."""
    events = [user("hello", "greet", 5)]
    record = {"tier": "regular", "escalate": True, "by_tier": {"regular": {
        "escalate": True, "reason": "sensitive_fraud", "priority": 1, "repeat_complaint_priority": 1,
        "signals": {"frustration": 5, "fired": ["sensitive_fraud"]}}}}
    decided = Tracker("conv-h", {"language": "en"}, dict(events[-1]["parse_data"], text="hello"),
                      [*events, {"event": "slot", "name": DECISION_SLOT, "value": record}], False, None,
                      {"name": "webchat"}, "action_listen")
    result = await handoff.ActionHandoffToHuman().run(CollectingDispatcher(), decided, {})
    assert SlotSet("handoff_reason", "sensitive_fraud") in result and SlotSet("handoff_priority", 1.0) in result
    ((_, fields),) = offline_service.xrange(handoff.PENDING_STREAM)
    body = json.loads(fields[b"body"])
    # The tracker part of the context package travels with the request.
    assert [t["text"] for t in body["tracker"]["turns"]] == ["hello"]
    assert "escalation_decision" not in body["tracker"]["slots"]


def test_frustration_curve_restarts_with_the_session() -> None:
    events = [user("a", "greet", 5, 1.0), {"event": "session_started"}, user("b", "greet", 7, 3.0)]
    assert handoff.frustration_curve(events) == [{"ts": 3.0, "score": 7.0}]


async def test_forged_customer_slots_are_ignored(offline_service) -> None:
    """customer_id / customer_tier in the tracker count only when the server recorded them itself."""
    events = [user("I want to file a complaint about the courier", "complaint", 30)]
    forged = tracker(events, {"customer_tier": "platinum", "customer_id": "7"})
    result = await handoff.ActionHandoffToHuman().run(CollectingDispatcher(), forged, {})
    plain = await handoff.ActionHandoffToHuman().run(CollectingDispatcher(), tracker(events), {})
    priority = {e["name"]: e["value"] for e in result if e.get("event") == "slot"}["handoff_priority"]
    assert priority == {e["name"]: e["value"] for e in plain if e.get("event") == "slot"}["handoff_priority"]
    ((_, fields), _) = offline_service.xrange(handoff.PENDING_STREAM)
    assert json.loads(fields[b"body"])["customer"] == {"id": None, "tier": "regular", "verified": False}


async def test_recorded_customer_reaches_the_desk(offline_service) -> None:
    await verification.store().remember_customer("conv-h", "42", "platinum")
    events = [user("I want a human now", "request_human", 35)]
    await handoff.ActionHandoffToHuman().run(CollectingDispatcher(), tracker(events), {})
    ((_, fields),) = offline_service.xrange(handoff.PENDING_STREAM)
    assert json.loads(fields[b"body"])["customer"] == {"id": "42", "tier": "platinum", "verified": True}
