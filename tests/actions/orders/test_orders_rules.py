"""Business rules: dispatch, delivery promise, fees, delay compensation, returns, refunds - all from policy."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from actions.orders import rules
from actions.orders.enums import OrderStatus, PaymentMethod, ReturnReason
from actions.orders.policy import StorePolicy

CN = ZoneInfo("Asia/Shanghai")


def at(day: str, hour: int = 10) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=CN)


def with_changes(policy: StorePolicy, section: str, **changes: object) -> StorePolicy:
    """A copy of the policy with one section changed, to prove the rules read the numbers from it."""
    return policy.model_copy(update={section: getattr(policy, section).model_copy(update=changes)})


# --- business days, dispatch, promise ----------------------------------------------------------------


def test_business_days_skip_weekends(policy: StorePolicy) -> None:
    friday = date(2026, 11, 20)
    assert rules.add_business_days(friday, 1, policy) == date(2026, 11, 23)  # Monday
    assert rules.add_business_days(friday, 5, policy) == date(2026, 11, 27)
    assert rules.add_business_days(friday, 0, policy) == friday


def test_configured_holidays_are_not_business_days(policy: StorePolicy) -> None:
    holiday_policy = policy.model_copy(
        update={"delivery": policy.delivery.model_copy(update={"holidays": [date(2026, 11, 23)]})}
    )
    assert rules.add_business_days(date(2026, 11, 20), 1, holiday_policy) == date(2026, 11, 24)


def test_dispatch_takes_48_hours_normally_and_72_during_double_11(policy: StorePolicy) -> None:
    assert rules.dispatch_hours(at("2026-10-20"), policy) == policy.dispatch.in_stock_hours == 48
    assert rules.promotion_on(date(2026, 11, 5), policy) is not None
    assert rules.dispatch_hours(at("2026-11-05"), policy) == policy.dispatch.promotion_hours == 72
    assert rules.dispatch_hours(at("2026-06-18"), policy) == 72
    assert rules.dispatch_hours(at("2026-11-12"), policy) == 48
    paid = at("2026-11-05")
    assert rules.dispatch_deadline(paid, policy) == paid + timedelta(hours=72)


def test_presale_ships_on_the_product_page_date(policy: StorePolicy) -> None:
    deadline = rules.dispatch_deadline(at("2026-11-01"), policy, presale_ship_date=date(2026, 11, 15))
    assert deadline.astimezone(CN).date() == date(2026, 11, 15)


@pytest.mark.parametrize(
    ("province", "city", "express", "expected"),
    [
        # Paid Tue 20 Oct 10:00 -> ship by Thu 22 Oct -> +5 business days (standard) = Thu 29 Oct.
        ("浙江", "杭州", False, date(2026, 10, 29)),
        # Remote: +10 business days = Thu 5 Nov.
        ("新疆", "乌鲁木齐", False, date(2026, 11, 5)),
        ("西藏", "拉萨", True, date(2026, 11, 5)),  # no express to remote regions
        # Express in one of the 30 cities: next business day after dispatch.
        ("上海", "上海", True, date(2026, 10, 23)),
        ("广西", "南宁", True, date(2026, 10, 29)),  # not an express city -> standard
    ],
)
def test_promised_delivery_date_by_region(
    policy: StorePolicy, province: str, city: str, express: bool, expected: date
) -> None:
    assert rules.promised_delivery_date(at("2026-10-20"), province, city, express, policy) == expected


def test_promise_follows_the_configured_delivery_days(policy: StorePolicy) -> None:
    slower = policy.model_copy(
        update={
            "delivery": policy.delivery.model_copy(
                update={"standard_business_days": policy.delivery.standard_business_days.model_copy(update={"max": 6})}
            )
        }
    )
    assert rules.promised_delivery_date(at("2026-10-20"), "浙江", "杭州", False, slower) == date(2026, 10, 30)


@pytest.mark.parametrize(
    ("subtotal", "express", "fee"),
    [(9899, False, 800), (9900, False, 0), (25000, False, 0), (5000, True, 2000), (9900, True, 1200)],
)
def test_shipping_fee_threshold_and_express(policy: StorePolicy, subtotal: int, express: bool, fee: int) -> None:
    assert rules.shipping_fee_cents(subtotal, express, policy) == fee


def test_shipping_fee_reads_the_policy(policy: StorePolicy) -> None:
    cheaper = with_changes(policy, "shipping_fee", free_threshold_yuan=59, standard_fee_yuan=6)
    assert rules.shipping_fee_cents(6000, False, cheaper) == 0
    assert rules.shipping_fee_cents(5800, False, cheaper) == 600


def test_payment_hold(policy: StorePolicy) -> None:
    placed = at("2026-11-20")
    assert rules.payment_hold_expires_at(placed, policy) == placed + timedelta(minutes=30)


# --- delay and compensation --------------------------------------------------------------------------


def test_days_late_counts_calendar_days_after_the_promised_date(policy: StorePolicy) -> None:
    promised = date(2026, 11, 10)
    assert rules.days_late(promised, None, at("2026-11-10", 23), policy) == 0
    assert rules.days_late(promised, None, at("2026-11-14"), policy) == 4
    assert rules.days_late(promised, at("2026-11-12"), at("2026-11-20"), policy) == 2  # delivered: frozen
    assert rules.days_late(None, None, at("2026-11-20"), policy) == 0
    # 2026-11-10 16:30 UTC is already 11 Nov in China: one day late.
    assert (
        rules.days_late(promised, datetime(2026, 11, 10, 16, 30, tzinfo=ZoneInfo("UTC")), at("2026-11-20"), policy) == 1
    )


def test_only_parcels_on_the_way_are_delayed(policy: StorePolicy) -> None:
    promised = date(2026, 11, 10)
    now = at("2026-11-12")
    assert rules.is_delayed(OrderStatus.IN_TRANSIT, promised, now, policy)
    assert rules.is_delayed(OrderStatus.SHIPPED, promised, now, policy)
    assert not rules.is_delayed(OrderStatus.DELIVERED, promised, now, policy)
    assert not rules.is_delayed(OrderStatus.IN_TRANSIT, promised, at("2026-11-10"), policy)


@pytest.mark.parametrize(
    ("late", "fee", "coupon", "shipping_refund"),
    [
        (0, 800, None, None),
        (2, 800, None, None),
        (3, 800, 1000, None),
        (6, 800, 1000, None),
        (7, 800, 3000, 800),
        (12, 800, 3000, 800),
        (8, 0, 3000, None),  # free shipping: nothing to refund, coupon only
    ],
)
def test_delay_compensation_tiers(
    policy: StorePolicy, late: int, fee: int, coupon: int | None, shipping_refund: int | None
) -> None:
    offer = rules.delay_compensation(late, fee, policy)
    if coupon is None:
        assert offer is None
        return
    assert offer is not None
    assert (offer.coupon_cents, offer.shipping_refund_cents, offer.days_late) == (coupon, shipping_refund, late)


def test_compensation_reads_the_policy_tiers(policy: StorePolicy) -> None:
    tiers = [policy.delay_compensation.tiers[0].model_copy(update={"min_days_late": 1, "coupon_yuan": 5})]
    generous = with_changes(policy, "delay_compensation", tiers=tiers)
    offer = rules.delay_compensation(1, 800, generous)
    assert offer is not None and offer.coupon_cents == 500
    assert rules.coupon_expires_at(at("2026-11-20"), policy) is None  # policy: no expiry configured


# --- changes, returns, refunds ------------------------------------------------------------------------


@pytest.mark.parametrize("status", list(OrderStatus))
def test_cancel_and_address_change_only_before_shipping(policy: StorePolicy, status: OrderStatus) -> None:
    assert rules.can_change_before_shipping(status, policy) == (status in {OrderStatus.UNPAID, OrderStatus.PAID})


@pytest.mark.parametrize(
    ("reason", "category", "days_since_delivery", "eligible", "refusal"),
    [
        (ReturnReason.NO_REASON, "apparel", 0, True, None),
        (ReturnReason.NO_REASON, "apparel", 7, True, None),
        (ReturnReason.NO_REASON, "apparel", 8, False, rules.WINDOW_EXPIRED),
        (ReturnReason.QUALITY, "apparel", 15, True, None),
        (ReturnReason.QUALITY, "apparel", 16, False, rules.WINDOW_EXPIRED),
        (ReturnReason.NO_REASON, "customised", 1, False, rules.EXCLUDED_CATEGORY),
        (ReturnReason.NO_REASON, "fresh_food", 1, False, rules.EXCLUDED_CATEGORY),
        (ReturnReason.NO_REASON, "underwear", 1, False, rules.EXCLUDED_CATEGORY),
        (ReturnReason.NO_REASON, "digital", 1, False, rules.EXCLUDED_CATEGORY),
        (ReturnReason.QUALITY, "fresh_food", 1, True, None),  # exclusions are for no-reason returns only
    ],
)
def test_return_eligibility(
    policy: StorePolicy,
    reason: ReturnReason,
    category: str,
    days_since_delivery: int,
    eligible: bool,
    refusal: str | None,
) -> None:
    delivered = at("2026-11-01", 15)
    decision = rules.return_eligibility(
        OrderStatus.DELIVERED, delivered, category, reason, delivered + timedelta(days=days_since_delivery), policy
    )
    assert (decision.eligible, decision.refusal) == (eligible, refusal)
    window = 15 if reason is ReturnReason.QUALITY else 7
    assert decision.deadline == date(2026, 11, 1) + timedelta(days=window)
    assert decision.return_shipping_paid_by == ("store" if reason is ReturnReason.QUALITY else "customer")
    assert decision.photos_required == (reason is ReturnReason.QUALITY)


def test_return_needs_a_delivered_order(policy: StorePolicy) -> None:
    decision = rules.return_eligibility(
        OrderStatus.IN_TRANSIT, None, "apparel", ReturnReason.QUALITY, at("2026-11-20"), policy
    )
    assert not decision.eligible and decision.refusal == rules.NOT_DELIVERED and decision.deadline is None


def test_return_window_reads_the_policy(policy: StorePolicy) -> None:
    returns = policy.returns.model_copy(
        update={"no_reason": policy.returns.no_reason.model_copy(update={"window_days": 30})}
    )
    generous = policy.model_copy(update={"returns": returns})
    decision = rules.return_eligibility(
        OrderStatus.DELIVERED, at("2026-11-01"), "apparel", ReturnReason.NO_REASON, at("2026-11-25"), generous
    )
    assert decision.eligible


@pytest.mark.parametrize("method", [PaymentMethod.ALIPAY, PaymentMethod.WECHAT, PaymentMethod.BALANCE])
def test_wallet_refunds_arrive_within_24_hours(policy: StorePolicy, method: PaymentMethod) -> None:
    approved = at("2026-11-20", 16)
    window = rules.refund_arrival(approved, method, policy)
    assert window.earliest == approved and window.latest == approved + timedelta(hours=24)


def test_bank_card_refunds_take_3_to_7_business_days(policy: StorePolicy) -> None:
    approved = at("2026-11-20", 16)  # Friday
    window = rules.refund_arrival(approved, PaymentMethod.UNIONPAY, policy)
    assert window.earliest == at("2026-11-25", 16)  # Wednesday
    assert window.latest == at("2026-12-01", 16)  # Tuesday after next


def test_refund_review_and_invoice_deadlines(policy: StorePolicy) -> None:
    assert rules.refund_review_deadline(at("2026-11-20"), policy) == date(2026, 11, 25)  # Fri + 3 business days
    assert rules.invoice_request_deadline(at("2026-11-01"), policy) == date(2026, 12, 1)
