"""Deterministic demo data for the order backend.

    python -m tools.demo_data [--seed 42] [--today 2026-11-22] [--url DATABASE_URL]

Builds customers and orders over the 60 days before ``--today`` (default: now), each order living
through the store's real rules (payment hold, dispatch hours incl. promotion periods, regional
delivery times, delays, losses, returns, refunds, exchanges, compensation coupons), then bulk-loads
them. Same seed + same ``--today`` = same data. Loads only into an empty database (idempotent).
"""

from __future__ import annotations

import argparse
import random
import sys
import time as time_module
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import Engine, func, insert, select
from sqlalchemy.orm import Session

from actions.orders import rules
from actions.orders.db import make_engine, upgrade
from actions.orders.enums import (
    Carrier,
    CouponReason,
    CouponStatus,
    ExchangeStatus,
    MembershipTier,
    OrderStatus,
    PaymentMethod,
    RefundKind,
    RefundStatus,
    ReturnReason,
    ReturnStatus,
    TrackingEventType,
)
from actions.orders.models import (
    Coupon,
    Customer,
    Exchange,
    Order,
    OrderItem,
    Refund,
    ReturnRequest,
    Shipment,
    TrackingEvent,
)
from actions.orders.policy import StorePolicy, load_policy
from actions.settings import get_settings
from tools.demo_catalogue import (
    CITY_EN,
    COMPOUNDS,
    DELAY_CAUSES,
    GIVEN_NAME_CHARS,
    PHONE_PREFIXES,
    PLACES,
    PRODUCTS,
    SIGNED_BY_EN,
    SIGNED_BY_ZH,
    STREETS,
    SURNAMES,
    WAREHOUSE_FOR_HUB,
    Place,
    Product,
)

# --- shape of the demo data (generator parameters, not store policy) ----------------------------
DAYS_OF_HISTORY = 60
N_CUSTOMERS = 320
TARGET_ORDERS = 2200
MAX_ORDERS_PER_DAY = 99  # order numbers are DM + yyyymmdd + 2-digit sequence
N_UNPAID_NOW = 12  # orders inside their payment-hold window at "now"
TIER_WEIGHTS = {MembershipTier.REGULAR: 75, MembershipTier.GOLD: 18, MembershipTier.PLATINUM: 7}
PAYMENT_WEIGHTS = {
    PaymentMethod.ALIPAY: 45,
    PaymentMethod.WECHAT: 35,
    PaymentMethod.UNIONPAY: 12,
    PaymentMethod.BALANCE: 8,
}
CARRIER_WEIGHTS = {Carrier.SF: 35, Carrier.ZTO: 40, Carrier.JD: 25}
PROMOTION_DAY_WEIGHT = 1.8
PROMOTION_PEAK_WEIGHT = 3.0  # last day of a promotion (6/18, 11/11)
P_EXPRESS = 0.08
P_PRESALE = 0.05
P_UNPAID_EXPIRED = 0.035
P_CANCELLED_AFTER_PAYMENT = 0.03
P_DELAYED = 0.12
P_LOST = 0.015
P_FULL_RETURN = 0.07
P_PARTIAL_RETURN = 0.05
P_REJECTED_RETURN = 0.01
P_EXCHANGE = 0.03
P_COUPON_TAKEN = 0.55
P_SHIPPING_REFUND_CHOSEN = 0.2
P_COUPON_USED = 0.3
P_LOST_REFUNDED = 0.4
P_GIFT_ADDRESS = 0.15
MAX_EXTRA_DELAY_DAYS = 12
SHIPPED_STATE_HOURS = 24


ALL_MODELS = (Customer, Order, OrderItem, Shipment, TrackingEvent, ReturnRequest, Refund, Exchange, Coupon)


@dataclass
class DemoStats:
    """What was loaded (or None from load_demo_data when the database already had data)."""

    customers: int
    orders: int
    by_status: dict[str, int]
    items: int
    shipments: int
    tracking_events: int
    return_requests: int
    refunds: int
    exchanges: int
    coupons: int
    seconds: float
    samples: dict[str, tuple[str, str]] = field(default_factory=dict)  # status -> (order number, phone last 4)


@dataclass
class _Rows:
    customers: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)
    shipments: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    returns: list[dict[str, Any]] = field(default_factory=list)
    refunds: list[dict[str, Any]] = field(default_factory=list)
    exchanges: list[dict[str, Any]] = field(default_factory=list)
    coupons: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Customer:
    index: int
    name: str
    phone: str
    tier: MembershipTier
    place: Place
    address_line: str
    district: str


def _weighted(rng: random.Random, weights: dict[Any, int]) -> Any:
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys], k=1)[0]


