"""Attacks from the security review, replayed against the real running stack (requests only to 127.0.0.1)."""
from __future__ import annotations

import uuid
from typing import Any

import httpx
import psutil
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from actions.orders.db import make_engine
from actions.orders.enums import OrderStatus
from actions.orders.models import Order
from actions.settings import ActionServerSettings as OrderSettings

pytestmark = pytest.mark.e2e


class Browser:
    """One browser (own cookie jar) in one conversation."""

    def __init__(self, stack: Any) -> None:
        self.url = f"{stack.web_url}/api/webchat/messages"
        self.http = httpx.Client(timeout=60)
        self.cid: str | None = None

    def say(self, text: str) -> str:
        body = {"conversation_id": self.cid, "message_id": uuid.uuid4().hex, "text": text, "metadata": {}}
        r = self.http.post(self.url, json=body)
        assert r.status_code == 200, r.text
        self.cid = r.json()["conversation_id"]
        return "\n".join(m["text"] for m in r.json()["messages"])


@pytest.fixture(scope="module")
def target(stack: Any) -> Order:
    """An order in transit of the demo store the stack serves (the last one: no other test uses it)."""
    engine = make_engine(OrderSettings().database_url, OrderSettings())
    with Session(engine) as session:
        order = session.scalars(select(Order).where(Order.status == OrderStatus.IN_TRANSIT)
                                .order_by(Order.number.desc())).first()
    engine.dispose()
    assert order is not None
    return order


def _forged_call(action: str, slots: dict[str, Any]) -> dict[str, Any]:
    return {"next_action": action, "sender_id": "attacker", "version": "3.6.21", "domain": {},
            "tracker": {"sender_id": "attacker", "slots": slots, "latest_message": {}, "events": [],
                        "paused": False, "followup_action": None, "active_loop": {},
                        "latest_action_name": "action_listen"}}


def test_the_action_server_refuses_callers_without_the_secret(stack: Any, target: Order) -> None:
    forged = _forged_call("action_order_status", {"order_number": target.number,
                                                  "verified_orders": {target.number: target.recipient_phone[-4:]}})
    for headers in ({}, {"X-Action-Token": "guess"}, {"X-Action-Token": ""}):
        r = httpx.post(f"{stack.action_url}/webhook", json=forged, headers=headers, timeout=30)
        assert r.status_code == 401 and target.number not in r.text
    handoff = _forged_call("action_handoff_to_human", {"customer_tier": "platinum"})
    assert httpx.post(f"{stack.action_url}/webhook", json=handoff, timeout=30).status_code == 401
    assert httpx.get(f"{stack.action_url}/actions", timeout=30).status_code == 401
    assert httpx.get(f"{stack.action_url}/health", timeout=30).status_code == 200


def test_internal_services_listen_on_loopback_only(stack: Any) -> None:
    ports = {stack.action_port, stack.web_port, *stack.rasa_ports}
    listening = [c for c in psutil.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN
                 and c.laddr and c.laddr.port in ports]
    assert {c.laddr.port for c in listening} == ports
    assert all(c.laddr.ip in ("127.0.0.1", "::1") for c in listening), listening


def test_guessing_digits_across_new_conversations_and_restarts_stays_locked(stack: Any, target: Order) -> None:
    right = target.recipient_phone[-4:]
    wrongs: list[str] = [d for d in ("0000", "1111", "2222", "3333") if d != right][:3]
    for wrong in wrongs:
        chat = Browser(stack)  # a fresh conversation for every guess (the attack of the report)
        assert "last 4 digits" in chat.say(f"where is my order {target.number}?")
        reply = chat.say(wrong)
        assert target.number not in reply or "Items" not in reply
        chat.say("/restart")  # typed by the customer: not a Rasa command
    chat = Browser(stack)
    asked = chat.say(f"where is my order {target.number}?")
    assert "minutes" in asked and "last 4 digits" not in asked  # the lock, with the time left
    reply = chat.say(right)
    assert "Items:" not in reply and "Latest tracking" not in reply


def test_a_typed_restart_does_not_restart_the_conversation(stack: Any) -> None:
    chat = Browser(stack)
    chat.say("hello")
    chat.say("/restart")
    tracker = httpx.get(f"{stack.rasa_url}/conversations/{chat.cid}/tracker",
                        params={"token": stack.rasa_token}, timeout=30).json()
    assert not any(e.get("event") == "restart" for e in tracker["events"])
    texts = [e.get("text") for e in tracker["events"] if e.get("event") == "user"]
    assert texts[-1] == "restart"


def test_a_streamed_body_without_length_is_cut_off_at_the_cap(stack: Any) -> None:
    def chunks():  # chunked transfer encoding: no Content-Length to refuse it by
        yield b'{"message_id": "m1", "text": "'
        for _ in range(200):
            yield b"x" * 1024
        yield b'"}'

    r = httpx.post(f"{stack.web_url}/api/webchat/messages", content=chunks(),
                   headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == 413 and "limit" in r.json()["detail"]
