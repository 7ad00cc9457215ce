"""The workbench's Inbox (workbench/static/workbench, workbench/inbox.py) in headless Chromium against the real stack.

A customer says something the bot cannot place through the web chat API; the stack's own inbox consumer takes it
in. An editor opens the Inbox tab, sees the group (count, source, masked text), checks the line for an intent, adds
it: the page reports the new version and the stack's copy of data/nlu/en.yml holds the line in Rasa's format; a held-
out evaluation line is refused on the page. An agent marks in the console, at close, what a customer actually
wanted; the editor's inbox shows it. The page switches to Chinese. Set WEBCHAT_SCREENSHOT_DIR=docs/screenshots to
refresh docs/screenshots/workbench-inbox.png.
"""
from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from playwright.sync_api import Browser, Page, expect

from tests.browser.test_agent_console import ROOT, TIMEOUT_MS, _screenshot, chromium  # noqa: F401
from tests.processes import create_accounts

pytestmark = [pytest.mark.browser, pytest.mark.e2e]
PASSWORD = "inbox-browser-test-pw"  # noqa: S105 - throw-away accounts in a throw-away Redis
# Each is either an NLU fallback or an out-of-scope decline with nothing in the knowledge base: both reach the inbox.
CANDIDATES = ("the blue one not the red", "purple monkey dishwasher", "grumbleflax wobbletron quixotic")


@pytest.fixture(scope="module")
def accounts(stack: Any) -> dict:
    stamp = uuid.uuid4().hex[:6]
    names = {"editor": f"ied{stamp}", "agent": f"iag{stamp}"}
    return create_accounts(stack, names, PASSWORD)


def _token(stack: Any, username: str) -> dict[str, str]:
    r = httpx.post(f"{stack.web_url}/api/agent/login", json={"username": username, "password": PASSWORD}, timeout=30)
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def _say(stack: Any, text: str, http: httpx.Client, conversation_id: str | None = None) -> dict[str, Any]:
    r = http.post(f"{stack.web_url}/api/webchat/messages", json={
        "conversation_id": conversation_id, "message_id": uuid.uuid4().hex, "text": text,
        "metadata": {"ui_lang": "en"}})
    assert r.status_code == 200, r.text
    return r.json()


def _inbox_texts(stack: Any, headers: dict[str, str]) -> dict[str, dict[str, Any]]:
    r = httpx.get(f"{stack.web_url}/api/workbench/inbox", headers=headers, params={"limit": 500}, timeout=30)
    assert r.status_code == 200, r.text
    return {g["text"]: g for g in r.json()["groups"]}


def _log_in(page: Page, url: str, username: str) -> None:
    page.goto(url)
    page.locator("#login-username").fill(username)
    page.locator("#login-password").fill(PASSWORD)
    page.locator("#login-password").press("Enter")


