"""The action server's order routes for the agent desk (actions/desk_orders.py) and the order service's reship and
full refund of a lost parcel and its exchanges, on a real SQLite store: the same service calls and rules as the bot,
masked reads, verification by the conversation's verified order or by the digits the customer gave, idempotent
changes, and the token in front."""
from __future__ import annotations

from sanic import Sanic
from sqlalchemy import select

from actions import verification
from actions.desk_orders import OUT_OF_STOCK, order_action, order_view
from actions.orders.enums import ExchangeStatus, ItemCategory, OrderStatus, PaymentMethod, RefundKind, ReturnReason
from actions.orders.models import Exchange, Order, Refund, ReturnRequest
from actions.orders.service import ALREADY_REFUNDED, ALREADY_RESHIPPED, NOT_LOST, Outcome
from actions.server import build_app
from tests.actions.order_fixtures import LAST4, Env
from tests.actions.orders.builders import ItemSpec

TOKEN = "desk-orders-token"  # noqa: S105 - test secret


async def test_view_is_masked_and_says_what_the_policy_allows(env: Env) -> None:
    env.scenario.order("DM2026112001", OrderStatus.IN_TRANSIT, days_late=8)
    env.scenario.order("DM2026112002", OrderStatus.DELIVERED, delivered_days_ago=3,
                       items=(ItemSpec(), ItemSpec(sku="UW-1", name="袜子", category=ItemCategory.UNDERWEAR)))
    body, status = await order_view("DM2026112001")
    assert status == 200
    order = body["order"]
    assert order["status"] == "delayed" and order["address"]["phone"] == "138****5678"
    assert order["address"]["recipient_name"] == "张*" and "969" not in order["address"]["address_line"]
    assert body["tracking"]["events"][0]["description_en"] and body["tracking"]["shipments"][0]["tracking_number"]
    # 8 days late: the 7-day tier - a 30 yuan coupon, or the shipping fee (8 yuan paid on a 79 yuan order).
    assert body["allowed"]["compensation"] == {"days_late": 8, "coupon_cents": 3000, "shipping_refund_cents": 800}
    assert body["allowed"]["reship"] is False and body["allowed"]["address_change"] is False

    body, _ = await order_view("DM2026112002")
    returns = {(r["sku"], r["reason"]): r for r in body["allowed"]["returns"]}
    assert returns[("AP-1001", "no_reason")]["eligible"] is True
    assert returns[("UW-1", "no_reason")]["refusal"] == "excluded_category"  # the policy's excluded categories
    assert returns[("UW-1", "quality")]["eligible"] is True and returns[("UW-1", "quality")]["photos_required"]
    assert body["allowed"]["compensation"] is None
    assert (await order_view("DM2099999999"))[1] == 404
    assert (await order_view("not-an-order"))[1] == 422


async def test_coupon_through_the_service_once_per_order(env: Env) -> None:
    env.scenario.order("DM2026112003", OrderStatus.IN_TRANSIT, days_late=4)
    first, status = await order_action("DM2026112003", "coupon", {"verified_in_conversation": True})
    assert status == 200 and first["result"]["outcome"] == "done"
    assert first["result"]["coupon"]["amount_cents"] == 1000  # the 3-day tier
    again, _ = await order_action("DM2026112003", "coupon", {"verified_in_conversation": True})
    assert again["result"]["outcome"] == "already_done"
    assert again["result"]["coupon"]["code"] == first["result"]["coupon"]["code"]
    # The 3-day tier has no shipping-fee option: refused by the service's rule.
    env.scenario.order("DM2026112004", OrderStatus.IN_TRANSIT, days_late=4)
    refused, _ = await order_action("DM2026112004", "shipping_refund", {"verified_in_conversation": True})
    assert refused["result"]["outcome"] == "not_allowed"
    env.scenario.order("DM2026112005", OrderStatus.IN_TRANSIT, days_late=1)
    late_1, _ = await order_action("DM2026112005", "coupon", {"verified_in_conversation": True})
    assert late_1["result"] == {**late_1["result"], "outcome": "not_allowed", "refusal": "not_delayed_enough"}


