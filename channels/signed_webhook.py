"""A generic signed webhook, for a store's own app (or any system that is not one of the messaging platforms).

Both directions are signed the same way: ``X-Signature-Timestamp: <unix seconds>`` and ``X-Signature: sha256=<hex
HMAC-SHA256 of "<timestamp>.<raw body>" with SIGNED_WEBHOOK_SECRET>``. A request whose timestamp is further than
SIGNED_WEBHOOK_REPLAY_WINDOW_S from now is refused (a captured request cannot be replayed later); within the window
a repeated ``message_id`` of the same user is answered once.

Inbound: ``POST /api/channels/webhook/messages`` with JSON ``{"user_id", "message_id", "text", "language"?,
"customer_token"?}`` -> 202 ``{"conversation_id"}``; missing signature 401, wrong or stale 403, malformed 400.
Outbound (through the outbox): ``POST SIGNED_WEBHOOK_CALLBACK_URL`` once per message with JSON ``{"user_id",
"conversation_id", "message": {"id", "role", "text", "buttons"}}`` (the stream id lets the app drop a repeat); 2xx
accepted, 429/5xx/timeouts retried, other 4xx dead letters.
"""
from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from channels.base import (
    Call,
    Channel,
    DeliveryError,
    Inbound,
    Malformed,
    Refused,
    hmac_sha256_hex,
    language_of,
    same_secret,
)
from channels.messaging import channel_of, parsed, take_in_or_retry_later, verified_body
from channels.settings import ChannelSettings

NAME = "webhook"
_ID = re.compile(r"^[A-Za-z0-9_.:@+-]{1,128}$")
router = APIRouter(prefix="/api/channels/webhook", tags=["channels"])


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac_sha256_hex(secret, timestamp.encode() + b"." + body)


class SignedWebhookChannel(Channel):
    name = NAME
    max_text = 100_000

    def __init__(self, settings: ChannelSettings, http: httpx.AsyncClient | None = None) -> None:
        self.secret = settings.signed_webhook_secret
        self.callback_url = settings.signed_webhook_callback_url
        self.window_s = settings.signed_webhook_replay_window_s
        self.http = http or httpx.AsyncClient(timeout=settings.signed_webhook_timeout_s)

    async def close(self) -> None:
        await self.http.aclose()

    async def verify(self, request: Request, body: bytes) -> None:
        timestamp = request.headers.get("x-signature-timestamp") or ""
        signature = request.headers.get("x-signature") or ""
        if not timestamp or not signature:
            raise Refused(401, "missing X-Signature / X-Signature-Timestamp")
        if not same_secret(signature, sign(self.secret, timestamp, body)):
            raise Refused(403, "wrong signature")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > self.window_s:
            raise Refused(403, "timestamp outside the replay window")

    def parse(self, request: Request, body: bytes) -> list[Inbound]:
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise Malformed("body is not JSON") from exc
        if not isinstance(data, dict):
            raise Malformed("body is not an object")
        user, message_id, text = data.get("user_id"), data.get("message_id"), data.get("text")
        if not isinstance(user, str) or not _ID.match(user) or not isinstance(message_id, str) \
                or not _ID.match(message_id) or not isinstance(text, str):
            raise Malformed("user_id, message_id (1-128 of A-Z a-z 0-9 _ . : @ + -) and text are required")
        extra = {}
        if isinstance(data.get("customer_token"), str):
            extra["customer_token"] = data["customer_token"][:2048]
        language = data.get("language")
        return [Inbound(delivery_id=message_id, user=user, address={"user_id": user}, text=text,
                        ui_lang=language_of(language) if isinstance(language, str) else None, extra=extra)]

    def render(self, messages: list[dict[str, Any]], route: dict[str, str]) -> list[Call]:
        user = json.loads(route["address"])["user_id"]
        return [{"user_id": user, "conversation_id": route.get("conversation_id", ""),
                 "message": {k: m.get(k) for k in ("id", "role", "text", "buttons")}} for m in messages]

    async def send(self, call: Call, route: dict[str, str]) -> None:
        body = json.dumps(call, ensure_ascii=False).encode()
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-Signature-Timestamp": timestamp,
                   "X-Signature": sign(self.secret, timestamp, body)}
        try:
            response = await self.http.post(self.callback_url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"callback: {exc.__class__.__name__}", retryable=True) from exc
        if 200 <= response.status_code < 300:
            return
        status = response.status_code
        raise DeliveryError(f"callback: HTTP {status}", retryable=status == 429 or status >= 500)


@router.post("/messages", status_code=202)
async def messages(request: Request) -> JSONResponse:
    channel = channel_of(request, NAME)
    body = await verified_body(request, channel)
    conversation_id = ""
    for inbound in parsed(request, channel, body):
        await take_in_or_retry_later(request.app.state, channel, inbound)
        conversation_id = await request.app.state.channel_routes.conversation_of(NAME, inbound.user) or ""
    return JSONResponse({"conversation_id": conversation_id}, status_code=202)
