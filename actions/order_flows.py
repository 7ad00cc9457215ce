"""The order conversations: status, delay/lost, cancel, address change, return, exchange, refund, payment.

Each flow action runs after ``order_verification_form`` and re-checks verification itself (defence in depth):
no order detail is uttered for an order this conversation has not verified. Business refusals get their own
answers; backend errors (down, slower than the limit) get an apology and the offer of a human, and the
conversation goes on. Changes (cancel, address, compensation choice, a lost parcel's reship or full refund) are
confirmed first: the flow action sets ``pending_confirmation`` and ``action_order_confirm`` carries it out on "yes".
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import order_text as txt
from actions import routing
from actions import verification as v
from actions.forms import SLOT_NEW_ADDRESS, SLOT_PENDING_ADDRESS, SLOT_RETURN_ITEM, SLOT_RETURN_REASON
from actions.orders import rules
from actions.orders.enums import PARCEL_ON_THE_WAY, OrderStatus, RefundKind, ReturnReason
from actions.orders.errors import BackendError, BackendTimeout, InvalidInput, NotVerified, OrderServiceError
from actions.orders.policy import StorePolicy
from actions.orders.service import (
    ALREADY_REFUNDED,
    ALREADY_RESHIPPED,
    ALREADY_SHIPPED,
    NOT_LOST,
    NOTHING_TO_REFUND,
    OPTION_NOT_OFFERED,
    CompensationChoice,
    NewAddress,
    OrderInfo,
    OrderService,
    Outcome,
    RefundInfo,
    change_key,
)

logger = logging.getLogger(__name__)

SLOT_PENDING = "pending_confirmation"
LATEST_EVENTS = 3  # how many tracking events the status answer shows (issue 4)
AFFIRM = "affirm"

PENDING_CANCEL = "cancel"
PENDING_COMPENSATION = "compensation"
PENDING_LOST = "lost"
PENDING_ADDRESS = "address"
# A lost parcel's choice sent to the backend but not confirmed in time: "<kind>:<order>:<key>" (see CHANGE_SLOW).
PENDING_RESHIP = "reship"
PENDING_LOST_REFUND = "lost_refund"
LOST_CHOICE_CONTENT = {PENDING_RESHIP: "reship", PENDING_LOST_REFUND: "full_refund"}  # the key's content part


@dataclass
class Ctx:
    """What a flow needs: who is asking, in which language, about which verified order."""

    dispatcher: CollectingDispatcher
    tracker: Tracker
    lang: str | None
    number: str
    last4: str
    service: OrderService
    policy: StorePolicy

    def say(self, response: str, **kwargs: Any) -> None:
        self.dispatcher.utter_message(response=response, **kwargs)


def offer_backend_apology(dispatcher: CollectingDispatcher) -> None:
    dispatcher.utter_message(response="utter_order_backend_error")


class OrderFlowAction(Action):
    """Common guard: lock-out, verification, backend errors. Subclasses implement :meth:`handle`."""

    action_name = ""
    # Slots this flow collected in its own form; cleared afterwards so the next request asks again.
    clears: tuple[str, ...] = ()

    def name(self) -> str:
        return self.action_name

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        # A question left unanswered must not be confirmed by a later "yes": every flow clears it first.
        events: list[EventType] = [
            SlotSet(v.SLOT_LOOKUP_ERROR, None), SlotSet(v.SLOT_LOOKUP_STOPPED, None), SlotSet(SLOT_PENDING, None)
        ]
        events += [SlotSet(s, None) for s in self.clears]
        if tracker.get_slot(v.SLOT_LOOKUP_STOPPED):
            return events  # the customer stopped the form; it already said so
        until = await v.locked_until(tracker)
        if until is not None:
            dispatcher.utter_message(response="utter_lookups_locked", minutes=v.minutes_left(until))
            return events
        if tracker.get_slot(v.SLOT_LOOKUP_ERROR):
            return events  # the form already apologised and offered a human
        number = tracker.get_slot(v.SLOT_ORDER_NUMBER)
        last4 = await v.verified_last4(tracker, number)  # the server-side record; a slot cannot vouch
        if not number or not last4:
            dispatcher.utter_message(response="utter_order_not_verified")
            return events
        ctx = Ctx(dispatcher, tracker, tracker.get_slot("language"), number, last4, v.order_service(), v.policy())
        try:
            return events + await self.handle(ctx)
        except BackendError as exc:
            logger.warning("order backend error in %s: %s", self.name(), exc.code)
            offer_backend_apology(dispatcher)
        except NotVerified:
            dispatcher.utter_message(response="utter_order_not_verified")
            events.append(SlotSet(v.SLOT_VERIFIED, await v.forget_verified(tracker, number)))
        except OrderServiceError as exc:  # not found / invalid input after verification: never show details
            logger.warning("order flow %s refused: %s", self.name(), exc.code)
            dispatcher.utter_message(response="utter_order_not_verified")
        return events

    async def handle(self, ctx: Ctx) -> list[EventType]:
        raise NotImplementedError


class ActionOrderStatus(OrderFlowAction):
    """State, items, carrier, tracking number, latest tracking events, expected delivery date."""

    action_name = "action_order_status"

    async def handle(self, ctx: Ctx) -> list[EventType]:
        order = await v.call_backend(ctx.service.get_order, ctx.number)
        tracking = await v.call_backend(ctx.service.tracking, ctx.number)
        latest = sorted((e for s in tracking.shipments for e in s.events), key=lambda e: e.occurred_at)[-LATEST_EVENTS:]
        ctx.say(
            "utter_order_status",
            order_number=order.number,
            status=txt.status(order.status, ctx.lang),
            items=txt.items(order.items),
            carrier=txt.carrier(order.carrier, ctx.lang, ctx.policy),
            tracking_number=order.tracking_number or "-",
            events=txt.events(list(reversed(latest)), ctx.lang, ctx.policy),
            delivery=delivery_text(order, ctx),
        )
        if order.status is OrderStatus.DELAYED:
            ctx.say("utter_order_late_hint", days_late=order.days_late)
        return []


def delivery_text(order: OrderInfo, ctx: Ctx) -> str:
    if order.delivered_at is not None:
        return txt.pick(ctx.lang, ("已于 {} 签收", "delivered on {}")).format(
            txt.moment(order.delivered_at, ctx.policy)
        )
    if order.status in {OrderStatus.CANCELLED, OrderStatus.RETURNED, OrderStatus.LOST}:
        return "-"
    if order.promised_delivery_date is None:
        return txt.pick(ctx.lang, ("付款后确定", "set once the order is paid"))
    return txt.pick(ctx.lang, ("预计 {} 前送达", "by {}")).format(txt.day(order.promised_delivery_date))


class ActionOrderDelay(OrderFlowAction):
    """Late or lost parcel: detect the delay, apologise, compensate per policy tiers, offer reship/refund if lost."""

    action_name = "action_order_delay"

    async def handle(self, ctx: Ctx) -> list[EventType]:
        for kind in (PENDING_RESHIP, PENDING_LOST_REFUND):
            sent = sent_change(ctx, kind)
            if sent is not None:  # asked again after "taking longer": the real outcome of the confirmed choice
                return await lost_choice(ctx, kind, sent)
        order = await v.call_backend(ctx.service.get_order, ctx.number)
        if order.status is OrderStatus.LOST:
            refund = await lost_parcel_refund(ctx)
            if refund is not None:  # refunded already (by this bot or an agent): say so, offer nothing again
                say_lost_refund(ctx, "utter_lost_already_refunded", refund)
                return []
            ctx.say("utter_lost_parcel", order_number=order.number)
            return [SlotSet(SLOT_PENDING, f"{PENDING_LOST}:{order.number}")]
        if order.status in {OrderStatus.CANCELLED, OrderStatus.RETURNED}:
            ctx.say("utter_order_closed", order_number=order.number, status=txt.status(order.status, ctx.lang))
            return []
        if order.status is OrderStatus.UNPAID or order.paid_at is None:
            ctx.say("utter_delay_unpaid", order_number=order.number)
            return []
        if order.status is OrderStatus.PAID:
            ship_by = rules.dispatch_deadline(order.paid_at, ctx.policy, order.presale_ship_date)
            ctx.say(
                "utter_delay_not_shipped",
                order_number=order.number,
                ship_by=txt.moment(ship_by, ctx.policy),
                delivery=txt.day(order.promised_delivery_date),
            )
            return []
        if order.days_late <= 0:
            if order.status is OrderStatus.DELIVERED:
                ctx.say(
                    "utter_delay_delivered",
                    order_number=order.number,
                    delivered=txt.moment(order.delivered_at, ctx.policy),
                )
            else:
                tracking = await v.call_backend(ctx.service.tracking, ctx.number)
                if len(tracking.shipments) > 1:  # a lost parcel sent again: tell the replacement, not "on time"
                    say_reshipped(ctx, "utter_lost_already_reshipped", order)
                    return []
                latest = tracking.latest_event
                ctx.say(
                    "utter_delay_on_time",
                    order_number=order.number,
                    delivery=txt.day(order.promised_delivery_date),
                    events=txt.events([latest] if latest else [], ctx.lang, ctx.policy),
                )
            return []
        ctx.say(
            "utter_delay_apology",
            order_number=order.number,
            days_late=order.days_late,
            promised=txt.day(order.promised_delivery_date),
        )
        offer = rules.delay_compensation(order.days_late, order.shipping_fee_cents, ctx.policy)
        if offer is None:
            ctx.say("utter_delay_below_threshold", min_days=ctx.policy.delay_compensation.tiers[0].min_days_late)
            return []
        if offer.shipping_refund_cents is not None:
            ctx.say(
                "utter_delay_compensation_choice",
                coupon=txt.money(offer.coupon_cents),
                fee=txt.money(offer.shipping_refund_cents),
            )
            return [SlotSet(SLOT_PENDING, f"{PENDING_COMPENSATION}:{order.number}")]
        await compensate(ctx, shipping_refund=False)
        return []


async def compensate(ctx: Ctx, *, shipping_refund: bool) -> None:
    """Issue the compensation in the backend (a real coupon or refund) and tell the customer what they got."""
    choice = CompensationChoice.SHIPPING_REFUND if shipping_refund else CompensationChoice.COUPON
    result = await v.call_backend(ctx.service.issue_delay_coupon, ctx.number, phone_last4=ctx.last4, choice=choice)
    if result.outcome is Outcome.NOT_ALLOWED:
        ctx.say("utter_delay_not_compensable")
    elif result.coupon is not None:
        response = "utter_delay_coupon_issued" if result.outcome is Outcome.DONE else "utter_delay_already_compensated"
        ctx.say(response, amount=txt.money(result.coupon.amount_cents), code=result.coupon.code)
    elif result.shipping_refund is not None:
        response = "utter_delay_fee_refunded" if result.outcome is Outcome.DONE else "utter_delay_already_refunded"
        ctx.say(
            response,
            amount=txt.money(result.shipping_refund.amount_cents),
            method=txt.payment_method(result.shipping_refund.method, ctx.lang, ctx.policy),
            arrival=txt.moment(result.shipping_refund.expected_arrival_at, ctx.policy),
        )


class ActionOrderCancel(OrderFlowAction):
    """Before shipping: ask to confirm. After: explain refusing delivery or returning it."""

    action_name = "action_order_cancel"

    async def handle(self, ctx: Ctx) -> list[EventType]:
        sent = sent_change(ctx, PENDING_CANCEL)
        if sent is not None:  # asked again after "taking longer": the real outcome of the confirmed cancel
            return await ActionOrderConfirm.cancel(ctx, sent)
        order = await v.call_backend(ctx.service.get_order, ctx.number)
        if rules.can_change_before_shipping(order.status, ctx.policy):
            ctx.say(
                "utter_cancel_confirm",
                order_number=order.number,
                items=txt.items(order.items),
                total=txt.money(order.total_cents),
            )
            return [SlotSet(SLOT_PENDING, f"{PENDING_CANCEL}:{order.number}")]
        explain_after_shipping(ctx, order, cancel=True)
        return []


def explain_after_shipping(ctx: Ctx, order: OrderInfo, *, cancel: bool) -> None:
    if order.status is OrderStatus.CANCELLED:
        ctx.say("utter_cancel_already_cancelled", order_number=order.number)
    elif order.status in {OrderStatus.RETURNED, OrderStatus.LOST}:
        ctx.say("utter_order_closed", order_number=order.number, status=txt.status(order.status, ctx.lang))
    elif cancel:
        ctx.say("utter_cancel_after_shipping", order_number=order.number, status=txt.status(order.status, ctx.lang))
    else:
        ctx.say(
            "utter_address_after_shipping",
            order_number=order.number,
            status=txt.status(order.status, ctx.lang),
            carrier=txt.carrier(order.carrier, ctx.lang, ctx.policy),
            tracking_number=order.tracking_number or "-",
        )


class ActionOrderChangeAddress(OrderFlowAction):
    """After ``address_form``: confirm the parsed new address, or explain why it cannot change any more."""

    action_name = "action_order_change_address"
    clears = (SLOT_NEW_ADDRESS,)

    async def handle(self, ctx: Ctx) -> list[EventType]:
        sent = sent_change(ctx, PENDING_ADDRESS)
        if sent is not None and sent == address_key(ctx, f"{PENDING_ADDRESS}:{ctx.number}"):
            # Asked again after "taking longer" (no other address given since): the real outcome of that change.
            return await ActionOrderConfirm.address(ctx, True, sent)
        order = await v.call_backend(ctx.service.get_order, ctx.number)
        if not rules.can_change_before_shipping(order.status, ctx.policy):
            explain_after_shipping(ctx, order, cancel=False)
            return []
        address = ctx.tracker.get_slot(SLOT_PENDING_ADDRESS)
        if not isinstance(address, dict):
            ctx.say("utter_new_address_invalid")
            return []
        ctx.say(
            "utter_address_confirm",
            order_number=order.number,
            address=" ".join(
                str(address[k]) for k in ("recipient_name", "phone", "province", "city", "district", "address_line")
            ),
        )
        return [SlotSet(SLOT_PENDING, f"{PENDING_ADDRESS}:{order.number}")]


class ActionOrderConfirm(OrderFlowAction):
    """The customer's yes/no to the pending question (cancel, address, compensation choice, lost parcel)."""

    action_name = "action_order_confirm"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        pending = tracker.get_slot(SLOT_PENDING)
        if not isinstance(pending, str) or ":" not in pending:
            dispatcher.utter_message(response="utter_anything_else")
            return []
        return await super().run(dispatcher, tracker, domain)

    async def handle(self, ctx: Ctx) -> list[EventType]:
        pending = str(ctx.tracker.get_slot(SLOT_PENDING))
        kind, number, *sent = pending.split(":", 2)
        if number != ctx.number:  # the customer switched orders since the question
            ctx.say("utter_anything_else")
            return []
        yes = (ctx.tracker.latest_message.get("intent") or {}).get("name") == AFFIRM
        if kind == PENDING_CANCEL:
            if sent:  # already confirmed and sent: only its outcome is left to tell
                return await self.cancel(ctx, sent[0])
            if not yes:
                ctx.say("utter_cancel_kept", order_number=ctx.number)
                return []
            return await self.cancel(ctx, change_key_for(ctx, PENDING_CANCEL, pending, ""))
        elif kind == PENDING_ADDRESS:
            return await self.address(ctx, yes or bool(sent), sent[0] if sent else None)
        elif kind == PENDING_COMPENSATION:
            await compensate(ctx, shipping_refund=yes)
        elif kind == PENDING_LOST:  # "yes" = send it again, "no" = full refund (utter_lost_parcel's buttons)
            choice = PENDING_RESHIP if yes else PENDING_LOST_REFUND
            key = change_key_for(ctx, PENDING_LOST, pending, LOST_CHOICE_CONTENT[choice])
            return await lost_choice(ctx, choice, key)
        elif kind in LOST_CHOICE_CONTENT and sent:  # sent, not confirmed in time: only its outcome is left to tell
            return await lost_choice(ctx, kind, sent[0])
        return []

    @staticmethod
    async def cancel(ctx: Ctx, key: str) -> list[EventType]:
        """Cancel with the idempotency key of this confirmed request: sent again (a retry, or after "taking
        longer"), the backend does not cancel twice and answers with the first request's real outcome."""
        try:
            result = await v.call_backend(ctx.service.cancel_order, ctx.number, phone_last4=ctx.last4,
                                          idempotency_key=key)
        except BackendTimeout:
            return still_running(ctx, PENDING_CANCEL, key)
        if result.outcome is Outcome.DONE:
            if result.refund is not None:
                ctx.say(
                    "utter_cancel_done_refund",
                    order_number=ctx.number,
                    amount=txt.money(result.refund.amount_cents),
                    method=txt.payment_method(result.refund.method, ctx.lang, ctx.policy),
                    arrival=txt.moment(result.refund.expected_arrival_at, ctx.policy),
                )
            else:
                ctx.say("utter_cancel_done", order_number=ctx.number)
        elif result.outcome is Outcome.ALREADY_DONE:
            ctx.say("utter_cancel_already_cancelled", order_number=ctx.number)
        elif result.refusal == ALREADY_SHIPPED:
            ctx.say("utter_cancel_after_shipping", order_number=ctx.number, status=txt.status(result.status, ctx.lang))
        else:
            ctx.say("utter_order_closed", order_number=ctx.number, status=txt.status(result.status, ctx.lang))
        return []

    @staticmethod
    async def address(ctx: Ctx, yes: bool, key: str | None = None) -> list[EventType]:
        """Change the address (``key``: the idempotency key of a request already sent, else one is derived from
        this confirmed question and the address)."""
        address = ctx.tracker.get_slot(SLOT_PENDING_ADDRESS)
        if not yes or not isinstance(address, dict):
            ctx.say("utter_address_kept", order_number=ctx.number)
            return [SlotSet(SLOT_PENDING_ADDRESS, None)]
        key = key or address_key(ctx, str(ctx.tracker.get_slot(SLOT_PENDING)))
        try:
            result = await v.call_backend(
                ctx.service.change_address, ctx.number, NewAddress(**address), phone_last4=ctx.last4,
                idempotency_key=key,
            )
        except InvalidInput:
            ctx.say("utter_new_address_invalid")
            return [SlotSet(SLOT_PENDING_ADDRESS, None)]
        except BackendTimeout:
            return still_running(ctx, PENDING_ADDRESS, key)  # the pending address stays: it is what was sent
        events: list[EventType] = [SlotSet(SLOT_PENDING_ADDRESS, None)]
        if result.outcome is Outcome.DONE:
            ctx.say("utter_address_changed", order_number=ctx.number, delivery=txt.day(result.promised_delivery_date))
            # The phone on the order may have changed: the digits verified earlier no longer unlock it.
            new_last4 = result.address.phone[-len(ctx.last4) :]
            events.append(SlotSet(v.SLOT_VERIFIED, {**v.verified_orders(ctx.tracker), ctx.number: new_last4}))
        else:
            ctx.say(
                "utter_address_after_shipping",
                order_number=ctx.number,
                status=txt.status(result.status, ctx.lang),
                carrier="-",
                tracking_number="-",
            )
        return events


