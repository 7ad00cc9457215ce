"""Idempotent order changes (issue 12): a cancel or address change that timed out on the bot's side may still commit.

Sent again with the same idempotency key (one key per requested change), it is not applied a second time and the
answer is the first request's real outcome. SQL backend on SQLite and PostgreSQL; merchant API over a real socket.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, sessionmaker

from actions.orders.db import make_engine, make_session_factory
from actions.orders.enums import OrderStatus, RefundKind
from actions.orders.http_service import HttpOrderService
from actions.orders.models import OrderChange, Refund
from actions.orders.policy import StorePolicy
from actions.orders.service import BackendTimeout, InvalidInput, NewAddress, Outcome, change_key
from actions.orders.sql_service import SqlOrderService
from actions.settings import ActionServerSettings as OrderSettings
from tests.actions.orders.builders import LAST4, PHONE, Scenario
from tests.actions.orders.conftest import NOW
from tests.fakes.merchant_api import FakeControls, create_app, serve_in_thread

N = "DM2026112101"
HOME = NewAddress("李娜", PHONE, "上海", "上海", "浦东新区", "世纪大道100号")
OFFICE = NewAddress("李娜", PHONE, "北京", "北京", "朝阳区", "建国路88号")


def _refunds(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(Refund).where(Refund.kind == RefundKind.CANCELLATION))


def test_keys_are_stable_per_change_and_differ_between_changes() -> None:
    key = change_key("conv-1", "q-1", "cancel", N)
    assert key == change_key("conv-1", "q-1", "cancel", N) and len(key) == 32 and int(key, 16) >= 0
    assert len({key, change_key("conv-2", "q-1", "cancel", N), change_key("conv-1", "q-2", "cancel", N),
                change_key("conv-1", "q-1", "address", N)}) == 4


def test_a_resent_cancel_is_not_applied_twice_and_reports_the_first_result(
    service: SqlOrderService, scenario: Scenario, session_factory: sessionmaker[Session]
) -> None:
    scenario.order(N, OrderStatus.PAID, placed_days_ago=0.2)
    key = change_key("conv", "q", "cancel", N)
    first = service.cancel_order(N, phone_last4=LAST4, idempotency_key=key)
    again = service.cancel_order(N, phone_last4=LAST4, idempotency_key=key)
    assert first.outcome is Outcome.DONE and first.refund is not None
    assert again == first  # the real outcome of that request, not "already cancelled"
    assert _refunds(session_factory) == 1
    # Another request (new key) meets the business rule instead.
    assert service.cancel_order(N, phone_last4=LAST4, idempotency_key="k" * 32).outcome is Outcome.ALREADY_DONE
    # A replay still needs the digits: the record is no way around verification.
    with pytest.raises(Exception, match="verification failed"):
        service.cancel_order(N, phone_last4="0000", idempotency_key=key)


def test_a_resent_address_change_does_not_overwrite_a_later_one(
    service: SqlOrderService, scenario: Scenario
) -> None:
    scenario.order(N, OrderStatus.PAID, placed_days_ago=0.2)
    first_key, second_key = change_key("conv", "q1", "address", N), change_key("conv", "q2", "address", N)
    assert service.change_address(N, HOME, phone_last4=LAST4, idempotency_key=first_key).outcome is Outcome.DONE
    assert service.change_address(N, OFFICE, phone_last4=LAST4, idempotency_key=second_key).outcome is Outcome.DONE
    # The first request arrives again (a retry after a timeout): it is answered from its record, not applied again.
    replay = service.change_address(N, HOME, phone_last4=LAST4, idempotency_key=first_key)
    assert replay.outcome is Outcome.DONE and replay.address.city == "上海"
    assert service.get_order(N).address.city == "北京"
    # The same key for a different change is refused.
    with pytest.raises(InvalidInput, match="idempotency_key"):
        service.change_address(N, OFFICE, phone_last4=LAST4, idempotency_key=first_key)
    with pytest.raises(InvalidInput, match="idempotency_key"):
        service.cancel_order(N, phone_last4=LAST4, idempotency_key=first_key)


def test_a_refusal_is_recorded_as_the_outcome_too(service: SqlOrderService, scenario: Scenario) -> None:
    scenario.order(N, OrderStatus.SHIPPED)
    key = change_key("conv", "q", "cancel", N)
    assert service.cancel_order(N, phone_last4=LAST4, idempotency_key=key).refusal == "already_shipped"
    assert service.cancel_order(N, phone_last4=LAST4, idempotency_key=key).refusal == "already_shipped"


def test_malformed_keys_are_refused(service: SqlOrderService, scenario: Scenario) -> None:
    scenario.order(N, OrderStatus.PAID, placed_days_ago=0.2)
    for bad in ("", "x" * 65, "a b", "k'; DROP TABLE orders;--"):
        with pytest.raises(InvalidInput, match="idempotency_key"):
            service.cancel_order(N, phone_last4=LAST4, idempotency_key=bad)
    assert service.get_order(N).status is OrderStatus.PAID


async def test_a_cancel_that_timed_out_and_committed_later_is_reported_done_once(
    service: SqlOrderService, scenario: Scenario, session_factory: sessionmaker[Session]
) -> None:
    """The bot waits 0.3 s (asyncio.wait_for around a thread, as actions/verification.py call_backend does); the
    database commits after 1 s. Before the fix a second request could only say "already cancelled" (or, for an
    address, apply it again); now the same key answers with the real result of the first."""
    scenario.order(N, OrderStatus.PAID, placed_days_ago=0.2)
    key = change_key("conv", "q", "cancel", N)
    slow = threading.Event()

    def delay_commit(_session: Session) -> None:
        if not slow.is_set():
            slow.set()
            time.sleep(1.0)

    event.listen(session_factory, "before_commit", delay_commit)
    try:
        worker = asyncio.ensure_future(asyncio.to_thread(service.cancel_order, N, phone_last4=LAST4,
                                                         idempotency_key=key))
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(worker), timeout=0.3)
        first = await worker  # the thread went on and committed
    finally:
        event.remove(session_factory, "before_commit", delay_commit)
    later = service.cancel_order(N, phone_last4=LAST4, idempotency_key=key)
    assert later == first and later.outcome is Outcome.DONE
    assert _refunds(session_factory) == 1
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(OrderChange)) == 1


@pytest.fixture
def merchant(
    sqlite_template: Path, tmp_path: Path, policy: StorePolicy, settings: OrderSettings
) -> Iterator[tuple[str, FakeControls, SqlOrderService, Scenario]]:
    path = tmp_path / "merchant.db"
    path.write_bytes(sqlite_template.read_bytes())
    engine = make_engine(f"sqlite:///{path}", settings)
    factory = make_session_factory(engine)
    sql = SqlOrderService(factory, policy, clock=lambda: NOW)
    controls = FakeControls()
    with serve_in_thread(create_app(sql, controls)) as url:
        yield url, controls, sql, Scenario(factory, policy, NOW)
    engine.dispose()


def test_merchant_api_gets_the_change_key_and_a_resent_change_is_replayed(
    merchant: tuple[str, FakeControls, SqlOrderService, Scenario], policy: StorePolicy
) -> None:
    url, controls, sql, scenario = merchant
    scenario.order(N, OrderStatus.PAID, placed_days_ago=0.2)
    key = change_key("conv", "q", "address", N)
    with HttpOrderService(url, policy=policy, timeout_s=0.5, sleep=lambda _s: None) as client:
        controls.delay_s = 1.0
        with pytest.raises(BackendTimeout):
            client.change_address(N, HOME, phone_last4=LAST4, idempotency_key=key)
        controls.delay_s = 0
        # Asked again with the same key: the merchant applies it at most once and answers with its outcome.
        done = client.change_address(N, HOME, phone_last4=LAST4, idempotency_key=key)
        assert done.outcome is Outcome.DONE and sql.get_order(N).address.city == "上海"
        sql.change_address(N, OFFICE, phone_last4=LAST4)  # a later change by the shop
        replay = client.change_address(N, HOME, phone_last4=LAST4, idempotency_key=key)
    assert replay == done
    assert sql.get_order(N).address.city == "北京"  # not applied a second time
    assert controls.idempotency_keys == [key, key, key]


def test_a_resent_change_that_replaced_the_phone_is_replayed_with_the_digits_it_was_sent_with(
    service: SqlOrderService, scenario: Scenario
) -> None:
    scenario.order(N, OrderStatus.PAID, placed_days_ago=0.2)
    new_phone = NewAddress("王芳", "13911112222", "江苏省", "南京市", "鼓楼区", "中山路1号")
    key = change_key("conv", "q", "address", N)
    first = service.change_address(N, new_phone, phone_last4=LAST4, idempotency_key=key)
    # The bot's retry still carries the digits it verified with (the old phone's): the same request is answered.
    assert service.change_address(N, new_phone, phone_last4=LAST4, idempotency_key=key) == first
    with pytest.raises(Exception, match="verification failed"):
        service.change_address(N, new_phone, phone_last4="0000", idempotency_key=key)
    with pytest.raises(Exception, match="verification failed"):
        service.cancel_order(N, phone_last4=LAST4)  # anything else needs the new phone's digits
