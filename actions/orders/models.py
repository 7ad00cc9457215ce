"""SQLAlchemy 2.0 typed ORM of the demo order backend.

Conventions (why): money is stored as integer fen (``*_cents``) because SQLite has no exact decimal
type; times are stored in UTC and always come back timezone-aware (``UtcDateTime``) so SQLite and
PostgreSQL behave the same; enums are stored as their string values with named CHECK constraints
instead of native PostgreSQL enum types, which keeps migrations simple when a merchant adds a value.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from enum import Enum
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy import Enum as SqlEnum
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

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

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as UTC; returns aware UTC datetimes on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UtcDateTime column; pass an aware datetime")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:  # SQLite drops the offset; we only ever store UTC
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def str_enum(enum_cls: type[Enum], name: str) -> SqlEnum:
    """Portable enum column type: VARCHAR + named CHECK constraint, values (not member names) stored."""
    return SqlEnum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=max(len(str(m.value)) for m in enum_cls) + 8,
        values_callable=lambda cls: [str(m.value) for m in cls],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: dict[Any, Any] = {datetime: UtcDateTime(), date: Date()}


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    phone: Mapped[str] = mapped_column(String(20), unique=True)
    tier: Mapped[MembershipTier] = mapped_column(str_enum(MembershipTier, "membership_tier"))
    created_at: Mapped[datetime]

    orders: Mapped[list[Order]] = relationship(back_populates="customer")
    coupons: Mapped[list[Coupon]] = relationship(back_populates="customer")


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint("subtotal_cents >= 0", name="subtotal_non_negative"),
        CheckConstraint("shipping_fee_cents >= 0", name="shipping_fee_non_negative"),
        CheckConstraint("total_cents >= 0", name="total_non_negative"),
        Index("ix_orders_customer_placed", "customer_id", "placed_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(16), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="RESTRICT"))
    status: Mapped[OrderStatus] = mapped_column(str_enum(OrderStatus, "order_status"), index=True)
    payment_method: Mapped[PaymentMethod] = mapped_column(str_enum(PaymentMethod, "payment_method"))
    subtotal_cents: Mapped[int]
    shipping_fee_cents: Mapped[int]
    total_cents: Mapped[int]
    express: Mapped[bool] = mapped_column(default=False)
    recipient_name: Mapped[str] = mapped_column(String(64))
    recipient_phone: Mapped[str] = mapped_column(String(20))
    province: Mapped[str] = mapped_column(String(32))
    city: Mapped[str] = mapped_column(String(32))
    district: Mapped[str] = mapped_column(String(32))
    address_line: Mapped[str] = mapped_column(String(200))
    placed_at: Mapped[datetime]
    paid_at: Mapped[datetime | None]
    shipped_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    promised_delivery_date: Mapped[date | None]
    is_presale: Mapped[bool] = mapped_column(default=False)
    presale_ship_date: Mapped[date | None]

    customer: Mapped[Customer] = relationship(back_populates="orders")
    items: Mapped[list[OrderItem]] = relationship(
        back_populates="order", cascade="all, delete-orphan", order_by="OrderItem.id"
    )
    shipments: Mapped[list[Shipment]] = relationship(
        back_populates="order", cascade="all, delete-orphan", order_by="Shipment.id"
    )
    return_requests: Mapped[list[ReturnRequest]] = relationship(
        back_populates="order", cascade="all, delete-orphan", order_by="ReturnRequest.id"
    )
    refunds: Mapped[list[Refund]] = relationship(
        back_populates="order", cascade="all, delete-orphan", order_by="Refund.id"
    )
    exchanges: Mapped[list[Exchange]] = relationship(
        back_populates="order", cascade="all, delete-orphan", order_by="Exchange.id"
    )
    coupons: Mapped[list[Coupon]] = relationship(back_populates="order", order_by="Coupon.id")


class OrderItem(Base):
    __tablename__ = "order_items"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("unit_price_cents >= 0", name="unit_price_non_negative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    sku: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(128))
    category: Mapped[ItemCategory] = mapped_column(str_enum(ItemCategory, "item_category"))
    quantity: Mapped[int]
    unit_price_cents: Mapped[int]

    order: Mapped[Order] = relationship(back_populates="items")


class Shipment(Base):
    __tablename__ = "shipments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    carrier: Mapped[Carrier] = mapped_column(str_enum(Carrier, "carrier"))
    tracking_number: Mapped[str] = mapped_column(String(32), unique=True)
    shipped_at: Mapped[datetime]

    order: Mapped[Order] = relationship(back_populates="shipments")
    events: Mapped[list[TrackingEvent]] = relationship(
        back_populates="shipment",
        cascade="all, delete-orphan",
        order_by="(TrackingEvent.occurred_at, TrackingEvent.id)",
    )


class TrackingEvent(Base):
    __tablename__ = "tracking_events"
    __table_args__ = (Index("ix_tracking_events_shipment_time", "shipment_id", "occurred_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id", ondelete="CASCADE"))
    occurred_at: Mapped[datetime]
    event_type: Mapped[TrackingEventType] = mapped_column(str_enum(TrackingEventType, "tracking_event_type"))
    city: Mapped[str] = mapped_column(String(32))
    description_zh: Mapped[str] = mapped_column(Text)
    description_en: Mapped[str] = mapped_column(Text)

    shipment: Mapped[Shipment] = relationship(back_populates="events")


class ReturnRequest(Base):
    __tablename__ = "return_requests"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rma: Mapped[str] = mapped_column(String(32), unique=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    order_item_id: Mapped[int] = mapped_column(ForeignKey("order_items.id", ondelete="CASCADE"))
    quantity: Mapped[int]
    reason: Mapped[ReturnReason] = mapped_column(str_enum(ReturnReason, "return_reason"))
    status: Mapped[ReturnStatus] = mapped_column(str_enum(ReturnStatus, "return_status"))
    created_at: Mapped[datetime]
    received_at: Mapped[datetime | None]
    customer_note: Mapped[str | None] = mapped_column(Text)

    order: Mapped[Order] = relationship(back_populates="return_requests")
    item: Mapped[OrderItem] = relationship()
    refunds: Mapped[list[Refund]] = relationship(back_populates="return_request")


class Refund(Base):
    __tablename__ = "refunds"
    __table_args__ = (CheckConstraint("amount_cents > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    return_request_id: Mapped[int | None] = mapped_column(ForeignKey("return_requests.id", ondelete="SET NULL"))
    kind: Mapped[RefundKind] = mapped_column(str_enum(RefundKind, "refund_kind"))
    amount_cents: Mapped[int]
    method: Mapped[PaymentMethod] = mapped_column(str_enum(PaymentMethod, "refund_method"))
    status: Mapped[RefundStatus] = mapped_column(str_enum(RefundStatus, "refund_status"))
    created_at: Mapped[datetime]
    approved_at: Mapped[datetime | None]
    expected_arrival_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]

    order: Mapped[Order] = relationship(back_populates="refunds")
    return_request: Mapped[ReturnRequest | None] = relationship(back_populates="refunds")


class Exchange(Base):
    __tablename__ = "exchanges"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    order_item_id: Mapped[int] = mapped_column(ForeignKey("order_items.id", ondelete="CASCADE"))
    quantity: Mapped[int]
    reason: Mapped[ReturnReason] = mapped_column(str_enum(ReturnReason, "exchange_reason"))
    requested_variant: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[ExchangeStatus] = mapped_column(str_enum(ExchangeStatus, "exchange_status"))
    created_at: Mapped[datetime]

    order: Mapped[Order] = relationship(back_populates="exchanges")
    item: Mapped[OrderItem] = relationship()


class Coupon(Base):
    __tablename__ = "coupons"
    __table_args__ = (
        # One compensation coupon per order and reason: makes issuing idempotent under retries.
        UniqueConstraint("order_id", "reason", name="uq_coupons_order_reason"),
        CheckConstraint("amount_cents > 0", name="amount_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id", ondelete="SET NULL"))
    reason: Mapped[CouponReason] = mapped_column(str_enum(CouponReason, "coupon_reason"))
    amount_cents: Mapped[int]
    status: Mapped[CouponStatus] = mapped_column(str_enum(CouponStatus, "coupon_status"))
    issued_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]

    customer: Mapped[Customer] = relationship(back_populates="coupons")
    order: Mapped[Order | None] = relationship(back_populates="coupons")


class OrderChange(Base):
    """One requested change (cancel, address) by its idempotency key, stored in the change's own transaction.

    A request that timed out on the caller's side may still commit: sent again with the same key it is not applied
    a second time, and the stored result is its real outcome."""

    __tablename__ = "order_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    request_hash: Mapped[str] = mapped_column(String(64))
    result: Mapped[str] = mapped_column(Text)  # the result as JSON (docs/MERCHANT_API.md)
    created_at: Mapped[datetime]
