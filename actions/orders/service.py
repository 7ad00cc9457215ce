"""The order backend as the bot sees it: one interface, typed results, typed errors.

Two implementations exist: :class:`actions.orders.sql_service.SqlOrderService` (own database,
the demo store) and :class:`actions.orders.http_service.HttpOrderService` (a merchant's REST API,
docs/MERCHANT_API.md). Actions depend only on :class:`OrderService`.

Contract shared by both:
* order numbers are normalised/validated first (:class:`InvalidOrderNumber` for bad input);
* reads (get_order, tracking, refund_status, list) need no verification but return personal
  data masked; every state-changing call takes ``phone_last4`` and raises :class:`NotVerified`
  when it does not match the phone on the order;
* business refusals come back as results with ``outcome=Outcome.NOT_ALLOWED`` and a ``refusal``
  code; errors mean "no answer" (:class:`BackendUnavailable`, :class:`BackendTimeout`...).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime, timezone
from enum import StrEnum
from typing import Protocol, runtime_checkable

from actions.orders.enums import (
    Carrier,
    CouponReason,
    CouponStatus,
    ExchangeStatus,
    ItemCategory,
    MembershipTier,
    OrderStatus,
    PaymentMethod,
    RefundKind,
    RefundStatus,
    ReturnReason,
    ReturnStatus,
    TrackingEventType,
)
from actions.orders.errors import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    InvalidInput,
    InvalidOrderNumber,
    ItemNotFound,
    NotVerified,
    OrderNotFound,
    OrderServiceError,
)

__all__ = [
    "AddressInfo",
    "BackendError",
    "BackendTimeout",
    "BackendUnavailable",
    "CancelResult",
    "AddressChangeResult",
    "CompensationChoice",
    "CompensationResult",
    "CouponInfo",
    "ExchangeInfo",
    "ExchangeResult",
    "InvalidInput",
    "InvalidOrderNumber",
    "ItemNotFound",
    "LostParcelRefundResult",
    "NewAddress",
    "NotVerified",
    "OrderInfo",
    "OrderItemInfo",
    "OrderNotFound",
    "OrderService",
    "OrderServiceError",
    "OrderSummary",
    "Outcome",
    "RefundInfo",
    "RefundOverview",
    "ReturnInfo",
    "ReturnResult",
    "ReshipResult",
    "ShipmentInfo",
    "TrackingEventInfo",
    "TrackingInfo",
    "mask_address_line",
    "mask_name",
    "mask_phone",
    "utc_now",
    "change_key",
    "request_hash",
]

# Refusal codes (stable; actions pick responses by them). Return refusals live in rules.py.
ALREADY_SHIPPED = "already_shipped"
NOT_SHIPPED = "not_shipped"
NOT_DELAYED_ENOUGH = "not_delayed_enough"
LOST_PARCEL = "lost_parcel"
ORDER_CLOSED = "order_closed"
QUANTITY_EXCEEDED = "quantity_exceeded"
NO_SHIPPING_FEE = "no_shipping_fee_to_refund"
NOT_LOST = "not_lost"  # a reship is only for a parcel the carrier lost
# Lost parcel: reship or full refund, the customer's choice (one of them, once).
ALREADY_RESHIPPED = "already_reshipped"  # a refund asked after the parcel was sent again
ALREADY_REFUNDED = "already_refunded"  # a reship asked after the order was refunded in full
OPTION_NOT_OFFERED = "option_not_offered"  # the policy's lost_parcel_options do not list it
NOTHING_TO_REFUND = "nothing_to_refund"  # everything paid was already refunded


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Outcome(StrEnum):
    DONE = "done"
    NOT_ALLOWED = "not_allowed"
    ALREADY_DONE = "already_done"


class CompensationChoice(StrEnum):
    COUPON = "coupon"
    SHIPPING_REFUND = "shipping_refund"


# --- idempotency of changes ------------------------------------------------------------------------

IDEMPOTENCY_KEY_LENGTH = 32  # hex characters (docs/MERCHANT_API.md: Idempotency-Key)


def change_key(*parts: object) -> str:
    """Idempotency key of one requested change: a hash of what identifies it (e.g. conversation, question, order,
    kind, new values). Equal parts give the same key, so a resent request cannot be applied twice."""
    digest = hashlib.sha256(json.dumps([str(p) for p in parts], ensure_ascii=False).encode("utf-8"))
    return digest.hexdigest()[:IDEMPOTENCY_KEY_LENGTH]


def request_hash(*parts: object) -> str:
    """Fingerprint of a change's content, stored with its key: the same key for different content is refused."""
    return hashlib.sha256(json.dumps([str(p) for p in parts], ensure_ascii=False).encode("utf-8")).hexdigest()


# --- masking: reads never expose full personal data ----------------------------------------------


