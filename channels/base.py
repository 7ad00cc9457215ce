"""The channel adapter contract: what every messaging platform provides to the gateway.

Inbound (the platform calls our webhook):
  * ``verify(request, body)`` - the platform's signature, checked in constant time over the raw body: a missing one
    raises :class:`Refused` (401), a wrong one 403; nothing is read or stored before it passed;
  * ``parse(request, body)`` - the platform's payload as :class:`Inbound` messages (a malformed body raises
    :class:`Malformed`, 400); each carries the platform's delivery id, so a platform's retry is answered once
    (it becomes the message id of ``channels/dispatch.py``, whose store is idempotent per message id);
  * the platform user (``Inbound.user``) is mapped to a conversation by ``channels/routes.py`` (Redis keys
    ``conversations/keys.py: channel_user / channel_route``).

Outbound (the outbox worker calls the platform):
  * ``render(messages, route)`` - stored messages (text + buttons) as the platform's calls: buttons in the
    platform's nearest form (Telegram inline keyboard, WhatsApp reply buttons or a list, numbered text on WeChat),
    long text split at the platform's limit (:func:`split_text`). It must be deterministic: a retried batch renders
    the same calls and skips those the platform already accepted;
  * ``send(call, route)`` - one platform call; raises :class:`DeliveryError` (``retryable`` or not).

Every customer message then takes the same path as web chat (``channels/dispatch.py``), and every message to the
customer of an asynchronous channel goes through the outbox (``channels/outbox.py``).
"""
from __future__ import annotations

import hashlib
import hmac
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import Request

from bot.shared.text import EN, ZH

Call = dict[str, Any]  # one platform API call, JSON-serialisable (rendered again on retry, never stored)


class Refused(Exception):
    """The request is not from the platform (signature missing: 401, wrong: 403). Nothing is stored."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class Malformed(Exception):
    """The body is not what the platform sends (400). Nothing is stored; the platform does not retry a 400."""


class DeliveryError(Exception):
    """A platform call failed. ``retryable``: the outbox tries again later (timeouts, 5xx, 429); otherwise the batch
    becomes a dead letter at once (the user blocked the bot, the chat does not exist, outside a platform window)."""

    def __init__(self, reason: str, *, retryable: bool, code: int = 0) -> None:
        super().__init__(reason)
        self.retryable = retryable
        self.code = code  # the platform's own error code, when it gave one (WeCom's session-state errors)


@dataclass
class Inbound:
    """One customer message from a platform."""

    delivery_id: str  # the platform's id of this message/update: a redelivery carries the same one
    user: str  # the platform user (Telegram chat id, WhatsApp number, WeChat OpenID): one conversation each
    address: dict[str, str]  # where replies go (stored in the conversation's route)
    text: str  # the customer's words, or a button's payload
    kind: str = "text"  # text | button | photo (stored for agents) | unsupported (voice, sticker, ...: answered)
    ui_lang: str | None = None  # the language the platform reports for the user, if any
    extra: dict[str, str] = field(default_factory=dict)  # platform specifics (e.g. Telegram callback_query id)


class Channel(ABC):
    """A messaging platform. Subclasses set ``name`` and ``max_text`` and implement the four methods."""

    name: str = ""
    max_text: int = 4096
    asynchronous: bool = True  # replies leave through the outbox (all platform channels)
    default_language: str = EN  # for a customer whose language is not known yet
    numbered_buttons: bool = False  # no buttons on the platform: choices are numbered, "2" picks the second
    redis: Any = None  # the gateway's Redis client, set at start-up (shared platform state such as tokens)

    @abstractmethod
    async def verify(self, request: Request, body: bytes) -> None:
        """Raise :class:`Refused` unless the request carries the platform's valid signature."""

    @abstractmethod
    def parse(self, request: Request, body: bytes) -> list[Inbound]:
        """The customer messages in a verified request (empty for events that need no answer)."""

    @abstractmethod
    def render(self, messages: list[dict[str, Any]], route: dict[str, str]) -> list[Call]:
        """The platform calls that show ``messages`` (stored ChatMessage dicts) to the customer at ``route``."""

    @abstractmethod
    async def send(self, call: Call, route: dict[str, str]) -> None:
        """Make one call; raise :class:`DeliveryError` when the platform did not accept it."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release the channel's HTTP client."""

    async def fetch_media(self, ref: str) -> tuple[bytes, str]:
        """The photo ``Inbound.extra["media_ref"]`` names, as (bytes, content type); DeliveryError when it cannot be
        fetched (then the customer is asked to describe it in words)."""
        raise DeliveryError(f"{self.name} cannot fetch media", retryable=False)


