"""Fallback handling: ask to rephrase once, then offer a human after two consecutive failures."""
from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import verification
from actions.kb_feedback import get_feedback_store
from actions.knowledge import answer_from_kb, customer_language
from bot.shared.tracker_events import applied_events, intent_of

NLU_FALLBACK_INTENT = "nlu_fallback"
FAILURES_BEFORE_OFFERING_HUMAN = 2
ACTION_NAME = "action_fallback"
FORM_HINTS = {"order_number": "utter_order_number_invalid", "phone_last4": "utter_phone_last4_invalid"}
SMALL_TALK_INTENTS = ("greet", "goodbye", "thank", "affirm", "deny")
SMALL_TALK_MASS = 0.8  # NLU probability on those above which a fallback message is small talk, not a question


def consecutive_failures(events: list[dict[str, Any]]) -> int:
    """Count the customer's latest turns in a row that the bot failed, including the current one.

    A turn failed when NLU fell back (``nlu_fallback``) or when the bot answered it with ``action_fallback``
    (the dialogue policy could not decide). The current turn is being handled by ``action_fallback``. Turns that were
    rewound, undone or restarted away do not count (bot/shared/tracker_events.py).
    """
    turns: list[bool] = []
    for event in applied_events(events):
        if event.get("event") == "user":
            turns.append(intent_of(event) == NLU_FALLBACK_INTENT)
        elif event.get("event") == "action" and event.get("name") == ACTION_NAME and turns:
            turns[-1] = True
    if turns:
        turns[-1] = True
    count = 0
    for failed in reversed(turns):
        if not failed:
            break
        count += 1
    return count


def _looks_like_a_question(tracker: Tracker) -> bool:
    """Worth a knowledge-base lookup: an NLU fallback on real text (not a button payload or a one-word reply)."""
    intent = tracker.get_intent_of_latest_message(skip_fallback_intent=False) or (
        tracker.latest_message.get("intent") or {}).get("name")
    text = (tracker.latest_message.get("text") or "").strip()
    # Not when the NLU only hesitated between kinds of small talk ("thx bye": thank or goodbye): a short message
    # would otherwise be read as a follow-up of the previous question and answered with an article.
    chat = sum(float(r.get("confidence") or 0.0) for r in tracker.latest_message.get("intent_ranking") or []
               if r.get("name") in SMALL_TALK_INTENTS)
    # Three Chinese characters are a whole question ("拉萨呢?" after a delivery-time answer); "ok" or "??" are not.
    long_enough = len(text) >= 4 or sum(1 for ch in text if "\u4e00" <= ch <= "\u9fff") >= 3
    return intent == NLU_FALLBACK_INTENT and not text.startswith("/") and long_enough and chat < SMALL_TALK_MASS


async def _record(tracker: Tracker, store: Any, kb_decision: str) -> None:
    """An NLU fallback on the customer's own words (not a button payload) goes to the editors' inbox stream, with
    the NLU's best real guess and what the knowledge base made of it."""
    intent = (tracker.latest_message.get("intent") or {}).get("name")
    text = (tracker.latest_message.get("text") or "").strip()
    if store is None or intent != NLU_FALLBACK_INTENT or not text or text.startswith("/"):
        return
    guess = next((r for r in tracker.latest_message.get("intent_ranking") or []
                  if r.get("name") not in (NLU_FALLBACK_INTENT, None)), None)
    await store.record_fallback(tracker.sender_id, text, customer_language(tracker),
                                guess.get("name") if guess else None,
                                round(float(guess.get("confidence") or 0.0), 4) if guess else None, kb_decision)


class ActionFallback(Action):
    """A confident knowledge-base answer if there is one; else rephrase prompt, then (2nd failure) offer a human."""

    def name(self) -> str:
        return ACTION_NAME

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        store = get_feedback_store()
        if _looks_like_a_question(tracker):
            events = await answer_from_kb(dispatcher, tracker, store, allow_none=False)
            await _record(tracker, store, "kb" if events is not None else "none")
            if events is not None:
                return events
        else:
            await _record(tracker, store, "not_searched")
        requested = tracker.get_slot("requested_slot") if tracker.active_loop.get("name") else None
        if requested in FORM_HINTS:
            # Inside an order form, an answer the NLU could not place ("DM123") gets the form's own format hint.
            digits = verification.policy().identifiers.phone.verification_digits
            dispatcher.utter_message(response=FORM_HINTS[requested], digits=digits)
            return []
        if consecutive_failures(tracker.applied_events()) >= FAILURES_BEFORE_OFFERING_HUMAN:
            dispatcher.utter_message(response="utter_offer_human")
        else:
            dispatcher.utter_message(response="utter_rephrase")
        return []
