"""One client cannot fill the agents' queue: new handoffs count against the client that opened the conversation."""
from __future__ import annotations

import httpx
import pytest

from conversations import keys


@pytest.mark.desk_settings(web_limit_handoffs="2/minute")
async def test_a_client_opening_conversation_after_conversation_is_refused_a_third_handoff(desk) -> None:
    # The attack of the report: a new conversation and "I want a human" in each, in under a second.
    statuses = []
    for _ in range(3):
        desk.http.cookies.clear()  # a fresh "browser" each time, same address
        cid = (await desk.say("I want a human"))["conversation_id"]
        statuses.append((await desk.handoff(cid)).status_code)
    assert statuses == [200, 200, 429]
    assert await desk.redis.zcard(keys.queue()) == 2
    # Asking again in a conversation that already has its handoff is not a new one (idempotent, not counted).
    again = await desk.handoff(cid if statuses[-1] == 200 else (await desk.say("hi"))["conversation_id"])
    assert again.status_code in (200, 429)
    # Another client address is not affected.
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=desk.app, client=("10.9.9.9", 1000)),
                                 base_url="http://test") as other:
        r = await other.post("/api/webchat/messages", json={"conversation_id": None, "message_id": "m1",
                                                            "text": "I want a human"})
        assert (await desk.handoff(r.json()["conversation_id"])).status_code == 200


@pytest.mark.desk_settings(web_limit_handoffs="1/minute")
async def test_an_open_handoff_is_returned_again_without_counting(desk) -> None:
    cid = (await desk.say("I want a human"))["conversation_id"]
    first = await desk.handoff(cid)
    second = await desk.handoff(cid)
    assert first.status_code == second.status_code == 200
    assert first.json()["handoff_id"] == second.json()["handoff_id"]
