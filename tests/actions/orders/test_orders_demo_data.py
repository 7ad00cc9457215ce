"""Demo data on SQLite and PostgreSQL: sizes, every state, policy-consistent timelines, determinism, idempotency."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, selectinload

from actions.orders import rules
from actions.orders.db import make_engine, make_session_factory
from actions.orders.enums import (
    PARCEL_ON_THE_WAY,
    MembershipTier,
    OrderStatus,
    RefundStatus,
    ReturnStatus,
    TrackingEventType,
)
from actions.orders.models import Coupon, Customer, Order, Refund, ReturnRequest, Shipment, TrackingEvent
from actions.orders.policy import StorePolicy
from actions.orders.sql_service import SqlOrderService
from actions.settings import ActionServerSettings as OrderSettings
from tests.actions.orders.conftest import NOW, REPO_ROOT
from tools.demo_catalogue import PLACES
from tools.demo_data import DemoStats, load_demo_data, parse_today

SEED = 42
REAL_CITIES = {p.city for p in PLACES}


@dataclass
class Demo:
    engine: Engine
    stats: DemoStats
    orders: list[Order]  # loaded once with items, shipments+events, refunds, returns


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def demo(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    settings: OrderSettings,
    policy: StorePolicy,
) -> Iterator[Demo]:
    """Demo data loaded once per backend for the module (read-only tests)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('demo') / 'store.db'}"
        admin = None
    else:
        from tests.actions.orders.conftest import _create_postgres_database

        url, admin = _create_postgres_database(request.getfixturevalue("postgres_server_url"))
    engine = make_engine(url, settings)
    stats = load_demo_data(engine, seed=SEED, now=NOW, policy=policy)
    assert stats is not None
    yield Demo(engine, stats, load_orders(engine))
    engine.dispose()
    if admin is not None:
        from tests.actions.orders.conftest import _drop_postgres_database

        _drop_postgres_database(admin, url)


def load_orders(engine: Engine) -> list[Order]:
    with Session(engine) as session:
        return list(
            session.scalars(
                select(Order).options(
                    selectinload(Order.items),
                    selectinload(Order.shipments).selectinload(Shipment.events),
                    selectinload(Order.refunds),
                    selectinload(Order.return_requests),
                )
            ).all()
        )


def fingerprint(loaded: list[Order]) -> str:
    """Digest of the business content (numbers, states, money, tracking) - independent of the backend."""
    digest = hashlib.sha256()
    for order in sorted(loaded, key=lambda o: o.number):
        digest.update(
            f"{order.number}|{order.status}|{order.total_cents}|{order.recipient_phone}|"
            f"{order.promised_delivery_date}|".encode()
        )
        for shipment in order.shipments:
            digest.update(f"{shipment.tracking_number}|{len(shipment.events)}|".encode())
    return digest.hexdigest()


def test_sizes_and_every_order_state(demo: Demo) -> None:
    engine, stats = demo.engine, demo.stats
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Customer)) == stats.customers >= 300
        assert session.scalar(select(func.count()).select_from(Order)) == stats.orders >= 2000
        tiers = dict(session.execute(select(Customer.tier, func.count()).group_by(Customer.tier)).all())
        by_status = dict(session.execute(select(Order.status, func.count()).group_by(Order.status)).all())
    assert tiers[MembershipTier.GOLD] > 0 and tiers[MembershipTier.PLATINUM] > 0
    assert {s.value: n for s, n in by_status.items()} == {k: v for k, v in stats.by_status.items() if v}
    assert all(stats.by_status[s.value] > 0 for s in OrderStatus), stats.by_status
    assert stats.seconds < 20


def test_loading_twice_changes_nothing(demo: Demo, policy: StorePolicy) -> None:
    engine, stats = demo.engine, demo.stats
    assert load_demo_data(engine, seed=SEED + 1, now=NOW, policy=policy) is None
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Order)) == stats.orders


def test_same_seed_same_data_on_both_backends(
    demo: Demo,
    tmp_path_factory: pytest.TempPathFactory,
    settings: OrderSettings,
    policy: StorePolicy,
) -> None:
    other = make_engine(f"sqlite:///{tmp_path_factory.mktemp('again') / 'store.db'}", settings)
    try:
        assert load_demo_data(other, seed=SEED, now=NOW, policy=policy) is not None
        assert fingerprint(load_orders(other)) == fingerprint(demo.orders)
    finally:
        other.dispose()


