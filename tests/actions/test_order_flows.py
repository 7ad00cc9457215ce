"""Order flow actions against a real SQLite store: exact responses, slot events and the stored state."""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta

from rasa_sdk.events import SlotSet
from sqlalchemy import select

from actions import forms
from actions import verification as v
from actions.order_flows import (
    ActionAskReturnItem,
    ActionOrderCancel,
    ActionOrderChangeAddress,
    ActionOrderConfirm,
    ActionOrderDelay,
    ActionOrderExchange,
    ActionOrderPayment,
    ActionOrderRefundStatus,
    ActionOrderReturn,
    ActionOrderStatus,
)
from actions.orders import rules
from actions.orders.enums import ItemCategory, OrderStatus, PaymentMethod, RefundKind
from actions.orders.errors import BackendUnavailable
from actions.orders.http_service import HttpOrderService
from actions.orders.models import Coupon, Exchange, Order, OrderChange, Refund, ReturnRequest, Shipment
from actions.orders.sql_service import SqlOrderService
from tests.actions.order_fixtures import LAST4, NOW, Env, domain, responses, run, user
from tests.actions.orders.builders import ItemSpec
from tests.fakes.merchant_api import FakeControls, create_app, serve_in_thread

N = "DM2026111501"
CLEARED = [
    SlotSet("order_lookup_error", None), SlotSet("order_lookup_stopped", None), SlotSet("pending_confirmation", None)
]


def verified(**slots: object) -> dict:
    return {"order_number": N, "verified_orders": {N: LAST4}} | slots


def order_row(env: Env) -> Order:
    with env.session() as session:
        return session.scalars(select(Order).where(Order.number == N)).one()


def test_status_shows_state_items_carrier_tracking_events_and_date(env: Env) -> None:
    env.scenario.order(N, OrderStatus.IN_TRANSIT, placed_days_ago=2)
    events, messages = run(ActionOrderStatus(), verified())
    assert events == CLEARED
    assert responses(messages) == ["utter_order_status"]
    m = messages[0]
    promised = order_row(env).promised_delivery_date
    assert (m["order_number"], m["status"], m["items"], m["carrier"]) == (
        N, "in transit", "男士纯棉圆领T恤 ×1", "SF Express")
    assert m["tracking_number"].startswith("SF") and m["delivery"] == f"by {promised.isoformat()}"
    lines = m["events"].splitlines()
    assert len(lines) == 2 and "Departed Hangzhou sorting centre" in lines[0]  # newest first


def test_status_in_chinese_and_late_hint(env: Env) -> None:
    env.scenario.order(N, OrderStatus.IN_TRANSIT, days_late=4)
    _, messages = run(ActionOrderStatus(), verified(language="zh"))
    assert responses(messages) == ["utter_order_status", "utter_order_late_hint"]
    assert messages[0]["carrier"] == "顺丰速运" and "超过承诺送达日期" in messages[0]["status"]
    assert "快件已从【杭州转运中心】发出" in messages[0]["events"]
    assert messages[1]["days_late"] == 4


def test_delay_on_time_parcel_gets_no_compensation(env: Env) -> None:
    env.scenario.order(N, OrderStatus.IN_TRANSIT, placed_days_ago=1)
    events, messages = run(ActionOrderDelay(), verified())
    assert events == CLEARED and responses(messages) == ["utter_delay_on_time"]
    with env.session() as session:
        assert session.scalars(select(Coupon)).all() == []


def test_delay_below_the_first_tier_apologises_only(env: Env) -> None:
    env.scenario.order(N, OrderStatus.IN_TRANSIT, days_late=2)
    _, messages = run(ActionOrderDelay(), verified())
    assert responses(messages) == ["utter_delay_apology", "utter_delay_below_threshold"]
    assert messages[0]["days_late"] == 2 and messages[1]["min_days"] == 3


