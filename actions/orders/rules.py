"""Business rules of the store as pure functions of (facts, policy).

No I/O and no policy numbers here: every threshold comes from :class:`StorePolicy`, so the same
functions serve the SQL service, the demo data generator and the bot's explanations. Dates that a
customer sees (delivery, windows, business days) are computed in the merchant's timezone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from actions.orders.enums import PARCEL_ON_THE_WAY, OrderStatus, PaymentMethod, ReturnReason
from actions.orders.policy import DayRange, Promotion, StorePolicy

FEN_PER_YUAN = 100  # currency unit conversion, not a policy number

# Refusal codes of return_eligibility (stable: actions choose responses by them).
NOT_DELIVERED = "not_delivered"
WINDOW_EXPIRED = "window_expired"
EXCLUDED_CATEGORY = "excluded_category"


def yuan_to_cents(yuan: int) -> int:
    return yuan * FEN_PER_YUAN


def local_date(moment: datetime, policy: StorePolicy) -> date:
    """Calendar date of an aware ``moment`` in the merchant's timezone."""
    return moment.astimezone(policy.tz).date()


# --- business days -------------------------------------------------------------------------------


def is_business_day(day: date, policy: StorePolicy) -> bool:
    return day.weekday() in policy.delivery.business_weekdays and day not in policy.delivery.holidays


def add_business_days(start: date, days: int, policy: StorePolicy) -> date:
    """The date ``days`` business days after ``start`` (``start`` itself is not counted)."""
    current = start
    remaining = days
    while remaining > 0:
        current += timedelta(days=1)
        if is_business_day(current, policy):
            remaining -= 1
    return current


# --- dispatch and delivery -----------------------------------------------------------------------


def promotion_on(day: date, policy: StorePolicy) -> Promotion | None:
    """The promotion (618, Double 11...) running on ``day``, if any."""
    return next((p for p in policy.promotions if p.contains(day)), None)


def dispatch_hours(paid_at: datetime, policy: StorePolicy) -> int:
    """Hours the warehouse has to ship an in-stock order paid at ``paid_at`` (longer during promotions)."""
    if promotion_on(local_date(paid_at, policy), policy) is not None:
        return policy.dispatch.promotion_hours
    return policy.dispatch.in_stock_hours


def dispatch_deadline(paid_at: datetime, policy: StorePolicy, presale_ship_date: date | None = None) -> datetime:
    """Latest promised shipping moment: presale date (end of that day) or payment + dispatch hours."""
    if presale_ship_date is not None:
        end_of_day = datetime.combine(presale_ship_date, time(23, 59, 59), tzinfo=policy.tz)
        return max(end_of_day, paid_at.astimezone(policy.tz))
    return paid_at + timedelta(hours=dispatch_hours(paid_at, policy))


def is_remote(province: str, policy: StorePolicy) -> bool:
    return policy.delivery.is_remote(province)


def express_available(city: str, province: str, policy: StorePolicy) -> bool:
    """Next-day express exists only for the listed major cities (never for remote provinces)."""
    if is_remote(province, policy):
        return False
    name = city.strip().removesuffix("市")
    return name in policy.delivery.express.cities


def delivery_business_days(province: str, city: str, express: bool, policy: StorePolicy) -> DayRange:
    """Transit time after dispatch, in business days."""
    if express and express_available(city, province, policy):
        days = policy.delivery.express.business_days
        return DayRange(min=days, max=days)
    if is_remote(province, policy):
        return policy.delivery.remote_business_days
    return policy.delivery.standard_business_days


def promised_delivery_date(
    paid_at: datetime,
    province: str,
    city: str,
    express: bool,
    policy: StorePolicy,
    presale_ship_date: date | None = None,
) -> date:
    """The date the store promises: latest dispatch day + the slowest transit time for the region."""
    ship_by = local_date(dispatch_deadline(paid_at, policy, presale_ship_date), policy)
    return add_business_days(ship_by, delivery_business_days(province, city, express, policy).max, policy)


def shipping_fee_cents(subtotal_cents: int, express: bool, policy: StorePolicy) -> int:
    """Standard fee unless the subtotal reaches the free-shipping threshold; express adds its surcharge."""
    fees = policy.shipping_fee
    fee = 0 if subtotal_cents >= yuan_to_cents(fees.free_threshold_yuan) else yuan_to_cents(fees.standard_fee_yuan)
    if express:
        fee += yuan_to_cents(fees.express_surcharge_yuan)
    return fee


def payment_hold_expires_at(placed_at: datetime, policy: StorePolicy) -> datetime:
    """An unpaid order is kept this long for a retry after a failed payment."""
    return placed_at + timedelta(minutes=policy.payment.failed_payment_hold_minutes)


# --- delay and compensation ----------------------------------------------------------------------


