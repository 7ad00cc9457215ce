"""Off hours (issue 13, item 5) against a real Redis, the fake Telegram API and the desk: a handoff outside service
hours opens a ticket and leaves the conversation to the bot, which keeps answering; the agent's answer to the ticket
reaches the customer on the channel they wrote from, through the relay and the outbox."""
from __future__ import annotations

import json
import random
from datetime import datetime

from conversations import keys
from conversations.store import BOT
from tests.channels.conftest import eventually
from tests.channels.test_customer_identity import TOKEN, gw, telegram, tg, wa  # noqa: F401 - fixtures

PASSWORD = "off-hours-agent-pw-0123"  # noqa: S105 - throw-away account in a throw-away Redis
NIGHT = "2026-11-23T23:30:00+08:00"  # Monday 23:30 in the store's time zone: outside service hours


async def login(http, username: str, role: str = "agent") -> dict[str, str]:
    await http.app.state.agents.create(username, PASSWORD, role)
    r = await http.post("/api/agent/login", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    http.cookies.clear()
    return {"Authorization": f"Bearer {r.json()['token']}"}


async def test_off_hours_handoff_opens_a_ticket_the_bot_keeps_answering_and_the_answer_reaches_telegram(
        gw, tg) -> None:  # noqa: F811 - fixtures
    gw.app.state.clock.set(datetime.fromisoformat(NIGHT))
    redis, chat_id = gw.app.state.redis, random.randint(10**8, 10**9)
    await telegram(gw, tg, chat_id, "my parcel never arrived")
    cid = (await redis.get(keys.channel_user("telegram", str(chat_id)))).decode()
    body = {"conversation_id": cid, "channel": "telegram", "reason_code": "explicit_request", "priority": 3,
            "language": "en", "customer": {"id": None, "tier": "regular", "verified": False},
            "frustration": {"score": 10, "curve": []}, "signals": {}, "summary": None}
    r = await gw.post("/internal/handoffs", json=body, headers={"X-Internal-Token": TOKEN})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == "ticket" and out["in_service_hours"] is False and out["ticket_id"].startswith("T2026")
    ticket = await redis.hgetall(keys.ticket(out["ticket_id"]))
    assert ticket[b"reason"] == b"outside_hours" and ticket[b"conversation_id"].decode() == cid

    # The bot stays available: the owner is the bot again, the next question reaches it and is answered.
    assert await gw.app.state.store.owner(cid) == BOT
    calls = len(gw.bot.calls)
    await telegram(gw, tg, chat_id, "how long do I have to return something?")
    assert gw.bot.calls[calls]["text"] == "how long do I have to return something?"
    assert tg.texts_to(chat_id)[-1] == "echo:how long do I have to return something?"
    # A second request for a person finds the same ticket (idempotent per conversation).
    again = await gw.post("/internal/handoffs", json=body, headers={"X-Internal-Token": TOKEN})
    assert again.json()["ticket_id"] == out["ticket_id"]

    # In the morning an agent takes the ticket: the agent owns the conversation, the answer arrives on Telegram.
    headers = await login(gw, f"anna{chat_id}")
    queue = (await gw.get("/api/agent/queue", headers=headers)).json()
    row = next(r for r in queue if r["conversation_id"] == cid)
    assert row["ticket_id"] == out["ticket_id"]
    assert (await gw.post(f"/api/agent/handoffs/{out['handoff_id']}/claim", headers=headers)).status_code == 200
    assert (await gw.app.state.store.owner(cid)).startswith("agent:")
    answer = "Hi, Anna here: we re-sent your parcel today."
    r = await gw.post(f"/api/agent/handoffs/{out['handoff_id']}/messages", headers=headers, json={"text": answer})
    assert r.status_code in (200, 201), r.text
    await eventually(lambda: answer in tg.texts_to(chat_id))
    assert tg.texts_to(chat_id).count(answer) == 1
    # While the agent owns it, the bot is not asked.
    calls = len(gw.bot.calls)
    before = len(tg.texts_to(chat_id))
    r = await gw.post("/api/channels/telegram/webhook", content=json.dumps(tg.text_update(chat_id, "thanks!")),
                      headers=tg.headers())
    assert r.status_code == 200
    assert len(gw.bot.calls) == calls and len(tg.texts_to(chat_id)) <= before + 1
