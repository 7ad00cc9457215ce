"""The editors' workbench (/workbench, workbench/static/workbench) in headless Chromium against the real stack.

An editor (created with the admin command) logs in with the console's login, finds an article by a Chinese word,
adds an example question and saves (version 2, the stack's copy of the article file written), is told exactly what
is wrong with an edit that drops the Chinese answer (nothing saved), meets a colleague's save made meanwhile as a
conflict with the colleague's diff (no lost update), loads the current version, restores version 1 (the file is
byte for byte the original again) and tries questions: the real action server answers with the bot's decision.
The page switches to Chinese; an agent is turned away; the console sends an editor to the workbench.
Set WEBCHAT_SCREENSHOT_DIR=docs/screenshots to refresh docs/screenshots/workbench.png.
"""
from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.test_agent_console import ROOT, TIMEOUT_MS, _screenshot, chromium  # noqa: F401
from tests.processes import create_accounts

pytestmark = [pytest.mark.browser, pytest.mark.e2e]
PASSWORD = "workbench-browser-test-pw"  # noqa: S105 - throw-away accounts in a throw-away Redis
ARTICLE = "shipping-remote-regions"
NEW_QUESTION = "do you deliver to lhasa at all"


@pytest.fixture(scope="module")
def accounts(stack: Any) -> dict:
    stamp = int(time.time())
    names = {"editor": f"ed{stamp}", "agent": f"ag{stamp}", "supervisor": f"sup{stamp}"}
    return create_accounts(stack, names, PASSWORD)


def _log_in(page: Page, url: str, username: str) -> None:
    page.goto(url)
    page.locator("#login-username").fill(username)
    page.locator("#login-password").fill(PASSWORD)
    page.locator("#login-form button[type=submit]").click()


