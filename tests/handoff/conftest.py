"""The gateway with the agent desk on a real uvicorn server (SSE needs real streaming) and a real Redis database
(db 2, flushed around each test). Rasa is a recording stub with a realistic tracker, so outages can be simulated."""
from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from bot.shared.context_tracker import tracker_part
from channels.app import create_app
from conversations.rasa_client import RasaError
from conversations.settings import GatewaySettings
from handoff.agents import Agent
from tests.processes import serve_in_process

TOKEN = "test-internal-token"  # noqa: S105 - test secret
# Monday 2026-11-23 10:00 China time: inside service hours (09:00-21:00 in data/store_policy.yml).
IN_HOURS = "2026-11-23T10:00:00+08:00"
PASSWORD = "correct horse battery"  # noqa: S105 - test secret


def tracker_for(sender_id: str) -> dict[str, Any]:
    """A tracker shaped like Rasa 3.6's: two customer turns, actions, a knowledge answer and slots."""
    return {
        "sender_id": sender_id,
        "slots": {"language": "en", "order_number": "DM2026110512", "tracking_number": None, "phone": None},
        "events": [
            {"event": "action", "name": "action_session_start", "timestamp": 1.0},
            {"event": "user", "timestamp": 2.0, "text": "where is my order DM2026110512",
             "parse_data": {"intent": {"name": "order_status", "confidence": 0.93},
                            "intent_ranking": [{"name": "order_status", "confidence": 0.93},
                                               {"name": "refund_status", "confidence": 0.04}],
                            "entities": [{"entity": "order_number", "value": "DM2026110512",
                                          "extractor": "IdentifierExtractor"}],
                            "frustration": {"score": 35, "signals": {}}}},
            {"event": "action", "name": "action_check_order_number", "timestamp": 2.1, "confidence": 1.0,
             "policy": "RulePolicy"},
            {"event": "slot", "name": "order_number", "value": "DM2026110512", "timestamp": 2.1},
            {"event": "bot", "text": "Delivery takes 3-5 business days.", "timestamp": 2.2,
             "metadata": {"kb": {"id": "orders-delivery-time", "title": "Delivery time", "score": 0.81}}},
            {"event": "user", "timestamp": 3.0, "text": "no that does not help",
             "parse_data": {"intent": {"name": "deny", "confidence": 0.88}, "entities": [],
                            "frustration": {"score": 72, "signals": {}}}},
            {"event": "action", "name": "action_listen", "timestamp": 3.1},
        ],
    }


class StubRasa:
    canary = None  # no canary running (RasaClient.canary)
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.fail = False

    async def send_message(self, sender_id: str, text: str, metadata: dict | None = None, *,
                           canary: bool = False) -> list[dict]:
        self.calls.append({"sender": sender_id, "text": text})
        if self.fail:
            raise RasaError("Rasa unreachable: ConnectError")
        return [{"recipient_id": sender_id, "text": f"bot:{text[:30]}"}]

    async def get_tracker(self, sender_id: str) -> dict[str, Any]:
        if self.fail:
            raise RasaError("Rasa unreachable: ConnectError")
        return tracker_for(sender_id)

    async def append_events(self, sender_id: str, events: list[dict[str, Any]]) -> None:
        self.events.append({"sender": sender_id, "events": events})

    async def close(self) -> None:
        return None


@dataclass
class Desk:
    http: httpx.AsyncClient
    app: FastAPI
    rasa: StubRasa
    redis: Redis
    settings: GatewaySettings
    base_url: str
    password: str = PASSWORD

    async def say(self, text: str, conversation_id: str | None = None, message_id: str | None = None
                  ) -> dict[str, Any]:
        r = await self.http.post("/api/webchat/messages", json={
            "conversation_id": conversation_id, "message_id": message_id or uuid.uuid4().hex, "text": text,
            "metadata": {"ui_lang": "en"}})
        assert r.status_code == 200, r.text
        return r.json()

    async def handoff(self, conversation_id: str, **overrides: Any) -> httpx.Response:
        body = {"conversation_id": conversation_id, "channel": "webchat", "reason_code": "high_frustration",
                "priority": 2, "language": "en", "customer": {"id": None, "tier": "regular", "verified": False},
                "frustration": {"score": 72, "curve": [{"ts": 2.0, "score": 35}, {"ts": 3.0, "score": 72}]},
                "signals": {"caps_ratio": 0.4}, "summary": None, **overrides}
        if "tracker" not in overrides and not self.rasa.fail:
            # What action_handoff_to_human sends: the tracker part it built (and redacted) from the tracker it holds.
            held = await self.rasa.get_tracker(conversation_id)
            body["tracker"] = tracker_part(held.get("events") or [], held.get("slots"))
        return await self.http.post("/internal/handoffs", json=body, headers={"X-Internal-Token": TOKEN})

    async def agent(self, username: str, role: str = "agent", max_concurrent: int | None = None
                    ) -> LoggedIn:
        account = await self.app.state.agents.create(username, PASSWORD, role, max_concurrent=max_concurrent)
        r = await self.http.post("/api/agent/login", json={"username": username, "password": PASSWORD})
        assert r.status_code == 200, r.text
        assert "httponly" in r.headers["set-cookie"].lower()
        self.http.cookies.clear()  # tests authenticate with the bearer token, one agent per call
        return LoggedIn(account, r.json()["token"])

    def set_clock(self, iso: str) -> None:
        self.app.state.clock.set(datetime.fromisoformat(iso))


@dataclass
class LoggedIn:
    account: Agent
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}




def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "desk_settings(**kw): GatewaySettings overrides for the desk fixture")


@pytest.fixture
async def desk(redis_url: str, request: pytest.FixtureRequest):
    url = redis_url.rsplit("/", 1)[0] + "/2"
    redis = Redis.from_url(url)
    await redis.flushdb()
    marker = request.node.get_closest_marker("desk_settings")
    settings = GatewaySettings(**{"redis_url": url, "handoff_internal_token": TOKEN, "handoff_clock": IN_HOURS,
                                  "handoff_sla_check_interval_s": 3600, "web_sse_block_ms": 300,
                                  # one test client plays many customers: per-client limits have their own tests
                                  "web_limit_handoffs": "1000/minute", "web_limit_new_conversations": "1000/minute",
                                  "web_limit_new_conversations_device": "1000/minute",
                                  **(marker.kwargs if marker else {})})
    app = create_app(settings)
    server, task, port = await serve_in_process(app)
    stub = StubRasa()
    app.state.rasa = stub
    app.state.desk.rasa = stub
    base_url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base_url, timeout=20) as http:
        yield Desk(http, app, stub, redis, settings, base_url)
    server.should_exit = True
    await asyncio.wait_for(task, 15)
    await redis.flushdb()
    await redis.aclose()
