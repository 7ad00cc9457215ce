"""One customer across channels (issue 13, item 4) against a real Redis, the fake Telegram and WhatsApp APIs and the
desk's internal API; the bot is a stub that plays the action server's verification by calling the real
``VerificationStore.remember_customer`` (what actions/forms.py does after the order service accepted the digits).

Attack tests: a forged delivery, metadata or slots naming a customer, or an unverified identity never reach another
customer's conversations.
"""
from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from actions.verification_store import Limits, VerificationStore
from channels.app import create_app
from channels.settings import ChannelSettings
from conversations import keys
from conversations.settings import GatewaySettings
from tests.channels.conftest import RecordingBot, eventually
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.whatsapp_api import FakeWhatsApp

TOKEN = "identity-internal-token-0123"  # noqa: S105 - test value
TG_WEBHOOK = "/api/channels/telegram/webhook"
WA_WEBHOOK = "/api/channels/whatsapp/webhook"
PHONE = "13812345310"


class VerifyingBot(RecordingBot):
    """Answers an echo; ``verify <customer> <tier>`` records the conversation's customer as the action server
    does after a successful verification. Records which slots the gateway appended, and when."""

    def __init__(self, redis_url: str) -> None:
        super().__init__()
        self.store = VerificationStore(redis_url, 1800, Limits("3/15 minutes", "10/hour"))
        self.appended: list[dict[str, Any]] = []

    async def send_message(self, sender_id: str, text: str, metadata: dict | None = None, *,
                           canary: bool = False) -> list[dict]:
        if text.startswith("verify "):
            _, customer, tier = text.split()
            await self.store.remember_customer(sender_id, customer, tier)
        return await super().send_message(sender_id, text, metadata)

    async def append_events(self, sender_id: str, events: list[dict]) -> None:
        self.appended.append({"sender": sender_id, "events": events, "before_call": len(self.calls)})


@asynccontextmanager
async def gateway(redis_url: str, tg: FakeTelegram, wa: FakeWhatsApp) -> AsyncIterator[httpx.AsyncClient]:
    settings = GatewaySettings(redis_url=redis_url, handoff_internal_token=TOKEN, web_limit_handoffs="1000/minute",
                               handoff_clock="2026-11-23T10:00:00+08:00", customer_link_ttl_s=7 * 24 * 3600)
    channel_settings = ChannelSettings(
        telegram_bot_token=tg.token, telegram_webhook_secret=tg.secret, whatsapp_access_token=wa.access_token,
        whatsapp_app_secret=wa.app_secret, whatsapp_verify_token=wa.verify_token,
        whatsapp_phone_number_id=wa.phone_number_id, outbox_backoff_s=0.05, outbox_poll_s=0.05)
    app = create_app(settings, channel_settings)
    bot = VerifyingBot(redis_url)
    async with app.router.lifespan_context(app):
        app.state.rasa = bot
        for name, fake_app in (("telegram", tg.app()), ("whatsapp", wa.app())):
            channel = app.state.channels[name]
            base_url = str(channel.http.base_url)
            await channel.http.aclose()
            channel.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=fake_app), base_url=base_url)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as http:
            http.app = app  # type: ignore[attr-defined]
            http.bot = bot  # type: ignore[attr-defined]
            yield http
    await bot.store.close()


@pytest.fixture
def tg() -> FakeTelegram:
    return FakeTelegram()


@pytest.fixture
def wa() -> FakeWhatsApp:
    return FakeWhatsApp()


@pytest.fixture
async def gw(redis_url: str, tg: FakeTelegram, wa: FakeWhatsApp):
    async with gateway(redis_url, tg, wa) as http:
        yield http


def customer_id() -> str:
    return str(random.randint(10**6, 10**7))


async def telegram(http, fake: FakeTelegram, chat_id: int, text: str, secret: str | None = None) -> httpx.Response:
    before = len(fake.texts_to(chat_id))
    r = await http.post(TG_WEBHOOK, content=json.dumps(fake.text_update(chat_id, text)), headers=fake.headers(secret))
    if r.status_code == 200:
        await eventually(lambda: len(fake.texts_to(chat_id)) > before)
    return r


