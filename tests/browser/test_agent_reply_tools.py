"""Macros, the agent's typing line, read state and customer photos (issue 17) in headless Chromium against the real
stack (the shared ``stack`` fixture), with the customer's page and the console open at once: a supervisor writes a
shared macro in the console, inserts it with the keyboard (m, type, Enter), the variable without a value is flagged
and blocks sending until replaced; the customer sees "<name> is typing…" and "Read"; a photo the customer sends is
shown to them and, behind the desk session, to the agent."""
from __future__ import annotations

import re
import struct
import zlib
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.test_agent_console import LAPTOP, TIMEOUT_MS, _send, chromium  # noqa: F401 - fixture
from tests.browser.test_agent_console_flow import _account, _handoff, _log_in

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def _png(width: int = 8, height: int = 8) -> bytes:
    """A real (decodable) PNG, made without an imaging library."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + b"\xc2\x5e\x00" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_macros_typing_read_and_photos(stack: Any, chromium: Browser) -> None:  # noqa: F811
    expect.set_options(timeout=TIMEOUT_MS)
    errors: list[str] = []
    supervisor = _account(stack, "supervisor", display_name="Wen Li")
    customer_ctx = chromium.new_context(viewport={"width": 420, "height": 760}, locale="en-US")
    agent_ctx = chromium.new_context(viewport=LAPTOP, locale="en-US")
    try:
        customer = customer_ctx.new_page()
        customer.on("pageerror", lambda exc: errors.append(f"chat: {exc}"))
        customer.goto(f"{stack.web_url}/")
        conversation_id = _send(customer, "the vase arrived broken")["conversation_id"]
        ours = _handoff(stack, conversation_id, reason_code="complaint")

        agent = agent_ctx.new_page()
        agent.on("pageerror", lambda exc: errors.append(f"console: {exc}"))
        _log_in(agent, stack, supervisor)

        # A shared macro written in the console (markup in it stays text).
        agent.locator("#macro-manager summary").click()
        agent.locator("#macro-scope").select_option("shared")
        agent.locator("#macro-title-en").fill("<i>Damaged</i> parcel")
        agent.locator("#macro-text-en").fill("Sorry {customer_name}! I'm {agent_name}; please send a photo.")
        agent.locator("#macro-title-zh").fill("包裹破损")
        agent.locator("#macro-text-zh").fill("很抱歉！我是{agent_name}，请发一张照片。")
        agent.locator("#macro-save").click()
        expect(agent.locator("#macro-message")).to_contain_text("Saved")
        expect(agent.locator("#macro-own li")).to_contain_text(["<i>Damaged</i> parcel (shared)"])
        assert agent.locator("#macro-own i").count() == 0

        # Open and claim the conversation with the keyboard; the customer's message shows as read.
        card = agent.locator(f'#queue li[data-handoff-id="{ours}"]')
        card.focus()
        agent.keyboard.press("Enter")
        expect(agent.locator("#conv-status")).to_have_text("queued")
        agent.keyboard.press("c")
        expect(agent.locator("#reply-text")).to_be_focused()
        expect(customer.locator("#messages .msg--customer.msg--read .msg__read").first).to_have_text("Read")

        # m -> search -> Enter inserts the macro filled for this conversation (English, my name); the name the
        # conversation does not know is flagged, selected, and blocks sending until replaced.
        agent.keyboard.press("Escape")
        agent.keyboard.press("m")
        expect(agent.locator("#macro-search")).to_be_focused()
        agent.keyboard.type("damaged")
        expect(agent.locator("#macros li")).to_have_count(1)
        agent.keyboard.press("Enter")
        box = agent.locator("#reply-text")
        expect(box).to_have_value("Sorry {customer_name}! I'm Wen Li; please send a photo.")
        expect(agent.locator("#macro-missing")).to_contain_text("{customer_name}")
        expect(box).to_be_focused()
        assert agent.evaluate("() => { const b = document.getElementById('reply-text');"
                              " return b.value.slice(b.selectionStart, b.selectionEnd); }") == "{customer_name}"
        agent.keyboard.press("Enter")  # refused: the placeholder is still there
        expect(agent.locator("#action-error")).to_contain_text("{customer_name}")
        expect(agent.locator("#transcript .msg--agent")).to_have_count(0)
        # Typing over the selected placeholder: the customer sees the agent typing.
        agent.keyboard.type("Ms Zhang")
        expect(customer.locator(".agent-typing")).to_have_text("Wen Li is typing…")
        agent.keyboard.press("Enter")
        sent = "Sorry Ms Zhang! I'm Wen Li; please send a photo."
        expect(agent.locator("#transcript .msg--agent .msg__text").last).to_have_text(sent)
        expect(customer.locator("#messages .msg--agent .msg__bubble").last).to_have_text(sent)
        expect(customer.locator(".agent-typing")).to_have_count(0)  # the message replaces the typing line

        # The customer sends a photo: shown on their page and, behind the session, in the console.
        expect(customer.locator("#photo")).to_be_visible()
        with customer.expect_response(lambda r: r.url.split("?")[0].endswith("/photos")) as upload:
            customer.locator("#photo-input").set_input_files(
                files=[{"name": "vase.jpg", "mimeType": "image/png", "buffer": _png()}])
        assert upload.value.status == 200
        mine = customer.locator("#messages .msg--customer img.msg__photo")
        expect(mine).to_have_count(1)
        customer.wait_for_function("() => { const i = document.querySelector('#messages img.msg__photo');"
                                   " return i && i.complete && i.naturalWidth === 8; }")
        seen = agent.locator("#transcript .msg--customer img.msg__photo")
        expect(seen).to_have_count(1)
        agent.wait_for_function("() => { const i = document.querySelector('#transcript img.msg__photo');"
                                " return i && i.complete && i.naturalWidth === 8; }")
        # Read again once it reached the agent's open console.
        expect(customer.locator("#messages .msg--customer").last).to_have_class(re.compile(r"\bmsg--read\b"))

        # A file that is not a photo is refused on the page, nothing is sent.
        customer.locator("#photo-input").set_input_files(
            files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}])
        expect(customer.locator("#messages .msg--system").last).to_contain_text("Only JPEG, PNG or WebP")
        expect(mine).to_have_count(1)
        assert errors == [], errors
    finally:
        customer_ctx.close()
        agent_ctx.close()
