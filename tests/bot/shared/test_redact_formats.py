"""Phone redaction takes what a phone number is, and how many digits verify an order, from the policy file."""
from __future__ import annotations

import pytest

from bot.shared.identifier_formats import get_identifier_formats
from bot.shared.redact import PHONE_RE, VERIFICATION_DIGITS, Redactor, phones_in


def test_verification_digits_come_from_the_policy() -> None:
    assert VERIFICATION_DIGITS == get_identifier_formats().verification_digits == 4


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("call 13812345678", "call 138********"),
        ("+86 138-1234-5678 please", "138******** please"),
        ("0086 138 1234 5678", "138********"),
        ("8613812345678", "138********"),
        ("电话１３８１２３４５６７８", "电话138********"),
        # Not mobile numbers of the policy's format (1[3-9] + 9 digits): left alone.
        ("12345678901", "12345678901"),
        ("86 12345678901", "86 12345678901"),
        ("86138123456", "86138123456"),
        ("138123456789", "138123456789"),  # 12 digits: a tracking number, not a phone
    ],
)
def test_written_phones_are_masked_only_when_the_digits_are_a_phone(text: str, masked: str) -> None:
    assert Redactor().text(text) == masked


def test_phones_in_and_sub_see_the_same_numbers() -> None:
    text = "a 139 1234 5678, b 12345678901, c +8613712345678"
    assert phones_in(text) == ["13912345678", "13712345678"]
    assert PHONE_RE.sub(lambda m: m.group(3), text) == "a 5678, b 12345678901, c 5678"