async def test_without_verification_the_digits_decide(env: Env) -> None:
    env.scenario.order("DM2026112006", OrderStatus.IN_TRANSIT, days_late=4)
    body, status = await order_action("DM2026112006", "coupon", {})
    assert status == 403 and body["error"] == "not_verified"
    body, status = await order_action("DM2026112006", "coupon", {"phone_last4": "0000"})
    assert status == 403
    body, status = await order_action("DM2026112006", "coupon", {"phone_last4": LAST4})
    assert status == 200 and body["result"]["outcome"] == "done"


async def test_return_address_and_reship_follow_the_bots_rules(env: Env) -> None:
    env.scenario.order("DM2026112007", OrderStatus.DELIVERED, delivered_days_ago=2)
    ok, _ = await order_action("DM2026112007", "return", {"verified_in_conversation": True, "sku": "AP-1001",
                                                          "reason": "no_reason"})
    assert ok["result"]["outcome"] == "done" and ok["result"]["return_request"]["rma"].startswith("RMA")
    twice, _ = await order_action("DM2026112007", "return", {"verified_in_conversation": True, "sku": "AP-1001",
                                                             "reason": "no_reason"})
    assert twice["result"]["outcome"] == "already_done"
    env.scenario.order("DM2026112008", OrderStatus.DELIVERED, delivered_days_ago=20)
    late, _ = await order_action("DM2026112008", "return", {"verified_in_conversation": True, "sku": "AP-1001",
                                                            "reason": "quality"})
    assert late["result"]["refusal"] == "window_expired"
    bad, status = await order_action("DM2026112008", "return", {"verified_in_conversation": True, "sku": "AP-1001",
                                                                "reason": "broken"})
    assert status == 422

    address = {"recipient_name": "李雷", "phone": "13900001111", "province": "江苏", "city": "南京",
               "district": "鼓楼区", "address_line": "中山路1号"}
    env.scenario.order("DM2026112009", OrderStatus.PAID, placed_days_ago=0.5)
    moved, _ = await order_action("DM2026112009", "address", {"verified_in_conversation": True, "address": address,
                                                              "idempotency_key": "k" * 32})
    assert moved["result"]["outcome"] == "done" and moved["result"]["address"]["city"] == "南京"
    replay, _ = await order_action("DM2026112009", "address", {"phone_last4": LAST4, "address": address,
                                                               "idempotency_key": "k" * 32})
    assert replay["result"] == moved["result"]  # the recorded result of that very change
    env.scenario.order("DM2026112010", OrderStatus.IN_TRANSIT)
    shipped, _ = await order_action("DM2026112010", "address", {"verified_in_conversation": True, "address": address})
    assert shipped["result"]["refusal"] == "already_shipped"
    markup, status = await order_action("DM2026112009", "address", {
        "verified_in_conversation": True, "address": {**address, "address_line": "<script>x</script>"}})
    assert status == 422


async def test_reship_a_lost_parcel_once(env: Env) -> None:
    env.scenario.order("DM2026112011", OrderStatus.LOST, days_late=5)
    first = env.service.reship_lost_parcel("DM2026112011", phone_last4=LAST4)
    assert first.outcome is Outcome.DONE and first.status is OrderStatus.SHIPPED
    assert first.tracking_number and first.tracking_number.startswith("SF") and len(first.tracking_number) == 14
    assert first.promised_delivery_date is not None and first.promised_delivery_date > env.scenario.now.date()
    tracking = env.service.tracking("DM2026112011")
    assert len(tracking.shipments) == 2 and tracking.shipments[-1].tracking_number == first.tracking_number
    assert env.service.get_order("DM2026112011").days_late == 0
    again = env.service.reship_lost_parcel("DM2026112011", phone_last4=LAST4)
    assert again.outcome is Outcome.ALREADY_DONE and again.tracking_number == first.tracking_number
    env.scenario.order("DM2026112012", OrderStatus.IN_TRANSIT)
    refused = env.service.reship_lost_parcel("DM2026112012", phone_last4=LAST4)
    assert refused.outcome is Outcome.NOT_ALLOWED and refused.refusal == NOT_LOST
    # Through the route with an idempotency key: the same key replays the first result.
    env.scenario.order("DM2026112013", OrderStatus.LOST, days_late=5)
    one, _ = await order_action("DM2026112013", "reship", {"verified_in_conversation": True,
                                                           "idempotency_key": "r" * 32})
    two, _ = await order_action("DM2026112013", "reship", {"verified_in_conversation": True,
                                                           "idempotency_key": "r" * 32})
    assert one["result"]["outcome"] == "done" and two["result"] == one["result"]
    assert len(env.service.tracking("DM2026112013").shipments) == 2
    unknown, status = await order_action("DM2026112013", "refund_everything", {})
    assert status == 404


