"""Normalise and validate identifiers customers type (order numbers, tracking numbers, phone digits).

Customers type "dm２０２６１１０５１２ ", paste with zero-width characters, or probe with
``DM2026110512' OR '1'='1``. Everything is normalised first (NFKC turns full-width characters into
ASCII), checked for markup/SQL, then matched against the format in the policy file. Rejected input
is reported by a reason code only, so callers never echo unsafe text back.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from actions.orders.enums import Carrier
from actions.orders.errors import InvalidInput, InvalidOrderNumber
from actions.orders.policy import StorePolicy, get_policy

# Longer than any identifier we accept; checked before any regex so huge payloads cost nothing.
MAX_RAW_LENGTH = 64

REASON_EMPTY = "empty"
REASON_TOO_LONG = "too_long"
REASON_MARKUP = "markup"
REASON_SQL = "sql"
REASON_CONTROL = "control_characters"
REASON_FORMAT = "format"

_MARKUP_RE = re.compile(r"[<>]|&#|&[a-z]+;|javascript:|data:", re.IGNORECASE)
_SQL_RE = re.compile(
    r"['\"`;\\]|--|/\*|\*/|\b(select|union|insert|update|delete|drop|alter|create|exec|execute|"
    r"sleep|benchmark|waitfor|or|and|where|from|table|null)\b|=",
    re.IGNORECASE,
)
_INNER_SPACE_RE = re.compile(r"\s+")


@dataclass(frozen=True)
class TrackingNumber:
    """A validated tracking number and the carrier its format belongs to."""

    carrier: Carrier
    number: str


def _clean(raw: str) -> str:
    """NFKC-normalise, drop invisible format characters, trim; raise for empty/oversized/control input."""
    if len(raw) > MAX_RAW_LENGTH:
        raise InvalidOrderNumber(REASON_TOO_LONG)
    text = unicodedata.normalize("NFKC", raw)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")  # zero-width space, BOM...
    text = text.strip()
    if not text:
        raise InvalidOrderNumber(REASON_EMPTY)
    if any(unicodedata.category(ch) == "Cc" and not ch.isspace() for ch in text):
        raise InvalidOrderNumber(REASON_CONTROL)
    return text


def unsafe_reason(text: str) -> str | None:
    """Return "markup" or "sql" when ``text`` carries HTML/script or SQL syntax, else None."""
    if _MARKUP_RE.search(text):
        return REASON_MARKUP
    if _SQL_RE.search(text):
        return REASON_SQL
    return None


def normalise_order_number(raw: str, policy: StorePolicy | None = None) -> str:
    """Return the canonical order number (e.g. "DM2026110512") or raise :class:`InvalidOrderNumber`.

    Args:
        raw: what the customer typed or the NLU extracted.
        policy: store policy giving the format; default: the repository policy file.
    """
    text = _clean(raw)
    reason = unsafe_reason(text)
    if reason:
        raise InvalidOrderNumber(reason)
    candidate = _INNER_SPACE_RE.sub("", text).upper()
    pattern = (policy or get_policy()).identifiers.order_number.pattern
    if not re.fullmatch(pattern, candidate):
        raise InvalidOrderNumber(REASON_FORMAT)
    return candidate


def is_valid_order_number(raw: str, policy: StorePolicy | None = None) -> bool:
    """Boolean form of :func:`normalise_order_number` for slot validation."""
    try:
        normalise_order_number(raw, policy)
    except InvalidOrderNumber:
        return False
    return True


def normalise_tracking_number(raw: str, policy: StorePolicy | None = None) -> TrackingNumber:
    """Return the tracking number with its carrier, or raise :class:`InvalidInput`."""
    try:
        text = _clean(raw)
    except InvalidOrderNumber as exc:
        raise InvalidInput("tracking_number", exc.reason) from exc
    reason = unsafe_reason(text)
    if reason:
        raise InvalidInput("tracking_number", reason)
    candidate = _INNER_SPACE_RE.sub("", text).upper()
    matches = [
        carrier
        for carrier, info in (policy or get_policy()).carriers.items()
        if re.fullmatch(info.tracking_pattern, candidate)
    ]
    if len(matches) != 1:  # none, or formats that overlap (a policy error we refuse to guess about)
        raise InvalidInput("tracking_number", REASON_FORMAT)
    return TrackingNumber(matches[0], candidate)


def normalise_phone_digits(raw: str, policy: StorePolicy | None = None) -> str:
    """Return the verification digits (last N of the phone, N from policy) or raise :class:`InvalidInput`."""
    digits_needed = (policy or get_policy()).identifiers.phone.verification_digits
    try:
        text = _INNER_SPACE_RE.sub("", _clean(raw))
    except InvalidOrderNumber as exc:
        raise InvalidInput("phone_last_digits", exc.reason) from exc
    if not (text.isascii() and text.isdigit() and len(text) == digits_needed):
        raise InvalidInput("phone_last_digits", REASON_FORMAT)
    return text


def normalise_phone(raw: str, policy: StorePolicy | None = None) -> str:
    """Return a full mobile number in canonical form (digits only, optional +86 dropped) or raise."""
    try:
        text = _INNER_SPACE_RE.sub("", _clean(raw)).replace("-", "")
    except InvalidOrderNumber as exc:
        raise InvalidInput("phone", exc.reason) from exc
    text = text.removeprefix("+86")  # country code of mainland China mobile numbers
    if not re.fullmatch((policy or get_policy()).identifiers.phone.pattern, text):
        raise InvalidInput("phone", REASON_FORMAT)
    return text
