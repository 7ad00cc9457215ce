"""Figures of the channel layer (gateway + outbox, the bot a stub answering at once, the fake Bot API in process):
inbound-to-reply p95 for 10 concurrent Telegram customers, and outbox delivery p95 against a Bot API failing 20 %
of calls. They measure the gateway's own overhead, not the bot's (see the e2e tests for the real stack). Run with
``-s`` to see the numbers; the assertions are loose ceilings plus the exact ones: nothing lost, nothing doubled."""
from __future__ import annotations

import asyncio
import json
import random
import statistics
import time

from channels.settings import ChannelSettings
from conversations.store import ChatMessage
from tests.channels.conftest import eventually, gateway
from tests.fakes.telegram_api import FakeTelegram

WEBHOOK = "/api/channels/telegram/webhook"


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


def settings_for(fake: FakeTelegram, **extra) -> ChannelSettings:
    return ChannelSettings(telegram_bot_token=fake.token, telegram_webhook_secret=fake.secret,
                           **{"outbox_poll_s": 0.05, "outbox_backoff_s": 0.05, **extra})


async def test_inbound_to_reply_p95_with_10_concurrent_customers(redis_url) -> None:
    fake = FakeTelegram()
    async with gateway(redis_url, settings_for(fake), {"telegram": fake.app()}) as http:
        chats = [random.randint(10**8, 10**9) for _ in range(10)]
        latencies: list[float] = []

        async def customer(chat_id: int) -> None:
            for n in range(5):
                start = time.monotonic()
                r = await http.post(WEBHOOK, content=json.dumps(fake.text_update(chat_id, f"question {n}")),
                                    headers=fake.headers())
                assert r.status_code == 200
                await eventually(lambda n=n: len(fake.texts_to(chat_id)) == n + 1, timeout_s=10)
                latencies.append(time.monotonic() - start)

        await asyncio.gather(*(customer(c) for c in chats))
        print(f"\ninbound-to-reply, 10 concurrent customers x 5 messages: p50 {statistics.median(latencies):.3f} s,"
              f" p95 {p95(latencies):.3f} s")
        assert p95(latencies) < 3.0
        assert all(fake.texts_to(c) == [f"echo:question {n}" for n in range(5)] for c in chats)


async def test_outbox_delivery_p95_with_a_fifth_of_calls_failing(redis_url) -> None:
    fake = FakeTelegram(fail_rate=0.2, fail_status=500, seed=5)
    cs = settings_for(fake, outbox_backoff_s=0.1, outbox_backoff_max_s=1.0, outbox_attempts=50)
    async with gateway(redis_url, cs, {"telegram": fake.app()}) as one, \
            gateway(redis_url, cs, {"telegram": fake.app()}) as two:
        chats = [random.randint(10**8, 10**9) for _ in range(10)]
        for chat_id in chats:
            await one.post(WEBHOOK, content=json.dumps(fake.text_update(chat_id, "hi")), headers=fake.headers())
        await eventually(lambda: all(fake.texts_to(c) for c in chats), timeout_s=20)
        conversations = {c: (await one.app.state.channel_routes.conversation_of("telegram", str(c))) for c in chats}
        appended: dict[str, float] = {}
        for n in range(10):
            for chat_id, cid in conversations.items():
                text = f"{chat_id}:{n}"
                appended[text] = time.monotonic()
                await (one if n % 2 else two).app.state.store.append(cid, ChatMessage(role="agent", text=text))
            await asyncio.sleep(0.05)
        await eventually(lambda: all(len(fake.texts_to(c)) >= 11 for c in chats), timeout_s=60)
        await asyncio.sleep(0.5)
        assert {c: fake.texts_to(c)[1:] for c in chats} == {c: [f"{c}:{n}" for n in range(10)] for c in chats}
        accepted = {m["text"]: at for m, at in zip(fake.sent, fake.accepted_at)}
        delays = [accepted[text] - at for text, at in appended.items()]
        failed = len(fake.calls) - len(fake.sent)
        print(f"\noutbox, 100 agent messages, 2 gateways, {failed} of {len(fake.calls)} Bot API calls failed: "
              f"delivery p50 {statistics.median(delays):.3f} s, p95 {p95(delays):.3f} s; 0 lost, 0 duplicated")
        assert failed > 0 and p95(delays) < 10.0
