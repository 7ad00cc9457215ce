"""Telegram (Bot API, webhook mode).

Inbound: ``POST /api/channels/telegram/webhook``. Telegram sends the ``secret_token`` given to setWebhook in
``X-Telegram-Bot-Api-Secret-Token`` (checked in constant time: missing 401, wrong 403, nothing stored). Each Update
has an ``update_id``; Telegram re-sends an update until the webhook answers 2xx, so the update id is the message id
(a redelivery is answered once). Private chats only: ``message.text`` is a customer message, ``callback_query.data``
the payload of an inline-keyboard button the bot showed (answered with answerCallbackQuery so the button stops
spinning); other updates (edits, groups, channel posts) are acknowledged and ignored; photos, voice, stickers,
locations and files get a polite answer.

Outbound (through the outbox): ``sendMessage`` with text up to 4096 characters (longer text is split), buttons as an
``inline_keyboard`` (one button per row; ``callback_data`` is the payload when it fits Telegram's 64 bytes, else the
button's title, which the bot reads as words). Errors: 429 and 5xx are retried (``retry_after`` honoured by the
backoff), 400/403 (chat not found, bot blocked by the user) are dead letters.
"""
from __future__ import annotations

import json
import logging
import mimetypes
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from channels.base import (
    MEDIA_MAX_BYTES,
    Call,
    Channel,
    DeliveryError,
    Inbound,
    Malformed,
    Refused,
    download,
    language_of,
    same_secret,
    split_text,
)
from channels.messaging import channel_of, parsed, take_in_or_retry_later, verified_body
from channels.settings import ChannelSettings

logger = logging.getLogger(__name__)
NAME = "telegram"
SECRET_HEADER = "x-telegram-bot-api-secret-token"  # noqa: S105 - a header name
MAX_TEXT = 4096
MAX_CALLBACK_DATA = 64
UNSUPPORTED_KINDS = ("voice", "audio", "video", "video_note", "sticker", "animation", "document",
                     "location", "venue", "contact", "poll", "dice")
START_TEXT = {"zh": "你好", "en": "hello"}
router = APIRouter(prefix="/api/channels/telegram", tags=["channels"])


