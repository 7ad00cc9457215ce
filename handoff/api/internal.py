"""Internal API for the action server: ``action_handoff_to_human`` opens a handoff here.

Protected by a shared secret (X-Internal-Token = HANDOFF_INTERNAL_TOKEN); an empty setting disables the route.
The token is checked by a router-level dependency BEFORE the body is read: an unauthenticated caller gets 401 and
learns nothing about the schema (no 422), and its body is never parsed.
"""
from __future__ import annotations

import hmac
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError

from bot.shared.reasons import ALL_REASONS, CSAT_LOW
from conversations.settings import GatewaySettings
from handoff.deps import DeskDep, SettingsDep, StoreDep, ThrottleDep, WebhookDep


def _check_token(settings: GatewaySettings, token: str | None) -> None:
    expected = settings.handoff_internal_token
    if not expected or not token or not hmac.compare_digest(token.encode(), expected.encode()):
        raise HTTPException(status_code=401, detail="Missing or wrong X-Internal-Token.")


async def require_internal_token(
    settings: SettingsDep, x_internal_token: Annotated[str | None, Header()] = None,
) -> None:
    """Router-level guard: runs before any route of this router reads its body."""
    _check_token(settings, x_internal_token)


router = APIRouter(prefix="/internal", tags=["internal"], dependencies=[Depends(require_internal_token)])
INBOUND_REASONS = tuple(c for c in ALL_REASONS if c != CSAT_LOW)  # csat_low is raised by the desk itself
ReasonCode = Literal[INBOUND_REASONS]  # type: ignore[valid-type]


class CustomerIn(BaseModel):
    id: str | None = Field(default=None, max_length=128)
    tier: Literal["regular", "gold", "platinum"] = "regular"
    verified: bool = False


class CurvePoint(BaseModel):
    ts: Any
    score: float = Field(ge=0, le=100)


class FrustrationIn(BaseModel):
    score: float = Field(ge=0, le=100)
    curve: list[CurvePoint] = Field(default_factory=list, max_length=1000)


class TrackerPart(BaseModel):
    turns: list[dict[str, Any]] = Field(default_factory=list, max_length=2000)
    actions: list[dict[str, Any]] = Field(default_factory=list, max_length=5000)
    kb_articles: list[dict[str, Any]] = Field(default_factory=list, max_length=1000)
    slots: dict[str, Any] = Field(default_factory=dict)
    frustration_per_message: list[dict[str, Any]] = Field(default_factory=list, max_length=2000)


class HandoffRequest(BaseModel):
    conversation_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    channel: str = Field(default="webchat", max_length=32)
    reason_code: ReasonCode
    priority: int = Field(ge=1, le=4)
    language: Literal["zh", "en"]
    customer: CustomerIn = Field(default_factory=CustomerIn)
    frustration: FrustrationIn = Field(default_factory=lambda: FrustrationIn(score=0))
    signals: dict[str, Any] = Field(default_factory=dict)
    summary: str | None = Field(default=None, max_length=2000)
    # The tracker part of the context package, built by the action server from the tracker it holds
    # (bot/shared/context_tracker.py: turns, actions, kb_articles, slots, frustration_per_message); redacted there
    # and checked again here. Absent from old requests: the package then has the transcript only.
    tracker: TrackerPart | None = None


class HandoffOut(BaseModel):
    handoff_id: str
    status: Literal["queued", "ticket"]
    queue_position: int | None
    expected_wait_s: int | None
    in_service_hours: bool
    ticket_id: str | None
    next_contact: str | None


def parse_request(raw: bytes) -> HandoffRequest:
    """Validate a request body (also used for undelivered handoffs re-sent from Redis); 422 on any problem."""
    try:
        return HandoffRequest.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e.get("loc", ()))} for e in exc.errors(include_url=False, include_context=False)]
        ) from exc


@router.post("/handoffs", response_model=HandoffOut)
async def create_handoff(
    request: Request, desk: DeskDep, store: StoreDep, webhook: WebhookDep,
    throttle: ThrottleDep,
) -> HandoffOut:
    """Open a handoff (idempotent per conversation: while one is open, the open one is returned).

    Body: :class:`HandoffRequest` (JSON). Read only after the token was accepted (router dependency)."""
    body = parse_request(await request.body())
    if not await store.exists(body.conversation_id):
        raise HTTPException(status_code=404, detail="Unknown conversation.")
    if not await desk.open_for(body.conversation_id):
        # A new handoff counts against the client that opened the conversation (WEB_LIMIT_HANDOFFS): one client
        # cannot fill the queue by opening conversation after conversation.
        client = (await store.meta(body.conversation_id)).get("client") or f"conversation:{body.conversation_id}"
        limited = await throttle.hit("handoff", client)
        if limited:
            raise HTTPException(status_code=429, detail="Too many handoffs from this client.",
                                headers={"Retry-After": str(limited.retry_after_s)})
    outcome, created = await desk.create(body.model_dump(mode="json"))
    if created:
        # The package is complete at creation (the action server sent the tracker part): pushed at once.
        await webhook.enqueue(outcome.handoff_id)
    return HandoffOut(**outcome.to_dict())
