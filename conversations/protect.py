"""What protects the gateway from its clients: who a client is, how much it may do, and HTTP-level guards.

* **Client identity.** A client is its network address (``X-Forwarded-For`` is believed only from the proxies in
  ``WEB_TRUSTED_PROXIES``) and, for the website, a per-browser secret in an HttpOnly cookie (``csbot_device``). A
  conversation is bound to the browser that started it: its id alone (it travels in URLs) opens nothing.
* **Throttles.** Per-client limits (moving windows in Redis through the ``limits`` package, shared by every gateway
  process) on new conversations, messages and handoffs. Limits are ``limits`` strings such as ``"10/minute;100/day"``.
* **HTTP guards.** A request-body cap (413 before the body is read into memory) and security headers on every
  response.

Network addresses are personal data: limits and stored records use a keyed hash of them (:func:`client_ref`), never
the address itself.
"""
from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from limits import RateLimitItem, parse_many

from conversations import keys
from conversations.redis_client import moving_window

DEVICE_COOKIE = "csbot_device"
DEVICE_COOKIE_MAX_AGE_S = 365 * 24 * 3600
_DEVICE_ALPHABET_LEN = 43  # secrets.token_urlsafe(32)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


# ---------------------------------------------------------------------------------------------- client identity

def client_ip(request: Request, trusted_proxies: list[str]) -> str:
    """The client's address: the peer, or the last untrusted hop of X-Forwarded-For when the peer is a proxy we
    trust (each trusted proxy appends the address it saw, so the right-most untrusted entry is the client)."""
    peer = request.client.host if request.client else "unknown"
    if not trusted_proxies or not _in(peer, trusted_proxies):
        return peer
    hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not _in(hop, trusted_proxies):
            return hop
    return peer


def _in(address: str, networks: list[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(net, strict=False) for net in networks)


def client_ref(address: str, salt: str) -> str:
    """A stable pseudonym of a network address (keyed BLAKE2b), used in rate-limit keys and records."""
    return hashlib.blake2b(address.encode(), key=salt.encode()[:64], digest_size=12).hexdigest()


def new_device_secret() -> str:
    return secrets.token_urlsafe(32)


def valid_device_secret(value: str | None) -> bool:
    if value is None or len(value) != _DEVICE_ALPHABET_LEN:
        return False
    return value.replace("-", "").replace("_", "").isalnum()


def device_hash(secret: str) -> str:
    """What the conversation record keeps of the browser secret (the secret itself is never stored)."""
    return hashlib.sha256(secret.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------- throttles

@dataclass(frozen=True)
class Limited:
    """A refused request: which limit, and when the client may try again."""

    name: str
    retry_after_s: int


class Throttle:
    """Named per-client limits in Redis. ``hit`` counts one event and says whether it was over a limit."""

    def __init__(self, redis_url: str, limits: dict[str, str]) -> None:
        self._limiter = moving_window(redis_url, keys.rate_limit_prefix())
        self._limits: dict[str, list[RateLimitItem]] = {name: parse_many(spec) for name, spec in limits.items()}

    async def hit(self, name: str, *identifiers: str) -> Limited | None:
        """Count one event for ``identifiers`` under every window of limit ``name``; None when allowed."""
        for item in self._limits.get(name, []):
            if not await self._limiter.hit(item, name, *identifiers):
                stats = await self._limiter.get_window_stats(item, name, *identifiers)
                return Limited(name, max(1, int(stats.reset_time - time.time()) + 1))
        return None


# ---------------------------------------------------------------------------------------------- HTTP guards

SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; "
     b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with 413, before they are held in memory: by Content-Length when
    the client declares it, else by counting the streamed chunks. ``larger`` lists (path pattern, cap) of the few
    POST routes that take more (the web chat's photo upload)."""

    def __init__(self, app: ASGIApp, max_bytes: int, larger: Sequence[tuple[re.Pattern[str], int]] = ()) -> None:
        self.app = app
        self.default_max_bytes = max_bytes
        self.larger = list(larger)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.default_max_bytes
        if scope.get("method") == "POST":
            path = scope.get("path", "")
            max_bytes = next((cap for pattern, cap in self.larger if pattern.match(path)), max_bytes)
        await self._guarded(scope, receive, send, max_bytes)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send, max_bytes: int) -> None:
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
            await _too_large(send, max_bytes)
            return
        seen = 0
        over = False

        async def counting_receive() -> Message:
            nonlocal seen, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > max_bytes:
                    over = True  # the app sees the client go away; its answer is replaced by the 413 below
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not over:
                await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not over:
                raise
        if over:
            await _too_large(send, max_bytes)


async def _too_large(send: Send, max_bytes: int) -> None:
    body = (b'{"detail":"Request body too large: the limit is %d bytes."}' % max_bytes)
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class SecurityHeadersMiddleware:
    """Adds :data:`SECURITY_HEADERS` to every HTTP response (pages and API alike)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (name, value) for name, value in SECURITY_HEADERS if name not in present
                ]
            await send(message)

        await self.app(scope, receive, with_headers)
