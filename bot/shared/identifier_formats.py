"""Identifier formats of the store (order, tracking and phone numbers), read from ``data/store_policy.yml``.

The policy file is the one place these formats are written down (``identifiers`` and ``carriers.*.tracking_pattern``);
the NLU extractor (:mod:`bot.shared.patterns`), the redaction of phone numbers (:mod:`bot.shared.redact`) and the
action server (:mod:`actions.orders.validation`, through the typed ``StorePolicy``) all take them from there, so a
merchant with other formats edits the file, not the code.

Each format is a full-match regular expression anchored with ``^...$``; :meth:`IdentifierFormats.body` gives it
without anchors, to search in free text. Pure (PyYAML + standard library), imported on Python 3.10 and 3.11.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from bot.shared.paths import REPO_ROOT

POLICY_PATH = REPO_ROOT / "data" / "store_policy.yml"


@dataclass(frozen=True)
class IdentifierFormats:
    """The formats of one policy file."""

    order_number: str
    """Full-match pattern of an order number (``identifiers.order_number.pattern``)."""
    phone: str
    """Full-match pattern of a mobile phone number, digits only (``identifiers.phone.pattern``)."""
    verification_digits: int
    """How many last digits of the phone on the order a customer types to verify it."""
    tracking: tuple[tuple[str, str], ...]
    """``(carrier, full-match pattern)`` of every carrier's tracking numbers, in file order."""

    @staticmethod
    def body(pattern: str) -> str:
        """``^DM[0-9]{10}$`` -> ``(?:DM[0-9]{10})``: the pattern without anchors, as one group, to search text."""
        return f"(?:{pattern[1:-1]})"

    def is_order_number(self, candidate: str) -> bool:
        return re.fullmatch(self.order_number, candidate) is not None

    def is_phone(self, candidate: str) -> bool:
        return re.fullmatch(self.phone, candidate) is not None


def _anchored(where: str, pattern: Any) -> str:
    if not isinstance(pattern, str) or not pattern.startswith("^") or not pattern.endswith("$") or len(pattern) < 3:
        raise ValueError(f"{where}: expected a regular expression anchored with ^...$, got {pattern!r}")
    re.compile(pattern)  # a broken pattern fails here, at start-up, with its place in the file
    return pattern


def formats_from_policy(policy: dict[str, Any]) -> IdentifierFormats:
    """The identifier formats of a parsed policy document (the ``identifiers`` and ``carriers`` sections)."""
    identifiers = policy["identifiers"]
    digits = identifiers["phone"]["verification_digits"]
    if not isinstance(digits, int) or isinstance(digits, bool) or digits <= 0:
        raise ValueError(f"identifiers.phone.verification_digits: expected a positive integer, got {digits!r}")
    return IdentifierFormats(
        order_number=_anchored("identifiers.order_number.pattern", identifiers["order_number"]["pattern"]),
        phone=_anchored("identifiers.phone.pattern", identifiers["phone"]["pattern"]),
        verification_digits=digits,
        tracking=tuple(
            (str(carrier), _anchored(f"carriers.{carrier}.tracking_pattern", info["tracking_pattern"]))
            for carrier, info in (policy.get("carriers") or {}).items()
        ),
    )


def load_identifier_formats(path: str | Path | None = None) -> IdentifierFormats:
    """Read the formats from a policy file (default: the repository's ``data/store_policy.yml``)."""
    with Path(path or POLICY_PATH).open(encoding="utf-8") as handle:
        return formats_from_policy(yaml.safe_load(handle))


@lru_cache(maxsize=4)
def get_identifier_formats(path: str | None = None) -> IdentifierFormats:
    """Cached :func:`load_identifier_formats` (the file is read once per process)."""
    return load_identifier_formats(path)
