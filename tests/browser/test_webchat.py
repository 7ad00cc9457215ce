"""Browser tests for the customer web chat (channels/static/webchat) served by the gateway.

They drive Debian's Chromium through Playwright against the `stack` fixture (its `.web_url` is the gateway
base URL). Bot wording is never asserted: only that the contract is honoured and the page behaves. Routes are
intercepted (page.route) only to produce situations a healthy stack will not: a 500, a quick-reply row, an agent
message. Set WEBCHAT_SCREENSHOT_DIR=docs/screenshots to refresh the screenshots in the docs.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, Request, Response, Route, expect, sync_playwright

CHROMIUM_PATH = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
pytestmark = [pytest.mark.browser, pytest.mark.e2e]

SCREENSHOT_DIR_ENV = "WEBCHAT_SCREENSHOT_DIR"
PHONE = {"width": 375, "height": 667}
DESKTOP = {"width": 1280, "height": 800}
# A real Rasa turn can take a few seconds on a loaded 2-core machine.
TIMEOUT_MS = 20_000
POLL_WAIT_MS = 8_000

STORAGE_CONVERSATION = "webchat.conversation_id"
STORAGE_LANG = "webchat.lang"
MESSAGES_ROUTE = re.compile(r".*/api/webchat/messages$")
HISTORY_ROUTE = re.compile(r".*/api/webchat/conversations/[^/]+/messages\?.*")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
CJK_RE = re.compile(r"[\u4e00-\u9fff]")
TIME_RE = re.compile(r"\d{1,2}:\d{2}")
MAX_CHARS = 2000
# Payload of an intent every deployment of this bot has (intents are fixed in the project brief).
GREET_PAYLOAD = "/greet"

CUSTOMER_BUBBLES = "#messages .msg--customer .msg__bubble"
BOT_MESSAGES = "#messages .msg--bot"
ERROR_BUBBLE = "#messages .error-bubble"


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """One browser for this module; each test gets its own context (fresh localStorage). Module-scoped like the
    other browser modules' fixture: two live sync_playwright instances in one thread refuse to start."""
    if not Path(CHROMIUM_PATH).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM_PATH} (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM_PATH, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def web_url(stack: Any) -> str:
    return str(stack.web_url).rstrip("/")


@pytest.fixture
def open_chat(chromium: Browser, web_url: str) -> Iterator[Callable[..., Page]]:
    """Factory: opens the chat in a new context with the given viewport/locale; fails the test on JS errors."""
    contexts = []
    page_errors: list[str] = []

    def _open(viewport: dict[str, int] = DESKTOP, locale: str = "en-US", mobile: bool = False) -> Page:
        context = chromium.new_context(viewport=viewport, locale=locale, is_mobile=mobile, has_touch=mobile)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: page_errors.append(str(exc)))
        page.goto(f"{web_url}/")
        expect(page.locator("#input")).to_be_visible()
        return page

    yield _open
    for context in contexts:
        context.close()
    assert page_errors == [], f"uncaught JavaScript errors: {page_errors}"


@pytest.fixture(autouse=True)
def _expect_timeout() -> None:
    expect.set_options(timeout=TIMEOUT_MS)


# ---------------------------------------------------------------- helpers


def is_send(request: Request) -> bool:
    return request.method == "POST" and MESSAGES_ROUTE.match(request.url) is not None


def is_send_response(response: Response) -> bool:
    return is_send(response.request)


def type_and_send(page: Page, text: str) -> None:
    box = page.locator("#input")
    box.fill(text)
    box.press("Enter")


def send_and_wait_for_reply(page: Page, text: str) -> dict[str, Any]:
    """Sends `text`, waits for the POST answer and for its bot messages to be on screen; returns the JSON."""
    with page.expect_response(is_send_response) as response_info:
        type_and_send(page, text)
    response = response_info.value
    assert 200 <= response.status < 300, response.text()
    body = response.json()
    for message in body["messages"]:
        expect(page.locator(f'#messages [data-id="{message["id"]}"]')).to_have_count(1)
    return body


def stored(page: Page, key: str) -> str | None:
    return page.evaluate("(key) => window.localStorage.getItem(key)", key)


def save_screenshot(page: Page, name: str) -> None:
    """Screenshots for the docs are only written when asked for, so normal runs leave the tree untouched."""
    target = os.environ.get(SCREENSHOT_DIR_ENV)
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(target) / name))


