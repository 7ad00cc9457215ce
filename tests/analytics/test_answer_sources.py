"""Bot answers with their source, and the complaint SLA drill-downs, through the gateway's real web chat API, the
real consumer and the dashboard API.

Sources: the Rasa stand-in replies the way Rasa's sourced REST channel does (bot/plugins/rest_channel.py: ``kb`` and
``response`` on each message); the gateway stores them with the bot message (channels/dispatch.py: bot_source) and
the consumer classifies them (analytics/consumer.py: bot_source). Hand computation, six conversations of one
question each:

| conversation | customer says | first bot answer | source |
|---|---|---|---|
| s1 | How long does delivery take? | article shipping-time, score 0.91 (then "did this help?") | kb |
| s2 | how long does delivery take? | article shipping-time, score 0.83 | kb |
| s3 | how long does delivery take | no ``response`` field (a Rasa channel that does not report it) | unknown |
| s4 | purple monkey dishwasher | utter_rephrase | fallback |
| s5 | where is my order | utter_ask_order_number | flow |
| s6 | refund policy for 13812345678 | text an action wrote (response "") | flow |

customer messages 6, answered 6 (the "did this help?" after s1 is not a second answer): kb 2, flow 2, fallback 1,
unknown 1; kb rate 2/6 = 0.3333, fallback rate 1/6 = 0.1667. Sources table (answers desc, then source): flow 2,
kb/shipping-time 2 (average score (0.91 + 0.83) / 2 = 0.87), fallback 1, unknown 1; shares 2/6, 2/6, 1/6, 1/6.
Top questions ("how long does delivery take?" x2 after trimming and lower-casing; s3 lacks the "?"): 5, covered 1
(2 of 2), rate 0.2; weighted 2 of 6.
"""
from __future__ import annotations

import csv
import io
import json
import time
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml

from analytics.consumer import FALLBACK_RESPONSES
from bot.shared.paths import REPO_ROOT
from conversations import keys
from tests.analytics.seed import seed_complaints

pytestmark = pytest.mark.asyncio

DID_IT_HELP = {"text": "Did this help?", "buttons": [{"title": "Yes", "payload": "/affirm"}],
               "response": "utter_kb_did_it_help"}
REPLIES = {
    "How long does delivery take?": [{"text": "3-5 days.", "response": "",
                                      "kb": {"id": "shipping-time", "score": 0.91}}, DID_IT_HELP],
    "how long does delivery take?": [{"text": "3-5 days.", "response": "",
                                      "kb": {"id": "shipping-time", "score": 0.83}}],
    "how long does delivery take": [{"text": "3-5 days."}],
    "purple monkey dishwasher": [{"text": "Sorry, could you rephrase?", "response": "utter_rephrase"}],
    "where is my order": [{"text": "Your order number?", "response": "utter_ask_order_number"}],
    "refund policy for 13812345678": [{"text": "Refunds take 3 days.", "response": ""}],
}


class SourcedRasa:
    """Replies as Rasa's sourced REST channel would."""
    canary = None  # no canary running (RasaClient.canary)

    async def send_message(self, sender_id: str, text: str, metadata: dict | None = None, *,
                           canary: bool = False) -> list[dict]:
        return [{"recipient_id": sender_id, **m} for m in REPLIES[text]]

    async def append_events(self, sender_id: str, events: list) -> None:
        return None

    async def close(self) -> None:
        return None


def _today_range() -> dict[str, str]:
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    return {"start": (today - timedelta(days=4)).isoformat(), "end": today.isoformat()}