def test_the_routes_are_on_the_action_server_behind_its_token() -> None:
    """build_app adds the desk's routes next to /webhook and /kb/decide, behind the one token check of every route
    (tests/actions/test_kb_decide_endpoint.py drives that check over HTTP; one Sanic app start per test process)."""
    app = build_app(TOKEN)
    try:
        paths = {"/" + route.path.strip("/") for route in app.router.routes}
        assert {"/desk/orders/<number>", "/desk/orders/<number>/<kind>"} <= {
            p.replace(":str", "") for p in paths}, paths
        assert any(m.func.__name__ == "_require_token" for m in app.request_middleware)
    finally:
        Sanic._app_registry.pop(app.name, None)  # the next test of the process builds rasa-sdk's app again


# --- exchanges and the lost-parcel refund (issue 17: the desk's exchange and lost-parcel actions) ------------------

def _exchanges(env: Env, number: str) -> list[Exchange]:
    with env.session() as session:
        return list(session.scalars(select(Exchange).join(Order).where(Order.number == number)))


def _refunds(env: Env, number: str) -> list[Refund]:
    with env.session() as session:
        return list(session.scalars(select(Refund).join(Order).where(Order.number == number)))


async def test_an_exchange_is_the_services_exchange_record_under_the_return_windows(env: Env) -> None:
    items = (ItemSpec(), ItemSpec(sku="UW-1", name="袜子", category=ItemCategory.UNDERWEAR))
    env.scenario.order("DM2026112201", OrderStatus.DELIVERED, delivered_days_ago=2, items=items)
    ok, status = await order_action("DM2026112201", "exchange", {
        "verified_in_conversation": True, "sku": "ap-1001", "reason": "no_reason", "variant": "XL 蓝色"})
    assert status == 200 and ok["result"]["outcome"] == "done", ok
    result = ok["result"]
    assert result["exchange"]["requested_variant"] == "XL 蓝色" and result["item_name"] == "男士纯棉圆领T恤"
    assert result["return_shipping_paid_by"] == "customer" and result["photos_required"] is False
    assert result["deadline"] == "2026-11-27" and result["switched_to_return"] is False  # 7 days from delivery
    stored = _exchanges(env, "DM2026112201")
    assert [(e.requested_variant, e.reason, e.status, e.quantity) for e in stored] == [
        ("XL 蓝色", ReturnReason.NO_REASON, ExchangeStatus.REQUESTED, 1)]
    # Asked again: the open exchange, no second record.
    again, _ = await order_action("DM2026112201", "exchange", {
        "verified_in_conversation": True, "sku": "AP-1001", "reason": "no_reason", "variant": "XL 蓝色"})
    assert again["result"]["outcome"] == "already_done" and len(_exchanges(env, "DM2026112201")) == 1
    # Excluded categories: no size/colour swap for underwear, but a faulty one is replaced (same item, photos).
    refused, _ = await order_action("DM2026112201", "exchange", {
        "verified_in_conversation": True, "sku": "UW-1", "reason": "no_reason", "variant": "L"})
    assert refused["result"]["outcome"] == "not_allowed" and refused["result"]["refusal"] == "excluded_category"
    faulty, _ = await order_action("DM2026112201", "exchange", {
        "verified_in_conversation": True, "sku": "UW-1", "reason": "quality"})
    assert faulty["result"]["outcome"] == "done" and faulty["result"]["exchange"]["requested_variant"] is None
    assert faulty["result"]["photos_required"] is True and faulty["result"]["return_shipping_paid_by"] == "store"

    # Outside the window, before delivery, an item already being returned: refused with the reason.
    env.scenario.order("DM2026112202", OrderStatus.DELIVERED, delivered_days_ago=10)
    late, _ = await order_action("DM2026112202", "exchange", {"verified_in_conversation": True, "sku": "AP-1001",
                                                              "reason": "no_reason", "variant": "M"})
    assert late["result"]["refusal"] == "window_expired"
    within, _ = await order_action("DM2026112202", "exchange", {"verified_in_conversation": True, "sku": "AP-1001",
                                                                "reason": "quality"})
    assert within["result"]["outcome"] == "done"  # quality: 15 days
    env.scenario.order("DM2026112203", OrderStatus.IN_TRANSIT)
    early, _ = await order_action("DM2026112203", "exchange", {"verified_in_conversation": True, "sku": "AP-1001",
                                                               "reason": "quality"})
    assert early["result"]["refusal"] == "not_delivered"
    env.scenario.order("DM2026112204", OrderStatus.DELIVERED, delivered_days_ago=1)
    await order_action("DM2026112204", "return", {"verified_in_conversation": True, "sku": "AP-1001",
                                                  "reason": "no_reason"})
    both, _ = await order_action("DM2026112204", "exchange", {"verified_in_conversation": True, "sku": "AP-1001",
                                                              "reason": "no_reason", "variant": "L"})
    assert both["result"]["refusal"] == "quantity_exceeded" and _exchanges(env, "DM2026112204") == []
    # Bad input and an unknown item are answers, never a 500.
    assert (await order_action("DM2026112203", "exchange", {"verified_in_conversation": True, "sku": "AP-1001",
                                                            "reason": "faulty"}))[1] == 422
    assert (await order_action("DM2026112203", "exchange", {"verified_in_conversation": True, "sku": "NOPE-1",
                                                            "reason": "quality"}))[1] == 404
    assert (await order_action("DM2026112201", "exchange", {"verified_in_conversation": True, "sku": "AP-1001",
                                                            "reason": "quality", "variant": "<b>x</b>"}))[1] == 422
    assert (await order_action("DM2026112201", "exchange", {"phone_last4": "0000", "sku": "AP-1001",
                                                            "reason": "quality"}))[1] == 403