def watch_typing_indicator(page: Page) -> None:
    """Records whether the typing indicator was ever inserted; it may be gone before a poll could see it."""
    page.evaluate(
        """() => {
            window.__typingSeen = false;
            const list = document.getElementById('messages');
            new MutationObserver(() => {
                if (list.querySelector('[data-typing]')) { window.__typingSeen = true; }
            }).observe(list, {childList: true});
        }"""
    )


# ---------------------------------------------------------------- tests


def test_hello_gets_a_bot_reply_with_contract_request_and_stored_conversation(open_chat: Callable[..., Page]) -> None:
    page = open_chat()
    watch_typing_indicator(page)

    with page.expect_request(is_send) as request_info:
        body = send_and_wait_for_reply(page, "hello")
    sent = request_info.value.post_data_json

    assert sent["conversation_id"] is None
    assert UUID_RE.match(sent["message_id"])
    assert sent["text"] == "hello"
    assert sent["metadata"] == {"ui_lang": "en"}

    expect(page.locator(CUSTOMER_BUBBLES)).to_have_text(["hello"])
    bot = page.locator(BOT_MESSAGES)
    assert bot.count() >= 1, "the bot answered nothing"
    first_text = next(m["text"] for m in body["messages"] if m["text"])
    expect(bot.first.locator(".msg__bubble")).to_have_text(first_text)
    expect(bot.first.locator("time.msg__time")).to_have_text(TIME_RE)
    expect(page.locator("#messages .msg--customer time.msg__time")).to_have_text(TIME_RE)
    expect(page.locator("#welcome")).to_be_hidden()

    assert page.evaluate("window.__typingSeen") is True
    expect(page.locator("[data-typing]")).to_have_count(0)
    assert stored(page, STORAGE_CONVERSATION) == body["conversation_id"]

    # The second message continues the same conversation.
    with page.expect_request(is_send) as second_info:
        send_and_wait_for_reply(page, "thanks")
    assert second_info.value.post_data_json["conversation_id"] == body["conversation_id"]


def test_quick_reply_sends_payload_shows_title_and_disables_row(open_chat: Callable[..., Page]) -> None:
    page = open_chat()
    buttons = [
        {"title": "Say hello", "payload": GREET_PAYLOAD},
        {"title": "Something else", "payload": "/out_of_scope"},
    ]

    decorated: list[str] = []

    def add_buttons(route: Route) -> None:
        # Real reply from the stack, with a quick-reply row added so the test does not depend on bot content.
        response = route.fetch()
        data = response.json()
        data["messages"][-1]["buttons"] = buttons
        decorated.append(data["messages"][-1]["id"])
        route.fulfill(response=response, json=data)

    page.route(MESSAGES_ROUTE, add_buttons)
    send_and_wait_for_reply(page, "hello")
    page.unroute(MESSAGES_ROUTE)

    rows = page.locator("#messages .quick-replies")
    expect(rows.last.get_by_role("button")).to_have_text(["Say hello", "Something else"])
    # Pin this row: the bot's answer to the click may bring a quick-reply row of its own (which would be `.last`).
    row = rows.nth(rows.count() - 1)
    bots_before = page.locator(BOT_MESSAGES).count()

    with page.expect_request(is_send) as request_info:
        row.get_by_role("button", name="Say hello").click()
    assert request_info.value.post_data_json["text"] == GREET_PAYLOAD

    expect(page.locator(CUSTOMER_BUBBLES).last).to_have_text("Say hello")
    for button in row.get_by_role("button").all():
        expect(button).to_be_disabled()
    expect(row.get_by_role("button", name="Say hello")).to_have_attribute("aria-pressed", "true")
    page.wait_for_function(
        "(n) => document.querySelectorAll('#messages .msg--bot').length > n", arg=bots_before, timeout=TIMEOUT_MS
    )

    # After a reload the history holds the payload as the customer's text; the page shows the title again.
    def add_buttons_to_history(route: Route) -> None:
        response = route.fetch()
        data = response.json()
        for message in data["messages"]:
            if message["id"] in decorated:
                message["buttons"] = buttons
        route.fulfill(response=response, json=data)

    page.route(HISTORY_ROUTE, add_buttons_to_history)
    page.reload()
    expect(page.locator(CUSTOMER_BUBBLES)).to_have_text(["hello", "Say hello"])
    reloaded_row = page.locator(f'#messages [data-id="{decorated[0]}"] .quick-replies')
    expect(reloaded_row.get_by_role("button")).to_have_text(["Say hello", "Something else"])
    for button in reloaded_row.get_by_role("button").all():
        expect(button).to_be_disabled()


