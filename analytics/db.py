"""The event record: one row per stream entry (idempotent on the stream key + entry id, so a redelivery or a second
gateway never counts twice), one row per conversation (channel, language, start, pseudonymous customer ref), and one
row per desk member and minute online (analytics/presence.py: agent occupancy and load).

For long ranges the dashboard reads per-day rollups (analytics/rollup.py): ``analytics_rollup`` keeps each settled
day's partial aggregates, ``analytics_rollup_days`` each day's change ``version`` (bumped in the same transaction as
every write that can change the day's figures, see ``mark_days``) and the version its rollup was built from. A day
whose rollup is from an older version is read from the events again, so a late event is never missed.

Times are epoch seconds; ``day``, ``hour`` and ``dow`` are China time (the merchant's zone, data/store_policy.yml),
computed at write time so grouping is plain SQL on SQLite and PostgreSQL alike. Tables are created with
``create_all`` (no migration history yet: the record is derived and can be rebuilt from the streams it keeps).
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    case,
    create_engine,
    event,
    inspect,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from analytics.kpis import REPEAT_WINDOW_S

metadata = MetaData()

events = Table(
    "analytics_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("stream", String(200), nullable=False),
    Column("entry_id", String(40), nullable=False),
    Column("ts", Float, nullable=False),
    Column("day", String(10), nullable=False),
    Column("hour", Integer, nullable=False),
    Column("dow", Integer, nullable=False),
    Column("in_hours", Boolean, nullable=False, default=False),
    Column("conversation_id", String(64), nullable=False),
    Column("handoff_id", String(64)),
    Column("kind", String(32), nullable=False),
    Column("agent_id", String(64)),
    Column("reason", String(40)),
    Column("priority", Integer),
    Column("tier", String(20)),
    Column("resolution", String(40)),
    Column("ticket_id", String(40)),
    Column("source", String(20)),
    Column("kb_id", String(120)),
    Column("kb_score", Float),
    Column("stars", Integer),
    Column("text", Text),
    Column("complaint_type", String(20)),  # handoff/handoffs.py: COMPLAINT_TYPES, chosen when a complaint is closed
    Column("arm", String(40)),  # a bot message's canary arm, "<release>:canary|control" (conversations/canary.py)
    UniqueConstraint("stream", "entry_id", name="uq_analytics_events_entry"),
    Index("ix_analytics_events_arm", "arm"),
    Index("ix_analytics_events_conv_kind_ts", "conversation_id", "kind", "ts"),
    Index("ix_analytics_events_kind_handoff", "kind", "handoff_id"),
)

conversations = Table(
    "analytics_conversations", metadata,
    Column("conversation_id", String(64), primary_key=True),
    Column("channel", String(32), nullable=False, default="webchat"),
    Column("language", String(8), nullable=False, default="zh"),
    Column("language_ts", Float),
    Column("started_ts", Float, nullable=False),
    Column("day", String(10), nullable=False),
    Column("hour", Integer, nullable=False),
    Column("dow", Integer, nullable=False),
    Column("customer_ref", String(32)),
    Index("ix_analytics_conversations_day", "day", "channel", "language"),
    Index("ix_analytics_conversations_customer", "customer_ref", "started_ts"),
)


agent_minutes = Table(
    "analytics_agent_minutes", metadata,
    Column("agent_id", String(64), primary_key=True),
    Column("minute_ts", Integer, primary_key=True),  # epoch seconds of the minute's start (real time)
    Column("day", String(10), nullable=False),
    Column("hour", Integer, nullable=False),
    Column("owned", Integer, nullable=False),
    Column("max_concurrent", Integer, nullable=False),
    Index("ix_analytics_agent_minutes_day", "day"),
)


# One row per China-time day the record has data for. ``version`` grows with every write that can change the day's
# figures; ``last_ts`` is the latest event time written for it; ``rolled_version`` is the version the day's rollup
# rows were built from (NULL: never rolled).
rollup_days = Table(
    "analytics_rollup_days", metadata,
    Column("day", String(10), primary_key=True),
    Column("version", Integer, nullable=False, default=1),
    Column("last_ts", Float, nullable=False),
    Column("rolled_version", Integer),
    Column("rolled_at", Float),
    Column("valid_until", Float),  # the rollup holds until the clock changes a figure (analytics/kpis.py: NEXT_CHANGE)
)

ROLLUP_VALUES = 18  # value columns of a rollup row (the widest part, summary handoffs, has 17)
# A settled day's partial aggregates, per channel and language, for one part (a table of analytics/kpis.py) and key
# (the part's group, JSON: e.g. ["complaint"] for the reasons part). v0.. are that part's sums and maxima in the
# order analytics/kpis.py: PARTS lists them.
rollup = Table(
    "analytics_rollup", metadata,
    Column("part", String(20), primary_key=True),
    Column("day", String(10), primary_key=True),
    Column("channel", String(32), primary_key=True),
    Column("language", String(8), primary_key=True),
    Column("key", String(400), primary_key=True),
    *(Column(f"v{i}", Float) for i in range(ROLLUP_VALUES)),
)


def make_engine(url: str) -> Engine:
    """An engine with the tables created; a SQLite file's folder is created and WAL is on (readers never block the
    consumer's writes)."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, future=True, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.close()
    with engine.connect() as db:
        had_days = engine.dialect.has_table(db, rollup_days.name)
    metadata.create_all(engine)
    _add_new_columns(engine)
    if not had_days:
        _mark_existing_days(engine)
    return engine


