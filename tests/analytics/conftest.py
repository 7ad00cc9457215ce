"""The gateway with analytics on a real uvicorn server, a real Redis (db 3, flushed) and a throw-away SQLite record.
The consumer loop is off: tests drive it (``poll_once``) so every figure is computed from a known state."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from analytics.consumer import AnalyticsConsumer
from channels.app import create_app
from conversations.settings import GatewaySettings
from tests.processes import serve_in_process

PASSWORD = "dashboard test password"  # noqa: S105 - test secret


class SilentRasa:
    canary = None  # no canary running (RasaClient.canary)
    async def send_message(self, sender_id: str, text: str, metadata: dict | None = None, *,
                           canary: bool = False) -> list[dict]:
        return [{"recipient_id": sender_id, "text": "ok"}]

    async def append_events(self, sender_id: str, events: list[dict[str, Any]]) -> None:
        return None

    async def close(self) -> None:
        return None


@dataclass
class Dashboard:
    app: FastAPI
    redis: Redis
    http: httpx.AsyncClient
    base_url: str
    consumer: AnalyticsConsumer

    async def login(self, username: str, role: str = "supervisor") -> dict[str, str]:
        await self.app.state.agents.create(username, PASSWORD, role)
        r = await self.http.post("/api/agent/login", json={"username": username, "password": PASSWORD})
        assert r.status_code == 200, r.text
        self.http.cookies.clear()
        return {"Authorization": f"Bearer {r.json()['token']}"}




async def start_dashboard(redis_url: str, db_path: Path, monkeypatch: pytest.MonkeyPatch, **overrides: Any):
    url = redis_url.rsplit("/", 1)[0] + "/3"
    redis = Redis.from_url(url)
    await redis.flushdb()
    monkeypatch.setenv("ANALYTICS_DATABASE_URL", f"sqlite:///{db_path}")
    monkeypatch.setenv("ANALYTICS_ENABLED", "false")
    monkeypatch.setenv("WORKBENCH_DATABASE_URL", f"sqlite:///{db_path.with_name('workbench.db')}")
    settings = GatewaySettings(redis_url=url, handoff_internal_token="t" * 20, handoff_sla_check_interval_s=3600,
                               web_limit_messages="1000/minute", **overrides)
    app = create_app(settings)
    server, task, port = await serve_in_process(app)
    app.state.rasa = app.state.desk.rasa = SilentRasa()
    consumer = AnalyticsConsumer(app.state.redis, app.state.analytics_engine, app.state.desk.policy, "test-1",
                                 claim_idle_s=0.0)
    return app, redis, server, task, port, consumer


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "dashboard_settings(**kw): GatewaySettings overrides for the dashboard")


@pytest.fixture
async def dashboard(redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest):
    marker = request.node.get_closest_marker("dashboard_settings")
    app, redis, server, task, port, consumer = await start_dashboard(redis_url, tmp_path / "analytics.db",
                                                                     monkeypatch, **(marker.kwargs if marker else {}))
    base_url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base_url, timeout=20) as http:
        yield Dashboard(app, redis, http, base_url, consumer)
    server.should_exit = True
    await asyncio.wait_for(task, 15)
    await redis.flushdb()
    await redis.aclose()
