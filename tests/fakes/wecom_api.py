"""A local stand-in for WeCom customer service (微信客服) APIs and callbacks, for tests.

What it reproduces of the documented behaviour:

* ``GET /cgi-bin/gettoken?corpid&corpsecret`` -> ``{"errcode": 0, "access_token", "expires_in": 7200}`` (40001 on a
  wrong secret); every other call takes ``?access_token=`` (40014 unknown, 42001 expired: :meth:`expire_tokens`);
* callbacks: :meth:`FakeWeCom.callback` encrypts the ``kf_msg_or_event`` event (``Token``, ``OpenKfId``) for the corp
  with its own AES code (WXBizMsgCrypt: random(16) + length + XML + corp id, PKCS#7 to 32 bytes) and signs it
  (``msg_signature``); :meth:`verify_query` builds the URL verification GET (encrypted ``echostr``);
* ``POST /cgi-bin/kf/sync_msg`` {cursor, token, limit, open_kfid}: the account's messages after the cursor,
  ``next_cursor``, ``has_more`` (pages of ``page_size``); customer messages have ``origin`` 3, text with an optional
  ``menu_id`` (a clicked menu item), events (``enter_session``) msgtype ``event``;
* ``POST /cgi-bin/kf/send_msg`` {touser, open_kfid, msgtype text|msgmenu}: 95018 when the session's state does not
  allow the API to send (the fake allows states 0 and 1, as the documentation's state table suggests: 2 = waiting in
  WeCom's pool, 3 = a WeCom servicer, 4 = ended); text 1-2048 bytes (44004/45002 otherwise); ``-1`` when told to fail;
* ``kf/service_state/get`` and ``kf/service_state/trans`` (0 or 4 -> 1 allowed, from 3 refused with 95016).
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


@dataclass
class FakeWeCom:
    corp_id: str = "ww0123456789abcdef"
    secret: str = "wecom-kf-secret-0123456789"  # noqa: S105 - test value
    token: str = "wecomtoken"  # noqa: S105 - test value
    aes_key: str = "V2VDb21LZXlGb3JUZXN0czAxMjM0NTY3ODlhYmNkZWZ"  # 43 characters
    open_kfid: str = "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q"
    page_size: int = 2
    fail_next: int = 0
    states: dict[str, int] = field(default_factory=dict)  # external_userid -> service_state
    log: list[dict[str, Any]] = field(default_factory=list)  # every message of the account, in order
    sent: list[dict[str, Any]] = field(default_factory=list)
    trans: list[tuple[str, int]] = field(default_factory=list)
    sync_calls: int = 0
    images: dict[str, bytes] = field(default_factory=dict)  # media_id -> file
    media_requests: list[str] = field(default_factory=list)
    _tokens: dict[str, bool] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # ------------------------------------------------------------------ the customer side

    def customer_says(self, user: str, text: str, menu_id: str = "") -> dict[str, Any]:
        body: dict[str, Any] = {"content": text}
        if menu_id:
            body["menu_id"] = menu_id
        return self._log(user, {"origin": 3, "msgtype": "text", "text": body})

    def customer_sends(self, user: str, kind: str) -> dict[str, Any]:
        return self._log(user, {"origin": 3, "msgtype": kind, kind: {"media_id": "MEDIA"}})

    def customer_sends_photo(self, user: str, data: bytes) -> dict[str, Any]:
        """An image message; its file is served by ``/cgi-bin/media/get`` (temporary media, 3 days at WeCom)."""
        media_id = "2" + secrets.token_hex(20)
        with self._lock:
            self.images[media_id] = data
        return self._log(user, {"origin": 3, "msgtype": "image", "image": {"media_id": media_id}})

    def servicer_says(self, user: str, text: str) -> dict[str, Any]:
        return self._log(user, {"origin": 5, "servicer_userid": "zhangsan", "msgtype": "text",
                                "text": {"content": text}})

    def _log(self, user: str, fields: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            message = {"msgid": f"from_msgid_{next(self._ids):012d}", "open_kfid": self.open_kfid,
                       "external_userid": user, "send_time": int(time.time()), **fields}
            self.log.append(message)
            self.states.setdefault(user, 0)
        return message

    def texts_to(self, user: str) -> list[str]:
        with self._lock:
            out = []
            for m in self.sent:
                if m["touser"] == user:
                    out.append(m["text"]["content"] if m["msgtype"] == "text" else m["msgmenu"]["head_content"])
            return out

    def expire_tokens(self) -> None:
        with self._lock:
            self._tokens = {t: False for t in self._tokens}

    # ------------------------------------------------------------------ callbacks

    def _encrypt(self, plain: bytes) -> str:
        key = base64.b64decode(self.aes_key + "=")
        text = os.urandom(16) + struct.pack(">I", len(plain)) + plain + self.corp_id.encode()
        pad = 32 - len(text) % 32
        text += bytes([pad]) * pad
        encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
        return base64.b64encode(encryptor.update(text) + encryptor.finalize()).decode()

    def _signature(self, timestamp: str, nonce: str, encrypt: str) -> str:
        return hashlib.sha1("".join(sorted([self.token, timestamp, nonce, encrypt])).encode()).hexdigest()  # noqa: S324

    def callback(self) -> tuple[dict[str, str], bytes]:
        """(query, body) of the "there are messages" callback."""
        event = (f"<xml><ToUserName><![CDATA[{self.corp_id}]]></ToUserName><CreateTime>{int(time.time())}"
                 f"</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[kf_msg_or_event]]></Event>"
                 f"<Token><![CDATA[ENC{secrets.token_hex(8)}]]></Token>"
                 f"<OpenKfId><![CDATA[{self.open_kfid}]]></OpenKfId></xml>").encode()
        encrypt = self._encrypt(event)
        timestamp, nonce = str(int(time.time())), str(secrets.randbelow(10**9))
        query = {"msg_signature": self._signature(timestamp, nonce, encrypt), "timestamp": timestamp,
                 "nonce": nonce}
        body = (f"<xml><ToUserName><![CDATA[{self.corp_id}]]></ToUserName><AgentID><![CDATA[]]></AgentID>"
                f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>").encode()
        return query, body

    def verify_query(self, echo: str) -> dict[str, str]:
        encrypt = self._encrypt(echo.encode())
        timestamp, nonce = str(int(time.time())), "1372623149"
        return {"msg_signature": self._signature(timestamp, nonce, encrypt), "timestamp": timestamp,
                "nonce": nonce, "echostr": encrypt}

    # ------------------------------------------------------------------ the API

    def app(self) -> FastAPI:
        app = FastAPI()

        def auth(access_token: str) -> JSONResponse | None:
            valid = self._tokens.get(access_token)
            if valid is None:
                return JSONResponse({"errcode": 40014, "errmsg": "invalid access_token"})
            if not valid:
                return JSONResponse({"errcode": 42001, "errmsg": "access_token expired"})
            return None

        @app.get("/cgi-bin/gettoken")
        async def gettoken(corpid: str = "", corpsecret: str = "") -> JSONResponse:
            if corpid != self.corp_id or corpsecret != self.secret:
                return JSONResponse({"errcode": 40001, "errmsg": "invalid credential"})
            issued = secrets.token_hex(16)
            with self._lock:
                self._tokens[issued] = True
            return JSONResponse({"errcode": 0, "errmsg": "ok", "access_token": issued, "expires_in": 7200})

        @app.get("/cgi-bin/media/get")
        async def media_get(access_token: str = "", media_id: str = "") -> Response:
            with self._lock:
                self.media_requests.append(media_id)
            refused = auth(access_token)
            if refused is not None:
                return refused
            data = self.images.get(media_id)
            if data is None:
                return JSONResponse({"errcode": 40007, "errmsg": "invalid media_id"})
            return Response(data, media_type="image/jpeg",
                            headers={"Content-disposition": f'attachment; filename="{media_id}.jpg"'})

        @app.post("/cgi-bin/kf/sync_msg")
        async def sync_msg(request: Request, access_token: str = "") -> JSONResponse:
            refused = auth(access_token)
            if refused is not None:
                return refused
            body = await request.json()
            with self._lock:
                self.sync_calls += 1
                start = int(body.get("cursor") or 0)
                page = self.log[start:start + self.page_size]
                end = start + len(page)
                has_more = end < len(self.log)
            return JSONResponse({"errcode": 0, "errmsg": "ok", "next_cursor": str(end),
                                 "has_more": int(has_more), "msg_list": page})

        @app.post("/cgi-bin/kf/send_msg")
        async def send_msg(request: Request, access_token: str = "") -> JSONResponse:
            refused = auth(access_token)
            if refused is not None:
                return refused
            body = await request.json()
            with self._lock:
                if self.fail_next > 0:
                    self.fail_next -= 1
                    return JSONResponse({"errcode": -1, "errmsg": "system busy"})
                if self.states.get(body.get("touser"), 0) not in (0, 1):
                    return JSONResponse({"errcode": 95018, "errmsg": "send msg not allowed by session state"})
            if body.get("msgtype") == "text":
                content = (body.get("text") or {}).get("content") or ""
                if not content:
                    return JSONResponse({"errcode": 44004, "errmsg": "empty content"})
                if len(content.encode()) > 2048:
                    return JSONResponse({"errcode": 45002, "errmsg": "content size out of limit"})
            elif body.get("msgtype") == "msgmenu":
                items = (body.get("msgmenu") or {}).get("list") or []
                if not items or any(len(i["click"]["id"].encode()) > 128 for i in items):
                    return JSONResponse({"errcode": 40058, "errmsg": "invalid msgmenu"})
            else:
                return JSONResponse({"errcode": 40008, "errmsg": "invalid message type"})
            with self._lock:
                self.sent.append(body)
                self.states[body["touser"]] = self.states.get(body["touser"], 0) or 1
            return JSONResponse({"errcode": 0, "errmsg": "ok", "msgid": f"MSG{next(self._ids)}"})

        @app.post("/cgi-bin/kf/service_state/get")
        async def state_get(request: Request, access_token: str = "") -> JSONResponse:
            refused = auth(access_token)
            if refused is not None:
                return refused
            body = await request.json()
            return JSONResponse({"errcode": 0, "errmsg": "ok",
                                 "service_state": self.states.get(body.get("external_userid"), 0)})

        @app.post("/cgi-bin/kf/service_state/trans")
        async def state_trans(request: Request, access_token: str = "") -> JSONResponse:
            refused = auth(access_token)
            if refused is not None:
                return refused
            body = await request.json()
            user, target = body.get("external_userid"), int(body.get("service_state") or 0)
            with self._lock:
                if self.states.get(user, 0) not in (0, 4) or target != 1:
                    return JSONResponse({"errcode": 95016, "errmsg": "invalid service state transition"})
                self.states[user] = target
                self.trans.append((user, target))
            return JSONResponse({"errcode": 0, "errmsg": "ok"})

        return app
