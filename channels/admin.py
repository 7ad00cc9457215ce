"""What supervisors can read about the messaging channels (the desk's console may show it; this is the API).

GET /api/channels/status        enabled channels, and per channel: batches waiting in the outbox, of which pending
                                (being sent or waiting for a retry)
GET /api/channels/dead-letters  the newest batches the outbox gave up on (platform, conversation, error, attempts,
                                the messages), newest first
Supervisors only (the desk's session: cookie or bearer token).

GET /api/channels/media/<id>    a photo a customer sent (the customer message names this link): whoever may read
                                that conversation's handoff (handoff.api.agent.may_read: supervisors, its agent,
                                any agent while it waits in the queue); a photo of a conversation without a handoff,
                                supervisors only. Anyone else gets 404 (no oracle). Image types inline, else download
"""
from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from redis.exceptions import ResponseError

from channels.base import MEDIA_TYPES
from channels.outbox import GROUP
from conversations import keys
from handoff.api.agent import may_read
from handoff.deps import AgentDep, DeskDep, SupervisorDep

router = APIRouter(prefix="/api/channels", tags=["channels"])


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@router.get("/status")
async def status(request: Request, supervisor: SupervisorDep) -> dict[str, Any]:
    redis = request.app.state.redis
    out: dict[str, Any] = {}
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
                       count: int = Query(default=50, ge=1, le=500)) -> list[dict[str, Any]]:
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


@router.get("/media/{media_id}")
async def media(media_id: str, request: Request, agent: AgentDep, desk: DeskDep) -> Response:
    if not media_id.replace("-", "").replace("_", "").isalnum() or len(media_id) > 64:
        raise HTTPException(status_code=404, detail="Not Found")
    stored = await request.app.state.redis.hgetall(keys.channel_media(media_id))
    if not stored:
        raise HTTPException(status_code=404, detail="Not Found")
    if not agent.is_supervisor:
        conversation_id = _s(stored.get(b"conversation_id", b""))
        handoff_id = await desk.open_for(conversation_id) if conversation_id else None
        handoff = await desk.get(handoff_id) if handoff_id else None
        if handoff is None or not may_read(agent, handoff):
            raise HTTPException(status_code=404, detail="Not Found")
    content_type = _s(stored.get(b"content_type", b""))
    inline = content_type in MEDIA_TYPES
    return Response(stored.get(b"data", b""), media_type=content_type if inline else "application/octet-stream",
                    headers={"Content-Disposition": "inline" if inline else "attachment",
                             "Cache-Control": "private, no-store"})
