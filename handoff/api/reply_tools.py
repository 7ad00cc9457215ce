"""What helps an agent write a reply (issue 17): macros (reply templates, handoff/macros.py) and the typing signal
the web chat customer sees (handoff/presence.py). Mounted under /api/agent next to the console API.

Security: a desk session for every call; state-changing calls from the gateway's own origin (handoff.deps.same_origin)
and counted against the per-account ``desk_write`` limit (HANDOFF_LIMIT_DESK_WRITES; over it: 429 + Retry-After).
Personal macros are visible to and changeable by their author only (another agent's are answered 404, like one that
does not exist); shared ones are written by supervisors. Filling a macro for a conversation and the typing signal
follow the conversation's read right (handoff.api.agent.may_read); only the owning agent's typing is sent. Every
macro change is audited.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from handoff.api.agent import _for_reader, _readable_row
from handoff.deps import AgentDep, DeskDep, RedisDep, ThrottleDep, count_desk_write, same_origin
from handoff.macros import LANGUAGES, MacroError, MacroInput, Macros
from handoff.presence import CustomerSignals

router = APIRouter(prefix="/api/agent", tags=["agent desk"], dependencies=[Depends(same_origin)])


def get_macros(redis: RedisDep) -> Macros:
    return Macros(redis)


def get_signals(request: Request) -> CustomerSignals:
    return CustomerSignals(request.app.state.redis, request.app.state.settings.web_conversation_ttl_s)


MacrosDep = Annotated[Macros, Depends(get_macros)]
SignalsDep = Annotated[CustomerSignals, Depends(get_signals)]


class PerLanguage(BaseModel):
    zh: str = Field(default="", max_length=10_000)
    en: str = Field(default="", max_length=10_000)


class MacroIn(BaseModel):
    title: PerLanguage
    text: PerLanguage


class NewMacroIn(MacroIn):
    scope: Literal["shared", "personal"] = "personal"


def _input(body: MacroIn) -> MacroInput:
    return MacroInput(title=body.title.model_dump(), text=body.text.model_dump())


def _error(exc: MacroError) -> HTTPException:
    return HTTPException(status_code=exc.status, detail=exc.detail)


@router.get("/macros")
async def list_macros(agent: AgentDep, macros: MacrosDep, q: str = Query(default="", max_length=100),
                      lang: Literal["zh", "en"] | None = None) -> list[dict[str, Any]]:
    """Shared macros and the caller's own personal ones, searched in titles and texts."""
    return await macros.list(agent, q, lang)


@router.post("/macros", status_code=201)
async def create_macro(body: NewMacroIn, agent: AgentDep, macros: MacrosDep, desk: DeskDep,
                       throttle: ThrottleDep) -> dict[str, Any]:
    await count_desk_write(throttle, agent)
    try:
        macro = await macros.create(agent, body.scope, _input(body))
    except MacroError as exc:
        raise _error(exc) from exc
    await desk.audit(agent, "macro_create", "", "", {"macro_id": macro["id"], "scope": macro["scope"]})
    return macro


@router.put("/macros/{macro_id}")
async def update_macro(macro_id: str, body: MacroIn, agent: AgentDep, macros: MacrosDep, desk: DeskDep,
                       throttle: ThrottleDep) -> dict[str, Any]:
    await count_desk_write(throttle, agent)
    try:
        macro = await macros.update(agent, macro_id, _input(body))
    except MacroError as exc:
        raise _error(exc) from exc
    await desk.audit(agent, "macro_update", "", "", {"macro_id": macro_id, "scope": macro["scope"]})
    return macro


@router.delete("/macros/{macro_id}")
async def delete_macro(macro_id: str, agent: AgentDep, macros: MacrosDep, desk: DeskDep,
                       throttle: ThrottleDep) -> dict[str, str]:
    await count_desk_write(throttle, agent)
    try:
        macro = await macros.delete(agent, macro_id)
    except MacroError as exc:
        raise _error(exc) from exc
    await desk.audit(agent, "macro_delete", "", "", {"macro_id": macro_id, "scope": macro["scope"]})
    return {"status": "deleted", "id": macro_id}


@router.get("/handoffs/{handoff_id}/macros/{macro_id}")
async def fill_macro(handoff_id: str, macro_id: str, agent: AgentDep, macros: MacrosDep, desk: DeskDep,
                     lang: Literal["zh", "en"] | None = None) -> dict[str, Any]:
    """The macro's text for this conversation (its language unless ``lang`` says otherwise), the variables filled
    from the conversation; ``missing`` names those it has no value for (left in the text as written)."""
    row = await _readable_row(desk, agent, handoff_id, "macro")
    context = _for_reader(agent, await desk.context(handoff_id))
    language = lang or (row.get("language") if row.get("language") in LANGUAGES else None)
    try:
        return await macros.render(agent, macro_id, context, language)
    except MacroError as exc:
        raise _error(exc) from exc


@router.post("/handoffs/{handoff_id}/typing")
async def typing(handoff_id: str, agent: AgentDep, desk: DeskDep, signals: SignalsDep, throttle: ThrottleDep
                 ) -> dict[str, bool]:
    """The owning agent is typing: the web chat customer sees "<name> is typing…" for a few seconds (at most one
    signal per conversation every 2 s; ``sent`` says whether this call wrote one)."""
    row = await _readable_row(desk, agent, handoff_id, "typing")
    if row["status"] != "claimed" or row.get("agent_id") != agent.id:
        raise HTTPException(status_code=409, detail="Only the agent who owns the conversation is shown typing.")
    await count_desk_write(throttle, agent)
    return {"sent": await signals.typing(row["conversation_id"], agent.display_name)}
