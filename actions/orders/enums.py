"""Closed vocabularies of the order domain, shared by the ORM, the rules, the service and the wire format.

String enums so that stored values, JSON values and YAML keys are the same readable words.
"""

from __future__ import annotations

from enum import StrEnum


class MembershipTier(StrEnum):
    REGULAR = "regular"
    GOLD = "gold"
    PLATINUM = "platinum"


class OrderStatus(StrEnum):
    UNPAID = "unpaid"
    PAID = "paid"
    SHIPPED = "shipped"
    IN_TRANSIT = "in_transit"
    DELAYED = "delayed"
    DELIVERED = "delivered"
    LOST = "lost"
    CANCELLED = "cancelled"
    RETURNED = "returned"


# States in which a parcel exists but has not reached the customer.
PARCEL_ON_THE_WAY: frozenset[OrderStatus] = frozenset(
    {OrderStatus.SHIPPED, OrderStatus.IN_TRANSIT, OrderStatus.DELAYED}
)


class PaymentMethod(StrEnum):
    ALIPAY = "alipay"
    WECHAT = "wechat"
    UNIONPAY = "unionpay"
    BALANCE = "balance"


class Carrier(StrEnum):
    SF = "sf"
    ZTO = "zto"
    JD = "jd"


class ItemCategory(StrEnum):
    APPAREL = "apparel"
    SHOES = "shoes"
    ELECTRONICS = "electronics"
    HOME = "home"
    BEAUTY = "beauty"
    BOOKS = "books"
    SNACKS = "snacks"
    # Categories the policy excludes from no-reason returns (listed in data/store_policy.yml).
    CUSTOMISED = "customised"
    FRESH_FOOD = "fresh_food"
    UNDERWEAR = "underwear"
    DIGITAL = "digital"


class TrackingEventType(StrEnum):
    CREATED = "created"
    PICKED_UP = "picked_up"
    DEPARTED = "departed"
    ARRIVED = "arrived"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    EXCEPTION = "exception"
    RETURNING = "returning"


class ReturnReason(StrEnum):
    NO_REASON = "no_reason"
    QUALITY = "quality"


class ReturnStatus(StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    RECEIVED = "received"
    REFUNDED = "refunded"
    CANCELLED = "cancelled"


OPEN_RETURN_STATUSES: frozenset[ReturnStatus] = frozenset(
    {ReturnStatus.REQUESTED, ReturnStatus.APPROVED, ReturnStatus.RECEIVED}
)


class RefundStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    COMPLETED = "completed"
    REJECTED = "rejected"


class RefundKind(StrEnum):
    RETURN = "return"
    CANCELLATION = "cancellation"
    SHIPPING_FEE = "shipping_fee"
    LOST_PARCEL = "lost_parcel"


class ExchangeStatus(StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    SHIPPED = "shipped"
    COMPLETED = "completed"
    REJECTED = "rejected"


class CouponReason(StrEnum):
    DELAY_COMPENSATION = "delay_compensation"


class CouponStatus(StrEnum):
    ACTIVE = "active"
    USED = "used"
    EXPIRED = "expired"