def _token(stack: Any, username: str) -> dict[str, str]:
    r = httpx.post(f"{stack.web_url}/api/agent/login", json={"username": username, "password": PASSWORD}, timeout=30)
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_editor_edits_meets_a_conflict_restores_and_tries_questions(stack: Any, chromium: Browser,  # noqa: F811
                                                                    accounts: dict) -> None:
    expect.set_options(timeout=TIMEOUT_MS)
    kb_file = Path(stack.env()["WORKBENCH_KB_DIR"]) / "shipping.yml"
    original = kb_file.read_bytes()
    errors: list[str] = []
    context = chromium.new_context(viewport={"width": 1366, "height": 1000}, locale="en-US")
    try:
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        # Console errors (CSP violations among them), but not the refusals this story provokes on purpose.
        page.on("console", lambda msg: errors.append(msg.text)
                if msg.type == "error" and not any(f"status of {s}" in msg.text for s in (401, 409, 422)) else None)
        _log_in(page, f"{stack.web_url}/workbench", accounts["editor"])
        expect(page.locator("#main-view")).to_be_visible()
        expect(page.locator("#whoami")).to_contain_text("(editor)")
        expect(page.locator("#list-count")).to_have_text(re.compile(r"^(8[5-9]|9\d|\d{3,}) articles$"))

        # Find by a Chinese word, open, add an English example question, save: version 2 and the file written.
        page.locator("#search").fill("新疆")
        expect(page.locator(f'#articles button[data-id="{ARTICLE}"]')).to_be_visible()
        page.locator(f'#articles button[data-id="{ARTICLE}"]').click()
        expect(page.locator("#article-id")).to_have_text(ARTICLE)
        expect(page.locator("#versions li")).to_have_count(1)
        questions = page.locator("#questions-en")
        questions.fill(questions.input_value() + "\n" + NEW_QUESTION)
        page.locator("#save").click()
        expect(page.locator("#message")).to_have_text("Saved as version 2.")
        expect(page.locator("#versions li")).to_have_count(2)
        expect(page.locator("#versions li").first).to_contain_text(f"v2 · edited · {accounts['editor']}")
        assert f"- {NEW_QUESTION}" in kb_file.read_text(encoding="utf-8")

        # Bad input: the Chinese answer emptied -> the problem is listed, nothing saved.
        answer_zh = page.locator("#answer-zh").input_value()
        page.locator("#answer-zh").fill("")
        page.locator("#save").click()
        expect(page.locator("#problems")).to_be_visible()
        expect(page.locator("#problem-list")).to_contain_text("answer.zh: missing")
        expect(page.locator("#versions li")).to_have_count(2)
        page.locator("#answer-zh").fill(answer_zh)

        # A colleague (a supervisor, through the API) saves version 3 meanwhile; the editor's save of version 2 is
        # refused with the colleague's change shown, and nothing of it is lost.
        boss = _token(stack, accounts["supervisor"])
        head = httpx.get(f"{stack.web_url}/api/workbench/articles/{ARTICLE}", headers=boss, timeout=30).json()
        article = head["article"]
        r = httpx.put(f"{stack.web_url}/api/workbench/articles/{ARTICLE}", headers=boss, timeout=30, json={
            "base_version": head["version"], "title": article["title"], "answer": article["answer"],
            "questions": article["questions"], "tags": [*article["tags"], "far-west"],
            "last_reviewed": article["last_reviewed"]})
        assert r.status_code == 200 and r.json()["version"] == 3, r.text
        page.locator("#tags").fill(page.locator("#tags").input_value() + ", lhasa")
        page.locator("#save").click()
        expect(page.locator("#conflict")).to_be_visible()
        expect(page.locator("#conflict-text")).to_contain_text(f"{accounts['supervisor']} saved version 3")
        expect(page.locator("#conflict-theirs")).to_contain_text("far-west")
        expect(page.locator("#conflict-yours")).to_contain_text("lhasa")
        page.locator("#load-current").click()
        expect(page.locator("#article-version")).to_contain_text("version 3")
        expect(page.locator("#tags")).to_have_value("remote-regions, delivery-time, xinjiang, tibet, far-west")
        _screenshot(page, "workbench.png")

        # Restore version 1: a new version 4, the file byte for byte what it was.
        page.locator('#versions li[data-version="1"] button.restore').click()
        expect(page.locator("#message")).to_have_text("Version 1 restored as version 4.")
        expect(page.locator("#versions li")).to_have_count(4)
        assert kb_file.read_bytes() == original
        page.locator('#versions li[data-version="2"] button.link').first.click()  # its diff, readable
        expect(page.locator("#version-diff")).to_contain_text(f"+        - {NEW_QUESTION}")

        # Try a question: the action server's decision (answer / did-you-mean / decline) with the article and score.
        page.locator("#try-question").fill("how long does delivery to xinjiang take?")
        page.locator("#try-submit").click()
        expect(page.locator("#try-decision")).to_have_attribute("data-decision", "answer")
        expect(page.locator("#try-hits li").first).to_have_attribute("data-id", ARTICLE)
        score = float(page.locator("#try-hits li").first.locator(".try__score").inner_text())
        assert 0.82 <= score <= 1.5
        page.locator("#try-question").fill("明天巴黎天气怎么样")
        page.locator("#try-submit").click()
        expect(page.locator("#try-decision")).to_have_attribute("data-decision", "none")

        # Chinese interface.
        page.locator("#ui-lang").select_option("zh")
        expect(page.locator("header h1")).to_have_text("内容工作台")
        expect(page.locator("#try-decision")).to_have_text("婉拒（知识库没有答案）")
        expect(page.locator("#versions li").first).to_contain_text("第 4 版 · 恢复自第 1 版")
        assert not errors, errors
    finally:
        context.close()


def test_agents_are_turned_away_and_editors_sent_from_the_console(stack: Any, chromium: Browser,  # noqa: F811
                                                                   accounts: dict) -> None:
    expect.set_options(timeout=TIMEOUT_MS)
    assert httpx.get(f"{stack.web_url}/api/workbench/articles", timeout=30).status_code == 401
    editor = _token(stack, accounts["editor"])
    assert httpx.get(f"{stack.web_url}/api/agent/queue", headers=editor, timeout=30).status_code == 403
    context = chromium.new_context(viewport={"width": 1366, "height": 900}, locale="en-US")
    try:
        page = context.new_page()
        _log_in(page, f"{stack.web_url}/workbench", accounts["agent"])
        expect(page.locator("#forbidden-view")).to_be_visible()
        expect(page.locator("#main-view")).to_be_hidden()
        page.locator("#forbidden-logout").click()
        _log_in(page, f"{stack.web_url}/agent", accounts["editor"])
        page.wait_for_url(f"{stack.web_url}/workbench")
        expect(page.locator("#main-view")).to_be_visible()
    finally:
        context.close()
