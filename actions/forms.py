"""Slot validation of the order forms: verification first, then what a return/exchange/address change needs.

``order_verification_form`` asks for the order number and, unless the order is already verified in this
conversation (phone digits or the website's customer token), the last digits of the order's phone.
A wrong answer counts against the lock-out limit; at the limit the form ends and the flow action explains.
``required_slots`` returns ``[]`` whenever asking makes no sense (locked, backend down, order not eligible)
so the flow action that follows gives the reason instead of another question.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from rasa_sdk import FormValidationAction, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import routing
from actions import verification as v
from actions.orders import rules
from actions.orders.enums import OrderStatus, ReturnReason
from actions.orders.errors import BackendError, InvalidOrderNumber, OrderNotFound, OrderServiceError
from actions.orders.service import OrderInfo
from actions.orders.validation import MAX_RAW_LENGTH, normalise_order_number, unsafe_reason
from bot.shared.patterns import ORDER_NUMBER, find_identifiers

SLOT_RETURN_ITEM = "return_item"
SLOT_RETURN_REASON = "return_reason"
SLOT_NEW_ADDRESS = "new_address"
SLOT_PENDING_ADDRESS = "pending_address"

# Words that tell a quality problem from a no-reason return (both languages); "1"/"2" answer the buttons.
_QUALITY_WORDS = (
    "质量",
    "坏",
    "破",
    "瑕疵",
    "故障",
    "不能用",
    "有问题",
    "次品",
    "发错",
    "quality",
    "defect",
    "broken",
    "damaged",
    "faulty",
    "not working",
    "doesn't work",
    "wrong item",
)
_NO_REASON_WORDS = (
    "无理由",
    "不想要",
    "不喜欢",
    "不合适",
    "不需要",
    "尺码",
    "大了",
    "小了",
    "no reason",
    "no-reason",
    "changed my mind",
    "don't like",
    "dont like",
    "don't want",
    "doesn't fit",
    "does not fit",
    "size",
)
_ADDRESS_SPLIT_RE = re.compile(r"[\s,，、;；]+")
_COMMA_SPLIT_RE = re.compile(r"[,，、;；]+")  # with commas, spaces may be part of a name ("Zhang Wei")


def _text(value: Any) -> str:
    return unicodedata.normalize("NFKC", str(value or "")).strip()


def phone_digits_from(value: Any, digits_needed: int) -> str | None:
    """The verification digits in an answer: exactly N digits, or a full mobile number (its last N)."""
    digits = "".join(ch for ch in _text(value) if ch.isascii() and ch.isdigit())
    if len(digits) == digits_needed:
        return digits
    phones = [m.value for m in find_identifiers(_text(value)) if m.entity == "phone"]
    return phones[0][-digits_needed:] if len(phones) == 1 else None


def return_reason_from(value: Any) -> str | None:
    text = _text(value).lower()
    if text in {"1", "2"}:
        return ReturnReason.QUALITY.value if text == "1" else ReturnReason.NO_REASON.value
    if any(word in text for word in _QUALITY_WORDS):
        return ReturnReason.QUALITY.value
    if any(word in text for word in _NO_REASON_WORDS):
        return ReturnReason.NO_REASON.value
    return None


def item_from(value: Any, order: OrderInfo) -> str | None:
    """SKU of the item the customer picked by list number, SKU or (part of) the name."""
    text = _text(value)
    if text.isdigit() and 1 <= int(text) <= len(order.items):
        return order.items[int(text) - 1].sku
    lowered = text.lower()
    for item in order.items:
        if item.sku.lower() in lowered:
            return item.sku
    matches = [item.sku for item in order.items if lowered and (lowered in item.name.lower() or item.name in text)]
    return matches[0] if len(matches) == 1 else None


def parse_address(value: Any) -> dict[str, str] | None:
    """ "name phone province city district street..." (spaces or commas) -> fields, None when incomplete."""
    text = _text(value)
    splitter = _COMMA_SPLIT_RE if _COMMA_SPLIT_RE.search(text) else _ADDRESS_SPLIT_RE
    parts = [p.strip() for p in splitter.split(text) if p.strip()]
    if len(parts) < 6:
        return None
    phones = [
        i for i, p in enumerate(parts) if re.fullmatch(v.policy().identifiers.phone.pattern, p.removeprefix("+86"))
    ]
    if len(phones) != 1:
        return None
    phone = parts.pop(phones[0]).removeprefix("+86")
    name, province, city, district, *street = parts
    return {
        "recipient_name": name,
        "phone": phone,
        "province": province,
        "city": city,
        "district": district,
        "address_line": " ".join(street),
    }


# While the form waits for an order number or phone digits, a message that is none of them but clearly something
# else is answered instead of being rejected as a bad number: a knowledge question gets its KB answer, small talk a
# short reply; then the form asks its question again. Digits are always read first, so "5678" is never a digression
# whatever intent the NLU gives it (bare digits often come out as `goodbye`).
DIGRESSION_RESPONSES = {"greet": "utter_greet_short", "thank": "utter_welcome_short", "bot_challenge": "utter_iamabot"}
DIGRESSION_MIN_CONFIDENCE = 0.8
STOP_INTENTS = ("goodbye", "deny")


async def answer_digression(dispatcher: CollectingDispatcher, tracker: Tracker) -> bool:
    """Answer the latest message if it is a knowledge question or small talk; True when it was answered."""
    intent = tracker.latest_message.get("intent") or {}
    name, confidence = intent.get("name"), float(intent.get("confidence") or 0.0)
    if confidence >= DIGRESSION_MIN_CONFIDENCE:
        if name == "ask_policy":
            from actions.knowledge import answer_from_kb, get_feedback_store

            await answer_from_kb(dispatcher, tracker, get_feedback_store(), ask_feedback=False)
            return True
        if name in DIGRESSION_RESPONSES:
            dispatcher.utter_message(response=DIGRESSION_RESPONSES[name])
            return True
    # Whatever intent the NLU gave it ("and after it has shipped?" reads as cancel_order): a message that reads as a
    # question about how things work, with a confident knowledge-base answer, is answered, not called a bad number.
    if routing.is_a_question(tracker, threshold=routing.FORM_QUESTION_THRESHOLD, follow_ups=True):
        return await routing.answer_if_confident(dispatcher, tracker, ask_feedback=False) is not None
    return False


def wants_to_stop(tracker: Tracker) -> bool:
    """"bye" / "never mind" instead of the number or digits asked for (digits were tried first)."""
    intent = tracker.latest_message.get("intent") or {}
    return intent.get("name") in STOP_INTENTS and float(intent.get("confidence") or 0.0) >= DIGRESSION_MIN_CONFIDENCE


def stop_lookup(dispatcher: CollectingDispatcher, slot: str) -> dict[str, Any]:
    """End the form without a lookup: the flow action that follows says nothing more (see order_flows)."""
    dispatcher.utter_message(response="utter_order_lookup_stopped")
    return {slot: None, v.SLOT_LOOKUP_STOPPED: True}


class ValidateOrderVerificationForm(FormValidationAction):
    """Order number (format-checked, never echoed when bad) + phone digits or customer token."""

    def name(self) -> str:
        return "validate_order_verification_form"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[dict[str, Any]]:
        """When the form is only starting (no slot asked yet) for a message that asks how things work ("can I
        return a gift?") rather than for an action on an order, answer from the knowledge base, offer the action
        as a button, and end the form quietly (the flow action stays silent, as after "never mind"); when the
        knowledge base is only fairly sure, its "did you mean" choices with the same button. A message
        between the two readings (``routing.FORM_HEDGE_THRESHOLD``) gets the answer too, and the form goes on to ask
        for the number."""
        # Not when the conversation is already about an order ("when will my order arrive?" after a lookup).
        if tracker.get_slot("requested_slot") is None and not tracker.get_slot(v.SLOT_ORDER_NUMBER):
            if routing.is_a_question(tracker, threshold=routing.FORM_QUESTION_THRESHOLD, follow_ups=True):
                intent = (tracker.latest_message.get("intent") or {}).get("name")
                # Surely a question, and the knowledge base only fairly sure: "did you mean" (and the same offer)
                # rather than the order-number question nobody asked for.
                answered = await routing.answer_if_confident(dispatcher, tracker, offer_intent=intent,
                                                             or_suggest=True)
                if answered is not None:
                    tracker.slots[v.SLOT_LOOKUP_STOPPED] = True  # required_slots() is now empty: the form ends
                    events = await super().run(dispatcher, tracker, domain)
                    return [*answered, SlotSet(v.SLOT_LOOKUP_STOPPED, True), *events]
            elif routing.is_a_question(tracker, threshold=routing.FORM_HEDGE_THRESHOLD):
                # Neither surely a question nor surely a request: the answer, then the form goes on and asks.
                answered = await routing.answer_if_confident(dispatcher, tracker, ask_feedback=False,
                                                             unless=routing.lookup_articles())
                if answered is not None:
                    dispatcher.utter_message(response="utter_offer_order_action")
                    return [*answered, *await super().run(dispatcher, tracker, domain)]
        return await super().run(dispatcher, tracker, domain)

    async def required_slots(
        self, domain_slots: list[str], dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[str]:
        if (
            tracker.get_slot(v.SLOT_LOOKUP_ERROR)
            or tracker.get_slot(v.SLOT_LOOKUP_STOPPED)
            or await v.locked_until(tracker) is not None
        ):
            return []
        if await v.verified_last4(tracker, tracker.get_slot(v.SLOT_ORDER_NUMBER)):
            return [v.SLOT_ORDER_NUMBER]
        return [v.SLOT_ORDER_NUMBER, v.SLOT_PHONE_LAST4]

    async def validate_order_number(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        text = _text(value)
        # Text carrying markup or SQL is refused as a whole, even around a well-formed number.
        candidates = [] if len(text) > MAX_RAW_LENGTH or unsafe_reason(text) else [text]
        candidates += [m.value for m in find_identifiers(text) if m.entity == ORDER_NUMBER] if candidates else []
        number = None
        for candidate in candidates:
            try:
                number = normalise_order_number(candidate, v.policy())
                break
            except InvalidOrderNumber:
                continue
        if number is None:
            if wants_to_stop(tracker):
                return stop_lookup(dispatcher, v.SLOT_ORDER_NUMBER)
            if not await answer_digression(dispatcher, tracker):
                dispatcher.utter_message(response="utter_order_number_invalid")
            return {v.SLOT_ORDER_NUMBER: None}
        result: dict[str, Any] = {v.SLOT_ORDER_NUMBER: number}
        customer_id = v.token_customer_id(tracker)
        if customer_id is not None and not await v.verified_last4(tracker, number):
            try:
                order = await v.call_backend(v.order_service().get_order, number)
            except OrderServiceError:
                return result  # unknown order or backend trouble: fall back to the phone question
            if order.customer_id == customer_id:
                # The masked phone keeps the last digits the service needs for changes (see mask_phone).
                digits = order.address.phone[-v.policy().identifiers.phone.verification_digits :]
                result[v.SLOT_VERIFIED] = await v.remember_verified(tracker, number, digits)
                result.update(await v.remember_customer(tracker, order))
        return result

    async def validate_phone_last4(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        number = tracker.get_slot(v.SLOT_ORDER_NUMBER)
        if not number:
            return {v.SLOT_PHONE_LAST4: None}
        until = await v.locked_until(tracker, number)
        if until is not None:
            # Locked for this order or this client, whatever the conversation: the flow action explains it.
            return {v.SLOT_PHONE_LAST4: None, v.SLOT_LOCKED_UNTIL: until}
        digits_needed = v.policy().identifiers.phone.verification_digits
        digits = phone_digits_from(value, digits_needed)
        if digits is None:
            if wants_to_stop(tracker):
                return stop_lookup(dispatcher, v.SLOT_PHONE_LAST4)
            if not await answer_digression(dispatcher, tracker):
                dispatcher.utter_message(response="utter_phone_last4_invalid", digits=digits_needed)
            return {v.SLOT_PHONE_LAST4: None}
        try:
            ok = await v.call_backend(v.order_service().verify, number, digits)
        except OrderNotFound:
            ok = False  # same answer as a wrong phone: guessing numbers must not reveal which exist
        except BackendError:
            dispatcher.utter_message(response="utter_order_backend_error")
            return {v.SLOT_PHONE_LAST4: None, v.SLOT_LOOKUP_ERROR: True}
        if ok:
            return {
                v.SLOT_PHONE_LAST4: None,
                v.SLOT_FAILURES: 0,
                v.SLOT_LOCKED_UNTIL: None,
                v.SLOT_VERIFIED: await v.remember_verified(tracker, number, digits),
                **await _customer_of(tracker, number),
            }
        left = await v.record_failure(tracker, number)
        count = int(tracker.get_slot(v.SLOT_FAILURES) or 0) + 1
        if left <= 0:
            # The flow action that follows tells the customer about the lock and offers a human.
            until = await v.locked_until(tracker, number)
            return {
                v.SLOT_PHONE_LAST4: None,
                v.SLOT_FAILURES: count,
                v.SLOT_LOCKED_UNTIL: until or v.now_ts() + v.flow_settings().lock_minutes * 60,
            }
        dispatcher.utter_message(response="utter_verification_failed", attempts_left=left)
        return {v.SLOT_PHONE_LAST4: None, v.SLOT_FAILURES: count, v.SLOT_LOCKED_UNTIL: None}


async def _customer_of(tracker: Tracker, number: str) -> dict[str, Any]:
    """``customer_id`` / ``customer_tier`` of an order this conversation has just verified (nothing when the backend
    cannot say: the verification stands, the customer stays unknown)."""
    try:
        order = await v.call_backend(v.order_service().get_order, number)
    except OrderServiceError:
        return {}
    return await v.remember_customer(tracker, order)


async def _verified_order(tracker: Tracker) -> OrderInfo | None:
    """The verified order of this conversation, None when not verified, locked or the backend fails."""
    number = tracker.get_slot(v.SLOT_ORDER_NUMBER)
    if await v.locked_until(tracker) is not None or not await v.verified_last4(tracker, number):
        return None
    try:
        return await v.call_backend(v.order_service().get_order, number)
    except OrderServiceError:
        return None


class ValidateReturnForm(ValidateOrderVerificationForm):
    """Verification, then which item and why (quality or no-reason); not asked when the order cannot be returned."""

    def name(self) -> str:
        return "validate_return_form"

    async def required_slots(
        self, domain_slots: list[str], dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[str]:
        base = await super().required_slots(domain_slots, dispatcher, tracker, domain)
        if base != [v.SLOT_ORDER_NUMBER]:
            return base  # not verified yet, locked or backend down
        order = await _verified_order(tracker)
        if order is None or order.status is not OrderStatus.DELIVERED or order.delivered_at is None:
            return base
        longest = max(ReturnReason, key=lambda r: v.policy().returns.rule_for(r).window_days)
        window = rules.return_eligibility(order.status, order.delivered_at, "", longest, v.now(), v.policy())
        if window.refusal == rules.WINDOW_EXPIRED:
            return base
        return base + ([SLOT_RETURN_ITEM] if len(order.items) > 1 else []) + [SLOT_RETURN_REASON]

    async def validate_return_item(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        order = await _verified_order(tracker)
        sku = item_from(value, order) if order else None
        if sku is None:
            dispatcher.utter_message(response="utter_return_item_invalid")
        return {SLOT_RETURN_ITEM: sku}

    async def validate_return_reason(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        reason = return_reason_from(value)
        if reason is None:
            dispatcher.utter_message(response="utter_return_reason_invalid")
        return {SLOT_RETURN_REASON: reason}


class ValidateAddressForm(ValidateOrderVerificationForm):
    """Verification, then the new delivery address in one message; not asked once the order has shipped."""

    def name(self) -> str:
        return "validate_address_form"

    async def required_slots(
        self, domain_slots: list[str], dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[str]:
        base = await super().required_slots(domain_slots, dispatcher, tracker, domain)
        if base != [v.SLOT_ORDER_NUMBER]:
            return base
        order = await _verified_order(tracker)
        if order is None or not rules.can_change_before_shipping(order.status, v.policy()):
            return base
        return base + [SLOT_NEW_ADDRESS]

    async def validate_new_address(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        parsed = parse_address(value)
        if parsed is None:
            dispatcher.utter_message(response="utter_new_address_invalid")
            return {SLOT_NEW_ADDRESS: None, SLOT_PENDING_ADDRESS: None}
        return {SLOT_NEW_ADDRESS: " ".join(parsed.values()), SLOT_PENDING_ADDRESS: parsed}