class TelegramChannel(Channel):
    name = NAME
    max_text = MAX_TEXT

    def __init__(self, settings: ChannelSettings, http: httpx.AsyncClient | None = None) -> None:
        self.token = settings.telegram_bot_token
        self.secret = settings.telegram_webhook_secret
        self.http = http or httpx.AsyncClient(base_url=settings.telegram_api_base.rstrip("/"),
                                              timeout=settings.telegram_timeout_s)

    async def close(self) -> None:
        await self.http.aclose()

    async def verify(self, request: Request, body: bytes) -> None:
        given = request.headers.get(SECRET_HEADER)
        if not given:
            raise Refused(401, "missing secret token")
        if not same_secret(given, self.secret):
            raise Refused(403, "wrong secret token")

    def parse(self, request: Request, body: bytes) -> list[Inbound]:
        try:
            update = json.loads(body)
        except ValueError as exc:
            raise Malformed("body is not JSON") from exc
        if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
            raise Malformed("not a Telegram Update (no integer update_id)")
        update_id = str(update["update_id"])
        if "callback_query" in update:
            query = _dict(update["callback_query"])
            message = _dict(query.get("message"))
            chat = _dict(message.get("chat"))
            sender = _dict(query.get("from"))
            if chat.get("type", "private") != "private" or not isinstance(query.get("id"), str):
                return []
            chat_id = chat.get("id", sender.get("id"))
            if not isinstance(chat_id, int):
                raise Malformed("callback_query without a chat id")
            return [Inbound(delivery_id=update_id, user=str(chat_id), address={"chat_id": str(chat_id)},
                            text=str(query.get("data") or ""), kind="button",
                            ui_lang=language_of(sender.get("language_code")),
                            extra={"callback_query_id": query["id"]})]
        if "message" not in update:
            return []  # edited messages, channel posts, membership changes: nothing to answer
        message = _dict(update["message"])
        chat = _dict(message.get("chat"))
        chat_id = chat.get("id")
        if not isinstance(chat_id, int):
            raise Malformed("message without a chat id")
        if chat.get("type") != "private":
            return []
        ui_lang = language_of(_dict(message.get("from")).get("language_code"))
        address = {"chat_id": str(chat_id)}
        photo = _largest_photo(message.get("photo"))
        if photo:
            return [Inbound(delivery_id=update_id, user=str(chat_id), address=address, text="photo", kind="photo",
                            ui_lang=ui_lang, extra={"media_ref": photo})]
        text = message.get("text")
        if isinstance(text, str):
            if text.strip().split("@")[0] == "/start":
                text = START_TEXT.get(ui_lang or "en", "hello")
            return [Inbound(delivery_id=update_id, user=str(chat_id), address=address, text=text, ui_lang=ui_lang)]
        kind = next((k for k in UNSUPPORTED_KINDS if k in message), "other")
        return [Inbound(delivery_id=update_id, user=str(chat_id), address=address, text=kind, kind="unsupported",
                        ui_lang=ui_lang)]

    def render(self, messages: list[dict[str, Any]], route: dict[str, str]) -> list[Call]:
        chat_id = json.loads(route["address"])["chat_id"]
        calls: list[Call] = []
        for m in messages:
            buttons = m.get("buttons") or []
            pieces = split_text(m.get("text") or "", MAX_TEXT) or ([" "] if buttons else [])
            for i, piece in enumerate(pieces):
                payload: dict[str, Any] = {"chat_id": int(chat_id), "text": piece}
                if buttons and i == len(pieces) - 1:
                    payload["reply_markup"] = {"inline_keyboard": [
                        [{"text": b.get("title") or b.get("payload") or "?", "callback_data": _callback_data(b)}]
                        for b in buttons]}
                calls.append({"method": "sendMessage", "payload": payload})
        return calls

    async def send(self, call: Call, route: dict[str, str]) -> None:
        await self.call(call["method"], call["payload"])

    async def call(self, method: str, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self.http.post(f"/bot{self.token}/{method}", json=payload)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{method}: {exc.__class__.__name__}", retryable=True) from exc
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code == 200 and body.get("ok"):
            return body
        status = int(body.get("error_code") or response.status_code)
        reason = f"{method}: HTTP {status} {str(body.get('description') or '')[:200]}"
        raise DeliveryError(reason, retryable=status == 429 or status >= 500)

    async def fetch_media(self, ref: str) -> tuple[bytes, str]:
        """getFile, then the file from ``/file/bot<token>/<file_path>`` (Telegram serves it as octet-stream: the
        type comes from the path's extension)."""
        result = (await self.call("getFile", {"file_id": ref})).get("result") or {}
        path = str(result.get("file_path") or "")
        if not path:
            raise DeliveryError("getFile: no file_path", retryable=False)
        data, _ = await download(self.http, f"/file/bot{self.token}/{path}")
        return data, mimetypes.guess_type(path)[0] or "application/octet-stream"

    async def answer_callback(self, callback_query_id: str) -> None:
        """Stop the button's spinner (best effort: the customer's choice is already stored and answered)."""
        try:
            await self.call("answerCallbackQuery", {"callback_query_id": callback_query_id})
        except DeliveryError as exc:
            logger.info("answerCallbackQuery failed: %s", exc)


def _largest_photo(sizes: Any) -> str:
    """The file_id of the largest size of a photo Telegram offers that is at most 5 MB."""
    if not isinstance(sizes, list):
        return ""
    fitting = [p for p in sizes if isinstance(p, dict) and isinstance(p.get("file_id"), str)
               and int(p.get("file_size") or 0) <= MEDIA_MAX_BYTES]
    if not fitting:
        return ""
    return max(fitting, key=lambda p: int(p.get("width") or 0) * int(p.get("height") or 0))["file_id"]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _callback_data(button: dict[str, str]) -> str:
    payload = button.get("payload") or ""
    if payload and len(payload.encode()) <= MAX_CALLBACK_DATA:
        return payload
    return (button.get("title") or "?").encode()[:MAX_CALLBACK_DATA].decode(errors="ignore")


@router.post("/webhook")
async def webhook(request: Request) -> JSONResponse:
    channel = channel_of(request, NAME)
    assert isinstance(channel, TelegramChannel)
    body = await verified_body(request, channel)
    for inbound in parsed(request, channel, body):
        await take_in_or_retry_later(request.app.state, channel, inbound)
        if inbound.extra.get("callback_query_id"):
            await channel.answer_callback(inbound.extra["callback_query_id"])
    return JSONResponse({"ok": True})
