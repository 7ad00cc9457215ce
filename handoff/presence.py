"""What the web chat customer sees of the agent besides messages (issue 17): "<name> is typing…" and "read".

Both are written to the conversation's signals stream (conversations/keys.py: ``signals``), which the customer's
event stream reads next to the messages (channels/webchat.py). Only web chat pages read it, so nothing is written for
conversations on other channels. Typing is throttled here (one signal per ``TYPING_EVERY_S`` per conversation, each
valid ``TYPING_TTL_S``: the page hides it then, or when the agent's message arrives); read state only moves forward
(``read_upto`` = the newest customer message the owning agent had open in the console).
"""
from __future__ import annotations

import time

from redis.asyncio import Redis

from conversations import keys

TYPING_EVERY_S = 2.0
TYPING_TTL_S = 6.0
SIGNALS_MAXLEN = 50
SIGNALS_TTL_S = 24 * 3600
LISTENING_CHANNELS = ("webchat",)

# KEYS: read_upto, signals. ARGV: new id, ttl, maxlen. Moves the read mark forward only (stream ids compared as
# numbers); returns 1 when moved (and announced).
_MARK_READ = """
local function parts(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local current = redis.call('GET', KEYS[1])
if current then
  local cms, cseq = parts(current)
  local nms, nseq = parts(ARGV[1])
  if nms < cms or (nms == cms and nseq <= cseq) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'type', 'read', 'upto', ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
"""


def _s(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class CustomerSignals:
    def __init__(self, redis: Redis, conversation_ttl_s: int) -> None:
        self.redis = redis
        self.conversation_ttl_s = int(conversation_ttl_s)
        self._mark_read = redis.register_script(_MARK_READ)

    async def listening(self, conversation_id: str) -> bool:
        """True when the conversation's customer has a page that shows these signals (web chat)."""
        channel = await self.redis.hget(keys.conversation(conversation_id), "channel")
        return channel is not None and _s(channel) in LISTENING_CHANNELS

    async def typing(self, conversation_id: str, name: str) -> bool:
        """Announce that the agent ``name`` is typing; False when throttled or nobody would see it."""
        if not await self.listening(conversation_id):
            return False
        if not await self.redis.set(keys.typing_gate(conversation_id), "1", nx=True, px=int(TYPING_EVERY_S * 1000)):
            return False
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(keys.signals(conversation_id), {"type": "typing", "name": name,
                                                      "until": repr(time.time() + TYPING_TTL_S)},
                      maxlen=SIGNALS_MAXLEN, approximate=True)
            pipe.expire(keys.signals(conversation_id), SIGNALS_TTL_S)
            await pipe.execute()
        return True

    async def mark_read(self, conversation_id: str, upto: str) -> bool:
        """The owning agent has had the conversation open up to the customer message ``upto`` (a stream id)."""
        if not upto or not await self.listening(conversation_id):
            return False
        return bool(await self._mark_read(keys=[keys.read_upto(conversation_id), keys.signals(conversation_id)],
                                          args=[upto, self.conversation_ttl_s, SIGNALS_MAXLEN]))

    async def read_upto(self, conversation_id: str) -> str | None:
        value = await self.redis.get(keys.read_upto(conversation_id))
        return _s(value) if value else None
