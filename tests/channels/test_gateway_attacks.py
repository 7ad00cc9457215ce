"""Attacks on the web chat API, performed against the real gateway app on a real Redis (Rasa replaced by a stub
that records what reaches it). Each test is the request an attacker would send; it must now fail."""
from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from channels.app import create_app
from conversations import keys
from conversations.protect import DEVICE_COOKIE
from conversations.settings import GatewaySettings

API = "/api/webchat"


class RecordingRasa:
    canary = None  # no canary running (RasaClient.canary)
    def __init__(self) -> None:
        self.texts: list[str] = []

    async def send_message(self, sender_id: str, text: str, metadata: dict | None = None, *,
                           canary: bool = False) -> list[dict]:
        self.texts.append(text)
        return [{"text": "ok", "buttons": [{"title": "Talk to a person", "payload": "/request_human"}]}]

    async def close(self) -> None:
        return None


def _msg(text: str, conversation_id: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"conversation_id": conversation_id, "message_id": uuid.uuid4().hex, "text": text, **extra}


@pytest.fixture
async def gateway(redis_url: str):
    """A factory of browsers (separate cookie jars) talking to one gateway with small per-client limits."""
    settings = GatewaySettings(
        redis_url=redis_url, web_limit_new_conversations="4/minute", web_limit_new_conversations_device="3/minute",
        web_limit_messages="12/minute", web_max_body_bytes=16 * 1024, handoff_internal_token="t" * 32,
    )
    app = create_app(settings)
    rasa = RecordingRasa()
    async with app.router.lifespan_context(app):
        app.state.rasa = rasa
        await app.state.redis.flushdb()  # the limits are per client address: start from zero
        browsers: list[httpx.AsyncClient] = []

        def browser(ip: str = "127.0.0.1") -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=app, client=(ip, 40000))
            client = httpx.AsyncClient(transport=transport, base_url="http://test")
            browsers.append(client)
            return client

        browser.rasa = rasa  # type: ignore[attr-defined]
        browser.redis = app.state.redis  # type: ignore[attr-defined]
        browser.app = app  # type: ignore[attr-defined]
        yield browser
        for client in browsers:
            await client.aclose()


async def test_a_conversation_id_alone_opens_nothing(gateway) -> None:
    owner, stranger = gateway(), gateway("10.0.0.2")
    r = await owner.post(f"{API}/messages", json=_msg("my order DM2026110512, phone 13812345310"))
    cid = r.json()["conversation_id"]
    assert DEVICE_COOKIE in r.cookies and "httponly" in r.headers["set-cookie"].lower()
    # The id travels in URLs (history, event stream): without the browser's cookie it reads nothing ...
    assert (await stranger.get(f"{API}/conversations/{cid}/messages")).status_code == 404
    assert (await stranger.get(f"{API}/conversations/{cid}/events")).status_code == 404
    # ... and writes nothing: the stranger's message starts the stranger's own conversation.
    r = await stranger.post(f"{API}/messages", json=_msg("/request_human", cid))
    assert r.status_code == 200 and r.json()["conversation_id"] != cid
    history = (await owner.get(f"{API}/conversations/{cid}/messages")).json()["messages"]
    assert [m["role"] for m in history] == ["customer", "bot"]
    # A forged cookie does not help either.
    forged = gateway("10.0.0.3")
    forged.cookies.set(DEVICE_COOKIE, "A" * 43)
    assert (await forged.get(f"{API}/conversations/{cid}/messages")).status_code == 404


@pytest.mark.parametrize("typed", ["/restart", "/session_start", "/back", '/affirm{"order_number":"DM2026110512"}',
                                   "  /restart", "//restart"])
async def test_typed_rasa_commands_reach_the_bot_as_plain_words(gateway, typed: str) -> None:
    customer = gateway()
    cid = (await customer.post(f"{API}/messages", json=_msg("hello"))).json()["conversation_id"]
    r = await customer.post(f"{API}/messages", json=_msg(typed, cid))
    assert r.status_code == 200
    assert not gateway.rasa.texts[-1].startswith("/"), gateway.rasa.texts[-1]
    assert gateway.rasa.texts[-1] == typed.strip().lstrip("/ ")