# --- changes the backend has not confirmed in time (issue 12) -------------------------------------------------
# A write that times out may still commit later (the backend call keeps running in its thread). It carries an
# idempotency key per requested change: conversation, the moment the question was asked (its slot event), kind,
# order and content. The customer is told it is taking longer; the pending question becomes
# "<kind>:<order>:<key>", and the next time this conversation confirms, cancels or changes the address of that
# order the same request is sent again with the same key: the backend answers with the real outcome (applied at
# most once).

CHANGE_SLOW = {
    PENDING_CANCEL: (
        "订单 {number} 的取消请求已提交，但系统确认得比平时慢。请放心，不会重复取消。稍后再对我说“取消订单 {number}”，"
        "我会告诉您最终结果。",
        "Your cancellation of order {number} has been sent, but our order system is slow to confirm it. It will not "
        "be applied twice: ask me again in a minute (\"cancel order {number}\") and I will tell you the result.",
    ),
    PENDING_ADDRESS: (
        "订单 {number} 的改地址请求已提交，但系统确认得比平时慢。请放心，不会重复修改。"
        "稍后再对我说“修改订单 {number} 的地址”，我会告诉您最终结果。",
        "Your address change for order {number} has been sent, but our order system is slow to confirm it. It will "
        "not be applied twice: ask me again in a minute (\"change the address of order {number}\") and I will tell "
        "you the result.",
    ),
    PENDING_RESHIP: (
        "订单 {number} 的补发请求已提交，但系统确认得比平时慢。请放心，不会重复补发。"
        "稍后再对我说“订单 {number} 的包裹丢了”，我会告诉您最终结果。",
        "Your reshipment of order {number} has been requested, but our order system is slow to confirm it. It will "
        "not be sent twice: ask me again in a minute (\"my parcel {number} is lost\") and I will tell you the result.",
    ),
    PENDING_LOST_REFUND: (
        "订单 {number} 的全额退款请求已提交，但系统确认得比平时慢。请放心，不会重复退款。"
        "稍后再对我说“订单 {number} 的包裹丢了”，我会告诉您最终结果。",
        "Your full refund for order {number} has been requested, but our order system is slow to confirm it. It will "
        "not be refunded twice: ask me again in a minute (\"my parcel {number} is lost\") and I will tell you the "
        "result.",
    ),
}


