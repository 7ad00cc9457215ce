"""Conversation storage in Redis: message streams, ownership and idempotent message handling.

A stream per conversation keeps every message in order with a monotonic id, so the web page can fetch "everything
after id X" and nothing is lost when a browser reloads. Ownership (bot or agent) is read here and only here.
"""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

from redis.asyncio import Redis

from handoff import keys

BOT = "bot"
STREAM_MAXLEN = 5_000


@dataclass
class ChatMessage:
    """One message as the web page sees it."""

    role: str  # customer | bot | agent | system
    text: str
    buttons: List[Dict[str, str]] = field(default_factory=list)
    ts: float = field(default_factory=time.time)
    id: str = ""

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


class ConversationStore:
    """All conversation state of the gateway; built from a Redis client at start-up."""

    def __init__(self, redis: Redis, ttl_s: int) -> None:
        self._redis = redis
        self._ttl_s = ttl_s

    async def exists(self, conversation_id: str) -> bool:
        return bool(await self._redis.exists(keys.conversation(conversation_id)))

    async def create(self, channel: str, ui_lang: Optional[str]) -> str:
        conversation_id = uuid.uuid4().hex
        await self._redis.hset(
            keys.conversation(conversation_id),
            mapping={"channel": channel, "created_at": time.time(), "ui_lang": ui_lang or ""},
        )
        await self._redis.expire(keys.conversation(conversation_id), self._ttl_s)
        return conversation_id

    async def owner(self, conversation_id: str) -> str:
        """Who answers this conversation: ``bot`` unless an agent took it over."""
        value = await self._redis.get(keys.owner(conversation_id))
        return value.decode() if value else BOT

    async def append(self, conversation_id: str, message: ChatMessage) -> ChatMessage:
        fields = {
            "role": message.role,
            "text": message.text,
            "buttons": json.dumps(message.buttons, ensure_ascii=False),
            "ts": repr(message.ts),
        }
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xadd(keys.messages(conversation_id), fields, maxlen=STREAM_MAXLEN, approximate=True)
            pipe.expire(keys.messages(conversation_id), self._ttl_s)
            pipe.expire(keys.conversation(conversation_id), self._ttl_s)
            stream_id, _, _ = await pipe.execute()
        message.id = stream_id.decode() if isinstance(stream_id, bytes) else str(stream_id)
        return message

    async def history(self, conversation_id: str, after: Optional[str] = None) -> List[ChatMessage]:
        start = f"({after}" if after else "-"
        entries = await self._redis.xrange(keys.messages(conversation_id), min=start, max="+")
        out = []
        for entry_id, data in entries:
            d = {k.decode(): v.decode() for k, v in data.items()}
            out.append(
                ChatMessage(
                    role=d["role"],
                    text=d["text"],
                    buttons=json.loads(d.get("buttons") or "[]"),
                    ts=float(d.get("ts") or 0),
                    id=entry_id.decode(),
                )
            )
        return out

    async def claim_client_message(self, conversation_id: str, client_message_id: str) -> Optional[str]:
        """Reserve a client message id. Returns None when new, else what is stored ("pending" or the reply JSON)."""
        key = keys.dedupe(conversation_id, client_message_id)
        if await self._redis.set(key, "pending", nx=True, ex=self._ttl_s):
            return None
        value = await self._redis.get(key)
        return value.decode() if value else None

    async def client_message_state(self, conversation_id: str, client_message_id: str) -> Optional[str]:
        value = await self._redis.get(keys.dedupe(conversation_id, client_message_id))
        return value.decode() if value else None

    async def store_reply(self, conversation_id: str, client_message_id: str, reply: List[Dict[str, Any]]) -> None:
        await self._redis.set(
            keys.dedupe(conversation_id, client_message_id), json.dumps(reply, ensure_ascii=False), ex=self._ttl_s
        )

    async def release_client_message(self, conversation_id: str, client_message_id: str) -> None:
        """Forget a reservation whose processing failed, so the client's retry is processed."""
        await self._redis.delete(keys.dedupe(conversation_id, client_message_id))
