"""Issue 12, item 5: a handoff keeps no secrets and no key lives forever.

* The context package (stored, shown to agents, sent to the helpdesk) holds no verification digits and no full
  phone number, also in the live transcript an agent reads.
* Every key the desk writes during a full handoff cycle has a TTL, or is one of the few named bounded structures
  (trimmed streams, indexes of open items, staff accounts). A new key family without retention fails this test.
"""
from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pytest

from bot.shared.paths import REPO_ROOT
from bot.shared.redact import Redactor, mask_phone, scrub_stored
from conversations import keys
from handoff.context import SCHEMA_VERSION
from handoff.handoffs import PICKUP_SAMPLES

SCHEMA = json.loads((REPO_ROOT / "docs" / "handoff-context.schema.json").read_text())

PHONE = "13812345310"
DIGITS = "5310"  # the verification answer = the phone's last four digits
SECRET_RE = re.compile(r"(?<![0-9A-Za-z])" + DIGITS + r"(?![0-9A-Za-z])")
ORDER = "DM2026110512"
ADDRESS = f"张三 {PHONE} 广东省 深圳市 南山区 科技园路1号"


def verified_tracker(sender_id: str) -> dict[str, Any]:
    """Rasa 3.6 tracker of a customer who verified an order with the phone digits and asked to change the address
    (the slots as actions/verification.py and actions/forms.py set them)."""
    parsed = {"recipient_name": "张三", "phone": PHONE, "province": "广东省", "city": "深圳市", "district": "南山区",
              "address_line": "科技园路1号"}

    def user(ts: float, text: str, intent: str, entities: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        return {"event": "user", "timestamp": ts, "text": text,
                "parse_data": {"intent": {"name": intent, "confidence": 0.9}, "entities": entities or [],
                               "frustration": {"score": 30}}}

    return {
        "sender_id": sender_id,
        "slots": {"language": "zh", "order_number": ORDER, "phone_last4": DIGITS, "verified_orders": {ORDER: DIGITS},
                  "phone": PHONE, "pending_address": parsed, "new_address": " ".join(parsed.values()),
                  "verification_failures": 1.0},
        "events": [
            user(1.0, f"我要改地址 {ORDER}", "change_address",
                 [{"entity": "order_number", "value": ORDER, "extractor": "IdentifierExtractor"}]),
            {"event": "active_loop", "name": "address_form", "timestamp": 1.1},
            {"event": "slot", "name": "requested_slot", "value": "phone_last4", "timestamp": 1.1},
            user(2.0, "1234", "goodbye"),  # a wrong guess is a near-secret too
            {"event": "slot", "name": "verification_failures", "value": 1.0, "timestamp": 2.1},
            user(3.0, DIGITS, "goodbye"),
            {"event": "slot", "name": "phone_last4", "value": DIGITS, "timestamp": 3.1},
            {"event": "slot", "name": "verified_orders", "value": {ORDER: DIGITS}, "timestamp": 3.1},
            {"event": "slot", "name": "requested_slot", "value": "new_address", "timestamp": 3.1},
            user(4.0, ADDRESS, "inform", [{"entity": "phone", "value": PHONE, "extractor": "IdentifierExtractor"}]),
            {"event": "slot", "name": "pending_address", "value": parsed, "timestamp": 4.1},
            {"event": "active_loop", "name": None, "timestamp": 4.2},
            user(5.0, f"不对！我要人工，电话 {PHONE[:3]} {PHONE[3:7]} {PHONE[7:]}", "request_human",
                 [{"entity": "phone", "value": PHONE, "extractor": "IdentifierExtractor"}]),
        ],
    }


def assert_no_secrets(blob: Any, where: str) -> None:
    text = blob if isinstance(blob, str) else json.dumps(blob, ensure_ascii=False)
    assert PHONE not in text, f"full phone number in {where}"
    assert re.sub(r"[\s-]", "", text).find(PHONE) == -1, f"spaced phone number in {where}"
    found = SECRET_RE.findall(text)
    assert not found, f"verification digits {DIGITS} in {where}: {text[:2000]}"
    assert "1234" not in re.findall(r"(?<![0-9A-Za-z])\d{4}(?![0-9A-Za-z])", text), f"a wrong guess in {where}"


async def _verified_conversation(desk) -> str:
    cid = (await desk.say(f"我要改地址 {ORDER}"))["conversation_id"]
    for text in ("1234", DIGITS, ADDRESS, f"不对！我要人工，电话 {PHONE[:3]} {PHONE[3:7]} {PHONE[7:]}"):
        await desk.say(text, cid)
    tracker = verified_tracker(cid)

    async def get_tracker(sender_id: str) -> dict[str, Any]:
        return tracker if sender_id == cid else {"sender_id": sender_id, "slots": {}, "events": []}

    desk.rasa.get_tracker = get_tracker
    return cid


async def test_context_package_and_agent_view_hold_no_verification_digits_or_phone(desk) -> None:
    alice = await desk.agent("alice")
    cid = await _verified_conversation(desk)
    # Attack: what the action server used to send (signals and summary are free text) carries the secrets too.
    r = await desk.handoff(cid, language="zh", customer={"id": "c-9", "tier": "gold", "verified": True},
                           signals={"note": f"verified with {DIGITS}", "phone": PHONE}, summary=f"call {PHONE}")
    assert r.status_code == 200, r.text
    hid = r.json()["handoff_id"]

    stored = await desk.redis.hgetall(keys.handoff(hid))
    for field, value in stored.items():
        assert_no_secrets(value.decode(), f"stored handoff field {field.decode()}")
    context = json.loads(stored[b"context"])
    jsonschema.validate(context, SCHEMA)
    assert context["schema_version"] == SCHEMA_VERSION == "1.3.0"
    # What an agent still needs is there, masked.
    assert "phone_last4" not in context["slots"]
    assert context["slots"]["verified_orders"] == [ORDER]
    assert context["slots"]["phone"] == mask_phone("138") == "138********"
    assert context["slots"]["pending_address"].startswith("广东省 深圳市 南山区")
    assert context["identifiers"]["phones"] == ["138********"]
    assert context["identifiers"]["order_numbers"] == [ORDER]
    customer_lines = [m["text"] for m in context["transcript"] if m["role"] == "customer"]
    assert customer_lines[1:3] == ["****", "****"]
    assert "138********" in customer_lines[3] and "南山区" in customer_lines[3]
    assert context["privacy"] == {"phones": "masked", "verification_digits": "removed", "address": "region_only"}

    # What the console reads: the package and the live transcript, also after new customer messages.
    await desk.http.post(f"/api/agent/handoffs/{hid}/claim", headers=alice.headers)
    await desk.say(f"my number is {PHONE}, code {DIGITS}", cid)
    view = await desk.http.get(f"/api/agent/handoffs/{hid}", headers=alice.headers)
    assert view.status_code == 200
    assert_no_secrets(view.text, "the agent API response")
    assert any("138********" in m["text"] for m in view.json()["messages"])


async def test_without_the_tracker_phones_and_bare_digit_answers_are_still_masked(desk) -> None:
    await desk.agent("alice")
    cid = (await desk.say(f"where is {ORDER}"))["conversation_id"]
    await desk.say(DIGITS, cid)
    await desk.say(f"call me on {PHONE}", cid)
    desk.rasa.fail = True
    r = await desk.handoff(cid)
    assert r.status_code == 200
    assert_no_secrets((await desk.redis.hget(keys.handoff(r.json()["handoff_id"]), "context")).decode(), "context")


def test_redactor_masks_full_width_and_prefixed_phones_but_keeps_identifiers() -> None:
    redactor = Redactor([DIGITS])
    assert redactor.text("电话：１３８１２３４５３１０") == "电话：138********"
    assert redactor.text(f"+86 {PHONE[:3]}-{PHONE[3:7]}-{PHONE[7:]}") == "138********"
    assert redactor.text(f"尾号{DIGITS}，订单 DM202611{DIGITS}") == f"尾号****，订单 DM202611{DIGITS}"
    assert redactor.text("5310", customer=True) == "****"
    assert Redactor().text("0755", customer=True) == "****"  # a bare number answered a prompt
    assert redactor.text("I ordered 2 items on 2026-11-05") == "I ordered 2 items on 2026-11-05"
    package = {"conversation_id": f"ab{DIGITS}cd", "slots": {"phone_last4": DIGITS, "verified_orders": {ORDER: DIGITS}}}
    assert scrub_stored(package, redactor) == {"conversation_id": f"ab{DIGITS}cd",
                                               "slots": {"verified_orders": [ORDER]}}


# ---------------------------------------------------------------- retention


async def _ttl(desk, key: str) -> int:
    return int(await desk.redis.ttl(key))


@pytest.mark.desk_settings(handoff_retention_s=3600, handoff_audit_maxlen=1000, handoff_desk_events_maxlen=500)
async def test_every_key_of_a_full_handoff_cycle_expires_or_is_bounded(desk) -> None:
    service = desk.app.state.desk
    alice = await desk.agent("alice")
    sue = await desk.agent("sue", role="supervisor")

    # 1. In hours: queued, SLA alert, claimed, replied, handed back.
    cid = await _verified_conversation(desk)
    hid = (await desk.handoff(cid, customer={"id": "cust-7", "tier": "regular", "verified": True})).json()["handoff_id"]
    assert await _ttl(desk, keys.handoff(hid)) == -1, "an open handoff must keep its record"
    assert await _ttl(desk, keys.owner(cid)) == -1 and await _ttl(desk, keys.conversation_handoff(cid)) == -1
    desk.app.state.clock.advance(desk.settings.handoff_sla_pickup_s + 2)
    (alert_id,) = await service.check_sla()
    await desk.http.get(f"/api/agent/handoffs/{hid}", headers=alice.headers)
    assert (await desk.http.post(f"/api/agent/handoffs/{hid}/claim", headers=alice.headers)).status_code == 200
    await desk.say("still there?", cid)
    r = await desk.http.post(f"/api/agent/handoffs/{hid}/messages", headers=alice.headers,
                             json={"text": "yes, looking at it", "message_id": "m1"})
    assert r.status_code == 200
    assert (await desk.http.post(f"/api/agent/handoffs/{hid}/handback", headers=alice.headers)).status_code == 200
    assert 0 < await _ttl(desk, keys.handoff(hid)) <= 3600
    assert 0 < await _ttl(desk, keys.alert(alert_id)) <= 3600

    # 2. Out of hours: ticket; claimed in the morning, closed, low CSAT reopens it (persistent again), closed, CSAT.
    desk.set_clock("2026-11-23T22:30:00+08:00")
    cid2 = (await desk.say("my parcel is broken"))["conversation_id"]
    out = (await desk.handoff(cid2, customer={"id": "cust-7", "tier": "regular", "verified": True})).json()
    hid2, ticket = out["handoff_id"], out["ticket_id"]
    assert out["status"] == "ticket" and await _ttl(desk, keys.ticket(ticket)) == -1
    desk.set_clock("2026-11-24T10:05:00+08:00")
    await desk.http.post(f"/api/agent/handoffs/{hid2}/claim", headers=alice.headers)
    await desk.http.post(f"/api/agent/handoffs/{hid2}/close", headers=alice.headers, json={"resolution": "resolved"})
    assert 0 < await _ttl(desk, keys.handoff(hid2)) <= 3600 and 0 < await _ttl(desk, keys.ticket(ticket)) <= 3600
    history = (await desk.http.get(f"/api/webchat/conversations/{cid2}/messages")).json()["messages"]
    await desk.say(history[-1]["buttons"][0]["payload"], cid2)  # 1 star: reopened to a supervisor
    assert (await service.get(hid2))["status"] == "queued"
    assert await _ttl(desk, keys.handoff(hid2)) == -1, "a reopened handoff is open again: no expiry"
    await desk.http.post(f"/api/agent/handoffs/{hid2}/claim", headers=sue.headers)
    await desk.http.post(f"/api/agent/handoffs/{hid2}/close", headers=sue.headers, json={"resolution": "other"})
    history = (await desk.http.get(f"/api/webchat/conversations/{cid2}/messages")).json()["messages"]
    await desk.say(history[-1]["buttons"][4]["payload"], cid2)
    assert (await service.get(hid2))["csat"] == "5"
    await desk.http.get("/api/agent/audit", headers=sue.headers)

    # Every key now in the database: a TTL, or one of the named bounded structures below.
    agent_ids = [alice.account.id, sue.account.id]
    bounded = {
        keys.audit(): "stream trimmed by MAXLEN and MINID",
        keys.desk_events(): "stream trimmed by MAXLEN",
        keys.undelivered_handoffs(): "stream whose entries are deleted once delivered or alerted",
        keys.webhook_outbox(): "stream whose entries are deleted once delivered or failed",
        keys.pickup_waits(): f"list trimmed to {PICKUP_SAMPLES}",
        keys.queue(): "index of open handoffs", keys.tickets(): "index of open tickets",
        keys.alerts(): "index of open alerts, pruned by age",
        keys.agent_usernames(): "staff accounts", keys.agents_online(): "one entry per staff account",
        **{keys.agent(a): "staff account" for a in agent_ids},
        **{keys.agent_active(a): "conversations an agent owns now" for a in agent_ids},
    }
    seen = []
    async for raw in desk.redis.scan_iter(match="*", count=1000):
        key = raw.decode()
        seen.append(key)
        ttl = await _ttl(desk, key)
        if ttl > 0:
            continue
        assert key in bounded, f"{key} has no expiry and is not a known bounded structure (add a retention)"
    assert keys.handoff(hid) in seen and keys.ticket(ticket) in seen and keys.alert(alert_id) in seen
    assert keys.handoffs_by_customer("cust-7") in seen and keys.audit() in seen and keys.desk_events() in seen
    # The bounded ones are bounded now: nothing closed left in the open indexes, streams within their caps.
    assert await desk.redis.zcard(keys.queue()) == 0 and await desk.redis.zcard(keys.tickets()) == 0
    assert await desk.redis.zcard(keys.alerts()) == 0
    assert [await desk.redis.scard(keys.agent_active(a)) for a in agent_ids] == [0, 0]
    assert await desk.redis.xlen(keys.undelivered_handoffs()) == 0
    assert await desk.redis.llen(keys.pickup_waits()) <= PICKUP_SAMPLES
    assert await desk.redis.xlen(keys.audit()) <= desk.settings.handoff_audit_maxlen


@pytest.mark.desk_settings(handoff_audit_maxlen=100, handoff_desk_events_maxlen=100)
async def test_audit_and_desk_event_streams_are_trimmed(desk) -> None:
    service = desk.app.state.desk
    # An audit entry older than the audit retention (180 days by default) is trimmed by the next write.
    await desk.redis.xadd(keys.audit(), {"action": "ancient"}, id="1000-0")
    for i in range(450):
        await service.audit(None, "test", f"c{i}", "", {})
        await service.raise_alert("test", f"h{i}", f"c{i}", since=0)  # one desk event each
    assert "'MAXLEN', '~', '100'" in service._create.script  # the Lua scripts' desk events use the setting too
    log = await desk.redis.xrange(keys.audit(), count=1)
    assert log[0][0] != b"1000-0", "the entry beyond the retention was kept"
    # Approximate trimming works per stream node (100 entries): allow one node of slack.
    assert await desk.redis.xlen(keys.audit()) <= 200
    assert await desk.redis.xlen(keys.desk_events()) <= 200
