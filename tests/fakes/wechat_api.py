"""A local stand-in for the WeChat Official Account platform (plaintext mode), for tests and demos.

What it reproduces of the documented behaviour:

* callbacks: :meth:`FakeWeChat.query` signs a callback URL like WeChat does (``signature`` = sha1 of the sorted
  token, timestamp and nonce; ``openid`` too), :meth:`text_xml` / :meth:`event_xml` / :meth:`media_xml` build the
  XML bodies (``ToUserName``, ``FromUserName``, ``CreateTime``, ``MsgType``, ``Content``, ``MsgId``);
* ``GET /cgi-bin/token?grant_type=client_credential&appid&secret`` -> ``{"access_token", "expires_in": 7200}``, or
  ``{"errcode": 40125, "errmsg": "invalid appsecret"}``; counts how often it is asked;
* ``GET /cgi-bin/media/get?access_token=&media_id=`` (temporary media) -> the file (``image/jpeg``), or JSON
  ``{"errcode": 40007, "errmsg": "invalid media_id"}``, 40001 / 42001 for a bad or expired token;
* ``POST /cgi-bin/message/custom/send?access_token=`` (customer-service message) -> ``{"errcode": 0, "errmsg":
  "ok"}``; an unknown or expired token gets 42001 ("access_token expired") - :meth:`expire_tokens` expires every
  token handed out so far; text content must be non-empty and at most 2048 bytes (45002 "content size out of
  limit"); a user silent for 48 hours gets 45015 ("response out of time limit"); ``fail_next`` answers -1
  ("system error") like a busy platform;
* WeChat answers HTTP 200 with an ``errcode`` in the JSON body, even for errors;
* safe mode: :meth:`FakeWeChat.encrypted` wraps a callback as WeChat does with an EncodingAESKey (AES-256-CBC, IV =
  key[:16], PKCS#7 to 32 bytes, random(16) + length + XML + AppID, ``encrypt_type=aes`` and ``msg_signature``);
  :meth:`open_reply` decrypts an encrypted passive reply. Written apart from channels/wechat_crypto.py.
"""
from __future__ import annotations

import base64
import hashlib
import itertools
import os
import secrets
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from channels.wechat import parse_xml


