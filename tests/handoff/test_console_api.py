"""What the console shows a person (issue 17): button taps as the customer saw them, the bot's attempts in words, raw
slots for supervisors only (never session metadata or verification digits), a reopened low-rating case with its
stars and the customer's words, internal notes (text, audited, readers only), and the agent's name on the customer
side. API against real Redis (the desk fixture of tests/handoff/conftest.py)."""
from __future__ import annotations

import json

import jsonschema

from bot.shared.paths import REPO_ROOT
from conversations import keys
from handoff.context import build_context, describe_attempts, label_buttons

SCHEMA = json.loads((REPO_ROOT / "docs" / "handoff-context.schema.json").read_text())


async def _queued(desk, text: str = "I want a human", **overrides):
    cid = (await desk.say(text))["conversation_id"]
    r = await desk.handoff(cid, **overrides)
    assert r.status_code == 200, r.text
    return cid, r.json()["handoff_id"]


def test_button_taps_and_attempts_read_as_words() -> None:
    transcript = [
        {"id": "1-0", "role": "customer", "text": "where is DM2026110512", "ts": "2026-11-05T10:00:00+00:00"},
        {"id": "2-0", "role": "bot", "text": "Your parcel DM2026110512 is in transit with SF Express. It left "
         "Shenzhen yesterday.", "ts": "2026-11-05T10:00:02+00:00"},
        {"id": "3-0", "role": "bot", "text": "Did this answer help?", "ts": "2026-11-05T10:00:03+00:00",
         "buttons": [{"title": "Yes, thanks", "payload": "/affirm"}, {"title": "No", "payload": "/deny"}]},
        {"id": "4-0", "role": "customer", "text": "/deny", "ts": "2026-11-05T10:00:09+00:00"},
        {"id": "5-0", "role": "bot", "text": "Pick one", "ts": "2026-11-05T10:00:10+00:00",
         "buttons": [{"title": "Talk to a person", "payload": "2"}]},
        {"id": "6-0", "role": "customer", "text": "2", "ts": "2026-11-05T10:00:12+00:00"},
        {"id": "7-0", "role": "customer", "text": "/affirm", "ts": "2026-11-05T10:00:13+00:00"},
    ]
    labelled = label_buttons(transcript)
    assert [m.get("shown") for m in labelled if m["role"] == "customer"] == [None, "No", "Talk to a person",
                                                                             "Yes, thanks"]
    tracker = {
        "turns": [{"ts": "2026-11-05T10:00:09+00:00", "text": "/deny", "intent": "deny", "confidence": 1.0,
                   "intent_ranking": [], "entities": [], "frustration": 40}],
        "actions": [{"name": "order_verification_form", "ts": "2026-11-05T10:00:00.5+00:00", "results": []},
                    {"name": "action_order_status", "ts": "2026-11-05T10:00:01+00:00", "results": ["replied"]},
                    {"name": "action_listen", "ts": "2026-11-05T10:00:04+00:00", "results": []}],
        "kb_articles": [{"id": "refund-times", "title": "Refund times", "score": 0.8, "ts": None,
                         "feedback": "not_helpful"}],
        "slots": {"order_number": "DM2026110512", "verified_orders": ["DM2026110512"],
                  "session_started_metadata": {"ui_lang": "en"}, "phone_last4": "1234"},
        "frustration_per_message": [],
    }
    attempts = describe_attempts(tracker, transcript)
    assert attempts == [
        "asked for the phone digits that verify DM2026110512 - verified",
        'looked up DM2026110512: "Your parcel DM2026110512 is in transit with SF Express."',
        "answered 'Refund times' - customer said it did not help",
    ]
    request = {"conversation_id": "c1", "channel": "webchat", "reason_code": "explicit_request", "priority": 3,
               "language": "en", "customer": {"id": None, "tier": "regular", "verified": True},
               "frustration": {"score": 40, "curve": []}, "signals": {}, "summary": None, "tracker": tracker}
    package = build_context(handoff_id="h1", request=request, transcript=transcript, earlier=[], created_at=1.0,
                            effective_priority=3)
    jsonschema.validate(package, SCHEMA)
    assert package["schema_version"] == "1.3.0"
    by_id = {m["id"]: m for m in package["transcript"]}
    assert by_id["4-0"]["shown"] == "No" and by_id["4-0"]["text"] == "/deny"
    assert by_id["6-0"]["shown"] == "Talk to a person"  # matched before "2" is masked as a short number
    assert "buttons" not in by_id["3-0"]
    assert package["turns"][0]["shown"] == "No"
    assert package["summary"]["bot_attempts"] == attempts
    assert "Bot tried: asked for the phone digits" in package["summary"]["text"]
    assert "action_order_status" not in package["summary"]["text"]
    assert "session_started_metadata" not in package["slots"] and "phone_last4" not in package["slots"]


