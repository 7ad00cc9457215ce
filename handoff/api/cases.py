"""Console API of the case library and the search of past conversations (handoff/cases.py).

Agents and supervisors only (editors: 403). Every search and every opened conversation or case is audited and counts
against HANDOFF_LIMIT_SEARCHES per account (429 + Retry-After); marking and removing cases count against
HANDOFF_LIMIT_DESK_WRITES. What an agent finds is masked as in the console (no verification digits, phones masked);
an agent finds past conversations (closed or handed back), the queue and their own, not a colleague's open
conversation or a reopened supervisors-only case; supervisors find everything."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from bot.shared.redact import GENERIC
from bot.shared.text import clean_text
from handoff.agents import Agent
from handoff.api.agent import _desk_call_error, may_read
from handoff.cases import CaseError, CaseLibrary
from handoff.deps import (
    AgentDep,
    DeskDep,
    RedisDep,
    SettingsDep,
    StoreDep,
    ThrottleDep,
    count_desk_write,
    count_for_account,
    same_origin,
)
from handoff.handoffs import DeskError

router = APIRouter(prefix="/api/agent", tags=["agent desk: cases and search"], dependencies=[Depends(same_origin)])
PAST = ("closed", "handed_back")


def get_library(redis: RedisDep, desk: DeskDep, store: StoreDep, settings: SettingsDep) -> CaseLibrary:
    return CaseLibrary(redis, desk, store, settings.handoff_retention_s, settings.handoff_search_scan)


LibraryDep = Annotated[CaseLibrary, Depends(get_library)]


def may_find(agent: Agent, doc: dict[str, Any]) -> bool:
    """What a search shows this reader: supervisors everything; agents past conversations, the queue and their own."""
    if agent.is_supervisor:
        return True
    if doc.get("supervisor_only") == "1":
        return doc.get("agent_id") == agent.id
    return doc.get("status") in PAST or doc.get("status") == "queued" or doc.get("agent_id") == agent.id


def may_open(agent: Agent, handoff: dict[str, str]) -> bool:
    if may_read(agent, handoff):
        return True
    return handoff.get("status") in PAST and handoff.get("supervisor_only") != "1"


@router.get("/search")
async def search(agent: AgentDep, desk: DeskDep, library: LibraryDep, throttle: ThrottleDep,
                 q: str = Query(default="", max_length=200), order: str = Query(default="", max_length=20,
                                                                               pattern=r"^[A-Za-z0-9]*$"),
                 customer: str = Query(default="", max_length=40, pattern=r"^[A-Za-z0-9_-]*$"),
                 limit: int = Query(default=20, ge=1, le=50)) -> dict[str, Any]:
    """Past conversations by order number, customer id and/or words of the (masked) transcript, newest first."""
    if not (q.strip() or order or customer):
        raise HTTPException(status_code=422, detail="Give words, an order number or a customer.")
    await count_for_account(throttle, "search", agent)
    found = await library.search(q, order, customer, limit * 3)
    results = [r for r in found if may_find(agent, r)][:limit]
    for r in results:
        r.pop("supervisor_only", None)
    await desk.audit(agent, "search", "", "", {"q": GENERIC.text(q)[:200], "order": order, "customer": customer,
                                               "results": len(results)})
    return {"results": results}


@router.get("/search/{handoff_id}")
async def open_found(handoff_id: str, agent: AgentDep, desk: DeskDep, library: LibraryDep,
                     throttle: ThrottleDep) -> dict[str, Any]:
    """A past conversation found by a search: its masked transcript and summary (read-only)."""
    await count_for_account(throttle, "search", agent)
    try:
        handoff = await desk.require(handoff_id)
    except DeskError as exc:
        raise _desk_call_error(exc) from exc
    if not may_open(agent, handoff):
        await desk.audit(agent, "view_denied", handoff["conversation_id"], handoff_id, {"what": "search"})
        raise HTTPException(status_code=403, detail="This conversation belongs to another agent.")
    messages = await library.transcript(handoff)
    await desk.audit(agent, "search_open", handoff["conversation_id"], handoff_id, {})
    return {"handoff": desk.summary_row(handoff), "messages": messages,
            "case": await library.get(handoff_id) is not None}


class CaseIn(BaseModel):
    title: str = Field(min_length=1, max_length=120)
    tags: list[str] = Field(default_factory=list, max_length=8)
    note: str = Field(default="", max_length=2000)


@router.put("/handoffs/{handoff_id}/case")
async def mark_case(handoff_id: str, body: CaseIn, agent: AgentDep, desk: DeskDep, library: LibraryDep,
                    throttle: ThrottleDep) -> dict[str, Any]:
    """Mark the conversation as a model case (its agent or a supervisor); again: new title, tags, note."""
    await count_desk_write(throttle, agent)
    try:
        handoff = await desk.require(handoff_id)
    except DeskError as exc:
        raise _desk_call_error(exc) from exc
    title = clean_text(body.title, max_chars=120)
    if not title:
        raise HTTPException(status_code=422, detail="A case needs a title.")
    try:
        case, new = await library.mark(agent, handoff, title, body.tags, clean_text(body.note, max_chars=2000))
    except CaseError as exc:
        await desk.audit(agent, "case_denied", handoff["conversation_id"], handoff_id, {"status": exc.status})
        raise HTTPException(status_code=exc.status, detail=exc.detail) from exc
    await desk.audit(agent, "case_mark" if new else "case_update", handoff["conversation_id"], handoff_id,
                     {"title": title, "tags": case["tags"]})
    return {**{k: v for k, v in case.items() if k != "messages"}, "new": new}


@router.get("/cases")
async def list_cases(agent: AgentDep, desk: DeskDep, library: LibraryDep, throttle: ThrottleDep,
                     q: str = Query(default="", max_length=200), tag: str = Query(default="", max_length=24),
                     limit: int = Query(default=30, ge=1, le=50)) -> list[dict[str, Any]]:
    """The case library, newest first; filtered by words and/or a tag."""
    await count_for_account(throttle, "search", agent)
    cases = await library.library(q, tag, limit)
    await desk.audit(agent, "case_search", "", "", {"q": GENERIC.text(q)[:200], "tag": tag, "results": len(cases)})
    return cases


@router.get("/cases/{case_id}")
async def open_case(case_id: str, agent: AgentDep, desk: DeskDep, library: LibraryDep, throttle: ThrottleDep
                    ) -> dict[str, Any]:
    await count_for_account(throttle, "search", agent)
    case = await library.get(case_id)
    if case is None:
        raise HTTPException(status_code=404, detail="Unknown case.")
    await desk.audit(agent, "case_view", case["conversation_id"], case["handoff_id"], {})
    return case


@router.delete("/cases/{case_id}")
async def remove_case(case_id: str, agent: AgentDep, desk: DeskDep, library: LibraryDep, throttle: ThrottleDep
                      ) -> dict[str, str]:
    await count_desk_write(throttle, agent)
    try:
        await library.remove(agent, case_id)
    except CaseError as exc:
        raise HTTPException(status_code=exc.status, detail=exc.detail) from exc
    await desk.audit(agent, "case_remove", "", case_id, {})
    return {"removed": case_id}
