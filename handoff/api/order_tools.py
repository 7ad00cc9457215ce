"""Console API of the order tools (handoff/order_desk.py): live orders of a conversation and the changes an agent
makes from the console. Reads follow the console's read rule (``may_read``) and count against
HANDOFF_LIMIT_ORDER_LOOKUPS per account; changes follow :func:`handoff.order_desk.may_act` and count against
HANDOFF_LIMIT_ORDER_ACTIONS per account (over: 429 + Retry-After). Both are audited."""
from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from handoff.api.agent import _desk_call_error, may_read
from handoff.deps import AgentDep, DeskDep, RedisDep, SettingsDep, StoreDep, ThrottleDep, count_for_account, same_origin
from handoff.handoffs import DeskError
from handoff.order_desk import OrderActionError, OrderDesk, OrdersClient, OrdersUnavailable, conversation_orders

router = APIRouter(prefix="/api/agent", tags=["agent desk: orders"], dependencies=[Depends(same_origin)])
ORDER_NUMBER = r"^[A-Za-z0-9-]{4,32}$"


def get_orders_client(request: Request, settings: SettingsDep) -> OrdersClient:
    client = getattr(request.app.state, "orders_client", None)  # tests put the action server in process here
    if client is None:
        client = OrdersClient(settings.orders_base_url, settings.action_server_token, settings.handoff_orders_timeout_s)
    return client


OrdersClientDep = Annotated[OrdersClient, Depends(get_orders_client)]


async def _handoff(desk: Any, handoff_id: str) -> dict[str, str]:
    try:
        return await desk.require(handoff_id)
    except DeskError as exc:
        raise _desk_call_error(exc) from exc


@router.get("/handoffs/{handoff_id}/orders")
async def conversation_order_view(handoff_id: str, agent: AgentDep, desk: DeskDep, throttle: ThrottleDep,
                                  client: OrdersClientDep) -> dict[str, Any]:
    """The conversation's orders, live from the order service: the ones the bot verified with status, items,
    tracking, refunds and what the policy allows now; others only by number (verification before any detail)."""
    handoff = await _handoff(desk, handoff_id)
    if not may_read(agent, handoff):
        await desk.audit(agent, "view_denied", handoff["conversation_id"], handoff_id, {"what": "orders"})
        raise HTTPException(status_code=403, detail="This conversation belongs to another agent.")
    await count_for_account(throttle, "order_lookup", agent)
    verified, others = conversation_orders(json.loads(handoff.get("context") or "{}"))
    orders: list[dict[str, Any]] = []
    error = None
    for number in verified:
        try:
            status, payload = await client.view(number)
        except OrdersUnavailable as exc:
            error = str(exc)
            break
        orders.append({"number": number, "verified": True, **(payload if status == 200 else
                                                                {"error": payload.get("detail") or "not found"})})
    orders += [{"number": number, "verified": False} for number in others]
    await desk.audit(agent, "order_view", handoff["conversation_id"], handoff_id,
                     {"orders": [o["number"] for o in orders]})
    return {"orders": orders, "error": error,
            "may_act": agent.is_supervisor or (handoff.get("status") == "claimed"
                                               and handoff.get("agent_id") == agent.id)}


class AddressIn(BaseModel):
    recipient_name: str = Field(min_length=1, max_length=64)
    phone: str = Field(min_length=11, max_length=20)
    province: str = Field(min_length=1, max_length=32)
    city: str = Field(min_length=1, max_length=32)
    district: str = Field(min_length=1, max_length=32)
    address_line: str = Field(min_length=1, max_length=200)


class OrderActionIn(BaseModel):
    kind: Literal["coupon", "shipping_refund", "return", "exchange", "reship", "lost_refund", "address"]
    sku: str | None = Field(default=None, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")
    reason: Literal["no_reason", "quality"] | None = None
    quantity: int = Field(default=1, ge=1, le=99)
    # Exchange: the replacement (a size or colour of the same item; empty: the same item again) and whether it is in
    # stock (the agent checked; out of stock, the policy's return is opened instead once the customer agreed).
    variant: str | None = Field(default=None, max_length=64)
    in_stock: bool = True
    address: AddressIn | None = None
    phone_last4: str | None = Field(default=None, pattern=r"^[0-9]{4}$")


def _args(body: OrderActionIn) -> dict[str, Any]:
    """The part of the request that says what changes (the idempotency digest is computed from it)."""
    if body.kind == "return":
        if not body.sku or not body.reason:
            raise HTTPException(status_code=422, detail="A return needs the item (sku) and the reason.")
        return {"sku": body.sku.upper(), "reason": body.reason, "quantity": body.quantity}
    if body.kind == "exchange":
        if not body.sku or not body.reason:
            raise HTTPException(status_code=422, detail="An exchange needs the item (sku) and the reason.")
        return {"sku": body.sku.upper(), "reason": body.reason, "quantity": body.quantity,
                "variant": (body.variant or "").strip(), "in_stock": body.in_stock}
    if body.kind == "address":
        if body.address is None:
            raise HTTPException(status_code=422, detail="An address change needs the new address.")
        return {"address": body.address.model_dump()}
    return {}


@router.post("/handoffs/{handoff_id}/orders/{number}/actions")
async def order_action(handoff_id: str, number: str, body: OrderActionIn, agent: AgentDep, desk: DeskDep,
                       throttle: ThrottleDep, client: OrdersClientDep, redis: RedisDep, store: StoreDep,
                       settings: SettingsDep) -> dict[str, Any]:
    """One change of an order of this conversation (see handoff/order_desk.py for the rules)."""
    if not re.fullmatch(ORDER_NUMBER, number):
        raise HTTPException(status_code=422, detail="Not an order number.")
    handoff = await _handoff(desk, handoff_id)
    await count_for_account(throttle, "order_action", agent)
    orders = OrderDesk(redis, client, store, settings.handoff_retention_s)
    try:
        return await orders.run(desk, agent, handoff, number, body.kind, _args(body), body.phone_last4)
    except OrderActionError as exc:
        raise HTTPException(status_code=exc.status, detail=exc.detail) from exc
