"""SqlOrderService on SQLite and PostgreSQL: answers, refusals, stored state and typed errors."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from actions.orders import rules
from actions.orders.db import make_engine, make_session_factory
from actions.orders.enums import (
    Carrier,
    ItemCategory,
    MembershipTier,
    OrderStatus,
    PaymentMethod,
    RefundKind,
    RefundStatus,
    ReturnReason,
    ReturnStatus,
)
from actions.orders.models import Coupon, Exchange, Order, Refund, ReturnRequest
from actions.orders.policy import StorePolicy
from actions.orders.service import (
    ALREADY_SHIPPED,
    LOST_PARCEL,
    NO_SHIPPING_FEE,
    NOT_DELAYED_ENOUGH,
    QUANTITY_EXCEEDED,
    BackendTimeout,
    BackendUnavailable,
    CompensationChoice,
    InvalidInput,
    InvalidOrderNumber,
    ItemNotFound,
    NewAddress,
    NotVerified,
    OrderNotFound,
    OrderService,
    Outcome,
)
from actions.orders.sql_service import SqlOrderService
from actions.settings import ActionServerSettings as OrderSettings
from tests.actions.orders.builders import LAST4, ItemSpec, Scenario
from tests.actions.orders.conftest import NOW

NEW_ADDRESS = NewAddress(
    recipient_name="王芳",
    phone="13987654321",
    province="新疆",
    city="乌鲁木齐",
    district="天山区",
    address_line="解放北路88号",
)
CRAB = ItemSpec(sku="FF-9001", name="阳澄湖大闸蟹礼盒", category=ItemCategory.FRESH_FOOD, price_cents=38800)


def stored(factory: sessionmaker[Session], number: str) -> Order:
    with factory() as session:
        return session.scalars(select(Order).where(Order.number == number)).one()


def count(factory: sessionmaker[Session], model: type) -> int:
    with factory() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_sql_service_satisfies_the_interface(service: SqlOrderService) -> None:
    assert isinstance(service, OrderService)


# --- reads -------------------------------------------------------------------------------------------


def test_get_order_returns_details_with_personal_data_masked(service: SqlOrderService, scenario: Scenario) -> None:
    scenario.order(
        "DM2026111001",
        OrderStatus.IN_TRANSIT,
        placed_days_ago=2,
        items=(
            ItemSpec(),
            ItemSpec(sku="EL-3001", name="降噪蓝牙耳机", category=ItemCategory.ELECTRONICS, price_cents=29900),
        ),
    )
    order = service.get_order(" dm2026111001 ")
    assert order.number == "DM2026111001" and order.status is OrderStatus.IN_TRANSIT
    assert order.membership_tier is MembershipTier.GOLD
    assert [i.sku for i in order.items] == ["AP-1001", "EL-3001"]
    assert order.subtotal_cents == 37800 and order.shipping_fee_cents == 0 and order.total_cents == 37800
    assert order.address.phone == "138****5678" and order.address.recipient_name == "张*"
    assert order.address.address_line == "文一西路****" and order.address.city == "杭州"
    assert order.carrier is Carrier.SF and order.tracking_number == "SF000000000001"
    assert order.days_late == 0


def test_a_parcel_past_its_promised_date_reads_delayed(service: SqlOrderService, scenario: Scenario) -> None:
    scenario.order("DM2026111002", OrderStatus.IN_TRANSIT, days_late=4)
    order = service.get_order("DM2026111002")
    assert order.status is OrderStatus.DELAYED and order.days_late == 4
    tracking = service.tracking("DM2026111002")
    assert tracking.delayed and tracking.days_late == 4
    assert tracking.latest_event is not None and tracking.latest_event.city == "杭州"
    assert [e.event_type.value for e in tracking.shipments[0].events] == ["picked_up", "departed"]


@pytest.mark.parametrize("raw", ["DM2026111003' OR '1'='1", "<script>", "DM123"])
def test_invalid_order_numbers_never_reach_the_database(service: SqlOrderService, raw: str) -> None:
    with pytest.raises(InvalidOrderNumber):
        service.get_order(raw)


def test_unknown_orders_raise_order_not_found(service: SqlOrderService) -> None:
    with pytest.raises(OrderNotFound) as info:
        service.tracking("DM2099010101")
    assert info.value.number == "DM2099010101"


def test_verify_with_last_four_phone_digits(service: SqlOrderService, scenario: Scenario) -> None:
    scenario.order("DM2026111004", OrderStatus.PAID)
    assert service.verify("DM2026111004", LAST4)
    assert service.verify("DM2026111004", "５６７８")  # full-width digits typed on a phone keyboard
    assert not service.verify("DM2026111004", "0000")
    assert not service.verify("DM2026111004", "56'--")
    with pytest.raises(OrderNotFound):
        service.verify("DM2026111099", LAST4)


def test_list_orders_for_customer_newest_first(service: SqlOrderService, scenario: Scenario) -> None:
    customer = scenario.customer()
    for number, days in (("DM2026111005", 5), ("DM2026111006", 1), ("DM2026111007", 3)):
        scenario.order(
            number, OrderStatus.DELIVERED, placed_days_ago=days, delivered_days_ago=0.5, customer_id=customer
        )
    other = scenario.customer(phone="13900000009")
    scenario.order("DM2026111008", OrderStatus.PAID, customer_id=other)
    summaries = service.list_orders_for_customer(customer, limit=2)
    assert [s.number for s in summaries] == ["DM2026111006", "DM2026111007"]
    assert summaries[0].item_count == 1
    with pytest.raises(InvalidInput):
        service.list_orders_for_customer(customer, limit=0)


# --- cancel and address change ------------------------------------------------------------------------


def test_cancel_a_paid_order_refunds_to_the_original_method(
    service: SqlOrderService, scenario: Scenario, session_factory: sessionmaker[Session], policy: StorePolicy
) -> None:
    scenario.order("DM2026111010", OrderStatus.PAID, payment=PaymentMethod.UNIONPAY, placed_days_ago=0.5)
    result = service.cancel_order("DM2026111010", phone_last4=LAST4)
    assert result.outcome is Outcome.DONE and result.status is OrderStatus.CANCELLED
    assert result.refund is not None and result.refund.kind is RefundKind.CANCELLATION
    assert result.refund.method is PaymentMethod.UNIONPAY and result.refund.amount_cents == 7900 + 800
    assert result.refund.expected_arrival_at == rules.refund_arrival(NOW, PaymentMethod.UNIONPAY, policy).latest
    order = stored(session_factory, "DM2026111010")
    assert order.status is OrderStatus.CANCELLED and order.cancelled_at == NOW
    assert count(session_factory, Refund) == 1
    again = service.cancel_order("DM2026111010", phone_last4=LAST4)
    assert again.outcome is Outcome.ALREADY_DONE and again.refund == result.refund
    assert count(session_factory, Refund) == 1


def test_cancel_an_unpaid_order_needs_no_refund(service: SqlOrderService, scenario: Scenario) -> None:
    scenario.order("DM2026111011", OrderStatus.UNPAID, placed_days_ago=0.01)
    result = service.cancel_order("DM2026111011", phone_last4=LAST4)
    assert result.outcome is Outcome.DONE and result.refund is None


@pytest.mark.parametrize("status", [OrderStatus.SHIPPED, OrderStatus.IN_TRANSIT, OrderStatus.DELIVERED])
def test_cancel_after_shipping_is_refused_and_nothing_changes(
    service: SqlOrderService, scenario: Scenario, session_factory: sessionmaker[Session], status: OrderStatus
) -> None:
    delivered = 1 if status is OrderStatus.DELIVERED else None
    scenario.order("DM2026111012", status, delivered_days_ago=delivered)
    result = service.cancel_order("DM2026111012", phone_last4=LAST4)
    assert (result.outcome, result.refusal, result.refund) == (Outcome.NOT_ALLOWED, ALREADY_SHIPPED, None)
    assert stored(session_factory, "DM2026111012").status is status
    assert count(session_factory, Refund) == 0


def test_changes_need_the_right_phone_digits(
    service: SqlOrderService, scenario: Scenario, session_factory: sessionmaker[Session]
) -> None:
    scenario.order("DM2026111013", OrderStatus.PAID)
    with pytest.raises(NotVerified):
        service.cancel_order("DM2026111013", phone_last4="1234")
    with pytest.raises(NotVerified):
        service.change_address("DM2026111013", NEW_ADDRESS, phone_last4="12")
    assert stored(session_factory, "DM2026111013").status is OrderStatus.PAID


def test_change_address_before_shipping_moves_the_promise_to_the_new_region(
    service: SqlOrderService, scenario: Scenario, session_factory: sessionmaker[Session], policy: StorePolicy
) -> None:
    order = scenario.order("DM2026111014", OrderStatus.PAID, placed_days_ago=0.5)
    result = service.change_address("DM2026111014", NEW_ADDRESS, phone_last4=LAST4)
    assert result.outcome is Outcome.DONE
    assert result.address.city == "乌鲁木齐" and result.address.phone == "139****4321"
    assert order.paid_at is not None
    remote_promise = rules.promised_delivery_date(order.paid_at, "新疆", "乌鲁木齐", False, policy)
    assert result.promised_delivery_date == remote_promise
    assert order.promised_delivery_date is not None and remote_promise > order.promised_delivery_date
    saved = stored(session_factory, "DM2026111014")
    assert (saved.province, saved.recipient_phone, saved.address_line) == ("新疆", "13987654321", "解放北路88号")
    # Verification now follows the phone on the order.
    assert service.verify("DM2026111014", "4321") and not service.verify("DM2026111014", LAST4)


def test_change_address_after_shipping_is_refused(
    service: SqlOrderService, scenario: Scenario, session_factory: sessionmaker[Session]
) -> None:
    scenario.order("DM2026111015", OrderStatus.IN_TRANSIT)
    result = service.change_address("DM2026111015", NEW_ADDRESS, phone_last4=LAST4)
    assert (result.outcome, result.refusal) == (Outcome.NOT_ALLOWED, ALREADY_SHIPPED)
    assert stored(session_factory, "DM2026111015").city == "杭州"


@pytest.mark.parametrize(
    ("field", "value"),
    [("address_line", "<script>alert(1)</script>"), ("recipient_name", " "), ("phone", "12345"), ("city", "杭" * 40)],
    ids=["markup", "empty", "bad-phone", "too-long"],
)
def test_change_address_rejects_bad_fields(
    service: SqlOrderService, scenario: Scenario, session_factory: sessionmaker[Session], field: str, value: str
) -> None:
    scenario.order("DM2026111016", OrderStatus.PAID)
    bad = NewAddress(**{**NEW_ADDRESS.__dict__, field: value})
    with pytest.raises(InvalidInput) as info:
        service.change_address("DM2026111016", bad, phone_last4=LAST4)
    assert info.value.field == field
    assert stored(session_factory, "DM2026111016").address_line == "文一西路969号3幢201室"


# --- returns, exchanges, refunds ----------------------------------------------------------------------


def test_no_reason_return_inside_the_window_creates_an_rma(
    service: SqlOrderService, scenario: Scenario, session_factory: sessionmaker[Session]
) -> None:
    scenario.order("DM2026111020", OrderStatus.DELIVERED, delivered_days_ago=3)
    result = service.create_return(
        "DM2026111020", "ap-1001", ReturnReason.NO_REASON, phone_last4=LAST4, note="尺码不合适"
    )
    assert result.outcome is Outcome.DONE and result.refusal is None
    assert result.return_shipping_paid_by == "customer" and not result.photos_required
    assert result.return_request is not None and result.return_request.rma == "RMA202611102001"
    assert result.deadline == rules.local_date(NOW - timedelta(days=3), scenario.policy) + timedelta(days=7)
    with session_factory() as session:
        request = session.scalars(select(ReturnRequest)).one()
        assert (request.status, request.reason, request.customer_note) == (
            ReturnStatus.REQUESTED,
            ReturnReason.NO_REASON,
            "尺码不合适",
        )
    again = service.create_return("DM2026111020", "AP-1001", ReturnReason.NO_REASON, phone_last4=LAST4)
    assert again.outcome is Outcome.ALREADY_DONE and again.return_request == result.return_request
    assert count(session_factory, ReturnRequest) == 1


def test_fresh_food_has_no_no_reason_return_but_quality_returns_are_accepted(
    service: SqlOrderService, scenario: Scenario
) -> None:
    scenario.order("DM2026111021", OrderStatus.DELIVERED, delivered_days_ago=1, items=(CRAB,))
    refused = service.create_return("DM2026111021", "FF-9001", ReturnReason.NO_REASON, phone_last4=LAST4)
    assert (refused.outcome, refused.refusal, refused.return_request) == (
        Outcome.NOT_ALLOWED,
        rules.EXCLUDED_CATEGORY,
        None,
    )
    quality = service.create_return("DM2026111021", "FF-9001", ReturnReason.QUALITY, phone_last4=LAST4)
    assert quality.outcome is Outcome.DONE and quality.photos_required
    assert quality.return_shipping_paid_by == "store"


def test_returns_outside_the_window_or_before_delivery_are_refused(
    service: SqlOrderService, scenario: Scenario
) -> None:
    scenario.order("DM2026111022", OrderStatus.DELIVERED, delivered_days_ago=10)
    late = service.create_return("DM2026111022", "AP-1001", ReturnReason.NO_REASON, phone_last4=LAST4)
    assert (late.outcome, late.refusal) == (Outcome.NOT_ALLOWED, rules.WINDOW_EXPIRED)
    quality = service.create_return("DM2026111022", "AP-1001", ReturnReason.QUALITY, phone_last4=LAST4)
    assert quality.outcome is Outcome.DONE  # 10 days is inside the 15-day quality window
    scenario.order("DM2026111023", OrderStatus.IN_TRANSIT)
    early = service.create_return("DM2026111023", "AP-1001", ReturnReason.QUALITY, phone_last4=LAST4)
    assert (early.outcome, early.refusal) == (Outcome.NOT_ALLOWED, rules.NOT_DELIVERED)


def test_return_quantity_and_unknown_items(service: SqlOrderService, scenario: Scenario) -> None:
    scenario.order("DM2026111024", OrderStatus.DELIVERED, delivered_days_ago=1, items=(ItemSpec(quantity=2),))
    first = service.create_return("DM2026111024", "AP-1001", ReturnReason.NO_REASON, phone_last4=LAST4)
    assert first.outcome is Outcome.DONE
    too_many = service.create_return("DM2026111024", "AP-1001", ReturnReason.NO_REASON, phone_last4=LAST4, quantity=2)
    assert (too_many.outcome, too_many.refusal) == (Outcome.NOT_ALLOWED, QUANTITY_EXCEEDED)
    second = service.create_return("DM2026111024", "AP-1001", ReturnReason.NO_REASON, phone_last4=LAST4)
    assert second.return_request is not None and second.return_request.rma.endswith("02")
    with pytest.raises(ItemNotFound):
        service.create_return("DM2026111024", "XX-0000", ReturnReason.QUALITY, phone_last4=LAST4)
    with pytest.raises(InvalidInput):
        service.create_return("DM2026111024", "AP-1001'--", ReturnReason.QUALITY, phone_last4=LAST4)


def test_exchange_follows_the_return_windows(
    service: SqlOrderService, scenario: Scenario, session_factory: sessionmaker[Session]
) -> None:
    scenario.order("DM2026111025", OrderStatus.DELIVERED, delivered_days_ago=2)
    result = service.create_exchange(
        "DM2026111025", "AP-1001", ReturnReason.NO_REASON, phone_last4=LAST4, requested_variant="换大一码"
    )
    assert result.outcome is Outcome.DONE and result.exchange is not None
    assert result.exchange.requested_variant == "换大一码"
    again = service.create_exchange("DM2026111025", "AP-1001", ReturnReason.NO_REASON, phone_last4=LAST4)
    assert again.outcome is Outcome.ALREADY_DONE
    assert count(session_factory, Exchange) == 1
    scenario.order("DM2026111026", OrderStatus.DELIVERED, delivered_days_ago=20)
    late = service.create_exchange("DM2026111026", "AP-1001", ReturnReason.QUALITY, phone_last4=LAST4)
    assert (late.outcome, late.refusal) == (Outcome.NOT_ALLOWED, rules.WINDOW_EXPIRED)


def test_refund_status_lists_refunds_and_open_returns(
    service: SqlOrderService, scenario: Scenario, session_factory: sessionmaker[Session], policy: StorePolicy
) -> None:
    scenario.order("DM2026111027", OrderStatus.DELIVERED, delivered_days_ago=4, payment=PaymentMethod.WECHAT)
    created = service.create_return("DM2026111027", "AP-1001", ReturnReason.QUALITY, phone_last4=LAST4)
    assert created.return_request is not None
    received_at = NOW - timedelta(hours=5)
    with session_factory() as session, session.begin():
        request = session.scalars(select(ReturnRequest)).one()
        request.status, request.received_at = ReturnStatus.RECEIVED, received_at
        session.add(
            Refund(
                order_id=request.order_id,
                return_request_id=request.id,
                kind=RefundKind.RETURN,
                amount_cents=7900,
                method=PaymentMethod.WECHAT,
                status=RefundStatus.PENDING,
                created_at=received_at,
            )
        )
    overview = service.refund_status("DM2026111027")
    assert [(r.kind, r.status, r.amount_cents, r.rma) for r in overview.refunds] == [
        (RefundKind.RETURN, RefundStatus.PENDING, 7900, created.return_request.rma)
    ]
    assert len(overview.returns) == 1
    assert overview.returns[0].review_deadline == rules.refund_review_deadline(received_at, policy)


# --- delay compensation -----------------------------------------------------------------------------------


def test_two_days_late_earns_nothing(service: SqlOrderService, scenario: Scenario) -> None:
    scenario.order("DM2026111030", OrderStatus.IN_TRANSIT, days_late=2)
    result = service.issue_delay_coupon("DM2026111030", phone_last4=LAST4)
    assert (result.outcome, result.refusal, result.days_late, result.coupon) == (
        Outcome.NOT_ALLOWED,
        NOT_DELAYED_ENOUGH,
        2,
        None,
    )


def test_four_days_late_earns_a_10_yuan_coupon_once(
    service: SqlOrderService, scenario: Scenario, session_factory: sessionmaker[Session]
) -> None:
    scenario.order("DM2026111031", OrderStatus.DELIVERED, delivered_days_ago=1, days_late=4)
    result = service.issue_delay_coupon("DM2026111031", phone_last4=LAST4)
    assert result.outcome is Outcome.DONE and result.coupon is not None
    assert result.coupon.amount_cents == 1000 and result.coupon.code.startswith("CP")
    assert result.shipping_refund_offered_cents is None
    again = service.issue_delay_coupon("DM2026111031", phone_last4=LAST4)
    assert again.outcome is Outcome.ALREADY_DONE and again.coupon == result.coupon
    assert count(session_factory, Coupon) == 1


def test_eight_days_late_offers_30_yuan_or_the_shipping_fee(
    service: SqlOrderService, scenario: Scenario, session_factory: sessionmaker[Session]
) -> None:
    scenario.order("DM2026111032", OrderStatus.IN_TRANSIT, days_late=8)  # 79 yuan: 8 yuan shipping paid
    scenario.order("DM2026111033", OrderStatus.IN_TRANSIT, days_late=8)
    coupon = service.issue_delay_coupon("DM2026111032", phone_last4=LAST4)
    assert coupon.coupon is not None and coupon.coupon.amount_cents == 3000
    assert coupon.shipping_refund_offered_cents == 800
    refund = service.issue_delay_coupon("DM2026111033", phone_last4=LAST4, choice=CompensationChoice.SHIPPING_REFUND)
    assert refund.outcome is Outcome.DONE and refund.coupon is None
    assert refund.shipping_refund is not None and refund.shipping_refund.amount_cents == 800
    assert refund.shipping_refund.kind is RefundKind.SHIPPING_FEE
    # One compensation per order: the other option is no longer available.
    other = service.issue_delay_coupon("DM2026111033", phone_last4=LAST4)
    assert other.outcome is Outcome.ALREADY_DONE and other.coupon is None
    assert count(session_factory, Coupon) == 1


def test_shipping_refund_needs_a_paid_shipping_fee(service: SqlOrderService, scenario: Scenario) -> None:
    big = ItemSpec(sku="AP-1003", name="轻薄白鸭绒羽绒服", price_cents=49900)
    scenario.order("DM2026111034", OrderStatus.IN_TRANSIT, days_late=9, items=(big,))
    result = service.issue_delay_coupon("DM2026111034", phone_last4=LAST4, choice=CompensationChoice.SHIPPING_REFUND)
    assert (result.outcome, result.refusal) == (Outcome.NOT_ALLOWED, NO_SHIPPING_FEE)


def test_lost_parcels_get_reship_or_refund_not_a_coupon(service: SqlOrderService, scenario: Scenario) -> None:
    scenario.order("DM2026111035", OrderStatus.LOST, days_late=10)
    result = service.issue_delay_coupon("DM2026111035", phone_last4=LAST4)
    assert (result.outcome, result.refusal) == (Outcome.NOT_ALLOWED, LOST_PARCEL)


def test_concurrent_compensation_requests_issue_one_coupon(
    service: SqlOrderService, scenario: Scenario, session_factory: sessionmaker[Session]
) -> None:
    scenario.order("DM2026111036", OrderStatus.IN_TRANSIT, days_late=5)
    outcomes: list[Outcome] = []
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            outcomes.append(service.issue_delay_coupon("DM2026111036", phone_last4=LAST4).outcome)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert sorted(outcomes) == sorted([Outcome.DONE] + [Outcome.ALREADY_DONE] * 3)
    assert count(session_factory, Coupon) == 1


# --- backend failures ------------------------------------------------------------------------------------


def test_unreachable_database_raises_backend_unavailable(policy: StorePolicy, settings: OrderSettings) -> None:
    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:9/none", settings)  # port 9: discard, closed
    broken = SqlOrderService(make_session_factory(engine), policy, clock=lambda: NOW)
    with pytest.raises(BackendUnavailable):
        broken.get_order("DM2026111040")
    engine.dispose()


def test_postgres_statement_timeout_raises_backend_timeout(
    postgres_template: str, postgres_server_url: str, policy: StorePolicy
) -> None:
    """A row locked by another transaction makes the cancel wait past the statement timeout."""
    from tests.actions.orders.conftest import _create_postgres_database, _drop_postgres_database

    url, admin = _create_postgres_database(postgres_server_url, postgres_template)
    engine = make_engine(url, OrderSettings(_env_file=None, db_statement_timeout_ms=300))  # type: ignore[call-arg]
    try:
        factory = make_session_factory(engine)
        Scenario(factory, policy, NOW).order("DM2026111041", OrderStatus.PAID)
        service = SqlOrderService(factory, policy, clock=lambda: NOW)
        with engine.connect() as blocker:
            blocker.execute(text("SELECT id FROM orders WHERE number = 'DM2026111041' FOR UPDATE"))
            with pytest.raises(BackendTimeout):
                service.cancel_order("DM2026111041", phone_last4=LAST4)
            blocker.rollback()
        assert service.get_order("DM2026111041").status is OrderStatus.PAID
    finally:
        engine.dispose()
        _drop_postgres_database(admin, url)
