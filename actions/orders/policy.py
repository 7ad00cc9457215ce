"""Typed loader for ``data/store_policy.yml``: the only place order code gets policy numbers from.

Why typed: a typo in the YAML (a missing tier, a negative window) should fail at start-up with a
clear message, not as a wrong answer to a customer weeks later.
"""

from __future__ import annotations

import re
from datetime import date, time
from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from actions.orders.enums import Carrier, MembershipTier, OrderStatus, PaymentMethod, ReturnReason
from bot.shared.identifier_formats import POLICY_PATH as DEFAULT_POLICY_PATH

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAY_INDEX: dict[str, int] = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}


class _Model(BaseModel):
    """Strict base: unknown keys are errors, so renamed YAML keys cannot be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Merchant(_Model):
    name_zh: str
    name_en: str
    currency: str
    timezone: str

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {value!r}") from exc
        return value


class HumanAgentHours(_Model):
    start: time
    end: time
    days: list[Weekday]


class ServiceHours(_Model):
    bot: str
    human_agents: HumanAgentHours
    off_hours_ticket_reply_by: time


class PatternRule(_Model):
    pattern: str
    example: str | None = None

    @model_validator(mode="after")
    def _example_matches(self) -> PatternRule:
        if self.example is not None and not re.fullmatch(self.pattern, self.example):
            raise ValueError(f"example {self.example!r} does not match {self.pattern!r}")
        return self


class PhoneRule(_Model):
    pattern: str
    verification_digits: int = Field(gt=0)


class Identifiers(_Model):
    order_number: PatternRule
    phone: PhoneRule


class CarrierInfo(_Model):
    name_zh: str
    name_en: str
    tracking_pattern: str


class Dispatch(_Model):
    in_stock_hours: int = Field(gt=0)
    promotion_hours: int = Field(gt=0)
    presale: Literal["product_page_date"]


class Promotion(_Model):
    key: str
    name_zh: str
    name_en: str
    start: str  # "MM-DD"
    end: str

    @field_validator("start", "end")
    @classmethod
    def _month_day(cls, value: str) -> str:
        date.fromisoformat(f"2024-{value}")  # leap year, so 02-29 is accepted
        return value

    def contains(self, day: date) -> bool:
        """True when ``day`` falls in this promotion window of its own year."""
        key = day.strftime("%m-%d")
        if self.start <= self.end:
            return self.start <= key <= self.end
        return key >= self.start or key <= self.end  # window crossing the new year


class DayRange(_Model):
    min: int = Field(ge=0)
    max: int = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> DayRange:
        if self.min > self.max:
            raise ValueError("min must not exceed max")
        return self


class Province(_Model):
    zh: str
    en: str


class Express(_Model):
    business_days: int = Field(gt=0)
    city_count: int = Field(gt=0)
    cities: list[str]

    @model_validator(mode="after")
    def _count_matches(self) -> Express:
        if len(set(self.cities)) != self.city_count:
            raise ValueError(f"express.cities lists {len(set(self.cities))} cities, city_count says {self.city_count}")
        return self


class Delivery(_Model):
    business_days: list[Weekday]
    holidays: list[date]
    standard_business_days: DayRange
    remote_business_days: DayRange
    remote_provinces: list[Province]
    express: Express

    @property
    def business_weekdays(self) -> frozenset[int]:
        return frozenset(WEEKDAY_INDEX[d] for d in self.business_days)

    def is_remote(self, province: str) -> bool:
        """Province names match by Chinese or English short name (prefix, so 新疆维吾尔自治区 matches 新疆)."""
        p = province.strip().lower()
        return any(p.startswith(r.zh) or p.startswith(r.en.lower()) for r in self.remote_provinces)


class ShippingFee(_Model):
    free_threshold_yuan: int = Field(ge=0)
    standard_fee_yuan: int = Field(ge=0)
    express_surcharge_yuan: int = Field(ge=0)


class OrderChanges(_Model):
    allowed_statuses: list[OrderStatus]
    after_shipping_address_change: str
    after_shipping_cancel: str


class ReturnRule(_Model):
    window_days: int = Field(gt=0)
    condition: str | None = None
    return_shipping_paid_by: Literal["customer", "store"]
    photos_required: bool
    excluded_categories: list[str]


class Returns(_Model):
    no_reason: ReturnRule
    quality: ReturnRule
    # Exchanges whose replacement is out of stock may become a return with a refund for these reasons (under that
    # reason's rule); for other reasons the exchange waits for stock. Empty: never switched.
    exchange_out_of_stock_return: list[ReturnReason] = Field(default_factory=list)

    def rule_for(self, reason: ReturnReason) -> ReturnRule:
        return self.quality if reason is ReturnReason.QUALITY else self.no_reason


class RefundTiming(_Model):
    max_hours: int | None = Field(default=None, gt=0)
    min_business_days: int | None = Field(default=None, ge=0)
    max_business_days: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_kind(self) -> RefundTiming:
        if (self.max_hours is None) == (self.max_business_days is None):
            raise ValueError("give either max_hours or max_business_days")
        return self


class Refunds(_Model):
    review_business_days: DayRange
    to_original_method: bool
    timing: dict[PaymentMethod, RefundTiming]

    @model_validator(mode="after")
    def _every_method(self) -> Refunds:
        missing = set(PaymentMethod) - set(self.timing)
        if missing:
            raise ValueError(f"refund timing missing for {sorted(m.value for m in missing)}")
        return self


class CompensationTier(_Model):
    min_days_late: int = Field(gt=0)
    coupon_yuan: int = Field(gt=0)
    shipping_fee_refund_option: bool


class DelayCompensation(_Model):
    tiers: list[CompensationTier] = Field(min_length=1)
    coupon_valid_days: int | None = Field(default=None, gt=0)
    lost_parcel_options: list[Literal["reship", "full_refund"]]

    @model_validator(mode="after")
    def _sorted(self) -> DelayCompensation:
        days = [t.min_days_late for t in self.tiers]
        if days != sorted(set(days)):
            raise ValueError("compensation tiers must be in increasing, distinct min_days_late order")
        return self


class PriceProtection(_Model):
    days_after_purchase: int = Field(gt=0)
    refund_to: str
    excluded: list[str]


class Invoices(_Model):
    type: str
    request_window_days_after_delivery: int = Field(gt=0)
    issue_within_business_days: int = Field(gt=0)


class PaymentMethodInfo(_Model):
    name_zh: str
    name_en: str


class Payment(_Model):
    methods: dict[PaymentMethod, PaymentMethodInfo]
    failed_payment_hold_minutes: int = Field(gt=0)


class Membership(_Model):
    tiers: list[MembershipTier]
    priority_tiers: list[MembershipTier]


class Complaints(_Model):
    ticket_number: bool
    first_reply_within_hours: int = Field(gt=0)
    escalate_to_supervisor_after_hours: int = Field(gt=0)


class StorePolicy(_Model):
    """The whole policy sheet; see data/store_policy.yml for the meaning of each key."""

    version: int
    merchant: Merchant
    service_hours: ServiceHours
    identifiers: Identifiers
    carriers: dict[Carrier, CarrierInfo]
    dispatch: Dispatch
    promotions: list[Promotion]
    delivery: Delivery
    shipping_fee: ShippingFee
    order_changes: OrderChanges
    returns: Returns
    refunds: Refunds
    delay_compensation: DelayCompensation
    price_protection: PriceProtection
    invoices: Invoices
    payment: Payment
    membership: Membership
    complaints: Complaints

    @model_validator(mode="after")
    def _every_carrier(self) -> StorePolicy:
        missing = set(Carrier) - set(self.carriers)
        if missing:
            raise ValueError(f"carriers missing: {sorted(c.value for c in missing)}")
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.merchant.timezone)


def load_policy(path: Path | str | None = None) -> StorePolicy:
    """Read and validate a policy file (default: the repository's ``data/store_policy.yml``)."""
    policy_path = Path(path) if path is not None else DEFAULT_POLICY_PATH
    with policy_path.open(encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)
    return StorePolicy.model_validate(raw)


@lru_cache(maxsize=8)
def get_policy(path: str | None = None) -> StorePolicy:
    """Cached :func:`load_policy` for hot paths; call ``get_policy.cache_clear()`` after editing the file."""
    return load_policy(path)