def test_delay_of_three_days_issues_a_real_coupon_once(env: Env) -> None:
    env.scenario.order(N, OrderStatus.IN_TRANSIT, days_late=4)
    events, messages = run(ActionOrderDelay(), verified())
    assert events == CLEARED
    assert responses(messages) == ["utter_delay_apology", "utter_delay_coupon_issued"]
    with env.session() as session:
        coupon = session.scalars(select(Coupon)).one()
    assert coupon.amount_cents == 1000 and messages[1] == messages[1] | {"amount": "¥10.00", "code": coupon.code}
    _, again = run(ActionOrderDelay(), verified())
    assert responses(again) == ["utter_delay_apology", "utter_delay_already_compensated"]
    with env.session() as session:
        assert len(session.scalars(select(Coupon)).all()) == 1


def test_delay_of_a_week_offers_the_choice_then_refunds_shipping(env: Env) -> None:
    env.scenario.order(N, OrderStatus.IN_TRANSIT, days_late=8)  # 79 yuan: 8 yuan shipping fee paid
    events, messages = run(ActionOrderDelay(), verified())
    assert events == [*CLEARED, SlotSet("pending_confirmation", f"compensation:{N}")]
    assert responses(messages) == ["utter_delay_apology", "utter_delay_compensation_choice"]
    assert (messages[1]["coupon"], messages[1]["fee"]) == ("¥30.00", "¥8.00")
    events, messages = run(ActionOrderConfirm(), verified(pending_confirmation=f"compensation:{N}"),
                           [user("affirm")])
    assert events == CLEARED
    assert responses(messages) == ["utter_delay_fee_refunded"] and messages[0]["amount"] == "¥8.00"
    with env.session() as session:
        refund = session.scalars(select(Refund)).one()
    assert (refund.kind, refund.amount_cents) == (RefundKind.SHIPPING_FEE, 800)


def test_delay_of_a_week_coupon_when_customer_says_no(env: Env) -> None:
    env.scenario.order(N, OrderStatus.IN_TRANSIT, days_late=8)
    _, messages = run(ActionOrderConfirm(), verified(pending_confirmation=f"compensation:{N}"), [user("deny")])
    assert responses(messages) == ["utter_delay_coupon_issued"] and messages[0]["amount"] == "¥30.00"
    with env.session() as session:
        assert session.scalars(select(Coupon)).one().amount_cents == 3000


def lost_question(reply: str, asked: float = 1_795_000_000.25) -> list[dict]:
    """The turn where the bot offered reship or refund (its slot event's time), then the customer's answer."""
    return [user("delivery_delay"), {"event": "action", "name": "action_order_delay", "timestamp": asked},
            {"event": "slot", "name": "pending_confirmation", "value": f"lost:{N}", "timestamp": asked},
            user(reply)]


def shipments(env: Env) -> list[Shipment]:
    with env.session() as session:
        return list(session.scalars(select(Shipment).join(Order).where(Order.number == N).order_by(Shipment.id)))


def lost_refunds(env: Env) -> list[Refund]:
    with env.session() as session:
        return list(session.scalars(select(Refund).where(Refund.kind == RefundKind.LOST_PARCEL)))