def change_key_for(ctx: Ctx, kind: str, pending: str, content: str) -> str:
    """Idempotency key of the change this conversation confirmed: the same for a resent "yes" (the question's
    slot event is the same), different for a new question about the same order."""
    asked = next(
        (
            e.get("timestamp")
            for e in reversed(ctx.tracker.events)
            if e.get("event") == "slot" and e.get("name") == SLOT_PENDING and e.get("value") == pending
        ),
        None,
    )
    return change_key(ctx.tracker.sender_id, asked, kind, ctx.number, content)


def address_key(ctx: Ctx, pending: str) -> str:
    """Key of the address change confirmed for the question ``pending`` with the address now pending."""
    address = ctx.tracker.get_slot(SLOT_PENDING_ADDRESS)
    return change_key_for(ctx, PENDING_ADDRESS, pending, json.dumps(address, sort_keys=True, ensure_ascii=False))


def sent_change(ctx: Ctx, kind: str) -> str | None:
    """The key of a ``kind`` change of this order that was sent but not confirmed in time, if any."""
    pending = ctx.tracker.get_slot(SLOT_PENDING)
    if not isinstance(pending, str):
        return None
    parts = pending.split(":", 2)
    if len(parts) == 3 and parts[0] == kind and parts[1] == ctx.number and parts[2]:
        return parts[2]
    return None


