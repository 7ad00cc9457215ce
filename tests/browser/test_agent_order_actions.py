"""Order actions from the console (issue 17, item 3) in headless Chromium against the real stack (gateway, action
server, order store), with the customer's page open too: before claiming, the agent sees the conversation's orders
live (status, items, tracking) with the actions disabled; after claiming, a double click on the delay coupon issues
one coupon (checked in the order database), a lost parcel is reshipped, a delivered item's return is opened, and
the customer reads each outcome in the chat; the panel follows the console's language and fits a phone. Then a lost
parcel refunded in full (no reship offered after it) and a size exchange, and an exchange whose replacement is out of
stock becoming the return the policy offers."""
from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import delete, select

from actions.orders.db import make_engine, make_session_factory
from actions.orders.enums import OrderStatus
from actions.orders.models import Coupon, Customer, Exchange, Order, OrderChange, Refund, ReturnRequest
from actions.orders.policy import load_policy
from actions.settings import ActionServerSettings
from bot.shared.context_tracker import tracker_part
from bot.shared.paths import REPO_ROOT
from tests.actions.orders.builders import Scenario
from tests.browser.test_agent_console import LAPTOP, TIMEOUT_MS, _send, chromium  # noqa: F401 - fixture
from tests.browser.test_agent_console_flow import _account, _handoff, _log_in

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


