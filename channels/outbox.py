"""The outbox: every message to a customer on an asynchronous channel leaves through here.

Two loops run in every gateway process (``channels/app.py`` lifespan); any number of gateways share the work:

* the **relay** watches the message streams of recently active channel conversations (the same streams the web
  chat's SSE reads) and hands what the desk wrote there - agent replies, the CSAT question, "handed back" and queue
  notices - to the outbox (``ChannelRoutes.flush``: compare-and-set on the conversation's cursor, so each message is
  handed on once however many gateways look). A conversation whose inbound turn is being answered is left to that
  turn, which flushes its replies itself as one batch. The desk never imports channels: it only writes the stream.
* the **workers**, one per enabled platform, read the platform's outbox stream ``csbot:chan:outbox:<platform>``
  through the consumer group ``outbox`` (each batch is worked on by one gateway at a time):

  - a batch is rendered into platform calls (``Channel.render``) and sent in order; each accepted call is counted
    in ``outbox_progress``, so a retried batch skips what the platform already accepted (no doubles);
  - after the platform accepted every call the entry is acknowledged (XACK) and deleted;
  - a failed call leaves the entry pending; it is re-claimed (XCLAIM, which also takes over the entries of a gateway
    that died) after ``backoff_s * 2 ** (attempts - 1)`` (capped); after ``attempts`` failures, or at once for a
    refusal retrying cannot fix, the batch goes to the dead-letter stream ``csbot:chan:outbox:dead`` (platform,
    conversation, error, messages: what supervisors read) and the next batch of the conversation may go;
  - a batch waits until the conversation's previous batch is done (order per conversation), and for the
    platform's rate limit (``limits`` moving window per platform, shared by all gateways).
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

from limits import parse
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from channels.base import Channel, DeliveryError
from channels.routes import ChannelRoutes
from conversations import keys, metrics
from conversations.redis_client import stopping
from conversations.streams import ensure_group

logger = logging.getLogger(__name__)
GROUP = "outbox"
BATCH = 20
WAIT_MS = 300  # a batch waiting for its predecessor or the rate limit is looked at again after this long


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def consumer_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class OutboxWorker:
    """Sends one platform's outbox batches."""

    def __init__(self, redis: Redis, channel: Channel, routes: ChannelRoutes, limiter: Any, rate: str,
                 attempts: int, backoff_s: float, backoff_max_s: float, dead_maxlen: int,
                 consumer: str | None = None) -> None:
        self.redis = redis
        self.channel = channel
        self.routes = routes
        self.limiter = limiter
        self.rate = parse(rate) if rate else None
        self.attempts = max(1, attempts)
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.dead_maxlen = dead_maxlen
        self.consumer = consumer or consumer_name()
        self.stream = keys.outbox(channel.name)
        self._group_ready = False

    async def ensure_group(self) -> None:
        if self._group_ready:
            return
        await ensure_group(self.redis, self.stream, GROUP)
        self._group_ready = True

    def due_after_ms(self, attempts: int) -> int:
        """Idle time before the next try of a batch that failed ``attempts`` times."""
        if attempts <= 0:
            return WAIT_MS
        return max(WAIT_MS, int(min(self.backoff_max_s, self.backoff_s * 2 ** (attempts - 1)) * 1000))

    async def run_once(self) -> int:
        """Work on due pending batches and on new ones; returns how many batches were completed."""
        await self.ensure_group()
        done = 0
        for entry_id, data in await self._due_retries():
            done += await self._handle(entry_id, data)
        try:
            batches = await self.redis.xreadgroup(GROUP, self.consumer, {self.stream: ">"}, count=BATCH)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self._group_ready = False
            return done
        for _, entries in batches or []:
            for entry_id, data in entries:
                done += await self._handle(entry_id, data)
        return done

    async def _due_retries(self) -> list[tuple[bytes, dict[bytes, bytes] | None]]:
        pending = await self.redis.xpending_range(self.stream, GROUP, min="-", max="+", count=BATCH * 5)
        out: list[tuple[bytes, dict[bytes, bytes] | None]] = []
        for p in pending:
            entry_id = _s(p["message_id"])
            attempts = int(await self.redis.hget(keys.outbox_progress(self.channel.name, entry_id), "attempts") or 0)
            wait_ms = self.due_after_ms(attempts)
            if int(p["time_since_delivered"]) < wait_ms:
                continue
            claimed = await self.redis.xclaim(self.stream, GROUP, self.consumer, min_idle_time=wait_ms,
                                              message_ids=[p["message_id"]])
            out.extend((entry_id, data) for entry_id, data in claimed or [])  # empty: another gateway has it
        return out

    async def _handle(self, entry_id: Any, data: dict[bytes, bytes] | None) -> int:
        entry_id = _s(entry_id)
        if not data:  # deleted meanwhile
            await self._ack(entry_id)
            return 0
        fields = {_s(k): _s(v) for k, v in data.items()}
        cid = fields.get("conversation_id", "")
        route = await self.routes.route(cid)
        if not route:
            await self._dead(entry_id, fields, {}, "the conversation no longer exists", 0)
            return 0
        if route.get("sent_upto", "0-0") != fields.get("prev", "0-0"):
            return 0  # the conversation's previous batch is not done yet: keep the order, look again soon
        progress_key = keys.outbox_progress(self.channel.name, entry_id)
        progress = {_s(k): int(v) for k, v in (await self.redis.hgetall(progress_key)).items()}
        try:
            calls = self.channel.render(json.loads(fields.get("messages") or "[]"), route)
        except (ValueError, KeyError, TypeError) as exc:
            await self._dead(entry_id, fields, route, f"cannot render: {exc}", progress.get("attempts", 0))
            return 0
        sent = progress.get("sent", 0)
        for call in calls[sent:]:
            if self.rate is not None and not await self.limiter.hit(self.rate, self.channel.name):
                return 0  # over the platform's rate: stays pending, tried again shortly (not a failure)
            try:
                await self._send(call, route)
            except DeliveryError as exc:
                metrics.error("outbox", "delivery_failed")
                attempts = int(await self.redis.hincrby(progress_key, "attempts", 1))
                await self.redis.expire(progress_key, 7 * 24 * 3600)
                if not exc.retryable or attempts >= self.attempts:
                    await self._dead(entry_id, fields, route, str(exc)[:500], attempts)
                else:
                    logger.warning("%s outbox %s: attempt %s failed: %s", self.channel.name, entry_id, attempts,
                                   exc)
                return 0
            await self.redis.hincrby(progress_key, "sent", 1)
            await self.redis.expire(progress_key, 7 * 24 * 3600)
        await self._complete(entry_id, cid, fields)
        return 1

    async def _send(self, call: Any, route: dict[str, str]) -> None:
        started = time.perf_counter()
        try:
            await self.channel.send(call, route)
        finally:
            metrics.OUTBOX_SEND_SECONDS.labels(channel=self.channel.name).observe(time.perf_counter() - started)

    async def _complete(self, entry_id: str, conversation_id: str, fields: dict[str, str]) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.channel_route(conversation_id), "sent_upto", fields.get("last", "0-0"))
            pipe.xack(self.stream, GROUP, entry_id)
            pipe.xdel(self.stream, entry_id)
            pipe.delete(keys.outbox_progress(self.channel.name, entry_id))
            await pipe.execute()

    async def _dead(self, entry_id: str, fields: dict[str, str], route: dict[str, str], error: str,
                    attempts: int) -> None:
        """Give up on a batch: visible to supervisors in the dead-letter stream; the conversation's next batch
        may go."""
        metrics.error("outbox", "dead_letter")
        logger.error("%s outbox: batch %s of %s given up after %s attempts: %s", self.channel.name, entry_id,
                     fields.get("conversation_id"), attempts, error)
        await self.redis.xadd(keys.outbox_dead(), {
            "platform": self.channel.name, "conversation_id": fields.get("conversation_id", ""),
            "error": error, "attempts": str(attempts), "messages": fields.get("messages", "[]"),
            "first_id": fields.get("prev", ""), "last_id": fields.get("last", ""), "ts": repr(time.time()),
        }, maxlen=self.dead_maxlen, approximate=True)
        if route:
            await self._complete(entry_id, fields.get("conversation_id", ""), fields)
        else:
            await self._ack(entry_id)

    async def _ack(self, entry_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.stream, GROUP, entry_id)
            pipe.xdel(self.stream, entry_id)
            pipe.delete(keys.outbox_progress(self.channel.name, entry_id))
            await pipe.execute()

    async def run_forever(self, poll_s: float = 0.2, pause_s: float = 1.0) -> None:
        # Polls (no XREADGROUP BLOCK) and checks for cancellation itself, as handoff/undelivered.py does.
        while not stopping():
            try:
                if not await self.run_once():
                    await asyncio.sleep(poll_s)
            except (RedisError, OSError) as exc:
                metrics.error("outbox", "redis")
                logger.warning("%s outbox: %s; retrying", self.channel.name, exc)
                await asyncio.sleep(pause_s)