def still_running(ctx: Ctx, kind: str, key: str) -> list[EventType]:
    logger.warning("order change %s of %s not confirmed in time; outcome reported later", kind, ctx.number)
    ctx.dispatcher.utter_message(text=txt.pick(ctx.lang, CHANGE_SLOW[kind]).format(number=ctx.number))
    return [SlotSet(SLOT_PENDING, f"{kind}:{ctx.number}:{key}")]


# --- lost parcel: the customer's choice carried out (issue 17) -------------------------------------------------
# The same service calls the desk makes (reship_lost_parcel / refund_lost_parcel): one of them, once. The key is
# the confirmed question's plus the choice, so a resent "yes" does not reship twice; the service's refusals
# (already refunded / re-shipped, not lost, option not offered, nothing left to refund) get their own answers.


async def lost_choice(ctx: Ctx, kind: str, key: str) -> list[EventType]:
    """Reship (``kind`` reship) or refund in full (lost_refund) the lost parcel, and tell the real outcome."""
    call = ctx.service.reship_lost_parcel if kind == PENDING_RESHIP else ctx.service.refund_lost_parcel
    try:
        result = await v.call_backend(call, ctx.number, phone_last4=ctx.last4, idempotency_key=key)
    except BackendTimeout:
        return still_running(ctx, kind, key)
    if kind == PENDING_RESHIP:
        if result.outcome in (Outcome.DONE, Outcome.ALREADY_DONE):
            response = "utter_lost_reshipped" if result.outcome is Outcome.DONE else "utter_lost_already_reshipped"
            say_reshipped(ctx, response, result)
            return []
    elif result.outcome in (Outcome.DONE, Outcome.ALREADY_DONE) and result.refund is not None:
        response = "utter_lost_refunded" if result.outcome is Outcome.DONE else "utter_lost_already_refunded"
        say_lost_refund(ctx, response, result.refund)
        return []
    await explain_lost_refusal(ctx, result.refusal, result.status)
    return []


