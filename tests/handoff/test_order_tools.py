"""Order tools of the console (issue 17, item 3) against the real gateway, a real Redis and the real action server
(its Sanic app in process) over a real SQLite order store: live orders in the context panel; a coupon, a return, a
reship, an address change made by the conversation's agent through the order service with the bot's rules; one
coupon for a double click; audited; the customer told in the chat. Attacks: another agent, an agent on a queued
conversation, an editor, an unverified order, wrong digits, a flood, the order service down."""
from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from sqlalchemy import select

from actions.desk_orders import order_action, order_view
from actions.orders.enums import ExchangeStatus, OrderStatus, RefundKind
from actions.orders.models import Coupon, Exchange, Order, Refund, ReturnRequest
from actions.server import authorised
from bot.shared.context_tracker import tracker_part
from handoff.order_desk import OrdersClient
from tests.actions.order_fixtures import LAST4, Env, env  # noqa: F401 - env is a fixture
from tests.handoff.conftest import tracker_for

TOKEN = "desk-orders-token"  # noqa: S105 - test secret
VERIFIED = "DM2026112101"


def action_server_transport(token: str = TOKEN) -> httpx.MockTransport:
    """The action server's /desk/orders routes as its Sanic app serves them (token check, then
    actions/desk_orders.py on the test's order store), without starting a Sanic app per test (tests/actions/
    test_desk_orders.py drives the real Sanic routes)."""

    async def handle(request: httpx.Request) -> httpx.Response:
        if not authorised(request.headers.get("X-Action-Token"), token):
            return httpx.Response(401, json={"error": "missing or wrong X-Action-Token"})
        parts = request.url.path.strip("/").split("/")  # desk / orders / <number> [/ <kind>]
        if request.method == "GET" and len(parts) == 3:
            payload, status = await order_view(parts[2])
        elif request.method == "POST" and len(parts) == 4:
            payload, status = await order_action(parts[2], parts[3], json.loads(request.content or b"{}"))
        else:
            payload, status = {"error": "not found"}, 404
        return httpx.Response(status, json=payload)

    return httpx.MockTransport(handle)


@pytest.fixture
def orders(desk, env: Env):  # noqa: F811
    desk.app.state.orders_client = OrdersClient("http://actions", TOKEN, 10, transport=action_server_transport())
    return env


async def _conversation(desk, verified: tuple[str, ...] = (VERIFIED,)) -> tuple[str, str]:
    cid = (await desk.say("where is my parcel, it is late"))["conversation_id"]
    held = tracker_for(cid)
    slots = {**held["slots"], "order_number": verified[0] if verified else None,
             "verified_orders": {n: LAST4 for n in verified}}
    r = await desk.handoff(cid, tracker=tracker_part(held["events"], slots))
    assert r.status_code == 200, r.text
    return cid, r.json()["handoff_id"]


async def _claimed(desk, agent, verified: tuple[str, ...] = (VERIFIED,)) -> tuple[str, str]:
    cid, hid = await _conversation(desk, verified)
    r = await desk.http.post(f"/api/agent/handoffs/{hid}/claim", headers=agent.headers)
    assert r.status_code == 200, r.text
    return cid, hid


def _act(desk, agent, hid: str, number: str, **body):
    return desk.http.post(f"/api/agent/handoffs/{hid}/orders/{number}/actions", json=body, headers=agent.headers)


async def _audit(desk, action: str) -> list[dict]:
    return [e for e in await desk.app.state.desk.audit_log(1000) if e["action"] == action]


def _coupons(store: Env, number: str) -> int:
    with store.session() as session:
        return sum(1 for c in session.query(Coupon).all() if c.order and c.order.number == number)