class _Generator:
    """Builds plain row dicts; foreign keys are list indexes, resolved at insert time."""

    def __init__(self, seed: int, now: datetime, policy: StorePolicy) -> None:
        self.rng = random.Random(seed)
        self.now = now.astimezone(timezone.utc)
        self.policy = policy
        self.tz = policy.tz
        self.rows = _Rows()
        self.customers: list[_Customer] = []
        self.phones: set[str] = set()
        self.tracking_numbers: set[str] = set()
        self.coupon_codes: set[str] = set()
        self.returns_per_order: Counter[int] = Counter()

    # --- small helpers ---------------------------------------------------------------------------

    def _local(self, day: date, hour: float) -> datetime:
        return datetime.combine(day, time(0), tzinfo=self.tz) + timedelta(hours=hour)

    def _between(self, start: datetime, end: datetime) -> datetime:
        if end <= start:
            return start
        return start + (end - start) * self.rng.random()

    def _name(self) -> str:
        return self.rng.choice(SURNAMES) + "".join(self.rng.choices(GIVEN_NAME_CHARS, k=self.rng.choice((1, 2, 2))))

    def _phone(self) -> str:
        while True:
            phone = self.rng.choice(PHONE_PREFIXES) + f"{self.rng.randrange(10**8):08d}"
            if phone not in self.phones:
                self.phones.add(phone)
                return phone

    def _address(self) -> str:
        rng = self.rng
        street = f"{rng.choice(STREETS)}{rng.randint(1, 999)}号"
        return f"{street}{rng.choice(COMPOUNDS)}{rng.randint(1, 30)}幢{rng.randint(1, 4)}单元{rng.randint(101, 2604)}室"

    def _tracking_number(self, carrier: Carrier) -> str:
        while True:
            if carrier is Carrier.SF:
                number = "SF" + f"{self.rng.randrange(10**12):012d}"
            elif carrier is Carrier.JD:
                number = "JD" + f"{self.rng.randrange(10**13):013d}"
            else:  # ZTO: 12 digits starting with 7, or 14 starting with 75
                number = (
                    "7" + f"{self.rng.randrange(10**11):011d}"
                    if self.rng.random() < 0.5
                    else "75" + f"{self.rng.randrange(10**12):012d}"
                )
            if number not in self.tracking_numbers:
                self.tracking_numbers.add(number)
                return number

    def _coupon_code(self) -> str:
        alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
        while True:
            code = "CP" + "".join(self.rng.choices(alphabet, k=10))
            if code not in self.coupon_codes:
                self.coupon_codes.add(code)
                return code

    # --- customers -------------------------------------------------------------------------------

    def build_customers(self) -> None:
        place_weights = [p.weight for p in PLACES]
        for index in range(N_CUSTOMERS):
            place = self.rng.choices(PLACES, weights=place_weights, k=1)[0]
            line = self._address()
            customer = _Customer(
                index=index,
                name=self._name(),
                phone=self._phone(),
                tier=_weighted(self.rng, TIER_WEIGHTS),
                place=place,
                address_line=line,
                district=self.rng.choice(place.districts),
            )
            self.customers.append(customer)
            self.rows.customers.append(
                {
                    "name": customer.name,
                    "phone": customer.phone,
                    "tier": customer.tier,
                    "created_at": self.now - timedelta(days=self.rng.uniform(DAYS_OF_HISTORY + 1, 900)),
                }
            )

    # --- order placement times -------------------------------------------------------------------

    def _placement_times(self) -> list[datetime]:
        """Order times over the history window; promotions get more orders, the peak day most."""
        today = rules.local_date(self.now, self.policy)
        days = [today - timedelta(days=offset) for offset in range(DAYS_OF_HISTORY - 1, -1, -1)]
        weights = []
        for day in days:
            promo = rules.promotion_on(day, self.policy)
            if promo is None:
                weights.append(1.0)
            elif day.strftime("%m-%d") == promo.end:
                weights.append(PROMOTION_PEAK_WEIGHT)
            else:
                weights.append(PROMOTION_DAY_WEIGHT)
        unit = TARGET_ORDERS / sum(weights)
        times: list[datetime] = []
        hold = timedelta(minutes=self.policy.payment.failed_payment_hold_minutes)
        for day, weight in zip(days, weights, strict=True):
            count = min(MAX_ORDERS_PER_DAY, round(unit * weight * self.rng.uniform(0.85, 1.15)))
            for _ in range(count):
                # Shoppers buy mostly from late morning to late evening.
                hour = self.rng.triangular(0.0, 24.0, 20.5)
                moment = self._local(day, hour)
                if moment < self.now - hold:  # the last hold window is filled by the unpaid orders below
                    times.append(moment)
        return sorted(times)

    # --- one order's life ------------------------------------------------------------------------

    def build_orders(self) -> None:
        hold = timedelta(minutes=self.policy.payment.failed_payment_hold_minutes)
        placed = [(t, False) for t in self._placement_times()]
        placed += [(self.now - hold * self.rng.uniform(0.05, 0.95), True) for _ in range(N_UNPAID_NOW)]
        placed.sort(key=lambda p: p[0])
        per_day: Counter[date] = Counter()
        # Repeat buyers: a skewed choice of customers; members buy more.
        customer_weights = [
            (3 if c.tier is MembershipTier.PLATINUM else 2 if c.tier is MembershipTier.GOLD else 1)
            * self.rng.uniform(0.2, 2.0)
            for c in self.customers
        ]
        for placed_at, unpaid_now in placed:
            day = rules.local_date(placed_at, self.policy)
            if per_day[day] >= MAX_ORDERS_PER_DAY:
                continue
            per_day[day] += 1
            number = f"DM{day:%Y%m%d}{per_day[day]:02d}"
            customer = self.rng.choices(self.customers, weights=customer_weights, k=1)[0]
            self._order(number, placed_at, customer, unpaid_now)

    def _order(self, number: str, placed_at: datetime, customer: _Customer, unpaid_now: bool) -> None:
        rng, policy = self.rng, self.policy
        order_index = len(self.rows.orders)
        if rng.random() < P_GIFT_ADDRESS:
            place = rng.choice(PLACES)
            recipient, phone = self._name(), self._phone()
            line = self._address()
            district = rng.choice(place.districts)
        else:
            place, recipient, phone = customer.place, customer.name, customer.phone
            line, district = customer.address_line, customer.district

        products = self._pick_products()
        item_indexes = []
        subtotal = 0
        for product in products:
            quantity = 1 if rng.random() < 0.85 else rng.randint(2, 3)
            subtotal += rules.yuan_to_cents(product.price_yuan) * quantity
            item_indexes.append(len(self.rows.items))
            self.rows.items.append(
                {
                    "order": order_index,
                    "sku": product.sku,
                    "name": product.name,
                    "category": product.category,
                    "quantity": quantity,
                    "unit_price_cents": rules.yuan_to_cents(product.price_yuan),
                }
            )
        express = rules.express_available(place.city, place.province, policy) and rng.random() < P_EXPRESS
        shipping_fee = rules.shipping_fee_cents(subtotal, express, policy)
        presale_date = None
        if not express and rng.random() < P_PRESALE:
            presale_date = rules.local_date(placed_at, policy) + timedelta(days=rng.randint(5, 20))

        order: dict[str, Any] = {
            "number": number,
            "customer": customer.index,
            "status": OrderStatus.UNPAID,
            "payment_method": _weighted(rng, PAYMENT_WEIGHTS),
            "subtotal_cents": subtotal,
            "shipping_fee_cents": shipping_fee,
            "total_cents": subtotal + shipping_fee,
            "express": express,
            "recipient_name": recipient,
            "recipient_phone": phone,
            "province": place.province,
            "city": place.city,
            "district": district,
            "address_line": line,
            "placed_at": placed_at,
            "paid_at": None,
            "shipped_at": None,
            "delivered_at": None,
            "cancelled_at": None,
            "promised_delivery_date": None,
            "is_presale": presale_date is not None,
            "presale_ship_date": presale_date,
        }
        self.rows.orders.append(order)
        hold_minutes = policy.payment.failed_payment_hold_minutes
        if unpaid_now:
            return
        if rng.random() < P_UNPAID_EXPIRED:  # payment failed and was not retried within the hold
            order.update(status=OrderStatus.CANCELLED, cancelled_at=rules.payment_hold_expires_at(placed_at, policy))
            return

        paid_at = placed_at + timedelta(minutes=rng.uniform(0.3, hold_minutes * 0.8))
        promised = rules.promised_delivery_date(paid_at, place.province, place.city, express, policy, presale_date)
        deadline = rules.dispatch_deadline(paid_at, policy, presale_date)
        order.update(status=OrderStatus.PAID, paid_at=paid_at, promised_delivery_date=promised)
        if presale_date is not None:
            ship_at = max(paid_at + timedelta(hours=1), self._local(presale_date, rng.uniform(9, 18)))
        else:  # anywhere inside the dispatch window (72 h in promotions, 48 h otherwise)
            ship_at = paid_at + (deadline - paid_at) * rng.uniform(0.08, 0.95)

        if rng.random() < P_CANCELLED_AFTER_PAYMENT:
            cancelled_at = self._between(paid_at + timedelta(minutes=5), ship_at)
            if cancelled_at <= self.now:
                order.update(status=OrderStatus.CANCELLED, cancelled_at=cancelled_at)
                self._refund(
                    order_index,
                    None,
                    RefundKind.CANCELLATION,
                    order["total_cents"],
                    order["payment_method"],
                    cancelled_at,
                    approved_at=cancelled_at,
                )
            return
        if ship_at > self.now:
            return  # still waiting for dispatch: PAID

        order["shipped_at"] = ship_at
        self._ship(order_index, order, place, ship_at, promised, item_indexes)

    def _pick_products(self) -> list[Product]:
        lines = self.rng.choices((1, 2, 3), weights=(60, 30, 10), k=1)[0]
        chosen: list[Product] = []
        while len(chosen) < lines:
            product = self.rng.choices(PRODUCTS, weights=[p.weight for p in PRODUCTS], k=1)[0]
            if product not in chosen:
                chosen.append(product)
        return chosen

    # --- shipping and tracking -------------------------------------------------------------------

    def _ship(
        self,
        order_index: int,
        order: dict[str, Any],
        place: Place,
        ship_at: datetime,
        promised: date,
        item_indexes: list[int],
    ) -> None:
        rng, policy = self.rng, self.policy
        express = order["express"]
        carrier = rng.choice((Carrier.SF, Carrier.JD)) if express else _weighted(rng, CARRIER_WEIGHTS)
        transit = rules.delivery_business_days(place.province, place.city, express, policy)
        fate = rng.random()
        lost = fate < P_LOST
        delayed = not lost and fate < P_LOST + P_DELAYED
        ship_day = rules.local_date(ship_at, policy)
        if delayed:
            delivery_day = promised + timedelta(days=rng.randint(1, MAX_EXTRA_DELAY_DAYS))
        else:
            delivery_day = rules.add_business_days(ship_day, rng.randint(transit.min, transit.max), policy)
        delivered_at = max(self._local(delivery_day, rng.uniform(9, 20.5)), ship_at + timedelta(hours=10))

        shipment_index = len(self.rows.shipments)
        self.rows.shipments.append(
            {
                "order": order_index,
                "carrier": carrier,
                "tracking_number": self._tracking_number(carrier),
                "shipped_at": ship_at,
            }
        )
        events = self._events(
            carrier, place, order["district"], ship_at, delivered_at, promised, delayed=delayed, lost=lost
        )
        visible = [e for e in events if e["occurred_at"] <= self.now]
        for event in visible:
            event["shipment"] = shipment_index
        self.rows.events.extend(visible)

        # "Shipped" for the first day after pickup or until a scan elsewhere, then "in transit".
        just_shipped = self.now - ship_at < timedelta(hours=SHIPPED_STATE_HOURS) and not any(
            e["event_type"] is TrackingEventType.ARRIVED for e in visible
        )
        moving = OrderStatus.SHIPPED if just_shipped else OrderStatus.IN_TRANSIT
        if lost:
            exception_seen = any(e["event_type"] is TrackingEventType.EXCEPTION for e in visible)
            order["status"] = OrderStatus.LOST if exception_seen else moving
            if exception_seen and rng.random() < P_LOST_REFUNDED:
                reported = max(e["occurred_at"] for e in visible) + timedelta(hours=rng.uniform(2, 48))
                if reported <= self.now:
                    self._refund(
                        order_index,
                        None,
                        RefundKind.LOST_PARCEL,
                        order["total_cents"],
                        order["payment_method"],
                        reported,
                        approved_at=reported,
                    )
            return
        if delivered_at > self.now:
            if rules.is_delayed(OrderStatus.IN_TRANSIT, promised, self.now, policy):
                order["status"] = OrderStatus.DELAYED
                self._maybe_compensate(order_index, order, promised, self.now - timedelta(hours=rng.uniform(1, 20)))
            else:
                order["status"] = moving
            return
        order.update(status=OrderStatus.DELIVERED, delivered_at=delivered_at)
        self._maybe_compensate(order_index, order, promised, delivered_at + timedelta(hours=rng.uniform(1, 48)))
        self._after_sales(order_index, order, item_indexes)

    def _events(
        self,
        carrier: Carrier,
        place: Place,
        district: str,
        ship_at: datetime,
        delivered_at: datetime,
        promised: date,
        *,
        delayed: bool,
        lost: bool,
    ) -> list[dict[str, Any]]:
        """The planned scan history from pickup to signature (callers keep what happened by now)."""
        rng = self.rng
        info = self.policy.carriers[carrier]
        hub, city = place.hub, place.city
        origin = WAREHOUSE_FOR_HUB[hub]
        station_zh = f"{city}{district}营业点"
        station_en = f"{CITY_EN[city]} delivery station"
        # Strictly increasing by construction: the middle scans are sorted points between departure
        # from the warehouse and the courier's delivery round.
        span = delivered_at - ship_at
        departed = ship_at + min(timedelta(hours=rng.uniform(2, 6)), span * 0.1)
        out_for_delivery = delivered_at - min(timedelta(hours=rng.uniform(1, 4)), span * 0.05)
        at_hub, hub_left, at_station = sorted(self._between(departed, out_for_delivery) for _ in range(3))

        def ev(kind: TrackingEventType, at: datetime, where: str, zh: str, en: str) -> dict[str, Any]:
            return {"occurred_at": at, "event_type": kind, "city": where, "description_zh": zh, "description_en": en}

        next_zh = f"{hub}转运中心" if hub != origin else station_zh
        next_en = f"{CITY_EN[hub]} sorting centre" if hub != origin else station_en
        events = [
            ev(
                TrackingEventType.PICKED_UP,
                ship_at,
                origin,
                f"【{origin}市】{info.name_zh}已揽收",
                f"[{CITY_EN[origin]}] Picked up by {info.name_en}",
            ),
            ev(
                TrackingEventType.DEPARTED,
                departed,
                origin,
                f"快件已从【{origin}转运中心】发出，下一站【{next_zh}】",
                f"Departed {CITY_EN[origin]} sorting centre, next stop: {next_en}",
            ),
        ]
        if hub != origin:
            events.append(
                ev(
                    TrackingEventType.ARRIVED,
                    at_hub,
                    hub,
                    f"快件已到达【{hub}转运中心】",
                    f"Arrived at {CITY_EN[hub]} sorting centre",
                )
            )
        if lost:
            stuck_at = max(at_hub, departed + timedelta(hours=12)) + timedelta(days=rng.uniform(2, 4))
            where = hub
            events.append(
                ev(
                    TrackingEventType.EXCEPTION,
                    stuck_at,
                    where,
                    f"快件在【{where}转运中心】异常滞留，正在核实包裹状态",
                    f"Parcel held at {CITY_EN[where]} sorting centre with an exception; under investigation",
                )
            )
            return events
        if hub != city:
            events.append(
                ev(
                    TrackingEventType.DEPARTED,
                    hub_left,
                    hub,
                    f"快件已从【{hub}转运中心】发出，下一站【{station_zh}】",
                    f"Departed {CITY_EN[hub]} sorting centre, next stop: {station_en}",
                )
            )
        events.append(
            ev(TrackingEventType.ARRIVED, at_station, city, f"快件已到达【{station_zh}】", f"Arrived at {station_en}")
        )
        events.append(
            ev(
                TrackingEventType.OUT_FOR_DELIVERY,
                out_for_delivery,
                city,
                "快递员正在派送，请保持电话畅通",
                "Out for delivery, please keep your phone reachable",
            )
        )
        signed = rng.choice(SIGNED_BY_ZH)
        events.append(
            ev(
                TrackingEventType.DELIVERED,
                delivered_at,
                city,
                f"快件已签收（{signed}），感谢使用{info.name_zh}",
                f"Delivered ({SIGNED_BY_EN[signed]}). Thank you for using {info.name_en}",
            )
        )
        if delayed:
            # The carrier flags the delay on the evening of the promised day, wherever the parcel is.
            flagged = self._local(promised, 18 + rng.random())
            if not departed < flagged < out_for_delivery:
                flagged = self._between(departed, out_for_delivery)
            where = city if flagged >= at_station else hub
            cause_zh, cause_en = rng.choice(DELAY_CAUSES)
            events.append(
                ev(
                    TrackingEventType.EXCEPTION,
                    flagged,
                    where,
                    f"【{where}】{cause_zh}",
                    f"[{CITY_EN[where]}] {cause_en}",
                )
            )
            events.sort(key=lambda e: e["occurred_at"])
        return events

    # --- money and after-sales -------------------------------------------------------------------

    def _refund(
        self,
        order_index: int,
        return_index: int | None,
        kind: RefundKind,
        amount: int,
        method: PaymentMethod,
        created_at: datetime,
        *,
        approved_at: datetime | None,
    ) -> None:
        """A refund as it stands at ``now`` (pending, approved with expected arrival, or completed)."""
        row: dict[str, Any] = {
            "order": order_index,
            "return_request": return_index,
            "kind": kind,
            "amount_cents": amount,
            "method": method,
            "status": RefundStatus.PENDING,
            "created_at": created_at,
            "approved_at": None,
            "expected_arrival_at": None,
            "completed_at": None,
        }
        if approved_at is not None and approved_at <= self.now:
            window = rules.refund_arrival(approved_at, method, self.policy)
            completed_at = self._between(window.earliest + timedelta(minutes=10), window.latest)
            row.update(status=RefundStatus.APPROVED, approved_at=approved_at, expected_arrival_at=window.latest)
            if completed_at <= self.now:
                row.update(status=RefundStatus.COMPLETED, completed_at=completed_at)
        self.rows.refunds.append(row)

    def _maybe_compensate(self, order_index: int, order: dict[str, Any], promised: date, asked_at: datetime) -> None:
        late = rules.days_late(promised, order["delivered_at"], self.now, self.policy)
        offer = rules.delay_compensation(late, order["shipping_fee_cents"], self.policy)
        if offer is None or asked_at > self.now or self.rng.random() >= P_COUPON_TAKEN:
            return
        if offer.shipping_refund_cents is not None and self.rng.random() < P_SHIPPING_REFUND_CHOSEN:
            self._refund(
                order_index,
                None,
                RefundKind.SHIPPING_FEE,
                offer.shipping_refund_cents,
                order["payment_method"],
                asked_at,
                approved_at=asked_at,
            )
            return
        used = self.now - asked_at > timedelta(days=3) and self.rng.random() < P_COUPON_USED
        self.rows.coupons.append(
            {
                "code": self._coupon_code(),
                "customer": order["customer"],
                "order": order_index,
                "reason": CouponReason.DELAY_COMPENSATION,
                "amount_cents": offer.coupon_cents,
                "status": CouponStatus.USED if used else CouponStatus.ACTIVE,
                "issued_at": asked_at,
                "expires_at": rules.coupon_expires_at(asked_at, self.policy),
            }
        )

    def _after_sales(self, order_index: int, order: dict[str, Any], item_indexes: list[int]) -> None:
        rng = self.rng
        roll = rng.random()
        if roll < P_FULL_RETURN:
            finished = [self._return(order_index, order, i, False) for i in item_indexes]
            if finished and all(finished):
                order["status"] = OrderStatus.RETURNED
        elif roll < P_FULL_RETURN + P_PARTIAL_RETURN:
            self._return(order_index, order, rng.choice(item_indexes), False)
        elif roll < P_FULL_RETURN + P_PARTIAL_RETURN + P_REJECTED_RETURN:
            self._return(order_index, order, rng.choice(item_indexes), True)
        elif roll < P_FULL_RETURN + P_PARTIAL_RETURN + P_REJECTED_RETURN + P_EXCHANGE:
            self._exchange(order_index, order, rng.choice(item_indexes))

    def _return(self, order_index: int, order: dict[str, Any], item_index: int, rejected: bool) -> bool:
        """Create one return at the stage it reached by now; True when it ended refunded."""
        rng, policy = self.rng, self.policy
        item = self.rows.items[item_index]
        excluded = item["category"] in policy.returns.no_reason.excluded_categories
        reason = ReturnReason.QUALITY if excluded or rng.random() < 0.3 else ReturnReason.NO_REASON
        window = policy.returns.rule_for(reason).window_days
        delivered_at: datetime = order["delivered_at"]
        created_at = delivered_at + timedelta(days=rng.uniform(0.2, window * 0.8))
        if created_at > self.now:
            return False
        approved_at = created_at + timedelta(hours=rng.uniform(1, 12))
        received_at = approved_at + timedelta(days=rng.uniform(1, 3))
        review_days = rng.randint(policy.refunds.review_business_days.min, policy.refunds.review_business_days.max)
        refund_approved_at = datetime.combine(
            rules.add_business_days(rules.local_date(received_at, policy), review_days, policy),
            time(rng.randint(9, 17), rng.randint(0, 59)),
            tzinfo=self.tz,
        )
        status = ReturnStatus.REQUESTED
        if rejected:
            status = ReturnStatus.REJECTED if approved_at <= self.now else ReturnStatus.REQUESTED
        elif received_at <= self.now:
            status = ReturnStatus.RECEIVED
        elif approved_at <= self.now:
            status = ReturnStatus.APPROVED
        return_index = len(self.rows.returns)
        self.returns_per_order[order_index] += 1
        self.rows.returns.append(
            {
                "rma": f"RMA{order['number'][2:]}{self.returns_per_order[order_index]:02d}",
                "order": order_index,
                "item": item_index,
                "quantity": item["quantity"],
                "reason": reason,
                "status": status,
                "created_at": created_at,
                "received_at": received_at if status is ReturnStatus.RECEIVED else None,
                "customer_note": "商品有瑕疵，已拍照" if reason is ReturnReason.QUALITY else "不想要了，未拆吊牌",
            }
        )
        if status is not ReturnStatus.RECEIVED:
            return False
        amount = item["unit_price_cents"] * item["quantity"]
        self._refund(
            order_index,
            return_index,
            RefundKind.RETURN,
            amount,
            order["payment_method"],
            received_at,
            approved_at=refund_approved_at,
        )
        if self.rows.refunds[-1]["status"] is RefundStatus.COMPLETED:
            self.rows.returns[return_index]["status"] = ReturnStatus.REFUNDED
            return True
        return False

    def _exchange(self, order_index: int, order: dict[str, Any], item_index: int) -> None:
        rng = self.rng
        item = self.rows.items[item_index]
        reason = ReturnReason.QUALITY if rng.random() < 0.4 else ReturnReason.NO_REASON
        if item["category"] in self.policy.returns.rule_for(reason).excluded_categories:
            reason = ReturnReason.QUALITY
        created_at = order["delivered_at"] + timedelta(days=rng.uniform(0.2, 5))
        if created_at > self.now:
            return
        age = self.now - created_at
        status = (
            ExchangeStatus.REQUESTED
            if age < timedelta(hours=12)
            else ExchangeStatus.APPROVED
            if age < timedelta(days=3)
            else ExchangeStatus.SHIPPED
            if age < timedelta(days=6)
            else ExchangeStatus.COMPLETED
        )
        self.rows.exchanges.append(
            {
                "order": order_index,
                "item": item_index,
                "quantity": 1,
                "reason": reason,
                "requested_variant": rng.choice(("换大一码", "换小一码", "换成黑色", "换成白色", "换新同款")),
                "status": status,
                "created_at": created_at,
            }
        )