def test_lost_parcel_yes_reships_it_once(env: Env) -> None:
    env.scenario.order(N, OrderStatus.LOST)
    events, messages = run(ActionOrderDelay(), verified())
    assert events == [*CLEARED, SlotSet("pending_confirmation", f"lost:{N}")]
    assert responses(messages) == ["utter_lost_parcel"]
    assert len(shipments(env)) == 1  # nothing happens before the answer
    slots = verified(pending_confirmation=f"lost:{N}")
    events, messages = run(ActionOrderConfirm(), slots, lost_question("affirm"))
    assert events == CLEARED and responses(messages) == ["utter_lost_reshipped"]
    row, sent = order_row(env), shipments(env)
    assert row.status is OrderStatus.SHIPPED and len(sent) == 2 and sent[1].tracking_number != sent[0].tracking_number
    assert messages[0] == messages[0] | {
        "order_number": N, "carrier": "SF Express", "tracking_number": sent[1].tracking_number,
        "delivery": row.promised_delivery_date.isoformat()}
    # The same "yes" delivered again (channel retry): the same request, replayed - not a third parcel.
    _, again = run(ActionOrderConfirm(), slots, lost_question("affirm"))
    assert responses(again) == ["utter_lost_reshipped"] and again[0]["tracking_number"] == sent[1].tracking_number
    # A later "yes" to a new question about it: already done, said as such; still one replacement, no refund.
    _, later = run(ActionOrderConfirm(), slots, lost_question("affirm", asked=1_795_000_900.0))
    assert responses(later) == ["utter_lost_already_reshipped"]
    _, refused = run(ActionOrderConfirm(), slots, lost_question("deny", asked=1_795_001_000.0))
    assert responses(refused) == ["utter_lost_already_reshipped"]  # refund after reship: what was done instead
    assert refused[0]["tracking_number"] == sent[1].tracking_number
    assert len(shipments(env)) == 2 and lost_refunds(env) == []
    with env.session() as session:
        recorded = session.scalars(select(OrderChange.result).where(OrderChange.kind == "reship")).all()
    assert [json.loads(r)["outcome"] for r in recorded] == ["done", "already_done"]  # the retry was a replay


def test_lost_parcel_no_refunds_in_full_with_method_and_latest_arrival(env: Env) -> None:
    env.scenario.order(N, OrderStatus.LOST, payment=PaymentMethod.UNIONPAY)
    slots = verified(pending_confirmation=f"lost:{N}", language="zh")
    events, messages = run(ActionOrderConfirm(), slots, lost_question("deny"))
    assert events == CLEARED and responses(messages) == ["utter_lost_refunded"]
    [refund] = lost_refunds(env)
    latest = rules.refund_arrival(NOW, PaymentMethod.UNIONPAY, env.policy).latest
    assert refund.amount_cents == order_row(env).total_cents == 8700
    assert messages[0] == messages[0] | {"order_number": N, "amount": "¥87.00", "method": "银联卡",
                                         "arrival": latest.strftime("%Y-%m-%d %H:%M")}
    assert order_row(env).status is OrderStatus.LOST and len(shipments(env)) == 1
    _, again = run(ActionOrderConfirm(), slots, lost_question("deny"))  # resent: not refunded twice
    assert responses(again) == ["utter_lost_refunded"] and len(lost_refunds(env)) == 1
    # A "yes" (reship) to a new question after the refund: refused, the refund told instead.
    _, refused = run(ActionOrderConfirm(), slots, lost_question("affirm", asked=1_795_000_900.0))
    assert responses(refused) == ["utter_lost_already_refunded"] and refused[0]["amount"] == "¥87.00"
    assert len(shipments(env)) == 1 and len(lost_refunds(env)) == 1
    # Asked about the parcel again: the refund, not the choice.
    events, messages = run(ActionOrderDelay(), verified())
    assert events == CLEARED and responses(messages) == ["utter_lost_already_refunded"]
    assert messages[0]["method"] == "UnionPay card"


def test_lost_parcel_an_agent_refunded_is_not_offered_again(env: Env) -> None:
    env.scenario.order(N, OrderStatus.LOST)
    env.service.refund_lost_parcel(N, phone_last4=LAST4, idempotency_key="desk-1")  # as the desk does
    events, messages = run(ActionOrderDelay(), verified())
    assert events == CLEARED  # no pending question: a "yes" now confirms nothing
    assert responses(messages) == ["utter_lost_already_refunded"] and messages[0]["amount"] == "¥87.00"
    _, messages = run(ActionOrderConfirm(), verified(), [user("affirm")])
    assert responses(messages) == ["utter_anything_else"] and len(shipments(env)) == 1


