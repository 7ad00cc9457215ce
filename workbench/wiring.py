"""How the gateway serves the workbench: ``install(app)`` adds the API, the page (/workbench) and its static files;
``start(app, redis)`` (in the lifespan) starts the inbox's stream consumer (workbench/inbox.py), which opens the
workbench database, and the canary guard (``guard_canary``); the article files are opened at the first workbench
request."""
from __future__ import annotations

import asyncio
import logging
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from conversations.redis_client import stopping
from workbench import api, canary, drafts_api, inbox_api, releases_api, versions_api
from workbench.db import make_engine
from workbench.inbox import Embedder, Inbox, InboxConsumer
from workbench.settings import WorkbenchSettings

STATIC = Path(__file__).parent / "static" / "workbench"
logger = logging.getLogger(__name__)


def install(app: FastAPI) -> None:
    app.state.unanswered_topics = partial(unanswered_topics, app)  # read by the dashboard (analytics/api.py)
    app.include_router(api.router)
    app.include_router(inbox_api.router)
    app.include_router(drafts_api.router)
    app.include_router(versions_api.router)
    app.include_router(releases_api.router)
    app.mount("/static/workbench", StaticFiles(directory=STATIC), name="static-workbench")

    @app.get("/workbench", include_in_schema=False)
    async def workbench_page() -> FileResponse:
        return FileResponse(STATIC / "index.html")


async def unanswered_topics(app: FastAPI, *, since: float, until: float, language: str | None,
                            channel: str | None, limit: int) -> list[dict[str, Any]]:
    """The open inbox groups of rows from ``since`` to ``until`` (epoch seconds), most frequent first: what the bot
    got wrong, for the dashboard. Raises HTTPException(503) when the workbench database cannot be opened."""
    inbox = await inbox_api.inbox_of(app, api.settings_of(app))
    found = await asyncio.to_thread(inbox.groups, since=since, until=until, language=language, channel=channel,
                                    limit=limit)
    return list(found["groups"])


def start(app: FastAPI, redis: Any, settings: WorkbenchSettings | None = None) -> list[asyncio.Task[None]]:
    """Start the inbox consumer (``WORKBENCH_INBOX_ENABLED``); a database that cannot be opened leaves the gateway
    running without it (logged; the workbench API answers 503 then)."""
    settings = settings or getattr(app.state, "workbench_settings", None) or WorkbenchSettings()
    app.state.workbench_settings = settings
    guard = [asyncio.create_task(guard_canary(app, settings))] if settings.canary_guard_z > 0 else []
    if not settings.inbox_enabled:
        return guard
    try:
        engine = getattr(app.state, "workbench_engine", None) or make_engine(settings.database_url)
    except Exception:  # noqa: BLE001 - the workbench must never stop the gateway
        logger.exception("workbench database %s could not be opened; the inbox consumer is off",
                         settings.database_url)
        return guard
    app.state.workbench_engine = engine
    app.state.workbench_inbox = inbox = Inbox(engine, settings)  # also read by the dashboard (unanswered topics)
    consumer = InboxConsumer(redis, inbox, Embedder(settings), settings.inbox_consumer,
                             poll_s=settings.inbox_poll_s)
    app.state.workbench_inbox_consumer = consumer
    return [*guard, asyncio.create_task(consumer.run_forever())]


async def guard_canary(app: FastAPI, settings: WorkbenchSettings) -> None:
    """Every WORKBENCH_CANARY_GUARD_S: stop a running canary that is significantly worse (workbench/canary.py
    ``guard``), on the comparison the analytics record provides. Needs a canary worker (``RASA_CANARY_URL``)."""
    while not stopping():
        await asyncio.sleep(settings.canary_guard_s)
        compare = getattr(app.state, "canary_comparison", None)
        if compare is None or getattr(app.state.rasa, "canary_index", None) is None:
            continue
        try:
            await canary.guard(await releases_api.releases_of(app, settings), compare)
        except Exception:  # noqa: BLE001 - the guard must never stop the gateway; it looks again next round
            logger.exception("canary guard failed; looking again next round")


async def stop(app: FastAPI) -> None:
    """Gateway shutdown: a retrain this process runs is stopped (its release is marked failed; the bot unchanged)."""
    releases = getattr(app.state, "workbench_releases", None)
    if releases is not None:
        await releases.close()
