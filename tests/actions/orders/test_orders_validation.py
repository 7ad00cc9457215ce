"""Identifier normalisation: forgiving with real typing habits, strict with anything that is not an identifier."""

from __future__ import annotations

import pytest

from actions.orders.enums import Carrier
from actions.orders.errors import InvalidInput, InvalidOrderNumber
from actions.orders.validation import (
    MAX_RAW_LENGTH,
    REASON_CONTROL,
    REASON_EMPTY,
    REASON_FORMAT,
    REASON_MARKUP,
    REASON_SQL,
    REASON_TOO_LONG,
    is_valid_order_number,
    normalise_order_number,
    normalise_phone,
    normalise_phone_digits,
    normalise_tracking_number,
)


@pytest.mark.parametrize(
    "raw",
    [
        "DM2026110512",
        "dm2026110512",
        "  DM2026110512\n",
        "ＤＭ２０２６１１０５１２",  # full-width letters and digits
        "dm２０２６１１０５１２",
        "DM 2026 1105 12",
        "DM2026110512\u200b",  # zero-width space pasted from a chat app
        "\u3000DM2026110512\u3000",  # ideographic space
    ],
)
def test_real_typing_habits_normalise_to_the_canonical_number(raw: str) -> None:
    assert normalise_order_number(raw) == "DM2026110512"
    assert is_valid_order_number(raw)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("DM2026110512' OR '1'='1", REASON_SQL),
        ("DM2026110512; DROP TABLE orders", REASON_SQL),
        ("DM2026110512--", REASON_SQL),
        ("DM2026110512/**/", REASON_SQL),
        ("1 UNION SELECT phone FROM customers", REASON_SQL),
        ("DM2026110512 or 1=1", REASON_SQL),
        ("＇ＯＲ １＝１", REASON_SQL),  # full-width quote and equals sign normalise to ASCII first
        ("<script>alert(1)</script>", REASON_MARKUP),
        ("DM2026110512<img src=x onerror=alert(1)>", REASON_MARKUP),
        ("＜script＞", REASON_MARKUP),
        ("javascript:alert(1)", REASON_MARKUP),
        ("DM2026110512&#60;", REASON_MARKUP),
        ("DM20261105\x00", REASON_CONTROL),
        ("", REASON_EMPTY),
        ("   ", REASON_EMPTY),
        ("DM" + "1" * 100, REASON_TOO_LONG),
        ("DM202611051", REASON_FORMAT),  # 9 digits
        ("DM20261105123", REASON_FORMAT),  # 11 digits
        ("DX2026110512", REASON_FORMAT),
        ("2026110512", REASON_FORMAT),
        ("DM２０２６１１０５一二", REASON_FORMAT),  # Chinese numerals are not digits
        ("DM-2026110512", REASON_FORMAT),
        ("SF123456789012", REASON_FORMAT),  # a tracking number is not an order number
    ],
)
def test_unsafe_or_malformed_order_numbers_are_rejected_with_a_reason(raw: str, reason: str) -> None:
    with pytest.raises(InvalidOrderNumber) as info:
        normalise_order_number(raw)
    assert info.value.reason == reason
    assert raw.strip() == "" or raw not in str(info.value)  # the message never echoes the input
    assert not is_valid_order_number(raw)


def test_length_limit_is_checked_before_any_parsing() -> None:
    with pytest.raises(InvalidOrderNumber) as info:
        normalise_order_number("<" * (MAX_RAW_LENGTH + 1))
    assert info.value.reason == REASON_TOO_LONG


@pytest.mark.parametrize(
    ("raw", "carrier", "number"),
    [
        ("SF123456789012", Carrier.SF, "SF123456789012"),
        ("sf 1234 5678 9012", Carrier.SF, "SF123456789012"),
        ("JD1234567890123", Carrier.JD, "JD1234567890123"),
        ("７８３４９９１３４８３６", Carrier.ZTO, "783499134836"),
        ("751234567890123", Carrier.ZTO, "751234567890123"),
    ],
)
def test_tracking_numbers_are_recognised_by_carrier(raw: str, carrier: Carrier, number: str) -> None:
    tracking = normalise_tracking_number(raw)
    assert (tracking.carrier, tracking.number) == (carrier, number)


@pytest.mark.parametrize(
    "raw",
    [
        "SF12345678901",
        "JD123456789012",
        "12345678901",
        "1234567890123456",
        "SF123456789012' --",
        "<b>SF123456789012</b>",
    ],
)
def test_bad_tracking_numbers_are_rejected(raw: str) -> None:
    with pytest.raises(InvalidInput) as info:
        normalise_tracking_number(raw)
    assert info.value.field == "tracking_number"


def test_phone_digits_and_numbers() -> None:
    assert normalise_phone_digits(" ５６７８ ") == "5678"
    assert normalise_phone("+86 138-1234-5678") == "13812345678"
    for bad in ("567", "56789", "5a78", "5678'--", "<5678>"):
        with pytest.raises(InvalidInput):
            normalise_phone_digits(bad)
    for bad in ("12812345678", "1381234567", "13812345678<"):
        with pytest.raises(InvalidInput):
            normalise_phone(bad)