def mask_phone(phone: str) -> str:
    """ "13812345678" -> "138****5678"."""
    if len(phone) <= 7:
        return "*" * len(phone)
    return f"{phone[:3]}{'*' * (len(phone) - 7)}{phone[-4:]}"


def mask_name(name: str) -> str:
    """Keep the first character (the surname in Chinese names)."""
    return name[:1] + "*" * max(1, len(name) - 1) if name else name


def mask_address_line(line: str) -> str:
    """Keep the street part a customer recognises, hide the house number."""
    return line[:4] + "****" if len(line) > 4 else "****"


# --- results -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderItemInfo:
    sku: str
    name: str
    category: ItemCategory
    quantity: int
    unit_price_cents: int


@dataclass(frozen=True)
class AddressInfo:
    """Delivery address with the recipient, name/phone/street masked."""

    recipient_name: str
    phone: str
    province: str
    city: str
    district: str
    address_line: str


@dataclass(frozen=True)
class OrderInfo:
    """One order. ``status`` is effective: a parcel past its promised date reads DELAYED."""

    number: str
    status: OrderStatus
    customer_id: int
    membership_tier: MembershipTier
    payment_method: PaymentMethod
    subtotal_cents: int
    shipping_fee_cents: int
    total_cents: int
    express: bool
    is_presale: bool
    presale_ship_date: date | None
    placed_at: datetime
    paid_at: datetime | None
    shipped_at: datetime | None
    delivered_at: datetime | None
    cancelled_at: datetime | None
    promised_delivery_date: date | None
    days_late: int
    address: AddressInfo
    items: tuple[OrderItemInfo, ...]
    carrier: Carrier | None
    tracking_number: str | None


@dataclass(frozen=True)
class OrderSummary:
    number: str
    status: OrderStatus
    placed_at: datetime
    total_cents: int
    item_count: int
    promised_delivery_date: date | None


@dataclass(frozen=True)
class TrackingEventInfo:
    occurred_at: datetime
    event_type: TrackingEventType
    city: str
    description_zh: str
    description_en: str


@dataclass(frozen=True)
class ShipmentInfo:
    carrier: Carrier
    tracking_number: str
    shipped_at: datetime
    events: tuple[TrackingEventInfo, ...]  # oldest first


@dataclass(frozen=True)
class TrackingInfo:
    number: str
    status: OrderStatus
    promised_delivery_date: date | None
    days_late: int
    delayed: bool
    shipments: tuple[ShipmentInfo, ...]  # several when a lost parcel was re-shipped

    @property
    def latest_event(self) -> TrackingEventInfo | None:
        events = [e for s in self.shipments for e in s.events]
        return max(events, key=lambda e: e.occurred_at) if events else None


@dataclass(frozen=True)
class NewAddress:
    """Input of :meth:`OrderService.change_address` (full, unmasked values)."""

    recipient_name: str
    phone: str
    province: str
    city: str
    district: str
    address_line: str


@dataclass(frozen=True)
class RefundInfo:
    kind: RefundKind
    amount_cents: int
    method: PaymentMethod
    status: RefundStatus
    created_at: datetime
    approved_at: datetime | None
    expected_arrival_at: datetime | None
    completed_at: datetime | None
    rma: str | None


@dataclass(frozen=True)
class ReturnInfo:
    rma: str
    sku: str
    quantity: int
    reason: ReturnReason
    status: ReturnStatus
    created_at: datetime
    received_at: datetime | None
    review_deadline: date | None  # set once the warehouse has the parcel


@dataclass(frozen=True)
class RefundOverview:
    number: str
    refunds: tuple[RefundInfo, ...]
    returns: tuple[ReturnInfo, ...]


@dataclass(frozen=True)
class CancelResult:
    number: str
    outcome: Outcome
    refusal: str | None
    status: OrderStatus
    refund: RefundInfo | None


@dataclass(frozen=True)
class AddressChangeResult:
    number: str
    outcome: Outcome
    refusal: str | None
    status: OrderStatus
    address: AddressInfo
    promised_delivery_date: date | None


@dataclass(frozen=True)
class ReturnResult:
    number: str
    outcome: Outcome
    refusal: str | None
    deadline: date | None
    return_shipping_paid_by: str
    photos_required: bool
    return_request: ReturnInfo | None


@dataclass(frozen=True)
class ExchangeInfo:
    sku: str
    quantity: int
    reason: ReturnReason
    requested_variant: str | None
    status: ExchangeStatus
    created_at: datetime


@dataclass(frozen=True)
class ExchangeResult:
    number: str
    outcome: Outcome
    refusal: str | None
    deadline: date | None
    return_shipping_paid_by: str
    photos_required: bool
    exchange: ExchangeInfo | None


@dataclass(frozen=True)
class CouponInfo:
    code: str
    amount_cents: int
    reason: CouponReason
    status: CouponStatus
    issued_at: datetime
    expires_at: datetime | None