async def test_replacement_out_of_stock_becomes_the_return_the_policy_offers(env: Env, monkeypatch) -> None:
    env.scenario.order("DM2026112205", OrderStatus.DELIVERED, delivered_days_ago=3)
    switched, status = await order_action("DM2026112205", "exchange", {
        "verified_in_conversation": True, "sku": "AP-1001", "reason": "quality", "variant": "XL", "in_stock": False})
    assert status == 200 and switched["result"]["outcome"] == "done" and switched["result"]["switched_to_return"]
    assert switched["result"]["return_request"]["reason"] == "quality"
    assert switched["result"]["return_shipping_paid_by"] == "store"  # the store still pays shipping both ways
    with env.session() as session:
        request = session.scalars(select(ReturnRequest)).one()
        assert request.customer_note == "exchange replacement out of stock: XL"
    assert _exchanges(env, "DM2026112205") == []
    # A policy that offers the switch for quality problems only: a size swap out of stock is refused with the reason.
    policy = env.policy.model_copy(update={"returns": env.policy.returns.model_copy(
        update={"exchange_out_of_stock_return": [ReturnReason.QUALITY]})})
    monkeypatch.setattr(verification, "policy", lambda: policy)
    env.scenario.order("DM2026112206", OrderStatus.DELIVERED, delivered_days_ago=3)
    refused, status = await order_action("DM2026112206", "exchange", {
        "verified_in_conversation": True, "sku": "AP-1001", "reason": "no_reason", "variant": "L", "in_stock": False})
    assert status == 200 and refused["result"]["outcome"] == "not_allowed"
    assert refused["result"]["refusal"] == OUT_OF_STOCK
    assert (await order_action("DM2026112206", "exchange", {
        "phone_last4": "0000", "sku": "AP-1001", "reason": "no_reason", "in_stock": False}))[1] == 403
    with env.session() as session:
        assert len(session.scalars(select(ReturnRequest)).all()) == 1


