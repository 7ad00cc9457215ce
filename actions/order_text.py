"""Language-specific fragments that fill the placeholders of the order responses in domain.yml.

The sentences live in domain.yml (zh + en); this module only renders values (states, items, dates, money,
carrier and payment-method names from the policy file) in the customer's language.
"""

from __future__ import annotations

from datetime import date, datetime

from actions.orders.enums import Carrier, OrderStatus, PaymentMethod, RefundStatus, ReturnStatus
from actions.orders.policy import StorePolicy
from actions.orders.service import OrderItemInfo, RefundInfo, ReturnInfo, TrackingEventInfo

ZH = "zh"

STATUS_LABELS: dict[OrderStatus, tuple[str, str]] = {
    OrderStatus.UNPAID: ("待付款", "awaiting payment"),
    OrderStatus.PAID: ("已付款，等待发货", "paid, waiting to ship"),
    OrderStatus.SHIPPED: ("已发货", "shipped"),
    OrderStatus.IN_TRANSIT: ("运输中", "in transit"),
    OrderStatus.DELAYED: ("运输中（已超过承诺送达日期）", "in transit (past the promised delivery date)"),
    OrderStatus.DELIVERED: ("已签收", "delivered"),
    OrderStatus.LOST: ("包裹丢失", "parcel lost"),
    OrderStatus.CANCELLED: ("已取消", "cancelled"),
    OrderStatus.RETURNED: ("已退货", "returned"),
}
REFUND_LABELS: dict[RefundStatus, tuple[str, str]] = {
    RefundStatus.PENDING: ("待审核", "pending review"),
    RefundStatus.APPROVED: ("已批准，退款中", "approved, on its way"),
    RefundStatus.COMPLETED: ("已到账", "completed"),
    RefundStatus.REJECTED: ("未通过", "rejected"),
}
RETURN_LABELS: dict[ReturnStatus, tuple[str, str]] = {
    ReturnStatus.REQUESTED: ("已提交，待审核", "requested, awaiting approval"),
    ReturnStatus.APPROVED: ("已同意，请寄回", "approved, please send it back"),
    ReturnStatus.RECEIVED: ("仓库已收货，待退款审核", "received by the warehouse, refund under review"),
    ReturnStatus.REJECTED: ("未通过", "rejected"),
    ReturnStatus.REFUNDED: ("已退款", "refunded"),
    ReturnStatus.CANCELLED: ("已撤销", "cancelled"),
}


def pick(lang: str | None, pair: tuple[str, str]) -> str:
    return pair[0] if lang == ZH else pair[1]


def status(value: OrderStatus, lang: str | None) -> str:
    return pick(lang, STATUS_LABELS[value])


def money(cents: int) -> str:
    return f"¥{cents / 100:.2f}"


def day(value: date | None) -> str:
    return value.isoformat() if value else "-"


def moment(value: datetime | None, policy: StorePolicy) -> str:
    return value.astimezone(policy.tz).strftime("%Y-%m-%d %H:%M") if value else "-"


def carrier(value: Carrier | None, lang: str | None, policy: StorePolicy) -> str:
    if value is None:
        return pick(lang, ("尚未发货", "not shipped yet"))
    info = policy.carriers[value]
    return info.name_zh if lang == ZH else info.name_en


def payment_method(value: PaymentMethod, lang: str | None, policy: StorePolicy) -> str:
    info = policy.payment.methods[value]
    return info.name_zh if lang == ZH else info.name_en


def items(values: tuple[OrderItemInfo, ...], numbered: bool = False) -> str:
    """ "name ×qty" per item; numbered lists let the customer answer "2" to pick one."""
    if numbered:
        return "\n".join(f"{i}. {item.name} ×{item.quantity} ({item.sku})" for i, item in enumerate(values, 1))
    return "; ".join(f"{item.name} ×{item.quantity}" for item in values)


def events(values: list[TrackingEventInfo], lang: str | None, policy: StorePolicy) -> str:
    if not values:
        return pick(lang, ("（暂无物流信息）", "(no tracking events yet)"))
    return "\n".join(
        f"{moment(e.occurred_at, policy)} {e.city} {e.description_zh if lang == ZH else e.description_en}"
        for e in values
    )


def refund_line(refund: RefundInfo, lang: str | None, policy: StorePolicy) -> str:
    label = pick(lang, REFUND_LABELS[refund.status])
    method = payment_method(refund.method, lang, policy)
    if refund.status is RefundStatus.COMPLETED:
        when = pick(lang, ("到账时间 ", "arrived ")) + moment(refund.completed_at, policy)
    elif refund.expected_arrival_at is not None:
        when = pick(lang, ("预计最晚 ", "expected by ")) + moment(refund.expected_arrival_at, policy)
    else:
        return f"- {money(refund.amount_cents)} → {method}: {label}"
    return f"- {money(refund.amount_cents)} → {method}: {label}{pick(lang, ('，', ', '))}{when}"


def return_line(request: ReturnInfo, lang: str | None) -> str:
    label = pick(lang, RETURN_LABELS[request.status])
    line = f"- {request.rma} ({request.sku} ×{request.quantity}): {label}"
    if request.review_deadline:
        line += pick(lang, ("，退款审核最晚 ", ", refund review by ")) + day(request.review_deadline)
    return line
