"""Was a silent bot turn a failure? Decides whether the gateway apologises when Rasa answers nothing.

Rasa answers an empty list both when nothing needed saying and when a custom action failed (action server down,
crashed or too slow: Rasa logs "Encountered an exception while running action ...", drops that action's events and
carries on). The tracker tells them apart: a custom action (or form) that ran successfully leaves at least one
event after its ``action`` event (a bot message, a slot, a loop change); one that failed leaves none, because Rasa
logs the ``action`` event alone. Turns where Rasa simply listened (no custom action ran) stay silent, and silence
after a handoff is recognised before this check (the owner is no longer the bot).

A failed turn is undone with ``UNDO_FAILED_TURN``, so the message sent again is understood in the same context as
the first time (e.g. a "yes" to a pending question, an answer to an active form). Rasa's ``rewind`` alone is not
enough: it removes the customer's message, what followed it AND the ``action_listen`` before it (Rasa 3.6
``DialogueStateTracker.applied_events``: undo until the previous user event, then until the previous action), so
the tracker's latest action becomes the previous turn's last action (e.g. the form that asked the question). The
message sent again then follows that action instead of a listen: RulePolicy predicts ``action_listen`` straight
away ("after loop", or the end of a rule) and the retry is silent. Rasa's own fallback actions follow a rewind with
``action_listen`` for this reason; so do we, which leaves the tracker exactly as it was before the message.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from conversations.rasa_client import RasaClient, RasaError
from conversations.store import ChatMessage

logger = logging.getLogger(__name__)

# Rasa's built-in actions: they run inside Rasa (no action server), several legitimately leave no event.
RASA_DEFAULT_ACTIONS = frozenset({
    "action_listen", "action_restart", "action_session_start", "action_default_fallback",
    "action_deactivate_loop", "action_revert_fallback_events", "action_default_ask_affirmation",
    "action_default_ask_rephrase", "action_two_stage_fallback", "action_unlikely_intent", "action_back",
    "action_extract_slots", "action_send_text",
})
_TURN_EVENTS = ("user", "action")
# Undo a failed turn: drop the message, its events and the listen before it, then listen again (as before it).
UNDO_FAILED_TURN = ({"event": "rewind"}, {"event": "action", "name": "action_listen"})


@dataclass
class RetryableNotice(ChatMessage):
    """A system message that apologises for an unanswered customer message: the message stays open for retry (a
    client retry of the same message id is answered again instead of replaying this notice)."""


def failed_action(events: list[dict[str, Any]], text: str) -> str | None:
    """The custom action of the latest turn for ``text`` that left no trace (it failed), or None."""
    start = None
    for i in range(len(events) - 1, -1, -1):
        if events[i].get("event") == "user" and (events[i].get("text") or "") == text:
            start = i
            break
    if start is None:
        return None
    turn: list[dict[str, Any]] = []
    for event in events[start + 1:]:
        if event.get("event") == "user":
            break
        turn.append(event)
    for i, event in enumerate(turn):
        name = event.get("name") or ""
        if event.get("event") != "action" or name in RASA_DEFAULT_ACTIONS or name.startswith("utter_"):
            continue
        following = turn[i + 1] if i + 1 < len(turn) else None
        if following is None or following.get("event") in _TURN_EVENTS:
            return name
    return None


async def check_silent_turn(rasa: RasaClient, conversation_id: str, text: str) -> bool:
    """True when the silent turn for ``text`` failed (or cannot be checked): the customer is owed an apology. A
    failed turn that is still the latest one is undone, so the same message can be sent again."""
    try:
        tracker = await rasa.get_tracker(conversation_id)
    except RasaError as exc:
        logger.warning("silent turn in %s not checkable: %s", conversation_id, exc)
        return True
    events = tracker.get("events") or []
    name = failed_action(events, text)
    if name is None:
        return False
    logger.warning("action %s failed in %s: the customer is told to retry", name, conversation_id)
    latest_user = next((e for e in reversed(events) if e.get("event") == "user"), None)
    if latest_user is not None and (latest_user.get("text") or "") == text:
        try:
            await rasa.append_events(conversation_id, [dict(e) for e in UNDO_FAILED_TURN])
        except RasaError as exc:
            logger.warning("could not undo the failed turn in %s: %s", conversation_id, exc)
    return True
