"""The order service for the agent desk: live order facts and the changes an agent may make, with the bot's rules.

The desk (``handoff/``) never imports ``actions`` (tests/test_layering.py); it asks the action server over its
authenticated HTTP API (``X-Action-Token``, loopback), as the workbench does for ``/kb/decide``:

* ``GET /desk/orders/<number>`` -> the order (personal data masked by the service), its latest tracking, refunds and
  returns, and what the policy allows now (:func:`allowed`): the delay compensation of the tier reached, whether the
  order can be re-shipped (lost parcel) or re-addressed (before shipping), which items can be returned for which
  reason - computed with the same pure rules (``actions/orders/rules.py``) the service applies;
* ``POST /desk/orders/<number>/<kind>`` (kind: coupon, shipping_refund, return, exchange, reship, lost_refund,
  address) -> the service's result. The change is made by the same :class:`~actions.orders.service.OrderService`
  call the bot's flows make (``issue_delay_coupon``, ``create_return``, ``create_exchange``, ``reship_lost_parcel``,
  ``refund_lost_parcel``, ``change_address``), so every rule (tiers, windows, excluded categories, one compensation
  per order, reship or full refund of a lost parcel, nothing after shipping) is the service's.

An exchange names the item, the reason and the replacement (a size or colour of the same item, or none: the same item
again for a faulty one). When the agent says the replacement is out of stock, the policy decides
(``returns.exchange_out_of_stock_return``): for the reasons it lists a return with a refund is opened instead (the
customer agreed to it with the agent), under the same reason's rule; otherwise it is refused (``out_of_stock``).

Verification: the service changes an order only with the last phone digits. The desk sends either the digits the
customer gave the agent (``phone_last4``: checked by the service, a wrong answer is 403) or
``verified_in_conversation: true`` for an order the bot verified in that conversation (the context package's
``verified_orders``, which the action server itself wrote); then the digits are the ones the service shows in the
order's masked phone (``138****5678``: the contract keeps the last four, docs/MERCHANT_API.md). The desk decides who
may act (the conversation's agent or a supervisor), keeps the change idempotent and audits it.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from actions.orders import rules
from actions.orders.enums import OrderStatus, RefundKind, RefundStatus, ReturnReason
from actions.orders.errors import (
    BackendTimeout,
    BackendUnavailable,
    InvalidInput,
    InvalidOrderNumber,
    ItemNotFound,
    NotVerified,
    OrderNotFound,
    OrderServiceError,
)
from actions.orders.service import CompensationChoice, NewAddress, OrderInfo, OrderService, RefundOverview
from actions.orders.wire import to_wire

T = TypeVar("T")
KINDS = ("coupon", "shipping_refund", "return", "exchange", "reship", "lost_refund", "address")
OUT_OF_STOCK = "out_of_stock"  # refusal: the replacement is out of stock and the policy offers no return instead
_DIGITS = 4
_EVENTS_SHOWN = 5
_STATUS = {InvalidInput: 422, InvalidOrderNumber: 422, NotVerified: 403, OrderNotFound: 404, ItemNotFound: 404,
           BackendTimeout: 504, BackendUnavailable: 503}


def _services() -> tuple[OrderService, Any, Callable[[], Any]]:
    from actions import verification as v

    return v.order_service(), v.policy(), v.now


async def _call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    from actions import verification as v

    return await v.call_backend(fn, *args, **kwargs)


def _error(exc: OrderServiceError) -> tuple[dict[str, Any], int]:
    status = next((code for kind, code in _STATUS.items() if isinstance(exc, kind)), 502)
    return {"error": exc.code, "detail": str(exc)}, status


def _unrefunded(order: OrderInfo, refunds: RefundOverview | None) -> int:
    paid = order.total_cents if order.paid_at is not None else 0
    done = (r.amount_cents for r in (refunds.refunds if refunds else ()) if r.status is not RefundStatus.REJECTED)
    return paid - sum(done)


def allowed(order: OrderInfo, policy: Any, now: Any, refunds: RefundOverview | None = None) -> dict[str, Any]:
    """What the policy allows for this order now, by the rules the service applies (the console enables its buttons
    by it; the service still decides). ``returns`` also says which items can be exchanged (same windows)."""
    offer = rules.delay_compensation(order.days_late, order.shipping_fee_cents, policy)
    returns = []
    for item in order.items:
        for reason in ReturnReason:
            decision = rules.return_eligibility(order.status, order.delivered_at, item.category, reason, now, policy)
            returns.append({"sku": item.sku, "name": item.name, "reason": reason.value,
                            "eligible": decision.eligible, "refusal": decision.refusal,
                            "deadline": decision.deadline.isoformat() if decision.deadline else None,
                            "photos_required": decision.photos_required,
                            "return_shipping_paid_by": decision.return_shipping_paid_by})
    closed = order.status in {OrderStatus.LOST, OrderStatus.UNPAID, OrderStatus.CANCELLED}
    options = policy.delay_compensation.lost_parcel_options
    lost = order.status is OrderStatus.LOST
    refunded_lost = any(r.kind is RefundKind.LOST_PARCEL for r in (refunds.refunds if refunds else ()))
    due = _unrefunded(order, refunds)
    return {
        "compensation": None if offer is None or closed else {
            "days_late": offer.days_late, "coupon_cents": offer.coupon_cents,
            "shipping_refund_cents": offer.shipping_refund_cents},
        "reship": lost and "reship" in options and not refunded_lost,
        "lost_refund": {"amount_cents": due, "method": order.payment_method.value}
        if lost and "full_refund" in options and not refunded_lost and due > 0 else None,
        "address_change": rules.can_change_before_shipping(order.status, policy),
        "returns": returns,
        "exchange_out_of_stock_return": [r.value for r in policy.returns.exchange_out_of_stock_return],
    }


async def order_view(number: str) -> tuple[dict[str, Any], int]:
    """``GET /desk/orders/<number>``: the order as an agent needs it (masked), and what may be done now."""
    service, policy, now = _services()
    try:
        order = await _call(service.get_order, number)
        tracking = await _call(service.tracking, order.number)
        refunds = await _call(service.refund_status, order.number)
    except OrderServiceError as exc:
        return _error(exc)
    events = sorted((e for s in tracking.shipments for e in s.events), key=lambda e: e.occurred_at)
    return {
        "order": to_wire(order),
        "tracking": {"delayed": tracking.delayed, "days_late": tracking.days_late,
                     "shipments": [{"carrier": s.carrier.value, "tracking_number": s.tracking_number,
                                    "shipped_at": s.shipped_at.isoformat()} for s in tracking.shipments],
                     "events": [to_wire(e) for e in events[-_EVENTS_SHOWN:]][::-1]},
        "refunds": to_wire(refunds),
        "allowed": allowed(order, policy, now(), refunds),
    }, 200


async def _digits(service: OrderService, number: str, body: dict[str, Any]) -> str | None:
    given = str(body.get("phone_last4") or "").strip()
    if given:
        return given
    if body.get("verified_in_conversation") is True:
        order = await _call(service.get_order, number)
        tail = order.address.phone[-_DIGITS:]
        return tail if tail.isdigit() else None
    return None


async def order_action(number: str, kind: str, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """``POST /desk/orders/<number>/<kind>``: one change through the order service; the result as the service gave
    it (``outcome`` done / not_allowed with ``refusal`` / already_done)."""
    if kind not in KINDS:
        return {"error": "unknown_action", "detail": f"kind must be one of {', '.join(KINDS)}"}, 404
    service, policy, _now = _services()
    key = body.get("idempotency_key")
    key = str(key) if isinstance(key, str) and key else None
    try:
        digits = await _digits(service, number, body)
        if digits is None:
            return {"error": "not_verified", "detail": "give the customer's phone digits or an order the bot "
                                                       "verified in this conversation"}, 403
        if kind in ("coupon", "shipping_refund"):
            choice = CompensationChoice.COUPON if kind == "coupon" else CompensationChoice.SHIPPING_REFUND
            result: Any = await _call(service.issue_delay_coupon, number, phone_last4=digits, choice=choice)
        elif kind == "return":
            try:
                reason = ReturnReason(str(body.get("reason") or ""))
                quantity = int(body.get("quantity") or 1)
            except ValueError:
                return {"error": "invalid_input", "detail": "reason must be no_reason or quality"}, 422
            note = str(body.get("note") or "")[:500] or None
            result = await _call(service.create_return, number, str(body.get("sku") or ""), reason,
                                 phone_last4=digits, quantity=quantity, note=note)
        elif kind == "exchange":
            result = await _exchange(service, policy, number, digits, body)
            if isinstance(result, tuple):
                return result
        elif kind == "lost_refund":
            refund = await _call(service.refund_lost_parcel, number, phone_last4=digits, idempotency_key=key)
            result = {**to_wire(refund), "display": _refund_display(refund.refund, policy)}
        elif kind == "reship":
            result = await _call(service.reship_lost_parcel, number, phone_last4=digits, idempotency_key=key)
        else:
            given = body.get("address")
            raw: dict[str, Any] = given if isinstance(given, dict) else {}
            fields = ("recipient_name", "phone", "province", "city", "district", "address_line")
            address = NewAddress(**{f: str(raw.get(f) or "") for f in fields})
            result = await _call(service.change_address, number, address, phone_last4=digits, idempotency_key=key)
    except OrderServiceError as exc:
        return _error(exc)
    return {"kind": kind, "result": result if isinstance(result, dict) else to_wire(result)}, 200


def _refund_display(refund: Any, policy: Any) -> dict[str, Any] | None:
    """How the customer reads a refund: the payment method's names and the latest arrival in the merchant's time
    (the policy's refund timing, computed by the service)."""
    if refund is None:
        return None
    names = policy.payment.methods[refund.method]
    arrival = refund.expected_arrival_at
    return {"method_zh": names.name_zh, "method_en": names.name_en,
            "expected_by": arrival.astimezone(policy.tz).strftime("%Y-%m-%d %H:%M") if arrival else None}


async def _exchange(service: OrderService, policy: Any, number: str, digits: str,
                    body: dict[str, Any]) -> dict[str, Any] | tuple[dict[str, Any], int]:
    """An exchange through the service, or - replacement out of stock - the return the policy offers instead."""
    try:
        reason = ReturnReason(str(body.get("reason") or ""))
        quantity = int(body.get("quantity") or 1)
    except ValueError:
        return {"error": "invalid_input", "detail": "reason must be no_reason or quality"}, 422
    variant = str(body.get("variant") or "").strip() or None
    sku = str(body.get("sku") or "")
    order = await _call(service.get_order, number)
    name = next((i.name for i in order.items if i.sku.upper() == sku.strip().upper()), sku)
    shown = {"item_name": name, "variant": variant}
    if body.get("in_stock", True) is not False:
        exchange = await _call(service.create_exchange, number, sku, reason, phone_last4=digits,
                               quantity=quantity, requested_variant=variant)
        return {**to_wire(exchange), **shown, "switched_to_return": False}
    if reason not in policy.returns.exchange_out_of_stock_return:
        if not await _call(service.verify, number, digits):
            raise NotVerified(number)
        return {"number": order.number, "outcome": "not_allowed", "refusal": OUT_OF_STOCK, "exchange": None,
                **shown, "switched_to_return": False}
    note = f"exchange replacement out of stock: {variant}" if variant else "exchange replacement out of stock"
    returned = await _call(service.create_return, number, sku, reason, phone_last4=digits, quantity=quantity,
                           note=note[:500])
    return {**to_wire(returned), **shown, "switched_to_return": True}


def install(app: Any, response: Any) -> None:
    """Add the desk's routes to the action server's Sanic app (behind its token check)."""

    @app.get("/desk/orders/<number>")
    async def desk_order(request, number: str):  # noqa: ANN001, ANN202 - sanic's request / response types
        payload, status = await order_view(number)
        return response.json(payload, status=status)

    @app.post("/desk/orders/<number>/<kind>")
    async def desk_order_action(request, number: str, kind: str):  # noqa: ANN001, ANN202
        body = request.json if isinstance(request.json, dict) else {}
        payload, status = await order_action(number, kind, body)
        return response.json(payload, status=status)