def test_reload_keeps_the_conversation_history(open_chat: Callable[..., Page]) -> None:
    page = open_chat()
    body = send_and_wait_for_reply(page, "hello")
    bubbles = page.locator("#messages .msg:not(.msg--local) .msg__bubble")
    before = bubbles.all_text_contents()
    assert before[0] == "hello" and len(before) >= 2

    with page.expect_response(lambda r: HISTORY_ROUTE.match(r.url) is not None) as history_info:
        page.reload()
    assert history_info.value.status == 200
    assert f"/conversations/{body['conversation_id']}/messages" in history_info.value.url

    expect(bubbles).to_have_text(before)
    assert stored(page, STORAGE_CONVERSATION) == body["conversation_id"]
    expect(page.locator("#messages .msg--bot time.msg__time").first).to_have_text(TIME_RE)


def test_polling_does_not_duplicate_the_customers_own_message(open_chat: Callable[..., Page]) -> None:
    page = open_chat()
    # The gateway normalises blanks before storing, so its copy differs from what the page showed.
    send_and_wait_for_reply(page, "hello    there\t friend")
    with page.expect_response(lambda r: HISTORY_ROUTE.match(r.url) is not None, timeout=POLL_WAIT_MS) as poll_info:
        pass
    history = poll_info.value.json()["messages"]
    assert [m["role"] for m in history].count("customer") == 1
    expect(page.locator("#messages .msg--customer")).to_have_count(1)
    bot_ids = [m["id"] for m in history if m["role"] == "bot"]
    for bot_id in bot_ids:
        expect(page.locator(f'#messages [data-id="{bot_id}"]')).to_have_count(1)


def test_new_conversation_control_clears_history_and_stored_id(open_chat: Callable[..., Page]) -> None:
    page = open_chat()
    first = send_and_wait_for_reply(page, "hello")

    page.get_by_role("button", name="Start a new conversation").click()
    expect(page.locator("#messages .msg")).to_have_count(0)
    expect(page.locator("#welcome")).to_be_visible()
    assert stored(page, STORAGE_CONVERSATION) is None

    page.reload()
    expect(page.locator("#input")).to_be_visible()
    expect(page.locator("#messages .msg")).to_have_count(0)

    with page.expect_request(is_send) as request_info:
        second = send_and_wait_for_reply(page, "hello")
    assert request_info.value.post_data_json["conversation_id"] is None
    assert second["conversation_id"] != first["conversation_id"]


def test_phone_viewport_has_no_horizontal_overflow_and_input_stays_visible(
    open_chat: Callable[..., Page],
) -> None:
    page = open_chat(viewport=PHONE, mobile=True)
    send_and_wait_for_reply(page, "hello")
    send_and_wait_for_reply(page, "where is my order DM2026110512?")
    save_screenshot(page, "webchat-mobile.png")
    long_word = "https://example.com/" + "x" * 300
    send_and_wait_for_reply(page, f"{long_word}\nsecond line")
    send_and_wait_for_reply(page, "我想查询一下我的订单到哪里了，谢谢" * 6)

    sizes = page.evaluate(
        """() => ({
            scrollWidth: document.documentElement.scrollWidth,
            bodyScrollWidth: document.body.scrollWidth,
            innerWidth: window.innerWidth,
            listScrollWidth: document.getElementById('messages').scrollWidth,
            listClientWidth: document.getElementById('messages').clientWidth,
            widestBubbleRight: Math.max(...[...document.querySelectorAll('.msg__bubble')]
                .map((el) => el.getBoundingClientRect().right)),
        })"""
    )
    assert sizes["innerWidth"] == PHONE["width"]
    assert sizes["scrollWidth"] <= PHONE["width"], sizes
    assert sizes["bodyScrollWidth"] <= PHONE["width"], sizes
    assert sizes["listScrollWidth"] <= sizes["listClientWidth"], sizes
    assert sizes["widestBubbleRight"] <= PHONE["width"], sizes

    box = page.locator("#input").bounding_box()
    send_box = page.locator("#send").bounding_box()
    assert box is not None and send_box is not None
    assert box["y"] + box["height"] <= PHONE["height"]
    # The composer sits at the bottom of the screen even though the history is longer than the screen.
    assert box["y"] >= PHONE["height"] - 120, box
    assert send_box["x"] + send_box["width"] <= PHONE["width"]
    expect(page.locator("#input")).to_be_in_viewport()
    chat_box = page.locator("#chat").bounding_box()
    assert chat_box is not None and chat_box["width"] == PHONE["width"]


