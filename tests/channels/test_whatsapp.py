"""WhatsApp Cloud API channel against a real Redis and the fake Cloud API (tests/fakes/whatsapp_api.py)."""
from __future__ import annotations

import asyncio
import random
import time

import pytest

from channels.settings import ChannelSettings
from conversations import keys
from conversations.store import ChatMessage
from tests.channels.conftest import eventually, gateway
from tests.fakes.whatsapp_api import FakeWhatsApp

WEBHOOK = "/api/channels/whatsapp/webhook"
FIVE = [{"title": f"Option number {n} with a long title", "payload": f"/choose{{\"n\":{n}}}"} for n in range(1, 6)]


def settings_for(fake: FakeWhatsApp, **extra) -> ChannelSettings:
    return ChannelSettings(whatsapp_access_token=fake.access_token, whatsapp_app_secret=fake.app_secret,
                           whatsapp_verify_token=fake.verify_token, whatsapp_phone_number_id=fake.phone_number_id,
                           outbox_backoff_s=0.05, outbox_poll_s=0.05, **extra)


@pytest.fixture
def fake() -> FakeWhatsApp:
    return FakeWhatsApp()


@pytest.fixture
async def wa(redis_url: str, fake: FakeWhatsApp):
    async with gateway(redis_url, settings_for(fake), {"whatsapp": fake.app()}) as http:
        yield http


def number() -> str:
    return str(random.randint(10**10, 10**11))


async def post(http, fake: FakeWhatsApp, payload: dict, secret: str | None = None):
    body, headers = fake.signed(payload, secret)
    return await http.post(WEBHOOK, content=body, headers=headers)


async def conversation_of(http, wa_id: str) -> str | None:
    value = await http.app.state.redis.get(keys.channel_user("whatsapp", wa_id))
    return value.decode() if value else None


async def test_verification_echoes_the_challenge_only_with_the_verify_token(wa, fake) -> None:
    ok = await wa.get(WEBHOOK, params={"hub.mode": "subscribe", "hub.verify_token": fake.verify_token,
                                       "hub.challenge": "1158201444"})
    assert ok.status_code == 200 and ok.text == "1158201444"
    bad = await wa.get(WEBHOOK, params={"hub.mode": "subscribe", "hub.verify_token": "guess",
                                        "hub.challenge": "1158201444"})
    assert bad.status_code == 403 and "1158201444" not in bad.text


async def test_text_is_answered_with_reply_buttons(wa, fake) -> None:
    wa_id = number()
    r = await post(wa, fake, fake.notification(fake.message(wa_id, "hello there")))
    assert r.status_code == 200
    sent = await eventually(lambda: fake.sent_to(wa_id))
    assert sent[0]["type"] == "interactive"
    assert sent[0]["interactive"]["type"] == "button"
    assert sent[0]["interactive"]["body"]["text"] == "echo:hello there"
    assert sent[0]["interactive"]["action"]["buttons"] == [
        {"type": "reply", "reply": {"id": "/request_human", "title": "Talk to a person"}}]
    assert wa.bot.calls[-1]["metadata"]["channel"] == "whatsapp"


async def test_more_than_three_buttons_become_a_list_and_replies_reach_the_bot(wa, fake) -> None:
    wa_id = number()
    wa.bot.reply = lambda text: [{"text": "Which one?", "buttons": FIVE}]
    await post(wa, fake, fake.notification(fake.message(wa_id, "choices please")))
    sent = await eventually(lambda: fake.sent_to(wa_id))
    interactive = sent[0]["interactive"]
    assert interactive["type"] == "list"
    rows = interactive["action"]["sections"][0]["rows"]
    assert [r["id"] for r in rows] == [b["payload"] for b in FIVE]
    assert all(len(r["title"]) <= 24 for r in rows) and rows[0]["description"] == FIVE[0]["title"]
    # The customer picks a row: its id (the payload the bot offered) reaches the bot as a command.
    await post(wa, fake, fake.notification(fake.message(wa_id, "Option number 2", kind="interactive",
                                                        reply_id=FIVE[1]["payload"])))
    assert wa.bot.calls[-1]["text"] == FIVE[1]["payload"]


