"""A verified platform message on its way in: the platform user's conversation, then the path every customer
message takes (``channels/dispatch.py``), then the replies to the outbox (or back to the caller for a passive
answer, WeChat's 5-second rule).

While the turn is answered the conversation is held (``ChannelRoutes.hold``): the relay leaves it alone, so the
replies of one turn leave as one batch, in order. A platform's redelivery of the same message (same delivery id) is
stored and answered once: while the first delivery is still being answered the redelivery returns at once (its
replies leave through the outbox when that turn ends); after a crash of the first one it takes over.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from fastapi import HTTPException, Request

from bot.shared.text import clean_text, detect_language
from channels import dispatch
from channels.base import (
    PHOTO_LIMITED,
    PHOTO_RECEIVED,
    UNSUPPORTED,
    Channel,
    DeliveryError,
    Inbound,
    Malformed,
    Refused,
)
from channels.dispatch import CustomerMessage, Gateway
from channels.routes import ChannelRoutes
from conversations import keys, protect
from conversations.messages import say_in
from conversations.store import ChatMessage, decode_entry

logger = logging.getLogger(__name__)
RASA_METADATA = ("customer_token",)  # what of a platform's extras the bot may see (verified by the actions)
UNSUPPORTED_LABEL = "[unsupported message: {kind}]"
PHOTO_LABEL = "[photo]"
PHOTO_NOT_KEPT_LABEL = "[photo not kept: over the limit]"
MEDIA_PATH = "/api/channels/media/"


async def take_in(state: Any, channel: Channel, inbound: Inbound, *, passive_window_s: float | None = None,
                  take_if: Callable[[list[dict[str, Any]]], bool] | None = None
                  ) -> tuple[str, list[dict[str, Any]]]:
    """Store and answer one platform message. Returns ("queued" | "none" | "taken", messages): "taken" only with
    ``passive_window_s``, when the replies were ready in time (and ``take_if`` accepts them) and the caller answers
    with them itself."""
    gw = Gateway.of(state)
    routes: ChannelRoutes = state.channel_routes
    settings = gw.settings
    conversation_id = await routes.conversation_for(channel.name, inbound.user, inbound.address, inbound.ui_lang)
    text = clean_text(inbound.text, max_chars=settings.web_max_message_chars)
    if getattr(channel, "numbered_buttons", False) and inbound.kind == "text":
        text = await _numbered_choice(routes, conversation_id, text)
    message = CustomerMessage(conversation_id=conversation_id, message_id=f"{channel.name}-{inbound.delivery_id}",
                              text=text, channel=channel.name, ui_lang=inbound.ui_lang,
                              metadata={k: v for k, v in inbound.extra.items() if k in RASA_METADATA})
    limited = await _over_user_limit(state, channel, inbound, message, gw)
    token = await routes.hold(conversation_id, gw.lease_s)
    # A redelivery of a message another attempt is still answering waits for it (up to the attempt's lease, then takes
    # over: that attempt died), so the platform is told "done" only once the message is answered; a passive channel
    # cannot wait beyond its window and leaves the redelivery to the first attempt.
    wait_s = 0.0 if passive_window_s is not None else dispatch.DUPLICATE_WAIT_S
    turn = asyncio.ensure_future(_turn(gw, message, inbound, channel, routes, wait_s, limited))
    # The hold is released only after the turn's replies were handed on (or taken), so the relay cannot split them.
    if passive_window_s is None:
        try:
            if not await turn:
                raise StillAnswering(conversation_id)
            return await routes.flush(conversation_id)
        finally:
            await routes.release(conversation_id, token)
    try:
        await asyncio.wait_for(asyncio.shield(turn), passive_window_s)
    except asyncio.TimeoutError:
        # Too slow for a passive answer: the turn goes on; its replies leave through the outbox when it ends.
        turn.add_done_callback(lambda t: asyncio.ensure_future(_flush_after(routes, conversation_id, token, t)))
        return "queued", []
    except BaseException:
        await routes.release(conversation_id, token)
        raise
    try:
        return await routes.flush(conversation_id, take=True, take_if=take_if)
    finally:
        await routes.release(conversation_id, token)


async def _latest(routes: ChannelRoutes, conversation_id: str, count: int) -> list[ChatMessage]:
    """The conversation's latest messages, newest first."""
    raw = await routes.redis.xrevrange(keys.messages(conversation_id), count=count)
    return [decode_entry(entry_id, data)[0] for entry_id, data in raw]