def test_editor_adds_a_failed_message_to_an_intent(stack: Any, chromium: Browser, accounts: dict) -> None:  # noqa: F811
    expect.set_options(timeout=TIMEOUT_MS)
    editor = _token(stack, accounts["editor"])
    nlu_file = Path(stack.env()["WORKBENCH_NLU_DIR"]) / "en.yml"
    with httpx.Client(timeout=60) as customer:
        for text in CANDIDATES:
            _say(stack, text, customer)
    deadline = time.monotonic() + 60
    while len(found := [t for t in CANDIDATES if t in _inbox_texts(stack, editor)]) < 2:
        assert time.monotonic() < deadline, f"fewer than two of the customer's messages reached the inbox: {found}"
        time.sleep(0.5)
    text = found[0]
    before = nlu_file.read_text(encoding="utf-8")
    errors: list[str] = []
    context = chromium.new_context(viewport={"width": 1366, "height": 1000}, locale="en-US")
    try:
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text)
                if msg.type == "error" and not any(f"status of {s}" in msg.text for s in (401, 422)) else None)
        _log_in(page, f"{stack.web_url}/workbench", accounts["editor"])
        expect(page.locator("#main-view")).to_be_visible()
        page.locator("#tab-inbox").click()
        expect(page.locator("#inbox-view")).to_be_visible()
        expect(page.locator("#articles-view")).to_be_hidden()
        expect(page.locator("#inbox-count")).to_have_text(re.compile(r"^\d+ groups · \d+ messages$"))
        group = page.locator("#inbox-groups > li").filter(has=page.locator("q.inbox__text", has_text=text))
        expect(group).to_have_count(1)
        expect(group.locator(".inbox__count")).to_have_text(re.compile(r"^×\d+$"))
        expect(group.locator(".inbox__chip").first).to_contain_text(re.compile("not understood|no answer"))
        _screenshot(page, "workbench-inbox.png")

        # Check, then add to out_of_scope: the page reports the version; the stack's training file has the line.
        group.locator("select.inbox__intent").select_option("out_of_scope")
        group.locator("button.inbox__check").click()
        expect(group.locator(".inbox__result")).to_contain_text(f"Would add: {text}")
        group.locator("button.inbox__add-intent").click()
        added = re.compile(r"Added to out_of_scope \(en\) as version \d+")
        expect(group.locator(".inbox__result")).to_contain_text(added)
        after = nlu_file.read_text(encoding="utf-8")
        assert after.replace(f"    - {text}\n", "", 1) == before
        block = next(b for b in yaml.safe_load(after)["nlu"] if b.get("intent") == "out_of_scope")
        assert f"- {text}\n" in block["examples"]
        assert text not in _inbox_texts(stack, editor)  # handled: no longer open

        # A held-out evaluation line typed into a group's text is refused, naming only the held-out file and line.
        heldout = yaml.safe_load((ROOT / "tests" / "nlu" / "heldout_en.yml").read_text(encoding="utf-8"))
        line = next(b for b in heldout["nlu"] if b["intent"] == "greet")["examples"].splitlines()[1].strip()[2:]
        other = page.locator("#inbox-groups > li").filter(has=page.locator("q.inbox__text", has_text=found[1]))
        other.locator("input.inbox__edit").fill(line)
        other.locator("select.inbox__intent").select_option("greet")
        other.locator("button.inbox__add-intent").click()
        expect(other.locator(".inbox__result")).to_contain_text("Refused: a near duplicate")
        expect(other.locator(".inbox__result")).to_contain_text("heldout_en.yml:")
        assert line not in other.locator(".inbox__result").inner_text()
        assert nlu_file.read_text(encoding="utf-8") == after
        assert found[1] in _inbox_texts(stack, editor)  # still open

        # Chinese
        page.locator("#ui-lang").select_option("zh")
        expect(page.locator("#inbox-heading")).to_have_text("机器人答错的问题")
        expect(page.locator("#tab-inbox")).to_contain_text("待处理")
        assert not errors, errors
    finally:
        context.close()


def test_an_agent_marks_what_the_customer_wanted_and_the_editor_sees_it(stack: Any, chromium: Browser,  # noqa: F811
                                                                        accounts: dict) -> None:
    expect.set_options(timeout=TIMEOUT_MS)
    editor, agent = _token(stack, accounts["editor"]), _token(stack, accounts["agent"])
    text = f"the doohickey {uuid.uuid4().hex[:4]} I got is all wonky, I want a human"
    with httpx.Client(timeout=60) as customer:
        cid = _say(stack, text, customer)["conversation_id"]
        deadline = time.monotonic() + 60
        while not (handoff_id := next((h["handoff_id"] for h in httpx.get(
                f"{stack.web_url}/api/agent/queue", headers=agent, timeout=30).json()
                if h["conversation_id"] == cid), None)):
            assert time.monotonic() < deadline, "no handoff for the customer's request"
            _say(stack, "human please", customer, cid)
            time.sleep(1)
    assert httpx.post(f"{stack.web_url}/api/agent/handoffs/{handoff_id}/claim", headers=agent,
                      timeout=30).status_code == 200
    context = chromium.new_context(viewport={"width": 1366, "height": 900}, locale="en-US")
    try:
        page = context.new_page()
        _log_in(page, f"{stack.web_url}/agent", accounts["agent"])
        card = page.locator(f'#mine li[data-handoff-id="{handoff_id}"]')
        expect(card).to_have_count(1)
        card.click()
        expect(page.locator("#wanted")).to_be_enabled()
        page.locator("#wanted").select_option("intent:return_request")
        page.locator("#close").click()
        expect(page.locator("#wanted")).to_have_value("")
    finally:
        context.close()
    deadline = time.monotonic() + 30
    while True:
        groups = [g for g in _inbox_texts(stack, editor).values()
                  if "doohickey" in g["text"] and any(m["source"] == "correction" for m in g["messages"])]
        if groups:
            break
        assert time.monotonic() < deadline, "the agent's correction never reached the inbox"
        time.sleep(0.5)
    assert groups[0]["suggested_intents"] == ["return_request"]