def test_lost_parcel_an_agent_reshipped_is_told_not_offered(env: Env) -> None:
    env.scenario.order(N, OrderStatus.LOST)
    reship = env.service.reship_lost_parcel(N, phone_last4=LAST4, idempotency_key="desk-2")
    events, messages = run(ActionOrderDelay(), verified())
    assert events == CLEARED and responses(messages) == ["utter_lost_already_reshipped"]
    assert messages[0]["tracking_number"] == reship.tracking_number
    assert messages[0]["delivery"] == reship.promised_delivery_date.isoformat()


def test_lost_parcel_choice_refusals_are_explained(env: Env) -> None:
    env.scenario.order(N, OrderStatus.IN_TRANSIT, placed_days_ago=1)  # found again since the question
    slots = verified(pending_confirmation=f"lost:{N}")
    for reply in ("affirm", "deny"):
        _, messages = run(ActionOrderConfirm(), slots, lost_question(reply))
        assert responses(messages) == ["utter_lost_not_lost"] and messages[0]["status"] == "in transit"
    assert len(shipments(env)) == 1 and lost_refunds(env) == []


def test_lost_parcel_refund_the_policy_does_not_offer_is_refused(env: Env) -> None:
    env.scenario.order(N, OrderStatus.LOST)
    options = env.policy.delay_compensation.model_copy(update={"lost_parcel_options": ["reship"]})
    policy = env.policy.model_copy(update={"delay_compensation": options})
    v.set_order_service(SqlOrderService(env.scenario.factory, policy, clock=lambda: NOW))
    _, messages = run(ActionOrderConfirm(), verified(pending_confirmation=f"lost:{N}"), lost_question("deny"))
    assert responses(messages) == ["utter_lost_option_not_offered"] and lost_refunds(env) == []


def test_lost_parcel_backend_down_apologises_and_changes_nothing(env: Env, monkeypatch) -> None:
    env.scenario.order(N, OrderStatus.LOST)

    def down(*args, **kwargs):
        raise BackendUnavailable("merchant API down")

    monkeypatch.setattr(env.service, "reship_lost_parcel", down)
    events, messages = run(ActionOrderConfirm(), verified(pending_confirmation=f"lost:{N}"), lost_question("affirm"))
    assert events == CLEARED and responses(messages) == ["utter_order_backend_error"]
    assert order_row(env).status is OrderStatus.LOST and len(shipments(env)) == 1


def test_lost_parcel_slow_backend_tells_the_real_outcome_later(env: Env, monkeypatch) -> None:
    """The refund commits after the bot stopped waiting: "taking longer", then the outcome of that same request."""
    env.scenario.order(N, OrderStatus.LOST)
    monkeypatch.setenv("ORDER_LOOKUP_TIMEOUT_S", "0.3")
    v.flow_settings.cache_clear()
    inner, keys, delay = env.service.refund_lost_parcel, [], [1.0]

    def slow(number, **kwargs):
        keys.append(kwargs["idempotency_key"])
        time.sleep(delay[0])
        return inner(number, **kwargs)

    monkeypatch.setattr(env.service, "refund_lost_parcel", slow)
    try:
        events, messages = run(ActionOrderConfirm(), verified(pending_confirmation=f"lost:{N}"),
                               lost_question("deny"))
        assert [m.get("response") for m in messages] == [None] and "not be refunded twice" in messages[0]["text"]
        assert events == [*CLEARED, SlotSet("pending_confirmation", f"lost_refund:{N}:{keys[0]}")]
        time.sleep(1.0)  # the backend finishes (it refunded) and is fast again
        delay[0] = 0.0
        events, messages = run(ActionOrderDelay(), verified(pending_confirmation=f"lost_refund:{N}:{keys[0]}"))
        assert events == CLEARED and responses(messages) == ["utter_lost_refunded"]
        assert keys == [keys[0], keys[0]] and len(lost_refunds(env)) == 1
    finally:
        v.flow_settings.cache_clear()


