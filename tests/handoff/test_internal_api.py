"""POST /internal/handoffs: token, validation, idempotency, queue vs ticket, and the context package."""
from __future__ import annotations

import json

import jsonschema

from bot.shared.paths import REPO_ROOT
from conversations import keys

SCHEMA = json.loads((REPO_ROOT / "docs" / "handoff-context.schema.json").read_text())


async def test_internal_endpoint_rejects_missing_and_wrong_tokens(desk) -> None:
    cid = (await desk.say("hello"))["conversation_id"]
    body = {"conversation_id": cid, "reason_code": "explicit_request", "priority": 3, "language": "en"}
    assert (await desk.http.post("/internal/handoffs", json=body)).status_code == 401
    wrong = await desk.http.post("/internal/handoffs", json=body, headers={"X-Internal-Token": "guess"})
    assert wrong.status_code == 401
    assert await desk.redis.get(keys.owner(cid)) is None


async def test_invalid_body_and_unknown_conversation(desk) -> None:
    cid = (await desk.say("hello"))["conversation_id"]
    bad = await desk.handoff(cid, priority=9)
    assert bad.status_code == 422 and "priority" in bad.json()["detail"]
    bad = await desk.handoff(cid, reason_code="bored")
    assert bad.status_code == 422
    assert (await desk.handoff("nosuchconversation")).status_code == 404


async def test_handoff_in_hours_with_an_agent_online_is_queued_and_silences_the_bot(desk) -> None:
    await desk.agent("alice")
    cid = (await desk.say("where is my order"))["conversation_id"]
    r = await desk.handoff(cid)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == "queued" and out["queue_position"] == 1 and out["in_service_hours"] is True
    assert out["ticket_id"] is None and out["next_contact"] is None
    # No pickup history yet: the estimate is the SLA target for one round of agents.
    assert out["expected_wait_s"] == desk.settings.handoff_sla_pickup_s
    assert (await desk.redis.get(keys.owner(cid))) == b"queue"

    calls = len(desk.rasa.calls)
    first = await desk.say("hello??", cid)
    second = await desk.say("anyone there?", cid)
    third = await desk.say("please", cid)
    assert len(desk.rasa.calls) == calls, "the bot answered a conversation waiting for an agent"
    assert [m["role"] for m in first["messages"]] == ["system"]
    assert second["messages"] == [] and third["messages"] == [], "more than one waiting notice"
    history = (await desk.http.get(f"/api/webchat/conversations/{cid}/messages")).json()["messages"]
    assert [m["text"] for m in history if m["role"] == "customer"][-3:] == ["hello??", "anyone there?", "please"]


async def test_second_call_returns_the_open_handoff(desk) -> None:
    cid = (await desk.say("hello"))["conversation_id"]
    first = (await desk.handoff(cid)).json()
    again = (await desk.handoff(cid, reason_code="complaint", priority=1)).json()
    assert again["handoff_id"] == first["handoff_id"]
    assert await desk.redis.zcard(keys.queue()) == 1


async def test_outside_service_hours_opens_a_ticket_with_the_policy_reply_time(desk) -> None:
    desk.set_clock("2026-11-23T22:30:00+08:00")  # Monday evening, after 21:00
    await desk.agent("alice")
    cid = (await desk.say("hello"))["conversation_id"]
    out = (await desk.handoff(cid)).json()
    assert out["status"] == "ticket" and out["in_service_hours"] is False
    assert out["ticket_id"].startswith("T20261123-")
    assert out["next_contact"] == "2026-11-24T10:00:00+08:00"  # off_hours_ticket_reply_by on the next day
    assert out["expected_wait_s"] is None
    ticket = await desk.redis.hgetall(keys.ticket(out["ticket_id"]))
    assert ticket[b"handoff_id"].decode() == out["handoff_id"] and ticket[b"reason"] == b"outside_hours"
    # The request does not disappear: it still waits in the queue for the morning shift.
    assert await desk.redis.zscore(keys.queue(), out["handoff_id"]) is not None


async def test_in_hours_but_nobody_online_opens_a_ticket(desk) -> None:
    cid = (await desk.say("hello"))["conversation_id"]
    out = (await desk.handoff(cid)).json()
    assert out["status"] == "ticket" and out["in_service_hours"] is True
    assert out["next_contact"] == "2026-11-24T10:00:00+08:00"


