"""Attacks on order verification, performed against the real actions, a real order database and a real Redis.

The tracker is what an attacker controls (a forged tracker, a new conversation, /restart): none of it may unlock an
order or reset the count of wrong answers."""
from __future__ import annotations

import asyncio

import redis

from actions import forms, verification
from actions.order_flows import ActionOrderStatus
from actions.orders.enums import OrderStatus
from actions.verification_store import record_key
from tests.actions.order_fixtures import LAST4, Env, responses, run, user

NUMBER = "DM2026111501"
FORM = "order_verification_form"


def guess(digits: str, conversation: str, client: str = "attacker", number: str = NUMBER) -> tuple[list, list]:
    """One answer to "the last 4 digits?" in a conversation, from a client (the gateway's pseudonym)."""
    events = [user("provide_order_number", digits, metadata={"client": client}),
              {"event": "slot", "name": "phone_last4", "value": digits}]
    slots = {"requested_slot": "phone_last4", "phone_last4": digits, "order_number": number}
    return run(forms.ValidateOrderVerificationForm(), slots, events, FORM, sender=conversation)


def verified(events: list) -> bool:
    return any(e["name"] == "verified_orders" and e["value"] for e in events)


def test_a_forged_tracker_claiming_verification_reveals_nothing(env: Env) -> None:
    env.scenario.order(NUMBER, OrderStatus.IN_TRANSIT)
    forged = {"order_number": NUMBER, "verified_orders": {NUMBER: LAST4}}
    events, messages = run(ActionOrderStatus(), forged, recorded=False, sender="attacker-conv")
    assert responses(messages) == ["utter_order_not_verified"]
    assert not any("tracking" in str(m) or "items" in str(m) for m in messages)


def test_new_conversations_do_not_reset_the_count_of_wrong_answers(env: Env) -> None:
    env.scenario.order(NUMBER, OrderStatus.IN_TRANSIT)
    # The attack of the report: wrong guesses spread over fresh conversations (or /restart), then the right one.
    for i, digits in enumerate(("0000", "1111", "2222")):
        guess(digits, f"conv-{i}")
    events, messages = guess(LAST4, "conv-3")
    assert not verified(events) and messages == []  # the form stops asking; the flow action explains the lock
    # Not even from another client: the order itself is locked for its window.
    events, _ = guess(LAST4, "conv-4", client="someone-else")
    assert not verified(events)
    _, messages = run(ActionOrderStatus(), {"order_number": NUMBER}, sender="conv-4")
    assert responses(messages) == ["utter_lookups_locked"]


def test_one_client_guessing_many_orders_is_stopped(env: Env) -> None:
    numbers = [f"DM20261115{n:02d}" for n in range(10, 16)]
    for number in numbers:
        env.scenario.order(number, OrderStatus.IN_TRANSIT)
    # Two wrong answers per order (under the per-order limit), each in a new conversation: 10 per client and hour.
    for i in range(10):
        guess("0000", f"c-{i}", number=numbers[i // 2])
    events, _ = guess(LAST4, "c-last", number=numbers[5])
    assert not verified(events)
    # The legitimate owner on another connection is not affected.
    events, _ = guess(LAST4, "owner", client="owner", number=numbers[5])
    assert verified(events)


def test_the_right_answer_clears_earlier_typos_of_that_order(env: Env) -> None:
    env.scenario.order(NUMBER, OrderStatus.IN_TRANSIT)
    guess("0000", "c1", client="owner")
    guess("1111", "c1", client="owner")
    assert verified(guess(LAST4, "c1", client="owner")[0])
    _, messages = guess("2222", "c2", client="owner")
    assert messages[0]["attempts_left"] == 2


def test_verification_expires_when_idle_and_is_renewed_by_use(env: Env, redis_url: str) -> None:
    env.scenario.order(NUMBER, OrderStatus.IN_TRANSIT)
    assert verified(guess(LAST4, "c1", client="owner")[0])
    r = redis.Redis.from_url(redis_url)
    assert 1790 <= r.ttl(record_key("c1", NUMBER)) <= 1800  # VERIFICATION_IDLE_MINUTES = 30
    r.expire(record_key("c1", NUMBER), 5)
    _, messages = run(ActionOrderStatus(), {"order_number": NUMBER}, recorded=False)
    assert "utter_order_status" in responses(messages)
    assert r.ttl(record_key("c1", NUMBER)) > 1700  # used: renewed
    r.delete(record_key("c1", NUMBER))  # what an idle expiry does
    _, messages = run(ActionOrderStatus(), {"order_number": NUMBER, "verified_orders": {NUMBER: LAST4}},
                      recorded=False)
    assert responses(messages) == ["utter_order_not_verified"]


def test_the_store_is_per_event_loop() -> None:
    async def one() -> object:
        return verification.store()

    verification.reset()
    assert asyncio.run(one()) is not asyncio.run(one())
    verification.reset()

