"""Case library and search of past conversations (issue 17, item 3) in headless Chromium against the real stack: an
agent closes a conversation and marks it as a model case (title with markup stays text, tags); a colleague finds it
by words (phone masked in the snippet) and by order number, opens the conversation read-only, and finds the case in
the library; the colleague's own open conversation is not found by the first agent; the panel follows zh/en."""
from __future__ import annotations

import uuid
from typing import Any

import pytest
from playwright.sync_api import Browser, expect
from redis import Redis

from conversations import keys
from tests.browser.test_agent_console import LAPTOP, TIMEOUT_MS, _send, chromium  # noqa: F401 - fixture
from tests.browser.test_agent_console_flow import _account, _handoff, _log_in

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def test_mark_a_model_case_and_find_it(stack: Any, chromium: Browser) -> None:  # noqa: F811
    expect.set_options(timeout=TIMEOUT_MS)
    errors: list[str] = []
    word = f"teapot{uuid.uuid4().hex[:6]}"  # a word only this conversation has
    order = f"DM28{uuid.uuid4().int % 10**8:08d}"
    alice = _account(stack, "agent", display_name="Alice Case")
    bob = _account(stack, "agent", display_name="Bob Search")
    customer_ctx = chromium.new_context(viewport={"width": 420, "height": 760}, locale="en-US")
    alice_ctx = chromium.new_context(viewport=LAPTOP, locale="en-US")
    bob_ctx = chromium.new_context(viewport=LAPTOP, locale="en-US")
    second_ctx = chromium.new_context(viewport={"width": 420, "height": 760}, locale="en-US")
    try:
        customer = customer_ctx.new_page()
        customer.on("pageerror", lambda exc: errors.append(f"chat: {exc}"))
        customer.goto(f"{stack.web_url}/")
        cid = _send(customer, f"the {word} of order {order} came cracked, call 13812345678")["conversation_id"]
        ours = _handoff(stack, cid, reason_code="complaint")

        console = alice_ctx.new_page()
        console.on("pageerror", lambda exc: errors.append(f"alice: {exc}"))
        _log_in(console, stack, alice)
        console.locator(f'#queue li[data-handoff-id="{ours}"]').click()
        console.locator("#claim").click()
        expect(console.locator("#reply-text")).to_be_enabled()
        console.locator("#reply-text").fill(f"So sorry about the {word}, a new one ships today.")
        console.locator("#reply-send").click()
        expect(console.locator("#transcript .msg--agent").last).to_contain_text("ships today")
        console.locator("#resolution").select_option("resolved")
        expect(console.locator("#complaint-type")).to_be_visible()  # a complaint is closed with its type
        console.locator("#complaint-type").select_option("product")
        console.locator("#close").click()
        expect(console.locator("#conv-status")).to_contain_text("closed")
        stored = Redis.from_url(stack.env()["REDIS_URL"]).hget(keys.handoff(ours), "complaint_type")
        assert stored == b"product"  # kept for the managers' complaint-type breakdown
        # Mark it as a model case from the context panel.
        console.locator("#case-details summary").click()
        console.locator("#case-title-input").fill("<b>Cracked teapot</b>: ship first")
        console.locator("#case-tags").fill("damaged, fast")
        console.locator("#case-note").fill("Apologise, ship the replacement the same day.")
        console.locator("#case-save").click()
        expect(console.locator("#case-message")).to_have_text("Saved in the case library.")

        other = bob_ctx.new_page()
        other.on("pageerror", lambda exc: errors.append(f"bob: {exc}"))
        _log_in(other, stack, bob)
        other.keyboard.press("/")  # the keyboard way into the search
        expect(other.locator("#search-q")).to_be_focused()
        other.keyboard.type(f"{word} cracked")
        other.keyboard.press("Enter")
        results = other.locator("#search-results li")
        expect(results).to_have_count(1)
        expect(results.first).to_contain_text("closed (resolved)")
        expect(results.first).to_contain_text("model case")
        expect(results.first.locator(".search-result__snippet")).to_contain_text(word)
        assert "13812345678" not in results.first.inner_text()  # masked as in the console
        other.locator("#search-q").fill(order)
        other.locator("#search-go").click()
        expect(results).to_have_count(1)
        results.first.locator("button").click()
        dialog = other.locator("#case-view")
        expect(dialog).to_be_visible()
        expect(dialog.locator(".msg--agent")).to_contain_text("ships today")
        expect(dialog.locator(".msg--customer").first).to_contain_text(word)
        assert "13812345678" not in dialog.inner_text()
        dialog.locator("#case-view-close").click()

        # The case library: title with markup shown as text, tags, the note.
        other.locator("#search-scope").select_option("cases")
        other.locator("#search-q").fill("ship first")
        other.locator("#search-go").click()
        expect(results).to_have_count(1)
        expect(results.first).to_contain_text("<b>Cracked teapot</b>: ship first · damaged, fast")
        assert results.first.locator("b").count() == 0
        results.first.locator("button").click()
        expect(dialog.locator("#case-view-note")).to_have_text("Apologise, ship the replacement the same day.")
        expect(dialog.locator("#case-view-meta")).to_contain_text("Alice Case")
        dialog.locator("#case-view-close").click()

        # Bob's own open conversation is not found by Alice.
        second = second_ctx.new_page()
        second.goto(f"{stack.web_url}/")
        cid2 = _send(second, f"one more {word} question")["conversation_id"]
        assert cid2 != cid
        theirs = _handoff(stack, cid2, reason_code="explicit_request")
        other.locator(f'#queue li[data-handoff-id="{theirs}"]').click()
        other.locator("#claim").click()
        expect(other.locator("#conv-status")).to_contain_text("claimed")
        console.locator("#search-scope").select_option("conversations")
        console.locator("#search-q").fill(f"{word} question")
        console.locator("#search-go").click()
        expect(console.locator("#search-status")).to_have_text("Nothing found.")

        # On a phone the search and its results fit the screen; so does the viewer.
        other.set_viewport_size({"width": 390, "height": 844})
        other.locator("#search-scope").select_option("conversations")
        other.locator("#search-q").fill(word)
        other.locator("#search-go").click()
        expect(results.first).to_be_visible()
        assert other.evaluate("() => document.getElementById('search-section').getBoundingClientRect().right") <= 391
        results.first.locator("button").click()
        expect(dialog).to_be_visible()
        assert other.evaluate("() => document.getElementById('case-view').getBoundingClientRect().right") <= 391
        dialog.locator("#case-view-close").click()

        console.locator("#ui-lang").select_option("zh")
        expect(console.locator("#search-title")).to_have_text("搜索与案例库")
        expect(console.locator("#search-go")).to_have_text("搜索")
        assert errors == []
    finally:
        customer_ctx.close()
        alice_ctx.close()
        bob_ctx.close()
        second_ctx.close()
