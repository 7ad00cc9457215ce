"""The editors' workbench API (``/api/workbench``), used by the page at /workbench.

Same login as the agent console (``POST /api/agent/login``, cookie or bearer token); every route needs an editor or
a supervisor (handoff.deps.current_editor): 401 without a session, 403 for agents. State-changing calls must come
from the gateway's own origin (handoff.deps.same_origin).

Errors the page shows as they are: 422 with ``problems`` (every rule an edit breaks; nothing saved), 409 with the
current version and both diffs (someone saved first; nothing saved), 404, 503 (files or action server unavailable).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine

from handoff.deps import EditorDep, ThrottleDep, count_desk_write, count_report_read, same_origin
from kb_index.errors import KBContentError
from workbench import trial
from workbench.articles import ArticleProblems
from workbench.content import Conflict, ContentStore, NotFound
from workbench.db import make_engine
from workbench.settings import WorkbenchSettings

router = APIRouter(prefix="/api/workbench", tags=["workbench"], dependencies=[Depends(same_origin)])
logger = logging.getLogger(__name__)
_open_lock = asyncio.Lock()


def get_settings(request: Request) -> WorkbenchSettings:
    return settings_of(request.app)


def settings_of(app: Any) -> WorkbenchSettings:
    settings = getattr(app.state, "workbench_settings", None)
    if settings is None:
        settings = app.state.workbench_settings = WorkbenchSettings()
    return settings


async def get_engine(request: Request, settings: WorkbenchSettings) -> Engine:
    return await engine_of(request.app, settings)


async def engine_of(app: Any, settings: WorkbenchSettings) -> Engine:
    """The workbench database, opened at first use (or by the inbox consumer at start, workbench/wiring.py)."""
    engine = getattr(app.state, "workbench_engine", None)
    if engine is None:
        async with _open_lock:
            engine = getattr(app.state, "workbench_engine", None)
            if engine is None:
                try:
                    engine = await asyncio.to_thread(make_engine, settings.database_url)
                except Exception as exc:  # noqa: BLE001 - the page says so; the gateway keeps serving
                    logger.exception("workbench database %s could not be opened", settings.database_url)
                    raise HTTPException(503, "The workbench database is not available.") from exc
                app.state.workbench_engine = engine
    return engine


async def get_content(request: Request, settings: Annotated[WorkbenchSettings, Depends(get_settings)]
                      ) -> ContentStore:
    """The store, opened at first use (the gateway starts without touching the article files); the files are taken
    in whenever they changed."""
    store = getattr(request.app.state, "workbench_content", None)
    if store is None:
        engine = await get_engine(request, settings)
        store = getattr(request.app.state, "workbench_content", None)
        if store is None:
            store = request.app.state.workbench_content = ContentStore(engine, settings.kb_path)
    try:
        await asyncio.to_thread(store.refresh)
    except KBContentError as exc:
        raise HTTPException(503, f"The article files cannot be read: {exc}") from exc
    return store


ContentDep = Annotated[ContentStore, Depends(get_content)]
SettingsDep = Annotated[WorkbenchSettings, Depends(get_settings)]


class Texts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    zh: str = Field(default="", max_length=4000)
    en: str = Field(default="", max_length=4000)


class Questions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    zh: list[Annotated[str, Field(max_length=4000)]] = Field(default_factory=list, max_length=100)
    en: list[Annotated[str, Field(max_length=4000)]] = Field(default_factory=list, max_length=100)


class ArticleEdit(BaseModel):
    """A save: the version the editor started from and the fields as they should be now (all of them: the page
    sends the whole form)."""

    model_config = ConfigDict(extra="forbid")
    base_version: int = Field(ge=1)
    title: Texts
    answer: Texts
    questions: Questions
    tags: list[Annotated[str, Field(max_length=60)]] = Field(default_factory=list, max_length=30)
    last_reviewed: dt.date | None = None


class RestoreIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1)
    base_version: int = Field(ge=1)


class TryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1, max_length=1000)
    language: Literal["zh", "en"] | None = None
    previous: str | None = Field(default=None, max_length=1000)


def _etag(article_id: str, version: int) -> str:
    return f'W/"{article_id}-v{version}"'


def _problems(exc: ArticleProblems) -> JSONResponse:
    return JSONResponse(status_code=422, content={
        "detail": "Not saved: " + "; ".join(exc.problems), "problems": exc.problems})


def _conflict(exc: Conflict) -> JSONResponse:
    current = exc.current
    return JSONResponse(status_code=409, headers={"ETag": _etag(current["article"]["id"], current["version"])},
                        content={
        "detail": (f"Not saved: {current['updated_by']} saved version {current['version']} of this article after "
                   f"you opened version {exc.base_version}. Review their change, then apply yours to the current "
                   "version."),
        "current": current, "base_version": exc.base_version, "theirs": exc.theirs, "yours": exc.yours})


@router.get("/me")
async def me(editor: EditorDep) -> dict[str, Any]:
    return editor.public()


@router.get("/articles", dependencies=[Depends(count_report_read)])
async def list_articles(editor: EditorDep, content: ContentDep,
                        q: Annotated[str, Query(max_length=200)] = "",
                        category: Annotated[str | None, Query(max_length=80)] = None) -> dict[str, Any]:
    rows = await asyncio.to_thread(content.search, q, category)
    return {"articles": rows, "count": len(rows), "categories": sorted({r["category"] for r in rows})}


@router.get("/articles/{article_id}")
async def get_article(article_id: str, editor: EditorDep, content: ContentDep, response: Response
                      ) -> dict[str, Any]:
    try:
        head = await asyncio.to_thread(content.get, article_id)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    response.headers["ETag"] = _etag(article_id, head["version"])
    return head


@router.put("/articles/{article_id}", response_model=None)
async def save_article(article_id: str, body: ArticleEdit, editor: EditorDep, content: ContentDep,
                       response: Response, throttle: ThrottleDep) -> dict[str, Any] | JSONResponse:
    await count_desk_write(throttle, editor)
    changes = body.model_dump(exclude={"base_version"})
    changes["last_reviewed"] = body.last_reviewed.isoformat() if body.last_reviewed else None
    return await _write(article_id, "saved", response, content.save, article_id, body.base_version, changes,
                        editor.username, editor.role)


async def _write(article_id: str, verb: str, response: Response, call: Any, *args: Any
                 ) -> dict[str, Any] | JSONResponse:
    """Run a write of the content store off the loop and answer it: the new head with its ETag, 409 with the
    conflict, 422 with every problem, 404 for an unknown article, 503 when the files cannot be written."""
    try:
        head = await asyncio.to_thread(call, *args)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    except Conflict as exc:
        return _conflict(exc)
    except ArticleProblems as exc:
        return _problems(exc)
    except KBContentError as exc:
        raise HTTPException(503, f"Not {verb}: the article files cannot be read or written: {exc}") from exc
    response.headers["ETag"] = _etag(article_id, head["version"])
    return head


@router.get("/articles/{article_id}/versions", dependencies=[Depends(count_report_read)])
async def list_versions(article_id: str, editor: EditorDep, content: ContentDep) -> dict[str, Any]:
    try:
        return {"article_id": article_id, "versions": await asyncio.to_thread(content.versions, article_id)}
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from exc


@router.get("/articles/{article_id}/versions/{version}")
async def get_version(article_id: str, version: int, editor: EditorDep, content: ContentDep) -> dict[str, Any]:
    try:
        return {"version": version, "article": await asyncio.to_thread(content.version, article_id, version)}
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from exc


@router.post("/articles/{article_id}/restore", response_model=None)
async def restore(article_id: str, body: RestoreIn, editor: EditorDep, content: ContentDep, response: Response,
                  throttle: ThrottleDep) -> dict[str, Any] | JSONResponse:
    await count_desk_write(throttle, editor)
    return await _write(article_id, "restored", response, content.restore, article_id, body.version,
                        body.base_version, editor.username, editor.role)


@router.post("/try")
async def try_question(body: TryIn, editor: EditorDep, settings: SettingsDep, throttle: ThrottleDep
                       ) -> dict[str, Any]:
    """Which article the bot would answer with, its score and the decision (answer / suggest = "did you mean" /
    none = decline), from the action server's live index: saved edits count once the index is rebuilt. Counted
    against the account's write limit: each try costs the action server a retrieval."""
    await count_desk_write(throttle, editor)
    try:
        return await trial.decide(settings, body.question, body.language, body.previous)
    except trial.TryUnavailable as exc:
        raise HTTPException(503, f"Cannot try the question now: {exc}") from exc