async def explain_lost_refusal(ctx: Ctx, refusal: str | None, status: OrderStatus) -> None:
    logger.info("lost-parcel choice for %s refused: %s", ctx.number, refusal)
    if refusal == ALREADY_REFUNDED:  # the other option was taken (an agent, say): what was done instead
        refund = await lost_parcel_refund(ctx)
        if refund is not None:
            say_lost_refund(ctx, "utter_lost_already_refunded", refund)
            return
    elif refusal == ALREADY_RESHIPPED:
        say_reshipped(ctx, "utter_lost_already_reshipped", await v.call_backend(ctx.service.get_order, ctx.number))
        return
    elif refusal == NOT_LOST:
        ctx.say("utter_lost_not_lost", order_number=ctx.number, status=txt.status(status, ctx.lang))
        return
    elif refusal == NOTHING_TO_REFUND:
        ctx.say("utter_lost_nothing_to_refund", order_number=ctx.number)
        return
    elif refusal == OPTION_NOT_OFFERED:
        ctx.say("utter_lost_option_not_offered", order_number=ctx.number)
        return
    ctx.say("utter_lost_not_possible", order_number=ctx.number)


async def lost_parcel_refund(ctx: Ctx) -> RefundInfo | None:
    """The order's lost-parcel refund, if one was made (by this bot or by an agent at the desk)."""
    overview = await v.call_backend(ctx.service.refund_status, ctx.number)
    return next((r for r in overview.refunds if r.kind is RefundKind.LOST_PARCEL), None)


