"""Finding identifiers (order, tracking and phone numbers) in free text, shared by NLU and actions.

The formats are the store's, read from ``data/store_policy.yml`` (:mod:`bot.shared.identifier_formats`); a merchant
with other formats edits that file. Patterns are matched on a half-width copy of the text (same length), so offsets
map back 1:1.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from re import Pattern

from bot.shared.identifier_formats import IdentifierFormats, get_identifier_formats
from bot.shared.text import to_halfwidth

# Order and tracking numbers are codes: no letter or digit may touch them. A phone number is often written right
# after a word ("tel13812345678", "电话13812345678"), so only digits bound it.
_NOT_ALNUM_BEFORE = r"(?<![A-Za-z0-9])"
_NOT_ALNUM_AFTER = r"(?![A-Za-z0-9])"
_NOT_DIGIT_BEFORE = r"(?<!\d)"
_NOT_DIGIT_AFTER = r"(?!\d)"
_LETTER_LED = re.compile(r"\^(?:\(\?:)?[A-Za-z]")  # a format that starts with a literal letter (SF..., JD...)

ORDER_NUMBER = "order_number"
TRACKING_NUMBER = "tracking_number"
PHONE = "phone"

SearchPatterns = tuple[tuple[str, Pattern[str]], ...]


def compile_patterns(formats: IdentifierFormats) -> SearchPatterns:
    """The search patterns of ``formats``, in the order they are checked (a span matched earlier is not matched
    again): order numbers, tracking numbers that start with letters, phone numbers, then all-digit tracking
    numbers (a bare digit run is the least specific)."""

    def code(pattern: str) -> Pattern[str]:
        return re.compile(_NOT_ALNUM_BEFORE + IdentifierFormats.body(pattern) + _NOT_ALNUM_AFTER, re.IGNORECASE)

    lettered = [p for _, p in formats.tracking if _LETTER_LED.match(p)]
    digits_only = [p for _, p in formats.tracking if not _LETTER_LED.match(p)]
    return (
        ((ORDER_NUMBER, code(formats.order_number)),)
        + tuple((TRACKING_NUMBER, code(p)) for p in lettered)
        + ((PHONE, re.compile(_NOT_DIGIT_BEFORE + IdentifierFormats.body(formats.phone) + _NOT_DIGIT_AFTER)),)
        + tuple((TRACKING_NUMBER, code(p)) for p in digits_only)
    )


PATTERNS = compile_patterns(get_identifier_formats())


@dataclass(frozen=True)
class Match:
    """One identifier found in a message; ``value`` is normalised (upper-case, half-width)."""

    entity: str
    value: str
    start: int
    end: int


def find_identifiers(text: str, patterns: Sequence[tuple[str, Pattern[str]]] | None = None) -> list[Match]:
    """Find order numbers, tracking numbers and mobile phone numbers in free text, in either language
    (``patterns``: from :func:`compile_patterns`; default: the repository's policy file)."""
    half = to_halfwidth(text)
    taken: list[range] = []
    found: list[Match] = []
    for entity, pattern in PATTERNS if patterns is None else patterns:
        for m in pattern.finditer(half):
            if any(m.start() < r.stop and r.start < m.end() for r in taken):
                continue
            taken.append(range(m.start(), m.end()))
            found.append(Match(entity, m.group(0).upper(), m.start(), m.end()))
    return sorted(found, key=lambda m: m.start)
