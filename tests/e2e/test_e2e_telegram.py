"""End to end on Telegram: the real stack (Redis, Rasa, action server, gateway with the Telegram channel on) and the
fake Bot API (tests/fakes/telegram_api.py) on the port the shared stack was configured with (tests/conftest.py).

A customer asks a policy question in a Telegram chat and gets the knowledge-base answer through sendMessage; presses
the "Talk to a person" button (callback_query); an agent claims, replies - the reply reaches the chat through the
relay and the outbox -, closes, and the CSAT question arrives with star buttons; the customer's stars are thanked.
"""
from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis

from conversations import keys
from tests.conftest import CHANNEL_ENV, FAKE_TELEGRAM_PORT
from tests.fakes.merchant_api import serve_in_thread
from tests.fakes.telegram_api import FakeTelegram

pytestmark = pytest.mark.e2e
PASSWORD = "telegram-e2e-supervisor-pw"  # noqa: S105 - throw-away account in a throw-away Redis


@pytest.fixture(scope="module")
def telegram() -> Iterator[FakeTelegram]:
    fake = FakeTelegram(token=CHANNEL_ENV["TELEGRAM_BOT_TOKEN"], secret=CHANNEL_ENV["TELEGRAM_WEBHOOK_SECRET"])
    with serve_in_thread(fake.app(), port=FAKE_TELEGRAM_PORT):
        yield fake


def deliver(stack: Any, fake: FakeTelegram, update: dict) -> None:
    r = httpx.post(f"{stack.web_url}/api/channels/telegram/webhook", content=json.dumps(update),
                   headers=fake.headers(), timeout=60)
    assert r.status_code == 200, r.text


def wait_for(check: Callable[[], Any], timeout_s: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("not delivered in time")
        time.sleep(0.1)


def new_texts(fake: FakeTelegram, chat_id: int, seen: int) -> list[str]:
    return fake.texts_to(chat_id)[seen:]


def test_telegram_customer_gets_kb_answer_and_agent_reply(stack, telegram: FakeTelegram) -> None:
    chat_id = random.randint(10**8, 10**9)
    fake = telegram
    forged = httpx.post(f"{stack.web_url}/api/channels/telegram/webhook",
                        content=json.dumps(fake.text_update(chat_id, "hi")), headers=fake.headers("forged-secret"))
    assert forged.status_code == 403

    deliver(stack, fake, fake.text_update(chat_id, "How long do I have to return something?"))
    answer = wait_for(lambda: fake.texts_to(chat_id))
    assert any("7 days" in t for t in answer), answer

    # The answer's "did it help?" buttons may still be on their way; the greeting's keyboard is waited for by content.
    wait_for(lambda: any("reply_markup" in m for m in fake.sent if m["chat_id"] == chat_id))
    sent_before = len(fake.sent)
    deliver(stack, fake, fake.text_update(chat_id, "hello"))

    def greeting_buttons() -> list[dict] | None:
        for m in fake.sent[sent_before:]:
            if m["chat_id"] == chat_id and "reply_markup" in m:
                return [row[0] for row in m["reply_markup"]["inline_keyboard"]]
        return None

    buttons = wait_for(greeting_buttons)
    assert {"text": "Talk to a person", "callback_data": "/request_human"} in buttons

    seen = len(fake.texts_to(chat_id))
    press = fake.callback_update(chat_id, "/request_human")
    deliver(stack, fake, press)
    assert press["callback_query"]["id"] in fake.answered_callbacks
    wait_for(lambda: new_texts(fake, chat_id, seen))

    store = redis.Redis.from_url(stack.env()["REDIS_URL"])
    conversation_id = store.get(keys.channel_user("telegram", str(chat_id))).decode()
    env = {**stack.env(), "HANDOFF_ADMIN_PASSWORD": PASSWORD}
    done = subprocess.run([sys.executable, "-m", "handoff.admin", "create-supervisor", "--username", "tgsup"],
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    desk = httpx.Client(base_url=stack.web_url, timeout=30)
    login = desk.post("/api/agent/login", json={"username": "tgsup", "password": PASSWORD})
    assert login.status_code == 200, login.text
    desk.headers["Authorization"] = f"Bearer {login.json()['token']}"
    row = wait_for(lambda: next((r for r in desk.get("/api/agent/queue").json()
                                 if r["conversation_id"] == conversation_id), None))
    handoff_id = row["handoff_id"]
    assert desk.post(f"/api/agent/handoffs/{handoff_id}/claim").status_code == 200

    seen = len(fake.texts_to(chat_id))
    r = desk.post(f"/api/agent/handoffs/{handoff_id}/messages", json={"text": "Hi, this is Anna. How can I help?"})
    assert r.status_code in (200, 201), r.text
    wait_for(lambda: "Hi, this is Anna. How can I help?" in new_texts(fake, chat_id, seen))

    seen = len(fake.texts_to(chat_id))
    r = desk.post(f"/api/agent/handoffs/{handoff_id}/close", json={"resolution": "info_provided"})
    assert r.status_code == 200, r.text
    wait_for(lambda: new_texts(fake, chat_id, seen))
    csat = [m for m in fake.sent if m["chat_id"] == chat_id][-1]
    assert "rate" in csat["text"]
    payloads = [row[0]["callback_data"] for row in csat["reply_markup"]["inline_keyboard"]]
    assert payloads == [f'/csat{{"stars":{n}}}' for n in range(1, 6)]

    seen = len(fake.texts_to(chat_id))
    deliver(stack, fake, fake.callback_update(chat_id, payloads[4]))
    assert wait_for(lambda: new_texts(fake, chat_id, seen)) == ["Thank you for your rating!"]
    # Every message reached the chat once.
    texts = fake.texts_to(chat_id)
    assert texts.count("Hi, this is Anna. How can I help?") == 1
