"""The one walker over Rasa tracker events (plain dicts, as rasa-sdk and ``Event.as_dict()`` give them).

Rasa semantics, as ``DialogueStateTracker.applied_events`` in Rasa 3.6:
- ``restart`` and ``session_started`` clear everything before them;
- ``undo`` (ActionReverted) removes events back to and including the previous ``action``;
- ``rewind`` (UserUtteranceReverted) removes events back to and including the previous ``user`` event, then back to
  and including the ``action`` before it (the ``action_listen`` that preceded the message).
Not reproduced: Rasa's undoing of repeated loop (form) executions, which only matters for featurizing forms.

rasa-sdk 3.x's ``Tracker.applied_events()`` handles restart/undo/rewind but not ``session_started``; applying this
walker to its output is safe (a list without revert events is returned unchanged after the last session start).
Pure Python: used by the Rasa policy (3.10) and the action server (3.11) alike.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

Event = Mapping[str, Any]
CLEARING = ("restart", "session_started")


def _undo_till(kind: str, done: list[Event]) -> None:
    while done:
        event = done.pop()
        if event.get("event") == kind:
            return


def applied_events(events: Iterable[Event]) -> list[Event]:
    """The events still in force: reverted ones removed, nothing before the latest restart/session start."""
    done: list[Event] = []
    for event in events:
        kind = event.get("event")
        if kind in CLEARING:
            done = []
        elif kind == "undo":
            _undo_till("action", done)
        elif kind == "rewind":
            _undo_till("user", done)
            _undo_till("action", done)
        else:
            done.append(event)
    return done


def user_events(events: Iterable[Event]) -> list[Event]:
    """The customer's messages still in force (current session)."""
    return [e for e in applied_events(events) if e.get("event") == "user"]


def intent_of(event: Event) -> str | None:
    return ((event.get("parse_data") or {}).get("intent") or {}).get("name")


def since_latest_user(events: Iterable[Event]) -> list[Event]:
    """Applied events after the customer's latest message (what the bot has done in this turn so far)."""
    done = applied_events(events)
    for index in range(len(done) - 1, -1, -1):
        if done[index].get("event") == "user":
            return done[index + 1:]
    return done


def as_dicts(events: Iterable[Any]) -> list[dict[str, Any]]:
    """Rasa ``Event`` objects or dicts -> dicts (the policy passes ``tracker.events``)."""
    return [e if isinstance(e, dict) else e.as_dict() for e in events]
