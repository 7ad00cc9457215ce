"""A local stand-in for the WhatsApp Business Cloud API (Graph API ``/{phone-number-id}/messages``) and its webhooks.

What it reproduces of the documented behaviour:

* ``POST /{phone-number-id}/messages`` with ``Authorization: Bearer <token>`` (else 401, error code 190 "Invalid
  OAuth access token"); ``messaging_product: whatsapp``; answers ``{"messaging_product": "whatsapp", "contacts":
  [{"input", "wa_id"}], "messages": [{"id": "wamid..."}]}``; errors ``{"error": {"message", "type", "code",
  "fbtrace_id"}}``;
* limits of the message objects: text body 1-4096 characters; interactive ``button``: 1-3 reply buttons, title
  1-20 characters, id <= 256, body <= 1024; interactive ``list``: button label <= 20, at most 10 rows, row title
  <= 24, description <= 72 (violations: 400, code 131009 "Parameter value is not valid");
* the 24-hour customer-service window: a free-form message to a user whose last message is older than 24 hours
  gets 400 code 131047 ("Re-engagement message"); templates are always accepted;
* media: an ``image`` message carries ``image.id``; ``GET /{media-id}`` (Bearer) answers ``{"url", "mime_type",
  "sha256", "file_size", "id"}``, and the URL serves the bytes to the same Bearer token only;
* throttling / outages on demand: 429 code 130429 ("Rate limit hit") or 500 code 131000 ("Something went wrong");
* :meth:`FakeWhatsApp.notification` builds the webhook POST Meta sends (``whatsapp_business_account`` object,
  ``entry[].changes[].value.messages``), :meth:`headers` signs it (``X-Hub-Signature-256``: sha256 HMAC of the raw
  body with the app secret).
"""
from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response