MEDIA_MAX_BYTES = 5 * 1024 * 1024
MEDIA_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif")


async def download(http: Any, url: str, headers: dict[str, str] | None = None) -> tuple[bytes, str]:
    """GET a platform's media file, at most MEDIA_MAX_BYTES (streamed: a bigger file is refused, not read whole)."""
    try:
        async with http.stream("GET", url, headers=headers or {}) as response:
            if response.status_code != 200:
                raise DeliveryError(f"media: HTTP {response.status_code}", retryable=False)
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > MEDIA_MAX_BYTES:
                    raise DeliveryError("media: larger than 5 MB", retryable=False)
                chunks.append(chunk)
            content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    except httpx.HTTPError as exc:
        raise DeliveryError(f"media: {exc.__class__.__name__}", retryable=True) from exc
    return b"".join(chunks), content_type


def split_text(text: str, limit: int) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters, cut at a paragraph, line or sentence end, or a space
    when there is one in the second half of the piece (never inside a word when avoidable)."""
    text = text.strip()
    if len(text) <= limit:
        return [text] if text else []
    pieces = []
    while len(text) > limit:
        window = text[:limit]
        cut = -1
        for separator in ("\n\n", "\n", "。", "！", "？", ". ", "! ", "? ", "；", "; ", "，", ", ", " "):
            at = window.rfind(separator)
            if at >= limit // 2:
                cut = at + len(separator)
                break
        if cut <= 0:
            cut = limit
        pieces.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    if text:
        pieces.append(text)
    return pieces


def numbered_choices(buttons: list[dict[str, str]], language: str) -> str:
    """Buttons as numbered lines, for platforms without buttons (the customer answers with the number)."""
    if not buttons:
        return ""
    intro = "回复数字选择：" if language == ZH else "Reply with a number:"
    return intro + "\n" + "\n".join(f"{i}. {b.get('title', '')}" for i, b in enumerate(buttons, 1))


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def hmac_sha256_hex(key: str, data: bytes) -> str:
    return hmac.new(key.encode(), data, hashlib.sha256).hexdigest()


def same_secret(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a secret sent by a caller with ours."""
    return given is not None and given != "" and hmac.compare_digest(given.encode(), expected.encode())


def language_of(code: str | None) -> str | None:
    """A platform's language code (``zh-hans``, ``en-US``, ``zh_CN``) as zh / en / None."""
    if not code:
        return None
    code = code.lower()
    return ZH if code.startswith("zh") else EN


PHOTO_RECEIVED = {
    ZH: "已收到您的图片并保存，客服人员可以查看。也请用文字简单描述一下问题，我会尽力帮您。",
    EN: "Thanks, your photo is saved and our agents can see it. Please also describe the problem in a few words "
        "so I can help.",
}

PHOTO_LIMITED = {
    ZH: "您发送的图片较多，这张没有保存。客服需要更多图片时会告诉您；也可以用文字描述一下问题。",
    EN: "You have sent a lot of photos, so this one was not saved. An agent will ask if more are needed; you can "
        "also describe the problem in a few words.",
}

UNSUPPORTED = {
    ZH: "抱歉，我暂时只能看懂文字消息。请用文字描述您的问题，或输入“人工”联系客服。",
    EN: "Sorry, I can only read text messages for now. Please describe your question in words, "
        "or type \"agent\" to reach a person.",
}
