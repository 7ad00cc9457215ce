"""A local stand-in for the Telegram Bot API (https://core.telegram.org/bots/api), for tests and demos.

What it reproduces of the documented behaviour:

* methods are ``POST /bot<token>/<method>`` with a JSON body; answers are ``{"ok": true, "result": ...}`` or
  ``{"ok": false, "error_code": n, "description": "..."}``; a wrong token gets 401 ``Unauthorized``;
* ``sendMessage``: ``chat_id`` and a non-empty ``text`` of at most 4096 characters (else 400 ``Bad Request: message
  text is empty`` / ``message is too long``); ``reply_markup.inline_keyboard`` buttons need ``text`` and a
  ``callback_data`` of 1-64 bytes (else 400 ``BUTTON_DATA_INVALID``); a chat that blocked the bot gets 403
  ``Forbidden: bot was blocked by the user``; the result is the sent Message with a new ``message_id``;
* ``answerCallbackQuery`` with a ``callback_query_id``;
* photos: an Update's ``message.photo`` is a list of PhotoSize (``file_id``, ``width``, ``height``, ``file_size``);
  ``getFile`` answers a File with ``file_path``, the bytes are at ``GET /file/bot<token>/<file_path>`` (served as
  ``application/octet-stream``, as Telegram's file server does);
* flood control: when told to (``fail_next`` / ``fail_rate``), 429 ``Too Many Requests: retry after N`` with
  ``parameters.retry_after``, or 500/502 like a Bot API outage;
* :meth:`FakeTelegram.text_update` / :meth:`callback_update` build the Updates Telegram POSTs to a webhook, with
  the ``X-Telegram-Bot-Api-Secret-Token`` header (:meth:`headers`).

    python -m tests.fakes.telegram_api --port 8091 --token 123:ABC
"""
from __future__ import annotations

import argparse
import itertools
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

MAX_TEXT = 4096
MAX_CALLBACK_DATA = 64


