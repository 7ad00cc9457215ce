"""Fallback counting goes through the one tracker-event walker: an undone or rewound failure does not count."""
from __future__ import annotations

from actions.fallback import consecutive_failures


def user(text: str, intent: str) -> dict:
    return {"event": "user", "text": text, "parse_data": {"intent": {"name": intent}}}


LISTEN = {"event": "action", "name": "action_listen"}
FALLBACK = {"event": "action", "name": "action_fallback"}


def test_a_rewound_failed_turn_does_not_count() -> None:
    failed = [LISTEN, user("asdf", "nlu_fallback"), FALLBACK]
    assert consecutive_failures(failed + [LISTEN, user("qwer", "nlu_fallback")]) == 2
    # The gateway undid the first failed turn (rewind + action_listen): the customer's retry is the first failure.
    rewound = failed + [{"event": "rewind"}, LISTEN, user("qwer", "nlu_fallback")]
    assert consecutive_failures(rewound) == 1


def test_restart_and_session_start_reset_the_count() -> None:
    failed = [LISTEN, user("asdf", "nlu_fallback"), FALLBACK]
    assert consecutive_failures(failed + [{"event": "restart"}, LISTEN, user("hi", "greet")]) == 1
    assert consecutive_failures(failed + [{"event": "session_started"}, LISTEN, user("x", "nlu_fallback")]) == 1


def test_an_undone_fallback_action_no_longer_marks_its_turn() -> None:
    events = [LISTEN, user("where is it", "order_status"), FALLBACK, {"event": "undo"},
              LISTEN, user("hm?", "nlu_fallback")]
    assert consecutive_failures(events) == 1