def test_lost_parcel_choice_over_the_merchant_api(env: Env) -> None:
    """The same flow with the merchant's HTTP API (the fake merchant over the store): reship once, a resent "yes"
    replayed by its idempotency key, the refund refused afterwards; a refund (another order) told on the next ask."""
    other = "DM2026111502"
    env.scenario.order(N, OrderStatus.LOST)
    env.scenario.order(other, OrderStatus.LOST)
    with serve_in_thread(create_app(env.service, FakeControls())) as url, \
            HttpOrderService(url, policy=env.policy) as http:
        v.set_order_service(http)
        slots = verified(pending_confirmation=f"lost:{N}")
        for _ in range(2):
            _, messages = run(ActionOrderConfirm(), slots, lost_question("affirm"))
            assert responses(messages) == ["utter_lost_reshipped"]
        _, messages = run(ActionOrderConfirm(), slots, lost_question("deny", asked=1_795_000_900.0))
        assert responses(messages) == ["utter_lost_already_reshipped"]
        assert len(shipments(env)) == 2 and lost_refunds(env) == []
        mine = {"order_number": other, "verified_orders": {other: LAST4}}
        _, messages = run(ActionOrderConfirm(), mine | {"pending_confirmation": f"lost:{other}"},
                          [user("deny")])
        assert responses(messages) == ["utter_lost_refunded"] and messages[0]["method"] == "Alipay"
        events, messages = run(ActionOrderDelay(), mine)
        assert events == CLEARED and responses(messages) == ["utter_lost_already_refunded"]
        assert len(lost_refunds(env)) == 1


def test_every_lost_parcel_answer_exists_in_both_languages() -> None:
    import inspect

    import actions.order_flows as flows

    said = set(re.findall(r'"(utter_lost_[a-z_]+)"', inspect.getsource(flows)))
    assert len(said) == 9
    domain_responses = domain()["responses"]
    for name in said:
        variants = domain_responses[name]
        assert [bool(r.get("condition")) for r in variants] == [True, False], name  # zh, then en


def test_delay_question_on_unshipped_order_gives_dispatch_deadline(env: Env) -> None:
    env.scenario.order(N, OrderStatus.PAID, placed_days_ago=0.5)
    _, messages = run(ActionOrderDelay(), verified())
    assert responses(messages) == ["utter_delay_not_shipped"]
    row = order_row(env)
    deadline = rules.dispatch_deadline(row.paid_at.replace(tzinfo=NOW.tzinfo) if row.paid_at.tzinfo is None
                                       else row.paid_at, env.policy)
    assert messages[0]["ship_by"] == deadline.astimezone(env.policy.tz).strftime("%Y-%m-%d %H:%M")


def test_cancel_before_shipping_confirms_then_really_cancels(env: Env) -> None:
    env.scenario.order(N, OrderStatus.PAID, placed_days_ago=0.5)
    events, messages = run(ActionOrderCancel(), verified())
    assert events == [*CLEARED, SlotSet("pending_confirmation", f"cancel:{N}")]
    assert responses(messages) == ["utter_cancel_confirm"] and messages[0]["total"] == "¥87.00"
    assert order_row(env).status is OrderStatus.PAID  # nothing changes before the yes
    events, messages = run(ActionOrderConfirm(), verified(pending_confirmation=f"cancel:{N}"), [user("affirm")])
    assert events == CLEARED
    assert responses(messages) == ["utter_cancel_done_refund"]
    assert messages[0]["amount"] == "¥87.00" and messages[0]["method"] == "Alipay"
    assert order_row(env).status is OrderStatus.CANCELLED


