"""Website chat API: where a web customer's message enters the system.

POST /api/webchat/messages stores the message, asks the conversation's owner (the bot unless the conversation waits
for or belongs to an agent) and returns the bot's replies. GET .../messages returns the history (after page reloads
and as the polling fallback); GET .../events streams new messages (agent replies) as Server-Sent Events.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from typing import Any, Dict, List, Literal, Tuple

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from bot.shared.text import clean_text
from channels.turns import RetryableNotice, check_silent_turn
from conversations import keys, protect
from conversations.messages import say, say_in
from conversations.rasa_client import RasaError
from conversations.sse import SSE_HEADERS, STREAM_ID, stream_events
from conversations.store import BOT, PENDING, QUEUE, ChatMessage, decode_entry
from handoff.deps import DeskDep, RasaDep, RedisDep, SettingsDep, StoreDep, ThrottleDep

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api/webchat", tags=["webchat"])
CHANNEL = "webchat"
_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
DUPLICATE_WAIT_S = 25.0
LEASE_MARGIN_S = 5.0
CSAT_RE = re.compile(r'^/csat\{"stars":\s*([1-5])\}$')


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
    buttons: List[ButtonOut] = []
    ts: float


class ReplyOut(BaseModel):
    conversation_id: str
    messages: List[MessageOut]


def _bot_messages(rasa_messages: List[Dict[str, Any]]) -> List[ChatMessage]:
    out = []
    for m in rasa_messages:
        text = m.get("text") or ""
        buttons = [
            {"title": str(b.get("title", "")), "payload": str(b.get("payload", ""))}
            for b in m.get("buttons") or []
            if isinstance(b, dict)
        ]
        if text or buttons:
            out.append(ChatMessage(role="bot", text=text, buttons=buttons))
    return out


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
    # Message and idempotency marker are written together: a retry never stores it twice, nor loses it.
    previous = await store.append_customer_once(
        conversation_id, body.message_id, ChatMessage(role="customer", text=text), _lease_s(settings)
    )
    if previous is not None:
        return await _replay(store, conversation_id, body, previous, text, rasa, settings, desk, client)
    try:
        return await _answer_and_store(conversation_id, body, text, store, rasa, settings, desk, client)
    except RedisError:
        # Stored but not answered (Redis went away meanwhile): let the client's retry answer at once.
        with contextlib.suppress(RedisError, OSError):
            await store.expire_lease(conversation_id, body.message_id)
        raise


def _lease_s(settings: SettingsDep) -> float:
    """How long one attempt may take to answer before a retry of the same message takes over."""
    return settings.rasa_timeout_s + LEASE_MARGIN_S


async def _answer_and_store(
    conversation_id: str, body: InboundMessage, text: str, store: StoreDep, rasa: RasaDep, settings: SettingsDep,
    desk: DeskDep, client: str,
) -> ReplyOut:
    replies = await _answer(conversation_id, text, body.metadata, store, rasa, settings, desk, client)
    stored = [await store.append(conversation_id, m) for m in replies]
    payload = [m.to_dict() for m in stored]
    if any(isinstance(m, RetryableNotice) for m in replies):
        await store.expire_lease(conversation_id, body.message_id)  # apologised: a retry is answered afresh
    else:
        await store.store_reply(conversation_id, body.message_id, payload)
    return ReplyOut(conversation_id=conversation_id, messages=[MessageOut(**m) for m in payload])


async def _answer(
    conversation_id: str, text: str, metadata: InboundMetadata, store: StoreDep, rasa: RasaDep, settings: SettingsDep,
    desk: DeskDep, client: str,
) -> List[ChatMessage]:
    """Ask whoever owns the conversation. The bot never answers a conversation that waits for or has an agent."""
    ui_lang = metadata.ui_lang
    if not text:
        return [ChatMessage(role="system", text=say("empty", text, ui_lang))]
    text, offered = await _as_customer_text(conversation_id, text, store, settings)
    if not text:
        return [ChatMessage(role="system", text=say("empty", text, ui_lang))]
    csat = CSAT_RE.match(text)
    if csat and offered:
        return await _record_csat(conversation_id, int(csat.group(1)), ui_lang, desk)
    over, first_over = await store.over_rate_limit(
        conversation_id, settings.web_rate_limit_messages, settings.web_rate_limit_window_s
    )
    if over:
        # Stored (agents see it in the transcript) but not answered; one polite notice per window.
        return [ChatMessage(role="system", text=say("rate_limited", text, ui_lang))] if first_over else []
    owner = await store.owner(conversation_id)
    if owner != BOT:
        handoff_id = await desk.open_for(conversation_id) or ""
        if await store.notice_once(conversation_id, f"{handoff_id}:{owner}"):
            key = "queued" if owner == QUEUE else "agent_owns"
            return [ChatMessage(role="system", text=say(key, text, ui_lang))]
        return []
    bot_text = text[: settings.web_nlu_chars]
    try:
        rasa_messages = await rasa.send_message(
            conversation_id,
            bot_text,
            {**metadata.model_dump(exclude_none=True), "ui_lang": ui_lang, "channel": CHANNEL,
             "client": client},
        )
    except RasaError as exc:
        logger.warning("bot unavailable for %s: %s", conversation_id, exc)
        # No worker received it: a retry of this message may ask again. A worker that did receive it may still
        # answer into the tracker, so that apology is final (a retry replays it instead of asking twice).
        notice = ChatMessage if exc.delivered else RetryableNotice
        return [notice(role="system", text=say("bot_unavailable", text, ui_lang))]
    replies = _bot_messages(rasa_messages)
    # Nothing said: an action that failed (action server down) or a turn that needs no answer (handoff, listen)?
    if not replies and await store.owner(conversation_id) == BOT and await check_silent_turn(
        rasa, conversation_id, bot_text
    ):
        return [RetryableNotice(role="system", text=say("bot_incomplete", text, ui_lang))]
    return replies


async def _as_customer_text(
    conversation_id: str, text: str, store: StoreDep, settings: SettingsDep
) -> Tuple[str, bool]:
    """What Rasa may read. A leading "/" makes Rasa treat a message as a command (an intent with entities, or
    /restart, /back, /session_start). Only the payload of a button the bot showed in this conversation, within
    WEB_BUTTON_FRESH_S, passes as a command; an older button is read as its title (what the customer saw); anything
    else typed with a slash is read as plain words. Returns (text for the bot, whether it is an offered payload)."""
    if not text.startswith("/"):
        return text, False
    state, title = await store.offered_payload(conversation_id, text, settings.web_button_fresh_s)
    if state == "fresh":
        return text, True
    if state == "stale" and title:
        return title.lstrip("/ "), True
    return text.lstrip("/ "), False


async def _record_csat(conversation_id: str, stars: int, ui_lang: str | None, desk: DeskDep) -> List[ChatMessage]:
    result = await desk.record_csat(conversation_id, stars)
    if result is None:
        return [ChatMessage(role="system", text=say("csat_none", "", ui_lang))]
    handoff_id, reopened = result
    handoff = await desk.get(handoff_id) or {}
    language = handoff.get("language") or ui_lang
    return [ChatMessage(role="system", text=say_in("csat_reopened" if reopened else "csat_thanks", language))]


async def _replay(
    store: StoreDep, conversation_id: str, body: InboundMessage, previous: str, text: str, rasa: RasaDep,
    settings: SettingsDep, desk: DeskDep, client: str,
) -> ReplyOut:
    """A retried message: return the reply already given instead of answering twice. If the first attempt died
    before answering (its lease ran out), answer now; the message itself is stored exactly once either way."""
    waited = 0.0
    while previous.startswith(PENDING) and waited < DUPLICATE_WAIT_S:
        lease_over = float(previous[len(PENDING):]) < time.time()
        if lease_over and await store.take_over(conversation_id, body.message_id, _lease_s(settings)):
            return await _answer_and_store(conversation_id, body, text, store, rasa, settings, desk, client)
        await asyncio.sleep(0.2)
        waited += 0.2
        previous = await store.client_message_state(conversation_id, body.message_id) or previous
    if previous.startswith(PENDING):
        raise HTTPException(status_code=409, detail="This message is still being processed; retry shortly.")
    return ReplyOut(conversation_id=conversation_id, messages=[MessageOut(**m) for m in json.loads(previous)])


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

    async def format_entry(key: str, entry_id: bytes, data: Dict[bytes, bytes], _: Dict[str, str]):
        message, _author = decode_entry(entry_id, data)
        return None, message.to_dict()

    return StreamingResponse(
        stream_events(request, redis, {keys.messages(conversation_id): cursor}, settings.web_sse_block_ms,
                      format_entry),
        media_type="text/event-stream", headers=SSE_HEADERS,
    )