def test_desktop_shows_a_centred_card(open_chat: Callable[..., Page]) -> None:
    page = open_chat(viewport=DESKTOP)
    send_and_wait_for_reply(page, "hello")
    send_and_wait_for_reply(page, "How long does delivery take?\n我想退货")
    card = page.locator("#chat").bounding_box()
    assert card is not None
    assert card["width"] < DESKTOP["width"] / 2
    left_gap = card["x"]
    right_gap = DESKTOP["width"] - (card["x"] + card["width"])
    assert abs(left_gap - right_gap) <= 2, card
    assert card["y"] + card["height"] <= DESKTOP["height"]
    save_screenshot(page, "webchat-desktop.png")


def test_markup_in_a_message_is_shown_as_text(open_chat: Callable[..., Page]) -> None:
    page = open_chat()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    payload = "<img src=x onerror=alert(1)>"

    send_and_wait_for_reply(page, payload)
    expect(page.locator(CUSTOMER_BUBBLES)).to_have_text([payload])
    assert page.locator("#messages img").count() == 0

    page.reload()
    expect(page.locator(CUSTOMER_BUBBLES)).to_have_text([payload])
    assert page.locator("#messages img").count() == 0
    assert dialogs == []


def test_agent_message_arrives_by_polling_with_label_and_as_text(open_chat: Callable[..., Page]) -> None:
    page = open_chat()
    send_and_wait_for_reply(page, "hello")
    agent_text = "<script>window.__pwned = 1</script>\nSecond line from a person"
    injected = {"done": False}

    def add_agent_message(route: Route) -> None:
        response = route.fetch()
        data = response.json()
        if not injected["done"]:
            injected["done"] = True
            # Put it first so the page's `after` cursor still ends on a message id the real server knows.
            # Stream-id shaped (as the gateway's ids are) so a later `after=` cursor stays valid.
            agent = {"id": "1-1", "role": "agent", "text": agent_text, "buttons": [], "ts": time.time()}
            data["messages"] = [agent, *data["messages"]]
        route.fulfill(response=response, json=data)

    page.route(HISTORY_ROUTE, add_agent_message)
    agent = page.locator("#messages .msg--agent")
    expect(agent).to_have_count(1, timeout=POLL_WAIT_MS)  # no reload: the 3 s poll brought it
    page.unroute(HISTORY_ROUTE)

    expect(agent.locator(".msg__label")).to_have_text("Agent")
    expect(agent.locator(".msg__bubble")).to_have_text(agent_text)
    assert agent.locator(".msg__bubble").evaluate("(el) => el.innerText.includes('\\n')") is True
    assert page.locator("#messages script").count() == 0
    assert page.evaluate("window.__pwned") is None

    page.get_by_role("button", name=re.compile("切换到中文")).click()
    expect(agent.locator(".msg__label")).to_have_text(CJK_RE)


def test_chinese_toggle_translates_ui_and_is_sent_and_remembered(open_chat: Callable[..., Page]) -> None:
    page = open_chat(locale="en-US")
    box = page.locator("#input")
    english_placeholder = box.get_attribute("placeholder")
    assert english_placeholder and not CJK_RE.search(english_placeholder)

    page.get_by_role("button", name=re.compile("切换到中文")).click()
    expect(box).to_have_attribute("placeholder", CJK_RE)
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("#new-conversation")).to_have_text(CJK_RE)
    assert stored(page, STORAGE_LANG) == "zh"

    with page.expect_request(is_send) as request_info:
        send_and_wait_for_reply(page, "你好")
    assert request_info.value.post_data_json["metadata"] == {"ui_lang": "zh"}

    page.reload()
    expect(box).to_have_attribute("placeholder", CJK_RE)

    page.get_by_role("button", name=re.compile("Switch to English")).click()
    expect(box).to_have_attribute("placeholder", english_placeholder)


