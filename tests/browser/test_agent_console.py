"""The agent console (handoff/static/agent) end to end in headless Chromium against the real stack.

Story: a customer chats with the bot in the web chat and gets angry; the escalation opens a handoff (the bot's
action_handoff_to_human may already have done so; the test's own POST /internal/handoffs then returns that same
open handoff, which also checks idempotency against the real action); the conversation appears in the agent's
queue with its reason and context; the agent claims it and replies; the customer sees the reply live; the agent
hands back and the bot answers the next question. Set WEBCHAT_SCREENSHOT_DIR=docs/screenshots for screenshots.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from bot.shared.paths import REPO_ROOT

CHROMIUM_PATH = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
pytestmark = [pytest.mark.browser, pytest.mark.e2e]
ROOT = REPO_ROOT
TIMEOUT_MS = 20_000
LAPTOP = {"width": 1366, "height": 768}
PASSWORD = "agent-console-test-pw"  # noqa: S105 - throw-away account in a throw-away Redis


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    if not Path(CHROMIUM_PATH).exists():
        pytest.skip(f"Chromium not found at {CHROMIUM_PATH}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM_PATH, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def agent_account(stack: Any) -> str:
    """Created the way an operator does it: the admin command against the stack's Redis."""
    username = f"alex{int(time.time())}"
    env = {**stack.env(), "HANDOFF_ADMIN_PASSWORD": PASSWORD}
    done = subprocess.run([sys.executable, "-m", "handoff.admin", "create-supervisor", "--username", username],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return username


def _screenshot(page: Page, name: str) -> None:
    target = os.environ.get("WEBCHAT_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(target) / name))


def _send(page: Page, text: str) -> dict:
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/api/webchat/messages")) as info:
        page.locator("#input").fill(text)
        page.locator("#input").press("Enter")
    assert info.value.status == 200
    return info.value.json()


def test_customer_to_agent_and_back_to_the_bot(stack: Any, chromium: Browser, agent_account: str) -> None:
    expect.set_options(timeout=TIMEOUT_MS)
    errors: list[str] = []
    customer_ctx = chromium.new_context(viewport={"width": 420, "height": 760}, locale="en-US")
    agent_ctx = chromium.new_context(viewport=LAPTOP, locale="en-US")
    try:
        customer = customer_ctx.new_page()
        customer.on("pageerror", lambda exc: errors.append(f"chat: {exc}"))
        customer.goto(f"{stack.web_url}/")
        _send(customer, "hello")
        angry = "This is ridiculous!!! Third time asking, where is my refund for DM2026110512?"
        first = _send(customer, angry)
        conversation_id = first["conversation_id"]

        # The escalation (action_handoff_to_human in production) opens the handoff.
        r = httpx.post(f"{stack.web_url}/internal/handoffs", headers={"X-Internal-Token": stack.internal_token},
                       json={"conversation_id": conversation_id, "channel": "webchat",
                             "reason_code": "high_frustration", "priority": 2, "language": "en",
                             "customer": {"id": None, "tier": "gold", "verified": False},
                             "frustration": {"score": 86, "curve": [{"ts": 1, "score": 20}, {"ts": 2, "score": 86}]},
                             "signals": {"exclamations": 3}, "summary": None}, timeout=30)
        assert r.status_code == 200, r.text
        handoff = r.json()
        assert handoff["handoff_id"]

        agent = agent_ctx.new_page()
        agent.on("pageerror", lambda exc: errors.append(f"console: {exc}"))
        agent.goto(stack.agent_url)
        agent.get_by_label("Username").fill(agent_account)
        agent.get_by_label("Password").fill(PASSWORD)
        agent.get_by_role("button", name="Log in").click()
        expect(agent.locator("#live-status")).to_have_text("live")

        item = agent.locator(f'#queue li[data-handoff-id="{handoff["handoff_id"]}"]')
        expect(item).to_have_count(1)
        reason = item.get_attribute("data-reason")
        # Ours, or the bot's own escalation of the angry message if it came first.
        assert reason in ("high_frustration", "complaint"), reason
        expect(item.locator(".reason")).to_have_text(reason)
        expect(item.locator(".prio")).to_have_text(re.compile(r"^P[1-4]$"))
        expect(item.locator(".wait")).to_have_text(re.compile(r"^\d+(s|m \d+s)$"))
        item.click()
        expect(agent.locator("#context-summary")).to_contain_text(f"Escalated: {reason}")
        expect(agent.locator("#context-identifiers")).to_contain_text("DM2026110512")
        expect(agent.locator("#frustration-svg polyline")).to_have_count(1)
        expect(agent.locator("#transcript .msg--customer .msg__text").last).to_have_text(angry)
        _screenshot(agent, "agent-console-queue.png")

        agent.get_by_role("button", name="Claim").click()
        expect(agent.locator("#conv-status")).to_contain_text("claimed by")
        expect(agent.locator("#mine li")).to_have_count(1)

        # While waiting/owned the bot stays silent; the customer's messages reach the agent live.
        _send(customer, "hello?? is anyone there")
        expect(agent.locator("#transcript .msg--customer .msg__text").last).to_have_text("hello?? is anyone there")

        reply = "<b>Hi</b>, I'm Alex. Sorry about this - I'm checking your refund right now."
        agent.locator("#reply-text").fill(reply)
        sent_at = time.monotonic()
        agent.get_by_role("button", name="Send").click()
        customer_agent = customer.locator("#messages .msg--agent .msg__bubble")
        expect(customer_agent).to_have_text(reply, timeout=5_000)
        shown_after = time.monotonic() - sent_at
        assert customer.locator("#messages b").count() == 0, "agent text was parsed as HTML"
        assert shown_after < 3.0, f"agent reply took {shown_after:.2f}s to reach the customer"
        _screenshot(agent, "agent-console-conversation.png")
        _screenshot(customer, "webchat-agent-reply.png")

        agent.get_by_role("button", name="Hand back to bot").click()
        expect(agent.locator("#conv-status")).to_have_text("handed_back")
        body = _send(customer, "what is your return policy?")
        assert any(m["role"] == "bot" for m in body["messages"]), body
        expect(customer.locator(f'#messages [data-id="{body["messages"][-1]["id"]}"]')).to_have_count(1)
        assert errors == [], errors
    finally:
        customer_ctx.close()
        agent_ctx.close()
