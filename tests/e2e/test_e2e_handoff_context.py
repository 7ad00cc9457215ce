"""End to end: the handoff context package comes from the action server, complete at creation (issue 10).

The action holds the tracker of the escalating turn, builds the tracker part of the package and sends it with the
handoff request; the desk never reads Rasa's tracker. So the package a supervisor opens has the escalating message
as its last turn, the reason the policy decided (read by the action, not scored again) and no verification digits.
"""
from __future__ import annotations

import json

import pytest

from actions.orders.enums import MembershipTier
from tests.e2e.test_e2e_customer_tier import Supervisor, in_transit_of, orders, verified_chat  # noqa: F401
from tests.e2e.test_e2e_order_flows import OrderStack

pytestmark = pytest.mark.e2e


def test_package_is_complete_at_creation_and_holds_no_digits(orders: OrderStack) -> None:  # noqa: F811
    supervisor = Supervisor(orders)
    (order, *_) = in_transit_of(orders, MembershipTier.REGULAR)
    chat = verified_chat(orders, order)  # order number, then the phone digits
    digits = order.recipient_phone[-4:]
    chat.say("the charger you sold me caught fire and burned my hand")
    row = supervisor.handoff_of(chat.cid)
    assert row["reason_code"] == "sensitive_safety" and row["priority"] == 1  # the policy's decision, read
    context = supervisor.get(f"/api/agent/handoffs/{row['handoff_id']}")["context"]
    assert context["tracker_available"] is True
    assert context["turns"][-1]["text"] == "the charger you sold me caught fire and burned my hand"
    assert context["identifiers"]["order_numbers"] == [order.number]
    assert order.number in context["slots"].get("verified_orders", [])
    assert "escalation_decision" not in context["slots"]
    customer_lines = [m["text"] for m in context["transcript"] if m["role"] == "customer"]
    assert customer_lines[1] == "*" * len(digits)
    texts = [t["text"] for t in context["turns"]] + [json.dumps(t["entities"]) for t in context["turns"]]
    assert not any(digits in text for text in texts) and digits not in json.dumps(context["slots"])
