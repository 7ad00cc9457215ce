"""End to end, without injecting a single slot: the verified customer's identity and membership tier drive the
escalation threshold, the desk queue's VIP priority, the earlier conversations in the handoff context and
repeat-complaint detection (issue 10, dead ends).

Customers only prove who they are by verifying an order (the phone digits the order service checks); the action
server then records the order's customer and tier server-side and sets ``customer_id`` / ``customer_tier``. The
stack runs on a throw-away copy of the demo store; the desk clock is set inside service hours so handoffs queue.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from actions.orders.db import make_engine
from actions.orders.enums import MembershipTier, OrderStatus
from actions.orders.models import Customer, Order
from actions.settings import ActionServerSettings as OrderSettings
from tests.e2e.test_e2e_order_flows import SECRET, Chat, OrderStack
from tests.processes import start_stack
from tools.demo_data import load_demo_data

pytestmark = pytest.mark.e2e
ANNOYED = "this is getting annoying"  # scored ~66 after an order lookup: under 70 (regular), over 55/50 (gold/plat.)
COMPLAINT = "I want to file a complaint about this order"
PASSWORD = "tier-test-supervisor-pw"  # noqa: S105 - test value
CHINA = timezone(timedelta(hours=8))


@pytest.fixture(scope="module")
def orders(tmp_path_factory: pytest.TempPathFactory, relaxed_client_limits: dict) -> Iterator[OrderStack]:

    var_dir = tmp_path_factory.mktemp("tier-stack")
    db_url = f"sqlite:///{var_dir / 'store.db'}"
    engine = make_engine(db_url, OrderSettings(_env_file=None))  # type: ignore[call-arg]
    load_demo_data(engine, seed=42)
    engine.dispose()
    in_hours = datetime.now(CHINA).replace(hour=10, minute=0, second=0, microsecond=0).isoformat()
    running = start_stack(var_dir, extra_env={
        "DATABASE_URL": db_url, "CUSTOMER_TOKEN_SECRET": SECRET, "HANDOFF_CLOCK": in_hours, **relaxed_client_limits})
    result = OrderStack(running, db_url)
    yield result
    result.service.close()
    result.engine.dispose()
    running.stop()


def in_transit_of(orders: OrderStack, *tiers: MembershipTier) -> list[Order]:
    """In-transit orders of customers of these tiers, one per customer (the demo store picks them)."""
    with Session(orders.engine) as session:
        rows = session.scalars(select(Order).join(Customer, Order.customer_id == Customer.id)
                               .where(Order.status == OrderStatus.IN_TRANSIT, Customer.tier.in_(tiers))
                               .order_by(Order.number)).all()
    mine: dict[int, Order] = {}
    for row in rows:
        mine.setdefault(row.customer_id, row)
    return list(mine.values())


def verified_chat(orders: OrderStack, order: Order) -> Chat:
    chat = Chat(orders)
    assert "last 4 digits" in chat.text(f"where is my order {order.number}")
    assert f"Order {order.number}:" in chat.text(order.recipient_phone[-4:])
    return chat


def handed_over(replies: list[dict[str, Any]]) -> bool:
    return any("getting a person" in m["text"] or "agent" in m["text"].lower() for m in replies)


class Supervisor:
    def __init__(self, orders: OrderStack) -> None:
        stack = orders.stack
        env = {**stack.env(), "HANDOFF_ADMIN_PASSWORD": PASSWORD}
        done = subprocess.run([sys.executable, "-m", "handoff.admin", "create-supervisor", "--username", "tiersup"],
                              env=env, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        self.http = httpx.Client(base_url=stack.web_url, timeout=30)
        r = self.http.post("/api/agent/login", json={"username": "tiersup", "password": PASSWORD})
        assert r.status_code == 200, r.text
        self.http.headers["Authorization"] = f"Bearer {r.json()['token']}"

    def get(self, path: str) -> Any:
        r = self.http.get(path)
        assert r.status_code == 200, r.text
        return r.json()

    def handoff_of(self, conversation_id: str) -> dict[str, Any]:
        for row in self.get("/api/agent/queue"):
            if row["conversation_id"] == conversation_id:
                return row
        raise AssertionError(f"{conversation_id} is not in the queue")


def test_verified_customers_tier_and_identity_drive_the_desk(orders: OrderStack) -> None:
    vip = in_transit_of(orders, MembershipTier.GOLD, MembershipTier.PLATINUM)
    regular = in_transit_of(orders, MembershipTier.REGULAR)
    assert vip and regular, "the demo store has gold/platinum and regular customers with parcels in transit"
    supervisor = Supervisor(orders)

    # (a) The same first annoyed message: a VIP's lowered threshold escalates, a regular customer's does not.
    vip_chat = verified_chat(orders, vip[0])
    assert handed_over(vip_chat.say(ANNOYED))
    vip_row = supervisor.handoff_of(vip_chat.cid or "")
    assert vip_row["reason_code"] == "high_frustration" and vip_row["tier"] in ("gold", "platinum")
    regular_chat = verified_chat(orders, regular[0])
    calm = regular_chat.say(ANNOYED)
    assert not handed_over(calm), calm
    assert all(r["conversation_id"] != regular_chat.cid for r in supervisor.get("/api/agent/queue"))

    # (b) Same complaint, regular customer first, VIP second: the VIP is served first.
    assert handed_over(regular_chat.say(COMPLAINT))
    customer = vip[1]
    first = verified_chat(orders, customer)
    assert handed_over(first.say(COMPLAINT))
    queue = supervisor.get("/api/agent/queue")
    ids = [r["conversation_id"] for r in queue]
    reg_row, vip_row = queue[ids.index(regular_chat.cid)], queue[ids.index(first.cid)]
    assert reg_row["tier"] == "regular" and vip_row["tier"] in ("gold", "platinum")
    assert vip_row["reason_code"] == reg_row["reason_code"] == "complaint"
    assert vip_row["effective_priority"] < reg_row["effective_priority"]
    assert ids.index(first.cid) < ids.index(regular_chat.cid), "the VIP's later handoff is ahead in the queue"

    # (c) The same customer's next conversation: the earlier one is in the agent's context package.
    second = verified_chat(orders, customer)
    assert handed_over(second.say(COMPLAINT))
    row = supervisor.handoff_of(second.cid or "")
    context = supervisor.get(f"/api/agent/handoffs/{row['handoff_id']}")["context"]
    assert context["customer"]["id"] == str(customer.customer_id) and context["customer"]["verified"] is True
    assert customer.recipient_phone[-4:] not in json.dumps(context["customer"])  # the id is not the digits
    earlier = [e["conversation_id"] for e in context["earlier_conversations"]]
    assert earlier == [first.cid]

    # (d) A third complaint about the same order: a repeat complaint, flagged for supervisors.
    third = verified_chat(orders, customer)
    assert handed_over(third.say(COMPLAINT))
    row = supervisor.handoff_of(third.cid or "")
    assert row["reason_code"] == "complaint"
    flags = [a for a in supervisor.get("/api/agent/alerts") if a["kind"] == "repeat_complaint"]
    assert [(a["customer_id"], a["order_number"], a["complaints"]) for a in flags] == [
        (str(customer.customer_id), customer.number, 3)]
    context = supervisor.get(f"/api/agent/handoffs/{row['handoff_id']}")["context"]
    assert context["escalation"]["signals"]["repeat_complaint"] is True
    assert sorted(e["conversation_id"] for e in context["earlier_conversations"]) == sorted([first.cid, second.cid])
