"""Which conversation a platform user is in, how to reach them, and which of its messages are already on their way.

* ``channel_user(platform, user)`` -> conversation id (expires with the conversation; a user who returns after that
  starts a new one). Two first messages of one user at once end up in the same conversation (Lua, atomic).
* ``channel_route(conversation)``: platform, address (JSON), last inbound time (WhatsApp's 24-hour window), and the
  delivery state: ``cursor`` = last message-stream id handed on (to the outbox, or answered passively),
  ``last_batch`` = last id of the newest outbox batch, ``sent_upto`` = last id of the newest batch the platform
  accepted (or that was given up). A batch is sent only after its predecessor (``prev == sent_upto``), so a
  conversation's messages arrive in order even when a send is retried.
* :meth:`ChannelRoutes.flush` hands every message after the cursor that is not the customer's (bot, agent, system:
  CSAT prompts, hand-back notices) to the outbox as one batch, moving the cursor by compare-and-set: any number of
  gateways (the relay, the inbound turn) may flush the same conversation at once, each message is handed on once.
"""
from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from conversations import keys
from conversations.store import ConversationStore

START = "0-0"

# KEYS: user -> conversation. ARGV: stale conversation id ('' = none), new conversation id, ttl.
_MAP_USER = """
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[1] then return current end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return ARGV[2]
"""

# KEYS: route, outbox. ARGV: expected cursor, new cursor, mode (skip | take | enqueue), then batch field/values.
# Returns {0} when another flush moved the cursor first, {1, entry id or ''} when handed on, {2} when taken for a
# passive answer (only while no batch is on its way, so order holds).
_FLUSH = """
if redis.call('HGET', KEYS[1], 'cursor') ~= ARGV[1] then return {0, ''} end
redis.call('HSET', KEYS[1], 'cursor', ARGV[2])
if ARGV[3] == 'skip' then return {1, ''} end
local prev = redis.call('HGET', KEYS[1], 'last_batch') or '0-0'
if ARGV[3] == 'take' and prev == (redis.call('HGET', KEYS[1], 'sent_upto') or '0-0') then
  redis.call('HSET', KEYS[1], 'last_batch', ARGV[2], 'sent_upto', ARGV[2])
  return {2, ''}
end
redis.call('HSET', KEYS[1], 'last_batch', ARGV[2])
local id = redis.call('XADD', KEYS[2], '*', 'prev', prev, 'last', ARGV[2], unpack(ARGV, 4))
return {1, id}
"""

# KEYS: hold. ARGV: token.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class ChannelRoutes:
    def __init__(self, redis: Redis, store: ConversationStore) -> None:
        self.redis = redis
        self.store = store
        self._map_user = redis.register_script(_MAP_USER)
        self._flush = redis.register_script(_FLUSH)
        self._release = redis.register_script(_RELEASE)

    async def conversation_for(self, platform: str, user: str, address: dict[str, str], ui_lang: str | None,
                               client: str = "") -> str:
        """The conversation of a platform user (a new one the first time, or after the old one expired); records
        where replies go and when the customer last wrote."""
        key = keys.channel_user(platform, user)
        current = await self.redis.get(key)
        conversation_id = _s(current) if current else ""
        if not conversation_id or not await self.store.exists(conversation_id):
            new_id = await self.store.create(platform, ui_lang, client_ref=client)
            conversation_id = _s(await self._map_user(keys=[key], args=[conversation_id, new_id, self.store.ttl_s]))
            if conversation_id != new_id:  # another message of this user created it first
                await self.redis.delete(keys.conversation(new_id))
        route = keys.channel_route(conversation_id)
        now = time.time()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(route, "cursor", START)
            pipe.hsetnx(route, "last_batch", START)
            pipe.hsetnx(route, "sent_upto", START)
            pipe.hset(route, mapping={"platform": platform, "user": user, "last_inbound": repr(now),
                                      "conversation_id": conversation_id,
                                      "address": json.dumps(address, ensure_ascii=False)})
            pipe.expire(route, self.store.ttl_s)
            pipe.expire(key, self.store.ttl_s)
            pipe.zadd(keys.channel_active(), {conversation_id: now})
            await pipe.execute()
        return conversation_id

    async def conversation_of(self, platform: str, user: str) -> str | None:
        value = await self.redis.get(keys.channel_user(platform, user))
        return _s(value) if value else None

    async def route(self, conversation_id: str) -> dict[str, str]:
        raw = await self.redis.hgetall(keys.channel_route(conversation_id))
        return {_s(k): _s(v) for k, v in raw.items()}

    async def hold(self, conversation_id: str, lease_s: float) -> str:
        """Keep the relay away while this turn answers (it hands its replies on itself, as one batch)."""
        token = secrets.token_hex(8)
        await self.redis.set(keys.channel_hold(conversation_id), token, px=max(1, int(lease_s * 1000)))
        return token

    async def release(self, conversation_id: str, token: str) -> None:
        await self._release(keys=[keys.channel_hold(conversation_id)], args=[token])

    async def held(self, conversation_id: str) -> bool:
        return bool(await self.redis.exists(keys.channel_hold(conversation_id)))

    async def flush(self, conversation_id: str, take: bool = False,
                    take_if: Callable[[list[dict[str, Any]]], bool] | None = None) -> tuple[str, list[dict[str, Any]]]:
        """Hand the conversation's new non-customer messages on. Returns ("none" | "queued" | "taken", messages):
        with ``take`` the caller answers them itself (passive reply) when no earlier batch is still on its way and
        ``take_if(messages)`` agrees (e.g. they fit in one passive reply)."""
        for _ in range(20):
            route = await self.redis.hmget(keys.channel_route(conversation_id), ["cursor", "platform"])
            cursor, platform = (_s(v) if v is not None else None for v in route)
            if cursor is None or not platform:
                return "none", []
            entries = await self.store.entries(conversation_id, after=cursor)
            if not entries:
                return "none", []
            last = entries[-1][0].id
            deliver = [m.to_dict() for m, _ in entries if m.role != "customer"]
            taking = take and (take_if is None or take_if(deliver))
            mode = "skip" if not deliver else ("take" if taking else "enqueue")
            args = [cursor, last, mode]
            if deliver:
                args += ["conversation_id", conversation_id, "messages", json.dumps(deliver, ensure_ascii=False)]
            code, _ = await self._flush(keys=[keys.channel_route(conversation_id), keys.outbox(platform)], args=args)
            code = int(code)
            if code == 0:
                continue  # another flush moved the cursor: look again from there
            if not deliver:
                return "none", []
            return ("taken" if code == 2 else "queued"), deliver
        return "none", []

    async def active(self, limit: int) -> list[str]:
        """Recently active conversations of asynchronous channels (older ones are forgotten)."""
        since = time.time() - self.store.ttl_s
        await self.redis.zremrangebyscore(keys.channel_active(), "-inf", since)
        ids = await self.redis.zrevrangebyscore(keys.channel_active(), "+inf", since, start=0, num=limit)
        return [_s(i) for i in ids]

    async def cursors(self, conversation_ids: list[str]) -> dict[str, str]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for cid in conversation_ids:
                pipe.hget(keys.channel_route(cid), "cursor")
            values = await pipe.execute()
        return {cid: _s(v) for cid, v in zip(conversation_ids, values) if v is not None}
