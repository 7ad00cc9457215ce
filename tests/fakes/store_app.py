"""A store's own app receiving the generic signed webhook's replies (channels/signed_webhook.py), for tests.

It checks the signature exactly as a store should (HMAC-SHA256 of "<timestamp>.<raw body>", timestamp within the
window), records what it accepted, and can be told to fail (``fail_next`` answers 503) or to refuse (``refuse``: 410).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


@dataclass
class FakeStoreApp:
    secret: str = "store-app-shared-secret-0123456789"  # noqa: S105 - test value
    window_s: int = 300
    fail_next: int = 0
    refuse: bool = False
    received: list[dict[str, Any]] = field(default_factory=list)
    rejected_signatures: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def signed(self, payload: dict[str, Any], *, secret: str | None = None, at: float | None = None
               ) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(payload).encode()
        timestamp = str(int(time.time() if at is None else at))
        key = (self.secret if secret is None else secret).encode()
        signature = "sha256=" + hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        return body, {"Content-Type": "application/json", "X-Signature-Timestamp": timestamp,
                      "X-Signature": signature}

    def texts_for(self, user_id: str) -> list[str]:
        with self._lock:
            return [r["message"]["text"] for r in self.received if r["user_id"] == user_id]

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/csbot/replies")
        async def replies(request: Request) -> JSONResponse:
            body = await request.body()
            timestamp = request.headers.get("x-signature-timestamp", "")
            expected = "sha256=" + hmac.new(self.secret.encode(), timestamp.encode() + b"." + body,
                                            hashlib.sha256).hexdigest()
            fresh = timestamp.isdigit() and abs(time.time() - int(timestamp)) <= self.window_s
            if not hmac.compare_digest(request.headers.get("x-signature", ""), expected) or not fresh:
                with self._lock:
                    self.rejected_signatures += 1
                return JSONResponse({"error": "bad signature"}, status_code=401)
            with self._lock:
                if self.refuse:
                    return JSONResponse({"error": "user gone"}, status_code=410)
                if self.fail_next > 0:
                    self.fail_next -= 1
                    return JSONResponse({"error": "busy"}, status_code=503)
                self.received.append(json.loads(body))
            return JSONResponse({"ok": True})

        return app
