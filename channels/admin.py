"""What supervisors can read about the messaging channels (the desk's console may show it; this is the API).

GET /api/channels/status        enabled channels, and per channel: batches waiting in the outbox, of which pending
                                (being sent or waiting for a retry)
GET /api/channels/dead-letters  the newest batches the outbox gave up on (platform, conversation, error, attempts,
                                the messages), newest first
Supervisors only (the desk's session: cookie or bearer token).
"""
from __future__ import annotations

import json
from typing import Any, Dict, List

from fastapi import APIRouter, Query, Request
from redis.exceptions import ResponseError

from channels.outbox import GROUP
from conversations import keys
from handoff.deps import SupervisorDep

router = APIRouter(prefix="/api/channels", tags=["channels"])


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@router.get("/status")
async def status(request: Request, supervisor: SupervisorDep) -> Dict[str, Any]:
    redis = request.app.state.redis
    out: Dict[str, Any] = {}
    for name in getattr(request.app.state, "channels", {}):
        waiting = int(await redis.xlen(keys.outbox(name)))
        try:
            pending = int((await redis.xpending(keys.outbox(name), GROUP))["pending"])
        except ResponseError:  # no group yet
            pending = 0
        out[name] = {"outbox_waiting": waiting, "outbox_pending": pending}
    return {"channels": out, "dead_letters": int(await redis.xlen(keys.outbox_dead()))}


@router.get("/dead-letters")
async def dead_letters(request: Request, supervisor: SupervisorDep,
                       count: int = Query(default=50, ge=1, le=500)) -> List[Dict[str, Any]]:
    entries = await request.app.state.redis.xrevrange(keys.outbox_dead(), count=count)
    out = []
    for entry_id, data in entries:
        fields = {_s(k): _s(v) for k, v in data.items()}
        try:
            messages = json.loads(fields.get("messages") or "[]")
        except ValueError:
            messages = []
        out.append({"id": _s(entry_id), "platform": fields.get("platform"),
                    "conversation_id": fields.get("conversation_id"), "error": fields.get("error"),
                    "attempts": int(fields.get("attempts") or 0), "at": float(fields.get("ts") or 0),
                    "messages": messages})
    return out
