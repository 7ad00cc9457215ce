"""The workbench's draft-an-article flow and its Versions tab (workbench/static/workbench) in headless Chromium against
the real stack (the session's ``stack``; accounts and helpers of tests/browser/test_workbench_inbox.py).

A customer asks something the knowledge base has no article for and wants a person; an agent answers (greeting the
customer by name) and, at hand-back, marks the article that came closest. The editor's Inbox shows the agent's reply
masked; one click drafts an article; the draft opens in the article editor flagged incomplete (Chinese missing, the
greeting's {name} to rewrite), is finished, saved and published into the stack's copy of data/kb/membership.yml.
Then the Versions tab lists the new article's versions with author and diff, and restoring the first one makes a new
version (the file back as published). The page switches to Chinese. Set WEBCHAT_SCREENSHOT_DIR=docs/screenshots to
refresh docs/screenshots/workbench-draft.png and workbench-versions.png.
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
from playwright.sync_api import Browser, expect

from tests.browser.test_agent_console import TIMEOUT_MS, _screenshot, chromium  # noqa: F401
from tests.browser.test_workbench_inbox import _inbox_texts, _log_in, _say, _token, accounts  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.e2e]
REPLY = "Hi Anna, gold members get free gift wrapping on every order."
ANSWER_EN = "Gold members get free gift wrapping on every order."
ANSWER_ZH = "金卡会员每笔订单都可以免费礼品包装。"
QUESTIONS_EN = ("do gold members get free gift wrapping", "is gift wrapping free for gold members",
                "gift wrap cost for gold members")
QUESTIONS_ZH = ("金卡会员礼品包装免费吗", "金卡会员可以免费包装礼物吗", "礼品包装对金卡会员收费吗")


def _answered_handoff(stack: Any, agent: dict[str, str], text: str) -> None:
    """The customer's question, a handoff, the agent's greeting and answer, hand-back with a correction naming the
    question (desk API)."""
    with httpx.Client(timeout=60) as customer:
        cid = _say(stack, text, customer)["conversation_id"]
        deadline = time.monotonic() + 60
        while not (handoff_id := next((h["handoff_id"] for h in httpx.get(
                f"{stack.web_url}/api/agent/queue", headers=agent, timeout=30).json()
                if h["conversation_id"] == cid), None)):
            assert time.monotonic() < deadline, "no handoff for the customer's request"
            _say(stack, "human please", customer, cid)
            time.sleep(1)
    base = f"{stack.web_url}/api/agent/handoffs/{handoff_id}"
    assert httpx.post(f"{base}/claim", headers=agent, timeout=30).status_code == 200
    for reply in ("One moment please.", REPLY):
        r = httpx.post(f"{base}/messages", headers=agent, json={"text": reply}, timeout=30)
        assert r.status_code == 200, r.text
    # the question itself (the customer's last message before the handoff may be "human please")
    messages = httpx.get(base, headers=agent, timeout=30).json()["messages"]
    question = next(m["id"] for m in messages if m["role"] == "customer" and m["text"] == text)
    r = httpx.post(f"{base}/handback", headers=agent, timeout=30, json={
        "correction": {"article_id": "membership-gold-platinum-perks", "message_id": question}})
    assert r.status_code == 200, r.text


def test_editor_drafts_an_article_from_an_agents_reply_publishes_it_and_restores_a_version(
        stack: Any, chromium: Browser, accounts: dict) -> None:  # noqa: F811 - the shared fixtures
    expect.set_options(timeout=TIMEOUT_MS)
    editor, agent = _token(stack, accounts["editor"]), _token(stack, accounts["agent"])
    kb_file = Path(stack.env()["WORKBENCH_KB_DIR"]) / "membership.yml"
    stamp = uuid.uuid4().hex[:4]
    text = f"do gold members get free gift wrapping {stamp}? I want a human"
    _answered_handoff(stack, agent, text)
    deadline = time.monotonic() + 60
    while True:
        seen = [m for g in _inbox_texts(stack, editor).values() for m in g["messages"]]
        if any(stamp in m["text"] and m["detail"].get("agent_replies") for m in seen):
            break
        assert time.monotonic() < deadline, f"the answered message never reached the inbox with the reply: {seen}"
        time.sleep(0.5)
    before = kb_file.read_text(encoding="utf-8")
    article_id = f"membership-gift-wrap-{stamp}"
    errors: list[str] = []
    context = chromium.new_context(viewport={"width": 1366, "height": 1000}, locale="en-US")
    try:
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text)
                if msg.type == "error" and not any(f"status of {s}" in msg.text for s in (401, 409, 422)) else None)
        _log_in(page, f"{stack.web_url}/workbench", accounts["editor"])
        expect(page.locator("#main-view")).to_be_visible()
        page.locator("#tab-inbox").click()
        card = page.locator("#inbox-groups > li").filter(has=page.locator("q.inbox__text", has_text=stamp))
        expect(card).to_have_count(1)
        # the agent's fullest reply, masked: the customer's name never reaches the page
        expect(card.locator(".inbox__reply")).to_have_text("Hi {name}, gold members get free gift wrapping on every "
                                                           "order.")
        assert "Anna" not in page.content()
        card.locator("select.inbox__category").select_option("membership")
        card.locator("button.inbox__draft-article").click()
        expect(card.locator(".inbox__result")).to_contain_text(re.compile(r"Draft membership-draft-\w+ created\."))
        assert kb_file.read_text(encoding="utf-8") == before  # a draft is never in the files
        card.locator("button.inbox__open-draft").click()

        # The draft in the article editor: English from the conversation, Chinese missing, not publishable yet.
        expect(page.locator("#articles-view")).to_be_visible()
        expect(page.locator("#draft-status")).to_be_visible()
        expect(page.locator("#draft-state")).to_have_text("Draft - not published. Still missing or wrong:")
        expect(page.locator("#draft-problems")).to_contain_text("missing language: Chinese")
        expect(page.locator("#draft-problems")).to_contain_text("{name}")
        expect(page.locator("#answer-en")).to_have_value("Hi {name}, gold members get free gift wrapping on every "
                                                         "order.")
        expect(page.locator("#questions-en")).to_have_value(text)
        expect(page.locator("#answer-zh")).to_have_value("")
        expect(page.locator("#versions-box")).to_be_hidden()
        expect(page.locator("#drafts button")).to_have_count(1)
        _screenshot(page, "workbench-draft.png")
        page.locator("#publish").click()  # incomplete: refused, every problem listed, nothing written
        expect(page.locator("#problem-list")).to_contain_text("answer.zh: missing")
        assert kb_file.read_text(encoding="utf-8") == before

        page.locator("#draft-article-id").fill(article_id)
        page.locator("#title-en").fill("Free gift wrapping for gold members")
        page.locator("#title-zh").fill("金卡会员免费礼品包装")
        page.locator("#answer-en").fill(ANSWER_EN)
        page.locator("#answer-zh").fill(ANSWER_ZH)
        page.locator("#questions-en").fill("\n".join(QUESTIONS_EN))
        page.locator("#questions-zh").fill("\n".join(QUESTIONS_ZH))
        page.locator("#save").click()
        expect(page.locator("#message")).to_have_text("Draft saved (version 2).")
        expect(page.locator("#draft-state")).to_have_text("Draft - complete, ready to publish.")
        page.locator("#publish").click()
        expect(page.locator("#message")).to_have_text(f"Published as article {article_id} (version 1).")
        expect(page.locator("#draft-status")).to_be_hidden()
        expect(page.locator("#drafts-box")).to_be_hidden()
        expect(page.locator("#versions li")).to_have_count(1)
        expect(page.locator("#versions li").first).to_contain_text(f"v1 · created from a draft · {accounts['editor']}")
        published = kb_file.read_text(encoding="utf-8")
        article = next(a for a in yaml.safe_load(published)["articles"] if a["id"] == article_id)
        assert article["answer"] == {"zh": ANSWER_ZH, "en": ANSWER_EN}
        assert article["questions"] == {"zh": list(QUESTIONS_ZH), "en": list(QUESTIONS_EN)}
        assert published.startswith(before.rstrip("\n"))  # appended; the rest of the file as it was

        # A second edit, then the Versions tab: both versions with author and diff; restore the first.
        page.locator("#title-en").fill("Gift wrapping for gold members")
        page.locator("#save").click()
        expect(page.locator("#message")).to_have_text("Saved as version 2.")
        page.locator("#tab-versions").click()
        expect(page.locator("#versions-view")).to_be_visible()
        mine = page.locator(f'#feed li[data-target="{article_id}"]')
        expect(mine).to_have_count(2)
        expect(mine.first).to_contain_text(f"v2 · edited · {accounts['editor']}")
        expect(mine.first.locator(".feed__current")).to_be_visible()
        expect(mine.first.locator("button.feed__restore")).to_have_count(0)  # the current one
        mine.first.locator("button.feed__show").click()
        expect(mine.first.locator("pre.feed__diff")).to_contain_text("+      en: Gift wrapping for gold members")
        _screenshot(page, "workbench-versions.png")
        page.locator(f'#feed li[data-target="{article_id}"][data-version="1"] button.feed__restore').click()
        expect(page.locator("#feed-message")).to_have_text(f"{article_id}: version 1 restored as version 3.")
        expect(mine).to_have_count(3)
        expect(mine.first).to_contain_text("v3 · restored v1")
        assert kb_file.read_text(encoding="utf-8") == published
        page.locator("#feed-kind").select_option("intent")
        expect(page.locator(f'#feed li[data-target="{article_id}"]')).to_have_count(0)

        page.locator("#ui-lang").select_option("zh")
        expect(page.locator("#feed-heading")).to_have_text("内容版本")
        expect(page.locator("#tab-versions")).to_have_text("版本")
        assert not errors, errors
    finally:
        context.close()
