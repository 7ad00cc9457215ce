"""Telegram channel against a real Redis and the fake Bot API (tests/fakes/telegram_api.py); the bot is a stub."""
from __future__ import annotations

import asyncio
import json
import random

import httpx
import pytest

from channels import dispatch
from channels.settings import ChannelSettings
from conversations import keys
from conversations.settings import GatewaySettings
from conversations.store import ChatMessage
from tests.channels.conftest import eventually, gateway
from tests.fakes.telegram_api import FakeTelegram

WEBHOOK = "/api/channels/telegram/webhook"
SUPERVISOR_PW = "channels-supervisor-test-pw"  # noqa: S105 - throw-away account in a throw-away Redis


def settings_for(fake: FakeTelegram, **extra) -> ChannelSettings:
    values = {"outbox_backoff_s": 0.05, "outbox_poll_s": 0.05, **extra}
    return ChannelSettings(telegram_bot_token=fake.token, telegram_webhook_secret=fake.secret, **values)


@pytest.fixture
def fake() -> FakeTelegram:
    return FakeTelegram()


@pytest.fixture
async def tg(redis_url: str, fake: FakeTelegram):
    async with gateway(redis_url, settings_for(fake), {"telegram": fake.app()}) as http:
        yield http


def chat() -> int:
    return random.randint(10**8, 10**9)


async def deliver(http: httpx.AsyncClient, fake: FakeTelegram, update: dict, secret: str | None = None
                  ) -> httpx.Response:
    return await http.post(WEBHOOK, content=json.dumps(update), headers=fake.headers(secret))


async def conversation_of(http: httpx.AsyncClient, chat_id: int) -> str | None:
    value = await http.app.state.redis.get(keys.channel_user("telegram", str(chat_id)))
    return value.decode() if value else None


async def test_message_is_answered_through_send_message_with_an_inline_keyboard(tg, fake) -> None:
    chat_id = chat()
    r = await deliver(tg, fake, fake.text_update(chat_id, "where is my parcel?"))
    assert r.status_code == 200
    await eventually(lambda: fake.texts_to(chat_id))
    sent = [m for m in fake.sent if m["chat_id"] == chat_id]
    assert sent == [{"chat_id": chat_id, "text": "echo:where is my parcel?", "reply_markup": {
        "inline_keyboard": [[{"text": "Talk to a person", "callback_data": "/request_human"}]]}}]
    cid = await conversation_of(tg, chat_id)
    assert tg.bot.calls[-1]["sender"] == cid
    assert tg.bot.calls[-1]["metadata"]["channel"] == "telegram"
    assert tg.bot.calls[-1]["metadata"]["ui_lang"] == "en"
    history = await tg.app.state.store.history(cid)
    assert [(m.role, m.text) for m in history] == [("customer", "where is my parcel?"),
                                                   ("bot", "echo:where is my parcel?")]
    # The same chat stays in the same conversation.
    await deliver(tg, fake, fake.text_update(chat_id, "thanks"))
    await eventually(lambda: len(fake.texts_to(chat_id)) == 2)
    assert await conversation_of(tg, chat_id) == cid


@pytest.mark.parametrize("secret, status", [("", 401), ("wrong-secret-0123456789", 403),
                                            ("webhook-secret-012345678", 403)])
async def test_missing_or_forged_secret_is_refused_and_nothing_is_stored(tg, fake, secret, status) -> None:
    chat_id = chat()
    headers = fake.headers(secret)
    if not secret:
        del headers["X-Telegram-Bot-Api-Secret-Token"]
    r = await tg.post(WEBHOOK, content=json.dumps(fake.text_update(chat_id, "hi")), headers=headers)
    assert r.status_code == status
    assert await conversation_of(tg, chat_id) is None
    assert tg.bot.calls == []


async def test_a_redelivered_update_is_answered_once(tg, fake) -> None:
    chat_id = chat()
    update = fake.text_update(chat_id, "hello")
    for _ in range(3):  # Telegram re-sends an update until it gets a 2xx
        assert (await deliver(tg, fake, update)).status_code == 200
    await eventually(lambda: fake.texts_to(chat_id))
    await asyncio.sleep(0.5)  # time for a double to show up
    assert fake.texts_to(chat_id) == ["echo:hello"]
    assert len(tg.bot.calls) == 1
    history = await tg.app.state.store.history(await conversation_of(tg, chat_id))
    assert [m.role for m in history] == ["customer", "bot"]


