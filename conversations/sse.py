"""Server-Sent Events on top of Redis streams: XREAD BLOCK from the client's last id, reconnect-safe.

The event id is the stream id (or ``a|b`` for two streams), so a browser that reconnects sends Last-Event-ID and
gets exactly what it missed; a Redis restart only pauses the loop (it retries with the same ids).
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import Request
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)
STREAM_ID = r"^\d+-\d+$"
RETRY_MS = 1000
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"}

Formatter = Callable[[str, bytes, dict[bytes, bytes], dict[str, str]], Awaitable[tuple[str | None, object] | None]]


def frame(event_id: str, data: object, event: str | None = None) -> str:
    lines = [f"id: {event_id}"]
    if event:
        lines.append(f"event: {event}")
    lines.append("data: " + json.dumps(data, ensure_ascii=False))
    return "\n".join(lines) + "\n\n"


def composite_id(cursors: dict[str, str], order: list[str]) -> str:
    return "|".join(cursors[k] for k in order)


async def stream_events(
    request: Request, redis: Redis, cursors: dict[str, str], block_ms: int, format_entry: Formatter,
    on_tick: Callable[[], Awaitable[None]] | None = None,
) -> AsyncIterator[str]:
    """Yield SSE frames for every entry after ``cursors`` (stream key -> last id) until the client goes away."""
    order = list(cursors)
    yield f"retry: {RETRY_MS}\n\n"
    while True:
        if await request.is_disconnected():
            return
        if on_tick is not None:
            await on_tick()
        try:
            result = await redis.xread(dict(cursors), block=block_ms, count=100)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            logger.info("SSE: Redis unavailable (%s); retrying", exc.__class__.__name__)
            await asyncio.sleep(0.5)
            continue
        if not result:
            yield ": keep-alive\n\n"
            continue
        for stream_key, entries in result:
            key = stream_key.decode() if isinstance(stream_key, bytes) else stream_key
            for entry_id, data in entries:
                cursors[key] = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                formatted = await format_entry(key, entry_id, data, cursors)
                if formatted is not None:
                    event, payload = formatted
                    yield frame(composite_id(cursors, order), payload, event)
