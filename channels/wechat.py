"""WeChat Official Account (公众号), plaintext mode.

Inbound: ``/api/channels/wechat``.
  * GET (server verification): ``signature`` = sha1 of the sorted, concatenated WECHAT_TOKEN, ``timestamp`` and
    ``nonce``; when it matches (constant time) ``echostr`` is echoed, else 403.
  * POST: the same query signature on every callback (missing 401, wrong 403, nothing stored); it does not cover
    the body, so a timestamp further than WECHAT_REPLAY_WINDOW_S from now is refused (403) and, within the window,
    a timestamp and nonce carry one body only (another body under a seen signature: 403); the body is XML,
    parsed without a DTD (a ``<!DOCTYPE``/``<!ENTITY`` is refused with 400: no entity expansion, no external
    entities). ``MsgType`` text is a customer message, ``MsgId`` its delivery id (WeChat re-sends a callback it got
    no answer to within 5 seconds, three times: answered once). A ``subscribe`` event greets; other events are
    acknowledged; an image is fetched by its MediaId (``fetch_media``) and kept for the agent; voice, video, location,
    link get a polite answer.
  * The 5-second rule: when the replies are ready within WECHAT_PASSIVE_WINDOW_S (4 s) they are the passive reply
    (one text message in the response body, buttons as numbered choices); otherwise the answer is ``success`` and
    the replies leave through the outbox and the customer-service message API. A customer who answers with a
    number gets that choice's payload.

Outbound (through the outbox): ``POST /cgi-bin/message/custom/send?access_token=...`` with text messages (split at
600 characters). The access token (``GET /cgi-bin/token``) is cached in Redis for all gateways until shortly before
it expires, and fetched again when WeChat says it is invalid or expired (40001, 40014, 42001). ``-1`` (busy) and
45009 (API quota) are retried; 45015 (the customer has not written for 48 hours) and others are dead letters.
Safe mode (安全模式) and compatible mode: with WECHAT_ENCODING_AES_KEY set, a callback with ``encrypt_type=aes``
also carries ``msg_signature`` (sha1 over token, timestamp, nonce and the ``Encrypt`` text: missing 401, wrong 403)
and its message is decrypted (``channels/wechat_crypto.py``; one that does not decrypt to this AppID is a 400); the
passive reply is encrypted the same way. Plaintext callbacks are still accepted (compatible mode).
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlencode
from xml.parsers import expat

import httpx
from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import PlainTextResponse
from redis.asyncio import Redis

from bot.shared.text import ZH, detect_language
from channels.base import (
    Call,
    Channel,
    DeliveryError,
    Inbound,
    Malformed,
    Refused,
    download,
    numbered_choices,
    same_secret,
    split_text,
)
from channels.messaging import channel_of, parsed, take_in, verified_body
from channels.settings import ChannelSettings
from channels.wechat_crypto import CryptoError, WeChatCrypto
from conversations import keys

logger = logging.getLogger(__name__)
NAME = "wechat"
MAX_TEXT = 600
MAX_PASSIVE = 600
MAX_XML_FIELDS = 64
T = TypeVar("T")
TOKEN_ERRORS = {40001, 40014, 42001}
RETRYABLE_ERRORS = {-1, 45009} | TOKEN_ERRORS
MEDIA_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")  # WeChat's MediaId alphabet; anything else is not fetched
UNSUPPORTED_KINDS = ("image", "voice", "video", "shortvideo", "location", "link", "file")
GREETING = "你好"
router = APIRouter(prefix="/api/channels", tags=["channels"])


def signature_of(token: str, timestamp: str, nonce: str) -> str:
    """WeChat's callback signature: sha1 of the three strings sorted and concatenated."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()  # noqa: S324 - WeChat's