def test_identifiers_follow_the_policy_formats(demo: Demo, policy: StorePolicy) -> None:
    engine = demo.engine
    order_re = re.compile(policy.identifiers.order_number.pattern)
    phone_re = re.compile(policy.identifiers.phone.pattern)
    with Session(engine) as session:
        numbers = session.scalars(select(Order.number)).all()
        phones = session.scalars(select(Customer.phone)).all()
        shipments = session.execute(select(Shipment.carrier, Shipment.tracking_number)).all()
    assert all(order_re.fullmatch(n) for n in numbers)
    assert all(phone_re.fullmatch(p) for p in phones) and len(set(phones)) == len(phones)
    assert {c for c, _ in shipments} == set(policy.carriers)
    for carrier, tracking in shipments:
        assert re.fullmatch(policy.carriers[carrier].tracking_pattern, tracking), (carrier, tracking)


def test_tracking_histories_are_ordered_in_real_cities(demo: Demo) -> None:
    engine = demo.engine
    with Session(engine) as session:
        cities = set(session.scalars(select(TrackingEvent.city).distinct()).all())
    assert cities <= REAL_CITIES and len(cities) >= 20
    for order in demo.orders:
        for shipment in order.shipments:
            times = [e.occurred_at for e in shipment.events]
            assert times == sorted(times) and all(t <= NOW for t in times)
            assert shipment.events[0].event_type is TrackingEventType.PICKED_UP
            delivered = [e for e in shipment.events if e.event_type is TrackingEventType.DELIVERED]
            if order.status in {OrderStatus.DELIVERED, OrderStatus.RETURNED}:
                assert delivered and delivered[0].occurred_at == order.delivered_at
            else:
                assert not delivered
            if order.status is OrderStatus.LOST:
                assert shipment.events[-1].event_type is TrackingEventType.EXCEPTION
            assert all(e.description_zh and e.description_en for e in shipment.events)


def test_timelines_follow_the_store_rules(demo: Demo, policy: StorePolicy) -> None:
    hold = timedelta(minutes=policy.payment.failed_payment_hold_minutes)
    promo_dispatch_over_48h = 0
    for order in demo.orders:
        assert order.placed_at <= NOW
        assert order.total_cents == order.subtotal_cents + order.shipping_fee_cents
        assert order.shipping_fee_cents == rules.shipping_fee_cents(order.subtotal_cents, order.express, policy)
        if order.status is OrderStatus.UNPAID:
            assert order.paid_at is None and NOW - order.placed_at < hold
            continue
        if order.paid_at is None:
            assert order.status is OrderStatus.CANCELLED
            continue
        assert order.paid_at - order.placed_at < hold
        assert order.promised_delivery_date == rules.promised_delivery_date(
            order.paid_at, order.province, order.city, order.express, policy, order.presale_ship_date
        )
        if order.shipped_at is not None:
            deadline = rules.dispatch_deadline(order.paid_at, policy, order.presale_ship_date)
            assert order.shipped_at <= deadline, order.number
            if order.is_presale:
                assert rules.local_date(order.shipped_at, policy) == order.presale_ship_date
            elif order.shipped_at - order.paid_at > timedelta(hours=policy.dispatch.in_stock_hours):
                assert rules.promotion_on(rules.local_date(order.paid_at, policy), policy) is not None
                promo_dispatch_over_48h += 1
        if order.status in PARCEL_ON_THE_WAY:
            late = rules.days_late(order.promised_delivery_date, None, NOW, policy)
            assert (order.status is OrderStatus.DELAYED) == (late > 0), order.number
    assert promo_dispatch_over_48h > 0  # Double 11 orders used the longer promotion dispatch window


