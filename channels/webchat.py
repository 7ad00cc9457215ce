"""Website chat API: where a web customer's message enters the system.

POST /api/webchat/messages stores the message, asks the conversation's owner (the bot unless the conversation waits
for or belongs to an agent) and returns the bot's replies. GET .../messages returns the history (after page reloads
and as the polling fallback); GET .../events streams new messages (agent replies) as Server-Sent Events, with the
agent's typing and read signals. POST .../photos takes a photo (returns need them); GET .../media/<id> shows the
conversation's own photos back to its browser.
"""
from __future__ import annotations

import json
import logging
import re
import secrets
import string
from typing import Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from bot.shared.text import clean_text
from channels import dispatch
from channels.base import PHOTO_RECEIVED
from channels.dispatch import CustomerMessage, Gateway
from channels.messaging import MEDIA_PATH, PHOTO_LABEL
from conversations import keys, protect
from conversations.messages import say
from conversations.sse import SSE_HEADERS, STREAM_ID, stream_events
from conversations.store import BOT, ChatMessage, decode_entry
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
    read_upto: str | None = None  # (history) the newest customer message the agent has had open


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
    gw = Gateway(store, rasa, settings, desk, getattr(request.app.state, "customers", None))
    replies = await dispatch.receive(gw, message)
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
    read = await request.app.state.redis.get(keys.read_upto(conversation_id))
    return ReplyOut(conversation_id=conversation_id, messages=[MessageOut(**m.to_dict()) for m in messages],
                    read_upto=read.decode() if read else None)


@router.get("/conversations/{conversation_id}/events")
async def message_events(
    conversation_id: str,
    request: Request,
    store: StoreDep,
    redis: RedisDep,
    settings: SettingsDep,
    after: str | None = Query(default=None, pattern=r"^(\d+-\d+)?$"),
) -> StreamingResponse:
    """Server-Sent Events: every message after ``after`` (or Last-Event-ID on reconnect), live, via XREAD BLOCK;
    plus the agent's signals (handoff/presence.py) as named events: ``typing`` ({name, until}) and ``read``
    ({upto}). Event id = ``<message stream id>|<signals stream id>``; a new stream starts at the newest signal (an
    old typing signal is not replayed; the read state comes with the history)."""
    await _own_conversation(conversation_id, request, store)
    parts = (request.headers.get("last-event-id") or "").split("|")
    cursor = parts[0] if re.match(STREAM_ID, parts[0]) else (after or "0-0")
    signal_cursor = parts[1] if len(parts) > 1 and re.match(STREAM_ID, parts[1]) else ""
    if not signal_cursor:
        last = await redis.xrevrange(keys.signals(conversation_id), count=1)
        signal_cursor = last[0][0].decode() if last else "0-0"
    signals_key = keys.signals(conversation_id)

    async def format_entry(key: str, entry_id: bytes, data: dict[bytes, bytes], _: dict[str, str]):
        if key == signals_key:
            signal = {k.decode(): v.decode() for k, v in data.items()}
            if signal.get("type") == "typing":
                return "typing", {"name": signal.get("name", ""), "until": float(signal.get("until") or 0)}
            if signal.get("type") == "read":
                return "read", {"upto": signal.get("upto", "")}
            return None
        message, _author = decode_entry(entry_id, data)
        return None, message.to_dict()

    return StreamingResponse(
        stream_events(request, redis, {keys.messages(conversation_id): cursor, signals_key: signal_cursor},
                      settings.web_sse_block_ms, format_entry),
        media_type="text/event-stream", headers=SSE_HEADERS,
    )


# ---------------------------------------------------------------------------------------------- photos

PHOTO_PATH = re.compile(r"^/api/webchat/conversations/[^/]+/photos$")  # the one route with a larger body cap
_MEDIA_ID_ALPHABET = string.ascii_letters  # no digits: a redactor that masks digit runs cannot touch the link


def sniff_image(data: bytes) -> str | None:
    """The image type the bytes themselves say (JPEG, PNG or WebP), whatever the file was called or declared; the
    container's structure is checked too (PNG header chunk, WebP RIFF length and chunk). None for anything else."""
    if len(data) >= 4 and data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if len(data) >= 16 and data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        return "image/png"
    if (len(data) >= 16 and data[:4] == b"RIFF" and data[8:12] == b"WEBP"
            and int.from_bytes(data[4:8], "little") == len(data) - 8 and data[12:16] in (b"VP8 ", b"VP8L", b"VP8X")):
        return "image/webp"
    return None


