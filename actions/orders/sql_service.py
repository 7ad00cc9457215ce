"""OrderService over the store's own database (SQLAlchemy; SQLite or PostgreSQL)."""

from __future__ import annotations

import hmac
import json
import logging
import re
import secrets
import string
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, TypeVar

from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, joinedload, selectinload, sessionmaker

from actions.orders import rules
from actions.orders.db import make_engine, make_session_factory
from actions.orders.enums import (
    OPEN_RETURN_STATUSES,
    Carrier,
    CouponReason,
    CouponStatus,
    ExchangeStatus,
    OrderStatus,
    RefundKind,
    RefundStatus,
    ReturnReason,
    ReturnStatus,
    TrackingEventType,
)
from actions.orders.errors import (
    BackendTimeout,
    BackendUnavailable,
    InvalidInput,
    ItemNotFound,
    NotVerified,
    OrderNotFound,
)
from actions.orders.models import (
    Coupon,
    Exchange,
    Order,
    OrderChange,
    OrderItem,
    Refund,
    ReturnRequest,
    Shipment,
    TrackingEvent,
)
from actions.orders.policy import StorePolicy, load_policy
from actions.orders.service import (
    ALREADY_REFUNDED,
    ALREADY_RESHIPPED,
    ALREADY_SHIPPED,
    LOST_PARCEL,
    NO_SHIPPING_FEE,
    NOT_DELAYED_ENOUGH,
    NOT_LOST,
    NOTHING_TO_REFUND,
    OPTION_NOT_OFFERED,
    ORDER_CLOSED,
    QUANTITY_EXCEEDED,
    AddressChangeResult,
    AddressInfo,
    CancelResult,
    CompensationChoice,
    CompensationResult,
    CouponInfo,
    ExchangeInfo,
    ExchangeResult,
    LostParcelRefundResult,
    NewAddress,
    OrderInfo,
    OrderItemInfo,
    OrderSummary,
    Outcome,
    RefundInfo,
    RefundOverview,
    ReshipResult,
    ReturnInfo,
    ReturnResult,
    ShipmentInfo,
    TrackingEventInfo,
    TrackingInfo,
    mask_address_line,
    mask_name,
    mask_phone,
    request_hash,
    utc_now,
)
from actions.orders.validation import normalise_order_number, normalise_phone, normalise_phone_digits, unsafe_reason
from actions.orders.wire import from_wire, to_wire
from actions.settings import ActionServerSettings

logger = logging.getLogger(__name__)

MAX_LIST_LIMIT = 50
SHIPPING_REFUND_NOT_OFFERED = "shipping_refund_not_offered"
COUPON_CODE_PREFIX = "CP"
COUPON_CODE_ALPHABET = "".join(c for c in string.ascii_uppercase + string.digits if c not in "O0I1")
COUPON_CODE_LENGTH = 10
_CLOSED_STATUSES = frozenset({OrderStatus.CANCELLED, OrderStatus.RETURNED})
_POSTGRES_QUERY_CANCELED = "57014"  # SQLSTATE raised when statement_timeout fires
_KEY_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
CHANGE_CANCEL = "cancel"
CHANGE_ADDRESS = "address"
CHANGE_RESHIP = "reship"
CHANGE_LOST_REFUND = "lost_refund"
# New tracking numbers of a reship, per carrier: (prefix, digits); checked against the policy's tracking_pattern.
_TRACKING_SHAPE = {Carrier.SF: ("SF", 12), Carrier.JD: ("JD", 13), Carrier.ZTO: ("75", 12)}
T = TypeVar("T")


def new_coupon_code() -> str:
    """Unguessable code: coupons are money."""
    return COUPON_CODE_PREFIX + "".join(secrets.choice(COUPON_CODE_ALPHABET) for _ in range(COUPON_CODE_LENGTH))


def new_tracking_number(carrier: Carrier, policy: StorePolicy) -> str:
    """A fresh tracking number in the carrier's format (the policy's pattern), for a re-shipped parcel."""
    prefix, digits = _TRACKING_SHAPE[carrier]
    number = prefix + "".join(secrets.choice(string.digits) for _ in range(digits))
    if not re.fullmatch(policy.carriers[carrier].tracking_pattern, number):
        raise BackendUnavailable(f"cannot make a tracking number for {carrier.value}")
    return number


