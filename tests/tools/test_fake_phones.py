"""The fake phones (tools/fake_phones): deliveries signed as each platform would, replies with the platform's buttons,
bad input, and the refusals that keep them a local demo. A real gateway app on a real Redis; the bot is a stub."""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from limits import parse

from bot.shared.paths import REPO_ROOT as ROOT
from channels.settings import ChannelSettings
from conversations import keys
from conversations.store import ChatMessage
from tests.channels.conftest import RecordingBot, eventually, gateway
from tests.processes import free_port
from tools.fake_phones import server
from tools.fake_phones.__main__ import main as phones_main
from tools.fake_phones.demo import CHANNEL_VARIABLES, FakePhonesRefused, base_url, chosen, demo_env
from tools.fake_phones.server import NotLocal, create_app

PORT = 18010
BASE = base_url(PORT)
GATEWAY = "http://127.0.0.1:18000"
# Every run its own users: the tests share one Redis (and the gateway's conversations live there).
TELEGRAM_USER = str(secrets.randbelow(9 * 10**8) + 10**8)
WHATSAPP_USER = "1555" + str(secrets.randbelow(9 * 10**6) + 10**6)
WECHAT_USER = "o" + secrets.token_hex(13)


def settings(platforms: list[str]) -> ChannelSettings:
    env = demo_env(platforms, PORT, environ={})
    return ChannelSettings(outbox_backoff_s=0.05, outbox_poll_s=0.05, **{k.lower(): v for k, v in env.items()})


