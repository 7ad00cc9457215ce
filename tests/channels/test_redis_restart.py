"""Redis restarts (kill -9, back on the same port): the first command of every Redis client afterwards must work.

redis-py 8's asyncio ``Redis.from_url`` pools connections without retrying: after a restart each pooled connection
is dead and its first command fails with ``ConnectionError: Connection closed by server``. The fault test saw it in
the action server (a form's verification lookup failed, Rasa dropped the action, the customer got "bot_incomplete")
and in the gateway (HTTP 500). Every client below is used, Redis is killed and restarted, and the next command of
each must succeed at once; the plain client is the control that shows the fault is real.
"""
from __future__ import annotations

import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from actions.kb_feedback import UNANSWERED_STREAM, FeedbackStore
from actions.redis_client import async_redis, sync_redis
from actions.verification_store import Limits, VerificationStore
from channels.app import create_app
from conversations.protect import Throttle
from conversations.redis_client import connect
from conversations.settings import GatewaySettings
from handoff.login_guard import LoginGuard
from tests.channels.fake_rasa import FakeRasa
from tests.conftest import _free_port, _redis_binary


class RestartableRedis:
    def __init__(self, data_dir: Path) -> None:
        self.port = _free_port()
        self.data_dir = data_dir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [_redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir),
             "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)

    def kill_9_and_restart(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def restartable_redis(tmp_path: Path) -> Iterator[RestartableRedis]:
    server = RestartableRedis(tmp_path)
    server.start()
    yield server
    server.stop()


async def test_a_plain_from_url_client_fails_its_first_command_after_a_restart(restartable_redis) -> None:
    """The control: the fault the clients below must survive (if redis-py ever retries by default, this fails)."""
    plain = Redis.from_url(restartable_redis.url)
    try:
        await plain.set("k", "1")
        restartable_redis.kill_9_and_restart()
        with pytest.raises(RedisConnectionError):
            await plain.get("k")
    finally:
        await plain.aclose()


async def test_gateway_clients_work_at_once_after_a_restart(restartable_redis) -> None:
    client = connect(restartable_redis.url)
    throttle = Throttle(restartable_redis.url, {"message": "1000/minute"})
    guard = LoginGuard(client, restartable_redis.url, 5, 50, 60, 60)
    try:
        await client.set("k", "1")
        assert await throttle.hit("message", "client-a") is None
        assert await guard.begin("account-a", "ip-a") is None
        await guard.end("account-a", "ip-a", success=False)
        restartable_redis.kill_9_and_restart()
        assert await client.get("k") is None  # no persistence: empty, but answered
        assert await throttle.hit("message", "client-a") is None
        assert await guard.begin("account-a", "ip-a") is None
        assert await guard.end("account-a", "ip-a", success=False) == []
    finally:
        await client.aclose()


async def test_a_web_chat_message_after_a_redis_restart_is_answered_not_a_500(restartable_redis) -> None:
    rasa = await FakeRasa("rasa").start()
    app = create_app(GatewaySettings(redis_url=restartable_redis.url, rasa_url=rasa.url))
    try:
        async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as http:
            body = {"message_id": uuid.uuid4().hex, "text": "hello", "metadata": {"ui_lang": "en"}}
            r = await http.post("/api/webchat/messages", json=body)
            assert r.status_code == 200
            restartable_redis.kill_9_and_restart()
            body = {"message_id": uuid.uuid4().hex, "text": "where is my parcel", "metadata": {"ui_lang": "en"}}
            r = await http.post("/api/webchat/messages", json=body)
            assert r.status_code == 200, r.text
            assert [m["text"] for m in r.json()["messages"]] == ["rasa:where is my parcel"]
    finally:
        await rasa.stop()


async def test_action_server_clients_work_at_once_after_a_restart(restartable_redis) -> None:
    store = VerificationStore(restartable_redis.url, 600, Limits(order="3/15 minutes", client="10/hour"))
    feedback = FeedbackStore(async_redis(restartable_redis.url))
    complaints = sync_redis(restartable_redis.url)
    try:
        await store.remember("c1", "DM1", "1234")
        assert await store.locked_for_s("DM1", "client-a") is None
        await store.record_failure("DM1", "client-a")
        await feedback.record_unanswered("c1", "first question", "en", 0.1)
        complaints.set("k", "1")
        restartable_redis.kill_9_and_restart()
        # Each first command after the restart (a form's verification lookup, the limits window, a log entry).
        assert await store.digits("c1", "DM1") is None
        assert await store.locked_for_s("DM1", "client-a") is None
        assert await store.record_failure("DM1", "client-a") == 2  # 3 per order; the window restarted empty
        await feedback.record_unanswered("c1", "second question", "en", 0.1)  # it logs (and drops) Redis errors
        assert [e["question"] for e in await feedback.read(UNANSWERED_STREAM)] == ["second question"]
        assert complaints.get("k") is None
    finally:
        await store.close()
        complaints.close()
