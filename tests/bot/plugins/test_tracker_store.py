"""bot.plugins.tracker_store: the linear-time Redis tracker store keeps exactly what Rasa's own merge keeps."""
from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator

import pytest
import redis
from rasa.core.tracker_store import RedisTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from bot.plugins.tracker_store import LinearRedisTrackerStore, merge_event_dicts

DOMAIN = Domain.from_dict({"intents": ["greet"], "slots": {"lang": {"type": "any", "mappings": []}}})


def _turn(text: str, t: float) -> list:
    return [
        UserUttered(text, {"name": "greet", "confidence": 0.9}, timestamp=t, parse_data={"x": [1, 2]}),
        SlotSet("lang", "zh", timestamp=t + 0.1),
        ActionExecuted("utter_greet", timestamp=t + 0.2),
        BotUttered("hi", timestamp=t + 0.3),
        ActionExecuted("action_listen", timestamp=t + 0.4),
    ]


@pytest.fixture
def stores(redis_url: str) -> Iterator[tuple]:
    client = redis.Redis.from_url(redis_url)
    port = client.connection_pool.connection_kwargs["port"]
    ours = LinearRedisTrackerStore(DOMAIN, host="127.0.0.1", port=port, key_prefix="ours")
    theirs = RedisTrackerStore(DOMAIN, host="127.0.0.1", port=port, key_prefix="theirs")
    yield ours, theirs, client
    client.close()


def _stored(client: redis.Redis, prefix: str, sender: str) -> list:
    return json.loads(client.get(f"{prefix}:tracker:{sender}"))["events"]


def test_turn_by_turn_saves_store_what_rasa_stores(stores: tuple) -> None:
    asyncio.run(_turn_by_turn(stores))


async def _turn_by_turn(stores: tuple) -> None:
    ours, theirs, client = stores
    sender = uuid.uuid4().hex
    for store in (ours, theirs):
        for turn in range(6):
            tracker = await store.retrieve(sender) or DialogueStateTracker(sender, DOMAIN.slots)
            tracker.update_with_events(_turn(f"hello {turn}", 1000.0 + turn), DOMAIN, override_timestamp=False)
            await store.save(tracker)
    mine, rasas = _stored(client, "ours", sender), _stored(client, "theirs", sender)
    assert len(mine) == 30 and mine == rasas
    assert [e["text"] for e in mine if e["event"] == "user"] == [f"hello {i}" for i in range(6)]


def test_a_new_session_keeps_the_earlier_sessions(stores: tuple) -> None:
    asyncio.run(_new_session(stores))


async def _new_session(stores: tuple) -> None:
    ours, theirs, client = stores
    sender = uuid.uuid4().hex
    for store in (ours, theirs):
        tracker = DialogueStateTracker(sender, DOMAIN.slots)
        tracker.update_with_events(_turn("first session", 1000.0), DOMAIN, override_timestamp=False)
        await store.save(tracker)
        # A later session: `retrieve` hands Rasa only the latest session's events.
        session = [ActionExecuted("action_session_start", timestamp=2000.0), SessionStarted(timestamp=2000.1)]
        tracker.update_with_events(session, DOMAIN, override_timestamp=False)
        await store.save(tracker)
        latest = await store.retrieve(sender)
        assert latest is not None and all(e.timestamp >= 2000.0 for e in latest.events)
        latest.update_with_events(_turn("second session", 3000.0), DOMAIN, override_timestamp=False)
        await store.save(latest)
    mine, rasas = _stored(client, "ours", sender), _stored(client, "theirs", sender)
    assert mine == rasas
    assert [e["text"] for e in mine if e["event"] == "user"] == ["first session", "second session"]
    full = await ours.retrieve_full_tracker(sender)
    assert full is not None and len(full.events) == len(mine)


def test_merge_appends_only_new_events_and_never_duplicates() -> None:
    stored = [{"event": "user", "timestamp": 1.0, "text": "a"}, {"event": "bot", "timestamp": 2.0, "text": "b"}]
    # The usual case: the in-memory tracker is the stored one plus newer events.
    current = [*stored, {"event": "user", "timestamp": 3.0, "text": "c"}]
    assert merge_event_dicts(stored, current) == current
    # Unaligned (an event stored elsewhere meanwhile): everything kept once, stored order first.
    other = [{"event": "user", "timestamp": 1.5, "text": "x"}, stored[1], {"event": "user", "timestamp": 3.0}]
    merged = merge_event_dicts(stored, other)
    assert merged == [*stored, other[0], other[2]]
    assert merge_event_dicts([], current) == current and merge_event_dicts(stored, []) == stored


def test_action_responses_are_still_validated() -> None:
    from jsonschema import ValidationError
    from rasa.core.actions.action import RemoteAction
    from rasa.utils.endpoints import EndpointConfig

    action = RemoteAction("action_x", EndpointConfig("http://127.0.0.1:1/webhook"))
    assert action._validate_action_result({"events": [{"event": "slot", "name": "a", "value": 1}], "responses": []})
    with pytest.raises(ValidationError, match="Failed to validate Action server response"):
        action._validate_action_result({"events": [{"event": 5}], "responses": "nope"})


def test_the_fast_validator_is_set_once_at_import_not_from_a_constructor() -> None:
    from rasa.core.actions.action import RemoteAction

    from bot.plugins import tracker_store

    assert RemoteAction._validate_action_result is tracker_store.validate_action_result
    assert "__init__" not in LinearRedisTrackerStore.__dict__  # building a store patches nothing
    tracker_store.install_action_response_validator()  # idempotent
    assert RemoteAction._validate_action_result is tracker_store.validate_action_result
    assert tracker_store.RASA_VALIDATE_ACTION_RESULT is not tracker_store.validate_action_result


@pytest.mark.parametrize(
    "result",
    [
        {"events": [{"event": "slot", "name": "a", "value": 1}], "responses": []},
        {"events": [], "responses": [{"text": "hi"}]},
        {"events": [{"event": 5}], "responses": "nope"},
        {"events": "x"},
        {"responses": [{"text": 3}]},
    ],
)
def test_the_fast_validator_answers_as_rasas_own(result: dict) -> None:
    """Same outcome and same error message as Rasa's ``_validate_action_result``, with the schema checked once."""
    from jsonschema import ValidationError
    from rasa.core.actions.action import RemoteAction
    from rasa.utils.endpoints import EndpointConfig

    from bot.plugins import tracker_store

    action = RemoteAction("action_x", EndpointConfig("http://127.0.0.1:1/webhook"))
    outcomes = []
    for validate in (tracker_store.RASA_VALIDATE_ACTION_RESULT, tracker_store.validate_action_result):
        try:
            outcomes.append(validate(action, result))
        except ValidationError as exc:
            outcomes.append(exc.message)
    assert outcomes[0] == outcomes[1]
    tracker_store._response_validator.cache_clear()
    for _ in range(3):
        action._validate_action_result({"events": [], "responses": []})
    assert tracker_store._response_validator.cache_info().misses == 1