@asynccontextmanager
async def phones(redis_url: str, platforms: list[str], bot: RecordingBot | None = None,
                 gateway_up: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    """The phones app and a gateway app wired to each other in process (each calls the other over ASGI)."""
    channel_settings = settings(platforms)
    app = create_app(channel_settings, GATEWAY, BASE)
    async with gateway(redis_url, channel_settings, {p: app for p in platforms}, bot) as gw, \
            app.router.lifespan_context(app):
        await app.state.http.aclose()
        app.state.http = (httpx.AsyncClient(transport=httpx.ASGITransport(app=gw.app), base_url=GATEWAY) if gateway_up
                          else httpx.AsyncClient(base_url="http://127.0.0.1:9", timeout=2))  # nobody listens on 9
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
            client.bot = gw.bot  # type: ignore[attr-defined]
            client.phones = app.state.phones  # type: ignore[attr-defined]
            client.gateway = gw.app  # type: ignore[attr-defined]
            yield client


async def chat_of(client: httpx.AsyncClient, platform: str, user: str, wanted: int) -> list[dict[str, Any]]:
    async def enough() -> list[dict[str, Any]] | None:
        r = await client.get(f"/phone/api/{platform}/messages", params={"user": user})
        assert r.status_code == 200, r.text
        messages = r.json()["messages"]
        return messages if len([m for m in messages if m["side"] == "bot"]) >= wanted else None
    return await eventually(enough, timeout_s=10)


# ------------------------------------------------------------------------------------------- the three platforms

async def test_telegram_message_reaches_the_bot_and_the_inline_keyboard_taps(redis_url: str) -> None:
    async with phones(redis_url, ["telegram"]) as client:
        r = await client.post("/phone/api/telegram/send", json={"user": TELEGRAM_USER, "text": "hello"})
        assert r.status_code == 200 and r.json() == {"gateway_status": 200}
        assert client.bot.calls[-1]["text"] == "hello"  # type: ignore[attr-defined]
        messages = await chat_of(client, "telegram", TELEGRAM_USER, 1)
        assert [m["side"] for m in messages] == ["customer", "bot"]
        reply = messages[1]
        assert reply["text"] == "echo:hello" and reply["style"] == "inline_keyboard"
        assert reply["buttons"] == [{"title": "Talk to a person", "data": "/request_human"}]

        r = await client.post("/phone/api/telegram/tap", json={"user": TELEGRAM_USER, "data": "/request_human"})
        assert r.status_code == 200, r.text
        assert client.bot.calls[-1]["text"] == "/request_human"  # type: ignore[attr-defined]
        messages = await chat_of(client, "telegram", TELEGRAM_USER, 2)
        assert messages[2] == {**messages[2], "side": "customer", "text": "Talk to a person"}
        # Another phone sees none of it.
        r = await client.get("/phone/api/telegram/messages", params={"user": "987654321"})
        assert r.json() == {"messages": []}


async def test_whatsapp_reply_buttons_and_list_and_a_signed_tap(redis_url: str) -> None:
    bot = RecordingBot()
    many = [{"title": f"Choice number {i}", "payload": f"/pick{{\"n\":{i}}}"} for i in range(5)]
    bot.reply = lambda text: ([{"text": "pick one", "buttons": many}] if text == "list" else
                              [{"text": f"echo:{text}", "buttons": [{"title": "Yes", "payload": "/affirm"},
                                                                     {"title": "No", "payload": "/deny"}]}])
    async with phones(redis_url, ["whatsapp"], bot) as client:
        r = await client.post("/phone/api/whatsapp/send", json={"user": WHATSAPP_USER, "text": "hi there"})
        assert r.status_code == 200, r.text
        reply = (await chat_of(client, "whatsapp", WHATSAPP_USER, 1))[-1]
        assert reply["style"] == "reply_buttons"
        assert reply["buttons"] == [{"title": "Yes", "data": "/affirm"}, {"title": "No", "data": "/deny"}]
        r = await client.post("/phone/api/whatsapp/tap", json={"user": WHATSAPP_USER, "data": "/deny"})
        assert r.status_code == 200, r.text
        assert bot.calls[-1]["text"] == "/deny"

        await client.post("/phone/api/whatsapp/send", json={"user": WHATSAPP_USER, "text": "list"})
        listed = (await chat_of(client, "whatsapp", WHATSAPP_USER, 3))[-1]
        assert listed["style"] == "list" and listed["label"] == "Options" and len(listed["buttons"]) == 5
        r = await client.post("/phone/api/whatsapp/tap", json={"user": WHATSAPP_USER,
                                                              "data": listed["buttons"][3]["data"]})
        assert r.status_code == 200 and bot.calls[-1]["text"] == '/pick{"n":3}'


async def test_wechat_safe_mode_passive_reply_is_decrypted_and_the_text_menu_answers_with_a_number(
        redis_url: str) -> None:
    async with phones(redis_url, ["wechat"]) as client:
        r = await client.post("/phone/api/wechat/send", json={"user": WECHAT_USER, "text": "你好 ]]> <b>"})
        assert r.status_code == 200, r.text
        assert client.bot.calls[-1]["text"] == "你好 ]]> <b>"  # type: ignore[attr-defined]  (CDATA kept intact)
        reply = (await chat_of(client, "wechat", WECHAT_USER, 1))[-1]
        assert reply["text"].startswith("echo:你好") and reply["style"] == "text_menu"
        assert reply["buttons"] == [{"title": "Talk to a person", "data": "1"}]
        r = await client.post("/phone/api/wechat/tap", json={"user": WECHAT_USER, "data": "1"})
        assert r.status_code == 200, r.text
        assert client.bot.calls[-1]["text"] == "/request_human"  # type: ignore[attr-defined]  (the number's payload)
        messages = await chat_of(client, "wechat", WECHAT_USER, 2)
        assert [m["text"] for m in messages if m["side"] == "customer"] == ["你好 ]]> <b>", "1"]


async def test_wechat_slow_bot_answers_through_the_customer_service_api(redis_url: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "WECHAT_WAIT_S", 5.0)
    bot = RecordingBot()
    bot.delay_s = 0.3
    channel_settings = settings(["wechat"]).model_copy(update={"wechat_passive_window_s": 0.1})
    app = create_app(channel_settings, GATEWAY, BASE)
    async with gateway(redis_url, channel_settings, {"wechat": app}, bot) as gw, app.router.lifespan_context(app):
        await app.state.http.aclose()
        app.state.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=gw.app), base_url=GATEWAY)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
            user = "o" + secrets.token_hex(14)
            r = await client.post("/phone/api/wechat/send", json={"user": user, "text": "slow"})
            assert r.status_code == 200
            reply = (await chat_of(client, "wechat", user, 1))[-1]  # via custom/send of the fake API
            assert reply["text"].startswith("echo:slow") and reply["buttons"][0]["data"] == "1"