def say_lost_refund(ctx: Ctx, response: str, refund: RefundInfo) -> None:
    ctx.say(
        response,
        order_number=ctx.number,
        amount=txt.money(refund.amount_cents),
        method=txt.payment_method(refund.method, ctx.lang, ctx.policy),
        arrival=txt.moment(refund.expected_arrival_at, ctx.policy),
    )


def say_reshipped(ctx: Ctx, response: str, shipped: Any) -> None:
    """``shipped``: a ReshipResult or the order (carrier, tracking number and promised date of the new parcel)."""
    ctx.say(
        response,
        order_number=ctx.number,
        carrier=txt.carrier(shipped.carrier, ctx.lang, ctx.policy),
        tracking_number=shipped.tracking_number or "-",
        delivery=txt.day(shipped.promised_delivery_date),
    )


class _AfterSalesAction(OrderFlowAction):
    """Shared by return and exchange: item + reason from ``return_form``, refusals explained by code."""

    clears = (SLOT_RETURN_ITEM, SLOT_RETURN_REASON)
    done_response = ""

    async def handle(self, ctx: Ctx) -> list[EventType]:
        order = await v.call_backend(ctx.service.get_order, ctx.number)
        if order.status is not OrderStatus.DELIVERED or order.delivered_at is None:
            response = (
                "utter_return_not_delivered"
                if order.status in PARCEL_ON_THE_WAY or order.status in {OrderStatus.UNPAID, OrderStatus.PAID}
                else "utter_order_closed"
            )
            ctx.say(response, order_number=order.number, status=txt.status(order.status, ctx.lang))
            return []
        sku = ctx.tracker.get_slot(SLOT_RETURN_ITEM) or (order.items[0].sku if len(order.items) == 1 else None)
        reason_value = ctx.tracker.get_slot(SLOT_RETURN_REASON)
        if not reason_value or not sku:
            # The form was skipped: the longest window (quality) is already over.
            quality = ctx.policy.returns.rule_for(ReturnReason.QUALITY)
            decision = rules.return_eligibility(
                order.status, order.delivered_at, "", ReturnReason.QUALITY, v.now(), ctx.policy
            )
            ctx.say(
                "utter_return_window_expired",
                order_number=order.number,
                deadline=txt.day(decision.deadline),
                days=quality.window_days,
            )
            return []
        reason = ReturnReason(reason_value)
        item = next(i for i in order.items if i.sku == sku)
        result = await self.create(ctx, sku, reason)
        rule = ctx.policy.returns.rule_for(reason)
        if result.outcome is Outcome.DONE:
            self.say_done(ctx, result, item.name, reason)
        elif result.outcome is Outcome.ALREADY_DONE:
            ctx.say("utter_return_already_open", order_number=order.number, item=item.name)
        elif result.refusal == rules.EXCLUDED_CATEGORY:
            ctx.say(
                "utter_return_excluded_category",
                item=item.name,
                days=ctx.policy.returns.rule_for(ReturnReason.QUALITY).window_days,
            )
        elif result.refusal == rules.WINDOW_EXPIRED:
            ctx.say(
                "utter_return_window_expired",
                order_number=order.number,
                deadline=txt.day(result.deadline),
                days=rule.window_days,
            )
        else:
            ctx.say("utter_return_not_possible", order_number=order.number)
        return []

    async def create(self, ctx: Ctx, sku: str, reason: ReturnReason) -> Any:
        raise NotImplementedError

    def say_done(self, ctx: Ctx, result: Any, item: str, reason: ReturnReason) -> None:
        raise NotImplementedError