@dataclass
class FakeWeChat:
    app_id: str = "wx1234567890abcdef"
    app_secret: str = "wechat-app-secret-0123456789"  # noqa: S105 - test value
    token: str = "wechat-token-0123"  # noqa: S105 - test value
    account: str = "gh_0123456789ab"
    fail_next: int = 0
    silent_since: dict[str, float] = field(default_factory=dict)  # openid -> last message (48-hour window)
    sent: list[dict[str, Any]] = field(default_factory=list)
    token_requests: int = 0
    images: dict[str, bytes] = field(default_factory=dict)  # media_id -> file
    media_requests: list[str] = field(default_factory=list)  # media ids asked of /cgi-bin/media/get
    _tokens: dict[str, bool] = field(default_factory=dict)  # handed out -> still valid
    _ids: Any = field(default_factory=lambda: itertools.count(6_900_000_000_000_000_000))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # ------------------------------------------------------------------ callbacks WeChat sends

    def query(self, openid: str = "", token: str | None = None) -> dict[str, str]:
        timestamp, nonce = str(int(time.time())), str(secrets.randbelow(10**9))
        signed = "".join(sorted([self.token if token is None else token, timestamp, nonce]))
        query = {"signature": hashlib.sha1(signed.encode()).hexdigest(),  # noqa: S324 - WeChat's scheme
                 "timestamp": timestamp, "nonce": nonce}
        if openid:
            query["openid"] = openid
        return query

    def _xml(self, openid: str, kind: str, inner: str, msg_id: bool = True) -> bytes:
        with self._lock:
            self.silent_since[openid] = time.time()
            number = next(self._ids)
        tail = f"<MsgId>{number}</MsgId>" if msg_id else ""
        return (f"<xml><ToUserName><![CDATA[{self.account}]]></ToUserName>"
                f"<FromUserName><![CDATA[{openid}]]></FromUserName><CreateTime>{int(time.time())}</CreateTime>"
                f"<MsgType><![CDATA[{kind}]]></MsgType>{inner}{tail}</xml>").encode()

    def text_xml(self, openid: str, content: str) -> bytes:
        return self._xml(openid, "text", f"<Content><![CDATA[{content}]]></Content>")

    def media_xml(self, openid: str, kind: str = "voice") -> bytes:
        return self._xml(openid, kind, "<MediaId><![CDATA[media_id]]></MediaId><Format><![CDATA[amr]]></Format>")

    def image_xml(self, openid: str, data: bytes, pic_url: str = "") -> bytes:
        """An image message: WeChat gives a PicUrl on its image server and a MediaId for ``/cgi-bin/media/get``
        (``pic_url`` replaces the PicUrl, as a forged callback would)."""
        with self._lock:
            media_id = f"media{len(self.images)}_" + secrets.token_urlsafe(12)
            self.images[media_id] = data
        url = pic_url or f"http://mmbiz.qpic.test/mmbiz/{media_id}"
        return self._xml(openid, "image", f"<PicUrl><![CDATA[{url}]]></PicUrl>"
                                          f"<MediaId><![CDATA[{media_id}]]></MediaId>")

    def event_xml(self, openid: str, event: str = "subscribe") -> bytes:
        return self._xml(openid, "event", f"<Event><![CDATA[{event}]]></Event>", msg_id=False)

    def texts_to(self, openid: str) -> list[str]:
        with self._lock:
            return [m["text"]["content"] for m in self.sent if m.get("touser") == openid]

    def encrypted(self, aes_key: str, plain_xml: bytes, openid: str = "") -> tuple:
        """(query, body) of a safe-mode callback carrying ``plain_xml``."""
        key = base64.b64decode(aes_key + "=")
        text = os.urandom(16) + struct.pack(">I", len(plain_xml)) + plain_xml + self.app_id.encode()
        pad = 32 - len(text) % 32
        text += bytes([pad]) * pad
        encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
        encrypt = base64.b64encode(encryptor.update(text) + encryptor.finalize()).decode()
        query = {**self.query(openid), "encrypt_type": "aes"}
        joined = "".join(sorted([self.token, query["timestamp"], query["nonce"], encrypt]))
        query["msg_signature"] = hashlib.sha1(joined.encode()).hexdigest()  # noqa: S324 - WeChat's scheme
        body = f"<xml><ToUserName><![CDATA[{self.account}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        return query, body.encode()

    def open_reply(self, aes_key: str, reply: bytes) -> dict[str, str]:
        """The fields of an encrypted passive reply, after checking its signature as WeChat does."""
        outer = parse_xml(reply)
        joined = "".join(sorted([self.token, outer["TimeStamp"], outer["Nonce"], outer["Encrypt"]]))
        assert outer["MsgSignature"] == hashlib.sha1(joined.encode()).hexdigest()  # noqa: S324
        key = base64.b64decode(aes_key + "=")
        decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
        plain = decryptor.update(base64.b64decode(outer["Encrypt"])) + decryptor.finalize()
        plain = plain[:-plain[-1]]
        (length,) = struct.unpack(">I", plain[16:20])
        assert plain[20 + length:] == self.app_id.encode()
        return parse_xml(plain[20:20 + length])

    def expire_tokens(self) -> None:
        with self._lock:
            self._tokens = {t: False for t in self._tokens}

    # ------------------------------------------------------------------ the API

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/cgi-bin/media/get")
        async def media_get(access_token: str = "", media_id: str = "") -> Response:
            with self._lock:
                valid = self._tokens.get(access_token)
                self.media_requests.append(media_id)
            if valid is None:
                return JSONResponse({"errcode": 40001, "errmsg": "invalid credential, access_token is invalid"})
            if not valid:
                return JSONResponse({"errcode": 42001, "errmsg": "access_token expired"})
            data = self.images.get(media_id)
            if data is None:
                return JSONResponse({"errcode": 40007, "errmsg": "invalid media_id"})
            return Response(data, media_type="image/jpeg",
                            headers={"Content-disposition": f'attachment; filename="{media_id}.jpg"'})

        @app.get("/cgi-bin/token")
        async def token(grant_type: str = "", appid: str = "", secret: str = "") -> JSONResponse:
            with self._lock:
                self.token_requests += 1
                if grant_type != "client_credential" or appid != self.app_id or secret != self.app_secret:
                    return JSONResponse({"errcode": 40125, "errmsg": "invalid appsecret"})
                issued = secrets.token_hex(16)
                self._tokens[issued] = True
            return JSONResponse({"access_token": issued, "expires_in": 7200})

        @app.post("/cgi-bin/message/custom/send")
        async def custom_send(request: Request, access_token: str = "") -> JSONResponse:
            with self._lock:
                valid = self._tokens.get(access_token)
                fail = self.fail_next > 0
                self.fail_next = max(0, self.fail_next - 1)
            if valid is None:
                return JSONResponse({"errcode": 40001, "errmsg": "invalid credential, access_token is invalid"})
            if not valid:
                return JSONResponse({"errcode": 42001, "errmsg": "access_token expired"})
            if fail:
                return JSONResponse({"errcode": -1, "errmsg": "system error"})
            body = await request.json()
            content = (body.get("text") or {}).get("content") or ""
            if body.get("msgtype") != "text" or not content or len(content.encode()) > 2048:
                return JSONResponse({"errcode": 45002, "errmsg": "content size out of limit"})
            if time.time() - self.silent_since.get(body.get("touser", ""), 0) > 48 * 3600:
                return JSONResponse({"errcode": 45015, "errmsg": "response out of time limit or subscription is "
                                                                 "canceled"})
            with self._lock:
                self.sent.append(body)
            return JSONResponse({"errcode": 0, "errmsg": "ok"})

        return app