# --- loading -------------------------------------------------------------------------------------


def _with_ids(rows: list[dict[str, Any]], mapping: dict[str, tuple[str, list[int]]]) -> list[dict[str, Any]]:
    """Give rows ids 1..n (the tables are empty) and replace index keys by foreign keys.

    Explicit ids avoid an INSERT ... RETURNING round trip per batch; PostgreSQL sequences are
    moved past them afterwards (:func:`_advance_sequences`).
    """
    resolved = []
    for number, row in enumerate(rows, start=1):
        out = {k: v for k, v in row.items() if k not in mapping}
        out["id"] = number
        for key, (column, ids) in mapping.items():
            index = row[key]
            out[column] = ids[index] if index is not None else None
        resolved.append(out)
    return resolved


def _insert(session: Session, model: type[Any], rows: list[dict[str, Any]]) -> list[int]:
    """Core executemany insert; returns the ids in row order for children to reference."""
    if rows:
        session.execute(insert(model.__table__), rows)
    return [row["id"] for row in rows]


def _advance_sequences(session: Session, models: Sequence[type[Any]]) -> None:
    if session.get_bind().dialect.name != "postgresql":
        return  # SQLite picks max(rowid) + 1 by itself
    for model in models:
        highest = select(func.coalesce(func.max(model.id), 1)).scalar_subquery()
        session.execute(select(func.setval(func.pg_get_serial_sequence(model.__table__.name, "id"), highest)))


