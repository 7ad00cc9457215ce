"""Who may see an order in this conversation: verification state, lock-out, the customer token, the backend handle.

The authority is server-side (:mod:`actions.verification_store`, in Redis): a verification record per conversation
and order that expires when idle, and failure windows per order number and per client that no new conversation or
``/restart`` resets. The tracker cannot vouch for anything: whoever reaches the action server writes it.
Slots only steer the dialogue: ``verified_orders`` (which orders this conversation verified),
``verification_failures`` and ``lookups_locked_until`` (unix time; the flow action then explains the lock).
The limits come from settings, never from code.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from rasa_sdk import Tracker
from redis.exceptions import RedisError

from actions import customer_token
from actions.orders.errors import BackendTimeout, OrderServiceError
from actions.orders.factory import build_order_service
from actions.orders.policy import StorePolicy, get_policy
from actions.orders.service import OrderInfo, OrderService, utc_now
from actions.settings import ActionServerSettings, get_settings
from actions.verification_store import Limits, VerificationStore  # noqa: F401 - Limits: tests build it from here

T = TypeVar("T")
logger = logging.getLogger(__name__)

SLOT_ORDER_NUMBER = "order_number"
SLOT_PHONE_LAST4 = "phone_last4"
SLOT_VERIFIED = "verified_orders"
SLOT_FAILURES = "verification_failures"
SLOT_LOCKED_UNTIL = "lookups_locked_until"
SLOT_LOOKUP_ERROR = "order_lookup_error"
SLOT_LOOKUP_STOPPED = "order_lookup_stopped"  # the customer said bye / never mind while the form was asking
SLOT_CUSTOMER_ID = "customer_id"  # the verified order's customer (never the phone digits); see remember_customer
SLOT_CUSTOMER_TIER = "customer_tier"  # that customer's membership tier (escalation thresholds, VIP priority)
TOKEN_METADATA_KEY = "customer_token"  # noqa: S105 - a metadata key


# The action server's one settings class (actions/settings.py): verification limits, token secret, Redis, timeouts.
FlowSettings = ActionServerSettings
flow_settings = get_settings  # tests replace this function with their own settings


_service: OrderService | None = None
_clock: Callable[[], datetime] = utc_now
_store: tuple[asyncio.AbstractEventLoop, VerificationStore] | None = None
CLIENT_METADATA_KEY = "client"  # set by the gateway (a pseudonym of the customer's address), never by the customer


def reset() -> None:
    """Forget cached settings and the store (tests that change the environment)."""
    global _store
    clear = getattr(flow_settings, "cache_clear", None)  # tests may have replaced the function
    if clear is not None:
        clear()
    _store = None


def store() -> VerificationStore:
    """The verification store of the running event loop, built from settings at first use (never at import)."""
    global _store
    loop = asyncio.get_running_loop()
    if _store is None or _store[0] is not loop:
        settings = flow_settings()
        _store = (loop, VerificationStore(settings.redis_url, settings.idle_minutes * 60, settings.store_limits()))
    return _store[1]


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


def client_key(tracker: Tracker) -> str:
    """Who is asking, for failure counting: the gateway's client pseudonym, else the conversation."""
    metadata = _latest_metadata(tracker)
    value = metadata.get(CLIENT_METADATA_KEY) if metadata else None
    return f"client:{value}" if isinstance(value, str) and value else f"conversation:{tracker.sender_id}"


async def verified_last4(tracker: Tracker, number: str | None) -> str | None:
    """The phone digits that verified ``number`` in this conversation (server-side record, renewed on use), None
    when it is not verified or the verification expired. Slots claiming otherwise are ignored."""
    if not number:
        return None
    return await store().digits(tracker.sender_id, number)


async def remember_verified(tracker: Tracker, number: str, digits: str) -> dict[str, str]:
    """Record a successful verification; returns the new value of the ``verified_orders`` slot."""
    await store().remember(tracker.sender_id, number, digits)
    await store().clear_order_failures(number)
    return {**verified_orders(tracker), number: digits}