async def test_an_agents_reply_and_the_csat_list_reach_the_whatsapp_phone(redis_url: str) -> None:
    async with phones(redis_url, ["whatsapp"]) as client:
        user = "1555" + str(secrets.randbelow(9 * 10**6) + 10**6)
        await client.post("/phone/api/whatsapp/send", json={"user": user, "text": "I want a person"})
        await chat_of(client, "whatsapp", user, 1)
        gw = client.gateway  # type: ignore[attr-defined]
        cid = (await gw.state.redis.get(keys.channel_user("whatsapp", user))).decode()
        # What the desk does (handoff/handoffs.py): it writes the conversation's stream; relay + outbox deliver.
        await gw.state.redis.set(keys.owner(cid), "agent:a1")
        await gw.state.store.append(cid, ChatMessage(role="agent", text="Hi, I'm Anna from support."), author="a1")
        stars = [{"title": "★" * n, "payload": f'/csat{{"stars":{n}}}'} for n in range(1, 6)]
        await gw.state.store.append(cid, ChatMessage(role="system", text="How would you rate the service?",
                                                     buttons=stars))
        messages = await chat_of(client, "whatsapp", user, 3)
        assert messages[2]["text"] == "Hi, I'm Anna from support."
        assert messages[3]["style"] == "list" and [b["data"] for b in messages[3]["buttons"]] == \
            [b["payload"] for b in stars]  # 5 choices: a WhatsApp list, not reply buttons
        calls = len(client.bot.calls)  # type: ignore[attr-defined]
        r = await client.post("/phone/api/whatsapp/tap", json={"user": user, "data": '/csat{"stars":5}'})
        assert r.status_code == 200
        assert len(client.bot.calls) == calls  # type: ignore[attr-defined]  (the agent owns it: not the bot's)


async def test_after_a_restart_the_same_phones_are_answered_again(redis_url: str) -> None:
    """make run's Redis outlives the fake phones: a restarted phone server (new demo credentials, same users in the
    browser's storage) must not repeat delivery ids the gateway already de-duplicated."""
    users = {"telegram": str(secrets.randbelow(9 * 10**8) + 10**8),
             "whatsapp": "1555" + str(secrets.randbelow(9 * 10**6) + 10**6), "wechat": "o" + secrets.token_hex(13)}
    for run in ("first", "second"):
        async with phones(redis_url, list(users)) as client:
            for platform, user in users.items():
                r = await client.post(f"/phone/api/{platform}/send", json={"user": user, "text": f"{run} run"})
                assert r.status_code == 200, r.text
                reply = (await chat_of(client, platform, user, 1))[-1]
                assert reply["text"].startswith(f"echo:{run} run"), (platform, reply)
            assert [c["text"] for c in client.bot.calls] == [f"{run} run"] * 3  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------------------------- bad input