def parse_xml(body: bytes) -> dict[str, str]:
    """The child elements of WeChat's ``<xml>`` root as a flat dict. No DTD is allowed: a document type or entity
    declaration is refused before anything is expanded (billion laughs, external entities)."""
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    fields: dict[str, str] = {}
    path: list[str] = []
    text: list[str] = []

    def refuse(*_: Any) -> None:
        raise Malformed("XML with a DTD or entities is not accepted")

    def start(name: str, _attrs: dict[str, str]) -> None:
        path.append(name)
        text.clear()
        if len(path) == 1 and name != "xml":
            raise Malformed("root element is not <xml>")

    def end(name: str) -> None:
        if len(path) == 2:
            if len(fields) >= MAX_XML_FIELDS:
                raise Malformed("too many fields")
            fields[name] = "".join(text)
        path.pop()

    def data(chunk: str) -> None:
        if len(path) == 2:
            text.append(chunk)

    for handler in ("StartDoctypeDeclHandler", "EntityDeclHandler", "UnparsedEntityDeclHandler",
                    "ExternalEntityRefHandler"):
        setattr(parser, handler, refuse)
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = data
    try:
        parser.Parse(body, True)
    except expat.ExpatError as exc:
        raise Malformed(f"not well-formed XML: {exc}") from exc
    return fields


def cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def passive_text(messages: list[dict[str, Any]]) -> str:
    """The replies of one turn as the one text a passive reply can carry (buttons as numbered choices)."""
    parts = []
    for m in messages:
        text = (m.get("text") or "").strip()
        buttons = m.get("buttons") or []
        choices = numbered_choices(buttons, detect_language(text) or ZH)
        parts.append("\n".join(p for p in (text, choices) if p))
    return "\n\n".join(p for p in parts if p)


