"""How the gateway runs analytics: ``install(app)`` adds the API, the page (/dashboard) and its static files;
``start(app, redis)`` (in the lifespan) opens the database and starts the stream consumer, the presence sampler and
the per-day rollups (analytics/rollup.py)."""
from __future__ import annotations

import asyncio
import logging
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from analytics import api, canary
from analytics.consumer import AnalyticsConsumer
from analytics.db import make_engine
from analytics.kpis import Kpis
from analytics.presence import PresenceSampler
from analytics.rollup import Roller
from analytics.settings import AnalyticsSettings

STATIC = Path(__file__).parent / "static" / "dashboard"
logger = logging.getLogger(__name__)


def install(app: FastAPI) -> None:
    app.state.canary_comparison = partial(canary_comparison, app)  # read by the workbench (workbench/releases_api.py)
    app.include_router(api.router)
    if not (STATIC / "index.html").exists():
        return
    app.mount("/static/dashboard", StaticFiles(directory=STATIC), name="static-dashboard")

    @app.get("/dashboard", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html")


async def canary_comparison(app: FastAPI, release: int) -> dict[str, Any] | None:
    """The two arms of canary ``release`` from the event record (analytics/canary.py); None without a record."""
    engine = getattr(app.state, "analytics_engine", None)
    if engine is None:
        return None
    return await asyncio.to_thread(canary.compare, engine, release)


def start(app: FastAPI, redis: Any, settings: AnalyticsSettings | None = None) -> list[asyncio.Task[None]]:
    """Open the record and start the consumer; a database that cannot be opened leaves the gateway running
    without analytics (logged; the API answers 503)."""
    settings = settings or AnalyticsSettings()
    try:
        engine = make_engine(settings.database_url)
    except Exception:  # noqa: BLE001 - analytics must never stop the gateway
        logger.exception("analytics database %s could not be opened; analytics is off", settings.database_url)
        return []
    app.state.analytics_engine = engine
    desk = getattr(app.state, "desk", None)
    app.state.analytics_kpis = Kpis(engine, desk.policy.priority_tiers if desk is not None else frozenset())
    if not settings.enabled:
        return []
    consumer = AnalyticsConsumer(redis, engine, app.state.desk.policy, settings.consumer, poll_s=settings.poll_s,
                                 scan_s=settings.scan_s, claim_idle_s=settings.claim_idle_s)
    app.state.analytics_consumer = consumer
    sampler = PresenceSampler(app.state.agents, engine, app.state.desk.policy.tz)
    app.state.presence_sampler = sampler
    roller = Roller(engine, app.state.analytics_kpis)
    app.state.analytics_roller = roller
    return [asyncio.create_task(consumer.run_forever()), asyncio.create_task(sampler.run_forever()),
            asyncio.create_task(roller.run_forever())]