async def test_bad_input_is_refused_and_nothing_reaches_the_bot(redis_url: str) -> None:
    async with phones(redis_url, ["telegram"]) as client:
        bot = client.bot  # type: ignore[attr-defined]
        send = "/phone/api/telegram/send"
        cases = [
            (send, {"user": "12", "text": "x"}, 400),  # not a Telegram id
            (send, {"user": "abc<script>", "text": "x"}, 400),
            (send, {"user": TELEGRAM_USER, "text": ""}, 422),
            (send, {"user": TELEGRAM_USER, "text": "   "}, 400),
            (send, {"user": TELEGRAM_USER, "text": "x" * 4097}, 422),
            (send, {"user": TELEGRAM_USER, "text": "x", "chat_id": 1}, 422),  # unknown field
            (send, {"user": TELEGRAM_USER, "text": "x", "language": "fr"}, 422),
            ("/phone/api/telegram/tap", {"user": TELEGRAM_USER, "data": "/request_human"}, 400),  # never shown
            ("/phone/api/whatsapp/send", {"user": WHATSAPP_USER, "text": "x"}, 404),  # not enabled
            ("/phone/api/signal/send", {"user": TELEGRAM_USER, "text": "x"}, 404),
        ]
        for path, body, status in cases:
            r = await client.post(path, json=body)
            assert r.status_code == status, (path, body, r.status_code, r.text)
        r = await client.post(send, content=json.dumps({"user": TELEGRAM_USER, "text": "x"}),
                              headers={"Content-Type": "text/plain"})  # a form a foreign page could send
        assert r.status_code == 422
        r = await client.post(send, content=b"{" + b" " * 20_000 + b"}", headers={"Content-Type": "application/json"})
        assert r.status_code == 413
        assert (await client.get("/phone/whatsapp")).status_code == 404
        assert (await client.get("/phone/static/../server.py")).status_code == 404
        assert (await client.get("/phone/api/telegram/messages", params={"user": "x"})).status_code == 400
        assert bot.calls == []


async def test_other_sites_and_other_host_names_are_refused(redis_url: str) -> None:
    async with phones(redis_url, ["telegram"]) as client:
        body = {"user": TELEGRAM_USER, "text": "hi"}
        r = await client.post("/phone/api/telegram/send", json=body, headers={"Origin": "https://evil.example"})
        assert r.status_code == 403
        r = await client.post("/phone/api/telegram/send", json=body, headers={"Origin": "http://127.0.0.1:9999"})
        assert r.status_code == 403
        r = await client.get("/phone/telegram", headers={"Host": "rebind.evil.example:18010"})  # DNS rebinding
        assert r.status_code == 400
        assert client.bot.calls == []  # type: ignore[attr-defined]
        r = await client.post("/phone/api/telegram/send", json=body, headers={"Origin": BASE})
        assert r.status_code == 200
        page = await client.get("/phone/telegram")
        assert page.status_code == 200 and 'data-platform="telegram"' in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        await chat_of(client, "telegram", TELEGRAM_USER, 1)  # nothing left in the shared outbox for the next test


async def test_a_flood_from_one_phone_is_limited(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "PHONE_LIMIT", parse("3/minute"))
    flooder, other_user = (str(secrets.randbelow(9 * 10**8) + 10**8) for _ in range(2))
    async with phones(redis_url, ["telegram"]) as client:
        statuses = [(await client.post("/phone/api/telegram/send",
                                       json={"user": flooder, "text": f"m{i}"})).status_code for i in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
        r = await client.post("/phone/api/telegram/send", json={"user": flooder, "text": "again"})
        assert int(r.headers["retry-after"]) >= 1
        assert len(client.bot.calls) == 3  # type: ignore[attr-defined]
        other = await client.post("/phone/api/telegram/send", json={"user": other_user, "text": "hi"})
        assert other.status_code == 200
        # Leave nothing in the shared outbox for the next test's gateway to deliver.
        await chat_of(client, "telegram", flooder, 3)
        await chat_of(client, "telegram", other_user, 1)


async def test_chats_kept_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "MAX_USERS", 3)
    monkeypatch.setattr(server, "MAX_MESSAGES", 2)
    chats = server.Chats()
    for user in ("a", "b", "c", "d"):
        for i in range(5):
            chats.add(user, "customer", str(i))
    assert list(chats.messages) == ["b", "c", "d"]
    assert [m["text"] for m in chats.after("d", 0)] == ["3", "4"]