@dataclass
class FakeWhatsApp:
    access_token: str = "EAAG-test-token"  # noqa: S105 - test value
    app_secret: str = "meta-app-secret-0123456789"  # noqa: S105 - test value
    verify_token: str = "verify-me-0123456789"  # noqa: S105 - test value
    phone_number_id: str = "106540352242922"
    fail_next: int = 0
    fail_status: int = 429
    last_inbound: dict[str, float] = field(default_factory=dict)  # wa_id -> when the user last wrote
    sent: list[dict[str, Any]] = field(default_factory=list)
    media: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # media id -> (mime type, bytes)
    media_host: str = ""  # the download URLs' scheme://host/ (empty: this API's own, as request.base_url says)
    downloads: list[str] = field(default_factory=list)  # the Host of every media download asked for
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # ------------------------------------------------------------------ what Meta sends to the webhook

    def message(self, wa_id: str, text: str | None = None, *, kind: str = "text", reply_id: str = "",
                at: float | None = None, data: bytes = b"") -> dict[str, Any]:
        at = time.time() if at is None else at
        with self._lock:
            self.last_inbound[wa_id] = at
            wamid = f"wamid.HBgL{next(self._ids):010d}"
        message: dict[str, Any] = {"from": wa_id, "id": wamid, "timestamp": str(int(at)), "type": kind}
        if kind == "text":
            message["text"] = {"body": text or ""}
        elif kind == "interactive":
            message["interactive"] = {"type": "button_reply", "button_reply": {"id": reply_id, "title": text}}
        elif kind == "image":
            media_id = f"{next(self._ids)}{len(self.media):06d}"
            self.media[media_id] = ("image/jpeg", data)
            message["image"] = {"mime_type": "image/jpeg", "sha256": "x", "id": media_id}
        elif kind == "sticker":
            message["sticker"] = {"mime_type": "image/webp", "sha256": "x", "id": "1234"}
        return message

    def notification(self, *messages: dict[str, Any], statuses: list[dict[str, Any]] | None = None
                     ) -> dict[str, Any]:
        value: dict[str, Any] = {"messaging_product": "whatsapp", "metadata": {
            "display_phone_number": "15550783881", "phone_number_id": self.phone_number_id}}
        if messages:
            value["contacts"] = [{"profile": {"name": "Test"}, "wa_id": m["from"]} for m in messages]
            value["messages"] = list(messages)
        if statuses:
            value["statuses"] = statuses
        return {"object": "whatsapp_business_account",
                "entry": [{"id": "102290129340398", "changes": [{"value": value, "field": "messages"}]}]}

    def signed(self, payload: dict[str, Any], secret: str | None = None) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(payload).encode()
        key = (self.app_secret if secret is None else secret).encode()
        signature = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
        return body, {"X-Hub-Signature-256": signature, "Content-Type": "application/json"}

    def sent_to(self, wa_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [m for m in self.sent if m.get("to") == wa_id]

    # ------------------------------------------------------------------ the Cloud API

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/media-download/{media_id}")
        async def download(media_id: str, request: Request) -> Response:
            self.downloads.append(request.headers.get("host", ""))
            if request.headers.get("authorization") != f"Bearer {self.access_token}":
                return _error(401, 190, "Invalid OAuth access token - Cannot parse access token", "OAuthException")
            known = self.media.get(media_id)
            if known is None:
                return _error(404, 100, "Unsupported get request")
            return Response(known[1], media_type=known[0])

        @app.get("/{version}/{media_id}")
        async def media_url(version: str, media_id: str, request: Request) -> JSONResponse:
            if request.headers.get("authorization") != f"Bearer {self.access_token}":
                return _error(401, 190, "Invalid OAuth access token - Cannot parse access token", "OAuthException")
            known = self.media.get(media_id)
            if known is None:
                return _error(400, 100, "Unsupported get request. Object with ID does not exist")
            url = f"{self.media_host or request.base_url}media-download/{media_id}"
            return JSONResponse({"messaging_product": "whatsapp", "url": url,
                                 "mime_type": known[0], "sha256": "x", "file_size": len(known[1]), "id": media_id})

        @app.post("/{version}/{phone_number_id}/messages")  # the Graph API version, e.g. /v21.0
        @app.post("/{phone_number_id}/messages")
        async def messages(phone_number_id: str, request: Request) -> JSONResponse:
            if request.headers.get("authorization") != f"Bearer {self.access_token}":
                return _error(401, 190, "Invalid OAuth access token - Cannot parse access token", "OAuthException")
            if phone_number_id != self.phone_number_id:
                return _error(400, 100, "Unsupported post request. Object with ID does not exist")
            try:
                body = await request.json()
            except ValueError:
                return _error(400, 100, "Invalid parameter")
            with self._lock:
                fail = self.fail_next > 0
                self.fail_next = max(0, self.fail_next - 1)
            if fail:
                if self.fail_status == 429:
                    return _error(429, 130429, "Rate limit hit")
                return _error(500, 131000, "Something went wrong")
            problem = self._problem(body)
            if problem is not None:
                return problem
            with self._lock:
                self.sent.append(body)
                wamid = f"wamid.OUT{next(self._ids):010d}"
            return JSONResponse({"messaging_product": "whatsapp",
                                 "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                                 "messages": [{"id": wamid}]})

        return app

    def _problem(self, body: dict[str, Any]) -> JSONResponse | None:
        if body.get("messaging_product") != "whatsapp" or not body.get("to"):
            return _error(400, 100, "Invalid parameter")
        kind = body.get("type")
        if kind != "template" and time.time() - self.last_inbound.get(body["to"], 0) > 24 * 3600:
            return _error(400, 131047, "Re-engagement message: more than 24 hours have passed since the recipient "
                                       "last replied to the sender number.")
        invalid = _error(400, 131009, "Parameter value is not valid")
        if kind == "text":
            text = (body.get("text") or {}).get("body") or ""
            return invalid if not text or len(text) > 4096 else None
        if kind == "template":
            return None if (body.get("template") or {}).get("name") else invalid
        if kind != "interactive":
            return invalid
        interactive = body.get("interactive") or {}
        text = (interactive.get("body") or {}).get("text") or ""
        if not text or len(text) > 1024:
            return invalid
        action = interactive.get("action") or {}
        if interactive.get("type") == "button":
            buttons = action.get("buttons") or []
            ok = 1 <= len(buttons) <= 3 and all(
                1 <= len(b["reply"]["title"]) <= 20 and 1 <= len(b["reply"]["id"]) <= 256 for b in buttons)
            return None if ok else invalid
        if interactive.get("type") == "list":
            rows = [r for s in action.get("sections") or [] for r in s.get("rows") or []]
            ok = 1 <= len(action.get("button") or "") <= 20 and 1 <= len(rows) <= 10 and all(
                1 <= len(r["title"]) <= 24 and len(r.get("description") or "") <= 72 for r in rows)
            return None if ok else invalid
        return invalid


def _error(status: int, code: int, message: str, kind: str = "OAuthException") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "code": code, "fbtrace_id": "AbCdEf"}},
                        status_code=status)