def _shipping_payer(result: Any, lang: str | None) -> str:
    return (
        txt.pick(lang, ("本店承担", "paid by us"))
        if result.return_shipping_paid_by == "store"
        else txt.pick(lang, ("由您承担", "paid by you"))
    )


def _photos(result: Any, lang: str | None) -> str:
    if result.photos_required:
        return txt.pick(
            lang,
            (
                "请在“我的订单-售后”上传商品问题照片。",
                "Please upload photos of the problem under 'My orders > Returns'.",
            ),
        )
    return txt.pick(lang, ("商品需保持未使用、吊牌完好。", "The item must be unused with its tags on."))


class ActionOrderReturn(_AfterSalesAction):
    """Creates the RMA when eligible (delivery date window, excluded categories, reason) and gives instructions."""

    action_name = "action_order_return"

    async def create(self, ctx: Ctx, sku: str, reason: ReturnReason) -> Any:
        return await v.call_backend(ctx.service.create_return, ctx.number, sku, reason, phone_last4=ctx.last4)

    def say_done(self, ctx: Ctx, result: Any, item: str, reason: ReturnReason) -> None:
        ctx.say(
            "utter_return_created",
            rma=result.return_request.rma,
            item=item,
            deadline=txt.day(result.deadline),
            shipping=_shipping_payer(result, ctx.lang),
            photos=_photos(result, ctx.lang),
        )


