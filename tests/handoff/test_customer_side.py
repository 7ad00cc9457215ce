"""The web chat customer's side of a human conversation (issue 17), against the real gateway and Redis: the agent's
typing signal and the read state reach the customer's event stream (throttled, only from the owning agent, only for
web chat), and photo uploads (type sniffed from the bytes, size capped, kept with expiry, shown to agents behind
their session and to the owning browser only, rate limited)."""
from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from conversations import keys
from tools.sse_client import sse_events

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 40
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 100 + b"\xff\xd9"
WEBP_BODY = b"WEBPVP8 " + b"\x00" * 30
WEBP = b"RIFF" + len(WEBP_BODY).to_bytes(4, "little") + WEBP_BODY


async def _queued(desk, text: str = "I want a human"):
    cid = (await desk.say(text))["conversation_id"]
    r = await desk.handoff(cid)
    assert r.status_code == 200, r.text
    return cid, r.json()["handoff_id"]


async def _collect(http: httpx.AsyncClient, url: str, into: list, headers: dict | None = None) -> None:
    async for event in sse_events(http, url, headers):
        into.append(event)


async def _status_of_declared_upload(base_url: str, path: str, length: int) -> int:
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"POST {path}?message_id=big HTTP/1.1\r\nHost: {host}\r\nContent-Length: {length}\r\n"
                 f"Content-Type: application/octet-stream\r\n\r\n".encode())
    await writer.drain()
    if length < 1_000_000:
        writer.write(b"\x00" * length)
        await writer.drain()
    status = int((await asyncio.wait_for(reader.readline(), 10)).split()[1])
    writer.close()
    return status


async def _eventually(check, timeout_s: float = 5.0):
    for _ in range(int(timeout_s / 0.05)):
        value = check()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_typing_reaches_the_customer_throttled_and_only_from_the_owner(desk) -> None:
    alice = await desk.agent("alice")
    bob = await desk.agent("bob")
    cid, hid = await _queued(desk)
    # Not claimed yet: nobody is shown typing.
    assert (await desk.http.post(f"/api/agent/handoffs/{hid}/typing", headers=alice.headers)).status_code == 409
    await desk.http.post(f"/api/agent/handoffs/{hid}/claim", headers=alice.headers)
    events: list = []
    listener = asyncio.create_task(_collect(desk.http, f"/api/webchat/conversations/{cid}/events", events))
    await asyncio.sleep(0.3)
    try:
        r = await desk.http.post(f"/api/agent/handoffs/{hid}/typing", headers=alice.headers)
        assert r.status_code == 200 and r.json() == {"sent": True}
        # Within the throttle window a second call writes nothing.
        r = await desk.http.post(f"/api/agent/handoffs/{hid}/typing", headers=alice.headers)
        assert r.json() == {"sent": False}
        # Another agent (cannot read it now) and no session: refused.
        assert (await desk.http.post(f"/api/agent/handoffs/{hid}/typing", headers=bob.headers)).status_code == 403
        assert (await desk.http.post(f"/api/agent/handoffs/{hid}/typing")).status_code == 401
        typing = await _eventually(lambda: [e for e in events if e.get("event") == "typing"])
        assert len(typing) == 1 and typing[0]["data"]["name"] == "alice"
        assert typing[0]["data"]["until"] > 0
        assert "|" in typing[0]["id"]  # <messages id>|<signals id>: resumable
    finally:
        listener.cancel()
    # Not a message: the history and the agent's transcript do not contain it.
    history = (await desk.http.get(f"/api/webchat/conversations/{cid}/messages")).json()["messages"]
    assert all("typing" not in m["text"] for m in history)
    assert await desk.redis.xlen(keys.signals(cid)) == 1


async def test_read_state_moves_when_the_owner_has_the_conversation_open(desk) -> None:
    alice = await desk.agent("alice")
    cid, hid = await _queued(desk)
    await desk.say("are you there?", cid)
    history = (await desk.http.get(f"/api/webchat/conversations/{cid}/messages")).json()
    assert history["read_upto"] is None  # queued: nobody has read it
    last_customer = [m for m in history["messages"] if m["role"] == "customer"][-1]["id"]
    await desk.http.post(f"/api/agent/handoffs/{hid}/claim", headers=alice.headers)
    customer_events: list = []
    listener = asyncio.create_task(_collect(desk.http, f"/api/webchat/conversations/{cid}/events",
                                            customer_events))
    await asyncio.sleep(0.3)
    agent_events: list = []
    console = asyncio.create_task(_collect(desk.http, f"/api/agent/events?handoff_id={hid}", agent_events,
                                           alice.headers))
    try:
        # The owner opened it: everything so far is read, live for the customer and in the history.
        read = await _eventually(lambda: [e for e in customer_events if e.get("event") == "read"])
        assert read[-1]["data"]["upto"] == last_customer
        assert (await desk.http.get(f"/api/webchat/conversations/{cid}/messages")).json()["read_upto"] == last_customer
        # A new message while the console is open: read as it reaches the agent.
        newer = (await desk.say("my parcel is damaged", cid))
        await _eventually(lambda: [e for e in agent_events if e.get("event") == "message"
                                   and e["data"]["text"] == "my parcel is damaged"])
        newest = [m for m in (await desk.http.get(f"/api/webchat/conversations/{cid}/messages")).json()["messages"]
                  if m["role"] == "customer"][-1]["id"]
        await _eventually(lambda: [e for e in customer_events if e.get("event") == "read"
                                   and e["data"]["upto"] == newest])
        assert newer["conversation_id"] == cid
    finally:
        console.cancel()
        listener.cancel()
    # It only moves forward.
    assert (await desk.redis.get(keys.read_upto(cid))).decode() == newest


