"""The generic signed webhook (channels/signed_webhook.py) with a fake store app receiving the signed replies."""
from __future__ import annotations

import asyncio
import secrets
import time

import pytest

from channels.settings import ChannelSettings
from conversations import keys
from tests.channels.conftest import eventually, gateway
from tests.fakes.store_app import FakeStoreApp

URL = "/api/channels/webhook/messages"
CALLBACK = "http://store.test/csbot/replies"
TOKEN = "signed.customer.token"  # noqa: S105 - test value
OTHER_KEY = "another-secret-0123456789"  # noqa: S105 - test value


@pytest.fixture
def store_app() -> FakeStoreApp:
    return FakeStoreApp()


@pytest.fixture
async def hook(redis_url: str, store_app: FakeStoreApp):
    cs = ChannelSettings(signed_webhook_secret=store_app.secret, signed_webhook_callback_url=CALLBACK,
                         outbox_backoff_s=0.05, outbox_poll_s=0.05)
    async with gateway(redis_url, cs, {"webhook": store_app.app()}) as http:
        yield http


def message(user: str, text: str, **extra) -> dict:
    return {"user_id": user, "message_id": secrets.token_hex(8), "text": text, **extra}


async def conversation_of(http, user: str) -> str | None:
    value = await http.app.state.redis.get(keys.channel_user("webhook", user))
    return value.decode() if value else None


async def test_signed_message_is_answered_by_a_signed_callback(hook, store_app) -> None:
    user = "member-" + secrets.token_hex(4)
    body, headers = store_app.signed(message(user, "hello", language="en", customer_token=TOKEN))
    r = await hook.post(URL, content=body, headers=headers)
    assert r.status_code == 202
    cid = r.json()["conversation_id"]
    assert cid == await conversation_of(hook, user)
    await eventually(lambda: store_app.texts_for(user))
    received = [x for x in store_app.received if x["user_id"] == user]
    assert received[0]["conversation_id"] == cid
    assert received[0]["message"]["buttons"] == [{"title": "Talk to a person", "payload": "/request_human"}]
    assert store_app.rejected_signatures == 0
    metadata = hook.bot.calls[-1]["metadata"]
    assert metadata["channel"] == "webhook" and metadata["customer_token"] == TOKEN


@pytest.mark.parametrize("case, status", [("missing", 401), ("wrong_key", 403), ("stale", 403), ("tampered", 403)])
async def test_bad_signatures_are_refused_and_nothing_is_stored(hook, store_app, case, status) -> None:
    user = "member-" + secrets.token_hex(4)
    payload = message(user, "hello")
    if case == "wrong_key":
        body, headers = store_app.signed(payload, secret=OTHER_KEY)
    elif case == "stale":
        body, headers = store_app.signed(payload, at=time.time() - 3600)
    else:
        body, headers = store_app.signed(payload)
    if case == "missing":
        del headers["X-Signature"]
    if case == "tampered":
        body = body.replace(b"hello", b"HELLO")
    r = await hook.post(URL, content=body, headers=headers)
    assert r.status_code == status
    assert await conversation_of(hook, user) is None and hook.bot.calls == []


async def test_replayed_request_is_answered_once(hook, store_app) -> None:
    user = "member-" + secrets.token_hex(4)
    body, headers = store_app.signed(message(user, "where is my order"))
    for _ in range(3):
        assert (await hook.post(URL, content=body, headers=headers)).status_code == 202
    await eventually(lambda: store_app.texts_for(user))
    await asyncio.sleep(0.4)
    assert store_app.texts_for(user) == ["echo:where is my order"] and len(hook.bot.calls) == 1


@pytest.mark.parametrize("payload", [{"user_id": "u1"}, {"user_id": "bad id!", "message_id": "m", "text": "x"},
                                     ["not", "an", "object"]])
async def test_malformed_body_is_a_400(hook, store_app, payload) -> None:
    body, headers = store_app.signed(payload)  # type: ignore[arg-type]
    assert (await hook.post(URL, content=body, headers=headers)).status_code == 400
    assert hook.bot.calls == []


async def test_an_unavailable_store_app_is_retried_without_doubles(hook, store_app) -> None:
    user = "member-" + secrets.token_hex(4)
    store_app.fail_next = 3
    hook.bot.reply = lambda text: [{"text": "a"}, {"text": "b"}]
    body, headers = store_app.signed(message(user, "hi"))
    await hook.post(URL, content=body, headers=headers)
    await eventually(lambda: len(store_app.texts_for(user)) == 2, timeout_s=10)
    await asyncio.sleep(0.3)
    assert store_app.texts_for(user) == ["a", "b"]
