"""The fake phones' server: the platforms' fake APIs (tests/fakes) plus a phone page per enabled channel.

Routes (all on one loopback port):

* ``/telegram/...``, ``/whatsapp/...``, ``/wechat/...``: the fake platform APIs the gateway is configured to call
  (``TELEGRAM_API_BASE`` etc. point here); every message the gateway sends is kept by the fake and shown on the page;
* ``GET /`` lists the phones, ``GET /phone/<platform>`` is the page (``static/``);
* ``GET /phone/api/<platform>/messages?user=&after=``: the phone's chat (customer's messages and the bot's, with the
  buttons as the platform shows them: Telegram inline keyboard, WhatsApp reply buttons or list, WeChat numbered
  text menu);
* ``POST /phone/api/<platform>/send`` ``{"user", "text", "language"?}`` and ``.../tap`` ``{"user", "data"}``: the
  customer writes or taps; the server builds the platform's delivery with the fake (Telegram Update + secret-token
  header, WhatsApp notification + ``X-Hub-Signature-256``, WeChat signed - and in safe mode AES-encrypted - XML
  callback) and posts it to the gateway's real webhook, retrying as the platform does (Telegram and WhatsApp on a
  non-2xx answer, WeChat three times when the 5 seconds pass); a WeChat passive reply is opened (signature checked,
  decrypted) and shown.

Who can call it: it binds 127.0.0.1 only (``__main__`` refuses anything else); requests must carry a loopback
``Host`` (no DNS rebinding) and, when a browser sends one, an ``Origin`` of this server (no other site can post as
a phone); JSON bodies only, at most 16 KB. What stops 10,000 calls: a moving-window limit per phone and one for all
phones (429 + Retry-After); the chats kept are bounded (users per platform, messages per chat).
"""
from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from pydantic import BaseModel, ConfigDict, Field

from bot.shared.text import ZH
from channels.base import numbered_choices
from channels.settings import ChannelSettings
from channels.wechat import parse_xml
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.wechat_api import FakeWeChat
from tests.fakes.whatsapp_api import FakeWhatsApp
from tools.fake_phones.demo import PLATFORMS

STATIC = Path(__file__).resolve().parent / "static"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
MAX_BODY_BYTES = 16_384
MAX_TEXT = 4096  # what the page accepts (Telegram's and WhatsApp's limit; WeChat's text limit is larger)
MAX_USERS = 200  # chats kept per platform (least recently used dropped)
MAX_MESSAGES = 300  # messages kept per chat
PHONE_LIMIT = parse("30/minute")  # deliveries (messages and taps) per phone
ALL_PHONES_LIMIT = parse("300/minute")  # deliveries of all phones together
DELIVERY_ATTEMPTS = 3  # Telegram / WhatsApp re-deliver a non-2xx answer; WeChat re-sends a callback 3 times
WECHAT_WAIT_S = 5.0  # WeChat gives up on a callback after 5 seconds
GATEWAY_TIMEOUT_S = 60.0
USER_PATTERNS = {
    "telegram": re.compile(r"^[1-9][0-9]{4,14}$"),  # a private chat's id (= the user's id)
    "whatsapp": re.compile(r"^[1-9][0-9]{7,15}$"),  # wa_id: the number in international form, digits only
    "wechat": re.compile(r"^o[A-Za-z0-9_-]{10,40}$"),  # an OpenID
}
NUMBERED = re.compile(r"^(\d{1,2})\. (.*)$")


class NotLocal(ValueError):
    """A configuration a local demo must not run with (non-loopback, or a real platform's API)."""