async def test_bot_answers_by_source_from_the_web_chat(dashboard) -> None:
    dashboard.app.state.rasa = dashboard.app.state.desk.rasa = SourcedRasa()
    conversations = {}
    for text in REPLIES:
        async with httpx.AsyncClient(base_url=dashboard.base_url, timeout=20) as customer:  # a browser each
            r = await customer.post("/api/webchat/messages", json={
                "message_id": uuid.uuid4().hex, "text": text,
                # what a client could add: ignored, never a source
                "kb": {"id": "forged"}, "metadata": {"ui_lang": "en", "kb": {"id": "forged"}, "response": "x"}})
            assert r.status_code == 200, r.text
            body = r.json()
            conversations[text] = body["conversation_id"]
            # the page gets the answer, not its source
            assert all("kb" not in m and "source" not in m and "response" not in m for m in body["messages"])
            assert [m["text"] for m in body["messages"]] == [m["text"] for m in REPLIES[text]]
    # The stream entry carries the source the gateway got from Rasa.
    entries = await dashboard.redis.xrange(keys.messages(conversations["How long does delivery take?"]))
    bot = [{k.decode(): v.decode() for k, v in data.items()} for _, data in entries
           if data[b"role"] == b"bot"]
    assert json.loads(bot[0]["kb"]) == {"id": "shipping-time", "score": 0.91} and bot[0]["response"] == ""
    assert "kb" not in bot[1] and bot[1]["response"] == "utter_kb_did_it_help"

    assert await dashboard.consumer.poll_once(rescan=True) == 6 + 7  # six customer messages, seven bot messages
    assert await dashboard.consumer.poll_once(rescan=True) == 0
    boss = await dashboard.login("boss-sources")
    params = _today_range()
    s = (await dashboard.http.get("/api/analytics/summary", headers=boss, params=params)).json()
    assert s["bot_answers"] == {"customer_messages": 6, "answered": 6,
                                "by_source": {"kb": 2, "flow": 2, "fallback": 1, "unknown": 1},
                                "kb_rate": 0.3333, "fallback_rate": 0.1667}
    assert s["kb_coverage"] == {"top_questions": 5, "covered": 1, "rate": 0.2, "asked": 6, "kb_answered": 2,
                                "weighted_rate": 0.3333}
    r = await dashboard.http.get("/api/analytics/sources", headers=boss, params=params)
    assert r.status_code == 200
    assert r.json()["rows"] == [
        {"source": "flow", "kb_id": None, "answers": 2, "share": 0.3333, "avg_score": None},
        {"source": "kb", "kb_id": "shipping-time", "answers": 2, "share": 0.3333, "avg_score": 0.87},
        {"source": "fallback", "kb_id": None, "answers": 1, "share": 0.1667, "avg_score": None},
        {"source": "unknown", "kb_id": None, "answers": 1, "share": 0.1667, "avg_score": None}]
    assert "forged" not in r.text
    questions = (await dashboard.http.get("/api/analytics/questions", headers=boss, params=params)).json()["rows"]
    assert questions[0] == {"question": "how long does delivery take?", "asked": 2, "kb_answered": 2,
                            "kb_rate": 1.0, "covered": True}
    assert "13812345678" not in json.dumps(questions)  # masked on the way in
    # The CSV of the sources table; a filter with nothing in it is no data, not zeros.
    r = await dashboard.http.get("/api/analytics/export/sources.csv", headers=boss, params=params)
    rows = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert [(x["source"], x["kb_id"], x["answers"]) for x in rows] == [
        ("flow", "", "2"), ("kb", "shipping-time", "2"), ("fallback", "", "1"), ("unknown", "", "1")]
    empty = (await dashboard.http.get("/api/analytics/summary", headers=boss,
                                      params={**params, "language": "zh"})).json()
    assert empty["bot_answers"]["answered"] == 0 and empty["bot_answers"]["kb_rate"] is None
    # Supervisors only.
    clerk = await dashboard.login("clerk-sources", role="agent")
    assert (await dashboard.http.get("/api/analytics/sources", headers=clerk, params=params)).status_code == 403
    assert (await dashboard.http.get("/api/analytics/sources", params=params)).status_code == 401