@pytest.mark.parametrize("body", [b"not json", b"{}", b'{"update_id": "1"}', b"[1, 2]",
                                  b'{"update_id": 5, "message": {"chat": {"type": "private"}, "text": "x"}}'])
async def test_malformed_update_is_a_400_and_stores_nothing(tg, fake, body) -> None:
    r = await tg.post(WEBHOOK, content=body, headers=fake.headers())
    assert r.status_code == 400
    assert tg.bot.calls == []


async def test_button_press_reaches_the_bot_as_the_offered_command_and_is_acknowledged(tg, fake) -> None:
    chat_id = chat()
    await deliver(tg, fake, fake.text_update(chat_id, "hello"))
    await eventually(lambda: fake.texts_to(chat_id))
    update = fake.callback_update(chat_id, "/request_human")
    assert (await deliver(tg, fake, update)).status_code == 200
    assert tg.bot.calls[-1]["text"] == "/request_human"  # a button the bot showed: passes as a command
    assert update["callback_query"]["id"] in fake.answered_callbacks
    # A payload the bot never offered is read as words, not as a command.
    await deliver(tg, fake, fake.callback_update(chat_id, "/restart"))
    assert tg.bot.calls[-1]["text"] == "restart"


async def test_long_text_is_split_at_4096_with_the_buttons_on_the_last_piece(tg, fake) -> None:
    chat_id = chat()
    paragraph = "This is a long policy sentence. " * 40
    tg.bot.reply = lambda text: [{"text": "\n\n".join([paragraph] * 8), "buttons": [
        {"title": "Yes", "payload": "/affirm"}, {"title": "Talk to a person", "payload": "/request_human"}]}]
    await deliver(tg, fake, fake.text_update(chat_id, "tell me everything"))
    await eventually(lambda: len(fake.texts_to(chat_id)) >= 3)
    sent = [m for m in fake.sent if m["chat_id"] == chat_id]
    assert all(len(m["text"]) <= 4096 for m in sent)
    assert "".join(m["text"] for m in sent).replace("\n", "").replace(" ", "") == \
        "".join([paragraph] * 8).replace(" ", "")
    assert [("reply_markup" in m) for m in sent] == [False] * (len(sent) - 1) + [True]


async def test_unsupported_message_gets_a_polite_answer_in_the_customers_language(tg, fake) -> None:
    chat_id = chat()
    update = fake.sticker_update(chat_id)
    update["message"]["from"]["language_code"] = "zh-hans"
    assert (await deliver(tg, fake, update)).status_code == 200
    texts = await eventually(lambda: fake.texts_to(chat_id))
    assert "文字" in texts[0]
    assert tg.bot.calls == []


async def test_start_command_greets_in_the_users_language(tg, fake) -> None:
    chat_id = chat()
    await deliver(tg, fake, fake.text_update(chat_id, "/start", language_code="zh-hans"))
    assert tg.bot.calls[-1]["text"] == "你好" and tg.bot.calls[-1]["metadata"]["ui_lang"] == "zh"


async def test_agent_reply_and_csat_reach_the_customer_through_the_relay(tg, fake) -> None:
    chat_id = chat()
    await deliver(tg, fake, fake.text_update(chat_id, "hello"))
    await eventually(lambda: fake.texts_to(chat_id))
    cid = await conversation_of(tg, chat_id)
    store = tg.app.state.store
    # What the desk does (handoff/handoffs.py): it only writes the conversation's stream, never to channels.
    await tg.app.state.redis.set(keys.owner(cid), "agent:a1")
    await store.append(cid, ChatMessage(role="agent", text="Hi, I'm Anna from support."), author="a1")
    await eventually(lambda: "Hi, I'm Anna from support." in fake.texts_to(chat_id))
    stars = [{"title": "★" * n, "payload": f'/csat{{"stars":{n}}}'} for n in range(1, 6)]
    await store.append(cid, ChatMessage(role="system", text="How would you rate the service?", buttons=stars))
    await eventually(lambda: len(fake.texts_to(chat_id)) == 3)
    last = [m for m in fake.sent if m["chat_id"] == chat_id][-1]
    assert [row[0]["callback_data"] for row in last["reply_markup"]["inline_keyboard"]] == \
        [b["payload"] for b in stars]
    # While an agent owns the conversation the customer's messages go to the agent, not the bot.
    calls = len(tg.bot.calls)
    await deliver(tg, fake, fake.text_update(chat_id, "are you there?"))
    assert len(tg.bot.calls) == calls


