"""The action server's own GET /metrics (actions/metrics.py) on the real process (rasa-sdk's app, with the token
check): an action Rasa asks for is timed under its name; only the METRICS_TOKEN holder may scrape (the action token
does not open it, and the metrics token does not open the actions); without a token the route is 404."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from actions import metrics
from tests.processes import free_port

ACTION_TOKEN = "action-token-for-tests"  # noqa: S105 - test secret
METRICS_TOKEN = "metrics-token-for-tests-0123"  # noqa: S105 - test secret
ROOT = Path(__file__).resolve().parents[2]


@asynccontextmanager
async def served(metrics_token: str) -> AsyncIterator[httpx.AsyncClient]:
    """The real action server process (python -m actions.server) on a free loopback port (a second rasa-sdk Sanic
    app cannot start in this test process after tests/actions/test_kb_decide_endpoint.py's)."""
    port = free_port()
    env = {**os.environ, "ACTION_SERVER_TOKEN": ACTION_TOKEN, "METRICS_TOKEN": metrics_token,
           "PYTHONPATH": str(ROOT), "REDIS_URL": "redis://127.0.0.1:1/0"}
    proc = subprocess.Popen([sys.executable, "-m", "actions.server", "--port", str(port), "--host", "127.0.0.1"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for _ in range(600):
                try:
                    if (await client.get("/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert proc.poll() is None, "the action server exited"
                await asyncio.sleep(0.1)
            yield client
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def webhook(action: str) -> dict:
    return {"next_action": action, "sender_id": "c1", "version": "3.6.2", "domain": {},
            "tracker": {"sender_id": "c1", "slots": {}, "latest_message": {"text": "DM2026110512", "entities": [
                {"entity": "order_number", "value": "DM2026110512"}], "intent": {"name": "inform"}},
                "events": [], "paused": False, "followup_action": None, "active_loop": {},
                "latest_action_name": "action_listen"}}


def counts(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


async def test_an_action_call_is_timed_and_only_the_metrics_token_scrapes() -> None:
    async with served(METRICS_TOKEN) as client:
        auth = {"Authorization": f"Bearer {METRICS_TOKEN}"}
        before = counts((await client.get("/metrics", headers=auth)).text)
        key = ("csbot_action_seconds_count", (("action", "action_acknowledge_order_number"),))
        r = await client.post("/webhook", json=webhook("action_acknowledge_order_number"),
                              headers={"X-Action-Token": ACTION_TOKEN})
        assert r.status_code == 200, r.text
        r = await client.post("/webhook", json=webhook("action_nobody_knows"), headers={"X-Action-Token": ACTION_TOKEN})
        assert r.status_code == 404
        scraped = await client.get("/metrics", headers=auth)
        assert scraped.status_code == 200
        after = counts(scraped.text)
        assert after[key] == before.get(key, 0) + 1
        unknown = ("csbot_action_errors_total", (("action", "other"), ("status", "404")))
        assert after[unknown] == before.get(unknown, 0) + 1  # an unknown name is not a label value of its own
        # Who may scrape, and what the metrics token opens.
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.get("/metrics", headers={"X-Action-Token": ACTION_TOKEN})).status_code == 401
        assert (await client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status_code == 401
        r = await client.post("/webhook", json=webhook("action_acknowledge_order_number"), headers=auth)
        assert r.status_code == 401


def test_an_unset_metrics_token_opens_nothing() -> None:
    # (The route then answers 404.)
    assert not metrics.authorised("Bearer ", "") and not metrics.authorised(None, "")
    assert not metrics.authorised(METRICS_TOKEN, METRICS_TOKEN)  # the scheme is part of it
    assert metrics.authorised(f"Bearer {METRICS_TOKEN}", METRICS_TOKEN)


async def test_without_a_metrics_token_the_route_is_not_there() -> None:
    async with served("") as client:
        for headers in ({}, {"Authorization": "Bearer not-the-token"}, {"X-Action-Token": ACTION_TOKEN}):
            assert (await client.get("/metrics", headers=headers)).status_code == 404
