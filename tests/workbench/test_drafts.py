# ruff: noqa: F811 - the inbox tests' fixtures (ib, copies) are imported and injected by name
"""Draft articles from an agent's reply (workbench/drafts.py, drafts_api.py) and the content versions page's API
(workbench/versions_api.py), on the real gateway app with real Redis - the inbox tests' ``ib`` fixture: the desk's
own API for handoffs, agent replies and corrections, the inbox's consumer group, the workbench on copies of data/kb
and data/nlu and its own SQLite file.

A draft is made in one call from an inbox message an agent answered (masked question + masked reply, the other
language left to the editor), is not published while incomplete (the article rules), is finished and published into
its category's file (version 1, kind draft). Bad input stores nothing; agents and anonymous callers are refused; the
per-account write limit holds. The versions feed lists article and intent versions with author, time and diff;
restoring one is a new version in the feed."""
from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from tests.workbench.test_inbox import (  # noqa: F401 - shared fixtures: the gateway with the workbench
    ARTICLE,
    _inbox,
    _messages,
    copies,
    desk,
    fake_embedder,
    ib,
)
from workbench import db

QUESTION = "hi my name is Wang Lei, can you deliver to lhasa? order DM2026110512"
MASKED_QUESTION = "hi my name is {name}, can you deliver to lhasa? order {order_number}"
REPLY = ("Hi Wang Lei, parcels to Lhasa arrive in 7-10 days and there is no extra fee. If it is late call me on "
         "13812345678.")
MASKED_REPLY = ("Hi {name}, parcels to Lhasa arrive in 7-10 days and there is no extra fee. If it is late call me on "
                "{phone}.")


async def _answered_correction(ib, agent, text: str = QUESTION, replies: tuple[str, ...] = ("One moment", REPLY),
                               close: bool = False) -> str:
    """A customer's message, a handoff, the agent's replies, then a correction at hand-back (or close)."""
    conv = (await ib.say(text))["conversation_id"]
    hid = (await ib.handoff(conv)).json()["handoff_id"]
    assert (await ib.http.post(f"/api/agent/handoffs/{hid}/claim", headers=agent.headers)).status_code == 200
    for reply in replies:
        r = await ib.http.post(f"/api/agent/handoffs/{hid}/messages", headers=agent.headers, json={"text": reply})
        assert r.status_code == 200, r.text
    correction = {"correction": {"article_id": ARTICLE}}
    if close:
        r = await ib.http.post(f"/api/agent/handoffs/{hid}/close", headers=agent.headers,
                               json={"resolution": "resolved", **correction})
    else:
        r = await ib.http.post(f"/api/agent/handoffs/{hid}/handback", headers=agent.headers, json=correction)
    assert r.status_code == 200, r.text
    return hid


def _draft_count(ib) -> int:
    with ib.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(db.drafts)).scalar() or 0)


def _finished(draft: dict[str, Any], article_id: str = "shipping-lhasa-draft") -> dict[str, Any]:
    a = draft["article"]
    return {"base_version": draft["version"], "article_id": article_id, "category": "shipping",
            "title": {"en": "Delivery to Lhasa", "zh": "拉萨配送"},
            "answer": {"en": "Parcels to Lhasa arrive in 7-10 days and there is no extra fee.",
                       "zh": "寄往拉萨的包裹7-10天送达，不另收费。"},
            "questions": {"en": ["can you deliver to lhasa?", "how long does a parcel to lhasa take",
                                 "is there a fee for delivery to lhasa"],
                          "zh": ["能寄到拉萨吗", "寄拉萨要几天", "寄到拉萨要加钱吗"]},
            "tags": a["tags"], "last_reviewed": None}


