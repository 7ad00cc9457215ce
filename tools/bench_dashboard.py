"""Time the dashboard over a year of synthetic conversations: every table of ``/api/analytics`` (analytics/kpis.py, the
same SQL the API runs) for a 365-day range, the busiest day, one channel, and the CSV export of the conversations
table, on a throw-away SQLite record (or ``--database-url`` for PostgreSQL).

Each synthetic conversation has the events the consumer writes (analytics/consumer.py): a customer message, a bot
answer (source kb / flow / fallback), and for 30 % a handoff (queued, claimed, an agent reply, closed or handed back,
CSAT for half of the closed ones, a complaint type for closed complaints). Channels, languages, tiers, hours and
returning customers are drawn at random
(seeded), spread over 365 China-time days.

Days settled before today are rolled up first (analytics/rollup.py, as the gateways do once a minute); the build
time is printed. Today (still being written to) is read from the events, as on a live record.

Run: ``PYTHONPATH=. .venv-app/bin/python -m tools.bench_dashboard [--conversations 1000000]``.
"""
from __future__ import annotations

import argparse
import csv
import io
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, text

from analytics import db, rollup
from analytics.kpis import SETTLE_S, Filters, Kpis
from analytics.rollup import Roller
from conversations import keys
from handoff.handoffs import COMPLAINT_TYPES

TZ = ZoneInfo("Asia/Shanghai")
CHANNELS = ["webchat"] * 5 + ["wechat"] * 3 + ["telegram", "whatsapp"]
REASONS = ["explicit_request", "high_frustration", "complaint", "repeated_failure", "sensitive_topic"]
TIERS = ["regular"] * 8 + ["silver", "gold"]
AGENTS = [f"agent-{i}" for i in range(40)]
BATCH = 20_000
RUNS = 3


def _when(ts: float) -> dict[str, Any]:
    local = datetime.fromtimestamp(ts, timezone.utc).astimezone(TZ)
    return {"ts": ts, "day": local.strftime("%Y-%m-%d"), "hour": local.hour, "dow": local.weekday(),
            "in_hours": 9 <= local.hour < 21}


