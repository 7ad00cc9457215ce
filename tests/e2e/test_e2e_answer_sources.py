"""End to end, a bot answer's source on the real stack (shared ``stack`` fixture: Redis, Rasa with the model and
credentials.yml's sourced REST channel, the action server's knowledge action, the gateway with its analytics
consumer): a question sent through the web chat API is answered from the knowledge base, and - nothing injected -
the managers' KPI API counts it as a knowledge answer with its article id; what a client adds to its message never
becomes a source."""
from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.e2e.test_chat_stack import BROWSERS, say
from tests.e2e.test_e2e_inbox import _account

pytestmark = pytest.mark.e2e
QUESTION = "how long does delivery to xinjiang take?"
ARTICLE = "shipping-remote-regions"


def _range() -> dict[str, str]:
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    return {"start": (today - timedelta(days=1)).isoformat(), "end": today.isoformat()}


def _kb_answers(stack: Any, boss: dict[str, str], article: str) -> int:
    r = httpx.get(f"{stack.web_url}/api/analytics/sources", headers=boss, params=_range(), timeout=30)
    assert r.status_code == 200, r.text
    return sum(row["answers"] for row in r.json()["rows"] if row["source"] == "kb" and row["kb_id"] == article)


def test_a_web_chat_question_is_counted_as_a_kb_answer_with_its_article(stack: Any) -> None:
    boss = _account(stack, "supervisor")
    before = _kb_answers(stack, boss, ARTICLE)
    summary0 = httpx.get(f"{stack.web_url}/api/analytics/summary", headers=boss, params=_range(), timeout=30).json()

    reply = say(stack, QUESTION, ui_lang="en")
    assert reply["messages"] and reply["messages"][0]["role"] == "bot"
    assert all(set(m) <= {"id", "role", "text", "buttons", "ts", "name"} for m in reply["messages"]), reply
    # A client that tries to name the source: extra fields in its body and metadata are not a source.
    forged = BROWSERS[reply["conversation_id"]].post(f"{stack.web_url}/api/webchat/messages", json={
        "conversation_id": reply["conversation_id"], "message_id": uuid.uuid4().hex, "text": "thanks",
        "kb": {"id": "forged-article", "score": 1.0}, "source": "kb",
        "metadata": {"ui_lang": "en", "kb": {"id": "forged-article", "score": 1.0}, "response": "utter_x"}})
    assert forged.status_code == 200, forged.text

    deadline = time.monotonic() + 60  # the consumer finds new conversation streams every ANALYTICS_SCAN_S (10 s)
    while _kb_answers(stack, boss, ARTICLE) < before + 1:
        assert time.monotonic() < deadline, "the knowledge answer never reached the KPI API"
        time.sleep(1)
    assert _kb_answers(stack, boss, ARTICLE) == before + 1
    r = httpx.get(f"{stack.web_url}/api/analytics/sources", headers=boss, params=_range(), timeout=30)
    row = next(x for x in r.json()["rows"] if x["kb_id"] == ARTICLE)
    assert 0 < row["avg_score"] <= 1
    assert "forged-article" not in r.text
    summary = httpx.get(f"{stack.web_url}/api/analytics/summary", headers=boss, params=_range(), timeout=30).json()
    assert summary["bot_answers"]["by_source"]["kb"] >= summary0["bot_answers"]["by_source"]["kb"] + 1
    questions = httpx.get(f"{stack.web_url}/api/analytics/questions", headers=boss, params=_range(),
                          timeout=30).json()["rows"]
    asked = next((q for q in questions if q["question"] == QUESTION), None)
    if asked is not None:  # among the top questions of the day on a busy shared stack
        assert asked["kb_answered"] >= 1