@dataclass
class FakeTelegram:
    token: str = "123456:TEST-token"  # noqa: S105 - test value
    secret: str = "webhook-secret-0123456789"  # noqa: S105 - test value
    fail_next: int = 0  # the next N calls fail with fail_status
    fail_status: int = 429
    fail_rate: float = 0.0  # each call fails with this probability (seeded: reproducible)
    retry_after: int = 1
    blocked_chats: set = field(default_factory=set)
    sent: list[dict[str, Any]] = field(default_factory=list)  # accepted sendMessage payloads, in order
    accepted_at: list[float] = field(default_factory=list)  # time.monotonic() of each accepted sendMessage
    answered_callbacks: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)  # every method called (accepted or not)
    seed: int = 7
    _ids: Any = field(default_factory=lambda: itertools.count(1000))
    _updates: Any = field(default_factory=lambda: itertools.count(500_000))
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # file_id -> (file_path, bytes)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    # ------------------------------------------------------------------ what Telegram sends to a webhook

    def headers(self, secret: str | None = None) -> dict[str, str]:
        return {"X-Telegram-Bot-Api-Secret-Token": self.secret if secret is None else secret,
                "Content-Type": "application/json"}

    def text_update(self, chat_id: int, text: str, language_code: str = "en") -> dict[str, Any]:
        user = {"id": chat_id, "is_bot": False, "first_name": "Test", "language_code": language_code}
        return {"update_id": next(self._updates), "message": {
            "message_id": next(self._ids), "from": user, "chat": {"id": chat_id, "type": "private",
                                                                  "first_name": "Test"},
            "date": int(time.time()), "text": text}}

    def callback_update(self, chat_id: int, data: str, language_code: str = "en") -> dict[str, Any]:
        user = {"id": chat_id, "is_bot": False, "first_name": "Test", "language_code": language_code}
        return {"update_id": next(self._updates), "callback_query": {
            "id": str(next(self._ids)), "from": user, "chat_instance": "-1",
            "message": {"message_id": next(self._ids), "chat": {"id": chat_id, "type": "private"},
                        "date": int(time.time()), "text": "..."},
            "data": data}}

    def sticker_update(self, chat_id: int) -> dict[str, Any]:
        update = self.text_update(chat_id, "")
        del update["message"]["text"]
        update["message"]["sticker"] = {"file_id": "CAACAgIAAx", "width": 512, "height": 512, "is_animated": False}
        return update

    def photo_update(self, chat_id: int, data: bytes, caption: str = "") -> dict[str, Any]:
        update = self.text_update(chat_id, "")
        del update["message"]["text"]
        small, large = f"AgAC-small-{update['update_id']}", f"AgAC-large-{update['update_id']}"
        self.files[small] = (f"photos/file_{update['update_id']}_s.jpg", data[:100])
        self.files[large] = (f"photos/file_{update['update_id']}.jpg", data)
        update["message"]["photo"] = [
            {"file_id": small, "file_unique_id": "s", "width": 90, "height": 90, "file_size": len(data[:100])},
            {"file_id": large, "file_unique_id": "l", "width": 1280, "height": 960, "file_size": len(data)}]
        if caption:
            update["message"]["caption"] = caption
        return update

    def texts_to(self, chat_id: int) -> list[str]:
        with self._lock:
            return [m["text"] for m in self.sent if int(m["chat_id"]) == chat_id]

    # ------------------------------------------------------------------ the Bot API

    def _failure(self) -> JSONResponse | None:
        with self._lock:
            fail = self.fail_next > 0 or (self.fail_rate and self._random.random() < self.fail_rate)
            if self.fail_next > 0:
                self.fail_next -= 1
        if not fail:
            return None
        if self.fail_status == 429:
            return _error(429, f"Too Many Requests: retry after {self.retry_after}",
                          {"retry_after": self.retry_after})
        return _error(self.fail_status, "Internal Server Error" if self.fail_status == 500 else "Bad Gateway")

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/file/bot{token}/{path:path}")
        async def file(token: str, path: str) -> Response:
            if token != self.token:
                return _error(401, "Unauthorized")
            for file_path, data in self.files.values():
                if file_path == path:
                    return Response(data, media_type="application/octet-stream")
            return _error(404, "Not Found")

        @app.post("/bot{token}/{method}")
        async def method(token: str, method: str, request: Request) -> JSONResponse:
            with self._lock:
                self.calls.append(method)
            if token != self.token:
                return _error(401, "Unauthorized")
            try:
                body = await request.json()
            except ValueError:
                return _error(400, "Bad Request: can't parse JSON")
            failure = self._failure()
            if failure is not None:
                return failure
            if method == "sendMessage":
                return self._send_message(body)
            if method == "getFile":
                known = self.files.get(str(body.get("file_id")))
                if known is None:
                    return _error(400, "Bad Request: invalid file_id")
                return JSONResponse({"ok": True, "result": {"file_id": body["file_id"], "file_unique_id": "u",
                                                            "file_size": len(known[1]), "file_path": known[0]}})
            if method == "answerCallbackQuery":
                if not body.get("callback_query_id"):
                    return _error(400, "Bad Request: query is too old and response timeout expired or query ID "
                                       "is invalid")
                with self._lock:
                    self.answered_callbacks.append(str(body["callback_query_id"]))
                return JSONResponse({"ok": True, "result": True})
            return _error(404, "Not Found")

        return app

    def _send_message(self, body: dict[str, Any]) -> JSONResponse:
        chat_id, text = body.get("chat_id"), body.get("text")
        if chat_id is None:
            return _error(400, "Bad Request: chat_id is empty")
        if not isinstance(text, str) or not text.strip():
            return _error(400, "Bad Request: message text is empty")
        if len(text) > MAX_TEXT:
            return _error(400, "Bad Request: message is too long")
        for row in (body.get("reply_markup") or {}).get("inline_keyboard") or []:
            for button in row:
                data = button.get("callback_data")
                if not button.get("text") or not data or len(str(data).encode()) > MAX_CALLBACK_DATA:
                    return _error(400, "Bad Request: BUTTON_DATA_INVALID")
        if int(chat_id) in self.blocked_chats:
            return _error(403, "Forbidden: bot was blocked by the user")
        with self._lock:
            message = {"message_id": next(self._ids), "date": int(time.time()),
                       "chat": {"id": int(chat_id), "type": "private"}, "text": text}
            self.sent.append(dict(body))
            self.accepted_at.append(time.monotonic())
        return JSONResponse({"ok": True, "result": message})


def _error(code: int, description: str, parameters: dict[str, Any] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return JSONResponse(body, status_code=code)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8091)
    parser.add_argument("--token", default=FakeTelegram.token)
    args = parser.parse_args()
    uvicorn.run(FakeTelegram(token=args.token).app(), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