def is_loopback_url(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme in ("http", "https") and (parsed.hostname or "") in LOOPBACK_HOSTS


class Send(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str = Field(min_length=1, max_length=64)
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    language: str = Field(default="en", pattern=r"^(en|zh)$")


class Tap(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str = Field(min_length=1, max_length=64)
    data: str = Field(min_length=1, max_length=256)
    language: str = Field(default="en", pattern=r"^(en|zh)$")


@dataclass
class Chats:
    """The chats of one platform's phones: bounded (users, messages), thread-safe (the fakes run in the loop, tests
    may read from another thread)."""

    messages: OrderedDict[str, deque[dict[str, Any]]] = field(default_factory=OrderedDict)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, user: str, side: str, text: str, buttons: list[dict[str, str]] | None = None,
            style: str = "", label: str = "") -> dict[str, Any]:
        entry = {"id": 0, "side": side, "text": text, "buttons": buttons or [], "style": style, "label": label}
        with self._lock:
            entry["id"] = next(self._ids)
            chat = self.messages.get(user)
            if chat is None:
                chat = self.messages[user] = deque(maxlen=MAX_MESSAGES)
                while len(self.messages) > MAX_USERS:
                    self.messages.popitem(last=False)
            self.messages.move_to_end(user)
            chat.append(entry)
        return entry

    def after(self, user: str, after: int) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(m) for m in self.messages.get(user, ()) if m["id"] > after]

    def button(self, user: str, data: str) -> dict[str, str] | None:
        """A button the bot showed this phone (a platform delivers taps of shown buttons only)."""
        with self._lock:
            for message in reversed(self.messages.get(user, ())):
                for b in message["buttons"]:
                    if message["side"] == "bot" and b["data"] == data:
                        return dict(b)
        return None


class GatewayDown(Exception):
    pass


class Platform:
    """One platform's phone: builds deliveries with its fake and reads what the gateway sent through the fake."""

    name = ""
    api_prefix = ""

    def __init__(self, fake: Any) -> None:
        self.fake = fake
        self.chats = Chats()

    def fake_app(self) -> FastAPI:
        return self.fake.app()

    async def deliver(self, http: httpx.AsyncClient, user: str, text: str, language: str) -> int:
        raise NotImplementedError

    async def tap(self, http: httpx.AsyncClient, user: str, button: dict[str, str], language: str) -> int:
        raise NotImplementedError

    def collect(self) -> None:
        """Move the messages the fake API accepted since the last call into the chats (and out of the fake)."""
        with self.fake._lock:
            sent = list(self.fake.sent)
            self.fake.sent.clear()
        for message in sent:
            self._collect_one(message)

    def _collect_one(self, message: dict[str, Any]) -> None:
        raise NotImplementedError

    @staticmethod
    async def post(http: httpx.AsyncClient, path: str, body: bytes, headers: dict[str, str],
                   params: dict[str, str] | None = None, timeout_s: float = GATEWAY_TIMEOUT_S) -> httpx.Response:
        """Deliver like the platform: again (same delivery) after a non-2xx answer, honouring Retry-After."""
        response: httpx.Response | None = None
        for attempt in range(DELIVERY_ATTEMPTS):
            try:
                response = await http.post(path, content=body, headers=headers, params=params, timeout=timeout_s)
            except httpx.TimeoutException:
                if attempt == DELIVERY_ATTEMPTS - 1:
                    raise GatewayDown("the gateway did not answer in time") from None
                continue
            except httpx.HTTPError as exc:
                raise GatewayDown(f"the gateway is not reachable ({exc.__class__.__name__})") from exc
            if response.status_code < 300 or response.status_code not in (429, 500, 502, 503, 504):
                return response
            try:
                wait = float(response.headers.get("retry-after") or 0.5)
            except ValueError:
                wait = 0.5
            await asyncio.sleep(min(max(wait, 0.1), 3.0))
        assert response is not None
        return response


class TelegramPhone(Platform):
    name = "telegram"
    api_prefix = "/telegram"

    @staticmethod
    def _code(language: str) -> str:
        return "zh-hans" if language == "zh" else "en"

    async def deliver(self, http: httpx.AsyncClient, user: str, text: str, language: str) -> int:
        update = self.fake.text_update(int(user), text, language_code=self._code(language))
        r = await self.post(http, "/api/channels/telegram/webhook", json.dumps(update).encode(), self.fake.headers())
        return r.status_code

    async def tap(self, http: httpx.AsyncClient, user: str, button: dict[str, str], language: str) -> int:
        update = self.fake.callback_update(int(user), button["data"], language_code=self._code(language))
        r = await self.post(http, "/api/channels/telegram/webhook", json.dumps(update).encode(), self.fake.headers())
        return r.status_code

    def collect(self) -> None:
        super().collect()
        with self.fake._lock:  # the acknowledged callback queries are not shown; keep the fake bounded
            self.fake.answered_callbacks.clear()
            self.fake.calls.clear()
            self.fake.accepted_at.clear()

    def _collect_one(self, message: dict[str, Any]) -> None:
        keyboard = (message.get("reply_markup") or {}).get("inline_keyboard") or []
        buttons = [{"title": str(b.get("text") or ""), "data": str(b.get("callback_data") or "")}
                   for row in keyboard for b in row]
        self.chats.add(str(message["chat_id"]), "bot", str(message.get("text") or ""), buttons,
                       "inline_keyboard" if buttons else "")


class WhatsAppPhone(Platform):
    name = "whatsapp"
    api_prefix = "/whatsapp"

    async def _notify(self, http: httpx.AsyncClient, message: dict[str, Any]) -> int:
        body, headers = self.fake.signed(self.fake.notification(message))
        r = await self.post(http, "/api/channels/whatsapp/webhook", body, headers)
        return r.status_code

    async def deliver(self, http: httpx.AsyncClient, user: str, text: str, language: str) -> int:
        return await self._notify(http, self.fake.message(user, text))

    async def tap(self, http: httpx.AsyncClient, user: str, button: dict[str, str], language: str) -> int:
        return await self._notify(http, self.fake.message(user, button["title"], kind="interactive",
                                                          reply_id=button["data"]))

    def collect(self) -> None:
        super().collect()
        with self.fake._lock:  # keep the fake bounded: only the window of the chats still kept matters
            for wa_id in [w for w in self.fake.last_inbound if w not in self.chats.messages]:
                self.fake.last_inbound.pop(wa_id, None)

    def _collect_one(self, message: dict[str, Any]) -> None:
        to, kind = str(message.get("to") or ""), message.get("type")
        if kind == "text":
            self.chats.add(to, "bot", str((message.get("text") or {}).get("body") or ""))
        elif kind == "template":
            name = (message.get("template") or {}).get("name") or "?"
            self.chats.add(to, "bot", f"[template message: {name}]")
        elif kind == "interactive":
            interactive = message.get("interactive") or {}
            text = str((interactive.get("body") or {}).get("text") or "")
            action = interactive.get("action") or {}
            if interactive.get("type") == "button":
                buttons = [{"title": str(b["reply"]["title"]), "data": str(b["reply"]["id"])}
                           for b in action.get("buttons") or []]
                self.chats.add(to, "bot", text, buttons, "reply_buttons")
            else:
                rows = [r for s in action.get("sections") or [] for r in s.get("rows") or []]
                buttons = [{"title": str(r["title"]), "data": str(r["id"]),
                            "description": str(r.get("description") or "")} for r in rows]
                self.chats.add(to, "bot", text, buttons, "list", label=str(action.get("button") or "Options"))


class WeChatPhone(Platform):
    name = "wechat"
    api_prefix = "/wechat"
    # The intro line of the gateway's numbered choices, in both languages (channels/base.py: numbered_choices).
    INTROS = tuple(numbered_choices([{"title": "x"}], lang).splitlines()[0] for lang in (ZH, "en"))

    def __init__(self, fake: FakeWeChat, aes_key: str) -> None:
        super().__init__(fake)
        self.aes_key = aes_key

    async def deliver(self, http: httpx.AsyncClient, user: str, text: str, language: str) -> int:
        # WeChat puts the text into CDATA; a "]]>" inside is split across two CDATA sections as XML requires.
        xml = self.fake.text_xml(user, text.replace("]]>", "]]]]><![CDATA[>"))
        if self.aes_key:
            query, body = self.fake.encrypted(self.aes_key, xml, openid=user)
        else:
            query, body = self.fake.query(user), xml
        r = await self.post(http, "/api/channels/wechat", body, {"Content-Type": "text/xml"}, params=query,
                            timeout_s=WECHAT_WAIT_S)
        if r.status_code == 200 and r.content.strip() not in (b"", b"success"):
            self._passive(user, r.content)
        return r.status_code

    async def tap(self, http: httpx.AsyncClient, user: str, button: dict[str, str], language: str) -> int:
        return await self.deliver(http, user, button["data"], language)  # the customer answers with the number

    def _passive(self, user: str, reply: bytes) -> None:
        try:
            fields = self.fake.open_reply(self.aes_key, reply) if self.aes_key else parse_xml(reply)
        except (AssertionError, ValueError, KeyError) as exc:
            self.chats.add(user, "note", f"WeChat would drop this passive reply: {exc.__class__.__name__}")
            return
        self._show(user, fields.get("Content") or "")

    def _show(self, user: str, text: str) -> None:
        buttons: list[dict[str, str]] = []
        in_menu = False
        for line in text.splitlines():
            if line.strip() in self.INTROS:
                in_menu, buttons = True, []
                continue
            match = NUMBERED.match(line.strip()) if in_menu else None
            if match:
                buttons.append({"title": match.group(2), "data": match.group(1)})
            elif line.strip():
                in_menu = False
        self.chats.add(user, "bot", text, buttons, "text_menu" if buttons else "")

    def collect(self) -> None:
        super().collect()
        with self.fake._lock:  # keep the fake bounded: only the 48-hour window of the chats still kept matters
            for openid in [o for o in self.fake.silent_since if o not in self.chats.messages]:
                self.fake.silent_since.pop(openid, None)

    def _collect_one(self, message: dict[str, Any]) -> None:
        self._show(str(message.get("touser") or ""), str((message.get("text") or {}).get("content") or ""))


def fresh_ids(fake: Any) -> Any:
    """Start the fake's delivery ids (Telegram update_id, WhatsApp wamid, WeChat MsgId) past every id of an earlier
    run: the gateway de-duplicates by them in Redis, which outlives a restart of ``make run``, and a fake counting
    from its fixed start again would have the newcomer's first messages taken for redeliveries (answered with the
    old reply, or not at all). Ids grow with the clock, as the platforms' do."""
    now_us = time.time_ns() // 1000
    if isinstance(fake, FakeTelegram):
        fake._updates = itertools.count(now_us // 1000)  # milliseconds: fits Telegram's 53-bit update ids
        fake._ids = itertools.count(now_us // 1000)
    elif isinstance(fake, FakeWhatsApp):
        fake._ids = itertools.count(now_us)
    elif isinstance(fake, FakeWeChat):
        fake._ids = itertools.count(6_900_000_000_000_000_000 + now_us)
    return fake


def phones_for(channel_settings: ChannelSettings, own_base: str) -> dict[str, Platform]:
    """The phones of the enabled channels; NotLocal when a channel would reach anything but this server's fakes."""
    s = channel_settings
    phones: dict[str, Platform] = {}

    def ours(setting: str, value: str, prefix: str) -> None:
        if not value.rstrip("/").startswith(own_base + prefix):
            raise NotLocal(f"{setting} is {value!r}, not this server's fake API ({own_base}{prefix}): fake phones "
                           "run only against their own fake platforms (local demo), never a real one")

    if s.telegram_enabled:
        ours("TELEGRAM_API_BASE", s.telegram_api_base, "/telegram")
        phones["telegram"] = TelegramPhone(fresh_ids(FakeTelegram(token=s.telegram_bot_token,
                                                                  secret=s.telegram_webhook_secret)))
    if s.whatsapp_enabled:
        ours("WHATSAPP_API_BASE", s.whatsapp_api_base, "/whatsapp/")
        phones["whatsapp"] = WhatsAppPhone(fresh_ids(FakeWhatsApp(
            access_token=s.whatsapp_access_token, app_secret=s.whatsapp_app_secret,
            verify_token=s.whatsapp_verify_token, phone_number_id=s.whatsapp_phone_number_id)))
    if s.wechat_enabled:
        ours("WECHAT_API_BASE", s.wechat_api_base, "/wechat")
        phones["wechat"] = WeChatPhone(fresh_ids(FakeWeChat(app_id=s.wechat_app_id, app_secret=s.wechat_app_secret,
                                                            token=s.wechat_token)), s.wechat_encoding_aes_key)
    return phones


def create_app(channel_settings: ChannelSettings, gateway_url: str, own_base: str) -> FastAPI:
    """The fake phones' app. ``own_base`` is where it is served (http://127.0.0.1:<port>), ``gateway_url`` the
    gateway whose webhooks get the deliveries; both must be loopback (NotLocal)."""
    if not is_loopback_url(own_base):
        raise NotLocal(f"fake phones serve on loopback only, not {own_base}")
    if not is_loopback_url(gateway_url):
        raise NotLocal(f"fake phones deliver to a local gateway only, not {gateway_url}")
    phones = phones_for(channel_settings, own_base.rstrip("/"))
    limiter = MovingWindowRateLimiter(MemoryStorage())
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.http = httpx.AsyncClient(base_url=app.state.gateway_url, timeout=GATEWAY_TIMEOUT_S)
        try:
            yield
        finally:
            await app.state.http.aclose()

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.phones = phones
    app.state.gateway_url = gateway_url.rstrip("/")
    own_port = urlparse(own_base).port

    for phone in phones.values():
        app.mount(phone.api_prefix, phone.fake_app())

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        host = request.headers.get("host", "")
        hostname = urlparse(f"//{host}").hostname or ""
        if hostname not in LOOPBACK_HOSTS:  # DNS rebinding: another name resolving to 127.0.0.1
            return JSONResponse({"detail": "unknown host"}, status_code=400)
        if request.method == "POST" and request.url.path.startswith("/phone/"):
            origin = request.headers.get("origin")
            if origin is not None:
                parsed = urlparse(origin)
                if (parsed.hostname or "") not in LOOPBACK_HOSTS or parsed.port != own_port:
                    return JSONResponse({"detail": "cross-origin request refused"}, status_code=403)
            if int(request.headers.get("content-length") or 0) > MAX_BODY_BYTES:
                return JSONResponse({"detail": "body too large"}, status_code=413)
        response: Response = await call_next(request)
        if request.url.path == "/" or request.url.path.startswith("/phone/"):
            response.headers["Content-Security-Policy"] = ("default-src 'self'; img-src 'self' data:; "
                                                           "frame-ancestors 'none'; base-uri 'none'")
            response.headers["X-Content-Type-Options"] = "nosniff"
            response.headers["Referrer-Policy"] = "no-referrer"
        return response

    def phone_of(platform: str) -> Platform:
        phone = phones.get(platform)
        if phone is None:
            raise HTTPException(404, f"no fake phone for {platform!r} (enabled: {', '.join(phones) or 'none'})")
        return phone

    def check_user(platform: str, user: str) -> None:
        if not USER_PATTERNS[platform].match(user):
            raise HTTPException(400, f"not a {platform} user id")

    def hit(platform: str, user: str) -> None:
        for item, key in ((PHONE_LIMIT, (platform, user)), (ALL_PHONES_LIMIT, ("all",))):
            if not limiter.hit(item, "fake-phones", *key):
                reset = limiter.get_window_stats(item, "fake-phones", *key).reset_time
                retry = max(1, int(reset - time.time()) + 1)
                raise HTTPException(429, "too many messages from this phone" if key != ("all",)
                                    else "too many messages", headers={"Retry-After": str(retry)})

    async def deliver(platform: str, user: str, action: Any) -> JSONResponse:
        try:
            status = await action
        except GatewayDown as exc:
            phone_of(platform).chats.add(user, "note", str(exc))
            raise HTTPException(502, str(exc)) from None
        phone = phone_of(platform)
        phone.collect()
        if status >= 300:
            phone.chats.add(user, "note", f"the gateway answered {status}: not delivered")
        return JSONResponse({"gateway_status": status}, status_code=200 if status < 300 else 502)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"ok": True, "phones": list(phones)}

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        links = "".join(f'<li><a href="/phone/{p}">{p}</a></li>' for p in PLATFORMS if p in phones)
        return HTMLResponse("<!doctype html><meta charset=utf-8><title>Fake phones</title>"
                            "<h1>Fake phones (local demo)</h1><ul>" + (links or "<li>no channel enabled</li>")
                            + "</ul>")

    @app.get("/phone/static/{name}")
    async def static(name: str) -> FileResponse:
        if name not in ("phone.js", "phone.css"):
            raise HTTPException(404)
        return FileResponse(STATIC / name)

    @app.get("/phone/{platform}", response_class=HTMLResponse)
    async def page(platform: str) -> HTMLResponse:
        phone_of(platform)  # 404 unless enabled; the name is then one of PLATFORMS
        html = (STATIC / "phone.html").read_text(encoding="utf-8").replace("{{platform}}", platform)
        return HTMLResponse(html)

    @app.get("/phone/api/{platform}/messages")
    async def messages(platform: str, user: str, after: int = 0) -> dict[str, Any]:
        phone = phone_of(platform)
        check_user(platform, user)
        phone.collect()
        return {"messages": phone.chats.after(user, after)}

    @app.post("/phone/api/{platform}/send")
    async def send(platform: str, body: Send) -> JSONResponse:
        phone = phone_of(platform)
        check_user(platform, body.user)
        if not body.text.strip():
            raise HTTPException(400, "empty message")
        hit(platform, body.user)
        phone.chats.add(body.user, "customer", body.text)
        return await deliver(platform, body.user,
                             phone.deliver(app.state.http, body.user, body.text, body.language))

    @app.post("/phone/api/{platform}/tap")
    async def tap(platform: str, body: Tap) -> JSONResponse:
        phone = phone_of(platform)
        check_user(platform, body.user)
        button = phone.chats.button(body.user, body.data)
        if button is None:
            raise HTTPException(400, "the bot showed this phone no such button")
        hit(platform, body.user)
        phone.chats.add(body.user, "customer", button["title"] if platform != "wechat" else button["data"])
        return await deliver(platform, body.user, phone.tap(app.state.http, body.user, button, body.language))

    return app
