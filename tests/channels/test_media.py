"""Photos customers send on messaging channels: fetched from each fake platform the documented way, kept for the
conversation, shown to logged-in agents only, the customer thanked; too big or unfetchable: a polite answer."""
from __future__ import annotations

import json
import random
import re
import secrets

import httpx
import pytest

from channels.base import MEDIA_MAX_BYTES
from channels.settings import ChannelSettings
from conversations import keys
from tests.channels.conftest import eventually, gateway
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.wechat_api import FakeWeChat
from tests.fakes.wecom_api import FakeWeCom
from tests.fakes.whatsapp_api import FakeWhatsApp

JPEG = b"\xff\xd8\xff\xe0" + secrets.token_bytes(3000) + b"\xff\xd9"
PASSWORD = "media-agent-test-pw"  # noqa: S105 - throw-away account in a throw-away Redis


async def agent_headers(http, username: str, role: str = "agent") -> dict:
    await http.app.state.agents.create(username, PASSWORD, role)
    login = await http.post("/api/agent/login", json={"username": username, "password": PASSWORD})
    http.cookies.clear()
    return {"Authorization": f"Bearer {login.json()['token']}"}


async def photo_link(http, platform: str, user: str) -> str:
    cid = (await http.app.state.redis.get(keys.channel_user(platform, user))).decode()
    assert [m.role for m in await http.app.state.store.history(cid)] == ["customer", "system"]
    return await photo_link_at(http, platform, user, 0)


async def photo_link_at(http, platform: str, user: str, position: int) -> str:
    """The agents' link of the photo stored as the conversation's message number ``position``."""
    cid = (await http.app.state.redis.get(keys.channel_user(platform, user))).decode()
    history = await http.app.state.store.history(cid)
    match = re.fullmatch(r"\[photo\] (/api/channels/media/[A-Za-z0-9_-]+)", history[position].text)
    assert match, history[position].text
    return match.group(1)


async def test_telegram_photo_is_kept_for_agents_and_the_customer_thanked(redis_url) -> None:
    fake = FakeTelegram()
    cs = ChannelSettings(telegram_bot_token=fake.token, telegram_webhook_secret=fake.secret, outbox_poll_s=0.05)
    async with gateway(redis_url, cs, {"telegram": fake.app()}) as http:
        chat_id = random.randint(10**8, 10**9)
        update = fake.photo_update(chat_id, JPEG)
        for _ in range(2):  # a redelivery is stored once
            r = await http.post("/api/channels/telegram/webhook", content=json.dumps(update), headers=fake.headers())
            assert r.status_code == 200
        texts = await eventually(lambda: fake.texts_to(chat_id))
        assert "photo is saved" in texts[0] and http.bot.calls == []
        link = await photo_link(http, "telegram", str(chat_id))
        assert (await http.get(link)).status_code == 401  # not for customers or strangers
        # No handoff for this conversation: an agent has no reason to see it (404, as for an unknown id).
        assert (await http.get(link, headers=await agent_headers(http, "media-tg-agent"))).status_code == 404
        shown = await http.get(link, headers=await agent_headers(http, "media-tg", "supervisor"))
        assert shown.status_code == 200 and shown.content == JPEG  # the largest size, not the thumbnail
        assert shown.headers["content-type"] == "image/jpeg" and shown.headers["content-disposition"] == "inline"
        assert (await http.get("/api/channels/media/unknown-id", headers=await agent_headers(http, "media-tg2"))
                ).status_code == 404


def whatsapp_settings(fake: FakeWhatsApp) -> ChannelSettings:
    return ChannelSettings(whatsapp_access_token=fake.access_token, whatsapp_app_secret=fake.app_secret,
                           whatsapp_verify_token=fake.verify_token, whatsapp_phone_number_id=fake.phone_number_id,
                           outbox_poll_s=0.05)


async def whatsapp_photo(http, fake: FakeWhatsApp) -> tuple[str, str]:
    """A new WhatsApp user sends a photo: (their wa_id, the first reply they got)."""
    wa_id = str(random.randint(10**10, 10**11))
    body, headers = fake.signed(fake.notification(fake.message(wa_id, kind="image", data=JPEG)))
    assert (await http.post("/api/channels/whatsapp/webhook", content=body, headers=headers)).status_code == 200
    sent = await eventually(lambda: fake.sent_to(wa_id))
    return wa_id, sent[0]["text"]["body"]


