"""Benchmark: inbound-to-reply latency per messaging channel on the real stack (Redis, Rasa, action server, gateway).

The platforms are the documented-shape fakes of tests/fakes/ (Telegram Bot API, WhatsApp Cloud API, WeChat Official
Account API), served on loopback in this process; the gateway's channels point at them. Per channel, N concurrent
customers each send M messages (a realistic mix, no request for a person), each after the previous turn's replies
have arrived. Measured per message: from the webhook POST to the first reply the customer can see - the platform
fake accepting the outbound call (Telegram sendMessage, WhatsApp /messages, WeChat custom/send), or WeChat's
passive reply in the callback's own response. Prints p50/p95/max per channel and the delivered/lost counts.

Usage: .venv-app/bin/python tools/bench_channels.py [--clients 10] [--messages-per-client 10]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import random
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT)]
from stack import Stack, free_port  # noqa: E402

from channels.wechat import parse_xml  # noqa: E402
from tests.fakes.merchant_api import serve_in_thread  # noqa: E402
from tests.fakes.telegram_api import FakeTelegram  # noqa: E402
from tests.fakes.wechat_api import FakeWeChat  # noqa: E402
from tests.fakes.whatsapp_api import FakeWhatsApp  # noqa: E402
from tools.bench_vs_rasa import OUR_MESSAGES  # noqa: E402

SETTLE_S = 0.4  # the rest of a turn's replies (they leave as one batch) before the customer writes again
TIMEOUT_S = 60.0


class Customer:
    """One customer of one platform: ``send(text)`` -> the passive reply (WeChat) or None; ``seen()`` -> how many
    messages the platform fake has accepted for this customer so far."""

    def __init__(self, send: Callable[[str], str | None], seen: Callable[[], int]) -> None:
        self.send, self.seen = send, seen


def telegram(web_url: str, fake: FakeTelegram, http: httpx.Client) -> Customer:
    chat_id = random.randint(10**8, 10**9)

    def send(text: str) -> None:
        r = http.post(f"{web_url}/api/channels/telegram/webhook", content=json.dumps(fake.text_update(chat_id, text)),
                      headers=fake.headers())
        r.raise_for_status()

    return Customer(send, lambda: len(fake.texts_to(chat_id)))


def whatsapp(web_url: str, fake: FakeWhatsApp, http: httpx.Client) -> Customer:
    wa_id = str(random.randint(10**10, 10**11))

    def send(text: str) -> None:
        body, headers = fake.signed(fake.notification(fake.message(wa_id, text)))
        http.post(f"{web_url}/api/channels/whatsapp/webhook", content=body, headers=headers).raise_for_status()

    return Customer(send, lambda: len(fake.sent_to(wa_id)))


def wechat(web_url: str, fake: FakeWeChat, http: httpx.Client) -> Customer:
    openid = "o6_" + secrets.token_hex(8)

    def send(text: str) -> str | None:
        r = http.post(f"{web_url}/api/channels/wechat", params=fake.query(openid), content=fake.text_xml(openid, text))
        r.raise_for_status()
        return None if r.text == "success" else parse_xml(r.content).get("Content")

    return Customer(send, lambda: len(fake.texts_to(openid)))


def converse(customer: Customer, messages: list[str]) -> tuple[list[float], int, str]:
    """Latencies of the customer's turns, lost turns (no reply within TIMEOUT_S), and how each was answered."""
    latencies, lost, ways = [], 0, set()
    for text in messages:
        before = customer.seen()
        started = time.perf_counter()
        passive = customer.send(text)
        if passive:
            latencies.append(time.perf_counter() - started)
            ways.add("passive")
            continue
        deadline = started + TIMEOUT_S
        while customer.seen() == before and time.perf_counter() < deadline:
            time.sleep(0.01)
        if customer.seen() == before:
            lost += 1
            continue
        latencies.append(time.perf_counter() - started)
        ways.add("api")
        while True:  # the rest of the batch, not counted
            count = customer.seen()
            time.sleep(SETTLE_S)
            if customer.seen() == count:
                break
    return latencies, lost, "+".join(sorted(ways))


