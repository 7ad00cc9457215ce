"""Where knowledge-base feedback goes: Redis streams that editors read (`python -m actions.kb_report` and the
workbench inbox, whose consumer group takes every entry in: workbench/inbox.py). Texts are stored as the customer
wrote them (the streams stay inside Redis, like the conversation streams); the inbox masks them when it takes them
in."""
from __future__ import annotations

import logging
import time
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from actions import keys
from actions.redis_client import async_redis
from actions.settings import get_settings
from bot.shared.redis_keys import stream_id_at

logger = logging.getLogger(__name__)

FEEDBACK_STREAM = keys.kb_feedback()      # every "did this help?" answer
UNANSWERED_STREAM = keys.kb_unanswered()  # questions the KB could not answer
CHOSEN_STREAM = keys.kb_chosen()          # "did you mean" suggestions the customer picked
FALLBACK_STREAM = keys.kb_fallback()      # messages the NLU could not place (nlu_fallback)
STREAM_MAXLEN = 100_000


class FeedbackStore:
    """Append-only records for editors; a Redis outage is logged and never breaks the conversation."""

    def __init__(self, redis: Redis, retention_s: int = 2_592_000) -> None:
        self._redis = redis
        self._retention_s = retention_s

    async def _add(self, stream: str, fields: dict[str, Any]) -> None:
        """Appends the record; the stream keeps at most STREAM_MAXLEN entries and none older than the retention
        (customers' own words: they expire even when few are written)."""
        oldest = stream_id_at(time.time() - self._retention_s)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.xadd(stream, {k: "" if v is None else str(v) for k, v in fields.items()},
                          maxlen=STREAM_MAXLEN, approximate=True)
                pipe.xtrim(stream, minid=oldest, approximate=False)  # exact: a quiet stream expires too
                await pipe.execute()
        except RedisError as exc:
            logger.warning("could not record KB feedback in %s: %s", stream, exc)

    async def record_feedback(self, conversation_id: str, article_id: str, helpful: bool, language: str,
                              question: str, ts: float) -> None:
        await self._add(FEEDBACK_STREAM, {"conversation_id": conversation_id, "article_id": article_id,
                                          "helpful": int(helpful), "language": language, "question": question,
                                          "ts": ts})

    async def record_unanswered(self, conversation_id: str, question: str, language: str,
                                best_score: float | None, via: str = "policy") -> None:
        """``via``: ``policy`` (a policy question the knowledge base had nothing for) or ``out_of_scope`` (a message
        the NLU read as out of scope, declined after the knowledge base had nothing confident either)."""
        await self._add(UNANSWERED_STREAM, {"conversation_id": conversation_id, "question": question,
                                            "language": language, "best_score": best_score, "via": via,
                                            "ts": time.time()})

    async def record_choice(self, conversation_id: str, question: str, article_id: str, language: str) -> None:
        await self._add(CHOSEN_STREAM, {"conversation_id": conversation_id, "question": question,
                                        "article_id": article_id, "language": language, "ts": time.time()})

    async def record_fallback(self, conversation_id: str, question: str, language: str, guess: str | None,
                              guess_confidence: float | None, kb_decision: str) -> None:
        await self._add(FALLBACK_STREAM, {"conversation_id": conversation_id, "question": question,
                                          "language": language, "intent_guess": guess,
                                          "guess_confidence": guess_confidence, "kb_decision": kb_decision,
                                          "ts": time.time()})

    async def read(self, stream: str, count: int = 1000) -> list[dict[str, str]]:
        entries = await self._redis.xrevrange(stream, count=count)
        return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]


_store: FeedbackStore | None = None


def get_feedback_store() -> FeedbackStore | None:
    """Built at first use from REDIS_URL (set by the launcher); None when no Redis is configured."""
    global _store
    if _store is None:
        url = get_settings().redis_url_if_set()
        if not url:
            return None
        # retries a connection broken by a Redis restart
        _store = FeedbackStore(async_redis(url), get_settings().kb_records_retention_s)
    return _store
