"""What agents and external helpdesks must not see: verification digits and full phone numbers.

The phone digits a customer types to unlock an order are a password: whoever has them can verify the order again.
The last 4 digits of the customer's phone usually ARE that password, so a masked phone keeps only its first three
digits (the carrier prefix, e.g. ``138********``), never its tail. Used at the source (the action server's handoff
request, :func:`handoff.context.build_context`) and once more by the desk before it stores a package
(:func:`scrub_stored`), and for the live transcript an agent reads.

Pure standard library + ``bot/`` (shared with the action server); no I/O.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from bot.shared.identifier_formats import get_identifier_formats
from bot.shared.text import to_halfwidth

_FORMATS = get_identifier_formats()  # data/store_policy.yml: what a phone number is, how many digits verify


class _WrittenPhone:
    """A mobile number as customers write it: also with +86 / 0086 and spaces or dashes between the 3-4-4 groups.
    The written form is found by ``written``; the 11 digits must then match the policy's phone format
    (``identifiers.phone.pattern``). Offers ``finditer`` and ``sub`` like a compiled pattern."""

    written = re.compile(r"(?<![0-9])(?:(?:\+|00)?86[\s-]?)?([0-9]{3})[\s-]?([0-9]{4})[\s-]?([0-9]{4})(?![0-9])")

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        pos = 0
        while True:
            m = self.written.search(text, pos)
            if m is None:
                return
            if _FORMATS.is_phone("".join(m.groups())):
                yield m
                pos = m.end()
            else:  # not a phone of the policy's format: look again from the next character
                pos = m.start() + 1

    def sub(self, repl: Callable[[re.Match[str]], str], text: str) -> str:
        return _splice(text, self.finditer(text), repl)


PHONE_RE = _WrittenPhone()
# A customer message that is nothing but a short number is an answer to a prompt: verification digits, a code.
BARE_DIGITS_RE = re.compile(r"^\s*[0-9][0-9\s-]{2,8}[0-9]\s*$")
DIGIT_RUN_RE = re.compile(r"(?<![0-9])[0-9]{3,8}(?![0-9])")
MASK = "*"
VERIFICATION_DIGITS = _FORMATS.verification_digits  # data/store_policy.yml identifiers.phone.verification_digits

# Slots that hold verification secrets: dropped (``verified_orders`` keeps only which orders were verified).
SECRET_SLOTS = ("phone_last4",)
VERIFIED_SLOT = "verified_orders"
PHONE_SLOTS = ("phone",)
ADDRESS_SLOT = "pending_address"
ADDRESS_TEXT_SLOT = "new_address"
REQUESTED_SLOT = "requested_slot"
# Identifiers and times, never personal data: left exactly as they are (a hex id may contain "5310").
ID_KEYS = frozenset({"conversation_id", "conversation_ref", "handoff_id", "id", "ts", "created_at", "$schema",
                     "schema_version", "sender_id", "ticket_id"})


def mask_phone(prefix: str) -> str:
    """``138`` -> ``138********``: enough to tell mobile numbers apart by carrier, nothing to verify with."""
    return prefix + MASK * 8


def _replace_on_halfwidth(text: str, pattern: Any, repl: Any) -> str:
    """Find on a half-width copy (full-width digits count too; same length, so spans map 1:1), replace in the
    original."""
    half = to_halfwidth(text)
    if len(half) != len(text):  # defensive: never mis-align
        half = text
    return _splice(text, pattern.finditer(half), repl)


def _splice(text: str, matches: Iterable[re.Match[str]], repl: Callable[[re.Match[str]], str]) -> str:
    """``text`` with the span of every match (in order, not overlapping) replaced by ``repl(match)``."""
    out, last = [], 0
    for m in matches:
        out.append(text[last:m.start()])
        out.append(repl(m))
        last = m.end()
    out.append(text[last:])
    return "".join(out)


def phones_in(text: str) -> list[str]:
    """Full phone numbers (11 digits) found in ``text``."""
    return ["".join(m.groups()) for m in PHONE_RE.finditer(to_halfwidth(text))]


class Redactor:
    """Masks phones and a set of known secret digit strings in any text; pure and idempotent."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: set[str] = {s for s in (str(x).strip() for x in secrets) if s.isdigit() and len(s) >= 3}
        self._secret_re = (
            re.compile(r"(?<![0-9A-Za-z])(?:" + "|".join(sorted(map(re.escape, self.secrets), key=len, reverse=True))
                       + r")(?![0-9A-Za-z])") if self.secrets else None
        )

    # ---------------------------------------------------------------- building

    @classmethod
    def from_sources(cls, tracker: dict[str, Any] | None, texts: Iterable[str] = ()) -> Redactor:
        """Secrets known from the tracker (verification slots, answers typed while the bot asked for the phone
        digits) and the tails of every phone number in the conversation."""
        secrets: set[str] = set()
        tracker = tracker or {}
        slots = tracker.get("slots") or {}
        for name in SECRET_SLOTS:
            secrets.update(_digit_values(slots.get(name)))
        verified = slots.get(VERIFIED_SLOT)
        if isinstance(verified, dict):
            for value in verified.values():
                secrets.update(_digit_values(value))
        all_texts = list(texts)
        requested = None
        for event in tracker.get("events") or []:
            kind = event.get("event")
            if kind == "slot" and event.get("name") == REQUESTED_SLOT:
                requested = event.get("value")
            elif kind == "slot" and event.get("name") in SECRET_SLOTS:
                secrets.update(_digit_values(event.get("value")))
            elif kind == "active_loop" and not event.get("name"):
                requested = None
            elif kind == "user":
                text = str(event.get("text") or "")
                all_texts.append(text)
                if requested in SECRET_SLOTS:  # an answer to "the last 4 digits of your phone?" (right or wrong)
                    secrets.update(DIGIT_RUN_RE.findall(to_halfwidth(PHONE_RE.sub(
                        lambda m: m.group(3), to_halfwidth(text)))))
        for value in [slots.get(n) for n in PHONE_SLOTS] + all_texts:
            for phone in phones_in(str(value or "")):
                secrets.add(phone[-VERIFICATION_DIGITS:])
        return cls(secrets)

    # ---------------------------------------------------------------- applying

    def text(self, text: str, *, customer: bool = False) -> str:
        """Phones masked, secret digit strings replaced by ``****``; a customer message that is only a short
        number is masked whole (an answer to a prompt, whatever the digits were)."""
        if not isinstance(text, str) or not text:
            return text
        out = _replace_on_halfwidth(text, PHONE_RE, lambda m: mask_phone(m.group(1)))
        if self._secret_re is not None:
            out = _replace_on_halfwidth(out, self._secret_re, lambda m: MASK * len(m.group(0)))
        if customer and BARE_DIGITS_RE.match(to_halfwidth(out)):
            out = re.sub(r"[0-9０-９]", MASK, out)
        return out

    def deep(self, value: Any) -> Any:
        """Every string inside dicts/lists redacted (keys too, identifiers in ID_KEYS kept); others unchanged."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(k) if isinstance(k, str) else k: v if k in ID_KEYS else self.deep(v)
                    for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.deep(v) for v in value]
        return value

    def message(self, message: dict[str, Any]) -> dict[str, Any]:
        """A chat message (``role``, ``text``, ...) as an agent may see it."""
        out = dict(message)
        out["text"] = self.text(str(message.get("text") or ""), customer=message.get("role") == "customer")
        return out

    def slots(self, slots: dict[str, Any]) -> dict[str, Any]:
        """Slots without verification secrets: digits dropped, verified orders as a list of order numbers,
        phone masked, the pending address summarised to its region."""
        out: dict[str, Any] = {}
        address = slots.get(ADDRESS_SLOT)
        for name, value in slots.items():
            if name in SECRET_SLOTS:
                continue
            if name == VERIFIED_SLOT:
                out[name] = sorted(str(k) for k in value) if isinstance(value, dict) else []
            elif name == ADDRESS_SLOT:
                out[name] = summarise_address(value)
            elif name == ADDRESS_TEXT_SLOT and isinstance(address, dict):
                out[name] = summarise_address(address)
            else:
                out[name] = self.deep(value)
        return out


def summarise_address(address: Any) -> str:
    """The region of a parsed address ("广东省 深圳市 南山区 (…)"); recipient, phone and street withheld."""
    if isinstance(address, dict):
        region = " ".join(str(address.get(k) or "") for k in ("province", "city", "district")).strip()
        return f"{region} (recipient, phone and street withheld)" if region else "(address withheld)"
    return "(address withheld)" if address else ""


def _digit_values(value: Any) -> list[str]:
    if value is None or isinstance(value, bool):
        return []
    text = to_halfwidth(str(value))
    return DIGIT_RUN_RE.findall(text) or ([text] if text.isdigit() else [])


GENERIC = Redactor()


def scrub_stored(package: dict[str, Any], redactor: Redactor | None = None) -> dict[str, Any]:
    """The desk's last check before a package (or request) is stored or sent: secret slots removed wherever they
    appear, every string redacted again. Idempotent (a masked phone no longer matches)."""
    redactor = redactor or GENERIC

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            cleaned = {}
            for k, v in value.items():
                if k in SECRET_SLOTS:
                    continue
                if k in ID_KEYS:
                    cleaned[k] = v
                elif k == VERIFIED_SLOT and isinstance(v, dict):
                    cleaned[k] = sorted(str(x) for x in v)
                elif k == ADDRESS_SLOT and isinstance(v, dict):
                    cleaned[k] = summarise_address(v)
                else:
                    cleaned[k] = walk(v)
            return cleaned
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, str):
            return redactor.text(value)
        return value

    return walk(package)
