"""Redis Streams consumer groups, as every background consumer of the gateway process uses them (the desk's
undelivered-handoff re-sender, the channels' outbox, the analytics record): one place that creates a group."""
from __future__ import annotations

from typing import Any

from redis.exceptions import ResponseError


async def ensure_group(redis: Any, stream: str, group: str, *, mkstream: bool = True) -> bool:
    """Create ``group`` on ``stream`` from its first entry, unless it exists (BUSYGROUP: another process made it).
    False when the stream does not exist and ``mkstream`` is off (or the key is not a stream); other errors raise
    only with ``mkstream`` (a consumer that creates its own stream must not silently run without it)."""
    try:
        await redis.xgroup_create(stream, group, id="0", mkstream=mkstream)
    except ResponseError as exc:
        if "BUSYGROUP" in str(exc):
            return True
        if mkstream:
            raise
        return False
    return True