def test_browser_language_chinese_picks_chinese_ui(open_chat: Callable[..., Page]) -> None:
    page = open_chat(locale="zh-CN")
    expect(page.locator("#input")).to_have_attribute("placeholder", CJK_RE)
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")


def test_server_error_shows_error_bubble_and_retry_reuses_message_id(open_chat: Callable[..., Page]) -> None:
    page = open_chat()
    failed_bodies: list[dict[str, Any]] = []

    def fail(route: Route) -> None:
        failed_bodies.append(json.loads(route.request.post_data or "{}"))
        route.fulfill(status=500, json={"detail": "simulated outage"})

    page.route(MESSAGES_ROUTE, fail)
    type_and_send(page, "hello")

    error = page.locator(ERROR_BUBBLE)
    expect(error).to_be_visible()
    expect(error).to_contain_text("Message not sent")
    expect(error).to_contain_text("simulated outage")
    expect(page.locator("#messages .msg--customer.msg--failed")).to_have_count(1)
    expect(page.locator("[data-typing]")).to_have_count(0)
    assert len(failed_bodies) == 1

    page.unroute(MESSAGES_ROUTE)
    with page.expect_response(is_send_response) as response_info:
        error.get_by_role("button", name="Retry sending this message").click()
    retried = response_info.value.request.post_data_json
    assert retried["message_id"] == failed_bodies[0]["message_id"]
    assert retried["text"] == "hello"
    assert response_info.value.status == 200

    expect(error).to_have_count(0)
    expect(page.locator("#messages .msg--failed")).to_have_count(0)
    expect(page.locator(BOT_MESSAGES).first).to_be_visible()
    expect(page.locator(CUSTOMER_BUBBLES)).to_have_text(["hello"])


def test_network_failure_shows_error_bubble(open_chat: Callable[..., Page]) -> None:
    page = open_chat()
    page.route(MESSAGES_ROUTE, lambda route: route.abort("connectionrefused"))
    type_and_send(page, "hello")
    expect(page.locator(ERROR_BUBBLE)).to_contain_text("Network problem")
    expect(page.locator(ERROR_BUBBLE).get_by_role("button", name="Retry sending this message")).to_be_visible()


def test_composer_limits_length_and_shift_enter_adds_a_line(open_chat: Callable[..., Page]) -> None:
    page = open_chat()
    box = page.locator("#input")
    counter = page.locator("#counter")
    send_button = page.get_by_role("button", name="Send message")

    expect(counter).to_have_text(f"0/{MAX_CHARS}")
    expect(send_button).to_be_disabled()
    box.fill("a" * (MAX_CHARS + 100))
    assert len(box.input_value()) == MAX_CHARS
    expect(counter).to_have_text(f"{MAX_CHARS}/{MAX_CHARS}")
    expect(send_button).to_be_enabled()

    sent: list[str] = []
    page.on("request", lambda request: sent.append(request.url) if is_send(request) else None)
    box.fill("")
    box.type("line one")
    box.press("Shift+Enter")
    box.type("line two")
    assert box.input_value() == "line one\nline two"
    assert sent == []

    with page.expect_request(is_send) as request_info:
        box.press("Enter")
    assert request_info.value.post_data_json["text"] == "line one\nline two"
    bubble = page.locator(CUSTOMER_BUBBLES).last
    expect(bubble).to_have_text("line one\nline two")
    assert bubble.evaluate("(el) => getComputedStyle(el).whiteSpace") == "pre-wrap"
    assert bubble.evaluate("(el) => el.getClientRects()[0].height > 1.8 * parseFloat(getComputedStyle(el).lineHeight)")
    expect(box).to_have_value("")
    expect(counter).to_have_text(f"0/{MAX_CHARS}")


def test_page_is_labelled_for_assistive_technology(open_chat: Callable[..., Page]) -> None:
    page = open_chat()
    log = page.locator("#messages")
    expect(log).to_have_attribute("aria-live", "polite")
    expect(log).to_have_attribute("role", "log")
    expect(page.get_by_label("Your message")).to_be_visible()
    for name in ("Send message", "Start a new conversation", re.compile("切换到中文")):
        expect(page.get_by_role("button", name=name)).to_have_count(1)
