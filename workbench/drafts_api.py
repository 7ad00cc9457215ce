"""Draft articles API (``/api/workbench``), used by the Inbox tab ("Draft an article") and the article editor.

Editors and supervisors only (handoff.deps.current_editor: 401 without a session, 403 for agents); writes from the
gateway's own origin (the router's same_origin) and counted against the account's write limit
(``HANDOFF_LIMIT_DESK_WRITES``), like every other workbench change.

* ``POST /inbox/draft-article``: a draft from inbox messages an agent answered (workbench/drafts.py); the messages are
  marked added (resolution ``draft``). 404 unknown message, 409 already handled, 422 no agent reply / unknown
  category; nothing stored then.
* ``GET /drafts``, ``GET /drafts/{id}``: open drafts, each with what still keeps it from being published.
* ``PUT /drafts/{id}``: save (incomplete is allowed; 409 with the current draft on a stale ``base_version``).
* ``POST /drafts/{id}/publish``: 422 with every problem (nothing published), else the new article (version 1).
* ``POST /drafts/{id}/discard``.
"""
from __future__ import annotations

import asyncio
import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from handoff.deps import EditorDep, ThrottleDep, count_desk_write, count_report_read, same_origin
from kb_index.errors import KBContentError
from workbench.api import ContentDep, Questions, Texts, _etag, _problems
from workbench.articles import ArticleProblems
from workbench.drafts import DraftConflict, DraftProblem, DraftStore
from workbench.inbox_api import InboxDep, ItemIds, _open_items

router = APIRouter(prefix="/api/workbench", tags=["workbench drafts"], dependencies=[Depends(same_origin)])


async def get_drafts(request: Request, content: ContentDep) -> DraftStore:
    store = getattr(request.app.state, "workbench_drafts", None)
    if store is None or store.content is not content:
        store = request.app.state.workbench_drafts = DraftStore(content.engine, content)
    return store


DraftsDep = Annotated[DraftStore, Depends(get_drafts)]


class DraftFromItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item_ids: ItemIds
    category: str = Field(min_length=1, max_length=80)
    reply_index: int | None = Field(default=None, ge=0, le=20)


class DraftEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base_version: int = Field(ge=1)
    article_id: str = Field(min_length=1, max_length=120)
    category: str = Field(min_length=1, max_length=80)
    title: Texts
    answer: Texts
    questions: Questions
    tags: list[Annotated[str, Field(max_length=60)]] = Field(default_factory=list, max_length=30)
    last_reviewed: dt.date | None = None


class DraftVersionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base_version: int = Field(ge=1)


def _draft_error(exc: DraftProblem) -> HTTPException:
    return HTTPException(exc.status, str(exc))


def _draft_conflict(exc: DraftConflict) -> JSONResponse:
    current = exc.current
    return JSONResponse(status_code=409, content={
        "detail": (f"Not saved: {current['updated_by']} saved version {current['version']} of this draft after you "
                   f"opened version {exc.base_version}. Review it, then apply your change to the current version."),
        "current": current, "base_version": exc.base_version, "theirs": "", "yours": exc.yours})


async def _call(call: Any, *args: Any) -> Any:
    try:
        return await asyncio.to_thread(call, *args)
    except DraftProblem as exc:
        raise _draft_error(exc) from exc
    except KBContentError as exc:
        raise HTTPException(503, f"The article files cannot be read or written: {exc}") from exc


@router.post("/inbox/draft-article", status_code=201)
async def draft_from_item(body: DraftFromItemIn, editor: EditorDep, drafts: DraftsDep, inbox: InboxDep,
                          throttle: ThrottleDep) -> dict[str, Any]:
    await count_desk_write(throttle, editor)
    rows = await _open_items(inbox, body.item_ids)
    draft = await _call(drafts.from_item, [r for r in rows if r["status"] == "open"], body.category,
                        body.reply_index, editor.username)
    draft["resolved"] = await asyncio.to_thread(inbox.resolve, body.item_ids, "added", editor.username,
                                                {"action": "draft", "draft_id": draft["id"],
                                                 "article_id": draft["article"]["id"]})
    return draft


@router.get("/drafts", dependencies=[Depends(count_report_read)])
async def list_drafts(editor: EditorDep, drafts: DraftsDep,
                      status: Literal["draft", "published", "discarded"] = "draft",
                      limit: Annotated[int, Query(ge=1, le=500)] = 200) -> dict[str, Any]:
    return {"drafts": await asyncio.to_thread(drafts.list, status, limit)}


@router.get("/drafts/{draft_id}")
async def get_draft(draft_id: int, editor: EditorDep, drafts: DraftsDep) -> dict[str, Any]:
    result: dict[str, Any] = await _call(drafts.get, draft_id)
    return result


@router.put("/drafts/{draft_id}", response_model=None)
async def save_draft(draft_id: int, body: DraftEdit, editor: EditorDep, drafts: DraftsDep, throttle: ThrottleDep
                     ) -> dict[str, Any] | JSONResponse:
    await count_desk_write(throttle, editor)
    changes = body.model_dump(exclude={"base_version"})
    changes["last_reviewed"] = body.last_reviewed.isoformat() if body.last_reviewed else None
    try:
        result: dict[str, Any] = await _call(drafts.save, draft_id, body.base_version, changes, editor.username)
    except DraftConflict as exc:
        return _draft_conflict(exc)
    return result


@router.post("/drafts/{draft_id}/publish", response_model=None)
async def publish_draft(draft_id: int, body: DraftVersionIn, editor: EditorDep, drafts: DraftsDep,
                        response: Response, throttle: ThrottleDep) -> dict[str, Any] | JSONResponse:
    await count_desk_write(throttle, editor)
    try:
        result: dict[str, Any] = await _call(drafts.publish, draft_id, body.base_version, editor.username,
                                             editor.role)
    except DraftConflict as exc:
        return _draft_conflict(exc)
    except ArticleProblems as exc:
        return _problems(exc)
    response.headers["ETag"] = _etag(result["article"]["article"]["id"], result["article"]["version"])
    return result


@router.post("/drafts/{draft_id}/discard", response_model=None)
async def discard_draft(draft_id: int, body: DraftVersionIn, editor: EditorDep, drafts: DraftsDep,
                        throttle: ThrottleDep) -> dict[str, Any] | JSONResponse:
    await count_desk_write(throttle, editor)
    try:
        result: dict[str, Any] = await _call(drafts.discard, draft_id, body.base_version, editor.username)
    except DraftConflict as exc:
        return _draft_conflict(exc)
    return result
