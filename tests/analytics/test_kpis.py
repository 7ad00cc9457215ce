"""The seeded conversations (tests/analytics/seed.py) go through the real streams and the consumer group into SQL;
every KPI is asserted figure by figure through the supervisors' API.

Hand computation, range 2026-11-23..24 (China time), no filter: conversations A, B, C (Mon) and D (Tue); E is a week
later. A: bot only (first answer after 2 s). B (zh): bot after 4 s, handoff high_frustration at +120, claimed +130 by
a1, first agent reply +140 (20 s: SLA breach), closed +400 (resolution 280 s, handling 270 s), CSAT 5 (a second click,
1 star, is not counted). C (same browser as A, 1 h later: a repeat contact): bot after 20 s (bot SLA breach), handoff
explicit_request at +3630, claimed +3635 by a2, reply +3640 (10 s), handed back +3700 (70 s; handling 65 s).
D (telegram, no customer ref): bot after 1 s, handoff explicit_request, never answered (breach).
"""
from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import text

from tests.analytics.seed import END, START, T0, seed, seed_presence
from workbench.inbox import item

pytestmark = pytest.mark.asyncio


async def _get(dashboard, headers, path, **params):
    r = await dashboard.http.get(path, params={"start": START, "end": END, **params}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def test_seeded_kpis_figure_by_figure(dashboard) -> None:
    await seed(dashboard.redis)
    assert seed_presence(dashboard.app.state.analytics_engine) == 12
    inserted = await dashboard.consumer.poll_once(rescan=True)
    assert inserted == 16 + 7  # every message and desk event once
    boss = await dashboard.login("boss")

    s = await _get(dashboard, boss, "/api/analytics/summary")
    assert s["no_data"] is False
    assert s["conversations"] == 4
    assert s["bot_resolution"] == {"resolved": 1, "rate": 0.25}
    assert s["handoff"] == {"conversations": 3, "handoffs": 3, "rate": 0.75, "tickets": 0}
    assert s["first_response_bot"] == {"answered": 4, "avg_s": 6.75, "max_s": 20.0}  # (2 + 4 + 20 + 1) / 4
    assert s["first_response_human"] == {"handoffs_in_hours": 3, "answered": 2, "avg_s": 15.0, "max_s": 20.0,
                                         "queue_wait_avg_s": 7.5}  # (20 + 10) / 2; waits (10 + 5) / 2
    assert s["resolution_time"] == {"resolved": 2, "closed": 1, "avg_s": 175.0, "max_s": 280.0}  # (280 + 70) / 2
    assert s["csat"]["agents"] == {"answers": 1, "avg_stars": 5.0, "csat_rate": 1.0}
    assert s["csat"]["bot"] == {"answers": 0, "avg_stars": None, "csat_rate": None}
    # the score distribution: B's one rating (5 stars, for the agent; the second click does not count)
    scores = (await _get(dashboard, boss, "/api/analytics/scores"))["rows"]
    assert [(r["stars"], r["bot"], r["agents"], r["agents_share"], r["bot_share"]) for r in scores] == [
        (1, 0, 0, 0.0, None), (2, 0, 0, 0.0, None), (3, 0, 0, 0.0, None), (4, 0, 0, 0.0, None), (5, 0, 1, 1.0, None)]
    assert s["sla"] == {"target_s": 15.0, "bot_breaches": 1, "bot_breach_rate": 0.25, "human_breaches": 2,
                        "human_breach_rate": 0.6667}  # C's bot answer; B (20 s) and D (none) of 3 handoffs
    assert s["repeat_contacts"] == {"identified": 3, "repeats": 1, "rate": 0.3333}  # C after A, same browser
    assert s["complaints"] == {"handoffs": 0, "answered_24h": 0, "answered_24h_rate": None, "breaches_24h": 0,
                               "escalated_48h": 0}  # no complaint handoff in the seed
    # First-contact resolution: of the 3 identified conversations, A was followed by C (same browser, 1 h later);
    # B and C had no follow-up within 7 days (E is another browser).
    assert s["first_contact_resolution"] == {"identified": 3, "resolved": 2, "rate": 0.6667}
    # KB coverage: 5 distinct customer questions (A, B's two, C, D; CSAT clicks are not questions), one each; only
    # B's first ("我的订单到哪里了") got a knowledge-base answer.
    assert s["kb_coverage"] == {"top_questions": 5, "covered": 1, "rate": 0.2, "asked": 5, "kb_answered": 1,
                                "weighted_rate": 0.2}

    reasons = (await _get(dashboard, boss, "/api/analytics/reasons"))["rows"]
    assert reasons == [{"reason": "explicit_request", "handoffs": 2, "rate": 0.5},
                       {"reason": "high_frustration", "handoffs": 1, "rate": 0.25}]
    daily = (await _get(dashboard, boss, "/api/analytics/daily"))["rows"]
    assert [(d["day"], d["conversations"], d["bot_resolved"], d["handed_off"]) for d in daily] == [
        ("2026-11-23", 3, 1, 2), ("2026-11-24", 1, 0, 1)]
    assert daily[0]["bot_resolution_rate"] == 0.3333
    heat = (await _get(dashboard, boss, "/api/analytics/heatmap"))["rows"]
    assert heat == [{"dow": 0, "hour": 10, "conversations": 2, "handed_off": 1},
                    {"dow": 0, "hour": 11, "conversations": 1, "handed_off": 1},
                    {"dow": 1, "hour": 10, "conversations": 1, "handed_off": 1}]
    agents = (await _get(dashboard, boss, "/api/analytics/agents"))["rows"]
    assert agents == [
        {"agent_id": "a1", "handoffs": 1, "share": 0.5, "replies": 1, "closed": 1, "handle_avg_s": 270.0,
         "csat_answers": 1, "csat_avg": 5.0, "online_minutes": 8, "occupancy": 0.75, "load": 0.25},
        {"agent_id": "a2", "handoffs": 1, "share": 0.5, "replies": 1, "closed": 1, "handle_avg_s": 65.0,
         "csat_answers": 0, "csat_avg": None, "online_minutes": 4, "occupancy": 0.5, "load": 0.1667}]
    # Presence (seed.PRESENCE): 12 online minutes, 8 owning a conversation; load (6/3 + 2/3) / 12.
    assert s["agent_load"] == {"online_minutes": 12, "busy_minutes": 8, "occupancy": 0.6667, "load": 0.2222}

    # VIP queue times: B (Gold) waited 10 s for a1 and got the first reply after 20 s (a breach); of the regular
    # handoffs C waited 5 s (reply after 10 s) and D was never taken (a breach).
    tiers = (await _get(dashboard, boss, "/api/analytics/tiers"))["rows"]
    assert tiers == [
        {"tier": "gold", "vip": True, "handoffs": 1, "taken": 1, "queue_wait_avg_s": 10.0, "queue_wait_max_s": 10.0,
         "human_frt_avg_s": 20.0, "human_sla_breaches": 1, "human_breach_rate": 1.0},
        {"tier": "regular", "vip": False, "handoffs": 2, "taken": 1, "queue_wait_avg_s": 5.0, "queue_wait_max_s": 5.0,
         "human_frt_avg_s": 10.0, "human_sla_breaches": 1, "human_breach_rate": 0.5}]

    # Filters: language (conversation language = its first customer message's) and channel.
    zh = await _get(dashboard, boss, "/api/analytics/summary", language="zh")
    assert (zh["conversations"], zh["bot_resolution"]["rate"], zh["handoff"]["rate"]) == (1, 0.0, 1.0)
    tg = await _get(dashboard, boss, "/api/analytics/summary", channel="telegram")
    assert (tg["conversations"], tg["sla"]["human_breaches"], tg["first_response_bot"]["avg_s"]) == (1, 1, 1.0)

    # Drill-down: from a number to its conversations.
    async def ids(**params):
        rows = (await _get(dashboard, boss, "/api/analytics/conversations", **params))["rows"]
        return [r["conversation_id"] for r in rows]
    assert await ids(segment="human_sla_breach") == ["conv-b", "conv-d"]
    assert await ids(segment="bot_resolved") == ["conv-a"]
    assert await ids(reason="explicit_request") == ["conv-c", "conv-d"]
    assert await ids(dow=0, hour=10) == ["conv-a", "conv-b"]
    assert await ids(segment="repeat") == ["conv-c"]
    assert await ids(segment="bot_sla_breach") == ["conv-c"]

    # CSV export of a table.
    r = await dashboard.http.get("/api/analytics/export/reasons.csv", params={"start": START, "end": END},
                                 headers=boss)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert rows == [{"reason": "explicit_request", "handoffs": "2", "rate": "0.5"},
                    {"reason": "high_frustration", "handoffs": "1", "rate": "0.25"}]
    r = await dashboard.http.get("/api/analytics/export/summary.csv", params={"start": START, "end": END},
                                 headers=boss)
    summary_row = next(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert summary_row["conversations"] == "4" and summary_row["bot_resolution.rate"] == "0.25"

    # The record: sources and masking.
    with dashboard.app.state.analytics_engine.connect() as db:
        kb = db.execute(text("SELECT source, kb_id, kb_score FROM analytics_events WHERE kind = 'message_bot' "
                             "AND conversation_id = 'conv-b'")).one()
        stored = db.execute(text("SELECT text FROM analytics_events WHERE conversation_id = 'conv-a' "
                                 "AND kind = 'message_customer'")).scalar()
    assert tuple(kb) == ("kb", "orders-delivery-time", 0.8)
    assert "12345678" not in stored and "138" in stored


async def test_twice_delivered_events_are_counted_once(dashboard) -> None:
    await seed(dashboard.redis)
    assert await dashboard.consumer.poll_once(rescan=True) == 23
    before = await _get(dashboard, await dashboard.login("boss2"), "/api/analytics/summary")
    # Every entry delivered again (a group rewound, as after a restore) and to a second gateway: nothing new.
    for stream in [k async for k in dashboard.redis.scan_iter(match="*:messages")] + [b"csbot:desk:events"]:
        await dashboard.redis.xgroup_setid(stream, "analytics", "0")
    assert await dashboard.consumer.poll_once(rescan=True) == 0
    from analytics.consumer import AnalyticsConsumer
    second = AnalyticsConsumer(dashboard.app.state.redis, dashboard.app.state.analytics_engine,
                               dashboard.app.state.desk.policy, "test-2", claim_idle_s=0.0)
    assert await second.poll_once(rescan=True) == 0
    after = await _get(dashboard, await dashboard.login("boss3"), "/api/analytics/summary")
    assert after == before
    with dashboard.app.state.analytics_engine.connect() as db:
        assert db.execute(text("SELECT COUNT(*) FROM analytics_events")).scalar() == 23


async def test_empty_period_is_no_data(dashboard) -> None:
    await seed(dashboard.redis)
    await dashboard.consumer.poll_once(rescan=True)
    boss = await dashboard.login("boss4")
    r = await dashboard.http.get("/api/analytics/summary", params={"start": "2025-01-01", "end": "2025-01-31"},
                                 headers=boss)
    s = r.json()
    assert s["no_data"] is True and s["conversations"] == 0
    assert s["bot_resolution"]["rate"] is None and s["handoff"]["rate"] is None
    assert s["first_response_bot"]["avg_s"] is None and s["sla"]["human_breach_rate"] is None
    assert s["repeat_contacts"]["rate"] is None and s["csat"]["agents"]["avg_stars"] is None
    r = await dashboard.http.get("/api/analytics/daily", params={"start": "2025-01-01", "end": "2025-01-31"},
                                 headers=boss)
    assert r.json() == {"range": r.json()["range"], "rows": [], "no_data": True}


async def test_only_supervisors(dashboard) -> None:
    agent = await dashboard.login("plain-agent", role="agent")
    assert (await dashboard.http.get("/api/analytics/summary", headers=agent)).status_code == 403
    assert (await dashboard.http.get("/api/analytics/summary")).status_code == 401
    boss = await dashboard.login("boss5")
    bad = await dashboard.http.get("/api/analytics/summary", params={"start": "2026-02-01", "end": "2026-01-01"},
                                   headers=boss)
    assert bad.status_code == 422

@pytest.mark.dashboard_settings(handoff_limit_report_reads="4/minute")
async def test_one_account_cannot_make_the_record_scan_10000_times(dashboard) -> None:
    """Each table and export queries the SQL record (three years at most per call): the account's report reads are
    limited (HANDOFF_LIMIT_REPORT_READS), whichever session, table or export it uses; another supervisor and the
    live board (Redis only, polled every 5 s) are not held up."""
    from tests.analytics.conftest import PASSWORD

    boss = await dashboard.login("reader")
    for path in ("/api/analytics/summary", "/api/analytics/daily", "/api/analytics/topics",
                 "/api/analytics/export/reasons.csv"):
        assert (await dashboard.http.get(path, headers=boss)).status_code == 200
    over = await dashboard.http.get("/api/analytics/daily", headers=boss, params={"start": "2024-01-01"})
    assert over.status_code == 429 and int(over.headers["Retry-After"]) >= 1
    assert "try again" in over.json()["detail"]
    r = await dashboard.http.post("/api/agent/login", json={"username": "reader", "password": PASSWORD})
    dashboard.http.cookies.clear()
    fresh = {"Authorization": f"Bearer {r.json()['token']}"}  # a new session of the same account
    assert (await dashboard.http.get("/api/analytics/export/daily.csv", headers=fresh)).status_code == 429
    assert (await dashboard.http.get("/api/analytics/live", headers=fresh)).status_code == 200
    other = await dashboard.login("other-boss")
    assert (await dashboard.http.get("/api/analytics/daily", headers=other)).status_code == 200
    agent = await dashboard.login("curious-agent", role="agent")  # refused, and counted: a stolen agent session
    codes = [(await dashboard.http.get("/api/analytics/daily", headers=agent)).status_code for _ in range(5)]
    assert codes == [403] * 4 + [429]



async def test_complaint_sla_figures(dashboard) -> None:
    """Three complaints, times relative to now (tests/analytics/seed.py COMPLAINTS): X queued 50 h ago and answered
    after 10 h (within 24 h); Y queued 50 h ago, never answered (a 24 h breach and a 48 h escalation); Z queued 30 h
    ago, answered after 26 h (a 24 h breach, not escalated). Plus an explicit request (not a complaint)."""
    import time
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    from tests.analytics.seed import seed_complaints

    await seed_complaints(dashboard.redis, time.time())
    await dashboard.consumer.poll_once(rescan=True)
    boss = await dashboard.login("boss-complaints")
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    r = await dashboard.http.get("/api/analytics/summary", headers=boss, params={
        "start": (today - timedelta(days=4)).isoformat(), "end": today.isoformat()})
    s = r.json()
    assert s["complaints"] == {"handoffs": 3, "answered_24h": 1, "answered_24h_rate": 0.3333, "breaches_24h": 2,
                               "escalated_48h": 1}
    assert s["handoff"]["handoffs"] == 4
    r = await dashboard.http.get("/api/analytics/complaint_types", headers=boss, params={
        "start": (today - timedelta(days=4)).isoformat(), "end": today.isoformat()})
    assert r.json()["rows"] == [  # X product (answered), Z attitude (answered), Y not closed: unclassified
        {"complaint_type": "attitude", "complaints": 1, "share": 0.3333, "answered": 1},
        {"complaint_type": "product", "complaints": 1, "share": 0.3333, "answered": 1},
        {"complaint_type": "unclassified", "complaints": 1, "share": 0.3333, "answered": 0}]


async def test_kb_coverage_of_the_most_frequent_questions(dashboard) -> None:
    """Five conversations: "How long does delivery take?" asked 3 times (2 answered from the KB, 1 by a flow), "refund
    status" twice (never from the KB). Top questions 2, covered 1 (delivery: 2/3 >= 0.5), rate 0.5; weighted 2/5."""
    import json
    import time

    from conversations import keys

    t0 = time.time() - 3600
    plan = [("q1", "How long does delivery take?", True), ("q2", "how long does delivery take? ", True),
            ("q3", "How long does delivery take?", False), ("q4", "refund status", False),
            ("q5", "Refund status", False)]
    for i, (cid, question, kb) in enumerate(plan):
        ts = t0 + i * 10
        await dashboard.redis.hset(keys.conversation(cid), mapping={"channel": "webchat", "ui_lang": "en"})
        await dashboard.redis.xadd(keys.messages(cid), {"role": "customer", "text": question, "ts": repr(ts)},
                                   id=f"{int(ts * 1000)}-0")
        extra = {"kb": json.dumps({"id": "orders-delivery-time", "score": 0.9})} if kb else {}
        await dashboard.redis.xadd(keys.messages(cid), {"role": "bot", "text": "answer", "ts": repr(ts + 1), **extra},
                                   id=f"{int((ts + 1) * 1000)}-0")
    await dashboard.consumer.poll_once(rescan=True)
    boss = await dashboard.login("boss-kb")
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    params = {"start": (today - timedelta(days=1)).isoformat(), "end": today.isoformat()}
    s = (await dashboard.http.get("/api/analytics/summary", headers=boss, params=params)).json()
    assert s["kb_coverage"] == {"top_questions": 2, "covered": 1, "rate": 0.5, "asked": 5, "kb_answered": 2,
                                "weighted_rate": 0.4}
    rows = (await dashboard.http.get("/api/analytics/questions", headers=boss, params=params)).json()["rows"]
    assert rows == [{"question": "how long does delivery take?", "asked": 3, "kb_answered": 2, "kb_rate": 0.6667,
                     "covered": True},
                    {"question": "refund status", "asked": 2, "kb_answered": 0, "kb_rate": 0.0, "covered": False}]
    empty = (await dashboard.http.get("/api/analytics/summary", headers=boss,
                                      params={"start": "2020-01-01", "end": "2020-01-02"})).json()
    assert empty["kb_coverage"]["rate"] is None and empty["first_contact_resolution"]["rate"] is None


async def test_unanswered_topics_of_the_period_from_the_editors_inbox(dashboard) -> None:
    """What the bot got wrong, grouped as the editors' inbox groups it (texts masked there), most frequent first,
    only the period's and the language asked for; CSV too."""
    rows = [item(f"t{i}", source, f"conv-t{i}", T0 + i, lang, text, channel=channel)
            for i, (source, lang, text, channel) in enumerate([
                ("kb_no_answer", "en", "do you sell gift cards", "webchat"),
                ("nlu_fallback", "en", "do you sell gift cards", "telegram"),
                ("kb_no_answer", "en", "Do you sell gift cards?", "webchat"),
                ("unhelpful", "zh", "能开增值税专用发票吗 13812345678", "wechat"),
                ("kb_no_answer", "en", "can i pick it up in store", None)])]
    rows.append(item("old", "kb_no_answer", "conv-old", T0 - 30 * 86400, "en", "a question from last month"))
    boss = await dashboard.login("topics-boss")
    assert (await _get(dashboard, boss, "/api/analytics/topics")) == {
        "range": {"start": START, "end": END, "channel": None, "language": None, "timezone": "Asia/Shanghai"},
        "rows": [], "no_data": True}
    assert dashboard.app.state.workbench_inbox.insert(rows) == 6

    topics = (await _get(dashboard, boss, "/api/analytics/topics"))["rows"]
    # The group's newest wording leads it; its count is the three askings.
    assert (topics[0]["topic"], topics[0]["count"], topics[0]["language"]) == ("Do you sell gift cards?", 3, "en")
    assert topics[0]["sources"] == "kb_no_answer 2, nlu_fallback 1"
    assert len(topics) == 3 and [t["count"] for t in topics[1:]] == [1, 1]
    assert "can i pick it up in store" in [t["topic"] for t in topics]
    invoice = next(t["topic"] for t in topics if t["language"] == "zh")
    assert invoice.startswith("能开增值税专用发票吗") and "13812345678" not in invoice  # masked
    assert all("last month" not in t["topic"] for t in topics)  # outside the period
    zh = (await _get(dashboard, boss, "/api/analytics/topics", language="zh"))["rows"]
    assert len(zh) == 1 and zh[0]["language"] == "zh" and zh[0]["sources"] == "unhelpful 1"
    web = (await _get(dashboard, boss, "/api/analytics/topics", channel="webchat"))["rows"]
    assert [(t["topic"], t["count"], t["sources"]) for t in web] == [("Do you sell gift cards?", 2, "kb_no_answer 2")]
    assert (await _get(dashboard, boss, "/api/analytics/topics", channel="whatsapp"))["rows"] == []
    r = await dashboard.http.get("/api/analytics/export/topics.csv", params={"start": START, "end": END},
                                 headers=boss)
    assert r.status_code == 200 and list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))[0]["count"] == "3"
    agent = await dashboard.login("topics-agent", "agent")
    assert (await dashboard.http.get("/api/analytics/topics", headers=agent)).status_code == 403
