"""Web chat API against a real Redis; Rasa replaced by a recording stub so its outages can be simulated."""
from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from channels.app import create_app
from conversations import keys
from conversations.rasa_client import RasaError
from conversations.settings import GatewaySettings


class StubRasa:
    canary = None  # no canary running (RasaClient.canary)
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.fail = False

    async def send_message(self, sender_id: str, text: str, metadata: dict | None = None, *,
                           canary: bool = False) -> list[dict]:
        self.calls.append({"sender": sender_id, "text": text, "metadata": metadata})
        if self.fail:
            raise RasaError("Rasa unreachable: ConnectError")
        return [{"recipient_id": sender_id, "text": f"echo:{text[:20]}",
                 "buttons": [{"title": "Talk to a person", "payload": "/request_human"}]}]

    async def close(self) -> None:
        return None


@pytest.fixture
async def client(redis_url: str):
    settings = GatewaySettings(redis_url=redis_url, web_max_message_chars=10_000, web_nlu_chars=2_000)
    app = create_app(settings)
    stub = StubRasa()
    async with app.router.lifespan_context(app):
        app.state.rasa = stub
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            http.stub = stub  # type: ignore[attr-defined]
            http.redis = app.state.redis  # type: ignore[attr-defined]
            yield http


def _msg(text: str, conversation_id: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"conversation_id": conversation_id, "message_id": uuid.uuid4().hex, "text": text, **extra}


async def test_new_conversation_gets_bot_reply_with_buttons_and_history(client) -> None:
    r = await client.post("/api/webchat/messages", json=_msg("hello", metadata={"ui_lang": "en"}))
    assert r.status_code == 200
    body = r.json()
    cid = body["conversation_id"]
    assert body["messages"][0]["text"] == "echo:hello"
    assert body["messages"][0]["buttons"] == [{"title": "Talk to a person", "payload": "/request_human"}]
    # The gateway adds what it knows (channel, the pseudonymised client address); the client can set neither.
    expected_metadata = {"ui_lang": "en", "channel": "webchat", "client": client.stub.calls[-1]["metadata"]["client"]}
    assert client.stub.calls[-1] == {"sender": cid, "text": "hello", "metadata": expected_metadata}
    assert len(expected_metadata["client"]) == 24 and "127.0.0.1" not in str(client.stub.calls)
    history = (await client.get(f"/api/webchat/conversations/{cid}/messages")).json()["messages"]
    assert [(m["role"], m["text"]) for m in history] == [("customer", "hello"), ("bot", "echo:hello")]
    after = (await client.get(f"/api/webchat/conversations/{cid}/messages", params={"after": history[0]["id"]})).json()
    assert [m["text"] for m in after["messages"]] == ["echo:hello"]


async def test_retry_with_same_message_id_is_answered_once(client) -> None:
    first = _msg("where is my order")
    r1 = await client.post("/api/webchat/messages", json=first)
    retry = {**first, "conversation_id": r1.json()["conversation_id"]}
    r2 = await client.post("/api/webchat/messages", json=retry)
    assert r2.status_code == 200
    assert r2.json()["messages"] == r1.json()["messages"]
    assert len(client.stub.calls) == 1
    history = (await client.get(f"/api/webchat/conversations/{r1.json()['conversation_id']}/messages")).json()
    assert [m["role"] for m in history["messages"]] == ["customer", "bot"]


async def test_unknown_conversation_id_starts_a_new_conversation(client) -> None:
    r = await client.post("/api/webchat/messages", json=_msg("hi", conversation_id="doesnotexist123"))
    assert r.status_code == 200
    assert r.json()["conversation_id"] != "doesnotexist123"
    assert (await client.get("/api/webchat/conversations/doesnotexist123/messages")).status_code == 404


@pytest.mark.parametrize("text", ["", "   \n\t ", "\x00\x01\x02"])
async def test_empty_messages_get_a_reply_without_asking_the_bot(client, text: str) -> None:
    r = await client.post("/api/webchat/messages", json=_msg(text, metadata={"ui_lang": "zh"}))
    assert r.status_code == 200
    assert r.json()["messages"][0]["role"] == "system"
    assert "空消息" in r.json()["messages"][0]["text"]
    assert client.stub.calls == []


async def test_long_message_is_truncated_for_the_bot_but_kept_whole(client) -> None:
    text = "退货" * 4_999
    r = await client.post("/api/webchat/messages", json=_msg(text))
    assert r.status_code == 200
    assert len(client.stub.calls[-1]["text"]) == 2_000
    history = (await client.get(f"/api/webchat/conversations/{r.json()['conversation_id']}/messages")).json()
    assert history["messages"][0]["text"] == text


async def test_too_long_message_is_rejected_with_a_clear_413(client) -> None:
    r = await client.post("/api/webchat/messages", json=_msg("a" * 10_001))
    assert r.status_code == 413
    assert "limit is 10000" in r.json()["detail"]


async def test_malformed_json_gets_a_4xx_with_a_message(client) -> None:
    r = await client.post("/api/webchat/messages", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["detail"].startswith("Invalid request")
    r = await client.post("/api/webchat/messages", json={"text": "hi"})
    assert r.status_code == 422
    assert "message_id" in r.json()["detail"]


async def test_bot_outage_answers_politely_and_keeps_the_message(client) -> None:
    client.stub.fail = True
    r = await client.post("/api/webchat/messages", json=_msg("where is my refund"))
    assert r.status_code == 200
    (reply,) = r.json()["messages"]
    assert reply["role"] == "system" and "technical problem" in reply["text"]
    history = (await client.get(f"/api/webchat/conversations/{r.json()['conversation_id']}/messages")).json()
    assert history["messages"][0]["text"] == "where is my refund"


async def test_bot_stays_silent_when_an_agent_owns_the_conversation(client) -> None:
    r = await client.post("/api/webchat/messages", json=_msg("hi"))
    cid = r.json()["conversation_id"]
    await client.redis.set(keys.owner(cid), "agent:alice")
    calls_before = len(client.stub.calls)
    r = await client.post("/api/webchat/messages", json=_msg("are you there?", conversation_id=cid))
    assert len(client.stub.calls) == calls_before
    assert r.json()["messages"][0]["role"] == "system"


async def test_history_rejects_malformed_cursor(client) -> None:
    r = await client.post("/api/webchat/messages", json=_msg("hi"))
    cid = r.json()["conversation_id"]
    bad = await client.get(f"/api/webchat/conversations/{cid}/messages", params={"after": "x); DROP"})
    assert bad.status_code == 422


async def test_index_page_and_health(client) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    page = await client.get("/")
    assert page.status_code == 200 and "<html" in page.text.lower()