async def _numbered_choice(routes: ChannelRoutes, conversation_id: str, text: str) -> str:
    """On a platform without buttons the choices are numbered: "2" is the payload of the second button of the
    latest message that showed buttons (if it is among the last few messages), else just "2"."""
    if not text.strip().isdigit():
        return text
    number = int(text.strip())
    for message in await _latest(routes, conversation_id, 10):
        if message.buttons:
            if 1 <= number <= len(message.buttons):
                return message.buttons[number - 1].get("payload") or message.buttons[number - 1].get("title") or text
            return text
    return text


async def _over_user_limit(state: Any, channel: Channel, inbound: Inbound, message: CustomerMessage,
                           gw: Gateway) -> protect.Limited | None:
    """Counts a first delivery against the platform user's limits (CHANNEL_LIMIT_MESSAGES, and for a photo
    CHANNEL_LIMIT_PHOTOS); a redelivery of a stored message is not counted again. The user is named by a keyed hash
    (a WhatsApp id is a phone number): no platform id in a key name."""
    if await gw.store.client_message_state(message.conversation_id, message.message_id) is not None:
        return None
    throttle: protect.Throttle = state.channel_throttle
    user = protect.client_ref(f"{channel.name}:{inbound.user}", gw.settings.client_salt)
    over_messages = await throttle.hit("channel_message", user)  # every kind counts, also a refused photo
    if inbound.kind == "photo":
        return await throttle.hit("channel_photo", user) or over_messages
    return over_messages


async def _turn(gw: Gateway, message: CustomerMessage, inbound: Inbound, channel: Channel, routes: ChannelRoutes,
                wait_s: float, limited: protect.Limited | None = None) -> bool:
    """Answer the message; False when another attempt is still answering it after ``wait_s``."""
    if limited is not None:
        await _over_limit(gw, routes, message, inbound, channel, limited)
        return True
    if inbound.kind == "unsupported":
        await _unsupported(gw, routes, message, inbound, channel.default_language)
        return True
    if inbound.kind == "photo":
        await _photo(gw, routes, message, inbound, channel)
        return True
    return await dispatch.receive(gw, message, wait_s=wait_s) is not None


class StillAnswering(Exception):
    """A redelivered message is still being answered by another attempt: the platform should deliver it again later
    (the webhook answers 503)."""


async def _flush_after(routes: ChannelRoutes, conversation_id: str, token: str, turn: asyncio.Future[bool]
                       ) -> None:
    if turn.cancelled() or turn.exception() is not None:
        logger.warning("late turn of %s failed: %s", conversation_id, None if turn.cancelled() else turn.exception())
    try:
        await routes.flush(conversation_id)
    except Exception as exc:  # noqa: BLE001 - the relay flushes it once the hold is gone
        logger.warning("flush after a late turn of %s failed: %s", conversation_id, exc)
    finally:
        await routes.release(conversation_id, token)


async def _photo(gw: Gateway, routes: ChannelRoutes, message: CustomerMessage, inbound: Inbound,
                 channel: Channel) -> None:
    """A photo (a damaged parcel, a wrong item): fetched from the platform, kept in Redis for the conversation's
    lifetime and shown to agents through GET /api/channels/media/<id> (the customer message names that link); the
    customer is thanked in their language and asked for a few words. The bot is not asked."""
    if await gw.store.client_message_state(message.conversation_id, message.message_id) is not None:
        return  # a redelivery: stored already
    try:
        data, content_type = await channel.fetch_media(inbound.extra.get("media_ref", ""))
    except DeliveryError as exc:
        logger.warning("%s photo of %s not fetched: %s", channel.name, message.conversation_id, exc)
        await _unsupported(gw, routes, message, replace(inbound, text="photo", kind="unsupported"),
                           channel.default_language)
        return
    media_id = secrets.token_urlsafe(18)
    async with routes.redis.pipeline(transaction=True) as pipe:
        pipe.hset(keys.channel_media(media_id), mapping={"content_type": content_type, "data": data,
                                                         "conversation_id": message.conversation_id})
        pipe.expire(keys.channel_media(media_id), gw.store.ttl_s)
        await pipe.execute()
    label = f"{PHOTO_LABEL} {MEDIA_PATH}{media_id}"
    if await gw.store.append_customer_once(message.conversation_id, message.message_id,
                                           ChatMessage(role="customer", text=label), gw.lease_s) is not None:
        return
    language = await _reply_language(routes, message, inbound, channel.default_language)
    reply = await gw.store.append(message.conversation_id,
                                  ChatMessage(role="system", text=PHOTO_RECEIVED.get(language, PHOTO_RECEIVED["en"])))
    await gw.store.store_reply(message.conversation_id, message.message_id, [reply.to_dict()])