def test_cancel_declined_keeps_the_order(env: Env) -> None:
    env.scenario.order(N, OrderStatus.PAID, placed_days_ago=0.5)
    _, messages = run(ActionOrderConfirm(), verified(pending_confirmation=f"cancel:{N}"), [user("deny")])
    assert responses(messages) == ["utter_cancel_kept"] and order_row(env).status is OrderStatus.PAID


def test_cancel_after_shipping_is_explained_and_nothing_changes(env: Env) -> None:
    env.scenario.order(N, OrderStatus.IN_TRANSIT)
    events, messages = run(ActionOrderCancel(), verified())
    assert events == CLEARED and responses(messages) == ["utter_cancel_after_shipping"]
    assert order_row(env).status is OrderStatus.IN_TRANSIT


def test_yes_without_a_pending_question_changes_nothing(env: Env) -> None:
    env.scenario.order(N, OrderStatus.PAID, placed_days_ago=0.5)
    events, messages = run(ActionOrderConfirm(), verified(), [user("affirm")])
    assert events == [] and responses(messages) == ["utter_anything_else"]
    assert order_row(env).status is OrderStatus.PAID


def test_pending_question_for_an_unverified_order_does_nothing(env: Env) -> None:
    env.scenario.order(N, OrderStatus.PAID, placed_days_ago=0.5)
    _, messages = run(ActionOrderConfirm(), {"order_number": N, "pending_confirmation": f"cancel:{N}"},
                      [user("affirm")])
    assert responses(messages) == ["utter_order_not_verified"] and order_row(env).status is OrderStatus.PAID


def test_address_change_before_shipping(env: Env) -> None:
    env.scenario.order(N, OrderStatus.PAID, placed_days_ago=0.5)
    parsed = forms.parse_address("王芳，13911112222，江苏省，南京市，鼓楼区，中山路1号")
    assert parsed == {"recipient_name": "王芳", "phone": "13911112222", "province": "江苏省", "city": "南京市",
                      "district": "鼓楼区", "address_line": "中山路1号"}
    events, messages = run(ActionOrderChangeAddress(), verified(pending_address=parsed))
    assert events == [*CLEARED, SlotSet("new_address", None), SlotSet("pending_confirmation", f"address:{N}")]
    assert responses(messages) == ["utter_address_confirm"]
    events, messages = run(ActionOrderConfirm(), verified(pending_confirmation=f"address:{N}", pending_address=parsed),
                           [user("affirm")])
    assert responses(messages) == ["utter_address_changed"]
    assert SlotSet("verified_orders", {N: "2222"}) in events
    row = order_row(env)
    assert (row.city, row.recipient_phone, row.address_line) == ("南京市", "13911112222", "中山路1号")


def test_address_change_after_shipping_is_explained(env: Env) -> None:
    env.scenario.order(N, OrderStatus.SHIPPED)
    _, messages = run(ActionOrderChangeAddress(), verified())
    assert responses(messages) == ["utter_address_after_shipping"] and messages[0]["carrier"] == "SF Express"


def test_bad_address_is_not_accepted() -> None:
    assert forms.parse_address("somewhere nice") is None
    assert forms.parse_address("张伟 浙江 杭州 西湖区 文三路 100号") is None  # no phone


def test_return_form_asks_item_and_reason_only_when_returnable(env: Env) -> None:
    items = (ItemSpec(), ItemSpec(sku="UW-2001", name="女士内衣套装", category=ItemCategory.UNDERWEAR))
    env.scenario.order(N, OrderStatus.DELIVERED, delivered_days_ago=2, items=items)
    import asyncio

    from tests.actions.order_fixtures import remember, tracker

    form = forms.ValidateReturnForm()
    remember("c1", verified()["verified_orders"])
    slots = asyncio.run(form.required_slots([], None, tracker(verified()), {}))  # type: ignore[arg-type]
    assert slots == ["order_number", "return_item", "return_reason"]
    _, messages = run(ActionAskReturnItem(), verified())
    assert messages[0]["items"] == "1. 男士纯棉圆领T恤 ×1 (AP-1001)\n2. 女士内衣套装 ×1 (UW-2001)"
    other = tracker({"order_number": N}, sender="c2")  # a conversation that has not verified it
    unverified = asyncio.run(form.required_slots([], None, other, {}))  # type: ignore[arg-type]
    assert unverified == ["order_number", "phone_last4"]


