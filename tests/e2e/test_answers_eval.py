"""What a customer actually gets, measured through the web chat API of the running stack on the blind development
sets (tests/answers/blind_*.yml; never trained on, lines near-duplicating training data dropped). The floors are
regression gates a little under what was measured on 2026-12-06 (en 0.775, zh 0.886 right answers; handoffs met
0.900 / 1.000 of n=10 / 8, declines 0.913 / 0.957 of n=23), not the issue's target (0.95): see the README."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tools.answers_eval import DEFAULT_SETS, Catalogue, classify, evaluate, summary

pytestmark = pytest.mark.e2e
FLOORS = {"en": 0.74, "zh": 0.85}


def test_the_classifier_of_replies_tells_right_from_wrong() -> None:
    cat = Catalogue.load()
    answer = next(text for text, aid in cat.answers.items() if aid == "shipping-remote-regions")
    reply = [{"text": answer, "buttons": []}]
    assert classify(cat, reply, False, {"answer": "shipping-remote-regions"})[0] == "right"
    assert classify(cat, reply, False, {"answer": "refunds-bank-card"})[0] == "wrong"
    assert classify(cat, reply, True, {"answer": "shipping-remote-regions"})[0] == "handoff"
    dym = [{"text": "?", "buttons": [{"title": "x", "payload": '/ask_policy{"kb_article": "a"}'}]}]
    assert classify(cat, dym, False, {"answer": "a"})[0] == "dym"
    ask = [{"text": answer, "buttons": []}, {"text": next(iter(cat.form_prompts)), "buttons": []}]
    assert classify(cat, ask, False, {"form": "order"})[0] == "form"  # the request is served; the article is extra
    assert classify(cat, ask, False, {"answer": "shipping-remote-regions"})[0] == "right"


def test_customers_get_the_right_answer_through_the_web_chat(stack: Any) -> None:
    turns = asyncio.run(evaluate(stack.web_url, stack.env()["REDIS_URL"], DEFAULT_SETS))
    table = summary(turns)
    for language, floor in FLOORS.items():
        row = table[language]
        assert row["policy_n"] >= 200
        assert row["right"] >= floor, (language, row)
        assert row["handoff_ok"] >= 0.8 and row["decline_ok"] >= 0.85, (language, row)  # small n: 1-2 misses
