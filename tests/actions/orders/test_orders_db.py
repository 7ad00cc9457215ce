"""Data layer on SQLite and PostgreSQL: migrations match the models, constraints hold, times stay aware."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from actions.orders.db import current_revision, downgrade, normalise_url, upgrade
from actions.orders.enums import MembershipTier, OrderStatus
from actions.orders.models import Base, Coupon, Customer, Order
from tests.actions.orders.builders import Scenario
from tests.actions.orders.conftest import NOW, REPO_ROOT

EXPECTED_TABLES = {
    "customers",
    "orders",
    "order_items",
    "shipments",
    "tracking_events",
    "return_requests",
    "refunds",
    "exchanges",
    "coupons",
    "order_changes",
}


def test_upgrade_creates_every_table_and_matches_the_models(engine: Engine) -> None:
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == "0002"
    assert set(inspect(engine).get_table_names()) >= EXPECTED_TABLES
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata)
    assert diff == []  # a model change without a migration fails here


def test_downgrade_to_base_removes_the_schema_and_upgrade_is_repeatable(engine: Engine) -> None:
    upgrade(engine)
    upgrade(engine)  # no-op at head
    downgrade(engine, "base")
    assert not EXPECTED_TABLES & set(inspect(engine).get_table_names())
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == "0002"


def test_database_rejects_invalid_rows(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session, session.begin():
        session.add(Customer(name="李娜", phone="13900000001", tier=MembershipTier.PLATINUM, created_at=NOW))
    # Enum values are CHECK-constrained in the database, not only in Python.
    with pytest.raises(IntegrityError), session_factory() as session, session.begin():
        session.execute(
            text("INSERT INTO customers (name, phone, tier, created_at) VALUES ('王芳', '13900000002', 'diamond', :t)"),
            {"t": NOW},
        )
    with pytest.raises(IntegrityError), session_factory() as session, session.begin():
        session.add(Customer(name="重复", phone="13900000001", tier=MembershipTier.REGULAR, created_at=NOW))


def test_order_numbers_are_unique_and_foreign_keys_enforced(
    session_factory: sessionmaker[Session], scenario: Scenario
) -> None:
    scenario.order("DM2026110001", OrderStatus.PAID)
    with pytest.raises(IntegrityError):
        scenario.order("DM2026110001", OrderStatus.PAID)
    with pytest.raises(IntegrityError):
        scenario.order("DM2026110002", OrderStatus.PAID, customer_id=999_999)


def test_one_delay_coupon_per_order(session_factory: sessionmaker[Session], scenario: Scenario) -> None:
    order = scenario.order("DM2026110003", OrderStatus.DELIVERED, delivered_days_ago=1, days_late=4)

    def coupon(code: str) -> Coupon:
        return Coupon(
            code=code,
            customer_id=order.customer_id,
            order_id=order.id,
            reason="delay_compensation",
            amount_cents=1000,
            status="active",
            issued_at=NOW,
            expires_at=None,
        )

    with session_factory() as session, session.begin():
        session.add(coupon("CPAAAAAAAAAA"))
    with pytest.raises(IntegrityError), session_factory() as session, session.begin():
        session.add(coupon("CPBBBBBBBBBB"))


def test_times_come_back_timezone_aware_in_utc(session_factory: sessionmaker[Session], scenario: Scenario) -> None:
    scenario.order("DM2026110004", OrderStatus.PAID, placed_days_ago=1)
    with session_factory() as session:
        order = session.scalars(select(Order).where(Order.number == "DM2026110004")).one()
        assert order.placed_at.tzinfo is not None and order.placed_at.utcoffset() == timedelta(0)
        assert order.placed_at == NOW - timedelta(days=1)  # same instant as the China-time input


def test_naive_datetimes_are_refused(session_factory: sessionmaker[Session]) -> None:
    with pytest.raises(StatementError, match="naive datetime"), session_factory() as session, session.begin():
        session.add(
            Customer(
                name="赵敏", phone="13900000003", tier=MembershipTier.REGULAR, created_at=datetime(2026, 11, 1, 12, 0)
            )
        )


def test_upgrade_command_line(db_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "actions.orders.db", "--url", db_url, "upgrade"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("revision 0002")


def test_plain_postgres_urls_use_psycopg_3() -> None:
    assert normalise_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"
