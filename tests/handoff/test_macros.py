"""Macros (reply templates, issue 17) against the real gateway and Redis: shared ones by supervisors, personal ones
per agent, bilingual, variables filled from the conversation (a missing one left visible and reported), bad input
refused, other agents' personal macros out of reach, writes audited and rate limited."""
from __future__ import annotations

import json

import pytest

from conversations import keys


def _macro(title_en: str = "Return label", text_en: str = "Hi, I'm {agent_name}. Your order {order_number} ...",
           title_zh: str = "退货标签", text_zh: str = "您好，我是{agent_name}，订单{order_number}……",
           scope: str | None = None) -> dict:
    body = {"title": {"en": title_en, "zh": title_zh}, "text": {"en": text_en, "zh": text_zh}}
    if scope:
        body["scope"] = scope
    return body


async def _queued(desk, text: str = "I want a human"):
    cid = (await desk.say(text))["conversation_id"]
    r = await desk.handoff(cid)
    assert r.status_code == 200, r.text
    return cid, r.json()["handoff_id"]


async def test_shared_by_supervisors_personal_per_agent_stored_durably(desk) -> None:
    boss = await desk.agent("boss", role="supervisor")
    alice = await desk.agent("alice")
    bob = await desk.agent("bob")
    # An agent cannot write a shared macro; a supervisor can; the agent keeps personal ones.
    r = await desk.http.post("/api/agent/macros", headers=alice.headers, json=_macro(scope="shared"))
    assert r.status_code == 403
    r = await desk.http.post("/api/agent/macros", headers=boss.headers, json=_macro(scope="shared"))
    assert r.status_code == 201, r.text
    shared = r.json()
    assert shared["scope"] == "shared" and shared["editable"] is True
    greeting = _macro("My greeting", "Hello! {agent_name} here.", "我的问候", "您好，我是{agent_name}。")
    r = await desk.http.post("/api/agent/macros", headers=alice.headers, json=greeting)
    assert r.status_code == 201, r.text
    personal = r.json()
    assert personal["scope"] == "personal" and personal["owner_id"] == alice.account.id
    # Stored in Redis (AOF-backed), no expiry.
    assert await desk.redis.hexists(keys.macros_shared(), shared["id"])
    assert await desk.redis.ttl(keys.macros_shared()) == -1
    stored = json.loads(await desk.redis.hget(keys.macros_personal(alice.account.id), personal["id"]))
    assert stored["text"]["zh"] == "您好，我是{agent_name}。"

    # Alice sees both (shared one not editable by her); Bob sees only the shared one.
    mine = (await desk.http.get("/api/agent/macros", headers=alice.headers)).json()
    assert {m["id"]: m["editable"] for m in mine} == {personal["id"]: True, shared["id"]: False}
    theirs = (await desk.http.get("/api/agent/macros", headers=bob.headers)).json()
    assert [m["id"] for m in theirs] == [shared["id"]]
    # Searchable in either language, title matches first.
    found = (await desk.http.get("/api/agent/macros", params={"q": "退货"}, headers=alice.headers)).json()
    assert [m["id"] for m in found] == [shared["id"]]
    found = (await desk.http.get("/api/agent/macros", params={"q": "here"}, headers=alice.headers)).json()
    assert [m["id"] for m in found] == [personal["id"]]

    # Bob cannot read, change or delete Alice's personal macro (404, as if it did not exist) ...
    for method, body in (("PUT", _macro()), ("DELETE", None)):
        r = await desk.http.request(method, f"/api/agent/macros/{personal['id']}", headers=bob.headers, json=body)
        assert r.status_code == 404, (method, r.text)
    # ... nor the shared one (403); the supervisor can.
    r = await desk.http.put(f"/api/agent/macros/{shared['id']}", headers=alice.headers, json=_macro("x", "y", "", ""))
    assert r.status_code == 403
    r = await desk.http.put(f"/api/agent/macros/{shared['id']}", headers=boss.headers,
                            json=_macro("Return label (new)", "Label for {order_number}", "", ""))
    assert r.status_code == 200 and r.json()["title"] == {"en": "Return label (new)"}
    # Alice edits and deletes her own.
    r = await desk.http.put(f"/api/agent/macros/{personal['id']}", headers=alice.headers,
                            json=_macro("Greeting", "Hi!", "", ""))
    assert r.status_code == 200 and r.json()["text"] == {"en": "Hi!"}
    r = await desk.http.delete(f"/api/agent/macros/{personal['id']}", headers=alice.headers)
    assert r.status_code == 200
    assert not await desk.redis.hexists(keys.macros_personal(alice.account.id), personal["id"])
    actions = [e["action"] for e in (await desk.http.get("/api/agent/audit", headers=boss.headers)).json()]
    assert {"macro_create", "macro_update", "macro_delete"} <= set(actions)
    # Without a session: 401.
    assert (await desk.http.get("/api/agent/macros")).status_code == 401
    assert (await desk.http.post("/api/agent/macros", json=_macro())).status_code == 401


