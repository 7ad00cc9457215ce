"""Website chat API: where a web customer's message enters the system.

POST /api/webchat/messages stores the message, asks the conversation's owner (the bot unless the conversation waits
for or belongs to an agent) and returns the bot's replies. GET .../messages returns the history (after page reloads
and as the polling fallback); GET .../events streams new messages (agent replies) as Server-Sent Events.
"""
from __future__ import annotations

import logging
import re
from typing import Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from bot.shared.text import clean_text
from channels import dispatch
from channels.dispatch import CustomerMessage, Gateway
from conversations import keys, protect
from conversations.messages import say
from conversations.sse import SSE_HEADERS, STREAM_ID, stream_events
from conversations.store import decode_entry
from handoff.deps import DeskDep, RasaDep, RedisDep, SettingsDep, StoreDep, ThrottleDep

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api/webchat", tags=["webchat"])
CHANNEL = "webchat"
_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


class InboundMetadata(BaseModel):
    ui_lang: Literal["zh", "en"] | None = None
    # Signed customer token issued by the store's website for a logged-in customer (verified by the actions).
    customer_token: str | None = Field(default=None, max_length=2048)


class InboundMessage(BaseModel):
    conversation_id: str | None = Field(default=None, max_length=64)
    message_id: str = Field(pattern=_ID_PATTERN, description="client-generated id; a retry reuses it")
    text: str = Field(max_length=100_000)
    metadata: InboundMetadata = Field(default_factory=InboundMetadata)


class ButtonOut(BaseModel):
    title: str
    payload: str


class MessageOut(BaseModel):
    id: str
    role: str
    text: str
    buttons: list[ButtonOut] = []
    ts: float
    name: str | None = None  # an agent's display name


class ReplyOut(BaseModel):
    conversation_id: str
    messages: list[MessageOut]


def _refuse(limited: protect.Limited, ui_lang: str | None) -> HTTPException:
    return HTTPException(status_code=429, detail=say("client_limited", "", ui_lang),
                         headers={"Retry-After": str(limited.retry_after_s)})


def _device(request: Request, response: Response, settings: SettingsDep) -> str:
    """The browser's secret (HttpOnly cookie, never in URLs); a browser without one gets one now."""
    secret = request.cookies.get(protect.DEVICE_COOKIE)
    if not protect.valid_device_secret(secret):
        secret = protect.new_device_secret()
        response.set_cookie(protect.DEVICE_COOKIE, secret, max_age=protect.DEVICE_COOKIE_MAX_AGE_S,
                            path="/api/webchat", httponly=True, samesite="strict",
                            secure=settings.web_cookie_secure)
    return protect.device_hash(secret or "")


async def _own_conversation(conversation_id: str, request: Request, store: StoreDep) -> None:
    """404 unless this browser started the conversation (same answer as for an id that does not exist)."""
    secret = request.cookies.get(protect.DEVICE_COOKIE) or ""
    if not protect.valid_device_secret(secret) or not await store.belongs_to(conversation_id,
                                                                             protect.device_hash(secret)):
        raise HTTPException(status_code=404, detail="Unknown conversation.")


@router.post("/messages", response_model=ReplyOut)
async def post_message(
    body: InboundMessage, request: Request, response: Response, store: StoreDep, rasa: RasaDep,
    settings: SettingsDep, desk: DeskDep, throttle: ThrottleDep,
) -> ReplyOut:
    if len(body.text) > settings.web_max_message_chars:
        raise HTTPException(
            status_code=413,
            detail=f"Message too long: {len(body.text)} characters, the limit is {settings.web_max_message_chars}.",
        )
    ui_lang = body.metadata.ui_lang
    client = protect.client_ref(protect.client_ip(request, settings.trusted_proxies), settings.client_salt)
    device = _device(request, response, settings)
    # Every message counts, whatever it is (empty, a button, a rating) and whichever conversation it is for.
    limited = await throttle.hit("message", client)
    if limited:
        raise _refuse(limited, ui_lang)
    conversation_id = body.conversation_id
    if not conversation_id or not await store.belongs_to(conversation_id, device):
        # Unknown, expired, or another browser's conversation: this browser starts its own - unless this very
        # message already started one (the reply to the first attempt was lost): then the retry continues it.
        conversation_id = await store.started_by(device, body.message_id)
        if not conversation_id:
            limited = await throttle.hit("new_conversation", client) or await throttle.hit(
                "new_conversation_device", device)
            if limited:
                raise _refuse(limited, ui_lang)
            conversation_id = await store.create_for_first_message(device, body.message_id, CHANNEL, ui_lang, client)

    text = clean_text(body.text, max_chars=settings.web_max_message_chars)
    message = CustomerMessage(
        conversation_id=conversation_id, message_id=body.message_id, text=text, channel=CHANNEL, client=client,
        ui_lang=ui_lang, metadata=body.metadata.model_dump(exclude_none=True),
    )
    # Stored first (idempotent per client message id), then answered by the owner: the path every channel takes.
    replies = await dispatch.receive(Gateway(store, rasa, settings, desk), message)
    if replies is None:
        raise HTTPException(status_code=409, detail="This message is still being processed; retry shortly.")
    return ReplyOut(conversation_id=conversation_id, messages=[MessageOut(**m) for m in replies])


@router.get("/conversations/{conversation_id}/messages", response_model=ReplyOut)
async def get_messages(
    conversation_id: str,
    request: Request,
    store: StoreDep,
    after: str | None = Query(default=None, pattern=r"^(\d+-\d+)?$"),
) -> ReplyOut:
    await _own_conversation(conversation_id, request, store)
    messages = await store.history(conversation_id, after=after or None)
    return ReplyOut(conversation_id=conversation_id, messages=[MessageOut(**m.to_dict()) for m in messages])


@router.get("/conversations/{conversation_id}/events")
async def message_events(
    conversation_id: str,
    request: Request,
    store: StoreDep,
    redis: RedisDep,
    settings: SettingsDep,
    after: str | None = Query(default=None, pattern=r"^(\d+-\d+)?$"),
) -> StreamingResponse:
    """Server-Sent Events: every message after ``after`` (or Last-Event-ID on reconnect), live, via XREAD BLOCK."""
    await _own_conversation(conversation_id, request, store)
    last_event_id = request.headers.get("last-event-id") or ""
    cursor = last_event_id if re.match(STREAM_ID, last_event_id) else (after or "0-0")

    async def format_entry(key: str, entry_id: bytes, data: dict[bytes, bytes], _: dict[str, str]):
        message, _author = decode_entry(entry_id, data)
        return None, message.to_dict()

    return StreamingResponse(
        stream_events(request, redis, {keys.messages(conversation_id): cursor}, settings.web_sse_block_ms,
                      format_entry),
        media_type="text/event-stream", headers=SSE_HEADERS,
    )
