"""WeCom customer service (微信客服): WeChat users talking to a company's customer-service account.

Inbound: ``/api/channels/wecom``.
  * GET (callback URL verification): ``msg_signature`` over token, timestamp, nonce and the encrypted ``echostr``
    (constant time; 403 otherwise); the answer is ``echostr`` decrypted (its receive id must be WECOM_CORP_ID).
  * POST: an encrypted event (``msg_signature``: missing 401, wrong 403; not decryptable for this corp: 400) that only
    says "there are messages" (``Event`` ``kf_msg_or_event`` with a ``Token`` and the ``OpenKfId``). It is answered
    ``success`` at once; the gateway then fetches the messages with ``kf/sync_msg`` from the cursor stored in Redis
    (``channel_sync_cursor``; one gateway per account at a time, a callback during a fetch makes it fetch again), and
    each customer message (``origin`` 3) takes the path of every customer message; its ``msgid`` de-duplicates. The
    cursor is stored after each page, so a crash re-fetches at most one page (answered once anyway).
  * Text and menu clicks (``text.menu_id``, the payload the bot offered), ``enter_session`` greets; an image is
    fetched by its ``media_id`` (``/cgi-bin/media/get``) and kept for the agents like every channel's photos; voice,
    files, locations get a polite answer. Messages of WeCom's own servicers (origin 5) and system events are skipped.

Outbound (through the outbox): ``kf/send_msg`` - text (split at 600 characters), buttons as a ``msgmenu`` with click
items (the customer's click comes back as text with ``menu_id``). Session state: when WeCom refuses because of the
session's state (95018), the state is read (``kf/service_state/get``): a new (0) or ended (4) session is moved to
the API's assistant (``trans`` to 1) and the message sent again; a session a WeCom servicer handles (3) or that waits
in WeCom's pool (2) is not taken over: dead letter with the state. The access token (``gettoken``) is cached in Redis
like WeChat's and fetched again on 40014/42001.
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import PlainTextResponse
from redis.asyncio import Redis

from bot.shared.text import ZH, detect_language
from channels.base import Call, Channel, DeliveryError, Inbound, Malformed, Refused, split_text, truncate
from channels.messaging import StillAnswering, channel_of, take_in, verified_body
from channels.settings import ChannelSettings
from channels.wechat import (
    MEDIA_ID_RE,
    parse_xml,
    tencent_access_token,
    tencent_media,
    tencent_post,
    with_fresh_token_once,
)
from channels.wechat_crypto import CryptoError, WeChatCrypto
from conversations import keys

logger = logging.getLogger(__name__)
NAME = "wecom"
MAX_TEXT = 600
MAX_MENU_HEAD = 300
TOKEN_ERRORS = {40014, 42001}
RETRYABLE_ERRORS = {-1, 45009} | TOKEN_ERRORS
SESSION_STATE_ERROR = 95018
CUSTOMER = 3
GREETING = "你好"
SYNC_LOCK_MS = 60_000
UNSUPPORTED_KINDS = ("image", "voice", "video", "file", "location", "link", "business_card", "miniprogram")
router = APIRouter(prefix="/api/channels", tags=["channels"])


class WeComChannel(Channel):
    name = NAME
    max_text = MAX_TEXT
    default_language = ZH

    def __init__(self, settings: ChannelSettings, http: httpx.AsyncClient | None = None) -> None:
        self.corp_id = settings.wecom_corp_id
        self.secret = settings.wecom_secret
        self.crypto = WeChatCrypto(settings.wecom_token, settings.wecom_encoding_aes_key, settings.wecom_corp_id)
        self.http = http or httpx.AsyncClient(base_url=settings.wecom_api_base.rstrip("/"),
                                              timeout=settings.wecom_timeout_s)
        self.redis: Redis | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await self.http.aclose()

    # ------------------------------------------------------------------ inbound

    async def verify(self, request: Request, body: bytes) -> None:
        q = request.query_params
        if not q.get("msg_signature"):
            raise Refused(401, "missing msg_signature")
        encrypt = parse_xml(body).get("Encrypt")
        if not encrypt:
            raise Malformed("callback without Encrypt")
        if not self.crypto.signed(q.get("msg_signature"), q.get("timestamp", ""), q.get("nonce", ""), encrypt):
            raise Refused(403, "wrong msg_signature")

    def parse(self, request: Request, body: bytes) -> list[Inbound]:
        return []  # the callback only announces messages; they are fetched with kf/sync_msg (see sync)

    def event(self, body: bytes) -> dict[str, str]:
        try:
            return parse_xml(self.crypto.decrypt(parse_xml(body).get("Encrypt") or ""))
        except CryptoError as exc:
            raise Malformed(f"cannot decrypt: {exc}") from exc

    def inbound(self, message: dict[str, Any]) -> Inbound | None:
        """A synced message as a customer message (None for what needs no answer)."""
        msgid, user, kfid = message.get("msgid"), message.get("external_userid"), message.get("open_kfid")
        if not (isinstance(msgid, str) and isinstance(user, str) and isinstance(kfid, str)):
            return None
        address = {"external_userid": user, "open_kfid": kfid}
        kind = message.get("msgtype")
        if kind == "event":
            event = message.get("event") or {}
            if event.get("event_type") != "enter_session" or not event.get("external_userid"):
                return None
            user = str(event["external_userid"])
            return Inbound(delivery_id=msgid, user=f"{kfid}:{user}", text=GREETING,
                           address={"external_userid": user, "open_kfid": kfid})
        if message.get("origin") != CUSTOMER:
            return None  # a WeCom servicer's message, or a system message
        if kind == "text":
            text = message.get("text") or {}
            if text.get("menu_id"):
                return Inbound(delivery_id=msgid, user=f"{kfid}:{user}", address=address,
                               text=str(text["menu_id"]), kind="button")
            return Inbound(delivery_id=msgid, user=f"{kfid}:{user}", address=address, text=str(text.get("content", "")))
        media_id = str((message.get("image") or {}).get("media_id") or "") if kind == "image" else ""
        if media_id and MEDIA_ID_RE.fullmatch(media_id):
            return Inbound(delivery_id=msgid, user=f"{kfid}:{user}", address=address, text="photo", kind="photo",
                           extra={"media_ref": media_id})
        return Inbound(delivery_id=msgid, user=f"{kfid}:{user}", address=address,
                       text=kind if kind in UNSUPPORTED_KINDS else "other", kind="unsupported")

    async def sync(self, state: Any, open_kfid: str, callback_token: str) -> int:
        """Fetch and answer the account's new messages; returns how many customer messages were taken in."""
        assert self.redis is not None
        lock, again = keys.channel_sync_lock(NAME, open_kfid), keys.channel_sync_lock(NAME, f"{open_kfid}:again")
        if not await self.redis.set(lock, "1", nx=True, px=SYNC_LOCK_MS):
            await self.redis.set(again, "1", px=SYNC_LOCK_MS)  # the running fetch looks once more when done
            return 0
        taken = 0
        try:
            while True:
                await self.redis.delete(again)
                has_more = True
                while has_more:
                    cursor = await self.redis.get(keys.channel_sync_cursor(NAME, open_kfid))
                    page = await self.api("kf/sync_msg", {
                        "cursor": cursor.decode() if cursor else "", "token": callback_token, "limit": 1000,
                        "voice_format": 0, "open_kfid": open_kfid})
                    for message in page.get("msg_list") or []:
                        inbound = self.inbound(message) if isinstance(message, dict) else None
                        if inbound is not None:
                            try:
                                await take_in(state, self, inbound)
                            except StillAnswering:
                                logger.info("wecom %s is still being answered elsewhere", inbound.delivery_id)
                            taken += 1
                    if page.get("next_cursor"):
                        await self.redis.set(keys.channel_sync_cursor(NAME, open_kfid), page["next_cursor"])
                    has_more = bool(page.get("has_more"))
                    await self.redis.pexpire(lock, SYNC_LOCK_MS)
                if not await self.redis.exists(again):
                    return taken
        finally:
            await self.redis.delete(lock)

    # ------------------------------------------------------------------ outbound

    def render(self, messages: list[dict[str, Any]], route: dict[str, str]) -> list[Call]:
        address = json.loads(route["address"])
        base = {"touser": address["external_userid"], "open_kfid": address["open_kfid"]}
        calls: list[Call] = []
        for m in messages:
            text = (m.get("text") or "").strip()
            buttons = [b for b in m.get("buttons") or [] if b.get("payload") or b.get("title")]
            if not buttons or len(text) > MAX_MENU_HEAD:
                calls += [{**base, "msgtype": "text", "text": {"content": p}} for p in split_text(text, MAX_TEXT)]
            if buttons:
                head = text if len(text) <= MAX_MENU_HEAD else (
                    "请选择：" if (detect_language(text) or ZH) == ZH else "Please choose:")
                items = [{"type": "click", "click": {"id": (b.get("payload") or b.get("title") or "")[:128],
                                                     "content": truncate(b.get("title") or "?", 40)}}
                         for b in buttons]
                calls.append({**base, "msgtype": "msgmenu", "msgmenu": {"head_content": head, "list": items}})
        return calls

    async def send(self, call: Call, route: dict[str, str]) -> None:
        try:
            await self.api("kf/send_msg", call)
        except DeliveryError as exc:
            if exc.code != SESSION_STATE_ERROR:
                raise
            who = {"open_kfid": call["open_kfid"], "external_userid": call["touser"]}
            session = await self.api("kf/service_state/get", who)
            state = int(session.get("service_state") or 0)
            if state not in (0, 4):
                raise DeliveryError(f"kf/send_msg: session state {state} (2 waiting in WeCom's pool, 3 a WeCom "
                                    f"servicer handles it): not taken over", retryable=False) from exc
            await self.api("kf/service_state/trans", {**who, "service_state": 1})
            await self.api("kf/send_msg", call)

    async def access_token(self, fresh: bool = False) -> str:
        return await tencent_access_token(self.http, self.redis, NAME, "/cgi-bin/gettoken",
                                          {"corpid": self.corp_id, "corpsecret": self.secret}, fresh=fresh)

    async def fetch_media(self, ref: str) -> tuple[bytes, str]:
        """An image message's ``media_id`` from WeCom's temporary-media API (``/cgi-bin/media/get``, the same shape
        as the Official Account's: :func:`channels.wechat.tencent_media`)."""
        return await tencent_media(self.http, self.access_token, ref, TOKEN_ERRORS, RETRYABLE_ERRORS)

    async def api(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """One WeCom API call (errcode 0 or DeliveryError with ``code``); a stale token is replaced once."""
        return await with_fresh_token_once(self.access_token, lambda token: tencent_post(
            self.http, f"/cgi-bin/{path}", token, payload), path, TOKEN_ERRORS, RETRYABLE_ERRORS)


@router.get("/wecom")
async def verify_url(request: Request) -> PlainTextResponse:
    channel = channel_of(request, NAME)
    assert isinstance(channel, WeComChannel)
    q = request.query_params
    echostr = q.get("echostr") or ""
    if not channel.crypto.signed(q.get("msg_signature"), q.get("timestamp", ""), q.get("nonce", ""), echostr):
        raise HTTPException(status_code=403, detail="Signature check failed.")
    try:
        return PlainTextResponse(channel.crypto.decrypt(echostr).decode())
    except CryptoError as exc:
        raise HTTPException(status_code=400, detail="echostr does not decrypt for this corp.") from exc


@router.post("/wecom")
async def callback(request: Request) -> PlainTextResponse:
    channel = channel_of(request, NAME)
    assert isinstance(channel, WeComChannel)
    body = await verified_body(request, channel)
    try:
        event = channel.event(body)
    except Malformed as exc:
        raise HTTPException(status_code=400, detail=f"Malformed wecom payload: {exc}") from exc
    if event.get("Event") == "kf_msg_or_event" and event.get("OpenKfId"):
        task = asyncio.create_task(_sync(request.app.state, channel, event["OpenKfId"], event.get("Token", "")))
        channel.tasks.add(task)
        task.add_done_callback(channel.tasks.discard)
    return PlainTextResponse("success")


async def _sync(state: Any, channel: WeComChannel, open_kfid: str, token: str) -> None:
    try:
        await channel.sync(state, open_kfid, token)
    except Exception as exc:  # noqa: BLE001 - the next callback fetches from the stored cursor
        logger.warning("wecom sync of %s failed: %s", open_kfid, exc)