async def test_platform_outage_is_retried_and_nothing_is_sent_twice(tg, fake) -> None:
    chat_id = chat()
    fake.fail_next, fake.fail_status = 3, 429
    tg.bot.reply = lambda text: [{"text": "first"}, {"text": "second"}, {"text": "third"}]
    await deliver(tg, fake, fake.text_update(chat_id, "hello"))
    await eventually(lambda: len(fake.texts_to(chat_id)) == 3, timeout_s=10)
    fake.fail_next, fake.fail_status = 1, 500
    tg.bot.reply = lambda text: [{"text": "fourth"}]
    await deliver(tg, fake, fake.text_update(chat_id, "again"))
    await eventually(lambda: len(fake.texts_to(chat_id)) == 4, timeout_s=10)
    assert fake.texts_to(chat_id) == ["first", "second", "third", "fourth"]


async def test_a_blocked_bot_becomes_a_dead_letter_supervisors_can_read(tg, fake) -> None:
    chat_id = chat()
    fake.blocked_chats.add(chat_id)
    await deliver(tg, fake, fake.text_update(chat_id, "hello"))
    cid = await conversation_of(tg, chat_id)
    redis = tg.app.state.redis

    async def dead_letter():
        for _, fields in await redis.xrange(keys.outbox_dead()):
            if fields[b"conversation_id"].decode() == cid:
                return fields
        return None

    fields = await eventually(dead_letter)
    assert b"403" in fields[b"error"] and b"blocked" in fields[b"error"]
    # Supervisors read them through the API (agents may not).
    await tg.app.state.agents.create("tgsup", SUPERVISOR_PW, "supervisor")
    await tg.app.state.agents.create("tgagent", SUPERVISOR_PW, "agent")
    tokens = {}
    for name in ("tgsup", "tgagent"):
        login = await tg.post("/api/agent/login", json={"username": name, "password": SUPERVISOR_PW})
        tokens[name] = {"Authorization": f"Bearer {login.json()['token']}"}
        tg.cookies.clear()
    assert (await tg.get("/api/channels/dead-letters", headers=tokens["tgagent"])).status_code == 403
    assert (await tg.get("/api/channels/dead-letters")).status_code == 401
    listed = (await tg.get("/api/channels/dead-letters", headers=tokens["tgsup"])).json()
    mine = [d for d in listed if d["conversation_id"] == cid][0]
    assert mine["platform"] == "telegram" and mine["messages"][0]["text"] == "echo:hello"
    status = (await tg.get("/api/channels/status", headers=tokens["tgsup"])).json()
    assert "telegram" in status["channels"] and status["dead_letters"] >= 1
    assert json.loads(fields[b"messages"])[0]["text"] == "echo:hello"
    assert int(fields[b"attempts"]) == 1  # a refusal retrying cannot fix is not retried
    # The conversation's next messages are not stuck behind the dead batch.
    fake.blocked_chats.discard(chat_id)
    await deliver(tg, fake, fake.text_update(chat_id, "hello again"))
    await eventually(lambda: fake.texts_to(chat_id) == ["echo:hello again"])


async def test_two_gateways_deliver_each_agent_message_once(redis_url, fake) -> None:
    cs = settings_for(fake)
    async with gateway(redis_url, cs, {"telegram": fake.app()}) as one, \
            gateway(redis_url, cs, {"telegram": fake.app()}) as two:
        chat_id = chat()
        await deliver(one, fake, fake.text_update(chat_id, "hello"))
        await eventually(lambda: fake.texts_to(chat_id))
        cid = await conversation_of(two, chat_id)
        for n in range(10):
            await two.app.state.store.append(cid, ChatMessage(role="agent", text=f"agent {n}"), author="a1")
        await eventually(lambda: len(fake.texts_to(chat_id)) >= 11)
        await asyncio.sleep(0.6)  # time for a double to show up
        assert fake.texts_to(chat_id) == ["echo:hello"] + [f"agent {n}" for n in range(10)]


async def test_channel_without_credentials_is_off(redis_url) -> None:
    async with gateway(redis_url, ChannelSettings(telegram_bot_token="1:a"), {}) as http:  # noqa: S106
        r = await http.post(WEBHOOK, json={"update_id": 1}, headers={"X-Telegram-Bot-Api-Secret-Token": "x"})
        assert r.status_code == 404
        assert http.app.state.channels == {}


