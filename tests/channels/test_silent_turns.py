"""Rasa answers nothing: the gateway tells a failed action (action server down) from a turn that needs no answer.

Real gateway app on a real Redis, talking over HTTP to a fake Rasa worker that answers ``[]`` and serves a tracker
written the way Rasa 3.6 writes it: a custom action that failed leaves its ``action`` event alone (Rasa drops the
action's events); one that ran leaves at least one event after it. Before the fix, the customer got an empty
answer in both cases and a retry of the same message replayed that empty answer.
"""
from __future__ import annotations

import contextlib
import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bot.shared.paths import REPO_ROOT
from channels.app import create_app
from channels.turns import UNDO_FAILED_TURN, failed_action
from conversations import keys
from conversations.settings import GatewaySettings
from conversations.store import PENDING
from tests.channels.fake_rasa import FakeRasa, closed_port


def _user(text: str) -> dict[str, Any]:
    return {"event": "user", "text": text, "parse_data": {"intent": {"name": "affirm"}}}


def _action(name: str) -> dict[str, Any]:
    return {"event": "action", "name": name, "policy": "RulePolicy", "confidence": 1.0}


def _slot(name: str, value: Any) -> dict[str, Any]:
    return {"event": "slot", "name": name, "value": value}


BEFORE = [_action("action_session_start"), _action("action_listen"), _user("cancel my order"),
          _action("action_order_cancel"), {"event": "bot", "text": "Cancel DM2026110529?"},
          _slot("pending_confirmation", "cancel:DM2026110529"), _action("action_listen")]
FAILED_TURN = [_user("yes"), _action("action_extract_slots"), _action("action_order_confirm"),
               _action("action_listen")]
SILENT_TURN = [_user("yes"), _action("action_extract_slots"), _action("action_order_confirm"),
               _slot("pending_confirmation", None), _action("action_listen")]


@pytest.fixture
async def rasa() -> FakeRasa:
    worker = await FakeRasa("rasa").start()
    yield worker
    await worker.stop()


