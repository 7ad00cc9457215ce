"""The policy file says what the policy sheet says, and broken policy files are refused at load time."""

from __future__ import annotations

from datetime import date, time
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from actions.orders.enums import Carrier, PaymentMethod
from actions.orders.policy import DEFAULT_POLICY_PATH, Promotion, StorePolicy, load_policy


def _raw() -> dict[str, Any]:
    with DEFAULT_POLICY_PATH.open(encoding="utf-8") as handle:
        data: dict[str, Any] = yaml.safe_load(handle)
    return data


def test_policy_file_matches_the_policy_sheet(policy: StorePolicy) -> None:
    # Each value below is a line of the merchant's policy sheet; the file must keep saying it.
    assert policy.service_hours.human_agents.start == time(9) and policy.service_hours.human_agents.end == time(21)
    assert policy.service_hours.off_hours_ticket_reply_by == time(10)
    assert policy.dispatch.in_stock_hours == 48 and policy.dispatch.promotion_hours == 72
    assert {p.key for p in policy.promotions} == {"618", "double_11"}
    assert (policy.delivery.standard_business_days.min, policy.delivery.standard_business_days.max) == (3, 5)
    assert (policy.delivery.remote_business_days.min, policy.delivery.remote_business_days.max) == (7, 10)
    assert [p.zh for p in policy.delivery.remote_provinces] == ["新疆", "西藏", "青海", "内蒙古"]
    assert policy.delivery.express.city_count == 30 and policy.delivery.express.business_days == 1
    assert (
        policy.shipping_fee.free_threshold_yuan,
        policy.shipping_fee.standard_fee_yuan,
        policy.shipping_fee.express_surcharge_yuan,
    ) == (99, 8, 12)
    assert policy.returns.no_reason.window_days == 7 and policy.returns.quality.window_days == 15
    assert policy.returns.no_reason.return_shipping_paid_by == "customer"
    assert policy.returns.quality.return_shipping_paid_by == "store" and policy.returns.quality.photos_required
    assert set(policy.returns.no_reason.excluded_categories) == {"customised", "fresh_food", "underwear", "digital"}
    assert policy.refunds.timing[PaymentMethod.ALIPAY].max_hours == 24
    assert policy.refunds.timing[PaymentMethod.UNIONPAY].max_business_days == 7
    assert [
        (t.min_days_late, t.coupon_yuan, t.shipping_fee_refund_option) for t in policy.delay_compensation.tiers
    ] == [(3, 10, False), (7, 30, True)]
    assert policy.delay_compensation.lost_parcel_options == ["reship", "full_refund"]
    assert policy.price_protection.days_after_purchase == 7
    assert policy.invoices.request_window_days_after_delivery == 30
    assert policy.payment.failed_payment_hold_minutes == 30
    assert set(policy.payment.methods) == set(PaymentMethod)
    assert [t.value for t in policy.membership.priority_tiers] == ["gold", "platinum"]
    assert policy.complaints.first_reply_within_hours == 24
    assert policy.complaints.escalate_to_supervisor_after_hours == 48
    assert set(policy.carriers) == set(Carrier)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["delay_compensation"]["tiers"].reverse(), "increasing"),
        (lambda d: d["refunds"]["timing"].pop("unionpay"), "unionpay"),
        (lambda d: d["shipping_fee"].update(free_threshhold_yuan=99), "free_threshhold_yuan"),
        (lambda d: d["delivery"]["express"]["cities"].pop(), "city_count"),
        (lambda d: d["carriers"].pop("jd"), "jd"),
        (lambda d: d["merchant"].update(timezone="Mars/Olympus"), "timezone"),
        (lambda d: d["identifiers"]["order_number"].update(example="DM123"), "does not match"),
        (lambda d: d["delivery"]["standard_business_days"].update(min=6), "min must not exceed max"),
    ],
    ids=[
        "unsorted-tiers",
        "missing-refund-method",
        "typo-key",
        "express-count",
        "missing-carrier",
        "bad-timezone",
        "bad-example",
        "inverted-range",
    ],
)
def test_broken_policy_files_are_rejected_with_the_reason(mutate: Any, message: str, tmp_path: Path) -> None:
    data = _raw()
    mutate(data)
    path = tmp_path / "policy.yml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ValidationError) as info:
        load_policy(path)
    assert message in str(info.value)


def test_promotion_windows_include_both_ends_and_may_cross_new_year() -> None:
    double_11 = Promotion(key="d11", name_zh="双11", name_en="Double 11", start="11-01", end="11-11")
    assert double_11.contains(date(2026, 11, 1)) and double_11.contains(date(2026, 11, 11))
    assert not double_11.contains(date(2026, 10, 31)) and not double_11.contains(date(2026, 11, 12))
    new_year = Promotion(key="ny", name_zh="年货节", name_en="New Year", start="12-28", end="01-05")
    assert new_year.contains(date(2026, 12, 30)) and new_year.contains(date(2027, 1, 5))
    assert not new_year.contains(date(2027, 1, 6))


def test_remote_province_matches_short_and_full_names(policy: StorePolicy) -> None:
    assert policy.delivery.is_remote("新疆维吾尔自治区")
    assert policy.delivery.is_remote("Inner Mongolia")
    assert not policy.delivery.is_remote("浙江省")
