"""The releases API (``/api/workbench/releases``): retrain, follow the progress, read the gate's report, deploy, roll
back (workbench/releases.py). Editors and supervisors (401 / 403 for agents); state changes from the gateway's own
origin and counted against the per-account write limit.

| route | what |
|---|---|
| ``GET /releases`` | the newest releases (status, stages with times, the gate's figures), which one is live, the log |
| ``POST /releases`` | start a retrain (202; 409 while another retrain, deploy or rollback runs) |
| ``GET /releases/{id}`` | one release with the gate's full report (per intent, newly failing and fixed lines) |
| ``GET /releases/{id}/log`` | the end of its training log |

Reads count against the per-account report limit (``HANDOFF_LIMIT_REPORT_READS``); the page polls only the release
in training, every 5 s.
| ``POST /releases/{id}/cancel`` | stop its training (the live bot never changed) |
| ``POST /releases/{id}/deploy`` | serve it; ``{"reason"}`` required when the gate refused it (supervisors only) |

Deploying an earlier release is a rollback (logged as one).

The canary (workbench/canary.py):

| route | what |
|---|---|
| ``GET /canary`` | the running canary (or the last one) and its two arms compared (analytics/canary.py) |
| ``POST /releases/{id}/canary`` | ``{"share", "reason"}``: a share of new conversations goes to this release |
| ``POST /canary/promote`` | deploy the canary's release everywhere (``{"reason"}`` when the gate refused it) |
| ``POST /canary/abort`` | stop it: its conversations go on with the live release |
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from handoff.deps import EditorDep, ThrottleDep, count_desk_write, count_report_read, same_origin
from workbench import canary
from workbench.api import SettingsDep, engine_of
from workbench.releases import ReleaseError, Releases
from workbench.settings import WorkbenchSettings

T = TypeVar("T")
router = APIRouter(prefix="/api/workbench", tags=["workbench releases"], dependencies=[Depends(same_origin)])
_open_lock = asyncio.Lock()


async def releases_of(app: Any, settings: WorkbenchSettings) -> Releases:
    """The process's releases object, made at first use (it runs at most one training, in this process)."""
    releases = getattr(app.state, "workbench_releases", None)
    if releases is None:
        async with _open_lock:
            releases = getattr(app.state, "workbench_releases", None)
            if releases is None:
                from kb_index.settings import KBSettings

                engine = await engine_of(app, settings)
                releases = app.state.workbench_releases = Releases(
                    engine, settings, app.state.redis, getattr(app.state, "rasa", None), KBSettings().index_path)
    return releases


async def get_releases(request: Request, settings: SettingsDep) -> Releases:
    return await releases_of(request.app, settings)


ReleasesDep = Annotated[Releases, Depends(get_releases)]


class DeployIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=2000)


class CanaryIn(DeployIn):
    share: float | None = Field(default=None, ge=0.01, le=0.5)


def _error(exc: ReleaseError) -> HTTPException:
    return HTTPException(exc.status, str(exc))


async def _answer(call: Awaitable[T]) -> T:
    """The result of a releases call; its refusal (ReleaseError) as the HTTP status and message it names."""
    try:
        return await call
    except ReleaseError as exc:
        raise _error(exc) from exc


@router.get("/releases", dependencies=[Depends(count_report_read)])
async def list_releases(editor: EditorDep, releases: ReleasesDep) -> dict[str, Any]:
    rows = await asyncio.to_thread(releases.list)
    history = await asyncio.to_thread(releases.history, 50)
    return {"releases": rows, "live": next((r["id"] for r in rows if r["status"] == "live"), None),
            "training": next((r["id"] for r in rows if r["status"] == "training"), None),
            "tolerance": releases.settings.gate_tolerance, "history": history}


@router.post("/releases", status_code=202)
async def retrain(editor: EditorDep, releases: ReleasesDep, throttle: ThrottleDep) -> JSONResponse:
    await count_desk_write(throttle, editor)
    return JSONResponse(await _answer(releases.start_training(editor)), status_code=202)


@router.get("/releases/{release_id}", dependencies=[Depends(count_report_read)])
async def release(release_id: int, editor: EditorDep, releases: ReleasesDep) -> dict[str, Any]:
    return await _answer(asyncio.to_thread(releases.row, release_id))


@router.get("/releases/{release_id}/log", dependencies=[Depends(count_report_read)])
async def release_log(release_id: int, editor: EditorDep, releases: ReleasesDep) -> dict[str, Any]:
    return {"log": await _answer(asyncio.to_thread(releases.log_tail, release_id))}


@router.post("/releases/{release_id}/cancel")
async def cancel(release_id: int, editor: EditorDep, releases: ReleasesDep, throttle: ThrottleDep
                 ) -> dict[str, Any]:
    await count_desk_write(throttle, editor)
    return await _answer(releases.cancel(release_id, editor))


@router.post("/releases/{release_id}/deploy")
async def deploy(release_id: int, body: DeployIn, editor: EditorDep, releases: ReleasesDep, throttle: ThrottleDep
                 ) -> dict[str, Any]:
    await count_desk_write(throttle, editor)
    return await _answer(releases.deploy(release_id, editor, body.reason))


@router.get("/canary", dependencies=[Depends(count_report_read)])
async def canary_state(request: Request, editor: EditorDep, releases: ReleasesDep) -> dict[str, Any]:
    """The running canary, else the last one, with its arms compared (None: no record to compare from)."""
    out = await asyncio.to_thread(canary.state, releases)
    shown = out["running"] or await asyncio.to_thread(canary.last, releases)
    out["shown"] = shown
    compare = getattr(request.app.state, "canary_comparison", None)
    out["comparison"] = await compare(shown["release_id"]) if shown and compare else None
    return out


@router.post("/releases/{release_id}/canary")
async def start_canary(release_id: int, body: CanaryIn, editor: EditorDep, releases: ReleasesDep,
                       throttle: ThrottleDep) -> dict[str, Any]:
    await count_desk_write(throttle, editor)
    return await _answer(canary.start(releases, release_id, editor, body.share, body.reason))


@router.post("/canary/promote")
async def promote_canary(body: DeployIn, editor: EditorDep, releases: ReleasesDep, throttle: ThrottleDep
                         ) -> dict[str, Any]:
    await count_desk_write(throttle, editor)
    return await _answer(canary.promote(releases, editor, body.reason))


@router.post("/canary/abort")
async def abort_canary(editor: EditorDep, releases: ReleasesDep, throttle: ThrottleDep) -> dict[str, Any]:
    await count_desk_write(throttle, editor)
    return await _answer(canary.abort(releases, editor))
