"""WhatsApp Business Cloud API.

Inbound: ``/api/channels/whatsapp/webhook``.
  * GET: the webhook verification - ``hub.mode=subscribe`` and ``hub.verify_token`` equal to WHATSAPP_VERIFY_TOKEN
    (constant time) echo ``hub.challenge``; anything else 403.
  * POST: ``X-Hub-Signature-256: sha256=<HMAC-SHA256 of the raw body with the app secret>`` (missing 401, wrong 403,
    nothing stored). Notifications of ``object: whatsapp_business_account``; each change's ``value.messages`` are
    customer messages (the ``wamid`` id de-duplicates Meta's redeliveries); ``statuses`` (sent/delivered/read) need
    no answer. Text, interactive ``button_reply`` / ``list_reply`` (the id is the payload the bot offered) and a
    template quick-reply ``button``; images, audio, stickers, locations, documents get a polite answer.

Outbound (through the outbox): ``POST /{phone-number-id}/messages``. Text up to 4096 characters (split beyond);
buttons: up to 3 as interactive reply buttons (title <= 20 characters, body <= 1024), 4-10 as an interactive list
(row title <= 24, the full title as the row's description), more are cut to 10. The 24-hour customer-service window:
free-form messages only within 24 hours of the customer's last message; outside it the approved template
WHATSAPP_TEMPLATE_NAME is sent instead, or - without one - nothing, and the batch becomes a dead letter saying why.
Errors: 5xx, 429 and the Cloud API's throttling/transient codes are retried; others (e.g. 131047 re-engagement
required, 131026 undeliverable) are dead letters.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any

import httpx
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from bot.shared.text import ZH, detect_language
from channels.base import (
    Call,
    Channel,
    DeliveryError,
    Inbound,
    Malformed,
    Refused,
    download,
    hmac_sha256_hex,
    same_secret,
    split_text,
    truncate,
)
from channels.messaging import channel_of, parsed, take_in_or_retry_later, verified_body
from channels.settings import ChannelSettings

logger = logging.getLogger(__name__)
NAME = "whatsapp"
SIGNATURE_HEADER = "x-hub-signature-256"
MAX_TEXT = 4096
MAX_INTERACTIVE_BODY = 1024
MAX_REPLY_BUTTONS = 3
MAX_LIST_ROWS = 10
WINDOW_S = 24 * 3600
RETRYABLE_CODES = {1, 2, 4, 17, 341, 80007, 130429, 131000, 131016, 131056, 133004}
UNSUPPORTED_KINDS = ("audio", "video", "sticker", "location", "document", "contacts", "reaction")
router = APIRouter(prefix="/api/channels/whatsapp", tags=["channels"])


class WhatsAppChannel(Channel):
    name = NAME
    max_text = MAX_TEXT

    def __init__(self, settings: ChannelSettings, http: httpx.AsyncClient | None = None) -> None:
        self.access_token = settings.whatsapp_access_token
        self.app_secret = settings.whatsapp_app_secret
        self.verify_token = settings.whatsapp_verify_token
        self.phone_number_id = settings.whatsapp_phone_number_id
        self.template_name = settings.whatsapp_template_name
        self.template_language = settings.whatsapp_template_language
        self.api_base = httpx.URL(settings.whatsapp_api_base)
        self.media_hosts = tuple(h.strip().lower().strip(".") for h in settings.whatsapp_media_hosts.split(",")
                                 if h.strip())
        self.http = http or httpx.AsyncClient(base_url=settings.whatsapp_api_base.rstrip("/"),
                                              timeout=settings.whatsapp_timeout_s)

    async def close(self) -> None:
        await self.http.aclose()

    async def verify(self, request: Request, body: bytes) -> None:
        given = request.headers.get(SIGNATURE_HEADER)
        if not given:
            raise Refused(401, "missing X-Hub-Signature-256")
        if not same_secret(given, "sha256=" + hmac_sha256_hex(self.app_secret, body)):
            raise Refused(403, "wrong X-Hub-Signature-256")

    def parse(self, request: Request, body: bytes) -> list[Inbound]:
        try:
            notification = json.loads(body)
        except ValueError as exc:
            raise Malformed("body is not JSON") from exc
        if not isinstance(notification, dict) or notification.get("object") != "whatsapp_business_account" \
                or not isinstance(notification.get("entry"), list):
            raise Malformed("not a WhatsApp Business Account notification")
        out = []
        for entry in notification["entry"]:
            changes = entry.get("changes") if isinstance(entry, dict) else None
            if not isinstance(changes, list):
                raise Malformed("entry without changes")
            for change in changes:
                value = change.get("value") if isinstance(change, dict) else None
                if not isinstance(value, dict):
                    raise Malformed("change without a value")
                phone_id = str((value.get("metadata") or {}).get("phone_number_id") or "")
                if phone_id and phone_id != self.phone_number_id:
                    continue  # another number of the same business account
                for message in value.get("messages") or []:
                    out.append(self._inbound(message))
        return out

    def _inbound(self, message: Any) -> Inbound:
        if not isinstance(message, dict) or not message.get("id") or not message.get("from"):
            raise Malformed("message without id or sender")
        wa_id = str(message["from"])
        delivery_id = str(message["id"])

        def inbound(text: str, kind: str = "text", media_ref: str = "") -> Inbound:
            return Inbound(delivery_id=delivery_id, user=wa_id, address={"wa_id": wa_id}, text=text, kind=kind,
                           extra={"media_ref": media_ref} if media_ref else {})

        kind = message.get("type")
        if kind == "text":
            return inbound(str((message.get("text") or {}).get("body") or ""))
        if kind == "interactive":
            interactive = message.get("interactive") or {}
            reply = interactive.get("button_reply") or interactive.get("list_reply") or {}
            return inbound(str(reply.get("id") or reply.get("title") or ""), "button")
        if kind == "image" and (message.get("image") or {}).get("id"):
            return inbound("photo", "photo", str(message["image"]["id"]))
        if kind == "button":  # a template's quick-reply button
            button = message.get("button") or {}
            return inbound(str(button.get("payload") or button.get("text") or ""), "button")
        return inbound(kind if kind in UNSUPPORTED_KINDS else "other", "unsupported")

    def render(self, messages: list[dict[str, Any]], route: dict[str, str]) -> list[Call]:
        to = json.loads(route["address"])["wa_id"]
        if time.time() - float(route.get("last_inbound") or 0) > WINDOW_S:
            if self.template_name:
                return [{"to": to, "type": "template", "template": {
                    "name": self.template_name, "language": {"code": self.template_language}}}]
            return [{"outside_window": True}]
        calls: list[Call] = []
        for m in messages:
            text = (m.get("text") or "").strip()
            buttons = [b for b in m.get("buttons") or [] if b.get("payload") or b.get("title")][:MAX_LIST_ROWS]
            if not buttons:
                calls += [_text(to, piece) for piece in split_text(text, MAX_TEXT)]
                continue
            language = detect_language(text) or ZH
            body = text
            if not text or len(text) > MAX_INTERACTIVE_BODY:
                calls += [_text(to, piece) for piece in split_text(text, MAX_TEXT)]
                body = "请选择：" if language == ZH else "Please choose:"
            if len(buttons) <= MAX_REPLY_BUTTONS:
                action: dict[str, Any] = {"buttons": [
                    {"type": "reply", "reply": {"id": _id(b), "title": truncate(b.get("title") or _id(b), 20)}}
                    for b in buttons]}
                interactive = {"type": "button", "body": {"text": body}, "action": action}
            else:
                rows = []
                for b in buttons:
                    title = b.get("title") or _id(b)
                    row = {"id": _id(b), "title": truncate(title, 24)}
                    if len(title) > 24:
                        row["description"] = truncate(title, 72)
                    rows.append(row)
                interactive = {"type": "list", "body": {"text": body}, "action": {
                    "button": "选项" if language == ZH else "Options", "sections": [{"title": "…", "rows": rows}]}}
            calls.append({"to": to, "type": "interactive", "interactive": interactive})
        return calls

    async def fetch_media(self, ref: str) -> tuple[bytes, str]:
        """``GET /{media-id}`` gives a short-lived URL and the MIME type; the file needs the same Bearer token."""
        auth = {"Authorization": f"Bearer {self.access_token}"}
        try:
            response = await self.http.get(f"/{ref}", headers=auth)
            meta = response.json() if response.status_code == 200 else {}
        except (httpx.HTTPError, ValueError) as exc:
            raise DeliveryError(f"media: {exc.__class__.__name__}", retryable=True) from exc
        if not meta.get("url"):
            raise DeliveryError(f"media {ref}: HTTP {response.status_code}", retryable=False)
        if not self.media_url_allowed(str(meta["url"])):
            # Defence in depth: the token goes with the download, so only Meta's media host (or the API's own) gets it.
            raise DeliveryError(f"media {ref}: download host not in WHATSAPP_MEDIA_HOSTS", retryable=False)
        data, served_type = await download(self.http, str(meta["url"]), auth)
        return data, str(meta.get("mime_type") or served_type)

    def media_url_allowed(self, url: str) -> bool:
        """The API base's own scheme, host and port, or https on a WHATSAPP_MEDIA_HOSTS host or its subdomain."""
        try:
            parsed_url = httpx.URL(url)
        except (httpx.InvalidURL, TypeError):
            return False
        host = (parsed_url.host or "").lower()
        if (parsed_url.scheme, host, parsed_url.port) == (self.api_base.scheme, self.api_base.host.lower(),
                                                          self.api_base.port):
            return True
        return parsed_url.scheme == "https" and parsed_url.port in (None, 443) and any(
            host == allowed or host.endswith("." + allowed) for allowed in self.media_hosts)

    async def send(self, call: Call, route: dict[str, str]) -> None:
        if call.get("outside_window"):
            raise DeliveryError("outside the 24-hour customer-service window and no WHATSAPP_TEMPLATE_NAME: "
                                "not sent", retryable=False)
        payload = {"messaging_product": "whatsapp", "recipient_type": "individual", **call}
        try:
            response = await self.http.post(f"/{self.phone_number_id}/messages", json=payload,
                                            headers={"Authorization": f"Bearer {self.access_token}"})
        except httpx.HTTPError as exc:
            raise DeliveryError(f"messages: {exc.__class__.__name__}", retryable=True) from exc
        if 200 <= response.status_code < 300:
            return
        try:
            error = response.json().get("error") or {}
        except ValueError:
            error = {}
        code = int(error.get("code") or 0)
        reason = f"messages: HTTP {response.status_code} code {code} {str(error.get('message') or '')[:200]}"
        retryable = response.status_code >= 500 or response.status_code == 429 or code in RETRYABLE_CODES
        raise DeliveryError(reason, retryable=retryable)


def _text(to: str, body: str) -> Call:
    return {"to": to, "type": "text", "text": {"body": body, "preview_url": False}}


def _id(button: dict[str, str]) -> str:
    return (button.get("payload") or button.get("title") or "?")[:256]


@router.get("/webhook")
async def verify_subscription(request: Request) -> PlainTextResponse:
    channel = channel_of(request, NAME)
    assert isinstance(channel, WhatsAppChannel)
    query = request.query_params
    if query.get("hub.mode") != "subscribe" or not same_secret(query.get("hub.verify_token"), channel.verify_token):
        raise HTTPException(status_code=403, detail="Verification failed.")
    return PlainTextResponse(query.get("hub.challenge") or "")


@router.post("/webhook")
async def webhook(request: Request) -> JSONResponse:
    channel = channel_of(request, NAME)
    body = await verified_body(request, channel)
    for inbound in parsed(request, channel, body):
        await take_in_or_retry_later(request.app.state, channel, inbound)
    return JSONResponse({"ok": True})