def is_empty(engine: Engine) -> bool:
    with Session(engine) as session:
        return not (
            session.scalar(select(func.count()).select_from(Order))
            or session.scalar(select(func.count()).select_from(Customer))
        )


def load_demo_data(
    engine: Engine, *, seed: int = 42, now: datetime | None = None, policy: StorePolicy | None = None
) -> DemoStats | None:
    """Migrate, then fill an empty database; returns None (and changes nothing) if data exists."""
    started = time_module.perf_counter()
    upgrade(engine)
    if not is_empty(engine):
        return None
    policy = policy or load_policy()
    moment = now or datetime.now(timezone.utc)
    if moment.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    generator = _Generator(seed, moment, policy)
    generator.build_customers()
    generator.build_orders()
    rows = generator.rows

    with Session(engine) as session, session.begin():
        customer_ids = _insert(session, Customer, _with_ids(rows.customers, {}))
        order_ids = _insert(session, Order, _with_ids(rows.orders, {"customer": ("customer_id", customer_ids)}))
        item_ids = _insert(session, OrderItem, _with_ids(rows.items, {"order": ("order_id", order_ids)}))
        shipment_ids = _insert(session, Shipment, _with_ids(rows.shipments, {"order": ("order_id", order_ids)}))
        _insert(session, TrackingEvent, _with_ids(rows.events, {"shipment": ("shipment_id", shipment_ids)}))
        return_ids = _insert(
            session,
            ReturnRequest,
            _with_ids(rows.returns, {"order": ("order_id", order_ids), "item": ("order_item_id", item_ids)}),
        )
        _insert(
            session,
            Refund,
            _with_ids(
                rows.refunds, {"order": ("order_id", order_ids), "return_request": ("return_request_id", return_ids)}
            ),
        )
        _insert(
            session,
            Exchange,
            _with_ids(rows.exchanges, {"order": ("order_id", order_ids), "item": ("order_item_id", item_ids)}),
        )
        _insert(
            session,
            Coupon,
            _with_ids(rows.coupons, {"customer": ("customer_id", customer_ids), "order": ("order_id", order_ids)}),
        )
        _advance_sequences(session, ALL_MODELS)

    by_status = Counter(str(o["status"]) for o in rows.orders)
    samples: dict[str, tuple[str, str]] = {}
    for order in rows.orders:
        samples.setdefault(str(order["status"]), (order["number"], order["recipient_phone"][-4:]))
    return DemoStats(
        customers=len(rows.customers),
        orders=len(rows.orders),
        by_status={s.value: by_status.get(s.value, 0) for s in OrderStatus},
        items=len(rows.items),
        shipments=len(rows.shipments),
        tracking_events=len(rows.events),
        return_requests=len(rows.returns),
        refunds=len(rows.refunds),
        exchanges=len(rows.exchanges),
        coupons=len(rows.coupons),
        seconds=time_module.perf_counter() - started,
        samples={s.value: samples[s.value] for s in OrderStatus if s.value in samples},
    )