async def test_agents_get_no_raw_slots_supervisors_get_them_without_secrets(desk) -> None:
    alice = await desk.agent("alice")
    sue = await desk.agent("sue", role="supervisor")
    cid = (await desk.say("where is my order DM2026110512"))["conversation_id"]
    held = await desk.rasa.get_tracker(cid)
    from bot.shared.context_tracker import tracker_part
    part = tracker_part(held["events"], {**held["slots"], "session_started_metadata": {"browser": "x"},
                                         "customer_tier": "gold"})
    hid = (await desk.handoff(cid, tracker=part)).json()["handoff_id"]
    seen = (await desk.http.get(f"/api/agent/handoffs/{hid}", headers=alice.headers)).json()
    assert seen["context"]["slots"] == {}
    assert seen["context"]["identifiers"]["order_numbers"] == ["DM2026110512"]
    boss = (await desk.http.get(f"/api/agent/handoffs/{hid}", headers=sue.headers)).json()
    assert boss["context"]["slots"]["customer_tier"] == "gold"
    assert "session_started_metadata" not in boss["context"]["slots"]
    assert "phone_last4" not in boss["context"]["slots"]
    # the queue card and the panel read one frustration number
    row = next(r for r in (await desk.http.get("/api/agent/queue", headers=alice.headers)).json()
               if r["handoff_id"] == hid)
    assert row["frustration"] == seen["handoff"]["frustration"] == 72
    assert row["channel"] == "webchat"


async def test_reopened_low_rating_shows_stars_words_and_the_tap_as_seen(desk) -> None:
    alice = await desk.agent("alice")
    sue = await desk.agent("sue", role="supervisor")
    cid, hid = await _queued(desk)
    await desk.http.post(f"/api/agent/handoffs/{hid}/claim", headers=alice.headers)
    await desk.http.post(f"/api/agent/handoffs/{hid}/close", headers=alice.headers, json={"resolution": "resolved"})
    history = (await desk.http.get(f"/api/webchat/conversations/{cid}/messages")).json()["messages"]
    await desk.say(history[-1]["buttons"][0]["payload"], cid)  # 1 star
    await desk.say("You closed it but my parcel is still missing!", cid)
    data = (await desk.http.get(f"/api/agent/handoffs/{hid}", headers=sue.headers)).json()
    assert data["reopen"] == {"stars": 1, "words": ["You closed it but my parcel is still missing!"]}
    taps = [m for m in data["messages"] if m["role"] == "customer" and m.get("shown")]
    assert [m["shown"] for m in taps] == ["★"] and taps[0]["text"].startswith("/csat")
    queue = (await desk.http.get("/api/agent/queue", headers=sue.headers)).json()
    assert next(r for r in queue if r["handoff_id"] == hid)["csat"] == 1