async def test_one_click_drafts_an_article_from_an_agents_reply_and_it_is_published_once_complete(ib, copies):
    kb, _ = copies
    editor, ann = await ib.agent("eddie", "editor"), await ib.agent("ann", "agent")
    await _answered_correction(ib, ann)
    message = next(m for m in _messages(await _inbox(ib, editor)) if m["source"] == "correction")
    assert message["text"] == MASKED_QUESTION
    # the agent's replies are kept with the message, masked
    assert [r["text"] for r in message["detail"]["agent_replies"]] == ["One moment", MASKED_REPLY]
    files_before = {p.name: p.read_bytes() for p in kb.iterdir()}

    r = await ib.http.post("/api/workbench/inbox/draft-article", headers=editor.headers,
                           json={"item_ids": [message["id"]], "category": "shipping"})
    assert r.status_code == 201, r.text
    draft = r.json()
    article = draft["article"]
    # the fullest reply is the answer, the question the first example question, both in English only
    assert article["answer"] == {"en": MASKED_REPLY, "zh": ""}
    assert article["questions"] == {"en": ["hi my name is {name}, can you deliver to lhasa? order DM2026010101"],
                                    "zh": []}
    assert article["title"]["en"] and article["title"]["zh"] == ""
    assert draft["status"] == "draft" and draft["version"] == 1 and draft["created_by"] == "eddie"
    assert draft["missing_languages"] == ["zh"] and draft["complete"] is False
    assert "answer.zh: missing - every answer is needed in both languages" in draft["problems"]
    assert any("{name}" in p for p in draft["problems"]) and any("{phone}" in p for p in draft["problems"])
    assert draft["source"]["item_ids"] == [message["id"]] and draft["source"]["agent_id"] == ann.account.id
    assert draft["resolved"] == 1
    # stored masked; not in the article files; the message has left the open inbox
    with ib.engine.connect() as conn:
        stored = " ".join(conn.execute(select(db.drafts.c.content)).scalars())
    for secret in ("Wang", "2026110512", "13812345678"):
        assert secret not in stored
    assert {p.name: p.read_bytes() for p in kb.iterdir()} == files_before
    assert (await _inbox(ib, editor))["item_count"] == 0
    done = _messages(await _inbox(ib, editor, status="added"))[0]
    assert done["resolution"] == {"action": "draft", "draft_id": draft["id"], "article_id": article["id"]}
    listed = (await ib.http.get("/api/workbench/drafts", headers=editor.headers)).json()["drafts"]
    assert [(d["id"], d["complete"], d["missing_languages"]) for d in listed] == [(draft["id"], False, ["zh"])]

    # incomplete: not published, nothing written
    r = await ib.http.post(f"/api/workbench/drafts/{draft['id']}/publish", headers=editor.headers,
                           json={"base_version": 1})
    assert r.status_code == 422 and "answer.zh: missing" in r.text
    assert {p.name: p.read_bytes() for p in kb.iterdir()} == files_before

    # finished in the editor (save), a stale save is a conflict, then published
    r = await ib.http.put(f"/api/workbench/drafts/{draft['id']}", headers=editor.headers, json=_finished(draft))
    assert r.status_code == 200, r.text
    saved = r.json()
    assert saved["version"] == 2 and saved["complete"] is True and saved["problems"] == []
    r = await ib.http.put(f"/api/workbench/drafts/{draft['id']}", headers=editor.headers,
                          json={**_finished(draft), "title": {"en": "Lhasa", "zh": "拉萨"}})
    assert r.status_code == 409 and r.json()["current"]["version"] == 2
    r = await ib.http.post(f"/api/workbench/drafts/{draft['id']}/publish", headers=editor.headers,
                           json={"base_version": 2})
    assert r.status_code == 200, r.text
    head = r.json()["article"]
    assert head["version"] == 1 and head["article"]["id"] == "shipping-lhasa-draft"
    assert r.json()["draft"]["status"] == "published"
    text = (kb / "shipping.yml").read_text(encoding="utf-8")
    assert text.endswith("    questions:\n      zh:\n        - 能寄到拉萨吗\n        - 寄拉萨要几天\n"
                         "        - 寄到拉萨要加钱吗\n      en:\n        - can you deliver to lhasa?\n"
                         "        - how long does a parcel to lhasa take\n"
                         "        - is there a fee for delivery to lhasa\n    tags: []\n")
    assert "  - id: shipping-lhasa-draft\n" in text
    versions = (await ib.http.get("/api/workbench/articles/shipping-lhasa-draft/versions",
                                  headers=editor.headers)).json()["versions"]
    assert [(v["version"], v["kind"], v["author"]) for v in versions] == [(1, "draft", "eddie")]
    # once published it cannot be published again
    r = await ib.http.post(f"/api/workbench/drafts/{draft['id']}/publish", headers=editor.headers,
                           json={"base_version": 3})
    assert r.status_code == 409


