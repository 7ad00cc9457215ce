"""Per-day rollups (analytics/rollup.py): a year is read from them, and every table must say exactly what it says
when read from the events. Synthetic conversations (tools/bench_dashboard.py's generator) are written through the
consumer's own ``db.write``, on SQLite and PostgreSQL."""
from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, text

from analytics import db
from analytics.kpis import COMPLAINT_ANSWER_S, SETTLE_S, Filters, Kpis
from analytics.rollup import Roller, stats
from tests.actions.orders.conftest import (  # noqa: F401 - the session's PostgreSQL server fixture
    _create_postgres_database,
    _drop_postgres_database,
    postgres_server_url,
)
from tools.bench_dashboard import conversation

TZ = ZoneInfo("Asia/Shanghai")
DAYS = 12
QUESTIONS = ["where is my parcel", "how do i return this", "退款多久到账", "运费谁出", "hello", "发票怎么开"]
TABLES = ["summary", "daily", "reasons", "heatmap", "agents", "tiers", "questions", "sources", "agent_load", "scores",
          "complaint_types"]


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        e = db.make_engine(f"sqlite:///{tmp_path / 'analytics.db'}")
        yield e
        e.dispose()
        return
    url, admin = _create_postgres_database(request.getfixturevalue("postgres_server_url"))
    e = db.make_engine(url)
    try:
        yield e
    finally:
        e.dispose()
        _drop_postgres_database(admin, url)


def _first_day() -> datetime:
    today = datetime.now(TZ).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=DAYS + 4)  # the last synthetic day ends 4 days ago: every day has settled


def _fill(engine: Engine, n: int = 240) -> list[dict[str, Any]]:
    rng = random.Random(11)
    t0 = _first_day().timestamp()
    convs = []
    for i in range(n):
        conv, rows = conversation(rng, i, t0, DAYS)
        for row in rows:
            if row["kind"] == "message_customer":
                row["text"] = rng.choice(QUESTIONS)
        db.write(engine, rows, [conv])
        convs.append(conv)
    minutes = [{"agent_id": agent, "minute_ts": int(t0) + 86400 * d + 36000 + 60 * m,
                "day": (_first_day() + timedelta(days=d)).strftime("%Y-%m-%d"), "hour": 10,
                "owned": m % 3, "max_concurrent": 3}
               for agent in ("agent-1", "agent-2") for d in (0, 5) for m in range(7)]
    db.write_minutes(engine, minutes)
    return convs


def _filters() -> list[Filters]:
    first = _first_day().date()
    last = first + timedelta(days=DAYS - 1)
    mid = first + timedelta(days=4)
    today = datetime.now(TZ).date()
    return [Filters(first.isoformat(), last.isoformat()), Filters(mid.isoformat(), mid.isoformat()),
            Filters((first - timedelta(days=30)).isoformat(), today.isoformat()),  # beyond the data on both sides
            Filters(mid.isoformat(), last.isoformat(), channel="wechat"),
            Filters(first.isoformat(), mid.isoformat(), language="en"),
            Filters(first.isoformat(), last.isoformat(), channel="telegram", language="zh")]


def _all(kpis: Kpis) -> list[Any]:
    return [getattr(kpis, table)(f) for f in _filters() for table in TABLES]


def test_every_table_reads_the_same_from_rollups_as_from_the_events(engine: Engine) -> None:
    _fill(engine)
    kpis = Kpis(engine, frozenset({"gold"}))
    from_events = _all(kpis)
    assert from_events[0]["conversations"] == 240 and from_events[0]["handoff"]["handoffs"] > 0
    assert stats(engine) == {"days": DAYS, "rolled": 0}
    # the drill-down reads the period in growing windows of days: the same first conversations, in start order
    whole = _filters()[0]
    every = kpis.conversations(whole, limit=1000)
    assert len(every) == 240 and [r["day"] for r in every] == sorted(r["day"] for r in every)
    assert kpis.conversations(whole, limit=50) == every[:50]
    assert kpis.conversations(whole, segment="handed_off", limit=7) == [r for r in every if r["handed_off"]][:7]

    assert Roller(engine, kpis).roll_due(limit=None) == DAYS
    assert stats(engine) == {"days": DAYS, "rolled": DAYS}
    assert _all(kpis) == from_events

    # the rollups are what is read now: the events behind them are gone and every figure stays
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM analytics_events"))
        conn.execute(text("DELETE FROM analytics_agent_minutes"))
    assert _all(kpis) == from_events


def test_a_late_event_counts_at_once_and_its_day_is_rolled_again(engine: Engine) -> None:
    convs = _fill(engine, n=60)
    kpis = Kpis(engine)
    roller = Roller(engine, kpis)
    roller.roll_due(limit=None)
    f = _filters()[0]
    before = kpis.summary(f)
    # a CSAT answer for an old conversation (of an anonymous customer: only its own day is touched), arriving late
    # (the consumer caught up after an outage)
    old = next(c for c in convs if c["customer_ref"] is None)
    late = old["started_ts"] + 600
    db.write(engine, [{"stream": "csbot:late", "entry_id": "1-1", "conversation_id": old["conversation_id"],
                       "kind": "csat", "stars": 5, "ts": late, "day": old["day"], "hour": 10, "dow": 0}], [])
    assert kpis.summary(f)["csat"]["bot"]["answers"] == before["csat"]["bot"]["answers"] + 1  # from the events
    assert stats(engine)["rolled"] == DAYS - 1
    assert roller.roll_due() == 1
    assert stats(engine)["rolled"] == DAYS
    assert kpis.summary(f)["csat"]["bot"]["answers"] == before["csat"]["bot"]["answers"] + 1

    # a handoff queued now for that old conversation: its day is read from the events until it has been quiet for
    # SETTLE_S, then rolled, and rolled again when the complaint turns 24 h old unanswered
    now = time.time()
    db.write(engine, [{"stream": "csbot:late", "entry_id": "2-1", "conversation_id": old["conversation_id"],
                       "kind": "handoff_queued", "handoff_id": "h-late", "reason": "complaint", "ts": now,
                       "day": datetime.now(TZ).strftime("%Y-%m-%d"), "hour": 10, "dow": 0, "in_hours": True}], [])
    assert roller.due(now) == [] and not roller.roll_day(old["day"], now)
    assert kpis.summary(f)["complaints"]["handoffs"] == before["complaints"]["handoffs"] + 1
    assert roller.due(now + SETTLE_S + 1) == [old["day"]]
    assert roller.roll_day(old["day"], now + SETTLE_S + 1)
    assert roller.due(now + SETTLE_S + 2) == []
    assert roller.due(now + COMPLAINT_ANSWER_S + 1) == [old["day"]]


