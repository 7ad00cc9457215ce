"""Cancel / address change when the order backend is slow or the same confirmation arrives twice (issue 12).

The action waits ORDER_LOOKUP_TIMEOUT_S for the backend (actions/verification.py call_backend); the write keeps
running in its thread and commits later. Before the fix the customer got "backend error, want a human?" although the
change went through, and a resent confirmation could apply an address change again over a later one.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from rasa_sdk.events import SlotSet
from sqlalchemy import func, select

from actions import forms
from actions import verification as v
from actions.order_flows import ActionOrderCancel, ActionOrderChangeAddress, ActionOrderConfirm
from actions.orders.enums import OrderStatus, RefundKind
from actions.orders.models import Order, OrderChange, Refund
from actions.orders.service import NewAddress
from tests.actions.order_fixtures import LAST4, Env, responses, run, user

N = "DM2026111501"
ASKED = 1_795_000_000.25  # when the bot asked "cancel / change it?" (the slot event's timestamp)


class SlowWrites:
    """The real SQL service, but cancel and address change take ``delay_s`` before they start (and then commit)."""

    def __init__(self, inner: Any, delay_s: float) -> None:
        self._inner = inner
        self.delay_s = delay_s
        self.calls: list[str | None] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def cancel_order(self, number: str, **kwargs: Any) -> Any:
        self.calls.append(kwargs.get("idempotency_key"))
        time.sleep(self.delay_s)
        return self._inner.cancel_order(number, **kwargs)

    def change_address(self, number: str, address: NewAddress, **kwargs: Any) -> Any:
        self.calls.append(kwargs.get("idempotency_key"))
        time.sleep(self.delay_s)
        return self._inner.change_address(number, address, **kwargs)


@pytest.fixture
def slow(env: Env, monkeypatch: pytest.MonkeyPatch) -> SlowWrites:
    monkeypatch.setenv("ORDER_LOOKUP_TIMEOUT_S", "0.3")
    v.flow_settings.cache_clear()
    service = SlowWrites(env.service, delay_s=1.0)
    v.set_order_service(service)
    yield service
    v.flow_settings.cache_clear()


def verified(**slots: object) -> dict:
    return {"order_number": N, "verified_orders": {N: LAST4}} | slots


def asked(kind: str, reply: str = "affirm") -> list[dict[str, Any]]:
    """The turn where the bot asked to confirm, then the customer's answer."""
    return [user("cancel_order"), {"event": "action", "name": f"action_order_{kind}", "timestamp": ASKED},
            {"event": "slot", "name": "pending_confirmation", "value": f"{kind}:{N}", "timestamp": ASKED},
            user(reply)]


def refunds(env: Env) -> int:
    with env.session() as session:
        return session.scalar(select(func.count()).select_from(Refund).where(Refund.kind == RefundKind.CANCELLATION))


def order(env: Env) -> Order:
    with env.session() as session:
        return session.scalars(select(Order).where(Order.number == N)).one()


def test_a_slow_cancel_is_reported_as_pending_then_its_real_outcome(env: Env, slow: SlowWrites) -> None:
    env.scenario.order(N, OrderStatus.PAID, placed_days_ago=0.5)
    events, messages = run(ActionOrderConfirm(), verified(pending_confirmation=f"cancel:{N}"), asked("cancel"))
    # Not "backend error": the customer learns it was sent, will not be applied twice, and how to get the result.
    assert [m["text"] for m in messages] == [
        f"Your cancellation of order {N} has been sent, but our order system is slow to confirm it. It will not be "
        f"applied twice: ask me again in a minute (\"cancel order {N}\") and I will tell you the result."]
    key = slow.calls[0]
    assert events[-1] == SlotSet("pending_confirmation", f"cancel:{N}:{key}")
    assert order(env).status is OrderStatus.CANCELLED  # the write went on and committed after the answer
    # Later the customer asks about cancelling again: the same request, same key -> the real result, once.
    slow.delay_s = 0
    events, messages = run(ActionOrderCancel(), verified(pending_confirmation=f"cancel:{N}:{key}"))
    assert responses(messages) == ["utter_cancel_done_refund"] and messages[0]["amount"] == "¥87.00"
    assert slow.calls == [key, key]
    assert SlotSet("pending_confirmation", None) in events and events[-1] != SlotSet("pending_confirmation",
                                                                                      f"cancel:{N}:{key}")
    assert refunds(env) == 1


def test_a_resent_yes_does_not_cancel_twice(env: Env) -> None:
    """The gateway resends a "yes" whose first turn failed: the same question gives the same key."""
    env.scenario.order(N, OrderStatus.PAID, placed_days_ago=0.5)
    first = run(ActionOrderConfirm(), verified(pending_confirmation=f"cancel:{N}"), asked("cancel"))
    again = run(ActionOrderConfirm(), verified(pending_confirmation=f"cancel:{N}"), asked("cancel"))
    assert responses(first[1]) == responses(again[1]) == ["utter_cancel_done_refund"]
    assert refunds(env) == 1
    with env.session() as session:
        assert session.scalar(select(func.count()).select_from(OrderChange)) == 1


def test_a_resent_address_confirmation_does_not_overwrite_a_later_change(env: Env) -> None:
    env.scenario.order(N, OrderStatus.PAID, placed_days_ago=0.5)
    home = forms.parse_address("王芳，13911112222，江苏省，南京市，鼓楼区，中山路1号")
    slots = verified(pending_confirmation=f"address:{N}", pending_address=home)
    _, messages = run(ActionOrderConfirm(), slots, asked("address"))
    assert responses(messages) == ["utter_address_changed"] and order(env).city == "南京市"
    # The shop (or a later request) changes it again; then the first confirmation arrives a second time.
    env.service.change_address(N, NewAddress("王芳", "13911112222", "上海", "上海", "浦东新区", "世纪大道1号"),
                               phone_last4="2222")
    _, messages = run(ActionOrderConfirm(), slots, asked("address"))
    assert responses(messages) == ["utter_address_changed"]  # that request's real outcome
    assert order(env).city == "上海"  # not applied again


def test_a_slow_address_change_keeps_what_was_sent_and_reports_it_later(env: Env, slow: SlowWrites) -> None:
    env.scenario.order(N, OrderStatus.PAID, placed_days_ago=0.5)
    home = forms.parse_address("王芳，13911112222，江苏省，南京市，鼓楼区，中山路1号")
    events, messages = run(ActionOrderConfirm(), verified(pending_confirmation=f"address:{N}", pending_address=home,
                                                          language="zh"), asked("address"))
    assert "改地址请求已提交" in messages[0]["text"] and "不会重复修改" in messages[0]["text"]
    key = slow.calls[0]
    assert events[-1] == SlotSet("pending_confirmation", f"address:{N}:{key}")
    assert SlotSet("pending_address", None) not in events  # kept: it is what was sent
    slow.delay_s = 0
    later = verified(pending_confirmation=f"address:{N}:{key}", pending_address=home)
    events, messages = run(ActionOrderChangeAddress(), later, asked("address", reply="change_address"))
    assert responses(messages) == ["utter_address_changed"]
    assert slow.calls == [key, key] and order(env).city == "南京市"
    assert SlotSet("verified_orders", {N: "2222"}) in events
