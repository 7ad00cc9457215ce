"""The canary's routing (conversations/canary.py, conversations/rasa_client.py) on real sockets and real Redis: the
share of new conversations that the hash picks goes to the canary worker, sticky; conversations older than the canary
and every other one stay on the live workers; a canary worker that is down is failed over to the live ones; the
canary key removed (abort / promote) sends everything back to the live workers within the follower's interval."""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from conversations import canary, keys
from conversations.rasa_client import RasaClient, follow_rollout
from tests.channels.fake_rasa import FakeRasa, closed_port


def test_the_arm_is_sticky_fair_and_only_for_conversations_started_after_the_canary() -> None:
    running = canary.Canary(release=7, share=0.10, started_at=1000.0)
    ids = [f"conversation-{i}" for i in range(20_000)]
    arms = [canary.arm(running, cid, 1000.0) for cid in ids]
    assert arms == [canary.arm(running, cid, 2000.0) for cid in ids], "sticky: the same arm at every message"
    share = sum(canary.is_canary(a) for a in arms) / len(ids)
    assert 0.09 < share < 0.11, share
    assert set(arms) == {"7:canary", "7:control"}
    assert canary.arm(running, ids[0], 999.9) is None, "a conversation older than the canary keeps the live model"
    assert canary.arm(running, ids[0], None) is None and canary.arm(None, ids[0], 5000.0) is None
    # Another canary reshuffles (the same customers are not always the guinea pigs).
    other = canary.Canary(release=8, share=0.10, started_at=1000.0)
    picked = {cid for cid, a in zip(ids, arms) if canary.is_canary(a)}
    again = {cid for cid in ids if canary.is_canary(canary.arm(other, cid, 1000.0))}
    assert len(picked & again) < len(picked) / 4


@pytest.mark.parametrize("raw", [None, "", "not json", '{"release": 1}', '{"release": 1, "share": 0, '
                                 '"started_at": 1}', '{"release": 1, "share": 1.5, "started_at": 1}',
                                 '{"release": "x", "share": 0.1, "started_at": 1}', "[]"])
def test_an_unusable_canary_key_routes_nothing_to_the_candidate(raw: str | None) -> None:
    assert canary.parse(raw) is None


@pytest.fixture
async def workers() -> AsyncIterator[tuple[FakeRasa, FakeRasa, FakeRasa]]:
    live1, live2, cand = [await FakeRasa(name).start() for name in ("live1", "live2", "canary")]
    yield live1, live2, cand
    for w in (live1, live2, cand):
        await w.stop()


async def test_canary_conversations_go_to_the_canary_worker_until_the_key_is_gone(workers, redis_url: str) -> None:
    live1, live2, cand = workers
    client = RasaClient(f"{live1.url},{live2.url}", canary_url=cand.url)
    redis = aioredis.from_url(redis_url, decode_responses=True)
    follower = asyncio.create_task(follow_rollout(redis, client, interval_s=0.05))
    try:
        assert client.urls == [live1.url, live2.url] and client.workers == 2, "the canary is not in the rotation"
        assert client.canary is None
        running = canary.Canary(release=3, share=0.2, started_at=time.time())
        await redis.set(keys.canary(), running.to_json())
        await asyncio.sleep(0.3)
        assert client.canary == running
        ids = [f"c{i}" for i in range(60)]
        arms = {cid: canary.arm(client.canary, cid, time.time()) for cid in ids}
        for cid in ids:
            answer = await client.send_message(cid, "hi", canary=canary.is_canary(arms[cid]))
            expected = "canary" if canary.is_canary(arms[cid]) else ("live1" if client._index(cid) == 0 else "live2")
            assert answer[0]["text"] == f"{expected}:hi", cid
        assert {m["sender"] for m in cand.messages()} == {c for c, a in arms.items() if canary.is_canary(a)} != set()

        # The canary worker is down (refuses connections): its conversations are answered by the live workers.
        picked = next(c for c, a in arms.items() if canary.is_canary(a))
        down = RasaClient(f"{live1.url},{live2.url}", canary_url=f"http://127.0.0.1:{closed_port()}")
        down.set_canary(running)
        try:
            answer = await down.send_message(picked, "again", canary=True)
            assert answer[0]["text"] in ("live1:again", "live2:again")
            assert down.is_down(down.canary_index)
        finally:
            await down.close()

        # Aborted or promoted: the key is deleted and every gateway stops routing to the candidate.
        await redis.delete(keys.canary())
        await asyncio.sleep(0.3)
        assert client.canary is None
    finally:
        follower.cancel()
        await redis.delete(keys.canary())
        await redis.aclose()
        await client.close()


async def test_without_a_canary_worker_a_canary_key_changes_nothing(workers, redis_url: str) -> None:
    live1, _, _ = workers
    client = RasaClient(live1.url)
    client.set_canary(canary.Canary(release=3, share=0.5, started_at=0.0))
    try:
        assert client.canary is None
        assert (await client.send_message("x", "hi", canary=True))[0]["text"] == "live1:hi"
        assert client.canary_index is None
        closed = RasaClient(live1.url, canary_url=f"http://127.0.0.1:{closed_port()}")
        assert closed.canary_index == 1 and closed.urls == [live1.url]
        await closed.close()
    finally:
        await client.close()
