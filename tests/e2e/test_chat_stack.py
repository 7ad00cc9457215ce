"""End to end: the real stack (Redis, Rasa, action server, gateway) driven through the web chat API."""
from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
import redis

pytestmark = pytest.mark.e2e


BROWSERS: dict[str, httpx.Client] = {}  # conversation id -> the browser (cookie jar) that started it


def browser(conversation_id: str | None) -> httpx.Client:
    """The browser of a conversation (conversations are bound to the browser that started them)."""
    return BROWSERS.get(conversation_id or "") or httpx.Client(timeout=60)


def say(stack, text: str, conversation_id: str | None = None, ui_lang: str | None = None) -> dict[str, Any]:
    body = {"conversation_id": conversation_id, "message_id": uuid.uuid4().hex, "text": text,
            "metadata": {"ui_lang": ui_lang} if ui_lang else {}}
    http = browser(conversation_id)
    r = http.post(f"{stack.web_url}/api/webchat/messages", json=body)
    assert r.status_code == 200, r.text
    BROWSERS[r.json()["conversation_id"]] = http
    return r.json()


def texts(reply: dict[str, Any]) -> list[str]:
    return [m["text"] for m in reply["messages"]]


def has_cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def test_english_greeting_with_quick_replies(stack) -> None:
    reply = say(stack, "hello there")
    assert reply["messages"], reply
    first = reply["messages"][0]
    assert "assistant" in first["text"] and not has_cjk(first["text"])
    assert {"title": "Talk to a person", "payload": "/request_human"} in first["buttons"]


def test_chinese_greeting_and_switching_language(stack) -> None:
    reply = say(stack, "你好")
    cid = reply["conversation_id"]
    assert "智能客服" in texts(reply)[0]
    assert [b["title"] for b in reply["messages"][0]["buttons"]] == ["我的订单到哪了", "退货退款", "转人工"]
    reply = say(stack, "thanks a lot", cid)
    assert texts(reply) == ["You're welcome! Anything else I can help with?"]
    reply = say(stack, "谢谢", cid)
    assert texts(reply) == ["不客气～还有其他可以帮您的吗？"]


def test_button_payload_keeps_the_customers_language(stack) -> None:
    cid = say(stack, "你好")["conversation_id"]
    reply = say(stack, "/request_human", cid)
    assert texts(reply)[0] == "好的，我这就为您转接人工客服。"


def test_order_number_is_extracted_and_remembered(stack) -> None:
    reply = say(stack, "订单号是dm2026110512")
    cid = reply["conversation_id"]
    assert "DM2026110512" in texts(reply)[0] and has_cjk(texts(reply)[0])
    tracker = httpx.get(f"{stack.rasa_url}/conversations/{cid}/tracker", params={"token": stack.rasa_token}).json()
    assert tracker["slots"]["order_number"] == "DM2026110512"
    assert tracker["slots"]["language"] == "zh"


def test_order_questions_ask_for_verification_first(stack) -> None:
    # Order flows (tests/e2e/test_order_flows.py): no order detail before the customer is verified.
    reply = say(stack, "where is my order DM2026091234?")
    assert "last 4 digits" in texts(reply)[0]
    reply = say(stack, "退款什么时候到账")  # maybe a question, maybe a request: the refund times, then the lookup
    assert "订单号" in texts(reply)[-1] and "到账" in texts(reply)[0]


def test_two_failures_in_a_row_hand_over_to_a_human(stack) -> None:
    cid = say(stack, "hello")["conversation_id"]
    first = say(stack, "/nlu_fallback", cid)
    assert "rephrase" in texts(first)[0]
    second = say(stack, "/nlu_fallback", cid)
    assert "frustrating" in texts(second)[0]  # feelings first
    assert any("queue" in t or "ticket" in t or "recorded your request" in t for t in texts(second))


def test_sensitive_topic_goes_to_a_human_at_once(stack) -> None:
    reply = say(stack, "你们卖的充电宝起火了，把我手烫伤了")
    assert "专人" in texts(reply)[0]
    tracker = httpx.get(f"{stack.rasa_url}/conversations/{reply['conversation_id']}/tracker",
                        params={"token": stack.rasa_token}).json()
    assert tracker["slots"]["handoff_reason"] == "sensitive_safety"
    assert tracker["slots"]["handoff_priority"] == 1


def test_happy_customer_shouting_thanks_is_not_escalated(stack) -> None:
    reply = say(stack, "THANK YOU SO MUCH!!! You guys are AMAZING!!!")
    tracker = httpx.get(f"{stack.rasa_url}/conversations/{reply['conversation_id']}/tracker",
                        params={"token": stack.rasa_token}).json()
    assert not tracker["slots"]["handoff_active"]
    assert tracker["latest_message"]["frustration"]["score"] < 70
    assert not any("connecting you" in t or "frustrating" in t or "queue" in t for t in texts(reply))


def test_angry_customer_is_acknowledged_and_handed_over(stack) -> None:
    cid = say(stack, "where is my parcel")["conversation_id"]
    reply = say(stack, "this is ridiculous!!! useless garbage service, I have asked THREE times already!!!", cid)
    assert "frustrating" in texts(reply)[0]
    tracker = httpx.get(f"{stack.rasa_url}/conversations/{cid}/tracker", params={"token": stack.rasa_token}).json()
    assert tracker["slots"]["handoff_active"] is True
    assert tracker["latest_message"]["frustration"]["score"] >= 70


@pytest.mark.parametrize(
    "text",
    ["😀😀😀", "a" * 10_000, "hello\x00\x07\x1b world", "我要 refund 😡 asap!!!", "<script>alert(1)</script>",
     "\u202e\u200b\ufeff", "؟ مرحبا", "DM123"],
)
def test_odd_messages_get_a_sensible_reply(stack, text: str) -> None:
    reply = say(stack, text)
    assert reply["messages"], f"no reply to {text[:30]!r}"
    assert all(m["text"] for m in reply["messages"])


def test_malformed_json_is_a_4xx_and_the_stack_survives(stack) -> None:
    r = httpx.post(f"{stack.web_url}/api/webchat/messages", content=b"\xff\xfe{",
                   headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500 and r.json()["detail"]
    r = httpx.post(f"{stack.web_url}/api/webchat/messages", content=b'{"text": "hi",',
                   headers={"content-type": "application/json"})
    assert r.status_code == 422 and "JSON decode error" in r.json()["detail"]
    assert texts(say(stack, "hi"))


def test_unknown_conversation_starts_fresh(stack) -> None:
    reply = say(stack, "hello", conversation_id="not-a-real-conversation")
    assert reply["conversation_id"] != "not-a-real-conversation"


def test_rasa_http_api_requires_the_token(stack) -> None:
    cid = say(stack, "hello")["conversation_id"]
    assert httpx.get(f"{stack.rasa_url}/conversations/{cid}/tracker").status_code == 401
    assert httpx.get(f"{stack.rasa_url}/conversations/{cid}/tracker",
                     params={"token": stack.rasa_token}).status_code == 200


def test_conversations_live_in_persistent_redis(stack) -> None:
    cid = say(stack, "hello")["conversation_id"]
    client = redis.Redis.from_url(stack.env()["REDIS_URL"])
    assert client.config_get("appendonly")["appendonly"] == "yes"
    assert client.exists(f"csbottracker:tracker:{cid}") == 1
    assert client.xlen(f"csbot:conv:{cid}:messages") == 2
