"""The action server's order routes for the agent desk (actions/desk_orders.py) and the order service's reship of a
lost parcel, on a real SQLite store: the same service calls and rules as the bot, masked reads, verification by the
conversation's verified order or by the digits the customer gave, idempotent changes, and the token in front."""
from __future__ import annotations

from sanic import Sanic

from actions.desk_orders import order_action, order_view
from actions.orders.enums import ItemCategory, OrderStatus
from actions.orders.service import NOT_LOST, Outcome
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