async def test_a_lost_parcel_is_refunded_in_full_to_the_original_method_once(env: Env) -> None:
    env.scenario.order("DM2026112207", OrderStatus.LOST, days_late=5)  # 79 yuan + 8 yuan shipping, Alipay
    view, _ = await order_view("DM2026112207")
    assert view["allowed"]["lost_refund"] == {"amount_cents": 8700, "method": "alipay"}
    assert view["allowed"]["reship"] is True
    done, status = await order_action("DM2026112207", "lost_refund", {"verified_in_conversation": True})
    assert status == 200 and done["result"]["outcome"] == "done", done
    refund = done["result"]["refund"]
    assert (refund["kind"], refund["amount_cents"], refund["method"], refund["status"]) == (
        "lost_parcel", 8700, "alipay", "approved")
    # The policy's timing: wallets within 24 hours of approval (now: 2026-11-22 12:00 China time).
    assert done["result"]["display"] == {"method_zh": "支付宝", "method_en": "Alipay",
                                         "expected_by": "2026-11-23 12:00"}
    assert done["result"]["status"] == "lost"
    again, _ = await order_action("DM2026112207", "lost_refund", {"verified_in_conversation": True})
    assert again["result"]["outcome"] == "already_done" and again["result"]["refund"] == refund
    assert [(r.kind, r.amount_cents) for r in _refunds(env, "DM2026112207")] == [(RefundKind.LOST_PARCEL, 8700)]
    # The customer chose the refund: no reship any more, and the console offers neither.
    reship, _ = await order_action("DM2026112207", "reship", {"verified_in_conversation": True})
    assert reship["result"]["outcome"] == "not_allowed" and reship["result"]["refusal"] == ALREADY_REFUNDED
    assert len(env.service.tracking("DM2026112207").shipments) == 1
    view, _ = await order_view("DM2026112207")
    assert view["allowed"]["reship"] is False and view["allowed"]["lost_refund"] is None

    # A bank card: 3-7 business days (Sunday 22 Nov + 7 business days = Tuesday 1 Dec).
    env.scenario.order("DM2026112208", OrderStatus.LOST, days_late=5, payment=PaymentMethod.UNIONPAY)
    card, _ = await order_action("DM2026112208", "lost_refund", {"phone_last4": LAST4})
    assert card["result"]["display"]["expected_by"] == "2026-12-01 12:00"
    assert card["result"]["display"]["method_en"] == "UnionPay card"


async def test_the_lost_parcel_refund_is_refused_with_the_reason(env: Env) -> None:
    # Re-shipped first: the customer chose the reship.
    env.scenario.order("DM2026112209", OrderStatus.LOST, days_late=5)
    await order_action("DM2026112209", "reship", {"verified_in_conversation": True})
    after, status = await order_action("DM2026112209", "lost_refund", {"verified_in_conversation": True})
    assert status == 200 and after["result"]["refusal"] == ALREADY_RESHIPPED
    env.scenario.order("DM2026112210", OrderStatus.IN_TRANSIT, days_late=2)
    moving, _ = await order_action("DM2026112210", "lost_refund", {"verified_in_conversation": True})
    assert moving["result"]["outcome"] == "not_allowed" and moving["result"]["refusal"] == NOT_LOST
    assert _refunds(env, "DM2026112209") == [] and _refunds(env, "DM2026112210") == []
    assert (await order_action("DM2026112210", "lost_refund", {"phone_last4": "0000"}))[1] == 403
    # What was refunded already (the shipping fee for a long delay) is not paid twice.
    env.scenario.order("DM2026112211", OrderStatus.IN_TRANSIT, days_late=8)
    fee, _ = await order_action("DM2026112211", "shipping_refund", {"verified_in_conversation": True})
    assert fee["result"]["outcome"] == "done"
    with env.session() as session, session.begin():
        session.scalars(select(Order).where(Order.number == "DM2026112211")).one().status = OrderStatus.LOST
    rest, _ = await order_action("DM2026112211", "lost_refund", {"verified_in_conversation": True})
    assert rest["result"]["refund"]["amount_cents"] == 8700 - 800
    # The same idempotency key replays the recorded result (a timed-out request sent again).
    env.scenario.order("DM2026112212", OrderStatus.LOST, days_late=5)
    one, _ = await order_action("DM2026112212", "lost_refund", {"verified_in_conversation": True,
                                                                "idempotency_key": "f" * 32})
    two, _ = await order_action("DM2026112212", "lost_refund", {"phone_last4": LAST4, "idempotency_key": "f" * 32})
    assert one["result"]["outcome"] == "done" and two["result"]["outcome"] == "done"
    assert two["result"]["refund"] == one["result"]["refund"] and len(_refunds(env, "DM2026112212")) == 1
