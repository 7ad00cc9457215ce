"""action_handoff_to_human: reason, priority, empathy first, and nothing lost when the handoff service is down."""
from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

import pytest
import redis
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import handoff, verification
from actions.verification_store import customer_key


def user(text: str, intent: str, score: float = 0.0, ts: float = 1.0) -> Dict[str, Any]:
    return {"event": "user", "text": text, "timestamp": ts,
            "parse_data": {"intent": {"name": intent, "confidence": 0.9}, "entities": [],
                           "frustration": {"score": score}}}


def tracker(events: List[Dict[str, Any]], slots: Optional[Dict[str, Any]] = None) -> Tracker:
    latest = dict(events[-1]["parse_data"], text=events[-1]["text"])
    return Tracker("conv-h", {"language": "en", **(slots or {})}, latest, events, False, None,
                   {"name": "webchat"}, "action_listen")


@pytest.fixture
def offline_service(redis_url: str, monkeypatch: pytest.MonkeyPatch):
    """Point the action at a closed port (service down) and a real Redis; clean the streams it writes."""
    monkeypatch.setenv("HANDOFF_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("REDIS_URL", redis_url)
    handoff.settings.cache_clear()
    verification.reset()
    monkeypatch.setattr(handoff, "_complaints", None)
    client = redis.Redis.from_url(redis_url)
    client.delete(handoff.PENDING_STREAM, customer_key("conv-h"))
    yield client
    client.delete(handoff.PENDING_STREAM, customer_key("conv-h"))
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
