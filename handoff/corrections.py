"""Agent corrections: at hand-back or close, the agent marks what the customer actually wanted - an intent the bot
should have recognised or an article it should have answered with - for the customer message the bot got wrong.

Stored where the desk keeps its record: a ``correction`` entry on the desk's event stream (``csbot:desk:events``,
read by the workbench inbox's consumer group, workbench/inbox.py) and a ``correction`` field on the handoff (shown
again in the console); audited. The message is the customer's last own message before the handoff (or the one the
agent names), masked by the desk's redactor (the inbox masks again, names and order numbers included).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import yaml
from redis.asyncio import Redis

from bot.shared.paths import REPO_ROOT
from bot.shared.redact import GENERIC
from conversations import keys

DOMAIN = REPO_ROOT / "domain.yml"
TEXT_CHARS = 500
_intents: list[str] | None = None


class CorrectionError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def intents(domain: Path = DOMAIN) -> list[str]:
    """The bot's intents (domain.yml), read at first use."""
    global _intents
    if _intents is None:
        data = yaml.safe_load(domain.read_text(encoding="utf-8")) or {}
        _intents = sorted(i if isinstance(i, str) else next(iter(i)) for i in data.get("intents") or [])
    return _intents


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def loads(raw: Any) -> dict[str, Any] | None:
    """The handoff's stored correction (None when the agent marked none)."""
    if not raw:
        return None
    try:
        value = json.loads(_s(raw))
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


async def customer_message(redis: Redis, conversation_id: str, before: float, message_id: str | None
                           ) -> tuple[str, str] | None:
    """(entry id, text) of the named customer message, else of the customer's last own message (not a button
    command) before ``before``, else of the latest one."""
    stream = keys.messages(conversation_id)
    if message_id:
        found = await redis.xrange(stream, min=message_id, max=message_id, count=1)
        for entry_id, fields in found:
            f = {_s(k): _s(v) for k, v in fields.items()}
            if f.get("role") == "customer":
                return _s(entry_id), f.get("text", "")
        return None
    for bound in (f"{int(before * 1000)}", "+"):
        for entry_id, fields in await redis.xrevrange(stream, max=bound, count=50):
            f = {_s(k): _s(v) for k, v in fields.items()}
            if f.get("role") == "customer" and f.get("text", "").strip() and not f["text"].strip().startswith("/"):
                return _s(entry_id), f["text"]
    return None


async def record(redis: Redis, handoff: dict[str, str], agent_id: str, at: str, *, intent: str | None,
                 article_id: str | None, message_id: str | None, maxlen: int) -> dict[str, Any]:
    """Store the correction (desk event + handoff field). Raises CorrectionError (nothing stored)."""
    if bool(intent) == bool(article_id):
        raise CorrectionError(422, "Mark either an intent or an article.")
    if intent and intent not in intents():
        raise CorrectionError(422, f"Unknown intent {intent!r}.")
    conversation_id = handoff["conversation_id"]
    found = await customer_message(redis, conversation_id, float(handoff.get("created_at") or time.time()),
                                   message_id)
    if found is None:
        raise CorrectionError(422, "There is no customer message to correct.")
    entry_id, text = found
    masked = GENERIC.text(text, customer=True)[:TEXT_CHARS]
    correction = {"intent": intent or "", "article_id": article_id or "", "message_id": entry_id, "text": masked,
                  "agent_id": agent_id, "at": at, "ts": time.time()}
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(keys.handoff(handoff["id"]), "correction", json.dumps(correction, ensure_ascii=False))
        pipe.xadd(keys.desk_events(), {"type": "correction", "handoff_id": handoff["id"],
                                       "conversation_id": conversation_id, "agent_id": agent_id,
                                       "intent": intent or "", "article_id": article_id or "",
                                       "message_id": entry_id, "text": masked,
                                       "language": handoff.get("language") or "", "at": at},
                  maxlen=maxlen, approximate=True)
        await pipe.execute()
    return correction
