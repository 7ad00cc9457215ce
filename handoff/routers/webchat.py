"""Website chat API: where a web customer's message enters the system.

POST /api/webchat/messages stores the message, asks the conversation's owner (the bot unless an agent took over)
and returns the bot's replies. GET .../messages returns the history (used after page reloads and to poll for
agent messages).
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Dict, List, Literal, Optional

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from bot.text import clean_text
from handoff.deps import RasaDep, SettingsDep, StoreDep
from handoff.messages import say
from handoff.rasa_client import RasaError
from handoff.store import BOT, ChatMessage

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/api/webchat", tags=["webchat"])
CHANNEL = "webchat"
_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
DUPLICATE_WAIT_S = 25.0


class InboundMetadata(BaseModel):
    ui_lang: Optional[Literal["zh", "en"]] = None
    # Signed customer token issued by the store's website for a logged-in customer (verified by the actions).
    customer_token: Optional[str] = Field(default=None, max_length=2048)


class InboundMessage(BaseModel):
    conversation_id: Optional[str] = Field(default=None, max_length=64)
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


@router.post("/messages", response_model=ReplyOut)
async def post_message(body: InboundMessage, store: StoreDep, rasa: RasaDep, settings: SettingsDep) -> ReplyOut:
    if len(body.text) > settings.web_max_message_chars:
        raise HTTPException(
            status_code=413,
            detail=f"Message too long: {len(body.text)} characters, the limit is {settings.web_max_message_chars}.",
        )
    ui_lang = body.metadata.ui_lang
    conversation_id = body.conversation_id
    if not conversation_id or not await store.exists(conversation_id):
        conversation_id = await store.create(CHANNEL, ui_lang)

    previous = await store.claim_client_message(conversation_id, body.message_id)
    if previous is not None:
        return await _replay(store, conversation_id, body.message_id, previous)

    text = clean_text(body.text, max_chars=settings.web_max_message_chars)
    try:
        await store.append(conversation_id, ChatMessage(role="customer", text=text))
    except Exception:
        await store.release_client_message(conversation_id, body.message_id)
        raise

    replies = await _answer(conversation_id, text, body.metadata, store, rasa, settings)
    stored = [await store.append(conversation_id, m) for m in replies]
    payload = [m.to_dict() for m in stored]
    await store.store_reply(conversation_id, body.message_id, payload)
    return ReplyOut(conversation_id=conversation_id, messages=[MessageOut(**m) for m in payload])


async def _answer(
    conversation_id: str, text: str, metadata: InboundMetadata, store: StoreDep, rasa: RasaDep, settings: SettingsDep
) -> List[ChatMessage]:
    """Ask whoever owns the conversation. The bot never answers a conversation an agent owns."""
    ui_lang = metadata.ui_lang
    if not text:
        return [ChatMessage(role="system", text=say("empty", text, ui_lang))]
    if await store.owner(conversation_id) != BOT:
        return [ChatMessage(role="system", text=say("agent_owns", text, ui_lang))]
    try:
        rasa_messages = await rasa.send_message(
            conversation_id,
            text[: settings.web_nlu_chars],
            {**metadata.model_dump(exclude_none=True), "ui_lang": ui_lang, "channel": CHANNEL},
        )
    except RasaError as exc:
        logger.warning("bot unavailable for %s: %s", conversation_id, exc)
        return [ChatMessage(role="system", text=say("bot_unavailable", text, ui_lang))]
    return _bot_messages(rasa_messages)


async def _replay(store: StoreDep, conversation_id: str, message_id: str, previous: str) -> ReplyOut:
    """A retried message: return the reply already given instead of answering twice."""
    waited = 0.0
    while previous == "pending" and waited < DUPLICATE_WAIT_S:
        await asyncio.sleep(0.2)
        waited += 0.2
        previous = await store.client_message_state(conversation_id, message_id) or "pending"
    if previous == "pending":
        raise HTTPException(status_code=409, detail="This message is still being processed; retry shortly.")
    return ReplyOut(conversation_id=conversation_id, messages=[MessageOut(**m) for m in json.loads(previous)])


@router.get("/conversations/{conversation_id}/messages", response_model=ReplyOut)
async def get_messages(
    conversation_id: str,
    store: StoreDep,
    after: Optional[str] = Query(default=None, pattern=r"^(\d+-\d+)?$"),
) -> ReplyOut:
    if not await store.exists(conversation_id):
        raise HTTPException(status_code=404, detail="Unknown conversation.")
    messages = await store.history(conversation_id, after=after or None)
    return ReplyOut(conversation_id=conversation_id, messages=[MessageOut(**m.to_dict()) for m in messages])
