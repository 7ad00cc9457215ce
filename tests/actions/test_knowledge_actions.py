"""Knowledge-base actions against the real built index and a real Redis for the editors' feedback records."""
from __future__ import annotations

from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from redis.asyncio import Redis

from actions import kb_feedback, knowledge
from actions.kb_feedback import FEEDBACK_STREAM, UNANSWERED_STREAM, FeedbackStore


def tracker(text: str, language: str, intent: str = "ask_policy", entities: list[dict] | None = None,
            slots: dict[str, Any] | None = None) -> Tracker:
    latest = {"text": text, "intent": {"name": intent, "confidence": 0.9}, "entities": entities or []}
    events = [{"event": "user", "text": text, "parse_data": latest}]
    return Tracker("conv-kb", {"language": language, **(slots or {})}, latest, events, False, None, {},
                   "action_listen")


@pytest.fixture
async def store(redis_url: str, monkeypatch: pytest.MonkeyPatch):
    redis = Redis.from_url(redis_url)
    await redis.delete(FEEDBACK_STREAM, UNANSWERED_STREAM)
    feedback_store = FeedbackStore(redis)
    monkeypatch.setattr(kb_feedback, "_store", feedback_store)
    yield feedback_store
    await redis.delete(FEEDBACK_STREAM, UNANSWERED_STREAM)
    await redis.aclose()


async def test_confident_answer_in_english_with_feedback_buttons(store) -> None:
    dispatcher = CollectingDispatcher()
    events = await knowledge.ActionAnswerPolicy().run(
        dispatcher, tracker("how long does delivery to xinjiang take?", "en"), {})
    assert SlotSet("kb_last_article", "shipping-remote-regions") in events
    assert "7-10 business days" in dispatcher.messages[0]["text"]
    assert dispatcher.messages[1]["response"] == "utter_kb_did_it_help"
    assert [b["payload"] for b in dispatcher.messages[1]["buttons"]] == ["/affirm", "/deny"]


async def test_answer_follows_the_customers_language(store) -> None:
    dispatcher = CollectingDispatcher()
    await knowledge.ActionAnswerPolicy().run(dispatcher, tracker("满多少钱包邮？", "zh"), {})
    assert "99" in dispatcher.messages[0]["text"]
    assert any("\u4e00" <= ch <= "\u9fff" for ch in dispatcher.messages[0]["text"])


async def test_picked_suggestion_answers_that_article(store) -> None:
    dispatcher = CollectingDispatcher()
    ents = [{"entity": "kb_article", "value": "invoices-request-window"}]
    events = await knowledge.ActionAnswerPolicy().run(dispatcher, tracker("/ask_policy", "en", entities=ents), {})
    assert SlotSet("kb_last_article", "invoices-request-window") in events
    assert "30 days" in dispatcher.messages[0]["text"]


async def test_unrelated_question_gets_honest_no_answer_and_is_recorded(store) -> None:
    dispatcher = CollectingDispatcher()
    await knowledge.ActionAnswerPolicy().run(
        dispatcher, tracker("what is the capital of australia and its population", "en"), {})
    assert [m["response"] for m in dispatcher.messages] == ["utter_kb_no_answer"]
    (row,) = await store.read(UNANSWERED_STREAM)
    assert row["conversation_id"] == "conv-kb" and row["language"] == "en"
    assert row["question"] == "what is the capital of australia and its population"


async def test_unhelpful_feedback_is_stored_and_offers_a_human(store) -> None:
    dispatcher = CollectingDispatcher()
    t = tracker("/deny", "zh", intent="deny",
                slots={"kb_last_article": "refunds-bank-card", "kb_last_question": "退款多久"})
    events = await knowledge.ActionKbFeedback().run(dispatcher, t, {})
    assert events == [SlotSet("kb_last_article", None)]
    assert [m["response"] for m in dispatcher.messages] == ["utter_kb_sorry_unhelpful"]
    (row,) = await store.read(FEEDBACK_STREAM)
    assert (row["article_id"], row["helpful"], row["language"], row["question"]) == (
        "refunds-bank-card", "0", "zh", "退款多久")


async def test_missing_index_says_the_kb_is_unavailable(store, tmp_path, monkeypatch) -> None:
    from kb_index import settings as kb_settings

    monkeypatch.setenv("KB_INDEX_DIR", str(tmp_path / "no-index-here"))
    kb_settings.get_settings.cache_clear()
    knowledge.reset_retriever()
    try:
        dispatcher = CollectingDispatcher()
        await knowledge.ActionAnswerPolicy().run(dispatcher, tracker("how much is shipping", "en"), {})
        assert [m["response"] for m in dispatcher.messages] == ["utter_kb_unavailable"]
    finally:
        monkeypatch.delenv("KB_INDEX_DIR")
        kb_settings.get_settings.cache_clear()
        knowledge.reset_retriever()


@pytest.mark.parametrize(("scores", "level"), [((0.80, 0.76), "confident"), ((0.80, 0.795), "middling"),
                                               ((0.85, 0.84), "confident"), ((0.75, 0.60), "none")])
def test_one_article_clearly_ahead_is_answered_not_offered(monkeypatch: pytest.MonkeyPatch, scores, level) -> None:
    from types import SimpleNamespace

    from kb_index.retriever import Retriever
    from kb_index.settings import KBSettings

    settings = KBSettings(_env_file=None)  # type: ignore[call-arg]
    hits = [SimpleNamespace(id=f"a{i}", score=s) for i, s in enumerate(scores)]
    fake = SimpleNamespace(settings=settings, search=lambda *a, **k: hits,
                           classify=lambda score, question=None: Retriever.classify(
                               SimpleNamespace(settings=settings), score, question))
    monkeypatch.setattr(knowledge, "get_retriever", lambda: fake)
    assert knowledge._search("q", "en")[0][1] == level