async def test_only_buttons_the_bot_showed_pass_as_commands_while_fresh(gateway) -> None:
    customer = gateway()
    cid = (await customer.post(f"{API}/messages", json=_msg("hello"))).json()["conversation_id"]
    await customer.post(f"{API}/messages", json=_msg("/request_human", cid))
    assert gateway.rasa.texts[-1] == "/request_human"  # the bot showed this button
    # The same button an hour and more later: read as what it said, not executed as a command.
    await gateway.redis.hset(keys.offered(cid), "/request_human", f"{time.time() - 7200!r}|Talk to a person")
    await customer.post(f"{API}/messages", json=_msg("/request_human", cid))
    assert gateway.rasa.texts[-1] == "Talk to a person"
    # Another conversation never saw that button.
    other = (await gateway().post(f"{API}/messages", json=_msg("hi"))).json()["conversation_id"]
    await customer.post(f"{API}/messages", json=_msg("/request_human", other))
    assert gateway.rasa.texts[-1] != "/request_human"


async def test_a_forged_rating_is_not_recorded(gateway) -> None:
    customer = gateway()
    cid = (await customer.post(f"{API}/messages", json=_msg("hello"))).json()["conversation_id"]
    await gateway.redis.set(keys.csat_pending(cid), "H-forged")  # even with a rating pending ...
    r = await customer.post(f"{API}/messages", json=_msg('/csat{"stars":1}', cid))
    assert r.status_code == 200
    # ... a rating nobody offered is read as words by the bot, and the pending rating is untouched.
    assert gateway.rasa.texts[-1] == 'csat{"stars":1}'
    assert await gateway.redis.get(keys.csat_pending(cid)) == b"H-forged"


async def test_huge_bodies_are_refused_before_they_are_read(gateway) -> None:
    customer = gateway()
    big = _msg("hi", metadata={"customer_token": "x" * (2 * 1024 * 1024)})
    r = await customer.post(f"{API}/messages", json=big)
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    assert r.headers["x-content-type-options"] == "nosniff"

    # (a body streamed without Content-Length is refused too: tests/e2e/test_security_stack.py, real server)
    assert gateway.rasa.texts == []


async def test_one_client_cannot_open_conversations_without_limit(gateway) -> None:
    # Each request without cookies is a "new browser": the per-address limit still applies.
    statuses = []
    for _ in range(6):
        fresh = gateway("10.1.1.1")
        statuses.append((await fresh.post(f"{API}/messages", json=_msg("hi"))).status_code)
    assert statuses[:4] == [200] * 4 and statuses[4:] == [429, 429]
    refused = await gateway("10.1.1.1").post(f"{API}/messages", json=_msg("hi", metadata={"ui_lang": "zh"}))
    assert int(refused.headers["retry-after"]) >= 1 and "稍后" in refused.json()["detail"]
    # Another address is not affected.
    assert (await gateway("10.1.1.2").post(f"{API}/messages", json=_msg("hi"))).status_code == 200


async def test_one_browser_cannot_open_conversations_without_limit(gateway) -> None:
    browser = gateway("10.2.2.2")
    statuses = [(await browser.post(f"{API}/messages", json=_msg("hi"))).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


async def test_messages_are_limited_per_client_empty_and_ratings_included(gateway) -> None:
    customer = gateway("10.3.3.3")
    cid = (await customer.post(f"{API}/messages", json=_msg("hello"))).json()["conversation_id"]
    texts = ["", "   ", '/csat{"stars":5}'] * 4
    statuses = [(await customer.post(f"{API}/messages", json=_msg(t, cid))).status_code for t in texts]
    assert statuses.count(200) == 11 and statuses[-1] == 429  # 12/minute including the first message


async def test_security_headers_and_no_public_api_docs(gateway) -> None:
    page = await gateway().get("/")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert (await gateway().get("/docs")).status_code == 404
    assert (await gateway().get("/openapi.json")).status_code == 404


async def test_a_retried_first_message_continues_the_conversation_it_started(gateway) -> None:
    """The reply to a browser's first message was lost (the gateway died): the page retries it, still without a
    conversation id. It must land in the conversation the first attempt started, stored and answered once."""
    customer = gateway()
    first = _msg("hi there")
    r1 = await customer.post(f"{API}/messages", json=first)
    r2 = await customer.post(f"{API}/messages", json=first)  # same message id, no conversation id
    assert r1.status_code == r2.status_code == 200
    cid = r1.json()["conversation_id"]
    assert r2.json()["conversation_id"] == cid and r2.json()["messages"] == r1.json()["messages"]
    assert gateway.rasa.texts == ["hi there"]
    history = (await customer.get(f"{API}/conversations/{cid}/messages")).json()["messages"]
    assert [m["role"] for m in history] == ["customer", "bot"]
    # Another browser reusing that message id gets its own conversation.
    other = await gateway().post(f"{API}/messages", json=first)
    assert other.json()["conversation_id"] != cid