async def test_forged_or_missing_signature_is_refused_and_nothing_is_stored(wa, fake) -> None:
    wa_id = number()
    payload = fake.notification(fake.message(wa_id, "hi"))
    assert (await post(wa, fake, payload, secret="not-the-app-secret")).status_code == 403  # noqa: S106
    body, _ = fake.signed(payload)
    assert (await wa.post(WEBHOOK, content=body, headers={"Content-Type": "application/json"})).status_code == 401
    # A valid signature of another body does not fit this one.
    _, headers = fake.signed(fake.notification(fake.message(wa_id, "other")))
    assert (await wa.post(WEBHOOK, content=body, headers=headers)).status_code == 403
    assert await conversation_of(wa, wa_id) is None and wa.bot.calls == []


async def test_a_redelivered_message_is_answered_once(wa, fake) -> None:
    wa_id = number()
    payload = fake.notification(fake.message(wa_id, "hello"))
    for _ in range(3):
        assert (await post(wa, fake, payload)).status_code == 200
    await eventually(lambda: fake.sent_to(wa_id))
    await asyncio.sleep(0.5)
    assert len(fake.sent_to(wa_id)) == 1 and len(wa.bot.calls) == 1


@pytest.mark.parametrize("payload", [
    {"object": "page", "entry": []}, {"object": "whatsapp_business_account"},
    {"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {"messages": [{"type": "text"}]}}]}]},
])
async def test_malformed_notification_is_a_400(wa, fake, payload) -> None:
    assert (await post(wa, fake, payload)).status_code == 400
    assert wa.bot.calls == []


async def test_status_updates_need_no_answer(wa, fake) -> None:
    statuses = [{"id": "wamid.X", "status": "delivered", "timestamp": "1", "recipient_id": number()}]
    assert (await post(wa, fake, fake.notification(statuses=statuses))).status_code == 200
    assert wa.bot.calls == []


async def test_sticker_gets_a_polite_answer(wa, fake) -> None:
    wa_id = number()
    await post(wa, fake, fake.notification(fake.message(wa_id, kind="sticker")))
    sent = await eventually(lambda: fake.sent_to(wa_id))
    assert "text messages" in sent[0]["text"]["body"] and wa.bot.calls == []


async def test_outside_the_24_hour_window_nothing_is_sent_and_the_reason_is_visible(wa, fake) -> None:
    wa_id = number()
    await post(wa, fake, fake.notification(fake.message(wa_id, "hello")))
    await eventually(lambda: fake.sent_to(wa_id))
    cid = await conversation_of(wa, wa_id)
    redis = wa.app.state.redis
    day_ago = time.time() - 25 * 3600
    await redis.hset(keys.channel_route(cid), "last_inbound", repr(day_ago))
    fake.last_inbound[wa_id] = day_ago
    await wa.app.state.store.append(cid, ChatMessage(role="agent", text="Sorry for the wait!"), author="a1")

    async def dead_letter():
        for _, fields in await redis.xrange(keys.outbox_dead()):
            if fields[b"conversation_id"].decode() == cid:
                return fields
        return None

    fields = await eventually(dead_letter)
    assert b"24-hour" in fields[b"error"]
    assert len(fake.sent_to(wa_id)) == 1  # nothing was sent outside the window


async def test_outside_the_window_the_configured_template_is_sent(redis_url, fake) -> None:
    cs = settings_for(fake, whatsapp_template_name="follow_up", whatsapp_template_language="en_US")
    async with gateway(redis_url, cs, {"whatsapp": fake.app()}) as wa:
        wa_id = number()
        await post(wa, fake, fake.notification(fake.message(wa_id, "hello")))
        await eventually(lambda: fake.sent_to(wa_id))
        cid = await conversation_of(wa, wa_id)
        await wa.app.state.redis.hset(keys.channel_route(cid), "last_inbound", repr(time.time() - 25 * 3600))
        await wa.app.state.store.append(cid, ChatMessage(role="agent", text="Your refund is done."), author="a1")
        sent = await eventually(lambda: fake.sent_to(wa_id)[1:])
        assert sent == [{"messaging_product": "whatsapp", "recipient_type": "individual", "to": wa_id,
                         "type": "template", "template": {"name": "follow_up", "language": {"code": "en_US"}}}]


async def test_throttling_is_retried_without_doubles(wa, fake) -> None:
    wa_id = number()
    fake.fail_next, fake.fail_status = 2, 429
    wa.bot.reply = lambda text: [{"text": "one"}, {"text": "two"}]
    await post(wa, fake, fake.notification(fake.message(wa_id, "hi")))
    await eventually(lambda: len(fake.sent_to(wa_id)) == 2, timeout_s=10)
    await asyncio.sleep(0.3)
    assert [m["text"]["body"] for m in fake.sent_to(wa_id)] == ["one", "two"]
