"""``POST /kb/decide`` of the action server (what the editors' workbench calls for "try a question"): the bot's own
decision (``knowledge.decide``) for a question, with the articles, scores and levels, and the token check in front
of it like every other route."""
from __future__ import annotations

import asyncio

import httpx

from actions import knowledge
from actions.server import build_app, kb_decision

TOKEN = "kb-decide-token"  # noqa: S105 - test secret


async def test_the_answer_is_the_bots_decision_for_the_question() -> None:
    body, status = await kb_decision({"question": "how long does delivery to xinjiang take?", "language": "en"})
    assert status == 200
    expected = knowledge.decide("how long does delivery to xinjiang take?", "en", None)
    assert body["decision"] == expected.action == knowledge.ANSWER
    assert [(h["id"], h["level"]) for h in body["hits"]] == [(hit.id, level) for hit, level in expected.hits]
    assert body["hits"][0]["id"] == "shipping-remote-regions" and 0 < body["hits"][0]["score"] <= 1.5
    assert set(body["thresholds"]) == {"confident", "middling", "clear_margin"} and body["index_build"]


async def test_language_is_detected_and_a_question_without_an_answer_is_declined() -> None:
    body, status = await kb_decision({"question": "明天巴黎天气怎么样"})
    assert status == 200 and body["language"] == "zh" and body["decision"] == knowledge.NOTHING
    assert (await kb_decision({"question": "  "}))[1] == 422


async def test_the_route_needs_the_action_token_and_answers_with_it() -> None:
    """The real Sanic app (rasa-sdk's, with the token check), driven over ASGI with its lifespan started."""
    app = build_app(TOKEN)
    inbox: asyncio.Queue = asyncio.Queue()
    started = asyncio.Event()

    async def send(message: dict) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set()

    lifespan = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, send))
    await inbox.put({"type": "lifespan.startup"})
    await asyncio.wait_for(started.wait(), 20)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://actions") as client:
            question = {"question": "how long does delivery to xinjiang take?", "language": "en"}
            for headers in ({}, {"X-Action-Token": "wrong"}):
                r = await client.post("/kb/decide", json=question, headers=headers)
                assert r.status_code == 401
            r = await client.post("/kb/decide", json=question, headers={"X-Action-Token": TOKEN})
            assert r.status_code == 200 and r.json()["decision"] == "answer"
            assert r.json()["hits"][0]["id"] == "shipping-remote-regions"
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(lifespan, 20)