async def test_internal_notes_are_text_audited_and_for_readers_only(desk) -> None:
    alice = await desk.agent("alice")
    bob = await desk.agent("bob")
    cid, hid = await _queued(desk)
    html = "<img src=x onerror=alert(1)> customer is a VIP, offer the coupon"
    r = await desk.http.post(f"/api/agent/handoffs/{hid}/notes", headers=alice.headers, json={"text": html})
    assert r.status_code == 201, r.text
    note = r.json()
    assert note["text"] == html and note["author_id"] == alice.account.id and note["author_name"] == "alice"
    await desk.http.post(f"/api/agent/handoffs/{hid}/claim", headers=alice.headers)
    # bob may no longer read the conversation, so neither its notes nor adding one
    assert (await desk.http.get(f"/api/agent/handoffs/{hid}/notes", headers=bob.headers)).status_code == 403
    r = await desk.http.post(f"/api/agent/handoffs/{hid}/notes", headers=bob.headers, json={"text": "hi"})
    assert r.status_code == 403
    assert (await desk.http.post(f"/api/agent/handoffs/{hid}/notes", headers=alice.headers,
                                 json={"text": "   "})).status_code == 422
    assert (await desk.http.post(f"/api/agent/handoffs/{hid}/notes", headers=alice.headers,
                                 json={"text": "x" * 2001})).status_code == 413
    r = await desk.http.post(f"/api/agent/handoffs/{hid}/notes", json={"text": "forged"},
                             headers={**alice.headers, "Origin": "https://evil.example",
                                      "Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    listed = (await desk.http.get(f"/api/agent/handoffs/{hid}/notes", headers=alice.headers)).json()
    assert [n["text"] for n in listed] == [html]
    assert (await desk.http.get(f"/api/agent/handoffs/{hid}", headers=alice.headers)).json()["notes"] == listed
    assert 0 < await desk.redis.ttl(keys.notes(cid)) <= desk.app.state.desk.retention_s
    events = await desk.redis.xrange(keys.desk_events())
    assert any(d.get(b"type") == b"note" and d.get(b"handoff_id") == hid.encode() for _, d in events)
    audit = [e for e in await desk.app.state.desk.audit_log() if e["action"] == "note"]
    assert len(audit) == 1 and audit[0]["handoff_id"] == hid and audit[0]["agent_id"] == alice.account.id
    # never in the customer's transcript
    history = (await desk.http.get(f"/api/webchat/conversations/{cid}/messages")).json()["messages"]
    assert all("VIP" not in m["text"] for m in history)


async def test_customer_sees_the_agents_name_and_a_joined_notice(desk) -> None:
    account = await desk.app.state.agents.create("alex", desk.password, "agent", "Alex W.")
    r = await desk.http.post("/api/agent/login", json={"username": "alex", "password": desk.password})
    desk.http.cookies.clear()
    headers = {"Authorization": f"Bearer {r.json()['token']}"}
    cid, hid = await _queued(desk)
    assert (await desk.http.post(f"/api/agent/handoffs/{hid}/claim", headers=headers)).status_code == 200
    r = await desk.http.post(f"/api/agent/handoffs/{hid}/messages", headers=headers, json={"text": "Hi, Alex here"})
    assert r.status_code == 200
    history = (await desk.http.get(f"/api/webchat/conversations/{cid}/messages")).json()["messages"]
    joined = [m for m in history if m["role"] == "system" and "Alex W." in m["text"]]
    assert [m["text"] for m in joined] == ["Alex W. joined the conversation and will help you from here."]
    agent_msgs = [m for m in history if m["role"] == "agent"]
    assert [(m["text"], m["name"]) for m in agent_msgs] == [("Hi, Alex here", "Alex W.")]
    assert all(m.get("name") is None for m in history if m["role"] in ("customer", "bot"))
    assert account.display_name == "Alex W."


async def test_closing_a_complaint_records_its_type_and_only_a_complaint_takes_one(desk) -> None:
    """The agent who closes a complaint says what it was about (the seed reports' complaint types); the handoff keeps
    it for the managers' breakdown. A type on another handoff, or an unknown type, is refused and closes nothing."""
    alice = await desk.agent("alice")
    meta = (await desk.http.get("/api/agent/meta", headers=alice.headers)).json()
    assert meta["complaint_types"] == ["attitude", "product", "efficiency", "solution", "other"]
    _, other = await _queued(desk)
    _, complaint = await _queued(desk, "I want to file a complaint about your staff", reason_code="complaint")
    for hid in (other, complaint):
        await desk.http.post(f"/api/agent/handoffs/{hid}/claim", headers=alice.headers)

    r = await desk.http.post(f"/api/agent/handoffs/{other}/close", headers=alice.headers,
                             json={"resolution": "resolved", "complaint_type": "attitude"})
    assert r.status_code == 422 and "complaint" in r.text
    r = await desk.http.post(f"/api/agent/handoffs/{complaint}/close", headers=alice.headers,
                             json={"resolution": "resolved", "complaint_type": "rudeness"})
    assert r.status_code == 422
    for hid in (other, complaint):
        assert await desk.redis.hget(keys.handoff(hid), "status") == b"claimed"  # nothing closed

    r = await desk.http.post(f"/api/agent/handoffs/{complaint}/close", headers=alice.headers,
                             json={"resolution": "resolved", "complaint_type": "attitude"})
    assert r.status_code == 200, r.text
    assert await desk.redis.hget(keys.handoff(complaint), "complaint_type") == b"attitude"
    assert (await desk.http.post(f"/api/agent/handoffs/{other}/close", headers=alice.headers,
                                 json={"resolution": "resolved"})).status_code == 200
    assert await desk.redis.hget(keys.handoff(other), "complaint_type") is None