async def test_bad_input_is_refused_and_html_is_kept_as_text(desk) -> None:
    alice = await desk.agent("alice")
    cases = [
        (_macro("", "", "", ""), 422),  # nothing
        (_macro("Title only", "", "", ""), 422),  # a language needs both
        (_macro("Bad var", "Your {password} please", "", ""), 422),  # unknown variable
        (_macro("Long", "x" * 2001, "", ""), 413),
    ]
    for body, status in cases:
        r = await desk.http.post("/api/agent/macros", headers=alice.headers, json=body)
        assert r.status_code == status, (body, r.text)
    r = await desk.http.post("/api/agent/macros", headers=alice.headers, json=_macro("v", "{password}?", "", ""))
    assert "{password}" in r.json()["detail"] and "{order_number}" in r.json()["detail"]
    r = await desk.http.post("/api/agent/macros", headers=alice.headers,
                             json=_macro("<b>bold</b>", "<img src=x onerror=alert(1)>\nline two", "", ""))
    assert r.status_code == 201
    assert r.json()["title"]["en"] == "<b>bold</b>"  # stored as typed; the console renders it as text
    assert r.json()["text"]["en"] == "<img src=x onerror=alert(1)>\nline two"  # line breaks kept


async def test_variables_filled_from_the_conversation_missing_ones_reported(desk) -> None:
    alice = await desk.agent("alice")
    bob = await desk.agent("bob")
    cid, hid = await _queued(desk)
    r = await desk.http.post("/api/agent/macros", headers=alice.headers, json=_macro(
        "Order", "Hi {customer_name}, {agent_name} here: order {order_number}, parcel {tracking_number}.",
        "订单", "{agent_name}为您查询订单{order_number}。"))
    macro = r.json()
    # The handoff is in English: the English text, the order number from the context, the agent's name; no name
    # and no tracking number in this conversation: left as written and reported.
    r = await desk.http.get(f"/api/agent/handoffs/{hid}/macros/{macro['id']}", headers=alice.headers)
    assert r.status_code == 200, r.text
    filled = r.json()
    assert filled["language"] == "en"
    assert filled["text"] == "Hi {customer_name}, alice here: order DM2026110512, parcel {tracking_number}."
    assert filled["missing"] == ["customer_name", "tracking_number"]
    r = await desk.http.get(f"/api/agent/handoffs/{hid}/macros/{macro['id']}", params={"lang": "zh"},
                            headers=alice.headers)
    assert r.json()["text"] == "alice为您查询订单DM2026110512。" and r.json()["missing"] == []
    # Another agent cannot fill Alice's personal macro; after Alice claims, Bob cannot read the conversation.
    r = await desk.http.get(f"/api/agent/handoffs/{hid}/macros/{macro['id']}", headers=bob.headers)
    assert r.status_code == 404
    await desk.http.post(f"/api/agent/handoffs/{hid}/claim", headers=alice.headers)
    r = await desk.http.get(f"/api/agent/handoffs/{hid}/macros/{macro['id']}", headers=bob.headers)
    assert r.status_code == 403


@pytest.mark.desk_settings(handoff_limit_desk_writes="3/minute")
async def test_macro_writes_are_rate_limited_per_account(desk) -> None:
    alice = await desk.agent("alice")
    bob = await desk.agent("bob")
    for i in range(3):
        r = await desk.http.post("/api/agent/macros", headers=alice.headers, json=_macro(f"m{i}", "t", "", ""))
        assert r.status_code == 201
    r = await desk.http.post("/api/agent/macros", headers=alice.headers, json=_macro("m4", "t", "", ""))
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    r = await desk.http.post("/api/agent/macros", headers=bob.headers, json=_macro("b", "t", "", ""))
    assert r.status_code == 201  # per account
