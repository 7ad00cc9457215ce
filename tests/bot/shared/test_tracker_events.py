"""The one tracker-event walker: Rasa's undo / rewind / restart / session_started semantics, and its users
(fallback counting, frustration turns and curve) honouring them."""
from __future__ import annotations

from typing import Any

from bot.shared.frustration.conversation import FailureSignals, turns_from_events
from bot.shared.tracker_events import applied_events, since_latest_user, user_events


def user(text: str, intent: str = "greet", score: float = 0.0) -> dict[str, Any]:
    return {"event": "user", "text": text,
            "parse_data": {"intent": {"name": intent}, "frustration": {"score": score}}}


def action(name: str) -> dict[str, Any]:
    return {"event": "action", "name": name}


LISTEN = action("action_listen")
FAILURES = FailureSignals.from_dict({"fallback_actions": ["action_fallback"], "fallback_intents": ["nlu_fallback"]})


def texts(events) -> list:
    return [e["text"] for e in user_events(events)]


def test_rewind_removes_the_message_and_the_listen_before_it() -> None:
    events = [LISTEN, user("a"), action("utter_a"), LISTEN, user("b"), action("action_x"), {"event": "rewind"}]
    applied = applied_events(events)
    assert applied == [LISTEN, user("a"), action("utter_a")]
    # What channels/turns.py posts after a failed turn: rewind + action_listen; the retry is then counted once.
    retried = events + [LISTEN, user("b")]
    assert texts(retried) == ["a", "b"]


def test_undo_removes_back_to_the_previous_action() -> None:
    events = [LISTEN, user("a"), action("utter_a"), {"event": "slot", "name": "x", "value": 1}, {"event": "undo"}]
    assert applied_events(events) == [LISTEN, user("a")]


def test_restart_and_session_start_clear_everything_before() -> None:
    assert texts([user("a"), {"event": "restart"}, user("b")]) == ["b"]
    assert texts([user("a"), {"event": "session_started"}, LISTEN, user("c")]) == ["c"]


def test_rewind_at_the_start_is_harmless() -> None:
    assert applied_events([{"event": "rewind"}, {"event": "undo"}, user("a")]) == [user("a")]


def test_since_latest_user_is_the_current_turn() -> None:
    events = [LISTEN, user("a"), action("utter_a"), LISTEN, user("b"), {"event": "slot", "name": "s", "value": 2},
              action("x")]
    assert since_latest_user(events) == [{"event": "slot", "name": "s", "value": 2}, action("x")]
    assert since_latest_user(events + [{"event": "rewind"}]) == [action("utter_a")]


def test_applying_twice_changes_nothing_after_a_session_start() -> None:
    events = [user("a"), {"event": "session_started"}, LISTEN, user("b"), action("y"), {"event": "undo"}]
    once = applied_events(events)
    assert applied_events(once) == once


def test_frustration_turns_ignore_a_rewound_angry_message() -> None:
    events = [LISTEN, user("hello", score=10), action("utter_greet"), LISTEN, user("WORST SERVICE", score=90),
              action("action_failed"), {"event": "rewind"}, LISTEN, user("ok thanks", score=5)]
    turns, _ = turns_from_events(events, FAILURES)
    assert [t.text for t in turns] == ["hello", "ok thanks"]


def test_failures_in_a_row_ignore_an_undone_fallback_and_restart() -> None:
    fallback_turn = [LISTEN, user("??", "nlu_fallback"), action("action_fallback")]
    _, failures = turns_from_events(fallback_turn * 2, FAILURES)
    assert failures == 2
    # The fallback action of the second turn was undone: that turn no longer counts as a bot failure by action.
    undone = fallback_turn + [LISTEN, user("hm", "greet"), action("action_fallback"), {"event": "undo"}]
    assert turns_from_events(undone, FAILURES)[1] == 0
    assert turns_from_events(fallback_turn * 2 + [{"event": "restart"}], FAILURES) == ([], 0)