def test_a_rolled_day_is_read_from_its_events_again_when_the_clock_changes_a_figure(engine: Engine) -> None:
    """A complaint queued yesterday and still unanswered turns late at 24 h without any new event: the rollup built
    before that moment must not be read after it."""
    kpis = Kpis(engine)
    queued = time.time() - COMPLAINT_ANSWER_S + 3
    local = datetime.fromtimestamp(queued, TZ)
    when = {"day": local.strftime("%Y-%m-%d"), "hour": local.hour, "dow": local.weekday()}
    db.write(engine, [{"stream": "csbot:conv:c1:messages", "entry_id": "1-0", "conversation_id": "c1", "ts": queued - 5,
                       "kind": "message_customer", "text": "terrible service", **when},
                      {"stream": "csbot:desk:events", "entry_id": "1-1", "conversation_id": "c1", "ts": queued,
                       "kind": "handoff_queued", "handoff_id": "h1", "reason": "complaint", "in_hours": True, **when}],
             [{"conversation_id": "c1", "started_ts": queued - 5, **when}])
    f = Filters(when["day"], when["day"])
    assert Roller(engine, kpis).roll_due() == 1
    assert stats(engine) == {"days": 1, "rolled": 1}
    assert kpis.summary(f)["complaints"]["breaches_24h"] == 0
    time.sleep(max(0.0, queued + COMPLAINT_ANSWER_S - time.time()) + 0.5)
    assert kpis.summary(f)["complaints"]["breaches_24h"] == 1  # from the events: the rollup no longer holds
    assert Roller(engine, kpis).roll_due() == 1
    assert kpis.summary(f)["complaints"] == {"handoffs": 1, "answered_24h": 0, "answered_24h_rate": 0.0,
                                             "breaches_24h": 1, "escalated_48h": 0}


def test_a_customer_coming_back_reopens_the_earlier_day(engine: Engine) -> None:
    """First-contact resolution of day 1 depends on whether the customer came back within 7 days: a new
    conversation of that customer on day 3 must change day 1's figure at once, even though day 1 was rolled."""
    kpis = Kpis(engine)
    t1 = _first_day().timestamp() + 3600 * 11
    day1 = (_first_day()).strftime("%Y-%m-%d")

    def talk(cid: str, ts: float) -> None:
        local = datetime.fromtimestamp(ts, TZ)
        when = {"day": local.strftime("%Y-%m-%d"), "hour": local.hour, "dow": local.weekday()}
        db.write(engine, [{"stream": f"csbot:conv:{cid}:messages", "entry_id": f"{int(ts * 1000)}-0", "ts": ts,
                           "conversation_id": cid, "kind": "message_customer", "text": "hi", **when}],
                 [{"conversation_id": cid, "channel": "webchat", "language": "en", "language_ts": ts, "started_ts": ts,
                   "customer_ref": "cust-1", **when}])

    talk("first", t1)
    f = Filters(day1, day1)
    Roller(engine, kpis).roll_due(limit=None)
    assert kpis.summary(f)["first_contact_resolution"] == {"identified": 1, "resolved": 1, "rate": 1.0}
    talk("again", t1 + 2 * 86400)
    assert kpis.summary(f)["first_contact_resolution"] == {"identified": 1, "resolved": 0, "rate": 0.0}


def test_a_record_from_before_the_rollups_gets_its_days_and_new_columns_when_opened(engine: Engine) -> None:
    _fill(engine, n=30)
    kpis = Kpis(engine)
    with engine.begin() as conn:  # as a record from before the complaint-type column would have it
        conn.execute(text("UPDATE analytics_events SET complaint_type = NULL"))
    expected = _all(kpis)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE analytics_rollup_days"))
        conn.execute(text("ALTER TABLE analytics_events DROP COLUMN complaint_type"))  # added later, too
        days = conn.execute(text("SELECT COUNT(*) FROM (SELECT day FROM analytics_conversations UNION "
                                 "SELECT day FROM analytics_agent_minutes) d")).scalar()
    reopened = db.make_engine(engine.url.render_as_string(hide_password=False))
    try:
        assert stats(reopened) == {"days": days, "rolled": 0}  # each day with data, read from the events
        with reopened.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM analytics_events WHERE complaint_type IS NOT NULL")
                                ).scalar() == 0  # the column is back, empty in the old rows
        assert _all(Kpis(reopened)) == expected
        assert Roller(reopened, Kpis(reopened)).roll_due(limit=None) == 0  # "written" now: not settled yet
        assert Roller(reopened, Kpis(reopened)).roll_due(now=time.time() + SETTLE_S + 1, limit=None) == days
    finally:
        reopened.dispose()