async def test_queue_orders_by_effective_priority_then_waiting_time(desk) -> None:
    await desk.agent("alice")
    regular = (await desk.say("a"))["conversation_id"]
    platinum = (await desk.say("b"))["conversation_id"]
    urgent = (await desk.say("c"))["conversation_id"]
    later_regular = (await desk.say("d"))["conversation_id"]
    await desk.handoff(regular, priority=3, frustration={"score": 10, "curve": []})
    await desk.handoff(platinum, priority=3, customer={"id": "c1", "tier": "platinum", "verified": True},
                       frustration={"score": 10, "curve": []})
    await desk.handoff(urgent, priority=1, reason_code="sensitive_safety", frustration={"score": 10, "curve": []})
    await desk.handoff(later_regular, priority=3, frustration={"score": 10, "curve": []})
    sup = await desk.agent("sue", role="supervisor")
    rows = (await desk.http.get("/api/agent/queue", headers=sup.headers)).json()
    assert [r["conversation_id"] for r in rows] == [urgent, platinum, regular, later_regular]
    assert [r["effective_priority"] for r in rows] == [1, 2, 3, 3]
    assert rows[0]["reason_code"] == "sensitive_safety" and rows[0]["queue_position"] == 1


async def test_context_package_has_transcript_tracker_details_and_earlier_conversations(desk) -> None:
    await desk.agent("alice")
    earlier = (await desk.say("my parcel is broken"))["conversation_id"]
    customer = {"id": "cust-42", "tier": "gold", "verified": True}
    first = (await desk.handoff(earlier, customer=customer, reason_code="complaint")).json()
    cid = (await desk.say("where is my order DM2026110512"))["conversation_id"]
    await desk.say("<script>alert(1)</script> no that does not help", cid)
    out = (await desk.handoff(cid, customer=customer, summary="asked twice about delivery")).json()
    sup = await desk.agent("sue", role="supervisor")
    view = (await desk.http.get(f"/api/agent/handoffs/{out['handoff_id']}", headers=sup.headers)).json()
    context = view["context"]
    jsonschema.validate(context, SCHEMA)
    assert context["schema_version"] == "1.3.0"
    assert [(m["role"], m["text"]) for m in context["transcript"]] == [
        ("customer", "where is my order DM2026110512"), ("bot", "bot:where is my order DM2026110512"),
        ("customer", "<script>alert(1)</script> no that does not help"),
        ("bot", "bot:" + "<script>alert(1)</script> no that does not help"[:30]),
    ]
    assert all(m["ts"].startswith("20") for m in context["transcript"])
    assert context["turns"][0]["intent"] == "order_status" and context["turns"][0]["confidence"] == 0.93
    assert context["turns"][0]["entities"][0] == {"entity": "order_number", "value": "DM2026110512",
                                                  "extractor": "IdentifierExtractor"}
    assert context["identifiers"]["order_numbers"] == ["DM2026110512"]
    assert context["slots"]["order_number"] == "DM2026110512" and "tracking_number" not in context["slots"]
    assert context["actions"] == [{"name": "action_check_order_number", "ts": context["actions"][0]["ts"],
                                   "confidence": 1.0, "policy": "RulePolicy",
                                   "results": ["set order_number", "replied"]}]
    assert context["kb_articles"][0]["id"] == "orders-delivery-time"
    assert context["kb_articles"][0]["score"] == 0.81 and context["kb_articles"][0]["feedback"] == "not_helpful"
    assert [p["score"] for p in context["frustration"]["per_message"]] == [35, 72]
    assert context["frustration"]["curve"][-1]["score"] == 72
    assert context["customer"] == {"id": "cust-42", "tier": "gold", "verified": True, "language": "en"}
    assert context["escalation"]["effective_priority"] == 1  # gold tier lifts priority 2 to 1
    assert "order_status" in context["summary"]["text"] and "DM2026110512" in context["summary"]["text"]
    assert context["summary"]["bot_tried"] == ["action_check_order_number"]
    assert context["summary"]["provided"] == "asked twice about delivery"
    assert [e["handoff_id"] for e in context["earlier_conversations"]] == [first["handoff_id"]]
    assert context["earlier_conversations"][0]["reason_code"] == "complaint"
    assert context["tracker_available"] is True


async def test_context_without_rasa_still_has_the_full_transcript(desk) -> None:
    await desk.agent("alice")
    cid = (await desk.say("hello"))["conversation_id"]
    desk.rasa.fail = True
    out = await desk.handoff(cid)
    assert out.status_code == 200
    context = json.loads((await desk.redis.hget(keys.handoff(out.json()["handoff_id"]), "context")).decode())
    jsonschema.validate(context, SCHEMA)
    assert context["tracker_available"] is False and context["turns"] == []
    assert [m["text"] for m in context["transcript"]] == ["hello", "bot:hello"]
