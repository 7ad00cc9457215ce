"""End to end, the editors' inbox on the real stack (Redis, Rasa, action server, gateway with its inbox consumer):
what customers say through the web chat API and what an agent marks in the console reach the inbox by themselves -
nothing is injected - masked and grouped by the knowledge base's own encoder (the action server's /kb/embed)."""
from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.e2e.test_chat_stack import say

pytestmark = pytest.mark.e2e
PASSWORD = "inbox-e2e-test-pw"  # noqa: S105 - throw-away accounts in a throw-away Redis


def _account(stack: Any, role: str) -> dict[str, str]:
    username = f"{role[:3]}{uuid.uuid4().hex[:8]}"
    env = {**stack.env(), "HANDOFF_ADMIN_PASSWORD": PASSWORD}
    done = subprocess.run([sys.executable, "-m", "handoff.admin", f"create-{role}", "--username", username],
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    r = httpx.post(f"{stack.web_url}/api/agent/login", json={"username": username, "password": PASSWORD}, timeout=30)
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def _wait_for(stack: Any, headers: dict[str, str], found, what: str, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        r = httpx.get(f"{stack.web_url}/api/workbench/inbox", headers=headers, params={"limit": 500}, timeout=30)
        assert r.status_code == 200, r.text
        messages = [m | {"group": g} for g in r.json()["groups"] for m in g["messages"]]
        hit = [m for m in messages if found(m)]
        if hit:
            return hit[0]
        assert time.monotonic() < deadline, f"{what} never reached the inbox: {json.dumps(r.json())[:2000]}"
        time.sleep(0.5)


def test_what_the_bot_fails_on_in_the_web_chat_reaches_the_inbox(stack: Any) -> None:
    editor = _account(stack, "editor")
    # 1. Words the bot cannot place: an NLU fallback (recorded by the action server's fallback) or an out-of-scope
    #    decline after the knowledge base had nothing (recorded by action_out_of_scope); masked on the way in.
    for text in ("purple monkey dishwasher", "blorfle zanquith snorkwidget, my name is Wang Lei"):
        say(stack, text, ui_lang="en")
    item = _wait_for(stack, editor, lambda m: m["text"] == "purple monkey dishwasher", "an NLU fallback")
    assert item["source"] in ("nlu_fallback", "kb_no_answer"), item
    item = _wait_for(stack, editor, lambda m: "snorkwidget" in m["text"], "a declined message")
    assert item["source"] in ("nlu_fallback", "kb_no_answer"), item
    assert item["text"] == "blorfle zanquith snorkwidget, my name is {name}" and "Wang" not in json.dumps(item)
    assert item["group"]["count"] == 1
    # 2. "Did this help?" - no, after a knowledge answer.
    question = "how long does delivery to xinjiang take?"
    reply = say(stack, question, ui_lang="en")
    assert any(b["payload"] == "/deny" for m in reply["messages"] for b in m.get("buttons") or []), reply
    say(stack, "/deny", reply["conversation_id"])
    item = _wait_for(stack, editor, lambda m: m["source"] == "unhelpful" and m["text"] == question,
                     "an unhelpful answer")
    assert item["article_id"] == "shipping-remote-regions"


def test_an_agents_correction_at_close_reaches_the_inbox(stack: Any) -> None:
    editor = _account(stack, "editor")
    agent = _account(stack, "agent")
    text = "my name is Wang Lei and the thingamajig I bought is wonky, I want a human"
    cid = say(stack, text, ui_lang="en")["conversation_id"]
    deadline = time.monotonic() + 60
    handoff_id = None
    while handoff_id is None:
        queue = httpx.get(f"{stack.web_url}/api/agent/queue", headers=agent, timeout=30).json()
        handoff_id = next((h["handoff_id"] for h in queue if h["conversation_id"] == cid), None)
        if handoff_id is None:
            assert time.monotonic() < deadline, "no handoff for the customer's request"
            say(stack, "human please", cid)
            time.sleep(1)
    base = f"{stack.web_url}/api/agent/handoffs/{handoff_id}"
    assert httpx.post(f"{base}/claim", headers=agent, timeout=30).status_code == 200
    r = httpx.post(f"{base}/close", headers=agent, timeout=30,
                   json={"resolution": "resolved", "correction": {"intent": "return_request"}})
    assert r.status_code == 200, r.text
    assert r.json()["correction"]["intent"] == "return_request"
    item = _wait_for(stack, editor, lambda m: m["source"] == "correction" and "thingamajig" in m["text"],
                     "the agent's correction")
    assert item["intent"] == "return_request"
    assert "Wang" not in item["text"] and "{name}" in item["text"]
    assert "return_request" in item["group"]["suggested_intents"]
    # agents cannot read it
    assert httpx.get(f"{stack.web_url}/api/workbench/inbox", headers=agent, timeout=30).status_code == 403