def test_return_no_reason_inside_window_creates_an_rma(env: Env) -> None:
    env.scenario.order(N, OrderStatus.DELIVERED, delivered_days_ago=2)
    events, messages = run(ActionOrderReturn(), verified(return_reason="no_reason"))
    assert events == [*CLEARED, SlotSet("return_item", None), SlotSet("return_reason", None)]
    assert responses(messages) == ["utter_return_created"]
    with env.session() as session:
        rma = session.scalars(select(ReturnRequest)).one()
    assert messages[0]["rma"] == rma.rma and messages[0]["shipping"] == "paid by you"
    assert messages[0]["deadline"] == (NOW.date() - timedelta(days=2) + timedelta(days=7)).isoformat()


def test_return_outside_window_is_refused(env: Env) -> None:
    env.scenario.order(N, OrderStatus.DELIVERED, delivered_days_ago=20)
    _, messages = run(ActionOrderReturn(), verified())  # the form skipped the questions
    assert responses(messages) == ["utter_return_window_expired"] and messages[0]["days"] == 15
    _, messages = run(ActionOrderReturn(), verified(return_reason="no_reason"))
    assert responses(messages) == ["utter_return_window_expired"] and messages[0]["days"] == 7
    env.scenario.order("DM2026111502", OrderStatus.DELIVERED, delivered_days_ago=10)
    _, messages = run(ActionOrderReturn(), {"order_number": "DM2026111502",
                                            "verified_orders": {"DM2026111502": LAST4}, "return_reason": "no_reason"})
    assert responses(messages) == ["utter_return_window_expired"] and messages[0]["days"] == 7
    with env.session() as session:
        assert session.scalars(select(ReturnRequest)).all() == []


def test_excluded_category_no_reason_refused_but_quality_accepted(env: Env) -> None:
    items = (ItemSpec(sku="UW-2001", name="女士内衣套装", category=ItemCategory.UNDERWEAR),)
    env.scenario.order(N, OrderStatus.DELIVERED, delivered_days_ago=2, items=items)
    _, messages = run(ActionOrderReturn(), verified(return_reason="no_reason"))
    assert responses(messages) == ["utter_return_excluded_category"] and messages[0]["item"] == "女士内衣套装"
    _, messages = run(ActionOrderReturn(), verified(return_reason="quality", language="zh"))
    assert responses(messages) == ["utter_return_created"] and messages[0]["shipping"] == "本店承担"
    assert "上传" in messages[0]["photos"]


def test_return_before_delivery_is_explained(env: Env) -> None:
    env.scenario.order(N, OrderStatus.IN_TRANSIT)
    _, messages = run(ActionOrderReturn(), verified(return_reason="quality"))
    assert responses(messages) == ["utter_return_not_delivered"]


def test_exchange_creates_a_request(env: Env) -> None:
    env.scenario.order(N, OrderStatus.DELIVERED, delivered_days_ago=3)
    _, messages = run(ActionOrderExchange(), verified(return_reason="quality"))
    assert responses(messages) == ["utter_exchange_created"]
    with env.session() as session:
        assert session.scalars(select(Exchange)).one().reason.value == "quality"


def test_reason_and_item_answers() -> None:
    assert [forms.return_reason_from(t) for t in ("1", "2", "质量有问题", "I just changed my mind", "hmm")] == [
        "quality", "no_reason", "quality", "no_reason", None]