async def test_photo_upload_sniffed_capped_stored_with_expiry_and_shown_only_to_its_people(desk) -> None:
    alice = await desk.agent("alice")
    cid, hid = await _queued(desk)
    url = f"/api/webchat/conversations/{cid}/photos"
    # Declared type and name are not trusted: a text file called .png is refused, a real PNG sent as
    # application/octet-stream is taken.
    r = await desk.http.post(url, params={"message_id": "p0"}, content=b"hello, not an image",
                             headers={"Content-Type": "image/png"})
    assert r.status_code == 415
    r = await desk.http.post(url, params={"message_id": "p0b"}, content=b"GIF89a" + b"\x00" * 40)
    assert r.status_code == 415  # GIF is not among the accepted types
    r = await desk.http.post(url, params={"message_id": "p1"}, content=PNG,
                             headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 200, r.text
    stored = r.json()["messages"][0]
    assert stored["role"] == "customer" and stored["text"].startswith("[photo] /api/channels/media/")
    media_id = stored["text"].rsplit("/", 1)[1]
    assert media_id.isalpha()
    assert (await desk.redis.hget(keys.channel_media(media_id), "content_type")) == b"image/png"
    assert 0 < await desk.redis.ttl(keys.channel_media(media_id)) <= desk.settings.web_conversation_ttl_s
    # A retry of the same upload is answered with the same message, not stored twice.
    again = await desk.http.post(url, params={"message_id": "p1"}, content=PNG)
    assert again.json()["messages"][0]["id"] == stored["id"]
    for body in (JPEG, WEBP):
        assert (await desk.http.post(url, params={"message_id": uuid.uuid4().hex}, content=body)).status_code == 200
    # Over the cap: 413 from the declared length, before any of the body is read (raw socket: the server answers
    # and closes while a client would still be sending).
    assert await _status_of_declared_upload(desk.base_url, url, desk.settings.web_max_upload_bytes + 1) == 413
    assert await _status_of_declared_upload(desk.base_url, url, 200_000) != 413  # under the cap: passed on
    # Other routes keep the small body cap.
    r = await desk.http.post("/api/webchat/messages", content=b"{" + b" " * 70_000 + b"}",
                             headers={"Content-Type": "application/json"})
    assert r.status_code == 413

    # The owning browser sees its photo; the agent sees it with a session; nobody else does.
    own = await desk.http.get(f"/api/webchat/conversations/{cid}/media/{media_id}")
    assert own.status_code == 200 and own.content == PNG and own.headers["content-type"] == "image/png"
    agent_view = await desk.http.get(f"/api/channels/media/{media_id}", headers=alice.headers)
    assert agent_view.status_code == 200 and agent_view.content == PNG
    async with httpx.AsyncClient(base_url=desk.base_url) as stranger:
        assert (await stranger.get(f"/api/channels/media/{media_id}")).status_code == 401
        assert (await stranger.get(f"/api/webchat/conversations/{cid}/media/{media_id}")).status_code == 404
        assert (await stranger.post(url, params={"message_id": "x"}, content=PNG)).status_code == 404
        # The stranger's own conversation cannot reach another conversation's photo through its own id.
        r = await stranger.post("/api/webchat/messages", json={"conversation_id": None, "message_id": "s1",
                                                               "text": "hi"})
        other = r.json()["conversation_id"]
        assert (await stranger.get(f"/api/webchat/conversations/{other}/media/{media_id}")).status_code == 404
    # The agent's transcript has the photo message (link intact through redaction).
    view = (await desk.http.get(f"/api/agent/handoffs/{hid}", headers=alice.headers)).json()
    assert any(m["text"] == stored["text"] for m in view["messages"])
    # Once alice claimed it, the photo is hers (and supervisors'): another agent gets 404, as for an unknown id.
    bob = await desk.agent("bob")
    boss = await desk.agent("boss", role="supervisor")
    assert (await desk.http.get(f"/api/channels/media/{media_id}", headers=bob.headers)).status_code == 200  # queued
    assert (await desk.http.post(f"/api/agent/handoffs/{hid}/claim", headers=alice.headers)).status_code == 200
    assert (await desk.http.get(f"/api/channels/media/{media_id}", headers=bob.headers)).status_code == 404
    assert (await desk.http.get(f"/api/channels/media/{media_id}", headers=alice.headers)).status_code == 200
    assert (await desk.http.get(f"/api/channels/media/{media_id}", headers=boss.headers)).status_code == 200


async def test_photo_while_the_bot_answers_is_thanked_in_the_customers_language(desk) -> None:
    cid = (await desk.say("hello"))["conversation_id"]
    r = await desk.http.post(f"/api/webchat/conversations/{cid}/photos", params={"message_id": "p", "ui_lang": "zh"},
                             content=JPEG)
    assert r.status_code == 200
    roles = [m["role"] for m in r.json()["messages"]]
    assert roles == ["customer", "system"] and "图片" in r.json()["messages"][1]["text"]
    assert desk.rasa.calls[-1]["text"] == "hello"  # the bot was not asked about the photo


@pytest.mark.desk_settings(web_limit_uploads="2/minute")
async def test_photo_uploads_are_rate_limited(desk) -> None:
    cid = (await desk.say("hello"))["conversation_id"]
    url = f"/api/webchat/conversations/{cid}/photos"
    for i in range(2):
        assert (await desk.http.post(url, params={"message_id": f"p{i}"}, content=PNG)).status_code == 200
    r = await desk.http.post(url, params={"message_id": "p3"}, content=PNG)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
