"""The event record: one row per stream entry (idempotent on the stream key + entry id, so a redelivery or a second
gateway never counts twice), one row per conversation (channel, language, start, pseudonymous customer ref), and one
row per desk member and minute online (analytics/presence.py: agent occupancy and load).

Times are epoch seconds; ``day``, ``hour`` and ``dow`` are China time (the merchant's zone, data/store_policy.yml),
computed at write time so grouping is plain SQL on SQLite and PostgreSQL alike. Tables are created with
``create_all`` (no migration history yet: the record is derived and can be rebuilt from the streams it keeps).
"""
from __future__ import annotations

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
    create_engine,
    event,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

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
    UniqueConstraint("stream", "entry_id", name="uq_analytics_events_entry"),
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
    metadata.create_all(engine)
    return engine


def _insert(engine: Engine, table: Table):
    return (pg_insert if engine.dialect.name == "postgresql" else sqlite_insert)(table)


def write(engine: Engine, rows: Iterable[dict[str, Any]], convs: Iterable[dict[str, Any]]) -> int:
    """Insert event rows (a row whose stream entry is already there is skipped) and conversation rows (the earliest
    start and the language of the earliest customer message win, whatever order they arrive in). Returns the number
    of event rows inserted now."""
    rows, convs = list(rows), list(convs)
    inserted = 0
    with engine.begin() as db:
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
    inserted = 0
    with engine.begin() as db:
        for row in rows:
            stmt = _insert(engine, agent_minutes).values(**row).on_conflict_do_nothing(
                index_elements=["agent_id", "minute_ts"])
            inserted += db.execute(stmt).rowcount or 0
    return inserted


def last_closed_handoff(engine: Engine, conversation_id: str, ts: float) -> str | None:
    """The handoff a CSAT answer rates: the conversation's latest handoff closed before it (None if not seen yet)."""
    with engine.connect() as db:
        return db.execute(
            select(events.c.handoff_id).where(events.c.conversation_id == conversation_id,
                                              events.c.kind == "handoff_closed", events.c.ts <= ts)
            .order_by(events.c.ts.desc()).limit(1)).scalar()
