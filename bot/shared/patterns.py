"""Identifier formats of the demo store (order, tracking and phone numbers), shared by NLU and actions.

The formats come from the store's policy sheet; a merchant with other formats edits the table below.
Patterns are matched on a half-width copy of the text (same length), so offsets map back 1:1.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List

from bot.shared.text import to_halfwidth

_NOT_ALNUM_BEFORE = r"(?<![A-Za-z0-9])"
_NOT_ALNUM_AFTER = r"(?![A-Za-z0-9])"

ORDER_NUMBER = "order_number"
TRACKING_NUMBER = "tracking_number"
PHONE = "phone"

# Checked in this order; a span matched by an earlier pattern is not matched again.
PATTERNS = (
    (ORDER_NUMBER, re.compile(_NOT_ALNUM_BEFORE + r"DM\d{10}" + _NOT_ALNUM_AFTER, re.IGNORECASE)),
    (TRACKING_NUMBER, re.compile(_NOT_ALNUM_BEFORE + r"(?:SF\d{12}|JD\d{13})" + _NOT_ALNUM_AFTER, re.IGNORECASE)),
    (PHONE, re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")),
    (TRACKING_NUMBER, re.compile(r"(?<![A-Za-z0-9])\d{12,15}(?![A-Za-z0-9])")),
)

ORDER_NUMBER_RE = re.compile(r"^DM\d{10}$")


@dataclass(frozen=True)
class Match:
    """One identifier found in a message; ``value`` is normalised (upper-case, half-width)."""

    entity: str
    value: str
    start: int
    end: int


def find_identifiers(text: str) -> List[Match]:
    """Find order numbers, tracking numbers and mobile phone numbers in free text, in either language."""
    half = to_halfwidth(text)
    taken: List[range] = []
    found: List[Match] = []
    for entity, pattern in PATTERNS:
        for m in pattern.finditer(half):
            if any(m.start() < r.stop and r.start < m.end() for r in taken):
                continue
            taken.append(range(m.start(), m.end()))
            found.append(Match(entity, m.group(0).upper(), m.start(), m.end()))
    return sorted(found, key=lambda m: m.start)


def normalize_order_number(raw: str) -> str | None:
    """Return the canonical order number, or None when ``raw`` is not one (never echo unsafe input back)."""
    candidate = to_halfwidth(raw).strip().upper().replace(" ", "")
    return candidate if ORDER_NUMBER_RE.match(candidate) else None