def parse_today(value: str, policy: StorePolicy) -> datetime:
    """ "2026-11-22" -> noon of that day in the merchant's timezone; full ISO datetimes are kept."""
    if "T" in value or " " in value:
        moment = datetime.fromisoformat(value)
        return moment if moment.tzinfo else moment.replace(tzinfo=policy.tz)
    return datetime.combine(date.fromisoformat(value), time(12, 0), tzinfo=policy.tz)


EXAMPLE_STATUSES = ("in_transit", "delivered", "paid", "pending_payment")


def example_orders(engine: Engine, limit_per_status: int = 1) -> list[dict[str, str]]:
    """A few real orders of the database to try in the chat: number, status, the last 4 phone digits the bot asks
    for, and the customer's tier (one regular and one Gold/Platinum customer's order at least, when there are)."""
    wanted = [s for s in EXAMPLE_STATUSES if s in {o.value for o in OrderStatus}]
    out: list[dict[str, str]] = []
    with Session(engine) as session:
        for status in wanted:
            rows = session.execute(
                select(Order.number, Order.recipient_phone, Customer.tier)
                .join(Customer, Order.customer_id == Customer.id)
                .where(Order.status == OrderStatus(status))
                .order_by(Order.placed_at.desc()).limit(limit_per_status)
            ).all()
            out += [{"number": n, "status": status, "last4": phone[-4:], "tier": tier.value} for n, phone, tier in rows]
        vip = session.execute(
            select(Order.number, Order.recipient_phone, Customer.tier, Order.status)
            .join(Customer, Order.customer_id == Customer.id)
            .where(Customer.tier.in_([MembershipTier.GOLD, MembershipTier.PLATINUM]))
            .where(Order.status == OrderStatus.IN_TRANSIT)
            .order_by(Order.placed_at.desc()).limit(1)
        ).first()
        if vip is not None and vip[0] not in {o["number"] for o in out}:
            out.append({"number": vip[0], "status": vip[3].value, "last4": vip[1][-4:], "tier": vip[2].value})
    return out