async def test_live_orders_in_the_context_panel(desk, orders) -> None:
    orders.scenario.order(VERIFIED, OrderStatus.IN_TRANSIT, days_late=8)
    alice = await desk.agent("alice")
    cid, hid = await _claimed(desk, alice)
    # The customer also typed another number the bot never verified: listed, no detail.
    r = await desk.http.get(f"/api/agent/handoffs/{hid}/orders", headers=alice.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    live = body["orders"][0]
    assert live["number"] == VERIFIED and live["verified"] is True and body["may_act"] is True
    assert live["order"]["status"] == "delayed" and live["order"]["items"][0]["sku"] == "AP-1001"
    assert live["order"]["address"]["phone"] == "138****5678"  # masked by the service
    assert live["tracking"]["shipments"][0]["tracking_number"].startswith("SF")
    assert live["allowed"]["compensation"]["coupon_cents"] == 3000
    assert any(e["detail"] and VERIFIED in e["detail"] for e in await _audit(desk, "order_view"))
    # Another agent cannot read a claimed conversation's orders; the refusal is audited.
    bob = await desk.agent("bob")
    r = await desk.http.get(f"/api/agent/handoffs/{hid}/orders", headers=bob.headers)
    assert r.status_code == 403
    assert any(json.loads(e["detail"]).get("what") == "orders" for e in await _audit(desk, "view_denied"))


async def test_coupon_once_for_a_double_click_audited_and_told_to_the_customer(desk, orders) -> None:
    orders.scenario.order(VERIFIED, OrderStatus.IN_TRANSIT, days_late=4)
    alice = await desk.agent("alice")
    cid, hid = await _claimed(desk, alice)
    # Two clicks at once: one coupon; the other click gets "in progress" (409) or the first result.
    first, second = await asyncio.gather(_act(desk, alice, hid, VERIFIED, kind="coupon"),
                                         _act(desk, alice, hid, VERIFIED, kind="coupon"))
    codes = sorted([first.status_code, second.status_code])
    assert codes in ([200, 200], [200, 409]), (first.text, second.text)
    done = first if first.status_code == 200 and not first.json()["duplicate"] else second
    assert done.json()["outcome"] == "done" and done.json()["result"]["coupon"]["amount_cents"] == 1000
    code = done.json()["result"]["coupon"]["code"]
    later = await _act(desk, alice, hid, VERIFIED, kind="coupon")
    assert later.status_code == 200 and later.json()["duplicate"] is True
    assert later.json()["result"]["coupon"]["code"] == code
    assert _coupons(orders, VERIFIED) == 1
    # The customer sees it in the chat (the conversation's stream; the page gets it by SSE).
    history = [m.to_dict() for m in await desk.app.state.store.history(cid)]
    told = [m for m in history if m["role"] == "system" and code in m["text"]]
    assert len(told) == 1 and "10 yuan coupon" in told[0]["text"]
    entries = await _audit(desk, "order_action")
    assert len(entries) == 1 and json.loads(entries[0]["detail"])["outcome"] == "done"
    assert entries[0]["agent"] == "alice" and entries[0]["conversation_id"] == cid


async def test_return_reship_and_address_through_the_service(desk, orders) -> None:
    delivered, lost, paid = "DM2026112102", "DM2026112103", "DM2026112104"
    orders.scenario.order(delivered, OrderStatus.DELIVERED, delivered_days_ago=2)
    orders.scenario.order(lost, OrderStatus.LOST, days_late=6)
    orders.scenario.order(paid, OrderStatus.PAID, placed_days_ago=0.5)
    alice = await desk.agent("alice")
    cid, hid = await _claimed(desk, alice, verified=(delivered, lost, paid))
    r = await _act(desk, alice, hid, delivered, kind="return", sku="AP-1001", reason="no_reason")
    assert r.status_code == 200 and r.json()["outcome"] == "done", r.text
    rma = r.json()["result"]["return_request"]["rma"]
    r = await _act(desk, alice, hid, lost, kind="reship")
    assert r.json()["outcome"] == "done" and r.json()["result"]["status"] == "shipped"
    tracking = r.json()["result"]["tracking_number"]
    assert len(orders.service.tracking(lost).shipments) == 2
    address = {"recipient_name": "李雷", "phone": "13900001111", "province": "江苏", "city": "南京",
               "district": "鼓楼区", "address_line": "中山路1号"}
    r = await _act(desk, alice, hid, paid, kind="address", address=address)
    assert r.json()["outcome"] == "done" and orders.service.get_order(paid).address.city == "南京"
    # The bot's rules: no address change once shipped, no reship of a parcel that is not lost.
    r = await _act(desk, alice, hid, lost, kind="address", address=address)
    assert r.json()["outcome"] == "not_allowed" and r.json()["refusal"] == "already_shipped"
    r = await _act(desk, alice, hid, delivered, kind="reship")
    assert r.json()["outcome"] == "not_allowed" and r.json()["refusal"] == "not_lost"
    text = " ".join(m.text for m in await desk.app.state.store.history(cid) if m.role == "system")
    assert rma in text and tracking in text and "delivery address" in text
    # Bad input is refused before anything is asked.
    assert (await _act(desk, alice, hid, delivered, kind="return", sku="AP-1001")).status_code == 422
    assert (await _act(desk, alice, hid, delivered, kind="refund_all")).status_code == 422
    assert (await _act(desk, alice, hid, "DM<script>", kind="coupon")).status_code in (404, 422)


async def test_only_the_conversations_agent_or_a_supervisor_may_act(desk, orders) -> None:
    orders.scenario.order(VERIFIED, OrderStatus.IN_TRANSIT, days_late=8)
    alice, bob = await desk.agent("alice"), await desk.agent("bob")
    boss = await desk.agent("boss", role="supervisor")
    editor = await desk.app.state.agents.create("ed", desk.password, "editor")
    assert editor
    # Queued (nobody owns it): no agent may act, although any agent may read it to decide to claim.
    cid, hid = await _conversation(desk)
    r = await _act(desk, bob, hid, VERIFIED, kind="coupon")
    assert r.status_code == 403
    r = await desk.http.post(f"/api/agent/handoffs/{hid}/claim", headers=alice.headers)
    assert r.status_code == 200
    r = await _act(desk, bob, hid, VERIFIED, kind="coupon")
    assert r.status_code == 403 and "agent of this conversation" in r.json()["detail"]
    assert _coupons(orders, VERIFIED) == 0
    denied = await _audit(desk, "order_action_denied")
    assert len(denied) == 2 and {e["agent"] for e in denied} == {"bob"}
    login = await desk.http.post("/api/agent/login", json={"username": "ed", "password": desk.password})
    desk.http.cookies.clear()
    r = await _act(desk, type("E", (), {"headers": {"Authorization": f"Bearer {login.json()['token']}"}})(), hid,
                   VERIFIED, kind="coupon")
    assert r.status_code == 403
    # A supervisor may act on any conversation.
    r = await _act(desk, boss, hid, VERIFIED, kind="shipping_refund")
    assert r.status_code == 200 and r.json()["outcome"] == "done"
    # Not logged in.
    r = await desk.http.post(f"/api/agent/handoffs/{hid}/orders/{VERIFIED}/actions", json={"kind": "coupon"})
    assert r.status_code == 401


async def test_an_order_not_verified_in_the_conversation_needs_the_customers_digits(desk, orders) -> None:
    other = "DM2026112105"
    orders.scenario.order(VERIFIED, OrderStatus.IN_TRANSIT, days_late=4)
    orders.scenario.order(other, OrderStatus.IN_TRANSIT, days_late=4)
    alice = await desk.agent("alice")
    cid, hid = await _claimed(desk, alice)
    r = await _act(desk, alice, hid, other, kind="coupon")
    assert r.status_code == 403 and "last 4 digits" in r.json()["detail"]
    r = await _act(desk, alice, hid, other, kind="coupon", phone_last4="0000")
    assert r.status_code == 403
    assert (await _act(desk, alice, hid, other, kind="coupon", phone_last4="12a4")).status_code == 422
    r = await _act(desk, alice, hid, other, kind="coupon", phone_last4=LAST4)
    assert r.status_code == 200 and r.json()["outcome"] == "done"
    refused = await _audit(desk, "order_action_refused")
    assert len(refused) == 1 and json.loads(refused[0]["detail"])["status"] == 403


@pytest.mark.desk_settings(handoff_limit_order_actions="3/minute")
async def test_a_flood_of_actions_is_stopped_per_account(desk, orders) -> None:
    orders.scenario.order(VERIFIED, OrderStatus.IN_TRANSIT, days_late=1)  # not late enough: refused each time
    alice = await desk.agent("alice")
    cid, hid = await _claimed(desk, alice)
    statuses = [(await _act(desk, alice, hid, VERIFIED, kind="coupon")).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    r = await _act(desk, alice, hid, VERIFIED, kind="coupon")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert _coupons(orders, VERIFIED) == 0


async def test_order_service_down_is_a_503_and_the_click_can_be_retried(desk, orders) -> None:
    orders.scenario.order(VERIFIED, OrderStatus.IN_TRANSIT, days_late=4)
    alice = await desk.agent("alice")
    cid, hid = await _claimed(desk, alice)
    desk.app.state.orders_client = OrdersClient("http://127.0.0.1:9", TOKEN, 2)
    r = await _act(desk, alice, hid, VERIFIED, kind="coupon")
    assert r.status_code == 503
    r = await desk.http.get(f"/api/agent/handoffs/{hid}/orders", headers=alice.headers)
    assert r.status_code == 200 and r.json()["error"]
    assert [o for o in r.json()["orders"] if o["verified"]] == []  # no detail without the service
    desk.app.state.orders_client = OrdersClient("http://actions", "wrong-token", 10,
                                                transport=action_server_transport())
    assert (await _act(desk, alice, hid, VERIFIED, kind="coupon")).status_code == 503
    desk.app.state.orders_client = OrdersClient("http://actions", TOKEN, 10, transport=action_server_transport())
    r = await _act(desk, alice, hid, VERIFIED, kind="coupon")
    assert r.status_code == 200 and r.json()["outcome"] == "done" and r.json()["duplicate"] is False


async def test_the_customer_is_told_in_the_conversations_language(desk, orders) -> None:
    orders.scenario.order(VERIFIED, OrderStatus.LOST, days_late=6)
    alice = await desk.agent("alice")
    cid = (await desk.say("我的包裹丢了"))["conversation_id"]
    held = tracker_for(cid)
    slots = {**held["slots"], "language": "zh", "order_number": VERIFIED, "verified_orders": {VERIFIED: LAST4}}
    r = await desk.handoff(cid, language="zh", tracker=tracker_part(held["events"], slots))
    hid = r.json()["handoff_id"]
    assert (await desk.http.post(f"/api/agent/handoffs/{hid}/claim", headers=alice.headers)).status_code == 200
    r = await _act(desk, alice, hid, VERIFIED, kind="reship")
    assert r.json()["outcome"] == "done"
    told = [m.text for m in await desk.app.state.store.history(cid) if m.role == "system" and VERIFIED in m.text]
    assert told == [f"订单 {VERIFIED} 的包裹已为您重新发出，新运单号 {r.json()['result']['tracking_number']}，"
                    f"预计 {r.json()['result']['promised_delivery_date']} 前送达。"]


# --- exchange and lost-parcel refund from the console --------------------------------------------------------------

async def _zh_conversation(desk, agent, verified: tuple[str, ...]) -> tuple[str, str]:
    cid = (await desk.say("我的包裹丢了，另一件想换个尺码"))["conversation_id"]
    held = tracker_for(cid)
    slots = {**held["slots"], "language": "zh", "order_number": verified[0],
             "verified_orders": {n: LAST4 for n in verified}}
    r = await desk.handoff(cid, language="zh", tracker=tracker_part(held["events"], slots))
    hid = r.json()["handoff_id"]
    assert (await desk.http.post(f"/api/agent/handoffs/{hid}/claim", headers=agent.headers)).status_code == 200
    return cid, hid


def _rows(store: Env, model, number: str) -> list:
    with store.session() as session:
        return list(session.scalars(select(model).join(Order).where(Order.number == number)))


async def test_exchange_and_lost_parcel_refund_once_told_in_chinese_and_audited(desk, orders) -> None:
    delivered, lost = "DM2026112111", "DM2026112112"
    orders.scenario.order(delivered, OrderStatus.DELIVERED, delivered_days_ago=2)
    orders.scenario.order(lost, OrderStatus.LOST, days_late=6)
    alice = await desk.agent("alice")
    cid, hid = await _zh_conversation(desk, alice, (delivered, lost))
    r = await desk.http.get(f"/api/agent/handoffs/{hid}/orders", headers=alice.headers)
    panel = {o["number"]: o for o in r.json()["orders"]}
    assert panel[lost]["allowed"]["lost_refund"] == {"amount_cents": 8700, "method": "alipay"}
    # A double click: one exchange record, one message to the customer.
    first, second = await asyncio.gather(
        _act(desk, alice, hid, delivered, kind="exchange", sku="AP-1001", reason="no_reason", variant="XL 蓝色"),
        _act(desk, alice, hid, delivered, kind="exchange", sku="AP-1001", reason="no_reason", variant="XL 蓝色"))
    assert sorted([first.status_code, second.status_code]) in ([200, 200], [200, 409]), (first.text, second.text)
    done = first if first.status_code == 200 and not first.json()["duplicate"] else second
    assert done.json()["outcome"] == "done" and done.json()["result"]["exchange"]["requested_variant"] == "XL 蓝色"
    later = await _act(desk, alice, hid, delivered, kind="exchange", sku="AP-1001", reason="no_reason",
                       variant="XL 蓝色")
    assert later.status_code == 200 and later.json()["duplicate"] is True
    exchanges = _rows(orders, Exchange, delivered)
    assert [(e.requested_variant, e.status) for e in exchanges] == [("XL 蓝色", ExchangeStatus.REQUESTED)]

    r = await _act(desk, alice, hid, lost, kind="lost_refund")
    assert r.status_code == 200 and r.json()["outcome"] == "done", r.text
    again = await _act(desk, alice, hid, lost, kind="lost_refund")
    assert again.json()["duplicate"] is True
    assert [(x.kind, x.amount_cents) for x in _rows(orders, Refund, lost)] == [(RefundKind.LOST_PARCEL, 8700)]
    # The customer chose the refund: a reship is now refused by the service, with the reason.
    reship = await _act(desk, alice, hid, lost, kind="reship")
    assert reship.status_code == 200 and reship.json()["refusal"] == "already_refunded"

    told = [m.text for m in await desk.app.state.store.history(cid) if m.role == "system" and "订单" in m.text]
    assert told == [
        f"已为订单 {delivered} 的“男士纯棉圆领T恤”提交换货申请（更换为：XL 蓝色）。请在 2026-11-27 前寄回，"
        f"运费由您承担。商品需保持未使用、吊牌完好。收到后为您寄出新的商品。",
        f"订单 {lost} 的包裹已确认丢失，已为您全额退款 87 元，原路退回支付宝，预计最晚 2026-11-23 12:00 到账。"]
    entries = [json.loads(e["detail"]) for e in reversed(await _audit(desk, "order_action"))]  # oldest first
    assert [(e["kind"], e["outcome"]) for e in entries] == [("exchange", "done"), ("lost_refund", "done"),
                                                            ("reship", "not_allowed")]
    assert entries[0]["args"] == {"sku": "AP-1001", "reason": "no_reason", "quantity": 1, "variant": "XL 蓝色",
                                  "in_stock": True}


async def test_exchange_refusals_and_out_of_stock_in_english(desk, orders) -> None:
    old, fresh, moving = "DM2026112113", "DM2026112114", "DM2026112115"
    orders.scenario.order(old, OrderStatus.DELIVERED, delivered_days_ago=10)
    orders.scenario.order(fresh, OrderStatus.DELIVERED, delivered_days_ago=1)
    orders.scenario.order(moving, OrderStatus.IN_TRANSIT)
    alice = await desk.agent("alice")
    cid, hid = await _claimed(desk, alice, verified=(old, fresh, moving))
    # Refusals are answers with the reason (200), not errors; nothing is stored, nothing told.
    r = await _act(desk, alice, hid, old, kind="exchange", sku="AP-1001", reason="no_reason", variant="M")
    assert r.status_code == 200 and (r.json()["outcome"], r.json()["refusal"]) == ("not_allowed", "window_expired")
    r = await _act(desk, alice, hid, moving, kind="exchange", sku="AP-1001", reason="quality")
    assert r.status_code == 200 and r.json()["refusal"] == "not_delivered"
    r = await _act(desk, alice, hid, moving, kind="lost_refund")
    assert r.status_code == 200 and r.json()["refusal"] == "not_lost"
    assert _rows(orders, Exchange, old) == [] and _rows(orders, Refund, moving) == []
    # Bad input before anything is asked.
    assert (await _act(desk, alice, hid, fresh, kind="exchange", reason="quality")).status_code == 422
    assert (await _act(desk, alice, hid, fresh, kind="exchange", sku="AP-1001", reason="quality",
                       variant="x" * 65)).status_code == 422
    # The replacement is out of stock: the quality exchange becomes a return with a refund (store pays shipping).
    r = await _act(desk, alice, hid, fresh, kind="exchange", sku="AP-1001", reason="quality", variant="XL",
                   in_stock=False)
    assert r.status_code == 200 and r.json()["outcome"] == "done" and r.json()["result"]["switched_to_return"]
    rma = r.json()["result"]["return_request"]["rma"]
    assert _rows(orders, Exchange, fresh) == [] and len(_rows(orders, ReturnRequest, fresh)) == 1
    told = [m.text for m in await desk.app.state.store.history(cid) if m.role == "system" and "order" in m.text]
    assert told == [f"The replacement is out of stock, so as agreed return {rma} has been opened instead for "
                    f"\"男士纯棉圆领T恤\" of order {fresh}. Please send it back by 2026-12-06; shipping is paid by us. "
                    f"Please upload photos of the problem under 'My orders > Returns'. Once the warehouse has checked "
                    f"it, the refund goes back to your original payment method."]


async def test_only_the_conversations_agent_may_exchange_or_refund_a_lost_parcel(desk, orders) -> None:
    delivered, lost = "DM2026112116", "DM2026112117"
    orders.scenario.order(delivered, OrderStatus.DELIVERED, delivered_days_ago=2)
    orders.scenario.order(lost, OrderStatus.LOST, days_late=6)
    alice, bob = await desk.agent("alice"), await desk.agent("bob")
    cid, hid = await _conversation(desk, (delivered, lost))
    # Queued: nobody owns it yet.
    assert (await _act(desk, alice, hid, lost, kind="lost_refund")).status_code == 403
    assert (await desk.http.post(f"/api/agent/handoffs/{hid}/claim", headers=alice.headers)).status_code == 200
    r = await _act(desk, bob, hid, lost, kind="lost_refund")
    assert r.status_code == 403 and "agent of this conversation" in r.json()["detail"]
    r = await _act(desk, bob, hid, delivered, kind="exchange", sku="AP-1001", reason="quality")
    assert r.status_code == 403
    assert _rows(orders, Refund, lost) == [] and _rows(orders, Exchange, delivered) == []
    denied = [json.loads(e["detail"])["kind"] for e in await _audit(desk, "order_action_denied")]
    assert sorted(denied) == ["exchange", "lost_refund", "lost_refund"]
    assert [m for m in await desk.app.state.store.history(cid) if m.role == "system" and "order" in m.text] == []
    # An order the bot did not verify needs the customer's digits, exactly as for the other actions.
    other = "DM2026112118"
    orders.scenario.order(other, OrderStatus.LOST, days_late=6)
    r = await _act(desk, alice, hid, other, kind="lost_refund")
    assert r.status_code == 403 and "last 4 digits" in r.json()["detail"]
    r = await _act(desk, alice, hid, other, kind="lost_refund", phone_last4="0000")
    assert r.status_code == 403 and _rows(orders, Refund, other) == []


@pytest.mark.desk_settings(handoff_limit_order_actions="3/minute")
async def test_a_flood_of_exchanges_and_lost_parcel_refunds_is_stopped_per_account(desk, orders) -> None:
    orders.scenario.order(VERIFIED, OrderStatus.IN_TRANSIT)  # neither lost nor delivered: refused each time
    alice = await desk.agent("alice")
    cid, hid = await _claimed(desk, alice)
    statuses = [(await _act(desk, alice, hid, VERIFIED, kind="lost_refund")).status_code,
                (await _act(desk, alice, hid, VERIFIED, kind="exchange", sku="AP-1001", reason="quality")).status_code,
                (await _act(desk, alice, hid, VERIFIED, kind="lost_refund")).status_code]
    assert statuses == [200, 200, 200]
    r = await _act(desk, alice, hid, VERIFIED, kind="exchange", sku="AP-1001", reason="quality")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert _rows(orders, Refund, VERIFIED) == [] and _rows(orders, Exchange, VERIFIED) == []
