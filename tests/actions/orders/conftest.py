"""Fixtures of the order-backend tests: real SQLite and real PostgreSQL databases, a fixed clock.

PostgreSQL: ``TEST_DATABASE_URL`` if set (its user needs CREATEDB), otherwise a throwaway cluster
started by scripts/pg_test_server.sh for the session. If neither works the tests fail with the
reason - they are never skipped, so "all green" always includes PostgreSQL.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from actions.orders.db import make_engine, make_session_factory, normalise_url, upgrade
from actions.orders.policy import StorePolicy, load_policy
from actions.orders.sql_service import SqlOrderService
from actions.settings import ActionServerSettings as OrderSettings
from bot.shared.paths import REPO_ROOT
from tests.actions.orders.builders import Scenario

PG_SCRIPT = REPO_ROOT / "scripts" / "pg_test_server.sh"
# A fixed "now" for every test: Sunday 22 Nov 2026, noon in China (11 days after Double 11).
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def policy() -> StorePolicy:
    return load_policy()


@pytest.fixture(scope="session")
def settings() -> OrderSettings:
    return OrderSettings(_env_file=None)  # type: ignore[call-arg]  # isolate tests from a developer's .env


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """URL of a PostgreSQL server whose user may create databases."""
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        yield normalise_url(configured)
        return
    try:
        started = subprocess.run([str(PG_SCRIPT), "start"], capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"could not run {PG_SCRIPT}: {exc}. Install PostgreSQL or set TEST_DATABASE_URL.", pytrace=False)
    if started.returncode != 0:
        pytest.fail(
            f"PostgreSQL test server did not start (exit {started.returncode}); install Debian's postgresql or set "
            f"TEST_DATABASE_URL.\n{started.stderr.strip()}",
            pytrace=False,
        )
    values = dict(line.split("=", 1) for line in started.stdout.splitlines() if "=" in line)
    try:
        yield values["DATABASE_URL"]
    finally:
        subprocess.run([str(PG_SCRIPT), "stop", values["PGDATA"]], capture_output=True, timeout=60, check=False)


def _create_postgres_database(server_url: str, template: str | None = None) -> tuple[str, Engine]:
    """Create a database (empty, or a copy of ``template``); returns its URL and an admin engine to drop it."""
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    name = f"orders_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        clause = ""
        if template:
            clause = f' TEMPLATE "{template}"'
            # PostgreSQL 15+ copies templates through the WAL by default: ~10x slower for tiny databases.
            if (connection.dialect.server_version_info or (0,)) >= (15,):
                clause += " STRATEGY FILE_COPY"
        connection.execute(text(f'CREATE DATABASE "{name}"{clause}'))
    return make_url(server_url).set(database=name).render_as_string(hide_password=False), admin


def _drop_postgres_database(admin: Engine, url: str) -> None:
    name = make_url(url).database
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database per test, on each backend (for migration tests)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    url, admin = _create_postgres_database(request.getfixturevalue("postgres_server_url"))
    try:
        yield url
    finally:
        _drop_postgres_database(admin, url)


@pytest.fixture
def engine(db_url: str, settings: OrderSettings) -> Iterator[Engine]:
    eng = make_engine(db_url, settings)
    try:
        yield eng
    finally:
        eng.dispose()


def _migrate(url: str, settings: OrderSettings) -> None:
    eng = make_engine(url, settings)
    try:
        upgrade(eng)
    finally:
        eng.dispose()  # a PostgreSQL template must have no open connections


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory, settings: OrderSettings) -> Path:
    path = tmp_path_factory.mktemp("template") / "store.db"
    _migrate(f"sqlite:///{path}", settings)
    return path


@pytest.fixture(scope="session")
def postgres_template(postgres_server_url: str, settings: OrderSettings) -> Iterator[str]:
    url, admin = _create_postgres_database(postgres_server_url)
    _migrate(url, settings)
    try:
        yield str(make_url(url).database)
    finally:
        _drop_postgres_database(admin, url)


@pytest.fixture(params=BACKENDS)
def migrated_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database per test: a copy of a template migrated once per session (fast)."""
    if request.param == "sqlite":
        path = tmp_path / "store.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    template = request.getfixturevalue("postgres_template")
    url, admin = _create_postgres_database(request.getfixturevalue("postgres_server_url"), template)
    try:
        yield url
    finally:
        _drop_postgres_database(admin, url)


@pytest.fixture
def migrated_engine(migrated_db_url: str, settings: OrderSettings) -> Iterator[Engine]:
    eng = make_engine(migrated_db_url, settings)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture
def session_factory(migrated_engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(migrated_engine)


@pytest.fixture
def service(session_factory: sessionmaker[Session], policy: StorePolicy) -> SqlOrderService:
    return SqlOrderService(session_factory, policy, clock=lambda: NOW)


@pytest.fixture
def scenario(session_factory: sessionmaker[Session], policy: StorePolicy) -> Scenario:
    return Scenario(session_factory, policy, NOW)
