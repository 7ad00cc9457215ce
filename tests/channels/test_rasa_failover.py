"""Rasa worker fail-over on real sockets: one fake worker alive, the other a closed port (a killed worker).

Before the fix every conversation hashed to the dead worker got "bot unavailable" for as long as it was down; now it
is served by the next worker, the dead one is skipped for a while and probed again, and a request a worker accepted
is never sent a second time (it could be answered twice).
"""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from conversations.rasa_client import RasaClient, RasaError
from tests.channels.fake_rasa import FakeRasa, closed_port


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _pinned(client: RasaClient, index: int, count: int = 5) -> Iterator[str]:
    """Conversation ids the hash assigns to worker ``index``."""
    found = 0
    for i in range(10_000):
        cid = f"conv-{index}-{i}"
        if client._index(cid) == index:
            yield cid
            found += 1
            if found == count:
                return


@pytest.fixture
async def live() -> Iterator[FakeRasa]:
    worker = await FakeRasa("live").start()
    yield worker
    await worker.stop()


async def test_conversations_of_a_dead_worker_are_served_by_the_next_one(live: FakeRasa) -> None:
    dead_port = closed_port()
    clock = Clock()
    client = RasaClient(f"http://127.0.0.1:{dead_port},{live.url}", down_s=5.0, clock=clock)
    try:
        pinned_to_dead = list(_pinned(client, 0))
        pinned_to_live = list(_pinned(client, 1))
        for cid in pinned_to_dead + pinned_to_live:
            answer = await client.send_message(cid, "hello")
            assert answer == [{"recipient_id": cid, "text": "live:hello"}]
        assert client.is_down(0) and not client.is_down(1)
        # Each message reached Rasa exactly once.
        assert sorted(m["sender"] for m in live.messages()) == sorted(pinned_to_dead + pinned_to_live)

        # The worker comes back on its port; once the pause is over the next request probes it and its
        # conversations return to it.
        back = await FakeRasa("back").start(dead_port)
        try:
            await client.send_message(pinned_to_dead[0], "still down for us")
            assert back.messages() == []  # inside the pause: not tried
            clock.now += 5.1
            answer = await client.send_message(pinned_to_dead[0], "probe")
            assert answer[0]["text"] == "back:probe"
            assert not client.is_down(0)
            assert (await client.send_message(pinned_to_live[0], "x"))[0]["text"] == "live:x"
        finally:
            await back.stop()
    finally:
        await client.close()


async def test_all_workers_down_raises_with_nothing_delivered() -> None:
    client = RasaClient(f"http://127.0.0.1:{closed_port()},http://127.0.0.1:{closed_port()}")
    try:
        with pytest.raises(RasaError) as info:
            await client.send_message("c1", "hello")
        assert info.value.delivered is False
        assert client.is_down(0) and client.is_down(1)
        # Both marked down, both still tried (last resort) rather than failing without asking anyone.
        with pytest.raises(RasaError, match="ConnectError, ConnectError"):
            await client.send_message("c1", "hello again")
    finally:
        await client.close()


async def test_a_worker_that_accepted_then_timed_out_is_not_resent(live: FakeRasa) -> None:
    slow = await FakeRasa("slow").start()
    slow.mode, slow.hang_s = "hang", 2.0
    client = RasaClient(f"{slow.url},{live.url}", timeout_s=0.3)
    try:
        cid = next(_pinned(client, 0))
        with pytest.raises(RasaError, match="timed out") as info:
            await client.send_message(cid, "cancel my order")
        assert info.value.delivered is True
        assert len(slow.messages()) == 1
        assert live.messages() == []  # not sent a second time: the slow worker may still answer it
        assert not client.is_down(0)  # slow is not down
    finally:
        await client.close()
        await slow.stop()


async def test_a_worker_dying_mid_request_is_not_resent_but_skipped_afterwards(live: FakeRasa) -> None:
    dying = await FakeRasa("dying").start()
    dying.mode = "drop"
    client = RasaClient(f"{dying.url},{live.url}")
    try:
        cid = next(_pinned(client, 0))
        with pytest.raises(RasaError) as info:
            await client.send_message(cid, "yes")
        assert info.value.delivered is True
        assert len(dying.messages()) == 1 and live.messages() == []
        assert client.is_down(0)
        answer = await client.send_message(cid, "yes again")
        assert answer[0]["text"] == "live:yes again"
        assert len(dying.messages()) == 1
    finally:
        await client.close()
        await dying.stop()


async def test_reads_and_appends_fail_over_too(live: FakeRasa) -> None:
    live.tracker = {"sender_id": "x", "events": [{"event": "user", "text": "hi"}]}
    client = RasaClient(f"http://127.0.0.1:{closed_port()},{live.url}")
    try:
        cid = next(_pinned(client, 0))
        assert (await client.get_tracker(cid))["events"][0]["text"] == "hi"
        await client.append_events(cid, [{"event": "rewind"}])
        assert live.tracker["events"][-1] == {"event": "rewind"}
    finally:
        await client.close()


async def test_a_draining_worker_gets_no_new_messages_while_another_answers(live: FakeRasa, redis_url: str) -> None:
    """A deploy drains the worker about to load a model (workbench/releases.py): the gateways follow the Redis key
    and send its conversations to the next worker until the key is gone; in-flight counts go back to zero."""
    import asyncio

    import redis.asyncio as aioredis

    from conversations import keys
    from conversations.rasa_client import follow_rollout

    other = await FakeRasa("other").start()
    client = RasaClient(f"{other.url},{live.url}")
    redis = aioredis.from_url(redis_url, decode_responses=True)
    follower = asyncio.create_task(follow_rollout(redis, client, interval_s=0.05))
    try:
        pinned = list(_pinned(client, 0, 3))
        await redis.set(keys.rasa_draining(), f'["{other.url}"]', ex=60)
        await asyncio.sleep(0.3)
        for cid in pinned:
            assert await client.send_message(cid, "hi") == [{"recipient_id": cid, "text": "live:hi"}]
        assert other.messages() == [] and client.inflight(0) == client.inflight(1) == 0
        await redis.delete(keys.rasa_draining())
        await asyncio.sleep(0.3)
        assert await client.send_message(pinned[0], "back") == [{"recipient_id": pinned[0], "text": "other:back"}]
    finally:
        follower.cancel()
        await redis.delete(keys.rasa_draining())
        await redis.aclose()
        await client.close()
        await other.stop()
