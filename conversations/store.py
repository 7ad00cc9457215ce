"""Conversation storage in Redis: message streams, ownership and idempotent message handling.

A stream per conversation keeps every message in order with a monotonic id, so the web page can fetch "everything
after id X" and nothing is lost when a browser reloads. Ownership (bot, queue or agent) is read here and only here.
A customer message and its idempotency marker are written by one Lua script, so a Redis restart can never leave
one without the other (which would lose or double the message on the client's retry).
"""
from __future__ import annotations

import hmac
import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from redis.asyncio import Redis

from conversations import keys

BOT = "bot"
QUEUE = "queue"
AGENT_PREFIX = "agent:"
STREAM_MAXLEN = 5_000
PENDING = "pending:"

# KEYS: dedupe, stream, conversation hash. ARGV: ttl, lease_until, maxlen, then stream field/value pairs.
# Returns {1, stream id} when stored now, {0, marker} when this client message id was seen before.
_APPEND_ONCE = """
local seen = redis.call('GET', KEYS[1])
if seen then return {0, seen} end
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', unpack(ARGV, 4))
redis.call('SET', KEYS[1], 'pending:' .. ARGV[2], 'EX', ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[3], ARGV[1])
return {1, id}
"""

# KEYS: dedupe. ARGV: now, new lease_until, ttl. Takes over a message whose processing died (lease expired).
_TAKE_OVER = """
local seen = redis.call('GET', KEYS[1])
if not seen or string.sub(seen, 1, 8) ~= 'pending:' then return 0 end
if tonumber(string.sub(seen, 9)) > tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], 'pending:' .. ARGV[2], 'EX', ARGV[3])
return 1
"""


@dataclass
class ChatMessage:
    """One message as the web page sees it."""

    role: str  # customer | bot | agent | system
    text: str
    buttons: list[dict[str, str]] = field(default_factory=list)
    ts: float = field(default_factory=time.time)
    id: str = ""
    name: str = ""  # an agent message's (or joined notice's) display name, shown to the customer; else empty
    # A bot message's source as Rasa reported it (bot/plugins/rest_channel.py): "response" (domain response name or
    # "") and, for a knowledge answer, "kb" ({"id", "score"}); "arm" while a canary runs (conversations/canary.py).
    # Stored for the managers' record, never sent to pages.
    source: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        del out["source"]
        if not self.name:
            del out["name"]
        return out

    def fields(self, author: str = "") -> dict[str, str]:
        out = {"role": self.role, "text": self.text, "buttons": json.dumps(self.buttons, ensure_ascii=False),
               "ts": repr(self.ts)}
        if author:
            out["author"] = author
        if self.name:
            out["name"] = self.name
        if "response" in self.source:
            out["response"] = str(self.source["response"])
        if self.source.get("kb"):
            out["kb"] = json.dumps(self.source["kb"], ensure_ascii=False)
        if self.source.get("arm"):
            out["arm"] = str(self.source["arm"])
        return out


def decode_entry(entry_id: Any, data: dict[Any, Any]) -> tuple[ChatMessage, str]:
    """A stream entry as a message plus its author (agent id for agent messages, else empty)."""
    d = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
         for k, v in data.items()}
    message = ChatMessage(
        role=d.get("role", "system"),
        text=d.get("text", ""),
        buttons=json.loads(d.get("buttons") or "[]"),
        ts=float(d.get("ts") or 0),
        id=entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id),
        name=d.get("name", ""),
    )
    return message, d.get("author", "")


