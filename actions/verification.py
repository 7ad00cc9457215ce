"""Who may see an order in this conversation: verification state, lock-out, the customer token, the backend handle.

Verification state lives in slots, so it is per conversation and survives action-server restarts:
``verified_orders`` maps an order number to the phone digits that unlocked it (the service needs them for
state-changing calls), ``verification_failures`` counts wrong answers, ``lookups_locked_until`` (unix time)
blocks every lookup after too many of them. The limits come from settings, never from code.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import Any, TypeVar

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from rasa_sdk import Tracker

from actions import customer_token
from actions.orders.errors import BackendTimeout
from actions.orders.factory import build_order_service
from actions.orders.policy import StorePolicy, get_policy
from actions.orders.service import OrderService, utc_now
from actions.orders.settings import get_settings

T = TypeVar("T")

SLOT_ORDER_NUMBER = "order_number"
SLOT_PHONE_LAST4 = "phone_last4"
SLOT_VERIFIED = "verified_orders"
SLOT_FAILURES = "verification_failures"
SLOT_LOCKED_UNTIL = "lookups_locked_until"
SLOT_LOOKUP_ERROR = "order_lookup_error"
SLOT_LOOKUP_STOPPED = "order_lookup_stopped"  # the customer said bye / never mind while the form was asking
TOKEN_METADATA_KEY = "customer_token"  # noqa: S105 - a metadata key


class FlowSettings(BaseSettings):
    """Verification limits and the token secret (environment / ``.env``)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    customer_token_secret: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("CUSTOMER_TOKEN_SECRET")
    )
    max_attempts: int = Field(default=3, gt=0, validation_alias=AliasChoices("VERIFICATION_MAX_ATTEMPTS"))
    lock_minutes: int = Field(default=15, gt=0, validation_alias=AliasChoices("VERIFICATION_LOCK_MINUTES"))
    # Longest the bot waits for the order backend before apologising (the customer is waiting too).
    backend_timeout_s: float = Field(default=2.0, gt=0, validation_alias=AliasChoices("ORDER_LOOKUP_TIMEOUT_S"))


@lru_cache(maxsize=1)
def flow_settings() -> FlowSettings:
    return FlowSettings()


_service: OrderService | None = None
_clock: Callable[[], datetime] = utc_now


def now() -> datetime:
    """The flows' "now" (windows, holds, locks); tests fix it with :func:`set_clock`."""
    return _clock()


def set_clock(clock: Callable[[], datetime] | None) -> None:
    global _clock
    _clock = clock or utc_now


def order_service() -> OrderService:
    """The process-wide OrderService, built from settings at first use (never at import)."""
    global _service
    if _service is None:
        _service = build_order_service()
    return _service


def set_order_service(service: OrderService | None) -> None:
    """Tests inject a service bound to their own database (None: build from settings again)."""
    global _service
    _service = service


def policy() -> StorePolicy:
    return get_policy(str(get_settings().policy_path))


async def call_backend(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking service call off the event loop; slower than the configured limit counts as a timeout."""
    try:
        return await asyncio.wait_for(
            asyncio.to_thread(functools.partial(fn, *args, **kwargs)), timeout=flow_settings().backend_timeout_s
        )
    except asyncio.TimeoutError as exc:
        raise BackendTimeout("order backend slower than the limit") from exc


def now_ts() -> float:
    return now().timestamp()


def verified_orders(tracker: Tracker) -> dict[str, str]:
    value = tracker.get_slot(SLOT_VERIFIED)
    return dict(value) if isinstance(value, dict) else {}


def verified_last4(tracker: Tracker, number: str | None) -> str | None:
    """The phone digits that verified ``number`` in this conversation, None when it is not verified."""
    return verified_orders(tracker).get(number) if number else None


def locked_until(tracker: Tracker, at: float | None = None) -> float | None:
    """Unix time until which lookups are locked, None when not locked (an expired lock is no lock)."""
    value = tracker.get_slot(SLOT_LOCKED_UNTIL)
    if isinstance(value, (int, float)) and value > (now_ts() if at is None else at):
        return float(value)
    return None


def failures(tracker: Tracker, at: float | None = None) -> int:
    """Wrong answers so far; they start again from zero once a lock has expired."""
    value = tracker.get_slot(SLOT_LOCKED_UNTIL)
    if isinstance(value, (int, float)) and locked_until(tracker, at) is None:
        return 0
    count = tracker.get_slot(SLOT_FAILURES)
    return int(count) if isinstance(count, (int, float)) else 0


def minutes_left(until: float, at: float | None = None) -> int:
    return max(1, int(-(-(until - (now_ts() if at is None else at)) // 60)))


def token_customer_id(tracker: Tracker) -> int | None:
    """The customer the website vouches for in the latest message's metadata, None without a valid token."""
    metadata: Any = None
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            metadata = event.get("metadata")
            break
    if not isinstance(metadata, dict):
        metadata = (tracker.latest_message or {}).get("metadata")
    if not isinstance(metadata, dict):
        return None
    secret = flow_settings().customer_token_secret
    return customer_token.verify(metadata.get(TOKEN_METADATA_KEY), secret.get_secret_value() if secret else None)