def run_channel(name: str, make: Callable[[httpx.Client], Customer], clients: int, per_client: int) -> dict[str, Any]:
    mixes = [random.sample(OUR_MESSAGES, k=min(per_client, len(OUR_MESSAGES))) for _ in range(clients)]
    with httpx.Client(timeout=TIMEOUT_S) as http, ThreadPoolExecutor(max_workers=clients) as pool:
        results = list(pool.map(lambda mix: converse(make(http), mix), mixes))
    latencies = sorted(x for r in results for x in r[0])
    lost = sum(r[1] for r in results)
    q = statistics.quantiles(latencies, n=20, method="inclusive") if len(latencies) > 1 else latencies * 19
    return {"channel": name, "turns": clients * per_client, "answered": len(latencies), "lost": lost,
            "p50_ms": round(statistics.median(latencies) * 1000), "p95_ms": round(q[-1] * 1000),
            "max_ms": round(latencies[-1] * 1000), "way": "+".join(sorted({r[2] for r in results if r[2]}))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--messages-per-client", type=int, default=10)
    parser.add_argument("--channels", default="telegram,whatsapp,wechat")
    args = parser.parse_args()
    tg, wa, wx = FakeTelegram(), FakeWhatsApp(), FakeWeChat()
    ports = {name: free_port() for name in ("telegram", "whatsapp", "wechat")}
    env = {"TELEGRAM_BOT_TOKEN": tg.token, "TELEGRAM_WEBHOOK_SECRET": tg.secret,
           "TELEGRAM_API_BASE": f"http://127.0.0.1:{ports['telegram']}",
           "WHATSAPP_ACCESS_TOKEN": wa.access_token, "WHATSAPP_APP_SECRET": wa.app_secret,
           "WHATSAPP_VERIFY_TOKEN": wa.verify_token, "WHATSAPP_PHONE_NUMBER_ID": wa.phone_number_id,
           "WHATSAPP_API_BASE": f"http://127.0.0.1:{ports['whatsapp']}/v21.0",
           "WECHAT_APP_ID": wx.app_id, "WECHAT_APP_SECRET": wx.app_secret, "WECHAT_TOKEN": wx.token,
           "WECHAT_API_BASE": f"http://127.0.0.1:{ports['wechat']}",
           # a benchmark's customers write faster than people: the per-customer limits must not be what is measured
           "CHANNEL_LIMIT_MESSAGES": "100000/minute", "WEB_RATE_LIMIT_MESSAGES": "1000"}
    var = Path(tempfile.mkdtemp(prefix="bench-channels-"))
    stack = Stack.on_free_ports(var_dir=var, extra_env=env)
    makers: dict[str, Callable[[httpx.Client], Customer]] = {
        "telegram": lambda http: telegram(stack.web_url, tg, http),
        "whatsapp": lambda http: whatsapp(stack.web_url, wa, http),
        "wechat": lambda http: wechat(stack.web_url, wx, http)}
    with contextlib.ExitStack() as fakes:
        fakes.enter_context(serve_in_thread(tg.app(), port=ports["telegram"]))
        fakes.enter_context(serve_in_thread(wa.app(), port=ports["whatsapp"]))
        fakes.enter_context(serve_in_thread(wx.app(), port=ports["wechat"]))
        print("starting the stack ...", flush=True)
        stack.start()
        try:
            first = args.channels.split(",")[0]  # warm-up (models, caches, connections): not measured
            run_channel(first, makers[first], 2, 3)
            print(f"{'channel':<10}{'turns':>7}{'answered':>10}{'lost':>6}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}"
                  "  reply", flush=True)
            for name in args.channels.split(","):
                row = run_channel(name, makers[name], args.clients, args.messages_per_client)
                print(f"{row['channel']:<10}{row['turns']:>7}{row['answered']:>10}{row['lost']:>6}{row['p50_ms']:>9}"
                      f"{row['p95_ms']:>9}{row['max_ms']:>9}  {row['way']}", flush=True)
        finally:
            stack.stop()
            shutil.rmtree(var, ignore_errors=True)


if __name__ == "__main__":
    main()