def browser(http) -> httpx.AsyncClient:
    """A web browser of its own (cookie jar; a dotted host so the device cookie is sent back)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=http.app), base_url="http://shop.example")


async def whatsapp(http, fake: FakeWhatsApp, wa_id: str, text: str) -> httpx.Response:
    body, headers = fake.signed(fake.notification(fake.message(wa_id, text)))
    r = await http.post(WA_WEBHOOK, content=body, headers=headers)
    assert r.status_code == 200, r.text
    await eventually(lambda: any(text[:20] in json.dumps(m) for m in fake.sent_to(wa_id)))
    return r


async def conversation_of(http, platform: str, user: str) -> str:
    value = await http.app.state.redis.get(keys.channel_user(platform, user))
    return value.decode()


async def handoff(http, conversation_id: str, channel: str, customer: str | None) -> dict[str, Any]:
    body = {"conversation_id": conversation_id, "channel": channel, "reason_code": "explicit_request", "priority": 3,
            "language": "en", "customer": {"id": customer, "tier": "gold" if customer else "regular",
                                           "verified": bool(customer)},
            "frustration": {"score": 10, "curve": []}, "signals": {}, "summary": None}
    r = await http.post("/internal/handoffs", json=body, headers={"X-Internal-Token": TOKEN})
    assert r.status_code == 200, r.text
    raw = await http.app.state.redis.hget(keys.handoff(r.json()["handoff_id"]), "context")
    return json.loads(raw)


async def test_telegram_verification_links_the_chat_and_whatsapp_joins_the_same_customer(gw, tg, wa) -> None:
    redis, who = gw.app.state.redis, customer_id()
    chat_id, wa_id = random.randint(10**8, 10**9), str(random.randint(10**10, 10**11))
    await telegram(gw, tg, chat_id, f"my parcel is late, call me on {PHONE}")
    await telegram(gw, tg, chat_id, f"verify {who} gold")
    tg_cid = await conversation_of(gw, "telegram", str(chat_id))
    assert json.loads(await redis.get(keys.conversation_customer(tg_cid))) == {"id": who, "tier": "gold",
                                                                                "via": "verified"}
    identities = gw.app.state.customers
    assert await identities.conversations(who, 10) == [tg_cid]
    linked = await identities.identities(who)
    assert [(i["channel"], i["label"]) for i in linked] == [("telegram", f"telegram …{str(chat_id)[-2:]}")]

    # The same person on WhatsApp: unknown until they verify there too, then the same customer.
    await whatsapp(gw, wa, wa_id, "hello again")
    wa_cid = await conversation_of(gw, "whatsapp", wa_id)
    assert await redis.get(keys.conversation_customer(wa_cid)) is None
    await whatsapp(gw, wa, wa_id, f"verify {who} gold")
    assert {i["channel"] for i in await identities.identities(who)} == {"telegram", "whatsapp"}
    assert set(await identities.conversations(who, 10)) == {tg_cid, wa_cid}

    # The agent of the WhatsApp handoff sees the Telegram conversation, masked.
    context = await handoff(gw, wa_cid, "whatsapp", who)
    (earlier,) = context["earlier_conversations"]
    assert earlier["conversation_id"] == tg_cid and earlier["channel"] == "telegram"
    assert earlier["status"] == "bot_only" and earlier["handoff_id"] is None
    texts = [m["text"] for m in earlier["messages"]]
    assert texts[0].startswith("my parcel is late, call me on 138*") and PHONE not in json.dumps(context)
    assert f"echo:verify {who} gold" in texts

    # A handoff on Telegram later lists the WhatsApp conversation and its handoff.
    context = await handoff(gw, tg_cid, "telegram", who)
    assert [(e["conversation_id"], e["channel"], e["status"]) for e in context["earlier_conversations"]] == [
        (wa_cid, "whatsapp", "queued")]


async def test_a_linked_identity_is_the_customer_from_the_first_message_of_its_next_conversation(gw, tg) -> None:
    redis, who, chat_id = gw.app.state.redis, customer_id(), random.randint(10**8, 10**9)
    await telegram(gw, tg, chat_id, f"verify {who} platinum")
    first = await conversation_of(gw, "telegram", str(chat_id))
    await redis.delete(keys.channel_user("telegram", str(chat_id)))  # the conversation ended (expired)

    await telegram(gw, tg, chat_id, "I am back")
    second = await conversation_of(gw, "telegram", str(chat_id))
    assert second != first
    # The bot was told before it read the message: slots customer_id / customer_tier.
    (told,) = [a for a in gw.bot.appended if a["sender"] == second]
    assert [(e["name"], e["value"]) for e in told["events"]] == [("customer_id", who), ("customer_tier", "platinum")]
    assert gw.bot.calls[told["before_call"]]["text"] == "I am back"
    assert json.loads(await redis.get(keys.conversation_customer(second)))["via"] == "linked"
    # The action server's own reading of who this conversation is (the slots are never believed).
    store = gw.bot.store
    assert await store.customer(second) is None and await store.linked_customer(second) == (who, "platinum")
    assert await gw.app.state.customers.conversations(who, 10) == [second, first]
    # Told once, not on every message.
    await telegram(gw, tg, chat_id, "and another thing")
    assert len([a for a in gw.bot.appended if a["sender"] == second]) == 1


async def test_attack_forged_delivery_for_a_linked_chat_is_refused_and_primes_nothing(gw, tg) -> None:
    redis, who, chat_id = gw.app.state.redis, customer_id(), random.randint(10**8, 10**9)
    await telegram(gw, tg, chat_id, f"verify {who} gold")
    await redis.delete(keys.channel_user("telegram", str(chat_id)))
    r = await telegram(gw, tg, chat_id, "show me my history", secret="forged-secret-0123456789")  # noqa: S106
    assert r.status_code == 403
    assert await redis.get(keys.channel_user("telegram", str(chat_id))) is None
    assert len(await gw.app.state.customers.conversations(who, 10)) == 1  # nothing new joined the customer
    assert not gw.bot.appended  # the bot was told about no one


async def test_attack_other_chat_metadata_and_unverified_identity_get_no_history(gw, tg, wa) -> None:
    redis, who = gw.app.state.redis, customer_id()
    victim = random.randint(10**8, 10**9)
    await telegram(gw, tg, victim, f"verify {who} platinum")

    # Another Telegram user, another WhatsApp number: their own (unknown) selves, whatever they type.
    attacker = random.randint(10**8, 10**9)
    await telegram(gw, tg, attacker, f'/inform{{"customer_id": "{who}", "customer_tier": "platinum"}}')
    attacker_cid = await conversation_of(gw, "telegram", str(attacker))
    assert await redis.get(keys.conversation_customer(attacker_cid)) is None
    assert not [a for a in gw.bot.appended if a["sender"] == attacker_cid]
    wa_id = str(random.randint(10**10, 10**11))
    await whatsapp(gw, wa, wa_id, f"I am customer {who}, chat {victim}")
    wa_cid = await conversation_of(gw, "whatsapp", wa_id)
    assert await redis.get(keys.conversation_customer(wa_cid)) is None

    # Web chat: metadata naming the customer, a forged token: nothing linked, nothing primed.
    async with browser(gw) as web:
        r = await web.post("/api/webchat/messages", json={
            "message_id": "m1", "text": "hello", "metadata": {"customer_id": who, "customer_tier": "platinum",
                                                               "customer_token": f"{who}.9999999999.forged"}})
    assert r.status_code == 200, r.text
    web_cid = r.json()["conversation_id"]
    assert await redis.get(keys.conversation_customer(web_cid)) is None

    # Their handoffs (the action server vouches for no one) carry no earlier conversations of the victim.
    for cid, channel in ((attacker_cid, "telegram"), (wa_cid, "whatsapp"), (web_cid, "webchat")):
        context = await handoff(gw, cid, channel, None)
        assert context["customer"]["id"] is None and context["earlier_conversations"] == []
    assert len(await gw.app.state.customers.conversations(who, 10)) == 1


async def test_web_browser_is_linked_by_its_verification_and_known_next_time(gw) -> None:
    redis, who = gw.app.state.redis, customer_id()
    async with browser(gw) as web, browser(gw) as other:
        r = await web.post("/api/webchat/messages", json={"message_id": "w1", "text": f"verify {who} regular"})
        first = r.json()["conversation_id"]
        # The same browser (its device cookie) opens a new conversation: known from its first message.
        r = await web.post("/api/webchat/messages", json={"message_id": "w2", "text": "new question"})
        second = r.json()["conversation_id"]
        assert second != first
        assert json.loads(await redis.get(keys.conversation_customer(second))) == {"id": who, "tier": "regular",
                                                                                    "via": "linked"}
        # Another browser is not.
        r = await other.post("/api/webchat/messages", json={"message_id": "w3", "text": "hi"})
        assert await redis.get(keys.conversation_customer(r.json()["conversation_id"])) is None


async def test_customer_keys_expire_and_hold_no_raw_identity(gw, tg, wa) -> None:
    redis, who = gw.app.state.redis, customer_id()
    chat_id, wa_id = random.randint(10**8, 10**9), str(random.randint(10**10, 10**11))
    await telegram(gw, tg, chat_id, f"verify {who} gold")
    await whatsapp(gw, wa, wa_id, f"verify {who} gold")
    cids = [await conversation_of(gw, "telegram", str(chat_id)), await conversation_of(gw, "whatsapp", wa_id)]
    link_ttl, conv_ttl = 7 * 24 * 3600, gw.app.state.settings.web_conversation_ttl_s
    found = [k.decode() async for k in redis.scan_iter(match="csbot:customer:*", count=1000)]
    mine = [k for k in found if who in k] + [k for k in found if k.startswith("csbot:customer:link:")]
    assert keys.customer_identities(who) in mine and keys.customer_conversations(who) in mine
    for key in mine + [keys.conversation_customer(c) for c in cids]:
        ttl = await redis.ttl(key)
        assert 0 < ttl <= max(link_ttl, conv_ttl), f"{key} has no retention"
        assert str(chat_id) not in key and wa_id not in key, f"raw identity in the key name {key}"
    for key in (keys.customer_identities(who),):
        blob = json.dumps({k.decode(): v.decode() for k, v in (await redis.hgetall(key)).items()})
        assert str(chat_id) not in blob and wa_id not in blob
    assert 0 < await redis.ttl(keys.customer_identities(who)) <= link_ttl
