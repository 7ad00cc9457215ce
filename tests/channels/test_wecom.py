"""WeCom customer service (微信客服) against a real Redis and the fake platform (tests/fakes/wecom_api.py)."""
from __future__ import annotations

import asyncio
import secrets

import pytest

from channels.settings import ChannelSettings
from conversations import keys
from tests.channels.conftest import eventually, gateway
from tests.fakes.wecom_api import FakeWeCom

URL = "/api/channels/wecom"


@pytest.fixture
def fake() -> FakeWeCom:
    return FakeWeCom(open_kfid="wk" + secrets.token_hex(12))


@pytest.fixture
async def wc(redis_url: str, fake: FakeWeCom):
    cs = ChannelSettings(wecom_corp_id=fake.corp_id, wecom_secret=fake.secret, wecom_token=fake.token,
                         wecom_encoding_aes_key=fake.aes_key, outbox_backoff_s=0.05, outbox_poll_s=0.05)
    async with gateway(redis_url, cs, {"wecom": fake.app()}) as http:
        await http.app.state.redis.delete(keys.channel_token("wecom"))
        yield http


def user() -> str:
    return "wm" + secrets.token_hex(10)


async def callback(http, fake: FakeWeCom, **change):
    query, body = fake.callback()
    query.update(change)
    return await http.post(URL, params=query, content=body)


async def test_url_verification_answers_the_decrypted_echostr(wc, fake) -> None:
    r = await wc.get(URL, params=fake.verify_query("1616140317555161061"))
    assert r.status_code == 200 and r.text == "1616140317555161061"
    forged = {**fake.verify_query("x"), "msg_signature": "0" * 40}
    assert (await wc.get(URL, params=forged)).status_code == 403


async def test_callback_fetches_the_messages_and_answers_each_customer_message_once(wc, fake) -> None:
    a, b = user(), user()
    fake.customer_says(a, "hello")
    fake.servicer_says(a, "a WeCom servicer wrote this")  # not the customer: not answered
    fake.customer_says(b, "where is my parcel")
    fake.customer_says(a, "thanks")
    r = await callback(wc, fake)
    assert r.status_code == 200 and r.text == "success"
    await eventually(lambda: len(fake.texts_to(a)) == 2 and len(fake.texts_to(b)) == 1)
    assert fake.texts_to(a) == ["echo:hello", "echo:thanks"] and fake.texts_to(b) == ["echo:where is my parcel"]
    assert sorted(c["text"] for c in wc.bot.calls) == ["hello", "thanks", "where is my parcel"]
    assert fake.sync_calls >= 2  # pages of two
    # The same callback again, and a fetch from the start (a lost cursor): nothing is answered twice.
    await callback(wc, fake)
    await wc.app.state.redis.delete(keys.channel_sync_cursor("wecom", fake.open_kfid))
    await callback(wc, fake)
    await asyncio.sleep(0.6)
    assert len(wc.bot.calls) == 3 and fake.texts_to(a) == ["echo:hello", "echo:thanks"]


@pytest.mark.parametrize("change, status", [({"msg_signature": ""}, 401), ({"msg_signature": "0" * 40}, 403)])
async def test_forged_or_missing_signature_is_refused_and_nothing_fetched(wc, fake, change, status) -> None:
    fake.customer_says(user(), "hello")
    assert (await callback(wc, fake, **change)).status_code == status
    await asyncio.sleep(0.2)
    assert fake.sync_calls == 0 and wc.bot.calls == []


async def test_a_callback_for_another_corp_or_without_encrypt_is_a_400(wc, fake) -> None:
    other = FakeWeCom(corp_id="ww_other_corp_0000", token=fake.token, aes_key=fake.aes_key)
    query, body = other.callback()
    assert (await wc.post(URL, params=query, content=body)).status_code == 400
    query, _ = fake.callback()
    assert (await wc.post(URL, params=query, content=b"<xml><ToUserName>x</ToUserName></xml>")).status_code == 400
    assert (await wc.post(URL, params=query, content=b"<!DOCTYPE x [<!ENTITY a 'b'>]><xml/>")).status_code == 400
    assert fake.sync_calls == 0


async def test_buttons_become_a_menu_and_a_click_is_the_payload(wc, fake) -> None:
    u = user()
    fake.customer_says(u, "hi")
    await callback(wc, fake)
    await eventually(lambda: fake.texts_to(u))
    menu = [m for m in fake.sent if m["touser"] == u][0]
    assert menu["msgtype"] == "msgmenu" and menu["msgmenu"]["head_content"] == "echo:hi"
    assert menu["msgmenu"]["list"] == [{"type": "click", "click": {"id": "/request_human",
                                                                   "content": "Talk to a person"}}]
    fake.customer_says(u, "Talk to a person", menu_id="/request_human")
    await callback(wc, fake)
    await eventually(lambda: len(wc.bot.calls) == 2)
    assert wc.bot.calls[-1]["text"] == "/request_human"  # an offered payload: passes as a command


async def test_an_ended_session_is_taken_back_and_a_servicers_session_is_left_alone(wc, fake) -> None:
    ended, taken = user(), user()
    fake.customer_says(ended, "hello again")
    fake.customer_says(taken, "hello")
    fake.states[ended], fake.states[taken] = 4, 3
    await callback(wc, fake)
    await eventually(lambda: fake.texts_to(ended))
    assert (ended, 1) in fake.trans
    cid = await wc.app.state.redis.get(keys.channel_user("wecom", f"{fake.open_kfid}:{taken}"))

    async def dead_letter():
        for _, fields in await wc.app.state.redis.xrange(keys.outbox_dead()):
            if fields[b"conversation_id"] == cid:
                return fields
        return None

    fields = await eventually(dead_letter)
    assert b"session state 3" in fields[b"error"] and fake.texts_to(taken) == []


async def test_an_unfetchable_image_gets_a_polite_answer_and_a_stale_token_is_replaced(wc, fake) -> None:
    u = user()
    fake.customer_sends(u, "image")
    await callback(wc, fake)
    texts = await eventually(lambda: fake.texts_to(u))
    assert "文字" in texts[0] and wc.bot.calls == []
    fake.expire_tokens()
    fake.fail_next = 1
    fake.customer_says(u, "你好")
    await callback(wc, fake)
    await eventually(lambda: len(fake.texts_to(u)) == 2)
