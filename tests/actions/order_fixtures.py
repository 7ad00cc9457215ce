"""Helpers for the order-flow action tests: a real SQLite order database, trackers, and a runner for actions."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import verification
from actions.orders.db import make_engine, make_session_factory, upgrade
from actions.orders.policy import StorePolicy, load_policy
from actions.orders.sql_service import SqlOrderService
from actions.settings import ActionServerSettings as OrderSettings
from bot.shared.paths import REPO_ROOT
from tests.actions.orders.builders import LAST4, PHONE, Scenario

ROOT = REPO_ROOT
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
__all__ = ["LAST4", "NOW", "PHONE", "Env", "domain", "run", "tracker", "user"]


def domain() -> dict[str, Any]:
    """The real domain (forms and their required slots), as the action server receives it."""
    return yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))


def user(intent: str = "order_status", text: str = "x", metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"event": "user", "text": text, "metadata": metadata or {},
            "parse_data": {"intent": {"name": intent, "confidence": 0.9}, "entities": []}}


def tracker(slots: dict[str, Any], events: list[dict[str, Any]] | None = None,
            active_loop: str | None = None, sender: str = "c1") -> Tracker:
    """A tracker whose last user message is the last ``user`` event; slot candidates go at the end of events."""
    events = events if events is not None else [user()]
    latest = next((e["parse_data"] | {"text": e["text"], "metadata": e.get("metadata")}
                   for e in reversed(events) if e["event"] == "user"), {})
    all_slots = {"language": "en"} | slots
    return Tracker(sender, all_slots, latest, events, False, None, {"name": active_loop} if active_loop else {},
                   "action_listen")


def remember(sender: str, verified: dict[str, str]) -> None:
    """Server-side verification records, as if ``sender``'s conversation had verified these orders."""
    async def go() -> None:
        for number, digits in verified.items():
            await verification.store().remember(sender, number, digits)

    asyncio.run(go())


def run(action: Action, slots: dict[str, Any], events: list[dict[str, Any]] | None = None,
        active_loop: str | None = None, recorded: bool = True, sender: str = "c1",
        ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(events returned, messages uttered) of one action run. With ``recorded``, orders the ``verified_orders``
    slot names were verified earlier in this conversation (their server-side records exist); without, the slot is
    a forgery."""
    dispatcher = CollectingDispatcher()
    built = tracker(slots, events, active_loop, sender)

    async def go() -> list[dict[str, Any]]:
        if recorded:
            for number, digits in (slots.get("verified_orders") or {}).items():
                await verification.store().remember(built.sender_id, number, digits)
        return await action.run(dispatcher, built, domain())

    result = asyncio.run(go())
    return result, dispatcher.messages


def responses(messages: list[dict[str, Any]]) -> list[str]:
    return [m["response"] for m in messages]


@dataclass
class Env:
    """A migrated SQLite store with scenario builders, wired into the action module."""

    scenario: Scenario
    service: SqlOrderService
    policy: StorePolicy

    def session(self) -> Any:
        return self.scenario.factory()


@pytest.fixture
def env(tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    # Verification records and failure windows live in a real Redis, emptied for every test.
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    monkeypatch.setenv("REDIS_URL", redis_url)
    verification.reset()
    verification.flow_settings()  # read now: a test may unset REDIS_URL for other stores later
    settings = OrderSettings(_env_file=None)  # type: ignore[call-arg]
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}", settings)
    upgrade(engine)
    policy = load_policy()
    factory = make_session_factory(engine)
    service = SqlOrderService(factory, policy, clock=lambda: NOW)
    verification.set_order_service(service)
    verification.set_clock(lambda: NOW)
    try:
        yield Env(Scenario(factory, policy, NOW), service, policy)
    finally:
        verification.set_order_service(None)
        verification.set_clock(None)
        verification.reset()
        engine.dispose()
