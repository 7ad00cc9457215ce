"""Outbound webhook: pushes each context package to an external helpdesk (HANDOFF_WEBHOOK_URL).

Packages go through a Redis stream outbox, so a restart of the gateway does not drop them, and a background worker
delivers them with exponential backoff. Delivery never blocks or fails a handoff: after the last attempt the
package is marked ``failed`` on the handoff (``webhook_status``) for an operator to see.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError

from handoff import keys

logger = logging.getLogger(__name__)
LOCK_S = 30


class WebhookPusher:
    def __init__(self, redis: Redis, url: str, attempts: int, backoff_s: float, timeout_s: float,
                 http: httpx.AsyncClient | None = None) -> None:
        self._redis = redis
        self._url = url
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._http = http or httpx.AsyncClient(timeout=timeout_s)

    @property
    def enabled(self) -> bool:
        return bool(self._url)

    async def enqueue(self, handoff_id: str, delay_s: float = 0.0) -> None:
        if self.enabled:
            await self._redis.xadd(keys.webhook_outbox(), {"handoff_id": handoff_id, "attempt": 0,
                                                           "due": time.time() + delay_s})
            await self._redis.hset(keys.handoff(handoff_id), "webhook_status", "pending")

    async def run_once(self) -> int:
        """Try every due package once; returns how many were delivered."""
        delivered = 0
        for entry_id, data in await self._redis.xrange(keys.webhook_outbox(), count=100):
            d = {k.decode(): v.decode() for k, v in data.items()}
            if float(d["due"]) > time.time():
                continue
            lock = f"{keys.webhook_outbox()}:lock:{entry_id.decode()}"
            if not await self._redis.set(lock, "1", nx=True, ex=LOCK_S):
                continue  # another gateway process is delivering it
            handoff_id, attempt = d["handoff_id"], int(d["attempt"]) + 1
            context = await self._redis.hget(keys.handoff(handoff_id), "context")
            ok = context is not None and await self._post(context)
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.xdel(keys.webhook_outbox(), entry_id)
                if ok:
                    pipe.hset(keys.handoff(handoff_id), mapping={"webhook_status": "delivered",
                                                                 "webhook_attempts": attempt})
                elif attempt >= self._attempts or context is None:
                    pipe.hset(keys.handoff(handoff_id), mapping={"webhook_status": "failed",
                                                                 "webhook_attempts": attempt})
                else:
                    due = time.time() + self._backoff_s * 2 ** (attempt - 1)
                    pipe.xadd(keys.webhook_outbox(), {"handoff_id": handoff_id, "attempt": attempt, "due": due})
                    pipe.hset(keys.handoff(handoff_id), "webhook_attempts", attempt)
                await pipe.execute()
            delivered += int(ok)
        return delivered

    async def _post(self, context: bytes) -> bool:
        try:
            response = await self._http.post(self._url, content=context,
                                             headers={"content-type": "application/json"})
        except httpx.HTTPError as exc:
            logger.warning("webhook %s unreachable: %s", self._url, exc.__class__.__name__)
            return False
        if not 200 <= response.status_code < 300:
            logger.warning("webhook %s answered HTTP %s", self._url, response.status_code)
            return False
        return True

    async def run_forever(self, interval_s: float = 0.5) -> None:
        while True:
            try:
                await self.run_once()
            except (RedisError, OSError, json.JSONDecodeError) as exc:
                logger.warning("webhook worker: %s; retrying", exc)
            await asyncio.sleep(interval_s)

    async def close(self) -> None:
        await self._http.aclose()