async def test_whatsapp_photo_is_fetched_with_the_token_and_kept(redis_url) -> None:
    fake = FakeWhatsApp()
    async with gateway(redis_url, whatsapp_settings(fake), {"whatsapp": fake.app()}) as http:
        wa_id, reply = await whatsapp_photo(http, fake)
        assert "photo is saved" in reply
        link = await photo_link(http, "whatsapp", wa_id)
        assert (await http.get(link, headers=await agent_headers(http, "media-wa", "supervisor"))).content == JPEG


@pytest.mark.parametrize(("media_host", "fetched"), [
    ("https://lookaside.fbsbx.com/", True),  # Meta's media host (WHATSAPP_MEDIA_HOSTS' default)
    ("http://lookaside.fbsbx.com/", False),  # not over TLS
    ("https://metadata.internal.example/", False),  # anywhere else: our token would go with the request
    ("https://fbsbx.com.evil.example/", False),
])
async def test_whatsapp_photo_is_downloaded_only_from_metas_media_host(redis_url, media_host: str,
                                                                       fetched: bool) -> None:
    fake = FakeWhatsApp(media_host=media_host)
    async with gateway(redis_url, whatsapp_settings(fake), {"whatsapp": fake.app()}) as http:
        _, reply = await whatsapp_photo(http, fake)
        assert ("photo is saved" in reply) is fetched
        assert fake.downloads == (["lookaside.fbsbx.com"] if fetched else [])


@pytest.mark.parametrize("size", [100, MEDIA_MAX_BYTES + 1])
async def test_wechat_photo_by_media_id_and_a_too_big_one(redis_url, size) -> None:
    fake = FakeWeChat()
    cs = ChannelSettings(wechat_app_id=fake.app_id, wechat_app_secret=fake.app_secret, wechat_token=fake.token,
                         wechat_passive_window_s=2.0)
    async with gateway(redis_url, cs, {"wechat": fake.app()}) as http:
        user = "o6_" + secrets.token_hex(8)
        data = JPEG[:size] if size < len(JPEG) else b"\xff" * size
        r = await http.post("/api/channels/wechat", params=fake.query(user), content=fake.image_xml(user, data))
        reply = r.text
        cid = (await http.app.state.redis.get(keys.channel_user("wechat", user))).decode()
        history = await http.app.state.store.history(cid)
        if size <= MEDIA_MAX_BYTES:
            assert "已收到您的图片" in reply and history[0].text.startswith("[photo] /api/channels/media/")
        else:  # refused while streaming: the customer is asked for words instead, nothing is kept
            assert "只能看懂文字" in reply and history[0].text == "[unsupported message: photo]"
        assert http.bot.calls == []


async def test_wechat_photo_is_fetched_by_media_id_never_from_the_picurl_a_callback_names(redis_url) -> None:
    """A forged callback naming an internal address as PicUrl: this server fetches only WeChat's media API (by the
    MediaId, with its own token), so the address is never contacted; an expired token is refreshed once."""
    fake = FakeWeChat()
    internal_hits: list[str] = []  # requests anywhere but WeChat's API
    cs = ChannelSettings(wechat_app_id=fake.app_id, wechat_app_secret=fake.app_secret, wechat_token=fake.token,
                         wechat_passive_window_s=2.0)
    async with gateway(redis_url, cs, {"wechat": fake.app()}) as http:
        channel = http.app.state.channels["wechat"]
        fake_api = channel.http

        async def record(request):  # noqa: ANN001, ANN202 - every request the channel makes, wherever it goes
            if request.url.host != fake_api.base_url.host or not request.url.path.startswith("/cgi-bin/"):
                internal_hits.append(str(request.url))
            return await fake_api._transport.handle_async_request(request)

        channel.http = httpx.AsyncClient(transport=httpx.MockTransport(record), base_url=fake_api.base_url)
        await channel.access_token()
        fake.expire_tokens()
        user = "o6_" + secrets.token_hex(8)
        forged = fake.image_xml(user, JPEG, pic_url="http://127.0.0.1:5055/internal/secrets")
        r = await http.post("/api/channels/wechat", params=fake.query(user), content=forged)
        assert "已收到您的图片" in r.text
        assert internal_hits == [] and len(fake.media_requests) == 2  # once with the expired token, once fresh
        link = await photo_link(http, "wechat", user)
        shown = await http.get(link, headers=await agent_headers(http, "media-wx", "supervisor"))
        assert shown.content == JPEG
        bad = fake._xml(user, "image", "<PicUrl><![CDATA[http://127.0.0.1/x]]></PicUrl>"
                                       "<MediaId><![CDATA[../../etc/passwd]]></MediaId>")
        r = await http.post("/api/channels/wechat", params=fake.query(user), content=bad)
        assert r.status_code == 200 and "已收到您的图片" not in r.text and len(fake.media_requests) == 2


