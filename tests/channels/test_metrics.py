"""GET /metrics on the real gateway app: a web-chat message goes through the real Rasa client to a Rasa worker on a
loopback port (tests/channels/fake_rasa.py), and the scrape shows the turn and the Rasa call counted by the code
paths themselves; queue, alerts and model values are read from Redis and Rasa when scraped. Who may scrape: only
the METRICS_TOKEN holder; unset, the route does not exist; every call counts against METRICS_LIMIT."""
from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from channels.app import create_app
from conversations import canary, keys
from conversations.settings import GatewaySettings
from tests.channels.fake_rasa import FakeRasa, closed_port

METRICS_TOKEN = "metrics-token-for-tests-0123"  # noqa: S105 - test secret
INTERNAL = "internal-token-for-tests"  # noqa: S105 - test secret


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(scraped: dict, name: str, **labels: str) -> float:
    return scraped.get((name, tuple(sorted(labels.items()))), 0.0)


async def _gateway(redis_url: str, rasa_url: str, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    url = redis_url.rsplit("/", 1)[0] + "/5"
    settings = GatewaySettings(redis_url=url, rasa_url=rasa_url, handoff_internal_token=INTERNAL,
                               handoff_sla_check_interval_s=3600, **overrides)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        await app.state.redis.flushdb()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as http:
            http.app = app  # type: ignore[attr-defined]
            yield http
        await app.state.redis.flushdb()


@pytest.fixture
async def rasa() -> AsyncIterator[FakeRasa]:
    worker = await FakeRasa("rasa").start()
    yield worker
    await worker.stop()


@pytest.fixture
async def gateway(redis_url: str, rasa: FakeRasa) -> AsyncIterator[httpx.AsyncClient]:
    async for http in _gateway(redis_url, rasa.url, metrics_token=METRICS_TOKEN, metrics_limit="1000/minute"):
        yield http


async def scrape(http: httpx.AsyncClient) -> dict:
    r = await http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain") and r.headers["cache-control"] == "no-store"
    return samples(r.text)


async def say(http: httpx.AsyncClient, text: str, conversation_id: str | None = None) -> dict[str, Any]:
    r = await http.post("/api/webchat/messages", json={"conversation_id": conversation_id,
                                                        "message_id": uuid.uuid4().hex, "text": text,
                                                        "metadata": {"ui_lang": "en"}})
    assert r.status_code == 200, r.text
    return r.json()


async def test_a_web_chat_turn_is_counted_in_the_histograms(gateway: httpx.AsyncClient, rasa: FakeRasa) -> None:
    before = await scrape(gateway)
    body = await say(gateway, "hello there")
    assert [m["text"] for m in body["messages"]] == ["rasa:hello there"]  # answered through the real Rasa client
    after = await scrape(gateway)
    turn = "csbot_gateway_turn_seconds"
    assert value(after, turn + "_count", channel="webchat") == value(before, turn + "_count", channel="webchat") + 1
    assert value(after, turn + "_sum", channel="webchat") > value(before, turn + "_sum", channel="webchat")
    assert value(after, turn + "_bucket", channel="webchat", le="+Inf") == value(after, turn + "_count",
                                                                                 channel="webchat")
    call = "csbot_rasa_request_seconds_count"
    assert value(after, call, endpoint="message") == value(before, call, endpoint="message") + 1
    assert rasa.messages()[-1]["message"] == "hello there"
    # The model each worker has loaded (Rasa's /status) and the live desk values.
    assert value(after, "csbot_rasa_model_info", worker="0", model="model.tar.gz") == 1
    assert value(after, "csbot_handoff_queue_length", priority="2") == 0
    assert ("csbot_alerts_open", ()) in after and ("csbot_agents_online", ()) in after


async def test_queue_length_and_oldest_wait_come_from_the_desk(gateway: httpx.AsyncClient) -> None:
    body = await say(gateway, "I want a human")
    request = {"conversation_id": body["conversation_id"], "channel": "webchat", "reason_code": "explicit_request",
               "priority": 2, "language": "en", "customer": {"id": None, "tier": "regular", "verified": False},
               "frustration": {"score": 10, "curve": []}, "signals": {}, "summary": None}
    gateway.app.state.clock.set(datetime.fromisoformat("2026-11-23T10:00:00+08:00"))  # in service hours
    await gateway.app.state.agents.create("metrics-agent", "correct horse battery", "agent")
    r = await gateway.post("/internal/handoffs", json=request, headers={"X-Internal-Token": INTERNAL})
    assert r.status_code in (200, 201), r.text
    gateway.app.state.clock.advance(90)
    scraped = await scrape(gateway)
    assert value(scraped, "csbot_handoff_queue_length", priority="2") == 1
    assert 89 <= value(scraped, "csbot_handoff_queue_oldest_wait_seconds") < 120


async def test_rasa_errors_are_counted(redis_url: str) -> None:
    async for http in _gateway(redis_url, f"http://127.0.0.1:{closed_port()}", metrics_token=METRICS_TOKEN,
                               metrics_limit="1000/minute"):
        before = await scrape(http)
        body = await say(http, "anyone there?")
        assert body["messages"][0]["role"] == "system"  # the polite outage notice
        after = await scrape(http)
        errors = "csbot_errors_total"
        assert value(after, errors, component="rasa", kind="unreachable") == value(
            before, errors, component="rasa", kind="unreachable") + 1
        assert value(after, "csbot_gateway_turn_seconds_count", channel="webchat") == value(
            before, "csbot_gateway_turn_seconds_count", channel="webchat") + 1
        assert value(after, "csbot_rasa_model_info", worker="0", model="none") == 1


async def test_only_the_token_holder_may_scrape(gateway: httpx.AsyncClient) -> None:
    assert (await gateway.get("/metrics")).status_code == 401
    for header in ("Bearer wrong-token-wrong-token", METRICS_TOKEN, f"Basic {METRICS_TOKEN}"):
        r = await gateway.get("/metrics", headers={"Authorization": header})
        assert r.status_code == 401 and "csbot_" not in r.text


async def test_without_a_token_there_is_no_metrics_route(redis_url: str, rasa: FakeRasa) -> None:
    async for http in _gateway(redis_url, rasa.url):
        r = await http.get("/metrics")
        assert r.status_code == 404 and "csbot_" not in r.text


async def test_ten_thousand_scrapes_meet_the_limit(redis_url: str, rasa: FakeRasa) -> None:
    async for http in _gateway(redis_url, rasa.url, metrics_token=METRICS_TOKEN, metrics_limit="20/minute"):
        statuses = []
        for i in range(10_000):
            r = await http.get("/metrics", headers={"Authorization": "Bearer guess-" + str(i).zfill(20)})
            statuses.append(r.status_code)
            if r.status_code == 429:
                break
        assert statuses[:20] == [401] * 20 and statuses[-1] == 429 and len(statuses) == 21
        assert int(r.headers["retry-after"]) >= 1
        # Blocked even with the right token until the window moves on: guessing costs the guesser.
        r = await http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert r.status_code == 429


def test_a_short_token_is_refused() -> None:
    with pytest.raises(ValueError, match="METRICS_TOKEN"):
        GatewaySettings(metrics_token="short")  # noqa: S106 - test value


async def test_the_canary_workers_model_and_share_are_reported(redis_url: str, rasa: FakeRasa) -> None:
    candidate = await FakeRasa("canary").start()
    candidate.model_file = "release-7.tar.gz"
    try:
        async for http in _gateway(redis_url, rasa.url, rasa_canary_url=candidate.url, metrics_token=METRICS_TOKEN,
                                   metrics_limit="1000/minute"):
            before = await scrape(http)
            assert value(before, "csbot_rasa_model_info", worker="0", model="model.tar.gz") == 1
            assert value(before, "csbot_rasa_model_info", worker="canary", model="release-7.tar.gz") == 1
            assert value(before, "csbot_canary_share") == 0
            running = canary.Canary(release=7, share=0.1, started_at=time.time())
            await http.app.state.redis.set(keys.canary(), running.to_json())  # type: ignore[attr-defined]
            deadline = time.monotonic() + 5  # the gateway follows the key within DRAIN_POLL_S
            while value(await scrape(http), "csbot_canary_share") != 0.1:
                assert time.monotonic() < deadline, "the running canary's share never showed"
                await asyncio.sleep(0.1)
            await http.app.state.redis.delete(keys.canary())  # type: ignore[attr-defined]  # promoted or aborted
            while value(await scrape(http), "csbot_canary_share") != 0:
                assert time.monotonic() < deadline + 5, "the ended canary's share stayed"
                await asyncio.sleep(0.1)
    finally:
        await candidate.stop()