async def test_a_repeated_failure_handoff_keeps_the_agents_replies_given_before_the_release(ib):
    editor, ann = await ib.agent("eddie", "editor"), await ib.agent("ann", "agent")
    conv = (await ib.say("zorp blam the widget"))["conversation_id"]
    await ib.say("blam zorp still the widget", conv)
    hid = (await ib.handoff(conv, reason_code="repeated_failure")).json()["handoff_id"]
    messages = [m for m in _messages(await _inbox(ib, editor)) if m["source"] == "repeated_failure"]
    assert len(messages) == 2 and not any("agent_replies" in m["detail"] for m in messages)
    await ib.http.post(f"/api/agent/handoffs/{hid}/claim", headers=ann.headers)
    await ib.http.post(f"/api/agent/handoffs/{hid}/messages", headers=ann.headers,
                       json={"text": "The widget's reset button is under the lid; hold it for five seconds."})
    await ib.http.post(f"/api/agent/handoffs/{hid}/close", headers=ann.headers, json={"resolution": "resolved"})
    messages = [m for m in _messages(await _inbox(ib, editor)) if m["source"] == "repeated_failure"]
    assert [[r["text"] for r in m["detail"]["agent_replies"]] for m in messages] == [
        ["The widget's reset button is under the lid; hold it for five seconds."]] * 2
    r = await ib.http.post("/api/workbench/inbox/draft-article", headers=editor.headers,
                           json={"item_ids": [m["id"] for m in messages], "category": "orders", "reply_index": 0})
    assert r.status_code == 201, r.text
    assert r.json()["article"]["answer"]["en"].startswith("The widget's reset button")
    assert r.json()["resolved"] == 2


