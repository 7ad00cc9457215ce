"""Agent desk against real Redis: sessions, atomic claims, ownership of replies, relay over SSE, hand back, close,
CSAT, transfer, rate limiting, SLA alerts, audit, webhook, canned answers and the admin command."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import httpx
import pytest

from bot.shared.context_tracker import tracker_part
from bot.shared.paths import REPO_ROOT
from conversations import keys
from handoff.webhook import WebhookPusher
from tools.sse_client import sse_events

ROOT = REPO_ROOT
WEBHOOK_SECRET = "test-webhook-secret-0123456789"  # noqa: S105 - test secret


async def _queued(desk, text: str = "I want a human", **overrides):
    cid = (await desk.say(text))["conversation_id"]
    r = await desk.handoff(cid, **overrides)
    assert r.status_code == 200, r.text
    return cid, r.json()["handoff_id"]


# ---------------------------------------------------------------- sessions


async def test_login_rejects_wrong_password_and_forged_or_expired_tokens(desk) -> None:
    alice = await desk.agent("alice")
    r = await desk.http.post("/api/agent/login", json={"username": "alice", "password": "wrong password"})
    assert r.status_code == 401
    r = await desk.http.post("/api/agent/login", json={"username": "nobody", "password": desk.password})
    assert r.status_code == 401
    assert (await desk.http.get("/api/agent/me", headers=alice.headers)).json()["username"] == "alice"
    forged = {"Authorization": "Bearer " + alice.token[:-2] + "xx"}
    assert (await desk.http.get("/api/agent/queue", headers=forged)).status_code == 401
    assert (await desk.http.get("/api/agent/queue")).status_code == 401
    # Expire the session server-side (what the TTL does after HANDOFF_SESSION_TTL_S of inactivity).
    (session_key,) = [k async for k in desk.redis.scan_iter(match=keys.session("*"))]
    await desk.redis.pexpire(session_key, 1)
    await asyncio.sleep(0.05)
    r = await desk.http.get("/api/agent/me", headers=alice.headers)
    assert r.status_code == 401 and "expired" in r.json()["detail"]


async def test_passwords_are_stored_salted_and_hashed(desk) -> None:
    a = await desk.agent("alice")
    b = await desk.agent("bob")
    stored_a = (await desk.redis.hget(keys.agent(a.account.id), "password")).decode()
    stored_b = (await desk.redis.hget(keys.agent(b.account.id), "password")).decode()
    assert desk.password not in stored_a and stored_a.startswith("scrypt$") and stored_a != stored_b
    assert not [k async for k in desk.redis.scan_iter(match=keys.session(a.token))], "raw token used as key"


async def test_logout_ends_the_session(desk) -> None:
    alice = await desk.agent("alice")
    assert (await desk.http.post("/api/agent/logout", headers=alice.headers)).status_code == 200
    assert (await desk.http.get("/api/agent/me", headers=alice.headers)).status_code == 401


# ---------------------------------------------------------------- claims


async def test_concurrent_claims_give_the_conversation_to_exactly_one_agent(desk) -> None:
    agents = [await desk.agent(f"agent{i}") for i in range(8)]
    cid, hid = await _queued(desk)
    results = await asyncio.gather(*[
        desk.http.post(f"/api/agent/handoffs/{hid}/claim", headers=a.headers) for a in agents])
    codes = sorted(r.status_code for r in results)
    assert codes == [200] + [409] * 7
    winner = agents[[r.status_code for r in results].index(200)]
    assert (await desk.redis.get(keys.owner(cid))).decode() == f"agent:{winner.account.id}"
    assert await desk.redis.zcard(keys.queue()) == 0
    owners = [await desk.redis.scard(keys.agent_active(a.account.id)) for a in agents]
    assert sorted(owners) == [0] * 7 + [1]


async def test_concurrency_limit_per_agent(desk) -> None:
    alice = await desk.agent("alice", max_concurrent=1)
    _, first = await _queued(desk)
    _, second = await _queued(desk)
    assert (await desk.http.post(f"/api/agent/handoffs/{first}/claim", headers=alice.headers)).status_code == 200
    r = await desk.http.post(f"/api/agent/handoffs/{second}/claim", headers=alice.headers)
    assert r.status_code == 409 and "limit" in r.json()["detail"]
    assert await desk.redis.zscore(keys.queue(), second) is not None


# ---------------------------------------------------------------- relay


async def test_agent_reply_reaches_the_customer_over_sse_within_a_second(desk) -> None:
    alice = await desk.agent("alice")
    cid, hid = await _queued(desk)
    await desk.http.post(f"/api/agent/handoffs/{hid}/claim", headers=alice.headers)
    history = (await desk.http.get(f"/api/webchat/conversations/{cid}/messages")).json()["messages"]
    received: asyncio.Queue = asyncio.Queue()

    async def listen() -> None:
        url = f"/api/webchat/conversations/{cid}/events?after={history[-1]['id']}"
        async for event in sse_events(desk.http, url):
            await received.put((time.perf_counter(), event))

    listener = asyncio.create_task(listen())
    await asyncio.sleep(0.3)
    text = "<script>alert('x')</script> Hi, I'm Alice. Let me check your order."
    sent_at = time.perf_counter()
    r = await desk.http.post(f"/api/agent/handoffs/{hid}/messages", headers=alice.headers,
                             json={"text": text, "message_id": "m1"})
    assert r.status_code == 200
    got_at, event = await asyncio.wait_for(received.get(), 5)
    listener.cancel()
    assert event["data"]["role"] == "agent" and event["data"]["text"] == text  # stored verbatim, escaped by pages
    assert event["id"].split("|")[0] == r.json()["id"]  # <message id>|<signals id> (handoff/presence.py)
    assert got_at - sent_at < 1.0


async def test_customer_messages_reach_the_agent_live_and_sse_resumes_after_reconnect(desk) -> None:
    alice = await desk.agent("alice")
    cid, hid = await _queued(desk)
    await desk.http.post(f"/api/agent/handoffs/{hid}/claim", headers=alice.headers)
    seen = []

    async def listen(url: str, headers=None, stop_after: int = 1) -> None:
        async for event in sse_events(desk.http, url, headers):
            if event.get("event") == "message" and event["data"]["role"] == "customer":
                seen.append(event)
                if len(seen) >= stop_after:
                    return

    history = (await desk.http.get(f"/api/webchat/conversations/{cid}/messages")).json()["messages"]
    url = f"/api/agent/events?handoff_id={hid}&after=|{history[-1]['id']}"
    task = asyncio.create_task(listen(url, alice.headers, 1))
    await asyncio.sleep(0.3)
    await desk.say("my order never arrived", cid)
    await asyncio.wait_for(task, 5)
    last_id = seen[-1]["id"]
    assert seen[-1]["data"]["text"] == "my order never arrived"
    # Disconnected: two messages arrive; reconnecting with Last-Event-ID yields exactly those two, once.
    await desk.say("hello?", cid)
    await desk.say("still there?", cid)
    seen.clear()
    task = asyncio.create_task(listen(f"/api/agent/events?handoff_id={hid}",
                                      {**alice.headers, "Last-Event-ID": last_id}, 2))
    await asyncio.wait_for(task, 5)
    assert [e["data"]["text"] for e in seen] == ["hello?", "still there?"]


async def test_replying_to_a_conversation_one_does_not_own_is_refused(desk) -> None:
    alice = await desk.agent("alice")
    bob = await desk.agent("bob")
    cid, hid = await _queued(desk)
    r = await desk.http.post(f"/api/agent/handoffs/{hid}/messages", headers=bob.headers, json={"text": "hi"})
    assert r.status_code == 403  # still queued: nobody owns it
    await desk.http.post(f"/api/agent/handoffs/{hid}/claim", headers=alice.headers)
    r = await desk.http.post(f"/api/agent/handoffs/{hid}/messages", headers=bob.headers, json={"text": "hi"})
    assert r.status_code == 403 and "do not own" in r.json()["detail"]
    history = (await desk.http.get(f"/api/webchat/conversations/{cid}/messages")).json()["messages"]
    assert not [m for m in history if m["role"] == "agent"]


async def test_agent_retry_with_the_same_message_id_is_stored_once(desk) -> None:
    alice = await desk.agent("alice")
    cid, hid = await _queued(desk)
    await desk.http.post(f"/api/agent/handoffs/{hid}/claim", headers=alice.headers)
    body = {"text": "one moment please", "message_id": "retry-1"}
    first = await desk.http.post(f"/api/agent/handoffs/{hid}/messages", headers=alice.headers, json=body)
    again = await desk.http.post(f"/api/agent/handoffs/{hid}/messages", headers=alice.headers, json=body)
    assert again.json() == {"id": first.json()["id"], "duplicate": True}
    history = (await desk.http.get(f"/api/webchat/conversations/{cid}/messages")).json()["messages"]
    assert [m["text"] for m in history if m["role"] == "agent"] == ["one moment please"]


async def test_100kb_messages_are_refused_politely_from_both_sides(desk) -> None:
    alice = await desk.agent("alice")
    cid, hid = await _queued(desk)
    await desk.http.post(f"/api/agent/handoffs/{hid}/claim", headers=alice.headers)
    big = "x" * 100_000
    r = await desk.http.post("/api/webchat/messages", json={"conversation_id": cid, "message_id": "big",
                                                            "text": big})
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    r = await desk.http.post(f"/api/agent/handoffs/{hid}/messages", headers=alice.headers, json={"text": big})
    assert r.status_code == 413
    r = await desk.http.post(f"/api/agent/handoffs/{hid}/messages", headers=alice.headers,
                             json={"text": big + "y"})
    assert r.status_code == 413  # over WEB_MAX_BODY_BYTES: refused before the body is even read


async def test_hand_back_returns_the_conversation_to_the_bot_with_its_tracker(desk) -> None:
    alice = await desk.agent("alice")
    cid, hid = await _queued(desk)
    await desk.http.post(f"/api/agent/handoffs/{hid}/claim", headers=alice.headers)
    r = await desk.http.post(f"/api/agent/handoffs/{hid}/handback", headers=alice.headers)
    assert r.status_code == 200 and r.json()["status"] == "handed_back"
    assert await desk.redis.get(keys.owner(cid)) is None
    assert desk.rasa.events == [{"sender": cid, "events": [
        {"event": "resume"}, {"event": "slot", "name": "handoff_active", "value": False}]}]
    reply = await desk.say("what is the return window?", cid)
    assert [m["text"] for m in reply["messages"]] == ["bot:what is the return window?"]
    r = await desk.http.post(f"/api/agent/handoffs/{hid}/messages", headers=alice.headers, json={"text": "hi"})
    assert r.status_code == 409 and "closed" in r.json()["detail"]
    # A new handoff of the same conversation is a new case.
    again = (await desk.handoff(cid)).json()
    assert again["handoff_id"] != hid


async def test_close_asks_for_csat_and_a_low_rating_reopens_to_a_supervisor(desk) -> None:
    alice = await desk.agent("alice")
    cid, hid = await _queued(desk)
    await desk.http.post(f"/api/agent/handoffs/{hid}/claim", headers=alice.headers)
    r = await desk.http.post(f"/api/agent/handoffs/{hid}/close", headers=alice.headers, json={"resolution": "nope"})
    assert r.status_code == 422
    r = await desk.http.post(f"/api/agent/handoffs/{hid}/close", headers=alice.headers,
                             json={"resolution": "resolved"})
    assert r.status_code == 200 and r.json()["resolution"] == "resolved"
    history = (await desk.http.get(f"/api/webchat/conversations/{cid}/messages")).json()["messages"]
    question = history[-1]
    assert question["role"] == "system" and len(question["buttons"]) == 5
    r = await desk.http.post(f"/api/agent/handoffs/{hid}/messages", headers=alice.headers, json={"text": "bye"})
    assert r.status_code == 409

    calls = len(desk.rasa.calls)
    answer = await desk.say(question["buttons"][1]["payload"], cid)  # 2 stars
    assert len(desk.rasa.calls) == calls, "the CSAT answer went to the bot"
    assert "supervisor" in answer["messages"][0]["text"]
    h = await desk.app.state.desk.get(hid)
    assert h["csat"] == "2" and h["status"] == "queued" and h["supervisor_only"] == "1"
    assert (await desk.redis.get(keys.owner(cid))) == b"queue"
    r = await desk.http.post(f"/api/agent/handoffs/{hid}/claim", headers=alice.headers)
    assert r.status_code == 403
    sue = await desk.agent("sue", role="supervisor")
    assert (await desk.http.post(f"/api/agent/handoffs/{hid}/claim", headers=sue.headers)).status_code == 200


async def test_good_rating_is_recorded_and_not_asked_twice(desk) -> None:
    alice = await desk.agent("alice")
    cid, hid = await _queued(desk)
    await desk.http.post(f"/api/agent/handoffs/{hid}/claim", headers=alice.headers)
    await desk.http.post(f"/api/agent/handoffs/{hid}/close", headers=alice.headers, json={"resolution": "resolved"})
    answer = await desk.say('/csat{"stars":5}', cid)
    assert answer["messages"][0]["text"].startswith("Thank you")
    assert (await desk.app.state.desk.get(hid))["status"] == "closed"
    again = await desk.say('/csat{"stars":1}', cid)
    assert "no service waiting" in again["messages"][0]["text"]
    assert (await desk.app.state.desk.get(hid))["csat"] == "5"


async def test_transfer_and_supervisor_reassign(desk) -> None:
    alice = await desk.agent("alice")
    bob = await desk.agent("bob")
    sue = await desk.agent("sue", role="supervisor")
    cid, hid = await _queued(desk)
    r = await desk.http.post(f"/api/agent/handoffs/{hid}/transfer", headers=alice.headers,
                             json={"to_agent_id": bob.account.id})
    assert r.status_code == 403  # alice does not own it
    await desk.http.post(f"/api/agent/handoffs/{hid}/claim", headers=alice.headers)
    r = await desk.http.post(f"/api/agent/handoffs/{hid}/transfer", headers=alice.headers,
                             json={"to_agent_id": bob.account.id})
    assert r.status_code == 200 and r.json()["agent_id"] == bob.account.id
    assert (await desk.http.post(f"/api/agent/handoffs/{hid}/messages", headers=alice.headers,
                                 json={"text": "x"})).status_code == 403
    assert (await desk.http.post(f"/api/agent/handoffs/{hid}/messages", headers=bob.headers,
                                 json={"text": "Bob here"})).status_code == 200
    assert await desk.redis.smembers(keys.agent_active(alice.account.id)) == set()
    r = await desk.http.post(f"/api/agent/handoffs/{hid}/reassign", headers=bob.headers,
                             json={"to_agent_id": alice.account.id})
    assert r.status_code == 403  # agents cannot reassign
    r = await desk.http.post(f"/api/agent/handoffs/{hid}/reassign", headers=sue.headers,
                             json={"to_agent_id": alice.account.id})
    assert r.status_code == 200
    assert (await desk.redis.get(keys.owner(cid))).decode() == f"agent:{alice.account.id}"
    # A supervisor may also assign straight from the queue.
    cid2, hid2 = await _queued(desk)
    r = await desk.http.post(f"/api/agent/handoffs/{hid2}/reassign", headers=sue.headers,
                             json={"to_agent_id": bob.account.id})
    assert r.status_code == 200 and await desk.redis.zscore(keys.queue(), hid2) is None


# ---------------------------------------------------------------- customer floods


async def test_fifty_messages_a_second_are_all_kept_and_the_bot_is_rate_limited(desk) -> None:
    cid = (await desk.say("hello"))["conversation_id"]
    calls = len(desk.rasa.calls)
    replies = await asyncio.gather(*[desk.say(f"spam {i}", cid) for i in range(50)])
    history = (await desk.http.get(f"/api/webchat/conversations/{cid}/messages")).json()["messages"]
    customer_texts = [m["text"] for m in history if m["role"] == "customer"]
    assert sorted(customer_texts[1:]) == sorted(f"spam {i}" for i in range(50))  # nothing lost, nothing doubled
    answered = len(desk.rasa.calls) - calls
    assert answered <= desk.settings.web_rate_limit_messages * 2  # the burst may straddle two windows
    polite = [m for r in replies for m in r["messages"] if m["role"] == "system"]
    assert 1 <= len(polite) <= 2 and "quickly" in polite[0]["text"]


# ---------------------------------------------------------------- SLA, alerts, audit


async def test_pickup_sla_raises_one_alert_for_supervisors_and_a_claim_clears_it(desk) -> None:
    alice = await desk.agent("alice")
    sue = await desk.agent("sue", role="supervisor")
    cid, hid = await _queued(desk)
    service = desk.app.state.desk
    assert await service.check_sla() == []
    desk.app.state.clock.advance(desk.settings.handoff_sla_pickup_s + 2)
    raised = await service.check_sla()
    assert len(raised) == 1 and await service.check_sla() == []
    assert (await desk.http.get("/api/agent/alerts", headers=alice.headers)).status_code == 403
    alerts = (await desk.http.get("/api/agent/alerts", headers=sue.headers)).json()
    assert [(a["kind"], a["handoff_id"]) for a in alerts] == [("sla_pickup", hid)]
    assert desk.settings.handoff_sla_pickup_s < alerts[0]["wait_s"] <= desk.settings.handoff_sla_pickup_s + 3
    await desk.http.post(f"/api/agent/handoffs/{hid}/claim", headers=alice.headers)
    assert (await desk.http.get("/api/agent/alerts", headers=sue.headers)).json() == []


async def test_no_sla_alert_outside_service_hours(desk) -> None:
    await desk.agent("alice")
    desk.set_clock("2026-11-23T22:00:00+08:00")
    await _queued(desk)
    desk.set_clock("2026-11-23T23:00:00+08:00")
    assert await desk.app.state.desk.check_sla() == []


async def test_every_agent_action_is_audited(desk) -> None:
    alice = await desk.agent("alice")
    sue = await desk.agent("sue", role="supervisor")
    _, hid = await _queued(desk)
    await desk.http.get(f"/api/agent/handoffs/{hid}", headers=alice.headers)
    await desk.http.post(f"/api/agent/handoffs/{hid}/claim", headers=alice.headers)
    await desk.http.post(f"/api/agent/handoffs/{hid}/messages", headers=alice.headers, json={"text": "hi"})
    await desk.http.post(f"/api/agent/handoffs/{hid}/close", headers=alice.headers, json={"resolution": "resolved"})
    log = (await desk.http.get("/api/agent/audit", headers=sue.headers)).json()
    alice_actions = [e["action"] for e in reversed(log) if e["agent"] == "alice"]
    assert alice_actions == ["login", "view", "claim", "reply", "close"]
    assert json.loads(next(e for e in log if e["action"] == "close")["detail"]) == {"resolution": "resolved"}


# ---------------------------------------------------------------- webhook, canned answers, admin


async def test_webhook_retries_until_delivered_and_never_blocks_the_handoff(desk) -> None:
    received = []
    attempts = {"n": 0}

    def helpdesk(request: httpx.Request) -> httpx.Response:
        attempts["n"] += 1
        if attempts["n"] < 3:
            return httpx.Response(503)
        received.append(json.loads(request.content))
        return httpx.Response(201)

    pusher = WebhookPusher(desk.redis, "http://helpdesk.test/hook", attempts=5, backoff_s=0, timeout_s=1,
                           http=httpx.AsyncClient(transport=httpx.MockTransport(helpdesk)),
                           secret=WEBHOOK_SECRET)
    desk.app.state.webhook = pusher
    cid, hid = await _queued(desk)
    assert (await desk.redis.hget(keys.handoff(hid), "webhook_status")) == b"pending"
    for _ in range(3):
        await pusher.run_once()
    assert attempts["n"] == 3
    assert received[0]["handoff_id"] == hid and received[0]["schema_version"] == "1.3.0"
    assert "conversation_id" not in received[0] and received[0]["conversation_ref"].startswith("cr_")
    assert (await desk.redis.hget(keys.handoff(hid), "webhook_status")) == b"delivered"
    assert await desk.redis.xlen(keys.webhook_outbox()) == 0


async def test_unreachable_webhook_is_parked_as_failed(desk) -> None:
    pusher = WebhookPusher(desk.redis, "http://127.0.0.1:9/hook", attempts=2, backoff_s=0, timeout_s=0.5,
                           secret=WEBHOOK_SECRET)
    desk.app.state.webhook = pusher
    _, hid = await _queued(desk)
    await pusher.run_once()
    await pusher.run_once()
    await pusher.close()
    assert (await desk.redis.hget(keys.handoff(hid), "webhook_status")) == b"failed"
    assert await desk.redis.xlen(keys.webhook_outbox()) == 0


async def test_canned_answers_come_from_the_kb_in_the_conversation_language(desk) -> None:
    alice = await desk.agent("alice")
    en = (await desk.http.get("/api/agent/canned", params={"lang": "en", "q": "return window"},
                              headers=alice.headers)).json()
    zh = (await desk.http.get("/api/agent/canned", params={"lang": "zh", "q": "退货"}, headers=alice.headers)).json()
    assert en and all(not any("\u4e00" <= ch <= "\u9fff" for ch in a["answer"]) for a in en)
    assert zh and all(any("\u4e00" <= ch <= "\u9fff" for ch in a["answer"]) for a in zh)
    assert "returns-no-reason-window" in {a["id"] for a in en}


async def test_admin_command_creates_the_first_supervisor(desk) -> None:
    env = {**os.environ, "REDIS_URL": desk.settings.redis_url, "HANDOFF_ADMIN_PASSWORD": "s3cret-enough",
           "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "handoff.admin", "create-supervisor", "--username", "boss"]
    done = await asyncio.to_thread(subprocess.run, command,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "created supervisor boss" in done.stdout
    again = await asyncio.to_thread(subprocess.run, command,
                           env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "taken" in again.stderr
    r = await desk.http.post("/api/agent/login", json={"username": "boss", "password": "s3cret-enough"})
    assert r.status_code == 200 and r.json()["agent"]["role"] == "supervisor"


@pytest.mark.parametrize("path", ["/agent", "/static/agent/agent.js"])
async def test_console_is_served(desk, path: str) -> None:
    r = await desk.http.get(path)
    assert r.status_code == 200


async def test_a_retry_answers_a_stored_message_whose_first_attempt_died(desk) -> None:
    from conversations.store import ChatMessage

    cid = (await desk.say("hello"))["conversation_id"]
    store = desk.app.state.store
    # The first attempt stored the message and then died before answering (e.g. Redis restarted): lease over.
    assert await store.append_customer_once(cid, "died-1", ChatMessage(role="customer", text="refund?"), 0) is None
    await asyncio.sleep(0.01)
    retry = await desk.say("refund?", cid, message_id="died-1")
    assert [m["text"] for m in retry["messages"]] == ["bot:refund?"]
    again = await desk.say("refund?", cid, message_id="died-1")
    assert again["messages"] == retry["messages"]
    history = (await desk.http.get(f"/api/webchat/conversations/{cid}/messages")).json()["messages"]
    assert [m["text"] for m in history].count("refund?") == 1
    assert [m["text"] for m in history].count("bot:refund?") == 1


async def test_context_comes_with_the_request_and_the_desk_never_reads_the_tracker(desk) -> None:
    """The action server builds the tracker part (it holds the tracker, escalating turn included) and sends it with
    the request: the package is complete at creation, and neither creating it nor opening it in the console asks
    Rasa for the tracker of a turn that may still be running (no delayed re-read, no refresh per GET)."""
    await desk.agent("alice")
    cid = (await desk.say("where is my order DM2026110512"))["conversation_id"]
    held = await desk.rasa.get_tracker(cid)  # what the action server holds while the turn runs
    tracker = tracker_part(held["events"], held["slots"])
    reads: list[str] = []

    async def no_reads(sender_id: str):
        reads.append(sender_id)
        raise AssertionError("the desk read the tracker")

    desk.rasa.get_tracker = no_reads
    hid = (await desk.handoff(cid, tracker=tracker)).json()["handoff_id"]
    stored = json.loads((await desk.redis.hget(keys.handoff(hid), "context")).decode())
    assert stored["identifiers"]["order_numbers"] == ["DM2026110512"]
    sue = await desk.agent("sue", role="supervisor")
    view = (await desk.http.get(f"/api/agent/handoffs/{hid}", headers=sue.headers)).json()
    assert view["context"]["identifiers"]["order_numbers"] == ["DM2026110512"]
    assert view["context"]["turns"][0]["intent"] == "order_status"
    assert "DM2026110512" in view["handoff"]["summary"] or "DM2026110512" in view["context"]["summary"]["text"]
    assert reads == []