async def test_what_the_fakes_keep_is_bounded_too(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "MAX_USERS", 2)
    async with phones(redis_url, ["telegram"]) as client:
        users = [str(secrets.randbelow(9 * 10**8) + 10**8) for _ in range(4)]
        for user in users:
            assert (await client.post("/phone/api/telegram/send", json={"user": user, "text": "hi"})).status_code == 200
        await chat_of(client, "telegram", users[-1], 1)
        phone = client.phones["telegram"]  # type: ignore[attr-defined]
        kept = list(phone.chats.messages)
        # Bounded, oldest first out. (Only the count and the order are ours to assert on: a reply still in the shared
        # outbox from an earlier test could legitimately arrive and take a place.)
        assert len(kept) == 2 and users[0] not in kept and users[1] not in kept and kept[-1] == users[-1]
        assert phone.fake.sent == [] and phone.fake.accepted_at == [] and phone.fake.calls == []


async def test_gateway_down_is_told_on_the_phone(redis_url: str) -> None:
    async with phones(redis_url, ["telegram"], gateway_up=False) as client:
        r = await client.post("/phone/api/telegram/send", json={"user": TELEGRAM_USER, "text": "hello"})
        assert r.status_code == 502 and "not reachable" in r.json()["detail"]
        messages = (await client.get("/phone/api/telegram/messages", params={"user": TELEGRAM_USER})).json()
        assert [m["side"] for m in messages["messages"]] == ["customer", "note"]


# ------------------------------------------------------------------------------------- local demo only: refusals

def test_fake_phones_refuse_a_non_loopback_address(capsys: pytest.CaptureFixture[str]) -> None:
    for host in ("0.0.0.0", "192.168.1.20", "::", "example.com"):  # noqa: S104 - the point of the test
        assert phones_main(["--host", host, "--port", "18011"]) == 2
        assert "loopback only" in capsys.readouterr().err


def test_fake_phones_refuse_a_remote_gateway_or_a_real_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    good = settings(["telegram", "whatsapp", "wechat"])
    assert set(create_app(good, GATEWAY, BASE).state.phones) == {"telegram", "whatsapp", "wechat"}
    with pytest.raises(NotLocal):
        create_app(good, "https://shop.example.com", BASE)
    with pytest.raises(NotLocal):
        create_app(good, GATEWAY, "http://0.0.0.0:18010")
    for field, real in (("telegram_api_base", "https://api.telegram.org"),
                        ("whatsapp_api_base", "https://graph.facebook.com/v21.0"),
                        ("wechat_api_base", "https://api.weixin.qq.com"),
                        ("telegram_api_base", "http://127.0.0.1:18010.evil.example/telegram")):
        with pytest.raises(NotLocal):
            create_app(good.model_copy(update={field: real}), GATEWAY, BASE)
    # Started from the command line with a real platform configured: refused before anything listens.
    for key, value in {"TELEGRAM_BOT_TOKEN": "1:real", "TELEGRAM_WEBHOOK_SECRET": "s" * 20}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("TELEGRAM_API_BASE", raising=False)
    assert phones_main(["--port", "18012"]) == 2


def test_fake_phones_setting() -> None:
    assert chosen("") == [] and chosen("0") == [] and chosen("off") == []
    assert chosen("1") == ["telegram", "whatsapp", "wechat"] and chosen("all") == chosen("1")
    assert chosen("WhatsApp, telegram") == ["telegram", "whatsapp"]
    for bad in ("signal", "telegram,sms", ","):
        with pytest.raises(FakePhonesRefused):
            chosen(bad)
    env = demo_env(["telegram", "wechat"], 8010, environ={})
    assert env["TELEGRAM_API_BASE"] == "http://127.0.0.1:8010/telegram" and "WHATSAPP_ACCESS_TOKEN" not in env
    assert env != demo_env(["telegram", "wechat"], 8010, environ={})  # fresh secrets every run
    enabled = ChannelSettings(**{k.lower(): v for k, v in env.items()})
    assert enabled.telegram_enabled and enabled.wechat_enabled and len(enabled.wechat_encoding_aes_key) == 43
    # A configured (possibly real) channel is never replaced: the launcher refuses to start.
    with pytest.raises(FakePhonesRefused, match="TELEGRAM_BOT_TOKEN"):
        demo_env(["telegram"], 8010, environ={"TELEGRAM_BOT_TOKEN": "123:real"})
    with pytest.raises(FakePhonesRefused, match="WECHAT_API_BASE"):
        demo_env(["wechat"], 8010, environ={"WECHAT_API_BASE": "https://api.weixin.qq.com"})


