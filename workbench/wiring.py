"""How the gateway serves the workbench: ``install(app)`` adds the API, the page (/workbench) and its static files.
Nothing starts with the gateway: the database and the article files are opened at the first workbench request."""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from workbench import api

STATIC = Path(__file__).parent / "static" / "workbench"


def install(app: FastAPI) -> None:
    app.include_router(api.router)
    app.mount("/static/workbench", StaticFiles(directory=STATIC), name="static-workbench")

    @app.get("/workbench", include_in_schema=False)
    async def workbench_page() -> FileResponse:
        return FileResponse(STATIC / "index.html")
