"""Account management in the console (issue 17, item 4) and the routed queue.

Supervisors: list accounts with their settings and load, disable / enable (a disabled account cannot log in and its
sessions end at their next request), reset the passphrase (every session ends), set concurrency, skills (the reason
codes the person takes) and languages. A supervisor cannot disable their own account. Every change is audited and
counts against HANDOFF_LIMIT_DESK_WRITES. Agents: the queue ordered for them (matching skills and languages first)
and "take next" (handoff/routing.py)."""
from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from handoff.agents import MIN_PASSWORD_CHARS, AccountError
from handoff.api.agent import _desk_call_error
from handoff.deps import AgentDep, AgentsDep, DeskDep, SupervisorDep, ThrottleDep, count_desk_write, same_origin
from handoff.handoffs import REASON_CODES, DeskError
from handoff.routing import for_agent, take_next

router = APIRouter(prefix="/api/agent", tags=["agent desk: accounts and routing"], dependencies=[Depends(same_origin)])


class AccountChangeIn(BaseModel):
    max_concurrent: int | None = Field(default=None, ge=1, le=20)
    skills: list[Literal[REASON_CODES]] | None = Field(default=None, max_length=20)  # type: ignore[valid-type]
    languages: list[Literal["zh", "en"]] | None = Field(default=None, max_length=2)
    display_name: str | None = Field(default=None, min_length=1, max_length=80)
    disabled: bool | None = None


class PasswordResetIn(BaseModel):
    password: str = Field(min_length=MIN_PASSWORD_CHARS, max_length=200)


@router.get("/accounts")
async def accounts(supervisor: SupervisorDep, agents: AgentsDep) -> list[dict[str, Any]]:
    online = set(await agents.online_ids())
    return [{**a.public(), "online": a.id in online, "active": await agents.active_count(a.id)}
            for a in await agents.all()]


@router.patch("/accounts/{agent_id}")
async def change_account(agent_id: str, body: AccountChangeIn, supervisor: SupervisorDep, agents: AgentsDep,
                         desk: DeskDep, throttle: ThrottleDep) -> dict[str, Any]:
    await count_desk_write(throttle, supervisor)
    target = await agents.get(agent_id)
    if target is None:
        raise HTTPException(status_code=404, detail="Unknown account.")
    if body.disabled is not None and agent_id == supervisor.id:
        raise HTTPException(status_code=409, detail="You cannot disable your own account.")
    changed = body.model_dump(exclude_none=True)
    updated = await agents.update(agent_id, max_concurrent=body.max_concurrent, skills=body.skills,
                                  languages=body.languages, display_name=body.display_name)
    if body.disabled is not None and body.disabled != target.disabled:
        updated = await agents.set_disabled(agent_id, body.disabled)
    assert updated is not None
    await desk.audit(supervisor, "account_change", "", "", {"account": target.username, **changed})
    return updated.public()


@router.post("/accounts/{agent_id}/password")
async def reset_password(agent_id: str, body: PasswordResetIn, supervisor: SupervisorDep, agents: AgentsDep,
                         desk: DeskDep, throttle: ThrottleDep) -> dict[str, Any]:
    await count_desk_write(throttle, supervisor)
    try:
        updated = await agents.reset_password(agent_id, body.password)
    except AccountError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    if updated is None:
        raise HTTPException(status_code=404, detail="Unknown account.")
    await desk.audit(supervisor, "account_password_reset", "", "", {"account": updated.username})
    return updated.public()


@router.get("/queue/routed")
async def routed_queue(agent: AgentDep, desk: DeskDep) -> list[dict[str, Any]]:
    """The queue in the order this agent should take it, each row flagged ``match``."""
    return for_agent(agent, await desk.queue())


@router.post("/queue/next")
async def next_in_queue(agent: AgentDep, desk: DeskDep) -> dict[str, Any]:
    """Claim the first waiting conversation that matches my skills and languages (VIP and urgent first)."""
    try:
        claimed = await take_next(desk, agent)
    except DeskError as exc:
        raise _desk_call_error(exc) from exc
    if claimed is None:
        raise HTTPException(status_code=404, detail="Nothing waiting that matches your skills and languages.")
    return desk.summary_row(claimed)