def _add_new_columns(engine: Engine) -> None:
    """``create_all`` creates missing tables, not missing columns: a record from before a column was added to a table
    here gets it (NULL in the rows it already has)."""
    inspector = inspect(engine)
    for table in metadata.sorted_tables:
        have = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in have:
                with engine.begin() as db:
                    db.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {column.name} "
                                       f"{column.type.compile(engine.dialect)}")
        for index in table.indexes:  # an index over a column added here
            index.create(engine, checkfirst=True)


def _mark_existing_days(engine: Engine) -> None:
    """A record from before the rollups: give each day it has data for a version (as if written now), so the days
    are read from the events until they are rolled up."""
    now = time.time()
    with engine.begin() as db:
        days = set(db.execute(select(conversations.c.day).distinct()).scalars())
        days |= set(db.execute(select(agent_minutes.c.day).distinct()).scalars())
        mark_days(db, engine, dict.fromkeys(days, now))


def _insert(engine: Engine, table: Table):
    return (pg_insert if engine.dialect.name == "postgresql" else sqlite_insert)(table)


def write(engine: Engine, rows: Iterable[dict[str, Any]], convs: Iterable[dict[str, Any]]) -> int:
    """Insert event rows (a row whose stream entry is already there is skipped) and conversation rows (the earliest
    start and the language of the earliest customer message win, whatever order they arrive in). Returns the number
    of event rows inserted now."""
    rows, convs = list(rows), list(convs)
    inserted = 0
    with engine.begin() as db:
        if rows or convs:
            _mark_conversations(db, engine, rows, convs)
        for row in rows:
            stmt = _insert(engine, events).values(**row).on_conflict_do_nothing(index_elements=["stream", "entry_id"])
            inserted += db.execute(stmt).rowcount or 0
        for conv in convs:
            values = {k: v for k, v in conv.items() if k in conversations.c}
            stmt = _insert(engine, conversations).values(**values).on_conflict_do_nothing(
                index_elements=["conversation_id"])
            db.execute(stmt)
            cid = conv["conversation_id"]
            db.execute(update(conversations).where(conversations.c.conversation_id == cid,
                                                   conversations.c.started_ts > conv["started_ts"])
                       .values(started_ts=conv["started_ts"], day=conv["day"], hour=conv["hour"], dow=conv["dow"]))
            if conv.get("language_ts") is not None:
                db.execute(update(conversations).where(
                    conversations.c.conversation_id == cid,
                    (conversations.c.language_ts.is_(None)) | (conversations.c.language_ts > conv["language_ts"]))
                    .values(language=conv["language"], language_ts=conv["language_ts"]))
            if conv.get("customer_ref"):
                db.execute(update(conversations).where(conversations.c.conversation_id == cid,
                                                       conversations.c.customer_ref.is_(None))
                           .values(customer_ref=conv["customer_ref"]))
            if conv.get("channel_known"):
                db.execute(update(conversations).where(conversations.c.conversation_id == cid)
                           .values(channel=conv["channel"]))
    return inserted


