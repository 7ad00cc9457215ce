"""Order tools of the agent desk (issue 17, item 3): live orders in the context panel and the changes an agent makes
from the console - the delay compensation the policy matrix allows (coupon or shipping-fee refund), a return, an
exchange (a size/colour of the same item, or the same item for a faulty one; out of stock: the return the policy
offers instead), a reship or a full refund of a lost parcel (the customer's choice), an address change before
shipping.

The desk never imports ``actions`` (tests/test_layering.py): it asks the action server's authenticated HTTP API
(``/desk/orders``, actions/desk_orders.py, ``X-Action-Token``), which makes each change through the same
``OrderService`` call, with the same rules, as the bot's flows. Here the desk decides who may act and keeps it safe:

* **who**: the conversation's own agent while it is claimed, or a supervisor (:func:`may_act`); others get 403;
* **which orders**: one the bot verified in this conversation (the context package's ``verified_orders``), or any
  order when the agent types the phone digits the customer gave (the service checks them: a wrong answer is 403);
* **once**: a change is keyed by a hash of what it changes in this handoff (:func:`action_digest`); while it runs a
  second click gets 409, after it the first result (``duplicate: true``) - a double click is one coupon. A refusal or
  an unavailable service is not kept (it can be tried again);
* **audited**: every attempt (done, refused, failed, denied) is an audit entry; every look-up too;
* **the customer sees it**: a done change writes a system message in the customer's language into the conversation
  (web chat page by SSE, messaging channels by the relay).
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx
from redis.asyncio import Redis

from conversations import keys
from conversations.store import ChatMessage, ConversationStore
from handoff.agents import Agent

logger = logging.getLogger(__name__)
TOKEN_HEADER = "X-Action-Token"  # noqa: S105 - a header name (actions/server.py)
KINDS = ("coupon", "shipping_refund", "return", "exchange", "reship", "lost_refund", "address")
PENDING = "pending"
PENDING_S = 60  # a change the action server has not answered after this long may be asked again
MAX_ORDERS_SHOWN = 5


class OrdersUnavailable(Exception):
    """The action server could not be asked (not configured, down, slow); the message says why."""


class OrderActionError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass
class OrdersClient:
    """The desk's client of the action server's ``/desk/orders`` routes."""

    base_url: str
    token: str
    timeout_s: float
    transport: httpx.AsyncBaseTransport | None = None  # tests: the action server's app in process

    async def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        if not self.token:
            raise OrdersUnavailable("the order tools are off: ACTION_SERVER_TOKEN is not set for the gateway")
        try:
            async with httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout_s,
                                         transport=self.transport) as client:
                response = await client.request(method, path, json=body, headers={TOKEN_HEADER: self.token})
        except httpx.HTTPError as exc:
            raise OrdersUnavailable(f"the order service did not answer ({type(exc).__name__})") from exc
        try:
            payload = response.json()
        except ValueError:
            payload = {"detail": response.text[:300]}
        if response.status_code in (401, 502, 503, 504) or response.status_code >= 500:
            raise OrdersUnavailable(f"the order service answered {response.status_code}: "
                                    f"{str(payload.get('detail') or payload.get('error') or '')[:200]}")
        return response.status_code, payload

    async def view(self, number: str) -> tuple[int, Any]:
        return await self._request("GET", f"/desk/orders/{number}")

    async def act(self, number: str, kind: str, body: dict[str, Any]) -> tuple[int, Any]:
        return await self._request("POST", f"/desk/orders/{number}/{kind}", body)


def may_act(agent: Agent, handoff: dict[str, str]) -> bool:
    """Only the conversation's own agent while it is claimed, or a supervisor, may change its orders."""
    if agent.is_supervisor:
        return True
    return handoff.get("status") == "claimed" and handoff.get("agent_id") == agent.id