def test_settings_read_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "1:x")
    monkeypatch.setenv("TELEGRAM_WEBHOOK_SECRET", "s3cret")
    assert ChannelSettings().telegram_enabled
    assert GatewaySettings()  # the gateway's own settings ignore the channel variables


async def test_outbox_with_a_platform_failing_a_fifth_of_calls_loses_and_doubles_nothing(redis_url) -> None:
    fake = FakeTelegram(fail_rate=0.2, fail_status=500, seed=13)
    cs = settings_for(fake, outbox_backoff_s=0.02, outbox_backoff_max_s=0.2, outbox_attempts=50)
    async with gateway(redis_url, cs, {"telegram": fake.app()}) as one, \
            gateway(redis_url, cs, {"telegram": fake.app()}) as two:
        chats = [chat() for _ in range(10)]
        for chat_id in chats:
            await deliver(one, fake, fake.text_update(chat_id, "hello"))
        conversations = {chat_id: await conversation_of(one, chat_id) for chat_id in chats}
        for n in range(5):
            for chat_id, cid in conversations.items():
                gw = one if n % 2 else two
                await gw.app.state.store.append(cid, ChatMessage(role="agent", text=f"{chat_id}:{n}"), author="a")
        expected = {chat_id: ["echo:hello"] + [f"{chat_id}:{n}" for n in range(5)] for chat_id in chats}
        await eventually(lambda: all(len(fake.texts_to(c)) >= 6 for c in chats), timeout_s=30)
        await asyncio.sleep(0.5)
        assert {c: fake.texts_to(c) for c in chats} == expected  # every message once, in order
        failed = len(fake.calls) - len(fake.sent)
        assert failed > 0  # the platform really did fail some calls


async def test_redelivery_during_a_slow_answer_waits_for_it_and_the_bot_is_asked_once(tg, fake) -> None:
    chat_id = chat()
    tg.bot.delay_s = 1.0
    update = fake.text_update(chat_id, "slow question")
    first, second = await asyncio.gather(deliver(tg, fake, update), deliver(tg, fake, update))
    assert first.status_code == second.status_code == 200
    await eventually(lambda: fake.texts_to(chat_id))
    await asyncio.sleep(0.3)
    assert fake.texts_to(chat_id) == ["echo:slow question"] and len(tg.bot.calls) == 1


async def test_redelivery_after_the_first_attempt_died_is_answered(tg, fake) -> None:
    chat_id = chat()
    update = fake.text_update(chat_id, "are you there")
    # A gateway stored the message and died before answering (its lease runs out in half a second); Telegram got
    # no 2xx and delivers the update again.
    cid = await tg.app.state.channel_routes.conversation_for("telegram", str(chat_id), {"chat_id": str(chat_id)},
                                                             "en")
    await tg.app.state.store.append_customer_once(cid, f"telegram-{update['update_id']}",
                                                  ChatMessage(role="customer", text="are you there"), 0.5)
    r = await deliver(tg, fake, update)
    assert r.status_code == 200
    await eventually(lambda: fake.texts_to(chat_id))
    assert fake.texts_to(chat_id) == ["echo:are you there"] and len(tg.bot.calls) == 1
    history = await tg.app.state.store.history(cid)
    assert [m.role for m in history] == ["customer", "bot"]  # stored once


async def test_redelivery_while_another_gateway_still_answers_is_asked_again_later(redis_url, fake) -> None:
    async with gateway(redis_url, settings_for(fake), {"telegram": fake.app()}) as http:
        http.app.state.settings.rasa_timeout_s = 60  # a long lease: the other attempt is alive for the whole wait
        chat_id = chat()
        update = fake.text_update(chat_id, "hello")
        cid = await http.app.state.channel_routes.conversation_for("telegram", str(chat_id),
                                                                   {"chat_id": str(chat_id)}, "en")
        await http.app.state.store.append_customer_once(cid, f"telegram-{update['update_id']}",
                                                        ChatMessage(role="customer", text="hello"), 60)
        waited, dispatch.DUPLICATE_WAIT_S = dispatch.DUPLICATE_WAIT_S, 0.3
        try:
            r = await deliver(http, fake, update)
        finally:
            dispatch.DUPLICATE_WAIT_S = waited
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        assert http.bot.calls == []
