"""Acknowledge an order number the customer typed, or explain the format when it is malformed."""
from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import verification
from actions.orders.errors import InvalidOrderNumber
from actions.orders.validation import normalise_order_number


class ActionAcknowledgeOrderNumber(Action):
    """Stores a valid order number for the rest of the conversation; never echoes an invalid one back."""

    def name(self) -> str:
        return "action_acknowledge_order_number"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        entities = tracker.latest_message.get("entities", [])
        candidates = [e.get("value") for e in entities if e.get("entity") == "order_number"]
        for raw in candidates:
            try:  # the same rules as the order form and the backends: canonical number, or refused by reason
                number = normalise_order_number(str(raw), verification.policy())
            except InvalidOrderNumber:
                continue
            dispatcher.utter_message(response="utter_order_number_noted", order_number=number)
            return [SlotSet("order_number", number)]
        dispatcher.utter_message(response="utter_order_number_invalid")
        return []
