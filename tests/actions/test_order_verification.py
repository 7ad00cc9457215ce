"""Verification before any order detail: phone digits, customer token, lock-out, no leaks between customers."""

from __future__ import annotations

import asyncio
import inspect
import time
from datetime import timedelta

import pytest
from rasa_sdk import FormValidationAction
from rasa_sdk.events import SlotSet

from actions import customer_token, forms, verification
from actions.order_flows import ActionOrderStatus
from actions.orders.enums import MembershipTier, OrderStatus
from actions.orders.errors import BackendUnavailable
from tests.actions.order_fixtures import LAST4, NOW, Env, domain, responses, run, tracker, user

NUMBER = "DM2026111501"
FORM = "order_verification_form"
CLEARED = [
    SlotSet("order_lookup_error", None), SlotSet("order_lookup_stopped", None), SlotSet("pending_confirmation", None)
]
SECRET = "test-secret-not-for-production"  # noqa: S105 - test value


def candidate(slot: str, value: object) -> list[dict]:
    """Events as Rasa sends them to a validation action: the user message, then the extracted slot."""
    return [user("provide_order_number", str(value)), {"event": "slot", "name": slot, "value": value}]


def validate(slots: dict, slot: str, value: object, metadata: dict | None = None) -> tuple[list, list]:
    events = candidate(slot, value)
    if metadata:
        events[0]["metadata"] = metadata
    return run(forms.ValidateOrderVerificationForm(), {"requested_slot": slot, slot: value} | slots, events, FORM)


def test_every_validator_names_a_real_slot_of_its_form() -> None:
    dom = domain()
    classes = [c for _, c in inspect.getmembers(forms, inspect.isclass)
               if issubclass(c, FormValidationAction) and c is not FormValidationAction]
    assert len(classes) == 3
    for cls in classes:
        form = cls().name().removeprefix("validate_")
        required = dom["forms"][form]["required_slots"]
        validators = [n.removeprefix("validate_") for n, _ in inspect.getmembers(cls, inspect.isfunction)
                      if n.startswith("validate_")]
        assert validators, cls
        for slot in validators:
            assert slot in required, f"{cls.__name__}.validate_{slot}: not a slot of {form}"
            assert slot in dom["slots"]
        assert f"validate_{form}" in dom["actions"]


def test_correct_digits_verify_the_order_and_end_the_form(env: Env) -> None:
    env.scenario.order(NUMBER, OrderStatus.IN_TRANSIT)
    events, messages = validate({"order_number": NUMBER}, "phone_last4", LAST4)
    assert events == [
        SlotSet("phone_last4", None),
        SlotSet("verification_failures", 0),
        SlotSet("lookups_locked_until", None),
        SlotSet("verified_orders", {NUMBER: LAST4}),
        # The order's customer and tier, recorded server-side (never the digits): tier thresholds, VIP priority.
        SlotSet("customer_id", str(env.service.get_order(NUMBER).customer_id)),
        SlotSet("customer_tier", "gold"),
        SlotSet("requested_slot", None),
    ]
    assert messages == []


def test_a_full_phone_number_counts_as_its_last_digits(env: Env) -> None:
    env.scenario.order(NUMBER, OrderStatus.IN_TRANSIT)
    events, _ = validate({"order_number": NUMBER}, "phone_last4", "手机号是13812345678")
    assert SlotSet("verified_orders", {NUMBER: LAST4}) in events


def test_wrong_digits_count_an_attempt_and_ask_again(env: Env) -> None:
    env.scenario.order(NUMBER, OrderStatus.IN_TRANSIT)
    events, messages = validate({"order_number": NUMBER}, "phone_last4", "0000")
    assert events == [SlotSet("phone_last4", None), SlotSet("verification_failures", 1),
                      SlotSet("lookups_locked_until", None)]
    assert messages[0]["response"] == "utter_verification_failed" and messages[0]["attempts_left"] == 2


def test_not_digits_is_a_format_hint_not_an_attempt(env: Env) -> None:
    env.scenario.order(NUMBER, OrderStatus.IN_TRANSIT)
    events, messages = validate({"order_number": NUMBER}, "phone_last4", "I don't know")
    assert events == [SlotSet("phone_last4", None)]
    assert responses(messages) == ["utter_phone_last4_invalid"] and messages[0]["digits"] == 4