async def remember_customer(tracker: Tracker, order: OrderInfo) -> dict[str, Any]:
    """Record who this conversation proved to be - the customer of ``order``, which the caller has just verified
    server-side (phone digits checked by the order service, or a signed token naming the order's customer) - and
    return the ``customer_id`` / ``customer_tier`` slot values. Nothing else sets these slots."""
    customer_id, tier = str(order.customer_id), str(order.membership_tier.value)
    await store().remember_customer(tracker.sender_id, customer_id, tier)
    return {SLOT_CUSTOMER_ID: customer_id, SLOT_CUSTOMER_TIER: tier}


async def verified_customer(tracker: Tracker) -> dict[str, Any]:
    """The ``customer_id`` / ``customer_tier`` slot values the server itself vouches for, whatever the tracker says:
    the customer recorded at verification in this conversation, else the one the gateway recorded for it because
    its channel identity was linked by an earlier verification (conversations/customers.py), else the customer of a
    valid signed token in the latest message (tier from one of their orders), else none (both None). Never raises:
    without Redis the customer is simply unknown (a handoff must not fail for it)."""
    try:
        return await _verified_customer(tracker)
    except (RedisError, OSError) as exc:
        logger.warning("verified customer unknown (store unavailable): %s", exc)
        return {SLOT_CUSTOMER_ID: None, SLOT_CUSTOMER_TIER: None}


async def _verified_customer(tracker: Tracker) -> dict[str, Any]:
    known = await store().customer(tracker.sender_id) or await store().linked_customer(tracker.sender_id)
    if known is not None:
        return {SLOT_CUSTOMER_ID: known[0], SLOT_CUSTOMER_TIER: known[1] or None}
    token_customer = token_customer_id(tracker)
    if token_customer is not None:
        try:
            orders = await call_backend(order_service().list_orders_for_customer, token_customer, limit=1)
            if orders:
                return await remember_customer(tracker, await call_backend(order_service().get_order,
                                                                           orders[0].number))
        except OrderServiceError:
            pass  # backend trouble: the customer is still the token's, of unknown tier
        return {SLOT_CUSTOMER_ID: str(token_customer), SLOT_CUSTOMER_TIER: None}
    return {SLOT_CUSTOMER_ID: None, SLOT_CUSTOMER_TIER: None}


async def forget_verified(tracker: Tracker, number: str) -> dict[str, str]:
    await store().forget(tracker.sender_id, number)
    return {k: d for k, d in verified_orders(tracker).items() if k != number}


async def locked_until(tracker: Tracker, number: str | None = None) -> float | None:
    """Unix time until which lookups are locked, None when not locked: this order or this client is over its
    failure limit (server-side), or the conversation's own lock has not expired."""
    value = tracker.get_slot(SLOT_LOCKED_UNTIL)
    own = float(value) if isinstance(value, (int, float)) and value > now_ts() else None
    number = number or tracker.get_slot(SLOT_ORDER_NUMBER)
    left_s = await store().locked_for_s(number, client_key(tracker))
    shared = now_ts() + left_s if left_s is not None else None  # the store counts real time; flows use now()
    return max((t for t in (own, shared) if t is not None), default=None)


async def record_failure(tracker: Tracker, number: str) -> int:
    """Count a wrong answer for the order and the client; returns the attempts left (0: locked)."""
    return await store().record_failure(number, client_key(tracker))


def minutes_left(until: float, at: float | None = None) -> int:
    return max(1, int(-(-(until - (now_ts() if at is None else at)) // 60)))


def _latest_metadata(tracker: Tracker) -> dict[str, Any] | None:
    metadata: Any = None
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            metadata = event.get("metadata")
            break
    if not isinstance(metadata, dict):
        metadata = (tracker.latest_message or {}).get("metadata")
    return metadata if isinstance(metadata, dict) else None


def token_customer_id(tracker: Tracker) -> int | None:
    """The customer the website vouches for in the latest message's metadata, None without a valid token."""
    metadata = _latest_metadata(tracker)
    if metadata is None:
        return None
    secret = flow_settings().customer_token_secret
    return customer_token.verify(metadata.get(TOKEN_METADATA_KEY), secret.get_secret_value() if secret else None)
