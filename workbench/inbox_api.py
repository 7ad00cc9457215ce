"""The inbox API (``/api/workbench/inbox``, ``/api/workbench/intents``), used by the workbench page's Inbox tab.

Editors and supervisors only (handoff.deps.current_editor: 401 without a session, 403 for agents); state-changing
calls from the gateway's own origin (the router's same_origin) and counted against the account's write limit
(``HANDOFF_LIMIT_DESK_WRITES``, handoff.deps.count_desk_write), like the article saves.

* ``GET /inbox``: the messages the bot got wrong, grouped by meaning (workbench/inbox.py), most frequent or newest
  first, masked.
* ``POST /inbox/check``: what adding a line to an intent would meet (held-out near duplicate: refused; another
  intent's near duplicate: warning), nothing written.
* ``POST /inbox/add-to-intent``: the line appended to the intent in ``data/nlu/<language>.yml`` (a version of that
  intent); the messages marked added.
* ``POST /inbox/add-to-article``: the text added as an example question of an article through the article save path
  (validation, versions, 409 on a stale ``base_version``); the messages marked added.
* ``POST /inbox/dismiss``: the messages marked dismissed.
* ``GET /intents``, ``GET /intents/{language}/{intent}/versions``, ``POST /intents/{language}/{intent}/restore``.
"""
from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from handoff.deps import EditorDep, ThrottleDep, count_desk_write, count_report_read, same_origin
from workbench.api import ContentDep, SettingsDep, _write, engine_of, get_engine
from workbench.inbox import SOURCES, Inbox
from workbench.masking import IDENTIFIER_PLACEHOLDERS, PERSONAL_PLACEHOLDERS, mask
from workbench.nlu import EXAMPLE_VALUES, NluFiles, NluProblem
from workbench.settings import WorkbenchSettings

router = APIRouter(prefix="/api/workbench", tags=["workbench inbox"], dependencies=[Depends(same_origin)])
Language = Literal["zh", "en"]
ItemIds = Annotated[list[int], Field(min_length=1, max_length=500)]


async def get_inbox(request: Request, settings: SettingsDep) -> Inbox:
    return await inbox_of(request.app, settings)


async def inbox_of(app: Any, settings: WorkbenchSettings) -> Inbox:
    inbox = getattr(app.state, "workbench_inbox", None)
    if inbox is None:
        inbox = app.state.workbench_inbox = Inbox(await engine_of(app, settings), settings)
    return inbox


async def get_nlu(request: Request, settings: SettingsDep) -> NluFiles:
    nlu = getattr(request.app.state, "workbench_nlu", None)
    if nlu is None:
        nlu = request.app.state.workbench_nlu = NluFiles(await get_engine(request, settings), settings.nlu_path,
                                                         settings.heldout_path)
    return nlu


InboxDep = Annotated[Inbox, Depends(get_inbox)]
NluDep = Annotated[NluFiles, Depends(get_nlu)]


class CheckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=300)
    intent: str = Field(min_length=1, max_length=80)
    language: Language


class AddToIntentIn(CheckIn):
    item_ids: ItemIds


class AddToArticleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item_ids: ItemIds
    article_id: str = Field(min_length=1, max_length=120)
    base_version: int = Field(ge=1)
    text: str = Field(min_length=1, max_length=300)
    language: Language


class DismissIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item_ids: ItemIds
    reason: str = Field(default="", max_length=200)


class RestoreIntentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1)


def _nlu_error(exc: NluProblem) -> JSONResponse:
    return JSONResponse(status_code=exc.status, content={"detail": str(exc), "refusals": exc.findings})


async def _open_items(inbox: Inbox, ids: list[int]) -> list[dict[str, Any]]:
    rows = await asyncio.to_thread(inbox.get, ids)
    if len(rows) != len(set(ids)):
        raise HTTPException(404, "Some of these inbox messages do not exist.")
    if all(r["status"] != "open" for r in rows):
        raise HTTPException(409, "These inbox messages were already handled.")
    return rows


def _editor_text(text: str) -> str:
    """What an editor sends is masked like a customer's message (an editor may shorten or rephrase it, never put
    personal data back)."""
    return mask(text)


@router.get("/inbox", dependencies=[Depends(count_report_read)])
async def list_inbox(editor: EditorDep, inbox: InboxDep,
                     sort: Literal["frequent", "newest"] = "frequent",
                     source: Annotated[str | None, Query(max_length=30)] = None,
                     status: Literal["open", "added", "dismissed"] = "open",
                     limit: Annotated[int, Query(ge=1, le=500)] = 100) -> dict[str, Any]:
    if source and source not in SOURCES:
        raise HTTPException(422, f"source must be one of {', '.join(SOURCES)}")
    return await asyncio.to_thread(inbox.groups, sort=sort, source=source, status=status, limit=limit)