def _clean_field(value: str, field: str, max_length: int | None) -> str:
    """Free-text fields (names, streets) may contain ';' or quotes legitimately, but never markup."""
    text = value.strip()
    if not text:
        raise InvalidInput(field, "empty")
    if max_length is not None and len(text) > max_length:
        raise InvalidInput(field, "too_long")
    if unsafe_reason(text) == "markup" or any(ord(ch) < 32 for ch in text):
        raise InvalidInput(field, "markup")
    return text


def _column_length(name: str) -> int | None:
    return getattr(Order.__table__.c[name].type, "length", None)


class SqlOrderService:
    """Reads and writes the order tables; every public call is one short transaction."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        policy: StorePolicy,
        clock: Callable[[], datetime] = utc_now,
        *,
        owned_engine: Engine | None = None,
    ) -> None:
        self._session_factory = session_factory
        self._policy = policy
        self._clock = clock
        self._owned_engine = owned_engine

    @classmethod
    def from_settings(cls, settings: ActionServerSettings) -> SqlOrderService:
        """Build from deployment settings; :meth:`close` disposes the engine created here."""
        engine = make_engine(settings=settings)
        return cls(make_session_factory(engine), load_policy(settings.policy_path), owned_engine=engine)

    def close(self) -> None:
        if self._owned_engine is not None:
            self._owned_engine.dispose()

    # --- plumbing --------------------------------------------------------------------------------

    @contextmanager
    def _session(self, *, pass_integrity_errors: bool = False) -> Iterator[Session]:
        """One transaction; database failures become typed backend errors.

        Args:
            pass_integrity_errors: let unique-constraint violations through for callers that resolve
                races themselves (delay compensation); elsewhere a conflicting concurrent write is
                reported as unavailable so the customer can simply retry.
        """
        try:
            with self._session_factory() as session, session.begin():
                yield session
        except IntegrityError as exc:
            if pass_integrity_errors:
                raise
            raise BackendUnavailable("conflicting concurrent change, retry") from exc
        except PoolTimeoutError as exc:
            raise BackendTimeout("database connection pool exhausted") from exc
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) == _POSTGRES_QUERY_CANCELED:
                raise BackendTimeout("database statement timed out") from exc
            logger.warning("order database error: %s", exc.__class__.__name__, exc_info=True)
            raise BackendUnavailable("order database unavailable") from exc

    def _load(self, session: Session, number: str, *, for_update: bool = False) -> Order:
        canonical = normalise_order_number(number, self._policy)
        query = (
            select(Order)
            .where(Order.number == canonical)
            .options(
                joinedload(Order.customer),
                selectinload(Order.items),
                selectinload(Order.shipments).selectinload(Shipment.events),
                selectinload(Order.return_requests).joinedload(ReturnRequest.item),
                selectinload(Order.refunds).joinedload(Refund.return_request),
                selectinload(Order.exchanges).joinedload(Exchange.item),
                selectinload(Order.coupons),
            )
        )
        if for_update:
            query = query.with_for_update(of=Order)
        order = session.scalars(query).unique().one_or_none()
        if order is None:
            raise OrderNotFound(canonical)
        return order

    def _now(self) -> datetime:
        return self._clock().astimezone(timezone.utc)

    def _phone_matches(self, order: Order, phone_last4: str) -> bool:
        digits = normalise_phone_digits(phone_last4, self._policy)
        return hmac.compare_digest(order.recipient_phone[-len(digits) :], digits)

    def _require_verified(self, order: Order, phone_last4: str) -> None:
        try:
            ok = self._phone_matches(order, phone_last4)
        except InvalidInput as exc:
            raise NotVerified(order.number) from exc
        if not ok:
            raise NotVerified(order.number)

    def _effective_status(self, order: Order, now: datetime) -> OrderStatus:
        if rules.is_delayed(order.status, order.promised_delivery_date, now, self._policy):
            return OrderStatus.DELAYED
        return order.status

    # --- converters ------------------------------------------------------------------------------

    @staticmethod
    def _address(order: Order) -> AddressInfo:
        return AddressInfo(
            recipient_name=mask_name(order.recipient_name),
            phone=mask_phone(order.recipient_phone),
            province=order.province,
            city=order.city,
            district=order.district,
            address_line=mask_address_line(order.address_line),
        )

    def _order_info(self, order: Order, now: datetime) -> OrderInfo:
        latest = order.shipments[-1] if order.shipments else None
        return OrderInfo(
            number=order.number,
            status=self._effective_status(order, now),
            customer_id=order.customer_id,
            membership_tier=order.customer.tier,
            payment_method=order.payment_method,
            subtotal_cents=order.subtotal_cents,
            shipping_fee_cents=order.shipping_fee_cents,
            total_cents=order.total_cents,
            express=order.express,
            is_presale=order.is_presale,
            presale_ship_date=order.presale_ship_date,
            placed_at=order.placed_at,
            paid_at=order.paid_at,
            shipped_at=order.shipped_at,
            delivered_at=order.delivered_at,
            cancelled_at=order.cancelled_at,
            promised_delivery_date=order.promised_delivery_date,
            days_late=self._days_late(order, now),
            address=self._address(order),
            items=tuple(OrderItemInfo(i.sku, i.name, i.category, i.quantity, i.unit_price_cents) for i in order.items),
            carrier=latest.carrier if latest else None,
            tracking_number=latest.tracking_number if latest else None,
        )

    def _days_late(self, order: Order, now: datetime) -> int:
        if order.status in {OrderStatus.UNPAID, OrderStatus.CANCELLED}:
            return 0
        return rules.days_late(order.promised_delivery_date, order.delivered_at, now, self._policy)

    @staticmethod
    def _refund_info(refund: Refund) -> RefundInfo:
        return RefundInfo(
            kind=refund.kind,
            amount_cents=refund.amount_cents,
            method=refund.method,
            status=refund.status,
            created_at=refund.created_at,
            approved_at=refund.approved_at,
            expected_arrival_at=refund.expected_arrival_at,
            completed_at=refund.completed_at,
            rma=refund.return_request.rma if refund.return_request else None,
        )

    def _return_info(self, request: ReturnRequest) -> ReturnInfo:
        review = rules.refund_review_deadline(request.received_at, self._policy) if request.received_at else None
        return ReturnInfo(
            rma=request.rma,
            sku=request.item.sku,
            quantity=request.quantity,
            reason=request.reason,
            status=request.status,
            created_at=request.created_at,
            received_at=request.received_at,
            review_deadline=review,
        )

    @staticmethod
    def _exchange_info(exchange: Exchange) -> ExchangeInfo:
        return ExchangeInfo(
            sku=exchange.item.sku,
            quantity=exchange.quantity,
            reason=exchange.reason,
            requested_variant=exchange.requested_variant,
            status=exchange.status,
            created_at=exchange.created_at,
        )

    @staticmethod
    def _coupon_info(coupon: Coupon) -> CouponInfo:
        return CouponInfo(
            code=coupon.code,
            amount_cents=coupon.amount_cents,
            reason=coupon.reason,
            status=coupon.status,
            issued_at=coupon.issued_at,
            expires_at=coupon.expires_at,
        )

    def _new_refund(self, order: Order, kind: RefundKind, amount_cents: int, now: datetime) -> Refund:
        """A refund approved now, to the original payment method, with its policy arrival time."""
        arrival = rules.refund_arrival(now, order.payment_method, self._policy)
        refund = Refund(
            kind=kind,
            amount_cents=amount_cents,
            method=order.payment_method,
            status=RefundStatus.APPROVED,
            created_at=now,
            approved_at=now,
            expected_arrival_at=arrival.latest,
        )
        order.refunds.append(refund)
        return refund

    @staticmethod
    def _find_item(order: Order, sku: str) -> OrderItem:
        wanted = sku.strip().upper()
        reason = unsafe_reason(wanted)
        if not wanted or reason:
            raise InvalidInput("sku", reason or "empty")
        for item in order.items:
            if item.sku.upper() == wanted:
                return item
        raise ItemNotFound(order.number, wanted)

    # --- reads -----------------------------------------------------------------------------------

    def get_order(self, number: str) -> OrderInfo:
        with self._session() as session:
            return self._order_info(self._load(session, number), self._now())

    def verify(self, number: str, phone_last4: str) -> bool:
        with self._session() as session:
            order = self._load(session, number)
            try:
                return self._phone_matches(order, phone_last4)
            except InvalidInput:
                return False

    def tracking(self, number: str) -> TrackingInfo:
        now = self._now()
        with self._session() as session:
            order = self._load(session, number)
            status = self._effective_status(order, now)
            return TrackingInfo(
                number=order.number,
                status=status,
                promised_delivery_date=order.promised_delivery_date,
                days_late=self._days_late(order, now),
                delayed=status is OrderStatus.DELAYED,
                shipments=tuple(
                    ShipmentInfo(
                        carrier=s.carrier,
                        tracking_number=s.tracking_number,
                        shipped_at=s.shipped_at,
                        events=tuple(
                            TrackingEventInfo(e.occurred_at, e.event_type, e.city, e.description_zh, e.description_en)
                            for e in s.events
                        ),
                    )
                    for s in order.shipments
                ),
            )

    def refund_status(self, number: str) -> RefundOverview:
        with self._session() as session:
            order = self._load(session, number)
            return RefundOverview(
                number=order.number,
                refunds=tuple(self._refund_info(r) for r in order.refunds),
                returns=tuple(self._return_info(r) for r in order.return_requests if r.status in OPEN_RETURN_STATUSES),
            )

    def list_orders_for_customer(self, customer_id: int, *, limit: int = 10) -> list[OrderSummary]:
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise InvalidInput("limit", "out_of_range")
        now = self._now()
        with self._session() as session:
            orders = session.scalars(
                select(Order)
                .where(Order.customer_id == customer_id)
                .order_by(Order.placed_at.desc(), Order.id.desc())
                .limit(limit)
                .options(selectinload(Order.items))
            ).all()
            return [
                OrderSummary(
                    number=o.number,
                    status=self._effective_status(o, now),
                    placed_at=o.placed_at,
                    total_cents=o.total_cents,
                    item_count=sum(i.quantity for i in o.items),
                    promised_delivery_date=o.promised_delivery_date,
                )
                for o in orders
            ]

    # --- changes ---------------------------------------------------------------------------------

    def _refusal_for_change(self, order: Order) -> str:
        return ORDER_CLOSED if order.status in _CLOSED_STATUSES else ALREADY_SHIPPED

    # Idempotency (issue 12): a change sent again with the same key is answered from its record, written in the
    # change's own transaction, so a timed-out request that committed later is neither lost nor applied twice.

    def _once(self, run: Callable[[], T], key: str | None) -> T:
        if key is None:
            return run()
        if not _KEY_RE.fullmatch(key):
            raise InvalidInput("idempotency_key", "format")
        try:
            return run()
        except IntegrityError:
            # A concurrent request with the same key committed first (unique key): the second pass replays it.
            try:
                return run()
            except IntegrityError as exc:
                raise BackendUnavailable("could not record the change") from exc

    def _replayed(
        self, session: Session, key: str | None, order: Order, kind: str, fingerprint: str, tp: type[T],
        phone_last4: str,
    ) -> T | None:
        """The recorded result of this very request (same key, order, kind, content and digits), else None after
        the usual verification. The digits are part of the fingerprint: they were checked when the change was
        made, and a replay must work even when that change replaced the phone they came from."""
        change = None
        if key is not None:
            change = session.scalars(select(OrderChange).where(OrderChange.key == key)).one_or_none()
        if change is not None and change.order_id == order.id and change.kind == kind and hmac.compare_digest(
            change.request_hash, fingerprint
        ):
            return from_wire(tp, json.loads(change.result))
        self._require_verified(order, phone_last4)
        if change is not None:
            raise InvalidInput("idempotency_key", "reused")
        return None

    @staticmethod
    def _record(
        session: Session, key: str | None, order: Order, kind: str, fingerprint: str, result: Any, now: datetime
    ) -> None:
        if key is None:
            return
        session.add(
            OrderChange(
                key=key,
                order_id=order.id,
                kind=kind,
                request_hash=fingerprint,
                result=json.dumps(to_wire(result), ensure_ascii=False),
                created_at=now,
            )
        )
        session.flush()

    def cancel_order(self, number: str, *, phone_last4: str, idempotency_key: str | None = None) -> CancelResult:
        return self._once(lambda: self._cancel(number, phone_last4, idempotency_key), idempotency_key)

    def _cancel(self, number: str, phone_last4: str, key: str | None) -> CancelResult:
        now = self._now()
        fingerprint = request_hash(CHANGE_CANCEL, phone_last4)
        with self._session(pass_integrity_errors=key is not None) as session:
            order = self._load(session, number, for_update=True)
            replay = self._replayed(session, key, order, CHANGE_CANCEL, fingerprint, CancelResult, phone_last4)
            if replay is not None:
                return replay
            result = self._apply_cancel(session, order, now)
            self._record(session, key, order, CHANGE_CANCEL, fingerprint, result, now)
            return result

    def _apply_cancel(self, session: Session, order: Order, now: datetime) -> CancelResult:
        if order.status is OrderStatus.CANCELLED:
            previous = next((r for r in order.refunds if r.kind is RefundKind.CANCELLATION), None)
            return CancelResult(
                order.number,
                Outcome.ALREADY_DONE,
                None,
                order.status,
                self._refund_info(previous) if previous else None,
            )
        if not rules.can_change_before_shipping(order.status, self._policy):
            return CancelResult(
                order.number,
                Outcome.NOT_ALLOWED,
                self._refusal_for_change(order),
                self._effective_status(order, now),
                None,
            )
        order.status = OrderStatus.CANCELLED
        order.cancelled_at = now
        refund = None
        if order.paid_at is not None and order.total_cents > 0:
            refund = self._new_refund(order, RefundKind.CANCELLATION, order.total_cents, now)
        session.flush()
        return CancelResult(
            order.number, Outcome.DONE, None, order.status, self._refund_info(refund) if refund else None
        )

    def change_address(
        self, number: str, address: NewAddress, *, phone_last4: str, idempotency_key: str | None = None
    ) -> AddressChangeResult:
        fields = {
            "recipient_name": _clean_field(address.recipient_name, "recipient_name", _column_length("recipient_name")),
            "province": _clean_field(address.province, "province", _column_length("province")),
            "city": _clean_field(address.city, "city", _column_length("city")),
            "district": _clean_field(address.district, "district", _column_length("district")),
            "address_line": _clean_field(address.address_line, "address_line", _column_length("address_line")),
            "recipient_phone": normalise_phone(address.phone, self._policy),
        }
        return self._once(lambda: self._change_address(number, fields, phone_last4, idempotency_key), idempotency_key)

    def _change_address(
        self, number: str, fields: dict[str, str], phone_last4: str, key: str | None
    ) -> AddressChangeResult:
        now = self._now()
        fingerprint = request_hash(CHANGE_ADDRESS, phone_last4, *(f"{k}={fields[k]}" for k in sorted(fields)))
        with self._session(pass_integrity_errors=key is not None) as session:
            order = self._load(session, number, for_update=True)
            replay = self._replayed(
                session, key, order, CHANGE_ADDRESS, fingerprint, AddressChangeResult, phone_last4
            )
            if replay is not None:
                return replay
            if not rules.can_change_before_shipping(order.status, self._policy):
                result = AddressChangeResult(
                    order.number,
                    Outcome.NOT_ALLOWED,
                    self._refusal_for_change(order),
                    self._effective_status(order, now),
                    self._address(order),
                    order.promised_delivery_date,
                )
            else:
                for name, value in fields.items():
                    setattr(order, name, value)
                if order.paid_at is not None:
                    order.promised_delivery_date = rules.promised_delivery_date(
                        order.paid_at, order.province, order.city, order.express, self._policy, order.presale_ship_date
                    )
                session.flush()
                result = AddressChangeResult(
                    order.number, Outcome.DONE, None, order.status, self._address(order), order.promised_delivery_date
                )
            self._record(session, key, order, CHANGE_ADDRESS, fingerprint, result, now)
            return result

    @staticmethod
    def _check_quantity(quantity: int) -> None:
        if quantity < 1:
            raise InvalidInput("quantity", "not_positive")

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
        self._check_quantity(quantity)
        reason = ReturnReason(reason)
        clean_note = _clean_field(note, "note", None) if note and note.strip() else None
        now = self._now()
        with self._session() as session:
            order = self._load(session, number, for_update=True)
            self._require_verified(order, phone_last4)
            item = self._find_item(order, sku)
            decision = rules.return_eligibility(
                order.status, order.delivered_at, item.category, reason, now, self._policy
            )

            def result(outcome: Outcome, refusal: str | None, request: ReturnRequest | None) -> ReturnResult:
                return ReturnResult(
                    order.number,
                    outcome,
                    refusal,
                    decision.deadline,
                    decision.return_shipping_paid_by,
                    decision.photos_required,
                    self._return_info(request) if request else None,
                )

            active = [
                r
                for r in order.return_requests
                if r.order_item_id == item.id and r.status not in {ReturnStatus.REJECTED, ReturnStatus.CANCELLED}
            ]
            remaining = item.quantity - sum(r.quantity for r in active)
            open_request = next((r for r in active if r.status in OPEN_RETURN_STATUSES), None)
            if remaining <= 0 and open_request is not None:
                return result(Outcome.ALREADY_DONE, None, open_request)
            if not decision.eligible:
                return result(Outcome.NOT_ALLOWED, decision.refusal, None)
            if quantity > remaining:
                return result(Outcome.NOT_ALLOWED, QUANTITY_EXCEEDED, None)
            request = ReturnRequest(
                rma=f"RMA{order.number[2:]}{len(order.return_requests) + 1:02d}",
                item=item,
                quantity=quantity,
                reason=reason,
                status=ReturnStatus.REQUESTED,
                created_at=now,
                customer_note=clean_note,
            )
            order.return_requests.append(request)
            session.flush()
            return result(Outcome.DONE, None, request)

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
        self._check_quantity(quantity)
        reason = ReturnReason(reason)
        variant = (
            _clean_field(requested_variant, "requested_variant", Exchange.__table__.c.requested_variant.type.length)
            if requested_variant and requested_variant.strip()
            else None
        )
        now = self._now()
        with self._session() as session:
            order = self._load(session, number, for_update=True)
            self._require_verified(order, phone_last4)
            item = self._find_item(order, sku)
            decision = rules.return_eligibility(
                order.status, order.delivered_at, item.category, reason, now, self._policy
            )

            def result(outcome: Outcome, refusal: str | None, exchange: Exchange | None) -> ExchangeResult:
                return ExchangeResult(
                    order.number,
                    outcome,
                    refusal,
                    decision.deadline,
                    decision.return_shipping_paid_by,
                    decision.photos_required,
                    self._exchange_info(exchange) if exchange else None,
                )

            open_exchange = next(
                (
                    e
                    for e in order.exchanges
                    if e.order_item_id == item.id
                    and e.status in {ExchangeStatus.REQUESTED, ExchangeStatus.APPROVED, ExchangeStatus.SHIPPED}
                ),
                None,
            )
            if open_exchange is not None:
                return result(Outcome.ALREADY_DONE, None, open_exchange)
            if not decision.eligible:
                return result(Outcome.NOT_ALLOWED, decision.refusal, None)
            # What is being returned (refunded) is not exchanged as well.
            returning = sum(
                r.quantity
                for r in order.return_requests
                if r.order_item_id == item.id and r.status not in {ReturnStatus.REJECTED, ReturnStatus.CANCELLED}
            )
            if quantity > item.quantity - returning:
                return result(Outcome.NOT_ALLOWED, QUANTITY_EXCEEDED, None)
            exchange = Exchange(
                item=item,
                quantity=quantity,
                reason=reason,
                requested_variant=variant,
                status=ExchangeStatus.REQUESTED,
                created_at=now,
            )
            order.exchanges.append(exchange)
            session.flush()
            return result(Outcome.DONE, None, exchange)

    def issue_delay_coupon(
        self, number: str, *, phone_last4: str, choice: CompensationChoice = CompensationChoice.COUPON
    ) -> CompensationResult:
        choice = CompensationChoice(choice)
        try:
            return self._compensate(number, phone_last4, choice)
        except IntegrityError:
            # A concurrent request compensated this order first (unique order+reason) or, very
            # rarely, the random code collided: a second pass reports or retries cleanly.
            try:
                return self._compensate(number, phone_last4, choice)
            except IntegrityError as exc:
                raise BackendUnavailable("could not record the compensation") from exc

    def _compensate(self, number: str, phone_last4: str, choice: CompensationChoice) -> CompensationResult:
        now = self._now()
        with self._session(pass_integrity_errors=True) as session:
            order = self._load(session, number, for_update=True)
            self._require_verified(order, phone_last4)
            late = self._days_late(order, now)

            def result(
                outcome: Outcome,
                refusal: str | None,
                coupon: Coupon | None = None,
                refund: Refund | None = None,
                offered: int | None = None,
            ) -> CompensationResult:
                return CompensationResult(
                    order.number,
                    outcome,
                    refusal,
                    late,
                    self._coupon_info(coupon) if coupon else None,
                    self._refund_info(refund) if refund else None,
                    offered,
                )

            if order.status is OrderStatus.LOST:
                return result(Outcome.NOT_ALLOWED, LOST_PARCEL)
            if order.status in {OrderStatus.UNPAID, OrderStatus.CANCELLED}:
                return result(Outcome.NOT_ALLOWED, ORDER_CLOSED)
            existing_coupon = next((c for c in order.coupons if c.reason is CouponReason.DELAY_COMPENSATION), None)
            existing_refund = next((r for r in order.refunds if r.kind is RefundKind.SHIPPING_FEE), None)
            if existing_coupon or existing_refund:
                return result(Outcome.ALREADY_DONE, None, existing_coupon, existing_refund)
            offer = rules.delay_compensation(late, order.shipping_fee_cents, self._policy)
            if offer is None:
                return result(Outcome.NOT_ALLOWED, NOT_DELAYED_ENOUGH)
            if choice is CompensationChoice.SHIPPING_REFUND:
                if offer.shipping_refund_cents is None:
                    refusal = NO_SHIPPING_FEE if order.shipping_fee_cents == 0 else SHIPPING_REFUND_NOT_OFFERED
                    return result(Outcome.NOT_ALLOWED, refusal)
                refund = self._new_refund(order, RefundKind.SHIPPING_FEE, offer.shipping_refund_cents, now)
                session.flush()
                return result(Outcome.DONE, None, refund=refund, offered=offer.shipping_refund_cents)
            coupon = Coupon(
                code=new_coupon_code(),
                customer_id=order.customer_id,
                reason=CouponReason.DELAY_COMPENSATION,
                amount_cents=offer.coupon_cents,
                status=CouponStatus.ACTIVE,
                issued_at=now,
                expires_at=rules.coupon_expires_at(now, self._policy),
            )
            order.coupons.append(coupon)
            session.flush()
            return result(Outcome.DONE, None, coupon=coupon, offered=offer.shipping_refund_cents)

    # --- lost parcels ------------------------------------------------------------------------------

    def reship_lost_parcel(self, number: str, *, phone_last4: str, idempotency_key: str | None = None
                           ) -> ReshipResult:
        return self._once(lambda: self._reship(number, phone_last4, idempotency_key), idempotency_key)

    def _reship(self, number: str, phone_last4: str, key: str | None) -> ReshipResult:
        now = self._now()
        fingerprint = request_hash(CHANGE_RESHIP, phone_last4)
        with self._session(pass_integrity_errors=key is not None) as session:
            order = self._load(session, number, for_update=True)
            replay = self._replayed(session, key, order, CHANGE_RESHIP, fingerprint, ReshipResult, phone_last4)
            if replay is not None:
                return replay
            latest = order.shipments[-1] if order.shipments else None

            def result(outcome: Outcome, refusal: str | None) -> ReshipResult:
                shipment = order.shipments[-1] if order.shipments else None
                return ReshipResult(
                    order.number, outcome, refusal, self._effective_status(order, now),
                    shipment.carrier if shipment else None, shipment.tracking_number if shipment else None,
                    order.promised_delivery_date,
                )

            if order.status is OrderStatus.LOST and any(r.kind is RefundKind.LOST_PARCEL for r in order.refunds):
                answer = result(Outcome.NOT_ALLOWED, ALREADY_REFUNDED)  # the customer chose the refund
            elif order.status is not OrderStatus.LOST or latest is None:
                reshipped = self._reshipped(session, order)
                outcome = Outcome.ALREADY_DONE if reshipped and latest is not None else Outcome.NOT_ALLOWED
                answer = result(outcome, None if outcome is Outcome.ALREADY_DONE else NOT_LOST)
            else:
                shipment = Shipment(carrier=latest.carrier, tracking_number=new_tracking_number(latest.carrier,
                                                                                                self._policy),
                                    shipped_at=now)
                shipment.events.append(TrackingEvent(
                    occurred_at=now, event_type=TrackingEventType.CREATED, city=order.city,
                    description_zh="补发包裹已创建", description_en="Replacement parcel created"))
                order.shipments.append(shipment)
                order.status = OrderStatus.SHIPPED
                order.shipped_at = now
                order.delivered_at = None
                order.promised_delivery_date = rules.promised_delivery_date(
                    now, order.province, order.city, order.express, self._policy)
                session.flush()
                answer = result(Outcome.DONE, None)
            # A reship done is always recorded (a generated key when the caller gave none): "already re-shipped"
            # reads it; other answers only under the caller's key (replays).
            if key is not None or answer.outcome is Outcome.DONE:
                self._record(session, key or secrets.token_hex(16), order, CHANGE_RESHIP, fingerprint, answer, now)
            return answer

    def _reshipped(self, session: Session, order: Order) -> bool:
        return any(
            json.loads(r).get("outcome") == Outcome.DONE.value for r in session.scalars(
                select(OrderChange.result).where(OrderChange.order_id == order.id, OrderChange.kind == CHANGE_RESHIP)))

    def refund_lost_parcel(self, number: str, *, phone_last4: str, idempotency_key: str | None = None
                           ) -> LostParcelRefundResult:
        return self._once(lambda: self._refund_lost(number, phone_last4, idempotency_key), idempotency_key)

    def _refund_lost(self, number: str, phone_last4: str, key: str | None) -> LostParcelRefundResult:
        now = self._now()
        fingerprint = request_hash(CHANGE_LOST_REFUND, phone_last4)
        with self._session(pass_integrity_errors=key is not None) as session:
            order = self._load(session, number, for_update=True)
            replay = self._replayed(
                session, key, order, CHANGE_LOST_REFUND, fingerprint, LostParcelRefundResult, phone_last4
            )
            if replay is not None:
                return replay

            def result(outcome: Outcome, refusal: str | None, refund: Refund | None = None) -> LostParcelRefundResult:
                return LostParcelRefundResult(
                    order.number, outcome, refusal, self._effective_status(order, now),
                    self._refund_info(refund) if refund else None,
                )

            previous = next((r for r in order.refunds if r.kind is RefundKind.LOST_PARCEL), None)
            # What was paid and not refunded yet (a shipping-fee refund for the delay, say, is not paid twice).
            refunded = sum(r.amount_cents for r in order.refunds if r.status is not RefundStatus.REJECTED)
            if previous is not None:
                answer = result(Outcome.ALREADY_DONE, None, previous)
            elif "full_refund" not in self._policy.delay_compensation.lost_parcel_options:
                answer = result(Outcome.NOT_ALLOWED, OPTION_NOT_OFFERED)
            elif order.status is not OrderStatus.LOST:
                answer = result(Outcome.NOT_ALLOWED, ALREADY_RESHIPPED if self._reshipped(session, order) else NOT_LOST)
            elif order.paid_at is None or order.total_cents - refunded <= 0:
                answer = result(Outcome.NOT_ALLOWED, NOTHING_TO_REFUND)
            else:
                refund = self._new_refund(order, RefundKind.LOST_PARCEL, order.total_cents - refunded, now)
                session.flush()
                answer = result(Outcome.DONE, None, refund)
            self._record(session, key, order, CHANGE_LOST_REFUND, fingerprint, answer, now)
            return answer
