"""Benchmark: N concurrent simulated customers through the web chat API, against a plain `rasa init` bot
started in the same run and driven the same way (its REST channel). Prints msg/s and p50/p95/p99 latency.

Usage: .venv-app/bin/python tools/bench_vs_rasa.py [--clients 1 10] [--messages-per-client 30]
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from stack import RASA_PY, ROOT, Stack, free_port, wait_http  # noqa: E402

PLAIN_DIR = ROOT / "var" / "bench" / "plain-rasa-init"
# A realistic mix (greetings, order lookups, knowledge questions, returns, refunds, small talk, leaving a lookup)
# without a request for a person: a handed-over conversation is answered by agents, not the bot, and would measure
# nothing. 20 different messages, so a customer of the default 20-message run never repeats himself (repeating the
# same request is a frustration signal and would hand some conversations over).
OUR_MESSAGES = ["hello", "where is my order DM2026110512", "how much is shipping", "bye", "你好", "我的快递怎么还没到",
                "算了", "退款什么时候到账", "what payment methods do you accept", "谢谢", "can I get an invoice",
                "退货运费谁出", "do you ship to Hong Kong", "会员有什么权益", "I want to return my shoes", "never mind",
                "你是机器人吗", "how long does a refund take", "发票怎么开", "goodbye"]
PLAIN_MESSAGES = ["hello", "I am sad", "yes", "are you a bot?", "great", "bye", "hi there", "not good", "no",
                  "goodbye"]


def ensure_plain_bot() -> Path:
    """`rasa init` in var/bench (trained once, then reused)."""
    models = PLAIN_DIR / "models"
    if not models.exists() or not list(models.glob("*.tar.gz")):
        PLAIN_DIR.mkdir(parents=True, exist_ok=True)
        print("training the plain `rasa init` bot (first run only) ...", flush=True)
        subprocess.run([str(RASA_PY), "-m", "rasa", "init", "--no-prompt", "--init-dir", str(PLAIN_DIR)],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=PLAIN_DIR)
    return sorted(models.glob("*.tar.gz"))[-1]


async def drive(send: Callable[[httpx.AsyncClient, str, str], asyncio.Future], messages: list[str],
                clients: int, per_client: int) -> tuple[float, list[float]]:
    latencies: list[float] = []

    async def customer(i: int) -> None:
        sender = uuid.uuid4().hex
        async with httpx.AsyncClient(timeout=120) as http:
            for text in itertools.islice(itertools.cycle(messages[i % len(messages):] + messages), per_client):
                t0 = time.perf_counter()
                await send(http, sender, text)
                latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(customer(i) for i in range(clients)))
    return time.perf_counter() - start, latencies


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--messages-per-client", type=int, default=20)
    args = parser.parse_args()

    model = ensure_plain_bot()
    # Simulated customers type far faster than people, and all come from 127.0.0.1: lift the per-conversation and
    # per-client-address limits, or the gateway would refuse or store-and-not-answer most messages.
    unlimited = {"WEB_RATE_LIMIT_MESSAGES": "100000", "WEB_LIMIT_NEW_CONVERSATIONS": "100000/minute",
                 "WEB_LIMIT_NEW_CONVERSATIONS_DEVICE": "100000/minute", "WEB_LIMIT_MESSAGES": "100000/minute",
                 "WEB_LIMIT_HANDOFFS": "100000/minute", "VERIFICATION_CLIENT_LIMIT": "100000/hour"}
    stack = Stack.on_free_ports(var_dir=ROOT / "var" / "bench", extra_env=unlimited)
    plain_port = free_port()
    plain = subprocess.Popen(
        [str(RASA_PY), "-m", "rasa", "run", "--model", str(model), "--port", str(plain_port), "-i", "127.0.0.1"],
        cwd=PLAIN_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        stack.start()
        wait_http(f"http://127.0.0.1:{plain_port}/", 240, plain)

        async def ours(http: httpx.AsyncClient, sender: str, text: str) -> None:
            r = await http.post(f"{stack.web_url}/api/webchat/messages",
                                json={"conversation_id": ours.ids.get(sender), "message_id": uuid.uuid4().hex,
                                      "text": text})
            r.raise_for_status()
            body = r.json()
            ours.ids[sender] = body["conversation_id"]
            if not any(m["role"] == "bot" for m in body["messages"]):
                ours.unanswered += 1  # type: ignore[attr-defined]
        ours.ids: dict[str, str] = {}  # type: ignore[attr-defined]
        ours.unanswered = 0  # type: ignore[attr-defined]

        async def plain_bot(http: httpx.AsyncClient, sender: str, text: str) -> None:
            r = await http.post(f"http://127.0.0.1:{plain_port}/webhooks/rest/webhook",
                                json={"sender": sender, "message": text})
            r.raise_for_status()

        # warm-up (first TF calls are slow)
        asyncio.run(drive(ours, OUR_MESSAGES, 2, 5))
        asyncio.run(drive(plain_bot, PLAIN_MESSAGES, 2, 5))
        print(f"\n{'bot':<26}{'clients':>8}{'msgs':>7}{'msg/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}")
        for clients in args.clients:
            results = {}
            for name, send, messages in (("bilingual bot (web API)", ours, OUR_MESSAGES),
                                         ("plain rasa init (REST)", plain_bot, PLAIN_MESSAGES)):
                elapsed, lat = asyncio.run(drive(send, messages, clients, args.messages_per_client))
                rate = len(lat) / elapsed
                results[name] = (rate, pct(lat, 95))
                print(f"{name:<26}{clients:>8}{len(lat):>7}{rate:>9.1f}{pct(lat, 50):>9.0f}{pct(lat, 95):>9.0f}"
                      f"{pct(lat, 99):>9.0f}", flush=True)
            (ours_rate, ours_p95), (plain_rate, plain_p95) = results.values()
            print(f"{'(bot messages not answered by the bot)':<40}{ours.unanswered}")  # type: ignore[attr-defined]
            ours.unanswered = 0  # type: ignore[attr-defined]
            print(f"{'ratio ours/plain':<26}{clients:>8}{'':>7}{ours_rate / plain_rate:>9.2f}{'':>9}"
                  f"{ours_p95 / plain_p95:>9.2f}")
    finally:
        stack.stop()
        plain.terminate()
        plain.wait(timeout=30)


if __name__ == "__main__":
    main()