async def _over_limit(gw: Gateway, routes: ChannelRoutes, message: CustomerMessage, inbound: Inbound,
                      channel: Channel, limited: protect.Limited) -> None:
    """A message beyond the user's limits: stored (agents see that it came; a photo is neither fetched nor kept)
    and not answered by the bot; the customer is told once per limit window, in their language."""
    photo = inbound.kind == "photo"
    text = PHOTO_NOT_KEPT_LABEL if photo else message.text if inbound.kind == "text" else _unsupported_label(inbound)
    if await gw.store.append_customer_once(message.conversation_id, message.message_id,
                                           ChatMessage(role="customer", text=text), gw.lease_s) is not None:
        return  # a redelivery
    replies: list[dict[str, Any]] = []
    if await gw.store.notice_once(message.conversation_id, f"limit:{limited.name}", ttl_s=limited.retry_after_s):
        language = await _reply_language(routes, message, inbound, channel.default_language,
                                         words="" if photo else message.text)
        notice = PHOTO_LIMITED.get(language, PHOTO_LIMITED["en"]) if photo else say_in("rate_limited", language)
        replies.append((await gw.store.append(message.conversation_id,
                                              ChatMessage(role="system", text=notice))).to_dict())
    await gw.store.store_reply(message.conversation_id, message.message_id, replies)


def _unsupported_label(inbound: Inbound) -> str:
    return UNSUPPORTED_LABEL.format(kind=inbound.text or "other")


async def _reply_language(routes: ChannelRoutes, message: CustomerMessage, inbound: Inbound, channel_language: str,
                          words: str = "") -> str:
    """The language of a reply the bot does not write (photos, other media, limits): the platform's, else the
    message's own ``words``, else the customer's latest words, else the channel's usual one."""
    return (inbound.ui_lang or detect_language(words) or await _recent_language(routes, message.conversation_id)
            or channel_language)


async def _recent_language(routes: ChannelRoutes, conversation_id: str) -> str | None:
    """The language of the customer's latest words in this conversation, if any."""
    for message in await _latest(routes, conversation_id, 20):
        if message.role == "customer" and not message.text.startswith(("[unsupported", "[photo")):
            language = detect_language(message.text)
            if language:
                return language
    return None


async def _unsupported(gw: Gateway, routes: ChannelRoutes, message: CustomerMessage, inbound: Inbound,
                       channel_language: str) -> None:
    """Voice, stickers, locations, files: stored (the agent sees that something came) and answered politely in the
    customer's language (the platform's, else their latest words', else the channel's usual one), never with an
    error. The bot is not asked."""
    label = _unsupported_label(inbound)
    stored = await gw.store.append_customer_once(message.conversation_id, message.message_id,
                                                 ChatMessage(role="customer", text=label), gw.lease_s)
    if stored is not None:
        return  # a redelivery
    language = await _reply_language(routes, message, inbound, channel_language)
    reply = await gw.store.append(message.conversation_id,
                                  ChatMessage(role="system", text=UNSUPPORTED.get(language, UNSUPPORTED["zh"])))
    await gw.store.store_reply(message.conversation_id, message.message_id, [reply.to_dict()])


async def take_in_or_retry_later(state: Any, channel: Channel, inbound: Inbound) -> tuple[str, list[dict[str, Any]]]:
    """``take_in`` for a webhook: 503 + Retry-After when the platform should deliver the message again later."""
    try:
        return await take_in(state, channel, inbound)
    except StillAnswering as exc:
        raise HTTPException(status_code=503, detail="This message is still being answered; deliver it again later.",
                            headers={"Retry-After": "5"}) from exc


def channel_of(request: Request, name: str) -> Channel:
    """The enabled channel ``name``, else 404 (a channel without credentials is off)."""
    channel = getattr(request.app.state, "channels", {}).get(name)
    if channel is None:
        raise HTTPException(status_code=404, detail="Not Found")
    return channel


async def verified_body(request: Request, channel: Channel) -> bytes:
    body = await request.body()
    try:
        await channel.verify(request, body)
    except Refused as exc:
        logger.warning("%s webhook refused: %s", channel.name, exc)
        raise HTTPException(status_code=exc.status, detail="Signature check failed.") from exc
    except Malformed as exc:  # the signature covers a part of the body that is not there
        raise HTTPException(status_code=400, detail=f"Malformed {channel.name} payload: {exc}") from exc
    return body


def parsed(request: Request, channel: Channel, body: bytes) -> list[Inbound]:
    try:
        return channel.parse(request, body)
    except Malformed as exc:
        raise HTTPException(status_code=400, detail=f"Malformed {channel.name} payload: {exc}") from exc