@dataclass(frozen=True)
class CompensationResult:
    """Outcome of a delay-compensation request; ``shipping_refund_offered_cents`` tells the bot to offer the choice."""

    number: str
    outcome: Outcome
    refusal: str | None
    days_late: int
    coupon: CouponInfo | None
    shipping_refund: RefundInfo | None
    shipping_refund_offered_cents: int | None


@dataclass(frozen=True)
class ReshipResult:
    """Outcome of re-shipping a lost parcel (``lost_parcel_options: reship``): the new shipment and promised date."""

    number: str
    outcome: Outcome
    refusal: str | None
    status: OrderStatus
    carrier: Carrier | None
    tracking_number: str | None
    promised_delivery_date: date | None


@dataclass(frozen=True)
class LostParcelRefundResult:
    """Outcome of refunding a lost parcel in full (``lost_parcel_options: full_refund``): the refund to the original
    payment method with its expected arrival (the policy's refund timing); the order stays ``lost``."""

    number: str
    outcome: Outcome
    refusal: str | None
    status: OrderStatus
    refund: RefundInfo | None


# --- the interface -------------------------------------------------------------------------------


@runtime_checkable
class OrderService(Protocol):
    """What actions may ask the order backend. All methods are synchronous and may block up to the timeout."""

    def get_order(self, number: str) -> OrderInfo:
        """Order details (masked personal data). Raises OrderNotFound, InvalidOrderNumber, BackendError."""
        ...

    def verify(self, number: str, phone_last4: str) -> bool:
        """True when the digits match the end of the phone on the order. Raises OrderNotFound."""
        ...

    def tracking(self, number: str) -> TrackingInfo:
        """Shipments and tracking events, oldest first."""
        ...

    def cancel_order(self, number: str, *, phone_last4: str, idempotency_key: str | None = None) -> CancelResult:
        """Cancel before shipping; a paid order gets a refund to the original method.

        ``idempotency_key`` names this requested change (see :func:`change_key`): sent again with the same key, the
        change is not applied twice and the first request's result comes back (its real outcome, even when the
        first call timed out on the caller's side and committed later)."""
        ...

    def change_address(
        self, number: str, address: NewAddress, *, phone_last4: str, idempotency_key: str | None = None
    ) -> AddressChangeResult:
        """Change recipient/address before shipping; the promised date is recomputed. ``idempotency_key``: as
        for :meth:`cancel_order` (a key reused for a different address raises InvalidInput)."""
        ...

    def create_return(
        self,
        number: str,
        sku: str,
        reason: ReturnReason,
        *,
        phone_last4: str,
        quantity: int = 1,
        note: str | None = None,
    ) -> ReturnResult:
        """Open a return (RMA) when the policy allows it."""
        ...

    def create_exchange(
        self,
        number: str,
        sku: str,
        reason: ReturnReason,
        *,
        phone_last4: str,
        quantity: int = 1,
        requested_variant: str | None = None,
    ) -> ExchangeResult:
        """Open an exchange under the same windows as returns."""
        ...

    def refund_status(self, number: str) -> RefundOverview:
        """Refunds with expected arrival, plus returns that have not been refunded yet."""
        ...

    def issue_delay_coupon(
        self, number: str, *, phone_last4: str, choice: CompensationChoice = CompensationChoice.COUPON
    ) -> CompensationResult:
        """Compensate a late delivery per policy tiers; idempotent (one compensation per order)."""
        ...

    def reship_lost_parcel(self, number: str, *, phone_last4: str, idempotency_key: str | None = None
                           ) -> ReshipResult:
        """Send a lost parcel again (the policy's ``lost_parcel_options``): a new shipment with the same carrier, the
        order back to shipped, a promised date counted from now. Only for an order whose status is lost (otherwise
        ``NOT_ALLOWED``/``not_lost``); once re-shipped, asked again it reports ``ALREADY_DONE``. ``idempotency_key``:
        as for :meth:`cancel_order`."""
        ...

    def refund_lost_parcel(self, number: str, *, phone_last4: str, idempotency_key: str | None = None
                           ) -> LostParcelRefundResult:
        """Refund a lost parcel in full (the policy's ``lost_parcel_options``): what was paid and not yet refunded, to
        the original payment method, approved now. Only for an order whose status is lost and not re-shipped
        (``NOT_ALLOWED``: ``not_lost``, ``already_reshipped``, ``option_not_offered``, ``nothing_to_refund``); asked
        again it reports ``ALREADY_DONE`` with the refund. After it a reship is refused (``already_refunded``).
        ``idempotency_key``: as for :meth:`cancel_order`."""
        ...

    def list_orders_for_customer(self, customer_id: int, *, limit: int = 10) -> list[OrderSummary]:
        """The customer's most recent orders, newest first."""
        ...

    def close(self) -> None:
        """Release connections/pools; called once at shutdown."""
        ...