@router.post("/inbox/check", response_model=None)
async def check(body: CheckIn, editor: EditorDep, nlu: NluDep, throttle: ThrottleDep
                ) -> dict[str, Any] | JSONResponse:
    await count_desk_write(throttle, editor)
    try:
        return await asyncio.to_thread(nlu.check, body.language, body.intent, _editor_text(body.text))
    except NluProblem as exc:
        return _nlu_error(exc)


@router.post("/inbox/add-to-intent", response_model=None)
async def add_to_intent(body: AddToIntentIn, editor: EditorDep, nlu: NluDep, inbox: InboxDep,
                        throttle: ThrottleDep) -> dict[str, Any] | JSONResponse:
    await count_desk_write(throttle, editor)
    await _open_items(inbox, body.item_ids)
    try:
        added = await asyncio.to_thread(nlu.add, body.language, body.intent, _editor_text(body.text),
                                        editor.username, editor.role)
    except NluProblem as exc:
        return _nlu_error(exc)
    resolution = {"action": "intent", "intent": body.intent, "language": body.language, "line": added["line"],
                  "version": added["version"]}
    added["resolved"] = await asyncio.to_thread(inbox.resolve, body.item_ids, "added", editor.username, resolution)
    return added


@router.post("/inbox/add-to-article", response_model=None)
async def add_to_article(body: AddToArticleIn, editor: EditorDep, content: ContentDep, inbox: InboxDep,
                         response: Response, throttle: ThrottleDep) -> dict[str, Any] | JSONResponse:
    await count_desk_write(throttle, editor)
    await _open_items(inbox, body.item_ids)
    question = _editor_text(body.text)
    for placeholder in PERSONAL_PLACEHOLDERS:
        if placeholder in question:
            raise HTTPException(422, f"Rewrite the question without {placeholder} first: personal data never goes "
                                     "into an article.")
    for entity, placeholder in IDENTIFIER_PLACEHOLDERS.items():
        question = question.replace(placeholder, EXAMPLE_VALUES[entity])
    try:
        head = await asyncio.to_thread(content.get, body.article_id)
    except Exception as exc:  # noqa: BLE001 - NotFound and friends: the save path below maps them the same way
        raise HTTPException(404, str(exc)) from exc
    article = head["article"]
    questions = {lang: list(article["questions"].get(lang) or []) for lang in ("zh", "en")}
    questions[body.language].append(question)
    changes = {"title": article["title"], "answer": article["answer"], "questions": questions,
               "tags": article.get("tags") or [], "last_reviewed": article.get("last_reviewed")}
    saved = await _write(body.article_id, "saved", response, content.save, body.article_id, body.base_version,
                         changes, editor.username, editor.role)
    if isinstance(saved, JSONResponse):
        return saved
    resolution = {"action": "article", "article_id": body.article_id, "language": body.language,
                  "question": question, "version": saved["version"]}
    saved["resolved"] = await asyncio.to_thread(inbox.resolve, body.item_ids, "added", editor.username, resolution)
    return saved


@router.post("/inbox/dismiss")
async def dismiss(body: DismissIn, editor: EditorDep, inbox: InboxDep, throttle: ThrottleDep) -> dict[str, Any]:
    await count_desk_write(throttle, editor)
    await _open_items(inbox, body.item_ids)
    changed = await asyncio.to_thread(inbox.resolve, body.item_ids, "dismissed", editor.username,
                                      {"action": "dismiss", "reason": body.reason})
    return {"resolved": changed}


@router.get("/intents", dependencies=[Depends(count_report_read)])
async def intents(editor: EditorDep, nlu: NluDep) -> dict[str, Any]:
    return {"intents": await asyncio.to_thread(nlu.intents)}


@router.get("/intents/{language}/{intent}/versions", response_model=None, dependencies=[Depends(count_report_read)])
async def intent_versions(language: Language, intent: str, editor: EditorDep, nlu: NluDep) -> dict[str, Any]:
    return {"language": language, "intent": intent,
            "versions": await asyncio.to_thread(nlu.versions, language, intent)}


@router.post("/intents/{language}/{intent}/restore", response_model=None)
async def restore_intent(language: Language, intent: str, body: RestoreIntentIn, editor: EditorDep, nlu: NluDep,
                         throttle: ThrottleDep) -> dict[str, Any] | JSONResponse:
    await count_desk_write(throttle, editor)
    try:
        return await asyncio.to_thread(nlu.restore, language, intent, body.version, editor.username, editor.role)
    except NluProblem as exc:
        return _nlu_error(exc)
