"""Server-side verification state in Redis: the one client the action server has for it.

Who proved what is never taken from the tracker (slots are written by whoever calls the action server, and a new
conversation or ``/restart`` clears them). This store keeps:

* **verification records** (:func:`actions.keys.verification_record`) -> the phone digits that unlocked the order in
  that conversation, expiring after ``VERIFICATION_IDLE_MINUTES`` without use (every use renews it);
* **the verified customer** (:func:`actions.keys.verified_customer`) -> ``<customer id>:<membership tier>`` of the
  order's customer (or of the website's signed token), same expiry: the only source of the ``customer_id`` and
  ``customer_tier`` slots;
* **failure windows** per order number and per client (the gateway's pseudonym of the customer's address), moving
  windows in Redis through the ``limits`` package: an order or a client over its limit stays locked for its window,
  whatever the conversation.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse_many

from actions.keys import verification_failures_prefix
from actions.keys import verification_record as record_key
from actions.keys import verified_customer as customer_key
from actions.redis_client import async_redis, moving_window
from conversations.keys import conversation_customer


@dataclass(frozen=True)
class Limits:
    order: str  # e.g. "3/15 minutes;10/day": wrong answers per order number
    client: str  # e.g. "10/hour;30/day": wrong answers per client, whichever orders they try


class VerificationStore:
    def __init__(self, redis_url: str, idle_s: int, limits: Limits) -> None:
        self._redis = async_redis(redis_url)  # retries a connection broken by a Redis restart
        self._limiter = moving_window(redis_url, verification_failures_prefix())
        self._idle_s = idle_s
        self._limits: dict[str, list[RateLimitItem]] = {"order": parse_many(limits.order),
                                                        "client": parse_many(limits.client)}

    async def close(self) -> None:
        await self._redis.aclose()

    # ------------------------------------------------------------------ verification records

    async def remember(self, conversation_id: str, order_number: str, digits: str) -> None:
        await self._redis.set(record_key(conversation_id, order_number), digits, ex=self._idle_s)

    async def digits(self, conversation_id: str, order_number: str) -> str | None:
        """The digits that verified the order in this conversation, renewing the idle expiry; None if none."""
        value = await self._redis.getex(record_key(conversation_id, order_number), ex=self._idle_s)
        return value.decode() if value else None

    async def forget(self, conversation_id: str, order_number: str) -> None:
        await self._redis.delete(record_key(conversation_id, order_number))

    async def remember_customer(self, conversation_id: str, customer_id: str, tier: str) -> None:
        """The customer behind a verified order (or a signed token) of this conversation. Also the conversation's
        customer record the gateway reads (``via = verified``): after this turn it links the conversation's channel
        identity to the customer (conversations/customers.py)."""
        record = json.dumps({"id": customer_id, "tier": tier, "via": "verified"})
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(customer_key(conversation_id), f"{customer_id}:{tier}", ex=self._idle_s)
            pipe.set(conversation_customer(conversation_id), record, ex=self._idle_s)
            await pipe.execute()

    async def linked_customer(self, conversation_id: str) -> tuple[str, str] | None:
        """(customer id, tier) the gateway recorded for this conversation because its channel identity (Telegram
        chat, WhatsApp number, WeChat OpenID, browser) was linked by an earlier verification; None if none."""
        raw = await self._redis.get(conversation_customer(conversation_id))
        try:
            value = json.loads(raw) if raw else None
        except ValueError:
            return None
        if not isinstance(value, dict) or not value.get("id"):
            return None
        return str(value["id"]), str(value.get("tier") or "")

    async def customer(self, conversation_id: str) -> tuple[str, str] | None:
        """(customer id, membership tier) this conversation proved, renewing the idle expiry; None if none."""
        value = await self._redis.getex(customer_key(conversation_id), ex=self._idle_s)
        if not value:
            return None
        customer_id, _, tier = value.decode().partition(":")
        return customer_id, tier

    # ------------------------------------------------------------------ failures and locks

    async def locked_for_s(self, order_number: str | None, client: str) -> float | None:
        """Seconds for which verification is still refused for this order or this client, None when it is not."""
        until = 0.0
        for kind, ident in (("order", order_number), ("client", client)):
            if not ident:
                continue
            for item in self._limits[kind]:
                if not await self._limiter.test(item, kind, ident):
                    stats = await self._limiter.get_window_stats(item, kind, ident)
                    until = max(until, stats.reset_time)
        left = until - time.time()
        return left if left > 0 else None

    async def record_failure(self, order_number: str, client: str) -> int:
        """Count a wrong answer for the order and the client; returns the attempts left on this order (0 = locked
        now, or the client is)."""
        for kind, ident in (("order", order_number), ("client", client)):
            for item in self._limits[kind]:
                await self._limiter.hit(item, kind, ident)
        if await self.locked_for_s(order_number, client) is not None:
            return 0
        first = self._limits["order"][0]
        stats = await self._limiter.get_window_stats(first, "order", order_number)
        return max(0, stats.remaining)

    async def clear_order_failures(self, order_number: str) -> None:
        """The right answer: earlier typos on this order no longer count (the client's count stays)."""
        for item in self._limits["order"]:
            await self._limiter.clear(item, "order", order_number)
