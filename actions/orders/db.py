"""Engine/session factories and the migration command line.

    python -m actions.orders.db upgrade [REVISION]     # default "head"
    python -m actions.orders.db downgrade REVISION     # e.g. "base"
    python -m actions.orders.db current

Nothing here connects at import time; callers build an engine from settings at start-up.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from actions.settings import ActionServerSettings, get_settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def normalise_url(url: str) -> str:
    """Accept the plain ``postgres://`` / ``postgresql://`` URLs hosting platforms hand out; use psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _enable_sqlite_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
    # SQLite ignores FOREIGN KEY constraints unless asked per connection.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def make_engine(url: str | None = None, settings: ActionServerSettings | None = None) -> Engine:
    """Build an engine for ``url`` (default: settings.database_url), creating the SQLite directory if needed."""
    cfg = settings or get_settings()
    sa_url = make_url(normalise_url(url or cfg.database_url))
    kwargs: dict[str, Any] = {"echo": cfg.db_echo, "future": True}
    if sa_url.get_backend_name() == "sqlite":
        if sa_url.database and sa_url.database != ":memory:":
            Path(sa_url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(sa_url, **kwargs)
        event.listen(engine, "connect", _enable_sqlite_foreign_keys)
        return engine
    if sa_url.get_backend_name() == "postgresql":
        # A stuck query must surface as a timeout the bot can answer, not hang the conversation.
        kwargs["connect_args"] = {
            "connect_timeout": max(1, cfg.db_statement_timeout_ms // 1000),
            "options": f"-c statement_timeout={cfg.db_statement_timeout_ms}",
        }
        kwargs["pool_pre_ping"] = True
    return create_engine(sa_url, **kwargs)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded attributes after commit, so results can be built after the transaction."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def alembic_config(engine: Engine) -> Config:
    """Programmatic Alembic config (no alembic.ini): migrations run on ``engine``'s connection."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to ``revision``."""
    cfg = alembic_config(engine)
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Revert migrations down to ``revision`` ("base" drops everything)."""
    cfg = alembic_config(engine)
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an unmigrated database."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m actions.orders.db", description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="database URL (default: DATABASE_URL or var/store.db)")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("upgrade", help="apply migrations")
    up.add_argument("revision", nargs="?", default="head")
    down = sub.add_parser("downgrade", help="revert migrations")
    down.add_argument("revision")
    sub.add_parser("current", help="print the current revision")
    args = parser.parse_args(argv)

    engine = make_engine(args.url)
    try:
        if args.command == "upgrade":
            upgrade(engine, args.revision)
        elif args.command == "downgrade":
            downgrade(engine, args.revision)
        print(f"{engine.url.render_as_string(hide_password=True)}: revision {current_revision(engine)}")
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