class ConversationStore:
    """All conversation state of the gateway; built from a Redis client at start-up."""

    def __init__(self, redis: Redis, ttl_s: int) -> None:
        self._redis = redis
        self._ttl_s = ttl_s
        self._append_once = redis.register_script(_APPEND_ONCE)
        self._take_over = redis.register_script(_TAKE_OVER)

    @property
    def ttl_s(self) -> int:
        return self._ttl_s

    async def exists(self, conversation_id: str) -> bool:
        return bool(await self._redis.exists(keys.conversation(conversation_id)))

    async def created_at(self, conversation_id: str) -> float | None:
        """When the conversation was created (epoch seconds); None when unknown."""
        value = await self._redis.hget(keys.conversation(conversation_id), "created_at")
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None

    async def create(self, channel: str, ui_lang: str | None, device_hash: str = "", client_ref: str = "") -> str:
        """A new conversation. ``device_hash`` binds it to one browser (see :meth:`belongs_to`); ``client_ref`` is
        the pseudonymised client address it was opened from."""
        conversation_id = uuid.uuid4().hex
        await self._redis.hset(
            keys.conversation(conversation_id),
            mapping={"channel": channel, "created_at": time.time(), "ui_lang": ui_lang or "",
                     "device": device_hash, "client": client_ref},
        )
        await self._redis.expire(keys.conversation(conversation_id), self._ttl_s)
        return conversation_id

    async def started_by(self, device_hash: str, client_message_id: str) -> str | None:
        """The conversation this browser's message already started (a retried first message), if any."""
        value = await self._redis.get(keys.first_message(device_hash, client_message_id))
        return value.decode() if value else None

    async def create_for_first_message(self, device_hash: str, client_message_id: str, channel: str,
                                       ui_lang: str | None, client_ref: str = "") -> str:
        """A new conversation for a browser's first message, exactly once per (browser, message id): concurrent or
        retried attempts of the same message end up in the same conversation."""
        conversation_id = await self.create(channel, ui_lang, device_hash, client_ref)
        key = keys.first_message(device_hash, client_message_id)
        if await self._redis.set(key, conversation_id, nx=True, ex=self._ttl_s):
            return conversation_id
        await self._redis.delete(keys.conversation(conversation_id))  # another attempt won: use its conversation
        return (await self.started_by(device_hash, client_message_id)) or conversation_id

    async def belongs_to(self, conversation_id: str, device_hash: str) -> bool:
        """True when the conversation exists and was started by this browser. The id alone is not a credential."""
        stored = await self._redis.hget(keys.conversation(conversation_id), "device")
        return bool(stored) and bool(device_hash) and hmac.compare_digest(stored, device_hash.encode())

    async def offered_payload(self, conversation_id: str, payload: str, fresh_s: float) -> tuple[str, str]:
        """Was ``payload`` on a button the bot showed in this conversation? Returns ("fresh" | "stale" | "unknown",
        the button's title)."""
        value = await self._redis.hget(keys.offered(conversation_id), payload)
        if value is None:
            return "unknown", ""
        shown_at, _, title = value.decode().partition("|")
        return ("fresh" if time.time() - float(shown_at) <= fresh_s else "stale"), title

    async def meta(self, conversation_id: str) -> dict[str, str]:
        raw = await self._redis.hgetall(keys.conversation(conversation_id))
        return {k.decode(): v.decode() for k, v in raw.items()}

    async def owner(self, conversation_id: str) -> str:
        """Who answers this conversation: ``bot``, ``queue`` (waiting for an agent, bot silent) or ``agent:<id>``."""
        value = await self._redis.get(keys.owner(conversation_id))
        return value.decode() if value else BOT

    async def append(self, conversation_id: str, message: ChatMessage, author: str = "") -> ChatMessage:
        """Store a message; the payloads of its buttons become the commands the customer may send back."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xadd(keys.messages(conversation_id), message.fields(author), maxlen=STREAM_MAXLEN,
                      approximate=True)
            pipe.expire(keys.messages(conversation_id), self._ttl_s)
            pipe.expire(keys.conversation(conversation_id), self._ttl_s)
            if message.buttons:
                shown = {b["payload"]: f"{message.ts!r}|{b.get('title', '')}" for b in message.buttons
                         if b.get("payload")}
                if shown:
                    pipe.hset(keys.offered(conversation_id), mapping=shown)
                    pipe.expire(keys.offered(conversation_id), self._ttl_s)
            results = await pipe.execute()
            stream_id = results[0]
        message.id = stream_id.decode() if isinstance(stream_id, bytes) else str(stream_id)
        return message

    async def append_customer_once(
        self, conversation_id: str, client_message_id: str, message: ChatMessage, lease_s: float
    ) -> str | None:
        """Store a customer message unless its client id was seen. Returns None when stored now (``message.id`` is
        set), else the stored marker: ``pending:<lease end>`` while being answered, or the reply JSON."""
        args: list[Any] = [self._ttl_s, repr(time.time() + lease_s), STREAM_MAXLEN]
        for k, v in message.fields().items():
            args += [k, v]
        stored, value = await self._append_once(
            keys=[keys.dedupe(conversation_id, client_message_id), keys.messages(conversation_id),
                  keys.conversation(conversation_id)],
            args=args,
        )
        value = value.decode() if isinstance(value, bytes) else str(value)
        if int(stored):
            message.id = value
            return None
        return value

    async def take_over(self, conversation_id: str, client_message_id: str, lease_s: float) -> bool:
        """Claim the answering of a stored message whose first attempt died (its lease ran out)."""
        now = time.time()
        return bool(await self._take_over(
            keys=[keys.dedupe(conversation_id, client_message_id)], args=[repr(now), repr(now + lease_s), self._ttl_s]
        ))

    async def expire_lease(self, conversation_id: str, client_message_id: str) -> None:
        """Mark an unanswered stored message as free to be answered by the client's retry."""
        key = keys.dedupe(conversation_id, client_message_id)
        value = await self._redis.get(key)
        if value and value.decode().startswith(PENDING):
            await self._redis.set(key, PENDING + "0", ex=self._ttl_s)

    async def history(self, conversation_id: str, after: str | None = None) -> list[ChatMessage]:
        return [m for m, _ in await self.entries(conversation_id, after)]

    async def entries(self, conversation_id: str, after: str | None = None) -> list[tuple[ChatMessage, str]]:
        start = f"({after}" if after else "-"
        raw = await self._redis.xrange(keys.messages(conversation_id), min=start, max="+")
        return [decode_entry(entry_id, data) for entry_id, data in raw]

    async def client_message_state(self, conversation_id: str, client_message_id: str) -> str | None:
        value = await self._redis.get(keys.dedupe(conversation_id, client_message_id))
        return value.decode() if value else None

    async def store_reply(self, conversation_id: str, client_message_id: str, reply: list[dict[str, Any]]) -> None:
        await self._redis.set(
            keys.dedupe(conversation_id, client_message_id), json.dumps(reply, ensure_ascii=False), ex=self._ttl_s
        )

    async def notice_once(self, conversation_id: str, phase: str, ttl_s: int | None = None) -> bool:
        """True the first time per phase (e.g. one handoff's queue wait): at most one notice, not one per message;
        with ``ttl_s`` the phase ends after that many seconds (a rate-limit window) and may be noticed again."""
        return bool(await self._redis.set(keys.notice(conversation_id, phase), "1", nx=True,
                                          ex=ttl_s or self._ttl_s))

    async def over_rate_limit(self, conversation_id: str, limit: int, window_s: int) -> tuple[bool, bool]:
        """Counts a customer message; returns (over the limit, first time over in this window)."""
        window = int(time.time() // window_s)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(keys.rate(conversation_id, window))
            pipe.expire(keys.rate(conversation_id, window), window_s * 2)
            count, _ = await pipe.execute()
        if int(count) <= limit:
            return False, False
        first = await self._redis.set(keys.rate_notice(conversation_id, window), "1", nx=True, ex=window_s * 2)
        return True, bool(first)