def print_examples(engine: Engine) -> None:
    print("example orders to try in the chat (order number, then the last 4 digits of the phone when asked):")
    for o in example_orders(engine):
        print(f"    {o['number']}  {o['status']:<15} phone ...{o['last4']}  ({o['tier']} customer)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.demo_data", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--today", help="ISO date (noon, merchant time) or datetime; default: now")
    parser.add_argument("--url", help="database URL (default: DATABASE_URL or var/store.db)")
    parser.add_argument("--examples", action="store_true", help="only print a few orders to try in the chat")
    args = parser.parse_args(argv)

    settings = get_settings()
    policy = load_policy(settings.policy_path)
    now = parse_today(args.today, policy) if args.today else datetime.now(timezone.utc)
    engine = make_engine(args.url, settings)
    if args.examples:
        try:
            print_examples(engine)
        finally:
            engine.dispose()
        return 0
    try:
        stats = load_demo_data(engine, seed=args.seed, now=now, policy=policy)
    finally:
        engine.dispose()
    target = engine.url.render_as_string(hide_password=True)
    if stats is None:
        print(f"{target}: database already has data; nothing loaded")
        return 0
    print(
        f"{target}: loaded demo data (seed {args.seed}, today {now.astimezone(policy.tz):%Y-%m-%d %H:%M %Z}) "
        f"in {stats.seconds:.1f} s"
    )
    print(
        f"  customers {stats.customers}, orders {stats.orders}, items {stats.items}, shipments {stats.shipments}, "
        f"tracking events {stats.tracking_events}"
    )
    print(
        f"  return requests {stats.return_requests}, refunds {stats.refunds}, exchanges {stats.exchanges}, "
        f"coupons {stats.coupons}"
    )
    print("  orders per status:")
    for status, count in stats.by_status.items():
        number, last4 = stats.samples.get(status, ("-", "-"))
        print(f"    {status:<11} {count:>5}   e.g. {number} (phone ...{last4})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