def test_after_sales_records_are_consistent(demo: Demo, policy: StorePolicy) -> None:
    engine = demo.engine
    with Session(engine) as session:
        coupons = session.scalars(select(Coupon).options(selectinload(Coupon.order))).all()
        refunds = session.scalars(select(Refund)).all()
        returns = session.scalars(select(ReturnRequest)).all()
    assert coupons and refunds and returns
    tier_amounts = {t.coupon_yuan * 100 for t in policy.delay_compensation.tiers}
    for coupon in coupons:
        assert coupon.order is not None and coupon.amount_cents in tier_amounts
        late = rules.days_late(coupon.order.promised_delivery_date, coupon.order.delivered_at, NOW, policy)
        offer = rules.delay_compensation(late, coupon.order.shipping_fee_cents, policy)
        assert offer is not None and offer.coupon_cents == coupon.amount_cents
    for refund in refunds:
        if refund.status in {RefundStatus.APPROVED, RefundStatus.COMPLETED}:
            assert (
                refund.approved_at is not None
                and refund.expected_arrival_at == rules.refund_arrival(refund.approved_at, refund.method, policy).latest
            )
        if refund.status is RefundStatus.COMPLETED:
            assert refund.completed_at is not None and refund.completed_at <= NOW
    statuses = {r.status for r in returns}
    assert {ReturnStatus.REQUESTED, ReturnStatus.RECEIVED, ReturnStatus.REFUNDED} <= statuses
    returned = [o for o in demo.orders if o.status is OrderStatus.RETURNED]
    assert returned and all(all(r.status is ReturnStatus.REFUNDED for r in o.return_requests) for o in returned)


def test_the_service_answers_for_a_sample_of_every_state(demo: Demo, policy: StorePolicy) -> None:
    engine, stats = demo.engine, demo.stats
    service = SqlOrderService(make_session_factory(engine), policy, clock=lambda: NOW)
    for status, (number, last4) in stats.samples.items():
        order = service.get_order(number)
        assert order.status.value == status
        assert service.verify(number, last4)
        assert service.tracking(number).number == number


def test_command_line_prints_counts_and_is_idempotent(tmp_path_factory: pytest.TempPathFactory) -> None:
    url = f"sqlite:///{tmp_path_factory.mktemp('cli') / 'store.db'}"
    command = [sys.executable, "-m", "tools.demo_data", "--seed", "7", "--today", "2026-11-22", "--url", url]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    first = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, env=env, check=False)
    assert first.returncode == 0, first.stderr
    counts = dict(re.findall(r"^\s+(\w+)\s+(\d+)\s+e\.g\.", first.stdout, flags=re.MULTILINE))
    assert set(counts) == {s.value for s in OrderStatus} and all(int(n) > 0 for n in counts.values())
    assert sum(int(n) for n in counts.values()) >= 2000
    second = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, env=env, check=False)
    assert second.returncode == 0 and "nothing loaded" in second.stdout


def test_today_parsing(policy: StorePolicy) -> None:
    assert parse_today("2026-11-22", policy) == NOW
    assert parse_today("2026-11-22T08:30:00+00:00", policy).hour == 8


def test_examples_printed_by_setup_are_real_orders_that_verify(tmp_path_factory: pytest.TempPathFactory,
                                                              policy: StorePolicy) -> None:
    """The README's walk-through uses what `tools.demo_data --examples` prints: each line must name an order of this
    database whose phone ends with the printed digits, and at least one Gold/Platinum customer's order."""
    url = f"sqlite:///{tmp_path_factory.mktemp('examples') / 'store.db'}"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    base = [sys.executable, "-m", "tools.demo_data", "--seed", "7", "--today", "2026-11-22", "--url", url]
    subprocess.run(base, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, env=env, check=True)
    out = subprocess.run([*base, "--examples"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, env=env,
                         check=True).stdout
    lines = re.findall(r"^\s+(DM\d+)\s+(\w+)\s+phone \.\.\.(\d{4})\s+\((\w+) customer\)$", out, flags=re.MULTILINE)
    assert len(lines) >= 3, out
    assert {tier for *_, tier in lines} & {"gold", "platinum"}
    engine = make_engine(url)
    try:
        service = SqlOrderService(make_session_factory(engine), policy)
        for number, _status, last4, _tier in lines:
            assert service.verify(number, last4), number
            assert not service.verify(number, "0000" if last4 != "0000" else "1111"), number
    finally:
        engine.dispose()
