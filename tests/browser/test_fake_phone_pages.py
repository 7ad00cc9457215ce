"""The fake phone pages (tools/fake_phones, `FAKE_PHONES=1 make run`) in headless Chromium.

A real gateway (uvicorn on a loopback port, real Redis, its Telegram/WhatsApp/WeChat channels on with the demo
settings of tools/fake_phones/demo.py) whose bot is a stub answering "echo:<text>" with a "Talk to a person" button,
and the fake phones' server on its own port (the gateway's platform API bases point at it). The newcomer types on
the Telegram phone, sees the bot's reply with its inline keyboard, taps the button (a signed callback_query reaches
the bot as the payload); on WhatsApp taps a reply button; on WeChat taps a numbered line of the text menu (the number
is sent, the bot gets the payload). A reply carrying markup stays text.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, expect

from channels.app import create_app as create_gateway
from channels.settings import ChannelSettings
from conversations.settings import GatewaySettings
from tests.browser.test_agent_console import chromium  # noqa: F401 - the module-scoped browser fixture
from tests.channels.conftest import RecordingBot
from tests.processes import free_port
from tools.fake_phones.demo import base_url, demo_env
from tools.fake_phones.server import create_app as create_phones

pytestmark = [pytest.mark.browser]
TIMEOUT_MS = 20_000
PHONE = {"width": 420, "height": 800}
HOSTILE = "<img src=x onerror=window.__xss=1>"


class Served:
    """An ASGI app under uvicorn in a thread (lifespan on), on a loopback port."""

    def __init__(self, app: Any, port: int) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, name=f"served-{port}", daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture(scope="module")
def phones(redis_url: str) -> Iterator[dict[str, Any]]:
    phones_port, gateway_port = free_port(), free_port()
    env = demo_env(["telegram", "whatsapp", "wechat"], phones_port, environ={})
    channel_settings = ChannelSettings(outbox_backoff_s=0.05, outbox_poll_s=0.05,
                                       **{k.lower(): v for k, v in env.items()})
    gateway = create_gateway(GatewaySettings(redis_url=redis_url), channel_settings)
    bot = RecordingBot()
    default = bot.reply
    bot.reply = lambda text: [{"text": HOSTILE}] if text == "markup" else default(text)
    gateway_url = f"http://127.0.0.1:{gateway_port}"
    with Served(gateway, gateway_port):
        gateway.state.rasa = bot  # the bot stub instead of Rasa (set once the lifespan made the real client)
        with Served(create_phones(channel_settings, gateway_url, base_url(phones_port)), phones_port):
            yield {"url": base_url(phones_port), "bot": bot}


def open_phone(browser: Browser, phones: dict[str, Any], platform: str) -> Page:
    expect.set_options(timeout=TIMEOUT_MS)
    page = browser.new_context(viewport=PHONE, locale="en-US").new_page()
    page.goto(f"{phones['url']}/phone/{platform}")
    return page


def type_message(page: Page, text: str) -> None:
    page.get_by_label("Message").fill(text)
    page.get_by_label("Message").press("Enter")


def bot_texts(bot: RecordingBot) -> list[str]:
    return [c["text"] for c in bot.calls]


def test_telegram_phone_shows_the_reply_and_taps_the_inline_keyboard(chromium: Browser,  # noqa: F811
                                                                     phones: dict[str, Any]) -> None:
    page = open_phone(chromium, phones, "telegram")
    expect(page.get_by_test_id("title")).to_have_text("Telegram · Store bot")
    type_message(page, "Where is my parcel?")
    bot_messages = page.locator("[data-testid=msg-bot]")
    expect(bot_messages.first).to_contain_text("echo:Where is my parcel?")
    keyboard = bot_messages.first.locator(".buttons.inline_keyboard button")
    expect(keyboard).to_have_text(["Talk to a person"])
    assert "Where is my parcel?" in bot_texts(phones["bot"])

    keyboard.click()
    expect(page.locator("[data-testid=msg-customer]").last).to_have_text("Talk to a person")
    expect(bot_messages.nth(1)).to_contain_text("echo:/request_human")
    assert "/request_human" in bot_texts(phones["bot"])  # the callback_query's data, signed by the fake

    type_message(page, "markup")  # a reply carrying markup is shown as text, never run
    expect(bot_messages.nth(2)).to_have_text(HOSTILE)
    assert page.evaluate("window.__xss") is None
    expect(page.get_by_test_id("status")).to_have_text("")
    page.context.close()


def test_telegram_start_button_greets_in_the_apps_language(chromium: Browser,  # noqa: F811
                                                            phones: dict[str, Any]) -> None:
    page = open_phone(chromium, phones, "telegram")
    page.get_by_label("app language").select_option("zh")
    calls_before = len(phones["bot"].calls)
    page.get_by_role("button", name="START").click()  # a new chat's START sends /start with language_code zh
    expect(page.locator("[data-testid=msg-customer]").first).to_have_text("/start")
    expect(page.locator("[data-testid=msg-bot]").first).to_contain_text("echo:你好")
    assert bot_texts(phones["bot"])[calls_before:] == ["你好"]  # the gateway's greeting in the user's language
    expect(page.get_by_role("button", name="START")).to_have_count(0)
    page.context.close()


def test_whatsapp_phone_taps_a_reply_button(chromium: Browser, phones: dict[str, Any]) -> None:  # noqa: F811
    page = open_phone(chromium, phones, "whatsapp")
    type_message(page, "hi from whatsapp")
    reply = page.locator("[data-testid=msg-bot]").first
    expect(reply).to_contain_text("echo:hi from whatsapp")
    calls_before = len(phones["bot"].calls)
    reply.locator(".buttons.reply_buttons button", has_text="Talk to a person").click()
    expect(page.locator("[data-testid=msg-bot]").nth(1)).to_contain_text("echo:/request_human")
    assert bot_texts(phones["bot"])[calls_before:] == ["/request_human"]
    page.context.close()


def test_wechat_phone_taps_a_line_of_the_text_menu(chromium: Browser, phones: dict[str, Any]) -> None:  # noqa: F811
    page = open_phone(chromium, phones, "wechat")
    type_message(page, "你好")
    reply = page.locator("[data-testid=msg-bot]").first
    expect(reply).to_contain_text("echo:你好")  # the passive reply, decrypted (safe mode)
    calls_before = len(phones["bot"].calls)
    reply.locator("button.menu-line", has_text="1. Talk to a person").click()
    expect(page.locator("[data-testid=msg-customer]").last).to_have_text("1")
    expect(page.locator("[data-testid=msg-bot]").nth(1)).to_contain_text("echo:/request_human")
    assert bot_texts(phones["bot"])[calls_before:] == ["/request_human"]
    page.context.close()