def write_minutes(engine: Engine, rows: Iterable[dict[str, Any]]) -> int:
    """Insert presence samples; a minute some gateway already sampled for that agent is skipped (N gateways, one
    row). Returns the rows inserted now."""
    rows = list(rows)
    inserted = 0
    with engine.begin() as db:
        marks: dict[str, float] = {}
        for row in rows:
            marks[row["day"]] = max(marks.get(row["day"], 0.0), float(row["minute_ts"]) + 60)
        mark_days(db, engine, marks)
        for row in rows:
            stmt = _insert(engine, agent_minutes).values(**row).on_conflict_do_nothing(
                index_elements=["agent_id", "minute_ts"])
            inserted += db.execute(stmt).rowcount or 0
    return inserted


def _mark_conversations(db: Any, engine: Engine, rows: list[dict[str, Any]], convs: list[dict[str, Any]]) -> None:
    """Bump the version of every day whose figures these writes can change: the start days of the conversations the
    events belong to (the record counts an event for its conversation's start day), and, for an identified customer,
    the days of their other conversations within the repeat window (repeat contacts and first-contact resolution
    look 7 days back and forth). Runs in the write's transaction, before the rows: a rollup built from an older
    snapshot then carries an older version and is rebuilt."""
    latest: dict[str, float] = {}
    for item in [*rows, *convs]:
        ts = float(item.get("ts") or item.get("started_ts") or 0.0)
        latest[item["conversation_id"]] = max(latest.get(item["conversation_id"], 0.0), ts)
    marks: dict[str, float] = {}

    def mark(day: str, ts: float) -> None:
        marks[day] = max(marks.get(day, 0.0), ts)

    for conv in convs:  # the start day as this write will leave it (an earlier start moves the conversation)
        mark(conv["day"], latest[conv["conversation_id"]])
    known = db.execute(select(conversations.c.conversation_id, conversations.c.day, conversations.c.customer_ref,
                              conversations.c.started_ts)
                       .where(conversations.c.conversation_id.in_(list(latest)))).all()
    refs = {c.get("customer_ref") for c in convs} | {r.customer_ref for r in known}
    for r in known:
        mark(r.day, latest[r.conversation_id])
    starts = [float(c["started_ts"]) for c in convs] + [r.started_ts for r in known]
    for ref in refs - {None}:
        near = db.execute(select(conversations.c.day).distinct().where(
            conversations.c.customer_ref == ref,
            conversations.c.started_ts >= min(starts) - REPEAT_WINDOW_S,
            conversations.c.started_ts <= max(starts) + REPEAT_WINDOW_S)).scalars()
        for day in near:
            mark(day, max(latest.values()))
    mark_days(db, engine, marks)


def mark_days(db: Any, engine: Engine, marks: dict[str, float]) -> None:
    """Bump each day's version and keep its latest event time (``{day: ts}``)."""
    for day, ts in sorted(marks.items()):
        stmt = _insert(engine, rollup_days).values(day=day, version=1, last_ts=ts)
        db.execute(stmt.on_conflict_do_update(index_elements=["day"], set_={
            "version": rollup_days.c.version + 1,
            "last_ts": case((rollup_days.c.last_ts > stmt.excluded.last_ts, rollup_days.c.last_ts),
                            else_=stmt.excluded.last_ts)}))


def last_closed_handoff(engine: Engine, conversation_id: str, ts: float) -> str | None:
    """The handoff a CSAT answer rates: the conversation's latest handoff closed before it (None if not seen yet)."""
    with engine.connect() as db:
        return db.execute(
            select(events.c.handoff_id).where(events.c.conversation_id == conversation_id,
                                              events.c.kind == "handoff_closed", events.c.ts <= ts)
            .order_by(events.c.ts.desc()).limit(1)).scalar()
