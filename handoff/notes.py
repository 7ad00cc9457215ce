"""Internal notes on a conversation: written by agents and supervisors in the console, read by whoever may read the
conversation, never sent to the customer or to any channel. One Redis stream per conversation
(conversations/keys.py: notes), capped, expiring ``retention_s`` after the last note; each note is audited like
other desk actions and announced on the desk event stream (``type=note``) so other open consoles refresh.
The text is stored as typed (cleaned of control characters) and the console shows it as text, never as HTML."""
from __future__ import annotations

import builtins
import time
from typing import Any

from redis.asyncio import Redis

from conversations import keys
from handoff.agents import Agent

NOTE_MAX_CHARS = 2000
NOTES_MAXLEN = 500


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Notes:
    def __init__(self, redis: Redis, retention_s: int, desk_events_maxlen: int) -> None:
        self.redis = redis
        self.retention_s = int(retention_s)
        self.desk_events_maxlen = int(desk_events_maxlen)

    async def list(self, conversation_id: str) -> builtins.list[dict[str, Any]]:
        raw = await self.redis.xrange(keys.notes(conversation_id))
        return [self._decode(entry_id, data) for entry_id, data in raw]

    async def add(self, agent: Agent, conversation_id: str, handoff_id: str, text: str) -> dict[str, Any]:
        fields = {"author_id": agent.id, "author_name": agent.display_name, "text": text, "ts": repr(time.time())}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(keys.notes(conversation_id), fields, maxlen=NOTES_MAXLEN, approximate=True)
            pipe.expire(keys.notes(conversation_id), self.retention_s)
            pipe.xadd(keys.desk_events(), {"type": "note", "handoff_id": handoff_id,
                                           "conversation_id": conversation_id},
                      maxlen=self.desk_events_maxlen, approximate=True)
            entry_id, _, _ = await pipe.execute()
        return self._decode(entry_id, fields)

    @staticmethod
    def _decode(entry_id: Any, data: dict[Any, Any]) -> dict[str, Any]:
        d = {_s(k): _s(v) for k, v in data.items()}
        return {"id": _s(entry_id), "author_id": d.get("author_id", ""), "author_name": d.get("author_name", ""),
                "text": d.get("text", ""), "ts": float(d.get("ts") or 0)}
