"""Outbound webhook: pushes each context package to an external helpdesk (HANDOFF_WEBHOOK_URL).

Packages go through a Redis stream outbox, so a restart of the gateway does not drop them, and a background worker
delivers them with exponential backoff. Delivery never blocks or fails a handoff: after the last attempt the
package is marked ``failed`` on the handoff (``webhook_status``) for an operator to see.

Signed like Stripe/GitHub webhooks: header ``X-Csbot-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret,
"<t>.<raw body>")>`` with HANDOFF_WEBHOOK_SECRET; a URL without a secret refuses to start. Receivers check it with
:func:`verify_signature` (constant-time compare, replay window). The body carries no chat credential: the
customer's conversation id (whoever holds it can read and write the chat) is replaced by ``conversation_ref``, an
opaque keyed hash that is stable per conversation (to group handoffs) and cannot be turned back into the id.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from typing import Any

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot.shared.redact import scrub_stored
from conversations import keys
from conversations.redis_client import stopping

logger = logging.getLogger(__name__)
LOCK_S = 30
OUTBOX_MAXLEN = 10_000
SIGNATURE_HEADER = "X-Csbot-Signature"
EVENT_HEADER = "X-Csbot-Event"
MIN_SECRET_CHARS = 16


class WebhookConfigError(ValueError):
    """HANDOFF_WEBHOOK_URL without a usable HANDOFF_WEBHOOK_SECRET: nothing is sent unsigned."""


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The signature header value for ``body``: ``t=<unix>,v1=<hex HMAC-SHA256(secret, f"{t}.{body}")>``."""
    t = int(time.time() if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def verify_signature(secret: str, header: str | None, body: bytes | str, tolerance_s: int = 300,
                     now: float | None = None) -> bool:
    """For receivers: True when ``header`` (the X-Csbot-Signature value) signs exactly this raw ``body`` with
    ``secret`` and its timestamp is within ``tolerance_s`` of ``now`` (older or future ones are replays).

    Pass the raw request bytes, not re-serialised JSON. Several ``v1=`` entries are accepted (secret rotation)."""
    if not secret or not header:
        return False
    raw = body.encode() if isinstance(body, str) else bytes(body)
    timestamp, candidates = None, []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + raw, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, c) for c in candidates)


def conversation_ref(secret: str, conversation_id: str) -> str:
    """Opaque, stable reference of a conversation for outside systems (never the id itself)."""
    return "cr_" + hmac.new(secret.encode(), b"conversation:" + conversation_id.encode(),
                            hashlib.sha256).hexdigest()[:32]


def outbound_payload(context: dict[str, Any], secret: str) -> bytes:
    """The package as an external helpdesk receives it: redacted once more, conversation ids replaced by refs."""
    payload = scrub_stored(context)
    cid = payload.pop("conversation_id", None)
    payload["conversation_ref"] = conversation_ref(secret, cid) if cid else None
    payload["earlier_conversations"] = [
        {**{k: v for k, v in e.items() if k != "conversation_id"},
         "conversation_ref": conversation_ref(secret, e["conversation_id"]) if e.get("conversation_id") else None}
        for e in payload.get("earlier_conversations") or []
    ]
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


class WebhookPusher:
    def __init__(self, redis: Redis, url: str, attempts: int, backoff_s: float, timeout_s: float,
                 http: httpx.AsyncClient | None = None, secret: str = "") -> None:
        if url and len(secret) < MIN_SECRET_CHARS:
            raise WebhookConfigError(
                f"HANDOFF_WEBHOOK_URL is set but HANDOFF_WEBHOOK_SECRET is missing or shorter than "
                f"{MIN_SECRET_CHARS} characters: refusing to send unsigned handoff webhooks.")
        self._redis = redis
        self._url = url
        self._secret = secret
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._http = http or httpx.AsyncClient(timeout=timeout_s)

    @property
    def enabled(self) -> bool:
        return bool(self._url)

    async def enqueue(self, handoff_id: str, delay_s: float = 0.0) -> None:
        if self.enabled:
            await self._redis.xadd(keys.webhook_outbox(), {"handoff_id": handoff_id, "attempt": 0,
                                                           "due": time.time() + delay_s},
                                   maxlen=OUTBOX_MAXLEN, approximate=True)
            await self._redis.hset(keys.handoff(handoff_id), "webhook_status", "pending")

    async def run_once(self) -> int:
        """Try every due package once; returns how many were delivered."""
        delivered = 0
        for entry_id, data in await self._redis.xrange(keys.webhook_outbox(), count=100):
            d = {k.decode(): v.decode() for k, v in data.items()}
            if float(d["due"]) > time.time():
                continue
            if not await self._redis.set(keys.webhook_lock(entry_id.decode()), "1", nx=True, ex=LOCK_S):
                continue  # another gateway process is delivering it
            handoff_id, attempt = d["handoff_id"], int(d["attempt"]) + 1
            context = await self._redis.hget(keys.handoff(handoff_id), "context")
            ok = context is not None and await self._post(outbound_payload(json.loads(context), self._secret))
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.xdel(keys.webhook_outbox(), entry_id)
                if ok:
                    pipe.hset(keys.handoff(handoff_id), mapping={"webhook_status": "delivered",
                                                                 "webhook_attempts": attempt})
                elif context is None:
                    pass  # the handoff expired (retention): nothing left to send, and no record to mark
                elif attempt >= self._attempts:
                    pipe.hset(keys.handoff(handoff_id), mapping={"webhook_status": "failed",
                                                                 "webhook_attempts": attempt})
                else:
                    due = time.time() + self._backoff_s * 2 ** (attempt - 1)
                    pipe.xadd(keys.webhook_outbox(), {"handoff_id": handoff_id, "attempt": attempt, "due": due},
                              maxlen=OUTBOX_MAXLEN, approximate=True)
                    pipe.hset(keys.handoff(handoff_id), "webhook_attempts", attempt)
                await pipe.execute()
            delivered += int(ok)
        return delivered

    async def _post(self, body: bytes) -> bool:
        headers = {"content-type": "application/json", SIGNATURE_HEADER: sign(self._secret, body),
                   EVENT_HEADER: "handoff.created"}
        try:
            response = await self._http.post(self._url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            logger.warning("webhook %s unreachable: %s", self._url, exc.__class__.__name__)
            return False
        if not 200 <= response.status_code < 300:
            logger.warning("webhook %s answered HTTP %s", self._url, response.status_code)
            return False
        return True

    async def run_forever(self, interval_s: float = 0.5) -> None:
        while not stopping():
            try:
                await self.run_once()
            except (RedisError, OSError, json.JSONDecodeError) as exc:
                logger.warning("webhook worker: %s; retrying", exc)
            await asyncio.sleep(interval_s)

    async def close(self) -> None:
        await self._http.aclose()
