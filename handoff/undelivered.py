"""Handoffs the desk could not receive: delivered later, never dropped.

When ``action_handoff_to_human`` cannot reach the desk (gateway down, timeout, HTTP error) it keeps the request in
the stream ``csbot:handoffs:undelivered`` (keys.undelivered_handoffs()). Every gateway runs this consumer in its
lifespan; they share one Redis Streams consumer group, so each entry is worked on by one gateway at a time:

* new entries are read with XREADGROUP; a success (or a permanent refusal) is XACKed and XDELeted;
* a failed entry stays pending; it is re-claimed (XCLAIM, which also takes over entries of a gateway that died)
  once it has been idle for ``backoff_s * 2 ** (deliveries - 1)``;
* after ``attempts`` deliveries, or at once for a request that can never succeed (invalid body, conversation
  gone), a supervisor alert ``handoff_undelivered`` is raised with the request, and the entry is removed.

Creation is idempotent per conversation (HandoffService.create), so a re-send never queues a conversation twice.
When the handoff is queued the customer gets the gateway's "please hold on" notice (the bot had only said the
request was recorded, without a queue position).
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
import uuid
from typing import Any

from fastapi import HTTPException
from fastapi.exceptions import RequestValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from bot.shared.redact import scrub_stored
from conversations import keys
from conversations.messages import say_in
from conversations.redis_client import stopping
from conversations.store import ChatMessage, ConversationStore
from conversations.streams import ensure_group
from handoff.handoffs import HandoffService
from handoff.webhook import WebhookPusher

logger = logging.getLogger(__name__)
GROUP = "desk"
BATCH = 50


class PermanentFailure(Exception):
    """Retrying cannot help (the request is invalid or its conversation is gone)."""


class UndeliveredConsumer:
    def __init__(self, redis: Redis, desk: HandoffService, store: ConversationStore, webhook: WebhookPusher | None,
                 attempts: int, backoff_s: float, consumer: str | None = None) -> None:
        self.redis = redis
        self.desk = desk
        self.store = store
        self.webhook = webhook
        self.attempts = max(1, attempts)
        self.backoff_s = backoff_s
        self.consumer = consumer or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.stream = keys.undelivered_handoffs()
        self._group_ready = False

    async def ensure_group(self) -> None:
        if self._group_ready:
            return
        await ensure_group(self.redis, self.stream, GROUP)
        self._group_ready = True

    def due_after_ms(self, deliveries: int) -> int:
        """Idle time before delivery number ``deliveries + 1``."""
        return int(self.backoff_s * 1000 * 2 ** max(0, deliveries - 1))

    async def run_once(self, block_ms: int | None = None) -> int:
        """Work on new entries and on pending ones whose backoff has passed; returns how many were delivered."""
        await self.ensure_group()
        delivered = 0
        for entry_id, data, deliveries in await self._due_retries():
            delivered += await self._handle(entry_id, data, deliveries)
        try:
            batches = await self.redis.xreadgroup(GROUP, self.consumer, {self.stream: ">"}, count=BATCH,
                                                  block=block_ms)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self._group_ready = False  # the stream was deleted: recreate the group next time
            return delivered
        for _, entries in batches or []:
            for entry_id, data in entries:
                delivered += await self._handle(entry_id, data, 1)
        return delivered

    async def _due_retries(self) -> list[tuple[bytes, dict[bytes, bytes] | None, int]]:
        pending = await self.redis.xpending_range(self.stream, GROUP, min="-", max="+", count=BATCH)
        out = []
        for p in pending:
            deliveries = int(p["times_delivered"])
            wait_ms = self.due_after_ms(deliveries)
            if int(p["time_since_delivered"]) < wait_ms:
                continue
            claimed = await self.redis.xclaim(self.stream, GROUP, self.consumer, min_idle_time=wait_ms,
                                              message_ids=[p["message_id"]])
            for entry_id, data in claimed or []:  # empty when another gateway claimed it first
                out.append((entry_id, data, deliveries + 1))
        return out

    async def _handle(self, entry_id: bytes, data: dict[bytes, bytes] | None, deliveries: int) -> int:
        if not data:  # deleted meanwhile: nothing to send
            await self._done(entry_id)
            return 0
        fields = {k.decode(): v.decode() for k, v in data.items()}
        try:
            await self._deliver(fields)
        except PermanentFailure as exc:
            await self._give_up(entry_id, fields, deliveries, str(exc))
            return 0
        except Exception as exc:  # noqa: BLE001 - any failure is retried, then alerted; never dropped
            logger.warning("undelivered handoff %s: attempt %s failed: %s", entry_id, deliveries, exc)
            if deliveries >= self.attempts:
                await self._give_up(entry_id, fields, deliveries, f"{exc.__class__.__name__}: {exc}"[:300])
            return 0
        await self._done(entry_id)
        return 1

    async def _deliver(self, fields: dict[str, str]) -> None:
        from handoff.api.internal import parse_request  # the route's own validation (no import cycle at load)

        try:
            body = parse_request(fields.get("body", "").encode())
        except (RequestValidationError, HTTPException) as exc:
            raise PermanentFailure(f"invalid request: {exc}") from exc
        if not await self.store.exists(body.conversation_id):
            raise PermanentFailure("the conversation no longer exists")
        outcome, created = await self.desk.create(body.model_dump(mode="json"))
        if not created:
            return  # already open (a later request got through): nothing more to do
        if self.webhook is not None:
            await self.webhook.enqueue(outcome.handoff_id)
        if outcome.status == "queued" and await self.store.notice_once(body.conversation_id,
                                                                       f"{outcome.handoff_id}:queue"):
            await self.store.append(body.conversation_id,
                                    ChatMessage(role="system", text=say_in("queued", body.language)))

    async def _give_up(self, entry_id: bytes, fields: dict[str, str], deliveries: int, error: str) -> None:
        try:
            request: dict[str, Any] = scrub_stored(json.loads(fields.get("body") or "{}"))
        except ValueError:
            request = {}
        if not isinstance(request, dict):
            request = {}
        conversation_id = str(request.get("conversation_id") or "")[:64]
        since = float(fields.get("ts") or time.time())
        await self.desk.raise_alert(
            "handoff_undelivered", "", conversation_id, since=since,
            fields={"reason_code": str(request.get("reason_code") or "unknown")[:40],
                    "effective_priority": str(request.get("priority") or ""), "attempts": deliveries,
                    "error": error[:300], "request": json.dumps(request, ensure_ascii=False)[:20_000]})
        logger.error("undelivered handoff of %s given up after %s attempts: %s", conversation_id, deliveries, error)
        await self._done(entry_id)

    async def _done(self, entry_id: bytes) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.stream, GROUP, entry_id)
            pipe.xdel(self.stream, entry_id)
            await pipe.execute()

    async def run_forever(self, poll_s: float = 1.0, pause_s: float = 1.0) -> None:
        # Polls instead of XREADGROUP BLOCK, and checks for a pending cancellation itself: redis-py can swallow a
        # CancelledError that arrives during a command, which left this loop running and held up shutdown.
        while not stopping():
            try:
                if not await self.run_once(block_ms=None):
                    await asyncio.sleep(poll_s)
            except (RedisError, OSError) as exc:
                logger.warning("undelivered-handoff consumer: %s; retrying", exc)
                await asyncio.sleep(pause_s)