def test_third_failure_locks_lookups_for_the_configured_time(env: Env) -> None:
    env.scenario.order(NUMBER, OrderStatus.IN_TRANSIT)
    validate({"order_number": NUMBER}, "phone_last4", "0000")
    validate({"order_number": NUMBER, "verification_failures": 1}, "phone_last4", "1111")
    events, messages = validate({"order_number": NUMBER, "verification_failures": 2}, "phone_last4", "2222")
    until = (NOW + timedelta(minutes=15)).timestamp()
    locked = next(e["value"] for e in events if e["name"] == "lookups_locked_until")
    assert until - 5 <= locked <= until
    assert events == [SlotSet("phone_last4", None), SlotSet("verification_failures", 3),
                      SlotSet("lookups_locked_until", locked), SlotSet("requested_slot", None)]
    assert messages == []
    # The flow action that follows explains the lock and offers a human; no order detail.
    slots = {"order_number": NUMBER, "lookups_locked_until": locked, "verification_failures": 3}
    _, messages = run(ActionOrderStatus(), slots)
    assert responses(messages) == ["utter_lookups_locked"] and messages[0]["minutes"] == 15
    # While locked even the right digits are not checked.
    events, _ = validate(slots, "phone_last4", LAST4)
    assert SlotSet("verified_orders", {NUMBER: LAST4}) not in events
    assert SlotSet("requested_slot", None) in events


