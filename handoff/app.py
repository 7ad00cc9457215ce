"""The gateway service: every customer channel enters here (the website chat now, messaging apps later).

It stores each message in Redis, asks the conversation's owner (bot or human agent) and relays the answer.
Create with ``uvicorn handoff.app:create_app --factory``.
"""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator, Optional

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from redis.asyncio import Redis

from handoff.rasa_client import RasaClient
from handoff.routers import webchat
from handoff.settings import GatewaySettings, get_settings
from handoff.store import ConversationStore

STATIC_DIR = Path(__file__).parent / "static"
logger = logging.getLogger(__name__)


def create_app(settings: Optional[GatewaySettings] = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = Redis.from_url(settings.redis_url)
        app.state.settings = settings
        app.state.redis = redis
        app.state.store = ConversationStore(redis, settings.web_conversation_ttl_s)
        app.state.rasa = RasaClient(settings.rasa_url, settings.rasa_token, settings.rasa_timeout_s)
        try:
            yield
        finally:
            await app.state.rasa.close()
            await redis.aclose()

    app = FastAPI(title="Customer-service gateway", version="0.1.0", lifespan=lifespan)
    app.include_router(webchat.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', [])[1:]) or 'body'}: {e.get('msg')}" for e in exc.errors()
        )
        return JSONResponse(status_code=422, content={"detail": f"Invalid request: {problems}"})

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "webchat" / "index.html")

    @app.get("/healthz", tags=["ops"])
    async def healthz(request: Request) -> dict:
        await request.app.state.redis.ping()
        return {"status": "ok"}

    return app