def days_late(promised: date | None, delivered_at: datetime | None, now: datetime, policy: StorePolicy) -> int:
    """Calendar days past the promised date (at delivery, or now if not delivered); 0 when on time."""
    if promised is None:
        return 0
    reference = local_date(delivered_at or now, policy)
    return max(0, (reference - promised).days)


def is_delayed(status: OrderStatus, promised: date | None, now: datetime, policy: StorePolicy) -> bool:
    """A parcel still on its way after its promised date."""
    return status in PARCEL_ON_THE_WAY and days_late(promised, None, now, policy) > 0


@dataclass(frozen=True)
class CompensationOffer:
    """What the store owes for a late delivery; the customer picks the shipping refund instead if offered."""

    days_late: int
    tier_min_days_late: int
    coupon_cents: int
    shipping_refund_cents: int | None  # None: not an option at this tier (or nothing was paid)


def delay_compensation(late_days: int, shipping_fee_paid_cents: int, policy: StorePolicy) -> CompensationOffer | None:
    """The highest tier reached by ``late_days``, or None when the delay earns no compensation."""
    reached = [t for t in policy.delay_compensation.tiers if late_days >= t.min_days_late]
    if not reached:
        return None
    tier = reached[-1]
    refund = shipping_fee_paid_cents if tier.shipping_fee_refund_option and shipping_fee_paid_cents > 0 else None
    return CompensationOffer(
        days_late=late_days,
        tier_min_days_late=tier.min_days_late,
        coupon_cents=yuan_to_cents(tier.coupon_yuan),
        shipping_refund_cents=refund,
    )


def coupon_expires_at(issued_at: datetime, policy: StorePolicy) -> datetime | None:
    days = policy.delay_compensation.coupon_valid_days
    return None if days is None else issued_at + timedelta(days=days)


# --- order changes -------------------------------------------------------------------------------


def can_change_before_shipping(status: OrderStatus, policy: StorePolicy) -> bool:
    """Cancellation and address changes are allowed only until the order ships."""
    return status in policy.order_changes.allowed_statuses


# --- returns -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReturnEligibility:
    """Decision for one item and reason; ``refusal`` is a stable code when not eligible."""

    eligible: bool
    refusal: str | None
    reason: ReturnReason
    window_days: int
    deadline: date | None
    return_shipping_paid_by: str
    photos_required: bool


def return_eligibility(
    status: OrderStatus,
    delivered_at: datetime | None,
    category: str,
    reason: ReturnReason,
    now: datetime,
    policy: StorePolicy,
) -> ReturnEligibility:
    """Apply the no-reason / quality return rules: delivered, inside the window, category not excluded."""
    rule = policy.returns.rule_for(reason)

    def decide(refusal: str | None, deadline: date | None) -> ReturnEligibility:
        return ReturnEligibility(
            eligible=refusal is None,
            refusal=refusal,
            reason=reason,
            window_days=rule.window_days,
            deadline=deadline,
            return_shipping_paid_by=rule.return_shipping_paid_by,
            photos_required=rule.photos_required,
        )

    if status is not OrderStatus.DELIVERED or delivered_at is None:
        return decide(NOT_DELIVERED, None)
    deadline = local_date(delivered_at, policy) + timedelta(days=rule.window_days)
    if local_date(now, policy) > deadline:
        return decide(WINDOW_EXPIRED, deadline)
    if category in rule.excluded_categories:
        return decide(EXCLUDED_CATEGORY, deadline)
    return decide(None, deadline)


# --- refunds -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArrivalWindow:
    earliest: datetime
    latest: datetime


def _plus_business_days(moment: datetime, days: int, policy: StorePolicy) -> datetime:
    local = moment.astimezone(policy.tz)
    return datetime.combine(add_business_days(local.date(), days, policy), local.timetz())


def refund_arrival(approved_at: datetime, method: PaymentMethod, policy: StorePolicy) -> ArrivalWindow:
    """When an approved refund reaches the customer via ``method`` (wallets: hours, bank cards: business days)."""
    timing = policy.refunds.timing[method]
    if timing.max_hours is not None:
        return ArrivalWindow(earliest=approved_at, latest=approved_at + timedelta(hours=timing.max_hours))
    assert timing.max_business_days is not None  # guaranteed by the policy model validator
    return ArrivalWindow(
        earliest=_plus_business_days(approved_at, timing.min_business_days or 0, policy),
        latest=_plus_business_days(approved_at, timing.max_business_days, policy),
    )


def refund_review_deadline(received_at: datetime, policy: StorePolicy) -> date:
    """Latest day the warehouse approves a refund after it receives the returned parcel."""
    return add_business_days(local_date(received_at, policy), policy.refunds.review_business_days.max, policy)


def invoice_request_deadline(delivered_at: datetime, policy: StorePolicy) -> date:
    return local_date(delivered_at, policy) + timedelta(days=policy.invoices.request_window_days_after_delivery)
