"""The console's layout and flow (issue 17) in headless Chromium against the real stack: my conversations above
the queue, queue filters with live counts, the open conversation kept across a reload, the transcript opened at
its newest message, a keyboard-only run of claim -> reply -> hand back, the zh/en switch, the phone layout
(no horizontal overflow at 390 px), button taps shown as the customer saw them, the same frustration number on
the card and the panel, internal notes shown as text, and the customer's page showing the agent's name and the
"joined" notice."""
from __future__ import annotations

import re
import subprocess
import sys
import time
import uuid
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.test_agent_console import LAPTOP, ROOT, TIMEOUT_MS, _send, chromium  # noqa: F401 - fixture

pytestmark = [pytest.mark.browser, pytest.mark.e2e]
PASSWORD = "agent-console-flow-pw"  # noqa: S105 - throw-away account in a throw-away Redis


def _account(stack: Any, role: str, display_name: str | None = None) -> str:
    username = f"{role[:3]}{uuid.uuid4().hex[:8]}"
    env = {**stack.env(), "HANDOFF_ADMIN_PASSWORD": PASSWORD}
    command = [sys.executable, "-m", "handoff.admin", f"create-{role}", "--username", username]
    if display_name:
        command += ["--display-name", display_name]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return username


def _handoff(stack: Any, conversation_id: str, **overrides: Any) -> str:
    body = {"conversation_id": conversation_id, "channel": "webchat", "reason_code": "explicit_request",
            "priority": 3, "language": "en", "customer": {"id": None, "tier": "regular", "verified": False},
            "frustration": {"score": 41, "curve": [{"ts": 1, "score": 20}, {"ts": 2, "score": 55}]},
            "signals": {}, "summary": None, **overrides}
    r = httpx.post(f"{stack.web_url}/internal/handoffs", headers={"X-Internal-Token": stack.internal_token},
                   json=body, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["handoff_id"]


def _log_in(page: Page, stack: Any, username: str) -> None:
    page.goto(stack.agent_url)
    page.locator("#login-username").fill(username)
    page.locator("#login-password").fill(PASSWORD)
    page.locator("#login-password").press("Enter")
    expect(page.locator("#live-status")).to_have_attribute("data-state", "live")


def test_layout_filters_reload_keyboard_language_and_phone(stack: Any, chromium: Browser) -> None:  # noqa: F811
    expect.set_options(timeout=TIMEOUT_MS)
    errors: list[str] = []
    agent_name = _account(stack, "supervisor", display_name="Mei Lin")
    customer_ctx = chromium.new_context(viewport={"width": 420, "height": 760}, locale="en-US")
    agent_ctx = chromium.new_context(viewport=LAPTOP, locale="en-US")
    try:
        customer = customer_ctx.new_page()
        customer.on("pageerror", lambda exc: errors.append(f"chat: {exc}"))
        customer.goto(f"{stack.web_url}/")
        _send(customer, "hello")
        # a button the bot showed, tapped by the customer: the console must show its title, not the payload
        buttons = customer.locator("#messages .msg--bot button")
        tapped_title = None
        if buttons.count():
            tapped_title = buttons.first.inner_text().strip()
            with customer.expect_response(lambda r: r.url.endswith("/api/webchat/messages")):
                buttons.first.click()
        first = _send(customer, "what is your return policy?")
        conversation_id = first["conversation_id"]
        ours = _handoff(stack, conversation_id, reason_code="complaint", priority=2,
                        frustration={"score": 63, "curve": [{"ts": 1, "score": 30}, {"ts": 2, "score": 77}]})
        for i in range(12):  # stored while queued (the bot is silent): the console must open at the newest one
            _send(customer, f"still waiting {i} " + "lorem ipsum " * 8)
        # other customers waiting: one in Chinese, one in English with another reason
        others = []
        for lang, reason in (("zh", "high_frustration"), ("en", "explicit_request")):
            text = "你好" if lang == "zh" else "hi there"
            r = httpx.post(f"{stack.web_url}/api/webchat/messages", timeout=60,
                           json={"conversation_id": None, "message_id": uuid.uuid4().hex, "text": text})
            assert r.status_code == 200, r.text
            others.append(_handoff(stack, r.json()["conversation_id"], language=lang, reason_code=reason))

        agent = agent_ctx.new_page()
        agent.on("pageerror", lambda exc: errors.append(f"console: {exc}"))
        _log_in(agent, stack, agent_name)

        # My conversations comes first, then the queue.
        mine_box = agent.locator("#mine-title").bounding_box()
        queue_box = agent.locator("#queue-title").bounding_box()
        assert mine_box and queue_box and mine_box["y"] < queue_box["y"]

        card = agent.locator(f'#queue li[data-handoff-id="{ours}"]')
        expect(card).to_have_count(1)
        total = agent.locator("#queue li").count()
        assert total >= 3
        # Filters with live counts: Chinese only shows the Chinese case, and the option says how many there are.
        zh_option = agent.locator('#filter-language option[value="zh"]')
        zh_count = int(re.search(r"\((\d+)\)", zh_option.inner_text()).group(1))
        assert zh_count >= 1
        agent.locator("#filter-language").select_option("zh")
        expect(agent.locator("#queue li")).to_have_count(zh_count)
        expect(agent.locator(f'#queue li[data-handoff-id="{others[0]}"]')).to_have_count(1)
        expect(agent.locator("#queue-count")).to_have_text(f"{zh_count}/{total}")
        agent.locator("#filter-language").select_option("")
        reason = card.get_attribute("data-reason")  # ours, or the bot's own escalation if it came first
        agent.locator("#filter-reason").select_option(reason)
        expect(card).to_have_count(1)
        if reason != "explicit_request":
            expect(agent.locator(f'#queue li[data-handoff-id="{others[1]}"]')).to_have_count(0)
        agent.locator("#filter-reason").select_option("")
        expect(agent.locator("#queue li")).to_have_count(total)

        # Keyboard only: focus the card, open it with Enter.
        card.focus()
        agent.keyboard.press("Enter")
        expect(agent.locator("#conv-reason")).to_contain_text(reason)
        # Transcript opens at the newest message.
        expect(agent.locator("#transcript .msg--customer .msg__text").last).to_contain_text("still waiting 11")
        agent.wait_for_function("""() => { const t = document.getElementById('transcript');
            return t.scrollTop + t.clientHeight >= t.scrollHeight - 4; }""")  # at the newest (if it overflows)
        # Same frustration number on the card and in the panel.
        score = card.get_attribute("data-frustration")
        expect(agent.locator('#context-customer dd[data-fact="frustration"]')).to_have_text(f"{score} / 100")
        expect(card.locator(".frus")).to_have_text(f"frustration {score}")
        # Attempts in words, no action names; no raw slots outside the supervisor's debug toggle.
        expect(agent.locator("#context-summary")).not_to_contain_text("action_")
        expect(agent.locator("#context-identifiers")).not_to_contain_text("session_started_metadata")
        expect(agent.locator("#debug")).to_be_visible()  # a supervisor
        expect(agent.locator("#debug")).not_to_contain_text("session_started_metadata")
        if tapped_title:
            expect(agent.locator("#transcript .msg--tap .msg__text").first).to_have_text(tapped_title)
        payloads = agent.evaluate("""() => Array.from(
            document.querySelectorAll('#transcript .msg--customer .msg__text'))
            .map((n) => n.textContent).filter((t) => t.startsWith('/'))""")
        assert payloads == [], payloads

        # The open conversation survives a reload (URL hash + sessionStorage).
        agent.reload()
        expect(agent.locator("#live-status")).to_have_attribute("data-state", "live")
        expect(agent.locator("#conv-reason")).to_contain_text(reason)
        assert agent.url.endswith(f"#{ours}")

        # Keyboard only: c claims (focus moves to the reply box), Ctrl+Enter sends, Esc leaves the box, h hands back.
        agent.keyboard.press("c")
        expect(agent.locator("#conv-status")).to_have_text("claimed by Mei Lin")
        expect(agent.locator(f'#mine li[data-handoff-id="{ours}"]')).to_have_count(1)
        expect(agent.locator("#reply-text")).to_be_focused()
        expect(customer.locator("#messages .msg--system").last).to_contain_text("Mei Lin joined the conversation")
        reply = "<b>Hello</b>, Mei here - checking DM2026110512 now."
        agent.keyboard.type(reply)
        agent.keyboard.press("Control+Enter")
        expect(agent.locator("#transcript .msg--agent .msg__text").last).to_have_text(reply)
        shown = customer.locator("#messages .msg--agent").last
        expect(shown.locator(".msg__bubble")).to_have_text(reply)
        expect(shown.locator(".msg__label")).to_have_text("Mei Lin")
        assert customer.locator("#messages b").count() == 0
        agent.keyboard.press("Escape")
        agent.keyboard.press("h")
        expect(agent.locator("#conv-status")).to_have_text("handed_back")

        # An internal note with markup is shown as text, never to the customer.
        note = "<i>VIP</i> - promised a call back"
        agent.locator("#note-text").fill(note)
        agent.locator("#note-text").press("Control+Enter")
        expect(agent.locator("#notes .note__text")).to_have_text([note])
        assert agent.locator("#notes i").count() == 0
        expect(customer.locator("#messages")).not_to_contain_text("promised a call back")
        agent.keyboard.press("Escape")

        # j moves to the next card in the queue and opens it.
        agent.keyboard.press("j")
        expect(agent.locator("#queue li.selected")).to_have_count(1)
        expect(agent.locator("#queue li.selected")).to_be_focused()

        # zh/en switch: every console string from one dictionary.
        agent.locator("#ui-lang").select_option("zh")
        expect(agent.locator("#mine-title")).to_contain_text("我的对话")
        expect(agent.locator("#queue-title")).to_contain_text("排队中")
        expect(agent.get_by_role("button", name="退出")).to_be_visible()
        expect(agent.locator("html")).to_have_attribute("lang", "zh-CN")
        agent.reload()
        expect(agent.locator("#mine-title")).to_contain_text("我的对话")
        agent.locator("#ui-lang").select_option("en")
        expect(agent.locator("#mine-title")).to_contain_text("My conversations")

        # Phone layout: nothing overflows sideways at 390 px.
        agent.set_viewport_size({"width": 390, "height": 844})
        time.sleep(0.3)
        width = agent.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 390, f"horizontal overflow on a phone: {width}px"
        expect(agent.locator("#mine-title")).to_be_visible()
        assert errors == [], errors
    finally:
        customer_ctx.close()
        agent_ctx.close()
