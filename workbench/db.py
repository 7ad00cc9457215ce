"""The content versions (SQLAlchemy: SQLite by default, PostgreSQL by URL).

``workbench_articles`` holds each article's current state and its version number (the optimistic-concurrency
token: a save names the version it started from and only succeeds while that is still the current one);
``workbench_versions`` every state an article has had, with author, time and the unified diff from the state
before; ``workbench_files`` one row per article file, updated at the start of every write so writers of one file
queue behind each other (a row lock on PostgreSQL, the database's write lock on SQLite). Tables are created with
``create_all`` (no migration history yet).
"""
from __future__ import annotations

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
    inspect,
)
from sqlalchemy import text as sql_text

metadata = MetaData()

articles = Table(
    "workbench_articles", metadata,
    Column("article_id", String(120), primary_key=True),
    Column("category", String(80), nullable=False),
    Column("position", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    Column("content", Text, nullable=False),  # JSON of the article dict (workbench/articles.py)
    Column("updated_at", Float, nullable=False),
    Column("updated_by", String(80), nullable=False),
    Column("removed", Boolean, nullable=False, default=False),  # no longer in the files
    Index("ix_workbench_articles_category", "category", "position"),
)

versions = Table(
    "workbench_versions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("article_id", String(120), nullable=False),
    Column("version", Integer, nullable=False),
    Column("content", Text, nullable=False),
    Column("author", String(80), nullable=False),  # a username, or "files" (found in the files)
    Column("author_role", String(20), nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    Column("kind", String(20), nullable=False),  # import | files | edit | restore
    Column("restored_from", Integer),
    Column("diff", Text, nullable=False, default=""),
    UniqueConstraint("article_id", "version", name="uq_workbench_versions_article_version"),
)

files = Table(
    "workbench_files", metadata,
    Column("category", String(80), primary_key=True),
    Column("writes", Integer, nullable=False, default=0),
)


nlu_versions = Table(
    "workbench_nlu_versions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("file", String(80), nullable=False),  # en.yml / zh.yml in WORKBENCH_NLU_DIR
    Column("intent", String(80), nullable=False),
    Column("version", Integer, nullable=False),
    Column("examples", Text, nullable=False),  # JSON list of the intent's example lines in that file
    Column("author", String(80), nullable=False),
    Column("author_role", String(20), nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    Column("kind", String(20), nullable=False),  # import | files | edit | restore
    Column("restored_from", Integer),
    Column("diff", Text, nullable=False, default=""),
    UniqueConstraint("file", "intent", "version", name="uq_workbench_nlu_versions"),
)

# The inbox of what the bot got wrong (workbench/inbox.py): one row per customer message a source reported, masked.
inbox = Table(
    "workbench_inbox", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ref", String(200), nullable=False),  # <stream>/<entry id>, or handoff/<id>/<message entry id>
    Column("source", String(30), nullable=False),
    Column("conversation_id", String(64), nullable=False),
    Column("ts", Float, nullable=False),
    Column("language", String(8), nullable=False),
    Column("channel", String(32)),  # the conversation's channel when the row came in (NULL: not known)
    Column("text", Text, nullable=False),  # masked (workbench/masking.py)
    Column("key", String(400), nullable=False),  # normalised text (exact grouping without a vector)
    Column("intent_guess", String(80)),
    Column("article_id", String(120)),
    Column("intent", String(80)),
    Column("agent_id", String(64)),
    Column("detail", Text, nullable=False, default="{}"),
    Column("vector", Text),  # base64 float32 unit vector (KB query encoder); NULL until the action server gave one
    Column("status", String(12), nullable=False, default="open"),  # open | added | dismissed
    Column("resolved_by", String(80)),
    Column("resolved_at", Float),
    Column("resolution", Text),
    UniqueConstraint("ref", name="uq_workbench_inbox_ref"),
    Index("ix_workbench_inbox_status_ts", "status", "ts"),
)

# Draft articles (workbench/drafts.py): a new article started from an inbox message and an agent's reply, finished in
# the article editor and published into its category's file (a version 1 of kind "draft") once it passes the rules.
drafts = Table(
    "workbench_drafts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("article_id", String(120), nullable=False),  # the id it will be published under (editable)
    Column("category", String(80), nullable=False),
    Column("version", Integer, nullable=False),  # optimistic concurrency, as for articles
    Column("content", Text, nullable=False),  # JSON of the article dict (workbench/articles.py), masked
    Column("status", String(12), nullable=False, default="draft"),  # draft | published | discarded
    Column("source", Text, nullable=False, default="{}"),  # inbox item ids, the agent reply it came from
    Column("created_by", String(80), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_by", String(80), nullable=False),
    Column("updated_at", Float, nullable=False),
    Index("ix_workbench_drafts_status", "status", "updated_at"),
)


# Releases (workbench/releases.py): one trained Rasa model + one knowledge-base index build, made from a snapshot of
# the content, measured by the gate, deployed to the running bot or rolled back to.
releases = Table(
    "workbench_releases", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(12), nullable=False),  # retrain | setup (the model and index setup built, adopted)
    Column("status", String(12), nullable=False),  # training | ready | blocked | failed | cancelled | live | retired
    Column("stage", String(20), nullable=False, default=""),  # workbench/releases.py STAGES while training
    Column("stages", Text, nullable=False, default="[]"),  # JSON [{name, started_at, finished_at, ok}]
    Column("created_by", String(80), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("runner", String(120), nullable=False, default=""),  # <host>-<pid> of the gateway running the training
    Column("heartbeat_at", Float),
    Column("cancel_requested", Boolean, nullable=False, default=False),
    Column("model_name", String(200), nullable=False, default=""),  # the model file's name (Rasa /status shows it)
    Column("kb_build", String(120), nullable=False, default=""),  # the index build id (fingerprint.json)
    Column("content", Text, nullable=False, default="{}"),  # JSON: examples per language, articles, what changed
    Column("report", Text),  # JSON of workbench/gate.py verdict()
    Column("gate", String(8)),  # pass | fail (NULL: not measured)
    Column("error", Text),
    Column("deployed_at", Float),
    Column("deployed_by", String(80)),
    Column("override_by", String(80)),
    Column("override_reason", Text),
    Column("files_removed", Boolean, nullable=False, default=False),
    Index("ix_workbench_releases_status", "status"),
)

# Canaries: a candidate release answering a share of new conversations (workbench/canary.py); at most one has no
# ended_at (the running one; the routing itself is the Redis key conversations.keys.canary()).
canaries = Table(
    "workbench_canaries", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("release_id", Integer, nullable=False),
    Column("share", Float, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("started_by", String(80), nullable=False),
    Column("live_release_id", Integer),  # the control arm's release
    Column("ended_at", Float),
    Column("ended_by", String(80)),
    Column("outcome", String(20)),  # promoted | aborted | replaced (another release deployed) | auto_aborted (guard)
    Column("override_reason", Text),  # a canary of a release the gate refused: the supervisor's reason
    Index("ix_workbench_canaries_release", "release_id"),
)

# Who did what with the releases (retrain, cancel, deploy, deploy over a failed gate with its reason, rollback).
release_log = Table(
    "workbench_release_log", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("release_id", Integer, nullable=False),
    Column("ts", Float, nullable=False),
    Column("actor", String(80), nullable=False),
    Column("role", String(20), nullable=False, default=""),
    Column("action", String(20), nullable=False),
    Column("detail", Text, nullable=False, default="{}"),
    Index("ix_workbench_release_log_release", "release_id", "ts"),
)


def make_engine(url: str) -> Engine:
    """An engine with the tables created; a SQLite file's folder is created, WAL on, writers wait up to 10 s."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, future=True, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.close()
    metadata.create_all(engine)
    _add_missing_columns(engine)
    return engine


# Columns added to an existing table after its first release: (table, column, SQL type). create_all makes new tables
# only, so a database from before gets them here (nullable, no default: old rows read as "not known").
ADDED_COLUMNS = [("workbench_inbox", "channel", "VARCHAR(32)")]


def _add_missing_columns(engine: Engine) -> None:
    for table, column, sql_type in ADDED_COLUMNS:
        if column not in {c["name"] for c in inspect(engine).get_columns(table)}:
            with engine.begin() as conn:
                conn.execute(sql_text(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}"))