class WeChatChannel(Channel):
    name = NAME
    max_text = MAX_TEXT
    numbered_buttons = True
    default_language = ZH

    def __init__(self, settings: ChannelSettings, http: httpx.AsyncClient | None = None) -> None:
        self.app_id = settings.wechat_app_id
        self.app_secret = settings.wechat_app_secret
        self.token = settings.wechat_token
        self.http = http or httpx.AsyncClient(base_url=settings.wechat_api_base.rstrip("/"),
                                              timeout=settings.wechat_timeout_s)
        self.redis: Redis | None = None  # set at start-up (access-token cache, signatures seen: all gateways)
        self.replay_window_s = settings.wechat_replay_window_s
        self.crypto = (WeChatCrypto(self.token, settings.wechat_encoding_aes_key, self.app_id)
                       if settings.wechat_encoding_aes_key else None)

    async def close(self) -> None:
        await self.http.aclose()

    def signed(self, request: Request) -> bool:
        q = request.query_params
        expected = signature_of(self.token, q.get("timestamp", ""), q.get("nonce", ""))
        return same_secret(q.get("signature"), expected)

    async def verify(self, request: Request, body: bytes) -> None:
        if not request.query_params.get("signature"):
            raise Refused(401, "missing signature")
        if not self.signed(request):
            raise Refused(403, "wrong signature")
        await self._not_replayed(request, body)
        if encrypted(request):
            q = request.query_params
            if self.crypto is None:
                raise Malformed("an encrypted callback, but WECHAT_ENCODING_AES_KEY is not set")
            encrypt = parse_xml(body).get("Encrypt")
            if not encrypt:
                raise Malformed("encrypted callback without Encrypt")
            if not q.get("msg_signature"):
                raise Refused(401, "missing msg_signature")
            if not self.crypto.signed(q.get("msg_signature"), q.get("timestamp", ""), q.get("nonce", ""), encrypt):
                raise Refused(403, "wrong msg_signature")

    async def _not_replayed(self, request: Request, body: bytes) -> None:
        """The plaintext signature covers the token, timestamp and nonce, not the body: a signed URL seen once (a
        proxy log) would carry any message as any OpenID, and read the passive reply. So the timestamp must be within
        WECHAT_REPLAY_WINDOW_S of now, and within it a timestamp and nonce carry one body only (WeChat's own retries
        repeat the same body: answered once by MsgId)."""
        q = request.query_params
        timestamp, nonce = q.get("timestamp", ""), q.get("nonce", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > self.replay_window_s:
            raise Refused(403, "timestamp outside the replay window")
        if self.redis is None:
            return
        digest = hashlib.sha256(body).hexdigest()
        key = keys.channel_signature(NAME, timestamp, nonce[:64])
        first = await self.redis.set(key, digest, nx=True, ex=2 * self.replay_window_s)
        if not first:
            seen = await self.redis.get(key)
            if seen is not None and (seen.decode() if isinstance(seen, bytes) else str(seen)) != digest:
                raise Refused(403, "this signature was already used for another message")

    def parse(self, request: Request, body: bytes) -> list[Inbound]:
        if encrypted(request):
            assert self.crypto is not None  # checked by verify
            try:
                body = self.crypto.decrypt(parse_xml(body).get("Encrypt") or "")
            except CryptoError as exc:
                raise Malformed(f"cannot decrypt: {exc}") from exc
        fields = parse_xml(body)
        openid, kind = fields.get("FromUserName"), fields.get("MsgType")
        if not openid or not kind or not fields.get("ToUserName"):
            raise Malformed("FromUserName, ToUserName and MsgType are required")
        address = {"openid": openid, "account": fields["ToUserName"]}
        if kind == "event":
            if fields.get("Event") != "subscribe":
                return []
            return [Inbound(delivery_id=f"subscribe-{openid}-{fields.get('CreateTime', '')}", user=openid,
                            address=address, text=GREETING)]
        if not fields.get("MsgId"):
            raise Malformed("message without MsgId")
        if kind == "text":
            return [Inbound(delivery_id=fields["MsgId"], user=openid, address=address, text=fields.get("Content", ""))]
        if kind == "image" and MEDIA_ID_RE.fullmatch(fields.get("MediaId", "")):
            # The MediaId, never the PicUrl: a URL in the body would be fetched by this server wherever it points
            # (a plaintext callback's signature does not cover the body).
            return [Inbound(delivery_id=fields["MsgId"], user=openid, address=address, text="photo", kind="photo",
                            extra={"media_ref": fields["MediaId"]})]
        return [Inbound(delivery_id=fields["MsgId"], user=openid, address=address,
                        text=kind if kind in UNSUPPORTED_KINDS else "other", kind="unsupported")]

    def render(self, messages: list[dict[str, Any]], route: dict[str, str]) -> list[Call]:
        openid = json.loads(route["address"])["openid"]
        return [{"touser": openid, "msgtype": "text", "text": {"content": piece}}
                for piece in split_text(passive_text(messages), MAX_TEXT)]

    async def fetch_media(self, ref: str) -> tuple[bytes, str]:
        """The image message's MediaId from the temporary-media API on WECHAT_API_BASE (:func:`tencent_media`)."""
        return await tencent_media(self.http, self.access_token, ref, TOKEN_ERRORS, RETRYABLE_ERRORS)

    async def access_token(self, fresh: bool = False) -> str:
        return await tencent_access_token(self.http, self.redis, NAME, "/cgi-bin/token", {
            "grant_type": "client_credential", "appid": self.app_id, "secret": self.app_secret}, fresh=fresh)

    async def send(self, call: Call, route: dict[str, str]) -> None:
        await with_fresh_token_once(self.access_token, lambda token: tencent_post(
            self.http, "/cgi-bin/message/custom/send", token, call), "custom/send", TOKEN_ERRORS, RETRYABLE_ERRORS)


def encrypted(request: Request) -> bool:
    return request.query_params.get("encrypt_type") == "aes"


def passive_reply(fields: dict[str, str], text: str) -> str:
    return (f"<xml><ToUserName>{cdata(fields['openid'])}</ToUserName>"
            f"<FromUserName>{cdata(fields['account'])}</FromUserName><CreateTime>{int(time.time())}</CreateTime>"
            f"<MsgType>{cdata('text')}</MsgType><Content>{cdata(text)}</Content></xml>")


@router.get("/wechat")
async def verify_server(request: Request) -> PlainTextResponse:
    channel = channel_of(request, NAME)
    assert isinstance(channel, WeChatChannel)
    if not channel.signed(request):
        raise HTTPException(status_code=403, detail="Signature check failed.")
    return PlainTextResponse(request.query_params.get("echostr") or "")


@router.post("/wechat")
async def callback(request: Request) -> Response:
    channel = channel_of(request, NAME)
    body = await verified_body(request, channel)
    window = request.app.state.channel_settings.wechat_passive_window_s
    for inbound in parsed(request, channel, body):
        status, messages = await take_in(request.app.state, channel, inbound, passive_window_s=window,
                                         take_if=lambda ms: len(passive_text(ms)) <= MAX_PASSIVE)
        if status == "taken" and passive_text(messages):
            reply = passive_reply(inbound.address, passive_text(messages))
            if encrypted(request):
                assert isinstance(channel, WeChatChannel) and channel.crypto is not None
                q = request.query_params
                reply = channel.crypto.envelope(reply, q.get("timestamp", ""), q.get("nonce", ""))
            return Response(reply, media_type="application/xml")
    return PlainTextResponse("success")


async def tencent_post(http: httpx.AsyncClient, path: str, token: str, payload: dict[str, Any]
                       ) -> tuple[int, str, dict[str, Any]]:
    """POST JSON (UTF-8, not escaped) to a Tencent API with ``access_token``: (errcode, errmsg, body)."""
    label = "/".join(path.rsplit("/", 2)[-2:])
    try:
        response = await http.post(path, params={"access_token": token},
                                   content=json.dumps(payload, ensure_ascii=False).encode())
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise DeliveryError(f"{label}: {exc.__class__.__name__}", retryable=True) from exc
    return int(body.get("errcode") or 0), str(body.get("errmsg") or ""), body


async def with_fresh_token_once(get_token: Callable[..., Awaitable[str]],
                                attempt: Callable[[str], Awaitable[tuple[int, str, T]]], what: str,
                                token_errors: set[int], retryable: set[int]) -> T:
    """A Tencent API call, ``attempt(token)`` -> (errcode, errmsg, result): made once more with a fresh token when
    the API rejected the cached one (expired or revoked); errcode 0 returns the result, any other raises a
    DeliveryError carrying the code (retryable for busy / rate-limited / token errors)."""
    code, message, result = await attempt(await get_token())
    if code in token_errors:
        code, message, result = await attempt(await get_token(fresh=True))
    if code == 0:
        return result
    raise DeliveryError(f"{what}: errcode {code} {message[:200]}".rstrip(), retryable=code in retryable, code=code)


async def tencent_media(http: httpx.AsyncClient, get_token: Callable[..., Awaitable[str]], media_id: str,
                        token_errors: set[int], retryable: set[int]) -> tuple[bytes, str]:
    """A temporary media file of a Tencent API (WeChat OA and WeCom alike: ``GET /cgi-bin/media/get?access_token&
    media_id``): the file itself (at most MEDIA_MAX_BYTES), or JSON with an ``errcode`` (a token error once gets a
    fresh token; 40007 an unknown media id)."""

    async def attempt(token: str) -> tuple[int, str, tuple[bytes, str]]:
        data, content_type = await download(
            http, "/cgi-bin/media/get?" + urlencode({"access_token": token, "media_id": media_id}))
        if content_type not in ("application/json", "text/plain"):
            return 0, "", (data, content_type)
        try:
            code = int(json.loads(data).get("errcode") or 0)
        except (ValueError, AttributeError) as exc:
            raise DeliveryError("media/get: not a file and not JSON", retryable=False) from exc
        if code == 0:
            raise DeliveryError("media/get: JSON without an error instead of the file", retryable=False)
        return code, "", (b"", "")

    return await with_fresh_token_once(get_token, attempt, "media/get", token_errors, retryable)


async def tencent_access_token(http: httpx.AsyncClient, redis: Redis | None, channel: str, path: str,
                               params: dict[str, str], fresh: bool = False) -> str:
    """The access token of a Tencent API (WeChat OA ``/cgi-bin/token``, WeCom ``/cgi-bin/gettoken``): cached in
    Redis, shared by every gateway, until 5 minutes before WeChat's ``expires_in``; ``fresh`` after the API
    rejected it. errcode -1 (system busy) is worth a retry, other codes (wrong secret) are not."""
    key = keys.channel_token(channel)
    if redis is not None and not fresh:
        cached = await redis.get(key)
        if cached:
            return cached.decode()
    label = path.rsplit("/", 1)[-1]
    try:
        body = (await http.get(path, params=params)).json()
    except (httpx.HTTPError, ValueError) as exc:
        raise DeliveryError(f"{label}: {exc.__class__.__name__}", retryable=True) from exc
    token = body.get("access_token")
    if not token:
        code = int(body.get("errcode") or 0)
        raise DeliveryError(f"{label}: errcode {code} {body.get('errmsg', '')}", retryable=code == -1)
    if redis is not None:
        await redis.set(key, token, ex=max(60, int(body.get("expires_in") or 7200) - 300))
    return str(token)
