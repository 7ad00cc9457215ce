"""Rasa's Redis tracker store with a save that costs O(new events), plus one validation fix.

Rasa 3.6's ``RedisTrackerStore.save`` reloads the stored tracker, replays it and - whenever the stored
events do not compare equal to the in-memory ones, which for this bot is every turn after the first
(the per-message parse data never round-trips to an equal event) - merges the two by calling
``as_dict()`` on every stored event for every new event: quadratic in the conversation length.
Profiling ``make bench`` put 46 % of the Rasa process's time there. The stored JSON already holds
the old events as dicts, so :func:`merge_event_dicts` appends only what is new, with the same result
as Rasa's merge (old events kept in order, events not yet stored appended, none twice).

Rasa also validates every action-server response with ``jsonschema.validate``, which re-checks the
response *schema* against the JSON-Schema meta-schema on every call (15 % of the process's time).
:func:`validate_action_result` validates against the same schema with a validator built once (same
errors, same message). Rasa builds ``RemoteAction`` objects itself and offers no hook for their
validation, so this module sets ``RemoteAction._validate_action_result`` once, when it is imported:
Rasa imports it at start-up because ``endpoints.yml`` names ``type:
bot.plugins.tracker_store.LinearRedisTrackerStore``, before any action runs. Nothing is patched
from a constructor; :func:`install_action_response_validator` is idempotent.
"""
from __future__ import annotations

import json
import logging
from functools import lru_cache
from typing import Any

from rasa.core.actions.action import RemoteAction
from rasa.core.tracker_store import RedisTrackerStore
from rasa.shared.core.trackers import DialogueStateTracker

logger = logging.getLogger(__name__)

Event = dict[str, Any]


def _key(event: Event) -> str:
    return json.dumps(event, sort_keys=True, ensure_ascii=False, default=str)


def merge_event_dicts(stored: list[Event], current: list[Event]) -> list[Event]:
    """Rasa's merge in linear time: ``stored`` (all sessions, from Redis) in order, then the events of ``current``
    not stored yet, none twice. ``save`` only needs it when the in-memory events do not line up with the end of
    the stored ones (see :func:`_misaligned`); otherwise it appends the newer events directly."""
    seen = {_key(event) for event in stored}
    merged = list(stored)
    for event in current:
        key = _key(event)
        if key not in seen:
            seen.add(key)
            merged.append(event)
    return merged


class LinearRedisTrackerStore(RedisTrackerStore):
    """``RedisTrackerStore`` (same keys, format and expiry) whose ``save`` does not grow quadratically."""

    async def save(self, tracker: DialogueStateTracker, timeout: float | None = None) -> None:
        """Stores the tracker, keeping the events of earlier sessions already in Redis."""
        await self.stream_events(tracker)
        if not timeout and self.record_exp:
            timeout = self.record_exp
        key = self.key_prefix + tracker.sender_id
        stored = self.red.get(key)
        stored_events: list[Event] = []
        if stored is not None:
            try:
                stored_events = list(json.loads(stored).get("events") or [])
            except (ValueError, AttributeError):
                logger.warning("unreadable stored tracker for %s; overwriting it", tracker.sender_id)
        if not stored_events:
            events = [e.as_dict() for e in tracker.events]
        elif _misaligned(stored_events, tracker):
            events = merge_event_dicts(stored_events, [e.as_dict() for e in tracker.events])
        else:
            # The usual case: serialise only the events newer than the stored ones (as_dict is the costly part).
            last = stored_events[-1].get("timestamp") or 0.0
            events = stored_events + [e.as_dict() for e in tracker.events if (e.timestamp or 0.0) > last]
        self.red.set(key, json.dumps({"events": events, "name": tracker.sender_id}), ex=timeout)


def _misaligned(stored: list[Event], tracker: DialogueStateTracker) -> bool:
    """True when the tracker's already-stored events do not line up with the end of ``stored``
    (then the full comparison of :func:`merge_event_dicts` decides)."""
    last = stored[-1].get("timestamp") or 0.0
    old = [e for e in tracker.events if (e.timestamp or 0.0) <= last]
    if len(old) > len(stored):
        return True
    tail = stored[len(stored) - len(old):] if old else []
    return not all(e.timestamp == s.get("timestamp") and e.type_name == s.get("event") for e, s in zip(old, tail))


@lru_cache(maxsize=1)
def _response_validator() -> Any:
    """A validator for Rasa's action-server response schema, checked against the meta-schema once."""
    from jsonschema.validators import validator_for

    schema = RemoteAction.action_response_format_spec()
    cls = validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def validate_action_result(self: RemoteAction, result: dict[str, Any]) -> bool:
    """``RemoteAction._validate_action_result`` with the validator built once: same schema, same error."""
    from jsonschema import ValidationError
    from jsonschema.exceptions import best_match
    from rasa.shared.constants import DOCS_BASE_URL

    error = best_match(_response_validator().iter_errors(result))
    if error is not None:
        assert isinstance(error, ValidationError)
        error.message += (
            ". Failed to validate Action server response from API, make sure your response from the Action "
            f"endpoint is valid. For more information about the format visit {DOCS_BASE_URL}/custom-actions"
        )
        raise error
    return True


RASA_VALIDATE_ACTION_RESULT = RemoteAction._validate_action_result  # Rasa's own (kept for the equivalence test)


def install_action_response_validator() -> None:
    """Make Rasa validate action-server responses with :func:`validate_action_result` (idempotent)."""
    if RemoteAction._validate_action_result is not validate_action_result:
        RemoteAction._validate_action_result = validate_action_result  # type: ignore[method-assign]


install_action_response_validator()  # once, at import (see the module docstring)