async def test_redelivered_and_reclaimed_entries_count_once(dashboard) -> None:
    """A gateway that died after inserting but before acknowledging: another consumer takes the entries over
    (claim idle 0) and inserts nothing twice; the summary is unchanged."""
    dashboard.app.state.rasa = dashboard.app.state.desk.rasa = SourcedRasa()
    async with httpx.AsyncClient(base_url=dashboard.base_url, timeout=20) as customer:
        r = await customer.post("/api/webchat/messages", json={"message_id": uuid.uuid4().hex,
                                                               "text": "How long does delivery take?"})
        assert r.status_code == 200
    from analytics.consumer import AnalyticsConsumer

    first = AnalyticsConsumer(dashboard.redis, dashboard.app.state.analytics_engine, dashboard.app.state.desk.policy,
                              "crashes", claim_idle_s=0.0)
    await first.discover()
    entries = await first._read(sorted(first.streams))
    rows = []
    for stream, entry_id, data in entries:
        rows += (await first.ingest.message_entry(stream, entry_id, data))[0]
    from analytics import db
    assert db.write(first.engine, rows, []) == 3  # inserted, never acknowledged (the process died here)
    assert await dashboard.consumer.poll_once(rescan=True) == 0  # taken over: nothing counted twice
    boss = await dashboard.login("boss-redelivery")
    s = (await dashboard.http.get("/api/analytics/summary", headers=boss, params=_today_range())).json()
    assert s["bot_answers"]["by_source"] == {"kb": 1, "flow": 0, "fallback": 0, "unknown": 0}
    pending = await dashboard.redis.xpending(next(iter(first.streams)), "analytics")
    assert pending["pending"] == 0


async def test_fallback_responses_are_in_the_domain() -> None:
    domain = yaml.safe_load((REPO_ROOT / "domain.yml").read_text(encoding="utf-8"))
    assert FALLBACK_RESPONSES - set(domain["responses"]) == set()


async def test_complaint_drilldowns_list_the_late_and_escalated(dashboard) -> None:
    """tests/analytics/seed.py COMPLAINTS: late at 24 h are Y (never answered) and Z (answered after 26 h); escalated
    at 48 h is Y only; X (answered after 10 h) and W (not a complaint) are in neither. Rows in start order."""
    await seed_complaints(dashboard.redis, time.time())
    await dashboard.consumer.poll_once(rescan=True)
    boss = await dashboard.login("boss-complaint-lists")
    params = _today_range()
    s = (await dashboard.http.get("/api/analytics/summary", headers=boss, params=params)).json()
    assert (s["complaints"]["breaches_24h"], s["complaints"]["escalated_48h"]) == (2, 1)

    async def listed(segment: str, **extra: str) -> list[dict]:
        r = await dashboard.http.get("/api/analytics/conversations", headers=boss,
                                     params={**params, "segment": segment, **extra})
        assert r.status_code == 200, r.text
        return r.json()["rows"]

    late = await listed("complaint_late_24h")
    assert [row["conversation_id"] for row in late] == ["cy", "cz"]
    assert [(row["reason"], row["handed_off"]) for row in late] == [("complaint", True), ("complaint", True)]
    assert late[0]["human_frt_s"] is None and late[1]["human_frt_s"] == 26 * 3600.0
    assert [row["conversation_id"] for row in await listed("complaint_escalated_48h")] == ["cy"]
    assert await listed("complaint_late_24h", language="zh") == []  # filters apply
    # CSV of the same list; no customer text in it (the phone number in their messages never leaves).
    r = await dashboard.http.get("/api/analytics/export/conversations.csv", headers=boss,
                                 params={**params, "segment": "complaint_late_24h"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert [x["conversation_id"] for x in rows] == ["cy", "cz"]
    assert "13812345678" not in r.text and "unacceptable" not in r.text
    # Supervisors only; an unknown segment is refused.
    clerk = await dashboard.login("clerk-complaint-lists", role="agent")
    for headers, status in ((clerk, 403), ({}, 401)):
        r = await dashboard.http.get("/api/analytics/conversations", headers=headers,
                                     params={**params, "segment": "complaint_escalated_48h"})
        assert r.status_code == status and "cy" not in r.text
    r = await dashboard.http.get("/api/analytics/conversations", headers=boss,
                                 params={**params, "segment": "complaint_late"})
    assert r.status_code == 422