def test_lock_and_attempts_come_from_settings(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env.scenario.order(NUMBER, OrderStatus.IN_TRANSIT)
    monkeypatch.setattr(verification, "flow_settings",
                        lambda: verification.FlowSettings(VERIFICATION_MAX_ATTEMPTS=5, VERIFICATION_LOCK_MINUTES=30))
    verification._store = None
    for wrong in ("0000", "1111", "2222"):
        validate({"order_number": NUMBER}, "phone_last4", wrong)
    events, messages = validate({"order_number": NUMBER}, "phone_last4", "3333")
    assert messages[0]["attempts_left"] == 1
    events, _ = validate({"order_number": NUMBER}, "phone_last4", "4444")
    locked = next(e["value"] for e in events if e["name"] == "lookups_locked_until")
    assert (NOW + timedelta(minutes=29)).timestamp() < locked <= (NOW + timedelta(minutes=30)).timestamp()


def test_an_expired_lock_starts_counting_again(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    env.scenario.order(NUMBER, OrderStatus.IN_TRANSIT)

    class ShortWindow(verification.FlowSettings):
        def store_limits(self) -> verification.Limits:
            return verification.Limits(order="3/2 seconds", client="100/hour")

    monkeypatch.setattr(verification, "flow_settings", lambda: ShortWindow())
    verification._store = None
    for wrong in ("0000", "1111", "2222"):
        events, _ = validate({"order_number": NUMBER}, "phone_last4", wrong)
    assert any(e["name"] == "lookups_locked_until" and e["value"] for e in events)
    time.sleep(2.2)
    events, messages = validate({"order_number": NUMBER}, "phone_last4", "0000")
    assert responses(messages) == ["utter_verification_failed"] and messages[0]["attempts_left"] == 2


def test_another_customers_order_is_not_unlocked_by_my_digits(env: Env) -> None:
    env.scenario.customer(phone="13812345678")
    env.scenario.order("DM2026111502", OrderStatus.IN_TRANSIT, phone="13812345678")
    other = env.scenario.customer(phone="13900009999", name="李娜")
    env.scenario.order(NUMBER, OrderStatus.IN_TRANSIT, phone="13900009999", customer_id=other)
    events, messages = validate({"order_number": NUMBER}, "phone_last4", LAST4)
    assert SlotSet("verification_failures", 1) in events
    assert not any(e["name"] == "verified_orders" for e in events)
    assert responses(messages) == ["utter_verification_failed"]


def test_unknown_numbers_get_the_same_answer_as_wrong_digits(env: Env) -> None:
    events, messages = validate({"order_number": "DM2099999999"}, "phone_last4", LAST4)
    assert SlotSet("verification_failures", 1) in events
    assert responses(messages) == ["utter_verification_failed"]


@pytest.mark.parametrize("raw", ["DM2026111501' OR '1'='1", "<script>alert(1)</script>", "DM123", "dm20261115019",
                                 "x" * 500, "DM2026111501; DROP TABLE orders"])
def test_bad_order_numbers_are_refused_without_echo(env: Env, raw: str) -> None:
    events, messages = validate({}, "order_number", raw)
    assert events[0] == SlotSet("order_number", None)
    assert responses(messages) == ["utter_order_number_invalid"]
    assert all(raw not in str(m) for m in messages)


def test_order_number_is_normalised(env: Env) -> None:
    events, messages = validate({}, "order_number", "dm２０２６１１１５０１")
    assert events[0] == SlotSet("order_number", NUMBER) and messages == []


def _token(customer_id: int, minutes: int = 30) -> str:
    return customer_token.mint(customer_id, int((NOW + timedelta(minutes=minutes)).timestamp()), SECRET)


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verification, "flow_settings",
                        lambda: verification.FlowSettings(CUSTOMER_TOKEN_SECRET=SECRET))
    monkeypatch.setattr(customer_token.time, "time", lambda: NOW.timestamp())


def test_a_token_verifies_the_customers_own_order(env: Env, secret: None) -> None:
    owner = env.scenario.customer()
    env.scenario.order(NUMBER, OrderStatus.IN_TRANSIT, customer_id=owner)
    events, messages = validate({}, "order_number", NUMBER, {"customer_token": _token(owner)})
    assert events == [SlotSet("order_number", NUMBER), SlotSet("verified_orders", {NUMBER: LAST4}),
                      SlotSet("customer_id", str(owner)), SlotSet("customer_tier", "gold"),
                      SlotSet("requested_slot", None)]
    assert messages == []


def test_the_server_vouches_for_the_customer_not_the_tracker(env: Env, secret: None) -> None:
    """What the handoff uses (verification.verified_customer): the recorded customer, else a valid token's
    customer with their tier from the store; forged slots or a forged token give nobody."""
    owner = env.scenario.customer(tier=MembershipTier.PLATINUM)
    env.scenario.order(NUMBER, OrderStatus.IN_TRANSIT, customer_id=owner)
    forged = {"customer_id": "999", "customer_tier": "platinum"}

    def who(metadata: dict, sender: str) -> dict:
        return asyncio.run(verification.verified_customer(tracker(forged, [user(metadata=metadata)], sender=sender)))

    assert who({}, "c-forged") == {"customer_id": None, "customer_tier": None}
    assert who({"customer_token": _token(owner)[:-2] + "xx"}, "c-forged") == {"customer_id": None,
                                                                               "customer_tier": None}
    assert who({"customer_token": _token(owner)}, "c-token") == {"customer_id": str(owner),
                                                                 "customer_tier": "platinum"}
    # Recorded at that first use: later messages without the token keep the customer for the conversation.
    assert who({}, "c-token") == {"customer_id": str(owner), "customer_tier": "platinum"}


def test_a_token_does_not_unlock_another_customers_order(env: Env, secret: None) -> None:
    owner = env.scenario.customer()
    env.scenario.order(NUMBER, OrderStatus.IN_TRANSIT, customer_id=owner)
    intruder = env.scenario.customer(phone="13900009999")
    events, _ = validate({}, "order_number", NUMBER, {"customer_token": _token(intruder)})
    assert events == [SlotSet("order_number", NUMBER)]  # Rasa asks for the phone digits next


@pytest.mark.parametrize("token", ["", "garbage", "1.2.3", "x" * 3000])
def test_forged_or_expired_tokens_are_ignored(env: Env, secret: None, token: str) -> None:
    owner = env.scenario.customer()
    env.scenario.order(NUMBER, OrderStatus.IN_TRANSIT, customer_id=owner)
    forged = _token(owner)[:-2] + "AA"
    expired = _token(owner, minutes=-1)
    for value in (token, forged, expired):
        events, _ = validate({}, "order_number", NUMBER, {"customer_token": value})
        assert events == [SlotSet("order_number", NUMBER)]


def test_flow_actions_refuse_unverified_orders(env: Env) -> None:
    env.scenario.order(NUMBER, OrderStatus.IN_TRANSIT)
    events, messages = run(ActionOrderStatus(), {"order_number": NUMBER, "verified_orders": {"DM2026000001": LAST4}})
    assert responses(messages) == ["utter_order_not_verified"]
    assert events == CLEARED


class _DownService:
    def verify(self, number: str, phone_last4: str) -> bool:
        raise BackendUnavailable("down")

    def get_order(self, number: str) -> None:
        raise BackendUnavailable("down")


class _SlowService:
    def verify(self, number: str, phone_last4: str) -> bool:
        import time

        time.sleep(1.0)
        return True


def test_backend_down_during_verification_apologises_and_ends_the_form(env: Env) -> None:
    verification.set_order_service(_DownService())  # type: ignore[arg-type]
    events, messages = validate({"order_number": NUMBER}, "phone_last4", LAST4)
    assert events == [SlotSet("phone_last4", None), SlotSet("order_lookup_error", True),
                      SlotSet("requested_slot", None)]
    assert responses(messages) == ["utter_order_backend_error"]


def test_a_slow_backend_counts_as_down(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    verification.set_order_service(_SlowService())  # type: ignore[arg-type]
    monkeypatch.setattr(verification, "flow_settings", lambda: verification.FlowSettings(ORDER_LOOKUP_TIMEOUT_S=0.2))
    events, messages = validate({"order_number": NUMBER}, "phone_last4", LAST4)
    assert SlotSet("order_lookup_error", True) in events
    assert responses(messages) == ["utter_order_backend_error"]


def test_backend_down_in_a_flow_offers_a_human(env: Env) -> None:
    verification.set_order_service(_DownService())  # type: ignore[arg-type]
    events, messages = run(ActionOrderStatus(), {"order_number": NUMBER, "verified_orders": {NUMBER: LAST4}})
    assert responses(messages) == ["utter_order_backend_error"]
    assert events == CLEARED


def _ask(slot: str, intent: str, text: str, confidence: float = 0.95) -> tuple[list, list]:
    events = [user(intent, text), {"event": "slot", "name": slot, "value": text}]
    events[0]["parse_data"]["intent"]["confidence"] = confidence
    slots = {"requested_slot": slot, slot: text} | ({"order_number": NUMBER} if slot == "phone_last4" else {})
    return run(forms.ValidateOrderVerificationForm(), slots, events, FORM)


def test_a_knowledge_question_while_asked_for_digits_is_answered_then_asked_again(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)  # no feedback store needed: no "did this help?" inside a form
    env.scenario.order(NUMBER, OrderStatus.IN_TRANSIT)
    events, messages = _ask("phone_last4", "ask_policy", "how much is shipping")
    assert events == [SlotSet("phone_last4", None)]  # the form asks for the digits again
    # Only the KB answer: no "did this help?" and no "that is not 4 digits" hint.
    assert len(messages) == 1 and not messages[0].get("response")
    assert messages[0]["text"] and messages[0]["kb"]["id"].startswith("shipping")


@pytest.mark.parametrize(
    ("intent", "text", "reply"),
    [("greet", "hello", "utter_greet_short"), ("thank", "thanks", "utter_welcome_short"),
     ("bot_challenge", "are you a bot", "utter_iamabot")],
)
def test_small_talk_while_asked_for_an_order_number_gets_a_short_reply(
    env: Env, intent: str, text: str, reply: str
) -> None:
    events, messages = _ask("order_number", intent, text)
    assert events == [SlotSet("order_number", None)]
    assert responses(messages) == [reply]


def test_digits_win_over_any_intent_and_unsure_intents_get_the_format_hint(env: Env) -> None:
    env.scenario.order(NUMBER, OrderStatus.IN_TRANSIT)
    events, _ = _ask("phone_last4", "goodbye", LAST4)  # bare digits often come out of the NLU as goodbye
    assert SlotSet("verified_orders", {NUMBER: LAST4}) in events
    async def forget() -> None:  # a conversation that has not verified it yet
        await verification.store().forget("c1", NUMBER)

    asyncio.run(forget())
    events, messages = _ask("phone_last4", "greet", "hmm", confidence=0.5)
    assert responses(messages) == ["utter_phone_last4_invalid"]


@pytest.mark.parametrize(("intent", "text"), [("goodbye", "bye"), ("deny", "算了")])
def test_bye_or_never_mind_stops_the_form_and_the_flow_says_nothing_more(env: Env, intent: str, text: str) -> None:
    env.scenario.order(NUMBER, OrderStatus.IN_TRANSIT)
    events, messages = _ask("phone_last4", intent, text)
    assert SlotSet("order_lookup_stopped", True) in events
    assert responses(messages) == ["utter_order_lookup_stopped"]
    slots = {"order_number": NUMBER, "order_lookup_stopped": True}
    assert asyncio.run(forms.ValidateOrderVerificationForm().required_slots([], None, tracker(slots), {})) == []
    events, messages = run(ActionOrderStatus(), slots)
    assert messages == [] and SlotSet("order_lookup_stopped", None) in events
