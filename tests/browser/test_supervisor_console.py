"""The supervisor's side of the agent console in headless Chromium against the real stack: the alerts panel
(repeat complaints and group incidents written by the action server's own complaint tracker, SLA and
undelivered-handoff alerts of the desk) with acknowledge, and creating an agent account who then logs in."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from playwright.sync_api import Browser, Page, expect

from bot.shared.frustration import keys as complaint_keys
from bot.shared.frustration.complaints import ComplaintConfig, ComplaintTracker, ProblemKey
from tests.browser.test_agent_console import LAPTOP, ROOT, TIMEOUT_MS, chromium  # noqa: F401 - fixture

pytestmark = [pytest.mark.browser, pytest.mark.e2e]
PASSWORD = "supervisor-console-test-pw"  # noqa: S105 - throw-away account in a throw-away Redis


@pytest.fixture(scope="module")
def supervisor(stack: Any) -> str:
    username = f"sup{int(time.time())}"
    env = {**stack.env(), "HANDOFF_ADMIN_PASSWORD": PASSWORD}
    done = subprocess.run([sys.executable, "-m", "handoff.admin", "create-supervisor", "--username", username],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return username


@pytest.fixture
def stack_redis(stack: Any) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(stack.env()["REDIS_URL"])
    yield client
    client.close()


def _log_in(page: Page, stack: Any, username: str, password: str) -> None:
    page.goto(stack.agent_url)
    page.locator("#login-username").fill(username)
    page.locator("#login-password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#live-status")).to_have_text("live")


def test_supervisor_sees_and_acknowledges_alerts(stack: Any, chromium: Browser,  # noqa: F811
                                                 supervisor: str, stack_redis: redis.Redis) -> None:
    expect.set_options(timeout=TIMEOUT_MS)
    # What the action server writes when the same customer complains about one order again and again, and when
    # several customers report the same carrier hub (its own tracker, on the stack's Redis).
    order = f"DM{int(time.time())}"
    hub = f"Hub {order}"
    tracker = ComplaintTracker(stack_redis, ComplaintConfig(repeat_threshold=2, group_threshold=2))
    for _ in range(2):
        tracker.record_complaint("cust-browser", order)
    for customer in ("cust-a", "cust-b"):
        tracker.report_problem(customer, ProblemKey("carrier_hub", hub))
    errors: list[str] = []
    context = chromium.new_context(viewport=LAPTOP, locale="en-US")
    try:
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        _log_in(page, stack, supervisor, PASSWORD)
        expect(page.locator("#alerts-section")).to_be_visible()
        repeat = page.locator('#alerts li[data-kind="repeat_complaint"]', has_text=order)
        incident = page.locator('#alerts li[data-kind="group_incident"]', has_text=hub.lower())
        expect(repeat).to_have_count(1)
        expect(repeat).to_contain_text("repeat complaint · 2×")
        expect(repeat).to_contain_text("customer cust-browser")
        expect(incident).to_have_count(1)
        expect(incident).to_contain_text("group incident · 2 customers")

        repeat.get_by_role("button", name="Acknowledge").click()
        expect(repeat).to_have_count(0)
        expect(incident).to_have_count(1)
        # The server agrees, and a reload does not bring it back.
        page.reload()
        expect(page.locator("#live-status")).to_have_text("live")
        expect(incident).to_have_count(1)
        expect(page.locator('#alerts li[data-kind="repeat_complaint"]', has_text=order)).to_have_count(0)
        assert stack_redis.xlen(complaint_keys.REPEAT_FLAGS_STREAM) >= 1  # the record stays
        incident.get_by_role("button", name="Acknowledge").click()
        expect(incident).to_have_count(0)
        assert errors == []
    finally:
        context.close()


def test_supervisor_creates_an_agent_who_then_logs_in(stack: Any, chromium: Browser,  # noqa: F811
                                                      supervisor: str) -> None:
    expect.set_options(timeout=TIMEOUT_MS)
    name = f"newbie{int(time.time())}"
    errors: list[str] = []
    boss_ctx = chromium.new_context(viewport=LAPTOP, locale="en-US")
    agent_ctx = chromium.new_context(viewport=LAPTOP, locale="en-US")
    try:
        boss = boss_ctx.new_page()
        boss.on("pageerror", lambda exc: errors.append(str(exc)))
        _log_in(boss, stack, supervisor, PASSWORD)
        boss.locator("#new-account summary").click()
        boss.get_by_label("Account name").fill(name)
        boss.get_by_label("Shown to colleagues as").fill("Newbie <img src=x onerror=alert(1)>")
        boss.get_by_label("Initial passphrase").fill("short")
        boss.get_by_role("button", name="Create account").click()
        expect(boss.locator("#account-message")).to_have_text("password must have at least 8 characters")
        boss.get_by_label("Initial passphrase").fill("a-long-enough-passphrase")
        boss.get_by_label("Role").select_option("agent")
        boss.get_by_role("button", name="Create account").click()
        expect(boss.locator("#account-message")).to_have_text(f"Created agent {name}.")
        expect(boss.locator("#accounts")).to_contain_text(f"Newbie <img src=x onerror=alert(1)> ({name}, agent)")
        expect(boss.locator("#accounts img")).to_have_count(0)  # text, never HTML

        agent = agent_ctx.new_page()
        agent.on("pageerror", lambda exc: errors.append(str(exc)))
        _log_in(agent, stack, name, "a-long-enough-passphrase")
        expect(agent.locator("#whoami")).to_contain_text("(agent)")
        expect(agent.locator("#accounts-section")).to_be_hidden()
        expect(agent.locator("#alerts-section")).to_be_hidden()
        assert errors == []
    finally:
        boss_ctx.close()
        agent_ctx.close()
    # Agents cannot create accounts through the API either.
    http = httpx.Client(base_url=stack.web_url, timeout=30)
    token = http.post("/api/agent/login", json={"username": name, "password": "a-long-enough-passphrase"}).json()
    r = http.post("/api/agent/agents", headers={"Authorization": f"Bearer {token['token']}"},
                  json={"username": "sneaky", "password": "a-long-enough-passphrase", "role": "supervisor"})
    assert r.status_code == 403, json.dumps(r.json())
