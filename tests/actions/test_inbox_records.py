"""What the action server records for the workbench inbox, at the source (real built index, real Redis): an NLU
fallback on the customer's words, a "did you mean" pick (only when the bot had offered that article), and the
sentence vectors of ``POST /kb/embed`` (the retrieval model it already holds), behind the action token."""
from __future__ import annotations

import json

import numpy as np
import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from redis.asyncio import Redis

from actions import fallback, kb_feedback, knowledge
from actions.kb_feedback import CHOSEN_STREAM, FALLBACK_STREAM, UNANSWERED_STREAM, FeedbackStore
from actions.server import EMBED_MAX_TEXTS, build_app, kb_embeddings

TOKEN = "kb-embed-token"  # noqa: S105 - test secret


@pytest.fixture
async def store(redis_url: str, monkeypatch: pytest.MonkeyPatch):
    redis = Redis.from_url(redis_url)
    await redis.delete(CHOSEN_STREAM, FALLBACK_STREAM)
    feedback_store = FeedbackStore(redis)
    monkeypatch.setattr(kb_feedback, "_store", feedback_store)
    yield redis
    await redis.delete(CHOSEN_STREAM, FALLBACK_STREAM)
    await redis.aclose()


def _tracker(text: str, intent: str, ranking: list[dict] | None = None, entities: list[dict] | None = None,
             before: list[dict] | None = None, slots: dict | None = None) -> Tracker:
    latest = {"text": text, "intent": {"name": intent, "confidence": 0.3}, "entities": entities or [],
              "intent_ranking": ranking or []}
    events = [*(before or []), {"event": "user", "text": text, "parse_data": latest}]
    return Tracker("conv-inbox", {"language": "en", **(slots or {})}, latest, events, False, None, {},
                   "action_listen")


async def _entries(redis: Redis, stream: str) -> list[dict[str, str]]:
    return [{k.decode(): v.decode() for k, v in f.items()} for _, f in await redis.xrange(stream)]


async def test_an_nlu_fallback_is_recorded_with_the_best_guess_and_the_kb_outcome(store) -> None:
    ranking = [{"name": "nlu_fallback", "confidence": 0.7}, {"name": "order_status", "confidence": 0.31}]
    tracker = _tracker("zorp blam the flux capacitor", "nlu_fallback", ranking)
    await fallback.ActionFallback().run(CollectingDispatcher(), tracker, {})
    [entry] = await _entries(store, FALLBACK_STREAM)
    assert entry["question"] == "zorp blam the flux capacitor" and entry["conversation_id"] == "conv-inbox"
    assert entry["intent_guess"] == "order_status" and float(entry["guess_confidence"]) == pytest.approx(0.31)
    assert entry["kb_decision"] == "none" and entry["language"] == "en"
    # A button payload or a policy-level fallback (the NLU did recognise the intent) is not an NLU miss.
    await fallback.ActionFallback().run(CollectingDispatcher(), _tracker("/deny", "nlu_fallback"), {})
    await fallback.ActionFallback().run(CollectingDispatcher(), _tracker("hello again", "greet"), {})
    assert len(await _entries(store, FALLBACK_STREAM)) == 1


async def test_a_did_you_mean_pick_is_recorded_with_the_question_it_answered(store) -> None:
    article = "invoices-request-window"
    offered = {"event": "bot", "text": "Did you mean:", "data": {"buttons": [
        {"title": "Invoices", "payload": "/ask_policy" + json.dumps({"kb_article": article})}]}}
    asked = {"event": "user", "text": "invoice for last month?", "parse_data": {}}
    ents = [{"entity": "kb_article", "value": article}]
    tracker = _tracker("/ask_policy" + json.dumps({"kb_article": article}), "ask_policy", entities=ents,
                       before=[asked, offered], slots={"kb_last_question": "invoice for last month?"})
    await knowledge.ActionAnswerPolicy().run(CollectingDispatcher(), tracker, {})
    [entry] = await _entries(store, CHOSEN_STREAM)
    assert entry == {**entry, "question": "invoice for last month?", "article_id": article, "language": "en"}
    # The same article named without having been offered just before: no pick recorded.
    tracker = _tracker("/ask_policy", "ask_policy", entities=ents, before=[asked],
                       slots={"kb_last_question": "invoice for last month?"})
    await knowledge.ActionAnswerPolicy().run(CollectingDispatcher(), tracker, {})
    assert len(await _entries(store, CHOSEN_STREAM)) == 1


async def test_an_out_of_scope_decline_is_recorded_as_a_knowledge_base_no_answer(store) -> None:
    await store.delete(UNANSWERED_STREAM)
    dispatcher = CollectingDispatcher()
    await knowledge.ActionOutOfScope().run(dispatcher, _tracker("what's the weather in paris tomorrow",
                                                                "out_of_scope"), {})
    assert [m["response"] for m in dispatcher.messages] == ["utter_out_of_scope"]
    [entry] = await _entries(store, UNANSWERED_STREAM)
    assert entry["question"] == "what's the weather in paris tomorrow" and entry["via"] == "out_of_scope"
    # answered from the knowledge base: nothing recorded
    await knowledge.ActionOutOfScope().run(CollectingDispatcher(), _tracker(
        "do you ship to xinjiang and how long", "out_of_scope"), {})
    assert len(await _entries(store, UNANSWERED_STREAM)) == 1
    await store.delete(UNANSWERED_STREAM)


async def test_kb_embed_gives_unit_vectors_of_the_kb_encoder() -> None:
    body, status = await kb_embeddings({"texts": ["where is my parcel", "where is my package", "我的快递到哪了"]})
    assert status == 200 and len(body["vectors"]) == 3 and body["model"]
    v = np.asarray(body["vectors"])
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-3)
    assert v[0] @ v[1] > 0.88  # paraphrases: one inbox group at the default threshold
    for bad in ({}, {"texts": []}, {"texts": [""]}, {"texts": ["x"] * (EMBED_MAX_TEXTS + 1)}, {"texts": [1]}):
        assert (await kb_embeddings(bad))[1] == 422


def test_the_embed_route_is_on_the_action_server_behind_its_token() -> None:
    """build_app adds /kb/embed next to /webhook and /kb/decide, behind the one token check of every route
    (tests/actions/test_kb_decide_endpoint.py drives that check over HTTP; one Sanic app start per test process)."""
    from sanic import Sanic

    app = build_app(TOKEN)
    try:
        paths = {"/" + route.path.strip("/") for route in app.router.routes}
        assert "/kb/embed" in paths, paths
        assert any(m.func.__name__ == "_require_token" for m in app.request_middleware)
    finally:
        Sanic._app_registry.pop(app.name, None)  # the next test of the process builds rasa-sdk's app again


async def test_customers_words_expire_from_the_records_even_on_a_quiet_stream(store: Redis) -> None:
    """A record older than the retention is gone once the next one is written (exact trim: a stream with a handful
    of entries expires too); MAXLEN alone would keep a quiet shop's questions for ever."""
    import time

    old_id = f"{int((time.time() - 3 * 86400) * 1000)}-0"
    await store.xadd(FALLBACK_STREAM, {"question": "my phone is 13800138000, old"}, id=old_id)
    recent_id = f"{int((time.time() - 3600) * 1000)}-0"
    await store.xadd(FALLBACK_STREAM, {"question": "an hour ago"}, id=recent_id)
    await FeedbackStore(store, retention_s=2 * 86400).record_fallback("conv-x", "new", "en", None, None, "none")
    questions = [fields[b"question"] for _, fields in await store.xrange(FALLBACK_STREAM)]
    assert questions == [b"an hour ago", b"new"]