def conversation_orders(context: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(orders the bot verified in this conversation, other order numbers the customer mentioned), from the stored
    context package; the verified ones first."""
    raw = (context.get("slots") or {}).get("verified_orders") or []
    verified = [str(o).upper() for o in (raw.keys() if isinstance(raw, dict) else raw) if o]
    mentioned = [str(o).upper() for o in (context.get("identifiers") or {}).get("order_numbers") or [] if o]
    slot = str((context.get("slots") or {}).get("order_number") or "").upper()
    if slot:
        mentioned.append(slot)
    verified = list(dict.fromkeys(verified))
    others = [o for o in dict.fromkeys(mentioned) if o not in verified]
    return verified[:MAX_ORDERS_SHOWN], others[:MAX_ORDERS_SHOWN]


def action_digest(kind: str, number: str, args: dict[str, Any]) -> str:
    """What a change changes, hashed: the same change asked twice in a handoff has the same digest."""
    canonical = json.dumps([kind, number.upper(), args], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def _yuan(cents: Any) -> str:
    value = int(cents or 0) / 100
    return f"{value:.0f}" if value == int(value) else f"{value:.2f}"


def customer_text(kind: str, number: str, result: dict[str, Any], language: str) -> str | None:
    """What the customer is told after a done change (None: nothing to say)."""
    zh = language == "zh"
    if kind == "coupon" and result.get("coupon"):
        amount = _yuan(result["coupon"]["amount_cents"])
        code = result["coupon"]["code"]
        return (f"已为订单 {number} 的延误向您发放 {amount} 元优惠券（券码 {code}），可在“我的优惠券”中查看。"
                if zh else f"A {amount} yuan coupon ({result['coupon']['code']}) has been issued to your account "
                           f"for the delay of order {number}.")
    if kind == "shipping_refund" and result.get("shipping_refund"):
        amount = _yuan(result["shipping_refund"]["amount_cents"])
        return (f"订单 {number} 的运费 {amount} 元已退回原支付方式。" if zh
                else f"The shipping fee of order {number} ({amount} yuan) is being refunded to your original payment "
                     f"method.")
    if kind == "return" and result.get("return_request"):
        request = result["return_request"]
        deadline = result.get("deadline") or ""
        return (f"已为订单 {number} 创建退货申请 {request['rma']}，请在 {deadline} 前寄回商品。" if zh
                else f"Return {request['rma']} has been opened for order {number}; please send the item back by "
                     f"{deadline}.")
    if kind == "exchange":
        return _exchange_text(number, result, zh)
    if kind == "lost_refund" and result.get("refund"):
        refund, shown = result["refund"], result.get("display") or {}
        amount = _yuan(refund["amount_cents"])
        return (f"订单 {number} 的包裹已确认丢失，已为您全额退款 {amount} 元，原路退回{shown.get('method_zh', '')}，"
                f"预计最晚 {shown.get('expected_by')} 到账。" if zh
                else f"The parcel of order {number} is confirmed lost: a full refund of {amount} yuan is on its way "
                     f"back to your {shown.get('method_en', 'original payment method')}, expected by "
                     f"{shown.get('expected_by')}.")
    if kind == "reship":
        return (f"订单 {number} 的包裹已为您重新发出，新运单号 {result.get('tracking_number')}，"
                f"预计 {result.get('promised_delivery_date')} 前送达。" if zh
                else f"Order {number} has been sent again: new tracking number {result.get('tracking_number')}, "
                     f"delivery by {result.get('promised_delivery_date')}.")
    if kind == "address":
        return (f"订单 {number} 的收货地址已更新，预计 {result.get('promised_delivery_date')} 前送达。" if zh
                else f"The delivery address of order {number} has been updated; delivery by "
                     f"{result.get('promised_delivery_date')}.")
    return None


def _exchange_text(number: str, result: dict[str, Any], zh: bool) -> str | None:
    """The exchange opened (as the bot says it, domain.yml utter_exchange_created), or - replacement out of stock -
    the return opened instead."""
    item = result.get("item_name") or ""
    deadline = result.get("deadline") or ""
    store_pays = result.get("return_shipping_paid_by") == "store"
    shipping = ("本店承担" if store_pays else "由您承担") if zh else ("paid by us" if store_pays else "paid by you")
    if result.get("photos_required"):
        photos = ("请在“我的订单-售后”上传商品问题照片。" if zh
                  else "Please upload photos of the problem under 'My orders > Returns'.")
    else:
        photos = "商品需保持未使用、吊牌完好。" if zh else "The item must be unused with its tags on."
    if result.get("switched_to_return") and result.get("return_request"):
        rma = result["return_request"]["rma"]
        return (f"您想换的商品暂时缺货，已按您的选择将订单 {number} 的“{item}”改为退货退款，退货单号 {rma}。"
                f"请在 {deadline} 前寄回，运费{shipping}。{photos}仓库收货审核后原路退款。" if zh
                else f"The replacement is out of stock, so as agreed return {rma} has been opened instead for "
                     f"\"{item}\" of order {number}. Please send it back by {deadline}; shipping is {shipping}. "
                     f"{photos} Once the warehouse has checked it, the refund goes back to your original payment "
                     f"method.")
    if not result.get("exchange"):
        return None
    variant = result.get("variant")
    into = (f"更换为：{variant}" if variant else "换同款新品") if zh else (
        f"replacement: {variant}" if variant else "replacement: the same item, new")
    return (f"已为订单 {number} 的“{item}”提交换货申请（{into}）。请在 {deadline} 前寄回，运费{shipping}。{photos}"
            f"收到后为您寄出新的商品。" if zh
            else f"Exchange request opened for \"{item}\" of order {number} ({into}). Please send it back by "
                 f"{deadline}; shipping is {shipping}. {photos} We send the replacement once it arrives.")


class OrderDesk:
    """Carries out one agent's order action: rights, idempotency, the call, audit, the customer's message."""

    def __init__(self, redis: Redis, client: OrdersClient, store: ConversationStore, retention_s: int) -> None:
        self.redis = redis
        self.client = client
        self.store = store
        self.retention_s = retention_s

    async def run(self, desk: Any, agent: Agent, handoff: dict[str, str], number: str, kind: str,
                  args: dict[str, Any], phone_last4: str | None) -> dict[str, Any]:
        hid, cid = handoff["id"], handoff["conversation_id"]
        number = number.strip().upper()
        base = {"kind": kind, "order": number}
        if not may_act(agent, handoff):
            await desk.audit(agent, "order_action_denied", cid, hid, base)
            raise OrderActionError(403, "Only the agent of this conversation (or a supervisor) can change its orders.")
        verified, _ = conversation_orders(json.loads(handoff.get("context") or "{}"))
        in_conversation = number in verified
        if not in_conversation and not phone_last4:
            await desk.audit(agent, "order_action_denied", cid, hid, {**base, "why": "not_verified"})
            raise OrderActionError(403, "This order was not verified in this conversation: ask the customer for the "
                                        "last 4 digits of the phone on the order and enter them.")
        digest = action_digest(kind, number, args)
        key = keys.order_action(hid, digest)
        if not await self.redis.set(key, PENDING, nx=True, ex=PENDING_S):
            stored = await self.redis.get(key)
            if stored is None or stored.decode() == PENDING:
                raise OrderActionError(409, "This action is already being carried out.")
            return {**json.loads(stored), "duplicate": True}
        # The order service's own idempotency key (reship, address): this change in this handoff, whoever resends it.
        service_key = hashlib.sha256(f"{hid}:{digest}".encode()).hexdigest()[:32]
        body = {**args, "idempotency_key": service_key, "verified_in_conversation": in_conversation}
        if phone_last4:
            body["phone_last4"] = phone_last4
        try:
            status, payload = await self.client.act(number, kind, body)
        except OrdersUnavailable as exc:
            await self.redis.delete(key)
            await desk.audit(agent, "order_action_failed", cid, hid, {**base, "why": str(exc)[:200]})
            raise OrderActionError(503, f"The order service is not available: {exc}") from exc
        if status != 200:
            await self.redis.delete(key)
            await desk.audit(agent, "order_action_refused", cid, hid, {**base, "status": status,
                                                                       "error": payload.get("error")})
            raise OrderActionError(status, str(payload.get("detail") or payload.get("error") or "Refused."))
        result = payload.get("result") or {}
        outcome = result.get("outcome")
        answer = {"kind": kind, "order": number, "outcome": outcome, "refusal": result.get("refusal"),
                  "result": result, "duplicate": False}
        await desk.audit(agent, "order_action", cid, hid, {**base, "outcome": outcome, "refusal": result.get("refusal"),
                                                           "args": {k: v for k, v in args.items() if k != "address"},
                                                           "digits_given": bool(phone_last4)})
        if outcome == "done":
            language = handoff.get("language") or "zh"
            text = customer_text(kind, number, result, language)
            if text:
                await self.store.append(cid, ChatMessage(role="system", text=text, ts=time.time()))
            answer["told_customer"] = bool(text)
        if outcome in ("done", "already_done"):
            await self.redis.set(key, json.dumps(answer, ensure_ascii=False), ex=self.retention_s)
        else:
            await self.redis.delete(key)
        return answer