@contextlib.asynccontextmanager
async def _serve(redis_url: str, rasa_url: str, **extra: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The real gateway app (lifespan included: it builds its own RasaClient for ``rasa_url``)."""
    app = create_app(GatewaySettings(redis_url=redis_url, rasa_url=rasa_url, **extra))
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        http.redis = app.state.redis  # type: ignore[attr-defined]
        yield http


@pytest.fixture
async def gateway(redis_url: str, rasa: FakeRasa):
    async with _serve(redis_url, rasa.url) as http:
        yield http


def _msg(text: str, conversation_id: str | None = None, message_id: str | None = None) -> dict[str, Any]:
    return {"conversation_id": conversation_id, "message_id": message_id or uuid.uuid4().hex, "text": text,
            "metadata": {"ui_lang": "en"}}


async def _start(gateway, rasa: FakeRasa) -> str:
    r = await gateway.post("/api/webchat/messages", json=_msg("cancel my order"))
    assert r.status_code == 200
    return r.json()["conversation_id"]


async def _history(gateway, cid: str) -> list[tuple]:
    r = await gateway.get(f"/api/webchat/conversations/{cid}/messages")
    return [(m["role"], m["text"]) for m in r.json()["messages"]]


async def test_failed_action_gets_an_apology_an_undo_and_a_retry_is_answered(gateway, rasa: FakeRasa) -> None:
    cid = await _start(gateway, rasa)
    rasa.mode = "empty"
    rasa.tracker = {"events": BEFORE + FAILED_TURN}
    first = _msg("yes", cid)
    r = await gateway.post("/api/webchat/messages", json=first)
    assert r.status_code == 200
    [notice] = r.json()["messages"]
    assert notice["role"] == "system" and "send it again" in notice["text"]
    # The failed turn is undone in Rasa (rewind, then listen again), so the "yes" sent again meets the same
    # pending question; what that does to a real Rasa tracker: test_the_undo_restores_the_listening_tracker.
    appended = rasa.tracker["events"][len(BEFORE + FAILED_TURN):]
    assert appended == [{"event": "rewind"}, {"event": "action", "name": "action_listen"}]
    # The message stays open: the client's retry of the same id is answered again, not replayed.
    marker = await gateway.redis.get(keys.dedupe(cid, first["message_id"]))
    assert marker.decode().startswith(PENDING)
    rasa.mode = "answer"
    r2 = await gateway.post("/api/webchat/messages", json=first)
    assert r2.status_code == 200
    assert [m["text"] for m in r2.json()["messages"]] == ["rasa:yes"]
    assert [m["message"] for m in rasa.messages()] == ["cancel my order", "yes", "yes"]
    # Stored once, apologised once, answered once; a third attempt replays the answer.
    assert await _history(gateway, cid) == [
        ("customer", "cancel my order"), ("bot", "rasa:cancel my order"), ("customer", "yes"),
        ("system", notice["text"]), ("bot", "rasa:yes"),
    ]
    r3 = await gateway.post("/api/webchat/messages", json=first)
    assert r3.json()["messages"] == r2.json()["messages"] and len(rasa.messages()) == 3


async def test_a_turn_that_needs_no_answer_stays_silent(gateway, rasa: FakeRasa) -> None:
    cid = await _start(gateway, rasa)
    rasa.mode = "empty"
    rasa.tracker = {"events": BEFORE + SILENT_TURN}
    first = _msg("yes", cid)
    r = await gateway.post("/api/webchat/messages", json=first)
    assert r.status_code == 200 and r.json()["messages"] == []
    assert {"event": "rewind"} not in rasa.tracker["events"] and len(rasa.tracker["events"]) == len(
        BEFORE + SILENT_TURN)
    # Answered (nothing to say): a retry replays it without asking the bot again.
    assert json.loads(await gateway.redis.get(keys.dedupe(cid, first["message_id"]))) == []
    await gateway.post("/api/webchat/messages", json=first)
    assert len(rasa.messages()) == 2


async def test_no_apology_when_the_turn_handed_the_conversation_to_a_person(gateway, rasa: FakeRasa) -> None:
    cid = await _start(gateway, rasa)
    rasa.mode = "empty"
    rasa.tracker = {"events": BEFORE + FAILED_TURN}  # even a trace that looks failed: the owner decides first

    async def hand_off(_body: dict[str, Any]) -> None:
        await gateway.redis.set(keys.owner(cid), "queue")

    rasa.before_answer = hand_off
    r = await gateway.post("/api/webchat/messages", json=_msg("yes", cid))
    assert r.status_code == 200 and r.json()["messages"] == []
    assert [r["path"] for r in rasa.requests if "tracker" in r["path"]] == []


async def test_bot_down_apology_leaves_the_message_open_for_retry(redis_url: str) -> None:
    port = closed_port()
    async with _serve(redis_url, f"http://127.0.0.1:{port}", rasa_worker_down_s=0) as gateway:
        first = _msg("where is my parcel")
        r = await gateway.post("/api/webchat/messages", json=first)
        assert r.status_code == 200
        assert r.json()["messages"][0]["role"] == "system"
        cid = r.json()["conversation_id"]
        marker = await gateway.redis.get(keys.dedupe(cid, first["message_id"]))
        assert marker.decode().startswith(PENDING)
        rasa = await FakeRasa("rasa").start(port)  # Rasa is back
        try:
            r2 = await gateway.post("/api/webchat/messages", json={**first, "conversation_id": cid})
            assert [m["text"] for m in r2.json()["messages"]] == ["rasa:where is my parcel"]
            assert len(rasa.messages()) == 1
        finally:
            await rasa.stop()


async def test_a_timed_out_message_is_not_sent_to_the_bot_twice(redis_url: str) -> None:
    rasa = await FakeRasa("rasa").start()
    rasa.mode, rasa.hang_s = "hang", 1.0
    try:
        async with _serve(redis_url, rasa.url, rasa_timeout_s=0.3) as gateway:
            first = _msg("cancel it")
            r = await gateway.post("/api/webchat/messages", json=first)
            cid = r.json()["conversation_id"]
            assert r.json()["messages"][0]["role"] == "system"
            r2 = await gateway.post("/api/webchat/messages", json={**first, "conversation_id": cid})
            assert r2.json()["messages"] == r.json()["messages"]  # replayed
            assert len(rasa.messages()) == 1
    finally:
        await rasa.stop()


def test_failure_detection_reads_only_the_turn_of_the_message() -> None:
    assert failed_action(BEFORE + FAILED_TURN, "yes") == "action_order_confirm"
    assert failed_action(BEFORE + SILENT_TURN, "yes") is None
    # A failed form (its validation action down) counts too; Rasa's own silent actions do not.
    assert failed_action([_user("DM2026110529"), _action("order_verification_form"), _action("action_listen")],
                         "DM2026110529") == "order_verification_form"
    assert failed_action([_user("hi"), _action("action_extract_slots"), _action("action_listen")], "hi") is None
    # A failure in an earlier turn is not blamed on a later message.
    assert failed_action(BEFORE + FAILED_TURN + SILENT_TURN, "yes") is None
    assert failed_action(BEFORE + FAILED_TURN + [_user("hello")], "hello") is None
    assert failed_action(BEFORE, "never sent") is None


RASA_PY = REPO_ROOT / ".venv-rasa" / "bin" / "python"
# Rasa 3.6's own tracker code (the Rasa environment): rebuild a tracker from events, report its applied state.
_REPLAY = """
import json, sys
from rasa.shared.core.events import Event
from rasa.shared.core.trackers import DialogueStateTracker
out = []
for events in json.load(sys.stdin):
    tracker = DialogueStateTracker.from_events("c", [Event.from_parameters(e) for e in events])
    applied = [[e.type_name, getattr(e, "action_name", None) or getattr(e, "text", None) or getattr(e, "key", None)]
               for e in tracker.applied_events()]
    out.append({"latest_action": tracker.latest_action_name, "loop": tracker.active_loop_name, "applied": applied})
print(json.dumps(out))
"""


def _rasa_replay(*event_lists: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not RASA_PY.exists():
        pytest.skip("the Rasa environment (.venv-rasa) is not built")
    done = subprocess.run([str(RASA_PY), "-c", _REPLAY], input=json.dumps(event_lists), capture_output=True,
                          text=True, timeout=120, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


FORM_BEFORE = [_action("action_session_start"), _action("action_listen"), _user("check my order"),
               _action("order_verification_form"), {"event": "active_loop", "name": "order_verification_form"},
               _slot("requested_slot", "order_id"), {"event": "bot", "text": "Which order?"},
               _action("action_listen")]
FORM_FAILED_TURN = [_user("好的谢谢"), _action("action_extract_slots"), _action("order_verification_form"),
                    _action("action_listen")]


def test_the_undo_restores_the_listening_tracker() -> None:
    """Real Rasa tracker semantics: after the gateway's undo, the tracker is the one before the failed message
    (latest action ``action_listen``), so the message sent again is predicted like the first time. A bare
    ``rewind`` (the old undo) leaves the previous turn's last action as the latest one: with a form active, Rasa's
    RulePolicy then predicts ``action_listen`` after the loop at once and the retry got an empty answer."""
    undo = [dict(e) for e in UNDO_FAILED_TURN]
    for before, failed in ((BEFORE, FAILED_TURN), (FORM_BEFORE, FORM_FAILED_TURN)):
        original, undone, bare_rewind = _rasa_replay(before, before + failed + undo,
                                                     before + failed + [{"event": "rewind"}])
        assert undone == original and undone["latest_action"] == "action_listen"
        assert bare_rewind["latest_action"] != "action_listen"
    form_undone, form_rewind = _rasa_replay(FORM_BEFORE + FORM_FAILED_TURN + undo,
                                            FORM_BEFORE + FORM_FAILED_TURN + [{"event": "rewind"}])
    assert form_undone["loop"] == "order_verification_form"
    assert form_rewind["latest_action"] == "order_verification_form"  # -> "Predicted action_listen after loop"