async def test_bad_input_stores_nothing(ib):
    editor, ann = await ib.agent("eddie", "editor"), await ib.agent("ann", "agent")
    await ib.feedback.record_unanswered("c1", "can I pay with bitcoin", "en", 0.3)  # nobody answered it
    await _answered_correction(ib, ann)
    messages = _messages(await _inbox(ib, editor))
    unanswered = next(m for m in messages if m["source"] == "kb_no_answer")
    corrected = next(m for m in messages if m["source"] == "correction")
    post = ib.http.post
    r = await post("/api/workbench/inbox/draft-article", headers=editor.headers,
                   json={"item_ids": [unanswered["id"]], "category": "shipping"})
    assert r.status_code == 422 and "agent's reply" in r.json()["detail"]
    r = await post("/api/workbench/inbox/draft-article", headers=editor.headers,
                   json={"item_ids": [99999], "category": "shipping"})
    assert r.status_code == 404
    r = await post("/api/workbench/inbox/draft-article", headers=editor.headers,
                   json={"item_ids": [corrected["id"]], "category": "no-such-category"})
    assert r.status_code == 422 and "Unknown category" in r.json()["detail"]
    r = await post("/api/workbench/inbox/draft-article", headers=editor.headers,
                   json={"item_ids": [corrected["id"]], "category": "shipping", "reply_index": 7})
    assert r.status_code == 422
    for body in ({"item_ids": [], "category": "shipping"}, {"item_ids": [corrected["id"]]},
                 {"item_ids": [corrected["id"]], "category": "shipping", "extra": 1}):
        assert (await post("/api/workbench/inbox/draft-article", headers=editor.headers, json=body)).status_code == 422
    assert _draft_count(ib) == 0
    assert (await _inbox(ib, editor))["item_count"] == 2  # both still open
    # unknown drafts
    assert (await ib.http.get("/api/workbench/drafts/4242", headers=editor.headers)).status_code == 404
    r = await ib.http.put("/api/workbench/drafts/4242", headers=editor.headers,
                          json=_finished({"version": 1, "article": {"tags": []}}))
    assert r.status_code == 404
    assert (await post("/api/workbench/drafts/4242/publish", headers=editor.headers,
                       json={"base_version": 1})).status_code == 404
    # a handled message cannot be drafted twice
    r = await post("/api/workbench/inbox/draft-article", headers=editor.headers,
                   json={"item_ids": [corrected["id"]], "category": "shipping"})
    assert r.status_code == 201
    r = await post("/api/workbench/inbox/draft-article", headers=editor.headers,
                   json={"item_ids": [corrected["id"]], "category": "shipping"})
    assert r.status_code == 409 and _draft_count(ib) == 1
    # publishing under an id another article has: refused, nothing written
    draft = (await ib.http.get("/api/workbench/drafts", headers=editor.headers)).json()["drafts"][0]
    full = (await ib.http.get(f"/api/workbench/drafts/{draft['id']}", headers=editor.headers)).json()
    r = await ib.http.put(f"/api/workbench/drafts/{draft['id']}", headers=editor.headers,
                          json=_finished(full, article_id=ARTICLE))
    assert r.status_code == 200 and any("already used" in p for p in r.json()["problems"])
    r = await post(f"/api/workbench/drafts/{draft['id']}/publish", headers=editor.headers, json={"base_version": 2})
    assert r.status_code == 422
    # discarded
    r = await post(f"/api/workbench/drafts/{draft['id']}/discard", headers=editor.headers, json={"base_version": 2})
    assert r.status_code == 200 and r.json()["status"] == "discarded"
    assert (await ib.http.get("/api/workbench/drafts", headers=editor.headers)).json()["drafts"] == []


async def test_agents_and_anonymous_callers_cannot_draft_or_read_versions(ib):
    ann = await ib.agent("ann", "agent")
    await _answered_correction(ib, ann)
    await ib.consumer.poll_once()
    calls = [("POST", "/api/workbench/inbox/draft-article", {"item_ids": [1], "category": "shipping"}),
             ("GET", "/api/workbench/drafts", None), ("GET", "/api/workbench/drafts/1", None),
             ("PUT", "/api/workbench/drafts/1", _finished({"version": 1, "article": {"tags": []}})),
             ("POST", "/api/workbench/drafts/1/publish", {"base_version": 1}),
             ("POST", "/api/workbench/drafts/1/discard", {"base_version": 1}),
             ("GET", "/api/workbench/versions", None)]
    for method, path, body in calls:
        assert (await ib.http.request(method, path, json=body)).status_code == 401, path
        r = await ib.http.request(method, path, json=body, headers=ann.headers)
        assert r.status_code == 403 and "lhasa" not in r.text.lower(), path
    assert _draft_count(ib) == 0


@pytest.mark.desk_settings(handoff_limit_desk_writes="3/minute")
async def test_the_accounts_write_limit_stops_a_flood_of_drafts(ib):
    editor = await ib.agent("eddie", "editor")
    codes = [(await ib.http.post("/api/workbench/inbox/draft-article", headers=editor.headers,
                                 json={"item_ids": [99999], "category": "shipping"})).status_code for _ in range(5)]
    assert codes[:3] == [404] * 3 and set(codes[3:]) == {429}