def conversation(rng: random.Random, i: int, t0: float, days: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    cid = f"bench-{i:08d}"
    start = t0 + rng.random() * days * 86400
    when = _when(start)
    conv = {"conversation_id": cid, "channel": rng.choice(CHANNELS), "language": rng.choice(("zh", "zh", "en")),
            "language_ts": start, "started_ts": start, "day": when["day"], "hour": when["hour"], "dow": when["dow"],
            "customer_ref": f"cust-{rng.randrange(max(1, i // 3 + 1)):08d}" if rng.random() < 0.7 else None}
    stream = keys.messages(cid)
    rows: list[dict[str, Any]] = []

    def add(dt: float, kind: str, **extra: Any) -> None:
        rows.append({"stream": stream, "entry_id": f"{int((start + dt) * 1000)}-{len(rows)}",
                     "conversation_id": cid, "kind": kind, **_when(start + dt), **extra})

    add(0, "message_customer", text="where is my parcel")
    source = rng.choice(("kb", "kb", "flow", "fallback"))
    add(rng.uniform(0.5, 20), "message_bot", source=source,
        **({"kb_id": f"article-{rng.randrange(96)}", "kb_score": rng.random()} if source == "kb" else {}))
    if rng.random() < 0.3:
        hid = f"h-{cid}"
        agent = rng.choice(AGENTS)
        q = rng.uniform(25, 60)
        reason = rng.choice(REASONS)
        add(q, "handoff_queued", handoff_id=hid, reason=reason, priority=rng.randint(1, 4), tier=rng.choice(TIERS))
        taken = q + rng.uniform(2, 120)
        add(taken, "handoff_claimed", handoff_id=hid, agent_id=agent)
        add(taken + rng.uniform(2, 40), "message_agent", agent_id=agent, text="let me check")
        end = taken + rng.uniform(60, 900)
        closed = rng.random() < 0.8
        add(end, "handoff_closed" if closed else "handoff_handed_back", handoff_id=hid, agent_id=agent,
            resolution="resolved",
            complaint_type=rng.choice(COMPLAINT_TYPES) if closed and reason == "complaint" else None)
        if closed and rng.random() < 0.5:
            add(end + 5, "csat", stars=rng.choices((1, 2, 3, 4, 5), (5, 5, 10, 30, 50))[0])
    return conv, rows


def fill(engine: Engine, n: int, days: int, t0: float) -> int:
    rng = random.Random(7)
    convs: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    total = 0
    event_keys = [c.name for c in db.events.c if c.name != "id"]
    marks: dict[str, float] = {}
    for i in range(n):
        conv, rows = conversation(rng, i, t0, days)
        convs.append(conv)
        events += rows
        marks[conv["day"]] = max(marks.get(conv["day"], 0.0), max(r["ts"] for r in rows))
        if len(convs) >= BATCH or i == n - 1:
            with engine.begin() as conn:  # executemany: the consumer's row-by-row upsert would take hours here
                conn.execute(db.conversations.insert(), convs)
                conn.execute(db.events.insert(), [{k: r.get(k) for k in event_keys} for r in events])
                db.mark_days(conn, engine, marks)  # what the consumer's write does for the days it touches
            total += len(events)
            convs, events, marks = [], [], {}
    return total


def _time(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(runs):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def _export(kpis: Kpis, f: Filters) -> int:
    rows = kpis.conversations(f)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["no_data"])
    writer.writeheader()
    writer.writerows(rows)
    return len(out.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--runs", type=int, default=RUNS, help="timed runs per figure (the median is printed)")
    parser.add_argument("--database-url", default="", help="default: a SQLite file in a temporary folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        engine = db.make_engine(url)
        end_day = datetime.now(TZ).date()
        first_day = end_day - timedelta(days=args.days - 1)
        t0 = datetime(first_day.year, first_day.month, first_day.day, tzinfo=TZ).timestamp()
        t = time.perf_counter()
        events = fill(engine, args.conversations, args.days, t0)
        print(f"filled {args.conversations} conversations, {events} events in {time.perf_counter() - t:.0f} s "
              f"({engine.dialect.name})")
        with engine.connect() as conn:
            busiest = conn.execute(text("SELECT day FROM analytics_conversations GROUP BY day "
                                        "ORDER BY COUNT(*) DESC LIMIT 1")).scalar()
        kpis = Kpis(engine, frozenset({"gold", "platinum"}))
        t = time.perf_counter()
        rolled = Roller(engine, kpis).roll_due(limit=None)
        state = rollup.stats(engine)
        print(f"rolled up {rolled} settled days in {time.perf_counter() - t:.0f} s; {state['days'] - state['rolled']} "
              f"day(s) written to in the last {SETTLE_S:.0f} s are read from the events")
        year = Filters(first_day.isoformat(), end_day.isoformat())
        cases = [("year", year), ("busiest day", Filters(busiest, busiest)),
                 ("year, telegram", Filters(year.start, year.end, channel="telegram"))]
        tables = ["summary", "daily", "reasons", "heatmap", "agents", "tiers", "questions", "sources"]
        print(f"median of {args.runs} runs, seconds")
        print("| range | " + " | ".join(tables) + " | page (all tables) | conversations CSV |")
        print("|---" * (len(tables) + 3) + "|")
        for name, f in cases:
            cells = []
            total = 0.0
            for table in tables:
                seconds, _ = _time(lambda table=table, f=f: getattr(kpis, table)(f), args.runs)
                total += seconds
                cells.append(f"{seconds:.2f}")
            seconds, size = _time(lambda f=f: _export(kpis, f), args.runs)
            print(f"| {name} | " + " | ".join(cells) + f" | {total:.2f} | {seconds:.2f} ({size // 1024} KB) |")
        engine.dispose()


if __name__ == "__main__":
    main()