def test_refund_status_lists_refunds_with_expected_arrival(env: Env) -> None:
    env.scenario.order(N, OrderStatus.PAID, placed_days_ago=0.5, payment=PaymentMethod.UNIONPAY)
    run(ActionOrderConfirm(), verified(pending_confirmation=f"cancel:{N}"), [user("affirm")])
    events, messages = run(ActionOrderRefundStatus(), verified())
    assert events == CLEARED and responses(messages) == ["utter_refund_status"]
    with env.session() as session:
        refund = session.scalars(select(Refund)).one()
    expected = rules.refund_arrival(NOW, PaymentMethod.UNIONPAY, env.policy).latest
    assert "UnionPay card" in messages[0]["refunds"] and "¥87.00" in messages[0]["refunds"]
    assert expected.strftime("%Y-%m-%d %H:%M") in messages[0]["refunds"]
    assert refund.amount_cents == 8700


def test_refund_status_without_refunds(env: Env) -> None:
    env.scenario.order(N, OrderStatus.DELIVERED, delivered_days_ago=2)
    _, messages = run(ActionOrderRefundStatus(), verified())
    assert responses(messages) == ["utter_refund_none"]


def test_payment_help_without_an_order_uses_policy_numbers(env: Env) -> None:
    _, messages = run(ActionOrderPayment(), {})
    assert responses(messages) == ["utter_payment_help"] and messages[0]["minutes"] == 30
    assert messages[0]["methods"] == "Alipay, WeChat Pay, UnionPay card, Store balance"


def test_payment_problem_gets_the_knowledge_base_article_question_or_not(env: Env, monkeypatch) -> None:
    """"payment failed, now what" does not read as a question, but the specific article beats the general help;
    a button (/payment_issue) or a message the knowledge base cannot answer keeps the general help."""
    from actions import routing

    asked: list[str] = []

    async def kb(dispatcher, tracker, **kwargs):
        asked.append(tracker.latest_message["text"])
        if "twice" not in tracker.latest_message["text"]:
            return None
        dispatcher.utter_message(response="utter_kb_answer")
        return []

    monkeypatch.setattr(routing, "answer_if_confident", kb)
    _, messages = run(ActionOrderPayment(), {}, [user("payment_issue", "charged twice for one order")])
    assert responses(messages) == ["utter_kb_answer"]
    _, messages = run(ActionOrderPayment(), {}, [user("payment_issue", "payment thing")])
    assert responses(messages) == ["utter_payment_help"]
    _, messages = run(ActionOrderPayment(), {}, [user("payment_issue", "/payment_issue")])
    assert responses(messages) == ["utter_payment_help"]
    assert asked == ["charged twice for one order", "payment thing"]


def test_payment_for_a_verified_unpaid_order_gives_the_hold_time(env: Env) -> None:
    env.scenario.order(N, OrderStatus.UNPAID, placed_days_ago=10 / (24 * 60))  # placed 10 minutes ago
    _, messages = run(ActionOrderPayment(), verified())
    assert responses(messages) == ["utter_payment_order_held"]
    assert messages[0]["until"] == (NOW + timedelta(minutes=20)).strftime("%Y-%m-%d %H:%M")


def test_payment_for_an_unverified_order_gives_no_details(env: Env) -> None:
    env.scenario.order(N, OrderStatus.UNPAID, placed_days_ago=0.001)
    _, messages = run(ActionOrderPayment(), {"order_number": N})
    assert responses(messages) == ["utter_payment_help"]


def test_an_unanswered_question_is_dropped_by_the_next_flow(env: Env) -> None:
    env.scenario.order(N, OrderStatus.PAID, placed_days_ago=0.5)
    events, _ = run(ActionOrderStatus(), verified(pending_confirmation=f"cancel:{N}"))
    assert SlotSet("pending_confirmation", None) in events
    _, messages = run(ActionOrderConfirm(), verified(), [user("affirm")])  # the "yes" now confirms nothing
    assert responses(messages) == ["utter_anything_else"] and order_row(env).status is OrderStatus.PAID
