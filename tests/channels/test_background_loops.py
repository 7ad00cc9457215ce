"""The gateway's background loops stop when cancelled even if the CancelledError is swallowed during a Redis
command (redis-py can do that when a cancel lands mid-command). Before every loop checked ``stopping()``, such a
loop went on forever after its cancel: the process's shutdown (and the test run's event-loop teardown) hung."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from channels.app import _sla_loop
from conversations.rasa_client import RasaClient, follow_rollout
from conversations.redis_client import stopping
from handoff.webhook import WebhookPusher


class SwallowingRedis:
    """Every command waits a little and, if cancelled meanwhile, swallows the cancellation and answers."""

    def __init__(self) -> None:
        self.inside = asyncio.Event()
        self.swallowed = 0
        self.swallow = True

    async def _command(self, answer: Any) -> Any:
        self.inside.set()
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            if not self.swallow:
                raise
            self.swallowed += 1
        finally:
            self.inside.clear()
        return answer

    async def mget(self, *names: str) -> list[None]:
        return await self._command([None] * len(names))

    async def xrange(self, *args: Any, **kwargs: Any) -> list[Any]:
        return await self._command([])

    async def xreadgroup(self, *args: Any, **kwargs: Any) -> list[Any]:
        return await self._command([])

    async def xautoclaim(self, *args: Any, **kwargs: Any) -> list[Any]:
        return await self._command([b"0-0", [], []])

    async def xgroup_create(self, *args: Any, **kwargs: Any) -> bool:
        return await self._command(True)

    def __getattr__(self, name: str) -> Any:
        async def command(*args: Any, **kwargs: Any) -> Any:
            return await self._command(None)
        return command


class SwallowingDesk:
    def __init__(self, redis: SwallowingRedis) -> None:
        self.redis = redis

    async def check_sla(self) -> None:
        await self.redis._command(None)

    async def check(self) -> None:
        await self.redis._command(None)


def _loops(redis: SwallowingRedis) -> dict[str, Any]:
    desk = SwallowingDesk(redis)
    app = SimpleNamespace(state=SimpleNamespace(desk=desk, complaint_sla=desk))
    webhook = WebhookPusher(redis, "http://127.0.0.1:9/hook", 3, 0.1, 1.0, secret="s" * 32)  # type: ignore[arg-type]
    return {
        "rasa rollout follower": lambda: follow_rollout(redis, RasaClient("http://127.0.0.1:9", "t"), interval_s=0),
        "SLA loop": lambda: _sla_loop(app, 0),  # type: ignore[arg-type]
        "webhook pusher": lambda: webhook.run_forever(interval_s=0),
    }


@pytest.mark.parametrize("name", ["rasa rollout follower", "SLA loop", "webhook pusher"])
async def test_a_loop_whose_cancellation_was_swallowed_still_stops(name: str) -> None:
    redis = SwallowingRedis()
    task = asyncio.create_task(_loops(redis)[name]())
    await asyncio.wait_for(redis.inside.wait(), 5)
    task.cancel()  # once, while the loop is inside a command that swallows it
    done, _ = await asyncio.wait([task], timeout=3)
    try:
        assert redis.swallowed == 1
        assert done, f"the {name} kept running after its cancel"
    finally:  # a loop that failed this test must not hang the run
        redis.swallow = False
        task.cancel()
        await asyncio.wait([task], timeout=3)


async def test_stopping_is_false_until_the_task_is_cancelled() -> None:
    seen: list[bool] = []

    async def loop() -> None:
        while not stopping():
            seen.append(False)
            try:
                await asyncio.sleep(1)
            except asyncio.CancelledError:  # swallowed, as redis-py may
                seen.append(True)

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.wait_for(task, 2)
    assert seen == [False, True]
    assert stopping() is False