class ActionOrderExchange(_AfterSalesAction):
    """Exchanges follow the return windows of their reason."""

    action_name = "action_order_exchange"

    async def create(self, ctx: Ctx, sku: str, reason: ReturnReason) -> Any:
        return await v.call_backend(ctx.service.create_exchange, ctx.number, sku, reason, phone_last4=ctx.last4)

    def say_done(self, ctx: Ctx, result: Any, item: str, reason: ReturnReason) -> None:
        ctx.say(
            "utter_exchange_created",
            order_number=ctx.number,
            item=item,
            deadline=txt.day(result.deadline),
            shipping=_shipping_payer(result, ctx.lang),
            photos=_photos(result, ctx.lang),
        )


class ActionOrderRefundStatus(OrderFlowAction):
    """Refunds with their expected arrival by payment method, plus returns still waiting for a refund."""

    action_name = "action_order_refund_status"

    async def handle(self, ctx: Ctx) -> list[EventType]:
        overview = await v.call_backend(ctx.service.refund_status, ctx.number)
        lines = [txt.refund_line(r, ctx.lang, ctx.policy) for r in overview.refunds]
        lines += [txt.return_line(r, ctx.lang) for r in overview.returns]
        if lines:
            ctx.say("utter_refund_status", order_number=overview.number, refunds="\n".join(lines))
        else:
            ctx.say("utter_refund_none", order_number=overview.number)
        return []


class ActionOrderPayment(Action):
    """Payment problems: how long the order is kept and how to retry; order-specific when verified."""

    def name(self) -> str:
        return "action_order_payment"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        policy = v.policy()
        lang = tracker.get_slot("language")
        number = tracker.get_slot(v.SLOT_ORDER_NUMBER)
        minutes = policy.payment.failed_payment_hold_minutes
        methods = ", ".join(txt.payment_method(m, lang, policy) for m in policy.payment.methods)
        if number and await v.verified_last4(tracker, number) and await v.locked_until(tracker) is None:
            try:
                order = await v.call_backend(v.order_service().get_order, number)
            except BackendError:
                offer_backend_apology(dispatcher)
                return []
            except OrderServiceError:
                order = None
            if order is not None and order.status is OrderStatus.UNPAID:
                until = rules.payment_hold_expires_at(order.placed_at, policy)
                response = "utter_payment_order_held" if until > v.now() else "utter_payment_hold_expired"
                dispatcher.utter_message(
                    response=response,
                    order_number=number,
                    until=txt.moment(until, policy),
                    minutes=minutes,
                    methods=methods,
                )
                return []
            if order is not None and order.paid_at is not None:
                dispatcher.utter_message(
                    response="utter_payment_order_paid",
                    order_number=number,
                    paid=txt.moment(order.paid_at, policy),
                    method=txt.payment_method(order.payment_method, lang, policy),
                )
                return []
        if not (tracker.latest_message.get("text") or "").startswith("/"):
            # "charged twice, what do I do?", "paid but it says unpaid?", "payment failed, now what": the specific
            # article beats the general help, question or not (the general help is itself only policy text).
            answered = await routing.answer_if_confident(dispatcher, tracker)
            if answered is not None:
                return answered
        dispatcher.utter_message(response="utter_payment_help", minutes=minutes, methods=methods)
        return []


class ActionAskReturnItem(Action):
    """Asks which item of the verified order, as a numbered list the customer can answer with "2"."""

    def name(self) -> str:
        return "action_ask_return_item"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        number = tracker.get_slot(v.SLOT_ORDER_NUMBER)
        if not await v.verified_last4(tracker, number):
            dispatcher.utter_message(response="utter_order_not_verified")
            return []
        try:
            order = await v.call_backend(v.order_service().get_order, number)
        except OrderServiceError:
            offer_backend_apology(dispatcher)
            return []
        dispatcher.utter_message(response="utter_ask_return_item", items=txt.items(order.items, numbered=True))
        return []
