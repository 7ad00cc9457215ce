"""Helpers for the messaging-channel tests: a recording bot stub and a gateway with channels on a real Redis."""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx

from channels.app import create_app
from channels.settings import ChannelSettings
from conversations.rasa_client import RasaError
from conversations.settings import GatewaySettings


class RecordingBot:
    """Stands in for Rasa: records every message and answers ``reply(text)`` (default: an echo with a button)."""
    canary = None  # no canary running (RasaClient.canary)

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.fail = False
        self.delay_s = 0.0
        self.reply: Callable[[str], list[dict[str, Any]]] = lambda text: [
            {"text": f"echo:{text[:40]}", "buttons": [{"title": "Talk to a person", "payload": "/request_human"}]}]

    async def send_message(self, sender_id: str, text: str, metadata: dict | None = None, *,
                           canary: bool = False) -> list[dict]:
        self.calls.append({"sender": sender_id, "text": text, "metadata": metadata})
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail:
            raise RasaError("Rasa unreachable: ConnectError", delivered=False)
        return self.reply(text)

    async def get_tracker(self, sender_id: str) -> dict[str, Any]:
        return {"events": []}

    async def append_events(self, sender_id: str, events: list[dict]) -> None:
        return None

    async def close(self) -> None:
        return None


@asynccontextmanager
async def gateway(redis_url: str, channel_settings: ChannelSettings, fakes: dict[str, Any],
                  bot: RecordingBot | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway app (lifespan running: relay and outbox workers) whose platform clients talk to ``fakes``
    (channel name -> ASGI app of the fake platform). Yields an HTTP client with ``.app`` and ``.bot``."""
    app = create_app(GatewaySettings(redis_url=redis_url), channel_settings)
    bot = bot or RecordingBot()
    async with app.router.lifespan_context(app):
        app.state.rasa = bot
        for name, fake_app in fakes.items():
            channel = app.state.channels[name]
            base_url = str(channel.http.base_url)
            await channel.http.aclose()
            channel.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=fake_app), base_url=base_url)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as http:
            http.app = app  # type: ignore[attr-defined]
            http.bot = bot  # type: ignore[attr-defined]
            yield http


async def eventually(check: Callable[[], Any], timeout_s: float = 5.0) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)
