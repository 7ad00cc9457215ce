"""Account management and routing (issue 17, item 4) in headless Chromium against the real stack: a supervisor sets
an agent's languages, skills and concurrency in the console; the agent's "Take next for me" skips an older waiting
conversation in another language and takes the VIP one that matches, then stops at the concurrency limit; a
disabled colleague's open console falls back to the login and cannot log in again until enabled."""
from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.browser.test_agent_console import LAPTOP, TIMEOUT_MS, _send, chromium  # noqa: F401 - fixture
from tests.browser.test_agent_console_flow import PASSWORD, _account, _handoff, _log_in

pytestmark = [pytest.mark.browser, pytest.mark.e2e]
RARE_REASON = "sensitive_media"  # no other browser test queues it: "take next" sees only this test's handoffs


def test_supervisor_sets_skills_and_take_next_follows(stack: Any, chromium: Browser) -> None:  # noqa: F811
    expect.set_options(timeout=TIMEOUT_MS)
    errors: list[str] = []
    boss = _account(stack, "supervisor", display_name="Boss Acc")
    agent_name = _account(stack, "agent", display_name="Zh Agent")
    other = _account(stack, "agent", display_name="To Disable")
    contexts = [chromium.new_context(viewport=LAPTOP, locale="en-US") for _ in range(3)]
    customer_ctx = chromium.new_context(viewport={"width": 420, "height": 760}, locale="en-US")
    second_ctx = chromium.new_context(viewport={"width": 420, "height": 760}, locale="zh-CN")
    third_ctx = chromium.new_context(viewport={"width": 420, "height": 760}, locale="zh-CN")
    try:
        customer = customer_ctx.new_page()
        customer.goto(f"{stack.web_url}/")
        english = _handoff(stack, _send(customer, "someone from the press called me")["conversation_id"],
                           reason_code=RARE_REASON, language="en", priority=2)
        second = second_ctx.new_page()  # another customer
        second.goto(f"{stack.web_url}/")
        cid = _send(second, "记者联系我了")["conversation_id"]
        vip = _handoff(stack, cid, reason_code=RARE_REASON, language="zh", priority=2,
                       customer={"id": None, "tier": "gold", "verified": True})
        third = third_ctx.new_page()
        third.goto(f"{stack.web_url}/")
        regular = _handoff(stack, _send(third, "媒体要报道")["conversation_id"], reason_code=RARE_REASON,
                           language="zh", priority=2)

        supervisor = contexts[0].new_page()
        supervisor.on("pageerror", lambda exc: errors.append(f"boss: {exc}"))
        _log_in(supervisor, stack, boss)
        victim = contexts[2].new_page()
        victim.on("pageerror", lambda exc: errors.append(f"victim: {exc}"))
        _log_in(victim, stack, other)

        supervisor.locator("#manage-accounts summary").click()
        item = supervisor.locator(f'#account-admin li[data-username="{agent_name}"]')
        expect(item).to_be_visible()
        item.locator('input[name="max_concurrent"]').fill("1")
        item.locator(f'input[name="skills"][value="{RARE_REASON}"]').check()
        item.locator('input[name="languages"][value="zh"]').check()
        item.locator('button[data-action="save"]').click()
        expect(supervisor.locator("#account-admin-message")).to_have_text(f"Saved {agent_name}.")
        item = supervisor.locator(f'#account-admin li[data-username="{agent_name}"]')
        expect(item.locator(f'input[name="skills"][value="{RARE_REASON}"]')).to_be_checked()

        # Disable a colleague: their console drops to the login at its next request; they cannot log in.
        supervisor.locator(f'#account-admin li[data-username="{other}"] button[data-action="toggle"]').click()
        expect(supervisor.locator(f'#account-admin li[data-username="{other}"]')).to_contain_text("disabled")
        victim.reload()
        expect(victim.locator("#login-username")).to_be_visible()
        r = httpx.post(f"{stack.web_url}/api/agent/login", json={"username": other, "password": PASSWORD},
                       timeout=30)
        assert r.status_code == 401

        agent = contexts[1].new_page()
        agent.on("pageerror", lambda exc: errors.append(f"agent: {exc}"))
        _log_in(agent, stack, agent_name)
        agent.locator("#take-next").click()
        expect(agent.locator("#conv-status")).to_contain_text("claimed")
        assert agent.url.endswith(f"#{vip}")  # the Chinese VIP, not the older English one
        expect(customer.locator("#messages")).not_to_contain_text("Zh Agent")
        agent.keyboard.press("Escape")
        agent.keyboard.press("t")  # the keyboard way: t = take next
        expect(agent.locator("#take-next-message")).to_contain_text("Concurrency limit")
        # The others wait: the regular Chinese one for the next free hand, the English one for an English speaker.
        expect(agent.locator(f'#queue li[data-handoff-id="{english}"]')).to_have_count(1)
        expect(agent.locator(f'#queue li[data-handoff-id="{regular}"]')).to_have_count(1)
        assert errors == []
    finally:
        for context in contexts:
            context.close()
        customer_ctx.close()
        second_ctx.close()
        third_ctx.close()