async def test_the_versions_feed_lists_article_and_intent_versions_and_restores_are_new_versions(ib, copies):
    kb, nlu = copies
    editor, boss = await ib.agent("eddie", "editor"), await ib.agent("boss", "supervisor")
    original = (kb / "shipping.yml").read_bytes()
    head = (await ib.http.get(f"/api/workbench/articles/{ARTICLE}", headers=editor.headers)).json()
    a = head["article"]
    edit = {"base_version": head["version"], "title": a["title"], "answer": a["answer"], "tags": a["tags"],
            "questions": {**a["questions"], "en": [*a["questions"]["en"], "do you ship to lhasa"]},
            "last_reviewed": a["last_reviewed"]}
    assert (await ib.http.put(f"/api/workbench/articles/{ARTICLE}", headers=editor.headers,
                              json=edit)).status_code == 200
    await ib.feedback.record_fallback("c1", "yo where my stuff at", "en", None, None, "none")
    ids = [m["id"] for m in _messages(await _inbox(ib, editor))]
    r = await ib.http.post("/api/workbench/inbox/add-to-intent", headers=editor.headers, json={
        "item_ids": ids, "text": "yo where my stuff at", "intent": "order_status", "language": "en"})
    assert r.status_code == 200, r.text

    feed = (await ib.http.get("/api/workbench/versions", headers=boss.headers)).json()["versions"]
    # newest first; imports (the files as first read) are left out unless asked for
    assert [(v["type"], v["target"], v["version"], v["kind"], v["author"], v["current"]) for v in feed] == [
        ("intent", "en/order_status", 2, "edit", "eddie", True),
        ("article", ARTICLE, head["version"] + 1, "edit", "eddie", True)]
    assert "+        - do you ship to lhasa" in feed[1]["diff"] and "+- yo where my stuff at" in feed[0]["diff"]
    with_imports = (await ib.http.get("/api/workbench/versions", headers=boss.headers,
                                      params={"include_imports": "true", "target": ARTICLE})).json()["versions"]
    assert [(v["version"], v["kind"], v["current"]) for v in with_imports] == [(2, "edit", True), (1, "import", False)]

    # restore the article's first version (optimistic, as the editor's restore) and the intent's: new versions
    r = await ib.http.post(f"/api/workbench/articles/{ARTICLE}/restore", headers=boss.headers,
                           json={"version": 1, "base_version": 1})
    assert r.status_code == 409  # stale: someone saved version 2 meanwhile; nothing restored
    r = await ib.http.post(f"/api/workbench/articles/{ARTICLE}/restore", headers=boss.headers,
                           json={"version": 1, "base_version": 2})
    assert r.status_code == 200 and r.json()["version"] == 3
    assert (kb / "shipping.yml").read_bytes() == original
    r = await ib.http.post("/api/workbench/intents/en/order_status/restore", headers=boss.headers, json={"version": 1})
    assert r.status_code == 200
    feed = (await ib.http.get("/api/workbench/versions", headers=editor.headers)).json()["versions"]
    assert [(v["target"], v["version"], v["kind"], v["restored_from"], v["author"]) for v in feed[:2]] == [
        ("en/order_status", 3, "restore", 1, "boss"), (ARTICLE, 3, "restore", 1, "boss")]
    only_intents = (await ib.http.get("/api/workbench/versions", headers=editor.headers,
                                      params={"kind": "intent"})).json()["versions"]
    assert {v["type"] for v in only_intents} == {"intent"}
    assert (await ib.http.get("/api/workbench/versions", headers=editor.headers,
                              params={"kind": "bogus"})).status_code == 422


def test_an_agents_reply_is_masked_including_the_name_it_greets() -> None:
    from workbench.masking import mask_reply

    assert mask_reply("Hi Wang Lei, order DM2026110512 ships tomorrow; call 13812345678.") == \
        "Hi {name}, order {order_number} ships tomorrow; call {phone}."
    assert mask_reply("王先生您好，我叫李娜，西藏7-10天送达。") == "{name}先生您好,我叫{name},西藏7-10天送达。"
    assert mask_reply("Dear Anna Smith. Thank you, we refund within 3 days.") == \
        "Dear {name}. Thank you, we refund within 3 days."
    assert len(mask_reply("x" * 5000)) == 2000