# ------------------------------------------------------------------------------------------- make run (the launcher)

def _without_channel_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for names in CHANNEL_VARIABLES.values():
        for name in names:
            monkeypatch.delenv(name, raising=False)


def test_make_run_starts_the_phones_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    from stack import Stack  # scripts/stack.py

    _without_channel_settings(monkeypatch)
    assert "phones" not in {s.name for s in Stack().services()}
    assert "TELEGRAM_BOT_TOKEN" not in Stack().env()
    stack = Stack(fake_phones=["telegram", "whatsapp"], phones_port=18013, web_port=18014)
    env = stack.env()
    assert env["TELEGRAM_API_BASE"] == "http://127.0.0.1:18013/telegram"
    assert env["WHATSAPP_API_BASE"] == "http://127.0.0.1:18013/whatsapp/v21.0" and "WECHAT_APP_ID" not in env
    assert stack.env()["TELEGRAM_BOT_TOKEN"] == env["TELEGRAM_BOT_TOKEN"]  # one set of demo secrets per run
    phones_service = {s.name: s for s in stack.services()}["phones"]
    assert phones_service.cmd[1:] == ["-m", "tools.fake_phones", "--host", "127.0.0.1", "--port", "18013",
                                      "--gateway", "http://127.0.0.1:18014"]


def test_make_run_refuses_fake_phones_next_to_a_configured_channel(monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import stack as launcher  # scripts/stack.py

    _without_channel_settings(monkeypatch)
    monkeypatch.setattr("sys.argv", ["stack.py"])
    monkeypatch.setenv("FAKE_PHONES", "1")
    monkeypatch.setenv("WHATSAPP_ACCESS_TOKEN", "EAAG-a-real-token")
    assert launcher.main() == 2  # before anything starts
    assert "WHATSAPP_ACCESS_TOKEN" in capsys.readouterr().err
    monkeypatch.setenv("FAKE_PHONES", "telegram,sms")
    assert launcher.main() == 2
    assert "unknown platform sms" in capsys.readouterr().err


def test_the_phones_process_serves_on_loopback(tmp_path: Any) -> None:
    phones_port = free_port()
    env = {**os.environ, **demo_env(["telegram"], phones_port, environ={}), "PYTHONPATH": str(ROOT)}
    for names in CHANNEL_VARIABLES.values():
        for name in names:
            if name not in demo_env(["telegram"], phones_port, environ={}):
                env.pop(name, None)
    proc = subprocess.Popen([sys.executable, "-m", "tools.fake_phones", "--port", str(phones_port),
                             "--gateway", "http://127.0.0.1:9"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"{base_url(phones_port)}/healthz", timeout=2)
                break
            except httpx.HTTPError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "fake phones did not start"
                time.sleep(0.2)
        assert health.json() == {"ok": True, "phones": ["telegram"]}
        assert httpx.get(f"{base_url(phones_port)}/phone/telegram").status_code == 200
        assert httpx.get(f"{base_url(phones_port)}/phone/wechat").status_code == 404
        r = httpx.post(f"{base_url(phones_port)}/phone/api/telegram/send",
                       json={"user": TELEGRAM_USER, "text": "hello"}, timeout=10)
        assert r.status_code == 502  # nobody listens where the gateway should be: told, not hidden
    finally:
        proc.terminate()
        proc.wait(timeout=10)