class Relay:
    """Hands messages the desk wrote into channel conversations (agent replies, CSAT, notices) to the outbox."""

    def __init__(self, redis: Redis, routes: ChannelRoutes, max_conversations: int) -> None:
        self.redis = redis
        self.routes = routes
        self.max_conversations = max_conversations

    async def run_once(self) -> int:
        """One look at every watched conversation's stream; returns how many batches were handed on."""
        conversation_ids = await self.routes.active(self.max_conversations)
        if not conversation_ids:
            return 0
        cursors = await self.routes.cursors(conversation_ids)
        if not cursors:
            return 0
        streams = {keys.messages(cid): cursor for cid, cursor in cursors.items()}
        result = await self.redis.xread(streams, count=1)
        handed = 0
        prefix, suffix = keys.messages("\0").split("\0")
        for stream_key, _ in result or []:
            cid = _s(stream_key)[len(prefix):-len(suffix)]
            if await self.routes.held(cid):
                continue  # its inbound turn is answering; that turn flushes
            status, _messages = await self.routes.flush(cid)
            handed += status == "queued"
        return handed

    async def run_forever(self, poll_s: float = 0.2, pause_s: float = 1.0) -> None:
        while not stopping():
            try:
                await self.run_once()
                await asyncio.sleep(poll_s)
            except (RedisError, OSError) as exc:
                logger.warning("channel relay: %s; retrying", exc)
                await asyncio.sleep(pause_s)
