"""One customer across channels: which customer a conversation is, and which channel identities are theirs.

Nothing here believes the client. A customer becomes known in a conversation only by the action server's own
verification (order number + phone digits checked by the order service, or the store's signed customer token), which
it records server-side as :func:`conversations.keys.conversation_customer` (``via = verified``). After that turn
the gateway links the conversation's **channel identity** - the Telegram chat, WhatsApp number, WeChat OpenID,
WeCom user, store-app user (each proven by the platform's signature on the webhook) or the web browser (the
HttpOnly device cookie the conversation is bound to) - to that customer (:func:`conversations.keys.customer_link`,
keyed hash of the identity, ``CUSTOMER_LINK_TTL_S``). A later conversation of a linked identity is that customer's
from its first message (``via = linked``): the bot is told the customer's id and tier (slots), the conversation joins
the customer's index (:func:`conversations.keys.customer_conversations`), and a handoff's context lists the customer's
earlier conversations on every channel.

A conversation id, a platform user id in a message body, metadata or slots never link anything: the identity is
read from the records the gateway itself wrote when the platform's signed delivery arrived (the route hash) or when
the browser opened the conversation (the device hash).
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from conversations import keys
from conversations.protect import client_ref

logger = logging.getLogger(__name__)

VIA_VERIFIED = "verified"
VIA_LINKED = "linked"
WEB = "web"


@dataclass(frozen=True)
class Identity:
    """A channel identity: ``channel`` (telegram, whatsapp, wechat, wecom, webhook, web), ``ref`` (keyed hash of
    the platform user or browser), ``label`` (masked, for agents: the last two characters only)."""

    channel: str
    ref: str
    label: str


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _masked(channel: str, user: str) -> str:
    return f"{channel} …{user[-2:]}" if len(user) > 4 else channel


def _record(raw: Any) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        value = json.loads(_s(raw))
    except ValueError:
        return None
    if not isinstance(value, dict) or not value.get("id"):
        return None
    return {"id": str(value["id"]), "tier": str(value.get("tier") or "") or None, "via": str(value.get("via") or "")}


class CustomerLinks:
    """The gateway's side of the customer record (one per process)."""

    def __init__(self, redis: Redis, salt: str, link_ttl_s: int, conversation_ttl_s: int) -> None:
        self.redis = redis
        self.salt = salt
        self.link_ttl_s = int(link_ttl_s)
        self.conversation_ttl_s = int(conversation_ttl_s)

    async def identity(self, conversation_id: str) -> Identity | None:
        """The channel identity of a conversation, from the gateway's own records; None when it has none."""
        platform, user = await self.redis.hmget(keys.channel_route(conversation_id), ["platform", "user"])
        if platform and user:
            channel, who = _s(platform), _s(user)
            return Identity(channel, client_ref(f"{channel}:{who}", self.salt), _masked(channel, who))
        channel, device = await self.redis.hmget(keys.conversation(conversation_id), ["channel", "device"])
        if device and _s(channel) == "webchat":
            return Identity(WEB, client_ref(f"{WEB}:{_s(device)}", self.salt), "web browser")
        return None

    async def customer_of(self, conversation_id: str) -> dict[str, Any] | None:
        """``{"id", "tier", "via"}`` of the customer this conversation is known to be, None when unknown."""
        return _record(await self.redis.get(keys.conversation_customer(conversation_id)))

    async def prime(self, conversation_id: str) -> tuple[dict[str, Any] | None, bool]:
        """Before the bot reads a customer message: (the customer known for the conversation or None, whether it
        became known just now). A conversation without a customer whose channel identity is linked becomes that
        customer's (``via = linked``) and joins their index; the caller then tells the bot."""
        known = await self.customer_of(conversation_id)
        if known is not None:
            return known, False
        identity = await self.identity(conversation_id)
        if identity is None:
            return None, False
        link = _record(await self.redis.get(keys.customer_link(identity.ref)))
        if link is None:
            return None, False
        record = {"id": link["id"], "tier": link["tier"], "via": VIA_LINKED}
        stored = await self.redis.set(keys.conversation_customer(conversation_id), json.dumps(record),
                                      ex=self.conversation_ttl_s, nx=True)
        if not stored:  # the action server verified it meanwhile: that record wins
            return await self.customer_of(conversation_id), False
        await self._index(record["id"], conversation_id)
        return record, True

    async def link_if_verified(self, conversation_id: str) -> bool:
        """After a bot turn: when the action server verified this conversation, link its channel identity to that
        customer (the latest proof wins: a link to another customer is moved) and index the conversation."""
        known = await self.customer_of(conversation_id)
        if known is None or known["via"] != VIA_VERIFIED:
            return False
        identity = await self.identity(conversation_id)
        customer_id = known["id"]
        now = time.time()
        if identity is not None:
            previous = _record(await self.redis.get(keys.customer_link(identity.ref)))
            link = json.dumps({"id": customer_id, "tier": known["tier"] or "", "at": round(now, 3)})
            about = json.dumps({"channel": identity.channel, "label": identity.label, "linked_at": round(now, 3)},
                               ensure_ascii=False)
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.set(keys.customer_link(identity.ref), link, ex=self.link_ttl_s)
                pipe.hset(keys.customer_identities(customer_id), identity.ref, about)
                pipe.expire(keys.customer_identities(customer_id), self.link_ttl_s)
                if previous is not None and previous["id"] != customer_id:
                    pipe.hdel(keys.customer_identities(previous["id"]), identity.ref)
                await pipe.execute()
        # The conversation stays this customer's for its lifetime (the link would make it so again anyway).
        await self.redis.expire(keys.conversation_customer(conversation_id), self.conversation_ttl_s)
        await self._index(customer_id, conversation_id)
        return identity is not None

    async def _index(self, customer_id: str, conversation_id: str) -> None:
        index = keys.customer_conversations(customer_id)
        now = time.time()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(index, {conversation_id: now})
            pipe.zremrangebyscore(index, "-inf", now - self.conversation_ttl_s)
            pipe.expire(index, self.conversation_ttl_s)
            await pipe.execute()

    async def conversations(self, customer_id: str, limit: int) -> list[str]:
        """The customer's conversations on any channel, newest first (at most ``limit``)."""
        if limit <= 0:
            return []
        ids = await self.redis.zrevrangebyscore(keys.customer_conversations(customer_id), "+inf",
                                                time.time() - self.conversation_ttl_s, start=0, num=limit)
        return [_s(i) for i in ids]

    async def identities(self, customer_id: str) -> list[dict[str, Any]]:
        """The customer's linked channel identities (channel, masked label, when linked), for agents."""
        raw = await self.redis.hgetall(keys.customer_identities(customer_id))
        out = []
        for value in raw.values():
            try:
                out.append(json.loads(_s(value)))
            except ValueError:
                continue
        return sorted(out, key=lambda i: i.get("linked_at") or 0)