async def test_one_platform_user_cannot_flood_the_store_with_photos_or_the_bot_with_messages(redis_url) -> None:
    """Beyond CHANNEL_LIMIT_PHOTOS a photo is neither fetched nor kept; beyond CHANNEL_LIMIT_MESSAGES a message is
    kept for agents but the bot is not asked; each is told once per window; a redelivery of an answered message is
    not counted again; another user is not affected."""
    fake = FakeTelegram()
    cs = ChannelSettings(telegram_bot_token=fake.token, telegram_webhook_secret=fake.secret, outbox_poll_s=0.05,
                         channel_limit_photos="2/minute", channel_limit_messages="5/minute")
    async with gateway(redis_url, cs, {"telegram": fake.app()}) as http:
        chat_id, other = random.sample(range(10**8, 10**9), 2)
        first = fake.text_update(chat_id, "hello there")

        async def post(update: dict) -> None:
            r = await http.post("/api/channels/telegram/webhook", content=json.dumps(update), headers=fake.headers())
            assert r.status_code == 200

        await post(first)
        for _ in range(4):
            await post(fake.photo_update(chat_id, JPEG))
        assert fake.calls.count("getFile") == 2  # the 3rd and 4th photos were never fetched
        await post(first)  # Telegram's redelivery of an answered update: replayed, not counted
        for n in range(3):
            await post(fake.text_update(chat_id, f"question number {n}"))
        cid = (await http.app.state.redis.get(keys.channel_user("telegram", str(chat_id)))).decode()
        history = await http.app.state.store.history(cid)
        customer = [m.text for m in history if m.role == "customer"]
        assert customer[0] == "hello there" and customer[3:5] == ["[photo not kept: over the limit]"] * 2
        assert customer[5:] == ["question number 0", "question number 1", "question number 2"]  # all kept
        # Messages 1-5 counted (hello, 4 photos); the bot was asked for the first text only.
        assert [c["text"] for c in http.bot.calls] == ["hello there"]
        notices = [m.text for m in history if m.role == "system"]
        assert sum("so this one was not saved" in t for t in notices) == 1
        assert sum("sending messages very quickly" in t for t in notices) == 1
        await eventually(lambda: any("very quickly" in t for t in fake.texts_to(chat_id)))
        assert sum("not saved" in t for t in fake.texts_to(chat_id)) == 1
        assert not await http.app.state.redis.keys(f"*{chat_id}*limit*")  # no platform id in a limit key
        await post(fake.text_update(other, "hi, another customer"))
        assert http.bot.calls[-1]["text"] == "hi, another customer"


async def test_wecom_photo_is_fetched_by_media_id_and_kept_for_agents(redis_url) -> None:
    fake = FakeWeCom(open_kfid="wk" + secrets.token_hex(12))
    cs = ChannelSettings(wecom_corp_id=fake.corp_id, wecom_secret=fake.secret, wecom_token=fake.token,
                         wecom_encoding_aes_key=fake.aes_key, outbox_poll_s=0.05)
    async with gateway(redis_url, cs, {"wecom": fake.app()}) as http:
        await http.app.state.redis.delete(keys.channel_token("wecom"))
        external = "wm" + secrets.token_hex(10)
        fake.customer_says(external, "我收到的杯子碎了")
        query, body = fake.callback()
        assert (await http.post("/api/channels/wecom", params=query, content=body)).status_code == 200
        await eventually(lambda: fake.texts_to(external))
        message = fake.customer_sends_photo(external, JPEG)
        query, body = fake.callback()
        assert (await http.post("/api/channels/wecom", params=query, content=body)).status_code == 200
        texts = await eventually(lambda: fake.texts_to(external)[1:])
        assert "图片" in texts[0] and [c["text"] for c in http.bot.calls] == ["我收到的杯子碎了"]
        assert fake.media_requests == [message["image"]["media_id"]]  # by its id (the token retry: tencent_media)
        link = await photo_link_at(http, "wecom", f"{fake.open_kfid}:{external}", 2)
        shown = await http.get(link, headers=await agent_headers(http, "media-wecom", "supervisor"))
        assert shown.status_code == 200 and shown.content == JPEG