@contextmanager
def _new_orders(stack: Any, kinds: dict[str, tuple[OrderStatus, dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    """Orders of a new customer in the stack's order store (the action server's database), one per name; removed
    again afterwards (refunds, returns and exchanges with their order)."""
    url = stack.env().get("DATABASE_URL") or f"sqlite:///{REPO_ROOT / 'var' / 'store.db'}"
    engine = make_engine(url, ActionServerSettings(_env_file=None))  # type: ignore[call-arg]
    factory = make_session_factory(engine)
    rng = random.Random()
    phone = f"139{rng.randrange(10**8):08d}"
    scenario = Scenario(factory, load_policy(), datetime.now(timezone.utc))
    scenario._tracking = rng.randrange(10**10, 10**11)  # tracking numbers nobody else has
    customer = scenario.customer(phone=phone, name="王芳")
    numbers = {name: f"DM29{rng.randrange(10**8):08d}" for name in kinds}
    for name, (status, options) in kinds.items():
        scenario.order(numbers[name], status, phone=phone, customer_id=customer, **options)
    yield {**numbers, "last4": phone[-4:], "factory": factory}
    with factory() as session, session.begin():
        ids = list(session.scalars(select(Order.id).where(Order.number.in_(list(numbers.values())))))
        session.execute(delete(OrderChange).where(OrderChange.order_id.in_(ids)))
        session.execute(delete(Coupon).where(Coupon.customer_id == customer))
        for order in session.scalars(select(Order).where(Order.id.in_(ids))):
            session.delete(order)
        session.flush()
        session.execute(delete(Customer).where(Customer.id == customer))
    engine.dispose()


def _customer_handed_over(stack: Any, context: Any, errors: list[str], text: str, numbers: list[str],
                          last4: str) -> tuple[Any, str, str]:
    """The customer's chat page, its first message, and the handoff action_handoff_to_human sends once the bot
    verified these orders in this conversation: (page, conversation id, handoff id)."""
    customer = context.new_page()
    customer.on("pageerror", lambda exc: errors.append(f"chat: {exc}"))
    customer.goto(f"{stack.web_url}/")
    conversation_id = _send(customer, text)["conversation_id"]
    slots = {"language": "en", "order_number": numbers[0], "verified_orders": {n: last4 for n in numbers}}
    return customer, conversation_id, _handoff(stack, conversation_id, reason_code="complaint",
                                               tracker=tracker_part([], slots))


def _agent_opens(stack: Any, context: Any, errors: list[str], agent_name: str, handoff_id: str) -> Any:
    """The agent's console, logged in, with the handoff opened from the queue."""
    agent = context.new_page()
    agent.on("pageerror", lambda exc: errors.append(f"console: {exc}"))
    _log_in(agent, stack, agent_name)
    agent.locator(f'#queue li[data-handoff-id="{handoff_id}"]').click()
    return agent


@pytest.fixture
def store_orders(stack: Any):
    """Four orders of a new customer: one 4 days late, one lost, one delivered, one paid (not shipped)."""
    with _new_orders(stack, {"late": (OrderStatus.IN_TRANSIT, {"days_late": 4}),
                             "lost": (OrderStatus.LOST, {"days_late": 6}),
                             "delivered": (OrderStatus.DELIVERED, {"delivered_days_ago": 2}),
                             "paid": (OrderStatus.PAID, {"placed_days_ago": 0.2})}) as orders:
        yield orders


@pytest.fixture
def exchange_orders(stack: Any):
    """A lost parcel (to refund in full) and two delivered orders (an exchange, an exchange out of stock)."""
    with _new_orders(stack, {"lost": (OrderStatus.LOST, {"days_late": 6}),
                             "swap": (OrderStatus.DELIVERED, {"delivered_days_ago": 2}),
                             "sold_out": (OrderStatus.DELIVERED, {"delivered_days_ago": 3})}) as orders:
        yield orders


def test_coupon_and_reship_from_the_console(stack: Any, chromium: Browser, store_orders: dict) -> None:  # noqa: F811
    expect.set_options(timeout=TIMEOUT_MS)
    errors: list[str] = []
    late, lost, delivered, paid = (store_orders[k] for k in ("late", "lost", "delivered", "paid"))
    agent_name = _account(stack, "agent", display_name="Lu Yan")
    customer_ctx = chromium.new_context(viewport={"width": 420, "height": 760}, locale="en-US")
    agent_ctx = chromium.new_context(viewport=LAPTOP, locale="en-US")
    try:
        customer, _, ours = _customer_handed_over(
            stack, customer_ctx, errors, "my parcel is late and the other one never came",
            [late, lost, delivered, paid], store_orders["last4"])
        agent = _agent_opens(stack, agent_ctx, errors, agent_name, ours)
        late_card = agent.locator(f'#orders .order[data-order="{late}"]')
        lost_card = agent.locator(f'#orders .order[data-order="{lost}"]')
        # Live from the order service, before claiming: facts shown, actions disabled (not this agent's yet).
        expect(late_card).to_contain_text("delayed")
        expect(late_card).to_contain_text("SF")
        expect(lost_card).to_contain_text("lost")
        coupon = late_card.locator('button[data-action="coupon"]')
        expect(coupon).to_have_text("Issue 10 yuan coupon")  # the 3-day tier of data/store_policy.yml
        expect(coupon).to_be_disabled()
        expect(agent.locator("#orders-status")).to_contain_text("Only the conversation's agent")
        assert lost_card.locator('button[data-action="coupon"]').count() == 0  # a lost parcel is not compensated

        agent.locator("#claim").click()
        expect(agent.locator("#conv-status")).to_contain_text("claimed")
        expect(coupon).to_be_enabled()
        coupon.dblclick()
        result = late_card.locator(".order__result")
        expect(result).to_contain_text("Done: coupon CP")
        code = result.inner_text().split("coupon ")[1].split(" ")[0]
        expect(customer.locator("#messages .msg--system").filter(has_text=code)).to_have_count(1)
        # Clicked again later (the panel reloaded): the first result, no second coupon.
        late_card.locator('button[data-action="coupon"]').click()
        expect(late_card.locator(".order__result")).to_contain_text(f"Already done by the first click: coupon {code}")

        lost_card.locator('button[data-action="reship"]').click()
        expect(lost_card.locator(".order__result")).to_contain_text("reshipped, tracking SF")
        expect(customer.locator("#messages .msg--system").filter(has_text=f"Order {lost} has been sent again"))\
            .to_have_count(1)
        expect(lost_card).to_contain_text("shipped")
        # A return: the item and reason the policy allows (7-day no-reason, 2 days after delivery), one click.
        returned = agent.locator(f'#orders .order[data-order="{delivered}"]')
        options = returned.locator(".order__return-item option")
        expect(options.first).to_contain_text("7-day no-reason")
        returned.locator('button[data-action="return"]').click()
        expect(returned.locator(".order__result")).to_contain_text("Done: return RMA")
        rma = returned.locator(".order__result").inner_text().split("return ")[1].split(".")[0]
        expect(customer.locator("#messages .msg--system").filter(has_text=f"Return {rma} has been opened"))\
            .to_have_count(1)
        # The address of an order not shipped yet: the form in its card (the service checks the fields).
        moving = agent.locator(f'#orders .order[data-order="{paid}"]')
        moving.locator(".order__address summary").click()
        for name, value in (("recipient_name", "李雷"), ("phone", "13900001111"), ("province", "江苏"),
                            ("city", "南京"), ("district", "鼓楼区"), ("address_line", "中山路1号")):
            moving.locator(f'input[name="{name}"]').fill(value)
        moving.locator('button[data-action="address"]').click()
        expect(moving.locator(".order__result")).to_contain_text("Done: address changed")
        expect(customer.locator("#messages .msg--system").filter(has_text=f"delivery address of order {paid}"))\
            .to_have_count(1)
        with store_orders["factory"]() as session:
            assert session.scalar(select(Order.city).where(Order.number == paid)) == "南京"
        with store_orders["factory"]() as session:
            coupons = session.scalars(select(Coupon).join(Order).where(Order.number == late)).all()
            assert [c.code for c in coupons] == [code] and coupons[0].amount_cents == 1000

        agent.locator("#ui-lang").select_option("zh")
        expect(agent.locator("#orders-title")).to_have_text("订单（实时）")
        # On a phone the order cards fit the screen (no sideways scrolling inside the context panel).
        agent.set_viewport_size({"width": 390, "height": 844})
        expect(lost_card).to_be_visible()
        assert agent.evaluate("() => document.getElementById('orders-section').scrollWidth") <= 390
        assert agent.evaluate("() => document.getElementById('orders-section').getBoundingClientRect().right") <= 391
        assert errors == []
    finally:
        customer_ctx.close()
        agent_ctx.close()


def test_lost_parcel_refund_and_exchanges_from_the_console(stack: Any, chromium: Browser,  # noqa: F811
                                                          exchange_orders: dict) -> None:
    expect.set_options(timeout=TIMEOUT_MS)
    errors: list[str] = []
    lost, swap, sold_out = (exchange_orders[k] for k in ("lost", "swap", "sold_out"))
    agent_name = _account(stack, "agent", display_name="Lu Yan")
    customer_ctx = chromium.new_context(viewport={"width": 420, "height": 760}, locale="en-US")
    agent_ctx = chromium.new_context(viewport=LAPTOP, locale="en-US")
    try:
        customer, _, ours = _customer_handed_over(
            stack, customer_ctx, errors, "my parcel never came and the shirt is too small",
            [lost, swap, sold_out], exchange_orders["last4"])
        agent = _agent_opens(stack, agent_ctx, errors, agent_name, ours)
        lost_card = agent.locator(f'#orders .order[data-order="{lost}"]')
        refund = lost_card.locator('button[data-action="lost_refund"]')
        # Reship or full refund, the customer's choice: both offered, disabled until the agent claims.
        expect(refund).to_have_text("Refund lost parcel in full (87 yuan)")  # 79 yuan + 8 yuan shipping paid
        expect(refund).to_be_disabled()
        expect(lost_card.locator('button[data-action="reship"]')).to_be_disabled()
        agent.locator("#claim").click()
        expect(agent.locator("#conv-status")).to_contain_text("claimed")
        expect(refund).to_be_enabled()
        refund.dblclick()
        expect(lost_card.locator(".order__result")).to_contain_text("Done: full refund 87 yuan to Alipay")
        expect(customer.locator("#messages .msg--system").filter(
            has_text=f"The parcel of order {lost} is confirmed lost: a full refund of 87 yuan")).to_have_count(1)
        # Refunded: neither a reship nor a second refund is offered any more.
        expect(lost_card.locator('button[data-action="reship"]')).to_have_count(0)
        expect(lost_card.locator('button[data-action="lost_refund"]')).to_have_count(0)
        with exchange_orders["factory"]() as session:
            refunds = session.scalars(select(Refund).join(Order).where(Order.number == lost)).all()
            assert [(r.kind.value, r.amount_cents) for r in refunds] == [("lost_parcel", 8700)]

        # A size exchange of a delivered item: the item and reason the policy allows, the replacement typed in.
        card = agent.locator(f'#orders .order[data-order="{swap}"]')
        card.locator(".order__exchange summary").click()
        expect(card.locator(".order__exchange-item option").first).to_contain_text("7-day no-reason")
        card.locator('.order__exchange input[name="variant"]').fill("XL 蓝色")
        card.locator('button[data-action="exchange"]').click()
        expect(card.locator(".order__result")).to_contain_text("Done: exchange of 男士纯棉圆领T恤 → XL 蓝色")
        expect(customer.locator("#messages .msg--system").filter(
            has_text=f"Exchange request opened for \"男士纯棉圆领T恤\" of order {swap} (replacement: XL 蓝色)"))\
            .to_have_count(1)
        with exchange_orders["factory"]() as session:
            stored = session.scalars(select(Exchange).join(Order).where(Order.number == swap)).all()
            assert [(e.requested_variant, e.reason.value) for e in stored] == [("XL 蓝色", "no_reason")]

        # The replacement is out of stock: the quality exchange becomes a return with a refund.
        card = agent.locator(f'#orders .order[data-order="{sold_out}"]')
        card.locator(".order__exchange summary").click()
        card.locator(".order__exchange-item").select_option("AP-1001|quality")
        card.locator('.order__exchange input[name="out_of_stock"]').check()
        card.locator('button[data-action="exchange"]').click()
        expect(card.locator(".order__result")).to_contain_text("replacement out of stock, return RMA")
        expect(customer.locator("#messages .msg--system").filter(
            has_text="The replacement is out of stock, so as agreed return RMA")).to_have_count(1)
        with exchange_orders["factory"]() as session:
            assert session.scalars(select(Exchange).join(Order).where(Order.number == sold_out)).all() == []
            returns = session.scalars(select(ReturnRequest).join(Order).where(Order.number == sold_out)).all()
            assert [r.reason.value for r in returns] == ["quality"]

        agent.locator("#ui-lang").select_option("zh")
        expect(card.locator(".order__exchange summary")).to_have_text("发起换货")
        agent.set_viewport_size({"width": 390, "height": 844})
        expect(lost_card).to_be_visible()
        assert agent.evaluate("() => document.getElementById('orders-section').scrollWidth") <= 390
        assert errors == []
    finally:
        customer_ctx.close()
        agent_ctx.close()