def photo_link(media_id: str) -> str:
    return f"{PHOTO_LABEL} {MEDIA_PATH}{media_id}"


@router.post("/conversations/{conversation_id}/photos", response_model=ReplyOut)
async def post_photo(
    conversation_id: str, request: Request, store: StoreDep, settings: SettingsDep, throttle: ThrottleDep,
    message_id: str = Query(pattern=_ID_PATTERN, description="client-generated id; a retry reuses it"),
    ui_lang: Literal["zh", "en"] | None = None,
) -> ReplyOut:
    """A photo from the customer's own conversation, sent as the raw request body (at most WEB_MAX_UPLOAD_BYTES;
    JPEG, PNG or WebP as sniffed from the bytes, the declared type and file name are not trusted). Kept for the
    conversation's lifetime next to the messaging channels' photos (conversations/keys.py: channel_media) and stored
    as the customer message ``[photo] /api/channels/media/<id>`` (agents open that link with their session; this
    browser opens it through GET .../media/<id>). While the bot answers, the customer is thanked and asked for a
    few words (the bot cannot see photos); while an agent has the conversation, the agent sees it live.
    Counted against WEB_LIMIT_UPLOADS per client address and per browser, and against the message limit."""
    await _own_conversation(conversation_id, request, store)
    client = protect.client_ref(protect.client_ip(request, settings.trusted_proxies), settings.client_salt)
    device = protect.device_hash(request.cookies.get(protect.DEVICE_COOKIE) or "")
    limited = (await throttle.hit("upload", client) or await throttle.hit("upload", "device:" + device)
               or await throttle.hit("message", client))
    if limited:
        raise _refuse(limited, ui_lang)
    data = await request.body()
    if len(data) > settings.web_max_upload_bytes:
        raise HTTPException(status_code=413, detail=f"Photo too large: the limit is "
                                                    f"{settings.web_max_upload_bytes // (1024 * 1024)} MB.")
    content_type = sniff_image(data)
    if content_type is None:
        raise HTTPException(status_code=415, detail="Only JPEG, PNG or WebP photos can be sent.")
    gw = Gateway.of(request.app.state)
    previous = await store.client_message_state(conversation_id, message_id)
    if previous is not None and not previous.startswith("pending:"):
        return ReplyOut(conversation_id=conversation_id, messages=[MessageOut(**m) for m in json.loads(previous)])
    media_id = "".join(secrets.choice(_MEDIA_ID_ALPHABET) for _ in range(24))
    redis = request.app.state.redis
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(keys.channel_media(media_id), mapping={"content_type": content_type, "data": data,
                                                         "conversation_id": conversation_id, "source": CHANNEL})
        pipe.expire(keys.channel_media(media_id), store.ttl_s)
        await pipe.execute()
    message = ChatMessage(role="customer", text=photo_link(media_id))
    if await store.append_customer_once(conversation_id, message_id, message, gw.lease_s) is not None:
        await redis.delete(keys.channel_media(media_id))  # a concurrent retry stored it first
        raise HTTPException(status_code=409, detail="This photo is still being processed; retry shortly.")
    out = [message.to_dict()]
    if await store.owner(conversation_id) == BOT:
        language = ui_lang or (await store.meta(conversation_id)).get("ui_lang") or "zh"
        thanks = await store.append(conversation_id, ChatMessage(
            role="system", text=PHOTO_RECEIVED.get(language, PHOTO_RECEIVED["zh"])))
        out.append(thanks.to_dict())
    await store.store_reply(conversation_id, message_id, out)
    return ReplyOut(conversation_id=conversation_id, messages=[MessageOut(**m) for m in out])


@router.get("/conversations/{conversation_id}/media/{media_id}")
async def own_media(conversation_id: str, media_id: str, request: Request, store: StoreDep) -> Response:
    """A photo of this conversation, to the browser that owns the conversation only (404 otherwise, also for a
    photo of another conversation)."""
    await _own_conversation(conversation_id, request, store)
    if not media_id.isalnum() or len(media_id) > 64:
        raise HTTPException(status_code=404, detail="Not Found")
    stored = await request.app.state.redis.hgetall(keys.channel_media(media_id))
    owner = stored.get(b"conversation_id", b"").decode()
    content_type = stored.get(b"content_type", b"").decode()
    if not stored or owner != conversation_id or not content_type.startswith("image/"):
        raise HTTPException(status_code=404, detail="Not Found")
    return Response(stored.get(b"data", b""), media_type=content_type,
                    headers={"Content-Disposition": "inline", "Cache-Control": "private, no-store"})
