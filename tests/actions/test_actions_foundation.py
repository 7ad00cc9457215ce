"""Fallback counting and order-number acknowledgement, with tracker fixtures and a collecting dispatcher."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.fallback import ActionFallback, consecutive_failures
from actions.order_number import ActionAcknowledgeOrderNumber


def user(intent: str, text: str = "x", entities: list[dict] | None = None) -> dict[str, Any]:
    return {"event": "user", "text": text,
            "parse_data": {"intent": {"name": intent, "confidence": 0.9}, "entities": entities or []}}


def action(name: str) -> dict[str, Any]:
    return {"event": "action", "name": name}


def tracker(events: list[dict[str, Any]]) -> Tracker:
    latest = next((e["parse_data"] | {"text": e["text"]} for e in reversed(events) if e["event"] == "user"), {})
    return Tracker("c1", {"language": "en"}, latest, events, False, None, {}, "action_listen")


def test_first_failure_asks_to_rephrase() -> None:
    dispatcher = CollectingDispatcher()
    events = [user("greet"), action("utter_greet"), user("nlu_fallback")]
    result = ActionFallback().run(dispatcher, tracker(events), {})
    assert asyncio.run(result) == []
    assert [m["response"] for m in dispatcher.messages] == ["utter_rephrase"]


def test_second_consecutive_failure_offers_a_human() -> None:
    dispatcher = CollectingDispatcher()
    events = [user("nlu_fallback"), action("action_fallback"), user("nlu_fallback")]
    asyncio.run(ActionFallback().run(dispatcher, tracker(events), {}))
    assert [m["response"] for m in dispatcher.messages] == ["utter_offer_human"]


def test_understood_message_resets_the_failure_count() -> None:
    events = [user("nlu_fallback"), action("action_fallback"), user("greet"), action("utter_greet"),
              user("nlu_fallback")]
    assert consecutive_failures(events) == 1


def test_core_fallback_on_a_recognised_intent_counts_as_failure() -> None:
    events = [user("affirm"), action("action_fallback"), user("deny")]
    assert consecutive_failures(events) == 2


def test_new_session_starts_counting_again() -> None:
    events = [user("nlu_fallback"), action("action_fallback"), {"event": "session_started"}, user("nlu_fallback")]
    assert consecutive_failures(events) == 1


def test_valid_order_number_is_stored_and_acknowledged() -> None:
    dispatcher = CollectingDispatcher()
    ents = [{"entity": "order_number", "value": "dm2026110512"}]
    events = [user("provide_order_number", "dm2026110512", ents)]
    result = asyncio.run(ActionAcknowledgeOrderNumber().run(dispatcher, tracker(events), {}))
    assert result == [SlotSet("order_number", "DM2026110512")]
    assert dispatcher.messages[0]["response"] == "utter_order_number_noted"
    assert dispatcher.messages[0]["order_number"] == "DM2026110512"


def test_malformed_order_number_gets_the_format_and_is_not_echoed() -> None:
    dispatcher = CollectingDispatcher()
    events = [user("provide_order_number", "DM12345<script>")]
    result = asyncio.run(ActionAcknowledgeOrderNumber().run(dispatcher, tracker(events), {}))
    assert result == []
    assert [m["response"] for m in dispatcher.messages] == ["utter_order_number_invalid"]


@pytest.mark.parametrize(
    ("value", "noted"),
    [
        (" dm2026110512 ", "DM2026110512"),  # what the extractor or a customer hands over: spaces, lower case
        ("DM2026110512' OR 1=1 --", None),  # unsafe input is refused, never echoed back
        ("<script>DM2026110512</script>", None),
    ],
)
def test_acknowledged_order_numbers_use_the_one_normalisation(value: str, noted: str | None) -> None:
    """Moved from tests/bot/shared (bot.shared.patterns.normalize_order_number is gone): the acknowledgement
    action normalises with actions.orders.validation.normalise_order_number like the form and the backends."""
    dispatcher = CollectingDispatcher()
    events = [user("provide_order_number", value, [{"entity": "order_number", "value": value}])]
    result = asyncio.run(ActionAcknowledgeOrderNumber().run(dispatcher, tracker(events), {}))
    assert result == ([SlotSet("order_number", noted)] if noted else [])
    assert [m["response"] for m in dispatcher.messages] == (
        ["utter_order_number_noted"] if noted else ["utter_order_number_invalid"])
    assert "<script>" not in str(dispatcher.messages) and "OR 1=1" not in str(dispatcher.messages)
